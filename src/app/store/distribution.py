"""Sharding by user: which tables Citus distributes, how, and the `taskpilot db distribute` step.

Every user-data table is distributed by `user_id` and co-located with `chat_threads`, so one
user's threads, items, attachments, feedback, tasks, hosted sessions and token usage live on one shard group
and every statement that pins `user_id = <value>` is routed to a single worker. The schema was
built for this: every primary, unique and foreign key leads with `user_id`.

There is no reference data: every table holds some user's rows. `alembic_version` stays a local
table of the coordinator, where migrations run.

Statements that are meant to scan across users (retention, abandoned uploads) carry a
`scan_hint` comment, so the statement audit (tests/integration/test_statement_audit.py) can tell an
intended fan-out from a forgotten filter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

COLOCATE_WITH: Final = "chat_threads"
# In creation order: the table every other one is co-located with comes first, and a table comes
# after the tables its foreign keys point at (Citus requires the referenced table distributed).
DISTRIBUTED_TABLES: Final = (
    "chat_threads",
    "chat_items",
    "chat_attachments",
    "chat_feedback",
    "tasks",
    "hosted_sessions",
    "usage",
)
REFERENCE_TABLES: Final[tuple[str, ...]] = ()
DISTRIBUTION_COLUMN: Final = "user_id"
SCAN_TAG: Final = "taskpilot-scan"


def scan_hint(name: str) -> str:
    """The SQL comment that marks a statement as an intended cross-user scan named `name`."""
    return f"/* {SCAN_TAG}: {name} */"


def distribution_statements() -> list[str]:
    """The SQL `distribute` runs on a Citus coordinator, in order."""
    statements = []
    for table in DISTRIBUTED_TABLES:
        colocate = "none" if table == COLOCATE_WITH else COLOCATE_WITH
        # colocate_with => 'none' starts a new co-location group for the first table; the others join it.
        statements.append(
            f"SELECT create_distributed_table('{table}', '{DISTRIBUTION_COLUMN}', colocate_with => '{colocate}')"
        )
    statements.extend(f"SELECT create_reference_table('{table}')" for table in REFERENCE_TABLES)
    return statements


@dataclass(slots=True)
class DistributionReport:
    citus: bool
    distributed: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    message: str = ""


async def distribute(engine: AsyncEngine) -> DistributionReport:
    """Distribute the user tables when the database has the `citus` extension; otherwise do nothing.

    Idempotent: a table Citus already knows (`pg_dist_partition`) is left alone, so it can run
    after every `db upgrade`.
    """
    if engine.dialect.name != "postgresql":
        return DistributionReport(citus=False, message=f"{engine.dialect.name}: nothing to distribute")
    async with engine.connect() as connection:
        has_citus = (await connection.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'citus'"))).first()
        if has_citus is None:
            return DistributionReport(
                citus=False,
                message="the citus extension is not installed in this database: nothing distributed "
                "(plain PostgreSQL needs no step)",
            )
        known = {
            str(row[0])
            for row in await connection.execute(text("SELECT logicalrelid::regclass::text FROM pg_dist_partition"))
        }
    report = DistributionReport(citus=True)
    for table, statement in zip(DISTRIBUTED_TABLES + REFERENCE_TABLES, distribution_statements(), strict=True):
        if table in known:
            report.already.append(table)
            continue
        # One transaction per table: distributing copies the table's rows to the shards, and a
        # failure half-way leaves the tables done so far distributed (a re-run skips them).
        async with engine.begin() as connection:
            await connection.execute(text(statement))
        report.distributed.append(table)
    report.message = f"distributed {report.distributed or 'nothing new'}; already distributed {report.already}"
    return report

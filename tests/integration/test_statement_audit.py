"""Every statement the app sends is routable by `user_id` (Citus-ready), on SQLite and PostgreSQL.

A `before_cursor_execute` listener records every statement of the ChatKit endpoint (threads,
items, feedback, attachments with signed upload and download, deletion), the tasks REST API,
hosted sessions (mint, refresh, cancel, against tests/support/fake_openai.py) and the maintenance jobs;
`tests/support/statement_audit.py` parses each and the test fails on any that touches a user table
without a `user_id` pin. The self-tests prove the audit does flag such statements.
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest
import sqlglot
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from app.services.feedback import FeedbackExport, export_feedback
from app.services.maintenance import cleanup_chats
from app.services.usage import UsageBook, UsageExport, export_usage
from app.settings import Settings
from app.store.distribution import DISTRIBUTED_TABLES, distribution_statements, scan_hint
from tests.conftest import create_schema
from tests.support.attachments import attachments_app
from tests.support.fake_openai import FakeOpenAI
from tests.support.hosted import API_KEY, hosted_env, running
from tests.support.payloads import NOTES, PNG
from tests.support.statement_audit import ALLOWED_SCANS, audit_statement, recording

# The statements that are meant to scan across users, and why each may. Each only *finds* rows
# (a plain SELECT, no lock: the audit enforces that); every change it leads to is a routed
# statement per user, which re-checks the condition under that user's pin.
# ---- the audit itself can fail -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        ("SELECT id FROM chat_threads WHERE updated_at < $1", "no user_id pin"),
        ("SELECT id FROM chat_threads WHERE user_id = $1 OR id = $2", "no user_id pin"),
        ("DELETE FROM chat_items WHERE (user_id, thread_id) IN (($1, $2), ($3, $4))", "no user_id pin"),
        ("UPDATE tasks SET title = $1 WHERE id = $2", "no user_id pin"),
        ("SELECT i.id FROM chat_items AS i JOIN chat_threads AS t ON t.id = i.thread_id WHERE t.user_id = $1", "as i"),
        ("SELECT 1 FROM tasks WHERE user_id IN ($1, $2)", "no user_id pin"),
        ("INSERT INTO tasks (id, title) VALUES ($1, $2)", "names no user_id"),
        (
            "INSERT INTO tasks (user_id, id, number) "
            "VALUES ($1, $2, (SELECT max(number) FROM tasks WHERE user_id = $1))",
            "subquery in VALUES",
        ),
        (
            "SELECT t.id FROM chat_threads AS t WHERE t.user_id = 'alice' AND EXISTS "
            "(SELECT 1 FROM chat_items AS i WHERE i.user_id = 'bob')",
            "more than one user",
        ),
        (f"SELECT {scan_hint('retention.expired_threads')} id FROM chat_threads FOR UPDATE", "plain SELECT"),
        ("SELECT id FROM chat_threads WHERE user_id = ?", None),
    ],
)
def test_the_audit_flags_statements_without_a_user_pin(sql: str, problem: str | None) -> None:
    verdict = audit_statement(sql, dialect="sqlite" if "?" in sql else "postgres")
    if problem is None:
        assert verdict.problems == ()
    else:
        assert any(problem in p for p in verdict.problems), verdict


def test_the_audit_accepts_pins_joins_on_user_id_and_resolves_parameters() -> None:
    routed = [
        "SELECT id FROM chat_threads WHERE user_id = $1::VARCHAR AND id = $2",
        "SELECT i.id FROM chat_items AS i JOIN chat_threads AS t ON t.user_id = i.user_id AND t.id = i.thread_id "
        "WHERE t.user_id = $1",
        "SELECT id FROM chat_items WHERE user_id = $1 AND (created_at, seq) > "
        "(SELECT c.created_at, c.seq FROM chat_items AS c WHERE c.user_id = $1 AND c.id = $2)",
        "WITH touched AS (UPDATE chat_threads SET updated_at = $3 WHERE user_id = $1 AND id = $2 "
        "RETURNING user_id, id) INSERT INTO chat_items (user_id, id, thread_id) "
        "SELECT touched.user_id, $4, touched.id FROM touched",
        "INSERT INTO chat_feedback (user_id, item_id) SELECT chat_items.user_id, chat_items.id FROM chat_items "
        "WHERE chat_items.user_id = $1 ON CONFLICT (user_id, item_id) DO UPDATE SET kind = excluded.kind",
    ]
    for sql in routed:
        assert audit_statement(sql, ["alice", "x", "y", "z"]).problems == (), sql
    # The same text with parameters naming two users is two shard groups.
    two = (
        "SELECT id FROM chat_items WHERE user_id = $1 AND thread_id IN (SELECT id FROM chat_threads WHERE user_id = $2)"
    )
    assert audit_statement(two, ["alice", "alice"]).problems == ()
    assert "more than one user" in audit_statement(two, ["alice", "bob"]).problems[0]


def test_the_citus_step_is_valid_sql_in_creation_order() -> None:
    statements = distribution_statements()
    assert [sqlglot.parse_one(s, read="postgres").sql("postgres") for s in statements]  # parses
    assert statements[0] == "SELECT create_distributed_table('chat_threads', 'user_id', colocate_with => 'none')"
    for table, statement in zip(DISTRIBUTED_TABLES[1:], statements[1:], strict=True):
        assert statement == f"SELECT create_distributed_table('{table}', 'user_id', colocate_with => 'chat_threads')"


# ---- the flows ----------------------------------------------------------------------------------------


async def _chat_and_attachment_flows(tmp_path: Path, database_url: str) -> None:
    async for env in attachments_app(tmp_path, database_url):
        image = await env.created("alice", "dot.png", "image/png", len(PNG))
        assert (await env.upload(image, PNG, {"Content-Type": "image/png"})).status_code == 200
        notes = await env.created("alice", "notes.md", "text/markdown", len(NOTES))
        assert (await env.upload(notes, NOTES)).status_code == 200
        abandoned = await env.created("alice", "never.md", "text/markdown", 10)
        created = await env.alice.create_thread("add a task to buy milk", attachments=[image["id"], notes["id"]])
        assert created.status == 200 and not created.of_type("error")
        thread_id = created.thread_id
        for text in ("show my tasks", "mark 1 done"):
            sent = await env.alice.send(thread_id, text)
            assert sent.status == 200 and not sent.of_type("error")
        first = await env.alice.items(thread_id, order="asc", limit=1)
        assert first.status == 200
        page = await env.alice.items(thread_id, order="asc", limit=50, after=first.body["data"][0]["id"])
        assert page.status == 200 and page.body["data"]
        assistant = next(i["id"] for i in page.body["data"] if i["type"] == "assistant_message")
        assert (
            await env.alice.request(
                "items.feedback", {"thread_id": thread_id, "item_ids": [assistant], "kind": "positive"}
            )
        ).status == 200
        assert (await env.alice.request("threads.update", {"thread_id": thread_id, "title": "Groceries"})).status == 200
        listed = await env.alice.request("threads.list", {"limit": 1})
        assert listed.status == 200
        assert (await env.alice.request("threads.list", {"limit": 5, "after": thread_id})).status == 200
        assert (await env.alice.get_thread(thread_id)).status == 200
        download = await env.http.get(f"/api/chatkit/attachments/{notes['id']}", headers=env.bearer("alice"))
        assert download.status_code == 200 and download.content == NOTES
        assert (await env.bob.get_thread(thread_id)).status == 404
        assert (await env.alice.request("attachments.delete", {"attachment_id": abandoned["id"]})).status == 200
        second = await env.alice.create_thread("hello")
        assert (await env.alice.request("threads.delete", {"thread_id": second.thread_id})).status == 200

        # The REST API of tasks.
        headers = env.bearer("alice")
        made = await env.http.post("/api/tasks", json={"title": "Call mum", "tags": ["home"]}, headers=headers)
        assert made.status_code == 201, made.text
        task_id = made.json()["id"]
        for query in ("", "?tag=home", "?q=mum&sort=due_date&order=desc", "?status=open&limit=1"):
            assert (await env.http.get(f"/api/tasks{query}", headers=headers)).status_code == 200
        patched = await env.http.patch(f"/api/tasks/{task_id}", json={"priority": "high"}, headers=headers)
        assert patched.status_code == 200, patched.text
        assert (await env.http.delete(f"/api/tasks/{task_id}", headers=headers)).status_code in (200, 204)

        # The maintenance jobs: everything is past retention a year from now.
        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=365)
        from app.store.db import build_db_config

        config = build_db_config(env.settings)
        try:
            exported = io.StringIO()
            options = FeedbackExport(format="jsonl", include_text=True)
            assert await export_feedback(config.create_session_maker(), exported, options) == 1
            # Every turn above added to alice's `usage` row; the budget reads it, the export scans it.
            assert await UsageBook(config.create_session_maker(), tokens_per_day=10**9).check("alice") is not None
            assert await export_usage(config.create_session_maker(), io.StringIO(), UsageExport()) >= 1
            report = await cleanup_chats(
                config.create_session_maker(),
                retention_days=30,
                attachment_pending_ttl_hours=1,
                now=later,
                batch_size=1,
            )
        finally:
            await config.get_engine().dispose()
        assert report.threads_deleted == 1 and report.items_deleted >= 6


async def _hosted_flow(database_url: str, fake: FakeOpenAI) -> None:
    from tests.conftest import auth_headers

    settings = Settings.from_env(hosted_env(fake, DATABASE_URL=database_url, LOG_LEVEL="warning"))
    async with running(settings, create_schema=False) as (client, _app):
        alice = auth_headers(settings, "alice")
        minted = (await client.post("/api/chatkit/sessions", headers=alice)).json()
        refreshed = await client.post(
            "/api/chatkit/sessions/refresh", headers=alice, json={"current_client_secret": minted["client_secret"]}
        )
        assert refreshed.status_code in (200, 201), refreshed.text
        cancelled = await client.delete(f"/api/chatkit/sessions/{refreshed.json()['session_id']}", headers=alice)
        assert cancelled.status_code == 204


async def test_every_statement_of_the_flows_filters_by_user_id(
    tmp_path: Path, engine: AsyncEngine, database_url: str
) -> None:
    fake = FakeOpenAI(API_KEY)
    try:
        with recording() as log:
            await _chat_and_attachment_flows(tmp_path, database_url)
            await _hosted_flow(database_url, fake)
    finally:
        fake.stop()
    offenders = log.offenders()
    assert not offenders, "statements that do not filter by user_id:\n" + "\n".join(offenders)
    # The flows did reach every user table and both scans, or the audit proved nothing.
    assert log.tables() == set(DISTRIBUTED_TABLES)
    assert log.scans() == set(ALLOWED_SCANS)
    assert len(log.verdicts) > 50
    # On PostgreSQL the Store's hot statements bypass SQLAlchemy's events: they were audited too.
    assert (log.via_driver > 10) == database_url.startswith("postgresql"), log.via_driver


async def test_a_scan_outside_the_allowlist_fails(tmp_path: Path) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path}/scan.db"
    await create_schema(database_url)
    from app.store.db import build_db_config

    config = build_db_config(Settings.from_env({"DATABASE_URL": database_url}))
    try:
        with recording(allowed={}) as log:
            await cleanup_chats(
                async_sessionmaker(config.get_engine()), retention_days=1, attachment_pending_ttl_hours=1
            )
    finally:
        await config.get_engine().dispose()
    assert any("not in the allowlist" in offender for offender in log.offenders())

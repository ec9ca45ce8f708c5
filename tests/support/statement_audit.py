"""The user_id routing audit: every statement the app sends, parsed, checked for a `user_id` pin.

A statement that reads or writes a distributed (user-data) table is *routable* when every
reference to such a table is pinned to one user:

- SELECT / UPDATE / DELETE: a top-level conjunct of its WHERE (or its JOIN ... ON) says
  `<ref>.user_id = <value>` or `<ref>.user_id IN (<one value>)`, or equates its `user_id`
  with the `user_id` of another reference that is pinned (a join of co-located tables on the
  distribution column, also from a correlated subquery). A pin under OR does not count.
- INSERT: the column list names `user_id`; an INSERT ... VALUES must not hold a subquery
  (Citus cannot route one), an INSERT ... SELECT is audited as its SELECT.
- On PostgreSQL (numbered `$n` parameters) the pinned values are resolved from the statement's
  parameters: all the references of one statement must name the same user (one shard group).

Statements meant to scan across users carry `app.store.distribution.scan_hint(name)`; they are
accepted only when `name` is in the caller's allowlist and the statement is a plain SELECT
(no locking), so a scan can find rows but every change goes through routed statements.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlglot import expressions as exp
from sqlglot.errors import ParseError

from app.store import driver
from app.store.distribution import DISTRIBUTED_TABLES, DISTRIBUTION_COLUMN, SCAN_TAG

_SCAN = re.compile(r"/\*\s*" + re.escape(SCAN_TAG) + r":\s*([\w.-]+)\s*\*/")
_QUERY_TYPES = (exp.Select, exp.Update, exp.Delete, exp.Insert)
_UNSET = object()


@dataclass(frozen=True, slots=True)
class Verdict:
    sql: str
    problems: tuple[str, ...] = ()
    scan: str | None = None  # the scan hint's name, for an allowlisted scan
    tables: frozenset[str] = frozenset()


@dataclass
class _Ref:
    table: str
    alias: str
    pinned: Any = _UNSET  # the pinned value (a parameter index, a literal) or _UNSET
    links: set[str] = field(default_factory=set)


def _value_of(node: exp.Expression, params: Sequence[Any] | None) -> Any:
    """The value a pin names, or _UNSET when `node` is not a value (a column, an expression)."""
    while isinstance(node, exp.Cast | exp.Paren):
        node = node.this
    if isinstance(node, exp.Parameter):
        index = int(node.name) - 1
        if params is not None and 0 <= index < len(params):
            return ("value", params[index])
        return ("param", index)
    if isinstance(node, exp.Placeholder):
        return ("placeholder", id(node))  # SQLite `?`: a value, but not resolvable by position here
    if isinstance(node, exp.Literal):
        return ("value", node.this)
    return _UNSET


def _conjuncts(node: exp.Expression | None) -> Iterable[exp.Expression]:
    if node is None:
        return
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.And):
        yield from _conjuncts(node.this)
        yield from _conjuncts(node.expression)
    else:
        yield node


def _user_column(node: exp.Expression) -> exp.Column | None:
    while isinstance(node, exp.Cast | exp.Paren):
        node = node.this
    if isinstance(node, exp.Column) and node.name == DISTRIBUTION_COLUMN:
        return node
    return None


def _enclosing_query(node: exp.Expression) -> exp.Expression | None:
    parent = node.parent
    while parent is not None and not isinstance(parent, _QUERY_TYPES):
        parent = parent.parent
    return parent


def _direct_tables(query: exp.Expression) -> list[exp.Table]:
    tables: list[exp.Table] = []
    candidates: list[Any] = []
    if isinstance(query, exp.Update | exp.Delete):
        candidates.append(query.this)
        candidates.append(query.args.get("from_") or query.args.get("from"))
        candidates.extend(query.args.get("using") or [])
    elif isinstance(query, exp.Select):
        candidates.append(query.args.get("from_") or query.args.get("from"))
    for join in query.args.get("joins") or []:
        candidates.append(join.this)
    for candidate in candidates:
        node = candidate.this if isinstance(candidate, exp.From) else candidate
        if isinstance(node, exp.Table) and node.name in DISTRIBUTED_TABLES:
            tables.append(node)
    return tables


class _Audit:
    def __init__(self, params: Sequence[Any] | None) -> None:
        self.params = params
        self.problems: list[str] = []
        self.values: list[Any] = []

    def query(self, query: exp.Expression, outer: Mapping[str, _Ref]) -> None:
        refs: dict[str, _Ref] = {}
        if isinstance(query, exp.Insert):
            self._insert(query)
        else:
            for table in _direct_tables(query):
                alias = table.alias_or_name
                refs[alias] = _Ref(table=table.name, alias=alias)
            conditions = list(_conjuncts(query.args.get("where") and query.args["where"].this))
            for join in query.args.get("joins") or []:
                conditions.extend(_conjuncts(join.args.get("on")))
            scope = {**outer, **refs}
            for condition in conditions:
                self._pin(condition, refs, scope)
            self._propagate(scope)
            for ref in refs.values():
                if ref.pinned is _UNSET:
                    kind = type(query).__name__.upper()
                    self.problems.append(f"{kind} on {ref.table} (as {ref.alias}) has no {DISTRIBUTION_COLUMN} pin")
                else:
                    self.values.append(ref.pinned)
            outer = scope
        for nested in query.find_all(*_QUERY_TYPES):
            if nested is not query and _enclosing_query(nested) is query:
                self.query(nested, outer)

    def _insert(self, query: exp.Insert) -> None:
        target = query.this
        table = target.this if isinstance(target, exp.Schema) else target
        if not isinstance(table, exp.Table) or table.name not in DISTRIBUTED_TABLES:
            return
        columns = [c.name for c in target.expressions] if isinstance(target, exp.Schema) else []
        if DISTRIBUTION_COLUMN not in columns:
            self.problems.append(f"INSERT into {table.name} names no {DISTRIBUTION_COLUMN} column")
        source = query.expression
        if isinstance(source, exp.Values) and source.find(exp.Subquery, exp.Select):
            self.problems.append(f"INSERT into {table.name} has a subquery in VALUES (Citus cannot route it)")

    def _pin(self, condition: exp.Expression, refs: dict[str, _Ref], scope: Mapping[str, _Ref]) -> None:
        def ref_of(column: exp.Column) -> _Ref | None:
            if column.table:
                return scope.get(column.table)
            return next(iter(refs.values())) if len(refs) == 1 else None

        if isinstance(condition, exp.EQ):
            left, right = _user_column(condition.this), _user_column(condition.expression)
            if left is not None and right is not None:
                a, b = ref_of(left), ref_of(right)
                if a is not None and b is not None:
                    a.links.add(b.alias)
                    b.links.add(a.alias)
                return
            column, other = (left, condition.expression) if left is not None else (right, condition.this)
            if column is not None and (ref := ref_of(column)) is not None:
                value = _value_of(other, self.params)
                if value is not _UNSET:
                    ref.pinned = value
        elif isinstance(condition, exp.In) and (column := _user_column(condition.this)) is not None:
            values = condition.expressions
            if len(values) == 1 and (ref := ref_of(column)) is not None:
                value = _value_of(values[0], self.params)
                if value is not _UNSET:
                    ref.pinned = value

    @staticmethod
    def _propagate(scope: Mapping[str, _Ref]) -> None:
        changed = True
        while changed:
            changed = False
            for ref in scope.values():
                if ref.pinned is not _UNSET:
                    continue
                for alias in ref.links:
                    other = scope.get(alias)
                    if other is not None and other.pinned is not _UNSET:
                        ref.pinned = other.pinned
                        changed = True
                        break


@functools.lru_cache(maxsize=4096)
def _parse(sql: str, dialect: str) -> tuple[exp.Expression, ...]:
    """Parsed once per text: the same statements run thousands of times (trees are only read)."""
    return tuple(tree for tree in sqlglot.parse(sql, read=dialect) if tree is not None)


def audit_statement(sql: str, params: Sequence[Any] | None = None, *, dialect: str = "postgres") -> Verdict:
    """Check one statement as sent to the driver (`params`: its positional parameters, if any)."""
    mentioned = frozenset(t for t in DISTRIBUTED_TABLES if re.search(rf"\b{t}\b", sql))
    if not mentioned:
        return Verdict(sql=sql)
    try:
        trees = _parse(sql, dialect)
    except ParseError as exc:
        return Verdict(sql=sql, problems=(f"unparsed statement on {sorted(mentioned)}: {exc}",), tables=mentioned)
    scan = _SCAN.search(sql)
    if scan is not None:
        problems = []
        for tree in trees:
            if not isinstance(tree, exp.Select) or tree.args.get("locks"):
                problems.append("a scan may only be a plain SELECT (no locking, no writes)")
            elif any(isinstance(node, exp.Insert | exp.Update | exp.Delete) for node in tree.walk()):
                problems.append("a scan may not write")
        return Verdict(sql=sql, problems=tuple(problems), scan=scan.group(1), tables=mentioned)
    audit = _Audit(params)
    for tree in trees:
        if isinstance(tree, _QUERY_TYPES):
            audit.query(tree, {})
    resolved = {v for v in audit.values if v[0] == "value"}
    if len(resolved) > 1:
        audit.problems.append(f"pins name more than one user {sorted(map(str, resolved))} (several shard groups)")
    return Verdict(sql=sql, problems=tuple(audit.problems), tables=mentioned)


@dataclass
class StatementLog:
    """Collects statements from a `before_cursor_execute` listener and audits them."""

    allowed_scans: Mapping[str, str]
    verdicts: list[Verdict] = field(default_factory=list)
    via_driver: int = 0  # statements the Store sent on its asyncpg lane (app.store.driver)

    def record(self, sql: str, parameters: Any, dialect: str, executemany: bool) -> None:
        dialect_name = "postgres" if dialect == "postgresql" else dialect
        rows = parameters if executemany else [parameters]
        for row in rows or [None]:
            params = list(row) if isinstance(row, list | tuple) and dialect_name == "postgres" else None
            self.verdicts.append(audit_statement(sql, params, dialect=dialect_name))

    def offenders(self) -> list[str]:
        found = []
        for verdict in self.verdicts:
            if verdict.problems:
                found.append(f"{'; '.join(verdict.problems)}\n    {verdict.sql}")
            elif verdict.scan is not None and verdict.scan not in self.allowed_scans:
                found.append(f"scan {verdict.scan!r} is not in the allowlist\n    {verdict.sql}")
        return sorted(set(found))

    def scans(self) -> set[str]:
        return {v.scan for v in self.verdicts if v.scan is not None}

    def tables(self) -> set[str]:
        return {t for v in self.verdicts for t in v.tables}


ALLOWED_SCANS = {
    # Retention: threads untouched since the cutoff, by the `updated_at` index, in keyset pages.
    "retention.expired_threads": "a cron job over all users; deletes per user",
    # Abandoned two-phase uploads: 'pending' rows older than the TTL, by the (status, created_at) index.
    "uploads.abandoned": "a cron job over all users; deletes per user",
    # `taskpilot feedback export`: every feedback row, for the operator, in keyset pages; changes nothing.
    "feedback.export": "an operator's export over all users; read-only",
    # `taskpilot usage export`: every usage row (per user, day and model), in keyset pages; changes nothing.
    "usage.export": "an operator's export over all users; read-only",
}


@contextmanager
def recording(allowed: dict[str, str] | None = None) -> Iterator[StatementLog]:
    """Audit every statement any engine of this process sends while the block runs."""
    log = StatementLog(allowed_scans=ALLOWED_SCANS if allowed is None else allowed)

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        log.record(statement, parameters, conn.dialect.name, executemany)

    def before_driver(statement: str, arguments: Sequence[Any]) -> None:
        log.via_driver += 1
        log.record(statement, tuple(arguments), "postgresql", False)

    event.listen(Engine, "before_cursor_execute", before)
    driver.statement_listeners.append(before_driver)  # the Store's hot path skips SQLAlchemy
    try:
        yield log
    finally:
        event.remove(Engine, "before_cursor_execute", before)
        driver.statement_listeners.remove(before_driver)

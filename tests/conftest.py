"""Shared fixtures: settings, databases (SQLite file and real PostgreSQL), tokens, live servers.

The suite is in layers, one folder each, and every test carries its layer's marker (set here from
its folder): `unit` (no database, no server), `integration` (the app in-process on real databases),
`live` (real granian processes over HTTP), `browser` (headless Chromium), `load` (load, faults, the
balancer; `make test` runs them alone, after the other layers ran on every core). `make test-fast`
runs unit + integration.

PostgreSQL tests use `TEST_POSTGRES_URL` (default: the local trust-auth server). Each test
session creates its own database and drops it afterwards, so parallel runs never collide.
When the server is unreachable the tests are skipped with the reason, unless
`REQUIRE_POSTGRES=1` (CI sets it), in which case they fail.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from app.settings import Settings
from tests.support import contract

# The app, the Agents SDK, SQLAlchemy and the servers' helpers are imported where a fixture or helper
# first needs them, not here: xdist's controller process imports this file too and never runs a
# test, and importing them cost it ~6 s of CPU before any worker started. (The browser fixtures are
# in tests/browser/conftest.py for the same reason.)
if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

    from tests.support.fake_model_server import FakeModelServer
    from tests.support.fake_openai import FakeOpenAI
    from tests.support.servers import LiveServer, ServerPool

REQUIRE_POSTGRES = os.environ.get("REQUIRE_POSTGRES", "") in {"1", "true", "yes"}


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Development settings on a SQLite file inside `tmp_path`, plus overrides."""
    env = {
        "APP_ENV": "development",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/taskpilot.db",
        "ATTACHMENT_STORAGE_URL": str(tmp_path / "attachments"),
    }
    env.update({k: str(v) for k, v in overrides.items()})
    return Settings.from_env(env)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


def token_for(settings: Settings, user_id: str) -> str:
    from app.http.auth import mint_dev_token

    return mint_dev_token(settings, user_id)


def auth_headers(settings: Settings, user_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(settings, user_id)}"}


async def _postgres_database() -> str | None:
    """Create a fresh database for this test session; None when PostgreSQL is unreachable."""
    import asyncpg
    from testkit.postgres import create_database, scratch_name

    from tests.support.servers import POSTGRES_ADMIN_URL

    try:
        return await create_database(POSTGRES_ADMIN_URL, scratch_name("taskpilot_test"), timeout=5)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return None


async def _drop_database(url: str) -> None:
    from sqlalchemy.engine import make_url
    from testkit.postgres import drop_database

    from tests.support.servers import POSTGRES_ADMIN_URL

    await drop_database(POSTGRES_ADMIN_URL, str(make_url(url).database))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of an empty PostgreSQL database owned by this test session."""
    url = asyncio.run(_postgres_database())
    if url is None:
        from sqlalchemy.engine import make_url

        from tests.support.servers import POSTGRES_ADMIN_URL

        message = f"PostgreSQL unreachable at {make_url(POSTGRES_ADMIN_URL).render_as_string()}"
        if REQUIRE_POSTGRES:
            pytest.fail(f"{message} and REQUIRE_POSTGRES=1", pytrace=False)
        pytest.skip(f"{message}; set TEST_POSTGRES_URL to run the PostgreSQL tests")
    yield url
    asyncio.run(_drop_database(url))


REDIS_TEST_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_REDIS = REQUIRE_POSTGRES or os.environ.get("CI", "") in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a reachable Redis (`TEST_REDIS_URL`). Shared with everything else on it: tests use
    unique key prefixes and user ids, and never flush. Skipped when unreachable, unless CI."""
    import redis

    client = redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        message = f"Redis unreachable at {REDIS_TEST_URL} ({type(exc).__name__})"
        if REQUIRE_REDIS:
            pytest.fail(f"{message} and REQUIRE_POSTGRES=1 / CI=true", pytrace=False)
        pytest.skip(f"{message}; start redis-server or set TEST_REDIS_URL to run the Redis tests")
    finally:
        client.close()
    return REDIS_TEST_URL


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> Iterator[str]:
    """An empty PostgreSQL database of its own (for tests that run migrations or a live server)."""
    url = asyncio.run(_postgres_database())
    assert url is not None
    yield url
    asyncio.run(_drop_database(url))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL for a live server process: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/server.db"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


async def create_schema(database_url: str) -> None:
    """Create every table on `database_url` (in-process tests that skip the migration step)."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from app.store.models import Base
    from tests.support.schema import copy_empty_sqlite_schema

    if copy_empty_sqlite_schema(database_url):
        return
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs twice: on a SQLite file and on real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/store.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on an empty schema: on SQLite a new file per test, a copy of an empty schema
    (`copy_empty_sqlite_schema`); on PostgreSQL the run's database with every table
    emptied (`_empty_schema`)."""
    from app.store.db import build_db_config
    from app.store.models import Base
    from tests.support.schema import copy_empty_sqlite_schema

    fresh_file = copy_empty_sqlite_schema(database_url)
    settings = Settings.from_env({"DATABASE_URL": database_url})
    config = build_db_config(settings)
    engine = config.get_engine()
    if not fresh_file:
        async with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                await connection.run_sync(_empty_schema)
            else:
                await connection.run_sync(Base.metadata.drop_all)
                await connection.run_sync(Base.metadata.create_all)
    yield engine
    await engine.dispose()


def _empty_schema(connection: Any) -> None:
    """Every model's table present (created if missing) and empty. DELETE, children first: on a
    few rows it costs ~6 ms where TRUNCATE (new files for every table, fsynced at commit) cost
    ~70 ms a test, and DROP and CREATE of every table cost seconds of catalog work. (No table has
    an identity column to restart.)"""
    from app.store.models import Base

    Base.metadata.create_all(connection)  # checkfirst: only the missing ones
    for table in reversed(Base.metadata.sorted_tables):
        connection.execute(table.delete())


@pytest.fixture
def session_maker(engine: AsyncEngine) -> async_sessionmaker[Any]:
    from sqlalchemy.ext.asyncio import async_sessionmaker

    return async_sessionmaker(engine, expire_on_commit=False)


@pytest.fixture
def live_server_factory(tmp_path: Path) -> Iterator[Any]:
    """Start granian processes with given environment; all are stopped at the end of the test."""
    from tests.support.servers import start_live_server, stop_all

    servers: list[LiveServer] = []

    def start(
        env: dict[str, str] | None = None,
        *,
        migrate: bool = True,
        via_cli: bool = False,
        ready_seconds: float = 90,
        measured: bool = True,
    ) -> LiveServer:
        server = start_live_server(
            tmp_path, env or {}, migrate=migrate, via_cli=via_cli, ready_seconds=ready_seconds, measured=measured
        )
        servers.append(server)
        return server

    yield start
    stop_all(servers)


# ---- fakes of the services TaskPilot calls (one fixture each) -------------------------------------


@pytest.fixture
def fake_model() -> Iterator[Callable[..., FakeModelServer]]:
    """`fake_model(script, **options)`: an OpenAI-compatible model server on a loopback port that
    answers with `script` (tests/support/fake_model_server.py); every one started is closed."""
    from tests.support.fake_model_server import FakeModelServer

    servers: list[FakeModelServer] = []

    def start(script: list[Any], **options: Any) -> FakeModelServer:
        servers.append(FakeModelServer(script, **options))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """OpenAI's ChatKit sessions API on a loopback port, knowing the key `tests.support.hosted.API_KEY`."""
    from tests.support.fake_openai import FakeOpenAI
    from tests.support.hosted import API_KEY

    fake = FakeOpenAI(API_KEY)
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def live_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerPool]:
    """Servers shared by every test of this process, one per environment (`live_servers.get(env)`).
    Tests on them sign in as `unique_user()`s, so nothing one test writes is seen by another."""
    from tests.support.servers import ServerPool

    pool = ServerPool(tmp_path_factory.mktemp("shared-servers"))
    yield pool
    pool.close()


@pytest.fixture(scope="session", autouse=True)
def migrated_databases() -> Iterator[None]:
    """The migrated SQLite file and PostgreSQL template that server starts copy; removed at the end."""
    yield
    # Either module not imported: nothing of it was used in this process.
    if (servers := sys.modules.get("tests.support.servers")) is not None:
        servers.MIGRATED.close()
    if (template := sys.modules.get("tests.support.server_template")) is not None:
        # After every server it forked was stopped (function and session fixtures end before this one).
        template.TEMPLATE.close()


__all__ = ["auth_headers", "make_settings", "token_for"]


@pytest.fixture(scope="session", autouse=True)
def statement_audit() -> Iterator[None]:
    """`TASKPILOT_AUDIT_STATEMENTS=1 pytest tests/test_x.py`: audit every statement those tests send
    in this process (tests/support/statement_audit.py) and print the ones without a user_id pin at the end.
    Off by default: the audit of record is tests/integration/test_statement_audit.py; this widens it on demand.
    The tests' own checks (counts over a whole table, back-dating rows) show up too: they are not
    the app's statements."""
    if os.environ.get("TASKPILOT_AUDIT_STATEMENTS", "") not in {"1", "true", "yes"}:
        yield
        return
    from tests.support.statement_audit import recording

    with recording() as log:
        yield
    offenders = log.offenders()
    print(f"\nstatement audit: {len(log.verdicts)} statements, {len(offenders)} without a user_id pin")
    for offender in offenders:
        print(offender)


# ---- the ChatKit contract, suite-wide (tests/support/contract.py) -----------------------------------------

OFF_SPEC_MARK = "chatkit_off_spec_requests"


LAYERS = ("unit", "integration", "live", "browser", "load")


def pytest_configure(config: pytest.Config) -> None:
    contract.install()


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by these markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each test gets its layer's marker from its folder, and `sqlite` when it runs on SQLite (the
    PostgreSQL parameters carry `postgres` already)."""
    root = Path(__file__).parent
    for item in items:
        layer = item.path.relative_to(root).parts[0]
        if layer not in LAYERS:
            raise pytest.UsageError(f"{item.nodeid}: tests live in one of {', '.join(LAYERS)} (tests/<layer>/)")
        item.add_marker(getattr(pytest.mark, layer))
        params = getattr(getattr(item, "callspec", None), "params", {})
        if any(isinstance(value, str) and value.startswith("sqlite") for value in params.values()):
            item.add_marker(pytest.mark.sqlite)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under xdist (`make test`: -n auto) a worker takes a whole file at a time, so a module's
    fixtures and the servers its tests share start once; the load layer is one unit, so its tests,
    which measure the machine, never run at the same time as each other."""
    from xdist.scheduler import LoadScopeScheduling

    class FilesAndTheLoadLayer(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "tests/load" if path.startswith("tests/load/") else path

    return FilesAndTheLoadLayer(config, log)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """An xdist worker hands its contract tally to the controller, which prints the whole run's."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["chatkit_contract"] = {
            "counts": dict(contract.TALLY.counts),
            "violations": list(contract.TALLY.violations),
        }


def pytest_testnodedown(node: Any, error: Any) -> None:
    tally = getattr(node, "workeroutput", {}).get("chatkit_contract")
    if tally:
        contract.TALLY.counts.update(tally["counts"])
        contract.TALLY.violations.extend(tally["violations"])


@pytest.fixture(autouse=True)
def chatkit_contract(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails the test when one of its /chatkit exchanges broke the spec, even if the test caught the
    `ContractViolation` raised where it was seen."""
    contract.TALLY.off_spec = request.node.get_closest_marker(OFF_SPEC_MARK) is not None
    before = len(contract.TALLY.violations)
    yield
    contract.TALLY.off_spec = False
    found = contract.TALLY.violations[before:]
    assert not found, "/chatkit exchanges that break openapi/openapi.json:\n" + "\n".join(found)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    counts = contract.TALLY.counts
    if not counts:
        return
    terminalreporter.section("ChatKit contract (openapi/openapi.json, jsonschema Draft 2020-12)")
    for what in sorted(counts):
        terminalreporter.write_line(f"{counts[what]:>8}  {what}")
    if contract.TALLY.violations:
        terminalreporter.write_line(f"{len(contract.TALLY.violations):>8}  VIOLATIONS")

"""The `taskpilot` command: serve, db (upgrade, check, distribute, ...), openapi, token, cleanup, feedback, usage."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from app import __version__
from app.ops import startup
from app.ops.serving import granian_argv
from app.settings import Settings, SettingsError

DEV_TOKEN_TTL = 24 * 3600
# A token minted from the production secret: long enough for a smoke test, short if it leaks.
JWT_TOKEN_TTL = 3600

# Relative to the working directory: the checked-in spec when run from a clone (as `make openapi` does).
OPENAPI_PATH = Path("openapi") / "openapi.json"


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        print(f"taskpilot: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings()
    workers = settings.workers
    if settings.is_sqlite and workers > 1:
        print(
            f"taskpilot: WORKERS={workers} ignored: the SQLite file database serves one worker; "
            "use DATABASE_URL=postgresql+asyncpg://... to run several",
            file=sys.stderr,
        )
        workers = 1
    host = args.host or settings.host
    try:
        settings.check_dev_auth_host(host)
    except SettingsError as exc:
        print(f"taskpilot: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.migrate:
        try:
            _alembic(settings).upgrade("head")
        except _database_errors() as exc:
            print(database_failure(settings, exc), file=sys.stderr)
            return 1
    port = args.port if args.port is not None else settings.port
    argv = granian_argv(
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level,
        header_read_timeout_seconds=settings.http_header_read_timeout_seconds,
        shutdown_grace_seconds=settings.shutdown_grace_seconds,
    )
    try:
        metrics_dir, private_metrics = startup.metrics_dir_for(settings, workers)
    except OSError as exc:
        print(
            f"taskpilot: configuration error: PROMETHEUS_MULTIPROC_DIR={settings.prometheus_multiproc_dir!r} cannot "
            f"be used: {exc.strerror or exc}; accepts a directory this user may create and write",
            file=sys.stderr,
        )
        return 2
    startup.log_startup(
        startup.startup_fields(
            settings, host=host, port=port, workers=workers, metrics_dir=metrics_dir, private_metrics=private_metrics
        )
    )
    if metrics_dir:
        if private_metrics:
            startup.remove_when_server_exits(metrics_dir)
        # Also when it came from .env: prometheus-client in the workers reads the process environment.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    os.execv(sys.executable, argv)  # noqa: S606 - replaces this process with the server


def _alembic(settings: Settings):  # type: ignore[no-untyped-def]
    from advanced_alchemy.alembic.commands import AlembicCommands

    from app.store.db import build_db_config

    return AlembicCommands(sqlalchemy_config=build_db_config(settings))


def database_failure(settings: Settings, exc: BaseException) -> str:
    """One line naming DATABASE_URL (never its password) and why the database could not be used."""
    from sqlalchemy.engine import make_url

    cause = exc
    while True:
        inner = getattr(cause, "orig", None) or cause.__cause__
        if not isinstance(inner, BaseException) or inner is cause:
            break
        cause = inner
    url = make_url(settings.database_url)
    message = next((line.strip() for line in str(cause).splitlines() if line.strip()), "")
    if url.password:
        message = message.replace(str(url.password), "***")
    reason = f"{type(cause).__name__}: {message}" if message else type(cause).__name__
    from app.store.connections import STATEMENT_CACHE_HINT, statement_cache_unsupported

    if statement_cache_unsupported(exc):
        reason = f"{type(cause).__name__}: {STATEMENT_CACHE_HINT}"
    return (
        f"taskpilot: the database at DATABASE_URL={url.render_as_string(hide_password=True)} cannot be used: {reason}"
    )


def _database_errors() -> tuple[type[BaseException], ...]:
    import sqlite3

    import asyncpg
    from sqlalchemy.exc import SQLAlchemyError

    # asyncpg raises its own errors (a missing database is InvalidCatalogNameError) unwrapped on connect.
    return (SQLAlchemyError, OSError, sqlite3.Error, asyncpg.PostgresError, asyncpg.InterfaceError)


def cmd_db(args: argparse.Namespace) -> int:
    settings = _settings()
    try:
        return _run_db_command(args, settings)
    except _database_errors() as exc:
        print(database_failure(settings, exc), file=sys.stderr)
        return 1


def _run_db_command(args: argparse.Namespace, settings: Settings) -> int:
    commands = _alembic(settings)
    if args.db_command == "upgrade":
        commands.upgrade(args.revision)
    elif args.db_command == "downgrade":
        return _downgrade(commands, settings, args.revision, confirmed=args.yes)
    elif args.db_command == "check":
        from alembic.util.exc import AutogenerateDiffsDetected

        try:
            commands.check()
        except AutogenerateDiffsDetected as exc:
            print(f"taskpilot: models and migrations disagree: {exc}", file=sys.stderr)
            print("taskpilot: run `make migration m='...'`, review it, and commit it", file=sys.stderr)
            return 1
        print("models and migrations agree")
    elif args.db_command == "current":
        commands.current(verbose=True)
    elif args.db_command == "revision":
        commands.revision(message=args.message, autogenerate=True)
    elif args.db_command == "distribute":
        return asyncio.run(_distribute(settings))
    return 0


def _downgrade(commands: Any, settings: Settings, target: str, *, confirmed: bool) -> int:
    """Say what a downgrade undoes, refuse it when it reaches base or runs in production without
    `--yes`, then run it. Alembic's `downgrade -1` on a one-revision history drops every table."""
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError

    script = ScriptDirectory.from_config(commands.config)
    current, tables = asyncio.run(_applied(settings))
    try:
        # The steps Alembic's own `downgrade` computes (a private helper, so the preview is exactly
        # what runs, relative targets such as -2 included).
        steps = script._downgrade_revs(target, current)  # type: ignore[arg-type]  # it takes the heads tuple too
    except CommandError as exc:
        print(f"taskpilot: cannot downgrade to {target!r}: {exc}", file=sys.stderr)
        return 2
    reaches_base = target == "base" or any(not step.to_revisions for step in steps)
    if not steps:
        print(f"taskpilot: the database is already at {target} ({', '.join(current) or 'base'}): nothing to undo")
    else:
        print(f"taskpilot: downgrading to {target} undoes {len(steps)} migration(s), newest first:")
        for step in steps:
            print(f"  {step.revision.revision}  {step.revision.doc}")
        if reaches_base:
            print(f"and drops every table: {', '.join(tables)} (and every row in them)")
    reasons = []
    if reaches_base:
        reasons.append("it reaches base and drops every table")
    if settings.is_production:
        reasons.append("APP_ENV=production")
    if reasons and not confirmed:
        print(
            f"taskpilot: refused ({'; '.join(reasons)}): back up the database, then run it again with --yes",
            file=sys.stderr,
        )
        return 1
    if steps:
        commands.downgrade(target)
        print(f"taskpilot: downgraded to {target}")
    return 0


async def _applied(settings: Settings) -> tuple[tuple[str, ...], list[str]]:
    """The revisions applied to the database and its tables (without Alembic's own)."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import inspect

    from app.store.db import build_db_config

    engine = build_db_config(settings).get_engine()
    try:
        async with engine.connect() as connection:
            current = await connection.run_sync(lambda sync: MigrationContext.configure(sync).get_current_heads())
            tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    finally:
        await engine.dispose()
    return tuple(current), sorted(name for name in tables if name != "alembic_version")


async def _distribute(settings: Settings) -> int:
    from app.store.db import build_db_config
    from app.store.distribution import distribute

    engine = build_db_config(settings).get_engine()
    try:
        report = await distribute(engine)
    finally:
        await engine.dispose()
    print(f"taskpilot: {report.message}")
    return 0


def render_openapi() -> str:
    from app.asgi import create_app

    app = create_app(Settings.from_env({}))
    schema = app.openapi_schema.to_schema()
    return json.dumps(schema, indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def cmd_openapi(args: argparse.Namespace) -> int:
    document = render_openapi()
    output = Path(args.output)
    if args.check:
        current = output.read_text() if output.exists() else ""
        if current != document:
            print(f"taskpilot: {output} is stale; run `make openapi` and commit it", file=sys.stderr)
            return 1
        print(f"{output} is up to date")
        return 0
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(document)
    print(f"wrote {output}")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from app.core.errors import AuthError
    from app.http.auth import mint_token

    settings = _settings()
    ttl = args.ttl if args.ttl is not None else (DEV_TOKEN_TTL if settings.auth_mode == "dev" else JWT_TOKEN_TTL)
    if not 1 <= ttl <= 366 * 24 * 3600:
        print("taskpilot: --ttl accepts 1 to 31622400 seconds", file=sys.stderr)
        return 2
    try:
        print(mint_token(settings, args.user, ttl_seconds=ttl))
    except AuthError as exc:
        print(f"taskpilot: {exc.reason}", file=sys.stderr)
        return 2
    return 0


def cmd_cleanup(args: argparse.Namespace) -> int:
    from app.services.maintenance import run_cleanup

    settings = _settings()
    report = asyncio.run(run_cleanup(settings))
    print(json.dumps(report))
    return 0


def cmd_feedback(args: argparse.Namespace) -> int:
    import datetime as dt

    from app.services.feedback import FeedbackExport, export_feedback

    since = None
    if args.since:
        try:
            since = dt.datetime.fromisoformat(args.since)
        except ValueError:
            print(f"taskpilot: --since must be an ISO date or time (2026-11-01), not {args.since!r}", file=sys.stderr)
            return 2
        since = since if since.tzinfo else since.replace(tzinfo=dt.UTC)
    options = FeedbackExport(format=args.format, include_text=args.include_text, since=since)
    return _write_export(args.output, "feedback", lambda sessions, out: export_feedback(sessions, out, options))


def cmd_usage(args: argparse.Namespace) -> int:
    import datetime as dt

    from app.services.usage import UsageExport, export_usage

    since = None
    if args.since:
        try:
            since = dt.date.fromisoformat(args.since)
        except ValueError:
            print(f"taskpilot: --since must be a date (YYYY-MM-DD, UTC), not {args.since!r}", file=sys.stderr)
            return 2
    options = UsageExport(format=args.format, include_user=args.include_user, since=since)
    return _write_export(args.output, "usage", lambda sessions, out: export_usage(sessions, out, options))


def _write_export(output: str | None, noun: str, export: Callable[[Any, Any], Awaitable[int]]) -> int:
    """Run an export (`export(session_maker, out)`) to stdout or `output`; the exit status."""
    from app.store.db import build_db_config

    settings = _settings()
    config = build_db_config(settings)

    async def run(out: Any) -> int:
        try:
            return await export(config.create_session_maker(), out)
        finally:
            await config.get_engine().dispose()

    try:
        if output in (None, "-"):
            count = asyncio.run(run(sys.stdout))
        else:
            with open(output, "w", encoding="utf-8", newline="") as out:
                count = asyncio.run(run(out))
    except _database_errors() as exc:
        print(database_failure(settings, exc), file=sys.stderr)
        return 1
    print(f"taskpilot: exported {count} {noun} row{'s' if count != 1 else ''}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="taskpilot", description="TaskPilot: a ChatKit backend")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve with granian (ASGI)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--migrate", action="store_true", help="apply migrations first")
    serve.set_defaults(func=cmd_serve)

    db = sub.add_parser("db", help="database migrations")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    up = db_sub.add_parser("upgrade", help="apply migrations")
    up.add_argument("revision", nargs="?", default="head")
    down = db_sub.add_parser(
        "downgrade",
        help="revert migrations to an explicit revision (prints what it undoes first)",
        description=(
            "Revert migrations down to REVISION, printing the migrations it undoes (and, down to base, "
            "the tables it drops) first. There is no default: name the target. Reaching base (which "
            "drops every table) needs --yes, and so does any downgrade when APP_ENV=production."
        ),
    )
    down.add_argument(
        "revision", help="where to stop: a revision id, a relative step such as -1, or base (drops every table)"
    )
    down.add_argument(
        "--yes",
        action="store_true",
        help="confirm a downgrade that reaches base, or any downgrade with APP_ENV=production",
    )
    db_sub.add_parser("check", help="fail when the models and the migrations disagree")
    db_sub.add_parser("current", help="show the applied revision")
    db_sub.add_parser(
        "distribute",
        help="on Citus, distribute the user tables by user_id (co-located with chat_threads); else do nothing",
    )
    rev = db_sub.add_parser("revision", help="autogenerate a migration from the models")
    rev.add_argument("-m", "--message", required=True)
    db.set_defaults(func=cmd_db)

    openapi = sub.add_parser("openapi", help="write (or --check) the OpenAPI document")
    openapi.add_argument("--output", default=str(OPENAPI_PATH))
    openapi.add_argument("--check", action="store_true")
    openapi.set_defaults(func=cmd_openapi)

    token = sub.add_parser(
        "token",
        help="print a bearer token: a development token (AUTH_MODE=dev), or one signed with AUTH_JWT_SECRET",
        description=(
            "Print a bearer token this server accepts, for scripts and smoke tests. With AUTH_MODE=dev, a "
            "development token. With AUTH_MODE=jwt (APP_ENV=production), an HS256 token signed with AUTH_JWT_SECRET "
            "carrying sub, iat and exp, plus iss and aud when AUTH_ISSUER and AUTH_AUDIENCE are set. Tokens for "
            "AUTH_JWKS_URL's keys come from the identity provider."
        ),
    )
    token.add_argument("--user", required=True, help="the user id (the token's sub claim)")
    token.add_argument(
        "--ttl",
        type=int,
        help=f"seconds the token stays valid (default: {DEV_TOKEN_TTL} for a development token, else {JWT_TOKEN_TTL})",
    )
    token.set_defaults(func=cmd_token)

    cleanup = sub.add_parser("cleanup", help="delete expired threads and abandoned uploads")
    cleanup.set_defaults(func=cmd_cleanup)

    feedback = sub.add_parser("feedback", help="what users said about the assistant's answers")
    feedback_sub = feedback.add_subparsers(dest="feedback_command", required=True)
    export = feedback_sub.add_parser(
        "export", help="write every feedback row (thread id, item id, kind, time) as CSV or JSON Lines"
    )
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    export.add_argument("--output", "-o", help="a file to write (default: standard output)")
    export.add_argument("--since", help="only feedback given or changed at or after this ISO date or time (UTC)")
    export.add_argument(
        "--include-text",
        action="store_true",
        help="also export the text of each judged message (personal data: off unless asked for)",
    )
    export.set_defaults(func=cmd_feedback)

    usage = sub.add_parser("usage", help="model tokens spent per user per day, for billing")
    usage_sub = usage.add_subparsers(dest="usage_command", required=True)
    usage_export = usage_sub.add_parser(
        "export",
        help=(
            "write the tokens of every user, UTC day and model (input, cached input, output, reasoning, turns, "
            "transcription seconds)"
        ),
        description=(
            "Write one row per user, UTC day and model: input, cached input, output and reasoning tokens, "
            "turns, and the seconds of dictated audio (models billed by duration, such as whisper-1; "
            "dictations are no turns). The user is a SHA-256 pseudonym unless --include-user. CSV cells a "
            "spreadsheet would run as a formula are prefixed with a single quote."
        ),
    )
    usage_export.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    usage_export.add_argument("--output", "-o", help="a file to write (default: standard output)")
    usage_export.add_argument("--since", help="only days on or after this date (YYYY-MM-DD, UTC)")
    usage_export.add_argument(
        "--include-user",
        action="store_true",
        help="export user ids as they are instead of their SHA-256 pseudonyms (personal data: off unless asked for)",
    )
    usage_export.set_defaults(func=cmd_usage)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())

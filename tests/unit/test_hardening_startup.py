"""Issue 15, part A: start-up refuses what would be unsafe or unreadable, in one line."""

from __future__ import annotations

import pytest

from app.settings import Settings, SettingsError
from tests.support.servers import run_cli


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "tasks.example.com"])
def test_dev_auth_on_a_network_host_is_refused_naming_the_setting(host: str) -> None:
    with pytest.raises(SettingsError, match="AUTH_DEV_ALLOW_NETWORK") as refused:
        Settings.from_env({"HOST": host})
    assert "\n" not in str(refused.value)
    assert Settings.from_env({"HOST": host, "AUTH_DEV_ALLOW_NETWORK": "true"}).auth_dev_allow_network
    jwt = {"HOST": host, "AUTH_MODE": "jwt", "AUTH_JWT_SECRET": "s" * 32}
    assert Settings.from_env(jwt).host == host  # real tokens may be served anywhere


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_dev_auth_on_loopback_needs_no_setting(host: str) -> None:
    assert Settings.from_env({"HOST": host}).auth_mode == "dev"


@pytest.mark.parametrize(
    ("env", "args"),
    [({"HOST": "0.0.0.0"}, ["serve"]), ({}, ["serve", "--host", "0.0.0.0"])],
    ids=["HOST", "--host"],
)
def test_serve_with_dev_auth_on_a_network_host_exits_with_one_line(env: dict[str, str], args: list[str]) -> None:
    result = run_cli(args, {"APP_ENV": "development", "AUTH_MODE": "dev", **env}, check=False)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "AUTH_DEV_ALLOW_NETWORK" in lines[0], result.stderr


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg://postgres:hunter2secret@127.0.0.1:1/taskpilot",  # nothing listens
        "postgresql+asyncpg://postgres:hunter2secret@127.0.0.1:5432/taskpilot_no_such_database_15a",
    ],
    ids=["down", "missing"],
)
def test_db_upgrade_against_an_unusable_postgres_prints_one_line(url: str) -> None:
    result = run_cli(["db", "upgrade"], {"DATABASE_URL": url}, check=False)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "DATABASE_URL=" in lines[0] and "hunter2secret" not in lines[0], lines[0]
    assert "Traceback" not in result.stderr

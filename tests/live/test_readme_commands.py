"""The shell examples of README.md and the documentation site (docs/) run as a newcomer pastes them
(issue 26, item 5; issue 33 moved most of them from README.md into docs/).

The marker: an HTML comment `<!-- runnable: <name> -->` on the line right before a ```sh fence
(invisible on GitHub and in the built site); a shell block that is not run says
`<!-- illustrative: why -->` instead (tests/unit/test_docs_site.py keeps every one marked). Each
runnable block is run with bash from the repository's root, where `make install` left `.venv/`
(the blocks call `.venv/bin/taskpilot`), against a live server started the way `make run` starts
it (`taskpilot serve`; the hosted block starts its own through `make run`). The only edit made to
a block is the port: `localhost:8000` / `127.0.0.1:8000` (and the hosted block's fake at 8765)
become the free ports this test picked. `CHECKS` holds what each block must visibly do (a task
exists, a 401, a health field); a marked block without a check, or a check whose block is gone,
fails the first test.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import signal
import subprocess
import time
import zoneinfo
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from testkit.processes import PROJECT_ROOT, child_environment, free_port

from tests.support.auth import server_token
from tests.support.servers import LiveServer, start_live_server

README = PROJECT_ROOT / "README.md"
DOCS = PROJECT_ROOT / "docs"
RUNNABLE = re.compile(r"^<!-- runnable: (?P<name>[a-z0-9-]+) -->\n```(?:sh|bash)\n(?P<code>.*?)^```$", re.S | re.M)
DOC_PORTS = {"server": 8000, "fake": 8765}


def documents() -> list[Path]:
    """README.md and every page of the documentation site."""
    return [README, *sorted(DOCS.rglob("*.md"))]


def runnable_blocks() -> dict[str, str]:
    blocks: dict[str, str] = {}
    for document in documents():
        for match in RUNNABLE.finditer(document.read_text()):
            assert match["name"] not in blocks, f"two blocks are named {match['name']} (the second in {document.name})"
            blocks[match["name"]] = match["code"]
    return blocks


def on_ports(code: str, ports: dict[str, int]) -> str:
    """The block with the documents' ports replaced by this test's (the only edit made to it)."""
    code = re.sub(rf"\b(?:localhost|127\.0\.0\.1):{DOC_PORTS['server']}\b", f"127.0.0.1:{ports['server']}", code)
    if "fake" in ports:
        code = re.sub(rf"\b{DOC_PORTS['fake']}\b", str(ports["fake"]), code)
    return code


def newcomer_env(server: LiveServer) -> dict[str, str]:
    """The server's settings (database, port), as the newcomer's shell that ran `make run` has them."""
    return {**server.env, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def bash(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    assert (PROJECT_ROOT / ".venv" / "bin" / "taskpilot").exists(), "run `make install` first: the documents assume it"
    assert shutil.which("curl", path=env.get("PATH")), "the documented commands use curl: install it (.ci/run does)"
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", code],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def tasks_of(base_url: str, user: str, env: dict[str, str]) -> list[dict[str, Any]]:
    # Minted in-process (the blocks themselves run `taskpilot token`): the same secret as the server's.
    response = httpx.get(f"{base_url}/api/tasks", headers={"Authorization": f"Bearer {server_token(env, user)}"})
    response.raise_for_status()
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def tomorrow_in(zone: str) -> str:
    return (dt.datetime.now(zoneinfo.ZoneInfo(zone)).date() + dt.timedelta(days=1)).isoformat()


# ---- the checks, one per marked block ------------------------------------------------------------


# Each block gets a server of its own, started as `make run` does (`taskpilot serve`): the blocks are
# the documents', signed in as their `alice`, and their checks read her whole task list.


def check_quick_start(tmp_path: Path) -> None:
    server = start_live_server(tmp_path, {}, via_cli=True)
    try:
        env = newcomer_env(server)
        ran = bash(on_ports(runnable_blocks()["quick-start"], {"server": int(server.env["PORT"])}), env)
        assert ran.returncode == 0, ran.stderr
        lines = ran.stdout.splitlines()
        assert '"status":"ok"' in lines[0], lines[0]  # /health
        assert lines[1] == "401", lines[1]  # /api/tasks without a token
        assert '"items":[]' in lines[2], lines[2]
        # The chat request as ChatKit's component sends it: a task, never a pending client tool call.
        assert "client_tool_call" not in ran.stdout and "Buy milk" in ran.stdout
        assert "Dates are in UTC, this server's default time zone" in ran.stdout  # the reply says which zone
        tasks = tasks_of(server.base_url, "alice", env)
        assert [(t["title"], t["due_date"]) for t in tasks] == [("Buy milk", tomorrow_in("UTC"))]
        assert '"title":"Buy milk"' in lines[-1]
    finally:
        server.stop()


def check_client_tools(tmp_path: Path) -> None:
    server = start_live_server(tmp_path, {}, via_cli=True)
    try:
        env = newcomer_env(server)
        ran = bash(on_ports(runnable_blocks()["client-tools"], {"server": int(server.env["PORT"])}), env)
        assert ran.returncode == 0, ran.stderr
        lines = ran.stdout.splitlines()
        assert lines[0] == '"name":"get_time_zone"', lines[0]  # asked, then resumed with the answer
        karachi_tomorrow = tomorrow_in("Asia/Karachi")
        assert "Buy bread" in ran.stdout and karachi_tomorrow in ran.stdout
        tasks = tasks_of(server.base_url, "alice", env)
        assert [(t["title"], t["due_date"]) for t in tasks] == [("Buy bread", karachi_tomorrow)]
    finally:
        server.stop()


def check_hosted_fake(tmp_path: Path) -> None:
    # `make run` would reinstall the venv when its stamp is older than the requirements: not a
    # test's business (and it needs the network). The newcomer ran `make install` just before.
    stale = subprocess.run(["make", "-q", ".venv/.installed-stamp"], cwd=PROJECT_ROOT, check=False)
    if stale.returncode != 0:
        pytest.skip(".venv is older than the requirements: run `make install`")
    ports = {"server": free_port(), "fake": free_port()}
    env = {
        **child_environment(),
        "APP_ENV": "development",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/hosted.db",
        "ATTACHMENT_STORAGE_URL": str(tmp_path / "blobs"),
        "HOST": "127.0.0.1",
        "PORT": str(ports["server"]),
    }
    log = (tmp_path / "hosted.log").open("wb")
    # Its own process group: the fake (backgrounded by the block), make, and the server it starts.
    shell = subprocess.Popen(
        ["bash", "-c", on_ports(runnable_blocks()["hosted-fake"], ports)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base_url = f"http://127.0.0.1:{ports['server']}"
    try:
        health = wait_for_health(base_url, shell, tmp_path / "hosted.log")
        assert health["chatkit_ready"] is True, health
        token = server_token(env, "alice")
        minted = httpx.post(f"{base_url}/api/chatkit/sessions", headers={"Authorization": f"Bearer {token}"})
        assert minted.status_code == 200, minted.text
        assert minted.json()["client_secret"] and minted.json()["status"] == "success"
    finally:
        os.killpg(shell.pid, signal.SIGTERM)
        try:
            shell.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(shell.pid, signal.SIGKILL)
            shell.wait(timeout=5)
        log.close()


def wait_for_health(base_url: str, process: subprocess.Popen[bytes], log: Path) -> dict[str, Any]:
    """GET /api/chatkit/health once the server answers (migrating and starting take a while)."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the block exited ({process.returncode}):\n{log.read_text()}"
        try:
            response = httpx.get(f"{base_url}/api/chatkit/health", timeout=2)
            if response.status_code == 200:
                body: dict[str, Any] = response.json()
                return body
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the server never answered:\n{log.read_text()}")


def check_production_smoke(tmp_path: Path) -> None:
    # Production on one machine, as docs/production.md's Deploy step 5 starts it (SQLite allowed).
    production = {
        "APP_ENV": "production",
        "AUTH_JWT_SECRET": "readme-production-secret-0123456789abcdef",
        "ALLOW_SQLITE_IN_PRODUCTION": "true",
    }
    server = start_live_server(tmp_path, production, via_cli=True)
    try:
        ran = bash(
            on_ports(runnable_blocks()["production-smoke"], {"server": int(server.env["PORT"])}), newcomer_env(server)
        )
        assert ran.returncode == 0, ran.stderr
        lines = ran.stdout.splitlines()
        assert lines[:2] == ["200", "401"], lines  # HEAD /, a token that is not a JWT
        assert '"items":[]' in lines[2], lines[2]  # the minted token is accepted
        assert '"taskpilot.startup"' in server.log() and '"app_env": "production"' in server.log()
    finally:
        server.stop()


CHECKS: dict[str, Callable[[Path], None]] = {
    "quick-start": check_quick_start,
    "client-tools": check_client_tools,
    "hosted-fake": check_hosted_fake,
    "production-smoke": check_production_smoke,
}


def test_every_runnable_block_has_a_check_and_the_quick_start_is_one() -> None:
    assert set(runnable_blocks()) == set(CHECKS)
    assert "threads.create" in runnable_blocks()["quick-start"]
    assert on_ports("curl localhost:8000/x http://127.0.0.1:8000/y :80001", {"server": 5}) == (
        "curl 127.0.0.1:5/x http://127.0.0.1:5/y :80001"
    )


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_a_runnable_readme_block_does_what_the_readme_says(name: str, tmp_path: Path) -> None:
    CHECKS[name](tmp_path)

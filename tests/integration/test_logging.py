"""What the JSON log carries: the openai client's per-request lines stay out of it at INFO, and the
chatkit library's records come out as our JSON lines only."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from testkit.processes import PROJECT_ROOT, child_environment

from app.ops.logging import configure_logging
from app.settings import Settings


@pytest.mark.parametrize("library", ["httpx2", "httpcore2.connection", "httpx", "openai"])
def test_http_clients_do_not_log_every_request_at_info(library: str) -> None:
    # openai 3.x logs an "HTTP Request: POST ..." line per call through httpx2 (two per turn).
    configure_logging(Settings.from_env({"LOG_LEVEL": "info"}))
    assert not logging.getLogger(library).isEnabledFor(logging.INFO)
    assert logging.getLogger(library).isEnabledFor(logging.WARNING)


def test_a_chatkit_library_record_is_one_json_line_and_nothing_else(tmp_path: Path) -> None:
    # chatkit/logger.py reads LOG_LEVEL when it is first imported and then adds its own plain-text
    # handler: only a fresh process with LOG_LEVEL set shows it (this one imported chatkit already).
    script = (
        "import logging, os\n"
        "from app.asgi import create_app\n"
        "from app.settings import Settings\n"
        "create_app(Settings.from_env(os.environ))\n"
        "logging.getLogger('chatkit').warning('said by the chatkit library')\n"
    )
    env = {
        **child_environment(),
        "LOG_LEVEL": "info",
        "APP_ENV": "development",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/log.db",
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in (done.stdout + done.stderr).splitlines() if "said by the chatkit library" in line]
    assert len(lines) == 1, lines
    record = json.loads(lines[0])
    assert (record["logger"], record["level"], record["msg"]) == ("chatkit", "warning", "said by the chatkit library")

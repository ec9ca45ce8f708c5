"""The chatkit library's records come out of a real process as our JSON lines only (its own
process: logging is configured once per process).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from testkit.processes import PROJECT_ROOT, child_environment


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

"""The tests' server template (tests/support/server_template.py): a forked server is a server of its own.

Its environment is the test's alone, it runs in a session of its own, its exit status reaches the
test as a subprocess's would, and an environment the template's imports would have read differently
gets a fresh process.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from testkit.processes import child_pids

from tests.support.server_template import TemplateChild
from tests.support.servers import SERVER_TEMPLATE_ON, LiveServer


def test_forked_servers_have_their_own_environment_session_and_exit_status(live_server_factory: Any) -> None:
    if not SERVER_TEMPLATE_ON:
        pytest.skip("TEST_SERVER_TEMPLATE=0: every server is a fresh process")
    one: LiveServer = live_server_factory({"ATTACHMENT_MAX_BYTES": "111111"})
    two: LiveServer = live_server_factory({"WORKERS": "2", "ATTACHMENT_MAX_BYTES": "222222"})
    assert isinstance(one.process, TemplateChild) and isinstance(two.process, TemplateChild)
    for server in (one, two):
        assert httpx.get(f"{server.base_url}/health", timeout=10).status_code == 200
        pid = server.process.pid
        workers = child_pids(pid)
        assert len(workers) == int(server.env.get("WORKERS", "1"))
        # Each built its app from its own environment (/proc/<pid>/environ would show the template's:
        # it is the block the process was exec'd with, not os.environ).
        health = httpx.get(f"{server.base_url}/api/chatkit/health", timeout=10).json()
        assert health["self_hosted"]["attachments"]["max_bytes"] == int(server.env["ATTACHMENT_MAX_BYTES"])
    # Its own session and process group, as `start_new_session=True` gave a subprocess.
    assert os.getsid(one.process.pid) == os.getpgid(one.process.pid) == one.process.pid
    assert one.stop() == 0  # SIGTERM: drained and ended as granian ends
    assert "Granian shutdown completed" in one.log()
    assert one.process.poll() == 0
    two.process.send_signal(signal.SIGKILL)
    assert two.process.wait(timeout=10) == -signal.SIGKILL
    two.stop()


def test_an_environment_read_while_importing_gets_a_fresh_process(live_server_factory: Any, tmp_path: Path) -> None:
    # prometheus-client chooses its value class from PROMETHEUS_MULTIPROC_DIR when it is imported
    # (granian started directly does not create the directory, as `taskpilot serve` does).
    (tmp_path / "metrics").mkdir()
    server: LiveServer = live_server_factory({"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")})
    assert isinstance(server.process, subprocess.Popen)
    assert httpx.get(f"{server.base_url}/health", timeout=10).status_code == 200
    assert list((tmp_path / "metrics").glob("*.db")), "the worker counts into the shared directory"

"""HAProxy in front of test servers, with the repository's deploy/haproxy.cfg: find the binary
(skipped when it is missing, failed under CI) and start it on a port, balancing two servers."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from testkit.processes import PROJECT_ROOT, answers_ok

from tests.support.servers import LiveServer

HAPROXY_CONFIG = PROJECT_ROOT / "deploy" / "haproxy.cfg"


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if os.path.exists(p)), None
    )
    if found is None:
        reason = "haproxy is not installed (Debian: apt-get install haproxy; .ci/run does)"
        if os.environ.get("CI", "") in {"1", "true", "yes"}:
            pytest.fail(f"{reason} and CI=true", pytrace=False)
        pytest.skip(reason)
    return found


def start_haproxy(binary: str, port: int, one: LiveServer, two: LiveServer, log: Path) -> subprocess.Popen[bytes]:
    """HAProxy with deploy/haproxy.cfg, except that it logs every request (`info`, not `warning`):
    a failed test then shows how each request ended (the termination state, e.g. `SD--`)."""
    config = log.with_name("haproxy.cfg")
    deployed = HAPROXY_CONFIG.read_text()
    assert " local0 warning" in deployed, "deploy/haproxy.cfg's log line changed: update tests/support/haproxy.py"
    config.write_text(deployed.replace(" local0 warning", " local0 info"))
    env = {
        **os.environ,
        "HAPROXY_BIND": f"127.0.0.1:{port}",
        "TASKPILOT_ONE": urlsplit(one.base_url).netloc,
        "TASKPILOT_TWO": urlsplit(two.base_url).netloc,
    }
    checked = subprocess.run([binary, "-c", "-f", str(config)], env=env, capture_output=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    process = subprocess.Popen(
        [binary, "-db", "-f", str(config)], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    if answers_ok(f"http://127.0.0.1:{port}/ready", process, 15):
        return process
    process.terminate()
    raise AssertionError(f"haproxy did not answer in 15 s:\n{log.read_text(errors='replace')}")

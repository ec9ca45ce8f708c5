"""The browser module behind hosted mode (`src/app/static/hosted-session.js`), under Node's own test
runner (`tests/unit/js/hosted_session.test.mjs`): reuse, refresh, sign-out, errors and races with a fake
`fetch` and clock. The browser tests drive the same module through the page and examples/react.
The same run covers every file in tests/unit/js (also `entities.test.mjs`: tagged message content;
`chatkit_options.test.mjs`: the client tool, item actions and composer choices).

Needs Node 20 or newer; without it the test is skipped with the reason, and under CI it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from tests.support.servers import PROJECT_ROOT

JS_TESTS = PROJECT_ROOT / "tests" / "unit" / "js"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def test_hosted_session_module_rules_under_node() -> None:
    node = shutil.which("node")
    if node is None:
        reason = "node is not installed (Node 20 or newer runs tests/unit/js)"
        if IN_CI:
            pytest.fail(f"{reason}; CI must run them", pytrace=False)
        pytest.skip(reason)
    result = subprocess.run(
        [node, "--test", "--test-reporter=tap", str(JS_TESTS)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    passed = re.search(r"^# pass (\d+)$", report, re.M)
    assert passed and int(passed.group(1)) >= 10, report
    assert re.search(r"^# fail 0$", report, re.M), report

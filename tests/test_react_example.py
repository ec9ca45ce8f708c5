"""examples/react without a browser: the README shows its real code, its versions are exact, its
lock file records no download addresses, and it imports the page's hosted-session module instead
of carrying a copy. (tests/test_react_example_browser.py runs the built app.)
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

from tests.support import PROJECT_ROOT

EXAMPLE = PROJECT_ROOT / "examples" / "react"
README = PROJECT_ROOT / "README.md"
SHARED_MODULE = PROJECT_ROOT / "src" / "app" / "static" / "hosted-session.js"
SNIPPET = re.compile(r"<!-- snippet: (?P<path>\S+) (?P<region>\S+) -->\n```(?P<lang>\w*)\n(?P<code>.*?)```", re.S)
EXACT = re.compile(r"^\d+\.\d+\.\d+$")


def source_region(path: Path, region: str) -> str:
    """The lines between `// [region]` and `// [/region]`, dedented."""
    text = path.read_text()
    match = re.search(
        rf"^[ \t]*// \[{re.escape(region)}\]\n(.*?)^[ \t]*// \[/{re.escape(region)}\]\n", text, re.S | re.M
    )
    assert match, f"{path.name} has no // [{region}] ... // [/{region}] region"
    return textwrap.dedent(match.group(1))


def test_readme_shows_both_use_chatkit_configurations_exactly_as_the_example_has_them() -> None:
    snippets = list(SNIPPET.finditer(README.read_text()))
    regions = {(m["path"], m["region"]) for m in snippets}
    assert regions == {
        ("examples/react/src/SelfHostedChat.jsx", "readme:self-hosted"),
        ("examples/react/src/App.jsx", "readme:secrets"),
        ("examples/react/src/HostedChat.jsx", "readme:hosted"),
    }
    for match in snippets:
        expected = source_region(PROJECT_ROOT / match["path"], match["region"])
        assert match["code"] == expected, f"README's copy of {match['path']} {match['region']} is stale"
    code = "".join(m["code"] for m in snippets)
    assert "useChatKit({" in code and 'url: new URL("chatkit", apiBase)' in code and "getClientSecret:" in code


def test_example_pins_exact_versions_and_its_lock_records_no_download_addresses() -> None:
    package = json.loads((EXAMPLE / "package.json").read_text())
    declared = {**package["dependencies"], **package["devDependencies"]}
    assert {"@openai/chatkit-react", "react", "react-dom", "vite"} <= set(declared)
    assert {name: v for name, v in declared.items() if not EXACT.match(v)} == {}, "exact versions only"
    assert set(package["scripts"]) >= {"dev", "build"}

    lock_text = (EXAMPLE / "package-lock.json").read_text()
    assert '"resolved"' not in lock_text, "the lock must not record where packages were downloaded from"
    lock = json.loads(lock_text)
    root = lock["packages"][""]
    assert root["dependencies"] == package["dependencies"] and root["devDependencies"] == package["devDependencies"]
    for name, version in declared.items():
        assert lock["packages"][f"node_modules/{name}"]["version"] == version, name
    assert all("integrity" in entry for key, entry in lock["packages"].items() if key and not entry.get("link"))
    assert "omit-lockfile-registry-resolved=true" in (EXAMPLE / ".npmrc").read_text().splitlines()


def test_example_imports_the_pages_hosted_session_module_rather_than_a_copy() -> None:
    config = (EXAMPLE / "vite.config.js").read_text()
    alias = re.search(r'new URL\("([^"]+)", import\.meta\.url\)', config)
    assert alias and "taskpilot/hosted-session" in config
    assert (EXAMPLE / alias.group(1)).resolve() == SHARED_MODULE.resolve()

    sources = {path.name: path.read_text() for path in (EXAMPLE / "src").iterdir()}
    code = {name: re.sub(r"(?m)^\s*//.*$|\s//\s.*$", "", text) for name, text in sources.items()}
    importers = {name for name, text in sources.items() if 'from "taskpilot/hosted-session"' in text}
    assert importers == {"App.jsx", "HostedChat.jsx"}
    # The rules themselves (the session routes, the refresh body, the expiry) are nowhere else in
    # the example's code (its comments may name the routes).
    for marker in ("/api/chatkit/sessions", "sessions/refresh", "current_client_secret", "expires_at"):
        assert not [name for name, text in code.items() if marker in text], marker
    page_app = (SHARED_MODULE.parent / "app.js").read_text()
    assert 'from "./hosted-session.js"' in page_app


def test_example_ignores_its_build_and_dependencies() -> None:
    ignored = (EXAMPLE / ".gitignore").read_text().split()
    assert {"node_modules/", "dist/"} <= set(ignored)

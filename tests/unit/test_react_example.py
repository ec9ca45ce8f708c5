"""examples/react without a browser: the docs (docs/front-ends.md) show its real code, its versions are exact, its
lock file records no download addresses, it imports the page's shared modules (hosted sessions,
task entities, the self-hosted ChatKit options) instead of carrying copies, and its REST calls go
through the client generated from openapi/openapi.json.
(tests/browser/test_react_example_browser.py runs the built app; .ci/run runs `npm run gen:api -- --check`
and `tsc --noEmit`.)
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

from tests.support.servers import PROJECT_ROOT

EXAMPLE = PROJECT_ROOT / "examples" / "react"
# The page that shows the example's two useChatKit configurations (the regions keep their `readme:` names).
FRONT_ENDS_PAGE = PROJECT_ROOT / "docs" / "front-ends.md"
STATIC_DIR = PROJECT_ROOT / "src" / "app" / "static"
# The page's modules the example imports through Vite aliases (vite.config.js).
SHARED_MODULES = {
    "taskpilot/hosted-session": STATIC_DIR / "hosted-session.js",
    "taskpilot/entities": STATIC_DIR / "entities.js",
    "taskpilot/chatkit-options": STATIC_DIR / "chatkit-options.js",
}
SPEC = PROJECT_ROOT / "openapi" / "openapi.json"
# `npm run gen:api`'s output (openapi-typescript), checked in; .ci/run regenerates and compares it.
GENERATED_SCHEMA = EXAMPLE / "src" / "api" / "schema.d.ts"
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


def test_docs_show_both_use_chatkit_configurations_exactly_as_the_example_has_them() -> None:
    snippets = list(SNIPPET.finditer(FRONT_ENDS_PAGE.read_text()))
    regions = {(m["path"], m["region"]) for m in snippets}
    assert regions == {
        ("examples/react/src/SelfHostedChat.tsx", "readme:self-hosted"),
        ("examples/react/src/App.tsx", "readme:secrets"),
        ("examples/react/src/HostedChat.tsx", "readme:hosted"),
    }
    for match in snippets:
        expected = source_region(PROJECT_ROOT / match["path"], match["region"])
        assert match["code"] == expected, f"docs/front-ends.md's copy of {match['path']} {match['region']} is stale"
    code = "".join(m["code"] for m in snippets)
    assert "useChatKit({" in code and 'url: new URL("chatkit", apiBase)' in code and "getClientSecret:" in code


def test_example_pins_exact_versions_and_its_lock_records_no_download_addresses() -> None:
    package = json.loads((EXAMPLE / "package.json").read_text())
    declared = {**package["dependencies"], **package["devDependencies"]}
    assert {"@openai/chatkit-react", "react", "react-dom", "vite"} <= set(declared)
    assert {"openapi-fetch"} <= set(package["dependencies"])
    assert {"openapi-typescript", "typescript"} <= set(package["devDependencies"])
    assert {name: v for name, v in declared.items() if not EXACT.match(v)} == {}, "exact versions only"
    assert set(package["scripts"]) >= {"dev", "build", "gen:api", "typecheck"}

    lock_text = (EXAMPLE / "package-lock.json").read_text()
    assert '"resolved"' not in lock_text, "the lock must not record where packages were downloaded from"
    lock = json.loads(lock_text)
    root = lock["packages"][""]
    assert root["dependencies"] == package["dependencies"] and root["devDependencies"] == package["devDependencies"]
    for name, version in declared.items():
        assert lock["packages"][f"node_modules/{name}"]["version"] == version, name
    assert all("integrity" in entry for key, entry in lock["packages"].items() if key and not entry.get("link"))
    assert "omit-lockfile-registry-resolved=true" in (EXAMPLE / ".npmrc").read_text().splitlines()


def test_example_imports_the_pages_shared_modules_rather_than_copies() -> None:
    config = (EXAMPLE / "vite.config.js").read_text()
    base = re.search(r"new URL\(`([^`$]+)\$\{name\}`, import\.meta\.url\)", config)
    assert base and (EXAMPLE / base.group(1)).resolve() == STATIC_DIR.resolve()
    aliases = dict(re.findall(r'"(taskpilot/[\w-]+)": pageModule\("([\w.-]+)"\)', config))
    assert aliases == {alias: path.name for alias, path in SHARED_MODULES.items()}

    sources = {
        path.relative_to(EXAMPLE / "src").as_posix(): path.read_text()
        for path in sorted((EXAMPLE / "src").rglob("*"))
        if path.is_file() and path != GENERATED_SCHEMA
    }
    code = {
        name: re.sub(r"(?m)^\s*//.*$|\s//\s.*$", "", re.sub(r"/\*.*?\*/", "", text, flags=re.S))
        for name, text in sources.items()
    }
    importers = {
        alias: {name for name, text in sources.items() if f'from "{alias}"' in text} for alias in SHARED_MODULES
    }
    assert importers == {
        "taskpilot/hosted-session": {"App.tsx", "HostedChat.tsx", "api/client.ts"},
        "taskpilot/entities": {"SelfHostedChat.tsx", "HostedChat.tsx"},
        "taskpilot/chatkit-options": {"App.tsx", "SelfHostedChat.tsx", "HostedChat.tsx"},
    }
    # The session routes and the refresh body are named once, by the typed calls the shared
    # provider is handed (api/client.ts `sessionRoutes`); when to call them is the provider's rule.
    for marker in ("/api/chatkit/sessions", "sessions/refresh", "current_client_secret"):
        assert [name for name, text in code.items() if marker in text] == ["api/client.ts"], marker
    # The rules themselves are nowhere else in the example's code (its comments may name them):
    # the expiry; what an entity carries; the client tool's answer and the composer choices'
    # shape; the zone lookup.
    # (The spec's own path parameter of GET /api/tasks/{task_id}, typed by the generated client, is
    # not an entity's `task_id`.)
    without_task_routes = {
        name: re.sub(r"\{ path: \{ task_id: \w+ \} \}|\{task_id\}", "", text) for name, text in code.items()
    }
    for marker in (
        "expires_at",
        "task_id",
        "check-circle-filled",
        "time_zone",
        "placeholderOverride",
        "resolvedOptions",
    ):
        assert not [name for name, text in without_task_routes.items() if marker in text], marker
    page_app = (STATIC_DIR / "app.js").read_text()
    for path in SHARED_MODULES.values():
        assert f'from "./{path.name}"' in page_app, path.name
    # Plain modules: nothing of the DOM in them or in what they import, so a React build can use them.
    for path in [*SHARED_MODULES.values(), STATIC_DIR / "api.js"]:
        text = path.read_text()
        assert not re.search(r"\bdocument\.|\bwindow\.|from \"\./dom\.js\"", text), path.name
        assert set(re.findall(r'from "\./([\w.-]+)"', text)) <= {"api.js"}, path.name


def test_example_ignores_its_build_and_dependencies() -> None:
    ignored = (EXAMPLE / ".gitignore").read_text().split()
    assert {"node_modules/", "dist/"} <= set(ignored)


def test_generated_client_types_are_checked_in_from_the_spec_and_name_its_paths() -> None:
    package = json.loads((EXAMPLE / "package.json").read_text())
    assert package["scripts"]["gen:api"] == (
        "openapi-typescript ../../openapi/openapi.json --output src/api/schema.d.ts"
    )
    generated = GENERATED_SCHEMA.read_text()
    assert generated.startswith("/**\n * This file was auto-generated by openapi-typescript.")
    # Without Node: a path added to or removed from the spec since the last `npm run gen:api`.
    # (The byte-for-byte comparison is `npm run gen:api -- --check`, which CI runs.)
    block = generated[generated.index("export interface paths {") : generated.index("export type webhooks")]
    assert set(re.findall(r'^    "(/[^"]*)": \{$', block, re.M)) == set(json.loads(SPEC.read_text())["paths"])


def test_example_calls_taskpilots_rest_api_only_through_the_generated_client() -> None:
    """Hand-written `fetch` only where the spec has no say: the sign-in service's token URL and the
    `fetch` that adds the bearer token and Time-Zone (ChatKit's, and the generated client's)."""
    callers = {
        path.relative_to(EXAMPLE / "src").as_posix()
        for path in (EXAMPLE / "src").rglob("*")
        if path.is_file() and path != GENERATED_SCHEMA and re.search(r"(?<![\w.])fetch\(", path.read_text())
    }
    assert callers == {"auth.ts"}
    auth = (EXAMPLE / "src" / "auth.ts").read_text()
    # tokenFromUrl's fetch(url, ...) and bearerFetch's fetch(input, ...), nothing else.
    assert re.findall(r"(?<![\w.])fetch\((\w+)", auth) == ["url", "input"]
    tsconfig = json.loads((EXAMPLE / "tsconfig.json").read_text())
    options = tsconfig["compilerOptions"]
    assert options["strict"] is True and options["noEmit"] is True and options["skipLibCheck"] is False
    # The page's modules, and the ChatKit types their JSDoc names (tests/unit/test_chatkit_option_types.py).
    assert options["paths"] == {
        "taskpilot/*": ["../../src/app/static/*.js"],
        "@openai/chatkit": ["./node_modules/@openai/chatkit"],
    }

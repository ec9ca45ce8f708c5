"""The documentation site and the front door, read off the repository (issue 33).

- The generated reference pages (docs/reference/) are what the code generates now: the
  configuration reference from `Settings`, the CLI reference from `taskpilot --help`, the HTTP
  reference from openapi/openapi.json. A stale page fails here, in `make test`, as the spec's
  freshness check fails in CI (`make docs` checks it again before building).
- README.md stays a front door (at most 200 lines) and links into the site; every page is in the nav.
- Every shell block a reader could paste, in README.md and docs/, is run by
  tests/live/test_readme_commands.py (`<!-- runnable: name -->`) or says why not
  (`<!-- illustrative: why -->`).
- The version has one source, pyproject.toml: the package, `taskpilot --version` and the spec agree.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import fields

import pytest
from testkit import docs_reference

from app import __version__
from app.__main__ import build_parser
from app.settings import Settings
from tests.support.servers import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
DOCS = PROJECT_ROOT / "docs"
SHELL_FENCE = re.compile(r"^```(?:sh|bash|shell|console)\s*$")
MARKER = re.compile(r"^<!-- (?:runnable: [a-z0-9-]+|illustrative: .+) -->$")
NAV_PAGE = re.compile(r":\s+(\S+\.md)\s*$")


def test_the_checked_in_reference_pages_are_what_the_code_generates() -> None:
    stale = [str(path.relative_to(PROJECT_ROOT)) for path in docs_reference.stale()]
    assert stale == [], f"{stale} disagree with the code: run `make docs-reference` and commit the pages"


def test_the_configuration_reference_has_every_setting_with_its_default_and_what_it_accepts() -> None:
    page = (DOCS / "reference" / "configuration.md").read_text()
    for spec in fields(Settings):
        row = next((line for line in page.splitlines() if line.startswith(f"| `{spec.name.upper()}`")), None)
        assert row is not None, f"{spec.name.upper()} is missing from the configuration reference"
        _, default, accepts, why = (cell.strip() for cell in row.strip("|").split(" | "))
        assert default and accepts, row
        assert why, f"Settings.{spec.name} has no comment saying why it exists (the reference's Why column)"
    assert "| `PORT` | `8000` | an integer from 0 to 65535 |" in page
    assert "`AUTH_JWT_SECRET` (secret)" in page and "taskpilot-development-secret" not in page  # secrets never shown


def test_the_cli_reference_is_the_commands_own_help() -> None:
    page = (DOCS / "reference" / "cli.md").read_text()
    for command in ("taskpilot serve", "taskpilot db downgrade", "taskpilot token", "taskpilot feedback export"):
        assert f"## `{command}`" in page, command
    assert "--include-text" in page and "--version" in page


def test_the_http_reference_lists_every_operation_of_the_spec() -> None:
    spec = json.loads((PROJECT_ROOT / "openapi" / "openapi.json").read_text())
    page = (DOCS / "reference" / "http.md").read_text()
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in docs_reference.HTTP_METHODS:
                assert f"### `{method.upper()} {path}`" in page and f"`{operation['operationId']}`" in page
    assert "<script" not in page  # plain Markdown: nothing to load from a CDN


def test_the_version_has_one_source(capsys: pytest.CaptureFixture[str]) -> None:
    declared = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert __version__ == declared, "reinstall (`make install`): the package's metadata is older than pyproject.toml"
    assert json.loads((PROJECT_ROOT / "openapi" / "openapi.json").read_text())["info"]["version"] == declared
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["--version"])
    assert exited.value.code == 0 and capsys.readouterr().out.strip() == f"taskpilot {declared}"
    assert f"## [{declared}] - " in (PROJECT_ROOT / "CHANGELOG.md").read_text(), "CHANGELOG.md has no entry for it"


def test_readme_is_a_front_door_that_links_into_the_site() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    assert "make run" in text and "make test" in text and "/chatkit" in text and "make docs" in text
    linked = set(re.findall(r"\]\((docs/[^)#]+\.md)", text))
    pages = {str(path.relative_to(PROJECT_ROOT)) for path in DOCS.rglob("*.md")} - {
        "docs/index.md",
        "docs/changelog.md",
    }
    assert pages <= linked, f"README does not link {sorted(pages - linked)}"


def test_every_page_is_in_the_nav() -> None:
    nav = {match for line in (PROJECT_ROOT / "mkdocs.yml").read_text().splitlines() for match in NAV_PAGE.findall(line)}
    pages = {str(path.relative_to(DOCS)) for path in DOCS.rglob("*.md")}
    assert pages == nav


def test_every_shell_block_is_run_by_a_test_or_marked_illustrative() -> None:
    unmarked = []
    for document in [README, *sorted(DOCS.rglob("*.md"))]:
        lines = document.read_text().splitlines()
        for number, line in enumerate(lines):
            if SHELL_FENCE.match(line) and (number == 0 or not MARKER.match(lines[number - 1])):
                unmarked.append(f"{document.relative_to(PROJECT_ROOT)}:{number + 1}")
    assert unmarked == [], f"shell blocks neither runnable nor illustrative: {unmarked}"

"""The options TaskPilot gives ChatKit's web component, checked against `@openai/chatkit`'s own
published types, and proof that each check bites.

- The page (no build): `src/app/static/chatkit-options.js` builds every option the page at `/`
  passes (`selfHostedOptions`, `hostedOptions`, `sharedOptions`, the composer's choices) and, with
  `entities.js` and `api.js`, carries JSDoc types naming `@openai/chatkit`'s. `typecheck/` runs
  `tsc --noEmit --checkJs` over them (`npm run typecheck` there; .ci/run does).
- examples/react: `useChatKit`'s options are typed by `@openai/chatkit-react`'s types, and the
  page's shared modules it imports by their JSDoc types (`npm run typecheck` there; .ci/run does).

Each check is run here over a fixture of deliberately wrong options (`// wrong:` lines), which must
fail on each of those lines and on no other; the page's real builders are also run with wrong
options edited in. Needs Node and `npm ci` in typecheck/ and examples/react; without them the tests
are skipped with the reason, and under CI (`CI=true`) they fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

from tests.support.servers import PROJECT_ROOT

PAGE_CHECK = PROJECT_ROOT / "typecheck"
EXAMPLE = PROJECT_ROOT / "examples" / "react"
STATIC_DIR = PROJECT_ROOT / "src" / "app" / "static"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
# `file(line,col): error TSnnnn: message` (tsc --pretty false).
TSC_ERROR = re.compile(r"^(?P<file>\S[^(\n]*)\((?P<line>\d+),\d+\): error TS\d+: (?P<message>.*)$", re.M)
WRONG = "// wrong:"


def _unavailable(reason: str) -> NoReturn:
    if IN_CI:
        pytest.fail(f"{reason}; CI must run the ChatKit option type checks", pytrace=False)
    pytest.skip(reason)


def _tsc(package: Path, project: Path) -> tuple[int, str]:
    """`tsc --noEmit -p project` with the TypeScript `npm ci` installed in `package`."""
    node = shutil.which("node")
    if node is None:
        _unavailable("node is not installed (Node 20.19 or newer runs tsc)")
    tsc = package / "node_modules" / "typescript" / "bin" / "tsc"
    if not tsc.is_file():
        _unavailable(f"{package.relative_to(PROJECT_ROOT)} has no node_modules: run `npm ci` there first")
    result = subprocess.run(
        [node, str(tsc), "--noEmit", "--pretty", "false", "-p", str(project)],
        cwd=package,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def _error_lines(report: str, cwd: Path) -> dict[Path, set[int]]:
    lines: dict[Path, set[int]] = {}
    for match in TSC_ERROR.finditer(report):
        lines.setdefault((cwd / match["file"]).resolve(), set()).add(int(match["line"]))
    return lines


def _marked_lines(path: Path) -> set[int]:
    lines = path.read_text().splitlines()
    return {number for number, line in enumerate(lines, 1) if WRONG in line and not line.lstrip().startswith("//")}


def _assert_fails_exactly_on(package: Path, project: Path, wrong: dict[Path, set[int]]) -> None:
    """tsc over `project` fails on each line `wrong` names (file: line numbers) and nowhere else."""
    code, report = _tsc(package, project)
    assert code != 0, f"tsc accepted the wrong options:\n{report}"
    errors = _error_lines(report, package)
    for fixture, marked in wrong.items():
        assert len(marked) >= 8, f"{fixture.name} lost its wrong options"
        found = errors.pop(fixture.resolve(), set())
        missed, unexpected = sorted(marked - found), sorted(found - marked)
        assert not missed, f"tsc let these wrong options of {fixture.name} through (lines {missed}):\n{report}"
        assert not unexpected, f"tsc refused lines of {fixture.name} not marked wrong ({unexpected}):\n{report}"
    assert not errors, f"tsc refused files with nothing wrong in them ({sorted(map(str, errors))}):\n{report}"


# Wrong options edited into the page's real builders (each text occurs once in chatkit-options.js):
# with their JSDoc types, each must fail where it is, none widened to `string`.
BUILDER_MUTATIONS = {
    'uploadStrategy: { type: "two_phase" }': 'uploadStrategy: { type: "three_phase" }',  # selfHostedOptions
    "maxCount: MAX_ATTACHMENTS, maxSize,": "maxCount: String(MAX_ATTACHMENTS), maxSize,",  # composerAttachments
    "[mime, [...extensions]]": '[mime, extensions.join(",")]',
    'radius: "round",': 'radius: "rounded",',  # THEME
    'accent: { primary: "#e8590c", level: 1 }': 'accent: { primary: "#e8590c", level: 5 }',
    'prompt: "Show my open tasks", icon: "check-circle"': 'prompt: "Show my open tasks", icon: "tick"',  # PROMPTS
    "history: { enabled: true, showDelete: true,": 'history: { enabled: "yes", showDelete: true,',  # sharedOptions
    # hostedOptions
    "composer: { placeholder: PLACEHOLDER },": "composer: { placeholder: PLACEHOLDER, dictation: true },",
    "icon: tool.icon,": "icon: tool.label,",  # composerChoices
    'return { time_zone: browserTimeZone() ?? "UTC" };': "return { time_zone: browserTimeZone() };",  # answerClientTool
}


def test_the_page_check_refuses_each_wrong_option_of_its_fixture_and_of_the_real_builders(tmp_path: Path) -> None:
    """One tsc run (typecheck/'s settings) over a copy of the tree: the page's modules with the wrong
    options of BUILDER_MUTATIONS edited into chatkit-options.js, and typecheck/fixtures/wrong-options.js.
    Every other line, the real modules' included, must pass: this is also the check of the modules."""
    fixture = PAGE_CHECK / "fixtures" / "wrong-options.js"
    settings = json.loads((PAGE_CHECK / "tsconfig.json").read_text())
    # The fixture imports every module the page check covers.
    imported = set(re.findall(r'from "\.\./(\.\./src/app/static/[\w.-]+\.js)"', fixture.read_text()))
    assert imported == set(settings["files"])

    static = tmp_path / "src" / "app" / "static"
    static.mkdir(parents=True)
    for path in STATIC_DIR.glob("*.js"):
        shutil.copy(path, static / path.name)
    options = static / "chatkit-options.js"
    text = options.read_text()
    for right, wrong in BUILDER_MUTATIONS.items():
        assert text.count(right) == 1, right
        text = text.replace(right, wrong)
    options.write_text(text)
    lines = text.splitlines()
    mutated = {next(n for n, line in enumerate(lines, 1) if wrong in line) for wrong in BUILDER_MUTATIONS.values()}
    assert len(mutated) == len(BUILDER_MUTATIONS)

    check = tmp_path / "typecheck"
    (check / "fixtures").mkdir(parents=True)
    shutil.copy(fixture, check / "fixtures" / fixture.name)
    config = {
        "extends": (PAGE_CHECK / "tsconfig.json").as_posix(),
        "compilerOptions": {
            "paths": {"@openai/chatkit": [(PAGE_CHECK / "node_modules" / "@openai" / "chatkit").as_posix()]}
        },
        "files": [*settings["files"], f"fixtures/{fixture.name}"],
    }
    (check / "tsconfig.json").write_text(json.dumps(config))
    _assert_fails_exactly_on(
        PAGE_CHECK,
        check / "tsconfig.json",
        {options: mutated, check / "fixtures" / fixture.name: _marked_lines(fixture)},
    )


def test_the_react_check_refuses_each_wrong_option_of_its_fixture() -> None:
    fixtures = EXAMPLE / "typecheck-fixtures"
    fixture = fixtures / "WrongOptions.tsx"
    assert "useChatKit({" in fixture.read_text()
    # The same settings as `npm run typecheck`; the fixture is outside what that checks and builds.
    app = json.loads((EXAMPLE / "tsconfig.json").read_text())
    assert app["include"] == ["src"]
    assert json.loads((fixtures / "tsconfig.json").read_text())["extends"] == "../tsconfig.json"
    _assert_fails_exactly_on(EXAMPLE, fixtures / "tsconfig.json", {fixture: _marked_lines(fixture)})


def test_both_checks_use_the_same_exact_chatkit_types_and_locks_without_download_addresses() -> None:
    page = json.loads((PAGE_CHECK / "package.json").read_text())
    page_lock = json.loads((PAGE_CHECK / "package-lock.json").read_text())
    example_lock = json.loads((EXAMPLE / "package-lock.json").read_text())
    pinned = page["devDependencies"]
    assert set(pinned) == {"@openai/chatkit", "typescript"} and not page.get("dependencies")
    assert page["scripts"]["typecheck"] == "tsc --noEmit --checkJs -p tsconfig.json"
    for name, version in pinned.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), (name, version)
        assert page_lock["packages"][f"node_modules/{name}"]["version"] == version, name
        # The version examples/react resolves (@openai/chatkit through @openai/chatkit-react's exact pin).
        assert example_lock["packages"][f"node_modules/{name}"]["version"] == version, name
    assert "resolved" not in (PAGE_CHECK / "package-lock.json").read_text()
    assert "omit-lockfile-registry-resolved=true" in (PAGE_CHECK / ".npmrc").read_text().splitlines()
    # The react check reads the page modules' JSDoc types: `@openai/chatkit` must resolve there too,
    # or every option type they name would silently be `any`.
    paths = json.loads((EXAMPLE / "tsconfig.json").read_text())["compilerOptions"]["paths"]
    assert paths["@openai/chatkit"] == ["./node_modules/@openai/chatkit"]
    settings = json.loads((PAGE_CHECK / "tsconfig.json").read_text())["compilerOptions"]
    assert settings["checkJs"] is True and settings["strict"] is True and settings["noEmit"] is True
    assert settings["skipLibCheck"] is False


def test_the_page_builds_its_chatkit_options_only_in_the_typed_module() -> None:
    app = (STATIC_DIR / "app.js").read_text()
    for marker in ("uploadStrategy", "threadItemActions", "getClientSecret:", "colorScheme", "startScreen"):
        assert marker not in app, marker
    assert "selfHostedOptions(api, base, {" in app and "hostedOptions(secrets," in app
    options = (STATIC_DIR / "chatkit-options.js").read_text()
    for builder in ("sharedOptions", "selfHostedOptions", "hostedOptions", "composerChoices"):
        doc = re.search(rf"/\*\*((?:(?!\*/).)*)\*/\nexport function {builder}\(", options, re.S)
        assert doc and "@returns {" in doc.group(1), f"{builder} has no JSDoc return type"

"""requirements/runtime.txt, the lock the container installs, agrees with requirements/dev.txt, the
lock CI tests with: every runtime pin is the dev pin (same version, same hashes), it holds only
what pyproject's runtime dependencies need, and, like the dev lock, no download address."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from testkit.processes import PROJECT_ROOT

RUNTIME = PROJECT_ROOT / "requirements" / "runtime.txt"
DEV = PROJECT_ROOT / "requirements" / "dev.txt"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)(?: \\)?$")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """name -> (version, hashes) of a `uv pip compile --generate-hashes` file."""
    found: dict[str, tuple[str, frozenset[str]]] = {}
    current: str | None = None
    for line in path.read_text().splitlines():
        match = PIN.match(line)
        if match:
            current = normalise(match["name"])
            found[current] = (match["version"], frozenset())
            continue
        stripped = line.strip().removesuffix("\\").strip()
        if stripped.startswith("--hash=") and current is not None:
            version, hashes = found[current]
            found[current] = (version, hashes | {stripped.removeprefix("--hash=")})
    return found


def requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match, requirement
    return normalise(match[0])


def test_every_runtime_pin_is_the_dev_pin_with_the_same_hashes() -> None:
    runtime, dev = pins(RUNTIME), pins(DEV)
    assert runtime, "requirements/runtime.txt pins nothing: run `make lock`"
    missing = sorted(set(runtime) - set(dev))
    assert not missing, f"pinned in runtime.txt but not in dev.txt (run `make lock`): {missing}"
    differ = {name: (pin[0], dev[name][0]) for name, pin in runtime.items() if pin[0] != dev[name][0]}
    assert not differ, f"runtime.txt and dev.txt pin different versions (run `make lock`): {differ}"
    rehashed = sorted(name for name, pin in runtime.items() if pin[1] != dev[name][1])
    assert not rehashed, f"same version, different hashes (run `make lock`): {rehashed}"
    unhashed = sorted(name for name, pin in runtime.items() if not pin[1])
    assert not unhashed, f"pins without hashes: {unhashed}"


def test_the_runtime_lock_covers_the_runtime_dependencies_and_no_development_tool() -> None:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    runtime = pins(RUNTIME)
    needed = {requirement_name(r) for r in project["dependencies"]}
    assert needed <= set(runtime), f"runtime dependencies not in runtime.txt (run `make lock`): {needed - set(runtime)}"
    # The development tools of the dev extra that nothing at run time needs.
    for tool in ("pytest", "ruff", "mypy", "moto", "selenium", "flask", "boto3", "schemathesis", "hypothesis"):
        assert tool not in runtime, f"{tool} is a development tool: it must not be in runtime.txt"
    assert len(runtime) < len(pins(DEV))


def test_the_locks_record_no_download_address_and_no_header() -> None:
    for path in (RUNTIME, DEV):
        text = path.read_text()
        assert "://" not in text, f"{path.name} records a URL"
        assert not re.search(r"^\s*--(?:index-url|extra-index-url|find-links|trusted-host)", text, re.M), path.name
        assert not text.startswith("#"), f"{path.name} has a header (uv's --no-header leaves none)"

"""Installing the wheel with requirements/runtime.txt, as the container image does, gives exactly
the pinned set: `pip freeze` of a fresh virtual environment is runtime.txt plus TaskPilot itself,
`pip check` finds nothing missing, and the application imports. (A plain `pip install .` resolves
to whatever is newest that day, versions CI never tested.)"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from testkit.processes import PROJECT_ROOT, child_environment

from tests.unit.test_runtime_lock import RUNTIME, normalise, pins

pytestmark = pytest.mark.slow


def build_wheel(work: Path) -> Path:
    """The wheel, built from a copy of the sources (no build/ or egg-info in the tree), with the
    setuptools of the dev lock (no build isolation, so nothing unpinned is fetched)."""
    tree = work / "tree"
    tree.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(PROJECT_ROOT / name, tree / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(PROJECT_ROOT / "src", tree / "src", ignore=ignore)
    shutil.copytree(PROJECT_ROOT / "db", tree / "db", ignore=ignore)
    out = work / "dist"
    pip(sys.executable, "wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(tree))
    (built,) = out.glob("taskpilot-*.whl")
    return built


def pip(python: str, *args: str) -> str:
    """This environment's pip acting on `python`'s environment (`pip --python`): the new venv
    needs no pip of its own, so it holds only what was installed into it."""
    command = [sys.executable, "-m", "pip", "--python", python, "--disable-pip-version-check", *args]
    ran = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False, env=child_environment())
    assert ran.returncode == 0, f"{' '.join(command)}\n{ran.stdout}\n{ran.stderr}"
    return ran.stdout


def test_the_wheel_with_the_runtime_lock_installs_exactly_the_pinned_set(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = str(venv / "bin" / "python")
    # --no-compile: byte-compiling ~80 packages is most of an install's time, and proves nothing here.
    pip(python, "install", "--quiet", "--no-compile", "--require-hashes", "-r", str(RUNTIME))
    pip(python, "install", "--quiet", "--no-compile", "--no-deps", str(wheel))

    frozen = {}
    for line in pip(python, "list", "--format=freeze").splitlines():
        name, _, version = line.partition("==")
        frozen[normalise(name)] = version
    version = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["version"]
    expected = {name: pin[0] for name, pin in pins(RUNTIME).items()} | {"taskpilot": version}
    assert frozen == expected, {
        "not pinned": sorted(set(frozen) - set(expected)),
        "not installed": sorted(set(expected) - set(frozen)),
        "other version": sorted(n for n in set(frozen) & set(expected) if frozen[n] != expected[n]),
    }
    # As the Dockerfile installs: with --require-hashes pip refuses a dependency the lock does not pin,
    # and `pip check` finds every requirement of every installed package satisfied.
    pip(python, "check")
    imported = subprocess.run(
        [python, "-c", "import app.asgi, app.__main__; print('ok')"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
        env=child_environment(),
    )
    assert imported.stdout.strip() == "ok", imported.stderr

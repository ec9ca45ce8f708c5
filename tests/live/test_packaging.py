"""TaskPilot as a package: the wheel holds what an installed service needs, an installed (not
editable) copy migrates and serves from any working directory, and every distribution the code
imports is declared in pyproject.toml."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path

import httpx
import pytest
from testkit.processes import PROJECT_ROOT, child_environment, free_port

SRC = PROJECT_ROOT / "src" / "app"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the sources (so no build/ or egg-info lands in the tree)."""
    work = tmp_path_factory.mktemp("build")
    tree = work / "tree"
    tree.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(PROJECT_ROOT / name, tree / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(PROJECT_ROOT / "src", tree / "src", ignore=ignore)
    shutil.copytree(PROJECT_ROOT / "db", tree / "db", ignore=ignore)
    out = work / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(out), "."],
        cwd=tree,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("taskpilot-*.whl")
    return built


def test_the_wheel_holds_every_package_the_migrations_and_the_page(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {f"app/{path.relative_to(SRC).as_posix()}" for path in SRC.rglob("__init__.py")}
    missing_packages = sorted(packages - names)
    assert not missing_packages, f"packages missing from the wheel (list them in pyproject.toml): {missing_packages}"
    static = {f"app/static/{path.name}" for path in (SRC / "static").iterdir() if path.is_file()}
    assert static <= names, sorted(static - names)
    migrations = {f"app/migrations/versions/{p.name}" for p in (PROJECT_ROOT / "db/migrations/versions").glob("*.py")}
    assert migrations and migrations <= names, sorted(migrations - names)
    assert {"app/migrations/env.py", "app/migrations/script.py.mako", "app/py.typed"} <= names


def test_an_installed_copy_migrates_and_serves_from_any_directory(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {
        **child_environment(),
        # The installed copy first: the repository's editable install must not be what runs.
        "PYTHONPATH": str(site),
        "APP_ENV": "development",
        "DATABASE_URL": f"sqlite+aiosqlite:///{elsewhere}/installed.db",
        "ATTACHMENT_STORAGE_URL": str(elsewhere / "attachments"),
    }
    where = subprocess.run(
        [sys.executable, "-c", "import app; print(app.__file__)"],
        env=env,
        cwd=elsewhere,
        capture_output=True,
        text=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(site), where.stdout + where.stderr

    upgrade = subprocess.run(
        [sys.executable, "-m", "app", "db", "upgrade"], env=env, cwd=elsewhere, capture_output=True, text=True
    )
    assert upgrade.returncode == 0, upgrade.stderr
    assert (elsewhere / "installed.db").exists()

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=elsewhere,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        health = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert health is not None and health.status_code == 200, server.stderr.read() if server.stderr else ""
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert page.status_code == 200 and "<title>TaskPilot</title>" in page.text
        script = httpx.get(f"http://127.0.0.1:{port}/static/app.js", timeout=5)
        assert script.status_code == 200
        token = subprocess.run(
            [sys.executable, "-m", "app", "token", "--user", "alice"],
            env=env,
            cwd=elsewhere,
            capture_output=True,
            text=True,
        ).stdout.strip()
        tasks = httpx.post(
            f"http://127.0.0.1:{port}/api/tasks",
            json={"title": "Installed"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        assert tasks.status_code == 201, tasks.text  # the migrated schema is the one the app uses
    finally:
        server.terminate()
        server.wait(timeout=20)


def _declared() -> set[str]:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    return {
        _normalise(re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0]) for requirement in project["dependencies"]
    }


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_imported_distribution_is_declared() -> None:
    top_levels: set[str] = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                top_levels.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                top_levels.add(node.module.split(".")[0])
    third_party = sorted(top_levels - set(sys.stdlib_module_names) - {"app", "__future__"})
    providers = importlib.metadata.packages_distributions()
    declared = _declared()
    undeclared = {
        module: providers.get(module, ["?"])
        for module in third_party
        if not any(_normalise(dist) in declared for dist in providers.get(module, []))
    }
    assert not undeclared, f"imported but not declared in [project.dependencies]: {undeclared}"

"""The house rules, read off the source: which room may import which, where Litestar may appear,
and no import cycles (README's Architecture section draws the same picture).

Rooms, lowest first; a module may import its own room and the ones below it, never above:

    core  <-  settings, contracts, ops  <-  store  <-  services  <-  agents  <-  http  <-  controllers  <-  asgi

Every import counts, including those inside functions (a lazy import hides a cycle, it does not
remove it) and those under `TYPE_CHECKING`.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "app"

RANK = {
    "core": 0,
    "settings": 1,
    "contracts": 1,
    "ops": 1,
    "store": 2,
    "services": 3,
    "agents": 4,
    "http": 5,
    "controllers": 6,
    "asgi": 7,
    "__main__": 7,
}
# The Litestar integration of Advanced Alchemy is Litestar too.
FRAMEWORK_MODULES = ("litestar", "advanced_alchemy.extensions.litestar")
FRAMEWORK_ROOMS = {"controllers", "http", "ops", "asgi"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def room_of(module: str) -> str | None:
    """`app.store.tasks` -> `store`; the package root (`app`, `__version__`) is in no room."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def app_modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports_of(path: Path) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import in the file, at any depth."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:  # `from app.ops import metrics` imports the module app.ops.metrics
                yield node.lineno, f"{node.module}.{alias.name}"


def app_graph() -> dict[str, set[str]]:
    """module -> the app modules it imports."""
    modules = app_modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for _, imported in imports_of(path):
            if imported in modules and imported != name:
                graph[name].add(imported)
    return graph


def test_every_module_is_in_a_known_room() -> None:
    unknown = sorted({room for m in app_modules() if (room := room_of(m)) is not None} - set(RANK) - {"migrations"})
    assert not unknown, f"rooms without a rank in this test (add them to RANK and README): {unknown}"


def direction_violations(modules: dict[str, Path]) -> list[str]:
    violations = []
    for name, path in modules.items():
        room = room_of(name)
        if room is None or room == "migrations":
            continue
        for line, imported in imports_of(path):
            target = room_of(imported) if imported.startswith("app.") else None
            if target is None or target == "migrations" or target not in RANK:
                continue
            if RANK[target] > RANK[room]:
                violations.append(f"{path.name}:{line}: {room} imports {imported} ({target})")
    return violations


def framework_violations(modules: dict[str, Path]) -> list[str]:
    violations = []
    for name, path in modules.items():
        if room_of(name) in FRAMEWORK_ROOMS:
            continue
        for line, imported in imports_of(path):
            if imported.startswith(FRAMEWORK_MODULES):
                violations.append(f"{path.name}:{line}: {imported}")
    return violations


def test_no_room_imports_a_higher_room() -> None:
    violations = direction_violations(app_modules())
    assert not violations, "imports run against the house's direction:\n" + "\n".join(violations)


def test_litestar_only_in_the_web_rooms() -> None:
    violations = framework_violations(app_modules())
    assert not violations, "Litestar outside controllers/, http/, ops/ and asgi.py:\n" + "\n".join(violations)


def test_there_is_no_import_cycle() -> None:
    graph = app_graph()
    # Tarjan's strongly connected components: any component of two or more modules is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles: {cycles}"


def test_the_rules_catch_what_they_claim_to(tmp_path: Path) -> None:
    """The checks above must fail on violating modules, or they prove nothing."""
    bad = tmp_path / "bad.py"
    bad.write_text("import litestar\n\n\ndef later():\n    from app.controllers.tasks import TaskController\n")
    direction = direction_violations({"app.store.bad": bad})
    framework = framework_violations({"app.services.bad": bad})
    assert "bad.py:5: store imports app.controllers.tasks (controllers)" in direction
    assert framework == ["bad.py:1: litestar"]
    assert direction_violations({"app.controllers.bad": bad}) == []


@pytest.mark.parametrize("module", ["app.core.errors", "app.core.context", "app.core.limits", "app.core.ids"])
def test_core_is_framework_free(module: str) -> None:
    """Importing a core module loads nothing of the app outside core, and no framework or ORM."""
    probe = (
        "import sys, importlib; importlib.import_module(sys.argv[1]); "
        "print('\\n'.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'app', 'litestar', 'sqlalchemy', 'advanced_alchemy', 'pydantic', 'chatkit', 'agents', 'openai'})))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe, module], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    outside = [m for m in loaded if m != "app" and not m.startswith("app.core")]
    assert not outside, f"importing {module} loaded {outside}"

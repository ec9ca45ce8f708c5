"""The house rules, read off the source: which room may import which, where Litestar may appear,
and no import cycles (docs/architecture.md draws the same picture).

Rooms, lowest first; a module may import its own room and the ones below it, never above:

    core  <-  settings, contracts, ops  <-  store  <-  services  <-  agents  <-  agents/chatkit  <-  http
          <-  controllers  <-  asgi  <-  worker

`agents/chatkit` (the ChatKit protocol: the server, its gate, the library shims, notices, entities,
widgets and their actions) runs the assistant, so it stands above the rest of `agents`; the assistant,
its hooks and the offline model speak some of its vocabulary (CHATKIT_VOCABULARY), never its server side.

Every import counts, including those inside functions (a lazy import hides a cycle, it does not
remove it) and those under `TYPE_CHECKING`.
"""

from __future__ import annotations

import ast
import gc
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
    "agents.chatkit": 5,
    "http": 6,
    "controllers": 7,
    "asgi": 8,
    "__main__": 8,
    "worker": 9,
}
# What the rest of agents/ may import from agents/chatkit: the protocol's vocabulary (task tags, the
# turn's notices, the widgets a tool result is shown as, the composer's choice, the time-zone tool,
# the tool that asks the user with choices).
CHATKIT_VOCABULARY = frozenset(
    f"app.agents.chatkit.{name}"
    for name in ("entities", "notices", "widgets", "composer", "time_zone", "structured_input")
)


def in_chatkit_vocabulary(imported: str) -> bool:
    """`app.agents.chatkit.entities`, a name imported from it (`...entities.annotate`), or the package
    itself (`from app.agents.chatkit import notices` imports it too)."""
    if imported == "app.agents.chatkit":
        return True
    return imported in CHATKIT_VOCABULARY or imported.rsplit(".", 1)[0] in CHATKIT_VOCABULARY


# The Litestar integration of Advanced Alchemy is Litestar too.
FRAMEWORK_MODULES = ("litestar", "advanced_alchemy.extensions.litestar")
FRAMEWORK_ROOMS = {"controllers", "http", "ops", "asgi", "worker"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def room_of(module: str) -> str | None:
    """`app.store.tasks` -> `store`, `app.agents.chatkit.gate` -> `agents.chatkit`; the package root
    (`app`, `__version__`) is in no room."""
    parts = module.split(".")
    if parts[1:3] == ["agents", "chatkit"]:
        return "agents.chatkit"
    return parts[1] if len(parts) > 1 else None


def app_modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def parsed(path: Path) -> ast.Module:
    # Without the collector: on Python 3.11 a finalizer that runs Python code while `ast.parse`
    # builds its tree (an earlier test's task collected here, logging "Task was destroyed but it
    # is pending") fails the parse with "SystemError: AST constructor recursion depth mismatch".
    enabled = gc.isenabled()
    gc.disable()
    try:
        return ast.parse(path.read_text(), filename=str(path))
    finally:
        if enabled:
            gc.enable()


def imports_of(path: Path) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import in the file, at any depth."""
    for node in ast.walk(parsed(path)):
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
    assert not unknown, f"rooms without a rank in this test (add them to RANK and docs/architecture.md): {unknown}"


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
            if room == "agents" and target == "agents.chatkit" and in_chatkit_vocabulary(imported):
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
    assert not violations, "Litestar outside controllers/, http/, ops/, asgi.py and worker.py:\n" + "\n".join(
        violations
    )


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
    chatkit = tmp_path / "chatkit.py"
    chatkit.write_text(
        "from app.agents.chatkit.entities import annotate\nfrom app.agents.chatkit.gate import Gate\n"
        "from app.http.sse import with_keepalive\nfrom app.agents.assistant import Assistant\n"
    )
    from_agents = direction_violations({"app.agents.bad": chatkit})
    assert "chatkit.py:2: agents imports app.agents.chatkit.gate (agents.chatkit)" in from_agents
    assert "chatkit.py:3: agents imports app.http.sse (http)" in from_agents
    assert not [v for v in from_agents if v.startswith(("chatkit.py:1:", "chatkit.py:4:"))], from_agents
    from_chatkit = direction_violations({"app.agents.chatkit.bad": chatkit})
    assert [v for v in from_chatkit if not v.startswith("chatkit.py:3:")] == [], from_chatkit
    assert "chatkit.py:3: agents.chatkit imports app.http.sse (http)" in from_chatkit


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

"""The package's rooms: imports only go down the floors, and no module imports itself back.

Every import statement counts, wherever it stands (module level, inside a function, under
``TYPE_CHECKING``): a lazy import is still a dependency. Domains are loaded by name at run time
(``load_domain``), which is not an import statement and so not an edge.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"apigen_gym": ROOT / "apigen_gym", "apigen_gym.domains": ROOT / "domains"}

ROOMS: dict[str, int] = {
    "util": 0,
    "core": 1,
    "kit": 2,
    "llm": 2,
    "domains": 3,
    "players": 3,
    "loopback": 4,
    "evaluation": 4,
    "generation": 5,
    "training": 5,
    "integrations": 6,
}
"""Each room's floor: a module may import its own room and rooms on lower floors."""

ALLOWED: dict[str, set[str]] = {"domains": {"core", "kit", "domains"}}
"""Rooms with a narrower rule than their floor: domains use the library only through core and kit."""

TOP = {"apigen_gym", "apigen_gym.cli", "apigen_gym.__main__"}
"""The package's front door and command line sit above every room."""


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for prefix, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([prefix, *parts])] = path
    return found


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES.get(name, Path()).name == "__init__.py"


def _imports(name: str, path: Path) -> set[str]:
    """The project modules ``name`` imports (``from pkg import sub`` names the submodule)."""
    targets: set[str] = set()
    package = name if _is_package(name) else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.add(sub if sub in MODULES else base)
    return {t for t in targets if t in MODULES and t != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def room(module: str) -> str | None:
    """The room of a module (``None`` for the package's front door and command line)."""
    if module in TOP:
        return None
    if module.startswith("apigen_gym.domains"):
        return "domains"
    return module.split(".")[1]


def test_every_module_lives_in_a_room() -> None:
    homeless = [m for m in MODULES if m not in TOP and room(m) not in ROOMS]
    assert not homeless, f"modules outside the rooms (add them to a room or to ROOMS): {homeless}"


def test_rooms_say_what_they_hold() -> None:
    for name in ROOMS:
        init = (
            ROOT / "apigen_gym" / name / "__init__.py"
            if name != "domains"
            else ROOT / "domains" / "__init__.py"
        )
        assert ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))), f"{init} has no docstring"


def allowed(here: str, there: str | None) -> bool:
    """Whether room ``here`` may import room ``there`` (``None``: the front door or the CLI)."""
    if there == here:
        return True
    if there is None:
        return False
    if here in ALLOWED:
        return there in ALLOWED[here]
    return ROOMS[there] < ROOMS[here]


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{source} ({room(source)}) imports {target} ({room(target)})"
        for source, targets in graph.items()
        if room(source) is not None
        for target in targets
        if not allowed(room(source) or "", room(target))
    )


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that import one another, directly or not (Tarjan's components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in list(graph):
        if node not in index:
            visit(node)
    return found


def test_imports_only_go_down() -> None:
    assert upward_imports(GRAPH) == []


def test_core_imports_nothing_from_the_rooms_above() -> None:
    for source, targets in GRAPH.items():
        if room(source) == "core":
            assert {room(t) for t in targets} <= {"core", "util"}, (source, targets)


def test_domains_use_the_library_through_core_and_kit() -> None:
    for source, targets in GRAPH.items():
        if room(source) == "domains":
            assert {room(t) for t in targets} <= {"core", "kit", "domains"}, (source, targets)


def test_no_import_cycles() -> None:
    assert cycles(GRAPH) == []


def test_the_checks_catch_what_they_guard_against() -> None:
    """An upward, a sideways and a back-door import, and a cycle, in a graph built from the real one."""
    assert len(GRAPH["apigen_gym.core.env"]) >= 5, "the import graph is not being read"
    broken = {name: set(targets) for name, targets in GRAPH.items()}
    broken["apigen_gym.core.env"].add("apigen_gym.llm.client")  # up
    broken["apigen_gym.kit.sampling"].add("apigen_gym.llm.settings")  # sideways, same floor
    broken["apigen_gym.evaluation.runner"].add("apigen_gym.cli")  # the command line
    broken["apigen_gym.core.task"].add("apigen_gym.core.env")  # env -> task -> env
    found = upward_imports(broken)
    assert len(found) == 3, found
    assert any("core.env" in c and "core.task" in c for c in [" ".join(c) for c in cycles(broken)])


def test_the_front_door_exports_what_users_need() -> None:
    import apigen_gym

    for name in apigen_gym.__all__:
        assert getattr(apigen_gym, name) is not None, name
    assert apigen_gym.ApigenEnv.__module__ == "apigen_gym.core.env"
    assert callable(apigen_gym.evaluate)

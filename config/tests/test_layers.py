"""The project's floors, read from the source: no import circles, the ground floor (`config/`) knows no
app, and in `assistant/` a floor never imports one above it (assistant/__init__.py). Every import
counts, those inside functions too: a lazy import is still a circle, only a hidden one."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("accounts", "agents", "assistant", "audit", "config", "connections", "lifecycle", "observability", "orgproxy", "usage")
# config's entry points assemble the apps; every other config module is the ground floor.
CONFIG_ENTRY_POINTS = {"config.settings", "config.urls", "config.asgi", "config.wsgi", "config.admin_site"}
# assistant's floors, lowest first; a module may import its own floor and those below.
ASSISTANT_FLOORS = [
    ("assistant.models", "assistant.llm"),
    ("assistant.engine",),
    ("assistant.tools",),
    ("assistant.runs",),
    ("assistant.wire", "assistant.services"),
    ("assistant.surfaces", "assistant.routing", "assistant.urls", "assistant.management", "assistant.apps",
     "assistant.admin"),
]


def _modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if {"tests", "migrations", "testing"} & set(parts):
                continue
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    kept = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(kept + ([base] if base else []))
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return {name: graph[name] for name in modules}


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def _floor(module: str) -> int | None:
    for number, prefixes in enumerate(ASSISTANT_FLOORS):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes):
            return number
    return None


def test_there_are_no_import_circles():
    assert _circles(_import_graph()) == []


def test_the_circle_finder_finds_a_circle():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_ground_floor_imports_no_app():
    graph = _import_graph()
    reaching_up = {
        module: sorted(target for target in targets if not target.startswith("config"))
        for module, targets in graph.items()
        if module.startswith("config.") and module not in CONFIG_ENTRY_POINTS
    }
    assert {module: targets for module, targets in reaching_up.items() if targets} == {}


def test_assistant_floors_import_only_downwards():
    graph = _import_graph()
    unplaced = [module for module in graph if module.startswith("assistant.") and _floor(module) is None]
    assert unplaced == [], "place new assistant modules in ASSISTANT_FLOORS"
    upward = [
        f"{module} → {target}"
        for module, targets in graph.items()
        if module.startswith("assistant.")
        for target in targets
        if target.startswith("assistant.") and _floor(target) > _floor(module)
    ]
    assert upward == []


def test_no_surface_imports_another():
    graph = _import_graph()

    def surface(module: str) -> str | None:
        parts = module.split(".")
        return parts[2] if len(parts) > 2 and parts[1] == "surfaces" else None

    crossing = [
        f"{module} → {target}"
        for module, targets in graph.items()
        for target in targets
        if surface(module) and surface(target) and surface(module) != surface(target)
    ]
    assert crossing == []

"""The records layout rules, read from the source (no import is executed): records code has
no import cycle, the core records package imports neither handlers nor storage, handlers
reach storage only through the composition root, and no private name crosses a module."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("hub", "handlers", "storage")
COMPOSITION_ROOT = "handlers.app"


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _imports(name: str) -> list[tuple[str, str | None]]:
    """(module imported, name taken from it or None) for every import, at any depth."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.append((submodule, None) if submodule in MODULES else (base, alias.name))
    return found


def _graph() -> dict[str, set[str]]:
    return {
        name: {module for module, _ in _imports(name) if module in MODULES and module != name}
        for name in MODULES
    }


def _is_records(name: str) -> bool:
    return ".records" in name or name in ("hub.records", "handlers.records", "storage.records")


def _cycle_through(graph: dict[str, set[str]], start: str) -> list[str] | None:
    stack = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for target in graph[node]:
            if target == start:
                return [*path, start]
            if target not in seen:
                seen.add(target)
                stack.append((target, [*path, target]))
    return None


def test_records_modules_are_in_no_import_cycle() -> None:
    graph = _graph()
    cycles = [c for name in sorted(MODULES) if _is_records(name) and (c := _cycle_through(graph, name))]
    assert cycles == []
    assert _cycle_through(graph, "handlers.session_fields") is None


def test_core_records_import_neither_handlers_nor_storage() -> None:
    leaks = [
        (name, module)
        for name in MODULES
        if name.startswith("hub.records")
        for module, _ in _imports(name)
        if module.split(".")[0] in ("handlers", "storage")
    ]
    assert leaks == []


def test_handlers_reach_storage_only_through_the_composition_root() -> None:
    leaks = [
        (name, module)
        for name in MODULES
        if name.startswith("handlers") and name != COMPOSITION_ROOT
        for module, _ in _imports(name)
        if module.split(".")[0] == "storage"
    ]
    assert leaks == []


def test_records_import_no_private_names_across_modules() -> None:
    leaks = [
        (name, module, taken)
        for name in MODULES
        if _is_records(name)
        for module, taken in _imports(name)
        if taken is not None and taken.startswith("_") and module in MODULES
    ]
    assert leaks == []

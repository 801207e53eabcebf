"""The layout's rules, checked on the source (an AST walk, like asyncpg's source-code
tests), so that a change breaking one fails here with the module and line to look at:

- no import cycles between modules (imports inside functions and under TYPE_CHECKING count);
- `hub/` (the core) imports nothing from `handlers/` or `storage/`, except the CLI
  (`hub/__main__.py`: `serve` starts the app);
- `handlers/` reaches `storage/` only in the composition root, `handlers/app.py`;
- no `_private` name of one module is used by another (imported, or read as an attribute
  of an imported module), and no object's private state is read from outside it.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("hub", "handlers", "storage")
# The CLI (`python -m hub`) is an entry point, not core: `serve` starts the app,
# `token` signs with the app's authenticator and `archive` works on stored logs.
CORE_MAY_IMPORT = {"hub.__main__": ("handlers.server", "handlers.auth", "storage.archive_cli")}
COMPOSITION_ROOT = "handlers.app"

# Violations in areas other engineers are reshaping now (issue 9), each naming who removes
# it; the lead deletes an entry once that work is merged. Empty: every rule holds.
KNOWN: set[str] = set()


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module (one of ours)
    names: tuple[str, ...]  # names taken from it (`from target import a, b`)
    line: int


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def our_modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


def _resolve(source: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = source.split(".") if is_package else source.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(source: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    found: list[Import] = []
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _longest_known(alias.name, modules)
                if target:
                    found.append(Import(source, target, (), node.lineno))
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(source, path.name == "__init__.py", node)
            for alias in node.names:
                if f"{base}.{alias.name}" in modules:  # `from package import module`
                    found.append(Import(source, f"{base}.{alias.name}", (), node.lineno))
                elif base in modules:
                    found.append(Import(source, base, (alias.name,), node.lineno))
    return found


def _longest_known(dotted: str, modules: dict[str, Path]) -> str | None:
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in modules:
            return ".".join(parts[:end])
    return None


def _private_attributes(source: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, int | None]]:
    """`x._name` for any `x` but `self` / `cls`: another module's private name, or another
    object's private state (as `hub._fetch_payloads` once was)."""
    tree = ast.parse(path.read_text(), str(path))
    bound: dict[str, str] = {}  # local name -> our module it stands for
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname and alias.name in modules:
                    bound[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(source, path.name == "__init__.py", node)
            for alias in node.names:
                if f"{base}.{alias.name}" in modules:
                    bound[alias.asname or alias.name] = f"{base}.{alias.name}"
    found: list[tuple[str, int | None]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not _private(node.attr):
            continue
        owner = node.value.id if isinstance(node.value, ast.Name) else None
        if owner in ("self", "cls"):
            continue
        if owner in bound:
            if bound[owner] != source:
                found.append((f"{source} reads the private {bound[owner]}.{node.attr}", node.lineno))
        else:
            found.append((f"{source} reads the private attribute {ast.unparse(node)}", node.lineno))
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _graph() -> tuple[dict[str, Path], list[Import]]:
    modules = our_modules()
    edges = [imp for name, path in modules.items() for imp in imports_of(name, path, modules)]
    return modules, edges


def _all_violations() -> set[str]:
    modules, edges = _graph()
    found = {"cycle: " + " <-> ".join(cycle) for cycle in _cycles(modules, edges)}
    found |= {
        key for key, _ in _core_imports(edges) + _storage_imports(edges) + _private_uses(modules, edges)
    }
    return found


def _report(violations: list[tuple[str, int | None]]) -> str:
    """The violations not in KNOWN, one line each, with the line where each is."""
    lines = {f"{key}" + (f" (line {line})" if line else "") for key, line in violations if key not in KNOWN}
    return "\n".join(sorted(lines))


def _cycles(modules: dict[str, Path], edges: list[Import]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for imp in edges:
        # A module importing from its own package (whose __init__ may re-export it) is
        # not a design cycle.
        if imp.target != imp.source and not imp.source.startswith(imp.target + "."):
            graph[imp.source].add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return found


def test_no_import_cycles():
    modules, edges = _graph()
    problems = _report([("cycle: " + " <-> ".join(cycle), None) for cycle in _cycles(modules, edges)])
    assert not problems, problems


def _core_imports(edges: list[Import]) -> list[tuple[str, int | None]]:
    return [
        (f"{imp.source} imports {imp.target}", imp.line)
        for imp in edges
        if imp.source.split(".")[0] == "hub"
        and imp.target.split(".")[0] in ("handlers", "storage")
        and imp.target not in CORE_MAY_IMPORT.get(imp.source, ())
    ]


def _storage_imports(edges: list[Import]) -> list[tuple[str, int | None]]:
    return [
        (f"{imp.source} imports {imp.target}", imp.line)
        for imp in edges
        if imp.source.split(".")[0] == "handlers"
        and imp.target.split(".")[0] == "storage"
        and imp.source != COMPOSITION_ROOT
    ]


def _private_uses(modules: dict[str, Path], edges: list[Import]) -> list[tuple[str, int | None]]:
    found = [
        (f"{imp.source} imports the private {imp.target}.{name}", imp.line)
        for imp in edges
        for name in imp.names
        if _private(name) and imp.target != imp.source
    ]
    found += [
        (f"{imp.source} imports the private module {imp.target}", imp.line)
        for imp in edges
        if any(_private(part) for part in imp.target.split(".")) and not imp.source.startswith(imp.target)
    ]
    return found + [v for name, path in modules.items() for v in _private_attributes(name, path, modules)]


def test_the_core_imports_neither_handlers_nor_storage():
    problems = _report(_core_imports(_graph()[1]))
    assert not problems, problems


def test_handlers_reach_storage_only_through_the_composition_root():
    problems = _report(_storage_imports(_graph()[1]))
    assert not problems, problems


def test_no_private_name_crosses_a_module_boundary():
    problems = _report(_private_uses(*_graph()))
    assert not problems, problems


def test_every_known_violation_still_exists():
    """A fixed violation leaves the allow-list, so it cannot come back unnoticed."""
    gone = KNOWN - _all_violations()
    assert not gone, f"fixed, so delete from KNOWN in tests/test_architecture.py: {sorted(gone)}"

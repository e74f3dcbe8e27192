"""The package's layers: each module imports only from its own layer or those below, and nothing imports in a cycle.

The graph is built from the source (``ast``), function-local imports included,
so a cycle cannot hide inside a function body. ``benchmarks/`` and the docs use
only public names.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "xbackend"

# Layer of each module (dotted, under xbackend); a subpackage's modules share its layer.
LAYERS = {
    "core": 0,
    "backends": 1,
    "registry": 2,
    "selection": 3,
    "dispatch": 4,
    "__init__": 5,  # the public API re-exports the layers above
    "testing": 6,
    "measure": 7,
    "compare": 8,
    "report": 8,
    "cli": 9,
    "__main__": 10,
}
# Public modules benchmarks/ and the docs may import from.
PUBLIC_MODULES = {
    "xbackend",
    "xbackend.measure",
    "xbackend.testing",
    "xbackend.compare",
    "xbackend.report",
    "xbackend.cli",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    parts = module.split(".")
    if parts == ["xbackend"]:
        return LAYERS["__init__"]
    return LAYERS[parts[1]]


def imported_modules(path: Path, package: str | None = None) -> set[str]:
    """Every xbackend module ``path`` imports, at any depth of its code (relative imports resolved in ``package``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    if package is None:
        package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "xbackend"}
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(package, node.module, node.level)
            if base.split(".")[0] != "xbackend":
                continue
            # "from . import registry" names a module; "from .registry import X" names X in registry.
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if _is_module(candidate) else base)
    return found


def _absolute(package: str, module: str | None, level: int) -> str:
    if level == 0:
        return module or ""
    parts = package.split(".")
    base = parts[: len(parts) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _is_module(dotted: str) -> bool:
    path = REPO.joinpath(*dotted.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def import_graph() -> dict[str, set[str]]:
    graph = {module_name(path): imported_modules(path) for path in PACKAGE.rglob("*.py")}
    # A module's import runs its package's __init__ first: parents are implied edges, not listed.
    return {module: {target for target in targets if target != module} for module, targets in graph.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return stack[stack.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle():
    assert find_cycle(import_graph()) is None


def test_each_module_imports_only_its_layer_or_below():
    wrong = [
        f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
        for module, targets in import_graph().items()
        for target in targets
        if layer_of(target) > layer_of(module)
    ]
    assert not wrong, "\n".join(wrong)


def test_the_cycle_finder_finds_a_planted_cycle():
    planted = {"xbackend.a": {"xbackend.b"}, "xbackend.b": {"xbackend.c"}, "xbackend.c": {"xbackend.a"}}
    assert find_cycle(planted) == ["xbackend.a", "xbackend.b", "xbackend.c", "xbackend.a"]
    assert find_cycle({"xbackend.a": {"xbackend.b"}, "xbackend.b": set()}) is None


def test_function_local_imports_are_seen(tmp_path):
    source = tmp_path / "x.py"
    source.write_text("def f():\n    from xbackend.dispatch import mul_sum\n    import xbackend.measure\n")
    assert imported_modules(source, package="xbackend") >= {"xbackend.dispatch", "xbackend.measure"}


def _public_imports(path: Path) -> list[str]:
    text = path.read_text()
    names = re.findall(r"^\s*from (xbackend[\w.]*) import", text, re.M)
    names += re.findall(r"^\s*import (xbackend[\w.]*)", text, re.M)
    return [name for name in names if name not in PUBLIC_MODULES]


@pytest.mark.parametrize(
    "path",
    sorted((REPO / "benchmarks").rglob("*.py")) + sorted((REPO / "docs").rglob("*.md")) + [REPO / "README.md"],
    ids=lambda path: str(path.relative_to(REPO)),
)
def test_benchmarks_and_docs_import_only_public_names(path):
    assert _public_imports(path) == []

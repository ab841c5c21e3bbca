"""The import arrows the house review asked to open stay open: no circle through the lip-sync
loader or the calibration tools (nor any other circle among ``pipeline``'s modules), and
``pipeline.settings`` (below every stage) imports no stage. Read from the source with ``ast``,
so a lazy (function-level) import counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pipeline.lipsync.registry import ENGINE_NAMES
from pipeline.settings import LIPSYNC_MODELS
from tests.conftest import REPO


def _imports(module: str) -> set[str]:
    return _imports_of(REPO / _module_file(module))


def _module_file(module: str) -> Path:
    path = Path(*module.split("."))
    return path / "__init__.py" if (REPO / path).is_dir() else path.with_suffix(".py")


def _imports_of(path: Path) -> set[str]:
    """Every module ``path`` names in an import, anywhere in it; ``from a import b`` names both
    ``a`` and ``a.b`` (``b`` may be a submodule)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _package_graph(package: str) -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports."""
    modules = {}
    for path in sorted((REPO / package).rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return {m: (_imports_of(p) & modules.keys()) - {m} for m, p in modules.items()}


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The graph's strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while not part or part[-1] != v:
                part.append(stack.pop())
            if len(part) > 1:
                found.append(sorted(part))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


@pytest.mark.parametrize(("module", "must_not"), [
    ("pipeline.settings", "pipeline.lipsync"),
    ("pipeline.lipsync.load", "pipeline.lipsync.registry"),
    ("pipeline.liveportrait.crop_reference", "pipeline.liveportrait.calibration"),
])
def test_no_arrow_back(module: str, must_not: str) -> None:
    assert not [m for m in _imports(module) if m.startswith(must_not)]


def test_no_import_circle_anywhere_in_the_pipeline() -> None:
    graph = _package_graph("pipeline")
    assert "pipeline.liveportrait.crop_reference" in graph["pipeline.liveportrait.calibration"]
    assert _circles(graph) == []


def test_the_circle_finder_finds_circles() -> None:
    """The check above on graphs whose answer is known: a lazy import back closes a circle."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _circles(graph) == [["a", "b", "c"]]
    assert _circles({**graph, "c": set()}) == []
    lazy = _imports_of(REPO / "pipeline" / "liveportrait" / "calibration.py")
    assert "pipeline.liveportrait.crop_reference" in lazy  # imported inside main() only


def test_the_registry_has_an_engine_for_every_configurable_name() -> None:
    assert ENGINE_NAMES == LIPSYNC_MODELS

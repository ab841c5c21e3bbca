"""The import arrows the house review asked to open stay open: no circle anywhere in
``pipeline`` (the lip-sync loader, the calibration tools and any new one), ``pipeline.settings``
(below every stage) imports no other pipeline module, each lip-sync engine imports no other
engine, and ``pipeline`` never imports ``watcher``. Read from the source with ``ast``, so a lazy
(function-level) import counts too."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

from pipeline.lipsync.registry import ENGINE_NAMES
from pipeline.settings import LIPSYNC_MODELS
from tests.conftest import REPO


@cache
def _modules(package: str) -> dict[str, Path]:
    """Every module of ``package`` by dotted name (a package by its ``__init__.py``)."""
    found = {}
    for path in (REPO / package).rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(module: str) -> set[str]:
    """The dotted names ``module`` imports anywhere in its source (``from a import b`` names
    both ``a`` and ``a.b``: ``b`` may be a submodule)."""
    path = _modules(module.split(".")[0]).get(module)
    if path is None:
        path = (REPO / Path(*module.split("."))).with_suffix(".py")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _circles(package: str) -> list[list[str]]:
    """The import circles inside ``package``: its strongly connected modules (Tarjan)."""
    modules = _modules(package)
    graph = {m: sorted(_imports(m) & modules.keys() - {m}) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = stack[stack.index(v):]
            del stack[stack.index(v):]
            if len(part) > 1:
                circles.append(sorted(part))

    for v in graph:
        if v not in index:
            visit(v)
    return circles


def test_the_pipeline_has_no_import_circle() -> None:
    assert _circles("pipeline") == []


def test_a_circle_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The finder itself: two modules importing each other, one of them lazily."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text("from pkg.b import x\n")
    (tmp_path / "pkg" / "b.py").write_text("def f():\n    from pkg import a\n")
    (tmp_path / "pkg" / "c.py").write_text("import pkg.a\n")
    monkeypatch.setattr(f"{__name__}.REPO", tmp_path)
    _modules.cache_clear()
    try:
        assert _circles("pkg") == [["pkg.a", "pkg.b"]]
    finally:
        _modules.cache_clear()


@pytest.mark.parametrize(("module", "must_not"), [
    ("pipeline.lipsync.wav2lip.load", "pipeline.lipsync.registry"),
    ("pipeline.liveportrait.crop_reference", "pipeline.liveportrait.calibration"),
])
def test_no_arrow_back(module: str, must_not: str) -> None:
    assert not [m for m in _imports(module) if m.startswith(must_not)]


def test_settings_import_no_pipeline_module() -> None:
    assert not [m for m in _imports("pipeline.settings") if m.split(".")[0] == "pipeline"]


@pytest.mark.parametrize(("engine", "other"), [("wav2lip", "musetalk"), ("musetalk", "wav2lip")])
def test_an_engine_imports_no_other_engine(engine: str, other: str) -> None:
    folder = f"pipeline.lipsync.{engine}"
    inside = [m for m in _modules("pipeline") if m.startswith(f"{folder}.")]
    assert inside, f"{folder} has no modules"
    assert not [(m, i) for m in inside for i in _imports(m)
                if i.startswith(f"pipeline.lipsync.{other}")]


def test_the_pipeline_never_imports_the_watcher() -> None:
    assert not [(m, i) for m in _modules("pipeline") for i in _imports(m)
                if i.split(".")[0] == "watcher"]


def test_the_registry_has_an_engine_for_every_configurable_name() -> None:
    assert ENGINE_NAMES == LIPSYNC_MODELS

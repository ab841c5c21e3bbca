"""The import arrows the house review asked to open stay open: no circle through the lip-sync
loader or the calibration tools, and ``pipeline.settings`` (below every stage) imports no
stage. Read from the source with ``ast``, so a lazy (function-level) import counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pipeline.lipsync.registry import ENGINE_NAMES
from pipeline.settings import LIPSYNC_MODELS
from tests.conftest import REPO


def _imports(module: str) -> set[str]:
    tree = ast.parse((REPO / Path(*module.split("."))).with_suffix(".py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize(("module", "must_not"), [
    ("pipeline.settings", "pipeline.lipsync"),
    ("pipeline.lipsync.wav2lip.load", "pipeline.lipsync.registry"),
    ("pipeline.liveportrait.crop_reference", "pipeline.liveportrait.calibration"),
])
def test_no_arrow_back(module: str, must_not: str) -> None:
    assert not [m for m in _imports(module) if m.startswith(must_not)]


def test_the_registry_has_an_engine_for_every_configurable_name() -> None:
    assert ENGINE_NAMES == LIPSYNC_MODELS

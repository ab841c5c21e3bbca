"""No torchvision, basicsr, facexlib, librosa or ffmpeg-python: neither pulled by installing
facedrop nor imported."""

from __future__ import annotations

import importlib.metadata as md
import re
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

FORBIDDEN = {"torchvision", "basicsr", "basicsr-fixed", "facexlib", "gfpgan", "librosa",
             "ffmpeg-python", "mediapipe"}
REPO = Path(__file__).resolve().parent.parent


def _runtime_closure(dist: str) -> set[str]:
    """Names of every distribution installing ``dist`` pulls, from installed metadata only
    (no network): requirements whose markers hold here, extras not requested."""
    seen: set[str] = set()
    todo = [canonicalize_name(dist)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for line in md.requires(name) or []:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            todo.append(canonicalize_name(req.name))
    return seen


def test_installing_facedrop_pulls_none_of_them() -> None:
    direct = {canonicalize_name(Requirement(r).name) for r in md.requires("facedrop") or []}
    assert "torch" in direct  # the walk starts from the real metadata
    closure = _runtime_closure("facedrop")
    assert {"torch", "numpy", "opencv-python-headless"} <= closure
    assert not closure & FORBIDDEN, sorted(closure & FORBIDDEN)


def test_no_source_file_imports_them() -> None:
    names = "torchvision|basicsr|facexlib|gfpgan|librosa|ffmpeg|mediapipe"
    pattern = re.compile(rf"^\s*(from|import)\s+({names})\b", re.M)
    offenders = [
        str(p.relative_to(REPO))
        for folder in ("pipeline", "watcher")
        for p in (REPO / folder).rglob("*.py")
        if pattern.search(p.read_text(encoding="utf-8"))
    ]
    assert not offenders

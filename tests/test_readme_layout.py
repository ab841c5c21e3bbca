"""The README's "Layout" block names every package folder of ``watcher`` and ``pipeline`` (and
the lip-sync engines' folders), and no folder that is gone, so a folder added or moved shows up
as a failing test."""

from __future__ import annotations

import re

from tests.conftest import REPO

PARENTS = ("watcher", "pipeline", "pipeline/lipsync")


def _layout_block() -> str:
    text = (REPO / "README.md").read_text()
    match = re.search(r"^## Layout\n\n```\n(.*?)\n```", text, re.DOTALL | re.MULTILINE)
    assert match, "README.md has no Layout section with a code block"
    return match.group(1)


def _first_column_folders() -> set[str]:
    """The folder names an indented line starts with (``  chain/``, ``  fleet/ storage/``); a
    continuation line (indented to the description column) names none."""
    names = set()
    for line in _layout_block().splitlines():
        if re.match(r" {2,4}\S", line):
            first = re.split(r"\s{2,}", line.strip())[0]
            names.update(re.findall(r"([A-Za-z0-9_]+)/", first))
    return names


def test_the_layout_names_every_package_folder() -> None:
    folders = {p.parent.name for top in PARENTS for p in (REPO / top).glob("*/__init__.py")}
    assert {"chain", "wav2lip", "fleet"} <= folders
    assert sorted(folders - _first_column_folders()) == []


def test_the_layout_names_no_folder_that_is_gone() -> None:
    named = _first_column_folders()
    assert named
    gone = [n for n in named if not any((REPO / top / n).is_dir() for top in PARENTS)]
    assert gone == []

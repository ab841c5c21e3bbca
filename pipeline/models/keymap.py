"""Renaming checkpoint keys without losing any: the strict part of every key conversion.

A conversion maps each file key to one of our keys. Two file keys that map to the same name
(``fc_kp.bias`` beside ``detector.fc_kp.bias``; a plain ``weight`` beside its spectral-norm
trio) would silently keep the later one; the official loaders refuse such a file, and so do we.
A group of file keys that only works complete (a spectral-norm trio) names the member it lacks.

Pure: torch only, no I/O. ``pipeline.weights.checkpoint.load_strict`` turns a
``KeyConversionError`` into the user-facing error, together with the missing and unexpected keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import torch

StateDict = dict[str, torch.Tensor]
K = TypeVar("K")


@dataclass(frozen=True)
class Collision:
    """Several file keys that convert to the same key of ours."""

    target: str
    sources: tuple[str, ...]

    def __str__(self) -> str:
        return f"{' and '.join(self.sources)} both become {self.target}"


class KeyConversionError(Exception):
    """The file's keys cannot be mapped one to one onto ours.

    ``converted`` is the best-effort result (the first of colliding keys kept, an incomplete
    group standing in for its folded key) so the strict load can report the other problems of
    the same file at once; it must never be loaded.
    """

    def __init__(self, collisions: Iterable[Collision], missing: Iterable[str],
                 converted: StateDict) -> None:
        self.collisions = tuple(collisions)
        self.missing = tuple(sorted(missing))
        self.converted = converted
        parts = []
        if self.collisions:
            parts.append(f"colliding keys: {'; '.join(map(str, self.collisions))}")
        if self.missing:
            parts.append(f"missing keys: {', '.join(self.missing)}")
        super().__init__("; ".join(parts))


def merge(pairs: Iterable[tuple[str, str, torch.Tensor]], missing: Iterable[str] = ()) -> StateDict:
    """``(file key, our key, tensor)`` triples -> our state dict, refusing any collision.

    Raises ``KeyConversionError`` naming every collision (all file keys involved) and every
    ``missing`` file key the conversion reported.
    """
    out: StateDict = {}
    sources: dict[str, list[str]] = {}
    for file_key, key, value in pairs:
        sources.setdefault(key, []).append(file_key)
        out.setdefault(key, value)
    collisions = [Collision(k, tuple(v)) for k, v in sources.items() if len(v) > 1]
    missing = tuple(missing)
    if collisions or missing:
        raise KeyConversionError(collisions, missing, out)
    return out


def rename(sd: Mapping[K, torch.Tensor], key: Callable[[K], str]) -> StateDict:
    """Every key renamed by ``key``; a collision raises ``KeyConversionError``."""
    return merge((str(k), key(k), v) for k, v in sd.items())

"""A sequence of pictures made or read only when indexed: the one ``Sequence`` protocol for
frame lists that are not held in memory (render-cache crops, JPEG-held frames, face crops made
on demand, a sample of frames).

A subclass says how many pictures there are (``__len__``) and how to get one (``_frame``); the
indexing rules live here once: negative indices count from the end, an index out of range is an
``IndexError`` (which also ends iteration), and a slice is a list of the pictures it selects.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import overload

import numpy as np


class LazyFrames(Sequence[np.ndarray]):
    """``Sequence[np.ndarray]`` whose items are produced by ``_frame`` on each read."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def _frame(self, index: int) -> np.ndarray:
        """Picture ``index``, already checked to be in ``0 .. len - 1``."""

    @overload
    def __getitem__(self, index: int) -> np.ndarray: ...

    @overload
    def __getitem__(self, index: slice) -> list[np.ndarray]: ...

    def __getitem__(self, index: int | slice) -> np.ndarray | list[np.ndarray]:
        n = len(self)
        if isinstance(index, slice):
            return [self._frame(i) for i in range(*index.indices(n))]
        k = index + n if index < 0 else index
        if not 0 <= k < n:
            raise IndexError(index)
        return self._frame(k)

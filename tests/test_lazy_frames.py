"""``LazyFrames``: the one indexing rule of the frame lists read on demand."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.media.lazy_frames import LazyFrames


class Counted(LazyFrames):
    """Picture ``k`` is a 1x1 image of value ``k``; every read is recorded."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.reads: list[int] = []

    def __len__(self) -> int:
        return self.n

    def _frame(self, index: int) -> np.ndarray:
        self.reads.append(index)
        return np.full((1, 1), index, np.uint8)


def test_an_index_reads_only_that_picture() -> None:
    frames = Counted(5)
    assert int(frames[3][0, 0]) == 3
    assert frames.reads == [3]


def test_negative_indices_count_from_the_end() -> None:
    frames = Counted(5)
    assert int(frames[-1][0, 0]) == 4
    assert int(frames[-5][0, 0]) == 0
    assert frames.reads == [4, 0]


@pytest.mark.parametrize("index", [5, 6, -6])
def test_an_index_out_of_range_is_an_index_error_and_reads_nothing(index: int) -> None:
    frames = Counted(5)
    with pytest.raises(IndexError):
        frames[index]
    assert frames.reads == []


def test_a_slice_is_a_list_of_what_it_selects() -> None:
    frames = Counted(6)
    part = frames[1:6:2]
    assert isinstance(part, list)
    assert [int(f[0, 0]) for f in part] == [1, 3, 5]
    assert frames.reads == [1, 3, 5]


def test_iteration_stops_at_the_end() -> None:
    assert [int(f[0, 0]) for f in Counted(3)] == [0, 1, 2]
    assert list(reversed([int(f[0, 0]) for f in Counted(2)])) == [1, 0]
    assert len(Counted(0)) == 0 and list(Counted(0)) == []

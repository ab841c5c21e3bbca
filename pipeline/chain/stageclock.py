"""Per-stage wall-clock accounting for one job: the source of the timing log's stage rows."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pipeline.spec import CacheState, StageTiming


class StageClock:
    """Accumulates seconds and frames per stage name, in first-use order."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._stages: dict[str, StageTiming] = {}

    def stage(self, name: str) -> StageTiming:
        """The entry for ``name``, created on first use."""
        if name not in self._stages:
            self._stages[name] = StageTiming(name=name, seconds=0.0, frames=0)
        return self._stages[name]

    @contextmanager
    def timed(self, name: str, frames: int = 0) -> Iterator[StageTiming]:
        """Add the block's wall time and ``frames`` to stage ``name``."""
        entry = self.stage(name)
        start = self._clock()
        try:
            yield entry
        finally:
            entry.seconds += self._clock() - start
            entry.frames += frames

    def skip(self, name: str, note: str) -> None:
        """Record a stage the job switched off, with the reason."""
        entry = self.stage(name)
        entry.cache = CacheState.SKIPPED
        entry.note = note

    def stages(self) -> list[StageTiming]:
        return list(self._stages.values())

"""Progress as plain lines, for ``facedrop run`` piped to a file or a log.

A terminal gets rich's bars (``watcher.commands.daemon``); a pipe would get their redraws as
thousands of lines, or nothing. Instead each stage prints one line when it starts and one when it
ends, and a long stage prints its progress and an estimate of the time left at most every
``interval`` seconds:

    render: started
    render: 40% after 2 min 0 s, about 3 min 0 s left
    render: done in 5 min 2 s

The time left is the stage's own extrapolation (elapsed / fraction done), the one figure that
needs no history. A stage seen again later (a stage can report in two passes) gets no second
start line.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from watcher.rates import spoken_duration

INTERVAL = 10.0  # seconds between progress lines of one stage
MIN_FRACTION = 0.01  # below this, an extrapolation is noise: "time left not known yet"


class StageLines:
    """A ``ProgressFn`` writing lines through ``write``; ``close`` ends the last stage."""

    def __init__(self, write: Callable[[str], None], *, interval: float = INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._write, self._interval, self._clock = write, interval, clock
        self._started: dict[str, float] = {}
        self._ended: set[str] = set()
        self._current = ""
        self._last_line = 0.0

    def __call__(self, stage: str, fraction: float) -> None:
        now = self._clock()
        if stage != self._current:
            self._end(self._current, now)
            self._current = stage
            self._last_line = now
            if stage not in self._started:
                self._started[stage] = now
                self._write(f"{stage}: started")
        if fraction >= 1.0:
            self._end(stage, now)
        elif now - self._last_line >= self._interval and stage not in self._ended:
            self._last_line = now
            self._write(f"{stage}: {self._progress(stage, fraction, now)}")

    def _progress(self, stage: str, fraction: float, now: float) -> str:
        elapsed = now - self._started[stage]
        text = f"{100 * fraction:.0f}% after {spoken_duration(elapsed)}"
        if fraction < MIN_FRACTION:
            return text + ", time left not known yet"
        return text + f", about {spoken_duration(elapsed * (1 - fraction) / fraction)} left"

    def _end(self, stage: str, now: float) -> None:
        if stage and stage not in self._ended:
            self._ended.add(stage)
            self._write(f"{stage}: done in {spoken_duration(now - self._started[stage])}")

    def close(self) -> None:
        """The job ended: the stage still open ends here."""
        self._end(self._current, self._clock())

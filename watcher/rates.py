"""This machine's measured job rates, per device, kept in the state folder (``rates.json``).

After each finished job its timing (device, video seconds, wall seconds) is added to the
device's recent samples; an estimate for a job of ``v`` seconds of video is a least-squares fit
``seconds = fixed + per_second * v`` over those samples (both terms kept non-negative), so it
learns both the per-job overhead and the per-second cost from this machine's own jobs, never
from constants. With one sample, or samples of one length, the fit is that rate alone. With no
sample for the device there is no estimate ("no estimate yet").

A render cache hit makes a repeat job many times faster than a first one; the samples mix
both, so the estimate is a typical job on this machine, and the note says how many jobs it
comes from. A broken or unreadable file reads as empty: an estimate is never worth a failure.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.atomic import remove_temps, write_text_atomic
from pipeline.spec import TimingRecord

RATES_FILE = "rates.json"
MAX_SAMPLES = 20  # recent jobs per device: the machine's current speed, not last year's
NO_ESTIMATE = "no estimate yet"

log = logging.getLogger("facedrop.rates")


@dataclass(frozen=True, slots=True)
class Estimate:
    """How long a job should take on ``device``, learnt from ``jobs`` finished jobs."""

    seconds: float
    device: str
    jobs: int

    def as_dict(self) -> dict[str, object]:
        return {"seconds": round(self.seconds, 1), "device": self.device, "from_jobs": self.jobs,
                "text": self.text()}

    def text(self) -> str:
        return f"about {spoken_duration(self.seconds)} (from {self.jobs} " \
               f"{'job' if self.jobs == 1 else 'jobs'} on {self.device})"


def spoken_duration(seconds: float) -> str:
    """``45 s``, ``3 min 10 s``, ``1 h 5 min``."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s" if s < 600 else f"{round(s / 60)} min"
    return f"{s // 3600} h {(s % 3600) // 60} min"


def video_seconds_of(record: TimingRecord) -> float:
    """The job's length: its frames at its rate, else its audio."""
    return record.frames / record.fps if record.frames and record.fps else record.audio_seconds


def fit(samples: list[tuple[float, float]]) -> tuple[float, float]:
    """(fixed seconds, seconds per video second) from (video s, wall s) samples."""
    v = np.array([s[0] for s in samples], np.float64)
    t = np.array([s[1] for s in samples], np.float64)
    rate_only = float(t.sum() / max(v.sum(), 1e-9))
    if len(samples) < 2 or np.ptp(v) < 1e-6:
        return 0.0, rate_only
    slope, fixed = np.polyfit(v, t, 1)
    if slope < 0 or fixed < 0:  # noise on few samples: keep the model physical
        return (0.0, rate_only) if fixed < 0 else (float(t.mean()), 0.0)
    return float(fixed), float(slope)


class RateStore:
    """``<state>/rates.json``: recent (video seconds, wall seconds) samples per device."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / RATES_FILE

    def _read(self) -> dict[str, object]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def samples(self, device: str) -> list[tuple[float, float]]:
        devices = self._read().get("devices")
        raw = devices.get(device, []) if isinstance(devices, dict) else []
        out = []
        for item in raw if isinstance(raw, list) else []:
            if (isinstance(item, list) and len(item) == 2
                    and all(isinstance(x, int | float) and math.isfinite(x) and x > 0
                            for x in item)):
                out.append((float(item[0]), float(item[1])))
        return out

    def last_device(self) -> str | None:
        device = self._read().get("last_device")
        return device if isinstance(device, str) else None

    def record(self, record: TimingRecord) -> None:
        """Add a finished job's figures to its device's samples (raises ``OSError``)."""
        video, wall = video_seconds_of(record), record.total_seconds
        if not (video > 0 and wall > 0):
            return
        data = self._read()
        devices = data.get("devices")
        devices = devices if isinstance(devices, dict) else {}
        kept = [list(s) for s in self.samples(record.device)]
        devices[record.device] = [*kept, [round(video, 3), round(wall, 3)]][-MAX_SAMPLES:]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.path, json.dumps(
            {"devices": devices, "last_device": record.device}, indent=2) + "\n")

    def sweep(self) -> None:
        """Remove temp files of ``rates.json`` a killed writer left (the daemon, at its start)."""
        for temp in remove_temps(self.path):
            log.info("removed %s, left by an interrupted write", temp.name)

    def estimate(self, video_seconds: float, device: str | None = None) -> Estimate | None:
        """The expected wall seconds of a job of ``video_seconds`` on ``device`` (default: the
        device of the last job), or None with no history there."""
        device = device or self.last_device()
        samples = self.samples(device) if device else []
        if not samples or device is None:
            return None
        fixed, per_second = fit(samples)
        return Estimate(fixed + per_second * max(0.0, video_seconds), device, len(samples))


def remember(rates: RateStore, record: TimingRecord) -> None:
    """Add a finished job to ``rates``; a failure is logged (an estimate is never worth failing
    a finished job). The parent process records it: the worker child keeps no state."""
    try:
        rates.record(record)
    except OSError as exc:
        log.warning("the job's rate was not recorded: %s", exc)

"""Per-job overhead of a ``Storage``, payload bytes excluded: what each queued job pays.

``measure_overhead(storage, workdir)`` times every operation a fleet job makes on tiny files
(so the figures are round trips and bookkeeping, not bandwidth) and adds them up for one job:
the intake stores the payloads (already stored: hash + existence check), the worker fetches
them, stages and commits its results, the intake reads and discards them. The fleet benchmark
calls it; ``python -m watcher.storage.bench [--config FILE]`` runs it on the configured storage.
Each round leaves one commit record (a few hundred bytes) behind, marked discarded.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from watcher.storage.protocol import Storage

RESULT = "result.txt"


@dataclass(frozen=True, slots=True)
class JobShape:
    """How many payloads and results a job moves (face + audio in, video + log out)."""

    payloads: int = 2
    results: int = 2


@dataclass(frozen=True, slots=True)
class OverheadReport:
    """Median and 90th-percentile milliseconds per operation, and the per-job sum."""

    rounds: int
    median_ms: dict[str, float]
    p90_ms: dict[str, float]
    shape: JobShape

    def counts(self) -> dict[str, int]:
        """How often one job makes each operation."""
        p, r = self.shape.payloads, self.shape.results
        return {
            "put_blob_existing": p, "get_blob": p, "put_result": r, "commit_result": 1,
            "committed": 1, "get_result": r, "discard": 1,
        }

    def per_job_ms(self, *, percentile: str = "median") -> float:
        """The storage overhead of one job: every operation it makes, at this percentile."""
        table = self.median_ms if percentile == "median" else self.p90_ms
        return sum(table[op] * n for op, n in self.counts().items())

    def lines(self) -> list[str]:
        """A printable table."""
        rows = [
            f"{op:<18} x{n}  median {self.median_ms[op]:7.2f} ms   p90 {self.p90_ms[op]:7.2f} ms"
            for op, n in self.counts().items()
        ]
        rows.append(f"{'per job':<21} median {self.per_job_ms():7.2f} ms   "
                    f"p90 {self.per_job_ms(percentile='p90'):7.2f} ms   ({self.rounds} rounds)")
        return rows


class Stopwatch:
    """Milliseconds per operation name, collected with ``with watch("op"): ...``."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.samples: dict[str, list[float]] = {}

    @contextlib.contextmanager
    def __call__(self, op: str) -> Iterator[None]:
        start = self.clock()
        yield
        self.samples.setdefault(op, []).append((self.clock() - start) * 1000)


def measure_overhead(
    storage: Storage,
    workdir: Path,
    *,
    rounds: int = 20,
    shape: JobShape | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> OverheadReport:
    """Time each storage operation of a job ``rounds`` times on tiny files in ``workdir``."""
    payload, result = workdir / "payload.bin", workdir / RESULT
    payload.write_bytes(secrets.token_bytes(1024))
    result.write_bytes(secrets.token_bytes(256))
    digest = storage.put_blob(payload)  # the upload itself is payload bytes: not timed
    watch, run = Stopwatch(clock), secrets.token_hex(4)
    for i in range(rounds):
        job, got = f"bench-{run}-{i}", workdir / f"got-{i}"
        with watch("put_blob_existing"):
            storage.put_blob(payload)
        with watch("get_blob"):
            storage.get_blob(digest, got)
        got.unlink()
        with watch("put_result"):
            manifest = {RESULT: storage.put_result(job, 1, RESULT, result)}
        with watch("commit_result"):
            storage.commit_result(job, 1, manifest)
        with watch("committed"):
            storage.committed(job)
        with watch("get_result"):
            storage.get_result(job, 1, RESULT, got)
        got.unlink()
        with watch("discard"):
            storage.discard(job)
    return OverheadReport(
        rounds=rounds,
        median_ms={op: statistics.median(v) for op, v in watch.samples.items()},
        p90_ms={op: sorted(v)[int(0.9 * (len(v) - 1))] for op, v in watch.samples.items()},
        shape=shape or JobShape(),
    )


def main(argv: list[str] | None = None) -> None:
    """Measure the configured shared storage and print the table."""
    from watcher.config import load_config
    from watcher.storage.factory import open_storage

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="config file naming the storage")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args(argv)
    config = load_config(args.config)
    start = time.perf_counter()
    storage = open_storage(config)
    print(f"{config.storage.backend.value}: opened and checked in "
          f"{(time.perf_counter() - start) * 1000:.1f} ms (once per process)")
    try:
        with tempfile.TemporaryDirectory() as scratch:
            for line in measure_overhead(storage, Path(scratch), rounds=args.rounds).lines():
                print(line)
    finally:
        storage.close()


if __name__ == "__main__":
    main()

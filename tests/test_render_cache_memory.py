"""The render cache keeps a process's memory flat however many frames a video has: 240 crops
(180 MB) written and read back through one entry, in a fresh process, raise its peak resident
memory by a few MB, not by the crops' size (a touched mapped page would otherwise stay
resident: a 2-minute voice job renders 3000 crops, 2.3 GB)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers.daemon_harness import REPO

SCRIPT = """
import sys
from pathlib import Path
import numpy as np
from pipeline.liveportrait.render_cache import FRAME_BYTES, RenderEntry
from pipeline.rss import peak_rss_mb
n = 240
entry = RenderEntry(Path(sys.argv[1]), n)
rng = np.random.default_rng(0)
crops = rng.integers(0, 255, (2, 512, 512, 3), dtype=np.uint8)
base = peak_rss_mb()
for start in range(0, n, 2):
    entry.write(np.arange(start, start + 2), crops + start % 7)
same = all(np.array_equal(entry.read(i), crops[i % 2] + (i - i % 2) % 7) for i in range(n))
print(same, peak_rss_mb() - base, n * FRAME_BYTES / 2**20)
"""


def test_writing_and_reading_many_crops_keeps_memory_flat(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "entry")], cwd=REPO,
                            capture_output=True, text=True, timeout=120, check=True)
    same, growth, size = result.stdout.split()
    assert same == "True"  # every crop reads back exactly as written
    assert float(size) == 180.0
    assert float(growth) < 20.0, result.stdout  # MiB: a few crops in flight, not 180

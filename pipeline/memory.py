"""How much memory a device can take now: the figures the render batch is chosen from.

One function per source, each reading the OS through an injected reader so tests (and other
platforms) can feed it text:

- Linux: ``MemAvailable`` from ``/proc/meminfo`` (free plus reclaimable page cache), or the
  free pages from ``os.sysconf`` where that file cannot be read; total from ``os.sysconf``.
- macOS: ``sysctl -n hw.memsize`` for the total, ``vm_stat`` for free + inactive pages. Apple
  Silicon's GPU shares this memory, so it is also the figure for MPS.
- CUDA: ``torch.cuda.mem_get_info`` (free and total memory of that GPU).

A probe that cannot read its source returns ``None``; the batch policy then falls back to its
smallest safe choice rather than guessing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

RunCommand = Callable[[Sequence[str]], str]  # argv -> stdout; raises OSError / CalledProcessError
ReadText = Callable[[Path], str]
Sysconf = Callable[[str], int]
CudaMemInfo = Callable[[int], tuple[int, int]]  # device index -> (free, total) bytes

MEMINFO = Path("/proc/meminfo")
# absolute: a LaunchAgent's PATH may lack /usr/sbin
SYSCTL, VM_STAT = "/usr/sbin/sysctl", "/usr/bin/vm_stat"


@dataclass(frozen=True, slots=True)
class MemoryFigures:
    """Bytes a device can allocate now without swapping (``available``) and its size."""

    available: int
    total: int
    source: str  # where the figures came from, for ``facedrop bench`` and logs


def run_command(argv: Sequence[str]) -> str:
    """Stdout of ``argv`` (short timeout: a probe must never hang a job)."""
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=5, check=True)
    return done.stdout


def read_text(path: Path) -> str:
    return path.read_text(encoding="ascii", errors="replace")


def linux_memory(read: ReadText = read_text, sysconf: Sysconf = os.sysconf) -> MemoryFigures | None:
    """MemAvailable (or, failing that, the free pages) and the physical memory."""
    try:
        page = sysconf("SC_PAGE_SIZE")
        total = sysconf("SC_PHYS_PAGES") * page
    except (OSError, ValueError):
        return None
    try:
        match = re.search(r"^MemAvailable:\s+(\d+)\s*kB", read(MEMINFO), re.MULTILINE)
    except OSError:
        match = None
    if match:
        return MemoryFigures(int(match.group(1)) * 1024, total, "/proc/meminfo MemAvailable")
    try:  # older kernels or no /proc: free pages only (less than what could be reclaimed)
        return MemoryFigures(sysconf("SC_AVPHYS_PAGES") * page, total, "sysconf free pages")
    except (OSError, ValueError):
        return None


def macos_memory(run: RunCommand = run_command) -> MemoryFigures | None:
    """``hw.memsize`` and ``vm_stat``'s free + inactive pages (what psutil calls available)."""
    try:
        total = int(run([SYSCTL, "-n", "hw.memsize"]).strip())
        stat = run([VM_STAT])
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    page_match = re.search(r"page size of (\d+) bytes", stat)
    pages = {name: int(n) for name, n in re.findall(r"^Pages ([a-z ]+):\s+(\d+)\.", stat,
                                                      re.MULTILINE)}
    if not page_match or "free" not in pages:
        return None
    available = (pages["free"] + pages.get("inactive", 0)) * int(page_match.group(1))
    return MemoryFigures(min(available, total), total, "vm_stat free + inactive")


def cuda_mem_get_info(index: int) -> tuple[int, int]:
    import torch

    free, total = torch.cuda.mem_get_info(index)
    return int(free), int(total)


def device_memory(
    device_type: str, device_index: int | None = None, *, platform: str = sys.platform,
    system: Callable[[], MemoryFigures | None] | None = None,
    cuda_info: CudaMemInfo = cuda_mem_get_info,
) -> MemoryFigures | None:
    """The memory the networks on ``device_type`` (cpu | mps | cuda) can use now, or ``None``."""
    if device_type == "cuda":
        try:
            free, total = cuda_info(device_index or 0)
        except (RuntimeError, AssertionError):  # no driver or a lost device: be conservative
            return None
        return MemoryFigures(free, total, "torch.cuda.mem_get_info")
    if system is None:
        system = macos_memory if platform == "darwin" else linux_memory
    return system()

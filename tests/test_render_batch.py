"""The render batch: chosen from the free memory and the device under ``auto``, the set number
otherwise; and the memory probes that feed it, on this machine and on given OS output."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from pipeline.liveportrait.render_batch import DEVICE_CAP, FRAME_BYTES, SHARE, render_batch_size
from pipeline.memory import (
    MemoryFigures,
    device_memory,
    linux_memory,
    macos_memory,
)

GIB = 2**30


def _mem(available: float, total: float = 8) -> MemoryFigures:
    return MemoryFigures(int(available * GIB), int(total * GIB), "test")


def test_auto_gives_small_batches_for_small_memory() -> None:
    assert render_batch_size("auto", _mem(0.3), "cpu") == 1  # less than one frame's worth: 1
    assert render_batch_size("auto", _mem(0.0), "mps") == 1  # never 0
    assert render_batch_size("auto", _mem(1.0), "mps") == 1  # half of 1 GiB holds one frame
    assert render_batch_size("auto", _mem(3.0), "mps") == 2  # an 8 GB Mac with the models loaded
    assert render_batch_size("auto", _mem(100.0), "cpu") == DEVICE_CAP["cpu"]  # capped: no gain


def test_cuda_batches_grow_with_free_gpu_memory_and_fp16_fits_twice_as_many() -> None:
    assert render_batch_size("auto", _mem(2.0), "cuda") == 2
    assert render_batch_size("auto", _mem(2.0), "cuda", dtype_bytes=2) == 4
    assert render_batch_size("auto", _mem(70.0, 80.0), "cuda") == DEVICE_CAP["cuda"]


def test_unreadable_memory_or_unknown_device_gives_one() -> None:
    assert render_batch_size("auto", None, "cuda") == 1
    assert render_batch_size("auto", _mem(64.0), "xpu") == 1


def test_a_set_number_wins_whatever_the_memory() -> None:
    assert render_batch_size(8, _mem(0.1), "cpu") == 8
    assert render_batch_size(32, None, "cuda") == 32
    assert render_batch_size(3, _mem(500.0), "mps") == 3


@pytest.mark.parametrize("device", ["cpu", "mps", "cuda", "xpu"])
def test_auto_never_exceeds_its_share_of_memory_nor_the_device_cap(device: str) -> None:
    for gib, dtype_bytes in itertools.product([x / 8 for x in range(0, 640)], (2, 4)):
        batch = render_batch_size("auto", _mem(gib, 1024), device, dtype_bytes)
        per_frame = FRAME_BYTES * dtype_bytes // 4
        assert 1 <= batch <= DEVICE_CAP.get(device, 1)
        assert batch == 1 or batch * per_frame <= gib * GIB * SHARE
        if batch < DEVICE_CAP.get(device, 1):  # not capped: one more frame would not fit
            assert (batch + 1) * per_frame > gib * GIB * SHARE


def test_the_probe_on_this_machine_is_plausible() -> None:
    figures = device_memory("cpu")  # this OS's probe, reading the real machine
    assert figures is not None
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert figures.total == total > 256 * 2**20
    assert 0 < figures.available <= total
    if sys.platform.startswith("linux"):
        assert figures.source == "/proc/meminfo MemAvailable"
        # MemAvailable is the free pages plus reclaimable cache: about what is free, or more
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        assert 0.5 * free <= figures.available


MEMINFO = "MemTotal:       16318412 kB\nMemFree:  1000 kB\nMemAvailable:    8159206 kB\n"


def _sysconf(name: str) -> int:
    return {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": 4_079_603, "SC_AVPHYS_PAGES": 250}[name]


def test_linux_probe_reads_memavailable_else_the_free_pages() -> None:
    figures = linux_memory(read=lambda _: MEMINFO, sysconf=_sysconf)
    assert figures == MemoryFigures(8159206 * 1024, 4_079_603 * 4096, "/proc/meminfo MemAvailable")

    def unreadable(_: Path) -> str:
        raise PermissionError("no /proc")

    figures = linux_memory(read=unreadable, sysconf=_sysconf)
    assert figures is not None and figures.available == 250 * 4096
    assert linux_memory(read=lambda _: "MemFree: 3 kB\n", sysconf=_sysconf).available == 250 * 4096

    def no_sysconf(name: str) -> int:
        raise ValueError(name)

    assert linux_memory(read=lambda _: MEMINFO, sysconf=no_sysconf) is None


VM_STAT = """Mach Virtual Memory Statistics: (page size of 16384 bytes)
Pages free:                                5000.
Pages active:                            150000.
Pages inactive:                          120000.
Pages speculative:                         3000.
Pages wired down:                         90000.
"""


def _macos(outputs: dict[str, str]):  # noqa: ANN202 - a RunCommand
    def run(argv: Sequence[str]) -> str:
        name = Path(argv[0]).name
        if name not in outputs:
            raise subprocess.CalledProcessError(1, list(argv))
        return outputs[name]

    return run


def test_macos_probe_reads_memsize_and_vm_stat() -> None:
    figures = macos_memory(_macos({"sysctl": "8589934592\n", "vm_stat": VM_STAT}))
    assert figures == MemoryFigures((5000 + 120000) * 16384, 8 * GIB, "vm_stat free + inactive")
    # an 8 GB Mac with ~2 GiB free gets a batch of 2 at most, never 8
    assert render_batch_size("auto", figures, "mps") == 2


@pytest.mark.parametrize("outputs", [
    {"vm_stat": VM_STAT},  # sysctl failed
    {"sysctl": "8589934592\n"},  # vm_stat missing
    {"sysctl": "lots\n", "vm_stat": VM_STAT},
    {"sysctl": "8589934592\n", "vm_stat": "Pages free: 10.\n"},  # no page size line
])
def test_macos_probe_gives_none_when_it_cannot_read(outputs: dict[str, str]) -> None:
    assert macos_memory(_macos(outputs)) is None


def test_device_memory_asks_cuda_for_cuda_and_the_os_otherwise() -> None:
    asked: list[int] = []

    def info(index: int) -> tuple[int, int]:
        asked.append(index)
        return 6 * GIB, 24 * GIB

    assert device_memory("cuda", 1, cuda_info=info) == MemoryFigures(6 * GIB, 24 * GIB,
                                                                     "torch.cuda.mem_get_info")
    assert asked == [1]
    system = _mem(3.0)
    assert device_memory("mps", platform="darwin", system=lambda: system) is system
    assert device_memory("cpu", cuda_info=info, system=lambda: None) is None and asked == [1]

    def lost(index: int) -> tuple[int, int]:
        raise RuntimeError("CUDA driver not found")

    assert device_memory("cuda", cuda_info=lost) is None

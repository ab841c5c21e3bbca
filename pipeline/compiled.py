"""``torch.compile`` (inductor) for a network, never required: eager whenever it cannot be had.

``pipeline.compile`` in the config: ``on`` compiles LivePortrait's generator G (the render's
largest part) where a C++ compiler is found; ``off`` never; ``auto`` compiles it on the CPU in a
worker process (the daemon's worker child, ``facedrop worker``), and nowhere else. Measured on
a 2-core AVX-512 EPYC: ``bench --compare`` gave W + G 1.39x over the official nets with G
compiled, against 1.15x eager. The first compile costs minutes (196-380 s on that machine when
busy), a later process loads it from the on-disk cache in about 11 s: paid once per worker, it
is back after a few hundred renders (a voice job renders every frame: 25 a second), which a
worker reaches and a one-job ``facedrop run`` often does not. On CUDA and MPS ``auto`` stays
eager: not measured there (no GPU was lent).

- **once per process**: the compiled module lives with the loaded networks (the daemon's worker
  keeps them between jobs), so each input shape compiles once per process;
- **cached across processes**: inductor's on-disk cache is ``<cache_dir>/inductor`` (unless
  ``TORCHINDUCTOR_CACHE_DIR`` is set), so a later worker reuses the compiled kernels;
- **never required**: with no compiler, or when the compile fails, the module runs eager and
  one log line says why.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from pipeline.settings import ProcessKind

log = logging.getLogger("facedrop.compile")  # the worker child shows facedrop's INFO lines

M = TypeVar("M", bound=nn.Module)
COMPILERS = ("c++", "g++", "clang++")  # inductor's CPU kernels are C++
ENV = "TORCHINDUCTOR_CACHE_DIR"


def wanted(setting: str, device: torch.device, process: ProcessKind) -> bool:
    """Whether ``pipeline.compile`` asks for a compile on ``device`` in a ``process``."""
    if setting == "on":
        return device.type in ("cpu", "cuda")
    return setting == "auto" and process is ProcessKind.WORKER and device.type == "cpu"


def compiler_found(which: Callable[[str], str | None] = shutil.which) -> bool:
    return any(which(name) for name in COMPILERS)


class CompiledOrEager(nn.Module):
    """``module`` run through ``compile_fn(module)``; on the first failure, eager from then on.

    The compile happens at the first call (torch.compile is lazy), so that is where a failure
    shows, and where one log line says what it cost; the outputs are the eager module's up to
    float rounding. The compiled module sees one sample at a time: with ``dynamic=False`` every
    new input shape is a new compile (minutes, cold), and a render's batch varies (the last
    chunk, ``batch_size: auto``). G treats the samples of a batch independently, so this is
    exact: on the quiet 2-core CPU a compiled batch-2 graph and single frames gave the same
    output bit for bit and the same time (2.196 against 2.192 s per frame; eager 2.707 s).
    """

    def __init__(self, module: nn.Module, compile_fn: Callable[[nn.Module], Any],
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.eager = module
        self._compiled: Any = compile_fn(module)
        self._clock = clock
        self._timed = False

    def forward(self, x: torch.Tensor) -> Any:
        if self._compiled is not None:
            try:
                return torch.cat([self._one(x[i:i + 1]) for i in range(x.shape[0])])
            # a compile can fail in many ways (missing headers, a compiler crash, an op
            # inductor lacks); every one of them means the same thing here: run eager
            except Exception as exc:  # noqa: BLE001
                log.warning("torch.compile failed, running %s eager: %s",
                            type(self.eager).__name__, str(exc).splitlines()[0][:200])
                self._compiled = None
        return self.eager(x)

    def _one(self, x: torch.Tensor) -> torch.Tensor:
        if self._timed:
            out: torch.Tensor = self._compiled(x)
            return out
        name = type(self.eager).__name__
        log.info("compiling %s (torch.compile, once per process; later processes load it from "
                 "the cache in seconds)", name)
        start = self._clock()
        out = self._compiled(x)
        self._timed = True
        log.info("%s compiled in %.0f s", name, self._clock() - start)
        return out


def maybe_compile(module: M, setting: str, device: torch.device, cache_dir: Path,
                  process: ProcessKind, *, which: Callable[[str], str | None] = shutil.which,
                  environ: MutableMapping[str, str] = os.environ,
                  compile_fn: Callable[[nn.Module], Any] | None = None) -> M | CompiledOrEager:
    """``module`` compiled as ``setting`` asks (a ``CompiledOrEager``), or itself."""
    if not wanted(setting, device, process):
        return module
    if device.type == "cpu" and not compiler_found(which):
        # asked for: a warning; the default's quiet note says what a compiler would bring
        level = logging.WARNING if setting == "on" else logging.INFO
        log.log(level, "pipeline.compile is %s but no C++ compiler (%s) was found: the render "
                "runs eager (install g++ for a compiled one, about 1.3x faster on a CPU)",
                setting, ", ".join(COMPILERS))
        return module
    _cache_in(cache_dir / "inductor", environ)
    return CompiledOrEager(module, compile_fn or _inductor)


def _cache_in(folder: Path, environ: MutableMapping[str, str]) -> None:
    """Inductor's cache in ``folder`` unless the user set TORCHINDUCTOR_CACHE_DIR. Torch writes
    its default (a temp folder, lost at reboot) into the variable the first time anything in
    the process asks for the cache (a voice job's audio model does), so that value counts as
    unset."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    if environ.get(ENV) in (None, os.path.abspath(default_cache_dir())):
        environ[ENV] = str(folder)


def _inductor(module: nn.Module) -> Any:
    # dynamic=False: one graph per input shape (CompiledOrEager feeds single samples, so one);
    # freezing: weights folded into the graph as constants (prepacked for oneDNN), as measured
    return torch.compile(module, dynamic=False, options={"freezing": True})

"""``torch.compile`` (inductor) for a network, never required: eager whenever it cannot be had.

``pipeline.compile`` in the config: ``on`` compiles LivePortrait's generator G (the render's
largest part) where a C++ compiler is found; ``off`` never; ``auto`` compiles it on the CPU in a
worker process (the daemon's worker child, ``facedrop worker``) from its first frame, and in a
one-job process (``facedrop run``) only for a render of at least ``PAYS_AFTER_RENDERS`` frames
(6 s of a voice or still job at 25 fps); never on CUDA or MPS (not measured there: no GPU was
lent). Measured on the quiet 2-core AVX-512 EPYC: W + G 1.33x over the official nets with G
compiled, against 1.18x eager (``bench --compare``); the first compile takes 25-35 s there
(minutes on a busy machine), a later process loads it from the on-disk cache in seconds, and
each render saves about 0.6 s.

- **once per process**: the compiled module lives with the loaded networks (the daemon's worker
  keeps them between jobs) and sees one frame at a time, so it compiles once per process;
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


# renders ahead that repay a compile in a one-job process: about 0.6 s saved per render on a
# 2-core CPU against a 25-35 s first compile (seconds from the cache), with room for a slower one
PAYS_AFTER_RENDERS = 150


def wanted(setting: str, device: torch.device, process: ProcessKind) -> bool:
    """Whether G is compiled from its first frame on ``device`` in a ``process``."""
    if setting == "on":
        return device.type in ("cpu", "cuda")
    return setting == "auto" and process is ProcessKind.WORKER and device.type == "cpu"


def deferred(setting: str, device: torch.device, process: ProcessKind) -> bool:
    """``auto`` in a one-job process on the CPU: compiled only for a render that repays it
    (``CompiledOrEager.expect``), such as a long voice or still job's."""
    return setting == "auto" and process is ProcessKind.ONE_JOB and device.type == "cpu"


def compiler_found(which: Callable[[str], str | None] = shutil.which) -> bool:
    return any(which(name) for name in COMPILERS)


class CompiledOrEager(nn.Module):
    """``module`` run through ``compile_fn(module)``; on the first failure, eager from then on.

    ``compile_fn`` runs at the first armed call (so a process that never compiles never even
    imports inductor), and torch.compile is lazy too: the compile happens there, so that is
    where a failure shows, and where one log line says what it cost; the outputs are the eager
    module's up to float rounding. The compiled module sees one sample at a time: with
    ``dynamic=False`` every new input shape is a new compile (minutes, cold), and a render's
    batch varies (the last chunk, ``batch_size: auto``). G treats the samples of a batch
    independently, so this is exact: on the quiet 2-core CPU a compiled batch-2 graph and single
    frames gave the same output bit for bit and the same time (2.196 against 2.192 s per frame;
    eager 2.707 s).
    """

    def __init__(self, module: nn.Module, compile_fn: Callable[[nn.Module], Any],
                 clock: Callable[[], float] = time.monotonic, *, armed: bool = True,
                 pays_after: int = PAYS_AFTER_RENDERS) -> None:
        super().__init__()
        self.eager = module
        self._compile_fn: Callable[[nn.Module], Any] | None = compile_fn  # None after a failure
        self._compiled: Any = None
        self._clock = clock
        self._timed = False
        self.armed = armed  # False: eager until a render plan repays the compile
        self._pays_after = pays_after

    def expect(self, renders: int) -> None:
        """``renders`` frames are about to be rendered: enough of them arm the compile."""
        if renders >= self._pays_after:
            self.armed = True

    def forward(self, x: torch.Tensor) -> Any:
        if self._compile_fn is not None and self.armed:
            try:
                if self._compiled is None:
                    self._compiled = self._compile_fn(self.eager)
                return torch.cat([self._one(x[i:i + 1]) for i in range(x.shape[0])])
            # a compile can fail in many ways (missing headers, a compiler crash, an op
            # inductor lacks); every one of them means the same thing here: run eager
            except Exception as exc:  # noqa: BLE001
                log.warning("torch.compile failed, running %s eager: %s",
                            type(self.eager).__name__, str(exc).splitlines()[0][:200])
                self._compile_fn = self._compiled = None
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
    """``module`` compiled as ``setting`` asks (a ``CompiledOrEager``, armed unless the
    compile is ``deferred``), or itself."""
    armed = wanted(setting, device, process)
    if not armed and not deferred(setting, device, process):
        return module
    if device.type == "cpu" and not compiler_found(which):
        if not armed:  # a short one-job run would not have compiled: nothing worth a note
            return module
        # asked for: a warning; the default's quiet note says what a compiler would bring
        level = logging.WARNING if setting == "on" else logging.INFO
        log.log(level, "pipeline.compile is %s but no C++ compiler (%s) was found: the render "
                "runs eager (install g++ for a compiled one, about 1.3x faster on a CPU)",
                setting, ", ".join(COMPILERS))
        return module
    _cache_in(cache_dir / "inductor", environ)
    return CompiledOrEager(module, compile_fn or _inductor, armed=armed)


def expect_renders(module: nn.Module, renders: int) -> None:
    """Tell ``module`` (G, compiled or not) how many frames the render ahead has."""
    if isinstance(module, CompiledOrEager):
        module.expect(renders)


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

"""``torch.compile`` (inductor) for a network, never required: eager whenever it cannot be had.

``pipeline.compile`` in the config: ``on`` compiles LivePortrait's generator G (the render's
largest part) where a C++ compiler is found; ``off`` never; ``auto`` is off today. Measured on a
2-core AVX-512 EPYC busy with other work: G went from 5.26 to 4.27 CPU-s per frame on one
thread (1.23x, max |diff| 3e-6); ``bench --compare`` gave W + G 1.39x over the official nets
against 1.15x eager. The first compile took 196-380 s there (11 s in a later process, from the
on-disk cache): it pays back after a few hundred rendered frames, hence not by default yet.

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
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

log = logging.getLogger(__name__)

M = TypeVar("M", bound=nn.Module)
COMPILERS = ("c++", "g++", "clang++")  # inductor's CPU kernels are C++


def wanted(setting: str, device: torch.device) -> bool:
    """Whether ``pipeline.compile`` asks for a compile on ``device`` (``auto``: not yet)."""
    return setting == "on" and device.type in ("cpu", "cuda")


def compiler_found(which: Callable[[str], str | None] = shutil.which) -> bool:
    return any(which(name) for name in COMPILERS)


class CompiledOrEager(nn.Module):
    """``module`` run through ``compile_fn(module)``; on the first failure, eager from then on.

    The compile happens at the first call (torch.compile is lazy), so that is where a failure
    shows; the outputs are the eager module's up to float rounding.
    """

    def __init__(self, module: nn.Module, compile_fn: Callable[[nn.Module], Any]) -> None:
        super().__init__()
        self.eager = module
        self._compiled: Any = compile_fn(module)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self._compiled is not None:
            try:
                return self._compiled(*args, **kwargs)
            # a compile can fail in many ways (missing headers, a compiler crash, an op
            # inductor lacks); every one of them means the same thing here: run eager
            except Exception as exc:  # noqa: BLE001
                log.warning("torch.compile failed, running %s eager: %s",
                            type(self.eager).__name__, str(exc).splitlines()[0][:200])
                self._compiled = None
        return self.eager(*args, **kwargs)


def maybe_compile(module: M, setting: str, device: torch.device, cache_dir: Path, *,
                  which: Callable[[str], str | None] = shutil.which,
                  environ: MutableMapping[str, str] = os.environ,
                  compile_fn: Callable[[nn.Module], Any] | None = None) -> M | CompiledOrEager:
    """``module`` compiled as ``setting`` asks (a ``CompiledOrEager``), or itself."""
    if not wanted(setting, device):
        return module
    if device.type == "cpu" and not compiler_found(which):
        log.warning("pipeline.compile is on but no C++ compiler (%s) was found: running eager",
                    ", ".join(COMPILERS))
        return module
    environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir / "inductor"))
    return CompiledOrEager(module, compile_fn or _inductor)


def _inductor(module: nn.Module) -> Any:
    # dynamic=False: one graph per batch shape (a render has at most two: full and last);
    # freezing: weights folded into the graph as constants (prepacked for oneDNN), as measured
    return torch.compile(module, dynamic=False, options={"freezing": True})

"""Choose the torch device and precision, and make missing MPS ops fall back to the CPU, logged.

``device: auto`` prefers MPS (Apple Silicon), then CUDA, then the CPU. ``dtype: auto`` gives fp16
only on a GPU and only for a stage whose fp16 output has been checked against fp32 (PSNR bounds in
``tests/test_half_precision.py``). ``bf16`` is an explicit choice (CPU, CUDA, MPS): its error
passes the same bounds but is larger than fp16's (7 mantissa bits against 10), and on CPUs
without bf16 instructions it is slower than fp32, so ``auto`` never picks it.
"""

from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING

from pipeline.errors import ConfigError

if TYPE_CHECKING:  # torch is imported inside the functions: see enable_mps_fallback()
    import torch

MPS_FALLBACK_ENV = "PYTORCH_ENABLE_MPS_FALLBACK"
_DTYPES = {"fp32": "float32", "float32": "float32", "fp16": "float16", "float16": "float16",
           "half": "float16", "bf16": "bfloat16", "bfloat16": "bfloat16"}


class DeviceUnavailableError(ConfigError):
    """The configured device or precision cannot be used on this machine."""

    title = "Device not available"


def pick_device(pref: str = "auto") -> torch.device:
    """The torch device for ``pref``: auto | mps | cuda | cuda:N | cpu.

    An explicitly requested device that this machine lacks raises ``DeviceUnavailableError``
    with the fix, rather than silently running 20x slower on the CPU.
    """
    import torch

    choice = (pref or "auto").strip().lower()
    if choice == "auto":
        if _mps_available():
            return torch.device("mps")
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    if choice == "cpu":
        return torch.device("cpu")
    if choice == "mps":
        if not _mps_available():
            raise DeviceUnavailableError(_mps_problem(), file="pipeline.device",
                                         fix="set pipeline.device to auto or cpu")
        return torch.device("mps")
    if re.fullmatch(r"cuda(:\d+)?", choice):
        index = int(choice.split(":")[1]) if ":" in choice else 0
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            raise DeviceUnavailableError(
                f"CUDA device {index} is not available (torch {torch.__version__}, "
                f"{torch.cuda.device_count()} CUDA devices)",
                file="pipeline.device",
                fix="install a CUDA build of torch and its driver, or set pipeline.device "
                    "to auto or cpu",
            )
        return torch.device(choice)
    raise ConfigError(f"unknown device {pref!r}", file="pipeline.device",
                      fix="use one of: auto, mps, cuda, cuda:N, cpu")


def is_device_name(pref: str) -> bool:
    """Whether ``pref`` is a device name ``pick_device`` understands (not whether it is here)."""
    return re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", (pref or "").strip().lower()) is not None


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (timings; CPU work is already done when a call returns)."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def device_peak_mb(device: torch.device) -> float:
    """The accelerator's peak allocation in MiB (CUDA: since the last reset; MPS: the driver's
    current total); 0 on the CPU."""
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    if device.type == "mps":
        return torch.mps.driver_allocated_memory() / 2**20
    return 0.0


def pick_dtype(device: torch.device, pref: str = "auto", fp16_checked: bool = False) -> torch.dtype:
    """The compute dtype for a stage on ``device``.

    auto: float16 on CUDA or MPS when ``fp16_checked`` (the stage's fp16 output was compared to
    fp32), else float32. fp16 on the CPU is refused: many CPU kernels lack it or are slower.
    """
    import torch

    choice = (pref or "auto").strip().lower()
    if choice == "auto":
        gpu = device.type in ("cuda", "mps")
        return torch.float16 if gpu and fp16_checked else torch.float32
    if choice not in _DTYPES:
        raise ConfigError(f"unknown dtype {pref!r}", file="pipeline.dtype",
                          fix="use one of: auto, fp32, fp16, bf16")
    dtype = getattr(torch, _DTYPES[choice])
    if dtype == torch.float16 and device.type == "cpu":
        raise DeviceUnavailableError("fp16 is not supported on the CPU", file="pipeline.dtype",
                                     fix="set pipeline.dtype to auto or fp32")
    return dtype


def enable_mps_fallback() -> bool:
    """Set PYTORCH_ENABLE_MPS_FALLBACK=1 for this process unless the user set it; say if it works.

    torch reads the variable when it loads its MPS kernels, i.e. at ``import torch``: call this
    at the very start of the daemon/CLI, before torch is imported anywhere. Returns True when
    the fallback is in effect (set now before torch loaded, or already set to non-zero), False
    when torch was already imported without it or the user disabled it (value 0).
    """
    current = os.environ.get(MPS_FALLBACK_ENV)
    if current is not None:
        return current.strip() not in ("", "0")
    os.environ[MPS_FALLBACK_ENV] = "1"
    # torch registers its MPS fallback kernel when the library loads; set later, the variable
    # only reaches child processes. This module imports torch lazily so the daemon can call
    # this first.
    return "torch" not in sys.modules


def accelerator_fix(system: str, machine: str) -> str:
    """What to do when torch found no GPU, for this platform (``sys.platform``) and CPU
    architecture (``platform.machine()``): only a Mac has MPS, only an NVIDIA GPU has CUDA."""
    arch = machine.lower()
    if system == "darwin":
        if arch in ("arm64", "aarch64"):
            return ("MPS needs macOS 12.3+ and torch >= 2.4 built with MPS: "
                    "pip install --upgrade torch")
        return ("this Python runs as x86_64 (an Intel Mac, or Rosetta): on Apple Silicon, "
                "install an arm64 Python and torch >= 2.4 to use the GPU (MPS)")
    if system.startswith("linux") or system in ("win32", "cygwin"):
        return ("with an NVIDIA GPU, install its driver and a CUDA build of torch "
                "(https://pytorch.org/get-started/locally/); without one, the CPU is all there is")
    return "no GPU backend of torch supports this platform: jobs run on the CPU"


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def _mps_problem() -> str:
    import torch

    backend = getattr(torch.backends, "mps", None)
    if backend is None or not backend.is_built():
        return f"this torch build ({torch.__version__}) has no MPS support"
    return "MPS is not available (it needs Apple Silicon and macOS 12.3 or later)"

"""Device and precision choice, the MPS fallback switch, and fallback logging."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from pipeline import device as dev
from pipeline.errors import ConfigError


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


def test_auto_prefers_mps_then_cuda_then_cpu(monkeypatch: pytest.MonkeyPatch, no_gpu: None
                                             ) -> None:
    assert dev.pick_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert dev.pick_device("auto") == torch.device("cuda")
    assert dev.pick_device("cuda:1") == torch.device("cuda:1")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert dev.pick_device("AUTO") == torch.device("mps")
    assert dev.pick_device("cpu") == torch.device("cpu")


def test_auto_matches_this_machine() -> None:
    expected = ("mps" if torch.backends.mps.is_available()
                else "cuda" if torch.cuda.is_available() else "cpu")
    assert dev.pick_device().type == expected


@pytest.mark.parametrize("pref", ["mps", "cuda", "cuda:3"])
def test_an_unavailable_device_is_an_error_with_a_fix(no_gpu: None, pref: str) -> None:
    with pytest.raises(dev.DeviceUnavailableError) as info:
        dev.pick_device(pref)
    assert isinstance(info.value, ConfigError)
    assert "auto or cpu" in info.value.fix and info.value.file == "pipeline.device"


def test_unknown_names_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown device"):
        dev.pick_device("tpu")
    with pytest.raises(ConfigError, match="unknown dtype"):
        dev.pick_dtype(torch.device("cpu"), "bf17")


@pytest.mark.parametrize(
    ("kind", "pref", "checked", "expected"),
    [
        ("cuda", "auto", True, torch.float16),
        ("mps", "auto", True, torch.float16),
        ("cuda", "auto", False, torch.float32),  # not checked against fp32: stay exact
        ("cpu", "auto", True, torch.float32),
        ("mps", "fp32", True, torch.float32),
        ("cuda", "fp16", False, torch.float16),  # an explicit choice is respected
    ],
)
def test_pick_dtype(kind: str, pref: str, checked: bool, expected: torch.dtype) -> None:
    assert dev.pick_dtype(torch.device(kind), pref, fp16_checked=checked) == expected


def test_fp16_on_cpu_is_refused() -> None:
    with pytest.raises(dev.DeviceUnavailableError, match="CPU"):
        dev.pick_dtype(torch.device("cpu"), "fp16", fp16_checked=True)


def test_enable_mps_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(dev.MPS_FALLBACK_ENV, "0")
    assert dev.enable_mps_fallback() is False  # the user's explicit choice stands
    assert dev.os.environ[dev.MPS_FALLBACK_ENV] == "0"
    monkeypatch.delenv(dev.MPS_FALLBACK_ENV)
    # torch is already loaded in this process: setting it now cannot reach torch's kernels.
    assert dev.enable_mps_fallback() is False
    assert dev.os.environ[dev.MPS_FALLBACK_ENV] == "1"
    assert dev.enable_mps_fallback() is True


def test_importing_media_and_device_loads_no_torch() -> None:
    """The daemon can call enable_mps_fallback() before anything imports torch."""
    code = (
        "import os, sys\n"
        "os.environ.pop('PYTORCH_ENABLE_MPS_FALLBACK', None)\n"
        "import pipeline.device as d, pipeline.media.image, pipeline.media.audio\n"
        "import pipeline.media.video, pipeline.media.verify, pipeline.media.mel\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "assert d.enable_mps_fallback() is True\n"
        "assert os.environ['PYTORCH_ENABLE_MPS_FALLBACK'] == '1'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)

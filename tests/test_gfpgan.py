"""GFPGANv1Clean: official checkpoint layout, strict loading, parity with the official code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.enhance.load import gfpgan_from_checkpoint, load_gfpgan
from pipeline.errors import ModelLoadError
from pipeline.models.gfpgan import (
    EXPECTED_KEYS,
    GFPGANv1Clean,
    build_gfpgan_v14,
    convert_gfpgan_state_dict,
)
from tests.helpers.deterministic_weights import fill_state_dict
from tests.helpers.gfpgan_checkpoints import random_gfpgan_state_dict, write_gfpgan_checkpoint
from tests.helpers.tolerance import assert_close, assert_stat_close

# numeric parity: CI runs these again under another ATEN_CPU_CAPABILITY
pytestmark = pytest.mark.parity

CPU = torch.device("cpu")
FIXTURE = Path(__file__).parent / "fixtures" / "parity" / "gfpgan.npz"
# Mean / std of the float32 output: within this many float32 ulps of the output's magnitude.
STAT_ULPS = 32


@pytest.fixture(scope="module")
def template() -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        return build_gfpgan_v14().state_dict()


def test_official_layout_file_loads_strictly(tmp_path: Path) -> None:
    path = write_gfpgan_checkpoint(tmp_path / "gfpgan" / "GFPGANv1.4.pth", seed=5)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert list(raw) == ["params_ema"] and len(raw["params_ema"]) == EXPECTED_KEYS
    net = load_gfpgan(path, CPU, torch.float32)
    assert not net.training
    state = net.state_dict()
    assert len(state) == EXPECTED_KEYS
    for key, value in raw["params_ema"].items():
        assert torch.equal(state[key], value), key


def test_convert_picks_ema_then_params_and_is_idempotent(template: dict) -> None:
    ema = {"final_linear.weight": torch.ones(2)}
    raw = {"final_linear.weight": torch.zeros(2)}
    picked = convert_gfpgan_state_dict({"params": raw, "params_ema": ema})
    assert torch.equal(picked["final_linear.weight"], ema["final_linear.weight"])
    assert convert_gfpgan_state_dict({"params": raw})["final_linear.weight"] is raw[
        "final_linear.weight"]
    assert convert_gfpgan_state_dict(convert_gfpgan_state_dict({"params_ema": ema})) == ema
    with pytest.raises(ValueError, match="params_ema"):
        convert_gfpgan_state_dict({"state_dict": ema})
    with pytest.raises(ModelLoadError, match="unknown layout"):
        gfpgan_from_checkpoint({"state_dict": ema}, CPU, torch.float32)


def test_wrong_key_is_reported_by_name() -> None:
    sd = random_gfpgan_state_dict(seed=1)
    sd["stylegan_decoder.to_rgbs.3.bais"] = sd.pop("stylegan_decoder.to_rgbs.3.bias")
    sd["final_linear.weight"] = sd["final_linear.weight"][:, :100]
    with pytest.raises(ModelLoadError) as err:
        gfpgan_from_checkpoint({"params_ema": sd}, CPU, torch.float32)
    msg = err.value.user_message()
    assert "missing keys: stylegan_decoder.to_rgbs.3.bias" in msg
    assert "unexpected keys: stylegan_decoder.to_rgbs.3.bais" in msg
    assert "final_linear.weight (file (8192, 100), network (8192, 4096))" in msg


def test_parity_with_official_code(template: dict) -> None:
    """The fixture holds the official GFPGANv1Clean's output on the same deterministic weights
    (tests/deterministic_weights.py, gain from the fixture) and the same seeded input."""
    fx = np.load(FIXTURE)
    sd = fill_state_dict(template, float(fx["gain"]))
    net = gfpgan_from_checkpoint({"params_ema": sd}, CPU, torch.float32)
    gen = torch.Generator().manual_seed(int(fx["input_seed"]))
    x = torch.rand(1, 3, 512, 512, generator=gen) * 2 - 1
    with torch.inference_mode():
        out = net(x, randomize_noise=False)
    assert out.shape == (1, 3, 512, 512)
    out64 = out.double()
    assert float(out64.std()) > 0.5, "output collapsed: the comparison would prove little"
    s = int(fx["stride"])
    assert_close(out[:, :, ::s, ::s], fx["out_sub"], atol=1e-4, what="output (strided)")
    n = out.numel()
    for stat, value in (("sum / n", float(out64.sum()) / n), ("mean", float(out64.mean())),
                        ("std", float(out64.std()))):
        expected = float(fx["out_sum"]) / n if stat == "sum / n" else float(fx[f"out_{stat}"])
        assert_stat_close(value, expected, magnitude=fx["out_sub"], ulps=STAT_ULPS,
                          what=f"output {stat}")


def test_reduced_precision_runs_and_stays_close() -> None:
    """fp16 plumbing on a small configuration of the same network (CPU half kernels): output in
    fp16, finite, near fp32. The full-size error on CUDA/MPS with real weights is unmeasured."""
    net = GFPGANv1Clean(out_size=64, num_style_feat=32, channel_multiplier=1, num_mlp=2,
                        input_is_latent=True, different_w=True, narrow=1 / 16, sft_half=True)
    net.load_state_dict(fill_state_dict(net.state_dict(), 1.0))
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.inference_mode():
        ref = net.eval()(x)
        half = net.to(torch.float16)(x.half())
    assert half.dtype == torch.float16 and bool(torch.isfinite(half).all())
    assert float(ref.std()) > 0.1
    # fp16 against fp32: a few dozen fp16 ulps of the output's magnitude (2e-2 at |ref| ~ 1)
    assert_close(half, ref, ulps=20, dtype=torch.float16, what="fp16 output")

"""Half precision against fp32, measured as PSNR (the bound of issue 23): rendered frames (W + G,
GFPGAN) at least 40 dB, Wav2Lip's mouth patch at least 35 dB.

Measured on the CPU, whose fp16 and bf16 kernels compute the same IEEE formats as a GPU's (the
summation order differs, so a GPU's error is of the same size, not the same numbers); random
weights in the official layouts. ``dtype: auto`` uses fp16 on CUDA and MPS only for the networks
that pass here (``pick_dtype``'s ``fp16_checked``); run with ``-s`` to see the figures.
"""

from __future__ import annotations

import math

import pytest
import torch

from pipeline.models.gfpgan import GFPGANv1Clean
from pipeline.models.liveportrait.ops import set_portable_ops
from pipeline.models.wav2lip import Wav2Lip
from tests.helpers.deterministic_weights import fill_state_dict
from tests.helpers.lp_checkpoints import _randomise, empty_nets
from tests.helpers.w2l_checkpoints import random_wav2lip_state_dict

HALF = [torch.float16, torch.bfloat16]
FRAME_DB = 40.0  # rendered frames
MOUTH_DB = 35.0  # mouth patches


def psnr(ref: torch.Tensor, test: torch.Tensor, peak: float = 1.0) -> float:
    mse = float(((ref.double() - test.double()) ** 2).mean())
    return math.inf if mse == 0 else 10.0 * math.log10(peak * peak / mse)


@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_wav2lip_mouth_patch(dtype: torch.dtype) -> None:
    net = Wav2Lip()
    net.load_state_dict(random_wav2lip_state_dict(0))
    net.eval()
    g = torch.Generator().manual_seed(0)
    audio, face = torch.randn(1, 1, 80, 16, generator=g), torch.rand(1, 6, 96, 96, generator=g)
    face[:, :3, 48:] = 0.0  # the official masked target
    with torch.no_grad():
        ref = net(audio, face)
        half = net.to(dtype)(audio.to(dtype), face.to(dtype)).float()
    assert float(ref[:, :, 48:].std()) > 0.05
    db = psnr(ref[:, :, 48:], half[:, :, 48:])  # the generated lower half: the mouth
    print(f"Wav2Lip mouth patch {dtype}: {db:.1f} dB")
    assert db >= MOUTH_DB


# bf16 only here: the CPU's fp16 3-D convolutions take about half an hour for this frame. fp16,
# measured once by this same function (60.1 dB, the README's table), is dtype auto's on CUDA/MPS.
# Slow (make test-slow): the full-size W and G, run twice, cannot be cut below this grid.
@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.bfloat16], ids=str)
def test_liveportrait_rendered_frame(dtype: torch.dtype) -> None:
    nets = empty_nets()
    _randomise(nets, 0)
    set_portable_ops(nets.warping, True)  # the CPU has no half avg_pool3d (CUDA and MPS do)
    for module in nets.modules().values():
        module.eval()
    g = torch.Generator().manual_seed(1)
    # a quarter of the real 64 x 64 feature grid: same networks, 256 x 256 frames
    f_s = torch.randn(1, 32, 16, 32, 32, generator=g)
    kp_s = 0.5 * torch.randn(1, 21, 3, generator=g)
    kp_d = kp_s + 0.05 * torch.randn(1, 21, 3, generator=g)
    with torch.no_grad():
        ref = nets.generator(nets.warping(f_s, kp_driving=kp_d, kp_source=kp_s).out)
        nets.warping.to(dtype)
        nets.generator.to(dtype)
        warped = nets.warping(f_s.to(dtype), kp_driving=kp_d.to(dtype),
                              kp_source=kp_s.to(dtype)).out
        half = nets.generator(warped).float()
    assert float(ref.std()) > 0.02
    db = psnr(ref, half)
    print(f"LivePortrait W+G frame {dtype}: {db:.1f} dB")
    assert db >= FRAME_DB


@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_gfpgan_restored_face(dtype: torch.dtype) -> None:
    # GFPGAN v1.4's architecture narrowed (16x fewer channels, 128 px): the full 512 px net
    # takes minutes per precision on a CPU's half kernels
    net = GFPGANv1Clean(out_size=128, num_style_feat=64, channel_multiplier=2, num_mlp=8,
                        input_is_latent=True, different_w=True, narrow=1 / 16, sft_half=True)
    net.load_state_dict(fill_state_dict(net.state_dict(), 1.0))
    net.eval()
    x = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        ref = net(x)
        half = net.to(dtype)(x.to(dtype)).float()
    ref, half = (ref.clamp(-1, 1) + 1) / 2, (half.clamp(-1, 1) + 1) / 2  # the image it pastes
    assert float(ref.std()) > 0.05
    db = psnr(ref, half)
    print(f"GFPGAN face {dtype}: {db:.1f} dB")
    assert db >= FRAME_DB


def test_auto_picks_fp16_on_gpus_for_the_checked_networks_and_bf16_only_when_asked() -> None:
    from pipeline.device import pick_dtype
    from pipeline.lipsync.registry import engine_entry

    cuda, mps, cpu = torch.device("cuda"), torch.device("mps"), torch.device("cpu")
    wav2lip = engine_entry("wav2lip").fp16_checked
    assert pick_dtype(cuda, "auto", wav2lip) == torch.float16
    assert pick_dtype(mps, "auto", wav2lip) == torch.float16
    assert pick_dtype(cpu, "auto", wav2lip) == torch.float32
    assert pick_dtype(cpu, "bf16") == torch.bfloat16
    assert pick_dtype(cuda, "bfloat16") == torch.bfloat16

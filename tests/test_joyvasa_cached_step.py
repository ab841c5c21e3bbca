"""The sampler's per-window cross-attention (``cross_attention`` + ``forward_cached``) gives the
network's own forward: the alignment mask leaves each token one audio token, so that part of
the decoder does not depend on the step and is computed once per window."""

from __future__ import annotations

import torch

from pipeline.models.joyvasa_dit import DitConfig, JoyVasaDit
from tests.helpers.tolerance import assert_close


def _random_dit() -> JoyVasaDit:
    dit = JoyVasaDit(DitConfig(motion_dim=70, n_motions=20, n_prev=4, feature_dim=32,
                               n_diff_steps=50))
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in dit.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return dit.eval()


def test_cached_cross_attention_equals_the_full_forward() -> None:
    dit = _random_dit()
    gen = torch.Generator().manual_seed(4)
    motion = torch.randn((2, 20, 70), generator=gen)
    audio = torch.randn((2, 20, 32), generator=gen)  # two different voices in one batch
    prev_motion = torch.randn((2, 4, 70), generator=gen)
    prev_audio = torch.randn((2, 4, 32), generator=gen)
    net = dit.denoising_net
    with torch.inference_mode():
        cross = net.cross_attention(audio, prev_audio)
        for t in (1, 17, 50):  # one cross-attention serves every step
            step = torch.full((2,), t, dtype=torch.long)
            full = dit(motion, audio, prev_motion, prev_audio, step)
            cached = net.forward_cached(motion, prev_motion, step, cross)
            assert_close(cached, full, what=f"step {t}", ulps=8)
        other = net.forward_cached(motion, prev_motion, step, net.cross_attention(
            audio.flip(0), prev_audio.flip(0)))
    assert float((other - cached).abs().max()) > 1e-3  # the audio does reach the output

"""LivePortrait's exact inference rewrites (BatchNorm folded in F and W, G's SPADE convolutions
regrouped): each against the plain network, and the fused F, W and G against the official code's
outputs (the same fixtures and tolerance as ``test_lp_models_parity``)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pipeline.liveportrait.loader import (
    APPEARANCE_FILE,
    SPADE_FILE,
    WARPING_FILE,
    fuse_nets,
)
from pipeline.models.liveportrait import convert
from pipeline.models.liveportrait.spade import SPADEDecoder
from pipeline.models.liveportrait.spade_fused import FusedSPADEDecoder, UpsampledConv
from tests.helpers.lp_checkpoints import empty_nets, official_state_dicts
from tests.helpers.tolerance import assert_close
from tests.test_lp_models_parity import (
    assert_matches,
    fixture,
    gen,
    load_filled,
    stored_input,
)


@pytest.mark.parametrize("scale", [2, 4])
def test_conv_over_a_nearest_upsampled_map_is_computed_on_the_map(scale: int) -> None:
    g = gen(scale)
    conv = torch.nn.Conv2d(6, 5, 3, padding=1)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g))
    x = torch.randn(2, 6, 5, 7, generator=g)  # odd, non-square: borders on every side
    with torch.no_grad():
        expected = conv(F.interpolate(x, scale_factor=scale, mode="nearest"))
        assert_close(UpsampledConv(conv, scale)(x).numpy(), expected.numpy(), atol=1e-5,
                     what="upsampled conv")


def test_fused_decoder_matches_the_plain_one_on_a_small_g() -> None:
    plain = SPADEDecoder(upscale=2, max_features=16, block_expansion=4, out_channels=8,
                         num_down_blocks=2).eval()
    g = gen(7)
    with torch.no_grad():
        for p in plain.parameters():
            p.copy_(torch.randn(p.shape, generator=g) / max(1, p[0].numel()) ** 0.5)
    feature = torch.randn(2, 16, 8, 8, generator=g)
    with torch.no_grad():
        expected = plain(feature)
        fused = FusedSPADEDecoder(plain).eval()
        actual = fused(feature)
    assert actual.shape == (2, 3, 64, 64)
    assert float(expected.std()) > 0.05
    assert_close(actual.numpy(), expected.numpy(), atol=1e-5, what="fused G")


# numeric parity of the fused networks: CI runs these again under another ATEN_CPU_CAPABILITY
@pytest.mark.parity
def test_fused_networks_match_official() -> None:
    nets = empty_nets()
    templates = official_state_dicts(nets, singular_vectors=False)
    fx_f, fx_w, fx_g = fixture("appearance"), fixture("warping"), fixture("spade")
    load_filled(nets.appearance, templates[APPEARANCE_FILE], float(fx_f["gain"]),
                convert.convert_appearance_extractor, "F")
    load_filled(nets.warping, templates[WARPING_FILE], float(fx_w["gain"]),
                convert.convert_warping_module, "W")
    load_filled(nets.generator, templates[SPADE_FILE], float(fx_g["gain"]),
                convert.convert_spade_generator, "G")
    fused = fuse_nets(nets)
    assert isinstance(fused.generator, FusedSPADEDecoder)
    # every BatchNorm in W follows a conv: all folded
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in fused.warping.modules())
    with torch.no_grad():
        x = torch.rand(1, 3, 256, 256, generator=gen(int(fx_f["input_seed"])))
        assert_matches(fx_f, "f_s", fused.appearance(x))
        g = gen(int(fx_w["input_seed"]))
        f_s = torch.randn(1, 32, 16, 64, 64, generator=g)
        kp_s = torch.randn(1, 21, 3, generator=g) * 0.5
        kp_d = kp_s + 0.1 * torch.randn(1, 21, 3, generator=g)
        kp_s = stored_input(fx_w, "kp_source", kp_s)
        kp_d = stored_input(fx_w, "kp_driving", kp_d)
        out = fused.warping(f_s, kp_driving=kp_d, kp_source=kp_s)
        assert_matches(fx_w, "out", out.out)
        assert_matches(fx_w, "occlusion_map", out.occlusion_map)
        assert_matches(fx_w, "deformation", out.deformation)
        feat = torch.randn(1, 256, 64, 64, generator=gen(int(fx_g["input_seed"])))
        assert_matches(fx_g, "image", fused.generator(feat))

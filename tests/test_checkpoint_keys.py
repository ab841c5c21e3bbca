"""Strict key conversion: every file key maps to one name of ours, or the file is refused.

The conversions are pure functions; ``load_strict`` reports their collisions and lacking keys
together with the missing, unexpected and mis-shaped ones, in one ``ModelLoadError``.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pipeline.errors import ModelLoadError
from pipeline.models.gfpgan import convert_gfpgan_state_dict
from pipeline.models.keymap import Collision, KeyConversionError
from pipeline.models.liveportrait import convert
from pipeline.models.wav2lip import convert_wav2lip_state_dict
from pipeline.weights.checkpoint import load_strict

T = torch.zeros(2)


def test_motion_extractor_key_with_and_without_prefix_collides() -> None:
    with pytest.raises(KeyConversionError) as err:
        convert.convert_motion_extractor({"detector.fc_kp.bias": T, "fc_kp.bias": T + 1,
                                          "detector.fc_exp.bias": T})
    assert err.value.collisions == (Collision("fc_kp.bias", ("detector.fc_kp.bias", "fc_kp.bias")),)
    assert "detector.fc_kp.bias and fc_kp.bias both become fc_kp.bias" in str(err.value)
    assert err.value.converted["fc_kp.bias"] is not None and "fc_exp.bias" in err.value.converted


def trio(base: str, out: int = 4, inp: int = 3) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {f"{base}.weight_orig": torch.randn(out, inp, 1, 1, generator=g),
            f"{base}.weight_u": torch.randn(out, generator=g),
            f"{base}.weight_v": torch.randn(inp, generator=g)}


def test_plain_weight_beside_its_spectral_trio_collides() -> None:
    sd = {**trio("a.conv_0"), "a.conv_0.weight": torch.zeros(4, 3, 1, 1)}
    with pytest.raises(KeyConversionError) as err:
        convert.convert_spade_generator(sd)
    (collision,) = err.value.collisions
    assert collision.target == "a.conv_0.weight"
    assert set(collision.sources) == {"a.conv_0.weight_orig", "a.conv_0.weight"}


@pytest.mark.parametrize("member", ["weight_u", "weight_v", "weight_orig"])
def test_incomplete_spectral_trio_names_the_lacking_member(member: str) -> None:
    sd = trio("up_1.conv_s")
    del sd[f"up_1.conv_s.{member}"]
    with pytest.raises(KeyConversionError) as err:
        convert.convert_spade_generator({**sd, "up_1.conv_s.bias": T})
    assert err.value.missing == (f"up_1.conv_s.{member}",) and not err.value.collisions
    assert str(err.value) == f"missing keys: up_1.conv_s.{member}"


def test_stitching_sub_dict_with_both_prefixes_collides() -> None:
    ckpt = {"retarget_shoulder": {"module.mlp.0.bias": T, "mlp.0.bias": T},
            "retarget_mouth": {}, "retarget_eye": {}}
    assert convert.stitching_part(ckpt, "lip") == {}
    with pytest.raises(KeyConversionError, match="module.mlp.0.bias and mlp.0.bias"):
        convert.stitching_part(ckpt, "stitching")


def test_wav2lip_prefixed_and_plain_key_collide() -> None:
    with pytest.raises(KeyConversionError, match="module.x.bias and x.bias both become x.bias"):
        convert_wav2lip_state_dict({"state_dict": {"module.x.bias": T, "x.bias": T}})


def test_gfpgan_keys_that_only_differ_in_type_collide() -> None:
    """GFPGAN keys are used unchanged, so the only way two give one name is ``1`` and ``"1"``."""
    with pytest.raises(KeyConversionError, match="1 and 1 both become 1"):
        convert_gfpgan_state_dict({"params_ema": {1: T, "1": T}})


class Pair(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc_kp = nn.Linear(3, 2)
        self.fc_exp = nn.Linear(3, 2)


def test_load_strict_reports_collisions_with_missing_and_unexpected_keys() -> None:
    net = Pair()
    file = {f"detector.{k}": v.clone() for k, v in net.state_dict().items()
            if k != "fc_exp.weight"}
    file["fc_kp.bias"] = torch.ones(2)
    file["detector.fc_expr.weight"] = torch.ones(2, 3)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(ModelLoadError) as err:
        load_strict(net, file, "motion extractor", convert.convert_motion_extractor)
    assert err.value.problem == (
        "the motion extractor checkpoint does not match the network: colliding keys: "
        "detector.fc_kp.bias and fc_kp.bias both become fc_kp.bias; missing keys: fc_exp.weight; "
        "unexpected keys: fc_expr.weight"
    )
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # nothing loaded


def test_load_strict_converts_and_loads_a_clean_file() -> None:
    net, src = Pair(), Pair()
    file = {f"detector.{k}": v for k, v in src.state_dict().items()}
    load_strict(net, file, "motion extractor", convert.convert_motion_extractor)
    assert torch.equal(net.fc_kp.weight, src.fc_kp.weight)

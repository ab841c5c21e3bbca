"""Parity of our LivePortrait networks with the official implementation.

The fixtures hold the official modules' outputs on deterministic weights (every tensor from its
key and shape, ``tests/deterministic_weights.py``, applied to the official key names) and seeded
inputs (``fill_official`` is that rule with a faster route to the spectral-norm u / v). Here the
same rule fills our networks' state dicts *in the official layout*, which then goes through
``convert`` and the strict loader, exactly as a real checkpoint would.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.liveportrait.loader import (
    APPEARANCE_FILE,
    MOTION_FILE,
    SPADE_FILE,
    STITCHING_FILE,
    WARPING_FILE,
)
from pipeline.models.liveportrait import convert, keypoints
from pipeline.models.liveportrait.motion import MotionOutput
from pipeline.weights.checkpoint import load_strict
from tests.helpers.lp_checkpoints import empty_nets, fill_official, official_state_dicts
from tests.helpers.tolerance import assert_close, assert_stat_close

# numeric parity: CI runs these again under another ATEN_CPU_CAPABILITY
pytestmark = pytest.mark.parity

FIXTURES = Path(__file__).parent / "fixtures" / "parity"
# The stated elementwise parity tolerance (float32 networks against the official float32 code).
TOL = 1e-4
# Mean / std of a float32 output: within this many float32 ulps of the values' magnitude. The
# largest seen over default / avx2 / avx512 kernels is 6.5 (roll_deg's std on avx512).
STAT_ULPS = 32
# Regenerated seeded inputs: torch.randn rounds differently per kernel set (about one ulp).
INPUT_ULPS = 4


def fixture(name: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / f"liveportrait_{name}.npz") as f:
        return {k: f[k] for k in f.files}


def assert_matches(fx: dict[str, np.ndarray], name: str, actual: torch.Tensor) -> None:
    """Full values (small outputs) or a strided subset, plus the full mean and std."""
    a = actual.detach().float().numpy()
    assert a.shape == tuple(fx[f"{name}__shape"]), name
    if name in fx:
        expected = fx[name]
        assert_close(a, expected, atol=TOL, rtol=TOL, what=name)
    else:
        expected = fx[f"{name}__sub"]
        sub = a.ravel()[:: int(fx[f"{name}__stride"])]
        assert_close(sub, expected, atol=TOL, rtol=TOL, what=name)
    a64 = a.astype(np.float64)
    assert_stat_close(a64.mean(), fx[f"{name}__mean"], magnitude=expected, ulps=STAT_ULPS,
                      what=f"{name} mean")
    assert_stat_close(a64.std(), fx[f"{name}__std"], magnitude=expected, ulps=STAT_ULPS,
                      what=f"{name} std")
    if a.size > 1:
        assert fx[f"{name}__std"] > 1e-3, f"{name}: the official output is near constant"


def assert_official_layout(fx: dict[str, np.ndarray], template: dict[str, torch.Tensor]) -> None:
    """Our official-format template has exactly the official keys and shapes."""
    ours = {k: ",".join(map(str, v.shape)) for k, v in template.items()}
    official = dict(zip(fx["official_keys"].tolist(), fx["official_shapes"].tolist(), strict=True))
    assert ours == official


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def stored_input(fx: dict[str, np.ndarray], name: str, regenerated: torch.Tensor) -> torch.Tensor:
    """The fixture's own copy of a seeded input, after checking our seeded draw is the same one
    (to rounding: torch.randn's kernels differ per CPU)."""
    assert_close(regenerated, fx[name], ulps=INPUT_ULPS, what=f"input {name}")
    return torch.from_numpy(fx[name])


@pytest.fixture(scope="module")
def nets_and_templates():
    nets = empty_nets()
    return nets, official_state_dicts(nets, singular_vectors=False)


def load_filled(module, template, gain, conversion, what):
    filled = fill_official(template, gain)
    load_strict(module, conversion(filled), what)
    module.eval()


def test_appearance_extractor_matches_official(nets_and_templates) -> None:
    nets, templates = nets_and_templates
    fx = fixture("appearance")
    assert_official_layout(fx, templates[APPEARANCE_FILE])
    load_filled(nets.appearance, templates[APPEARANCE_FILE], float(fx["gain"]),
                convert.convert_appearance_extractor, "F")
    x = torch.rand(1, 3, 256, 256, generator=gen(int(fx["input_seed"])))
    with torch.no_grad():
        assert_matches(fx, "f_s", nets.appearance(x))


def test_motion_extractor_matches_official(nets_and_templates) -> None:
    nets, templates = nets_and_templates
    fx = fixture("motion")
    assert_official_layout(fx, templates[MOTION_FILE])
    assert all(k.startswith("detector.") for k in templates[MOTION_FILE])
    load_filled(nets.motion, templates[MOTION_FILE], float(fx["gain"]),
                convert.convert_motion_extractor, "M")
    x = torch.rand(1, 3, 256, 256, generator=gen(int(fx["input_seed"])))
    with torch.no_grad():
        out = nets.motion(x)
    for name in MotionOutput._fields:
        assert_matches(fx, name, getattr(out, name))


def test_warping_module_matches_official(nets_and_templates) -> None:
    nets, templates = nets_and_templates
    fx = fixture("warping")
    assert_official_layout(fx, templates[WARPING_FILE])
    load_filled(nets.warping, templates[WARPING_FILE], float(fx["gain"]),
                convert.convert_warping_module, "W")
    g = gen(int(fx["input_seed"]))
    f_s = torch.randn(1, 32, 16, 64, 64, generator=g)
    kp_s = torch.randn(1, 21, 3, generator=g) * 0.5
    kp_d = kp_s + 0.1 * torch.randn(1, 21, 3, generator=g)
    kp_s = stored_input(fx, "kp_source", kp_s)
    kp_d = stored_input(fx, "kp_driving", kp_d)
    with torch.no_grad():
        out = nets.warping(f_s, kp_driving=kp_d, kp_source=kp_s)
    assert_matches(fx, "out", out.out)
    assert_matches(fx, "occlusion_map", out.occlusion_map)
    assert_matches(fx, "deformation", out.deformation)


def test_spade_generator_matches_official(nets_and_templates) -> None:
    nets, templates = nets_and_templates
    fx = fixture("spade")
    template = templates[SPADE_FILE]
    assert_official_layout(fx, template)
    assert "G_middle_0.conv_0.weight_orig" in template and "up_0.conv_s.weight_v" in template
    load_filled(nets.generator, template, float(fx["gain"]), convert.convert_spade_generator, "G")
    feat = torch.randn(1, 256, 64, 64, generator=gen(int(fx["input_seed"])))
    with torch.no_grad():
        assert_matches(fx, "image", nets.generator(feat))


def test_stitching_and_retargeting_match_official(nets_and_templates) -> None:
    nets, templates = nets_and_templates
    fx = fixture("stitching")
    file_dict = templates[STITCHING_FILE]
    # The rule is applied to '<sub-dict>.<key>' so the three MLPs get distinct weights.
    flat = {f"{sub}.{k}": v for sub, sd in file_dict.items() for k, v in sd.items()}
    assert_official_layout(fx, flat)
    filled = fill_official(flat, float(fx["gain"]))
    checkpoint = {
        sub: {k.removeprefix(f"{sub}."): v for k, v in filled.items() if k.startswith(f"{sub}.")}
        for sub in file_dict
    }
    for role, module in (("stitching", nets.stitching), ("lip", nets.retarget_lip),
                         ("eye", nets.retarget_eye)):
        load_strict(module, convert.stitching_part(checkpoint, role), role)
    g = gen(int(fx["input_seed"]))
    x_s = torch.randn(2, 21, 3, generator=g) * 0.3
    x_d = x_s + 0.05 * torch.randn(2, 21, 3, generator=g)
    eye_ratio = torch.rand(2, 3, generator=g) * 0.4
    lip_ratio = torch.rand(2, 2, generator=g) * 0.4
    x_s, x_d = stored_input(fx, "x_s", x_s), stored_input(fx, "x_d", x_d)
    eye_ratio = stored_input(fx, "eye_ratio", eye_ratio)
    lip_ratio = stored_input(fx, "lip_ratio", lip_ratio)
    with torch.no_grad():
        assert_matches(fx, "stitch_delta", nets.stitching(keypoints.concat_feat(x_s, x_d)))
        assert_matches(fx, "stitched", keypoints.stitching(nets.stitching, x_s, x_d))
        assert_matches(fx, "eye_delta", keypoints.retarget_eye(nets.retarget_eye, x_s, eye_ratio))
        assert_matches(fx, "lip_delta", keypoints.retarget_lip(nets.retarget_lip, x_s, lip_ratio))


def test_keypoint_maths_matches_official() -> None:
    fx = fixture("keypoints")
    g = gen(int(fx["input_seed"]))
    pitch, yaw, roll = (torch.randn(4, 66, generator=g) * 2 for _ in range(3))
    t = torch.randn(4, 3, generator=g) * 0.1
    exp = torch.randn(4, 63, generator=g) * 0.05
    scale = torch.rand(4, 1, generator=g) + 0.5
    kp = torch.randn(4, 63, generator=g) * 0.3
    info = keypoints.refine_motion(MotionOutput(pitch, yaw, roll, t, exp, scale, kp))
    assert_matches(fx, "pitch_deg", info.pitch)
    assert_matches(fx, "yaw_deg", info.yaw)
    assert_matches(fx, "roll_deg", info.roll)
    assert_matches(fx, "rotation", keypoints.info_rotation(info))
    assert_matches(fx, "x_s", keypoints.transform_keypoint(info))

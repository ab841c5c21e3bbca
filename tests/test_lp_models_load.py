"""Strict loading of official-format LivePortrait files, and the key conversion rules."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from pipeline.errors import ModelLoadError, WeightsError
from pipeline.liveportrait import loader
from pipeline.liveportrait.nets import LivePortraitNets
from pipeline.models.liveportrait import convert
from pipeline.models.liveportrait.ops import set_portable_ops
from tests.helpers.lp_checkpoints import write_liveportrait_checkpoints
from tests.helpers.tolerance import assert_close


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lpw")
    write_liveportrait_checkpoints(root)
    return root


@pytest.fixture(scope="module")
def nets(weights_dir: Path) -> LivePortraitNets:
    return loader.load_liveportrait(weights_dir, "cpu", torch.float32)


def broken_copy(weights_dir: Path, tmp_path: Path, rel: str) -> Path:
    """A weights directory of links to the good files, with a real copy of ``rel`` to rewrite."""
    dest = tmp_path / "w"
    for other in loader.LIVEPORTRAIT_FILES:
        (dest / other).parent.mkdir(parents=True, exist_ok=True)
        if other == rel:
            shutil.copyfile(weights_dir / other, dest / other)
        else:
            (dest / other).symlink_to(weights_dir / other)
    return dest / rel


def test_all_five_official_files_load_strictly(weights_dir: Path, nets) -> None:
    for rel in loader.LIVEPORTRAIT_FILES:
        assert (weights_dir / rel).is_file()
    motion_file = torch.load(weights_dir / loader.MOTION_FILE, weights_only=True)
    assert len(motion_file) == 212 and all(k.startswith("detector.") for k in motion_file)
    assert torch.equal(nets.motion.fc_exp.weight, motion_file["detector.fc_exp.weight"])
    spade_file = torch.load(weights_dir / loader.SPADE_FILE, weights_only=True)
    assert len(spade_file) == 182 and "G_middle_3.conv_1.weight_orig" in spade_file
    stitching_file = torch.load(weights_dir / loader.STITCHING_FILE, weights_only=True)
    assert sorted(stitching_file) == ["retarget_eye", "retarget_mouth", "retarget_shoulder"]
    assert [len(stitching_file[k]) for k in ("retarget_shoulder", "retarget_mouth",
                                             "retarget_eye")] == [8, 8, 12]
    assert torch.equal(nets.retarget_eye.mlp[10].bias,
                       stitching_file["retarget_eye"]["module.mlp.10.bias"])
    counts = {len(torch.load(weights_dir / rel, weights_only=True))
              for rel in (loader.APPEARANCE_FILE, loader.WARPING_FILE)}
    assert counts == {107, 97}
    assert all(not m.training for m in nets.modules().values())


def test_loaded_networks_run_and_stay_finite(nets) -> None:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        motion = nets.motion(torch.rand(1, 3, 256, 256, generator=g))
        assert motion.pitch.shape == (1, 66) and motion.kp.shape == (1, 63)
        assert all(torch.isfinite(t).all() for t in motion)
        delta = nets.stitching(torch.randn(1, 126, generator=g))
        assert delta.shape == (1, 65) and delta.std() > 1e-3


@pytest.mark.parity  # numeric: our folding against torch's own spectral norm
def test_spectral_norm_is_folded_as_torch_evaluates_it(weights_dir: Path, nets) -> None:
    """Our folded conv equals torch's own spectral_norm conv in eval mode on the file's tensors."""
    sd = torch.load(weights_dir / loader.SPADE_FILE, weights_only=True)
    ref = nn.utils.spectral_norm(nn.Conv2d(512, 512, 3, padding=1))
    ref.load_state_dict({k.removeprefix("G_middle_2.conv_0."): v for k, v in sd.items()
                         if k.startswith("G_middle_2.conv_0.")})
    ref.eval()
    x = torch.randn(1, 512, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = nets.generator.middle[2].conv_0(x)  # the loader fuses G; conv_0 is kept as is
        assert_close(ours, ref(x), atol=1e-5, rtol=1e-4, what="folded conv")


def test_a_renamed_key_is_reported_by_name(weights_dir: Path, tmp_path: Path) -> None:
    path = broken_copy(weights_dir, tmp_path, loader.MOTION_FILE)
    root = tmp_path / "w"
    sd = torch.load(path, weights_only=True)
    sd["detector.fc_expr.weight"] = sd.pop("detector.fc_exp.weight")
    torch.save(sd, path)
    with pytest.raises(ModelLoadError) as err:
        loader.load_liveportrait(root, "cpu")
    message = err.value.problem
    assert "missing keys: fc_exp.weight" in message and "unexpected keys: fc_expr.weight" in message


def test_a_misshaped_key_is_reported_by_name(weights_dir: Path, tmp_path: Path) -> None:
    path = broken_copy(weights_dir, tmp_path, loader.APPEARANCE_FILE)
    root = tmp_path / "w"
    sd = torch.load(path, weights_only=True)
    sd["second.weight"] = torch.zeros(512, 256, 3, 3)
    torch.save(sd, path)
    with pytest.raises(ModelLoadError, match=r"wrong shape keys: second\.weight"):
        loader.load_liveportrait(root, "cpu")


def test_stitching_file_problems_are_named(weights_dir: Path, tmp_path: Path) -> None:
    path = broken_copy(weights_dir, tmp_path, loader.STITCHING_FILE)
    root = tmp_path / "w"
    original = torch.load(path, weights_only=True)
    extra = {**original, "retarget_mouth": {**original["retarget_mouth"],
                                            "module.mlp.8.weight": torch.zeros(1)}}
    torch.save(extra, path)
    with pytest.raises(ModelLoadError, match=r"\(lip\).*unexpected keys: mlp\.8\.weight"):
        loader.load_liveportrait(root, "cpu")
    torch.save({k: v for k, v in original.items() if k != "retarget_eye"}, path)
    with pytest.raises(ModelLoadError, match="retarget_eye"):
        loader.load_liveportrait(root, "cpu")


def test_missing_spectral_vector_is_named(weights_dir: Path, tmp_path: Path) -> None:
    path = broken_copy(weights_dir, tmp_path, loader.SPADE_FILE)
    root = tmp_path / "w"
    sd = torch.load(path, weights_only=True)
    del sd["up_1.conv_s.weight_u"]
    torch.save(sd, path)
    with pytest.raises(ModelLoadError) as err:
        loader.load_liveportrait(root, "cpu")
    message = err.value.problem
    assert "SPADE generator" in message and "missing keys: up_1.conv_s.weight_u" in message
    assert "up_1.conv_s.weight," not in message and "unexpected" not in message


def test_a_second_key_for_the_same_name_is_refused_naming_both(
    weights_dir: Path, tmp_path: Path
) -> None:
    """The official loader refuses an extra un-prefixed key; the later one must not win."""
    path = broken_copy(weights_dir, tmp_path, loader.MOTION_FILE)
    sd = torch.load(path, weights_only=True)
    sd["fc_kp.bias"] = torch.zeros_like(sd["detector.fc_kp.bias"])
    sd["detector.fc_expr.weight"] = sd.pop("detector.fc_exp.weight")
    torch.save(sd, path)
    with pytest.raises(ModelLoadError) as err:
        loader.load_liveportrait(tmp_path / "w", "cpu")
    message = err.value.problem
    assert "detector.fc_kp.bias and fc_kp.bias both become fc_kp.bias" in message
    # the same message still names the file's other problems
    assert "missing keys: fc_exp.weight" in message and "unexpected keys: fc_expr.weight" in message


def test_a_plain_weight_beside_its_spectral_trio_is_refused(
    weights_dir: Path, tmp_path: Path
) -> None:
    path = broken_copy(weights_dir, tmp_path, loader.SPADE_FILE)
    sd = torch.load(path, weights_only=True)
    sd["G_middle_0.conv_0.weight"] = torch.zeros_like(sd["G_middle_0.conv_0.weight_orig"])
    torch.save(sd, path)
    with pytest.raises(ModelLoadError) as err:
        loader.load_liveportrait(tmp_path / "w", "cpu")
    assert ("G_middle_0.conv_0.weight_orig and G_middle_0.conv_0.weight both become "
            "G_middle_0.conv_0.weight") in err.value.problem


def test_missing_file_is_a_weights_error(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="appearance"):
        loader.load_liveportrait(tmp_path, "cpu")


def test_conversions_are_idempotent_and_prefix_only() -> None:
    t = torch.zeros(2)
    motion = {"detector.fc_kp.bias": t, "stages.0.0.detector.x": t}
    once = convert.convert_motion_extractor(motion)
    assert set(once) == {"fc_kp.bias", "stages.0.0.detector.x"}
    assert convert.convert_motion_extractor(once) == once
    w = torch.randn(4, 3, 1, 1)
    u, v = torch.randn(4), torch.randn(3)
    folded = convert.convert_spade_generator(
        {"a.conv_0.weight_orig": w, "a.conv_0.weight_u": u, "a.conv_0.weight_v": v, "a.b": t}
    )
    assert set(folded) == {"a.conv_0.weight", "a.b"}
    assert_close(folded["a.conv_0.weight"], w / (u @ (w.reshape(4, 3) @ v)), ulps=4,
                 what="folded weight")
    assert convert.convert_spade_generator(folded) == folded
    official = {"retarget_shoulder": {"module.mlp.0.bias": t}, "retarget_mouth": {},
                "retarget_eye": {}, "unused": 3}
    split = {role: convert.stitching_part(official, role) for role in ("stitching", "lip", "eye")}
    assert split["stitching"] == {"mlp.0.bias": t} and split["eye"] == {}
    assert {role: convert.stitching_part(split, role) for role in split} == split


def test_portable_ops_switch_covers_every_5d_op(nets) -> None:
    assert nets.portable_ops is False  # CPU has the native kernels
    # 2 grid samples + 5 pools + 5 upsamples in W; none elsewhere.
    assert set_portable_ops(nets.warping, False) == 12
    assert set_portable_ops(nets.generator, False) == 0

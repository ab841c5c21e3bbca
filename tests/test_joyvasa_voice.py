"""JoyVASA voice motion: strict loading of the official files, the restricted unpickler, and the
provider's contract (exact frame counts, determinism per seed, the step-count option)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import pickle
from collections import OrderedDict
from pathlib import Path, PosixPath

import numpy as np
import pytest
import torch

from pipeline.errors import ModelLoadError, WeightsError
from pipeline.models.joyvasa_dit import DitConfig
from pipeline.voice.checkpoint import read_generator
from pipeline.voice.denorm import load_stats
from pipeline.voice.load import VoiceFiles, load_models
from pipeline.voice.provider import JoyVasaMotion
from pipeline.voice.sampler import official_schedule, respaced_schedule
from tests.helpers.joyvasa_checkpoints import official_args, write_weights_dir
from tests.helpers.torch_threads import one_thread  # noqa: F401 (an autouse fixture)

FPS = 25.0


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    root = tmp_path_factory.mktemp("joyvasa")
    return root, write_weights_dir(root)


@pytest.fixture(scope="module")
def provider(weights: tuple[Path, dict[str, torch.Tensor]]) -> JoyVasaMotion:
    return JoyVasaMotion(weights[0], torch.device("cpu"))


def voice(seconds: float, seed: int = 0) -> np.ndarray:
    n = max(1, round(seconds * 16000))
    return (np.random.default_rng(seed).standard_normal(n) * 0.1).astype(np.float32)


def rewrite(files: VoiceFiles, tmp: Path, model: dict[str, torch.Tensor]) -> VoiceFiles:
    """The same files but a generator checkpoint holding ``model``."""
    path = tmp / "motion_generator_hubert_chinese.pt"
    torch.save({"args": official_args(DitConfig(motion_dim=70, n_motions=100, n_prev=10,
                                                feature_dim=32, n_diff_steps=10), tmp),
                "model": OrderedDict(model)}, path)
    return dataclasses.replace(files, generator=path)


def test_loader_maps_every_key(weights: tuple[Path, dict[str, torch.Tensor]]) -> None:
    root, sd = weights
    models = load_models(VoiceFiles.under(root), torch.device("cpu"))
    ours = models.dit.state_dict()
    for key, value in sd.items():
        if key.startswith("audio_encoder.") or key == "denoising_net.TE.pe":
            continue
        assert torch.equal(ours[key], value), key
    hub = models.hubert.state_dict()
    assert len(hub) == sum(k.startswith("audio_encoder.") for k in sd)
    g = "encoder.pos_conv_embed.conv.parametrizations.weight.original0"
    assert torch.equal(hub[g], sd["audio_encoder.encoder.pos_conv_embed.conv.weight_g"])
    assert torch.equal(hub["masked_spec_embed"], sd["audio_encoder.masked_spec_embed"])
    # the file's random TE.pe is dropped and rebuilt, as the official loader does
    te = models.dit.denoising_net.TE.pe
    assert not torch.equal(te, sd["denoising_net.TE.pe"])
    assert te[0, 0, 1] == 1.0 and te[0, 0, 0] == 0.0  # cos(0), sin(0)


@pytest.mark.parametrize(("change", "named"), [
    ("drop:denoising_net.motion_dec.2.bias", "missing keys: denoising_net.motion_dec.2.bias"),
    ("add:denoising_net.extra.weight", "unexpected keys: denoising_net.extra.weight"),
    ("drop:audio_encoder.encoder.layer_norm.bias", "missing keys: encoder.layer_norm.bias"),
    ("collide", "both become encoder.pos_conv_embed.conv.parametrizations.weight.original0"),
])
def test_loader_refuses_missing_extra_and_colliding_keys(
        weights: tuple[Path, dict[str, torch.Tensor]], tmp_path: Path, change: str,
        named: str) -> None:
    root, sd = weights
    model = dict(sd)
    action, _, key = change.partition(":")
    if action == "drop":
        del model[key]
    elif action == "add":
        model[key] = torch.zeros(2)
    else:
        model["audio_encoder.encoder.pos_conv_embed.conv.parametrizations.weight.original0"] = (
            model["audio_encoder.encoder.pos_conv_embed.conv.weight_g"])
    with pytest.raises(ModelLoadError) as err:
        load_models(rewrite(VoiceFiles.under(root), tmp_path, model), torch.device("cpu"))
    assert named in err.value.problem


def test_hubert_from_its_own_file_when_the_generator_has_none(
        weights: tuple[Path, dict[str, torch.Tensor]], tmp_path: Path) -> None:
    root, sd = weights
    model = {k: v for k, v in sd.items() if not k.startswith("audio_encoder.")}
    models = load_models(rewrite(VoiceFiles.under(root), tmp_path, model), torch.device("cpu"))
    key = "encoder.layers.1.feed_forward.output_dense.weight"
    assert torch.equal(models.hubert.state_dict()[key], sd[f"audio_encoder.{key}"])


class _Exploit:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch exploited",))


def test_restricted_unpickler_refuses_a_malicious_checkpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "motion_generator_hubert_chinese.pt"
    torch.save({"args": argparse.Namespace(exp=PosixPath("/x")), "model": {},
                "payload": _Exploit()}, bad)
    with pytest.raises(WeightsError, match="cannot be read safely"):
        read_generator(bad)
    template = tmp_path / "motion_template.pkl"
    template.write_bytes(pickle.dumps({"std_exp": _Exploit()}))
    with pytest.raises(WeightsError, match="cannot be read safely"):
        load_stats(template)
    assert not (tmp_path / "exploited").exists()


def test_generator_args_with_namespace_and_posixpath_are_read(
        weights: tuple[Path, dict[str, torch.Tensor]]) -> None:
    ckpt = read_generator(VoiceFiles.under(weights[0]).generator)
    assert ckpt.args.dit == DitConfig(motion_dim=70, n_motions=100, n_prev=10, feature_dim=32,
                                      n_diff_steps=10)
    assert ckpt.args.fps == 25.0 and ckpt.args.pad_mode == "zero"


def test_missing_names_the_fix(tmp_path: Path) -> None:
    reason = JoyVasaMotion(tmp_path, torch.device("cpu")).missing()
    assert reason is not None and "facedrop weights fetch voice" in reason


@pytest.mark.parametrize("n_frames", [1, 99, 100, 101, 191, 250])
def test_exactly_n_frames_at_window_boundaries(provider: JoyVasaMotion, n_frames: int) -> None:
    steps: list[float] = []
    motion = provider.generate(voice(n_frames / FPS), FPS, n_frames, seed=1, steps=1,
                               progress=steps.append)
    assert motion.n_frames == n_frames and motion.fps == FPS
    assert motion.R.shape == (n_frames, 3, 3) and motion.exp.shape == (n_frames, 21, 3)
    assert motion.scale.shape == (n_frames, 1) and motion.t.shape == (n_frames, 3)
    assert all(np.isfinite(a).all() for a in (motion.R, motion.exp, motion.scale, motion.t))
    assert len(steps) == -(-n_frames // 100) and steps[-1] == 1.0  # one step per window


def test_other_frame_rates_and_short_audio(provider: JoyVasaMotion) -> None:
    at30 = provider.generate(voice(2.0), 30.0, 60, seed=4, steps=1)
    assert at30.n_frames == 60 and at30.fps == 30.0
    longer = provider.generate(voice(0.2), FPS, 120, seed=4, steps=1)  # audio ends at frame 5
    assert longer.n_frames == 120
    # 25 fps output is the source frames themselves: its first frames match a longer request
    shorter = provider.generate(voice(0.2), FPS, 7, seed=4, steps=1)
    np.testing.assert_array_equal(shorter.exp, longer.exp[:7])


def test_same_seed_same_motion_other_seed_differs(provider: JoyVasaMotion) -> None:
    audio = voice(1.5)
    a = provider.generate(audio, FPS, 37, seed=7, steps=2)
    b = provider.generate(audio, FPS, 37, seed=7, steps=2)
    c = provider.generate(audio, FPS, 37, seed=8, steps=2)
    for field in ("R", "exp", "scale", "t"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.exp, c.exp)


def test_step_count_option(provider: JoyVasaMotion) -> None:
    dit = provider.models().dit
    full = official_schedule(dit)
    assert full.timesteps == tuple(range(10, 0, -1))
    same = respaced_schedule(dit, 10)  # the full count is the official schedule itself
    assert same.timesteps == full.timesteps and torch.equal(same.c0, full.c0)
    three = respaced_schedule(dit, 3)
    assert three.timesteps == (10, 6, 1) and float(three.sigma[-1]) == 0.0
    calls: list[float] = []
    audio = voice(1.0)
    fast = provider.generate(audio, FPS, 20, seed=3, steps=3, progress=calls.append)
    assert len(calls) == 3
    calls.clear()
    slow = provider.generate(audio, FPS, 20, seed=3, steps=None, progress=calls.append)
    assert len(calls) == 10
    assert not np.array_equal(fast.exp, slow.exp)


def test_small_config_from_checkpoint_args(tmp_path: Path) -> None:
    """The architecture follows the checkpoint's args: 20-frame windows, 4 carried, width 16."""
    cfg = DitConfig(motion_dim=70, n_motions=20, n_prev=4, feature_dim=16, n_diff_steps=3)
    write_weights_dir(tmp_path, cfg)
    motion = JoyVasaMotion(tmp_path, torch.device("cpu")).generate(
        voice(2.0), FPS, 50, seed=0, steps=None)
    assert motion.n_frames == 50


def test_voice_group_matches_the_loader_layout() -> None:
    from pipeline.voice.load import RELPATHS
    from pipeline.weights.manifest import MANIFEST, ON_REQUEST_GROUPS, select

    voice_files = {w.relpath for w in select(["voice"])}
    assert voice_files == set(RELPATHS.values())
    assert "voice" in ON_REQUEST_GROUPS  # a plain 'weights fetch' leaves the 0.8 GB out
    generator = next(w for w in MANIFEST if w.name == "joyvasa_motion_generator")
    assert generator.sha256 is not None and generator.size == 414_067_833


def test_resample_in_time_and_frame_count_formula() -> None:
    from pipeline.voice.denorm import PoseFrames, resample
    from pipeline.voice.sampler import official_frame_count, plan_windows

    src = np.arange(4, dtype=np.float32)[:, None]
    frames = PoseFrames(exp=np.repeat(src, 63, 1), scale=src, t=np.repeat(src, 3, 1),
                        angles=np.repeat(src, 3, 1))
    at50 = resample(frames, 25.0, 50.0, 9)  # half-frame steps, the last source frame held
    np.testing.assert_allclose(at50.scale[:, 0], [0, 0.5, 1, 1.5, 2, 2.5, 3, 3, 3])
    same = resample(frames, 25.0, 25.0, 6)
    np.testing.assert_array_equal(same.scale[:, 0], [0, 1, 2, 3, 3, 3])
    for n in (1, 639, 62080, 62081, 64000, 128000, 144000):
        plan = plan_windows(torch.zeros(n), 25.0, 100, "zero")
        assert official_frame_count(n, 25.0, 100) == plan.n_frames

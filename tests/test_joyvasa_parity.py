"""JoyVASA parity with the official code (74290f6) on deterministic weights (recipe:
tests/fixtures/parity/joyvasa.md): HuBERT features with the resampling, one denoising step with
and without guidance, a whole window, three windows with carry, and the de-normalised arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.models.joyvasa_hubert import hubert_features
from pipeline.voice.denorm import denormalise, resample, smooth, to_driving_motion
from pipeline.voice.load import JoyVasaModels, VoiceFiles, load_models
from pipeline.voice.sampler import (
    CFG_SCALE,
    SampleOptions,
    denoise,
    official_schedule,
    sample_motion,
)
from tests.helpers.joyvasa_checkpoints import write_weights_dir
from tests.helpers.tolerance import assert_close
from tests.helpers.torch_threads import one_thread  # noqa: F401 (an autouse fixture)

pytestmark = pytest.mark.parity
FIXTURE = Path(__file__).parent / "fixtures" / "parity" / "joyvasa.npz"
# Float32 maths in a different batching/kernel order: a few hundred ulps of the values'
# magnitude for single passes; the 10-step chains and 3 carried windows amplify rounding.
ULPS_PASS = 64
ULPS_CHAIN = 256


@pytest.fixture(scope="module")
def ref() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("joyvasa_weights")
    write_weights_dir(root)
    return root


@pytest.fixture(scope="module")
def models(weights: Path) -> JoyVasaModels:
    return load_models(VoiceFiles.under(weights), torch.device("cpu"))


def audio_9s() -> torch.Tensor:
    return torch.randn(16000 * 9, generator=torch.Generator().manual_seed(11)) * 0.1


def test_hubert_features_with_resampling(models: JoyVasaModels, ref: dict[str, np.ndarray]
                                         ) -> None:
    window = audio_9s()[:64000].unsqueeze(0)
    with torch.inference_mode():
        for frames, key in ((100, "hubert_feat"), (37, "hubert_feat_37")):
            feats = hubert_features(models.hubert, window[:, : frames * 640], 25.0, frames)
            got = models.dit.audio_feature_map(feats)
            assert_close(got, ref[key], what=key, ulps=ULPS_PASS)


def _window_start(models: JoyVasaModels) -> tuple[torch.Tensor, torch.Tensor]:
    window = audio_9s()[:64000].unsqueeze(0)
    feats = models.dit.audio_feature_map(hubert_features(models.hubert, window, 25.0, 100))
    noise = torch.randn((1, 100, 70), generator=torch.Generator().manual_seed(5))
    return feats, noise


@pytest.mark.parametrize(("cfg_scale", "key"), [(CFG_SCALE, "step_cfg"), (None, "step_nocfg")])
def test_one_denoising_step(models: JoyVasaModels, ref: dict[str, np.ndarray],
                            cfg_scale: float | None, key: str) -> None:
    dit = models.dit
    with torch.inference_mode():
        feats, x_t = _window_start(models)
        # torch's CPU normal kernel rounds by vector ISA: bit-equal under AVX2 and AVX-512, up
        # to ~4 ulps of the largest value under ATEN_CPU_CAPABILITY=default
        assert_close(x_t, ref["step_xT"], what="start noise", ulps=8)
        sched = official_schedule(dit)
        gen = torch.Generator().manual_seed(5)
        torch.randn((1, 100, 70), generator=gen)  # the start noise, drawn first
        z = torch.randn((1, 100, 70), generator=gen)
        x0 = denoise(dit, x_t, sched.timesteps[0], feats, dit.start_motion_feat,
                     dit.start_audio_feat, cfg_scale)
        got = sched.c0[0] * x_t + sched.c1[0] * x0 + sched.sigma[0] * z
    assert_close(got, ref[key], what=key, ulps=ULPS_PASS)


@pytest.mark.parametrize(("cfg_scale", "key"),
                         [(CFG_SCALE, "window_cfg"), (None, "window_nocfg")])
def test_whole_window_same_noise(models: JoyVasaModels, ref: dict[str, np.ndarray],
                                 cfg_scale: float | None, key: str) -> None:
    """sample_motion on one window's worth of frames (its own padding ignored): the official
    ``sample`` on the raw window, the same seeded noise."""
    dit = models.dit
    with torch.inference_mode():
        feats, x = _window_start(models)
        sched = official_schedule(dit)
        gen = torch.Generator().manual_seed(5)
        torch.randn((1, 100, 70), generator=gen)
        for i, t in enumerate(sched.timesteps):
            last = i == len(sched.timesteps) - 1
            z = torch.zeros_like(x) if last else torch.randn((1, 100, 70), generator=gen)
            x0 = denoise(dit, x, t, feats, dit.start_motion_feat, dit.start_audio_feat,
                         cfg_scale)
            x = sched.c0[i] * x + sched.c1[i] * x0 + sched.sigma[i] * z
    assert_close(x, ref[key], what=key, ulps=ULPS_CHAIN)


def test_three_windows_carry_and_denormalised(models: JoyVasaModels,
                                              ref: dict[str, np.ndarray]) -> None:
    """The official window loop on 9 s of audio: three windows with motion and audio carried,
    the last trimmed; de-normalised, then smoothed, then the DrivingMotion at 25 fps."""
    with torch.inference_mode():
        coef = sample_motion(models.dit, models.hubert, audio_9s(), 25.0, "zero",
                             SampleOptions(seed=21))
    assert coef.shape == (228, 70)
    raw = denormalise(coef, models.stats)
    smoothed = smooth(raw)
    for tag, frames in (("raw", raw), ("smooth", smoothed)):
        fields = {"exp": frames.exp.reshape(-1, 21, 3), "scale": frames.scale, "t": frames.t,
                  "pitch": frames.angles[:, :1], "yaw": frames.angles[:, 1:2],
                  "roll": frames.angles[:, 2:]}
        for name, got in fields.items():
            key = f"seq_raw_{name}" if name == "exp" else f"seq_{tag}_{name}"
            assert_close(got, ref[key], what=key, ulps=ULPS_CHAIN)
    raw_motion = to_driving_motion(raw, 25.0)
    assert_close(raw_motion.R, ref["seq_raw_R"], what="R unsmoothed", ulps=ULPS_CHAIN)
    motion = to_driving_motion(resample(smoothed, 25.0, 25.0, 228), 25.0)
    assert_close(motion.R, ref["seq_smooth_R"], what="R", ulps=ULPS_CHAIN)
    assert_close(motion.exp, ref["seq_raw_exp"], what="exp", ulps=ULPS_CHAIN)

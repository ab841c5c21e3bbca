"""The MuseTalk engine's own parts on real crops of the real photo: the official v1.5 box from
our landmarks, the whisper windows cut per batch (equal to the official all-at-once chunking),
the avatar cache (content-addressed, torn entries recomputed, bounded), and fp16 against fp32."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.device import pick_dtype
from pipeline.face.geometry import liveportrait_crop, warp
from pipeline.face.landmarks import FaceLandmarker
from pipeline.lipsync.engine import EngineContext, apply_mouth
from pipeline.lipsync.musetalk import musetalk_crop as mcrop
from pipeline.lipsync.musetalk.avatar_cache import AvatarCache, avatar_key
from pipeline.lipsync.musetalk.musetalk_engine import MuseTalkEngine, load_musetalk_engine
from pipeline.lipsync.musetalk.whisper_windows import WhisperWindows
from pipeline.lipsync.registry import engine_entry
from pipeline.musetalk.audio import frame_windows
from pipeline.musetalk.bundle import MuseTalk
from pipeline.musetalk.configs import MuseTalkConfigs
from pipeline.musetalk.parsing import crop_box
from tests.helpers.musetalk_checkpoints import write_weights_dir

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def scene(astronaut_path: Path, landmark_weights_dir: Path) -> dict:
    photo = np.asarray(Image.open(astronaut_path).convert("RGB"))
    landmarker = FaceLandmarker(landmark_weights_dir)
    lmk = landmarker.landmarks(photo, landmarker.detect(photo))
    to_crop = liveportrait_crop(lmk)
    crop = warp(photo, to_crop, 512)
    return {"crop": crop, "landmarks": to_crop.apply(lmk).astype(np.float32),
            "landmarker": landmarker}


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, MuseTalkConfigs]:
    root = tmp_path_factory.mktemp("mt-weights")
    return root, write_weights_dir(root)


def test_official_v15_box_from_our_landmarks(scene: dict) -> None:
    """Box: jaw to jaw, as far above the nose bridge (68-point 29) as the chin is below it, 10 px
    below the chin: the brows, eyes and the whole lower face are in it."""
    lmk = scene["landmarks"]
    x1, y1, x2, y2 = mcrop.face_box(lmk, 512)
    pts = lmk[mcrop.IBUG68]
    assert (x1, x2) == (pts[:, 0].min(), pts[:, 0].max())
    assert y2 == pytest.approx(lmk[152, 1] + mcrop.EXTRA_MARGIN)  # the chin is the lowest point
    assert y1 == pytest.approx(2 * lmk[5, 1] - lmk[152, 1])
    brows_y, eyes_y = lmk[[70, 105, 300, 334], 1].min(), lmk[[33, 263, 133, 362], 1].mean()
    assert y1 < brows_y < eyes_y < lmk[5, 1] < y2
    assert 0.7 < (x2 - x1) / (y2 - y1) < 1.25  # roughly square, as the official crops
    (box,) = mcrop.face_boxes([lmk], 512, 512)
    assert box == tuple(int(round(v)) for v in (x1, y1, x2, y2))
    face = mcrop.face_256(scene["crop"], box)
    assert face.shape == (256, 256, 3) and face.dtype == np.uint8
    # near the crop's edge the parsing square is padded black, as PIL's crop pads
    edge = (0, 300, 150, 511)
    region, square = mcrop.parsing_region(scene["crop"], edge)
    assert square == crop_box(edge) and square[0] < 0 and square[3] > 512
    assert region.shape == (square[3] - square[1], square[2] - square[0], 3)
    assert not region[:, :-square[0]].any()  # left of the crop: black
    inside = scene["crop"][square[1]:, :square[2]]
    assert np.array_equal(region[:512 - square[1], -square[0]:], inside)


@pytest.mark.parametrize(("seconds", "fps", "n_frames"), [
    (0.52, 25.0, 13), (3.0, 25.0, 75), (1.1, 30000 / 1001, 33), (2.0, 24.0, 49), (0.05, 25.0, 2),
])
def test_whisper_windows_cut_per_batch_equal_the_official_chunking(
        seconds: float, fps: float, n_frames: int) -> None:
    n_samples = int(seconds * 16000)
    states = torch.randn(1, math.ceil(seconds * 50) + 3, 5, 384, generator=torch.Generator()
                         .manual_seed(n_frames))
    whole = frame_windows(states, n_samples, fps, n_frames)
    lazy = WhisperWindows(states, n_samples, fps, n_frames)
    assert len(lazy) == n_frames and whole.shape == (n_frames, 50, 384)
    for start in range(0, n_frames, 4):  # batches of 4, as the chain asks
        assert torch.equal(lazy[start:start + 4], whole[start:start + 4])
    assert torch.equal(lazy[0:n_frames], whole)
    assert lazy[n_frames:n_frames].shape == (0, 50, 384)


def test_avatar_cache_is_content_addressed_bounded_and_survives_torn_files(tmp_path: Path,
                                                                           scene: dict) -> None:
    crop = scene["crop"]
    box = (100, 150, 400, 450)
    key = avatar_key(crop, box)
    other = crop.copy()
    other[0, 0, 0] ^= 1
    assert avatar_key(other, box) != key != avatar_key(crop, (100, 150, 400, 451))
    assert avatar_key(crop.copy(), box) == key
    cache = AvatarCache(tmp_path, "v1", limit_bytes=10**9)
    assert cache.get(key) is None
    latents = np.random.default_rng(0).standard_normal((8, 32, 32)).astype(np.float32)
    mask = np.arange(300 * 300, dtype=np.int64).reshape(300, 300).astype(np.uint8)
    cache.put(key, {"latents": latents, "mask": mask})
    got = cache.get(key)
    assert got is not None and np.array_equal(got["latents"], latents)
    assert np.array_equal(got["mask"], mask) and got["mask"].dtype == np.uint8
    assert AvatarCache(tmp_path, "v2", 10**9).get(key) is None  # another engine version
    path = tmp_path / "avatar" / "v1" / f"{key}.npz"
    for torn in (path.read_bytes()[:100], b"", b"PK\x03\x04 not a zip"):
        path.write_bytes(torn)
        assert cache.get(key) is None and not path.exists()  # recomputed next time
    # bounded: the least recently used entries go first
    size = 0
    for n in range(6):
        cache.put(f"k{n}", {"latents": latents, "mask": mask})
        p = tmp_path / "avatar" / "v1" / f"k{n}.npz"
        size = p.stat().st_size
        t = 1_000_000 + n
        os.utime(p, (t, t))
    assert cache.get("k0") is not None  # used now: the most recent
    small = AvatarCache(tmp_path, "v1", limit_bytes=3 * size)
    assert small.evict() == 3
    left = sorted(p.stem for p in (tmp_path / "avatar" / "v1").glob("*.npz"))
    assert left == ["k0", "k4", "k5"]


def _engine(weights: tuple[Path, MuseTalkConfigs], cache_dir: Path, landmarker: FaceLandmarker,
            batch: int = 2) -> MuseTalkEngine:
    root, configs = weights
    ctx = EngineContext(root, cache_dir, CPU, torch.float32, batch, landmarker, 64)
    return load_musetalk_engine(ctx, "musetalk", configs)


def test_prepare_caches_the_avatar_and_mouths_stay_in_the_mask(tmp_path: Path, scene: dict,
                                                               weights: tuple[Path, MuseTalkConfigs]
                                                               ) -> None:
    engine = _engine(weights, tmp_path, scene["landmarker"])
    crops = [scene["crop"], np.ascontiguousarray(scene["crop"][:, ::-1])]
    cold = engine.prepare(crops, scene["landmarks"])
    assert len(list((tmp_path / "avatar").glob("*/*.npz"))) == 2
    fresh = _engine(weights, tmp_path, scene["landmarker"])  # a new process: only the disk
    encodes = []
    fresh.model.vae.encoder.register_forward_hook(lambda *_: encodes.append(1))
    warm = fresh.prepare(crops, scene["landmarks"])
    assert encodes == []
    for a, b in zip(cold, warm, strict=True):
        assert a.box == b.box and torch.equal(a.latents, b.latents)
        assert np.array_equal(a.mask, b.mask) and a.mask.dtype == np.float32
        x1, y1, x2, y2 = a.box
        assert a.latents.shape == (8, 32, 32) and a.mask.shape == (y2 - y1, x2 - x1)
        assert 0.0 <= a.mask.min() and a.mask.max() <= 1.0
        assert not a.mask[: (y2 - y1) // 4].any()  # the upper face is never blended
    feats = engine.audio_features(np.zeros(8000, np.float32), 25.0, 3)
    mouths = engine.mouths([crops[0]] * 3, [cold[0]] * 3, feats)
    assert [m.patch.shape for m in mouths] == [(*cold[0].mask.shape, 3)] * 3
    out = apply_mouth(crops[0], mouths[0])
    full = np.zeros((512, 512), np.float32)
    x1, y1, x2, y2 = cold[0].box
    full[y1:y2, x1:x2] = cold[0].mask
    assert np.array_equal(out[full == 0], crops[0][full == 0])
    with pytest.raises(ValueError, match="one to one"):
        engine.mouths([crops[0]], cold, feats)


def test_half_precision_only_on_gpus_and_close_to_fp32(
        weights: tuple[Path, MuseTalkConfigs]) -> None:
    """MuseTalk runs fp16 under ``dtype: auto`` on CUDA and MPS (the official --use_float16),
    fp32 on the CPU; fp16 stays close to fp32 (checked here on the CPU, whose fp16 kernels exist
    but are slow, so the chain never picks them)."""
    fp16 = engine_entry("musetalk").fp16_checked
    assert pick_dtype(torch.device("cuda"), "auto", fp16) == torch.float16
    assert pick_dtype(torch.device("mps"), "auto", fp16) == torch.float16
    assert pick_dtype(CPU, "auto", fp16) == torch.float32
    assert engine_entry("wav2lip").fp16_checked  # 75 dB mouth PSNR: tests/test_half_precision.py
    root, configs = weights
    full = MuseTalk.load(root, CPU, torch.float32, configs)
    half = MuseTalk.load(root, CPU, torch.float16, configs)
    g = torch.Generator().manual_seed(2)
    # the UNet at its real 32 x 32 latent size; the (fully convolutional) VAE on a 64 x 64 face
    latents, windows = torch.randn(1, 8, 32, 32, generator=g), torch.randn(1, 50, 384, generator=g)
    pred = full.unet(latents, windows)
    pred16 = half.unet(latents.half(), windows.half())
    assert (pred - pred16.float()).abs().max() <= 0.02 * pred.abs().max()
    face = torch.rand(1, 3, 64, 64, generator=g) * 2 - 1
    code = full.vae.encode(face).latent_dist.mode()
    code16 = half.vae.encode(face.half()).latent_dist.mode()
    assert (code - code16.float()).abs().max() <= 0.02 * code.abs().max()
    a, b = full.decode(code * full.scaling_factor), half.decode(code * half.scaling_factor)
    diff = np.abs(a.astype(np.int16) - b)
    assert diff.max() <= 6 and diff.mean() <= 1.0, (diff.max(), diff.mean())


def test_bench_measures_each_part_with_a_cold_avatar_cache(tmp_path: Path, scene: dict,
                                                           weights: tuple[Path, MuseTalkConfigs],
                                                           astronaut: np.ndarray,
                                                           speech_path: Path) -> None:
    from pipeline.lipsync.musetalk.musetalk_bench import benchmark_musetalk
    from pipeline.media.audio import load_audio

    engine = _engine(weights, tmp_path / "cache", scene["landmarker"])
    r = benchmark_musetalk(engine, scene["landmarker"], astronaut,
                           load_audio(speech_path).samples, frames=4, distinct=2, batch_size=2)
    assert (r.device, r.dtype, r.frames, r.distinct) == ("cpu", "float32", 4, 2)
    parts = (r.prepare_ms, r.audio_ms, r.unet_ms, r.vae_decoder_ms, r.blend_ms)
    assert all(p > 0 for p in parts)
    assert r.total_ms >= r.unet_ms + r.vae_decoder_ms + r.blend_ms
    assert not (tmp_path / "cache").exists()  # the engine's own avatar cache was not touched

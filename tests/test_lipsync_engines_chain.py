"""The lip-sync engines through the real chain, in process: the real photo and speech,
random-weight checkpoints in the official formats, a 2-frame driving clip, 0.5 s of audio.

- Wav2Lip behind the seam makes the very video the pre-seam chain made: the frames composed by
  the pre-seam code path (``LipSyncer.prepare_sequence`` / ``frame_mels`` / ``LipSyncer.sync``,
  kept as they were) encode to a video whose decoded frames equal the chain's, bit for bit.
  (On the machine this was written on, both also equal main's output before the seam, hash
  ce9f4e60... of the composed frames; a hash is not asserted here because LivePortrait's random
  networks round differently under other CPU kernels.)
- The same job with ``wav2lip`` and ``musetalk`` (reduced-size random MuseTalk weights in the
  official formats, built through the real loader): both videos last the audio to the frame, and
  every composed crop keeps the animated crop's pixels exactly where its engine's mask is 0.
- A repeat avatar with MuseTalk runs no VAE encoder and no face parser (the avatar cache).
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import pipeline.chain.compose as compose
from pipeline.chain.compose import DistinctCrops
from pipeline.chain.runner import Runner
from pipeline.face.paste import PasteBack
from pipeline.face.steady import SteadyTracker
from pipeline.lipsync.engine import EngineContext, LipSyncEngine, sync_frames
from pipeline.lipsync.musetalk.musetalk_engine import MuseFace, MuseTalkEngine, load_musetalk_engine
from pipeline.lipsync.wav2lip.audio import frame_mels
from pipeline.lipsync.wav2lip.load import load_wav2lip, wav2lip_path
from pipeline.lipsync.wav2lip.stage import BaseFace, LipSyncer
from pipeline.media.audio import load_audio
from pipeline.media.verify import verify_video
from pipeline.media.video import VideoWriter, exact_fps, iter_frames
from pipeline.spec import CancelToken, JobSpec, no_progress
from tests.helpers.chain_checks import portrait
from tests.helpers.clips import make_clip
from tests.helpers.daemon_harness import speech_clip
from tests.helpers.musetalk_checkpoints import write_weights_dir
from tests.helpers.settings import pipeline_settings

FPS = 25.0


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, model_weights_dir: Path,
          astronaut_path: Path, speech_path: Path) -> dict:
    root = tmp_path_factory.mktemp("engines")
    weights = root / "w"  # every model of the suite's weights folder, plus MuseTalk's files
    weights.mkdir()
    for sub in model_weights_dir.iterdir():
        (weights / sub.name).symlink_to(sub.resolve())
    configs = write_weights_dir(weights)  # reduced sizes: seconds, not minutes, on a CPU
    (root / "d").mkdir()
    make_clip(root / "d" / "nod.mp4", astronaut_path, 2, Fraction(25))
    photo = portrait(astronaut_path, root / "portrait.jpg")
    settings = pipeline_settings(root, device="cpu", max_size=384, batch_size=4,
                                 weights_dir=weights)
    audio = speech_clip(speech_path, root / "short.wav", 0.5)
    # LivePortrait and the landmarker are loaded once for the module (the load is the costly
    # part of a fresh runner, and what these tests check is the lip-sync engines behind them)
    loaded = Runner(settings)
    return {"root": root, "settings": settings, "photo": photo, "audio": audio,
            "configs": configs, "landmarker": loaded.landmarker(), "animator": loaded.animator()}


def _runner(world: dict) -> Runner:
    """A fresh runner whose lip-sync engines are not loaded yet (LivePortrait and the landmarker
    are the module's); its MuseTalk is built at the test's reduced sizes by the real loader from
    the official-format files (the registry's loader uses full sizes)."""
    runner = Runner(world["settings"])
    runner.bank.get("landmarks", lambda: world["landmarker"])
    runner.bank.get("liveportrait", lambda: world["animator"])
    s = world["settings"]

    def load() -> MuseTalkEngine:
        ctx = EngineContext(s.weights_dir, s.cache_dir, runner.bank.device,
                            runner.bank.dtype(True), s.chunk_size, runner.landmarker(),
                            s.render_cache_mb)
        return load_musetalk_engine(ctx, "musetalk", world["configs"])

    runner.bank.get(Runner.engine_key("musetalk"), load)
    return runner


def _job(world: dict, name: str, engine: str | None = None) -> JobSpec:
    # quality: false: the score is not what these tests check, and it leaves the video as is
    return JobSpec(name, world["photo"], world["audio"], "nod", f"{name}.mp4", FPS, True, False,
                   lipsync_engine=engine, quality=False)


def _decoded(video: Path) -> np.ndarray:
    return np.stack(list(iter_frames(video)))


def _pre_seam_frames(runner: Runner, job: JobSpec) -> tuple[list[np.ndarray], tuple[int, int]]:
    """The chain's frames as main composed them before the seam (lip sync on, enhance off)."""
    job = JobSpec(job.name, job.face, job.audio, job.driving, job.output_name,
                  float(exact_fps(job.fps)), True, False)
    prepared = runner.prepare(job)
    anim = runner.animator().run(prepared.photo, prepared.landmarks, prepared.driving,
                                 prepared.audio.duration, float(job.fps))
    s = runner.settings
    syncer = LipSyncer(load_wav2lip(wav2lip_path(s.weights_dir, s.lipsync_model),
                                    runner.bank.device, runner.bank.dtype(False)),
                       runner.bank.device, runner.bank.dtype(False), s.chunk_size,
                       landmarker=runner.landmarker())
    first = anim.affine.apply(prepared.landmarks).astype(np.float32)
    bases = syncer.prepare_sequence(DistinctCrops(anim), first,
                                    landmarker=SteadyTracker(runner.landmarker()))
    mels = frame_mels(prepared.audio.samples, job.fps, anim.n_frames)
    h, w = prepared.photo.shape[:2]
    paste = PasteBack(anim.affine, (512, 512), (w, h))
    frames = []
    for start in range(0, anim.n_frames, s.chunk_size):
        ks = [int(k) for k in anim.order[start:start + s.chunk_size]]
        crops = syncer.sync([anim.crop(k) for k in ks], [bases[k] for k in ks],
                            mels[start:start + len(ks)])
        frames += [paste.paste(prepared.photo, c) for c in crops]
    return frames, (w, h)


class ComposedCrops:
    """Records what the chain's ``sync_frames`` got and made, calling the real one."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[np.ndarray], list[np.ndarray], list[object]]] = []

    def __call__(self, engine: LipSyncEngine, crops: list[np.ndarray], prepared: list,
                 features: object) -> list[np.ndarray]:
        out = sync_frames(engine, crops, prepared, features)
        self.calls.append(([c.copy() for c in crops], out, list(prepared)))
        return out


def _full_mask(box: tuple[int, int, int, int], mask: np.ndarray) -> np.ndarray:
    full = np.zeros((512, 512), np.float32)
    x1, y1, x2, y2 = box
    full[y1:y2, x1:x2] = mask
    return full


def _mask_of(engine: str, prepared: object) -> np.ndarray:
    """The engine's blend mask over the whole crop, from its per-crop preparation."""
    kind = MuseFace if engine == "musetalk" else BaseFace
    assert isinstance(prepared, kind)
    return _full_mask(prepared.box, prepared.mask)


class CallCount:
    """A forward hook that counts the calls of the real module it is registered on."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, *_: object) -> None:
        self.n += 1


def _run_engine(world: dict, engine: str, name: str, monkeypatch: pytest.MonkeyPatch,
                hook: Callable[[Runner], None] | None = None
                ) -> tuple[Runner, Path, ComposedCrops]:
    """One job through a fresh runner with ``engine`` (``hook`` sees the runner first); what
    its ``sync_frames`` composed."""
    spy = ComposedCrops()
    monkeypatch.setattr(compose, "sync_frames", spy)
    runner = _runner(world)
    if hook is not None:
        hook(runner)
    out = world["root"] / f"{name}.mp4"
    record = runner.run(_job(world, name, engine), out, no_progress, CancelToken())
    seconds = load_audio(world["audio"]).duration
    info = verify_video(out, fps=Fraction(25))
    assert info.frames == 13 and abs(info.frames / FPS - seconds) <= 1 / FPS  # ceil(0.5 * 25)
    assert abs(info.duration - seconds) <= 1 / FPS
    stages = {s.name: s for s in record.stages}
    assert stages["lipsync"].note == engine and stages["lipsync"].frames == 13
    assert stages["mel" if engine.startswith("wav2lip") else "whisper"].frames == 13
    return runner, out, spy


def _check_outside_mask(spy: ComposedCrops, engine: str) -> None:
    """Every composed crop keeps the animated crop's pixels exactly where the mask is 0 and has
    the engine's mouth where it is not."""
    assert sum(len(call[0]) for call in spy.calls) == 13
    changed = 0
    for before, after, prepared in spy.calls:
        for crop, frame, prep in zip(before, after, prepared, strict=True):
            mask = _mask_of(engine, prep)
            assert frame.shape == crop.shape == (512, 512, 3) and frame.dtype == np.uint8
            assert 0 < (mask > 0).mean() < 0.5  # the mouth region, not the crop
            assert np.array_equal(frame[mask == 0], crop[mask == 0])
            changed += int((frame[mask > 0] != crop[mask > 0]).any())
    assert changed == 13  # every frame's mouth was made by the engine


@pytest.mark.slow  # two whole Wav2Lip jobs on full-size networks (~45 s on 2 quiet cores)
def test_wav2lip_video_is_unchanged_by_the_seam(world: dict,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    runner, out, spy = _run_engine(world, "wav2lip", "seam", monkeypatch)
    _check_outside_mask(spy, "wav2lip")
    frames, (w, h) = _pre_seam_frames(runner, _job(world, "before"))
    before = world["root"] / "before.mp4"
    with VideoWriter(before, w, h, FPS, audio_path=world["audio"]) as writer:
        writer.write(np.stack(frames))
        writer.close()
    assert len(frames) == 13
    # the engine's fast Wav2Lip pass matches the plain one up to rounding ties (1 level on a few
    # pixels, test_wav2lip_fast), which the H.264 encode may spread a little around them
    diff = np.abs(_decoded(out).astype(np.int16) - _decoded(before).astype(np.int16))
    assert int(diff.max()) <= 6 and float((diff > 0).mean()) < 1e-3, (diff.max(), (diff > 0).mean())


@pytest.mark.slow  # a whole MuseTalk job and its repeat on full-size networks (~35 s)
def test_musetalk_job_and_its_repeat_avatar(world: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """The MuseTalk job lasts the audio and keeps the pixels outside its mask; a repeat avatar
    (the same face and clip: its crops come from the render cache) runs no VAE encoder and no
    face parser, only the UNet and the VAE decoder, and makes the same video."""
    import shutil

    shutil.rmtree(world["settings"].cache_dir / "avatar", ignore_errors=True)
    videos, counts = [], []
    for n in range(2):
        calls = {"encoder": CallCount(), "parser": CallCount(), "decoder": CallCount(),
                 "unet": CallCount()}

        def hooked(runner: Runner, calls: dict[str, CallCount] = calls) -> None:
            engine = runner.syncer("musetalk")
            assert isinstance(engine, MuseTalkEngine)
            engine.model.vae.encoder.register_forward_hook(calls["encoder"])
            engine.model.parser.register_forward_hook(calls["parser"])
            engine.model.vae.decoder.register_forward_hook(calls["decoder"])
            engine.model.unet_net.register_forward_hook(calls["unet"])

        _, out, spy = _run_engine(world, "musetalk", f"avatar{n}", monkeypatch, hooked)
        if n == 0:
            _check_outside_mask(spy, "musetalk")
        videos.append(_decoded(out))
        counts.append({k: c.n for k, c in calls.items()})
    first, repeat = counts
    assert first["encoder"] == 2 and first["parser"] == 2  # 2 distinct crops, one batch
    assert repeat["encoder"] == 0 and repeat["parser"] == 0
    assert first["unet"] == repeat["unet"] == first["decoder"] == repeat["decoder"] == 4
    assert np.array_equal(videos[0], videos[1])

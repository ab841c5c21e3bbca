"""The lip-sync engines through the real chain, in process: the real photo and speech,
random-weight checkpoints in the official formats, a 2-frame driving clip, 0.5 s of audio.

- Wav2Lip behind the seam makes the very video the pre-seam chain made: the frames composed by
  the pre-seam code path (``LipSyncer.prepare_sequence`` / ``frame_mels`` / ``LipSyncer.sync``,
  kept as they were) encode to a video whose decoded frames equal the chain's, bit for bit.
  (On the machine this was written on, both also equal main's output before the seam, hash
  ce9f4e60... of the composed frames; a hash is not asserted here because LivePortrait's random
  networks round differently under other CPU kernels.)
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.chain.compose import DistinctCrops
from pipeline.chain.runner import Runner
from pipeline.face.paste import PasteBack
from pipeline.face.steady import SteadyTracker
from pipeline.lipsync.audio import frame_mels
from pipeline.lipsync.load import load_wav2lip, wav2lip_path
from pipeline.lipsync.stage import LipSyncer
from pipeline.media.audio import load_audio
from pipeline.media.verify import verify_video
from pipeline.media.video import VideoWriter, exact_fps, iter_frames
from pipeline.spec import CancelToken, JobSpec, no_progress
from tests.helpers.clips import make_clip
from tests.helpers.daemon_harness import speech_clip
from tests.helpers.settings import pipeline_settings

FPS = 25.0


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, model_weights_dir: Path,
          astronaut_path: Path, speech_path: Path) -> dict:
    root = tmp_path_factory.mktemp("engines")
    (root / "d").mkdir()
    make_clip(root / "d" / "nod.mp4", astronaut_path, 2, Fraction(25))
    photo = root / "portrait.jpg"  # 512x448, long side above max_size
    Image.open(astronaut_path).convert("RGB").crop((0, 0, 512, 448)).save(photo, quality=92)
    settings = pipeline_settings(root, device="cpu", max_size=384, batch_size=4,
                                 weights_dir=model_weights_dir)
    audio = speech_clip(speech_path, root / "short.wav", 0.5)
    return {"root": root, "settings": settings, "photo": photo, "audio": audio}


def _job(world: dict, name: str, engine: str | None = None) -> JobSpec:
    return JobSpec(name, world["photo"], world["audio"], "nod", f"{name}.mp4", FPS, True, False,
                   lipsync_engine=engine)


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


def test_wav2lip_video_is_unchanged_by_the_seam(world: dict) -> None:
    runner = Runner(world["settings"])
    out = world["root"] / "seam.mp4"
    record = runner.run(_job(world, "seam", "wav2lip"), out, no_progress, CancelToken())
    stages = {s.name: s for s in record.stages}
    assert stages["lipsync"].note == "wav2lip" and stages["mel"].frames == 13
    frames, (w, h) = _pre_seam_frames(runner, _job(world, "before"))
    before = world["root"] / "before.mp4"
    with VideoWriter(before, w, h, FPS, audio_path=world["audio"]) as writer:
        writer.write(np.stack(frames))
        writer.close()
    seconds = load_audio(world["audio"]).duration
    info = verify_video(out, fps=Fraction(25))
    assert info.frames == len(frames) == 13 and abs(info.frames / FPS - seconds) <= 1 / FPS
    assert np.array_equal(_decoded(out), _decoded(before))

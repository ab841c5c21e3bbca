"""One job folder through the real chain as ``voice``, ``still`` and a clip, in process: the real
photo and speech (0.5 s), random-weight checkpoints in the official formats, JoyVASA included
(the generator ``.pt`` with its ``argparse.Namespace``/``PosixPath`` args, ``motion_template.pkl``
and chinese-hubert-base, small by their own config: ``tests.helpers.joyvasa_checkpoints``).

- ``voice``: every output frame is its own render; the video lasts the audio to the frame and
  timing.json names the source, the reason and the seed. A rerun with the same seed samples
  nothing (the voice-motion cache), renders nothing (the render cache) and gives the very same
  bytes; another seed gives another video.
- ``auto``: with the voice weights in the weights folder a job with no clip named is ``voice``;
  without them it is the library's default clip; timing.json says why.
- ``still`` and a clip: the same job folder, each lasting the audio to the frame.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pipeline.chain.runner import Runner
from pipeline.spec import CancelToken, JobSpec, TimingRecord, no_progress
from pipeline.voice.load import VoiceFiles
from pipeline.voice.motion_store import FOLDER
from tests.helpers.chain_checks import animate_note, check_length, motion_job_folder
from tests.helpers.joyvasa_checkpoints import write_weights_dir
from tests.helpers.settings import pipeline_settings

FPS = 2.0  # 0.5 s -> 1 frame: one render (~5 s on 2 CPU cores); the same for both seeds
STILL_FPS = 2.0  # 1 frame: one render (still is covered at length by test_motion_chain)
CLIP_FPS = 2.0  # 1 frame: one render (a clip at length: test_chain, test_lp_stage)
STEPS = 3  # motion_steps: a respaced sampler (the small generator has 10 diffusion steps)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, model_weights_dir: Path,
          astronaut_path: Path, speech_path: Path) -> dict:
    root = tmp_path_factory.mktemp("voice")
    job = motion_job_folder(root, astronaut_path, speech_path)
    # the session's weights plus JoyVASA's, in a folder of its own (the shared one stays
    # without voice weights, so ``auto`` elsewhere keeps choosing the clip)
    voiced = root / "w-voice"
    voiced.mkdir()
    for entry in model_weights_dir.iterdir():
        (voiced / entry.name).symlink_to(entry)
    write_weights_dir(voiced)
    assert VoiceFiles.under(voiced).generator.is_file()  # where JoyVasaMotion looks
    common: dict[str, Any] = {"device": "cpu", "max_size": 384, "batch_size": 2,
                              "default_driver": "nod"}
    settings = pipeline_settings(root, weights_dir=voiced, **common)
    runner = Runner(settings)
    bare = pipeline_settings(root, weights_dir=model_weights_dir, **common)
    # the same cache folder and loaded networks; only the weights folder (no JoyVASA) differs
    return {"root": root, "job": job, "runner": runner,
            "bare": Runner(bare, bank=runner.bank)}


def _spec(world: dict, name: str, **fields: Any) -> JobSpec:
    job = world["job"]
    base = JobSpec(name, job / "face.jpg", job / "voice.wav", None, f"{name}.mp4",
                   lipsync=False, enhance=False, quality=False, fps=FPS)
    return replace(base, **fields)


def _run(world: dict, spec: JobSpec, runner: str = "runner") -> tuple[Path, TimingRecord]:
    out = world["root"] / "out" / spec.output_name
    out.parent.mkdir(exist_ok=True)
    out.unlink(missing_ok=True)
    record = world[runner].run(spec, out, no_progress, CancelToken())
    return out, record


def test_voice_job_lasts_the_audio_and_a_rerun_samples_and_renders_nothing(
        world: dict, samplings: list[int]) -> None:
    spec = _spec(world, "voice1", motion="voice", seed=1, motion_steps=STEPS)
    out, record = _run(world, spec)
    check_length(out, record, FPS)
    assert record.to_json()["motion"] == {"source": "voice", "seed": 1, "clip": None,
                                          "reason": "job.yaml says motion: voice"}
    assert animate_note(record).startswith(f"{record.frames} rendered, 0 reused")
    assert samplings == [1]
    entries = list((world["root"] / "cache" / FOLDER).glob("*.pkl"))
    assert len(entries) == 1
    first = out.read_bytes()

    out, again = _run(world, spec)
    assert samplings == [1]  # the motion came from the cache: no sampling
    assert animate_note(again).startswith(f"0 rendered, {record.frames} reused")
    assert out.read_bytes() == first  # same seed: the very same video
    world["voice"] = first

    # without the stored motion the sampler runs again and gives the same motion (the render
    # cache, keyed by the motion's hash, still hits)
    entries[0].unlink()
    out, third = _run(world, spec)
    assert samplings == [1, 1]
    assert animate_note(third).startswith(f"0 rendered, {record.frames} reused")
    assert out.read_bytes() == first


def test_another_seed_gives_another_voice_video(world: dict, samplings: list[int]) -> None:
    spec = _spec(world, "voice2", motion="voice", seed=2, motion_steps=STEPS)
    out, record = _run(world, spec)
    check_length(out, record, FPS)
    assert record.motion is not None and record.motion.seed == 2
    assert samplings == [1]
    assert animate_note(record).startswith(f"{record.frames} rendered")
    assert out.read_bytes() != world.get("voice", b"")


def test_auto_picks_voice_when_its_weights_are_present(world: dict) -> None:
    out, record = _run(world, _spec(world, "auto-voice", seed=1, motion_steps=STEPS))
    check_length(out, record, FPS)
    assert record.to_json()["motion"] == {
        "source": "voice", "seed": 1, "clip": None,
        "reason": "no clip named and the voice weights are present"}
    assert out.read_bytes() == world.get("voice", b"")  # the same motion: the same video


def test_still_job_from_the_same_folder(world: dict) -> None:
    out, record = _run(world, _spec(world, "still", motion="still", seed=1, fps=STILL_FPS))
    check_length(out, record, STILL_FPS)
    assert record.to_json()["motion"] == {"source": "still", "seed": 1, "clip": None,
                                          "reason": "job.yaml says motion: still"}
    assert animate_note(record).startswith(f"{record.frames} rendered, 0 reused")


def test_auto_without_voice_weights_picks_the_default_clip(world: dict) -> None:
    out, record = _run(world, _spec(world, "auto-clip", fps=CLIP_FPS), runner="bare")
    check_length(out, record, CLIP_FPS)
    motion = record.to_json()["motion"]
    assert (motion["source"], motion["clip"], motion["seed"]) == ("clip", "nod", None)
    assert motion["reason"].startswith("no clip named and no voice weights (")
    assert motion["reason"].endswith("): the library's default clip")
    assert "facedrop weights fetch voice" in motion["reason"]

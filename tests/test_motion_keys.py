"""job.yaml's and the config's motion keys, and the runner's routing of a job to its source
(no render: the motion is checked where the stage would receive it)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.chain.runner import Prepared, Runner
from pipeline.errors import ConfigError, InputError
from pipeline.liveportrait.generated import KeypointRule
from pipeline.media.audio import load_audio
from pipeline.media.frame_count import output_frame_count
from pipeline.motion.amount import MotionAmount, scale_motion
from pipeline.motion.make import VOICE_CROP_SCALE
from pipeline.prerequisites import JobNeeds
from pipeline.spec import JobSpec, MotionUsed, TimingRecord, no_progress
from tests.helpers.daemon_harness import BAD_JOB_LIMITS, make_job, speech_clip, write_config
from tests.helpers.media_samples import write_video
from tests.helpers.settings import pipeline_settings
from tests.helpers.voice_motion import EnvelopeVoice
from watcher.commands.doctor import motion_groups
from watcher.config import Config, load_config
from watcher.jobfolder import parse_job_folder
from watcher.jobqueue import Job, JobState
from watcher.macos.notify import job_notification
from watcher.outbox import Outbox


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.delenv("FACEDROP_CONFIG", raising=False)
    cfg = write_config(tmp_path / "root", limits=BAD_JOB_LIMITS)
    return load_config(cfg, home=tmp_path / "home")


@pytest.fixture
def voice(tmp_path: Path, speech_path: Path) -> Path:
    return speech_clip(speech_path, tmp_path / "voice.wav", 1.0)


def test_old_job_files_keep_their_meaning(tmp_path, config, astronaut_path, voice):
    folder = make_job(tmp_path / "jobs", "old", astronaut_path, voice, "driving: calm.mp4\n")
    write_video(folder / "calm.mp4", frames=2)
    spec = parse_job_folder(folder, config).spec
    assert spec.driving == folder / "calm.mp4" and spec.motion is None  # a clip, as before
    plain = parse_job_folder(make_job(tmp_path / "jobs", "plain", astronaut_path, voice), config)
    assert plain.spec.motion is None and plain.spec.seed is None  # decided when it runs
    assert plain.resolved["motion"] == "auto" and plain.resolved["seed"] == 0
    assert plain.resolved["motion_steps"] == "official"
    assert plain.resolved["head_motion"] == 0.6 and plain.resolved["face_motion"] == 0.8


def test_motion_keys_read_next_to_driving(tmp_path, config, astronaut_path, voice):
    text = "motion: still\nseed: 7\nmotion_steps: 50\nhead_motion: 0.3\nface_motion: 1.2\n"
    folder = make_job(tmp_path / "jobs", "still", astronaut_path, voice, text)
    write_video(folder / "ignored.mp4", frames=2)  # still motion: a video here drives nothing
    parsed = parse_job_folder(folder, config)
    spec = parsed.spec
    assert (spec.motion, spec.seed, spec.motion_steps) == ("still", 7, 50)
    assert (spec.head_motion, spec.face_motion, spec.driving) == (0.3, 1.2, None)
    assert parsed.resolved["driving"] is None and parsed.resolved["motion"] == "still"


@pytest.mark.parametrize(("text", "key", "fix"), [
    ("motion: wobble\n", "'motion'", "motion: voice"),
    ("motion: still\ndriving: calm\n", "motion: still and also names a driving clip",
     "remove 'driving:'"),
    ("head_motion: 2\n", "'head_motion' in job.yaml must be from 0 to 1.5", "head_motion: 0.5"),
    ("face_motion: -0.1\n", "'face_motion'", "face_motion: 0.8"),
    ("seed: -1\n", "'seed'", "seed: 7"),
    ("seed: 1.5\n", "'seed'", "seed: 7"),
    ("motion_steps: 0\n", "'motion_steps'", "motion_steps: 50"),
])
def test_bad_motion_keys_name_the_key_and_the_fix(tmp_path, config, astronaut_path, voice,
                                                   text, key, fix):
    folder = make_job(tmp_path / "jobs", "bad", astronaut_path, voice, text)
    with pytest.raises(InputError) as err:
        parse_job_folder(folder, config)
    assert key in err.value.problem and fix in err.value.fix


@pytest.mark.parametrize(("motion", "message"), [
    ({"source": "wobble"}, "'motion.source' must be one of auto, clip, voice, still"),
    ({"steps": 0}, "'motion.steps' must be official or a positive integer"),
    ({"head_motion": 1.6}, "'motion.head_motion' is out of range"),
    ({"seed": -3}, "'motion.seed' is out of range"),
])
def test_bad_motion_config_names_the_key(tmp_path, motion, message):
    cfg = write_config(tmp_path / "root", motion=motion)
    with pytest.raises(ConfigError, match=message):
        load_config(cfg, home=tmp_path / "home")


def test_config_values_reach_the_pipeline(tmp_path):
    cfg = write_config(tmp_path / "root", motion={"source": "still", "seed": 4, "steps": 40,
                                                  "head_motion": 0, "face_motion": 1.5})
    p = load_config(cfg, home=tmp_path / "home").pipeline
    assert (p.motion_source, p.motion_seed, p.motion_steps) == ("still", 4, 40)
    assert (p.head_motion, p.face_motion) == (0.0, 1.5)


def _runner(tmp_path: Path, voice: EnvelopeVoice) -> Runner:
    settings = pipeline_settings(tmp_path, device="cpu", default_driver="")
    return Runner(settings, voice_factory=lambda s, d: voice)


def _prepared(runner: Runner, job: JobSpec) -> Prepared:
    """What ``prepare`` gives, without finding the face (routing needs only the audio)."""
    audio = load_audio(job.audio, 60)
    n = output_frame_count(audio.duration, job.fps)
    return Prepared(np.zeros((4, 4, 3), np.uint8), np.zeros((468, 2)), audio, n, None,
                    runner.motion_choice(job))


def test_a_photo_and_a_voice_are_routed_to_voice_motion(tmp_path, astronaut_path, voice):
    provider = EnvelopeVoice()
    runner = _runner(tmp_path, provider)
    job = JobSpec("j", astronaut_path, voice, None, "j.mp4", 25.0, seed=9, head_motion=0.5)
    prepared = _prepared(runner, job)
    assert prepared.motion.source == "voice" and prepared.driving is None
    maker, options = runner.driving_input(job, prepared, no_progress)
    assert not isinstance(maker, Path)
    assert options.crop_scale == VOICE_CROP_SCALE and options.hold_lips  # lip sync follows
    made = maker(np.array([0.3, 0.3]))
    assert made.rule is KeypointRule.VOICE and made.motion.n_frames == prepared.n_frames == 25
    assert provider.calls == [(25, 25.0, 9, None)]  # the job's frames, fps, seed, steps
    raw = EnvelopeVoice().generate(prepared.audio.samples, 25.0, 25, seed=9, steps=None)
    expected = scale_motion(raw, MotionAmount(head=0.5, face=0.8))  # face from the config
    assert np.array_equal(made.motion.R, expected.R)
    assert np.array_equal(made.motion.exp, expected.exp)
    used = runner.motion_used(job, prepared.motion)
    assert used == MotionUsed("voice", "no clip named and the voice weights are present", 9)


def test_without_voice_weights_a_bare_job_is_still_and_asks_for_nothing(tmp_path,
                                                                       astronaut_path, voice):
    runner = _runner(tmp_path, EnvelopeVoice(absent="voice weights missing"))
    job = JobSpec("j", astronaut_path, voice, None, "j.mp4", 25.0)
    prepared = _prepared(runner, job)
    assert prepared.motion.source == "still"
    maker, options = runner.driving_input(job, prepared, no_progress)
    assert not isinstance(maker, Path) and options.crop_scale == 2.3
    assert maker(np.array([0.3, 0.3])).rule is KeypointRule.BLINKS
    gaps = runner.missing_prerequisites(JobNeeds(job_dir=tmp_path))
    assert not any("driving clip" in g.what for g in gaps)  # no clip is needed
    asked = runner.missing_prerequisites(JobNeeds(job_dir=tmp_path, motion="voice"))
    assert any(g.what == "voice motion weights: voice weights missing"
               and g.fix == "facedrop weights fetch voice" for g in asked)


def test_the_notification_names_the_motion_source():
    video = Path("/out/j/j.mp4")
    assert job_notification("j", video=video, motion="still") == (
        "j", f"Done (still motion): {video}")
    assert job_notification("j", video=video, motion="voice", quality="check lip sync") == (
        "j", f"Done (voice motion) — check lip sync: {video}")


def test_status_json_names_the_motion_source_of_a_done_job(tmp_path):
    outbox = Outbox(tmp_path / "outbox")
    folder = outbox.folder("j")
    folder.mkdir(parents=True)
    used = MotionUsed("still", "job.yaml says motion: still", 3)
    record = TimingRecord("j", "cpu", "float32", frames=2, fps=4.0, motion=used)
    outbox.write_timing(folder, record)
    job = Job(1, "j", "1/j", "j", JobState.DONE, 1, 1, "", 1.0, "", "j.mp4", 1.0, 0.0, 0.0, 1.0,
              0.0)
    outbox.publish(job)
    status = json.loads((folder / "status.json").read_text())
    assert status["motion"] == {"source": "still", "reason": "job.yaml says motion: still",
                                "seed": 3, "clip": None}
    assert "motion: still motion, seed 3: job.yaml says motion: still" in (
        folder / "timing.log").read_text()


def test_doctor_requires_the_voice_weights_only_when_voice_is_configured(tmp_path):
    assert motion_groups(pipeline_settings(tmp_path, motion_source="voice")) == {"voice"}
    for source in ("auto", "still", "clip"):
        assert not motion_groups(pipeline_settings(tmp_path, motion_source=source))

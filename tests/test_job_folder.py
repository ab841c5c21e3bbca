"""Job-folder validation on real files: discovery, resolution, and every way a job can be bad."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import InputError
from tests.helpers.daemon_harness import (
    BAD_JOB_LIMITS,
    BAD_JOBS,
    make_job,
    speech_clip,
    write_config,
)
from tests.helpers.media_samples import write_video
from watcher.config import Config, load_config
from watcher.jobfolder import parse_job_folder


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.delenv("FACEDROP_CONFIG", raising=False)
    cfg = write_config(tmp_path / "root", limits=BAD_JOB_LIMITS)
    return load_config(cfg, home=tmp_path / "home")


@pytest.fixture
def clip(tmp_path: Path, speech_path: Path) -> Path:
    return speech_clip(speech_path, tmp_path / "clip.wav", 1.0)


def test_good_job_resolves_files_and_defaults(tmp_path, config, astronaut_path, clip):
    folder = make_job(tmp_path / "jobs", "hello", astronaut_path, clip)
    parsed = parse_job_folder(folder, config)
    assert parsed.spec.face == folder / "face.png"
    assert parsed.spec.audio == folder / "voice.wav"
    assert parsed.spec.output_name == "hello.mp4"
    assert parsed.spec.driving is None
    assert (parsed.spec.fps, parsed.spec.lipsync, parsed.spec.enhance) == (25.0, True, False)
    assert parsed.image_size == (512, 512)
    assert parsed.audio_seconds == pytest.approx(1.0, abs=0.01)
    assert parsed.resolved["face"] == "face.png"


def test_explicit_keys_override_and_pick_among_several(tmp_path, config, astronaut_path, clip):
    folder = make_job(
        tmp_path / "jobs",
        "x",
        astronaut_path,
        clip,
        "face: b.png\nfps: 30\nenhance: true\noutput: out.mp4\n",
    )
    (folder / "b.png").write_bytes(astronaut_path.read_bytes())
    (folder / ".DS_Store").write_bytes(b"\0\0")  # Finder litter is ignored
    parsed = parse_job_folder(folder, config)
    assert parsed.spec.face.name == "b.png"
    assert (parsed.spec.fps, parsed.spec.enhance, parsed.spec.output_name) == (
        30.0,
        True,
        "out.mp4",
    )


def test_driving_clip_from_library_or_folder(tmp_path, config, astronaut_path, clip):
    config.paths.drivers.mkdir(parents=True)
    (config.paths.drivers / "calm.mp4").write_bytes(b"x")
    folder = make_job(tmp_path / "jobs", "a", astronaut_path, clip, "driving: calm\n")
    assert parse_job_folder(folder, config).spec.driving == "calm"
    (config.paths.drivers / "official.pkl").write_bytes(b"x")  # an imported motion template
    folder = make_job(tmp_path / "jobs", "t", astronaut_path, clip, "driving: official\n")
    assert parse_job_folder(folder, config).spec.driving == "official"
    folder = make_job(tmp_path / "jobs", "b", astronaut_path, clip, "driving: mine\n")
    write_video(folder / "mine.mov")
    assert parse_job_folder(folder, config).spec.driving == folder / "mine.mov"
    folder = make_job(tmp_path / "jobs", "c", astronaut_path, clip)
    write_video(folder / "drive.mp4")  # the only video in the folder
    assert parse_job_folder(folder, config).spec.driving == folder / "drive.mp4"


def test_manifest_sizes_and_hashes_are_checked(tmp_path, config, astronaut_path, clip):
    size = astronaut_path.stat().st_size
    folder = make_job(
        tmp_path / "jobs",
        "m",
        astronaut_path,
        clip,
        f"files:\n  - voice.wav\n  - {{name: face.png, size: {size + 1}}}\n",
    )
    with pytest.raises(InputError, match="bytes, job.yaml says"):
        parse_job_folder(folder, config)
    (folder / "job.yaml").write_text(f"files:\n  - {{name: face.png, sha256: '{'0' * 64}'}}\n")
    with pytest.raises(InputError, match="sha256"):
        parse_job_folder(folder, config)


@pytest.mark.parametrize(("case", "spoil", "expected"), BAD_JOBS, ids=[b[0] for b in BAD_JOBS])
def test_bad_job_is_rejected_with_a_specific_message(
    tmp_path, config, astronaut_path, clip, case, spoil, expected
):
    folder = make_job(tmp_path / "jobs", case, astronaut_path, clip)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "abs.png").write_bytes(astronaut_path.read_bytes())
    spoil(folder, outside)
    with pytest.raises(InputError) as info:
        parse_job_folder(folder, config)
    message = info.value.user_message()
    assert expected in message
    assert "Traceback" not in message

"""Class 8 of issue 11: messages that say what is wrong, with which file, and the fix.

Each case is a real job folder spoiled in one way; the assertion is on the user's text.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.errors import InputError, NoFaceError
from pipeline.face.landmarks import MIN_FACE_PX, FaceLandmarker
from tests.helpers.daemon_harness import (
    BAD_JOB_LIMITS,
    BAD_JOBS,
    make_job,
    speech_clip,
    write_config,
)
from watcher.config import Config, load_config
from watcher.jobfolder import parse_job_folder


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.delenv("FACEDROP_CONFIG", raising=False)
    return load_config(write_config(tmp_path / "root", limits=BAD_JOB_LIMITS),
                       home=tmp_path / "home")


@pytest.fixture
def job(tmp_path: Path, astronaut_path: Path, speech_path: Path) -> Path:
    voice = speech_clip(speech_path, tmp_path / "clip.wav", 1.0)
    return make_job(tmp_path / "jobs", "j", astronaut_path, voice)


def message_for(job: Path, config: Config, job_yaml: str) -> str:
    (job / "job.yaml").write_text(job_yaml)
    with pytest.raises(InputError) as info:
        parse_job_folder(job, config)
    return info.value.user_message()


def test_a_list_job_yaml_is_called_a_list(job, config):
    text = message_for(job, config, "- face.png\n- voice.wav\n")
    assert "job.yaml holds a list of 2 items" in text
    assert "must be a list" not in text  # the old message said the opposite of the truth
    assert "key: value" in text and "without a leading '- '" in text


def test_a_scalar_job_yaml_is_named(job, config):
    text = message_for(job, config, "just some words\n")
    assert "a single str value ('just some words')" in text


@pytest.mark.parametrize("digits", ["0" * 64, "1" * 64, "1234567890" * 6 + "1234"])
def test_an_all_digit_sha256_is_not_read_as_a_number(job, config, digits):
    text = message_for(job, config, f"files:\n  - {{name: voice.wav, sha256: {digits}}}\n")
    assert "read as a number" in text and "not as text" in text
    assert 'Fix: put the hash in quotes: sha256: "<64 hex digits>"' in text
    assert "voice.wav" in text


def test_a_quoted_all_digit_sha256_is_a_hash(job, config):
    text = message_for(job, config, f"files:\n  - {{name: voice.wav, sha256: '{'0' * 64}'}}\n")
    assert "does not match its sha256" in text  # read as text, compared, refused on content


def test_a_malformed_sha256_says_what_a_hash_looks_like(job, config):
    text = message_for(job, config, "files:\n  - {name: voice.wav, sha256: abc}\n")
    assert "64 hexadecimal digits" in text and "shasum -a 256" in text


def test_a_negative_or_text_size_is_explained(job, config):
    text = message_for(job, config, "files:\n  - {name: voice.wav, size: -5}\n")
    assert "whole number of bytes" in text and "size: 48213" in text


@pytest.mark.parametrize(("case", "spoil", "expected"), BAD_JOBS, ids=[b[0] for b in BAD_JOBS])
def test_every_bad_job_message_names_the_file_and_the_fix(
    tmp_path, config, job, case, spoil, expected
):
    outside = tmp_path / "outside"
    outside.mkdir()
    spoil(job, outside)
    with pytest.raises(InputError) as info:
        parse_job_folder(job, config)
    text = info.value.user_message()
    assert expected in text
    assert "\nFile: " in text, text
    assert "\nFix: " in text, text


@pytest.fixture(scope="module")
def landmarker(landmark_weights_dir: Path) -> FaceLandmarker:
    return FaceLandmarker(landmark_weights_dir)


def test_a_small_face_message_says_where_it_was_measured(landmarker, astronaut):
    tiny = cv2.resize(astronaut, (200, 200), interpolation=cv2.INTER_AREA)
    with pytest.raises(NoFaceError) as info:
        landmarker.detect(np.ascontiguousarray(tiny))
    text = info.value.user_message()
    assert "in the 200x200 picture the face was searched in" in text
    assert "pipeline.max_size" in text and f"{MIN_FACE_PX} px" in text

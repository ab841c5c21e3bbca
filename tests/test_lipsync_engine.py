"""The lip-sync engine seam: one registry of names that the config, job.yaml and the first-run
check all use; the shared blend keeps every pixel outside the mask."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import ConfigError, InputError
from pipeline.lipsync.engine import MouthPatch, apply_mouth
from pipeline.lipsync.registry import ENGINE_NAMES, ENGINES, engine_entry
from pipeline.prerequisites import JobNeeds, needed_weights
from pipeline.settings import LIPSYNC_MODELS
from tests.helpers.daemon_harness import make_job, speech_clip, write_config
from tests.helpers.settings import pipeline_settings
from watcher.config import CHOICES, load_config
from watcher.jobfolder import parse_job_folder
from watcher.jobneeds import job_needs


def test_one_list_of_engine_names() -> None:
    assert ENGINE_NAMES == tuple(ENGINES) == ("wav2lip", "wav2lip_gan", "musetalk")
    assert LIPSYNC_MODELS == ENGINE_NAMES == CHOICES[("pipeline", "lipsync_model")]
    with pytest.raises(ConfigError) as err:
        engine_entry("wav2lip_hd")
    assert all(n in err.value.fix for n in ENGINE_NAMES)


def test_config_accepts_every_engine_and_rejects_others(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACEDROP_CONFIG", raising=False)
    for name in ENGINE_NAMES:
        cfg = write_config(tmp_path / name, pipeline={"lipsync_model": name})
        assert load_config(cfg, home=tmp_path / "home").pipeline.lipsync_model == name
    cfg = write_config(tmp_path / "bad", pipeline={"lipsync_model": "sadtalker"})
    with pytest.raises(ConfigError) as err:
        load_config(cfg, home=tmp_path / "home")
    assert "lipsync_model" in err.value.user_message() and "wav2lip_gan" in err.value.user_message()


@pytest.mark.parametrize(("line", "on", "engine", "resolved"), [
    ("", True, None, "wav2lip"),
    ("lipsync: true\n", True, None, "wav2lip"),
    ("lipsync: false\n", False, None, False),
    ("lipsync: wav2lip_gan\n", True, "wav2lip_gan", "wav2lip_gan"),
    ("lipsync: musetalk\n", True, "musetalk", "musetalk"),
])
def test_job_yaml_lipsync_names_the_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           astronaut_path: Path, speech_path: Path, line: str,
                                           on: bool, engine: str | None,
                                           resolved: str | bool) -> None:
    monkeypatch.delenv("FACEDROP_CONFIG", raising=False)
    config = load_config(write_config(tmp_path / "root"), home=tmp_path / "home")
    clip = speech_clip(speech_path, tmp_path / "clip.wav", 0.5)
    folder = make_job(tmp_path / "jobs", "hello", astronaut_path, clip, line)
    parsed = parse_job_folder(folder, config)
    assert (parsed.spec.lipsync, parsed.spec.lipsync_engine) == (on, engine)
    assert parsed.resolved["lipsync"] == resolved  # the engine that runs, written to the outbox
    needs = job_needs(folder, config)
    assert (needs.lipsync, needs.lipsync_engine) == (on, engine)


@pytest.mark.parametrize("value", ["musetalk2", "Wav2Lip", "yes please", "1"])
def test_job_yaml_unknown_engine_is_a_clear_input_error(tmp_path: Path, astronaut_path: Path,
                                                        speech_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        value: str) -> None:
    monkeypatch.delenv("FACEDROP_CONFIG", raising=False)
    config = load_config(write_config(tmp_path / "root"), home=tmp_path / "home")
    clip = speech_clip(speech_path, tmp_path / "clip.wav", 0.5)
    folder = make_job(tmp_path / "jobs", "hello", astronaut_path, clip, f"lipsync: '{value}'\n")
    with pytest.raises(InputError) as err:
        parse_job_folder(folder, config)
    message = err.value.user_message()
    assert "'lipsync' in job.yaml must be true or false" in message
    assert all(n in message for n in ENGINE_NAMES) and str(folder / "job.yaml") in message


def test_first_run_check_asks_for_the_jobs_engine_files(tmp_path: Path) -> None:
    settings = pipeline_settings(tmp_path, device="cpu", lipsync_model="wav2lip")
    configured = {e.name for e in needed_weights(settings, JobNeeds(lipsync=True))}
    named = {e.name for e in needed_weights(settings,
                                             JobNeeds(lipsync=True, lipsync_engine="wav2lip_gan"))}
    off = {e.name for e in needed_weights(settings, JobNeeds(lipsync=False,
                                                             lipsync_engine="wav2lip_gan"))}
    assert "wav2lip" in configured and "wav2lip_gan" not in configured
    assert "wav2lip_gan" in named and "wav2lip" not in named
    assert not {"wav2lip", "wav2lip_gan"} & off
    for name in ENGINE_NAMES:  # every engine's files are in the manifest
        entry = engine_entry(name)
        files = needed_weights(settings, JobNeeds(lipsync=True, lipsync_engine=name))
        assert set(entry.weight_names) <= {e.name for e in files}
        assert set(entry.weight_groups) <= {e.group for e in files}


def test_apply_mouth_keeps_every_pixel_outside_the_mask() -> None:
    """Many random crops, patches and masks with zeros: weight 0 is the crop's exact value,
    weight 1 the rounded patch, and the input is never modified."""
    rng = np.random.default_rng(3)
    for _ in range(50):
        crop = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        x1, y1 = (int(v) for v in rng.integers(0, 30, 2))
        x2, y2 = x1 + int(rng.integers(2, 34)), y1 + int(rng.integers(2, 34))
        h, w = y2 - y1, x2 - x1
        patch = rng.uniform(-20, 275, (h, w, 3)).astype(np.float32)
        mask = np.clip(rng.uniform(-1, 2, (h, w)), 0, 1).astype(np.float32)
        before = crop.copy()
        out = apply_mouth(crop, MouthPatch((x1, y1, x2, y2), patch, mask))
        assert np.array_equal(crop, before) and out is not crop
        full = np.zeros((64, 64), np.float32)
        full[y1:y2, x1:x2] = mask
        assert np.array_equal(out[full == 0], crop[full == 0])
        ones = mask == 1
        expect = np.clip(np.rint(patch[ones]), 0, 255).astype(np.uint8)
        assert np.array_equal(out[y1:y2, x1:x2][ones], expect)


def test_bench_lipsync_musetalk_without_its_weights_says_what_to_fetch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        landmark_weights_dir: Path) -> None:
    from watcher.cli import main

    for var in ("FACEDROP_CONFIG", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config = write_config(tmp_path / "cfg", pipeline={"device": "cpu"})
    code = main(["--config", str(config), "bench", "--lipsync", "musetalk",
                 "--weights-dir", str(landmark_weights_dir)])
    err = capsys.readouterr().err
    assert code == 5 and "Traceback" not in err, err
    assert "weights are missing" in err and "facedrop weights fetch musetalk" in err

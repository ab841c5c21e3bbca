"""The default ``pipeline.compile: auto`` end to end: the daemon's worker compiles G once and
makes the video ``facedrop run`` makes eager, up to float rounding; ``facedrop run`` does not
compile. Random-weight checkpoints in the official formats, a real daemon, a real compile
(about 30 s on a quiet 2-core CPU): ``slow``.
"""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from tests.helpers.chain_checks import portrait
from tests.helpers.clips import make_clip
from tests.helpers.daemon_harness import (
    REPO,
    DaemonProcess,
    cli_env,
    finished,
    make_job,
    speech_clip,
    wait_for,
    write_config,
)
from watcher.daemon import DEFAULT_PIPELINE

REAL_PIPELINE = DEFAULT_PIPELINE  # the daemon's own, as a user runs it
JOB = "driving: nod\nfps: 10\nlipsync: false\nquality: false\n"


def _config(root: Path, weights: Path, drivers: Path) -> Path:
    config = write_config(root, pipeline={"max_size": 384, "batch_size": 2, "device": "cpu",
                                          "compile": "auto"})
    data = yaml.safe_load(config.read_text())
    data["paths"].update(weights=str(weights), drivers=str(drivers))
    config.write_text(yaml.safe_dump(data))
    return config


def _frames(video: Path) -> np.ndarray:
    cap = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return np.stack(frames).astype(np.int16)


@pytest.mark.slow
def test_the_daemon_compiles_once_and_makes_the_eager_video(
        tmp_path: Path, model_weights_dir: Path, astronaut_path: Path,
        speech_path: Path) -> None:
    drivers = tmp_path / "drivers"
    drivers.mkdir()
    make_clip(drivers / "nod.mp4", astronaut_path, 2, Fraction(25))
    photo = portrait(astronaut_path, tmp_path / "portrait.jpg")
    audio = speech_clip(speech_path, tmp_path / "brief.wav", 0.4)
    daemon_root, run_root = tmp_path / "daemon", tmp_path / "run"
    daemon_config = _config(daemon_root, model_weights_dir, drivers)
    run_config = _config(run_root, model_weights_dir, drivers)  # its own (cold) render cache

    inbox, outbox = daemon_root / "inbox", daemon_root / "outbox"
    inbox.mkdir(parents=True, exist_ok=True)
    daemon = DaemonProcess(daemon_config, daemon_root, daemon_root / "daemon.log",
                           FACEDROP_PIPELINE=REAL_PIPELINE)
    try:
        make_job(daemon_root / "staging", "hello", photo, audio, JOB).rename(inbox / "hello")
        status = wait_for(lambda: finished(outbox / "hello"), 600, "the daemon's job")
    finally:
        daemon.stop()
    assert status["state"] == "done", (outbox / "hello" / "error.txt").read_text()
    logs = "".join(p.read_text(errors="replace") for p in daemon_root.rglob("*.log"))
    assert logs.count("FusedSPADEDecoder compiled in") == 1, logs[-3000:]
    assert any((daemon_root / "cache" / "inductor").rglob("*.so"))  # kept for the next worker

    job = make_job(run_root / "jobs", "hello", photo, audio, JOB)
    done = subprocess.run(
        [sys.executable, "-m", "watcher.cli", "run", str(job), "--out", str(run_root / "out")],
        cwd=REPO, env=cli_env(run_config, run_root, FACEDROP_PIPELINE=REAL_PIPELINE),
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "compiled in" not in done.stdout + done.stderr  # one job: eager
    assert not (run_root / "cache" / "inductor").exists()

    compiled = _frames(outbox / "hello" / "hello.mp4")
    eager = _frames(run_root / "out" / "hello" / "hello.mp4")
    assert compiled.shape == eager.shape and len(eager) == 4  # 0.4 s at 10 fps
    # G's output moves by ~1.6e-5 (image in [0, 1]) when compiled: a rounding tie can move a
    # pixel by a level, which H.264 may spread a little
    diff = np.abs(compiled - eager)
    assert diff.max() <= 8 and (diff > 2).mean() < 1e-3, (diff.max(), (diff > 2).mean())

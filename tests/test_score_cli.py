"""``facedrop score``: a real video through the real command (random SyncNet weights)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import wave
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from pipeline.media.audio import load_audio
from pipeline.media.video import VideoWriter
from pipeline.models.syncnet import SyncNet
from tests.helpers.deterministic_weights import fill_state_dict

SECONDS = 2.0


def facedrop(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run([sys.executable, "-m", "watcher.cli", *args], capture_output=True,
                          text=True, timeout=240, env=env)


@pytest.fixture(scope="module")
def talking(tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray,
            speech_path: Path) -> Path:
    """A 2 s, 25 fps 384x384 MP4 of the astronaut moving slightly, with real speech."""
    root = tmp_path_factory.mktemp("score")
    samples = load_audio(speech_path).samples[: int(16000 * SECONDS)]
    wav = root / "speech.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    small = np.ascontiguousarray(astronaut[:384, 64:448])
    video = root / "talk.mp4"
    with VideoWriter(video, 384, 384, 25, audio_path=wav) as out:
        for t in range(int(25 * SECONDS)):
            m = np.array([[1, 0, 2 * np.sin(t / 6)], [0, 1, np.cos(t / 7)]], np.float32)
            out.write(cv2.warpAffine(small, m, (384, 384), borderMode=cv2.BORDER_REFLECT)[None])
    return video


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory, landmark_weights_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("weights")
    (root / "landmarks").symlink_to(landmark_weights_dir / "landmarks")
    (root / "syncnet").mkdir()
    sd = fill_state_dict(SyncNet().state_dict())
    legacy = OrderedDict((k, v) for k, v in sd.items() if "num_batches_tracked" not in k)
    torch.save(legacy, root / "syncnet" / "syncnet_v2.model", _use_new_zipfile_serialization=False)
    return root


def test_score_prints_json_and_plots(talking: Path, weights: Path, tmp_path: Path) -> None:
    plot = tmp_path / "conf.png"
    res = facedrop("score", str(talking), "--json", "--plot", str(plot),
                   "--weights-dir", str(weights))
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["verdict"] in ("ok", "check")
    sync = report["syncnet"]
    assert sync["windows"] == 50 - 5  # min(50 frames, 2 s of audio / 640) - 5
    assert -15 <= sync["offset_frames"] <= 15
    assert np.isfinite(sync["lse_c"]) and sync["lse_c"] >= 0 and sync["lse_d"] > 0
    m = report["measures"]
    assert m["tracked_share"]["value"] == 1.0 and m["tracked_share"]["verdict"] == "ok"
    assert abs(m["duration_gap_s"]["value"]) < 0.05
    assert {"lse_c", "lse_d", "av_offset_frames", "landmark_jitter_px", "flicker"} <= set(m)
    motion = report["head_motion"]  # the video sways by 2 px: a calm head, open eyes
    assert motion["word"] == "calm" and motion["blinks"] == 0
    assert motion["blinks_per_minute"] == 0.0
    for axis in ("yaw", "pitch", "roll"):
        assert 0 <= motion["range_deg"][axis] < 5 and 0 <= motion["speed_deg_per_s"][axis] < 10
    for name, entry in m.items():
        assert entry["verdict"] in ("ok", "check"), name
        assert (entry["verdict"] == "check") == bool(entry["reason"]), name
    picture = cv2.imread(str(plot))
    assert picture is not None and picture.shape == (320, 900, 3)
    # the curve is drawn: coloured (not grey) pixels inside the axes
    inner = picture[40:270, 70:870].astype(int)
    assert (np.abs(inner[..., 1] - inner[..., 2]) > 60).sum() > 100


def test_score_text_report(talking: Path, weights: Path) -> None:
    res = facedrop("score", str(talking), "--weights-dir", str(weights))
    assert res.returncode == 0, res.stderr
    assert "Verdict: " in res.stdout and "LSE-C (confidence)" in res.stdout
    assert "positive: the audio is ahead of the lips" in res.stdout
    assert "Head motion: calm" in res.stdout and "blinks 0 (0 per minute)" in res.stdout


def test_missing_syncnet_weights_name_the_fetch(talking: Path, tmp_path: Path,
                                                landmark_weights_dir: Path) -> None:
    res = facedrop("score", str(talking), "--weights-dir", str(tmp_path))
    assert res.returncode == 5
    assert "Traceback" not in res.stderr
    assert "facedrop weights fetch syncnet" in res.stderr


def test_not_a_video_is_a_clear_error(tmp_path: Path, weights: Path) -> None:
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    res = facedrop("score", str(bad), "--weights-dir", str(weights))
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "Fix:" in res.stderr


def test_frames_are_resampled_to_25fps_and_bounded() -> None:
    from pipeline.quality.video import JpegFrames, at_25fps, bounded

    frames = [np.full((4, 4, 3), i, np.uint8) for i in range(30)]
    timed = [(i / 30, f) for i, f in enumerate(frames)]  # 1 s at 30 fps
    out = [int(f[0, 0, 0]) for f in at_25fps(timed)]
    # frame k shows what is on screen at k/25 s: the latest 30 fps frame not after it
    assert out == [int(np.floor(k / 25 * 30 + 1e-6)) for k in range(25)]
    assert bounded(np.zeros((1080, 1920, 3), np.uint8)).shape == (405, 720, 3)
    store = JpegFrames()
    store.append(np.full((16, 16, 3), (200, 30, 30), np.uint8))
    assert len(store) == 1 and abs(int(store[0][8, 8, 0]) - 200) <= 3  # RGB kept

"""End to end on the real photo, real speech and random-weight checkpoints in the official
formats for every model: ``facedrop run`` and the daemon each make a finished, verified video.

Slow by nature (LivePortrait renders ~5 s per distinct frame and GFPGAN restores a face in ~3 s
on a 2-core CPU), so the driving clip has two distinct frames, the audio is short and the
enhanced job is 0.36 s at 10 fps (4 frames). The daemon test runs three whole jobs in a real
daemon: it is marked ``slow`` (``make test-slow``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from pipeline.media.audio import load_audio
from pipeline.media.verify import verify_video
from pipeline.quality.posestrip import STRIP_H
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
ALL_STAGES = ("prepare", "motion", "animate", "landmarks", "mel", "lipsync", "enhance", "paste",
              "encode")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, model_weights_dir: Path,
          astronaut_path: Path, speech_path: Path) -> dict:
    """Config, a driving library with one 2-frame clip, a non-square photo, short speech."""
    root = tmp_path_factory.mktemp("chain")
    config = write_config(root, pipeline={"max_size": 384, "batch_size": 4, "device": "cpu"})
    data = yaml.safe_load(config.read_text())
    data["paths"]["weights"] = str(model_weights_dir)
    config.write_text(yaml.safe_dump(data))
    drivers = Path(data["paths"]["drivers"])
    drivers.mkdir(parents=True)
    make_clip(drivers / "nod.mp4", astronaut_path, 2, Fraction(25))
    photo = portrait(astronaut_path, root / "portrait.jpg")
    return {"root": root, "config": config, "data": data, "photo": photo,
            "brief": speech_clip(speech_path, root / "brief.wav", 0.36),
            "short": speech_clip(speech_path, root / "short.wav", 0.5),
            "medium": speech_clip(speech_path, root / "medium.wav", 1.0)}


def check_video(video: Path, audio: Path, fps: Fraction) -> None:
    """H.264 + AAC, the photo's aspect at max_size 384, the requested fps, audio's duration."""
    seconds = load_audio(audio).duration
    info = verify_video(video, fps=fps)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert (info.width, info.height) == (384, 336)  # 512x448 scaled to a 384 long side
    assert info.fps == fps
    assert abs(info.frames / float(fps) - seconds) <= 1 / float(fps)
    assert abs(info.duration - seconds) <= 1 / float(fps)


def check_quality(outdir: Path, seconds: float, size: tuple[int, int] = (384, 336)) -> dict:
    """quality.json, preview.jpg and poster.jpg beside the video: the pictures decode at their
    sizes, the preview's frame times cover the video, the verdict is in status.json and
    timing.log."""
    data = json.loads((outdir / "quality.json").read_text())
    assert data["verdict"] in ("ok", "check") and data["sampling"]["syncnet_windows"] >= 1
    assert {"tracked_share", "flicker", "lse_c", "lse_d", "av_offset_frames"} <= set(
        data["measures"])
    w, h = size
    poster = cv2.imread(str(outdir / "poster.jpg"))
    preview = cv2.imread(str(outdir / "preview.jpg"))
    assert poster is not None and poster.shape == (h, w, 3)
    tile_w = round(w * 200 / h) + 200  # the frame 200 px high, the enlarged mouth beside it
    # four rows of tiles, then the pose-over-time strip
    assert preview is not None and preview.shape == (4 * 200 + STRIP_H, 2 * tile_w, 3)
    motion = data["head_motion"]  # blinks from the rendered crops' eyelids
    assert motion["word"] in ("calm", "lively") and isinstance(motion["blinks"], int)
    times = data["preview_times_s"]
    assert len(times) == 8 and times[0] == 0.0 and seconds - 3 / 25 <= times[-1] <= seconds
    status = json.loads((outdir / "status.json").read_text())
    assert status["quality"]["verdict"] == data["verdict"]
    assert f"quality: {data['verdict']}" in (outdir / "timing.log").read_text()
    return data


def stages(outdir: Path) -> dict[str, dict]:
    timing = json.loads((outdir / "timing.json").read_text())
    return {s["name"]: s for s in timing["stages"]}


# every stage on full-size networks, enhance included (~50 s); make test keeps a piped
# 'facedrop run' in test_progress_lines
@pytest.mark.slow
def test_facedrop_run_makes_the_video_with_every_stage_timed(world: dict, tmp_path: Path) -> None:
    # 0.36 s at 10 fps: 4 output frames, each restored by the full-size GFPGAN (the costliest
    # stage here), 10 on the 25 fps timeline it is scored on (the preview needs 8)
    job = make_job(tmp_path, "hello", world["photo"], world["brief"],
                   "driving: nod\nenhance: true\nfps: 10\n")
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "watcher.cli", "run", str(job), "--out", str(out)],
        cwd=REPO, env=cli_env(world["config"], world["root"], FACEDROP_PIPELINE=REAL_PIPELINE),
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (outdir,) = out.iterdir()
    check_video(outdir / "hello.mp4", world["brief"], Fraction(10))
    timing = json.loads((outdir / "timing.json").read_text())
    assert set(ALL_STAGES) <= set(stages(outdir))
    assert timing["frames"] == 4 and timing["device"] == "cpu"  # ceil(0.36 s * 10)
    assert stages(outdir)["enhance"]["frames"] == 4 and stages(outdir)["lipsync"]["frames"] == 4
    # both distinct driving frames rendered (the 25 fps clip read at 10 fps: 0, 0, 1, 1)
    assert stages(outdir)["animate"]["frames"] == 2
    assert timing["realtime_factor"] > 0 and "enhance" in (outdir / "timing.log").read_text()
    assert sorted(p.name for p in (outdir / "input").iterdir()) == ["face.jpg", "job.yaml",
                                                                    "voice.wav"]
    check_quality(outdir, load_audio(world["brief"]).duration)


@pytest.mark.slow  # three whole jobs (four renders) through a real daemon and its worker child
def test_daemon_reuses_the_cache_and_skips_switched_off_stages(world: dict) -> None:
    inbox, outbox = Path(world["data"]["paths"]["inbox"]), Path(world["data"]["paths"]["outbox"])
    inbox.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(world["data"]["paths"]["cache"], ignore_errors=True)  # start cold
    daemon = DaemonProcess(world["config"], world["root"], world["root"] / "daemon.log",
                           FACEDROP_PIPELINE=REAL_PIPELINE)
    ntsc = Fraction(30000, 1001)
    try:
        jobs = [("talk", "driving: nod\nfps: 29.97\n"), ("talk", "driving: nod\nfps: 29.97\n"),
                ("quiet", "driving: nod\nfps: 29.97\nlipsync: false\nenhance: false\n"
                          "quality: false\n")]
        outdirs = []
        for n, (name, yaml_text) in enumerate(jobs):
            staging = world["root"] / f"staging{n}"
            make_job(staging, name, world["photo"], world["medium"], yaml_text)
            (staging / name).rename(inbox / name)
            outdir = outbox / (name if n != 1 else f"{name} (2)")
            status = wait_for(lambda o=outdir: finished(o), 400, f"job {n} to finish")
            assert status["state"] == "done", (outdir / "error.txt").read_text()
            outdirs.append(outdir)
    finally:
        daemon.stop()
    first, repeat, quiet = (stages(d) for d in outdirs)
    for outdir, name in zip(outdirs, ("talk", "talk", "quiet"), strict=True):
        check_video(outdir / f"{name}.mp4", world["medium"], ntsc)
    assert first["animate"]["frames"] == 2 and first["animate"]["cache"] == "miss"
    assert repeat["motion"]["cache"] == "hit" and repeat["animate"]["cache"] == "hit"
    assert repeat["animate"]["frames"] == 0
    assert repeat["animate"]["seconds"] < first["animate"]["seconds"] / 2
    assert repeat["lipsync"]["frames"] == 30  # ceil(1.0 s * 29.97)
    assert quiet["lipsync"]["cache"] == "skipped" and quiet["enhance"]["cache"] == "skipped"
    log = (outdirs[2] / "timing.log").read_text()
    assert "lipsync: false in job.yaml" in log and "enhance: false in job.yaml" in log
    assert first["enhance"]["cache"] == "skipped"  # enhance defaults to off
    for outdir in outdirs[:2]:  # scored at 29.97 fps on the 25 fps timeline
        data = check_quality(outdir, load_audio(world["medium"]).duration)
        assert data["video_fps"] == pytest.approx(30000 / 1001) and data["video_frames"] == 30
    # quality: false: no quality files, and status.json, timing.log and status say so
    assert not any((outdirs[2] / name).exists()
                   for name in ("quality.json", "preview.jpg", "poster.jpg"))
    quiet_status = json.loads((outdirs[2] / "status.json").read_text())
    assert quiet_status["quality"]["verdict"] == "not scored"
    assert "switched off (quality: false)" in quiet_status["quality"]["summary"]
    assert "quality: not scored (switched off (quality: false))" in log
    assert quiet["quality"]["cache"] == "skipped"
    shown = subprocess.run(
        [sys.executable, "-m", "watcher.cli", "status", "--json"], cwd=REPO,
        env=cli_env(world["config"], world["root"]), capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    finished_jobs = {j["outbox"]: j for j in json.loads(shown.stdout)["jobs"]["finished"]}
    assert finished_jobs["quiet"]["quality"]["verdict"] == "not scored"
    assert finished_jobs["talk"]["quality"]["verdict"] in ("ok", "check")
    text = subprocess.run(
        [sys.executable, "-m", "watcher.cli", "status"], cwd=REPO,
        env={**cli_env(world["config"], world["root"]), "COLUMNS": "200"}, capture_output=True,
        text=True, timeout=60)
    assert "done — not scored" in text.stdout


@pytest.mark.slow  # a whole job on full-size networks (~16 s)
def test_corrupt_syncnet_weights_still_finish_the_job(world: dict, tmp_path: Path) -> None:
    """A scoring failure never fails a job: lip sync is "not scored", with the reason."""
    weights = tmp_path / "weights"
    weights.mkdir()
    for entry in Path(world["data"]["paths"]["weights"]).iterdir():
        if entry.name != "syncnet":
            (weights / entry.name).symlink_to(entry)
    (weights / "syncnet").mkdir()
    (weights / "syncnet" / "syncnet_v2.model").write_bytes(b"PK\x03\x04 truncated" * 64)
    data = {**world["data"], "paths": {**world["data"]["paths"], "weights": str(weights)}}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    job = make_job(tmp_path, "hello", world["photo"], world["short"], "driving: nod\n")
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "watcher.cli", "run", str(job), "--out", str(out)],
        cwd=REPO, env=cli_env(config, world["root"], FACEDROP_PIPELINE=REAL_PIPELINE),
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (outdir,) = out.iterdir()
    check_video(outdir / "hello.mp4", world["short"], Fraction(25))
    quality = json.loads((outdir / "quality.json").read_text())
    assert any(n.startswith("lip sync not scored") and "SyncNet" in n
               for n in quality["not_scored"])
    assert "lse_c" not in quality["measures"] and "tracked_share" in quality["measures"]
    status = json.loads((outdir / "status.json").read_text())
    assert status["state"] == "done" and "not scored" in status["quality"]["summary"]


def test_output_size_keeps_aspect_and_even_sides() -> None:
    from pipeline.chain.runner import fit_photo, output_size

    assert output_size(512, 448, 384) == (384, 336)
    assert output_size(1001, 667, 1280) == (1000, 666)
    assert output_size(4000, 3000, 1280) == (1280, 960)
    photo = np.zeros((667, 1001, 3), np.uint8)
    assert fit_photo(photo, 1280).shape == (666, 1000, 3)

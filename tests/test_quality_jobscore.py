"""A job's own scoring: the sample it keeps while frames stream to the encoder, the files it
hands the outbox, and that no scoring problem ever escapes (it says "not scored" instead)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.face.affine import Affine
from pipeline.media.audio import load_audio
from pipeline.models.syncnet import WINDOW_FRAMES
from pipeline.quality import measures
from pipeline.quality.jobscore import JobScorer, Timeline, headline, switched_off
from pipeline.quality.model import load_syncnet
from pipeline.quality.posestrip import STRIP_H
from pipeline.quality.report import QualityReport
from pipeline.quality.sampling import (
    CLUSTER_WINDOWS,
    SECONDS_PER_CLUSTER,
    cluster_starts,
    plan_sample,
)
from pipeline.quality.syncscore import VSHIFT, needed_audio
from pipeline.settings import QUALITY_LIMITS
from pipeline.spec import JobQuality
from tests.helpers.syncnet_checkpoint import write_syncnet_checkpoint

LIMITS = {"tracked_share": 0.95, "landmark_jitter_px": 1.0, "seam_step": 4.0, "flicker": 3.0,
          "duration_gap_s": 0.1, "lse_c": 3.0, "lse_d": 9.0, "av_offset_frames": 1.0}
SIZE = 256  # the crop space of this test (the chain's is 512)
CHUNK = 8


@pytest.fixture(scope="module")
def syncnet_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_syncnet_checkpoint(tmp_path_factory.mktemp("sn") / "syncnet_v2.model")


@pytest.fixture(scope="module")
def crops(astronaut: np.ndarray, lmk: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Six distinct crops: the astronaut turning slightly, landmarks moved with it."""
    small = cv2.resize(astronaut, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    base = np.asarray(lmk, np.float64)[:, :2] * SIZE / 512
    out, marks = [], []
    for t in range(6):
        m = cv2.getRotationMatrix2D((SIZE / 2, SIZE / 2), 0.5 * t, 1.0)
        out.append(cv2.warpAffine(small, m, (SIZE, SIZE), borderMode=cv2.BORDER_REFLECT))
        marks.append((base @ m[:, :2].T + m[:, 2]).astype(np.float32))
    return out, marks


def _brighter_mouth(crop: np.ndarray, marks: np.ndarray) -> np.ndarray:
    """A hard-edged mouth patch (what a bad blend leaves)."""
    region = measures._patch_region(np.asarray(marks, np.float64), crop.shape[:2]) > 0
    out = crop.astype(np.int16)
    out[region] += 40
    return np.clip(out, 0, 255).astype(np.uint8)


def _run_job(scorer: JobScorer, crops: tuple[list[np.ndarray], list[np.ndarray]], n_out: int,
             fps: float, audio: np.ndarray, *, patch: bool = False) -> JobQuality:
    """What the runner does: begin, one ``see`` per chunk, finish. Frames are the crops placed
    in a larger picture (the paste-back: a translation)."""
    images, marks = crops
    order = np.array([(i // 3) % len(images) for i in range(n_out)])  # ping-pong-like repeats
    to_frame = Affine.translation(32, 16)
    scorer.begin(order=order, crop_landmarks=marks, tracked=[True] * len(images),
                 crop_to_frame=to_frame, fps=fps, audio=audio)
    for start in range(0, n_out, CHUNK):
        ks = order[start:start + CHUNK]
        before = [images[k] for k in ks]
        after = [_brighter_mouth(images[k], marks[k]) for k in ks] if patch else before
        frames = np.stack([np.pad(a, ((16, 16), (32, 32), (0, 0))) for a in after])
        scorer.see(start, before, after, frames)
    return scorer.finish()


def _decode(data: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return img


def test_the_job_sample_gives_the_quality_files(crops: tuple, speech_path: Path,
                                               syncnet_file: Path) -> None:
    audio = load_audio(speech_path).samples[: 16000 * 3]  # 3 s
    n_out = 90  # 3 s at 30 fps: the 25 fps timeline is resampled
    result = _run_job(JobScorer(LIMITS, lambda: load_syncnet(syncnet_file)), crops, n_out,
                      30.0, audio, patch=True)
    assert result.verdict in ("ok", "check") and set(result.files) == {
        "quality.json", "preview.jpg", "poster.jpg", "syncnet.png"}
    plot = cv2.imdecode(np.frombuffer(result.files["syncnet.png"], np.uint8), cv2.IMREAD_COLOR)
    assert plot is not None and plot.shape == (320, 900, 3)  # the studio page shows it
    data = json.loads(result.files["quality.json"])
    assert set(data["measures"]) == {"tracked_share", "landmark_jitter_px", "seam_step",
                                     "flicker", "duration_gap_s", "lse_c", "lse_d",
                                     "av_offset_frames"}
    assert data["verdict"] == result.verdict and data["reasons"] == list(result.reasons)
    # the hard-edged patch is seen, in words, in the verdict and the headline
    assert data["measures"]["seam_step"]["verdict"] == "check"
    assert any("edge of the mouth patch" in r for r in result.reasons)
    assert "mouth seam" in result.headline
    # the sample is documented; every sampled window has its full offset search
    sampling = data["sampling"]
    windows = data["syncnet"]["window_start_frames"]
    assert sampling["syncnet_windows"] == CLUSTER_WINDOWS == len(windows)
    assert sampling["syncnet_windows_full"] == 75 - 5 and sampling["offset_search_frames"] == VSHIFT
    assert len(data["measures"]) == 8 and data["video_frames"] == n_out
    # the pictures decode; the preview's times span the video; the poster is a whole frame
    times = data["preview_times_s"]
    assert len(times) == 8 and times[0] == 0 and times[-1] >= 3.0 - 2 / 25
    assert times == sorted(times)
    preview, poster = _decode(result.files["preview.jpg"]), _decode(result.files["poster.jpg"])
    assert poster.shape == (SIZE + 32, SIZE + 64, 3)
    # four rows of tiles, then the pose-over-time strip
    assert preview.shape[0] == 4 * 200 + STRIP_H and preview.shape[1] >= 2 * (200 + 200)
    motion = data["head_motion"]
    assert motion["word"] in ("calm", "lively") and set(motion["range_deg"]) == {
        "yaw", "pitch", "roll"}
    assert motion["blinks"] is None  # no landmarker given: blinks are not counted
    assert 0 <= data["poster_time_s"] <= 3.0


def test_corrupt_syncnet_weights_leave_only_lip_sync_unscored(crops: tuple, speech_path: Path,
                                                              tmp_path: Path) -> None:
    bad = tmp_path / "syncnet_v2.model"
    bad.write_bytes(b"<html>not a checkpoint</html>" * 100)
    audio = load_audio(speech_path).samples[:16000]
    result = _run_job(JobScorer(LIMITS, lambda: load_syncnet(bad)), crops, 25, 25.0, audio)
    assert any(n.startswith("lip sync not scored") for n in result.notes)
    assert "not scored" in result.summary()
    data = json.loads(result.files["quality.json"])
    assert "lse_c" not in data["measures"] and "flicker" in data["measures"]
    assert "seam_step" not in data["measures"]  # no lip sync changed the crops: no patch


def test_a_scoring_error_is_not_scored_and_never_raises(crops: tuple) -> None:
    scorer = JobScorer(LIMITS, lambda: pytest.fail("SyncNet must not load after an error"))
    scorer.see(0, [], [], np.zeros((0, 4, 4, 3), np.uint8))  # before begin: ignored
    scorer.begin(order=np.zeros(10, int), crop_landmarks=[np.zeros((3, 2))],  # not 468 points
                 tracked=[True], crop_to_frame=Affine.identity(), fps=25.0,
                 audio=np.zeros(16000, np.float32))
    scorer.see(0, crops[0][:1], crops[0][:1], np.stack(crops[0][:1]))
    result = scorer.finish()
    assert result.verdict == "not scored" and not result.files
    assert result.notes and result.notes[0].startswith("scoring failed: ")
    off = switched_off()
    assert off.verdict == "not scored" and not off.files and "quality: false" in off.summary()


def test_limits_from_the_config_change_the_verdict(crops: tuple, speech_path: Path,
                                                   tmp_path: Path) -> None:
    audio = load_audio(speech_path).samples[:16000]
    strict = LIMITS | {"flicker": 0.0}
    missing = tmp_path / "syncnet_v2.model"  # not installed: lip sync is not scored
    result = _run_job(JobScorer(strict, lambda: load_syncnet(missing)), crops, 25, 25.0, audio)
    assert "lip sync not scored: the SyncNet weights (syncnet_v2.model) are missing" in (
        result.summary())
    data = json.loads(result.files["quality.json"])
    assert data["measures"]["flicker"]["threshold"] == 0.0
    assert data["measures"]["flicker"]["verdict"] == "check" and "flicker" in result.headline


@pytest.mark.parametrize("seconds", [0.5, 6.0, 60.0, 600.0])
def test_the_sample_is_spread_and_bounded(seconds: float) -> None:
    n = int(seconds * 25)
    n_windows = max(0, n - 5)
    starts = cluster_starts(n_windows, seconds)
    assert len(starts) >= min(n_windows, 1)
    assert len(starts) <= CLUSTER_WINDOWS * max(1, round(seconds / SECONDS_PER_CLUSTER))
    assert np.all((starts >= 0) & (starts < max(n_windows, 1)))
    if len(starts) > CLUSTER_WINDOWS:  # clusters spread over the whole video
        assert starts[0] < n_windows / 4 and starts[-1] > 3 * n_windows / 4
    audio_windows = len(needed_audio(starts, n_windows))
    assert audio_windows <= len(starts) // CLUSTER_WINDOWS * (2 * VSHIFT + CLUSTER_WINDOWS) + 31
    lmk = np.zeros((n, 468, 2))
    plan = plan_sample(n, n * 640, lmk, [True] * n)
    assert len(plan.flicker_pairs) <= seconds + 1 and len(plan.seam_frames) <= seconds + 1
    pixels = {plan.poster_frame, *plan.preview_frames,
              *(k - d for k in plan.flicker_pairs for d in (0, 1)),
              *(int(i) + j for i in plan.window_starts for j in range(WINDOW_FRAMES))}
    assert len(pixels) <= 8 + 1 + 2 * (seconds + 1) + len(starts) + 4 * (
        len(starts) // CLUSTER_WINDOWS + 1)


def test_the_25fps_timeline_over_other_rates() -> None:
    ntsc = Timeline(30, 30000 / 1001)  # 1.001 s
    assert ntsc.n25 == 25
    assert [ntsc.out_index(k) for k in (0, 1, 5, 24)] == [0, 1, 5, 28]
    assert Timeline(13, 25.0).n25 == 13 and Timeline(13, 25.0).out_index(12) == 12
    assert Timeline(0, 25.0).n25 == 0


def test_headline_words() -> None:
    assert headline(QualityReport([], None)) == "not scored"
    lse = measures.judge("lse_c", 1.0, "")
    jitter = measures.judge("landmark_jitter_px", 0.1, "px")
    assert headline(QualityReport([lse, jitter], None)) == "check lip sync"
    assert headline(QualityReport([jitter], None)) == "ok"


def test_the_config_names_every_measure() -> None:
    assert set(QUALITY_LIMITS) == set(LIMITS) == set(measures.THRESHOLDS)


def test_a_long_job_keeps_few_frames(crops: tuple, tmp_path: Path) -> None:
    """60 s at 25 fps: whole frames only for the preview and the poster, SyncNet crops only
    for the sampled windows, at most one frame waiting for its flicker pair's second."""
    images, marks = crops
    n_out = 1500
    scorer = JobScorer(LIMITS, lambda: load_syncnet(tmp_path / "none.model"))
    order = np.array([(i // 3) % len(images) for i in range(n_out)])
    scorer.begin(order=order, crop_landmarks=marks, tracked=[True] * len(images),
                 crop_to_frame=Affine.identity(), fps=25.0,
                 audio=np.zeros(n_out * 640, np.float32))
    job = scorer._job
    assert job is not None
    most_waiting = 0
    for start in range(0, n_out, CHUNK):
        chunk = [images[k] for k in order[start:start + CHUNK]]
        scorer.see(start, chunk, chunk, np.stack(chunk))
        most_waiting = max(most_waiting, len(job.waiting))
    assert len(job.frames) <= 9 and most_waiting <= 1
    assert len(job.crops) == len(job.plan.window_starts) + 4 * 6  # 6 clusters of 3 windows
    assert len(job.changes) == len(job.plan.flicker_pairs) == 61
    result = scorer.finish()
    assert result.verdict in ("ok", "check") and len(result.files) == 3


def test_blinks_come_from_the_distinct_crops_eyelids(crops: tuple, speech_path: Path,
                                                     landmark_weights_dir: Path,
                                                     tmp_path: Path) -> None:
    from pipeline.face.landmarks import FaceLandmarker

    landmarker = FaceLandmarker(landmark_weights_dir)
    made: list[int] = []

    def lazily() -> FaceLandmarker:  # the runner's bank hands out its resident landmarker
        made.append(1)
        return landmarker

    audio = load_audio(speech_path).samples[: 16000 * 2]
    scorer = JobScorer(LIMITS, lambda: load_syncnet(tmp_path / "none.model"), landmarker=lazily)
    result = _run_job(scorer, crops, 50, 25.0, audio)
    motion = json.loads(result.files["quality.json"])["head_motion"]
    assert motion["blinks"] == 0 and motion["blinks_per_minute"] == 0.0  # eyes open throughout
    assert len(made) == len(crops[0])  # the iris model ran once per distinct crop
    assert motion["word"] == "calm"  # the crops turn by half a degree

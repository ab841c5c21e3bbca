"""Preview contact sheet, poster and quality_report on a constructed clip of a real face."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.errors import MediaError
from pipeline.quality import pictures
from pipeline.quality.measures import Verdict
from pipeline.quality.report import quality_report
from pipeline.quality.syncscore import SyncScore

N = 30


@pytest.fixture(scope="module")
def clip(astronaut: np.ndarray, lmk: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    frames, marks = [], []
    base = np.asarray(lmk, np.float64)[:, :2]
    for t in range(N):
        m = np.array([[1, 0, 3 * np.sin(t / 5)], [0, 1, 0.5 * t]], np.float64)
        frames.append(cv2.warpAffine(astronaut, m, (512, 512), borderMode=cv2.BORDER_REFLECT))
        marks.append(base + m[:, 2])
    return frames, np.stack(marks)


def test_preview_sheet(clip: tuple[list[np.ndarray], np.ndarray]) -> None:
    frames, marks = clip
    rgb, times = pictures.preview_image(frames, marks, fps=25)
    sheet = cv2.imdecode(np.frombuffer(pictures.encode_jpeg(rgb), np.uint8), cv2.IMREAD_COLOR)
    assert sheet is not None
    # 8 tiles in 2 columns: each the 200 px frame plus the 200 px mouth beside it
    assert sheet.shape == (4 * 200, 2 * 400, 3)
    assert len(times) == 8
    assert times[0] == 0.0 and times[-1] == pytest.approx((N - 1) / 25)
    assert all(b > a for a, b in zip(times, times[1:], strict=False))
    # the enlarged mouth is the lips, not background: reddish and varied
    mouth = sheet[:200, 200:400].astype(float)
    assert mouth.std() > 20
    assert mouth[80:120, 60:140, 2].mean() > mouth[80:120, 60:140, 0].mean()  # R > B (BGR)


def test_poster_avoids_blinks(clip: tuple[list[np.ndarray], np.ndarray]) -> None:
    _, marks = clip
    blinking = marks.copy()
    for t in range(N):
        if t != 17:  # close the eyes in every frame but one
            for top, bottom in ((159, 145), (386, 374)):
                blinking[t, top] = blinking[t, bottom]
    tracked = [True] * N
    assert pictures.poster_index(blinking, tracked) == 17
    tracked[17] = False  # an untracked frame is not chosen
    assert pictures.poster_index(blinking, tracked) != 17


def test_quality_report_without_syncnet(clip: tuple[list[np.ndarray], np.ndarray]) -> None:
    frames, marks = clip
    audio = np.zeros(int(16000 * N / 25), np.float32)
    report = quality_report(frames, marks, [True] * N, audio, syncnet=None, before=frames)
    names = [m.name for m in report.measures]
    assert names == ["tracked_share", "landmark_jitter_px", "seam_step", "flicker",
                     "duration_gap_s"]
    assert report.verdict is Verdict.OK, report.summary()
    assert report.sync is None
    assert "lip sync not scored" in report.summary()
    data = report.as_dict()
    assert data["verdict"] == "ok" and data["not_scored"]
    lost = quality_report(frames, marks, [True] * 20 + [False] * 10, audio[:8000], syncnet=None)
    assert lost.verdict is Verdict.CHECK
    assert any("tracked in too few frames" in r for r in lost.reasons)
    assert any("lengths differ" in r for r in lost.reasons)


def test_a_plot_into_a_missing_folder_is_a_media_error_and_writes_nothing(
        tmp_path: Path) -> None:
    n = 12
    score = SyncScore(offset=0, confidence=5.0, min_dist=7.0, mdist=np.linspace(8, 7, 31),
                      dists=np.full((n, 31), 8.0), framewise_conf=np.linspace(0, 6, n),
                      window_starts=np.arange(n))
    plot = pictures.confidence_plot(tmp_path / "syncnet.png", score)
    picture = cv2.imread(str(plot))
    assert picture is not None and picture.shape[2] == 3
    with pytest.raises(MediaError):
        pictures.confidence_plot(tmp_path / "missing" / "syncnet.png", score)
    assert not (tmp_path / "missing").exists()

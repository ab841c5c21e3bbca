"""Each cheap measure fires on a constructed video with the fault and stays ok without it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.face.geometry import wav2lip_box
from pipeline.lipsync.wav2lip.blend import lower_face_mask
from pipeline.quality import measures
from pipeline.quality.measures import Verdict

N = 12
SCALE = 0.5  # the astronaut at 256x256: fast, still a face of about 100 px


@pytest.fixture(scope="module")
def clip(astronaut: np.ndarray, lmk: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """A head moving smoothly (sub-pixel shifts and a slow rotation), landmarks moved with it."""
    small = cv2.resize(astronaut, None, fx=SCALE, fy=SCALE, interpolation=cv2.INTER_AREA)
    base = np.asarray(lmk, np.float64)[:, :2] * SCALE
    frames, marks = [], []
    for t in range(N):
        m = cv2.getRotationMatrix2D((128.0, 128.0), 0.4 * np.sin(t / 5), 1.0)
        m[:, 2] += np.array([2.5 * np.sin(t / 4), 0.7 * t])
        frames.append(cv2.warpAffine(small, m, (256, 256), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REFLECT))
        marks.append(base @ m[:, :2].T + m[:, 2])
    return frames, np.stack(marks)


def test_tracked_share() -> None:
    assert measures.tracked_share([True] * 100).verdict is Verdict.OK
    lost = measures.tracked_share([True] * 80 + [False] * 20)
    assert lost.verdict is Verdict.CHECK
    assert lost.value == pytest.approx(0.8)
    assert "tracked in too few frames" in lost.reason and "at least 0.95" in lost.reason


def test_jitter(clip: tuple[list[np.ndarray], np.ndarray]) -> None:
    _, marks = clip
    smooth = measures.landmark_jitter(marks)
    assert smooth.verdict is Verdict.OK and smooth.value < 0.1
    noisy = marks + np.random.default_rng(0).normal(0, 2.0, marks.shape)
    shaky = measures.landmark_jitter(noisy)
    assert shaky.verdict is Verdict.CHECK
    assert shaky.value == pytest.approx(2.0 * np.sqrt(2 * 1.5), rel=0.15)  # 2-D, 1.22 sigma each
    assert "jitter" in shaky.reason


def _patched(frames: list[np.ndarray], marks: np.ndarray, delta: int) -> list[np.ndarray]:
    """The mouth patch region pasted back brighter by ``delta``: a hard-edged patch."""
    out = []
    for frame, lmk in zip(frames, marks, strict=True):
        region = measures._patch_region(lmk, frame.shape[:2]) > 0
        f = frame.astype(np.int16)
        f[region] += delta
        out.append(np.clip(f, 0, 255).astype(np.uint8))
    return out


def _feathered(frames: list[np.ndarray], marks: np.ndarray, delta: int) -> list[np.ndarray]:
    """The same brighter patch blended with facedrop's feathered lower-face weight."""
    out = []
    for frame, lmk in zip(frames, marks, strict=True):
        x1, y1, x2, y2 = (int(round(v)) for v in wav2lip_box(lmk, image_size=(256, 256)))
        weight = np.zeros(frame.shape[:2], np.float32)
        weight[y1:y2, x1:x2] = lower_face_mask(lmk, (x1, y1, x2, y2))
        f = frame.astype(np.float32) + delta * weight[..., None]
        out.append(np.clip(np.round(f), 0, 255).astype(np.uint8))
    return out


def test_seam(clip: tuple[list[np.ndarray], np.ndarray]) -> None:
    frames, marks = clip
    blended = measures.seam_step(_feathered(frames, marks, 25), frames, marks)
    assert blended.verdict is Verdict.OK, blended
    assert measures.seam_step(frames, frames, marks).value == 0.0
    pasted = measures.seam_step(_patched(frames, marks, 25), frames, marks)
    assert pasted.verdict is Verdict.CHECK
    assert pasted.value == pytest.approx(25, abs=3)
    assert "mouth patch is visible" in pasted.reason


def test_flicker(clip: tuple[list[np.ndarray], np.ndarray]) -> None:
    frames, marks = clip
    steady = measures.flicker(frames, marks)
    assert steady.verdict is Verdict.OK, steady
    flickering = []
    for t, frame in enumerate(frames):  # the upper face brightens on every other frame
        f = frame.astype(np.int16)
        f[: int(marks[t][:, 1].mean())] += 12 * (t % 2)
        flickering.append(np.clip(f, 0, 255).astype(np.uint8))
    bad = measures.flicker(flickering, marks)
    assert bad.verdict is Verdict.CHECK and bad.value > steady.value + 4
    # the mouth moving (speech) is not flicker: only the mouth patch changes here
    talking = _patched(frames, marks, 0)
    for t in range(0, N, 2):
        talking[t] = _patched([frames[t]], marks[t:t + 1], 30)[0]
    assert measures.flicker(talking, marks).verdict is Verdict.OK


def test_durations() -> None:
    assert measures.duration_gap(5.9, 5.92).verdict is Verdict.OK
    late = measures.duration_gap(5.9, 6.4)
    assert late.verdict is Verdict.CHECK and late.value == pytest.approx(-0.5)
    assert "lengths differ" in late.reason

"""The pictures of a scored video: ``preview.jpg`` (a contact sheet), ``poster.jpg`` (a good
frame) and the confidence-against-time plot, drawn with OpenCV. Pure functions of frames,
landmarks and scores that write one file each.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from pipeline.atomic import write_bytes_atomic
from pipeline.errors import MediaError
from pipeline.face import meshidx
from pipeline.quality.syncscore import FPS, SyncScore

TILE_H = 200  # frame height in the sheet; the enlarged mouth is a square of the same height
SHEET_FRAMES = 8
SHEET_COLUMNS = 2
MOUTH_MARGIN = 0.35  # around the lips' box, per side, as a share of its width
FONT = cv2.FONT_HERSHEY_SIMPLEX
_LIPS = np.concatenate([meshidx.LIPS_OUTER, meshidx.LIPS_INNER])


def sheet_indices(n_frames: int, count: int = SHEET_FRAMES) -> list[int]:
    """``count`` frames spread over the whole video, first and last included."""
    if n_frames <= count:
        return list(range(n_frames))
    return [int(round(x)) for x in np.linspace(0, n_frames - 1, count)]


def mouth_crop(frame: np.ndarray, lmk: np.ndarray, size: int) -> np.ndarray:
    """The mouth enlarged to ``size`` x ``size`` (a square around the lips with a margin)."""
    lips = np.asarray(lmk, np.float64)[_LIPS, :2]
    lo, hi = lips.min(0), lips.max(0)
    half = (hi[0] - lo[0]) * (0.5 + MOUTH_MARGIN)
    cx, cy = (lo + hi) / 2
    src = np.array([[cx - half, cy - half], [cx + half, cy - half], [cx - half, cy + half]],
                   np.float32)
    dst = np.array([[0, 0], [size, 0], [0, size]], np.float32)
    m = cv2.getAffineTransform(src, dst)
    return cv2.warpAffine(np.ascontiguousarray(frame), m, (size, size), flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_CONSTANT)


def _label(img: np.ndarray, text: str) -> None:
    """White text on a dark band, top left (readable on any frame)."""
    (w, h), base = cv2.getTextSize(text, FONT, 0.6, 1)
    cv2.rectangle(img, (0, 0), (w + 10, h + base + 8), (0, 0, 0), -1)
    cv2.putText(img, text, (5, h + 4), FONT, 0.6, (255, 255, 255), 1, cv2.LINE_AA)


def _imwrite_atomic(path: Path, bgr: np.ndarray, params: Sequence[int] = ()) -> Path:
    """``cv2.imwrite`` to a hidden temp name beside ``path``, then a rename: never half a file
    under the real name (a synced folder may upload it at any moment)."""
    path = Path(path)
    try:
        ok, encoded = cv2.imencode(path.suffix or ".jpg", bgr, list(params))
    except cv2.error:
        ok = False
    if not ok:
        raise MediaError("a picture could not be encoded", file=path,
                         fix="name it with a .jpg or .png suffix")
    try:
        write_bytes_atomic(path, encoded.tobytes())
    except OSError as err:
        raise MediaError(f"a picture could not be written ({err.strerror})", file=path,
                         fix="check that the folder exists and is writable") from err
    return path


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    """An RGB frame as JPEG bytes (for files the outbox writes)."""
    ok, encoded = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]),
                               [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise MediaError("a picture could not be encoded", fix="report this as a bug")
    return bytes(encoded.tobytes())


def preview_image(frames: Sequence[np.ndarray], landmarks: np.ndarray, fps: float = FPS,
                  count: int = SHEET_FRAMES) -> tuple[np.ndarray, list[float]]:
    """The contact sheet (RGB) and the times (s) of the frames shown.

    Each tile: the frame (``TILE_H`` high) with its time stamp, and beside it the enlarged mouth.
    Only the ``sheet_indices`` frames are read.
    """
    idx = sheet_indices(len(frames), count)
    if not idx:
        raise MediaError("there are no frames to show", fix="score a video with frames")
    tiles = []
    for i in idx:
        frame = frames[i]
        h, w = frame.shape[:2]
        scaled = cv2.resize(frame, (max(1, round(w * TILE_H / h)), TILE_H),
                            interpolation=cv2.INTER_AREA)
        _label(scaled, f"{i / fps:.2f} s")
        tiles.append(np.hstack([scaled, mouth_crop(frame, landmarks[i], TILE_H)]))
    width = max(t.shape[1] for t in tiles)
    tiles = [np.pad(t, ((0, 0), (0, width - t.shape[1]), (0, 0)), constant_values=32)
             for t in tiles]
    while len(tiles) % SHEET_COLUMNS:
        tiles.append(np.full_like(tiles[0], 32))
    rows = [np.hstack(tiles[r:r + SHEET_COLUMNS]) for r in range(0, len(tiles), SHEET_COLUMNS)]
    return np.vstack(rows), [i / fps for i in idx]


def eye_openness(lmk: np.ndarray) -> float:
    """Eyelid gap over eye width, both eyes averaged (a blink is near 0)."""
    pts = np.asarray(lmk, np.float64)[:, :2]
    gaps = []
    for top, bottom, a, b in ((159, 145, 33, 133), (386, 374, 263, 362)):
        width = max(float(np.linalg.norm(pts[a] - pts[b])), 1e-6)
        gaps.append(float(np.linalg.norm(pts[top] - pts[bottom])) / width)
    return float(np.mean(gaps))


def poster_index(landmarks: np.ndarray, tracked: Sequence[bool]) -> int:
    """A good frame: tracked, eyes most open, from the middle 80% of the video."""
    n = len(landmarks)
    lo, hi = int(0.1 * n), max(int(0.9 * n), int(0.1 * n) + 1)
    middle = list(range(lo, min(hi, n)))
    candidates = [i for i in middle if tracked[i]] or middle or list(range(n))
    return max(candidates, key=lambda i: eye_openness(landmarks[i]))


def confidence_plot(path: Path, score: SyncScore, threshold: float = 3.0,
                    size: tuple[int, int] = (900, 320)) -> Path:
    """PNG of SyncNet's framewise confidence against time; red where it is under ``threshold``."""
    return _imwrite_atomic(path, confidence_image(score, threshold, size))


def encode_png(bgr: np.ndarray) -> bytes:
    """A BGR picture as PNG bytes (for files the outbox writes)."""
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(bgr))
    if not ok:
        raise MediaError("a picture could not be encoded", fix="report this as a bug")
    return bytes(encoded.tobytes())


def confidence_image(score: SyncScore, threshold: float = 3.0,
                     size: tuple[int, int] = (900, 320)) -> np.ndarray:
    """The confidence plot as a BGR picture (the windows scored, joined in time order)."""
    w, h = size
    left, right, top, bottom = 60, 20, 30, 40
    img = np.full((h, w, 3), 255, np.uint8)
    t = (np.asarray(score.window_starts, np.float64) + 2.5) / score.fps  # window centres
    conf = np.asarray(score.framewise_conf, np.float64)
    if len(conf) == 0:
        raise MediaError("there is no confidence to plot", fix="score a longer video")
    t_max = max(float(t[-1]), 1e-3)
    c_lo, c_hi = min(0.0, float(conf.min()), threshold) - 0.5, max(float(conf.max()),
                                                                   threshold) + 0.5

    def xy(tt: float, cc: float) -> tuple[int, int]:
        x = left + (w - left - right) * tt / t_max
        y = top + (h - top - bottom) * (c_hi - cc) / (c_hi - c_lo)
        return int(round(x)), int(round(y))

    cv2.rectangle(img, (left, top), (w - right, h - bottom), (0, 0, 0), 1)
    for k in range(6):  # time ticks
        tt = t_max * k / 5
        x, _ = xy(tt, c_lo)
        cv2.putText(img, f"{tt:.1f}s", (x - 15, h - bottom + 20), FONT, 0.45, (0, 0, 0), 1,
                    cv2.LINE_AA)
    for cc in (c_lo + 0.5, threshold, c_hi - 0.5):
        _, y = xy(0.0, cc)
        cv2.putText(img, f"{cc:.1f}", (5, y + 4), FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.line(img, xy(0.0, threshold), xy(t_max, threshold), (150, 150, 150), 1)
    for k in range(1, len(conf)):
        colour = (0, 0, 220) if min(conf[k - 1], conf[k]) < threshold else (0, 140, 0)  # BGR
        cv2.line(img, xy(t[k - 1], conf[k - 1]), xy(t[k], conf[k]), colour, 2, cv2.LINE_AA)
    title = (f"SyncNet confidence over time  (LSE-C {score.confidence:.2f}, "
             f"LSE-D {score.min_dist:.2f}, offset {score.offset} frames)")
    cv2.putText(img, title, (left, 20), FONT, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return img

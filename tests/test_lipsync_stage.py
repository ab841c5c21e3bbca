"""The lip-sync stage on the real photo and real speech: frame count, input prep, exact pixels
outside the mask, no seam at its edge, landmarks once per distinct crop."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from pipeline.face.geometry import Affine, liveportrait_crop, warp
from pipeline.face.landmarks import FaceLandmarker
from pipeline.lipsync.wav2lip.audio import frame_mels
from pipeline.lipsync.wav2lip.stage import BaseFace, LipSyncer, face_input
from pipeline.media.audio import load_audio
from pipeline.media.frame_count import output_frame_count
from pipeline.models.wav2lip import Wav2Lip
from tests.helpers.tolerance import assert_close
from tests.helpers.w2l_checkpoints import random_wav2lip_state_dict

CPU = torch.device("cpu")
N_DISTINCT = 8  # distinct animated crops, reused ping-pong over the output frames


class CountingLandmarker:
    """The real FaceLandmarker, counting what the stage asks of it."""

    def __init__(self, inner: FaceLandmarker) -> None:
        self.inner = inner
        self.calls = {"track": 0, "detect": 0, "landmarks": 0}

    def track(self, rgb, prev):
        self.calls["track"] += 1
        return self.inner.track(rgb, prev)

    def detect(self, rgb):
        self.calls["detect"] += 1
        return self.inner.detect(rgb)

    def landmarks(self, rgb, found):
        self.calls["landmarks"] += 1
        return self.inner.landmarks(rgb, found)


class ReferenceNet(torch.nn.Module):
    """Stand-in generator that returns the reference face: records what it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[torch.dtype, tuple[int, ...], tuple[int, ...]]] = []

    def forward(self, audio: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
        self.seen.append((face.dtype, tuple(audio.shape), tuple(face.shape)))
        assert audio.dtype == torch.float32
        return face[:, 3:]


@pytest.fixture(scope="module")
def scene(astronaut_path: Path, landmark_weights_dir: Path, speech_path: Path) -> dict:
    """LivePortrait-style 512 crops of the real photo with small head motion, and the speech."""
    photo = cv2.cvtColor(cv2.imread(str(astronaut_path)), cv2.COLOR_BGR2RGB)
    landmarker = FaceLandmarker(landmark_weights_dir)
    lmk = landmarker.landmarks(photo, landmarker.detect(photo))
    to_crop = liveportrait_crop(lmk)
    crops = []
    for k in range(N_DISTINCT):  # a nod and a turn, like a driving clip's first frames
        angle, dx, dy = 0.02 * math.sin(k / 2), 3.0 * math.sin(k / 3), 2.0 * k / N_DISTINCT
        motion = Affine.similarity(1.0, angle, np.array([256.0, 300.0]),
                                   np.array([256.0 + dx, 300.0 + dy]))
        crops.append(warp(photo, motion.compose(to_crop), 512))
    audio = load_audio(speech_path)
    return {"crops": crops, "first_landmarks": to_crop.apply(lmk).astype(np.float32),
            "landmarker": landmarker, "audio": audio}


def _pingpong(n_frames: int, n_distinct: int) -> list[int]:
    period = 2 * n_distinct - 2
    return [min(i % period, period - i % period) for i in range(n_frames)]


def _full_mask(base: BaseFace) -> np.ndarray:
    full = np.zeros((512, 512), np.float32)
    x1, y1, x2, y2 = base.box
    full[y1:y2, x1:x2] = base.mask
    return full


def _boundary_step(out: np.ndarray, crop: np.ndarray, mask: np.ndarray) -> float:
    """Largest difference between neighbouring pixels of (blended - original) across the mask's
    edge: pixel pairs where one weight is 0 and the other is not."""
    d = out.astype(np.float64) - crop
    step = 0.0
    for axis in (0, 1):
        m0 = np.take(mask, range(mask.shape[axis] - 1), axis=axis)
        m1 = np.take(mask, range(1, mask.shape[axis]), axis=axis)
        edge = (m0 == 0) != (m1 == 0)
        diff = np.abs(np.diff(d, axis=axis)).max(axis=2)
        if edge.any():
            step = max(step, float(diff[edge].max()))
    return step


def test_landmarks_once_per_distinct_crop_and_official_input(scene: dict) -> None:
    lm = CountingLandmarker(scene["landmarker"])
    syncer = LipSyncer(ReferenceNet(), CPU, torch.float32, 4, landmarker=lm)
    bases = syncer.prepare_sequence(scene["crops"], scene["first_landmarks"])
    assert lm.calls == {"track": N_DISTINCT, "detect": 0, "landmarks": 0}
    for b in bases:
        x1, y1, x2, y2 = b.box
        assert 0 <= x1 < x2 <= 512 and 0 <= y1 < y2 <= 512
        assert 0.6 < (x2 - x1) / (y2 - y1) < 1.4  # a face box, brows to chin, not the crop
        assert b.landmarks[152, 1] + 9 <= y2 <= b.landmarks[152, 1] + 11  # chin + 10 px pad
    # input prep, restated from the official inference.py: crop, resize, BGR, mask, concat, /255.
    crop, b = scene["crops"][3], bases[3]
    x1, y1, x2, y2 = b.box
    face = cv2.resize(cv2.cvtColor(crop, cv2.COLOR_RGB2BGR)[y1:y2, x1:x2], (96, 96))
    masked = face.copy()
    masked[48:] = 0
    expected = np.concatenate((masked, face), axis=2).transpose(2, 0, 1) / 255.0
    got = face_input(crop, b.box)
    assert got.dtype == np.float32 and got.shape == (6, 96, 96)
    assert_close(got, expected, ulps=2, dtype=np.float32, what="face input")
    # the stage asks nothing more of the landmarker per output frame
    mels = np.zeros((10, 80, 16), np.float32)
    syncer.sync([crop] * 10, [b] * 10, mels)
    assert lm.calls["track"] == N_DISTINCT and lm.calls["detect"] == 0
    assert syncer.net.seen[0] == (torch.float32, (4, 1, 80, 16), (4, 6, 96, 96))


def test_a_jobs_own_landmarker_leaves_the_resident_one_alone(scene: dict) -> None:
    """Per-job state lives in per-job objects: the job's tracker is passed, never swapped in."""
    resident, job = CountingLandmarker(scene["landmarker"]), CountingLandmarker(scene["landmarker"])
    syncer = LipSyncer(ReferenceNet(), CPU, torch.float32, 4, landmarker=resident)
    with_job = syncer.prepare_sequence(scene["crops"], scene["first_landmarks"], landmarker=job)
    assert syncer.landmarker is resident and resident.calls["track"] == 0
    assert job.calls["track"] == N_DISTINCT
    plain = syncer.prepare_sequence(scene["crops"], scene["first_landmarks"])
    assert [b.box for b in plain] == [b.box for b in with_job]


def _frames_for_audio(scene: dict, fps: Fraction | int) -> tuple[int, np.ndarray, list[int]]:
    """n_frames as the lead computes it, the mel windows and the ping-pong crop order."""
    audio = scene["audio"]
    n = output_frame_count(audio.duration, fps)
    assert n == math.ceil(audio.duration * fps - 1e-6)
    assert (n - 1) / fps < audio.duration <= n / fps  # one frame per 1/fps, to the frame
    mels = frame_mels(audio.samples, fps, n)
    assert mels.shape == (n, 80, 16) and mels.dtype == np.float32
    # the last frame's window starts inside the audio: every frame has speech columns
    assert int((n - 1) * 80 / float(fps)) < 1 + len(audio.samples) // 200
    return n, mels, _pingpong(n, N_DISTINCT)


@pytest.mark.parametrize("fps", [25, Fraction(30000, 1001)], ids=["25", "29.97"])
def test_one_output_frame_per_frame_of_audio(scene: dict, fps: Fraction | int) -> None:
    """The whole 5.9 s recording through the stage (stand-in generator: the count is the point)."""
    n, mels, order = _frames_for_audio(scene, fps)
    assert n == {25: 148, Fraction(30000, 1001): 177}[fps]  # 5.9 s of speech
    syncer = LipSyncer(ReferenceNet(), CPU, torch.float32, 32, landmarker=scene["landmarker"])
    bases = syncer.prepare_sequence(scene["crops"], scene["first_landmarks"])
    crops = [scene["crops"][k] for k in order]
    out = syncer.sync(crops, [bases[k] for k in order], mels)
    assert len(out) == n
    assert sum(audio[0] for _, audio, _ in syncer.net.seen) == n  # each frame generated once
    for frame, crop, k in zip(out[::10], crops[::10], order[::10], strict=True):
        mask = _full_mask(bases[k])
        assert np.array_equal(frame[mask == 0], crop[mask == 0])


def test_real_network_exact_outside_mask_and_no_seam(scene: dict) -> None:
    """Random-weight Wav2Lip on the last 12 frames of the 25 fps run (the end of the audio)."""
    n, mels, order = _frames_for_audio(scene, 25)
    net = Wav2Lip()
    net.load_state_dict(random_wav2lip_state_dict(7))
    syncer = LipSyncer(net.eval(), CPU, torch.float32, 6, landmarker=scene["landmarker"])
    bases = syncer.prepare_sequence(scene["crops"], scene["first_landmarks"])
    window = range(n - 12, n)
    crops = [scene["crops"][order[i]] for i in window]
    out = syncer.sync(crops, [bases[order[i]] for i in window], mels[window.start:])
    assert len(out) == 12

    worst_step = 0.0
    for frame, crop, i in zip(out, crops, window, strict=True):
        mask = _full_mask(bases[order[i]])
        assert frame.shape == (512, 512, 3) and frame.dtype == np.uint8
        assert np.array_equal(frame[mask == 0], crop[mask == 0])  # upper face etc. untouched
        assert np.abs(frame[mask == 1].astype(int) - crop[mask == 1]).mean() > 5  # mouth replaced
        worst_step = max(worst_step, _boundary_step(frame, crop, mask))
    assert worst_step <= 4.0, worst_step

    # the official hard paste of the same network output, for scale: a visible box edge
    b, crop = bases[order[n - 1]], crops[-1]
    x1, y1, x2, y2 = b.box
    face = face_input(crop, b.box)[None]
    gen = syncer.generate(face, mels[n - 1:])[0]
    hard = crop.copy()
    hard[y1:y2, x1:x2] = cv2.resize(gen, (x2 - x1, y2 - y1)).astype(np.uint8)
    box_mask = np.zeros((512, 512), np.float32)
    box_mask[y1:y2, x1:x2] = 1
    assert _boundary_step(hard, crop, box_mask) > 40.0

    # the generated mouth depends on the audio: speech and silence windows differ
    loud, quiet = int(np.argmax(mels.mean(axis=(1, 2)))), int(np.argmin(mels.mean(axis=(1, 2))))
    pair = syncer.generate(np.repeat(face, 2, axis=0), mels[[loud, quiet]])
    assert np.abs(pair[0] - pair[1])[48:].mean() > 1.0


def test_prepare_without_hint_detects_on_the_crop_once(scene: dict) -> None:
    lm = CountingLandmarker(scene["landmarker"])
    syncer = LipSyncer(ReferenceNet(), CPU, torch.float32, 2, landmarker=lm)
    crop = scene["crops"][0]
    alone = syncer.prepare(crop)
    assert lm.calls == {"track": 0, "detect": 1, "landmarks": 1}
    tracked = syncer.prepare(crop, scene["first_landmarks"])
    assert lm.calls["track"] == 1
    # the two routes agree on the face: landmarks within a few pixels, boxes within a few more
    assert np.median(np.abs(alone.landmarks - tracked.landmarks)) < 3.0
    assert np.abs(np.subtract(alone.box, tracked.box)).max() <= 8
    before = crop.copy()
    out = syncer.sync([crop, crop], [alone, tracked], np.zeros((2, 80, 16), np.float32))
    assert np.array_equal(crop, before) and out[0] is not crop  # inputs never modified
    with pytest.raises(ValueError, match="one to one"):
        syncer.sync([crop], [alone, tracked], np.zeros((2, 80, 16), np.float32))

"""Face detection (BlazeFace), 468-point landmarks (FaceMesh) and eyelids (iris model) on LiteRT.

The models are MediaPipe's Apache-2.0 ``.tflite`` files under ``<weights_dir>/landmarks/``. The
graph logic MediaPipe wraps around them is re-done here in numpy: letterboxed detector input,
SSD decoding (``blazeface.py``), the rotated 1.5x ROI and the projection of the landmarks back to
the image. Interpreters are created on first use, not at import or construction.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.errors import NoFaceError, WeightsError
from pipeline.face import blazeface, iris
from pipeline.face.affine import Affine, warp
from pipeline.native_stderr import filtered_stderr

SHORT_RANGE_FILE = "face_detection_short_range.tflite"
FULL_RANGE_FILE = "face_detection_full_range_sparse.tflite"
MESH_FILE = "face_landmark.tflite"

MIN_FACE_PX = 64  # smaller faces give a blurry, unstable crop; refuse them with a clear fix
MESH_SIZE = 192
ROI_SCALE = 1.5  # MediaPipe RectTransformationCalculator scale for the landmark ROI
FACE_FLAG_MIN = 0.5  # sigmoid of the FaceMesh face-presence logit; below this tracking is lost
EDGE_TOLERANCE = 0.08  # fraction of the face box allowed to lie outside the image
EYE_R, EYE_L = 33, 263  # FaceMesh eye corners MediaPipe uses to orient the tracking ROI

_FIX_PHOTO = ("Use a photo with one clearly visible, roughly frontal face, at least "
              f"{MIN_FACE_PX} px wide, not cut off by the image border.")
# Callers may detect on a reduced copy (the runner first fits the photo to pipeline.max_size),
# so sizes are given as measured there, and the fix says so.
_FIX_SMALL = (f"Use a photo where the face is larger or closer. Large photos are first reduced so "
              f"their long side is at most pipeline.max_size pixels; the face must still be "
              f"{MIN_FACE_PX} px wide after that (or raise pipeline.max_size).")


@dataclass(frozen=True, slots=True)
class FaceBox:
    """A detected face in image pixels.

    ``keypoints`` (6, 2): right eye, left eye (subject's sides; the right eye is on the image's
    left), nose tip, mouth centre, right ear tragion, left ear tragion.
    """

    x1: float
    y1: float
    x2: float
    y2: float
    score: float
    keypoints: np.ndarray

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def centre(self) -> np.ndarray:
        return np.array([(self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2])


def roi_affine(centre: np.ndarray, size: float, angle: float, out: int = MESH_SIZE) -> Affine:
    """Image -> ROI transform of a ``size``-px square centred at ``centre`` whose x axis points
    along ``angle`` (radians, image coordinates), sampled to ``out`` x ``out`` pixels.

    MediaPipe's ImageToTensor maps the rect's corners to the tensor's outer edges, so the ROI's
    centre lands at out/2 in continuous coordinates, i.e. pixel (out-1)/2 in OpenCV's convention.
    """
    c = (out - 1) / 2
    return Affine.similarity(out / size, angle, centre, np.array([c, c]))


def _eye_angle(right_eye: np.ndarray, left_eye: np.ndarray) -> float:
    # DetectionsToRectsCalculator: rotation = target(0) - atan2(-(y1 - y0), x1 - x0)
    return -math.atan2(-(left_eye[1] - right_eye[1]), left_eye[0] - right_eye[0])


class FaceLandmarker:
    """Detect the largest face and compute/track its 468 FaceMesh landmarks (image pixels)."""

    def __init__(self, weights_dir: Path, num_threads: int = 2) -> None:
        self.model_dir = Path(weights_dir) / "landmarks"
        self.num_threads = num_threads
        self._interpreters: dict[str, object] = {}
        self._lock = threading.Lock()  # a LiteRT interpreter is not safe to share across threads

    # -- interpreters ---------------------------------------------------------------------------
    def _interpreter(self, name: str):
        if name not in self._interpreters:
            path = self.model_dir / name
            if not path.is_file():
                raise WeightsError(f"The face landmark model {name} is missing.",
                                   fix="Run `facedrop weights fetch landmarks`.", file=path)
            from ai_edge_litert.interpreter import Interpreter  # heavy import, only when used

            try:
                with filtered_stderr():  # LiteRT announces its XNNPACK delegate on stderr
                    it = Interpreter(model_path=str(path), num_threads=self.num_threads)
                    it.allocate_tensors()
            except (ValueError, RuntimeError) as exc:
                raise WeightsError(f"The face landmark model {name} cannot be loaded: {exc}",
                                   fix="Run `facedrop weights verify` and re-fetch it.",
                                   file=path) from exc
            self._interpreters[name] = it
        return self._interpreters[name]

    def _run(self, name: str, tensor: np.ndarray) -> list[np.ndarray]:
        with self._lock:
            it = self._interpreter(name)
            it.set_tensor(it.get_input_details()[0]["index"], tensor[None])
            it.invoke()
            return [it.get_tensor(d["index"]).copy() for d in it.get_output_details()]

    # -- detection ------------------------------------------------------------------------------
    def _detect_all(self, rgb: np.ndarray, name: str,
                    spec: blazeface.DetectorSpec) -> list[FaceBox]:
        h, w = rgb.shape[:2]
        n = spec.input_size
        scale = n / max(h, w)  # letterbox: keep the aspect ratio, pad the short side
        rw, rh = max(1, round(w * scale)), max(1, round(h * scale))
        small = cv2.resize(rgb, (rw, rh), interpolation=cv2.INTER_AREA)
        # letterbox bars at 0, mid-grey in [-1, 1]: black bars hide faces cut by the border
        # (then reported as "no face" instead of the more useful "cut off")
        canvas = np.zeros((n, n, 3), np.float32)
        ox, oy = (n - rw) // 2, (n - rh) // 2
        sxy = np.array([rw / w, rh / h])  # the scale actually applied, after rounding
        canvas[oy:oy + rh, ox:ox + rw] = small.astype(np.float32) / 127.5 - 1.0  # range [-1, 1]
        reg, cls = self._run(name, canvas)
        if reg.shape[-1] != 16:  # some exports swap the output order
            reg, cls = cls, reg
        dets = blazeface.decode(reg, cls, blazeface.make_anchors(spec), spec)
        boxes = []
        for d in dets:
            # input [0,1] -> letterbox (continuous) -> image (continuous) -> OpenCV pixel centres
            b = (d.box.reshape(2, 2) * n - [ox, oy]) / sxy - 0.5
            k = (d.keypoints * n - [ox, oy]) / sxy - 0.5
            x1, y1, x2, y2 = (float(v) for v in b.reshape(-1))
            boxes.append(FaceBox(x1, y1, x2, y2, score=d.score, keypoints=k))
        return boxes

    def detect(self, rgb: np.ndarray) -> FaceBox:
        """The largest face in an RGB uint8 image; NoFaceError if none, too small or cut off."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"detect wants HxWx3 uint8 RGB, got {rgb.shape} {rgb.dtype}")
        rgb = np.ascontiguousarray(rgb)
        faces = self._detect_all(rgb, SHORT_RANGE_FILE, blazeface.SHORT_RANGE)
        if not faces:  # short range misses small or far faces; the full-range model sees them
            faces = self._detect_all(rgb, FULL_RANGE_FILE, blazeface.FULL_RANGE_SPARSE)
        if not faces:
            raise NoFaceError("No face was found in the photo.", fix=_FIX_PHOTO)
        face = max(faces, key=lambda f: f.width * f.height)
        _check_usable(face, rgb.shape[1], rgb.shape[0])
        return face

    # -- landmarks ------------------------------------------------------------------------------
    def _mesh(self, rgb: np.ndarray, roi: Affine) -> tuple[np.ndarray, float]:
        crop = warp(np.ascontiguousarray(rgb), roi, MESH_SIZE, border=cv2.BORDER_REPLICATE)
        pts, flag = self._run(MESH_FILE, crop.astype(np.float32) / 255.0)  # range [0, 1]
        # (468, 2) in continuous ROI coordinates (MediaPipe divides them by 192): -0.5 gives
        # OpenCV pixel coordinates, which roi maps. z (relative depth) is unused.
        pts = pts.reshape(468, 3)[:, :2] - 0.5
        presence = 1.0 / (1.0 + math.exp(-float(np.clip(flag.reshape(-1)[0], -50, 50))))
        return roi.inverse().apply(pts).astype(np.float32), presence

    def landmarks(self, rgb: np.ndarray, box: FaceBox) -> np.ndarray:
        """468 FaceMesh landmarks (468, 2) float32 in image pixels for a detected face."""
        angle = _eye_angle(box.keypoints[0], box.keypoints[1])
        size = max(box.width, box.height) * ROI_SCALE  # square_long, then scale 1.5
        pts, presence = self._mesh(rgb, roi_affine(box.centre, size, angle))
        if presence < FACE_FLAG_MIN:
            raise NoFaceError("A face was detected but its features could not be located "
                              f"(landmark confidence {presence:.2f}).", fix=_FIX_PHOTO)
        return pts

    def track(self, rgb: np.ndarray, prev_landmarks: np.ndarray) -> np.ndarray:
        """Landmarks for the next frame from the previous frame's, without the detector.

        The ROI is MediaPipe's landmarks-to-ROI: the landmarks' bounding box, square, 1.5x,
        rotated by the eye-corner line (33 -> 263). If the face is lost, detect afresh.
        """
        prev = np.asarray(prev_landmarks, dtype=np.float64)
        lo, hi = prev.min(0), prev.max(0)
        size = float(max(hi - lo)) * ROI_SCALE
        angle = _eye_angle(prev[EYE_R], prev[EYE_L])
        pts, presence = self._mesh(rgb, roi_affine((lo + hi) / 2, size, angle))
        if presence >= FACE_FLAG_MIN:
            return pts
        return self.landmarks(rgb, self.detect(rgb))

    def eyelids(self, rgb: np.ndarray, lmk468: np.ndarray) -> np.ndarray:
        """(2, 16, 2) float32 refined eyelid outlines (image-left eye first), image pixels.

        MediaPipe's iris model on each eye's ROI (``iris.py``); what the eye ratios use.
        """
        return self.eyes(rgb, lmk468)[0]

    def eyes(self, rgb: np.ndarray, lmk468: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The iris model's two outputs per eye (image-left eye first), image pixels, float32:
        eyelid outlines (2, 16, 2) and iris points (2, 5, 2: centre, then the rim)."""
        rgb = np.ascontiguousarray(rgb)
        lids, irises = [], []
        for eye in (0, 1):
            roi = iris.eye_roi(lmk468, eye)
            crop = warp(rgb, roi, iris.IRIS_SIZE, border=cv2.BORDER_REPLICATE)
            outs = self._run(iris.IRIS_FILE, crop.astype(np.float32) / 255.0)  # range [0, 1]
            # outputs: contour (1, 213) and iris (1, 15); pick by size, not export order
            contour = next(o for o in outs if o.size == iris.N_CONTOUR * 3)
            points = next(o for o in outs if o.size == iris.N_IRIS * 3)
            lids.append(iris.decode_lids(contour, roi))
            irises.append(iris.decode_iris(points, roi))
        return np.stack(lids).astype(np.float32), np.stack(irises).astype(np.float32)


def _check_usable(face: FaceBox, width: int, height: int) -> None:
    """Refuse faces too small to crop well or cut off by the image border."""
    size = min(face.width, face.height)
    if size < MIN_FACE_PX:
        raise NoFaceError(f"The face is too small: {size:.0f} px wide in the {width}x{height} "
                          f"picture the face was searched in; at least {MIN_FACE_PX} px is "
                          "needed.", fix=_FIX_SMALL)
    tol = EDGE_TOLERANCE * size
    outside = (face.x1 < -tol or face.y1 < -tol or face.x2 > width + tol
               or face.y2 > height + tol)
    kp = face.keypoints[:4]  # eyes, nose, mouth must be inside the picture
    kp_out = bool(np.any(kp < 0) or np.any(kp[:, 0] >= width) or np.any(kp[:, 1] >= height))
    if outside or kp_out:
        raise NoFaceError("The face is cut off by the edge of the photo.",
                          fix="Use a photo that shows the whole face with some margin around it.")

"""BlazeFace SSD decoding: anchors, box/keypoint regression, weighted NMS.

The numbers reproduce MediaPipe's graphs (``face_detection_short_range.pbtxt`` and
``face_detection_full_range.pbtxt``: SsdAnchorsCalculator + TensorsToDetectionsCalculator +
NonMaxSuppressionCalculator), checked against the tensors of the shipped ``.tflite`` files:

- short range: input 1x128x128x3 in [-1, 1]; outputs regressors 1x896x16, classificators 1x896x1.
  Anchors: strides 8,16,16,16, two anchors per layer and cell (aspect ratio 1 plus the interpolated
  one), layers of equal stride share one grid: 16*16*2 + 8*8*6 = 896. min score 0.5.
- full range (sparse): input 1x192x192x3 in [-1, 1]; outputs 1x2304x16, 1x2304x1. One layer,
  stride 4, one anchor per cell: 48*48 = 2304. min score 0.6.

``fixed_anchor_size`` is true for both, so every anchor is 1x1 and only its centre matters.
Each regressor row is (dx, dy, w, h, then 6 keypoints x,y), in input pixels relative to the anchor
centre. Keypoints: 0 right eye, 1 left eye (subject's sides: 0 is on the image's left), 2 nose tip,
3 mouth centre, 4 right ear tragion, 5 left ear tragion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class DetectorSpec:
    """Anchor and decoding parameters of one BlazeFace variant."""

    input_size: int
    strides: tuple[int, ...]
    anchors_per_layer: int  # 2 with interpolated_scale_aspect_ratio=1.0, else 1
    min_score: float


SHORT_RANGE = DetectorSpec(input_size=128, strides=(8, 16, 16, 16), anchors_per_layer=2,
                           min_score=0.5)
FULL_RANGE_SPARSE = DetectorSpec(input_size=192, strides=(4,), anchors_per_layer=1,
                                 min_score=0.6)
NMS_IOU = 0.3  # NonMaxSuppressionCalculator min_suppression_threshold
SCORE_CLIP = 100.0  # TensorsToDetections score_clipping_thresh


def make_anchors(spec: DetectorSpec) -> np.ndarray:
    """Anchor centres (N, 2) in [0, 1] input coordinates, in the model's output order."""
    centres = []
    i = 0
    while i < len(spec.strides):
        stride = spec.strides[i]
        # consecutive layers with the same stride are emitted as one grid (SsdAnchorsCalculator)
        n_layers = 1
        while i + n_layers < len(spec.strides) and spec.strides[i + n_layers] == stride:
            n_layers += 1
        cells = int(np.ceil(spec.input_size / stride))
        ys, xs = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
        grid = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], axis=-1).reshape(-1, 1, 2)
        per_cell = n_layers * spec.anchors_per_layer
        centres.append(np.repeat(grid, per_cell, axis=1).reshape(-1, 2))
        i += n_layers
    return np.concatenate(centres).astype(np.float32)


@dataclass(frozen=True, slots=True)
class RawDetection:
    """One decoded detection in [0, 1] coordinates of the (letterboxed) model input."""

    box: np.ndarray  # (4,) x1, y1, x2, y2
    keypoints: np.ndarray  # (6, 2)
    score: float


def decode(regressors: np.ndarray, scores: np.ndarray, anchors: np.ndarray,
           spec: DetectorSpec) -> list[RawDetection]:
    """Decode model outputs (N,16) and (N,1) into detections above the score threshold, NMS'd."""
    logits = np.clip(scores.reshape(-1).astype(np.float64), -SCORE_CLIP, SCORE_CLIP)
    probs = 1.0 / (1.0 + np.exp(-logits))
    keep = np.nonzero(probs >= spec.min_score)[0]
    if keep.size == 0:
        return []
    reg = regressors.reshape(-1, 16)[keep] / spec.input_size
    anc = anchors[keep]
    centre = reg[:, 0:2] + anc
    half = reg[:, 2:4] / 2
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    kps = reg[:, 4:16].reshape(-1, 6, 2) + anc[:, None, :]
    return weighted_nms(boxes, kps, probs[keep])


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def weighted_nms(boxes: np.ndarray, kps: np.ndarray, scores: np.ndarray) -> list[RawDetection]:
    """MediaPipe's WEIGHTED NMS: overlapping candidates are averaged, weighted by score.

    The best candidate keeps its score; its box and keypoints become the score-weighted mean of
    all remaining candidates overlapping it by IoU > 0.3. This is steadier than hard NMS.
    """
    order = np.argsort(-scores)
    boxes, kps, scores = boxes[order], kps[order], scores[order]
    alive = np.ones(len(scores), dtype=bool)
    out: list[RawDetection] = []
    for i in range(len(scores)):
        if not alive[i]:
            continue
        idx = np.nonzero(alive)[0]
        group = idx[_iou(boxes[i], boxes[idx]) > NMS_IOU]
        group = group if group.size else np.array([i])
        w = scores[group][:, None]
        box = (boxes[group] * w).sum(0) / w.sum()
        kp = (kps[group] * w[:, :, None]).sum(0) / w.sum()
        out.append(RawDetection(box=box, keypoints=kp, score=float(scores[i])))
        alive[group] = False
        alive[i] = False
    return out

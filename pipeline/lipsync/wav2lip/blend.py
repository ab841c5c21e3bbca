"""Blending Wav2Lip's 96x96 mouth back into the crop with a feathered lower-face mask.

The official inference pastes the whole resized box as a hard rectangle, which leaves a visible
edge and a blurry square (Rudrabha/Wav2Lip #410, #364). Here only the lower face (jaw line up to
the nostrils) is replaced, with a weight that falls smoothly to exactly 0 at the mask's edge and
at the box's edge: pixels outside the mask are left bit-for-bit unchanged.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.face import meshidx

FEATHER = 0.15  # ramp width as a fraction of the box height
MIN_FEATHER_PX = 3.0
# The jaw line from below the ear lobes round the chin (LOWER_JAW minus its top ends, which sit
# at ear level, in the half of the box Wav2Lip does not generate) and the nostril line on top.
_OUTLINE = np.concatenate([meshidx.LOWER_JAW[1:-1], meshidx.NOSE_BOTTOM])


def lower_face_mask(landmarks: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The blend weight (h, w) float32 in [0, 1] over ``box`` (x1, y1, x2, y2) of the crop.

    Region: the convex hull of the jaw line and the nostril line, grown by half the feather
    width so the ramp straddles the jaw line (an opening mouth lowers the chin), cut a quarter
    feather above the nostril line (nose and upper face keep their pixels). Weight: a
    smoothstep of the distance to the region's edge or to the box's edge, whichever is nearer,
    reaching 1 at ``FEATHER`` x box height inside. It is exactly 0 on and outside both edges
    and has zero slope there, so the blend shows no seam. Distances are exact (to the hull's
    edge lines), not measured on a rasterised polygon, so the ramp has no staircase.
    """
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    feather = max(MIN_FEATHER_PX, FEATHER * h)
    pts = np.asarray(landmarks, dtype=np.float64)[_OUTLINE] - (x1, y1)
    hull = cv2.convexHull(pts.astype(np.float32)).reshape(-1, 2).astype(np.float64)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)  # pixel centres, box coordinates
    inside = _convex_depth(hull, xs, ys) + feather / 2
    # but never above the nostril line (less a quarter feather, so the upper lip is fully
    # replaced): the nose and everything above keep their pixels
    left, right = pts[-len(meshidx.NOSE_BOTTOM)], pts[-1]
    below_nose = _below_line(left, right, pts[:-len(meshidx.NOSE_BOTTOM)].mean(0), xs, ys)
    inside = np.minimum(inside, below_nose + feather / 4)
    # the box border counts as outside: the weight reaches 0 where the generated patch ends
    border = np.minimum(np.minimum(xs, w - 1 - xs), np.minimum(ys, h - 1 - ys))
    t = np.clip(np.minimum(inside, border) / feather, 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)  # smoothstep: zero slope at both ends


def _below_line(a: np.ndarray, b: np.ndarray, towards: np.ndarray, xs: np.ndarray,
                ys: np.ndarray) -> np.ndarray:
    """Signed distance from the line through ``a`` and ``b``, positive on ``towards``'s side."""
    edge = b - a
    normal = np.array([-edge[1], edge[0]]) / max(float(np.hypot(*edge)), 1e-9)
    if float(np.dot(towards - a, normal)) < 0:
        normal = -normal
    return (xs - a[0]) * normal[0] + (ys - a[1]) * normal[1]


def _convex_depth(hull: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Signed distance inside a convex polygon (positive inside): the smallest distance to the
    lines through its edges, which for a convex polygon is the distance to its boundary."""
    depth = np.full(xs.shape, np.inf)
    nxt = np.roll(hull, -1, axis=0)
    area2 = float(np.sum(hull[:, 0] * nxt[:, 1] - nxt[:, 0] * hull[:, 1]))
    orient = 1.0 if area2 > 0 else -1.0  # make the normals point inwards either way round
    for a, b in zip(hull, nxt, strict=True):
        edge = b - a
        length = float(np.hypot(*edge))
        if length < 1e-9:
            continue
        nx, ny = -edge[1] * orient / length, edge[0] * orient / length
        depth = np.minimum(depth, (xs - a[0]) * nx + (ys - a[1]) * ny)
    return depth


def resize_generated(generated: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The (96, 96, 3) float RGB output in [0, 255] resized to the box, float32.

    Bicubic (the official code uses bilinear on uint8): the patch is upscaled 2-3x and bicubic
    keeps the mouth sharper; values are clipped after the overshoot.
    """
    x1, y1, x2, y2 = box
    up = cv2.resize(generated.astype(np.float32), (x2 - x1, y2 - y1),
                    interpolation=cv2.INTER_CUBIC)
    return np.clip(up, 0.0, 255.0)


def match_colour(patch: np.ndarray, original: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Shift each channel of ``patch`` so its mean over the mask's feather ring matches
    ``original``'s: the skin around the mouth, not the mouth itself (whose content changes).

    Only the mean moves (no std match): a dark open mouth would otherwise be brightened.
    """
    ring = 4.0 * mask * (1.0 - mask)  # peaks mid-ramp, 0 deep inside and outside
    total = float(ring.sum())
    if total < 1.0:
        return patch
    weights = ring[..., None] / total
    shift = (original * weights).sum(axis=(0, 1)) - (patch * weights).sum(axis=(0, 1))
    return np.clip(patch + shift.astype(np.float32), 0.0, 255.0)


def blend(crop: np.ndarray, patch: np.ndarray, mask: np.ndarray,
          box: tuple[int, int, int, int], colour_match: bool = True) -> np.ndarray:
    """A copy of ``crop`` (RGB uint8) with ``patch`` (box-sized float RGB) blended in by ``mask``.

    ``crop + mask * (patch - crop)`` in float, rounded once: where the mask is 0 the crop's
    integer value comes back exactly.
    """
    x1, y1, x2, y2 = box
    out = crop.copy()
    region = crop[y1:y2, x1:x2].astype(np.float32)
    if colour_match:
        patch = match_colour(patch, region, mask)
    mixed = region + mask[..., None] * (patch - region)
    out[y1:y2, x1:x2] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    return out

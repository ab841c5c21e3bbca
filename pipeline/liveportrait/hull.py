"""Volume of the 3-D convex hull of a few points (the expression-friendly motion multiplier).

The official ``calc_motion_multiplier`` uses ``scipy.spatial.ConvexHull(kp).volume`` over the 21
keypoints; scipy is not a runtime dependency here, and for 21 points a direct method is cheap:
every plane through three points with all points on one side is a hull facet plane; each facet
(all points on that plane) is a convex polygon whose area times its distance from an interior
point, over three, is one pyramid of the hull.
"""

from __future__ import annotations

import itertools

import numpy as np


def convex_hull_volume(points: np.ndarray) -> float:
    """Volume of the convex hull of ``points`` (N,3); 0 for flat or degenerate sets."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    scale = float(np.abs(pts - pts.mean(0)).max()) or 1.0
    tol = 1e-9 * scale
    centre = pts.mean(0)
    seen: set[frozenset[int]] = set()
    volume = 0.0
    for a, b, c in itertools.combinations(range(len(pts)), 3):
        normal = np.cross(pts[b] - pts[a], pts[c] - pts[a])
        norm = float(np.linalg.norm(normal))
        if norm <= tol * scale:
            continue  # collinear triple
        normal /= norm
        side = (pts - pts[a]) @ normal
        if (side > tol).any() and (side < -tol).any():
            continue  # points on both sides: not a facet plane
        on_plane = frozenset(np.flatnonzero(np.abs(side) <= tol).tolist())
        if on_plane in seen:
            continue
        seen.add(on_plane)
        area = _polygon_area(pts[sorted(on_plane)], normal)
        volume += area * abs(float((centre - pts[a]) @ normal)) / 3.0
    return volume


def _polygon_area(face: np.ndarray, normal: np.ndarray) -> float:
    """Area of the convex hull of coplanar points (projected to 2-D, monotone chain)."""
    u = face[1] - face[0]
    u /= np.linalg.norm(u)
    v = np.cross(normal, u)
    xy = np.stack([(face - face[0]) @ u, (face - face[0]) @ v], axis=1)
    hull = _hull_2d(xy)
    x, y = hull[:, 0], hull[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _hull_2d(xy: np.ndarray) -> np.ndarray:
    order = sorted(range(len(xy)), key=lambda i: (xy[i, 0], xy[i, 1]))

    def cross(o: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
        return float((a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]))

    def half(indices: list[int]) -> list[int]:
        chain: list[int] = []
        for i in indices:
            while len(chain) >= 2 and cross(xy[chain[-2]], xy[chain[-1]], xy[i]) <= 0:
                chain.pop()
            chain.append(i)
        return chain

    lower, upper = half(order), half(order[::-1])
    return xy[lower[:-1] + upper[:-1]]

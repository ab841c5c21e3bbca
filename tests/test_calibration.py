"""Face geometry against the official LivePortrait pipeline, on its own example clips (issue 15).

The fixtures ``tests/fixtures/calibration/d{1,2,5,7,8}.npz`` are numbers only: our landmark
points measured on the official driving clips (FaceMesh points the geometry reads, refined
eyelids, irises) and the official per-frame ratios from the matching official templates. No clip
or frame is stored.
Regenerate with ``python -m pipeline.liveportrait.calibration`` (see its docstring).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pipeline.face import ratios
from pipeline.face.affine import Affine
from pipeline.face.landmarks import FaceLandmarker
from pipeline.liveportrait.calibration import (
    ClipPoints,
    crop_stats,
    evaluate,
    fit_ratio_maps,
    measure,
    table,
)
from pipeline.liveportrait.crop_reference import CropReference, crop_agreement

FIXTURES = Path(__file__).parent / "fixtures" / "calibration"
CLIPS = ("d1", "d2", "d5", "d7", "d8")
LIP_NORMALIZE_THRESHOLD = 0.03  # official InferenceConfig.lip_normalize_threshold


@pytest.fixture(scope="module")
def clips() -> dict[str, ClipPoints]:
    return {name: ClipPoints.load(FIXTURES / f"{name}.npz") for name in CLIPS}


def test_fixtures_hold_numbers_only() -> None:
    for name in CLIPS:
        with np.load(FIXTURES / f"{name}.npz", allow_pickle=False) as z:
            assert set(z.files) == {"name", "size", "mesh_idx", "mesh", "lids", "iris",
                                    "official_eyes", "official_lip", "official_scale"}
            assert z["mesh"].ndim == 3 and z["mesh"].shape[2] == 2  # points, not pixels
            assert z["lids"].shape[1:] == (2, 16, 2) and z["iris"].shape[1:] == (2, 5, 2)


def test_fixtures_saved_before_the_irises_were_kept_still_load(clips, tmp_path) -> None:
    old = replace(clips["d2"], iris=None)
    old.save(tmp_path / "old.npz")
    with np.load(tmp_path / "old.npz", allow_pickle=False) as z:
        assert "iris" not in z.files
    back = ClipPoints.load(tmp_path / "old.npz")
    assert back.iris is None
    np.testing.assert_allclose(back.lids, clips["d2"].lids, atol=1e-4)


def test_eye_ratio_follows_the_official_one_where_the_eyes_move(clips) -> None:
    for name, clip in clips.items():
        report = evaluate(clip)
        for eye in (0, 1):
            if clip.official_eyes[:, eye].std() > 0.02:  # this eye blinks or squints
                # d8's image-right eye barely moves (official std 0.04) and no map of our
                # points follows it better than 0.90 even fitted on d8 alone (eyeloo --own)
                floor = 0.8 if (name, eye) == ("d8", 1) else 0.9
                assert report.eyes.corr[eye] >= floor, (name, eye, report.eyes.corr)


def test_eye_ratio_is_on_the_official_scale(clips) -> None:
    errors = []
    for name, clip in clips.items():
        report = evaluate(clip)
        ours = np.stack([ratios.eye_ratio(lid, m) for lid, m in zip(clip.lids, clip.mesh,
                                                                             strict=True)])
        errors.append(np.abs(ours - clip.official_eyes).ravel())
        # per clip: d7 (winks) is the worst at 0.031 (the lid heights alone, fitted on these
        # five clips: d8 0.045, its eyes ~0.04 too open, d1 0.039; FaceMesh's lids unmapped:
        # 0.18)
        assert report.eyes.mae.max() <= 0.033, (name, report.eyes.mae)
        assert np.all(np.abs(report.eyes.bias) <= 0.025), (name, report.eyes.bias)
    assert np.concatenate(errors).mean() <= 0.025  # over all 633 frames, both eyes


def test_a_closed_mouth_reads_below_the_official_lip_threshold(clips) -> None:
    for name, clip in clips.items():
        closed = clip.official_lip[:, 0] < 0.01
        ours = np.stack([ratios.lip_ratio(m) for m in clip.mesh])[:, 0]
        assert np.median(ours[closed]) < LIP_NORMALIZE_THRESHOLD, name
    for name in ("d1", "d2"):  # mouth shut throughout: every frame reads closed
        ours = np.stack([ratios.lip_ratio(m) for m in clips[name].mesh])[:, 0]
        assert ours.max() < LIP_NORMALIZE_THRESHOLD, name
    # the open mouth still follows the official one (d5 opens it wide)
    assert evaluate(clips["d5"]).lip.corr[0] >= 0.8


def test_the_mapping_constants_are_the_fit_on_these_clips(clips) -> None:
    eyes, (la, lb) = fit_ratio_maps(clips.values())
    assert eyes == pytest.approx((ratios.EYE_UP, ratios.EYE_LOW, ratios.EYE_NOSE, ratios.EYE_B),
                                 abs=5e-4)
    assert (la, lb) == pytest.approx((ratios.LIP_A, ratios.LIP_B), abs=5e-4)


@pytest.mark.parametrize("name", ["s6", "s42"])
def test_our_source_crop_reproduces_the_official_crop_of_the_same_image(name) -> None:
    """Official crops of the official example images s6 (inference.gif, launch code: scale 2.3,
    vy -0.15) and s42 (Gradio screenshot, scale 2.5, vy -0.125), registered on the images.
    Uncalibrated they read zoom 0.949 / 0.991 and centre y +1.7% / +1.4% (geometry.py)."""
    ref = CropReference.load(FIXTURES / f"{name}.npz")
    agreement = crop_agreement(ref)
    assert abs(agreement.zoom - 1) <= 0.03, agreement
    assert np.abs(agreement.centre).max() <= 0.02, agreement
    assert abs(agreement.rotation) <= 1.0, agreement


def test_our_face_extent_matches_the_official_networks_face_scale(clips) -> None:
    """The crop's size rule (face extent x scale) against a real official measure: the motion
    extractor's face scale in the official templates, made on these clips as they are. Their
    ratio is the same on every clip (within 2 %), although the clips' framings differ by 12 %
    (the official scale runs 1.49 to 1.68): our extent sizes faces as the official network does.
    (The clips themselves are hand-framed, so they fix no crop constant: see geometry.py.)"""
    ratio = np.array([crop_stats(c).net_scale for c in clips.values()])
    assert np.abs(ratio / ratio.mean() - 1).max() < 0.02, ratio
    scales = np.array([c.official_scale.mean() for c in clips.values()])
    assert scales.max() / scales.min() > 1.1  # the framings really do differ between clips


def test_crop_stats_read_a_framing_made_by_our_own_crop_as_exact(clips) -> None:
    """The harness's crop measure: re-frame d2's points by our own averaged driving box, and
    the clip's framing must read as zoom 1, centre 0."""
    from pipeline.face.geometry import bbox_crop, liveportrait_bbox

    clip = clips["d2"]
    box = np.stack([liveportrait_bbox(m) for m in clip.mesh]).mean(0)
    to_crop = bbox_crop(box, 512)
    mesh = np.stack([to_crop.apply(m) for m in clip.mesh])
    lids = np.stack([to_crop.apply(lid.reshape(-1, 2)).reshape(2, 16, 2) for lid in clip.lids])
    framed = ClipPoints("d2-framed", (512, 512), mesh, lids, clip.official_eyes,
                        clip.official_lip, clip.official_scale)
    stats = crop_stats(framed)
    assert stats.zoom == pytest.approx(1.0, abs=1e-6)
    assert np.abs(stats.centre).max() < 1e-6
    # a similarity leaves the ratios alone
    np.testing.assert_allclose(evaluate(framed).eyes.ours, evaluate(clip).eyes.ours, atol=1e-5)


def test_measure_save_load_round_trip(astronaut, landmark_weights_dir, tmp_path) -> None:
    """The measuring half on a real image: three identical frames, the real models."""
    landmarker = FaceLandmarker(landmark_weights_dir)
    official_eyes = np.full((3, 2), 0.3)
    official_lip = np.full((3, 1), 0.05)
    points = measure("still", [astronaut] * 3, landmarker, official_eyes, official_lip,
                     np.full(3, 1.6))
    assert points.mesh.shape == (3, 468, 2) and points.lids.shape == (3, 2, 16, 2)
    assert points.iris is not None and points.iris.shape == (3, 2, 5, 2)
    # eyelids sit inside the eye region FaceMesh found: corners near FaceMesh's corners
    for eye, corners in enumerate(([33, 133], [263, 362])):
        mesh_corners = points.mesh[0][corners]
        width = np.linalg.norm(mesh_corners[0] - mesh_corners[1])
        lid_corners = points.lids[0, eye][[0, 8]]
        assert np.linalg.norm(lid_corners - mesh_corners, axis=1).max() < 0.25 * width
        # the iris: its centre between the corners and its rim around it, an iris's size (about
        # 0.45 of the eye's width in an adult) on both eyes, the mirrored one included
        centre, rim = points.iris[0, eye, 0], points.iris[0, eye, 1:]
        t = (centre - mesh_corners[0]) @ (mesh_corners[1] - mesh_corners[0]) / width**2
        assert 0.25 < t < 0.75, (eye, t)
        radius = np.linalg.norm(rim - centre, axis=1)
        assert np.all((radius > 0.15 * width) & (radius < 0.3 * width)), (eye, radius / width)
        np.testing.assert_allclose(rim.mean(0), centre, atol=0.05 * width)
    points.save(tmp_path / "still.npz")
    back = ClipPoints.load(tmp_path / "still.npz")
    np.testing.assert_allclose(back.lids, points.lids, atol=1e-3)
    np.testing.assert_allclose(back.iris, points.iris, atol=1e-3)
    report = evaluate(back)
    assert np.isfinite(report.crop.zoom) and np.all(np.isfinite(report.eyes.ours))
    assert "| still |" in table([report])


def test_eye_roi_flip_maps_the_right_eye_onto_a_left_eye() -> None:
    """The image-right eye is mirrored for the model: its outer corner (263) lands on the ROI's
    left, like the image-left eye's outer corner (33)."""
    from pipeline.face.iris import eye_roi

    lmk = np.zeros((468, 2))
    lmk[33], lmk[133] = [100.0, 200.0], [140.0, 200.0]
    lmk[362], lmk[263] = [180.0, 200.0], [220.0, 200.0]
    left, right = eye_roi(lmk, 0), eye_roi(lmk, 1)
    assert left.apply(lmk[33])[0] < left.apply(lmk[133])[0]
    assert right.apply(lmk[263])[0] < right.apply(lmk[362])[0]
    assert isinstance(right, Affine)
    np.testing.assert_allclose(right.apply((lmk[362] + lmk[263]) / 2), [31.5, 31.5])


def test_gfpgan_five_point_alignment_on_gfpgans_own_aligned_faces() -> None:
    """GFPGAN's repository ships FFHQ-aligned 512 faces (inputs/cropped_faces/*, tests/data/gt/
    00000000.png) and, for the last, the FFHQ eye and mouth centres (tests/data/
    test_eye_mouth_landmarks.pth). On an already aligned face our alignment should be close to
    the identity; facexlib's template is an average face, so single faces deviate a little.
    Measured: zoom 0.986-1.066, rotation -3.0..+1.3 deg, shift <= 1.6% of 512; our eye centres
    within 5 px of the official ones."""
    from pipeline.face.geometry import ffhq_align, five_points

    with np.load(FIXTURES / "ffhq_aligned.npz", allow_pickle=False) as z:
        idx, pts, component = z["mesh_idx"], z["mesh"].astype(np.float64), z["component_00000000"]
    for face in pts:
        mesh = np.full((468, 2), np.nan)
        mesh[idx] = face
        align = ffhq_align(mesh, 512)
        m = align.matrix
        assert 0.95 <= align.scale <= 1.07
        assert abs(np.degrees(np.arctan2(m[1, 0], m[0, 0]))) <= 3.5
        shift = align.apply([255.5, 255.5]) - 255.5
        assert np.abs(shift).max() <= 0.02 * 512
    mesh = np.full((468, 2), np.nan)
    mesh[idx] = pts[-1]
    eyes = five_points(mesh)[:2]
    assert np.linalg.norm(eyes - component[:2], axis=1).max() <= 6.0

"""Implicit-keypoint maths of the official wrapper, as pure torch functions.

Sources (KwaiVGI/LivePortrait): ``src/utils/camera.py`` (``headpose_pred_to_degree``,
``get_rotation_matrix``), ``src/live_portrait_wrapper.py`` (``get_kp_info``,
``transform_keypoint``, ``stitch``/``stitching``, ``retarget_eye``, ``retarget_lip``) and
``src/utils/helper.py`` (``concat_feat``). Keypoints are (B, K, 3) rows, K = 21, rotated as
``kp @ R`` (row vectors), so R is the transpose of Rz(roll) Ry(yaw) Rx(pitch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.liveportrait.motion import MotionOutput

NUM_BINS = 66
BIN_DEGREES = 3.0  # each bin spans 3 degrees
BIN_OFFSET = 97.5  # the official "average modified to 97.5"


@dataclass(frozen=True, slots=True)
class KeypointInfo:
    """M's output refined (``get_kp_info(flag_refine_info=True)``): angles in degrees."""

    pitch: torch.Tensor  # (B, 1) degrees
    yaw: torch.Tensor  # (B, 1)
    roll: torch.Tensor  # (B, 1)
    t: torch.Tensor  # (B, 3)
    exp: torch.Tensor  # (B, K, 3)
    scale: torch.Tensor  # (B, 1)
    kp: torch.Tensor  # (B, K, 3)


def headpose_pred_to_degree(pred: torch.Tensor) -> torch.Tensor:
    """(B, 66) bin logits -> (B,) degrees: softmax expectation x 3 - 97.5 (camera.py).

    Anything that is not (B, 66) is returned unchanged, as the official function does (so
    already-converted (B, 1) angles pass through).
    """
    if pred.ndim > 1 and pred.shape[1] == NUM_BINS:
        idx = torch.arange(NUM_BINS, device=pred.device, dtype=torch.float32).to(pred.dtype)
        return torch.sum(F.softmax(pred, dim=1) * idx, dim=1) * BIN_DEGREES - BIN_OFFSET
    return pred


def get_rotation_matrix(pitch: torch.Tensor, yaw: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """Angles in degrees, (B,) or (B, 1) each -> (B, 3, 3) = (Rz(roll) Ry(yaw) Rx(pitch))^T."""
    x, y, z = (a.reshape(-1, 1) / 180 * math.pi for a in (pitch, yaw, roll))  # (B, 1) radians
    ones, zeros = torch.ones_like(x), torch.zeros_like(x)
    rot_x = torch.cat([ones, zeros, zeros,
                       zeros, torch.cos(x), -torch.sin(x),
                       zeros, torch.sin(x), torch.cos(x)], dim=1).reshape(-1, 3, 3)
    rot_y = torch.cat([torch.cos(y), zeros, torch.sin(y),
                       zeros, ones, zeros,
                       -torch.sin(y), zeros, torch.cos(y)], dim=1).reshape(-1, 3, 3)
    rot_z = torch.cat([torch.cos(z), -torch.sin(z), zeros,
                       torch.sin(z), torch.cos(z), zeros,
                       zeros, zeros, ones], dim=1).reshape(-1, 3, 3)
    return (rot_z @ rot_y @ rot_x).permute(0, 2, 1)


def refine_motion(raw: MotionOutput) -> KeypointInfo:
    """M's raw output -> degrees and (B, K, 3) shapes (wrapper ``get_kp_info``)."""
    b = raw.kp.shape[0]
    return KeypointInfo(
        pitch=headpose_pred_to_degree(raw.pitch)[:, None],
        yaw=headpose_pred_to_degree(raw.yaw)[:, None],
        roll=headpose_pred_to_degree(raw.roll)[:, None],
        t=raw.t,
        exp=raw.exp.reshape(b, -1, 3),  # (B, 63) -> (B, 21, 3)
        scale=raw.scale,
        kp=raw.kp.reshape(b, -1, 3),  # (B, 63) -> (B, 21, 3)
    )


def info_rotation(info: KeypointInfo) -> torch.Tensor:
    """The (B, 3, 3) rotation of a refined motion."""
    return get_rotation_matrix(info.pitch, info.yaw, info.roll)


def transform_keypoint(info: KeypointInfo) -> torch.Tensor:
    """Eqn. 2: x = s * (x_c @ R + delta) + t, with only tx, ty applied -> (B, K, 3)."""
    b = info.kp.shape[0]
    kp = info.kp.reshape(b, -1, 3)  # (B, K, 3); (B, 3K) is accepted as the official code does
    x = kp @ info_rotation(info) + info.exp.reshape(b, -1, 3)
    x = x * info.scale[..., None]  # (B, K, 3) * (B, 1, 1)
    return torch.cat([x[..., :2] + info.t[:, None, :2], x[..., 2:]], dim=-1)  # tz unused


def concat_feat(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B, ...) and (B, ...) -> (B, n_a + n_b), each flattened (helper ``concat_feat``)."""
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"batch sizes differ: {a.shape[0]} and {b.shape[0]}")
    return torch.cat([a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)], dim=1)


def apply_stitching(kp_driving: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """Add S's output (B, 3K + 2) to x_d: per-keypoint delta_exp, then one (tx, ty) shift."""
    b, k = kp_driving.shape[:2]
    delta_exp = delta[..., : 3 * k].reshape(b, k, 3)
    delta_tx_ty = delta[..., 3 * k : 3 * k + 2].reshape(b, 1, 2)
    moved = kp_driving + delta_exp
    return torch.cat([moved[..., :2] + delta_tx_ty, moved[..., 2:]], dim=-1)


def stitching(net: nn.Module, kp_source: torch.Tensor, kp_driving: torch.Tensor) -> torch.Tensor:
    """x_d stitched to x_s (wrapper ``stitching``): S(cat(x_s, x_d)) applied to x_d."""
    return apply_stitching(kp_driving, net(concat_feat(kp_source, kp_driving)))


def retarget_eye(net: nn.Module, kp_source: torch.Tensor, eye_ratio: torch.Tensor) -> torch.Tensor:
    """R_eyes: x_s (B, K, 3) and [c_s_left, c_s_right, c_d] (B, 3) -> delta (B, K, 3)."""
    return net(concat_feat(kp_source, eye_ratio)).reshape(-1, kp_source.shape[1], 3)


def retarget_lip(net: nn.Module, kp_source: torch.Tensor, lip_ratio: torch.Tensor) -> torch.Tensor:
    """R_lip: x_s (B, K, 3) and [c_s_lip, c_d_lip] (B, 2) -> delta (B, K, 3)."""
    return net(concat_feat(kp_source, lip_ratio)).reshape(-1, kp_source.shape[1], 3)

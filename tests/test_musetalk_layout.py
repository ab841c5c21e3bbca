"""MuseTalk's VAE input is contiguous NCHW: the layout is chosen, not inherited from a permute
(channels-last moves the VAE's GroupNorm, and so the latents, outside the parity tolerance)."""

from __future__ import annotations

import numpy as np
import torch

from pipeline.musetalk.bundle import face_batch_to_tensor


def test_face_batch_is_contiguous_nchw_with_the_official_values() -> None:
    faces = np.random.default_rng(0).integers(0, 256, (2, 256, 256, 3), dtype=np.uint8)
    for half_mask in (False, True):
        x = face_batch_to_tensor(faces, half_mask)
        assert x.shape == (2, 3, 256, 256) and x.is_contiguous()
        assert not x.is_contiguous(memory_format=torch.channels_last)
        expected = torch.from_numpy(faces.astype(np.float64) / 255.0).float().permute(0, 3, 1, 2)
        if half_mask:
            expected[:, :, 128:] = 0.0
        assert torch.equal(x, (expected - 0.5) / 0.5)

"""Wav2Lip generator: parity with the official implementation through the official file layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.lipsync.wav2lip.load import load_wav2lip
from pipeline.models.wav2lip import Wav2Lip, convert_wav2lip_state_dict
from tests.helpers.deterministic_weights import fill_state_dict
from tests.helpers.tolerance import assert_close, assert_stat_close
from tests.helpers.w2l_checkpoints import official_checkpoint_dict

# numeric parity: CI runs these again under another ATEN_CPU_CAPABILITY
pytestmark = pytest.mark.parity

FIXTURE = Path(__file__).parent / "fixtures" / "parity" / "wav2lip.npz"


@pytest.fixture(scope="module")
def fixture() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as data:
        return {k: data[k] for k in data.files}


def _face_input(faces_u8: np.ndarray) -> torch.Tensor:
    """(B,96,96,6) uint8 -> (B,6,96,96) in [0,1] with the target's lower half zeroed."""
    face = torch.from_numpy(faces_u8).permute(0, 3, 1, 2).float() / 255.0
    face[:, :3, 48:] = 0.0
    return face


@pytest.mark.parametrize("module_prefix", [False, True])
def test_parity_with_official_through_official_file(
    tmp_path: Path, fixture: dict[str, np.ndarray], module_prefix: bool
) -> None:
    sd = fill_state_dict(Wav2Lip().state_dict(), gain=float(fixture["gain"]))
    path = tmp_path / "wav2lip.pth"
    torch.save(official_checkpoint_dict(sd, module_prefix=module_prefix), path)
    net = load_wav2lip(path, torch.device("cpu"), torch.float32)
    assert not net.training
    with torch.no_grad():
        out = net(torch.from_numpy(fixture["audio"]), _face_input(fixture["faces_u8"])).numpy()
    assert out.shape == (2, 3, 96, 96)
    ref = fixture["output"]
    assert float(ref.std()) > 0.05, "the fixture's output must be alive, not a constant"
    assert float(out.std()) > 0.05
    assert_close(out, ref, atol=1e-4, what="output")
    n = out.size
    assert_stat_close(float(out.astype(np.float64).sum()) / n, float(fixture["output_sum"]) / n,
                      magnitude=ref, ulps=32, what="output sum / n")

    # the comparison is sensitive: the same faces in the other channel order give another output
    swapped = fixture["faces_u8"][..., [2, 1, 0, 5, 4, 3]].copy()
    with torch.no_grad():
        other = net(torch.from_numpy(fixture["audio"]), _face_input(swapped)).numpy()
    assert float(np.abs(other - ref).max()) > 1e-2 * float(np.abs(ref).max())


def test_state_dict_layout_matches_the_official_files() -> None:
    sd = Wav2Lip().state_dict()
    assert len(sd) == 352  # key count of the official wav2lip.pth
    assert tuple(sd["face_encoder_blocks.0.0.conv_block.0.weight"].shape) == (16, 6, 7, 7)
    assert tuple(sd["output_block.1.weight"].shape) == (3, 32, 1, 1)
    params = sum(p.numel() for p in Wav2Lip().parameters())
    assert params == 36_298_035


def test_convert_strips_module_prefix_idempotently() -> None:
    t = torch.zeros(1)
    ckpt = {"state_dict": {"module.audio_encoder.0.conv_block.0.bias": t,
                           "output_block.1.bias": t},
            "optimizer": {"state": {}}, "global_step": 1, "global_epoch": 0}
    once = convert_wav2lip_state_dict(ckpt)
    assert sorted(once) == ["audio_encoder.0.conv_block.0.bias", "output_block.1.bias"]
    assert convert_wav2lip_state_dict(once) == once
    with pytest.raises(KeyError):
        convert_wav2lip_state_dict({"optimizer": {}, "global_step": 3})


def test_forward_rejects_5d_training_inputs() -> None:
    net = Wav2Lip().eval()
    with pytest.raises(ValueError, match="expected audio"):
        net(torch.zeros(1, 1, 1, 80, 16), torch.zeros(1, 6, 1, 96, 96))

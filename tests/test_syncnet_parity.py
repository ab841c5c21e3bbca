"""SyncNet: parity with the official code (network outputs, MFCC, the whole LSE scoring)."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.media.mfcc import mfcc
from pipeline.models.syncnet import SyncNet
from pipeline.quality.model import load_syncnet
from pipeline.quality.syncscore import score_crops
from tests.helpers.deterministic_weights import fill_state_dict
from tests.helpers.tolerance import assert_close

pytestmark = pytest.mark.parity

FIXTURE = Path(__file__).parent / "fixtures" / "parity" / "syncnet.npz"


@pytest.fixture(scope="module")
def fixture() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as data:
        return {k: data[k] for k in data.files}


def official_file(path: Path, gain: float) -> Path:
    """The deterministic weights saved as the official file is: an OrderedDict of tensors in
    torch's legacy (pre-zip) format, without the num_batches_tracked buffers it predates."""
    sd = fill_state_dict(SyncNet().state_dict(), gain)
    legacy = OrderedDict((k, v) for k, v in sd.items() if not k.endswith("num_batches_tracked"))
    torch.save(legacy, path, _use_new_zipfile_serialization=False)
    return path


@pytest.fixture(scope="module")
def net(fixture: dict[str, np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> SyncNet:
    path = official_file(tmp_path_factory.mktemp("syncnet") / "syncnet_v2.model",
                         float(fixture["gain"]))
    return load_syncnet(path)


def frames(fixture: dict[str, np.ndarray]) -> np.ndarray:
    return np.repeat(np.repeat(fixture["frames_low"], 8, axis=1), 8, axis=2)


def test_network_outputs_match_official(net: SyncNet, fixture: dict[str, np.ndarray]) -> None:
    assert not net.training
    crops = frames(fixture)
    n = len(fixture["im_feat"])
    clip = torch.from_numpy(crops).permute(3, 0, 1, 2).float()
    video = torch.stack([clip[:, i:i + 5] for i in range(n)])
    cc = torch.from_numpy(fixture["mfcc"].T.copy()).float()
    audio = torch.stack([cc[None, :, 4 * i:4 * i + 20] for i in range(n)])
    with torch.no_grad():
        im, au = net.forward_video(video).numpy(), net.forward_audio(audio).numpy()
    for ours, ref in ((im, fixture["im_feat"]), (au, fixture["cc_feat"])):
        assert float(ref.std()) > 1.0, "the fixture's embeddings must be alive"
        scale = float(np.abs(ref).max())
        assert float(np.abs(ours - ref).max()) <= 1e-5 * scale
    # sensitive: another frame order changes the embeddings far beyond the tolerance
    with torch.no_grad():
        other = net.forward_video(video.flip(2)).numpy()
    assert float(np.abs(other - fixture["im_feat"]).mean()) > 1.0


def test_mfcc_matches_python_speech_features(fixture: dict[str, np.ndarray]) -> None:
    np.testing.assert_allclose(mfcc(fixture["audio"]), fixture["mfcc"], atol=1e-9, rtol=0)
    cases = [k.removeprefix("mfcc_audio_") for k in fixture if k.startswith("mfcc_audio_")]
    assert len(cases) == 5
    for case in cases:
        ref = fixture[f"mfcc_out_{case}"]
        ours = mfcc(fixture[f"mfcc_audio_{case}"])
        assert ours.shape == ref.shape
        np.testing.assert_allclose(ours, ref, atol=1e-9, rtol=0)


def test_whole_scoring_matches_official(net: SyncNet, fixture: dict[str, np.ndarray]) -> None:
    score = score_crops(net, frames(fixture), fixture["audio"].astype(np.float64),
                        vshift=int(fixture["vshift"]))
    assert score.dists.shape == fixture["dists"].shape == (19, 31)
    # Distances are float32 sums over 1024-wide embeddings: they agree to a few tens of ulps of
    # their magnitude on every CPU kernel set (28 ulps measured under ATEN_CPU_CAPABILITY=default).
    assert_close(score.dists, fixture["dists"], what="distances", ulps=64, dtype=np.float32)
    assert_close(score.mdist, fixture["mdist"], what="mean distances", ulps=64, dtype=np.float32)
    assert score.offset == int(fixture["offset"])
    # confidence and its per-frame form are differences of such distances: the same bound
    slack = 2 * 64 * float(np.finfo(np.float32).eps) * float(np.abs(fixture["dists"]).max())
    assert score.confidence == pytest.approx(float(fixture["conf"]), abs=max(2e-3, slack))
    assert_close(score.min_dist, fixture["min_dist"], what="min distance", ulps=64,
                 dtype=np.float32)
    assert_close(score.framewise_conf, fixture["fconfm"], what="frame confidence",
                 atol=max(2e-3, slack))
    assert list(score.window_starts) == list(range(19))

"""The offset search on a constructed case whose answer is known, with no trained weights."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import InputError
from pipeline.models.syncnet import SyncNet
from pipeline.quality.syncscore import medfilt, needed_audio, score_crops, window_count
from tests.helpers import syncnet_constructed as constructed

N_FRAMES = 24


@pytest.fixture(scope="module")
def net() -> SyncNet:
    return constructed.constructed_syncnet()


def clip(k: int, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Video frames carry S[t + 20]; the audio carries S[m + 20 + k]: it leads by k frames."""
    sig = constructed.signal(N_FRAMES + 40, seed)
    frames = constructed.video(sig[20:20 + N_FRAMES])
    audio = constructed.audio(sig[20 + k:20 + k + N_FRAMES])
    return frames, audio


@pytest.mark.parametrize("k", [-6, 0, 4])
def test_offset_found_is_the_shift(net: SyncNet, k: int) -> None:
    frames, audio = clip(k)
    score = score_crops(net, frames, audio)
    assert score.offset == k
    n = window_count(N_FRAMES, len(audio))
    assert score.dists.shape == (n, 31)
    # at the best shift every window whose audio lies inside the clip matches (up to the int16
    # rounding of the audio); windows matched against the search's zero padding do not
    inside = [i for i in range(n) if 0 <= i - k < n]
    assert len(inside) == n - abs(k)
    assert float(score.dists[inside, 15 - k].max()) < 0.05
    assert score.confidence > 2.0


def test_subsampled_video_windows_find_the_same_offset(net: SyncNet) -> None:
    frames, audio = clip(3)
    full = score_crops(net, frames, audio)
    fast = score_crops(net, frames, audio, video_stride=4)
    assert fast.offset == full.offset == 3
    assert list(fast.window_starts) == list(range(0, full.dists.shape[0], 4))
    # (other batch compositions: float rounding of the convolutions differs in the last bits)
    np.testing.assert_allclose(fast.dists, full.dists[::4], rtol=0, atol=1e-4)
    # a sparse sample embeds only the audio windows its distances use, with the same result
    assert list(needed_audio(np.array([0, 18]), 19)) == list(range(19))
    assert list(needed_audio(np.array([0]), 19)) == list(range(16))
    sparse = score_crops(net, frames, audio, video_stride=25)
    np.testing.assert_allclose(sparse.dists, full.dists[:1], rtol=0, atol=1e-4)


def test_unrelated_audio_is_not_confident(net: SyncNet) -> None:
    frames, _ = clip(0)
    _, other = clip(0, seed=99)
    matched = score_crops(net, *clip(0))
    unmatched = score_crops(net, frames, other)
    assert unmatched.min_dist > 20 * matched.min_dist + 1.0


def test_too_short_clip_is_a_typed_error(net: SyncNet) -> None:
    frames, audio = clip(0)
    with pytest.raises(InputError, match="too short"):
        score_crops(net, frames[:5], audio)
    with pytest.raises(InputError, match="too short"):
        score_crops(net, frames, audio[: 640 * 5])


def test_medfilt_is_scipy_medfilt() -> None:
    x = np.array([5.0, 1.0, 9.0, 2.0, 7.0, 3.0, 8.0, 4.0, 6.0, 0.0, 10.0])
    # scipy.signal.medfilt(x, 9): zero padding of 4 at each end
    expected = [1.0, 2.0, 3.0, 4.0, 5.0, 4.0, 6.0, 4.0, 4.0, 3.0, 0.0]
    np.testing.assert_array_equal(medfilt(x, 9), expected)

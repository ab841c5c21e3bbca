"""Lip-sync scores as the official SyncNet evaluation computes them: LSE-C, LSE-D and the offset.

Follows ``SyncNetInstance.evaluate`` (joonson/syncnet_python, and its copy in Wav2Lip's
``evaluation/scores_LSE``) step by step:

* video at 25 fps, audio 16 kHz; ``min_length = min(frames, floor(samples / 640))`` and the
  windows start at frames ``0 .. min_length - 6`` (``lastframe = min_length - 5``, exclusive:
  the official code leaves out the last possible window, and so do we);
* window ``i``: face crops ``i .. i+4`` (B,3,5,224,224, BGR 0..255) and MFCC columns
  ``4i .. 4i+19`` (B,1,13,20) of the whole clip's MFCC (``pipeline.media.mfcc``);
* offset search (``calc_pdist``, vshift 15): the audio embeddings padded with 15 zero rows at each
  end; for every video window the distances ``pairwise_distance`` (eps 1e-6) to the 31 audio
  windows ``i-15 .. i+15``; ``mdist`` their mean over windows per shift;
* ``offset = vshift - argmin(mdist)`` (frames; positive: the audio comes later than the lips),
  ``LSE-D = min(mdist)``, ``LSE-C = median(mdist) - min(mdist)``;
* framewise confidence ``median(mdist) - dist_i[argmin]``, median-filtered over 9 windows with
  zero padding (``scipy.signal.medfilt``): what ``facedrop score --plot`` draws.

Speed option (not in the official code): ``video_stride`` > 1 embeds every n-th video window
only; each sampled window's 31 distances are still exact, the mean runs over fewer windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.errors import InputError
from pipeline.media.mfcc import mfcc as compute_mfcc
from pipeline.models.syncnet import MFCC_PER_FRAME, MFCC_WINDOW, WINDOW_FRAMES, SyncNet

FPS = 25  # the official evaluation's fixed rate (its run_pipeline re-encodes at 25 fps)
SAMPLES_PER_FRAME = 640  # 16000 / 25
VSHIFT = 15
BATCH = 20  # the official batch size (eval-mode BatchNorm: batching does not change results)
MEDFILT_KERNEL = 9

Crops = Sequence[np.ndarray] | np.ndarray  # 224x224x3 BGR uint8 crops indexed by frame


@dataclass(frozen=True)
class SyncScore:
    """The official evaluation's results for one clip."""

    offset: int  # frames; official sign
    confidence: float  # LSE-C, higher is better
    min_dist: float  # LSE-D, lower is better
    mdist: np.ndarray  # (2*vshift+1,) mean distance per shift
    dists: np.ndarray  # (n_windows, 2*vshift+1)
    framewise_conf: np.ndarray  # (n_windows,) median-filtered confidence
    window_starts: np.ndarray  # (n_windows,) first frame of each scored window
    fps: float = FPS

    @property
    def offset_seconds(self) -> float:
        return self.offset / self.fps


def window_count(n_frames: int, n_samples: int) -> int:
    """How many windows the official code scores: ``min(frames, samples // 640) - 5``."""
    return max(0, min(n_frames, n_samples // SAMPLES_PER_FRAME) - WINDOW_FRAMES)


def medfilt(x: np.ndarray, kernel: int = MEDFILT_KERNEL) -> np.ndarray:
    """``scipy.signal.medfilt`` for 1-D input: an odd kernel, zero padding at both ends."""
    half = kernel // 2
    padded = np.pad(np.asarray(x), half)
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, kernel), axis=1)


def calc_pdist(feat1: torch.Tensor, feat2: torch.Tensor, vshift: int = VSHIFT,
               rows: np.ndarray | None = None) -> torch.Tensor:
    """(len(rows), 2*vshift+1): official ``calc_pdist`` for video rows ``rows`` (default all).

    ``feat1[j]`` is the video embedding of window ``rows[j]``; ``feat2`` holds every window's
    audio embedding.
    """
    rows = np.arange(len(feat1)) if rows is None else rows
    win = 2 * vshift + 1
    feat2p = F.pad(feat2, (0, 0, vshift, vshift))
    out = [F.pairwise_distance(feat1[[j], :].repeat(win, 1), feat2p[int(i):int(i) + win, :])
           for j, i in enumerate(rows)]
    return torch.stack(out) if out else torch.zeros((0, win))


def offset_search(dists: torch.Tensor, vshift: int = VSHIFT) -> tuple[int, float, float, np.ndarray,
                                                                       np.ndarray]:
    """(offset, LSE-C, LSE-D, mdist, framewise confidence) from the distance table."""
    mdist = torch.mean(dists.t().contiguous(), 1)  # the official stack(dists, 1): same sum order
    minval, minidx = torch.min(mdist, 0)
    median = torch.median(mdist)
    fconf = (median - dists[:, minidx]).numpy()
    return (vshift - int(minidx), float(median - minval), float(minval), mdist.numpy(),
            medfilt(fconf))


def video_windows(crops_bgr: Crops, starts: np.ndarray) -> torch.Tensor:
    """(N,3,5,224,224) float windows from the 224x224x3 BGR uint8 crops (indexed by frame)."""
    windows = [np.stack([crops_bgr[j] for j in range(int(i), int(i) + WINDOW_FRAMES)])
               for i in starts]
    return torch.from_numpy(np.stack(windows)).permute(0, 4, 1, 2, 3).float()


def audio_windows(mfcc: np.ndarray, starts: np.ndarray) -> torch.Tensor:
    """(N,1,13,20) windows of the (n, 13) MFCC, as the official ``cct[:,:,:,4i:4i+20]``."""
    cc = torch.from_numpy(np.ascontiguousarray(mfcc.T)).float()
    return torch.stack([cc[None, :, MFCC_PER_FRAME * int(i):MFCC_PER_FRAME * int(i) + MFCC_WINDOW]
                        for i in starts])


@torch.no_grad()
def embed(net: SyncNet, crops_bgr: Crops, mfcc: np.ndarray, video_starts: np.ndarray,
          audio_starts: np.ndarray, batch: int = BATCH) -> tuple[torch.Tensor, torch.Tensor]:
    """Video embeddings of ``video_starts`` windows and audio embeddings of ``audio_starts``."""
    device = next(net.parameters()).device
    vid = [net.forward_video(video_windows(crops_bgr, video_starts[k:k + batch]).to(device)).cpu()
           for k in range(0, len(video_starts), batch)]
    aud = [net.forward_audio(audio_windows(mfcc, audio_starts[k:k + batch]).to(device)).cpu()
           for k in range(0, len(audio_starts), batch)]
    return torch.cat(vid), torch.cat(aud)


def needed_audio(video_starts: np.ndarray, n: int, vshift: int = VSHIFT) -> np.ndarray:
    """The audio windows the distances of ``video_starts`` use: ``i - vshift .. i + vshift``."""
    need = np.zeros(n, bool)
    for i in video_starts:
        need[max(0, int(i) - vshift):int(i) + vshift + 1] = True
    return np.flatnonzero(need)


def score_crops(net: SyncNet, crops_bgr: Crops, samples_int16: np.ndarray,
                vshift: int = VSHIFT, video_stride: int = 1,
                video_starts: np.ndarray | None = None) -> SyncScore:
    """Score 25 fps face crops (each 224x224x3 BGR uint8) against 16 kHz int16-valued audio.

    With ``video_stride`` > 1, or an explicit list of ``video_starts`` (window first frames),
    only those windows' crops are read (``crops_bgr`` may be lazy) and only the audio windows
    their distances use are embedded. Raises ``InputError`` when the clip is too short for one
    window (fewer than 6 frames or 0.24 s of audio).
    """
    n = window_count(len(crops_bgr), len(samples_int16))
    if n < 1:
        raise InputError(
            f"the clip is too short to score lip sync ({len(crops_bgr)} frames, "
            f"{len(samples_int16) / 16000:.2f} s of audio; at least 6 frames and 0.24 s needed)",
            fix="score a longer video")
    mfcc = compute_mfcc(samples_int16)
    all_starts = np.arange(n)
    if video_starts is None:
        video_starts = all_starts[:: max(1, video_stride)]
    else:
        video_starts = np.unique(np.clip(np.asarray(video_starts, np.int64), 0, n - 1))
    audio_starts = needed_audio(video_starts, n, vshift)
    im_feat, cc_some = embed(net, crops_bgr, mfcc, video_starts, audio_starts)
    cc_feat = torch.zeros((n, cc_some.shape[1]), dtype=cc_some.dtype)  # unused rows stay 0
    cc_feat[torch.from_numpy(audio_starts)] = cc_some
    dists = calc_pdist(im_feat, cc_feat, vshift, rows=video_starts)
    offset, conf, min_dist, mdist, fconf = offset_search(dists, vshift)
    return SyncScore(offset=offset, confidence=conf, min_dist=min_dist, mdist=mdist,
                     dists=dists.numpy(), framewise_conf=fconf, window_starts=video_starts)

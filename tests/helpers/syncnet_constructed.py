"""A SyncNet whose weights are built by hand so that both embeddings are the same known function
of a shared per-frame signal, and a clip (frames + audio) that carries that signal.

Signal: one value ``b_t`` per video frame (12..22). Both streams embed window ``i`` as the vector
``(sum_{q=0..3} max(b_{i+q}, b_{i+q+1}) - 76, 0, ..., 0)``:

* video: frame ``t`` is a uniform grey of level ``25.5 * (b_t - 12)``; the first 3-D conv reads
  ``b_q`` (channels 0-4, a bias of 12) and ``relu(b_{q+1} - b_q)`` (channels 5-8) of the window's
  five frames; every later layer passes those channels through (centre taps, identity
  BatchNorm), and the last conv adds ``b_q + relu(b_{q+1} - b_q) = max(b_q, b_{q+1})``, q < 4.
* audio: frame ``t`` holds a 400-sample tone burst exactly under MFCC column ``4t + 1`` (samples
  ``640t+160 .. 640t+559``, silence around it) with the amplitude that makes that column's log
  energy (MFCC row 0) equal ``b_t``; every other column overlaps less of a burst, so has less
  energy. The network keeps row 0 only (a constant channel and the conv's zero padding single out
  the first row), and its two max-pools then give, per window, ``max(E_{i+q}, E_{i+q+1})`` over
  the MFCC columns ``4q .. 4q+6``; the last conv sums the four.

So the embeddings are equal where audio and video carry the same frames of the signal, which is
what the offset search must find, with no trained weights involved.
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.media.mfcc import mfcc
from pipeline.models.syncnet import SyncNet

GREY_SCALE = 25.5
BASE = 12.0
BURST_START, BURST_LEN, FRAME = 160, 400, 640
TONE_HZ = 440.0
CENTRE = 76.0  # about the mean of the sum of four maxima of the signal
_BIG = 1e4  # larger than any |MFCC|: pushes rows below the first to zero


def _p(seq: torch.nn.Module, idx: int, name: str = "weight") -> torch.Tensor:
    """A layer's parameter, typed (a ``Sequential`` item's ``.weight`` is untyped for mypy)."""
    param = getattr(seq[idx] if isinstance(seq, torch.nn.Sequential) else seq, name)
    assert isinstance(param, torch.Tensor)
    return param


def _identity_bn(net: SyncNet) -> None:
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            assert m.running_var is not None and m.running_mean is not None
            m.weight.data.fill_(1.0)
            m.bias.data.zero_()
            m.running_mean.zero_()
            m.running_var.fill_(1.0 - m.eps)  # var + eps == 1: exactly the identity


def constructed_syncnet() -> SyncNet:
    """The hand-built network described above, in eval mode."""
    net = SyncNet()
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        _identity_bn(net)
        lip = net.netcnnlip
        w0 = _p(lip, 0)  # (96, 3, 5, 7, 7): centre tap of each frame
        for q in range(5):
            w0[q, :, q, 3, 3] = 1.0 / (3 * GREY_SCALE)
            _p(lip, 0, "bias")[q] = BASE
        for q in range(4):
            w0[5 + q, :, q + 1, 3, 3] = 1.0 / (3 * GREY_SCALE)
            w0[5 + q, :, q, 3, 3] = -1.0 / (3 * GREY_SCALE)
        for idx in (4, 8, 11, 14):  # (1, k, k) convs: centre tap identity on channels 0-8
            w = _p(lip, idx)
            for c in range(9):
                w[c, c, 0, w.shape[3] // 2, w.shape[4] // 2] = 1.0
        last = _p(lip, 18)  # (512, 256, 1, 6, 6): spatial mean of b_q + relu(b_{q+1} - b_q)
        for c in (0, 1, 2, 3, 5, 6, 7, 8):
            last[0, c] = 1.0 / 36.0

        aud = net.netcnnaud
        _p(aud, 0)[0, 0, 1, 1] = 1.0  # channel 0: the MFCC itself
        _p(aud, 0, "bias")[1] = 1.0  # channel 1: a constant 1 (zero in the next conv's padding)
        w4 = _p(aud, 4)
        w4[0, 0, 1, 1] = 1.0
        w4[0, 1, 0, 1] = -_BIG  # the row above exists everywhere but in the first row
        for idx in (8, 11, 14):
            _p(aud, idx)[0, 0, 1, 1] = 1.0
        _p(aud, 18)[0, 0, 0, :] = 1.0  # (512, 256, 5, 4): sum the first row's 4 columns

        for head in (net.netfcaud, net.netfclip):
            _p(head, 0)[0, 0] = 1.0
            _p(head, 3)[0, 0] = 1.0
            _p(head, 3, "bias")[0] = -CENTRE  # centred: the search's zero padding is no shortcut
    return net.eval()


def _burst(amplitude: float) -> np.ndarray:
    n = np.arange(BURST_LEN)
    return amplitude * np.sin(2 * np.pi * TONE_HZ * n / 16000.0)


def _unit_log_energy() -> float:
    frame = np.zeros(FRAME)
    frame[BURST_START:BURST_START + BURST_LEN] = _burst(1000.0)
    return float(mfcc(frame)[1, 0]) - 2 * np.log(1000.0)


def signal(n_frames: int, seed: int) -> np.ndarray:
    """A random per-frame signal on the grey levels the video can show exactly."""
    levels = np.random.default_rng(seed).integers(0, 256, n_frames)
    return BASE + levels / GREY_SCALE


def video(sig: np.ndarray) -> np.ndarray:
    """(T, 224, 224, 3) uint8 uniform frames carrying ``sig``."""
    grey = np.round((sig - BASE) * GREY_SCALE).astype(np.uint8)
    return np.broadcast_to(grey[:, None, None, None], (len(sig), 224, 224, 3)).copy()


def audio(sig: np.ndarray) -> np.ndarray:
    """int16-valued 16 kHz audio whose burst in frame t has log energy ``sig[t]``."""
    unit = _unit_log_energy()
    out = np.zeros(len(sig) * FRAME)
    for t, value in enumerate(sig):
        amp = float(np.exp((value - unit) / 2))
        out[t * FRAME + BURST_START:t * FRAME + BURST_START + BURST_LEN] = _burst(amp)
    return np.round(out)

"""SyncNet's audio features: ``python_speech_features.mfcc(audio, 16000)`` in numpy.

The official SyncNet evaluation reads the audio as 16-bit integers (``scipy.io.wavfile.read`` of
a ``pcm_s16le`` file) and calls ``python_speech_features.mfcc`` (0.6) with every default:
25 ms frames every 10 ms (400 / 160 samples, zero-padded at the end so the last frame is
whole), no window, preemphasis 0.97, 512-point power spectrum ``|rfft|^2 / 512``, 26 triangular
mel filters from 0 Hz to 8 kHz on FFT bins ``floor(513 * mel2hz(m) / 16000)``, log, orthonormal
DCT-II, the first 13 cepstra, a sinusoidal lifter L=22, and cepstrum 0 replaced by the log of
the frame's total energy. Zero energies become float eps before the log, as there.

Done here in ~40 lines of numpy instead of depending on python_speech_features (which also
pulls in scipy for the DCT); ``tests/test_mfcc.py`` checks it against the package's output.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

SAMPLE_RATE = 16000
FRAME_LEN = 400  # 0.025 s
FRAME_STEP = 160  # 0.01 s: 100 MFCC frames per second
NFFT = 512
N_FILTERS = 26
N_CEPSTRA = 13
PREEMPHASIS = 0.97
CEP_LIFTER = 22
_EPS = np.finfo(float).eps


def int16_samples(samples: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] as the integer values ``wavfile.read`` gives for pcm_s16le."""
    return np.clip(np.round(np.asarray(samples, np.float64) * 32768.0), -32768, 32767)


def _hz2mel(hz: np.ndarray) -> np.ndarray:
    return 2595 * np.log10(1 + hz / 700.0)


def _mel2hz(mel: np.ndarray) -> np.ndarray:
    return 700 * (10 ** (mel / 2595.0) - 1)


@lru_cache(maxsize=1)
def _filterbank() -> np.ndarray:
    """(26, 257) triangular mel filters, the package's ``get_filterbanks`` defaults."""
    mels = np.linspace(_hz2mel(np.array(0.0)), _hz2mel(np.array(SAMPLE_RATE / 2)), N_FILTERS + 2)
    bins = np.floor((NFFT + 1) * _mel2hz(mels) / SAMPLE_RATE)
    fb = np.zeros((N_FILTERS, NFFT // 2 + 1))
    for j in range(N_FILTERS):
        lo, mid, hi = bins[j], bins[j + 1], bins[j + 2]
        for i in range(int(lo), int(mid)):
            fb[j, i] = (i - lo) / (mid - lo)
        for i in range(int(mid), int(hi)):
            fb[j, i] = (hi - i) / (hi - mid)
    return fb


@lru_cache(maxsize=1)
def _dct_lifter() -> np.ndarray:
    """(26, 13): orthonormal DCT-II (first 13 rows) times the lifter, as one matrix."""
    n = np.arange(N_FILTERS)
    k = np.arange(N_CEPSTRA)[:, None]
    dct = np.cos(np.pi * k * (2 * n + 1) / (2 * N_FILTERS)) * np.sqrt(2.0 / N_FILTERS)
    dct[0] *= np.sqrt(0.5)
    lift = 1 + (CEP_LIFTER / 2.0) * np.sin(np.pi * np.arange(N_CEPSTRA) / CEP_LIFTER)
    return (dct * lift[:, None]).T


def mfcc(samples16k: np.ndarray) -> np.ndarray:
    """(n_frames, 13) MFCC of 16 kHz mono audio as int16-valued numbers (``int16_samples``).

    ``n_frames = 1 + ceil((len - 400) / 160)`` (1 for audio shorter than a frame).
    """
    sig = np.asarray(samples16k, np.float64).ravel()
    if sig.size == 0:
        return np.zeros((0, N_CEPSTRA))
    sig = np.append(sig[0], sig[1:] - PREEMPHASIS * sig[:-1])
    n = 1 if sig.size <= FRAME_LEN else 1 + int(np.ceil((sig.size - FRAME_LEN) / FRAME_STEP))
    padded = np.concatenate([sig, np.zeros((n - 1) * FRAME_STEP + FRAME_LEN - sig.size)])
    idx = np.arange(FRAME_LEN)[None, :] + FRAME_STEP * np.arange(n)[:, None]
    pspec = np.square(np.abs(np.fft.rfft(padded[idx], NFFT))) / NFFT
    energy = pspec.sum(axis=1)
    energy = np.where(energy == 0, _EPS, energy)
    feat = pspec @ _filterbank().T
    feat = np.where(feat == 0, _EPS, feat)
    out = np.log(feat) @ _dct_lifter()
    out[:, 0] = np.log(energy)
    return out

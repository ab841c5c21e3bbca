"""The Wav2Lip mel spectrogram, exactly as the official ``audio.melspectrogram``, without librosa.

Every constant is the official one (Rudrabha/Wav2Lip ``hparams.py`` and ``audio.py``):
sample_rate 16000, preemphasis 0.97 (``scipy.signal.lfilter([1, -0.97], [1], wav)``),
``librosa.stft(n_fft=800, hop_length=200, win_length=800)`` with the periodic Hann window and
center=True with REFLECT padding (librosa 0.7, which Wav2Lip pins; librosa >= 0.9 pads with zeros
by default and changes the first and last two columns), magnitude (not power), 80 Slaney mel
bands 55-7600 Hz with Slaney area normalisation (``librosa.filters.mel`` defaults),
``20*log10(max(1e-5, m)) - ref_level_db 20``, symmetric clipping normalisation to +-4 with
min_level_db -100. The result has ``1 + len(wav) // 200`` columns: 80 per second.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import numpy as np

SAMPLE_RATE = 16000
N_FFT = 800
HOP = 200
WIN = 800
N_MELS = 80
FMIN = 55.0
FMAX = 7600.0
PREEMPHASIS = 0.97
REF_LEVEL_DB = 20.0
MIN_LEVEL_DB = -100.0
MAX_ABS_VALUE = 4.0
MEL_STEP = 16  # mel columns per video frame (inference.py mel_step_size)
MEL_PER_SECOND = SAMPLE_RATE / HOP  # the "80" in inference.py's 80./fps
# The normalised value of digital silence: max(1e-5, 0) -> -100 dB - 20 -> clipped to -4.
SILENCE = -MAX_ABS_VALUE

_BLOCK = 4096  # STFT frames per block: bounds memory for long recordings


def mel_spectrogram(samples16k: np.ndarray) -> np.ndarray:
    """The normalised Wav2Lip mel spectrogram of 16 kHz mono audio: (80, 1 + n // 200) float32.

    Finite for any finite input, including digital silence (all values then -4).
    """
    y = np.asarray(samples16k, dtype=np.float64).reshape(-1)
    if y.size == 0:
        raise ValueError("mel_spectrogram needs at least one sample")
    if not np.isfinite(y).all():
        raise ValueError("audio samples contain NaN or infinity")
    emphasised = np.empty_like(y)
    emphasised[0] = y[0]  # lfilter starts from a zero state: y[-1] = 0
    emphasised[1:] = y[1:] - PREEMPHASIS * y[:-1]
    magnitude = _stft_magnitude(emphasised)  # (401, T)
    mel = _mel_basis() @ magnitude  # (80, T)
    db = 20.0 * np.log10(np.maximum(10.0 ** (MIN_LEVEL_DB / 20.0), mel)) - REF_LEVEL_DB
    scaled = (2 * MAX_ABS_VALUE) * ((db - MIN_LEVEL_DB) / -MIN_LEVEL_DB) - MAX_ABS_VALUE
    return np.clip(scaled, -MAX_ABS_VALUE, MAX_ABS_VALUE).astype(np.float32)


def mel_chunks(mel: np.ndarray, fps: Fraction | float, n_frames: int, first: int = 0) -> np.ndarray:
    """The (n_frames, 80, 16) float32 mel windows for video frames ``first .. first+n_frames-1``.

    Frame i gets the 16 columns from ``int(i * (80. / fps))``, the official float expression
    (``inference.py``: ``mel_idx_multiplier = 80./fps``; ``int(i * mel_idx_multiplier)``), so
    indices match the official code at any fps, including 30000/1001.

    Unlike the official loop, which stops at the first window that runs past the end and repeats
    the last 16 columns, every frame gets a window: columns past the end of the audio are filled
    with the normalised silence value -4, because what follows the recording IS silence, and -4
    is exactly what the mel of zero samples gives. Replicating the last column instead would
    tell the network a sound is still going on and hold the mouth open after the voice stops.
    """
    if mel.ndim != 2 or mel.shape[0] != N_MELS:
        raise ValueError(f"mel must be (80, T), got {mel.shape}")
    step = MEL_PER_SECOND / float(fps)
    total = mel.shape[1]
    out = np.full((n_frames, N_MELS, MEL_STEP), SILENCE, dtype=np.float32)
    for k in range(n_frames):
        start = int((first + k) * step)
        stop = min(start + MEL_STEP, total)
        if stop > start:
            out[k, :, : stop - start] = mel[:, start:stop]
    return out


def _stft_magnitude(y: np.ndarray) -> np.ndarray:
    """|STFT| like librosa.stft(center=True, pad_mode='reflect', window='hann'): (401, T)."""
    pad = N_FFT // 2
    # numpy reflects repeatedly when the signal is shorter than the pad; a 1-sample signal
    # cannot be reflected, and librosa would reject it anyway: pad that with zeros.
    padded = np.pad(y, pad, mode="reflect" if y.size > 1 else "constant")
    n_frames = 1 + (padded.size - N_FFT) // HOP
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:n_frames]
    window = _hann()
    out = np.empty((N_FFT // 2 + 1, n_frames), dtype=np.float64)
    for start in range(0, n_frames, _BLOCK):
        block = frames[start : start + _BLOCK] * window  # (B, 800)
        out[:, start : start + block.shape[0]] = np.abs(np.fft.rfft(block, axis=1)).T
    return out


@lru_cache(maxsize=1)
def _hann() -> np.ndarray:
    """Periodic Hann window (scipy.signal.get_window('hann', 800), fftbins=True)."""
    n = np.arange(WIN)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / WIN)


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above."""
    f_sp = 200.0 / 3
    min_log_mel = 1000.0 / f_sp
    logstep = np.log(6.4) / 27.0
    hz = np.asarray(hz, dtype=np.float64)
    return np.where(hz >= 1000.0, min_log_mel + np.log(np.maximum(hz, 1e-10) / 1000.0) / logstep,
                    hz / f_sp)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    f_sp = 200.0 / 3
    min_log_mel = 1000.0 / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(mel >= min_log_mel, 1000.0 * np.exp(logstep * (mel - min_log_mel)), mel * f_sp)


@lru_cache(maxsize=1)
def _mel_basis() -> np.ndarray:
    """librosa.filters.mel(sr=16000, n_fft=800, n_mels=80, fmin=55, fmax=7600): (80, 401).

    Triangles between consecutive Slaney-spaced edge frequencies, each scaled by 2 / bandwidth
    (norm='slaney', equal area). librosa builds it in float32; we round the same way.
    """
    fft_hz = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(FMIN), _hz_to_mel(FMAX), N_MELS + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32).astype(np.float64)

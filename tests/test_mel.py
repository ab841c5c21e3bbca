"""The Wav2Lip mel spectrogram against numbers from the official audio.py (librosa, reflect pad).

tests/fixtures/mel_reference.npz holds only numbers: the input signals, the official mel of each,
and the chunk start columns of the official inference loop (its ``source`` field says how they
were made). No official code is stored or run here.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from pipeline.media.audio import load_audio
from pipeline.media.mel import mel_chunks, mel_spectrogram

# numeric parity: CI runs these again under another ATEN_CPU_CAPABILITY
pytestmark = pytest.mark.parity

REFERENCE = Path(__file__).parent / "fixtures" / "mel_reference.npz"


@pytest.fixture(scope="module")
def ref() -> dict[str, np.ndarray]:
    with np.load(REFERENCE) as data:
        return {k: data[k] for k in data.files}


@pytest.mark.parametrize("signal", ["synthetic", "speech"])
def test_mel_equals_official(ref: dict[str, np.ndarray], signal: str) -> None:
    samples = ref["synthetic"] if signal == "synthetic" else ref["speech16k"]
    mel = mel_spectrogram(samples)
    expected = ref[f"mel_{signal}"]
    assert mel.dtype == np.float32
    assert mel.shape == expected.shape == (80, 1 + samples.size // 200)
    np.testing.assert_allclose(mel, expected, rtol=0, atol=1e-5)
    # The signals exercise the whole range, not only the clipped floor.
    assert expected.max() > 1.0 and np.ptp(expected) > 4.0


def test_speech_decodes_to_the_reference_samples(ref: dict[str, np.ndarray], speech_path) -> None:
    """The speech reference was cut from our own 16 kHz decode of the example recording."""
    samples = load_audio(speech_path).samples[: ref["speech16k"].size]
    np.testing.assert_allclose(samples, ref["speech16k"], rtol=0, atol=1e-4)


def test_silence_and_tiny_signals_are_finite(ref: dict[str, np.ndarray]) -> None:
    silent = mel_spectrogram(np.zeros(16000, np.float32))
    assert silent.shape == (80, 81)
    assert np.all(silent == -4.0)
    np.testing.assert_array_equal(silent[:, :3], ref["silence_mel"])
    for n in (1, 2, 150, 401):  # shorter than the reflect pad of 400 samples
        mel = mel_spectrogram(np.full(n, 1e-3, np.float32))
        assert mel.shape == (80, 1 + n // 200)
        assert np.isfinite(mel).all()
    with pytest.raises(ValueError, match="NaN"):
        mel_spectrogram(np.array([0.0, np.nan]))


@pytest.mark.parametrize(
    ("name", "fps"), [("25", 25), ("29_97", Fraction(30000, 1001)), ("30", 30.0), ("60", 60)]
)
def test_chunks_start_where_the_official_loop_starts(
    ref: dict[str, np.ndarray], name: str, fps: Fraction | float
) -> None:
    official = ref[f"official_starts_fps{name}"]
    n_cols = 1 + 5 * 16000 // 200
    # A mel whose every column holds its own index shows where each chunk starts.
    mel = np.tile(np.arange(n_cols, dtype=np.float32), (80, 1))
    # The official loop's last chunk is a fallback (the last 16 columns); the others are exact.
    n_regular = official.size - 1
    chunks = mel_chunks(mel, fps, n_regular)
    assert chunks.shape == (n_regular, 80, 16) and chunks.dtype == np.float32
    np.testing.assert_array_equal(chunks[:, 0, 0], official[:-1])
    np.testing.assert_array_equal(chunks[:, 5, :], official[:-1, None] + np.arange(16))


def test_every_frame_gets_a_full_chunk_padded_with_silence() -> None:
    mel = np.zeros((80, 101), np.float32)  # 1.25 s of audio
    chunks = mel_chunks(mel, 25, 40)  # 1.6 s of video: the tail is past the audio
    assert chunks.shape == (40, 80, 16)
    start = int(30 * (80 / 25))  # frame 30 starts at column 96: 5 real columns, then silence
    assert start == 96
    assert np.all(chunks[30, :, :5] == 0.0) and np.all(chunks[30, :, 5:] == -4.0)
    assert np.all(chunks[35] == -4.0)
    # A window into the middle of a long clip is the same as the matching slice of the whole.
    tail = mel_chunks(mel, 25, 10, first=25)
    np.testing.assert_array_equal(tail, chunks[25:35])

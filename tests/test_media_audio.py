"""Audio decoding: every accepted format gives the same 16 kHz mono samples; bad files are named."""

from __future__ import annotations

import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.errors import InputError
from pipeline.media.audio import load_audio
from tests.helpers.tolerance import assert_close

RATE = 22050  # the example recording's own rate: every format resamples it to 16 kHz


def _write_audio(path: Path, samples: np.ndarray, rate: int, codec: str, fmt: str,
                 layout: str = "mono") -> None:
    """Encode float samples (channels, n) in [-1, 1] with PyAV: the way a user's app would."""
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        ctx = stream.codec_context
        frame_format = ctx.format.name if ctx.format is not None else "fltp"
        if codec in ("aac", "libmp3lame", "libopus"):
            stream.bit_rate = 128_000
        pcm = samples if ctx.format is None or ctx.format.is_planar else samples.T.reshape(1, -1)
        if frame_format.startswith("s16"):
            pcm = np.round(pcm * 32767).astype(np.int16)
        elif frame_format.startswith("s32"):
            pcm = np.round(pcm * 2147483647).astype(np.int32)
        else:
            pcm = pcm.astype(np.float32)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm), format=frame_format,
                                           layout=layout)
        frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


@pytest.fixture(scope="module")
def speech(speech_path: Path) -> np.ndarray:
    """Two seconds of the real recording at its own 22.05 kHz, as (1, n) float."""
    with av.open(str(speech_path)) as src:
        chunks = [f.to_ndarray() for f in src.decode(audio=0)]
    pcm = np.concatenate(chunks, axis=1).astype(np.float64) / 32768.0
    return pcm[:, RATE // 2 : RATE // 2 + 2 * RATE]


def _aligned_match(ref: np.ndarray, got: np.ndarray, max_lag: int = 2000) -> tuple[float, int]:
    """Correlation of ``got`` with ``ref`` at the best lag (codec priming delays the start)."""
    n = min(ref.size, got.size) - max_lag
    size = 1 << int(np.ceil(np.log2(n + got.size)))
    xcorr = np.fft.irfft(np.fft.rfft(got, size) * np.conj(np.fft.rfft(ref[:n], size)), size)
    lag = int(np.argmax(xcorr[:max_lag]))
    a, b = ref[:n], got[lag : lag + n]
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))), lag


CASES = [
    ("wav", "pcm_s16le", "wav", RATE),
    ("flac", "flac", "flac", RATE),
    ("mp3", "libmp3lame", "mp3", RATE),
    ("m4a", "aac", "ipod", RATE),
    ("aac", "aac", "adts", RATE),
    ("ogg", "libopus", "ogg", 48000),  # Opus runs at 48 kHz only
]


@pytest.mark.parametrize(("ext", "codec", "fmt", "rate"), CASES)
def test_every_format_decodes_to_the_same_samples(tmp_path: Path, speech: np.ndarray, ext: str,
                                                  codec: str, fmt: str, rate: int) -> None:
    reference = tmp_path / "reference.wav"
    _write_audio(reference, speech, RATE, "pcm_s16le", "wav")
    ref = load_audio(reference)
    assert ref.sample_rate == 16000 and ref.samples.dtype == np.float32
    assert ref.duration == pytest.approx(2.0, abs=1e-9)
    assert ref.samples.size == pytest.approx(32000, abs=2)

    pcm = speech
    if rate != RATE:  # Opus: hand it the same speech at 48 kHz
        pcm = np.interp(np.arange(int(2 * rate)) * RATE / rate, np.arange(speech.shape[1]),
                        speech[0])[None]
    path = tmp_path / f"voice.{ext}"
    _write_audio(path, pcm, rate, codec, fmt)
    got = load_audio(path)
    assert got.samples.dtype == np.float32 and got.samples.ndim == 1
    # Containers that record priming and padding (MP4 edit lists, LAME/Xing, Ogg pre-skip) give
    # the exact length; raw ADTS .aac cannot say, so it keeps a frame or two of codec padding.
    assert got.duration == pytest.approx(2.0, abs=0.1 if ext == "aac" else 1e-3)
    assert got.samples.size == pytest.approx(got.duration * 16000, abs=2)
    corr, lag = _aligned_match(ref.samples.astype(np.float64), got.samples.astype(np.float64))
    assert corr > 0.99, (ext, corr, lag)
    if ext in ("wav", "flac"):  # lossless: identical samples
        assert_close(got.samples, ref.samples, ulps=16, dtype=np.float32, what=f"{ext} samples")


def test_stereo_is_averaged_like_librosa(tmp_path: Path, speech: np.ndarray) -> None:
    mono_path, stereo_path = tmp_path / "mono.wav", tmp_path / "stereo.wav"
    _write_audio(mono_path, 0.75 * speech, RATE, "pcm_f32le", "wav")
    _write_audio(stereo_path, np.vstack([speech, 0.5 * speech]), RATE, "pcm_f32le", "wav",
                 layout="stereo")
    mono, stereo = load_audio(mono_path), load_audio(stereo_path)
    assert stereo.duration == mono.duration
    assert_close(stereo.samples, mono.samples, ulps=8, dtype=np.float32, what="averaged stereo")


def test_duration_is_the_original_stream(speech_path: Path) -> None:
    audio = load_audio(speech_path)
    assert audio.duration == pytest.approx(129924 / 22050, abs=1e-9)  # the file's sample count
    assert audio.samples.size == pytest.approx(audio.duration * 16000, abs=2)
    assert audio.path == speech_path


@pytest.mark.parametrize("limit", [2.0, 5.5])  # rejected from the header / while decoding
def test_too_long_is_rejected(speech_path: Path, limit: float) -> None:
    with pytest.raises(InputError, match=f"5.9 s long; the limit is {limit:g} s") as info:
        load_audio(speech_path, max_seconds=limit)
    assert "max_audio_seconds" in info.value.fix


def _video_only(path: Path) -> None:
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def test_bad_audio_files_name_the_file_and_the_fix(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp3"
    text.write_bytes(b"not audio at all, just some words in a file " * 20)
    silent = tmp_path / "zero.wav"
    with wave.open(str(silent), "wb") as w:  # a valid header and no samples
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
    video = tmp_path / "clip.m4a"
    _video_only(video)
    cases = [(empty, "empty"), (text, "could not be read|damaged or not audio"),
             (silent, "no samples"), (video, "no audio stream"),
             (tmp_path / "missing.wav", "does not exist")]
    for path, words in cases:
        with pytest.raises(InputError, match=words) as info:
            load_audio(path)
        message = info.value.user_message()
        assert str(path) in message and "Fix:" in message

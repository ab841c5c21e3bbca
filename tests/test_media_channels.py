"""Recordings with many channels or a high rate decode to 16 kHz mono by averaging the channels.

PyAV's ``to_ndarray`` crashed the process (SIGSEGV) on planar frames of 8 or more channels;
``load_audio`` now averages an interleaved copy instead, and the encoder's AAC track is mono.
"""

from __future__ import annotations

import wave
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.media.audio import SAMPLE_RATE, load_audio
from pipeline.media.video import VideoWriter

TONE = 440.0


def tone_wav(dest: Path, channels: int, rate: int, seconds: float = 0.5) -> Path:
    """A 16-bit WAV with a 440 Hz tone (amplitude 0.5) in channel 0 and silence elsewhere."""
    t = np.arange(int(rate * seconds)) / rate
    data = np.zeros((t.size, channels))
    data[:, 0] = 0.5 * np.sin(2 * np.pi * TONE * t)
    with wave.open(str(dest), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((data * 32767).astype("<i2").tobytes())
    return dest


@pytest.mark.parametrize(("channels", "rate"), [(8, 48000), (16, 48000), (32, 48000),
                                                (2, 192000), (8, 192000)])
def test_many_channels_and_high_rates_are_averaged_to_mono(tmp_path, channels, rate):
    audio = load_audio(tone_wav(tmp_path / "many.wav", channels, rate))
    assert audio.sample_rate == SAMPLE_RATE and audio.samples.ndim == 1
    assert audio.duration == pytest.approx(0.5, abs=1e-6)
    assert audio.samples.size == pytest.approx(0.5 * SAMPLE_RATE, abs=2)
    middle = audio.samples[800:-800]  # away from the resampler's edges
    # The mean of the channels: the tone at 1/channels of its amplitude, still at 440 Hz.
    assert np.abs(middle).max() == pytest.approx(0.5 / channels, rel=0.03)
    spectrum = np.abs(np.fft.rfft(middle))
    peak = np.fft.rfftfreq(middle.size, 1 / SAMPLE_RATE)[int(np.argmax(spectrum))]
    assert peak == pytest.approx(TONE, abs=3)


def test_a_32_channel_recording_is_muxed_as_mono_aac(tmp_path):
    wav = tone_wav(tmp_path / "many.wav", 32, 48000)
    out = tmp_path / "out.mp4"
    with VideoWriter(out, 32, 32, 25, wav) as writer:
        for _ in range(13):
            writer.write(np.zeros((32, 32, 3), np.uint8))
    with av.open(str(out)) as video:
        stream = video.streams.audio[0]
        assert stream.codec_context.channels == 1
        assert float(stream.duration * stream.time_base) == pytest.approx(0.5, abs=0.05)
        samples = np.concatenate([f.to_ndarray()[0] for f in video.decode(stream)])
    assert np.abs(samples[2000:-2000]).max() == pytest.approx(0.5 / 32, rel=0.15)

"""Decode a job's voice recording to 16 kHz mono float32 with PyAV (no librosa, no system ffmpeg).

Wav2Lip's mel spectrogram is defined on 16 kHz mono audio (``hparams.sample_rate``), read by
``librosa.load`` as float32 in [-1, 1] with channels averaged. We decode any container FFmpeg
reads (wav, mp3, m4a, aac, flac, ogg, ...), resample with libswresample and average the channels
the same way. The original file is kept untouched for the final mux (``VideoWriter``).

More than two channels (a 7.1 mix, a 16- or 32-track field recorder) are averaged first, at the
file's own rate, from an interleaved (packed) copy of each frame: PyAV's ``to_ndarray`` reads
planar frames through FFmpeg's eight inline plane pointers and crashes the process (SIGSEGV)
beyond them, and libswresample cannot downmix a layout it does not know ("32 channels").
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from pipeline.errors import InputError
from pipeline.media import formats, phase

SAMPLE_RATE = 16000
AUDIO_FORMATS = " ".join(formats.AUDIO_EXT)
_FIX_FORMAT = f"submit a voice recording as one of: {AUDIO_FORMATS}"


@dataclass(frozen=True)
class Audio:
    """Decoded audio: ``samples`` float32 mono at ``sample_rate`` (16 kHz).

    ``duration`` is the ORIGINAL stream's length in seconds, from its first sample to its last
    (samples decoded at the file's own rate), which is what the output video must span.
    """

    samples: np.ndarray
    duration: float
    path: Path
    sample_rate: int = SAMPLE_RATE


def load_audio(path: Path, max_seconds: float = 600.0) -> Audio:
    """Decode ``path`` to 16 kHz mono float32, or raise ``InputError`` naming the file and the fix.

    Rejects a missing or empty file, a file that is not audio or has no audio stream, a
    recording without samples, and one longer than ``max_seconds`` (checked from the container
    header before decoding where the header knows the length, and again while decoding).
    """
    path = Path(path)
    _check_file(path)
    phase.decoding(path, "the audio file")
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise InputError(
            f"the audio file could not be read ({_reason(exc)})", file=path, fix=_FIX_FORMAT
        ) from exc
    with container:
        if not container.streams.audio:
            raise InputError("the file has no audio stream", file=path, fix=_FIX_FORMAT)
        stream = container.streams.audio[0]
        header_seconds = _header_seconds(container, stream)
        # Some headers (raw .aac, .mp3 without an index) only estimate the length from the bit
        # rate: reject early only when clearly over; the decode loop enforces the exact limit.
        if header_seconds is not None and header_seconds > 1.1 * max_seconds + 1.0:
            raise _too_long(path, header_seconds, max_seconds)
        chunks, original_samples, rate = _decode(container, stream, path, max_seconds)
        indexed = indexed_samples(container, stream)
    if original_samples == 0 or not chunks:
        raise InputError("the audio file contains no samples", file=path, fix=_FIX_FORMAT)
    samples = np.concatenate(chunks).astype(np.float32, copy=False)
    if indexed is not None and 0 < indexed < original_samples:
        # The AAC decoder returns the whole last frame; the MP4 index knows where audio ends.
        original_samples = indexed
        samples = samples[: round(indexed * SAMPLE_RATE / rate)]
    return Audio(samples=samples, duration=original_samples / rate, path=path)


def indexed_samples(container: av.container.InputContainer, stream: av.AudioStream) -> int | None:
    """The exact sample count an MP4/MOV/M4A index gives (priming and padding removed), or None.

    Only this container family is trusted: elsewhere (raw .aac, some .mp3) the duration in the
    header can be an estimate from the bit rate, and trimming to it would cut real audio.
    """
    names = set(container.format.name.split(","))
    if (not names & {"mov", "mp4", "m4a"} or stream.duration is None or not stream.rate
            or stream.time_base is None):
        return None
    return round(stream.duration * stream.time_base * stream.rate)


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise InputError("the audio file does not exist", file=path, fix=_FIX_FORMAT)
    if path.stat().st_size == 0:
        raise InputError(
            "the audio file is empty (0 bytes)", file=path,
            fix="the upload may not have finished: submit the recording again",
        )


def _header_seconds(container: av.container.InputContainer, stream: av.AudioStream) -> float | None:
    """The length the container header claims, if it claims one (raw .aac only estimates it)."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _decode(
    container: av.container.InputContainer, stream: av.AudioStream, path: Path, max_seconds: float
) -> tuple[list[np.ndarray], int, int]:
    """Decode and resample every frame; returns (16 kHz mono chunks, original samples, rate)."""
    # fltp keeps the channels apart so they can be averaged like librosa's to_mono; the
    # resampler keeps the input layout (layout=None).
    resampler = av.AudioResampler(format="fltp", rate=SAMPLE_RATE)
    many = (stream.codec_context.channels or 0) > 2
    downmix = Downmix()
    chunks: list[np.ndarray] = []
    original = 0
    rate = stream.rate or stream.codec_context.sample_rate or 0
    try:
        for frame in container.decode(stream):
            rate = frame.sample_rate
            original += frame.samples
            if original > (max_seconds + 1.0) * rate:
                raise _too_long(path, original / rate, max_seconds)
            if many or len(frame.layout.channels) > 2:
                many = True
                mono = downmix(frame)
                if mono is not None:
                    chunks.extend(_mono(resampler.resample(mono)))
            else:
                chunks.extend(_mono(resampler.resample(frame)))
        if many:
            last = downmix(None)
            if last is not None:
                chunks.extend(_mono(resampler.resample(last)))
        chunks.extend(_mono(resampler.resample(None)))
    except av.FFmpegError as exc:
        raise InputError(
            f"the audio file is damaged or not audio ({_reason(exc)})", file=path, fix=_FIX_FORMAT
        ) from exc
    if rate and original / rate > max_seconds:
        raise _too_long(path, original / rate, max_seconds)
    return chunks, original, rate or SAMPLE_RATE


class Downmix:
    """Frames of any channel count -> mono float frames at the same rate (channels averaged).

    Each frame is converted to packed float in its own layout (a format change only, which any
    layout allows, however many channels), read as one interleaved buffer and averaged.
    ``downmix(None)`` flushes. Used by the decoder above and by the encoder's AAC track.
    """

    def __init__(self) -> None:
        self._packed = av.AudioResampler(format="flt")

    def __call__(self, frame: av.AudioFrame | None) -> av.AudioFrame | None:
        parts = [_average(f) for f in self._packed.resample(frame)]
        if not parts:
            return None
        samples = np.concatenate([p for p, _rate in parts])
        mono = av.AudioFrame.from_ndarray(samples[None, :], format="flt", layout="mono")
        mono.sample_rate = parts[0][1]
        return mono


def _average(frame: av.AudioFrame) -> tuple[np.ndarray, int]:
    channels = len(frame.layout.channels)
    interleaved = np.frombuffer(memoryview(frame.planes[0]), dtype=np.float32,
                                count=frame.samples * channels)
    mean = interleaved.reshape(frame.samples, channels).mean(axis=1, dtype=np.float32)
    return mean, frame.sample_rate


def _mono(frames: list[av.AudioFrame]) -> Iterator[np.ndarray]:
    for frame in frames:
        planes = frame.to_ndarray()  # (channels, samples) for planar fltp; at most stereo here
        yield planes.mean(axis=0, dtype=np.float32) if planes.shape[0] > 1 else planes[0]


def _too_long(path: Path, seconds: float, max_seconds: float) -> InputError:
    return InputError(
        f"the recording is {seconds:.1f} s long; the limit is {max_seconds:g} s",
        file=path,
        fix="split the recording into shorter parts, or raise limits.max_audio_seconds",
    )


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc)

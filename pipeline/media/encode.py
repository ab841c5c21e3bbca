"""The encoder behind ``VideoWriter``: one MP4 container, H.264 video, AAC from the original audio.

Runs on the writer's background thread (except ``open``). The whole audio is encoded first, into
memory (AAC at 128 kb/s is about 1 MB a minute), so its packets can be interleaved with the video
packets by time as they come out of the video encoder.
"""

from __future__ import annotations

from collections import deque
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import numpy as np
import numpy.typing as npt

from pipeline.errors import InputError
from pipeline.media import formats
from pipeline.media.audio import Downmix, indexed_samples

# Sample rates the AAC encoder takes; any other rate is resampled to 48 kHz.
_AAC_RATES = frozenset({8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000,
                        88200, 96000})
_AUDIO_FIX = f"submit the recording as {formats.spoken(formats.AUDIO_EXT)}"


class EncoderJob:
    """Owns the output file: ``open``, then ``encode`` per frame, ``finish``, ``close``."""

    def __init__(self, path: Path, width: int, height: int, fps: Fraction,
                 audio_path: Path | None, encoder: str, crf: int) -> None:
        self.path, self.width, self.height, self.fps = path, width, height, fps
        self.audio_path, self.encoder, self.crf = audio_path, encoder, crf
        self._container: av.container.OutputContainer | None = None
        self._video: av.VideoStream | None = None
        self._audio: av.AudioStream | None = None
        self._audio_packets: deque[av.Packet] = deque()
        self._audio_ready = False
        self._next_pts = 0

    def open(self) -> None:
        """Create the file and its streams; reads only the audio file's header."""
        audio_rate, audio_layout = self._probe_audio() if self.audio_path else (0, "")
        # movflags=faststart: the muxer rewrites the file at the end with moov before mdat.
        self._container = av.open(str(self.path), mode="w", format="mp4",
                                  options={"movflags": "+faststart"})
        self._video = self._add_video_stream()
        if self.audio_path:
            self._audio = self._container.add_stream("aac", rate=audio_rate, layout=audio_layout)
            self._audio.bit_rate = 128_000 if audio_layout == "mono" else 192_000
            self._audio.time_base = Fraction(1, audio_rate)

    def _add_video_stream(self) -> av.VideoStream:
        assert self._container is not None
        stream = self._container.add_stream(self.encoder, rate=self.fps)
        if not isinstance(stream, av.VideoStream):  # an encoder name always gives a video one
            raise TypeError(f"{self.encoder} did not give a video stream")
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, "yuv420p"
        # Frame i has pts i in a 1/fps time base: the timing is exact for 30000/1001 too.
        stream.time_base = 1 / self.fps
        stream.codec_context.time_base = 1 / self.fps
        # Tag BT.709 limited range, and convert with the same matrix (see encode()).
        ctx = stream.codec_context
        ctx.colorspace, ctx.color_primaries, ctx.color_trc, ctx.color_range = 1, 1, 1, 1
        if self.encoder == "libx264":
            stream.options = {"preset": "veryfast", "crf": str(self.crf)}
        elif self.encoder == "h264_videotoolbox":
            # VideoToolbox has no CRF: about 0.2 bit per pixel per frame is visually clean.
            stream.bit_rate = int(0.2 * self.width * self.height * float(self.fps))
            stream.options = {"allow_sw": "1", "realtime": "0"}
        return stream

    def _probe_audio(self) -> tuple[int, str]:
        assert self.audio_path is not None
        try:
            with av.open(str(self.audio_path)) as src:
                if not src.streams.audio:
                    raise InputError("the file has no audio stream", file=self.audio_path,
                                     fix=_AUDIO_FIX)
                stream = src.streams.audio[0]
                rate, channels = stream.rate, stream.codec_context.channels
        except av.FFmpegError as exc:
            raise InputError(f"the audio file could not be read ({exc})", file=self.audio_path,
                             fix=_AUDIO_FIX) from exc
        # More than two channels are averaged to mono (``Downmix``): libswresample cannot
        # downmix a layout it does not know, such as "32 channels".
        return (rate if rate in _AAC_RATES else 48000), ("stereo" if channels == 2 else "mono")

    def _encode_audio(self) -> None:
        """Decode the original audio, resample for AAC, encode every packet into memory."""
        assert self._audio is not None and self.audio_path is not None
        ctx = self._audio.codec_context
        resampler = av.AudioResampler(format="fltp", layout=ctx.layout.name, rate=ctx.sample_rate)
        pts = 0
        with av.open(str(self.audio_path)) as src:
            stream = src.streams.audio[0]
            indexed = indexed_samples(src, stream)
            limit = round(indexed * ctx.sample_rate / stream.rate) if indexed else None
            frames = _then_none(src.decode(stream))
            if (stream.codec_context.channels or 0) > 2:
                frames = _downmixed(frames)
            for frame in frames:
                for resampled in resampler.resample(frame):
                    out: av.AudioFrame | None = resampled
                    if limit is not None and pts + resampled.samples > limit:
                        out = _head(resampled, max(limit - pts, 0))  # drop the decoder's padding
                    if out is None:
                        continue
                    out.pts, out.time_base = pts, Fraction(1, ctx.sample_rate)
                    pts += out.samples
                    self._audio_packets.extend(self._audio.encode(out))
        self._audio_packets.extend(self._audio.encode(None))
        self._audio_ready = True

    def encode(self, rgb: np.ndarray) -> None:
        """Encode one HxWx3 uint8 RGB frame at the next frame time."""
        assert self._video is not None and self._container is not None
        if self._audio is not None and not self._audio_ready:
            self._encode_audio()
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame = frame.reformat(format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")
        frame.pts = self._next_pts
        frame.time_base = 1 / self.fps  # the mp4 muxer changes the stream time base on start
        self._next_pts += 1
        self._mux_video(self._video.encode(frame))

    def finish(self) -> None:
        """Flush the video encoder, mux the rest of the audio, and write the trailer."""
        assert self._video is not None and self._container is not None
        if self._audio is not None and not self._audio_ready:
            self._encode_audio()
        self._mux_video(self._video.encode(None))
        while self._audio_packets:
            self._container.mux(self._audio_packets.popleft())

    def close(self) -> None:
        """Close the container (writes the trailer and moves moov to the front if not failed)."""
        if self._container is not None:
            container, self._container = self._container, None
            container.close()

    def _mux_video(self, packets: list[av.Packet]) -> None:
        assert self._container is not None
        for packet in packets:
            # Interleave: first the audio that plays before this video packet.
            t = float(packet.pts * packet.time_base) if packet.pts is not None else 0.0
            while self._audio_packets and _time(self._audio_packets[0]) <= t:
                self._container.mux(self._audio_packets.popleft())
            self._container.mux(packet)


def _time(packet: av.Packet) -> float:
    return float(packet.pts * packet.time_base) if packet.pts is not None else 0.0


def _head(frame: av.AudioFrame, n: int) -> av.AudioFrame | None:
    """The first ``n`` samples of a planar frame, or None for none."""
    if n <= 0:
        return None
    # cast: PyAV's stubs type to_ndarray() as any dtype and from_ndarray() as the sample dtypes
    # only; the resampler's frames here are "fltp", float32 planar.
    samples = cast(npt.NDArray[np.float32], np.ascontiguousarray(frame.to_ndarray()[:, :n]))
    head = av.AudioFrame.from_ndarray(samples, format=frame.format.name, layout=frame.layout.name)
    head.sample_rate = frame.sample_rate
    return head


def _then_none(frames):  # noqa: ANN001, ANN202 - a tiny generator: frames, then the flush marker
    yield from frames
    yield None


def _downmixed(frames):  # noqa: ANN001, ANN202 - like _then_none, each frame averaged to mono
    downmix = Downmix()
    for frame in frames:
        mono = downmix(frame)  # None while it buffers, and for the flush marker once flushed
        if mono is not None:
            yield mono
        if frame is None:
            yield None

"""Streaming video decode and H.264 + AAC encode on PyAV's bundled FFmpeg.

Decoding streams RGB frames one at a time with their exact timestamps; the frame rate stays a
``Fraction`` (29.97 is 30000/1001, never truncated to 29 as the official LivePortrait's
``int(fps)`` does). Encoding writes H.264 yuv420p with the submitted audio re-encoded to AAC in
an MP4 with the moov atom first (faststart). Frames never touch the disk as image files.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

from pipeline.errors import InputError, MediaError
from pipeline.media import phase
from pipeline.media.encode import EncoderJob

_FIX_VIDEO = "use an .mp4 or .mov video that plays in QuickTime"


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds. ``duration`` is the video stream's length in seconds."""

    width: int
    height: int
    fps: Fraction
    frames: int
    duration: float
    has_audio: bool
    video_codec: str
    audio_codec: str | None
    pix_fmt: str
    audio_duration: float | None = None
    rotation: int = 0  # degrees counter-clockwise applied for display; width/height are upright


def _open_input(path: Path) -> av.container.InputContainer:
    path = Path(path)
    if not path.is_file():
        raise InputError("the video file does not exist", file=path, fix=_FIX_VIDEO)
    if path.stat().st_size == 0:
        raise InputError("the video file is empty (0 bytes)", file=path, fix=_FIX_VIDEO)
    phase.decoding(path, "the video file")
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise InputError(f"the file is not a readable video ({exc})", file=path,
                         fix=_FIX_VIDEO) from exc
    if not container.streams.video:
        container.close()
        raise InputError("the file has no video stream", file=path, fix=_FIX_VIDEO)
    return container


def _stream_fps(stream: av.VideoStream) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate:
        raise MediaError("the video's frame rate is unknown", fix=_FIX_VIDEO)
    return Fraction(rate.numerator, rate.denominator)


def _seconds(duration: int | None, time_base: Fraction | None) -> float | None:
    if duration is None or time_base is None:
        return None
    return float(duration * time_base)


def probe_video(path: Path) -> VideoInfo:
    """Read a video's streams, frame rate, frame count, duration and upright size.

    Only the first frame is decoded (for its rotation tag). The frame count comes from the
    container index (MP4/MOV); where a container has none (MKV, WebM) the packets are counted,
    which reads the file but decodes nothing more.
    """
    rotation = _first_frame_rotation(path)
    with _open_input(path) as container:
        video = container.streams.video[0]
        fps = _stream_fps(video)
        frames = video.frames or sum(1 for p in container.demux(video) if p.size)
        duration = _seconds(video.duration, video.time_base)
        if duration is None:
            duration = float(frames / fps)
        audio = container.streams.audio[0] if container.streams.audio else None
        width, height = video.codec_context.width, video.codec_context.height
        if rotation % 180:
            width, height = height, width
        return VideoInfo(
            width=width,
            height=height,
            fps=fps,
            frames=frames,
            duration=duration,
            has_audio=audio is not None,
            video_codec=video.codec_context.name,
            audio_codec=audio.codec_context.name if audio is not None else None,
            pix_fmt=video.codec_context.pix_fmt or "",
            audio_duration=_seconds(audio.duration, audio.time_base) if audio is not None else None,
            rotation=rotation,
        )


def _first_frame_rotation(path: Path) -> int:
    with _open_input(path) as container:
        try:
            frame = next(container.decode(video=0), None)
        except av.FFmpegError as exc:
            raise InputError(f"the video is damaged ({exc})", file=path, fix=_FIX_VIDEO) from exc
        if frame is None:
            raise InputError("the video has no frames", file=path, fix=_FIX_VIDEO)
        return int(round(frame.rotation or 0)) % 360


def iter_frames_timed(path: Path) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(seconds, HxWx3 uint8 RGB)`` for every frame, in presentation order, streaming.

    Timestamps are the frames' own presentation times relative to the first frame. A rotation
    tag (phone videos) is applied so frames come out upright.
    """
    with _open_input(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame+slice threads: decoding is not the bottleneck
        t0: float | None = None
        try:
            for frame in container.decode(stream):
                t = frame.time if frame.time is not None else 0.0
                t0 = t if t0 is None else t0
                yield t - t0, _upright(frame.to_ndarray(format="rgb24"), frame.rotation)
        except av.FFmpegError as exc:
            raise InputError(f"the video is damaged ({exc})", file=path, fix=_FIX_VIDEO) from exc


def iter_frames(path: Path) -> Iterator[np.ndarray]:
    """Yield every frame of ``path`` as HxWx3 uint8 RGB, one at a time (never the whole video)."""
    for _, frame in iter_frames_timed(path):
        yield frame


def _upright(rgb: np.ndarray, rotation: int) -> np.ndarray:
    # FFmpeg's rotation is counter-clockwise degrees to display the frame upright.
    turns = (int(round(rotation / 90)) % 4) if rotation else 0
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def pick_encoder(preference: str = "auto") -> str:
    """The H.264 encoder to use: VideoToolbox on macOS when it opens, else libx264."""
    if preference != "auto":
        if preference not in av.codecs_available:
            raise MediaError(f"the video encoder {preference!r} is not in this FFmpeg build",
                             fix="use encoder 'auto' or 'libx264'")
        return preference
    if sys.platform == "darwin" and "h264_videotoolbox" in av.codecs_available:
        try:  # a VM or an old Mac may list VideoToolbox yet fail to open it
            ctx = av.CodecContext.create("h264_videotoolbox", "w")
            ctx.width, ctx.height, ctx.pix_fmt = 64, 64, "yuv420p"
            ctx.time_base = Fraction(1, 25)
            ctx.open()
            return "h264_videotoolbox"
        except av.FFmpegError:
            pass
    return "libx264"


_STOP = object()

# NTSC rates as people write them (29.97) mean the exact broadcast rate (30000/1001).
_NTSC_BASES = (24, 30, 48, 60, 120)


def exact_fps(fps: Fraction | float) -> Fraction:
    """The exact frame rate meant by ``fps``: 29.97 -> 30000/1001, 25 -> 25, 23.976 -> 24000/1001.

    A rate within 0.001 of n*1000/1001 for a common n is taken as that NTSC rate; anything else
    is kept as given (as a fraction with a denominator up to 10^6).
    """
    value = Fraction(fps).limit_denominator(1_000_000)
    for base in _NTSC_BASES:
        ntsc = Fraction(base * 1000, 1001)
        if value != base and abs(value - ntsc) < Fraction(1, 1000):
            return ntsc
    return value


class VideoWriter:
    """Write RGB frames as H.264 yuv420p MP4 (faststart) with the original audio as AAC.

    Use as a context manager. ``write`` queues frames (bounded) for a background encoder thread,
    so encoding overlaps model work; an error in that thread is raised by the next ``write`` or
    by ``close``. If the ``with`` block raises, the partial file is removed.
    The stream time base is exactly 1/fps, so frame i is shown at i/fps.
    """

    def __init__(
        self,
        path: Path,
        width: int,
        height: int,
        fps: Fraction | float,
        audio_path: Path | None = None,
        encoder: str = "auto",
        crf: int = 18,
        queue_frames: int = 16,
    ) -> None:
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise ValueError(f"H.264 yuv420p needs even positive dimensions, got {width}x{height}")
        self.path = Path(path)
        self.width, self.height = width, height
        self.fps = exact_fps(fps)
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.audio_path = Path(audio_path) if audio_path is not None else None
        self.encoder = pick_encoder(encoder)
        self.crf = crf
        self.frames_written = 0
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_frames)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    def __enter__(self) -> VideoWriter:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def open(self) -> None:
        """Open the file and start the encoder thread (``__enter__`` does this)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        job = EncoderJob(self.path, self.width, self.height, self.fps, self.audio_path,
                         self.encoder, self.crf)
        try:  # in the caller's thread: a bad audio file or encoder fails right here
            job.open()
        except BaseException:
            job.close()
            self.path.unlink(missing_ok=True)
            raise
        self._thread = threading.Thread(target=self._run, args=(job,), name="facedrop-encoder",
                                        daemon=True)
        self._thread.start()

    def write(self, frames: np.ndarray) -> None:
        """Queue one HxWx3 uint8 RGB frame, or a batch NxHxWx3."""
        batch = frames[None] if frames.ndim == 3 else frames
        if batch.ndim != 4 or batch.shape[1:] != (self.height, self.width, 3):
            raise ValueError(
                f"expected frames of shape ({self.height}, {self.width}, 3), got {frames.shape}")
        if batch.dtype != np.uint8:
            raise ValueError(f"expected uint8 frames, got {batch.dtype}")
        if self._thread is None or self._closed:
            raise RuntimeError("VideoWriter is not open")
        for frame in batch:
            # A copy: callers may reuse their buffer before the encoder thread gets to it.
            self._put(np.array(frame, copy=True, order="C"))
            self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder, mux the audio, finish the file; raise MediaError on failure."""
        if self._closed or self._thread is None:
            return
        if self.frames_written == 0:
            self.abort()
            raise MediaError("no video frames were written", file=self.path,
                             fix="this is a bug in facedrop: please report it")
        self._closed = True
        self._put(_STOP, force=True)  # even after an error: the thread must be joined
        self._thread.join()
        if self._error is not None:
            self.path.unlink(missing_ok=True)
            raise self._as_media_error(self._error)

    def abort(self) -> None:
        """Stop encoding and delete the partial file."""
        if self._thread is not None and not self._closed:
            self._closed = True
            self._error = self._error or _Aborted()
            self._drain()
            self._put(_STOP, force=True)
            self._thread.join()
        self.path.unlink(missing_ok=True)

    def _put(self, item: object, force: bool = False) -> None:
        while True:
            if self._error is not None and not force:
                raise self._as_media_error(self._error)
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                if self._thread is not None and not self._thread.is_alive():
                    return
                if force:
                    self._drain()

    def _drain(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def _run(self, job: EncoderJob) -> None:
        try:
            while True:
                item = self._queue.get()
                if item is _STOP or not isinstance(item, np.ndarray):  # only _STOP is not a frame
                    break
                if self._error is None:
                    job.encode(item)
            if self._error is None:
                job.finish()
        except BaseException as exc:  # noqa: BLE001 - surfaced to the caller by write/close
            self._error = exc
            self._drain()
        finally:
            job.close()

    def _as_media_error(self, exc: BaseException) -> MediaError:
        if isinstance(exc, MediaError):
            return exc
        err = MediaError(f"encoding the video failed ({exc})", file=self.path,
                         fix="check free disk space; if it persists, report a bug")
        err.__cause__ = exc
        return err


class _Aborted(Exception):
    """Marks a writer that was aborted: queued frames are dropped, not encoded."""

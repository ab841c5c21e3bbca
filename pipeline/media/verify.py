"""Check a finished video before it is handed to the user: streams, length, frames, faststart."""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

from pipeline.errors import InputError, MediaError
from pipeline.media.video import VideoInfo, exact_fps, probe_video

_FIX = "the encode did not finish cleanly: run the job again; if it persists, report a bug"


def verify_video(
    path: Path,
    expect_frames: int | None = None,
    expect_duration: float | None = None,
    fps: Fraction | float | None = None,
    require_audio: bool = True,
) -> VideoInfo:
    """Probe ``path`` and raise ``MediaError`` unless it is a complete, playable facedrop video.

    Checks: H.264 yuv420p video (and AAC audio unless ``require_audio`` is False), the frame
    rate when ``fps`` is given, the frame count and the durations of both streams within one
    frame of what was expected, the first frame decodes (``probe_video`` decodes it), and the
    moov atom comes before mdat
    (faststart: the video starts playing before it has fully downloaded, e.g. from Dropbox).
    """
    path = Path(path)
    try:
        info = probe_video(path)
    except InputError as exc:
        raise MediaError(f"the written video cannot be read: {exc.problem}", file=path,
                         fix=_FIX) from exc
    _check_streams(path, info, require_audio)
    frame = Fraction(1) / (exact_fps(fps) if fps else info.fps)
    if fps is not None and abs(info.fps - exact_fps(fps)) > 1e-6:
        raise MediaError(f"the video runs at {float(info.fps):.3f} fps, not {float(fps):.3f}",
                         file=path, fix=_FIX)
    if expect_frames is not None and abs(info.frames - expect_frames) > 1:
        raise MediaError(f"the video has {info.frames} frames, expected {expect_frames}",
                         file=path, fix=_FIX)
    if expect_duration is not None:
        _check_duration(path, "video", info.duration, expect_duration, frame)
        if info.audio_duration is not None:
            _check_duration(path, "audio", info.audio_duration, expect_duration, frame)
    _check_faststart(path)
    return info


def _check_streams(path: Path, info: VideoInfo, require_audio: bool) -> None:
    if info.video_codec != "h264" or info.pix_fmt != "yuv420p":
        raise MediaError(f"the video is {info.video_codec} {info.pix_fmt}, not h264 yuv420p",
                         file=path, fix=_FIX)
    if require_audio and info.audio_codec != "aac":
        found = info.audio_codec or "no audio stream"
        raise MediaError(f"the video's audio is {found}, not AAC", file=path, fix=_FIX)


def _check_duration(path: Path, what: str, got: float, want: float, frame: Fraction) -> None:
    # One frame of slack, plus 1 ms: MP4 edit lists count in the movie's 1/1000 s timescale.
    if abs(got - want) > float(frame) + 1e-3:
        raise MediaError(f"the {what} lasts {got:.3f} s, expected {want:.3f} s", file=path,
                         fix=_FIX)


def top_level_boxes(path: Path) -> list[str]:
    """The types of an MP4 file's top-level boxes, in file order (``ftyp``, ``moov``, ...)."""
    boxes: list[str] = []
    size_total = path.stat().st_size
    with path.open("rb") as f:
        offset = 0
        while offset + 8 <= size_total:
            f.seek(offset)
            size, kind = struct.unpack(">I4s", f.read(8))
            if size == 1:  # 64-bit size follows the type
                (size,) = struct.unpack(">Q", f.read(8))
            elif size == 0:  # the box runs to the end of the file
                size = size_total - offset
            if size < 8 or offset + size > size_total:  # a cut-off file ends inside a box
                raise MediaError(f"the MP4 file is truncated or damaged at byte {offset}",
                                 file=path, fix=_FIX)
            boxes.append(kind.decode("latin-1"))
            offset += size
    return boxes


def _check_faststart(path: Path) -> None:
    boxes = top_level_boxes(path)
    if "moov" not in boxes or "mdat" not in boxes:
        raise MediaError("the MP4 file lacks its moov or mdat box", file=path, fix=_FIX)
    if boxes.index("moov") > boxes.index("mdat"):
        raise MediaError("the MP4 index (moov) is after the media data: not faststart",
                         file=path, fix=_FIX)

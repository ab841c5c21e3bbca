"""Is a media file whole, or still being written? Decided from its bytes, never its name or age.

A copy that stalls leaves a file that is a valid *beginning* of a recording: the decoders accept
it and the job ends "done" with half the audio. So each format is checked against what it says
about itself:

- WAV / WEBP (RIFF): the RIFF size and the ``data`` chunk fit in the file, and the header is
  finalised (a recorder that patches its header writes 0 there until it stops). A streaming
  WAV (sizes 0xFFFFFFFF, "unknown": FFmpeg to a pipe) is whole when its data is a whole number
  of sample frames; only the settle checks can say its writer stopped.
- MP4 / M4A / MOV / HEIC (ISO boxes): every top-level box fits and a movie has its ``moov`` index.
- MP3: every frame fits, and a Xing/Info header's byte count is reached.
- OGG: every page fits and the last one is marked end-of-stream.
- FLAC / AAC / MP3 / OGG: PyAV decodes to the end without an error (bounded in time), and FLAC
  yields the sample count its STREAMINFO promises.
- PNG: chunks walk to ``IEND``; JPEG: an end-of-image marker follows the last scan; both decode
  fully in Pillow (truncated images refused).

A file that starts with zeros (preallocated, nothing written yet) or is empty is incomplete. A
WAV whose last 64 KiB are exact zeros is *suspect*: a preallocating writer that stalled looks
like that, but so does trailing digital silence, so the caller waits its grace period and then
accepts it. A file in none of these formats is ``UNKNOWN``: not ours to judge, the decoder that
reads it later gives the error.

The file is opened ``O_NONBLOCK | O_NOFOLLOW`` and must be a regular file (a FIFO never blocks
this check). The clock is injectable for the decode time bound.
"""

from __future__ import annotations

import os
import stat
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import BinaryIO

STREAMING = 0xFFFFFFFF  # a RIFF or data size a streaming writer leaves for "unknown"
ZERO_HEAD = 4096  # a preallocated file not yet written starts with at least this many zeros
MIN_BYTES = 16  # shorter than any header: the start of a copy, or not media at all
ZERO_TAIL = 64 * 1024  # trailing zeros of a WAV that make it suspect
DECODE_SECONDS = 5.0  # bound on a decode check; past it the file is left to the real decoder
MAX_CHECK_PIXELS = 60_000_000  # images bigger than this get the structural check only
_BMFF_TYPES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid", b"meta"}
_STILL_BRANDS = {b"heic", b"heix", b"mif1", b"msf1", b"heim", b"heis", b"avif"}


class Whole(Enum):
    """The verdict on one file."""

    WHOLE = "whole"
    INCOMPLETE = "incomplete"  # a valid beginning of a file that is not all there yet
    SUSPECT = "suspect"  # complete by its structure, but looks like a stalled preallocation
    UNKNOWN = "unknown"  # not a format checked here (the decoder reports what is wrong)


@dataclass(frozen=True, slots=True)
class Wholeness:
    """``state`` and, unless whole, a reason in words (no path: the caller names the file)."""

    state: Whole
    reason: str = ""


WHOLE = Wholeness(Whole.WHOLE)


class _Reader:
    """Positional reads of an open regular file."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd, self.size = fd, size

    def at(self, offset: int, length: int) -> bytes:
        return os.pread(self.fd, length, offset) if 0 <= offset < self.size else b""

    def file(self) -> BinaryIO:
        """A file object on the same open file (never a reopen of the path: no swap-in)."""
        fh = os.fdopen(os.dup(self.fd), "rb")
        fh.seek(0)
        return fh


def check_whole(
    path: Path,
    *,
    decode_seconds: float = DECODE_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> Wholeness:
    """The wholeness of ``path`` (a regular file; anything else is ``UNKNOWN``)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as err:
        return Wholeness(Whole.UNKNOWN, f"cannot be opened ({err.strerror})")
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return Wholeness(Whole.UNKNOWN, "is not a regular file")
        os.set_blocking(fd, True)
        return _judge(_Reader(fd, st.st_size), decode_seconds, clock)
    finally:
        os.close(fd)


def _judge(r: _Reader, seconds: float, clock: Callable[[], float]) -> Wholeness:
    if r.size == 0:
        return Wholeness(Whole.INCOMPLETE, "is empty")
    if r.size < MIN_BYTES:
        return Wholeness(Whole.INCOMPLETE, f"has only {r.size} bytes")
    head = r.at(0, ZERO_HEAD)
    if head.count(0) == len(head):
        return Wholeness(Whole.INCOMPLETE, "starts with zeros (space reserved, not written yet)")
    for sniff, check in _CHECKS:
        if sniff(head):
            try:
                verdict = check(r)
            except struct.error:  # a header's fields run past the end of the file
                return Wholeness(Whole.INCOMPLETE, "ends in the middle of a header")
            if verdict.state is not Whole.WHOLE:
                return verdict
            decode = _DECODERS.get(check)
            return decode(r, seconds, clock) if decode else verdict
    return Wholeness(Whole.UNKNOWN, "is not a format facedrop checks for completeness")


# ---- RIFF (WAV, WEBP) -------------------------------------------------------------------------


def _riff(r: _Reader) -> Wholeness:
    declared = struct.unpack("<I", r.at(4, 4))[0] + 8
    if declared == STREAMING + 8 and r.at(8, 4) == b"WAVE":
        return _streaming_wav(r)
    if declared == 8 or declared == STREAMING + 8:
        return Wholeness(Whole.INCOMPLETE, "has an unfinished header (still being recorded)")
    if declared > r.size:
        return _short(r.size, declared)
    if r.at(8, 4) != b"WAVE":
        return WHOLE
    return _wav_data(r, declared)


def _wav_data(r: _Reader, end: int) -> Wholeness:
    pos = 12
    while pos + 8 <= end:
        kind, size = r.at(pos, 4), struct.unpack("<I", r.at(pos + 4, 4))[0]
        if kind == b"data":
            if size in (0, 0xFFFFFFFF) and end > pos + 8:
                return Wholeness(Whole.INCOMPLETE, "has an unfinished data header")
            if pos + 8 + size > r.size:
                return _short(r.size, pos + 8 + size)
            tail = r.at(pos + 8 + size - ZERO_TAIL, ZERO_TAIL) if size > 2 * ZERO_TAIL else b""
            if tail and tail.count(0) == len(tail):
                return Wholeness(
                    Whole.SUSPECT, f"ends in {ZERO_TAIL // 1024} KiB of zero bytes "
                    "(space reserved by a copy that has not finished?)",
                )
            return WHOLE
        pos += 8 + size + (size & 1)
    return Wholeness(Whole.INCOMPLETE, "has no audio data yet (its 'data' chunk is missing)")


def _streaming_wav(r: _Reader) -> Wholeness:
    """A WAV whose sizes say "unknown" (0xFFFFFFFF: FFmpeg writing to a pipe, streaming
    recorders): its data runs to the end of the file, so the header cannot tell a finished file
    from a growing one. It is whole when the data is a whole number of sample frames; the
    settle checks (size and mtime unchanged) are what says the writer has stopped.
    """
    pos, align = 12, 0
    while pos + 8 <= r.size:
        kind, size = r.at(pos, 4), struct.unpack("<I", r.at(pos + 4, 4))[0]
        if kind == b"fmt ":
            fmt = r.at(pos + 8, 16)
            if len(fmt) < 16:
                return Wholeness(Whole.INCOMPLETE, "ends in the middle of its format header")
            align = struct.unpack("<H", fmt[12:14])[0]
        elif kind == b"data":
            have = r.size - pos - 8
            if not align:
                return Wholeness(Whole.UNKNOWN, "has no usable format header before its data")
            if have <= 0:
                return Wholeness(Whole.INCOMPLETE, "has no audio data yet")
            if have % align:
                return Wholeness(Whole.INCOMPLETE, "ends in the middle of a sample "
                                 "(a streaming recording cut off)")
            return WHOLE
        if size == STREAMING:
            break
        pos += 8 + size + (size & 1)
    return Wholeness(Whole.INCOMPLETE, "has no audio data yet (its 'data' chunk is missing)")


def _short(have: int, want: int) -> Wholeness:
    return Wholeness(Whole.INCOMPLETE, f"has {have} of the {want} bytes its header declares")


# ---- ISO base media (MP4, M4A, MOV, HEIC) -------------------------------------------------------


def _bmff(r: _Reader) -> Wholeness:
    pos, types, brand = 0, set(), r.at(8, 4)
    while pos + 8 <= r.size:
        size, kind = struct.unpack(">I4s", r.at(pos, 8))
        if size == 1:
            size = struct.unpack(">Q", r.at(pos + 8, 8))[0]
        elif size == 0:  # "to the end of the file": only the last box may say so
            size = r.size - pos
        if size < 8:
            return Wholeness(Whole.INCOMPLETE, f"has a damaged or unfinished '{_name(kind)}' box")
        if pos + size > r.size:
            return Wholeness(
                Whole.INCOMPLETE, f"is cut off inside its '{_name(kind)}' box "
                f"({r.size} bytes, the box needs {pos + size})",
            )
        types.add(kind)
        pos += size
    if pos != r.size:
        return Wholeness(Whole.INCOMPLETE, "ends in the middle of a box header")
    if brand in _STILL_BRANDS:
        return WHOLE if b"meta" in types else Wholeness(Whole.INCOMPLETE, "has no image index")
    if b"moov" not in types:
        return Wholeness(Whole.INCOMPLETE, "has no 'moov' index yet (written when a copy ends)")
    return WHOLE


def _name(kind: bytes) -> str:
    return kind.decode("latin-1") if kind.isascii() and kind.isalnum() else kind.hex()


# ---- MP3 and AAC frame walks --------------------------------------------------------------------

_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
_MP3_KBPS = {
    (3, 1): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),  # MPEG1 L3
    (3, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),  # MPEG1 L2
    (3, 3): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),  # MPEG1 L1
}
_MP3_KBPS_LSF = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)  # MPEG2/2.5 L2/L3


def _id3_end(r: _Reader) -> int:
    head = r.at(0, 10)
    if head[:3] != b"ID3" or len(head) < 10:
        return 0
    size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
    return 10 + size + (10 if head[5] & 0x10 else 0)


def _mp3_frame(h: bytes) -> int:
    """Length in bytes of the MPEG audio frame whose 4-byte header is ``h`` (0 if not one)."""
    if len(h) < 4 or h[0] != 0xFF or h[1] & 0xE0 != 0xE0:
        return 0
    version, layer = (h[1] >> 3) & 3, (h[1] >> 1) & 3
    rate_i, kbps_i, pad = (h[2] >> 2) & 3, h[2] >> 4, (h[2] >> 1) & 1
    if version == 1 or layer == 0 or rate_i == 3 or kbps_i in (0, 15):
        return 0
    rate = _MP3_RATES[version][rate_i]
    if version == 3:
        kbps = _MP3_KBPS[(3, layer)][kbps_i]
    else:
        kbps = _MP3_KBPS_LSF[kbps_i] if layer != 3 else (0, 32, 48, 56, 64, 80, 96, 112, 128,
                                                            144, 160, 176, 192, 224, 256)[kbps_i]
    if layer == 3:  # Layer I
        return (12 * kbps * 1000 // rate + pad) * 4
    per_frame = 144 if version == 3 or layer == 2 else 72
    return per_frame * kbps * 1000 // rate + pad


def _mp3(r: _Reader) -> Wholeness:
    start = pos = _id3_end(r)
    if start > r.size:
        return _short(r.size, start)
    end = r.size - (128 if r.at(r.size - 128, 3) == b"TAG" else 0)
    declared = _xing_bytes(r.at(pos, 200))
    frames = 0
    while pos + 4 <= end:
        length = _mp3_frame(r.at(pos, 4))
        if length == 0:
            break  # trailing tags (APE, Lyrics3) or junk: the decode check judges the rest
        if pos + length > end:
            return Wholeness(Whole.INCOMPLETE, f"is cut off inside MP3 frame {frames + 1}")
        pos, frames = pos + length, frames + 1
    if frames == 0 and end - pos < 4:
        return Wholeness(Whole.INCOMPLETE, "has a tag but no MP3 audio frames yet")
    if frames == 0:
        return Wholeness(Whole.UNKNOWN, "has no MP3 frames")
    if declared and r.size - start < declared:
        return _short(r.size, start + declared)
    return WHOLE


def _xing_bytes(frame: bytes) -> int:
    """The stream size an MP3's Xing/Info header records (0 if it has none)."""
    for tag in (b"Xing", b"Info"):
        at = frame.find(tag)
        if 0 < at <= 40 and len(frame) >= at + 16:
            flags = struct.unpack(">I", frame[at + 4 : at + 8])[0]
            if flags & 2:  # bytes field present, after the frames field if that is present
                offset = at + 8 + (4 if flags & 1 else 0)
                return int(struct.unpack(">I", frame[offset : offset + 4])[0])
    return 0


def _adts(r: _Reader) -> Wholeness:
    pos = frames = 0
    while pos + 7 <= r.size:
        h = r.at(pos, 7)
        if h[0] != 0xFF or h[1] & 0xF6 != 0xF0:
            break
        length = ((h[3] & 3) << 11) | (h[4] << 3) | (h[5] >> 5)
        if length < 7:
            break
        if pos + length > r.size:
            return Wholeness(Whole.INCOMPLETE, f"is cut off inside AAC frame {frames + 1}")
        pos, frames = pos + length, frames + 1
    if 0 < r.size - pos < 7:
        return Wholeness(Whole.INCOMPLETE, "ends in the middle of an AAC frame header")
    return WHOLE


# ---- OGG and FLAC ---------------------------------------------------------------------------


def _ogg(r: _Reader) -> Wholeness:
    pos, last_flags = 0, 0
    while pos < r.size:
        head = r.at(pos, 27)
        if len(head) < 27 or head[:4] != b"OggS":
            return Wholeness(Whole.INCOMPLETE, "ends in the middle of an Ogg page")
        table = r.at(pos + 27, head[26])
        if len(table) < head[26]:
            return Wholeness(Whole.INCOMPLETE, "ends in the middle of an Ogg page")
        size = 27 + head[26] + sum(table)
        if pos + size > r.size:
            return Wholeness(Whole.INCOMPLETE, "is cut off inside an Ogg page")
        pos, last_flags = pos + size, head[5]
    if not last_flags & 4:
        return Wholeness(Whole.INCOMPLETE, "has no end-of-stream page (still being written)")
    return WHOLE


def _flac(r: _Reader) -> Wholeness:
    return WHOLE  # structure is checked by decoding: frames carry CRCs, STREAMINFO the length


def _flac_samples(r: _Reader) -> int:
    """Total samples STREAMINFO promises (0 = unknown)."""
    info = r.at(0, 4 + 4 + 34)
    if info[:4] != b"fLaC" or len(info) < 42:
        return 0
    packed = int.from_bytes(info[8 + 10 : 8 + 18], "big")
    return packed & ((1 << 36) - 1)


def _decode_audio(r: _Reader, seconds: float, clock: Callable[[], float]) -> Wholeness:
    """Decode every packet; an error or a short FLAC means the file is not all there."""
    import av  # heavy: only when a compressed file is checked

    deadline, samples = clock() + seconds, 0
    try:
        with r.file() as fh, av.open(fh, "r") as container:
            if not container.streams.audio:
                return Wholeness(Whole.UNKNOWN, "has no audio stream")
            for packet in container.demux(container.streams.audio[0]):
                for frame in packet.decode():
                    samples += frame.samples
                if clock() > deadline:
                    return Wholeness(Whole.UNKNOWN, f"was not checked to the end in {seconds} s")
    except Exception as err:  # noqa: BLE001 - any decoder failure (PyAV raises several kinds)
        return Wholeness(
            Whole.INCOMPLETE, f"cannot be decoded to the end ({type(err).__name__}): "
            "it is cut off or damaged",
        )
    if samples == 0:
        return Wholeness(Whole.INCOMPLETE, "decodes to no audio yet")
    want = _flac_samples(r)
    if want and samples < want:
        return Wholeness(Whole.INCOMPLETE, f"decodes to {samples} of {want} samples")
    return WHOLE


# ---- images -------------------------------------------------------------------------------


def _png(r: _Reader) -> Wholeness:
    pos = 8
    while pos + 8 <= r.size:
        size, kind = struct.unpack(">I4s", r.at(pos, 8))
        if pos + 12 + size > r.size:
            return Wholeness(Whole.INCOMPLETE, f"is cut off inside its '{_name(kind)}' chunk")
        if kind == b"IEND":
            return WHOLE
        pos += 12 + size
    return Wholeness(Whole.INCOMPLETE, "has no end marker (IEND) yet")


def _jpeg(r: _Reader) -> Wholeness:
    tail = r.at(max(0, r.size - (1 << 20)), 1 << 20)  # the last scan and its end marker
    scan = tail.rfind(b"\xff\xda")
    eoi = tail.rfind(b"\xff\xd9")
    if eoi < 0 or (scan >= 0 and eoi < scan):
        return Wholeness(Whole.INCOMPLETE, "has no end-of-image marker yet")
    return WHOLE


def _decode_image(r: _Reader, seconds: float, clock: Callable[[], float]) -> Wholeness:
    from PIL import Image  # only when an image is checked

    try:
        with r.file() as fh, Image.open(fh) as img:
            if img.width * img.height > MAX_CHECK_PIXELS:
                return WHOLE  # too big to decode here; the limits check refuses it later
            img.load()
    except Image.DecompressionBombError:
        return WHOLE
    except (OSError, SyntaxError, ValueError) as err:
        text = str(err)
        if "truncated" in text or "broken data stream" in text:
            return Wholeness(Whole.INCOMPLETE, "is cut off (the image does not decode fully)")
        return Wholeness(Whole.UNKNOWN, "does not decode as an image")
    return WHOLE


# ---- format table ---------------------------------------------------------------------------


def _is_mp3(h: bytes) -> bool:
    return h[:3] == b"ID3" or (_mp3_frame(h[:4]) > 0 and (h[1] >> 1) & 3 != 0)


_CHECKS: list[tuple[Callable[[bytes], bool], Callable[[_Reader], Wholeness]]] = [
    (lambda h: h[:4] == b"RIFF" and h[8:12] in (b"WAVE", b"WEBP"), _riff),
    (lambda h: h[4:8] in _BMFF_TYPES, _bmff),
    (lambda h: h[:4] == b"fLaC", _flac),
    (lambda h: h[:4] == b"OggS", _ogg),
    (lambda h: h[:8] == b"\x89PNG\r\n\x1a\n", _png),
    (lambda h: h[:3] == b"\xff\xd8\xff", _jpeg),
    (lambda h: len(h) > 1 and h[0] == 0xFF and h[1] & 0xF6 == 0xF0, _adts),
    (_is_mp3, _mp3),
]
_DECODERS: dict[Callable[[_Reader], Wholeness], Callable[..., Wholeness]] = {
    _flac: _decode_audio,
    _ogg: _decode_audio,
    _adts: _decode_audio,
    _mp3: _decode_audio,
    _png: _decode_image,
    _jpeg: _decode_image,
}

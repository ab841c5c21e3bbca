"""Video round trip: exact 29.97 fps timing, H.264 + AAC + faststart, frames in order, cleanup."""

from __future__ import annotations

import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.errors import InputError, MediaError
from pipeline.media import encode
from pipeline.media.audio import load_audio
from pipeline.media.verify import top_level_boxes, verify_video
from pipeline.media.video import (
    VideoWriter,
    iter_frames,
    iter_frames_timed,
    pick_encoder,
    probe_video,
)
from tests.helpers.tolerance import assert_close

NTSC = Fraction(30000, 1001)
W, H = 64, 48


def _frame(i: int) -> np.ndarray:
    """Frame i shows i as the width of a white bar: decode order is visible in the pixels."""
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[:, : i % (W - 4) + 2] = 255
    return rgb


def _bar_width(rgb: np.ndarray) -> int:
    return int((rgb[H // 2, :, 0] > 128).sum())


def _tone(path: Path, seconds: float, rate: int = 44100) -> None:
    """A 440 Hz tone as a 16-bit wav, via PyAV."""
    n = int(round(seconds * rate))
    pcm = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / rate) * 32767).astype(np.int16)
    with av.open(str(path), "w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(pcm[None], format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 3 s clip at 29.97 fps (90 frames) with 3.0 s of audio, written by our writer."""
    root = tmp_path_factory.mktemp("clip")
    audio, video = root / "tone.wav", root / "clip.mp4"
    _tone(audio, 3.0)
    with VideoWriter(video, W, H, NTSC, audio_path=audio) as writer:
        for i in range(0, 90, 30):  # batches and single frames both work
            writer.write(np.stack([_frame(j) for j in range(i, i + 29)]))
            writer.write(_frame(i + 29))
    return video, audio


def test_clip_decodes_to_exact_frames_and_timestamps(clip: tuple[Path, Path]) -> None:
    video, _ = clip
    info = probe_video(video)
    assert info.fps == NTSC  # not 29, not 29.97 rounded
    assert (info.width, info.height, info.frames) == (W, H, 90)
    assert info.duration == pytest.approx(90 * 1001 / 30000, abs=1e-6)
    timed = list(iter_frames_timed(video))
    assert len(timed) == 90
    times = np.array([t for t, _ in timed])
    assert_close(times, np.arange(90) * 1001 / 30000, ulps=64, what="frame times")
    assert [_bar_width(f) for _, f in timed] == [_bar_width(_frame(i)) for i in range(90)]
    first = next(iter_frames(video))
    assert first.shape == (H, W, 3) and first.dtype == np.uint8


def test_written_video_verifies(clip: tuple[Path, Path]) -> None:
    video, audio = clip
    duration = load_audio(audio).duration
    info = verify_video(video, expect_frames=90, expect_duration=duration, fps=NTSC)
    assert (info.video_codec, info.audio_codec, info.pix_fmt) == ("h264", "aac", "yuv420p")
    assert info.audio_duration == pytest.approx(3.0, abs=1e-3)  # first sample to last
    boxes = top_level_boxes(video)
    assert boxes.index("moov") < boxes.index("mdat")
    # The muxed audio is the tone, not silence.
    muxed = load_audio(video)
    assert 0.15 < float(np.sqrt(np.mean(muxed.samples**2))) < 0.25


def test_verify_rejects_what_is_wrong(clip: tuple[Path, Path], tmp_path: Path) -> None:
    video, _ = clip
    with pytest.raises(MediaError, match="90 frames, expected 80"):
        verify_video(video, expect_frames=80)
    with pytest.raises(MediaError, match="lasts"):
        verify_video(video, expect_duration=3.5)
    with pytest.raises(MediaError, match="fps"):
        verify_video(video, fps=25)
    cut = tmp_path / "cut.mp4"  # the index is intact at the front; the media data is not
    cut.write_bytes(video.read_bytes()[:-500])
    with pytest.raises(MediaError, match="truncated"):
        verify_video(cut)
    silent = tmp_path / "silent.mp4"
    with VideoWriter(silent, W, H, 25) as writer:
        writer.write(np.stack([_frame(i) for i in range(5)]))
    with pytest.raises(MediaError, match="not AAC"):
        verify_video(silent)
    assert verify_video(silent, expect_frames=5, require_audio=False).frames == 5
    # The same streams without faststart: moov is written at the end.
    slow = tmp_path / "slow.mp4"
    with av.open(str(silent)) as src, av.open(str(slow), "w", format="mp4") as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    with pytest.raises(MediaError, match="not faststart"):
        verify_video(slow, require_audio=False)


def test_colours_survive_the_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "colour.mp4.partial"  # the daemon writes .partial, renames when verified
    colour = np.array([200, 100, 50], np.uint8)
    with VideoWriter(path, 32, 32, 25) as writer:
        writer.write(np.broadcast_to(colour, (3, 32, 32, 3)).copy())
    decoded = next(iter_frames(path))
    assert np.abs(decoded[16, 16].astype(int) - colour).max() <= 3
    assert verify_video(path, expect_frames=3, require_audio=False).frames == 3


def _encoder_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "facedrop-encoder"]


def test_exception_in_the_block_removes_the_partial_file(tmp_path: Path) -> None:
    path = tmp_path / "partial.mp4"
    with pytest.raises(KeyError), VideoWriter(path, W, H, 25) as writer:
        writer.write(_frame(0))
        raise KeyError("model failed")
    assert not path.exists()
    assert not _encoder_threads()


def test_encoder_errors_surface_and_clean_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    def broken(self: encode.EncoderJob, rgb: np.ndarray) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(encode.EncoderJob, "encode", broken)
    path = tmp_path / "full.mp4"
    with pytest.raises(MediaError, match="No space left") as info:  # noqa: PT012
        with VideoWriter(path, W, H, 25) as writer:
            for i in range(200):  # the error arrives on a later write (or on close)
                writer.write(_frame(i))
    assert isinstance(info.value.__cause__, OSError)
    assert not path.exists()
    assert not _encoder_threads()


def test_an_error_found_by_close_removes_the_file(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    existed: list[bool] = []

    def broken_finish(self: encode.EncoderJob) -> None:
        existed.append(self.path.exists())  # packets were already written
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(encode.EncoderJob, "finish", broken_finish)
    path = tmp_path / "late.mp4"
    writer = VideoWriter(path, W, H, 25)
    writer.open()
    writer.write(np.stack([_frame(i) for i in range(40)]))
    with pytest.raises(MediaError, match="No space left"):
        writer.close()
    assert existed == [True]
    assert not path.exists() and not _encoder_threads()


def test_writer_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="even"):
        VideoWriter(tmp_path / "odd.mp4", 63, 48, 25)
    with pytest.raises(InputError, match="no audio stream"):
        silent = tmp_path / "silent.mp4"
        with VideoWriter(silent, W, H, 25) as writer:
            writer.write(_frame(0))
        VideoWriter(tmp_path / "x.mp4", W, H, 25, audio_path=silent).open()
    with VideoWriter(tmp_path / "shape.mp4", W, H, 25) as writer:
        with pytest.raises(ValueError, match="shape"):
            writer.write(np.zeros((H, W + 2, 3), np.uint8))
        with pytest.raises(ValueError, match="uint8"):
            writer.write(np.zeros((H, W, 3), np.float32))
        writer.write(_frame(1))
    assert probe_video(tmp_path / "shape.mp4").frames == 1
    empty = tmp_path / "0.mp4"
    with pytest.raises(MediaError, match="no video frames"), VideoWriter(empty, W, H, 25):
        pass
    assert not empty.exists() and not _encoder_threads()


def test_bad_video_inputs(tmp_path: Path) -> None:
    text = tmp_path / "driver.mp4"
    text.write_bytes(b"definitely not a video " * 10)
    audio = tmp_path / "tone.wav"
    _tone(audio, 0.2)
    for path, words in [(text, "not a readable video"), (audio, "no video stream"),
                        (tmp_path / "missing.mov", "does not exist")]:
        with pytest.raises(InputError, match=words) as info:
            probe_video(path)
        assert str(path) in info.value.user_message()


def test_rotated_phone_video_comes_out_upright(tmp_path: Path) -> None:
    path = tmp_path / "phone.mp4"
    stored = np.zeros((32, 64, 3), np.uint8)
    stored[:, :32, 0] = 255  # left half red as stored
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(90)  # shown turned 90 degrees counter-clockwise
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(stored, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    info = probe_video(path)
    assert (info.width, info.height, info.rotation, info.frames) == (32, 64, 90, 3)
    upright = next(iter_frames(path))
    assert upright.shape == (64, 32, 3)
    # Turning counter-clockwise takes the stored left edge to the bottom.
    assert upright[-5, 16, 0] > 200 and upright[5, 16, 0] < 50


def test_pick_encoder() -> None:
    auto = pick_encoder("auto")
    assert auto in ("libx264", "h264_videotoolbox") and auto in av.codecs_available
    assert pick_encoder("libx264") == "libx264"
    with pytest.raises(MediaError, match="not in this FFmpeg build"):
        pick_encoder("h264_nonexistent")


def test_ntsc_rates_as_written_mean_the_exact_rates() -> None:
    from pipeline.media.video import exact_fps

    assert exact_fps(29.97) == Fraction(30000, 1001)
    assert exact_fps(23.976) == Fraction(24000, 1001)
    assert exact_fps(59.94) == Fraction(60000, 1001)
    assert exact_fps(25) == 25 and exact_fps(30) == 30 and exact_fps(12.5) == Fraction(25, 2)

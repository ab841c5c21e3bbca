"""Class 1 of issue 11: reading untrusted inbox files never blocks, exhausts or echoes them.

Every case is a real file: FIFOs from ``os.mkfifo``, links to ``/dev/zero``, a 50 MB job.yaml,
YAML alias bombs. Each read must come back within a few seconds with a typed ``InputError``
whose message is short.
"""

from __future__ import annotations

import os
import random
import string
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import InputError
from pipeline.media.wholeness import Whole, check_whole
from tests.helpers.daemon_harness import make_job, speech_clip, write_config
from watcher.config import Config, load_config
from watcher.jobfolder import parse_job_folder, read_job_yaml
from watcher.readiness import ReadinessTracker
from watcher.saferead import (
    JOB_YAML_MAX_BYTES,
    TooLargeError,
    UnsafeFileError,
    YamlShapeError,
    clip,
    load_yaml,
    read_bounded,
    sha256_regular,
)

BOUND = 5.0  # seconds any read may take here; a blocked read would take forever
MESSAGE_MAX = 600  # characters of a whole user message (problem, file, fix)

ALIAS_BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
face: [*g,*g,*g,*g,*g,*g,*g,*g,*g]
"""


@pytest.fixture
def fifos() -> Iterator[list[Path]]:
    """FIFOs made by a test; at teardown a writer opens each, so a blocked reader is freed."""
    made: list[Path] = []
    yield made
    for path in made:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
        except OSError:
            pass  # no reader was blocked on it: nothing to free


def mkfifo(path: Path, made: list[Path]) -> Path:
    os.mkfifo(path)
    made.append(path)
    return path


def bounded(fn: Callable[[], Any], seconds: float = BOUND) -> Any:
    """``fn()``'s result or exception, failing the test if it takes longer than ``seconds``."""
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(fn)
    try:
        return future.result(timeout=seconds)
    except FutureTimeout:
        raise AssertionError(f"the read did not return within {seconds} s (it blocked)") from None
    finally:
        pool.shutdown(wait=False)


def raises_within(fn: Callable[[], Any], kind: type[Exception] = InputError) -> InputError:
    """Run ``fn`` (bounded in time); it must raise ``kind`` with a short message."""

    def call() -> BaseException | None:
        try:
            fn()
        except BaseException as err:  # noqa: BLE001 - returned to the test thread for asserting
            return err
        return None

    err = bounded(call)
    assert isinstance(err, kind), f"expected {kind.__name__}, got {err!r}"
    assert isinstance(err, InputError)
    assert len(err.user_message()) < MESSAGE_MAX, err.user_message()[:200]
    return err


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.delenv("FACEDROP_CONFIG", raising=False)
    return load_config(write_config(tmp_path / "root"), home=tmp_path / "home")


@pytest.fixture
def job(tmp_path: Path, astronaut_path: Path, speech_path: Path) -> Path:
    clip_wav = speech_clip(speech_path, tmp_path / "clip.wav", 0.5)
    return make_job(tmp_path / "jobs", "j", astronaut_path, clip_wav)


def test_fifo_job_yaml_is_refused_without_blocking(job, config, fifos):
    (job / "job.yaml").unlink()
    mkfifo(job / "job.yaml", fifos)
    err = raises_within(lambda: read_job_yaml(job), UnsafeFileError)
    assert "named pipe" in err.problem and err.file == str(job / "job.yaml")
    raises_within(lambda: parse_job_folder(job, config), UnsafeFileError)


def test_link_to_dev_zero_is_refused_without_reading(job, config):
    (job / "job.yaml").unlink()
    (job / "job.yaml").symlink_to("/dev/zero")
    err = raises_within(lambda: read_job_yaml(job), UnsafeFileError)
    assert "outside the job folder" in err.problem


def test_link_inside_the_folder_to_a_fifo_is_refused(job, fifos):
    mkfifo(job / "pipe", fifos)
    (job / "job.yaml").unlink()
    (job / "job.yaml").symlink_to("pipe")
    raises_within(lambda: read_job_yaml(job), UnsafeFileError)


def test_fifo_named_like_a_recording_is_refused(job, config, fifos):
    (job / "voice.wav").unlink()
    mkfifo(job / "voice.wav", fifos)
    err = raises_within(lambda: parse_job_folder(job, config), UnsafeFileError)
    assert "voice.wav" in err.problem and "named pipe" in err.problem


def test_fifo_named_by_face_key_is_refused(job, config, fifos):
    mkfifo(job / "me.png", fifos)
    (job / "job.yaml").write_text("face: me.png\n")
    raises_within(lambda: parse_job_folder(job, config), UnsafeFileError)


def test_50_mb_job_yaml_is_refused_after_reading_a_few_kib(job):
    line = b"fps: 25\n"
    with (job / "job.yaml").open("wb") as fh:
        fh.write(line * (50 * 1024 * 1024 // len(line)))
    assert (job / "job.yaml").stat().st_size >= 50 * 1024 * 1024 - len(line)
    err = raises_within(lambda: read_job_yaml(job), TooLargeError)
    assert f"{JOB_YAML_MAX_BYTES} bytes" in err.problem


@pytest.mark.parametrize("target", ["/dev/zero", "/dev/urandom", "/dev/null"])
def test_manifest_never_hashes_a_device(job, config, target):
    (job / "blob.bin").symlink_to(target)
    (job / "job.yaml").write_text(f"files:\n  - {{name: blob.bin, sha256: '{'a' * 64}'}}\n")
    raises_within(lambda: parse_job_folder(job, config), UnsafeFileError)
    raises_within(lambda: sha256_regular(job / "blob.bin", job), UnsafeFileError)
    tracker = ReadinessTracker(0.0, 1, grace_seconds=0.0)
    verdict = bounded(lambda: tracker.check(job))
    assert verdict.ready  # waiting cannot help: claimed, so the parser fails it with the reason


def test_manifest_never_hashes_a_fifo(job, config, fifos):
    mkfifo(job / "blob.bin", fifos)
    (job / "job.yaml").write_text(f"files:\n  - {{name: blob.bin, sha256: '{'a' * 64}'}}\n")
    raises_within(lambda: parse_job_folder(job, config), UnsafeFileError)
    bounded(lambda: ReadinessTracker(0.0, 1).check(job))


def test_readiness_never_blocks_on_a_fifo_job_yaml(job, fifos):
    (job / "job.yaml").unlink()
    mkfifo(job / "job.yaml", fifos)
    tracker = ReadinessTracker(0.0, 1, grace_seconds=0.0)
    verdict = bounded(lambda: tracker.check(job))
    assert verdict.ready  # claimed now, to fail with "job.yaml is a named pipe"


def test_wholeness_never_opens_a_fifo_for_decoding(tmp_path, fifos):
    path = mkfifo(tmp_path / "voice.mp3", fifos)
    assert bounded(lambda: check_whole(path)).state is Whole.UNKNOWN


@pytest.mark.parametrize(
    "text",
    [
        ALIAS_BOMB,
        "face: &x me.png\naudio: *x\n",
        "files: &f [a.png]\n",
        "files:\n  - &e {name: a.png}\n  - *e\n",
        "<<: &m {fps: 25}\n",
    ],
)
def test_anchors_and_aliases_are_refused_before_expansion(job, text):
    (job / "job.yaml").write_text(text)
    err = raises_within(lambda: read_job_yaml(job), YamlShapeError)
    assert "anchor or alias" in err.problem


@pytest.mark.parametrize(
    "text", ["fps: " + "9" * 5000, "fps: 0x" + "f" * 5000, "face: 2001-13-45", "fps: !!float abc"]
)
def test_values_yaml_cannot_construct_are_refused(job, text):
    (job / "job.yaml").write_text(text)
    err = raises_within(lambda: read_job_yaml(job))
    assert "cannot be read" in err.problem or "not <a number of about 6020 digits>" in err.problem


def test_deep_nesting_is_refused(job):
    (job / "job.yaml").write_text("files: " + "[" * 2000 + "]" * 2000 + "\n")
    raises_within(lambda: read_job_yaml(job), YamlShapeError)


def test_huge_values_are_clipped_in_messages(job, config):
    long = "x" * 10_000
    for text in (
        f"face: {long}.png\n",
        f"{long}: 1\n",
        f"fps: '{long}'\n",
        f"files: [{{name: a, size: '{long}'}}]\n",
        "files: [" + ", ".join(["[1]"] * 3000) + "]\n",
    ):
        (job / "job.yaml").write_text(text)
        raises_within(lambda: parse_job_folder(job, config))


def test_clip_bounds_any_value():
    assert len(clip("y" * 10**6)) <= 80
    assert len(clip(list(range(10**6)))) <= 80
    nested: list[Any] = []
    for _ in range(5000):
        nested = [nested]
    assert len(clip([nested])) <= 80


def test_read_bounded_reads_a_regular_file(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"hello")
    assert read_bounded(tmp_path / "a.txt", tmp_path, 5) == b"hello"
    with pytest.raises(TooLargeError):
        read_bounded(tmp_path / "a.txt", tmp_path, 4)


def _random_yaml(rng: random.Random) -> str:
    """Hostile job.yaml text: random keys, values, anchors, aliases, tags, bytes and nesting."""
    pieces = [
        "face: ", "audio: ", "files: ", "fps: ", "lipsync: ", "- ", "&a ", "*a ",
        "!!python/name:os.system ",
        "[", "]", "{", "}", ": ", "\n", "  ", "'", '"', "0" * 64, "1e5", "~", "yes", "null", ",",
        "? ", "|\n  ", ">\n  ", "%YAML 1.1\n", "---\n", "...\n", "\t", "\\u0000",
        "9" * 5000, "0x" + "f" * 5000, "2001-13-45", "!!float abc ", "!!binary ", "!!set ",
        "!!timestamp ", "0b" + "1" * 9000,
    ]
    out = []
    for _ in range(rng.randint(1, 40)):
        if rng.random() < 0.7:
            out.append(rng.choice(pieces))
        else:
            out.append("".join(rng.choice(string.printable) for _ in range(rng.randint(1, 12))))
    return "".join(out)


def _parse_both(text: str, job: Path) -> InputError | None:
    try:
        load_yaml(text, job / "job.yaml")
        read_job_yaml(job)
    except InputError as err:
        return err
    return None


def test_hostile_job_yaml_texts_give_a_typed_error_or_a_job(job, config):
    """300 generated job.yaml texts: each parses or raises InputError, quickly, short message."""
    rng = random.Random(11)
    outcomes = {"ok": 0, "refused": 0}
    for _ in range(300):
        text = _random_yaml(rng)
        (job / "job.yaml").write_text(text, encoding="utf-8", errors="replace")

        err = bounded(lambda text=text: _parse_both(text, job))
        if err is None:
            outcomes["ok"] += 1
        else:
            assert isinstance(err, InputError), repr(err)
            assert len(err.user_message()) < MESSAGE_MAX
            outcomes["refused"] += 1
    assert outcomes["refused"] > 100  # the generator does reach the refusals


ODD_NAMES = ["face.png", "voice.wav", "job.yaml", "x.png", "y.mp3", "d.mp4", "z"]


def _spoil(folder: Path, name: str, rng: random.Random, fifos: list[Path]) -> None:
    """Put one odd entry at ``name`` in a job folder, as a hostile or confused submitter would."""
    target = folder / name
    if os.path.lexists(target):
        target.unlink()
    kind = rng.choice(["fifo", "loop", "broken", "dev", "dir", "outside", "inside", "empty"])
    if kind == "fifo":
        mkfifo(target, fifos)
    elif kind == "loop":
        target.symlink_to(target.name + ".other")
        (folder / (target.name + ".other")).symlink_to(target.name)
    elif kind == "broken":
        target.symlink_to("nowhere")
    elif kind == "dev":
        target.symlink_to(rng.choice(["/dev/zero", "/dev/null", "/dev/urandom"]))
    elif kind == "dir":
        target.mkdir()
    elif kind == "outside":
        target.symlink_to(folder.parent)
    elif kind == "inside":
        target.symlink_to(".")
    else:
        target.write_bytes(b"")


def test_generated_odd_entries_give_a_job_or_a_typed_error_never_a_hang(
    tmp_path, config, astronaut_path, speech_path, fifos
):
    """120 job folders, each with 1-3 odd entries: parse and readiness return in time, and
    anything that escapes is an InputError with a short message."""
    rng = random.Random(1)
    voice = speech_clip(speech_path, tmp_path / "v.wav", 0.3)
    refused = 0
    for i in range(120):
        folder = make_job(tmp_path / "many", f"j{i}", astronaut_path, voice)
        for name in rng.sample(ODD_NAMES, rng.randint(1, 3)):
            _spoil(folder, name, rng, fifos)
        verdict = bounded(lambda f=folder: ReadinessTracker(0.0, 1, grace_seconds=0.0).check(f))
        assert verdict.reason is not None
        err = bounded(lambda f=folder: _parse_or_error(f, config))
        if err is not None:
            assert isinstance(err, InputError), repr(err)
            assert len(err.user_message()) < MESSAGE_MAX
            refused += 1
    assert refused > 60


def _parse_or_error(folder: Path, config: Config) -> BaseException | None:
    try:
        parse_job_folder(folder, config)
    except Exception as err:  # noqa: BLE001 - the test asserts what kind it is
        return err
    return None

"""Class 3 of issue 11: every inbox entry gets a verdict and a reason; a .zip is a job.

Real inboxes in tmp_path with every kind of entry a user's Finder, phone or mail client leaves
there; real zips written with ``zipfile``, including hostile ones (``../``, absolute names,
symlinks, a 1000:1 bomb, too many members, cut-off archives).
"""

from __future__ import annotations

import os
import random
import stat
import unicodedata
import zipfile
from pathlib import Path

import pytest

from pipeline.errors import InputError
from tests.helpers.daemon_harness import make_job, speech_clip, write_config
from watcher.config import load_config
from watcher.inbox_scan import InboxScanner, Kind, Verdict
from watcher.jobfolder import parse_job_folder
from watcher.jobzip import (
    ZipJobError,
    ZipLimits,
    ZipNotAJobError,
    ZipTooLargeError,
    ZipUnsafeError,
    unpack_job_zip,
)
from watcher.names import utf8_len
from watcher.readiness import ReadinessTracker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def voice(tmp_path: Path, speech_path: Path) -> Path:
    return speech_clip(speech_path, tmp_path / "v.wav", 0.5)


def zip_folder(folder: Path, dest: Path, *, top: bool = True) -> Path:
    """``folder`` zipped as Finder does (one top folder) or with its files at the top."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder.parent if top else folder)
            zf.write(path, rel.as_posix())
    return dest


def raw_zip(dest: Path, members: list[tuple[str, bytes, int]]) -> Path:
    """A zip with exactly these (name, data, unix mode) members, whatever they say."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return dest


def test_every_kind_of_inbox_entry_gets_a_verdict_and_a_reason(
    tmp_path, astronaut_path, voice
):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    make_job(inbox, "ready", astronaut_path, voice)
    no_audio = make_job(inbox, "no-audio", astronaut_path, voice)
    (no_audio / "voice.wav").unlink()
    make_job(inbox, "bad-hash", astronaut_path, voice,
                        f"files:\n  - {{name: voice.wav, sha256: '{'ab' * 32}'}}\n")
    zip_folder(make_job(tmp_path / "z", "zipped", astronaut_path, voice), inbox / "zipped.zip")
    data = (inbox / "zipped.zip").read_bytes()
    (inbox / "cut.zip").write_bytes(data[: len(data) // 2])
    (inbox / "photo.jpg").write_bytes(astronaut_path.read_bytes())
    (inbox / "voice.wav").write_bytes(voice.read_bytes())
    (inbox / "job.yaml").write_text("")
    (inbox / "notes.txt").write_text("hello")
    (inbox / "movie.zip.crdownload").write_bytes(b"PK")
    (inbox / ".DS_Store").write_bytes(b"\0")
    (inbox / ".hidden").mkdir()
    (inbox / "empty").mkdir()
    (inbox / "linked").symlink_to(make_job(tmp_path / "elsewhere", "real", astronaut_path, voice))
    holder = inbox / "two-jobs"
    make_job(holder, "a", astronaut_path, voice)
    make_job(holder, "b", astronaut_path, voice)
    os.mkfifo(inbox / "pipe")

    clock = Clock()
    scanner = InboxScanner(ReadinessTracker(0.5, 2, grace_seconds=10.0, clock=clock), clock=clock)
    for _ in range(4):  # settle
        entries = scanner.scan(inbox)
        clock.now += 0.5
    got = {e.name: (e.kind, e.verdict) for e in entries}
    assert got == {
        ".DS_Store": (Kind.FILE, Verdict.IGNORED),
        ".hidden": (Kind.FOLDER, Verdict.IGNORED),
        "bad-hash": (Kind.FOLDER, Verdict.WAITING),
        "cut.zip": (Kind.ZIP, Verdict.WAITING),
        "empty": (Kind.FOLDER, Verdict.WAITING),
        "job.yaml": (Kind.FILE, Verdict.IGNORED),
        "linked": (Kind.LINK, Verdict.IGNORED),
        "movie.zip.crdownload": (Kind.FILE, Verdict.WAITING),
        "no-audio": (Kind.FOLDER, Verdict.WAITING),
        "notes.txt": (Kind.FILE, Verdict.IGNORED),
        "photo.jpg": (Kind.FILE, Verdict.IGNORED),
        "pipe": (Kind.SPECIAL, Verdict.IGNORED),
        "ready": (Kind.FOLDER, Verdict.READY),
        "two-jobs": (Kind.FOLDER, Verdict.IGNORED),
        "voice.wav": (Kind.FILE, Verdict.IGNORED),
        "zipped.zip": (Kind.ZIP, Verdict.READY),
    }
    reasons = {e.name: e.reason for e in entries}
    assert all(reasons[n] for n in reasons if n != "ready")  # every non-ready entry says why
    assert "a loose photo" in reasons["photo.jpg"]
    assert "2 job folders (a, b)" in reasons["two-jobs"]
    assert "link" in reasons["linked"]
    assert "audio file" in reasons["no-audio"]
    assert "sha256" in reasons["bad-hash"]
    assert "table of contents" in reasons["cut.zip"]
    assert all(e.line().startswith(e.name) for e in entries)

    clock.now += 11.0  # past the grace period, nothing changed
    after = {e.name: e for e in scanner.scan(inbox)}
    for name in ("no-audio", "bad-hash", "cut.zip"):
        entry = after[name]
        assert entry.verdict is Verdict.FAILED, name
        assert isinstance(entry.error, InputError)
        message = entry.error.user_message()
        assert "Fix:" in message and str(entry.path) in message
    assert after["empty"].verdict is Verdict.WAITING  # not a job: never moved to the outbox
    assert after["ready"].verdict is Verdict.READY


def test_scanning_a_missing_inbox_finds_nothing(tmp_path):
    assert InboxScanner(ReadinessTracker(0.1, 2)).scan(tmp_path / "nope") == []


# ---- unpacking -------------------------------------------------------------------------------


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.delenv("FACEDROP_CONFIG", raising=False)
    return load_config(write_config(tmp_path / "root"), home=tmp_path / "home")


@pytest.mark.parametrize("top", [True, False])
def test_a_zipped_job_unpacks_to_a_job_that_parses(tmp_path, config, astronaut_path, voice, top):
    job = make_job(tmp_path / "src", "hello", astronaut_path, voice, "fps: 25\n")
    (job / ".DS_Store").write_bytes(b"\0")
    archive = zip_folder(job, tmp_path / "phone-upload.zip", top=top)
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("__MACOSX/._face.png", b"resource fork")
    folder = unpack_job_zip(archive, tmp_path / "staging")
    assert folder.name == ("hello" if top else "phone-upload")
    assert sorted(p.name for p in folder.iterdir()) == ["face.png", "job.yaml", "voice.wav"]
    assert (folder / "voice.wav").read_bytes() == voice.read_bytes()
    assert parse_job_folder(folder, config).audio_seconds == pytest.approx(0.5, abs=0.01)
    assert [p.name for p in (tmp_path / "staging").iterdir()] == [folder.name]


@pytest.mark.parametrize(
    "member",
    ["../evil.txt", "job/../../evil.txt", "/tmp/evil.txt", "C:/evil.txt", "a\\..\\evil.txt"],
)
def test_a_member_escaping_the_folder_is_refused_and_nothing_is_written(tmp_path, member):
    archive = raw_zip(tmp_path / "x.zip", [("job.yaml", b"", 0o100644), (member, b"x", 0o100644)])
    dest = tmp_path / "staging"
    with pytest.raises(ZipUnsafeError, match="outside the job folder"):
        unpack_job_zip(archive, dest)
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/evil.txt").exists()
    assert list(dest.iterdir()) == []


def test_a_symlink_member_is_refused(tmp_path):
    archive = raw_zip(
        tmp_path / "x.zip",
        [("job.yaml", b"", 0o100644), ("face.png", b"/etc/passwd", stat.S_IFLNK | 0o777)],
    )
    with pytest.raises(ZipUnsafeError, match="link"):
        unpack_job_zip(archive, tmp_path / "staging")
    assert list((tmp_path / "staging").iterdir()) == []


def test_a_zip_bomb_stops_at_the_ratio_bound(tmp_path):
    archive = raw_zip(
        tmp_path / "bomb.zip",
        [("job.yaml", b"", 0o100644), ("voice.wav", bytes(200 * 1024 * 1024), 0o100644)],
    )
    assert archive.stat().st_size < 1024 * 1024
    with pytest.raises(ZipTooLargeError, match="zip bomb"):
        unpack_job_zip(archive, tmp_path / "staging")
    assert list((tmp_path / "staging").iterdir()) == []


def test_total_size_and_member_count_are_bounded(tmp_path):
    noise = random.Random(1).randbytes(50_000)
    archive = raw_zip(
        tmp_path / "big.zip", [("job.yaml", b"", 0o100644), ("a.wav", noise, 0o100644)]
    )
    with pytest.raises(ZipTooLargeError, match="unpacks to more than"):
        unpack_job_zip(archive, tmp_path / "s1", ZipLimits(max_total_bytes=20_000))
    many = raw_zip(
        tmp_path / "many.zip", [(f"f{i}.txt", b"x", 0o100644) for i in range(300)]
    )
    with pytest.raises(ZipTooLargeError, match="entries"):
        unpack_job_zip(many, tmp_path / "s2")


def test_layouts_that_are_not_one_job(tmp_path, astronaut_path, voice):
    two = tmp_path / "two"
    make_job(two, "a", astronaut_path, voice)
    make_job(two, "b", astronaut_path, voice)
    archive = tmp_path / "two.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(two.rglob("*")):
            zf.write(path, path.relative_to(two).as_posix())
    with pytest.raises(ZipNotAJobError, match="2 job folders"):
        unpack_job_zip(archive, tmp_path / "s1")
    bare = raw_zip(tmp_path / "bare.zip", [("face.png", b"x" * 20, 0o100644)])
    with pytest.raises(ZipNotAJobError, match="no job.yaml"):
        unpack_job_zip(bare, tmp_path / "s2")


def test_the_same_name_twice_in_nfc_and_nfd_is_refused(tmp_path):
    archive = raw_zip(
        tmp_path / "dup.zip",
        [
            ("job.yaml", b"", 0o100644),
            (unicodedata.normalize("NFC", "Café.wav"), b"1", 0o100644),
            (unicodedata.normalize("NFD", "Café.wav"), b"2", 0o100644),
        ],
    )
    with pytest.raises(ZipUnsafeError, match="twice"):
        unpack_job_zip(archive, tmp_path / "staging")


def test_every_cut_of_a_zip_is_a_typed_error_and_leaves_nothing(tmp_path, astronaut_path, voice):
    archive = zip_folder(make_job(tmp_path / "src", "j", astronaut_path, voice), tmp_path / "j.zip")
    data = archive.read_bytes()
    rng = random.Random(3)
    cut = tmp_path / "cut.zip"
    dest = tmp_path / "staging"
    for offset in sorted({rng.randrange(0, len(data)) for _ in range(80)} | {len(data) - 1}):
        cut.write_bytes(data[:offset])
        with pytest.raises(ZipJobError):
            unpack_job_zip(cut, dest)
        assert list(dest.iterdir()) == [], offset


def test_a_250_byte_zip_name_gives_a_fitted_folder_name(tmp_path):
    name = "ж" * 124 + ".zip"  # 252 bytes
    archive = raw_zip(tmp_path / name, [("job.yaml", b"", 0o100644)])
    folder = unpack_job_zip(archive, tmp_path / "staging")
    assert folder.is_dir() and utf8_len(folder.name) <= 255
    folder2 = raw_zip(tmp_path / "b.zip", [("job.yaml", b"", 0o100644)])
    assert unpack_job_zip(folder2, tmp_path / "staging").name == "b"

"""Issue 20, local intake defects 4-8 and 10: each test reproduces a defect found by the hostile
round (and failed before its fix).

4. a size-only manifest and audio preallocated to full size, written on with its mtime held:
   claimed early from zero-filled audio;
5. a streaming WAV (0xFFFFFFFF sizes) refused as "still being recorded";
6. a ``.gitkeep`` (any unknown dotfile) blocking a job until the grace period ends;
7. ``files: face.png`` read letter by letter; a job.yaml of wrong types failing only after the
   grace period and naming one key;
8. ``facedrop status`` listing 500 inbox entries and not saying how many more there are;
10. a 0.01 s recording ending "done".
"""

from __future__ import annotations

import itertools
import json
import os
import struct
from pathlib import Path

import pytest

from pipeline.errors import InputError
from pipeline.media.wholeness import Whole, check_whole
from tests.helpers.daemon_harness import facedrop, make_job, speech_clip, write_config
from tests.helpers.media_samples import write_audio
from watcher.config import Config, load_config
from watcher.inbox_scan import InboxScanner, Verdict
from watcher.jobfolder import JOB_KEYS, MIN_AUDIO_SECONDS, parse_job_folder, validate_job_keys
from watcher.readiness import ReadinessTracker, ReadyState
from watcher.runtime import MAX_ENTRIES, RuntimeFile


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run_checks(tracker: ReadinessTracker, folder: Path, clock: Clock, seconds: float,
               between: object = None) -> list:
    """A check every 0.5 s of injected time; ``between()`` runs after each check."""
    verdicts = []
    for _ in range(int(seconds / 0.5)):
        verdicts.append(tracker.check(folder))
        if callable(between):
            between()
        clock.now += 0.5
    return verdicts


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.delenv("FACEDROP_CONFIG", raising=False)
    return load_config(write_config(tmp_path / "root"), home=tmp_path / "home")


@pytest.fixture
def voice(tmp_path: Path, speech_path: Path) -> Path:
    return speech_clip(speech_path, tmp_path / "full.wav", 1.0)


# ---- 4: writes that go on at full size, mtime held -----------------------------------------


def test_4_preallocated_audio_written_with_its_mtime_held_is_not_claimed(
    tmp_path, config, astronaut_path, voice
):
    """The writer preallocates voice.wav to its full size (the manifest's size is met at once),
    writes its header, then fills it 8 KiB per check and sets the mtime back each time (as an
    mmap writer or a copier that restores mtimes does). It must wait while bytes change."""
    full = voice.read_bytes()
    folder = make_job(tmp_path / "in", "prealloc", astronaut_path, voice,
                      f"files:\n  - {{name: voice.wav, size: {len(full)}}}\n  - face.png\n")
    path = folder / "voice.wav"
    path.write_bytes(full[:44] + bytes(len(full) - 44))  # header + reserved zeros
    held = os.stat(path).st_mtime_ns
    written = [44]

    def write_more() -> None:
        end = min(len(full), written[0] + 8192)
        with path.open("r+b") as fh:
            fh.seek(written[0])
            fh.write(full[written[0]:end])
        written[0] = end
        os.utime(path, ns=(held, held))

    clock = Clock()
    tracker = ReadinessTracker(0.5, 3, grace_seconds=300.0, clock=clock)
    verdicts = run_checks(tracker, folder, clock, 2.0, between=write_more)  # 4 checks
    assert written[0] < len(full)  # still writing when the settle window has passed
    assert not any(v.ready for v in verdicts), [v.reason for v in verdicts]
    while written[0] < len(full):
        assert not tracker.check(folder).ready
        write_more()
        clock.now += 0.5
    verdicts = run_checks(tracker, folder, clock, 2.0)
    assert verdicts[-1].state is ReadyState.READY
    assert parse_job_folder(folder, config).audio_seconds == pytest.approx(1.0, abs=0.01)


def test_4_a_still_file_is_never_held_by_its_content_sample(tmp_path, astronaut_path, voice):
    folder = make_job(tmp_path / "in", "still", astronaut_path, voice)
    clock = Clock()
    tracker = ReadinessTracker(0.5, 3, clock=clock)
    assert [v.ready for v in run_checks(tracker, folder, clock, 1.5)] == [False, False, True]


# ---- 5: streaming WAV headers --------------------------------------------------------------


def streaming_wav(src: Path, dest: Path, cut: int = 0) -> Path:
    """``src`` (a plain 44-byte-header WAV) with both sizes 0xFFFFFFFF, as FFmpeg writes to a
    pipe; ``cut`` bytes dropped from the end."""
    data = bytearray(src.read_bytes())
    assert data[36:40] == b"data"
    data[4:8] = struct.pack("<I", 0xFFFFFFFF)
    data[40:44] = struct.pack("<I", 0xFFFFFFFF)
    dest.write_bytes(bytes(data[: len(data) - cut] if cut else data))
    return dest


def test_5_a_streaming_wav_whose_data_is_whole_is_accepted(
    tmp_path, config, astronaut_path, voice
):
    folder = make_job(tmp_path / "in", "stream", astronaut_path, voice)
    streaming_wav(voice, folder / "voice.wav")
    assert check_whole(folder / "voice.wav").state is Whole.WHOLE
    clock = Clock()
    tracker = ReadinessTracker(0.5, 3, grace_seconds=30.0, clock=clock)
    assert run_checks(tracker, folder, clock, 1.5)[-1].state is ReadyState.READY
    assert parse_job_folder(folder, config).audio_seconds == pytest.approx(1.0, abs=0.01)


def test_5_a_streaming_wav_cut_inside_a_sample_is_incomplete(tmp_path, voice):
    path = streaming_wav(voice, tmp_path / "voice.wav", cut=1)  # 16-bit mono: half a sample
    assert check_whole(path).state is Whole.INCOMPLETE
    header_only = tmp_path / "h.wav"
    header_only.write_bytes(path.read_bytes()[:44])
    assert check_whole(header_only).state is Whole.INCOMPLETE


# ---- 6: hidden files that are not inputs ---------------------------------------------------

HIDDEN_LITTER = [".gitkeep", ".DS_Store", "._face.png", ".dropbox", ".dropbox.attr",
                 ".dropbox.cache", "Icon\r", ".localized", ".directory", ".nomedia"]
REAL_PARTIALS = [".voice.wav.Xy12Ab", ".face.png.tmp", "voice.wav.partial", ".~lock.job.yaml#",
                 ".syncthing.voice.wav.tmp", ".in.voice.wav.", ".job.yaml.swp", "~$voice.wav"]


@pytest.mark.parametrize("name", HIDDEN_LITTER)
def test_6_hidden_litter_does_not_hold_a_job(tmp_path, astronaut_path, voice, name):
    folder = make_job(tmp_path / "in", "litter", astronaut_path, voice)
    litter = folder / name
    if name.endswith(".cache"):
        litter.mkdir()
        (litter / "blob").write_bytes(b"x" * 10)
    else:
        litter.write_bytes(b"\0")
    clock = Clock()
    tracker = ReadinessTracker(0.5, 3, grace_seconds=60.0, clock=clock)
    assert run_checks(tracker, folder, clock, 1.5)[-1].state is ReadyState.READY


@pytest.mark.parametrize("name", REAL_PARTIALS)
def test_6_partial_and_temp_names_still_hold_a_job(tmp_path, astronaut_path, voice, name):
    folder = make_job(tmp_path / "in", "partial", astronaut_path, voice)
    (folder / name).write_bytes(b"x")
    clock = Clock()
    tracker = ReadinessTracker(0.5, 3, grace_seconds=60.0, clock=clock)
    verdicts = run_checks(tracker, folder, clock, 5.0)
    assert not any(v.ready for v in verdicts)
    assert "temporary file" in verdicts[-1].reason


# ---- 7: job.yaml types, every bad key, at once ----------------------------------------------

WRONG = {  # one value of each YAML type
    "str": "face.png", "int": 3, "float": 2.5, "bool": True, "list": ["a.png"],
    "dict": {"a": 1}, "null": None,
}


def wrong_values(key: str) -> list[tuple[str, object]]:
    types = JOB_KEYS[key][0]
    return [(kind, value) for kind, value in WRONG.items()
            if not (isinstance(value, types) and (bool in types or not isinstance(value, bool)))]


CASES = [(key, kind, value) for key in JOB_KEYS for kind, value in wrong_values(key)]


def test_7_every_key_has_generated_wrong_types():
    assert {key for key, _, _ in CASES} == set(JOB_KEYS)
    assert len(CASES) >= 4 * len(JOB_KEYS)


@pytest.mark.parametrize(("key", "kind", "value"), CASES,
                         ids=[f"{k}-{t}" for k, t, _ in CASES])
def test_7_a_wrong_type_names_its_key(key, kind, value):
    with pytest.raises(InputError) as info:
        validate_job_keys({key: value}, "job.yaml")
    assert f"'{key}'" in info.value.problem


@pytest.mark.parametrize("size", [2, 3, len(JOB_KEYS)])
def test_7_every_bad_key_is_named_at_once(size):
    """Generated combinations of wrong keys: one error naming all of them, never just one."""
    for keys in itertools.islice(itertools.combinations(JOB_KEYS, size), 40):
        data = {key: wrong_values(key)[0][1] for key in keys} | {"colour": "red"}
        with pytest.raises(InputError) as info:
            validate_job_keys(data, "job.yaml")
        problem = info.value.problem
        assert f"{size + 1} wrong settings" in problem
        for key in keys:
            assert f"'{key}'" in problem, (keys, problem)
        assert "unknown key 'colour'" in problem


def test_7_files_as_a_string_fails_at_once_not_after_the_grace_period(
    tmp_path, astronaut_path, voice
):
    folder = make_job(tmp_path / "in", "str-files", astronaut_path, voice, "files: face.png\n")
    clock = Clock()
    scanner = InboxScanner(ReadinessTracker(0.5, 3, grace_seconds=120.0, clock=clock),
                           clock=clock)
    seen = []
    for _ in range(4):  # the settle window, not the 120 s grace
        seen.append(scanner.classify(folder))
        clock.now += 0.5
    assert all("'f'" not in e.reason for e in seen), [e.reason for e in seen]
    failed = [e for e in seen if e.verdict is Verdict.FAILED]
    assert failed, [e.line() for e in seen]
    assert failed[0].error is not None
    assert "'files' in job.yaml must be a list" in failed[0].error.problem


def test_7_all_keys_wrong_fail_at_once_naming_every_key(tmp_path, astronaut_path, voice):
    text = "".join(f"{key}: {json.dumps(wrong_values(key)[0][1])}\n" for key in JOB_KEYS)
    folder = make_job(tmp_path / "in", "all-wrong", astronaut_path, voice, text)
    clock = Clock()
    tracker = ReadinessTracker(0.5, 3, grace_seconds=120.0, clock=clock)
    verdict = run_checks(tracker, folder, clock, 1.5)[-1]
    assert verdict.state is ReadyState.INVALID
    assert verdict.invalid is not None
    for key in JOB_KEYS:
        assert f"'{key}'" in verdict.invalid.problem


def test_7_a_job_yaml_still_being_written_is_not_judged(tmp_path, astronaut_path, voice):
    """``enhance: fa`` (a write caught half-way) must not fail the job while job.yaml changes."""
    folder = make_job(tmp_path / "in", "half", astronaut_path, voice, "enhance: fa")
    clock = Clock()
    tracker = ReadinessTracker(0.5, 3, grace_seconds=120.0, clock=clock)
    assert tracker.check(folder).state is ReadyState.WAITING
    clock.now += 0.5
    (folder / "job.yaml").write_text("enhance: false\n")
    assert [v.state for v in run_checks(tracker, folder, clock, 1.5)][-1] is ReadyState.READY


# ---- 8: status says how many entries it did not list ----------------------------------------


def test_8_status_counts_the_inbox_entries_it_does_not_list(tmp_path):
    config = write_config(tmp_path / "root")
    home = tmp_path / "home"
    inbox = tmp_path / "root" / "inbox"
    inbox.mkdir(parents=True)
    for i in range(MAX_ENTRIES + 37):
        (inbox / f"photo{i:04d}.png").write_bytes(b"")
    text = facedrop(config, home, "status")
    assert text.returncode == 0, text.stderr
    assert "and 37 more inbox entries" in text.stdout
    data = json.loads(facedrop(config, home, "status", "--json").stdout)
    assert len(data["inbox"]) == MAX_ENTRIES and data["inbox_more"] == 37


def test_8_the_running_daemons_count_reaches_status(tmp_path, monkeypatch):
    from watcher.inbox_scan import InboxEntry, Kind
    from watcher.status import status_report

    state = tmp_path / "state"
    state.mkdir()
    entries = [InboxEntry(f"e{i}", tmp_path / f"e{i}", Kind.FILE, Verdict.IGNORED, "loose")
               for i in range(MAX_ENTRIES + 5)]
    runtime = RuntimeFile(state)
    runtime.write([], entries)
    monkeypatch.setattr("watcher.status.running_daemon_pid", lambda s: os.getpid())
    report = status_report(state, tmp_path / "inbox", 5)
    runtime.close()
    assert len(report["inbox"]) == MAX_ENTRIES and report["inbox_more"] == 5


# ---- 10: a recording too short to animate --------------------------------------------------


@pytest.mark.parametrize("seconds", [0.01, 0.1, 0.19])
def test_10_audio_below_the_minimum_is_refused_naming_the_file(
    tmp_path, config, astronaut_path, seconds
):
    short = write_audio(tmp_path / "short.wav", seconds)
    folder = make_job(tmp_path / "in", "short", astronaut_path, short)
    with pytest.raises(InputError) as info:
        parse_job_folder(folder, config)
    text = info.value.user_message()
    assert "voice.wav" in text and f"at least {MIN_AUDIO_SECONDS:g} s" in text
    assert "Fix:" in text


def test_10_audio_at_the_minimum_is_accepted(tmp_path, config, astronaut_path):
    ok = write_audio(tmp_path / "ok.wav", MIN_AUDIO_SECONDS + 0.01)
    folder = make_job(tmp_path / "in", "ok", astronaut_path, ok)
    assert parse_job_folder(folder, config).audio_seconds >= MIN_AUDIO_SECONDS

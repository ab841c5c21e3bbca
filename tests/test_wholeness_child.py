"""The readiness check's decoding runs in a child: a decoder that segfaults, aborts or hangs on
an inbox file costs that check, never the daemon (issue 20: isolation)."""

from __future__ import annotations

import ctypes
import os
import time
import wave
from pathlib import Path

import numpy as np

from pipeline.media.wholeness import Whole, Wholeness, check_whole
from watcher.wholeness_child import IsolatedWholeness


def segfaults_on_crash_names(path: Path) -> Wholeness:
    """A checker that crashes natively on files named ``crash*``, as a broken decoder would."""
    if path.name.startswith("crash"):
        ctypes.string_at(0)  # a NULL read: SIGSEGV
    if path.name.startswith("abort"):
        os.abort()
    if path.name.startswith("hang"):
        time.sleep(60)
    return check_whole(path)


def _wav(path: Path) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.sin(np.arange(8000) / 9.0) * 8000).astype(np.int16).tobytes())
    return path


def test_a_native_crash_or_abort_is_the_files_verdict_and_the_next_check_works(tmp_path):
    good = _wav(tmp_path / "voice.wav")
    check = IsolatedWholeness(segfaults_on_crash_names, answer_seconds=20)
    try:
        assert check(good) == check_whole(good) == Wholeness(Whole.WHOLE)
        for name in ("crash.wav", "abort.wav"):
            verdict = check(_wav(tmp_path / name))
            assert verdict.state is Whole.UNKNOWN and "crashed" in verdict.reason
            assert check(good).state is Whole.WHOLE  # a fresh child took over
    finally:
        check.close()


def test_a_hung_check_is_cut_off_and_its_child_replaced(tmp_path):
    good = _wav(tmp_path / "voice.wav")
    check = IsolatedWholeness(segfaults_on_crash_names, answer_seconds=3)
    try:
        assert check(good).state is Whole.WHOLE  # the child is up (spawn's start-up is paid)
        started = time.monotonic()
        verdict = check(_wav(tmp_path / "hang.wav"))
        assert verdict.state is Whole.UNKNOWN and "did not finish" in verdict.reason
        assert time.monotonic() - started < 10
        assert check(good).state is Whole.WHOLE
    finally:
        check.close()


def test_close_leaves_no_child(tmp_path):
    import multiprocessing

    def ours() -> list[str]:
        return [p.name for p in multiprocessing.active_children()
                if p.name == "facedrop-wholeness"]

    check = IsolatedWholeness()
    check(_wav(tmp_path / "voice.wav"))
    assert ours() == ["facedrop-wholeness"]
    check.close()
    assert ours() == []

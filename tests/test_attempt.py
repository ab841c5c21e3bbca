"""The verdict table of ``watcher.attempt``: every kind of error, one verdict, one message."""

from __future__ import annotations

import errno
import signal
from pathlib import Path

import pytest

from pipeline.device import DeviceUnavailableError
from pipeline.errors import Cancelled, InputError, MediaError, WeightsError
from tests.helpers.daemon_harness import write_config
from watcher.attempt import AttemptRequest, Context, Verdict, WorkerCrashed, judge
from watcher.config import load_config
from watcher.faults import FaultKind, Places


@pytest.fixture
def setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[AttemptRequest, Places]:
    monkeypatch.delenv("FACEDROP_CONFIG", raising=False)
    config = load_config(write_config(tmp_path / "root"), home=tmp_path / "home")
    p = config.paths
    request = AttemptRequest("job", p.state / "work" / "slot" / "job", p.outbox / "job", config,
                             str(p.outbox / "job" / "input"))
    return request, Places(p.inbox, p.outbox, p.state, p.weights)


def _judge(setting, err: BaseException, counted: int = 1):
    request, places = setting
    return judge(err, Context(request, counted, 3, "the log: facedrop.log"), places)


def test_input_errors_fail_at_once_naming_the_file_where_the_user_finds_it(setting):
    request, _places = setting
    ending = _judge(setting, InputError("bad", file=request.source / "voice.wav"))
    assert ending.verdict is Verdict.FAILED
    assert f"File: {request.out / 'input' / 'voice.wav'}" in ending.message


@pytest.mark.parametrize("counted, verdict", [(1, Verdict.RETRY), (2, Verdict.RETRY),
                                              (3, Verdict.FAILED)])
def test_other_errors_are_retried_until_the_last_counted_attempt(setting, counted, verdict):
    for err in (RuntimeError("boom"), MediaError("encoding failed")):
        ending = _judge(setting, err, counted)
        assert ending.verdict is verdict and ending.message
    assert "RuntimeError: boom" in _judge(setting, RuntimeError("boom")).message
    assert len(_judge(setting, RuntimeError("x" * 10**6)).message) < 1000  # capped


def test_a_crash_counts_and_says_what_crashed_and_the_file(setting):
    request, _places = setting
    crash = WorkerCrashed(-signal.SIGSEGV, "decoding the audio file",
                          str(request.source / "voice.wav"))
    ending = _judge(setting, crash, 1)
    assert ending.verdict is Verdict.RETRY
    assert "segmentation fault" in ending.message and "decoding the audio file" in ending.message
    assert f"File: {request.out / 'input' / 'voice.wav'}" in ending.message
    assert _judge(setting, WorkerCrashed(-signal.SIGKILL, "rendering the video"), 3).verdict \
        is Verdict.FAILED


def test_the_machine_s_faults_give_the_job_back_uncounted(setting):
    request, places = setting
    full = OSError(errno.ENOSPC, "No space left on device", str(places.outbox / "job" / "x"))
    for err, kind in ((full, FaultKind.OUTBOX),
                      (WeightsError("missing", file=places.weights / "w.pth"), FaultKind.WEIGHTS),
                      (DeviceUnavailableError("no CUDA device"), FaultKind.DEVICE)):
        ending = _judge(setting, err, 3)  # even on the last attempt: not the job's fault
        assert ending.verdict is Verdict.GIVE_BACK and ending.fault is not None
        assert ending.fault.kind is kind


def test_cancelled_is_its_own_verdict(setting):
    assert _judge(setting, Cancelled("stop"), 3).verdict is Verdict.CANCELLED


def test_a_folder_is_probed_in_a_worker_child_and_a_crash_there_is_reported(setting, tmp_path,
                                                                            astronaut_path):
    from tests.helpers.daemon_harness import TEST_PIPELINE
    from watcher.pipelineref import PipelineRef
    from watcher.supervisor import ChildRunner

    request, _places = setting
    folder = tmp_path / "never-ready"
    folder.mkdir()
    (folder / "face.png").write_bytes(astronaut_path.read_bytes())
    (folder / "job.yaml").write_text("colour: red\n")
    probe = AttemptRequest("never-ready", folder, folder, request.config, str(folder))
    prober = ChildRunner(PipelineRef(TEST_PIPELINE), crash_spec="")
    try:
        with pytest.raises(InputError, match="unknown key 'colour'"):
            prober.probe(probe)
    finally:
        prober.close()
    doomed = ChildRunner(PipelineRef(TEST_PIPELINE), crash_spec="child.probing")
    try:
        with pytest.raises(WorkerCrashed, match="SIGKILL"):
            doomed.probe(probe)
    finally:
        doomed.close()
    assert doomed.pid is None  # no child left

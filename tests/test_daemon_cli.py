"""``facedrop submit``, ``status`` and ``run`` used as a user would, against a running daemon."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import yaml

from tests.helpers.daemon_harness import (
    DaemonProcess,
    facedrop,
    finished,
    read_status,
    speech_clip,
    wait_for,
    write_config,
)

TIMEOUT = 60.0


def test_submit_and_status_against_a_running_daemon(tmp_path: Path, astronaut_path, speech_path):
    root = tmp_path / "root"
    config = write_config(root)
    home = tmp_path / "home"
    home.mkdir()
    clip = speech_clip(speech_path, tmp_path / "talk.wav", 1.0)
    daemon = DaemonProcess(
        config,
        home,
        tmp_path / "daemon.log",
        FACEDROP_TEST_CHUNK_SLEEP="0.5",
        FACEDROP_TEST_SLOW_JOBS="slow",
    )
    try:
        idle = facedrop(config, home, "status")
        assert idle.returncode == 0, idle.stderr
        wait_for(
            lambda: "daemon: running" in facedrop(config, home, "status").stdout,
            TIMEOUT,
            "status to see the daemon",
        )

        sub = facedrop(
            config,
            home,
            "submit",
            str(astronaut_path),
            str(speech_path),
            "--name",
            "slow",
            "--set",
            "fps=10",
            "--set",
            "enhance=false",
        )
        assert sub.returncode == 0, sub.stderr
        assert "submitted slow" in sub.stdout
        assert not [p for p in (root / "inbox").iterdir() if p.name.startswith(".partial")]

        def running() -> str | None:
            out = facedrop(config, home, "status").stdout
            return out if "running: slow" in out else None

        out = wait_for(running, TIMEOUT, "status to show the running job", poll=0.2)
        assert "stage render" in out or "stage starting" in out
        assert "attempt 1" in out

        sub2 = facedrop(config, home, "submit", str(astronaut_path), str(clip), "--name", "quick")
        assert sub2.returncode == 0, sub2.stderr
        for name in ("slow", "quick"):
            wait_for(lambda n=name: finished(root / "outbox" / n), TIMEOUT, f"{name} to finish")
        done = facedrop(config, home, "status")
        assert done.returncode == 0
        lines = [line for line in done.stdout.splitlines() if "slow" in line and "done" in line]
        assert lines, done.stdout
        seconds = float(lines[0].split("  ")[2])  # piped, a row is its cells joined by 2 spaces
        assert seconds > 0.5 * 7  # 59 frames at fps 10: 8 chunks of 8, each followed by a pause
        assert "queued (0)" in done.stdout
        resolved = yaml.safe_load((root / "outbox" / "slow" / "job.yaml").read_text())
        assert resolved["fps"] == 10 and resolved["face"] == astronaut_path.name
        assert resolved["audio"] == speech_path.name
        assert read_status(root / "outbox" / "slow")["state"] == "done"
    finally:
        daemon.stop()
    assert "not running" in facedrop(config, home, "status").stdout


def test_submit_rejects_bad_settings_without_touching_the_inbox(
    tmp_path, astronaut_path, speech_path
):
    config = write_config(tmp_path / "root")
    home = tmp_path / "home"
    home.mkdir()
    bad = facedrop(
        config, home, "submit", str(astronaut_path), str(speech_path), "--set", "colour=red"
    )
    assert bad.returncode == 3
    assert "--set colour=red: unknown key 'colour'" in bad.stderr
    assert "File:" not in bad.stderr  # it names the setting, not a file called --set
    typed = facedrop(config, home, "submit", str(astronaut_path), str(speech_path),
                     "--set", "fps=fast")
    assert typed.returncode == 3 and "--set fps=fast: 'fps' must be" in typed.stderr
    assert "Fix: e.g. --set fps=25" in typed.stderr and "File:" not in typed.stderr
    wrong = facedrop(config, home, "submit", str(speech_path), str(speech_path))
    assert wrong.returncode == 3 and "face photo must be one of" in wrong.stderr
    inbox = tmp_path / "root" / "inbox"
    assert not inbox.exists() or list(inbox.iterdir()) == []


def test_run_one_job_into_out_dir(tmp_path, example_job):
    config = write_config(tmp_path / "root")
    home = tmp_path / "home"
    home.mkdir()
    (example_job / "job.yaml").write_text("face: astronaut.jpg\naudio: hello.wav\nfps: 12\n")
    before = sorted(p.name for p in example_job.iterdir())
    result = facedrop(config, home, "run", str(example_job), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out" / "hello"
    assert (out / "hello.mp4").is_file()
    assert "realtime factor" in result.stdout
    timing = json.loads((out / "timing.json").read_text())
    assert timing["fps"] == 12 and timing["frames"] == round(timing["audio_seconds"] * 12)
    assert sorted(p.name for p in example_job.iterdir()) == before  # run moves nothing
    assert sorted(p.name for p in (out / "input").iterdir()) == before
    # Text files get the mode of the video beside them (0666 less the umask), not 0600.
    umask = os.umask(0)
    os.umask(umask)
    video_mode = stat.S_IMODE((out / "hello.mp4").stat().st_mode)
    for name in ("status.json", "job.yaml", "timing.json", "timing.log"):
        assert stat.S_IMODE((out / name).stat().st_mode) == video_mode == 0o666 & ~umask, name
    again = facedrop(config, home, "run", str(example_job), "--out", str(tmp_path / "out"))
    assert again.returncode == 0 and (tmp_path / "out" / "hello (2)" / "hello.mp4").is_file()


def test_run_bad_job_prints_the_problem_and_writes_error_txt(tmp_path, example_job):
    config = write_config(tmp_path / "root")
    home = tmp_path / "home"
    home.mkdir()
    (example_job / "job.yaml").write_text("face: ../../etc/passwd\n")
    result = facedrop(config, home, "run", str(example_job), "--out", str(tmp_path / "out"))
    assert result.returncode == 3
    assert "points outside the job folder" in result.stderr
    assert "Traceback" not in result.stderr
    error = (tmp_path / "out" / "hello" / "error.txt").read_text()
    assert "points outside the job folder" in error
    assert read_status(tmp_path / "out" / "hello")["state"] == "failed"


def test_config_is_accepted_after_the_command_too(tmp_path):
    """``facedrop status --config X`` works like ``facedrop --config X status``."""
    base = write_config(tmp_path / "base")
    other = write_config(tmp_path / "other")
    home = tmp_path / "home"
    home.mkdir()
    inbox = str(tmp_path / "other" / "inbox")
    after = facedrop(base, home, "status", "--config", str(other))
    before = facedrop(base, home, "--config", str(other), "status")
    assert after.returncode == before.returncode == 0, after.stderr
    assert inbox in after.stdout and inbox in before.stdout
    listed = facedrop(base, home, "weights", "list", "--json", "--config", str(other))
    assert json.loads(listed.stdout)["weights_dir"] == str(tmp_path / "other" / "weights")
    nested = facedrop(base, home, "drivers", "--config", str(other), "list", "--json")
    assert json.loads(nested.stdout)["drivers_dir"] == str(tmp_path / "other" / "drivers")


def test_run_on_a_folder_without_job_yaml_writes_nothing(tmp_path, example_job):
    """Validate first: a folder that is not a job is not copied into the outbox."""
    config = write_config(tmp_path / "root")
    home = tmp_path / "home"
    home.mkdir()
    (example_job / "job.yaml").unlink()
    result = facedrop(config, home, "run", str(example_job), "--out", str(tmp_path / "out"))
    assert result.returncode == 3
    assert "no job.yaml" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []

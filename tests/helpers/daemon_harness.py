"""Helpers for the daemon tests: config files, job folders, a daemon subprocess, deadlines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from pipeline.example import example_dir

REPO = Path(__file__).resolve().parents[2]
TEST_PIPELINE = "tests.helpers.daemon_pipeline:TestPipeline"


def wait_for(cond: Callable[[], Any], timeout: float, what: str, poll: float = 0.05) -> Any:
    """Poll ``cond`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(poll)


def write_config(root: Path, **sections: dict[str, Any]) -> Path:
    """A config file putting every path under ``root``, with fast settle intervals and no
    compile."""
    data: dict[str, dict[str, Any]] = {
        "paths": {
            k: str(root / k)
            for k in ("inbox", "outbox", "state", "cache", "weights", "drivers", "logs")
        },
        "daemon": {
            "settle_seconds": 0.1,
            "settle_checks": 3,
            "incomplete_grace_seconds": 4.0,
            "rescan_seconds": 0.5,
            "max_attempts": 3,
            "retry_backoff_seconds": 0.05,
            "shutdown_timeout": 5.0,
            "notify": False,
        },
        # a daemon or `facedrop worker` compiles G under the default auto (minutes, once per
        # process); the compiled path has its own tests (test_compiled)
        "pipeline": {"compile": "off"},
    }
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    root.mkdir(parents=True, exist_ok=True)
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def speech_clip(src: Path, dest: Path, seconds: float) -> Path:
    """The first ``seconds`` of a real speech wav, as a new wav file."""
    with wave.open(str(src)) as w:
        params = w.getparams()
        frames = w.readframes(int(params.framerate * seconds))
    with wave.open(str(dest), "wb") as out:
        out.setparams(params)
        out.writeframes(frames)
    return dest


def make_job(parent: Path, name: str, face: Path, audio: Path, job_yaml: str = "") -> Path:
    """A complete job folder (photo, audio, job.yaml) written directly (not atomically)."""
    folder = parent / name
    folder.mkdir(parents=True)
    (folder / f"face{face.suffix}").write_bytes(face.read_bytes())
    (folder / f"voice{audio.suffix}").write_bytes(audio.read_bytes())
    (folder / "job.yaml").write_text(job_yaml)
    return folder


def read_status(folder: Path) -> dict[str, Any] | None:
    """``status.json`` of an outbox folder, or None if absent."""
    try:
        return json.loads((folder / "status.json").read_text())
    except (OSError, ValueError):
        return None


def finished(folder: Path) -> dict[str, Any] | None:
    """The final status of an outbox folder, once it is done or failed."""
    status = read_status(folder)
    return status if status and status["state"] in ("done", "failed") else None


def cli_env(config: Path, home: Path, **extra: str) -> dict[str, str]:
    """Environment for a facedrop subprocess: isolated home, test pipeline, given config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACEDROP_", "XDG_"))}
    env.update({
        "HOME": str(home),
        "FACEDROP_CONFIG": str(config),
        "FACEDROP_PIPELINE": TEST_PIPELINE,
        "PYTHONPATH": str(REPO),
        **extra,
    })
    return env


def facedrop(config: Path, home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the facedrop CLI as a user would, and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "watcher.cli", *args],
        cwd=REPO,
        env=cli_env(config, home, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


class DaemonProcess:
    """``facedrop watch`` in a subprocess; its stderr goes to a log file for failure messages."""

    def __init__(self, config: Path, home: Path, log: Path, **env: str) -> None:
        self.log = log
        self._fh = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "watcher.cli", "watch"],
            cwd=REPO,
            env=cli_env(config, home, **env),
            stdout=self._fh,
            stderr=subprocess.STDOUT,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        """SIGTERM and wait; SIGKILL if it does not exit."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._fh.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


# ---- the bad-job table: each builder spoils a complete job folder in one specific way --------
# Limits used with this table: see BAD_JOB_LIMITS (the good inputs are 512x512 px and 1 s).
BAD_JOB_LIMITS = {"max_image_pixels": 2_000_000, "max_audio_seconds": 3.0}


def _write(folder: Path, name: str, data: bytes | str) -> None:
    path = folder / name
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)


def _big_image(folder: Path, outside: Path) -> None:
    from PIL import Image

    (folder / "face.png").unlink()
    Image.new("RGB", (2000, 1500), (120, 90, 60)).save(folder / "face.png")


def _long_audio(folder: Path, outside: Path) -> None:
    speech_clip(example_dir() / "hello.wav", folder / "voice.wav", 5.0)


def _symlink_out(folder: Path, outside: Path) -> None:
    (folder / "face.png").rename(outside / "elsewhere.png")
    (folder / "face.png").symlink_to(outside / "elsewhere.png")


def _dotdot(folder: Path, outside: Path) -> None:
    (folder / "face.png").rename(folder.parent / f"{folder.name}-x.png")
    _write(folder, "job.yaml", f"face: ../{folder.name}-x.png\n")


BAD_JOBS: list[tuple[str, Callable[[Path, Path], None], str]] = [
    ("no-image", lambda f, o: (f / "face.png").unlink(), "no face photo"),
    (
        "two-images",
        lambda f, o: _write(f, "other.png", (f / "face.png").read_bytes()),
        "does not say which",
    ),
    (
        "not-an-image",
        lambda f, o: _write(f, "face.png", "this is text, not a PNG\n"),
        "not an image",
    ),
    ("empty-audio", lambda f, o: _write(f, "voice.wav", b""), "audio file is empty"),
    (
        "wav-not-audio",
        lambda f, o: _write(f, "voice.wav", b"RIFF\x00\x01junkjunk" * 100),
        "audio file could not be read",
    ),
    (
        "yaml-syntax",
        lambda f, o: _write(f, "job.yaml", "face: [face.png\nfps: 25\n"),
        "not valid YAML",
    ),
    (
        "yaml-not-mapping",
        lambda f, o: _write(f, "job.yaml", "- face.png\n- voice.wav\n"),
        "key: value",
    ),
    ("unknown-key", lambda f, o: _write(f, "job.yaml", "colour: red\n"), "unknown key 'colour'"),
    ("wrong-type", lambda f, o: _write(f, "job.yaml", "fps: fast\n"), "'fps' in job.yaml must be"),
    (
        "int-for-bool",
        lambda f, o: _write(f, "job.yaml", "lipsync: 1\n"),
        "'lipsync' in job.yaml must be true or false",
    ),
    ("dotdot", _dotdot, "points outside the job folder"),
    (
        "absolute",
        lambda f, o: _write(f, "job.yaml", f"face: {o / 'abs.png'}\n"),
        "must be a plain file name",
    ),
    ("symlink-out", _symlink_out, "link to a file outside the job folder"),
    (
        "conflicted-copy",
        lambda f, o: _write(
            f, "face (Ann's conflicted copy 2024-05-01).png", (f / "face.png").read_bytes()
        ),
        "conflict copy makes the face photo ambiguous",
    ),
    ("too-many-pixels", _big_image, "the image is 2000x1500 (3 MP); the limit is 2 MP"),
    ("audio-too-long", _long_audio, "the limit is 3 s"),
    (
        "unknown-driver",
        lambda f, o: _write(f, "job.yaml", "driving: nosuchclip\n"),
        "no driving clip called 'nosuchclip'",
    ),
    (
        "bad-output-name",
        lambda f, o: _write(f, "job.yaml", "output: ../evil.mp4\n"),
        "plain file name ending in .mp4",
    ),
    (
        "missing-named-face",
        lambda f, o: _write(f, "job.yaml", "face: me.jpg\n"),
        "not in the job folder",
    ),
]


# ---- real filesystems for the crash and fault tests (root only) ------------------------------
def mount_tmpfs(path: Path, size: str = "64m") -> str:
    """Mount a fresh tmpfs at ``path``; return "" on success, else why it cannot be done."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
        capture_output=True, text=True,
    )
    return "" if done.returncode == 0 else f"mount -t tmpfs failed: {done.stderr.strip()}"


def remount(path: Path, mode: str) -> None:
    """Remount a tmpfs read-only (``ro``) or read-write (``rw``)."""
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True)


def unmount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def litter(*roots: Path) -> list[Path]:
    """Temp files, staging folders, claim markers and partial videos anywhere under ``roots``."""
    found = []
    for root in roots:
        for path in root.rglob("*"):
            name = path.name
            if (name.startswith(".") and (name.endswith(".tmp") or ".copying-" in name)) or (
                name.startswith(".facedrop-claimed.") or ".partial." in name
            ):
                found.append(path)
    return found

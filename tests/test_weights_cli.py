"""``facedrop weights`` end to end on the real landmark files, served by a local mirror."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.weights.manifest import MANIFEST, MIRROR_ENV
from pipeline.weights.verify import State, verify
from tests.conftest import REPO
from tests.helpers.weights_server import WeightsServer
from watcher.cli import main


def test_fetch_verify_list_import(landmark_weights_dir: Path, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    weights = tmp_path / "weights"
    with WeightsServer() as server:
        for f in (landmark_weights_dir / "landmarks").glob("*.tflite"):
            server.behaviour.files[f"/m/landmarks/{f.name}"] = f.read_bytes()
        monkeypatch.setenv(MIRROR_ENV, server.base + "/m")
        assert main(["weights", "fetch", "landmarks", "--weights-dir", str(weights)]) == 0
    out = capsys.readouterr().out
    # the licence, once, on one line with its link, after the results
    (licence,) = [line for line in out.splitlines() if "Apache-2.0" in line]
    assert licence.strip().startswith("landmarks: Apache-2.0 https://")
    assert out.index("landmarks/face_landmark.tflite") < out.index("Licences")
    states = {s.entry.group: s.state for s in verify(weights) if s.entry.group == "landmarks"}
    assert states == {"landmarks": State.OK}

    # the .pth files are missing
    assert main(["weights", "verify", "--weights-dir", str(weights)]) == 1
    out = capsys.readouterr().out
    assert "missing" in out and "ok" in out

    assert main(["weights", "list", "--weights-dir", str(weights)]) == 0
    assert "wav2lip_gan" in capsys.readouterr().out

    other = tmp_path / "other"
    assert main(["weights", "import", str(landmark_weights_dir), "--weights-dir", str(other)]) == 0
    out = capsys.readouterr().out
    assert "imported" in out and "Still missing" in out
    assert sum(s.ok for s in verify(other)) == 4  # the landmark group: 3 models + iris (issue 15)


def test_unknown_name_is_a_clean_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["weights", "fetch", "nope", "--weights-dir", str(tmp_path)]) == 5
    assert "no model file or group is called 'nope'" in capsys.readouterr().err


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``facedrop`` in a subprocess with stdout a pipe (not a terminal) and no COLUMNS set."""
    base = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", MIRROR_ENV)}
    base["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-m", "watcher.cli", *args], capture_output=True,
                          text=True, timeout=120, env={**base, **(env or {})}, check=False)


def test_piped_list_keeps_every_name_whole_and_json_lists_them(tmp_path: Path) -> None:
    """``weights list | grep NAME`` finds every file: no line is folded at 80 columns, and
    none is longer than 200 characters (a record per file, its source below it)."""
    result = _cli("weights", "list", "--weights-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 200
    for e in MANIFEST:
        assert any(e.relpath in line and f" {e.name} " in line for line in lines), e.relpath
        assert any(e.source_url() in line for line in lines), e.source_url()
    doc = json.loads(_cli("weights", "list", "--json", "--weights-dir", str(tmp_path)).stdout)
    assert [f["file"] for f in doc["files"]] == [e.relpath for e in MANIFEST]
    assert {f["state"] for f in doc["files"]} == {"missing"} and doc["mirror"] is None


def test_failed_fetch_names_every_file_in_full_and_the_host(tmp_path: Path) -> None:
    """Offline (a mirror on a closed port): full paths, the failing host, a fix for the mirror."""
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mirror = f"http://127.0.0.1:{port}/w"
    result = _cli("weights", "fetch", "liveportrait", "--weights-dir", str(tmp_path),
                  "--mirror", mirror)
    assert result.returncode == 1
    out = result.stdout
    for e in MANIFEST:
        if e.group == "liveportrait":
            assert re.search(rf"failed\s+{re.escape(e.relpath)}$", out, re.MULTILINE), e.relpath
    assert out.count(f"the mirror failed: could not connect to 127.0.0.1:{port}") == 5
    assert out.count("Fix:") == 1 and f"({mirror}/<file path above>)" in out  # one fix for all
    assert "add a mirror" not in out and "use a mirror" not in out
    assert "Licence" not in out and "MIT" not in out  # nothing was downloaded: no licence


def test_explicit_mirror_wins_over_the_environment(landmark_weights_dir: Path,
                                                   tmp_path: Path) -> None:
    with WeightsServer() as server:
        for f in (landmark_weights_dir / "landmarks").glob("*.tflite"):
            server.behaviour.files[f"/good/landmarks/{f.name}"] = f.read_bytes()
        result = _cli("weights", "fetch", "face_landmark", "--weights-dir", str(tmp_path),
                      "--mirror", server.base + "/good",
                      env={MIRROR_ENV: server.base + "/stale"})
        assert result.returncode == 0, result.stdout
        assert [p for p, _ in server.behaviour.requests] == ["/good/landmarks/face_landmark.tflite"]
    assert (tmp_path / "landmarks/face_landmark.tflite").is_file()


def test_import_of_a_folder_without_model_files_fails(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["weights", "import", str(empty), "--weights-dir", str(tmp_path / "w")]) == 5
    err = capsys.readouterr().err
    assert f"found no model file facedrop knows in {empty}" in err and "wav2lip.pth" in err
    (empty / "notes.txt").write_text("not a model")
    assert main(["weights", "import", str(empty), "--weights-dir", str(tmp_path / "w")]) == 5
    assert not (tmp_path / "w").exists() or not any((tmp_path / "w").rglob("*.pth"))


def test_import_help_names_source_and_weights_folder_apart() -> None:
    result = _cli("weights", "import", "--help")
    assert result.returncode == 0
    assert "[--dir DIR] DIR" not in result.stdout
    assert "SOURCE_DIR" in result.stdout and "--weights-dir WEIGHTS_DIR" in result.stdout


def test_fetch_results_keep_full_names_on_an_80_column_terminal(tmp_path: Path) -> None:
    from rich.console import Console

    from pipeline.errors import WeightsError
    from pipeline.weights.fetch import FetchResult
    from watcher.commands.weights import print_results

    error = WeightsError("could not connect to huggingface.co (Name or service not known)",
                         fix="check the network")
    results = [FetchResult(e, tmp_path / e.relpath, "failed", error)
               for e in MANIFEST if e.group == "liveportrait"]
    console = Console(width=80, record=True, force_terminal=True)
    assert print_results(console, results) == 1
    text = console.export_text()
    for e in MANIFEST:
        if e.group == "liveportrait":
            assert e.relpath in text
    assert text.count("huggingface.co") == 5 and "…" not in text


def test_the_old_weights_flags_still_work_with_a_note(tmp_path: Path) -> None:
    for old in ("--dir", "--weights"):
        result = _cli("weights", "list", "--json", old, str(tmp_path))
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["weights_dir"] == str(tmp_path.resolve())
        assert result.stderr == f"note: {old} is deprecated; use --weights-dir\n"


def test_import_trust_takes_a_named_file_that_is_not_the_pinned_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without --trust a re-saved wav2lip.pth is rejected, with the --trust command to run;
    with it, it is imported with a warning naming it, doctor warns "present, not the pinned
    file", and a job (which checks presence, as run does) no longer lacks it."""
    from pipeline.prerequisites import JobNeeds, weights_gap
    from tests.helpers.settings import pipeline_settings
    from watcher.commands.doctor import WARN, weight_checks

    src, weights = tmp_path / "mine", tmp_path / "weights"
    (src / "Wav2Lip").mkdir(parents=True)
    (src / "Wav2Lip" / "wav2lip.pth").write_bytes(b"a fine-tune" * 1000)
    (src / "79999_iter.pth").write_bytes(b"a re-save" * 100)  # MuseTalk's: optional, not pinned
    assert main(["weights", "import", str(src), "--weights-dir", str(weights)]) == 1
    out = capsys.readouterr().out
    assert f"Not the pinned files: wav2lip, face_parsing_bisenet. If they are the ones you " \
           f"mean (a re-save, a fine-tune): facedrop weights import --trust {src}" in out
    closing = out[out.index("Not the pinned"):].splitlines()[1:]
    # weight (or whole group) names, each once; the optional group said to be optional
    # what a default job loads (lip sync on, enhance off, Wav2Lip) is required; the GAN
    # variant and GFPGAN only serve jobs that ask for them
    assert closing == ["Still missing: liveportrait landmarks. Fix: facedrop weights fetch "
                       "liveportrait landmarks",
                       "Optional, not needed by a default job: wav2lip_gan gfpgan syncnet "
                       "musetalk voice (fetch when wanted: facedrop weights fetch wav2lip_gan "
                       "gfpgan syncnet musetalk voice)"]
    assert not (weights / "wav2lip/wav2lip.pth").exists()

    assert main(["weights", "import", "--trust", str(src), "--weights-dir", str(weights)]) == 0
    out = capsys.readouterr().out
    assert "Warning: wav2lip (wav2lip/wav2lip.pth) is not the pinned file (" in out
    assert "Warning: face_parsing_bisenet (musetalk/face-parse-bisent/79999_iter.pth) is not " \
           "the pinned file (" in out
    licences = out[out.index("Licences"):].splitlines()[1:]
    assert [line.split(":")[0].strip() for line in licences] == ["wav2lip", "musetalk"]
    assert (weights / "wav2lip/wav2lip.pth").read_bytes() == b"a fine-tune" * 1000
    checks = {c.name: c for c in weight_checks(weights, MANIFEST, hash_files=True)}
    assert checks["wav2lip/wav2lip.pth"].status == WARN
    assert checks["wav2lip/wav2lip.pth"].detail.startswith("present, not the pinned file")
    settings = pipeline_settings(tmp_path, weights_dir=weights)
    gap = weights_gap(settings, JobNeeds(lipsync=True, enhance=False))
    assert gap is not None and "wav2lip/wav2lip.pth" not in gap.what

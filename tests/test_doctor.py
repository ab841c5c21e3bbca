"""``facedrop doctor``: real checks of this machine, a weights folder and the config's folders."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from rich.console import Console

from pipeline.device import accelerator_fix
from pipeline.weights.manifest import MANIFEST, OPTIONAL_GROUPS, Licence, WeightFile
from watcher.cli import main
from watcher.commands.doctor import run_doctor, torch_checks


def _config(tmp_path: Path, weights: Path) -> Path:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "paths:\n"
        f"  inbox: {tmp_path / 'in'}\n  outbox: {tmp_path / 'out'}\n"
        f"  state: {tmp_path / 'state'}\n  weights: {weights}\n"
    )
    return cfg


def _records(out: str) -> dict[str, str]:
    """Piped doctor output: check name -> its line ("section  check  status") and the indented
    detail and fix lines below it."""
    records: dict[str, str] = {}
    key = ""
    for line in out.splitlines():
        if line.startswith("    ") and key:
            records[key] += "\n" + line
        elif len(cells := line.split("  ")) == 3:
            key = cells[1]
            records[key] = line
        else:
            key = ""
    return records


def test_doctor_reports_missing_weights_and_folders(tmp_path: Path, landmark_weights_dir: Path,
                                                    capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    (tmp_path / "in").mkdir()
    (tmp_path / "blocker").write_text("a file where a folder should be")
    cfg = _config(tmp_path, landmark_weights_dir)
    cfg.write_text(cfg.read_text().replace(str(tmp_path / "out"), str(tmp_path / "blocker/out")))
    assert main(["--config", str(cfg), "doctor"]) == 1
    out = capsys.readouterr().out
    assert "libx264" in out and "aac" in out and "libavcodec" in out
    assert "torch" in out and "auto device: cpu" in out
    lines = _records(out)
    assert "ok" in lines["landmarks/face_landmark.tflite"]
    assert "FAIL" in lines["wav2lip/wav2lip.pth"]
    assert "facedrop weights fetch wav2lip" in lines["wav2lip/wav2lip.pth"]
    assert "warn" in lines["syncnet/syncnet_v2.model"]  # only 'facedrop score' needs it
    assert "warn" in lines["musetalk/musetalkV15/unet.pth"]  # not the configured engine
    assert "ok" in lines["inbox"]
    assert "warn" in lines["state"] and "daemon creates it" in lines["state"]  # not there yet
    assert "FAIL" in lines["outbox"] and "blocker" in lines["outbox"]  # cannot be created


def test_doctor_passes_when_everything_is_there(tmp_path: Path) -> None:
    body = b"PK" + bytes(100)
    entry = WeightFile("x", "g", "g/x.pth", len(body), hashlib.sha256(body).hexdigest(),
                       Licence("L", "u"), url="http://x.invalid")
    (tmp_path / "w/g").mkdir(parents=True)
    (tmp_path / "w/g/x.pth").write_bytes(body)
    folders = {n: tmp_path / n for n in ("inbox", "outbox", "state")}
    for p in folders.values():
        p.mkdir()
    console = Console(record=True, width=200)
    assert run_doctor(console, weights_dir=tmp_path / "w", folders=folders, manifest=[entry]) == 0
    assert "Everything facedrop needs is in place" in console.export_text()
    # a synced state folder is refused
    synced = tmp_path / "Library/CloudStorage/Dropbox/state"
    synced.mkdir(parents=True)
    console = Console(record=True, width=200)
    assert run_doctor(console, weights_dir=tmp_path / "w", manifest=[entry],
                      folders={**folders, "state": synced}) == 1
    assert "SQLite there gets locked" in console.export_text()


def test_doctor_json_is_one_document_with_the_same_verdict(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config(tmp_path, tmp_path / "no-weights")
    assert main(["doctor", "--json", "--no-hash", "--config", str(cfg)]) == 1
    doc = json.loads(capsys.readouterr().out)  # nothing but the document on stdout
    required = [e for e in MANIFEST if e.group not in OPTIONAL_GROUPS]
    assert doc["ok"] is False and doc["problems"] >= len(required)
    by_name = {c["name"]: c for c in doc["checks"]}
    assert by_name["wav2lip/wav2lip.pth"]["status"] == "fail"
    assert "facedrop weights fetch wav2lip" in by_name["wav2lip/wav2lip.pth"]["fix"]
    assert {c["section"] for c in doc["checks"]} >= {"Python", "torch", "FFmpeg", "Weights",
                                                     "Driving", "Folders"}
    clip = by_name["default clip"]  # a warning: a job may bring its own clip
    assert clip["status"] == "warn" and "facedrop drivers add VIDEO" in clip["fix"]


def test_accelerator_fix_fits_the_platform() -> None:
    """On Linux the fix speaks of CUDA, never of arm64 Macs; on a Mac, of MPS."""
    import torch

    linux = accelerator_fix("linux", "x86_64")
    assert "CUDA" in linux and "Mac" not in linux and "arm64" not in linux
    assert "MPS" in accelerator_fix("darwin", "arm64")
    assert "arm64 Python" in accelerator_fix("darwin", "x86_64")
    warns = [c for c in torch_checks("linux", "x86_64") if c.name == "accelerator"]
    assert bool(warns) == (not torch.cuda.is_available())  # this machine: CPU only, or CUDA
    for c in warns:
        assert c.fix == linux


def test_doctor_fails_missing_musetalk_weights_when_it_is_the_engine(
        tmp_path: Path, landmark_weights_dir: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    cfg = _config(tmp_path, landmark_weights_dir)
    cfg.write_text(cfg.read_text() + "pipeline:\n  lipsync_model: musetalk\n")
    assert main(["--config", str(cfg), "doctor", "--no-hash"]) == 1
    out = capsys.readouterr().out
    lines = _records(out)
    musetalk = [k for k in lines if k.startswith("musetalk/")]
    assert musetalk and all("FAIL" in lines[k] for k in musetalk)
    assert "facedrop weights fetch musetalk" in lines["musetalk/musetalkV15/unet.pth"]
    assert "warn" in lines["syncnet/syncnet_v2.model"]  # still optional

"""``facedrop weights`` end to end on the real landmark files, served by a local mirror."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.weights.manifest import MIRROR_ENV
from pipeline.weights.verify import State, verify
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
        assert main(["weights", "fetch", "landmarks", "--dir", str(weights)]) == 0
    out = capsys.readouterr().out
    assert "Apache-2.0" in out and "face_landmark.tflite" in out  # the licence panel
    states = {s.entry.group: s.state for s in verify(weights) if s.entry.group == "landmarks"}
    assert states == {"landmarks": State.OK}

    assert main(["weights", "verify", "--dir", str(weights)]) == 1  # the .pth files are missing
    out = capsys.readouterr().out
    assert "missing" in out and "ok" in out

    assert main(["weights", "list", "--dir", str(weights)]) == 0
    assert "wav2lip_gan" in capsys.readouterr().out

    other = tmp_path / "other"
    assert main(["weights", "import", str(landmark_weights_dir), "--dir", str(other)]) == 0
    out = capsys.readouterr().out
    assert "imported" in out and "Still missing" in out
    assert sum(s.ok for s in verify(other)) == 3


def test_unknown_name_is_a_clean_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["weights", "fetch", "nope", "--dir", str(tmp_path)]) == 5
    assert "no model file or group is called 'nope'" in capsys.readouterr().err

"""``configs/``: every example config loads and validates, and the service files there are
exactly what ``service install --dry-run`` prints (machine-specific paths normalised as
``tests/helpers/service_files.py`` and ``configs/README.md`` say)."""

from __future__ import annotations

import plistlib
from pathlib import Path

import pytest

from tests.helpers.service_files import CONFIGS, PLIST, UNITS, rendered
from watcher.config import load_config

REPO = CONFIGS.parent
EXAMPLES = sorted(p.name for p in CONFIGS.glob("*.yaml"))


def test_the_folder_holds_the_four_examples_the_service_files_and_a_readme() -> None:
    assert EXAMPLES == ["developer.yaml", "fleet-intake.yaml", "linux-gpu-worker.yaml",
                        "mac-dropbox.yaml"]
    assert sorted(p.name for p in CONFIGS.iterdir()) == sorted(
        [*EXAMPLES, *UNITS, PLIST, "README.md"])


@pytest.mark.parametrize("name", EXAMPLES)
@pytest.mark.parametrize("platform", ["linux", "darwin"])
def test_every_example_loads_and_validates(name: str, platform: str, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACEDROP_CONFIG", raising=False)
    cfg = load_config(CONFIGS / name, home=tmp_path, platform=platform)
    assert cfg.paths.inbox.is_absolute() and cfg.paths.outbox.is_absolute()
    fleet = name in ("fleet-intake.yaml", "linux-gpu-worker.yaml")
    assert (cfg.queue.backend == "redis") is fleet
    if fleet:
        assert cfg.storage.path == Path("/mnt/facedrop-share")


def test_the_developer_config_uses_the_checkouts_inbox_and_outbox(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACEDROP_CONFIG", raising=False)
    cfg = load_config(CONFIGS / "developer.yaml", home=tmp_path, platform="linux")
    assert (cfg.paths.inbox, cfg.paths.outbox) == (REPO / "inbox", REPO / "outbox")
    assert (REPO / "inbox" / ".gitkeep").is_file() and (REPO / "outbox" / ".gitkeep").is_file()
    assert cfg.paths.state.is_relative_to(tmp_path)  # never in the checkout


def test_the_service_files_are_what_the_code_generates(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACEDROP_CONFIG", raising=False)
    for name, text in rendered(tmp_path).items():
        assert (CONFIGS / name).read_text() == text, (
            f"configs/{name} is stale: python -m tests.helpers.service_files")
    worker = (CONFIGS / "facedrop-worker.service").read_text()
    assert "ExecStart=%h/facedrop/.venv/bin/python -m watcher.cli worker --config " \
           "%h/.config/facedrop/worker.yaml" in worker
    assert "TimeoutStopSec=135" in worker  # linux-gpu-worker.yaml's 60 s, twice, + 5 + 10
    data = plistlib.loads((CONFIGS / PLIST).read_bytes())
    assert data["ProgramArguments"][0] == "/Users/you/facedrop/.venv/bin/python"
    assert data["StandardErrorPath"].startswith("/Users/you/Library/Logs/facedrop/")

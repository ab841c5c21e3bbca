"""``setup --dropbox`` on a fake home: CloudStorage folder, ~/Dropbox symlink, info.json."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from watcher.cli import main
from watcher.config import load_config, user_config_path
from watcher.macos.dropbox import dropbox_candidates, find_dropbox, setup_dropbox


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    (home / "Library/CloudStorage/Dropbox").mkdir(parents=True)
    (home / "Dropbox").symlink_to(home / "Library/CloudStorage/Dropbox")
    monkeypatch.setenv("HOME", str(home))
    for var in ("FACEDROP_CONFIG", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME",
                "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    return home


def test_symlink_and_cloudstorage_are_one_folder(home: Path) -> None:
    assert dropbox_candidates(home) == [home / "Library/CloudStorage/Dropbox"]


def test_setup_creates_folders_under_the_resolved_path(home: Path) -> None:
    real = home / "Library/CloudStorage/Dropbox"
    result = setup_dropbox(home, platform="darwin")
    assert result.inbox == real / "facedrop/inbox" and result.inbox.is_dir()
    assert result.outbox == real / "facedrop/outbox" and result.outbox.is_dir()
    assert not os.path.islink(result.inbox.parent)
    assert result.config == user_config_path(home=home, platform="darwin")
    cfg = load_config(None, home=home, platform="darwin")  # what the daemon loads
    assert cfg.paths.inbox == result.inbox and cfg.paths.outbox == result.outbox
    assert not cfg.paths.state.is_relative_to(real)
    assert "facedrop/inbox" in result.teammate_text and "job.yaml" in result.teammate_text
    # running it again changes nothing and keeps other keys
    result.config.write_text(result.config.read_text() + "daemon:\n  notify: false\n")
    setup_dropbox(home, platform="darwin")
    cfg = load_config(None, home=home, platform="darwin")
    assert cfg.paths.inbox == result.inbox and cfg.daemon.notify is False


def test_info_json_and_ambiguity(home: Path, tmp_path: Path) -> None:
    team = tmp_path / "elsewhere/Dropbox (Acme)"
    team.mkdir(parents=True)
    (home / ".dropbox").mkdir()
    (home / ".dropbox/info.json").write_text(json.dumps({
        "personal": {"path": str(home / "Dropbox"), "host": 1},
        "business": {"path": str(team), "host": 2}}))
    with pytest.raises(ConfigError, match="several Dropbox folders"):
        find_dropbox(home)
    result = setup_dropbox(home, dropbox=team, platform="darwin")
    assert result.inbox == team.resolve() / "facedrop/inbox"


def test_no_dropbox_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no Dropbox folder was found") as info:
        find_dropbox(tmp_path)
    assert "--dropbox-path" in info.value.fix


def test_state_inside_dropbox_is_refused(home: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"paths:\n  state: {home / 'Dropbox/facedrop/state'}\n")
    with pytest.raises(ConfigError, match="is inside Dropbox"):
        setup_dropbox(home, config_path=cfg, platform="darwin")


def test_cli_setup_dropbox(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["setup", "--dropbox"]) == 0
    out = capsys.readouterr().out
    assert "For your teammate" in out and "facedrop/outbox" in out
    assert load_config(None, home=home).paths.inbox.name == "inbox"

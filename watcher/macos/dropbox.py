"""``facedrop setup --dropbox``: inbox and outbox in a shared Dropbox folder.

Dropbox on macOS 12.5+ lives in ``~/Library/CloudStorage/Dropbox`` (``Dropbox-<Team>`` for
business accounts) and ``~/Dropbox`` is often a symlink to it; the desktop app also records its
folders in ``~/.dropbox/info.json``. FSEvents reports real paths, so the config gets the
*resolved* folder. The state database stays outside Dropbox: SQLite in a synced folder gets
locked or corrupted.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ConfigError

SUBFOLDER = "facedrop"


@dataclass(frozen=True, slots=True)
class DropboxSetup:
    """What ``setup_dropbox`` did."""

    dropbox: Path
    inbox: Path
    outbox: Path
    config: Path
    teammate_text: str


def _info_json_paths(home: Path) -> list[Path]:
    """Folders listed by the Dropbox app in ``~/.dropbox/info.json`` (personal, business)."""
    info = home / ".dropbox" / "info.json"
    try:
        data = json.loads(info.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(data, dict):
        return []
    return [Path(acc["path"]) for acc in data.values()
            if isinstance(acc, dict) and isinstance(acc.get("path"), str)]


def dropbox_candidates(home: Path) -> list[Path]:
    """Every Dropbox folder found, resolved (symlinks followed) and without duplicates."""
    found = _info_json_paths(home)
    cloud = home / "Library" / "CloudStorage"
    if cloud.is_dir():
        found += sorted(p for p in cloud.iterdir() if p.name.startswith("Dropbox"))
    found.append(home / "Dropbox")
    resolved = [Path(os.path.realpath(p)) for p in found]
    return [p for p in dict.fromkeys(resolved) if p.is_dir()]


def find_dropbox(home: Path) -> Path:
    """The one Dropbox folder, resolved; ``ConfigError`` when there is none or several."""
    candidates = dropbox_candidates(home)
    if not candidates:
        raise ConfigError("no Dropbox folder was found (looked in ~/.dropbox/info.json, "
                          "~/Library/CloudStorage/Dropbox* and ~/Dropbox)",
                          fix="install the Dropbox app and let it sync, or pass "
                              "--dropbox-path FOLDER")
    if len(candidates) > 1:
        listing = ", ".join(str(c) for c in candidates)
        raise ConfigError(f"several Dropbox folders were found: {listing}",
                          fix="choose one with --dropbox-path FOLDER")
    return candidates[0]


def teammate_text(job_example: str = "anna-intro") -> str:
    """The paragraph a remote teammate needs to submit a job through the shared folder."""
    return (
        f"To make a talking-head video, open the shared Dropbox folder '{SUBFOLDER}' and create "
        f"a new folder inside '{SUBFOLDER}/inbox' named after the job (for example "
        f"'{job_example}'). Put into it one face photo (.jpg, .png or .webp), one voice "
        "recording (.wav, .mp3, .m4a, .aac, .flac or .ogg) and, last of all, a file named "
        "'job.yaml' (it may be empty). Wait until Dropbox shows everything as uploaded. The "
        f"finished video appears in '{SUBFOLDER}/outbox/{job_example}/{job_example}.mp4'; "
        "'status.json' in that folder says queued, running, done or failed, and 'error.txt' "
        "explains a failure and how to fix it. Your files are moved to its 'input' folder."
    )


def setup_dropbox(home: Path, *, dropbox: Path | None = None, config_path: Path | None = None,
                  platform: str | None = None) -> DropboxSetup:
    """Create ``<Dropbox>/facedrop/{inbox,outbox}`` and point the user config at them.

    Writes ``config_path`` or the per-user config file (``watcher.config.write_user_config``),
    then loads the result the way the daemon does, and refuses a state folder inside Dropbox.
    """
    from watcher.config import load_config, user_config_path, write_user_config

    root = Path(os.path.realpath(dropbox)) if dropbox is not None else find_dropbox(home)
    if not root.is_dir():
        raise ConfigError(f"{root} is not a folder", file=root,
                          fix="pass the Dropbox folder with --dropbox-path")
    inbox, outbox = root / SUBFOLDER / "inbox", root / SUBFOLDER / "outbox"
    inbox.mkdir(parents=True, exist_ok=True)
    outbox.mkdir(parents=True, exist_ok=True)
    target = config_path or user_config_path(home=home, platform=platform)
    written = write_user_config({"paths": {"inbox": str(inbox), "outbox": str(outbox)}}, target)
    config = load_config(config_path, home=home, platform=platform)
    if Path(os.path.realpath(config.paths.state)).is_relative_to(root):
        raise ConfigError(f"the state folder {config.paths.state} is inside Dropbox",
                          file=written, fix="set paths.state to a local folder (or remove it "
                                            "to use the default)")
    return DropboxSetup(root, inbox, outbox, written, teammate_text())

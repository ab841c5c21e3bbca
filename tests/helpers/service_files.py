"""The service files in ``configs/``, rendered by the same code as ``service install --dry-run``.

Machine-specific paths are normalised the way ``configs/README.md`` documents:

- the systemd units write the home folder as ``%h`` anyway; the plist spells it out, as
  ``/Users/you``;
- facedrop runs from a checkout in ``~/facedrop`` set up with ``make`` (``~/facedrop/.venv``);
- each config sits where the README's steps put it: the intake's and the worker's in
  ``~/.config/facedrop/``, the Mac's in its per-user config file.

``python -m tests.helpers.service_files`` writes them again after a change to the generators.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from watcher.commands.launchagent import agent_spec
from watcher.commands.service import unit_spec
from watcher.linux import systemd as sd
from watcher.macos import launchagent as la

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
CHECKOUT_PYTHON = "facedrop/.venv/bin/python"
MAC_HOME = "/Users/you"
MAC_CONFIG = Path("Library/Application Support/facedrop/config.yaml")

# checked-in file -> (example config, where it is copied under the home folder, worker?)
UNITS = {
    sd.UNIT: ("fleet-intake.yaml", Path(".config/facedrop/fleet-intake.yaml"), False),
    sd.WORKER_UNIT: ("linux-gpu-worker.yaml", Path(".config/facedrop/worker.yaml"), True),
}
PLIST = f"{la.LABEL}.plist"


def _place(config: str, home: Path, where: Path) -> Path:
    target = home / where
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(CONFIGS / config, target)
    return target


def rendered(scratch: Path) -> dict[str, str]:
    """File name in ``configs/`` -> its text, rendered in homes under ``scratch``.

    ``$FACEDROP_CONFIG`` must be unset (it would be a config layer of every service).
    """
    files = {}
    home = scratch / "linux"
    for name, (config, where, worker) in UNITS.items():
        spec = unit_spec(_place(config, home, where), home, {},
                         worker=("worker",) if worker else (),
                         python=str(home / CHECKOUT_PYTHON))
        assert spec.name == name
        files[name] = sd.render_unit(spec, home)
    mac = scratch / "mac"
    _place("mac-dropbox.yaml", mac, MAC_CONFIG)  # the per-user file: no --config needed
    plist = la.render_plist(agent_spec(None, mac, {}, python=str(mac / CHECKOUT_PYTHON)))
    files[PLIST] = plist.decode().replace(str(mac), MAC_HOME)
    assert str(scratch) not in "".join(files.values())
    return files


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        for name, text in rendered(Path(scratch)).items():
            (CONFIGS / name).write_text(text)
            print(f"wrote configs/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The example job shipped inside the package: a NASA public-domain portrait (scikit-image's
astronaut) and a short synthesised voice line (espeak-ng), with its ``job.yaml``.

``facedrop example`` copies it out for a first run; ``facedrop bench`` times the chain on it.
Read through ``importlib.resources``, so it works from a wheel as well as from a checkout.
"""

from __future__ import annotations

import shutil
from importlib.resources import files
from pathlib import Path

from pipeline.errors import InputError

FACE = "astronaut.jpg"
AUDIO = "hello.wav"
FILES = (FACE, AUDIO, "job.yaml")


def example_dir() -> Path:
    """The installed example job folder (wheels install unpacked, so a real path)."""
    return Path(str(files("pipeline") / "example"))


def copy_example(dest: Path) -> Path:
    """Write the example job folder to ``dest`` (which must not exist yet); returns ``dest``."""
    if dest.exists():
        raise InputError(
            f"'{dest}' already exists",
            fix="name a folder that does not exist yet: facedrop example NEW_FOLDER",
            file=dest,
        )
    dest.mkdir(parents=True)
    for name in FILES:
        shutil.copyfile(example_dir() / name, dest / name)
    return dest

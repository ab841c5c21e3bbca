"""Shared fixtures: real files, small sizes, no sleeps beyond short settle intervals."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_JOB = REPO / "examples" / "hello"


@pytest.fixture(scope="session")
def astronaut_path() -> Path:
    """The public-domain NASA portrait bundled in scikit-image (512x512 RGB PNG)."""
    import skimage

    return Path(skimage.__file__).parent / "data" / "astronaut.png"


@pytest.fixture(scope="session")
def speech_path() -> Path:
    """A short real speech recording (espeak-ng, 22.05 kHz mono wav, about 5.9 s)."""
    return EXAMPLE_JOB / "hello.wav"


@pytest.fixture
def example_job(tmp_path: Path) -> Path:
    """A fresh copy of the example job folder."""
    dest = tmp_path / "hello"
    shutil.copytree(EXAMPLE_JOB, dest)
    return dest

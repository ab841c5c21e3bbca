"""Run one validated job through the pipeline into an output folder (daemon and ``facedrop run``).

The video is written as ``<stem>.partial.mp4``, verified (H.264 + AAC, durations match the
input audio) and only then renamed to its final name; the timing files follow.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.media.verify import verify_video
from pipeline.spec import CancelToken, Pipeline, ProgressFn, TimingRecord
from watcher.config import Config
from watcher.jobfolder import ParsedJob, parse_job_folder
from watcher.outbox import partial_path, write_resolved_job, write_timing


@dataclass(frozen=True, slots=True)
class JobResult:
    """A finished job: the verified video and its timing."""

    video: Path
    record: TimingRecord
    parsed: ParsedJob


def execute_job(
    folder: Path,
    out_dir: Path,
    name: str,
    config: Config,
    pipeline: Pipeline,
    progress: ProgressFn,
    cancel: CancelToken,
) -> JobResult:
    """Validate ``folder``, run the pipeline, verify and publish the video in ``out_dir``."""
    parsed = parse_job_folder(folder, config, name)
    write_resolved_job(out_dir, parsed.resolved)
    partial = partial_path(out_dir, parsed.spec.output_name)
    partial.unlink(missing_ok=True)  # left by an earlier, interrupted attempt
    record = pipeline.run(parsed.spec, partial, progress, cancel)
    cancel.raise_if_cancelled()
    progress("verify", 1.0)
    verify_video(partial, expect_duration=parsed.audio_seconds, fps=parsed.spec.fps)
    final = out_dir / parsed.spec.output_name
    os.replace(partial, final)
    write_timing(out_dir, record)
    return JobResult(final, record, parsed)


def remove_partials(out_dir: Path) -> None:
    """Delete unverified videos an attempt left behind."""
    for path in out_dir.glob("*.partial.*"):
        path.unlink(missing_ok=True)

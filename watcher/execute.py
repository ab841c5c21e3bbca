"""Run one validated job through the pipeline into an outbox folder (daemon and ``facedrop run``).

The video is written as ``<stem>.partial.mp4``, verified (H.264 + AAC, durations match the
input audio), its quality files (quality.json, preview.jpg, poster.jpg) and timing files are
written, and only then is it renamed to its final name: the video under its final name is the
commit mark of a finished job. (With the timing last, a kill between the rename and the timing
left a good video that recovery did not recognise: it ran the job again and could end it
"given up" next to the video.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.media.verify import verify_video
from pipeline.spec import CancelToken, Pipeline, ProgressFn, TimingRecord
from watcher.jobfolder import ParsedJob
from watcher.killpoints import CrashHook, no_crash
from watcher.outbox import Outbox, partial_path


@dataclass(frozen=True, slots=True)
class JobResult:
    """A finished job: the verified video and its timing."""

    video: Path
    record: TimingRecord
    parsed: ParsedJob


def execute_job(
    parsed: ParsedJob,
    out_dir: Path,
    outbox: Outbox,
    pipeline: Pipeline,
    progress: ProgressFn,
    cancel: CancelToken,
    *,
    crash: CrashHook = no_crash,
) -> JobResult:
    """Run the pipeline on a parsed job, verify and publish the video in ``out_dir``."""
    outbox.write_resolved_job(out_dir, parsed.resolved)
    partial = partial_path(out_dir, parsed.spec.output_name)
    partial.unlink(missing_ok=True)  # left by an earlier, interrupted attempt
    record = pipeline.run(parsed.spec, partial, progress, cancel)
    cancel.raise_if_cancelled()
    progress("verify", 1.0)
    verify_video(partial, expect_duration=parsed.audio_seconds, fps=parsed.spec.fps)
    if record.quality is not None:  # before the video's rename: they appear together
        outbox.write_quality(out_dir, record.quality)
    outbox.write_timing(out_dir, record)
    crash("child.timed")
    final = out_dir / parsed.spec.output_name
    os.replace(partial, final)
    crash("child.published")
    return JobResult(final, record, parsed)

"""``facedrop score VIDEO [--audio FILE] [--json] [--plot PNG]``: score any video's lip sync
(SyncNet LSE-C, LSE-D, A/V offset) and stability, so engines and peers can be compared on the
same clip. Exit status 0 when scored (whatever the verdict); errors are typed and explained.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import MediaError
from watcher.commands.options import add_weights_dir, weights_dir
from watcher.console import print_json

if TYPE_CHECKING:  # the scoring modules import torch: only when a video is scored
    from pipeline.quality.headmotion import HeadMotion
    from pipeline.quality.report import QualityReport

LABELS = {
    "tracked_share": "face tracked", "landmark_jitter_px": "landmark jitter",
    "seam_step": "mouth seam", "flicker": "flicker", "duration_gap_s": "audio - video length",
    "lse_c": "LSE-C (confidence)", "lse_d": "LSE-D (distance)", "av_offset_frames": "A/V offset",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score a video: lip sync (SyncNet LSE-C/LSE-D, offset), "
                                     "face tracking and stability")
    p.add_argument("video", type=Path, help="the video to score (any tool's)")
    p.add_argument("--audio", type=Path, default=None,
                   help="the speech, if not the video's own sound track")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--plot", type=Path, default=None, metavar="PNG",
                   help="write SyncNet confidence against time to this PNG")
    add_weights_dir(p)
    p.set_defaults(func=run)


def render(report: QualityReport, video: Path) -> str:
    """The report as text: verdict, then one line per measure."""
    from pipeline.quality.measures import Verdict

    lines = [f"{video.name}: {report.video_seconds:.2f} s at 25 fps",
             f"Verdict: {report.summary()}"]
    for m in report.measures:
        value = f"{m.value:.3g} {m.unit}".strip()
        mark = "ok" if m.verdict is Verdict.OK else "CHECK"
        lines.append(f"  {LABELS.get(m.name, m.name):<22} {value:<18} {mark:<6} "
                     f"({m.bound.value} {m.threshold:g})")
    if report.motion is not None:
        lines.extend(motion_lines(report.motion))
    if report.sync is not None:
        s = report.sync
        lines.append(f"  offset {s.offset:+d} frames = {s.offset_seconds:+.2f} s "
                     "(positive: the audio is ahead of the lips)")
    rate = report.seconds / max(report.video_seconds, 1e-9)
    lines.append(f"Scoring took {report.seconds:.1f} s ({rate:.2f} s per second of video)")
    return "\n".join(lines)


def motion_lines(m: HeadMotion) -> list[str]:
    """Head motion: the word, range and speed per angle, blinks per minute."""
    from pipeline.quality.headmotion import AXES

    per_min = m.blinks_per_minute
    blinks = "not counted" if per_min is None else f"{m.blinks} ({per_min:.0f} per minute)"
    return [f"Head motion: {m.word} ({m.head_speed:.1f} deg/s)"] + [
        f"  {axis:<6} range {r:5.1f} deg   speed {v:5.1f} deg/s"
        for axis, r, v in zip(AXES, m.range_deg, m.speed_deg_s, strict=True)
    ] + [f"  blinks {blinks}"]


def run(args: argparse.Namespace) -> int:
    from pipeline.quality.pictures import confidence_plot
    from pipeline.quality.video import score_video  # torch: only when scoring

    try:
        scored = score_video(args.video, weights_dir(args), args.audio)
    except (ValueError, RuntimeError, MemoryError) as exc:  # a decoder or OpenCV failure
        raise MediaError(f"the video could not be scored ({type(exc).__name__}: {exc})",
                         file=args.video, fix="check that it plays; re-encode it as MP4") from exc
    report = scored.report
    if args.plot is not None:
        if report.sync is None:
            raise MediaError("there is no lip-sync confidence to plot: "
                             + "; ".join(report.notes), file=args.video)
        confidence_plot(args.plot, report.sync)
    if args.json:
        print_json(report.as_dict())
    else:
        print(render(report, Path(args.video)))
        if args.plot is not None:
            print(f"Plot written to {args.plot}")
    return 0

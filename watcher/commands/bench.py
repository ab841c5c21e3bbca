"""``facedrop bench``: speed and memory figures for the whole chain or one stage on this machine.

The figures come from ``pipeline.chain.benchmark`` (one function per mode); this module parses
the arguments, runs each measured case in its own child process where the peak memory matters
(a process's peak resident size never goes down), and prints.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from rich.console import Console
from rich.table import Table

from pipeline.lipsync.registry import ENGINE_NAMES
from pipeline.settings import AUTO_BATCH, BatchSize, PipelineSettings, ProcessKind
from watcher.commands.options import add_weights_dir
from watcher.config import load_config

DEFAULT_RENDER_FRAMES = 8


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``bench``."""
    p = sub.add_parser("bench", help="measure speed (realtime factor, stage shares) and memory")
    p.add_argument("--stage", choices=("chain", "animate", "lipsync", "voice"), default=None,
                   help="the whole chain (default; lipsync with --lipsync), or one stage's "
                        "networks (voice: JoyVASA audio features and motion sampling)")
    p.add_argument("--motion", choices=("voice", "still"), default=None,
                   help="generated motion: alone, voice is the same as --stage voice (audio "
                        "features, sampling and rendering per output second); with --stage "
                        "chain, one whole job per --seconds with this motion, each in its own "
                        "process: time and peak memory (voice weights needed for voice)")
    p.add_argument("--fps", type=float, default=None,
                   help="with --stage chain --motion: the job's frame rate (default 25)")
    p.add_argument("--lipsync", choices=ENGINE_NAMES, default=None, metavar="ENGINE",
                   help=f"the lip-sync engine to measure ({', '.join(ENGINE_NAMES)}; default: "
                        "the configured one); musetalk is shown next to Wav2Lip")
    p.add_argument("--seconds", type=float, nargs="+", default=None,
                   help="audio lengths to run, each in its own process (default 10; with "
                        "--stage voice: one length, default 3.88 = one 100-frame window)")
    p.add_argument("--batch", type=_batch, nargs="+", metavar="N|auto",
                   help="with --stage animate: a cold render at each batch size, each in its "
                        "own process: ms per rendered frame and peak memory")
    p.add_argument("--frames", type=int, default=None,
                   help=f"frames each --batch case renders (default: {DEFAULT_RENDER_FRAMES}, or "
                        "the largest batch)")
    p.add_argument("--motion-steps", type=int, nargs="+", default=[500, 100, 50, 25],
                   metavar="N", help="with --stage voice: sampling step counts to time "
                                     "(500 is the official DDPM and the reference); with "
                                     "--stage chain --motion voice: the job samples with the "
                                     "smallest")
    add_weights_dir(p, "weights folder (default: the config's)")
    p.add_argument("--device", default=None, help="auto | mps | cuda | cpu")
    p.add_argument("--driving", default=None, help="driving clip (default: a synthetic sway)")
    p.add_argument("--enhance", action="store_true", help="run GFPGAN too")
    p.add_argument("--no-lipsync", action="store_true", help="skip Wav2Lip")
    p.add_argument("--compare", action="store_true",
                   help="time the plain and the fast paths in one process and print the ratios "
                        "(render, Wav2Lip, a repeat-avatar job of --seconds)")
    p.add_argument("--as-worker", action="store_true",
                   help="load the networks as the daemon's worker does: pipeline.compile auto "
                        "compiles G on a CPU (the first compile is in the time and the memory)")
    p.add_argument("--json", action="store_true", help="print the raw figures as JSON lines")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_bench)


def _batch(text: str) -> BatchSize:
    if text == AUTO_BATCH:
        return AUTO_BATCH
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise argparse.ArgumentTypeError(f"{text!r} is not {AUTO_BATCH} or a positive integer")


def cmd_bench(args: argparse.Namespace) -> int:
    if not _stage_from_motion(args):
        print("--motion goes alone (voice) or with --stage chain (a whole job's memory)",
              file=sys.stderr)
        return 2
    voice_seconds = args.seconds[0] if args.seconds else None
    args.seconds = args.seconds or [10.0]
    if args.child:
        return _child(args)
    if args.compare:
        return _compare(args)
    if args.batch and args.stage != "animate":
        print("--batch measures the LivePortrait render: use it with --stage animate",
              file=sys.stderr)
        return 2
    rows, printer = _measure(args, voice_seconds)
    if rows is None:
        return 1
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        printer(rows)
    return 0


def _measure(args: argparse.Namespace, voice_seconds: float | None
             ) -> tuple[list[dict[str, Any]] | None, Callable[[list[dict[str, Any]]], None]]:
    """The rows ``bench`` prints, and the printer for them."""
    rows: list[dict[str, Any]] | None
    if args.stage == "chain" and args.motion:
        rows = _in_children(args, [["--seconds", str(seconds)] for seconds in args.seconds])
        printer = _print_job
    elif args.stage == "chain":
        rows = _in_children(args, [["--seconds", str(seconds)] for seconds in args.seconds])
        printer = _print_chain
    elif args.batch:
        frames = args.frames or max([DEFAULT_RENDER_FRAMES]
                                    + [b for b in args.batch if isinstance(b, int)])
        rows = _in_children(args, [["--stage", "animate", "--batch", str(b), "--frames",
                                    str(frames)] for b in args.batch])
        printer = _print_render
    else:
        from pipeline.chain.benchmark import bench_lipsync, bench_networks, bench_voice

        if args.stage == "voice":
            result = bench_voice(_settings(args), args.motion_steps, voice_seconds)
        elif args.stage == "animate":
            result = bench_networks(_settings(args))
        else:
            result = bench_lipsync(_settings(args), args.lipsync)
        rows = [{"title": result.title, **result.figures}]
        printer = _print_stage
    return rows, printer


def _stage_from_motion(args: argparse.Namespace) -> bool:
    """Set the stage when none is given (False: ``--motion`` with a stage it does not fit).
    ``--motion voice`` alone is the issue's name for ``--stage voice``: one code path."""
    if args.stage is None:
        args.stage = ("voice" if args.motion == "voice"
                      else "lipsync" if args.lipsync else "chain")
    if args.motion is None or args.stage == "chain":
        return True
    return args.motion == "voice" and args.stage == "voice"


def _in_children(args: argparse.Namespace, cases: list[list[str]]
                 ) -> list[dict[str, Any]] | None:
    """Each case in its own process; None after the first failure (its message printed once:
    the next cases would only repeat it)."""
    rows = []
    for case in cases:
        row = _in_child(args, case)
        if row is None:
            return None
        rows.append(row)
    return rows


def _in_child(args: argparse.Namespace, case: list[str]) -> dict[str, Any] | None:
    """Run one case as ``facedrop bench --child``; its last stdout line is the JSON figures."""
    cmd = [sys.executable, "-m", "watcher.cli"]
    if args.config:
        cmd += ["--config", str(args.config)]
    cmd += ["bench", "--child", *case]
    if "--stage" not in case:
        cmd += ["--stage", args.stage]
    for flag in ("weights_dir", "device", "driving", "lipsync", "motion", "fps"):
        if getattr(args, flag):
            cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    cmd += (["--enhance"] * args.enhance + ["--no-lipsync"] * args.no_lipsync
            + ["--as-worker"] * args.as_worker)
    if args.motion:
        cmd += ["--motion-steps", *map(str, args.motion_steps)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        sys.stderr.write(done.stderr)
        return None
    row: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return row


def _settings(args: argparse.Namespace) -> PipelineSettings:
    settings = load_config(args.config).pipeline
    if args.weights_dir:
        settings = replace(settings, weights_dir=args.weights_dir.resolve())
    if args.device:
        settings = replace(settings, device=args.device)
    if args.lipsync and args.stage == "chain":
        settings = replace(settings, lipsync_model=args.lipsync)
    if args.as_worker:
        settings = replace(settings, process=ProcessKind.WORKER)
    return settings


def _child(args: argparse.Namespace) -> int:
    """One measured case in this fresh process (torch loads only here)."""
    from pipeline.chain.benchmark import bench_chain, bench_generated, bench_render
    from pipeline.example import AUDIO, FACE, example_dir

    if args.motion:
        result = bench_generated(_settings(args), example_dir() / FACE, example_dir() / AUDIO,
                                 args.seconds[0], args.motion, fps=args.fps or 25.0,
                                 steps=min(args.motion_steps), lipsync=not args.no_lipsync,
                                 enhance=args.enhance)
    elif args.batch:
        result = bench_render(_settings(args), args.batch[0],
                              args.frames or DEFAULT_RENDER_FRAMES).to_json()
    else:
        result = bench_chain(_settings(args), example_dir() / FACE, example_dir() / AUDIO,
                             args.seconds[0], args.driving, lipsync=not args.no_lipsync,
                             enhance=args.enhance)
    print(json.dumps(result))
    return 0


def _compare(args: argparse.Namespace) -> int:
    """``--compare``: every row in this process (the ratio is what counts, not the peak)."""
    from pipeline.chain.compare import compare_job, compare_lipsync, compare_render

    settings = _settings(args)
    seconds = args.seconds[0]
    rows = [*compare_render(settings, args.frames or 2), *compare_lipsync(settings)]
    whole, stages = compare_job(settings, seconds)
    rows += [*stages, whole]
    if args.json:
        for row in rows:
            print(json.dumps(row.to_json()))
        return 0
    table = Table(title="plain path against fast path, timed in one process")
    for column in ("stage", "unit", "plain", "fast", "ratio", "max |diff|"):
        table.add_column(column, justify="left" if column in ("stage", "unit") else "right")
    for row in rows:
        diff = "" if row.max_diff != row.max_diff else f"{row.max_diff:.3g} ({row.diff_unit})"
        table.add_row(row.stage, row.unit, f"{row.old:.3f}", f"{row.new:.3f}",
                      f"{row.ratio:.2f}x", diff)
    console = Console()
    console.print(table)
    console.print(f"repeat-avatar job: {seconds / whole.old:.2f}x real time plain, "
                  f"{seconds / whole.new:.2f}x fast")
    return 0


def _print_stage(rows: list[dict[str, Any]]) -> None:
    figures = dict(rows[0])
    table = Table(title=figures.pop("title"))
    table.add_column("part")
    table.add_column("figure", justify="right")
    for name, value in figures.items():
        table.add_row(name, f"{value:.1f}")
    Console().print(table)


def _print_job(rows: list[dict[str, Any]]) -> None:
    first = rows[0]
    steps = f", motion_steps {first['steps']}" if first["steps"] else ""
    table = Table(title=f"Whole {first['motion']} jobs on {first['device']} from empty caches, "
                        f"each in its own process ({first['fps']:g} fps{steps})")
    for col in ("audio s", "frames", "rendered", "job s", "peak RSS (MiB)"):
        table.add_column(col, justify="right")
    for row in rows:
        table.add_row(f"{row['seconds']:g}", str(row["frames"]), str(row["rendered"]),
                      f"{row['job_seconds']:.1f}", f"{row['peak_rss_mb']:.0f}")
    Console().print(table)


def _print_render(rows: list[dict[str, Any]]) -> None:
    last = rows[-1]
    table = Table(title=f"Cold LivePortrait render of {last['frames']} frames on "
                        f"{last['device']} ({last['dtype']}), each batch size in its own process")
    for col in ("batch", "frames/call", "ms/rendered frame", "peak RSS (MiB)"):
        table.add_column(col, justify="right")
    for row in rows:
        table.add_row(row["batch"], str(row["used"]), f"{row['ms_per_frame']:.0f}",
                      f"{row['peak_rss_mb']:.0f}")
    console = Console()
    console.print(table)
    if last["available_mb"] is None:
        console.print(f"auto picks {last['auto_pick']} here: the free memory could not be read")
    else:
        console.print(f"auto picks {last['auto_pick']} here: {last['available_mb']:.0f} MiB free "
                      f"of {last['total_mb']:.0f} MiB with the models loaded "
                      f"({last['memory_source']})", highlight=False)


def _print_chain(rows: list[dict[str, Any]]) -> None:
    console = Console()
    for row in rows:
        for run in ("cold", "repeat"):
            rec = row[run]
            total = rec["total_seconds"] or 1.0
            length = 1.0 if run == "cold" else row["seconds"]
            label = "warm-up (cold caches)" if run == "cold" else "repeat-avatar job"
            table = Table(title=f"{length:g} s of audio, {label} on {rec['device']} "
                                f"({rec['dtype']}): realtime factor {rec['realtime_factor']:.3f}x, "
                                f"{rec['frames']} frames, peak memory {row['peak_rss_mb']:.0f} MiB")
            for col in ("stage", "seconds", "share", "ms/frame", "cache"):
                table.add_column(col, justify="left" if col in ("stage", "cache") else "right")
            for s in rec["stages"]:
                share = f"{100 * s['seconds'] / total:.1f}%"
                table.add_row(s["name"], f"{s['seconds']:.2f}", share,
                              f"{s['ms_per_frame']:.1f}", s["cache"])
            table.add_row("model load", f"{rec['model_load_seconds']:.2f}", "", "", "")
            table.add_row("total", f"{total:.2f}", "100%", "", "")
            console.print(table)
            if run == "repeat":
                line = quality_line(rec)
                if line:
                    console.print(line, highlight=False)
        console.print(per_second_line(row), highlight=False)


def per_second_line(row: dict[str, Any]) -> str:
    """Seconds of work per second of video: the repeat-avatar job as measured, and a first job
    (cold caches: every output frame a new render, as with a driving clip at least as long as
    the speech) as the warm-up's time per rendered frame times the frame rate, plus the repeat
    job's per second (lip sync, encoding and the rest)."""
    repeat, cold = row["repeat"], row["cold"]
    video = repeat["frames"] / repeat["fps"] if repeat["fps"] else 0.0
    animate = next((s for s in cold["stages"] if s["name"] == "animate"), None)
    if not video or animate is None or not animate["frames"]:
        return ""
    rest = repeat["total_seconds"] / video
    first = animate["seconds"] / animate["frames"] * repeat["fps"] + rest
    return (f"per second of video ({repeat['fps']:g} fps, {repeat['device']}): repeat-avatar "
            f"job {rest:.1f} s; first job (every frame a new render: {animate['frames']} "
            f"rendered in the warm-up at {animate['seconds'] / animate['frames']:.2f} s each) "
            f"about {first:.0f} s")


def quality_line(rec: dict[str, Any]) -> str:
    """The quality scoring's cost in a repeat-avatar job: ms per video-second and its share of
    the job (the target is at most 5%); empty when the job did not score."""
    stage = next((s for s in rec["stages"] if s["name"] == "quality"), None)
    video_seconds = rec["frames"] / rec["fps"] if rec["fps"] else 0.0
    if stage is None or stage["cache"] == "skipped" or not video_seconds:
        return ""
    share = 100 * stage["seconds"] / (rec["total_seconds"] or 1.0)
    return (f"quality: {1000 * stage['seconds'] / video_seconds:.0f} ms per video-second, "
            f"{share:.1f}% of the repeat-avatar job (target: at most 5%)")

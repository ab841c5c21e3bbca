"""``facedrop bench``: speed and memory figures for the whole chain on this machine.

Each audio length runs in its own child process, so each peak-memory figure is that length's
own (a process's peak resident size never goes down).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from watcher.config import load_config

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "hello"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``bench``."""
    p = sub.add_parser("bench", help="measure speed (realtime factor, stage shares) and memory")
    p.add_argument("--seconds", type=float, nargs="+", default=[10.0],
                   help="audio lengths to run, each in its own process (default 10)")
    p.add_argument("--weights", type=Path, help="weights folder (default: the config's)")
    p.add_argument("--device", default=None, help="auto | mps | cuda | cpu")
    p.add_argument("--driving", default=None, help="driving clip (default: a synthetic sway)")
    p.add_argument("--enhance", action="store_true", help="run GFPGAN too")
    p.add_argument("--no-lipsync", action="store_true", help="skip Wav2Lip")
    p.add_argument("--json", action="store_true", help="print the raw figures as JSON lines")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    if args.child:
        return _child(args)
    rows = []
    for seconds in args.seconds:
        cmd = [sys.executable, "-m", "watcher.cli"]
        if args.config:
            cmd += ["--config", str(args.config)]
        cmd += ["bench", "--child", "--seconds", str(seconds)]
        for flag in ("weights", "device", "driving"):
            if getattr(args, flag):
                cmd += [f"--{flag}", str(getattr(args, flag))]
        cmd += ["--enhance"] * args.enhance + ["--no-lipsync"] * args.no_lipsync
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode:
            sys.stderr.write(done.stderr)
            return done.returncode
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        _print(rows)
    return 0


def _child(args: argparse.Namespace) -> int:
    from pipeline.benchmark import bench_chain  # torch loads only in the child

    config = load_config(args.config)
    settings = config.pipeline
    if args.weights:
        settings = replace(settings, weights_dir=args.weights.resolve())
    if args.device:
        settings = replace(settings, device=args.device)
    result = bench_chain(settings, EXAMPLE / "astronaut.jpg", EXAMPLE / "hello.wav",
                         args.seconds[0], args.driving, lipsync=not args.no_lipsync,
                         enhance=args.enhance)
    print(json.dumps(result))
    return 0


def _print(rows: list[dict]) -> None:  # type: ignore[type-arg]
    console = Console()
    for row in rows:
        for run in ("cold", "repeat"):
            rec = row[run]
            total = rec["total_seconds"] or 1.0
            table = Table(title=f"{row['seconds']:g} s of audio, {run} run on {rec['device']} "
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

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

from pipeline.example import AUDIO, FACE, example_dir
from watcher.config import load_config


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``bench``."""
    p = sub.add_parser("bench", help="measure speed (realtime factor, stage shares) and memory")
    p.add_argument("--stage", choices=("chain", "animate", "lipsync"), default="chain",
                   help="the whole chain (default), or one stage's networks")
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
    if args.stage != "chain":
        return _stage(args)
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


def _settings(args: argparse.Namespace):  # noqa: ANN202 - PipelineSettings, imported lazily
    settings = load_config(args.config).pipeline
    if args.weights:
        settings = replace(settings, weights_dir=args.weights.resolve())
    if args.device:
        settings = replace(settings, device=args.device)
    return settings


def _stage(args: argparse.Namespace) -> int:
    """One stage's figures: ms per network call (animate) or per lip-sync part (lipsync)."""
    from pipeline.chain.bank import ModelBank
    from pipeline.rss import peak_rss_mb

    settings = _settings(args)
    bank = ModelBank(settings)
    if args.stage == "animate":
        from pipeline.liveportrait.bench import benchmark_networks
        from pipeline.liveportrait.loader import load_liveportrait

        dtype = bank.dtype(bank.device.type == "cuda")
        nets = load_liveportrait(settings.weights_dir, bank.device, dtype)
        figures = benchmark_networks(nets, bank.device, dtype)
        title = f"LivePortrait on {bank.device} ({dtype}), ms per batch-1 call"
    else:
        from pipeline.face.landmarks import FaceLandmarker
        from pipeline.lipsync.bench import benchmark_lipsync
        from pipeline.lipsync.load import load_wav2lip, wav2lip_path
        from pipeline.media.audio import load_audio
        from pipeline.media.image import load_image

        dtype = bank.dtype(False)
        net = load_wav2lip(wav2lip_path(settings.weights_dir, settings.lipsync_model),
                           bank.device, dtype)
        result = benchmark_lipsync(net, FaceLandmarker(settings.weights_dir),
                                   load_image(example_dir() / FACE),
                                   load_audio(example_dir() / AUDIO).samples, bank.device, dtype,
                                   batch_size=settings.batch_size)
        figures = {"landmarks (per distinct crop)": result.landmarks_ms, "mel": result.mel_ms,
                   "generator": result.generator_ms, "blend": result.blend_ms,
                   "total": result.total_ms}
        title = f"Lip sync on {bank.device} ({dtype}), ms per output frame"
    figures["peak memory (MiB)"] = peak_rss_mb()
    if args.json:
        print(json.dumps(figures))
        return 0
    table = Table(title=title)
    table.add_column("part")
    table.add_column("figure", justify="right")
    for name, value in figures.items():
        table.add_row(name, f"{value:.1f}")
    Console().print(table)
    return 0


def _child(args: argparse.Namespace) -> int:
    from pipeline.chain.benchmark import bench_chain  # torch loads only in the child

    result = bench_chain(_settings(args), example_dir() / FACE, example_dir() / AUDIO,
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

"""``facedrop example [DEST]``: write the bundled example job folder, ready to run or drop."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.example import copy_example


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("example", help="write the example job folder (a photo, a voice line)")
    p.add_argument("dest", nargs="?", type=Path, default=Path("hello"),
                   help="folder to create (default: ./hello)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    dest = copy_example(args.dest)
    print(f"Wrote the example job to {dest}. Run it with: facedrop run {dest}")
    return 0

"""Options several commands share, each spelled one way.

The weights folder is ``--weights-dir`` everywhere. Its older spellings (``--dir`` in
``weights``, ``--weights`` in ``bench``) still work and print a one-line deprecation note.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

WEIGHTS_FLAG = "--weights-dir"
OLD_WEIGHTS_FLAGS = ("--dir", "--weights")


class _Deprecated(argparse.Action):
    """Stores the value like the current flag, after a note on stderr (stdout stays data)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None) -> None:
        sys.stderr.write(f"note: {option_string} is deprecated; use {WEIGHTS_FLAG}\n")
        setattr(namespace, self.dest, values)


def add_weights_dir(parser: argparse.ArgumentParser,
                    help: str = "the weights folder (default: the config's paths.weights)"
                    ) -> None:
    """``--weights-dir DIR`` (and its deprecated spellings) into ``args.weights_dir``."""
    parser.add_argument(WEIGHTS_FLAG, dest="weights_dir", type=Path, default=None,
                        metavar="WEIGHTS_DIR", help=help)
    parser.add_argument(*OLD_WEIGHTS_FLAGS, dest="weights_dir", type=Path,
                        action=_Deprecated, help=argparse.SUPPRESS)


def weights_dir(args: argparse.Namespace) -> Path:
    """``--weights-dir`` or the configured weights folder."""
    if args.weights_dir is not None:
        return Path(args.weights_dir).expanduser().resolve()
    from watcher.config import load_config

    return load_config(args.config).paths.weights

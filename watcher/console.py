"""The CLI's output streams: a rich console that never wraps when piped, and ``--json`` output.

On a terminal rich fits tables to the window. Piped into ``grep`` or a file it would assume 80
columns and fold or cut names; there the console is made wide and soft-wrapping instead, so every
line comes out whole (and without colour codes, which rich leaves out off a terminal).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

PIPE_WIDTH = 10_000  # wide enough for any table row; tables still size to their content


def make_console(*, stderr: bool = False) -> Console:
    """A console for stdout (or stderr): full lines whenever the stream is not a terminal."""
    console = Console(stderr=stderr)
    if not console.is_terminal:
        console = Console(stderr=stderr, width=PIPE_WIDTH, soft_wrap=True)
    return console


def print_json(document: Any) -> None:
    """Write ``document`` to stdout as one JSON document (the only thing ``--json`` prints)."""
    sys.stdout.write(json.dumps(document, indent=2) + "\n")
    sys.stdout.flush()

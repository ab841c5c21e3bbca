"""The CLI's output streams: a rich console that never wraps when piped, tables that stay
greppable when piped, and ``--json`` output.

On a terminal rich fits tables to the window. Piped into ``grep`` or a file it would assume 80
columns and fold or cut names; there the console is made wide and soft-wrapping instead, so every
line comes out whole (and without colour codes, which rich leaves out off a terminal). A wide
table would then pad every row to its widest cell: piped, ``print_table`` writes one line per
row instead, with long free text (a fix, a detail) on indented lines of its own.
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

PIPE_WIDTH = 10_000  # wide enough for any table row; tables still size to their content
PROSE_WIDTH = 160  # piped: where print_table breaks a long free-text cell (our breaks, not rich's)


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


def print_table(console: Console, title: str, columns: Sequence[str],
                rows: Sequence[Sequence[str]], *, prose: Sequence[str] = ()) -> None:
    """``rows`` as a rich table on a terminal; piped, one line per row, never folded or padded.

    Piped, a row's cells are joined by two spaces on one line, except the ``prose`` columns
    (long free text), which follow on indented lines of their own, broken at ``PROSE_WIDTH``:
    ``grep NAME`` finds the whole row, and no line grows with the widest cell of the table.
    """
    if console.is_terminal:
        table = Table(title=title)
        for col in columns:
            table.add_column(col, overflow="fold")
        for row in rows:
            table.add_row(*row)
        console.print(table, highlight=False)
        return
    if title:
        console.print(title, highlight=False)
    for row in rows:
        cells = list(zip(columns, row, strict=True))
        console.print("  ".join(cell for col, cell in cells if col not in prose and cell),
                      highlight=False)
        for col, cell in cells:
            if col in prose and cell:
                console.print(textwrap.fill(f"{col}: {cell}", PROSE_WIDTH, initial_indent="    ",
                                            subsequent_indent="      ", break_long_words=False,
                                            break_on_hyphens=False), highlight=False)

"""Terminal output: progress on stderr, results on stdout (tables, or JSON for machines)."""
from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)


def progress(message: str) -> None:
    # Plain text (a step's command may hold "[0-9]"), and a log line: never wrapped in a pipe.
    err.print(f"[dim]•[/dim] {escape(message)}", soft_wrap=True)


def print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def table(title: str, columns: list[str], rows: list[list]) -> None:
    t = Table(title=title, title_justify="left")
    for col in columns:
        t.add_column(col)
    for row in rows:
        t.add_row(*[("" if v is None else str(v)) for v in row])
    out.print(t)


def human_size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)

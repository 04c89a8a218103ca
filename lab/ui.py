"""Terminal output: progress on stderr, results on stdout (tables, or JSON for machines).

The one path for text to the terminal. What programs print and what scenario files say
is untrusted: it is shown literally. Both consoles have markup, emoji and highlighting
off, so `x[/b]y`, `[red]` and `:cat:` stay as typed; `printable()` makes control
characters visible (`\\x1b[2J` is shown, never obeyed). Styles come only from our own
code, as rich Text spans (`styled`), never from markup in a string.
"""
from __future__ import annotations

import json
import re
import sys

from rich.console import Console
from rich.table import Table
from rich.text import Text

err = Console(stderr=True, highlight=False, markup=False, emoji=False)
out = Console(highlight=False, markup=False, emoji=False)

# C0 controls, DEL, C1 controls, and the bidirectional overrides/isolates that can make
# shown text read differently from what it is (Trojan Source).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape_char(match: re.Match) -> str:
    ch = match.group()
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text, newlines: bool = False) -> str:
    """`text` with every control character shown as an escape (`\\x1b`, `\\r`, `\\u202e`).
    Bytes are decoded as UTF-8, undecodable bytes shown as `\\xNN`. With newlines=True,
    line breaks (and tabs) are kept: for multi-line text such as a description."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", errors="backslashreplace")
    text = str(text)
    if not newlines:
        return _CONTROL.sub(_escape_char, text)
    return "\n".join(_CONTROL.sub(lambda m: "\t" if m.group() == "\t" else _escape_char(m), line)
                     for line in text.split("\n"))


def styled(*parts) -> Text:
    """A line from pieces: plain strings (untrusted, shown literally and printable) and
    (string, style) pairs whose style is ours."""
    text = Text()
    for part in parts:
        if isinstance(part, tuple):
            text.append(printable(part[0]), style=part[1])
        else:
            text.append(printable(part))
    return text


def say(console: Console, *parts, newlines: bool = False) -> None:
    """Print a line built as `styled` does; never wrapped (log lines stay greppable)."""
    if newlines:
        text = Text()
        for part in parts:
            s, style = part if isinstance(part, tuple) else (part, "")
            text.append(printable(s, newlines=True), style=style)
    else:
        text = styled(*parts)
    console.print(text, soft_wrap=True)


def progress(message: str) -> None:
    # A log line: literal text (a step's command may hold "[0-9]"), never wrapped in a pipe.
    say(err, ("•", "dim"), " ", message)


def error(message: str, notes=(), hint: str = "", label: str = "lab: error:") -> None:
    """`lab: error: MESSAGE`, then its notes and a fix: the one shape of an error."""
    say(err, (label, "bold red"), " ", message, newlines=True)
    for note in notes:
        say(err, "  ", note, newlines=True)
    if hint:
        say(err, ("  fix:", "yellow"), " ", hint, newlines=True)


def cell(value) -> Text:
    """A table cell: untrusted text, shown literally (a Text made by our code passes as is)."""
    if isinstance(value, Text):
        return value
    return Text("" if value is None else printable(str(value)))


def print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def table(title: str, columns: list[str], rows: list[list]) -> None:
    t = Table(title=cell(title), title_justify="left")
    for col in columns:
        t.add_column(cell(col))
    for row in rows:
        t.add_row(*[cell(v) for v in row])
    out.print(t)


def human_size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)

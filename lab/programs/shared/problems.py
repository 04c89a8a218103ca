"""Positioned problems and the error that carries them.

Every problem in a scenario file is reported as ``FILE:LINE:COL: field.path: message``
(line and column 1-based), all of them at once, sorted by position.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Tuple, Union

from .errors import LabError

PathPart = Union[str, int]
Path = Tuple[PathPart, ...]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def format_path(path: Path) -> str:
    """``("impairments", 0, "loss")`` -> ``impairments[0].loss``; odd keys are quoted."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _IDENT.match(part):
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text


@dataclass(frozen=True, order=True)
class Problem:
    line: int
    column: int
    path: str
    message: str

    def format(self, filename: str) -> str:
        where = f"{filename}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ScenarioError(LabError):
    """A scenario file that cannot be run; ``problems`` holds every problem found."""

    def __init__(self, filename: str, problems: Iterable[Problem]):
        self.filename = filename
        # By position; at the same position in the order found (duplicates once).
        self.problems = sorted(dict.fromkeys(problems), key=lambda p: (p.line, p.column))
        self.lines = [p.format(filename) for p in self.problems]
        super().__init__("\n".join(self.lines),
                         hint="see docs/scenarios.md for the scenario file format")

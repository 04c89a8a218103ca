"""What several commands share, declared once: the --lab option, the shape of a refusal."""
from __future__ import annotations

import click

from ..programs.shared.errors import LabError

LAB_OPTION = click.option("--lab", "lab_name", default=None, metavar="NAME",
                          help="The lab to use (default: $SOCKETLAB_LAB, else the only one that is up).")


class Refused(LabError):
    """Bad input to one command, printed as ``lab COMMAND: MESSAGE`` (not ``lab: error:``),
    exit 2, nothing changed."""

    def __init__(self, command: str, message: str):
        super().__init__(message)
        self.label = f"lab {command}:"

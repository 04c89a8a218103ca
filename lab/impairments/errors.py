"""What can go wrong changing a router's impairments (host side), as LabErrors."""
from __future__ import annotations

from typing import Sequence, Union

from ..programs.shared.errors import LabEnvironmentError, LabError


class RouterImpairmentError(LabEnvironmentError):
    """Something went wrong applying impairments on the router (the environment: exit 3)."""


class ImpairmentRefused(LabError):
    """The router's agent refused a change as input (an unknown network, a bad value):
    nothing changed.  Exit 2, like any bad input."""


class RouterCommandError(RouterImpairmentError):
    """A command in the router exited non-zero.  The router may be half-changed."""

    def __init__(self, command: Union[object, Sequence[str]], result):
        self.command = command
        self.command_status = result.exit_code  # not exit_code: that is lab's own (LabError)
        self.stdout = result.stdout
        self.stderr = result.stderr
        argv = getattr(command, "argv", command)
        text = " ".join(argv)
        detail = (result.stderr or result.stdout).strip() or "(no output)"
        super().__init__(f"router command failed (exit {result.exit_code}): {text}\n    {detail}")


class ImpairerError(RouterImpairmentError):
    """The impairer did not start, reload or stop as it should."""


class ImpairerDied(ImpairerError):
    """The impairer is gone: the links it handled now pass packets unimpaired (fail-open)."""

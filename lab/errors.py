"""Errors that end a `lab` command with a one-line message instead of a traceback."""


class LabError(Exception):
    """A problem the user can fix (bad input, missing image, no engine): exit code 2."""

    exit_code = 2

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.hint = hint


def add_note(exc: BaseException, note: str) -> None:
    """BaseException.add_note, which Python 3.9 and 3.10 lack. The notes go to
    __notes__ either way; `lab` prints them under the error's message."""
    if hasattr(exc, "add_note"):
        exc.add_note(note)
    else:
        exc.__notes__ = [*getattr(exc, "__notes__", []), note]

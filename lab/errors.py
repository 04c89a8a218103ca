"""Errors that end a `lab` command with a one-line message instead of a traceback."""


class LabError(Exception):
    """A problem the user can fix (bad input, missing image, no engine): exit code 2."""

    exit_code = 2

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.hint = hint

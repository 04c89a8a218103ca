"""Errors that end a `lab` command with a one-line message instead of a traceback,
and the exit codes: each means one thing, whatever command ends with it."""

EXIT_OK = 0            # everything passed
EXIT_FAILED = 1        # an expectation failed (or a run error of the scenario's own programs)
EXIT_BAD_INPUT = 2     # bad input: a scenario file, an option, a name; nothing was started
EXIT_ENVIRONMENT = 3   # the environment: the engine, the image, the kernel, a router command
EXIT_SIGINT = 130      # interrupted by Ctrl-C (128 + SIGINT)
EXIT_SIGTERM = 143     # terminated by SIGTERM (128 + SIGTERM)

EXIT_CODES_HELP = (
    f"Exit codes: {EXIT_OK} all passed, {EXIT_FAILED} an expectation failed (lab trace: the traced command "
    f"failed), {EXIT_BAD_INPUT} bad input "
    f"(nothing started), {EXIT_ENVIRONMENT} the environment (engine unreachable, image missing, "
    f"a router command failed), {EXIT_SIGINT}/{EXIT_SIGTERM} interrupted (SIGINT/SIGTERM).")


class LabError(Exception):
    """A problem the user can fix in what they gave us (bad input, a name): exit code 2."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.hint = hint


class LabEnvironmentError(LabError):
    """The machine, not the input: the engine is unreachable, the image is missing, the
    kernel cannot do something, a command on the router failed. Exit code 3."""

    exit_code = EXIT_ENVIRONMENT


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be, so both clean up the same way (exit 143)."""


def add_note(exc: BaseException, note: str) -> None:
    """BaseException.add_note, which Python 3.9 and 3.10 lack. The notes go to
    __notes__ either way; `lab` prints them under the error's message."""
    if hasattr(exc, "add_note"):
        exc.add_note(note)
    else:
        exc.__notes__ = [*getattr(exc, "__notes__", []), note]

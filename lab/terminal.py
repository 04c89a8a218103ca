"""An interactive shell on a lab host through the Engine API (no docker CLI)."""
from __future__ import annotations

import os
import select
import shutil
import sys
import termios
import tty


def shell_argv(container, host: str) -> list[str]:
    """The shell to open on a host: bash where its image has it, else sh; a host whose
    image has neither (a service image of one static program) is a clear error."""
    from .programs.shared.errors import LabError
    api = container.client.api
    for shell, argv in (("bash", ["bash", "-l"]), ("sh", ["sh"])):
        exec_id = api.exec_create(container.id, [shell, "-c", "exit 0"])["Id"]
        api.exec_start(exec_id)
        if api.exec_inspect(exec_id)["ExitCode"] == 0:
            return argv
    raise LabError(f"{host} has no shell (neither bash nor sh is in its image)",
                   hint=f"run one of its programs instead: lab exec {host} -- PROGRAM ARGS")


def interactive(container, argv: list[str]) -> int:
    api = container.client.api
    interactive_tty = sys.stdin.isatty()
    exec_id = api.exec_create(container.id, argv, stdin=True, tty=interactive_tty,
                              environment={"TERM": os.environ.get("TERM", "xterm")})["Id"]
    sock = api.exec_start(exec_id, tty=interactive_tty, socket=True)
    raw = getattr(sock, "_sock", sock)  # the SDK wraps the socket in a SocketIO
    if interactive_tty:
        cols, rows = shutil.get_terminal_size()
        api.exec_resize(exec_id, height=rows, width=cols)
        saved = termios.tcgetattr(sys.stdin)
        tty.setraw(sys.stdin)
    try:
        _pump(raw, Demuxer() if not interactive_tty else None)
    finally:
        if interactive_tty:
            termios.tcsetattr(sys.stdin, termios.TCSADRAIN, saved)
    return api.exec_inspect(exec_id)["ExitCode"] or 0


class Demuxer:
    """Without a TTY the Engine multiplexes stdout and stderr in frames:
    1 byte stream id, 3 zero bytes, 4 bytes big-endian length, then the data."""

    def __init__(self):
        self.buf = b""

    def feed(self, data: bytes):
        self.buf += data
        while len(self.buf) >= 8:
            size = int.from_bytes(self.buf[4:8], "big")
            if len(self.buf) < 8 + size:
                return
            stream, payload, self.buf = self.buf[0], self.buf[8:8 + size], self.buf[8 + size:]
            yield (2 if stream == 2 else 1), payload


def _pump(raw, demuxer: Demuxer | None) -> None:
    stdin_fd = sys.stdin.fileno()
    stdin_open = True
    while True:
        readable, _, _ = select.select([raw] + ([stdin_fd] if stdin_open else []), [], [])
        if raw in readable:
            data = raw.recv(65536)
            if not data:
                return
            for fd, chunk in (demuxer.feed(data) if demuxer else [(1, data)]):
                os.write(fd, chunk)
        if stdin_fd in readable:
            data = os.read(stdin_fd, 65536)
            if data:
                raw.sendall(data)
            else:
                stdin_open = False
                raw.shutdown(1)  # pass end-of-input on, keep reading the output

"""Long-running processes in a container, started by detached execs: start, look, signal,
wait for a line, stop.  Generic (the packet capture uses it); knows nothing of what the
processes are.

A process's pid, stdout and stderr go to files named after it, so any later call can
find them; "is it running?" is the exec's own state in the Docker Engine.
"""
from __future__ import annotations

import shlex
import time
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

from .errors import RouterImpairmentError
from .router_exec import RouterShell

POLL_INTERVAL = 0.05  # seconds between looks at a condition that has a deadline


@dataclass
class Process:
    """A background process in the container."""

    name: str
    exec_id: str
    pid_file: str
    out_file: str
    err_file: str
    pid: Optional[int] = None


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RouterImpairmentError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(POLL_INTERVAL)


class Processes:
    """Starts and supervises background processes through one RouterShell."""

    def __init__(self, shell: RouterShell, timeout: float = 15.0):
        self.shell, self.timeout = shell, timeout

    def spawn(self, name: str, argv: Sequence[str], directory: str) -> Process:
        proc = Process(name, "", f"{directory}/{name}.pid", f"{directory}/{name}.out",
                       f"{directory}/{name}.err")
        self.shell.mkdir(directory)
        self.shell.run(["rm", "-f", proc.pid_file, proc.out_file, proc.err_file])
        script = (f"echo $$ > {shlex.quote(proc.pid_file)}; exec {shlex.join(argv)} "
                  f"> {shlex.quote(proc.out_file)} 2> {shlex.quote(proc.err_file)}")
        api = self.shell.api
        proc.exec_id = api.exec_create(self.shell.container.id, ["sh", "-c", script],
                                       stdout=False, stderr=False)["Id"]
        api.exec_start(proc.exec_id, detach=True)
        wait_until(lambda: self._pid_of(proc) is not None or not self.running(proc),
                   self.timeout, f"{name} to start")
        proc.pid = self._pid_of(proc)
        return proc

    def _pid_of(self, proc: Process) -> Optional[int]:
        result = self.shell.try_run(["cat", proc.pid_file])
        text = result.stdout.strip()
        return int(text) if result.exit_code == 0 and text.isdigit() else None

    def running(self, proc: Process) -> bool:
        return bool(self.shell.api.exec_inspect(proc.exec_id).get("Running"))

    def exit_code(self, proc: Process) -> Optional[int]:
        return self.shell.api.exec_inspect(proc.exec_id).get("ExitCode")

    def signal(self, proc: Process, signal_name: str) -> None:
        if proc.pid is None:
            raise RouterImpairmentError(f"{proc.name} has no known pid to signal")
        self.shell.run(["kill", f"-{signal_name}", str(proc.pid)])

    def kill(self, proc: Process) -> None:
        """Last resort: SIGKILL, ignoring a process that is already gone."""
        if proc.pid is not None and self.running(proc):
            self.shell.try_run(["kill", "-KILL", str(proc.pid)])

    def tail(self, path: str, lines: int = 6) -> str:
        return "\n            ".join(self.shell.read_text(path).splitlines()[-lines:])

    def wait_text(self, proc: Process, text: str) -> None:
        """Wait until ``text`` is in the process's stderr; fail if it ends first."""
        deadline = time.monotonic() + self.timeout
        while text not in self.shell.read_text(proc.err_file):
            if not self.running(proc) or time.monotonic() > deadline:
                raise RouterImpairmentError(f"{proc.name} did not start: "
                                            f"{self.tail(proc.err_file) or '(no output)'}")
            time.sleep(POLL_INTERVAL)

    def wait_ended(self, proc: Process) -> None:
        wait_until(lambda: not self.running(proc), self.timeout, f"{proc.name} to end")

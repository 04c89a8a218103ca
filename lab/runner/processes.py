"""One step's command on one host, run under `step-exec` inside the container.

A thread reads the exec's output stream as it comes, so many processes run at once
without polling. step-exec enforces the timeout inside the host and reports how
the command ended on its last stderr line.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

from .. import engine

STATUS_MARK = "SOCKETLAB-STATUS "


@dataclass
class Outcome:
    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None
    elapsed: float | None = None
    timed_out: bool = False
    ended_by: str | None = None       # why it ended early: a signal name, "host stopped"


def split_status(stderr: str) -> tuple[str, dict | None]:
    """Separate step-exec's status line from the command's own stderr."""
    head, mark, tail = stderr.rpartition(STATUS_MARK)
    if not mark:
        return stderr, None
    try:
        status = json.loads(tail.strip().splitlines()[0])
    except (ValueError, IndexError):
        return stderr, None
    return head[:-1] if head.endswith("\n") else head, status


def last_json_object(text: str) -> dict:
    """The last line of output that is a JSON object (a program's result), or {}."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return {}


def result_of(host: str, outcome: Outcome) -> dict:
    """A host's result for expectations: the program's JSON plus the runner's fields."""
    result = dict(last_json_object(outcome.stdout))
    result.update(exit_code=outcome.exit_code, elapsed=outcome.elapsed, timed_out=outcome.timed_out,
                  host=host, output=outcome.stdout + outcome.stderr)
    return result


@dataclass
class StepProcess:
    container_id: str
    host: str
    step: str
    command: str
    timeout_s: float | None
    run_id: str
    outcome: Outcome = field(default_factory=Outcome)
    started_at: float = 0.0           # time.monotonic() on this machine
    ended_at: float = 0.0             # when its output stream ended, on the same clock
    _done: threading.Event = field(default_factory=threading.Event)
    _out: list = field(default_factory=list)
    _err: list = field(default_factory=list)

    @property
    def pid_file(self) -> str:
        return f"/tmp/socketlab/{self.run_id}.pgid"

    def start(self) -> None:
        api = engine.stream_client()
        argv = ["step-exec", "--id", self.run_id]
        if self.timeout_s is not None:
            argv += ["--timeout", str(self.timeout_s)]
        argv += ["--", "sh", "-c", self.command]
        exec_id = api.exec_create(self.container_id, argv, workdir="/work")["Id"]
        stream = api.exec_start(exec_id, stream=True, demux=True)
        self.started_at = time.monotonic()
        threading.Thread(target=self._read, args=(stream,), daemon=True,
                         name=f"{self.step}@{self.host}").start()

    def _read(self, stream) -> None:
        try:
            for out, err in stream:
                if out:
                    self._out.append(out)
                if err:
                    self._err.append(err)
        except Exception as exc:  # the container vanished mid-stream: the step ended with it
            self.outcome.ended_by = self.outcome.ended_by or f"stream ended: {type(exc).__name__}"
        finally:
            self._finish()

    def _finish(self) -> None:
        self.ended_at = time.monotonic()
        stdout = b"".join(self._out).decode(errors="replace")
        stderr, status = split_status(b"".join(self._err).decode(errors="replace"))
        self.outcome.stdout, self.outcome.stderr = stdout, stderr
        if status:
            self.outcome.exit_code = status["exit_code"]
            self.outcome.elapsed = status["elapsed"]
            self.outcome.timed_out = status["timed_out"]
        else:  # no status line: the host (or step-exec) was stopped under it
            self.outcome.elapsed = round(time.monotonic() - self.started_at, 6)
            self.outcome.ended_by = self.outcome.ended_by or "host stopped"
        self._done.set()

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def output_so_far(self) -> str:
        return b"".join(self._out + self._err).decode(errors="replace")

    def signal(self, sig: str) -> None:
        """Send SIGTERM/SIGKILL to the step's whole process group on its host."""
        api = engine.client().api
        # dash's kill takes no `--`: a negative pid right after the signal is the group.
        script = 'pgid=$(cat "$1" 2>/dev/null) && kill -"$2" -"$pgid" 2>/dev/null; true'
        exec_id = api.exec_create(self.container_id, ["sh", "-c", script, "sh", self.pid_file, sig])["Id"]
        api.exec_start(exec_id)
        if self.running:
            self.outcome.ended_by = self.outcome.ended_by or sig

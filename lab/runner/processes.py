"""One step's command on one host, run under `step-exec` inside the container.

A thread reads the exec's output stream as it comes, so many processes run at once
without polling. step-exec enforces the timeout inside the host and reports how
the command ended on its last stderr line.

Output is bounded: a program may print gigabytes. Each stream (stdout, stderr) keeps
its first and last bytes (`HeadTail`, OUTPUT_CAP per host per step for both streams
together) and counts what it dropped between them. The tail matters most: the
program's JSON result and step-exec's status line are at the end. A `ready` text is
looked for in the stream as it passes (`TextWatch`), so it is found even in bytes
that are dropped.
"""
from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field

from .. import engine

STATUS_MARK = "SOCKETLAB-STATUS "
HELD_MARK = "SOCKETLAB-HELD"     # step-exec or the program holds at the start barrier
MIB = 1 << 20
# Bytes kept per host per step (stdout and stderr each get half: its first and last quarter).
OUTPUT_CAP = int(os.environ.get("SOCKETLAB_OUTPUT_CAP", 8 * MIB))


class HeadTail:
    """The first `cap // 2` and the last `cap - cap // 2` bytes of a stream, and how many
    bytes between them were dropped. Memory stays under 1.25 * cap (+ 64 KiB) whatever is fed."""

    def __init__(self, cap: int = OUTPUT_CAP // 2):
        self.head_cap = cap // 2
        self.tail_cap = cap - self.head_cap
        self.head = bytearray()
        self._tail = bytearray()   # may hold a little more than tail_cap until it is trimmed
        self._slack = max(64 * 1024, self.tail_cap // 4)
        self.total = 0

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        room = self.head_cap - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self._tail += data
            if len(self._tail) > self.tail_cap + self._slack:  # trim now and then: amortised O(1) a byte
                del self._tail[:len(self._tail) - self.tail_cap]

    @property
    def tail(self) -> bytes:
        return bytes(self._tail[-self.tail_cap:]) if self.tail_cap else b""

    @property
    def dropped(self) -> int:
        return self.total - len(self.head) - len(self.tail)

    def value(self, name: str = "output") -> bytes:
        """What was kept, with a line where bytes were dropped (saying how many)."""
        if not self.dropped:
            return bytes(self.head) + self.tail
        return bytes(self.head) + dropped_line(name, self.dropped) + self.tail


def dropped_line(name: str, count: int) -> bytes:
    return f"\n[socketlab: {count} bytes of {name} dropped here: over the cap of what a step keeps]\n".encode()


class TextWatch:
    """Whether `text` appeared in a stream fed in chunks (also across chunk borders);
    ``fold``: in any ASCII case."""

    def __init__(self, text: str | None, fold: bool = False):
        self.fold = fold
        self.needle = (text.lower() if fold else text).encode() if text else b""
        self.seen = not self.needle
        self._carry = b""

    def feed(self, data: bytes) -> None:
        if self.seen:
            return
        window = self._carry + (data.lower() if self.fold else data)
        if self.needle in window:
            self.seen, self._carry = True, b""
        else:
            self._carry = window[-(len(self.needle) - 1):] if len(self.needle) > 1 else b""


def decode(data: bytes) -> str:
    """Output as text; bytes that are not UTF-8 are shown as \\xNN (binary stays visible)."""
    return data.decode("utf-8", errors="backslashreplace")


@dataclass
class Outcome:
    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None
    elapsed: float | None = None
    timed_out: bool = False
    ended_by: str | None = None       # why it ended early: a signal name, "host stopped"
    dropped: int = 0                  # output bytes over the cap, not kept (stdout + stderr)
    started_at: float | None = None   # the host's clock when the command was let go (step-exec)
    leftovers: int = 0                # processes of the step still alive at its end, ended by step-exec
    raw: bytes = b""                  # what was kept, as bytes: stdout, then stderr


def strip_held(data: bytes) -> bytes:
    """The output without the start barrier's `SOCKETLAB-HELD` line (one per process)."""
    line = HELD_MARK.encode() + b"\n"
    return data.replace(line, b"", 1) if data.startswith(line) or b"\n" + line in data else data


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
    # A program's own timestamps (taken around its exchange) are closer than step-exec's.
    if not isinstance(result.get("started_at"), (int, float)):
        result["started_at"] = outcome.started_at
    if not isinstance(result.get("ended_at"), (int, float)):
        result["ended_at"] = (round(outcome.started_at + outcome.elapsed, 6)
                              if outcome.started_at is not None and outcome.elapsed is not None else None)
    result.update(exit_code=outcome.exit_code, elapsed=outcome.elapsed, timed_out=outcome.timed_out,
                  host=host, output=outcome.stdout + outcome.stderr, output_dropped=outcome.dropped,
                  leftovers=outcome.leftovers)
    return result


@dataclass
class StepProcess:
    container_id: str
    host: str
    step: str
    command: str
    timeout_s: float | None
    run_id: str
    ready: str | None = None          # a text to watch for in the output (the step's `ready`)
    cap: int = OUTPUT_CAP
    environment: dict | None = None   # extra environment variables for the command
    hold: str | None = None           # the start barrier: the release file's path in the host
    hold_in_program: bool = False     # the command is one of the lab's programs, which holds itself
    until: str | None = None          # a text (any ASCII case) on stdout after which its caller may end it
    outcome: Outcome = field(default_factory=Outcome)
    started_at: float = 0.0           # time.monotonic() on this machine
    ended_at: float = 0.0             # when its output stream ended, on the same clock
    _done: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self):
        self._out, self._err = HeadTail(self.cap // 2), HeadTail(self.cap - self.cap // 2)
        self._ready = TextWatch(self.ready)
        self._ready_err = TextWatch(self.ready)
        self._held = TextWatch(HELD_MARK if self.hold else None)
        self._until = TextWatch(self.until, fold=True) if self.until else None
        self._woken = threading.Event()   # set when `until` was seen or it ended

    @property
    def until_seen(self) -> bool:
        return self._until is not None and self._until.seen

    def wait_until(self, timeout: float | None) -> bool:
        """Wait until it ended or its `until` text was seen on stdout; whether either happened."""
        return self._woken.wait(timeout)

    @property
    def ready_seen(self) -> bool:
        """The `ready` text appeared on stdout or stderr (also if it was not kept)."""
        return self._ready.seen or self._ready_err.seen

    def hold_at(self, release: str, in_program: bool = False) -> None:
        """Start held at the start barrier until the file `release` exists (before start())."""
        self.hold, self.hold_in_program = release, in_program
        self._held = TextWatch(HELD_MARK)

    @property
    def held(self) -> bool:
        """Holding at the start barrier (or not held at all)."""
        return self._held.seen

    @property
    def pid_file(self) -> str:
        return f"/tmp/socketlab/{self.run_id}.pgid"

    def argv(self) -> list:
        """What runs on the host: step-exec with the command under it."""
        argv = ["step-exec", "--id", self.run_id]
        if self.timeout_s is not None:
            argv += ["--timeout", str(self.timeout_s)]
        if self.hold:
            argv += ["--hold", self.hold] + (["--hold-in-program"] if self.hold_in_program else [])
        return argv + ["--", "sh", "-c", self.command]

    def start(self) -> None:
        api = engine.stream_client()
        exec_id = api.exec_create(self.container_id, self.argv(), workdir="/work",
                                  environment=self.environment)["Id"]
        stream = api.exec_start(exec_id, stream=True, demux=True)
        self.started_at = time.monotonic()
        threading.Thread(target=self._read, args=(stream,), daemon=True,
                         name=f"{self.step}@{self.host}").start()

    def feed(self, out: bytes | None, err: bytes | None) -> None:
        """Some of its output, as it comes (either stream may be None)."""
        if out:
            self._out.feed(out)
            self._ready.feed(out)
            if self._until is not None:
                self._until.feed(out)
                if self._until.seen:
                    self._woken.set()
        if err:
            self._err.feed(err)
            self._ready_err.feed(err)
            self._held.feed(err)

    def _read(self, stream) -> None:
        try:
            for out, err in stream:
                self.feed(out, err)
        except Exception as exc:  # the container vanished mid-stream: the step ended with it
            self.outcome.ended_by = self.outcome.ended_by or f"stream ended: {type(exc).__name__}"
        finally:
            self._finish()

    def _finish(self) -> None:
        self.ended_at = time.monotonic()
        out, err = self._out.value("stdout"), self._err.value("stderr")
        if self.hold:
            err = strip_held(err)
        self.outcome.dropped = self._out.dropped + self._err.dropped
        self._out = self._err = None  # freed before decoding: many hosts may end at once
        stderr, status = split_status(decode(err))
        mark = err.rfind(STATUS_MARK.encode())
        if status and mark >= 0:  # the raw bytes without step-exec's status line (and its newline)
            err = err[:mark - 1] if err[:mark].endswith(b"\n") else err[:mark]
        self.outcome.stdout, self.outcome.stderr = decode(out), stderr
        self.outcome.raw = out + err  # (no copy when one of them is empty)
        if status:
            self.outcome.exit_code = status["exit_code"]
            self.outcome.elapsed = status["elapsed"]
            self.outcome.timed_out = status["timed_out"]
            self.outcome.started_at = status.get("started_at")
            self.outcome.leftovers = status.get("leftovers") or 0
        else:  # no status line: the host (or step-exec) was stopped under it
            self.outcome.elapsed = round(time.monotonic() - self.started_at, 6)
            self.outcome.ended_by = self.outcome.ended_by or "host stopped"
        self._done.set()
        self._woken.set()

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def signal(self, sig: str) -> None:
        """Send SIGTERM/SIGKILL to the step's whole process group on its host."""
        api = engine.client().api
        # dash's kill takes no `--`: a negative pid right after the signal is the group.
        script = 'pgid=$(cat "$1" 2>/dev/null) && kill -"$2" -"$pgid" 2>/dev/null; true'
        exec_id = api.exec_create(self.container_id, ["sh", "-c", script, "sh", self.pid_file, sig])["Id"]
        api.exec_start(exec_id)
        if self.running:
            self.outcome.ended_by = self.outcome.ended_by or sig

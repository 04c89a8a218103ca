"""Run one scenario step's command on a lab host and report how it ended.

    step-exec --id ID [--timeout SECONDS] [--hold RELEASE [--hold-in-program]] -- sh -c COMMAND

The command runs in its own process group (so stop/kill reach everything it
started), its output passes straight through, and its group id is written to
/tmp/socketlab/ID.pgid for `stop`/`kill`. The last line on stderr is
`SOCKETLAB-STATUS {json}`: exit_code, elapsed (s), timed_out, signal, started_at
(this host's clock, seconds since the epoch, when the command was let go) and
leftovers (processes of the step's group still alive when its command ended,
ended by step-exec: a step ends everything it started).

--hold RELEASE: the start barrier. Nothing runs until the file RELEASE exists
(the runner creates it in the lab's shared folder once every host of the step is
held, so all are let go at one moment whatever `docker exec` cost). step-exec says
`SOCKETLAB-HELD` on stderr when it holds. With --hold-in-program the command is
started at once with SOCKETLAB_HOLD=RELEASE in its environment and the program
itself holds (the lab's programs do, in common.setup_process, after Python's
start-up and imports), so the release is not followed by a start-up's delay.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional

STATE_DIR = Path("/tmp/socketlab")
STATUS_MARK = "SOCKETLAB-STATUS "
HELD_MARK = "SOCKETLAB-HELD"
HOLD_ENV = "SOCKETLAB_HOLD"
HOLD_POLL_S = 0.002        # a stat of the release file: microseconds, so 2 ms costs nothing
HOLD_LIMIT_S = 600.0       # a release that never comes (the runner died): give up
GRACE_S = 2.0
REAP_ROUNDS = 50           # a fork bomb forks while it is killed: kill its group until it is empty


def wait_for_release(path: str, limit: float = HOLD_LIMIT_S) -> bool:
    """Say held, then wait until `path` exists (True) or `limit` passed (False)."""
    sys.stderr.write(HELD_MARK + "\n")
    sys.stderr.flush()
    deadline = time.monotonic() + limit
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(HOLD_POLL_S)   # polling a file another host creates: no event crosses hosts
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="step-exec")
    parser.add_argument("--id", required=True)
    parser.add_argument("--timeout", type=float, default=None)
    parser.add_argument("--hold", metavar="RELEASE", default=None)
    parser.add_argument("--hold-in-program", action="store_true")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    pgid_file = STATE_DIR / f"{args.id}.pgid"
    env = None
    if args.hold and args.hold_in_program:
        env = {**os.environ, HOLD_ENV: args.hold}
    elif args.hold and not wait_for_release(args.hold):
        _status({"exit_code": 125, "elapsed": 0.0, "timed_out": False, "signal": None,
                 "started_at": None, "leftovers": 0, "error": "never released"})
        return 0

    def started(child: subprocess.Popen) -> None:
        # Passed on, so that stopping step-exec itself stops the step too.
        signal.signal(signal.SIGTERM, lambda *_: _signal_group(child.pid, signal.SIGTERM))
    _status(run_step(command, args.timeout, pgid_file=pgid_file, env=env, started=started))
    return 0


def run_step(argv: list, timeout: Optional[float], out=None, err=None, *, pgid_file: Optional[Path] = None,
             env: Optional[dict] = None, cwd: Optional[str] = None, stdin=None,
             started: Callable[[subprocess.Popen], None] = lambda child: None) -> dict:
    """Run ``argv`` as a step: in its own process group (its id in ``pgid_file`` while it
    runs), ended after ``timeout`` s (TERM, then KILL after GRACE_S), and what is left of
    its group killed once it ended.  ``out``/``err``/``stdin`` are Popen's (None: this
    process's own); ``started(child)`` runs once it is started.  Returns the status that
    ``status_line`` reports.  step-exec's ``main`` and the host agent (lab/runner/agent.py)
    both run steps with it.  Popen's OSError (no such program) is raised."""
    began = time.monotonic()
    started_at = time.time()
    child = subprocess.Popen(argv, start_new_session=True, env=env, cwd=cwd, stdin=stdin, stdout=out, stderr=err)
    if pgid_file is not None:
        pgid_file.write_text(str(child.pid))
    started(child)
    timed_out = False
    try:
        code = child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _signal_group(child.pid, signal.SIGTERM)
        try:
            code = child.wait(timeout=GRACE_S)
        except subprocess.TimeoutExpired:
            _signal_group(child.pid, signal.SIGKILL)
            code = child.wait()
    elapsed = time.monotonic() - began
    leftovers = end_group(child.pid)
    if pgid_file is not None:
        pgid_file.unlink(missing_ok=True)
    return {"exit_code": code if code >= 0 else 128 - code, "elapsed": round(elapsed, 6),
            "timed_out": timed_out, "signal": signal.Signals(-code).name if code < 0 else None,
            "started_at": round(started_at, 6), "leftovers": leftovers}


def status_line(status: dict) -> str:
    """The last line a step's stderr ends with (after a newline of its own)."""
    return "\n" + STATUS_MARK + json.dumps(status) + "\n"


def _status(status: dict) -> None:
    sys.stdout.flush()
    sys.stderr.write(status_line(status))
    sys.stderr.flush()


def group_members(pgid: int, proc: Path = Path("/proc")) -> list[int]:
    """Pids whose process group is `pgid` (from /proc/PID/stat; field 5 after the name)."""
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue       # gone meanwhile
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def end_group(pgid: int) -> int:
    """SIGKILL what is left of the step's process group; how many were left."""
    left = set(group_members(pgid))
    for _ in range(REAP_ROUNDS):
        if not left:
            break
        _signal_group(pgid, signal.SIGKILL)
        time.sleep(0.01)   # let the kernel reap the killed before looking again
        now = group_members(pgid)
        if not now:
            break
        left.update(now)
    return len(left)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


if __name__ == "__main__":
    sys.exit(main())

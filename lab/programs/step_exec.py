"""Run one scenario step's command on a lab host and report how it ended.

    step-exec --id ID [--timeout SECONDS] -- sh -c COMMAND

The command runs in its own process group (so stop/kill reach everything it
started), its output passes straight through, and its group id is written to
/tmp/socketlab/ID.pgid for `stop`/`kill`. The last line on stderr is
`SOCKETLAB-STATUS {json}`: exit_code, elapsed (s), timed_out, signal.
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

STATE_DIR = Path("/tmp/socketlab")
STATUS_MARK = "SOCKETLAB-STATUS "
GRACE_S = 2.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="step-exec")
    parser.add_argument("--id", required=True)
    parser.add_argument("--timeout", type=float, default=None)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    pgid_file = STATE_DIR / f"{args.id}.pgid"

    started = time.monotonic()
    child = subprocess.Popen(command, start_new_session=True)
    pgid_file.write_text(str(child.pid))
    # Passed on, so that stopping step-exec itself stops the step too.
    signal.signal(signal.SIGTERM, lambda *_: _signal_group(child.pid, signal.SIGTERM))
    timed_out = False
    try:
        code = child.wait(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _signal_group(child.pid, signal.SIGTERM)
        try:
            code = child.wait(timeout=GRACE_S)
        except subprocess.TimeoutExpired:
            _signal_group(child.pid, signal.SIGKILL)
            code = child.wait()
    elapsed = time.monotonic() - started
    pgid_file.unlink(missing_ok=True)
    status = {"exit_code": code if code >= 0 else 128 - code, "elapsed": round(elapsed, 6),
              "timed_out": timed_out, "signal": signal.Signals(-code).name if code < 0 else None}
    sys.stdout.flush()
    sys.stderr.write("\n" + STATUS_MARK + json.dumps(status) + "\n")
    sys.stderr.flush()
    return 0


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


if __name__ == "__main__":
    sys.exit(main())

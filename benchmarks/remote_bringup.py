#!/usr/bin/env python3
"""`lab up --clients 2 --work DIR` against a remote engine over TCP, against the same command
run on the engine's own machine: does the remote path (the API over TCP, the work folder
copied in and back by archive) stay within 1.5x of the local one?

    tests/vm/run --engine-only --image socketlab-host:latest -- \\
        .venv/bin/python benchmarks/remote_bringup.py [--repeat 2] [--json]

Needs DOCKER_HOST at the remote engine (tests/vm/run --engine-only sets it) and the
checkout on the engine's machine at /root/socketlab with Debian's python3-docker, click,
rich and yaml (the VM of tests/vm/run has both). Each round, in turn:

* "over TCP": `lab up` here, then `lab down` (the work folder is copied into each host by
  archive and the hosts' changes come back at `lab down`);
* "in the VM": the same two commands run on the engine's machine (a container of its
  engine with the machine's root at /host, its network, pid and host name, chrooted
  there: the engine's local unix socket, and bind mounts since the engine is local).

--local (no VM): both on this machine's engine, "by archive" (SOCKETLAB_BIND_MOUNTS=0: the
work folder copied in and back, as on a remote engine) against "bind mount": what the
archive copies cost, apart from the transport.

The work folder is tests/lecture (the lecture's four programs) on both sides. Times are
wall-clock seconds of each command as its caller sees it; the table shows each round, the
medians and the ratio over TCP / in the VM. Everything is removed at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from lab import engine  # noqa: E402

CLIENTS = 2
LAB_TCP, LAB_VM = "bench-remote-tcp", "bench-remote-vm"
GUEST_CHECKOUT = "/root/socketlab"
IMAGE = os.environ.get("SOCKETLAB_IMAGE", "socketlab-host:latest")


def lab_cmd() -> list[str]:
    return [sys.executable, "-c", "import sys; from lab.cli import main; sys.argv[0] = 'lab'; main()"]


def timed_here(args: list[str], **env: str) -> float:
    started = time.monotonic()
    subprocess.run(lab_cmd() + args, check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
                   env=dict(os.environ, PYTHONPATH=str(ROOT), **env))
    return time.monotonic() - started


def timed_in_vm(args: list[str]) -> float:
    """Run `lab ARGS` on the engine's machine; the time is measured there (date before and
    after), so the helper container's own start is not counted."""
    inner = (f"cd {GUEST_CHECKOUT} && a=$(date +%s.%N) && "
             f"PYTHONPATH={GUEST_CHECKOUT} HOME=/root python3 -c 'from lab.cli import main; main()' {shlex.join(args)} >/dev/null && "
             "b=$(date +%s.%N) && echo \"$a $b\"")
    out = engine.client().containers.run(
        IMAGE, ["chroot", "/host", "sh", "-c", inner], remove=True,
        volumes={"/": {"bind": "/host", "mode": "rw"}},
        network_mode="host", pid_mode="host", uts_mode="host", user="root",
        labels={"org.socketlab.benchmark": "remote_bringup"})
    a, b = out.decode().split()[-2:]
    return float(b) - float(a)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--local", action="store_true",
                        help="this machine's engine: by archive against bind mounts (no VM)")
    opts = parser.parse_args()
    if opts.local:
        return local(opts)
    if not os.environ.get("DOCKER_HOST") or engine.local():
        print("remote_bringup.py needs DOCKER_HOST at a remote engine (tests/vm/run --engine-only)",
              file=sys.stderr)
        return 2
    work = str(ROOT / "tests" / "lecture")
    rows = []
    try:
        for i in range(opts.repeat):
            row = {"round": i + 1}
            print(f"round {i + 1}: over TCP …", file=sys.stderr, flush=True)
            row["tcp_up"] = timed_here(["up", "--name", LAB_TCP, "--clients", str(CLIENTS), "--work", work])
            row["tcp_down"] = timed_here(["down", LAB_TCP])
            print(f"round {i + 1}: in the VM …", file=sys.stderr, flush=True)
            row["vm_up"] = timed_in_vm(["up", "--name", LAB_VM, "--clients", str(CLIENTS),
                                        "--work", f"{GUEST_CHECKOUT}/tests/lecture"])
            row["vm_down"] = timed_in_vm(["down", LAB_VM])
            rows.append(row)
    finally:
        subprocess.run(lab_cmd() + ["down", LAB_TCP], cwd=ROOT, capture_output=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    med = {k: statistics.median(r[k] for r in rows) for k in ("tcp_up", "tcp_down", "vm_up", "vm_down")}
    result = {"clients": CLIENTS, "engine": engine.chosen().describe(), "rounds": rows, "median": med,
              "ratio_up": med["tcp_up"] / med["vm_up"],
              "ratio_up_down": (med["tcp_up"] + med["tcp_down"]) / (med["vm_up"] + med["vm_down"])}
    if opts.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"lab up --clients {CLIENTS} --work tests/lecture, then lab down; engine {result['engine']}")
    print(f"{'round':>6} {'up over TCP':>12} {'up in VM':>10} {'down over TCP':>14} {'down in VM':>11}")
    for r in rows:
        print(f"{r['round']:>6} {r['tcp_up']:>11.1f}s {r['vm_up']:>9.1f}s {r['tcp_down']:>13.1f}s {r['vm_down']:>10.1f}s")
    print(f"{'median':>6} {med['tcp_up']:>11.1f}s {med['vm_up']:>9.1f}s {med['tcp_down']:>13.1f}s {med['vm_down']:>10.1f}s")
    print(f"ratio over TCP / in the VM: up {result['ratio_up']:.2f}x, up+down {result['ratio_up_down']:.2f}x "
          "(goal: at most 1.5x)")
    return 0


def local(opts) -> int:
    work = str(ROOT / "tests" / "lecture")
    name = f"bench-archive-{os.getpid() % 100000}"
    rows = []
    try:
        for i in range(opts.repeat):
            row = {"round": i + 1}
            for key, flag in (("archive", "0"), ("bind", "1")):
                print(f"round {i + 1}: {key} …", file=sys.stderr, flush=True)
                row[f"{key}_up"] = timed_here(["up", "--name", name, "--clients", str(CLIENTS), "--work", work],
                                              SOCKETLAB_BIND_MOUNTS=flag)
                row[f"{key}_down"] = timed_here(["down", name], SOCKETLAB_BIND_MOUNTS=flag)
            rows.append(row)
    finally:
        subprocess.run(lab_cmd() + ["down", name], cwd=ROOT, capture_output=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    keys = ("archive_up", "archive_down", "bind_up", "bind_down")
    med = {k: statistics.median(r[k] for r in rows) for k in keys}
    ratio = (med["archive_up"] + med["archive_down"]) / (med["bind_up"] + med["bind_down"])
    if opts.json:
        print(json.dumps({"clients": CLIENTS, "rounds": rows, "median": med, "ratio_up_down": ratio}, indent=2))
        return 0
    print(f"lab up --clients {CLIENTS} --work tests/lecture, then lab down; this machine's engine")
    print(f"{'round':>6} {'up archive':>11} {'up bind':>8} {'down archive':>13} {'down bind':>10}")
    for r in rows + [dict(med, round="median")]:
        print(f"{r['round']:>6} {r['archive_up']:>10.1f}s {r['bind_up']:>7.1f}s {r['archive_down']:>12.1f}s "
              f"{r['bind_down']:>9.1f}s")
    print(f"ratio by archive / bind mount (up+down): {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

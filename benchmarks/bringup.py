"""Lab bring-up and tear-down times, by number of clients.

    .venv/bin/python benchmarks/bringup.py [--clients 1 5 20] [--repeat 3] [--json]

Each round brings up a lab (``bench-up-<pid>``) with the default class-lab roles, waits
until every host is ready (the router has its gateway addresses, the server listens, each
client has done its TCP and UDP demo exchange through the router), then removes it by
label.  The table shows the median and the range of the rounds.  Progress goes to stderr;
everything is removed at the end, also on Ctrl-C and SIGTERM.
"""
from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import time

from lab import ui
from lab.programs.shared.errors import LabError
from lab.topology.docker_lab import DockerLab, remove_lab
from lab.programs.shared.topology import LabSpec

DEMO_TIMEOUT_S = 120
LAB_NAME = f"bench-up-{os.getpid() % 100000}"


def one_round(name: str, clients: int) -> tuple[float, float]:
    """(seconds until every client's demo is done, seconds to remove the lab)."""
    lab = DockerLab.plan(LabSpec(lab=name, clients=clients))
    started = time.monotonic()
    try:
        lab.up()
        lab.wait_for_outputs({client.name: ("demo done",) for client in lab.topology.clients}, DEMO_TIMEOUT_S)
        up_s = time.monotonic() - started
    finally:
        removing = time.monotonic()
        lab.down()
    return up_s, time.monotonic() - removing


def summary(values: list[float]) -> dict:
    return {"median_s": round(statistics.median(values), 2), "min_s": round(min(values), 2),
            "max_s": round(max(values), 2)}


def measure(client_counts: list[int], repeat: int) -> list[dict]:
    rows = []
    for clients in client_counts:
        ups, downs = [], []
        for i in range(1, repeat + 1):
            ui.progress(f"{clients} clients, round {i} of {repeat}")
            up_s, down_s = one_round(LAB_NAME, clients)
            ups.append(up_s)
            downs.append(down_s)
        rows.append({"clients": clients, "hosts": clients + 2, "rounds": repeat,
                     "up": summary(ups), "down": summary(downs)})
    return rows


def _span(s: dict) -> str:
    return f"{s['median_s']:.2f} s ({s['min_s']:.2f}–{s['max_s']:.2f})"


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 5, 20])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        rows = measure(args.clients, args.repeat)
    except LabError as exc:
        ui.err.print(f"bringup: error: {exc}", soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        remove_lab(LAB_NAME)  # a round cut short in DockerLab.plan has no `finally` yet
        ui.err.print("bringup: interrupted (lab removed)")
        return 130
    if args.json:
        ui.print_json(rows)
        return 0
    ui.table(f"Lab bring-up until every client's demo is done, and removal (median of {args.repeat})",
             ["clients", "hosts", "up", "down"],
             [[r["clients"], r["hosts"], _span(r["up"]), _span(r["down"])] for r in rows])
    return 0


if __name__ == "__main__":
    sys.exit(main())

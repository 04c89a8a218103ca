"""Many `lab run` started at the same moment on one engine: wall time, failures, leaks.

    .venv/bin/python benchmarks/parallel.py [--runs 20] [--subnets POOL] [--json]

Each `lab run` is the real console script in its own process, running the one-step
scenario tests/net/data/many-echo.yaml (a TCP exchange through the router). First one
run alone (the reference, measured in the same invocation), then --runs of them started
together. For each: wall time of the whole batch, each run's own time (median, max),
runs that did not exit 0, subnets another lab took first (resolved by moving on), and
leaks: containers or networks of those runs still in the engine after they all ended.
Progress goes to stderr; on Ctrl-C/SIGTERM the runs are stopped and their labs removed.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lab import ui
from lab.topology.docker_lab import find_containers, find_networks, remove_lab

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "tests" / "net" / "data" / "many-echo.yaml"
LAB = Path(sys.executable).parent / "lab"
RUN_TIMEOUT_S = 900


def batch(n: int, subnets: str | None, tmp: Path) -> dict:
    """Start `n` runs at once, wait for all; what happened."""
    pool = ["--subnets", subnets] if subnets else []
    procs, started = [], time.monotonic()
    for i in range(n):
        procs.append((time.monotonic(), subprocess.Popen(
            [str(LAB), *pool, "run", str(SCENARIO), "--runs-dir", str(tmp / f"runs-{n}-{i}"),
             "--work", str(tmp / "work")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)))
    durations, failures, collisions, labs = [], 0, 0, []
    try:
        for began, proc in procs:
            _, err = proc.communicate(timeout=RUN_TIMEOUT_S)
            durations.append(time.monotonic() - began)
            failures += proc.returncode != 0
            collisions += err.count("was taken meanwhile")
            labs += re.findall(r"bringing up lab (\S+)", err)
            if proc.returncode != 0:
                ui.err.print(f"a run failed (exit {proc.returncode}):\n{err[-2000:]}", markup=False)
    finally:
        for _, proc in procs:
            proc.kill()
    wall = time.monotonic() - started
    leaked = sum(len(find_containers(lab)) + len(find_networks(lab)) for lab in labs)
    for lab in labs:
        remove_lab(lab)
    return {"runs": n, "wall_s": round(wall, 2), "median_run_s": round(statistics.median(durations), 2),
            "max_run_s": round(max(durations), 2), "failures": failures, "subnet_collisions": collisions,
            "leaked_resources": leaked, "distinct_labs": len(set(labs))}


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--subnets", help="the pool the runs share (default: SOCKETLAB_SUBNETS or 10.77.0.0/16)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="socketlab-parallel-") as tmp:
            for n in (1, args.runs):
                ui.progress(f"{n} run{'s' if n > 1 else ''} of {SCENARIO.name} started together …")
                rows.append(batch(n, args.subnets, Path(tmp)))
    except KeyboardInterrupt:
        ui.err.print("parallel: interrupted (the runs remove their labs; `lab down --stale` removes the rest)")
        return 130
    if args.json:
        ui.print_json(rows)
        return 0
    alone = rows[0]["wall_s"]
    ui.table(f"`lab run` of a one-step scenario, started together ({os.cpu_count()} CPUs)",
             ["runs", "wall time", "vs one alone", "throughput vs one after another", "each run: median / max",
              "failed", "subnet collisions", "leaked"],
             [[r["runs"], f"{r['wall_s']:.1f} s", f"{r['wall_s'] / alone:.1f}×",
               f"{r['runs'] * alone / r['wall_s']:.1f}×",
               f"{r['median_run_s']:.1f} / {r['max_run_s']:.1f} s", r["failures"], r["subnet_collisions"],
               r["leaked_resources"]] for r in rows])
    return 0 if all(r["failures"] == 0 and r["leaked_resources"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

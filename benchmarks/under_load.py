"""The shipped scenarios on a busy machine: do they give the same verdicts?

    .venv/bin/python benchmarks/under_load.py [--at-once 3] [--hogs 2] [--rounds 5]
        [--scenario NAME]... [--dir SCENARIOS] [--no-reference] [--json]

First the reference, measured in the same invocation: each scenario once, one at a
time, with nothing beside it (the machine as quiet as it is). Then --rounds rounds
under load: --hogs CPU hogs (a Python busy loop each, in its own process group) run
the whole time, and every scenario of the round is run by a pool of --at-once `lab
run` processes (the real console script), so that many labs run side by side. Per
scenario: passed out of run, its median and max time, the ratio to the reference, and
the expectations that failed; the load average seen (sampled every second) is printed
with the table. Progress goes to stderr; on Ctrl-C/SIGTERM the runs and the hogs are
stopped (each run removes its own lab; `lab down --stale` the rest). Exit 1 when any
run under load failed.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lab import ui

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"
LAB = Path(sys.executable).parent / "lab"
RUN_TIMEOUT_S = 900
HOG = "while True: pass"


class Hogs:
    """K busy loops, each in its own process group, ended on close (also on Ctrl-C)."""

    def __init__(self, count: int):
        self.procs = [subprocess.Popen([sys.executable, "-c", HOG], start_new_session=True)
                      for _ in range(count)]

    def close(self) -> None:
        for proc in self.procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        self.procs = []


class LoadWatch:
    """The 1-minute load average, sampled every second on a thread: its max and mean."""

    def __init__(self):
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.samples.append(os.getloadavg()[0])

    def close(self) -> dict:
        self._stop.set()
        self._thread.join()
        if not self.samples:
            self.samples.append(os.getloadavg()[0])
        return {"load_max": round(max(self.samples), 1), "load_mean": round(statistics.mean(self.samples), 1)}


def run_one(path: Path, tmp: Path, tag: str, procs: list) -> dict:
    """One `lab run FILE --json`: passed, seconds, what failed."""
    began = time.monotonic()
    proc = subprocess.Popen([str(LAB), "run", str(path), "--json", "--runs-dir", str(tmp / "runs" / tag),
                             "--work", str(tmp / "work" / tag)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp)
    procs.append(proc)
    try:
        out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.terminate()
        out, err = proc.communicate()
    seconds = time.monotonic() - began
    failed: list[str] = []
    try:
        [report] = json.loads(out)
        failed = [f"{e['text']} (saw {e['observed']!r})" for e in report["expectations"] if not e["passed"]]
        failed += report.get("errors") or []
    except (ValueError, KeyError, TypeError):
        failed = [f"no report (exit {proc.returncode}): {err.strip().splitlines()[-1:] or ''}"]
    passed = proc.returncode == 0 and not failed
    ui.progress(f"{path.stem} [{tag}]: {'passed' if passed else 'FAILED'} in {seconds:.0f} s"
                + ("" if passed else f": {'; '.join(failed)[:300]}"))
    return {"scenario": path.stem, "passed": passed, "seconds": round(seconds, 1), "failed": failed}


def play(paths: list[Path], at_once: int, tmp: Path, tag: str, procs: list) -> list[dict]:
    pool = ThreadPoolExecutor(max_workers=at_once)
    try:
        return list(pool.map(lambda ip: run_one(ip[1], tmp, f"{tag}-{ip[0]}", procs), enumerate(paths)))
    except KeyboardInterrupt:
        for proc in procs:        # each `lab run` tears its lab down on SIGTERM
            if proc.poll() is None:
                proc.terminate()
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def summarize(paths: list[Path], reference: list[dict], loaded: list[dict]) -> list[dict]:
    rows = []
    for path in paths:
        ref = next((r for r in reference if r["scenario"] == path.stem), None)
        mine = [r for r in loaded if r["scenario"] == path.stem]
        times = [r["seconds"] for r in mine]
        median = statistics.median(times) if times else None
        rows.append({
            "scenario": path.stem,
            "reference_passed": None if ref is None else ref["passed"],
            "reference_s": None if ref is None else ref["seconds"],
            "passed": sum(r["passed"] for r in mine), "runs": len(mine),
            "median_s": median, "max_s": max(times) if times else None,
            "ratio": round(median / ref["seconds"], 2) if ref and median else None,
            "failed": sorted({f for r in mine for f in r["failed"]}),
        })
    return rows


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--at-once", type=int, default=3, help="`lab run`s side by side under load (3)")
    parser.add_argument("--hogs", type=int, default=2, help="CPU hogs beside them (2)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of every scenario under load (5)")
    parser.add_argument("--scenario", action="append", default=[],
                        help="a shipped scenario's name (repeatable; default: all of scenarios/)")
    parser.add_argument("--dir", type=Path, default=SCENARIOS,
                        help="the folder of scenarios (default: this checkout's scenarios/; another "
                             "checkout's, with its PYTHONPATH, measures that checkout: before/after)")
    parser.add_argument("--no-reference", action="store_true", help="leave out the quiet reference")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    paths = ([args.dir / f"{name}.yaml" for name in args.scenario] if args.scenario
             else sorted(args.dir.glob("*.yaml")))
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        ui.err.print(f"under_load: no such scenario: {', '.join(missing)}", markup=False)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    procs: list[subprocess.Popen] = []
    hogs = None
    try:
        with tempfile.TemporaryDirectory(prefix="socketlab-under-load-") as name:
            tmp = Path(name)
            reference: list[dict] = []
            quiet = {}
            if not args.no_reference:
                ui.progress(f"reference: {len(paths)} scenarios one at a time, no load …")
                watch = LoadWatch()
                reference = play(paths, 1, tmp, "quiet", procs)
                quiet = watch.close()
            ui.progress(f"under load: {args.rounds} rounds, {args.at_once} at once, {args.hogs} CPU hogs …")
            hogs = Hogs(args.hogs)
            watch = LoadWatch()
            loaded: list[dict] = []
            for n in range(args.rounds):
                loaded += play(paths, args.at_once, tmp, f"load{n}", procs)
            busy = watch.close()
    except KeyboardInterrupt:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        ui.err.print("under_load: interrupted (each run removes its lab; `lab down --stale` removes the rest)")
        return 130
    finally:
        if hogs is not None:
            hogs.close()
    rows = summarize(paths, reference, loaded)
    result = {"cpus": os.cpu_count(), "at_once": args.at_once, "hogs": args.hogs, "rounds": args.rounds,
              "quiet": quiet, "loaded": busy, "scenarios": rows}
    if args.json:
        ui.print_json(result)
    else:
        ui.table(f"shipped scenarios under load: {args.at_once} at once + {args.hogs} CPU hogs, "
                 f"{args.rounds} rounds, {os.cpu_count()} CPUs; load avg quiet "
                 f"{quiet.get('load_mean', '-')} (max {quiet.get('load_max', '-')}), under load "
                 f"{busy['load_mean']} (max {busy['load_max']})",
                 ["scenario", "quiet: verdict, time", "under load: passed", "median / max", "vs quiet", "failed"],
                 [[r["scenario"],
                   "-" if r["reference_passed"] is None else
                   f"{'pass' if r['reference_passed'] else 'FAIL'}, {r['reference_s']:.0f} s",
                   f"{r['passed']}/{r['runs']}",
                   f"{r['median_s']:.0f} / {r['max_s']:.0f} s" if r["runs"] else "-",
                   f"{r['ratio']:.1f}×" if r["ratio"] else "-",
                   "; ".join(r["failed"])[:120]] for r in rows])
    return 0 if all(r["passed"] == r["runs"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

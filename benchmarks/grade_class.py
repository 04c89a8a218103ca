"""`lab grade --class` on N submissions: one at a time against --jobs J, and (optionally)
the shell loop an instructor writes today (`lab grade FOLDER` per submission, a new lab
each).

    .venv/bin/python benchmarks/grade_class.py [--copies 2] [--jobs 1,2,3,4] [--loop] [--json]
    .venv/bin/python benchmarks/grade_class.py --copies 6 --jobs 4 --no-reference   # 42 at once

The class is --copies copies of the lecture and its six classic bugs (lab/grade/demo.py),
so 7 x copies submissions.  Each row is one real `lab grade --class` (the console script)
into its own output folder.  The reference is --jobs 1, measured in the same invocation
(--no-reference leaves it out: "verdicts same" is then "-", and "as expected", each
student's lost checks against demo.EXPECTED_LOST, which --jobs 1 gives, is the check).
Each row is also printed on stderr as one JSON line the moment it is measured, so a run
cut short by a time limit still leaves its rows.

"verdicts same" compares every check of every student (status and points) with the
--jobs 1 run, and says "yes" only when both runs graded every submission (a grader error
is not a verdict: two runs that both failed to grade are not "the same"); "as expected"
compares each student's lost checks with demo.EXPECTED_LOST.  "reset s" is the mean time
between two students on a worker's lab (host_reset.py), "remade" how many hosts a reset
had to make again, and "load" the machine's 1-minute load average at the row's start and
end: the machine may be shared, and a figure means little without it.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lab import ui
from lab.grade.demo import EXPECTED_LOST, make_class

LAB = Path(sys.executable).parent / "lab"


def resets(out: Path) -> tuple:
    """(mean seconds between two students on a lab, hosts made again) over a run's records."""
    times, remade = [], 0
    for path in out.glob("*/grade.json"):
        rec = json.loads(path.read_text())
        if rec.get("reset_s") is not None:
            times.append(rec["reset_s"])
            remade += len(rec.get("hosts_remade") or {})
    return (round(sum(times) / len(times), 2) if times else None), remade


def load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def verdicts(out: Path) -> dict:
    found = {}
    for path in out.glob("*/grade.json"):
        rec = json.loads(path.read_text())
        found[rec["slug"]] = (rec["status"], tuple((c["name"], c["status"], c["score"]) for c in rec["checks"]))
    return found


def compare(this: dict, reference: dict, made: dict) -> dict:
    graded = [s for s in made if this.get(s, ("missing",))[0] == "graded"]
    ref_graded = [s for s in made if reference.get(s, ("missing",))[0] == "graded"]
    differ = [s for s in made if this.get(s) != reference.get(s)]
    if len(graded) < len(made) or len(ref_graded) < len(made):
        same = f"n/a ({len(made) - len(graded)} not graded)"
    else:
        same = "yes" if not differ else f"NO ({len(differ)} differ)"
    unexpected = [s for s in graded
                  if {n for n, st, _ in this[s][1] if st != "passed"} != EXPECTED_LOST[made[s]]]
    return {"graded": len(graded), "verdicts_same": same,
            "as_expected": "yes" if graded and not unexpected and len(graded) == len(made)
            else f"NO ({len(unexpected)} differ, {len(made) - len(graded)} not graded)"}


def run_class(folder: Path, out: Path, jobs: int) -> float:
    began = time.monotonic()
    done = subprocess.run([str(LAB), "grade", "--class", str(folder), "--out", str(out), "--jobs", str(jobs)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        ui.err.print(f"lab grade --class --jobs {jobs} exited {done.returncode}:\n{done.stderr[-2000:]}", markup=False)
    return time.monotonic() - began


def run_loop(folder: Path, out: Path, made: dict) -> float:
    """Today's way: `lab grade FOLDER --gradescope FILE`, one after another."""
    began = time.monotonic()
    for slug in sorted(made):
        (out / slug).mkdir(parents=True, exist_ok=True)
        subprocess.run([str(LAB), "grade", str(folder / slug), "--gradescope", str(out / slug / "results.json")],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - began


def loop_verdicts(out: Path) -> dict:
    found = {}
    for path in out.glob("*/results.json"):
        r = json.loads(path.read_text())
        found[path.parent.name] = ("graded", tuple((t["name"], "passed" if t["score"] == t["max_score"] else "failed",
                                                    float(t["score"])) for t in r["tests"]))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=2)
    parser.add_argument("--jobs", default="1,2,3,4", help="comma-separated; 1 is always measured first")
    parser.add_argument("--loop", action="store_true", help="also time `lab grade FOLDER` one after another")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="copy each row's records (OUT/<student>/grade.json) into DIR/jobs-J/, "
                             "to see where the seconds went check by check")
    parser.add_argument("--no-reference", action="store_true",
                        help="do not measure --jobs 1 first (compare with the expected verdicts only)")
    args = parser.parse_args()
    given = {int(j) for j in args.jobs.split(",")}
    jobs = sorted(given if args.no_reference else {1, *given})
    rows = []
    with tempfile.TemporaryDirectory(prefix="grade-class-bench-") as tmp:
        folder = Path(tmp) / "class"
        made = make_class(folder, copies=args.copies)
        n = len(made)
        reference, ref_wall = None, None
        for j in jobs:
            ui.progress(f"{n} submissions, --jobs {j} …")
            out = Path(tmp) / f"out-{j}"
            load_start = load()
            wall = run_class(folder, out, j)
            reset_s, remade = resets(out)
            found = verdicts(out)
            if args.keep:
                for record in out.glob("*/grade.json"):
                    kept = args.keep / f"jobs-{j}" / record.parent.name
                    kept.mkdir(parents=True, exist_ok=True)
                    shutil.copy(record, kept / record.name)
            if not args.no_reference:
                reference = found if reference is None else reference
                ref_wall = wall if ref_wall is None else ref_wall
            row = {"how": f"lab grade --class --jobs {j}", "submissions": n, "wall_s": round(wall, 1),
                   "per_minute": round(n / wall * 60, 2), "speedup": round(ref_wall / wall, 2) if ref_wall else None,
                   "reset_s": reset_s, "remade": remade, "load": f"{load_start} → {load()}",
                   "at": time.strftime("%H:%M UTC", time.gmtime()), **compare(found, reference or found, made)}
            if args.no_reference:
                row["verdicts_same"] = "-"
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
        if args.loop:
            ui.progress(f"{n} submissions, `lab grade FOLDER` one after another …")
            out = Path(tmp) / "out-loop"
            load_start = load()
            wall = run_loop(folder, out, made)
            # the loop's results.json has no record status: a missing file is a grader failure
            rows.append({"how": "shell loop of lab grade FOLDER", "submissions": n, "wall_s": round(wall, 1),
                         "per_minute": round(n / wall * 60, 2),
                         "speedup": round(ref_wall / wall, 2) if ref_wall else None,
                         "reset_s": None, "remade": None, "load": f"{load_start} → {load()}",
                         **compare(loop_verdicts(out), reference or loop_verdicts(out), made)})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        ui.table(f"lab grade --class: {n} submissions (the lecture and six classic bugs x {args.copies}); "
                 "speed-up against --jobs 1 in the same run",
                 ["how", "submissions", "wall s", "per minute", "speed-up", "reset s", "remade", "load",
                  "graded", "verdicts same as --jobs 1", "lost checks as expected"],
                 [[r["how"], r["submissions"], r["wall_s"], r["per_minute"],
                   "-" if r["speedup"] is None else f"{r['speedup']}x",
                   "-" if r["reset_s"] is None else r["reset_s"], "-" if r["remade"] is None else r["remade"],
                   r["load"], r["graded"], r["verdicts_same"], r["as_expected"]] for r in rows])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

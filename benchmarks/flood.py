"""`lab`'s own memory and what it stores when a step floods its output.

    .venv/bin/python benchmarks/flood.py [--mb 50 200 600] [--hosts 1] [--json]

Each row is a real `lab run` (the console script, in a subprocess) of a one-step scenario
whose step prints N MB on stdout on each of --hosts clients at once, then a JSON result line. The first row is the reference,
measured in the same run: a quiet step (one line). Columns: lab's peak resident memory
(wait4's rusage of that one child process), its ratio to the quiet run's, the bytes stored
in the run folder for the step, the bytes dropped over the cap, whether the JSON result at
the end was still read, and the run's wall time. Every lab is removed by `lab run` itself
(the script checks none is left). Progress goes to stderr.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lab import ui
from lab.topology.docker_lab import find_containers, find_networks, remove_lab

ROOT = Path(__file__).resolve().parents[1]
LAB = Path(sys.executable).parent / "lab"
MB = 1_000_000

SCENARIO = """name: bench-flood
description: a step that prints {mb} MB
topology: {{server: idle, clients: {hosts}}}
steps:
  - at: 0s
    name: flood
    on: clients
    run: {command}
    timeout: 10m
expect:
  - flood.done: true
"""


def command(mb: int) -> str:
    flood = f"head -c {mb * MB} /dev/zero | tr '\\0' y; echo; " if mb else ""
    return json.dumps(flood + "echo '{\"done\": true}'")


def one_run(mb: int, hosts: int, tmp: Path) -> dict:
    folder = tmp / f"flood-{mb}"
    folder.mkdir()
    path = folder / "flood.yaml"
    path.write_text(SCENARIO.format(mb=mb, command=command(mb), hosts=hosts))
    js = folder / "report.json"
    started = time.monotonic()
    with open(folder / "stderr", "wb") as err:
        proc = subprocess.Popen([str(LAB), "run", str(path), "--json-file", str(js), "--runs-dir",
                                 str(folder / "runs"), "--work", str(folder / "work")],
                                stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    stderr = (folder / "stderr").read_text(errors="replace")
    labs = re.findall(r"bringing up lab (\S+)", stderr)
    left = [lab for lab in labs if find_containers(lab) or find_networks(lab)]
    for lab in labs:
        remove_lab(lab)
    if proc.returncode != 0 or not js.exists():
        raise SystemExit(f"lab run of {mb} MB exited {proc.returncode}:\n{stderr[-2000:]}")
    [report] = json.loads(js.read_text())
    results = report["results"]["flood"].values()
    stored = sum(p.stat().st_size for p in (Path(report["artifacts"]) / "outputs").rglob("*") if p.is_file())
    return {"printed_mb": mb, "hosts": hosts, "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "stored_bytes": stored,
            "dropped_bytes": sum(r.get("output_dropped", 0) for r in results),
            "result_read": len(results) == hosts and all(r.get("done") is True for r in results),
            "wall_s": round(wall, 1), "labs_left": left}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, nargs="+", default=[50, 200, 600])
    parser.add_argument("--hosts", type=int, default=1, help="clients flooding at once (each N MB)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-flood-") as tmp:
        for mb in [0, *args.mb]:
            ui.progress(f"lab run of a step printing {mb} MB" if mb else "lab run of a quiet step (reference)")
            rows.append(one_run(mb, args.hosts, Path(tmp)))
    quiet = rows[0]["peak_rss_mb"]
    for row in rows:
        row["rss_vs_quiet"] = round(row["peak_rss_mb"] / quiet, 2)
    if args.json:
        ui.print_json(rows)
        return
    ui.table(f"lab run under an output flood ({args.hosts} host(s) at once, one step; MB printed by each)",
             ["printed", "lab peak RSS", "vs quiet", "stored", "dropped", "JSON result read", "wall", "labs left"],
             [[f"{r['printed_mb']} MB" if r["printed_mb"] else "quiet (reference)", f"{r['peak_rss_mb']} MB",
               f"{r['rss_vs_quiet']}x", ui.human_size(r["stored_bytes"]), ui.human_size(r["dropped_bytes"]),
               "yes" if r["result_read"] else "NO", f"{r['wall_s']} s", ", ".join(r["labs_left"]) or "none"]
              for r in rows])


if __name__ == "__main__":
    main()

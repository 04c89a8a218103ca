"""The reworked scenarios keep their verdicts on a deliberately loaded machine: two
`lab run`s of them side by side with a CPU hog beside them (the load harness,
benchmarks/under_load.py, at a small size; its full size is a benchmark). Their
verdicts must not ride on how long a `docker exec` takes (issue 16). It makes the checks
test_scenarios.py makes of every shipped scenario (which leaves these to it)."""
import json
import os
import subprocess
from pathlib import Path

from lab.topology.docker_lab import find_containers, find_networks

ROOT = Path(__file__).resolve().parents[2]
# Also read by test_scenarios.py, which leaves them to this test: passing here, beside a hog
# and each other, with the same checks, is passing.
NAMES = [line for line in (Path(__file__).parent / "data" / "under-load.txt").read_text().splitlines()
         if line and not line.startswith("#")]
REWORKED = [ROOT / "scenarios" / f"{name}.yaml" for name in NAMES]
AT_ONCE = 2


def test_reworked_scenarios_pass_beside_a_cpu_hog_and_each_other(tmp_path, cpu_hogs, lab_exe):
    cpu_hogs(1)
    runs = [subprocess.Popen([str(lab_exe), "run", *map(str, REWORKED), "--json", "--runs-dir",
                              str(tmp_path / f"runs{i}"), "--work", str(tmp_path / f"work{i}")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
            for i in range(AT_ONCE)]
    outcomes = [run.communicate(timeout=1200) for run in runs]
    load = os.getloadavg()[0]
    for run, (out, err) in zip(runs, outcomes):
        reports = json.loads(out)
        failed = [f"{r['scenario']}: {e['text']}: observed {e['observed']!r}; {e['detail']}"
                  for r in reports for e in r["expectations"] if not e["passed"]]
        errors = [f"{r['scenario']}: {x}" for r in reports for x in r["errors"]]
        assert (run.returncode, errors, failed) == (0, [], []), (load, err[-3000:])
        assert [r["scenario"] for r in reports] == [p.stem for p in REWORKED]
        for report in reports:      # what test_scenarios.py asks of every shipped scenario
            assert report["expectations"], f"{report['scenario']}: a shipped scenario must expect something"
            folder = Path(report["artifacts"])
            assert {"scenario.json", "results.json", "outputs", "logs"} <= {p.name for p in folder.iterdir()}
            assert find_containers(report["lab"]) == [] and find_networks(report["lab"]) == []
        # The premise of the lesson held on the clients' own clocks: they did start together.
        [iterative] = [r for r in reports if r["scenario"] == "iterative-vs-concurrent"]
        assert any(e["text"].startswith("spread(iterative.started_at)") and e["passed"]
                   for e in iterative["expectations"])

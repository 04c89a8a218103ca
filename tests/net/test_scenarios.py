"""Every scenario shipped in scenarios/ passes its own expectations on real containers,
run the way an instructor runs it: `lab run FILE --json`."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lab.topology.docker_lab import find_containers, find_networks

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "scenarios").glob("*.yaml"))
LAB = Path(sys.executable).parent / "lab"


def test_scenarios_are_shipped():
    assert len(SHIPPED) >= 12, [p.name for p in SHIPPED]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_scenario_passes_its_own_expectations(path, tmp_path):
    done = subprocess.run([str(LAB), "run", str(path), "--json", "--runs-dir", str(tmp_path / "runs"),
                           "--work", str(tmp_path / "work")],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert "Traceback" not in done.stderr, done.stderr
    report = json.loads(done.stdout)
    failed = [f"{e['text']}: observed {e['observed']!r}; {e['detail']}"
              for e in report["expectations"] if not e["passed"]]
    assert (done.returncode, report["errors"], failed) == (0, [], []), done.stderr[-3000:]
    assert report["expectations"], "a shipped scenario must expect something"
    # The run folder holds what an instructor looks at afterwards.
    folder = Path(report["artifacts"])
    assert {"scenario.json", "results.json", "outputs", "logs"} <= {p.name for p in folder.iterdir()}
    # And the lab is gone.
    assert find_containers(report["lab"]) == [] and find_networks(report["lab"]) == []

"""examples/github-classroom: the workflow is valid GitHub Actions YAML of the shape GitHub
Classroom's grading reporter needs (a job named "Autograding Tests", checks: write, the
grade step's base64 results handed to the reporter as <RUNNER>_RESULTS), it grades with
the options `lab grade` really has, and `actionlint` passes it where actionlint is
installed (it needs a download from GitHub, which not every machine may make)."""
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from lab.cli import cli

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "github-classroom"
WORKFLOW = EXAMPLE / ".github" / "workflows" / "classroom.yml"


def workflow():
    return yaml.safe_load(WORKFLOW.read_text())


def test_the_workflow_has_the_shape_the_classroom_reporter_reads():
    wf = workflow()
    assert wf["name"] == "Autograding Tests" and "push" in wf["on"]
    assert wf["permissions"]["checks"] == "write"
    (job,) = wf["jobs"].values()
    assert job["name"] == "Autograding Tests" and job["runs-on"].startswith("ubuntu")
    steps = job["steps"]
    assert all(("uses" in s) != ("run" in s) for s in steps)
    grade = [s for s in steps if s.get("id") == "socketlab"][0]
    reporter = steps[-1]
    assert reporter["uses"].startswith("classroom-resources/autograding-grading-reporter@")
    runners = reporter["with"]["runners"]
    assert reporter["env"][f"{runners.upper()}_RESULTS"] == "${{ steps.%s.outputs.result }}" % grade["id"]
    assert "base64 -w 0 results.json" in grade["run"] and '"$GITHUB_OUTPUT"' in grade["run"]
    assert any("lab images build" in s.get("run", "") for s in steps)


def test_the_grade_command_in_the_workflow_has_options_lab_grade_has():
    grade = [s for s in workflow()["jobs"]["run-autograding-tests"]["steps"] if s.get("id") == "socketlab"][0]
    line = [ln for ln in grade["run"].splitlines() if ln.strip().startswith("lab grade")][0]
    options = [w for w in line.split() if w.startswith("--")]
    helptext = CliRunner().invoke(cli, ["grade", "--help"]).output
    assert options and all(o in helptext for o in options), options


@pytest.mark.skipif(shutil.which("actionlint") is None, reason="actionlint is not installed")
def test_actionlint_passes_the_workflow():
    done = subprocess.run(["actionlint", "-no-color", str(WORKFLOW)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr

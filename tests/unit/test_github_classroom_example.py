"""examples/github-classroom: the workflow is valid GitHub Actions YAML of the shape GitHub
Classroom's grading reporter needs (a job named "Autograding Tests", checks: write, the
grade step's base64 results handed to the reporter as <RUNNER>_RESULTS), it grades with
the options `lab grade` really has, and `actionlint` passes it.  actionlint comes with the
test extras (`pip install -e '.[test]'`, as ./quickstart does) on Linux x86_64 and aarch64;
elsewhere the test is skipped, saying so."""
import shutil
import subprocess
import sys
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


def actionlint():
    """The actionlint beside this Python (a virtualenv's, not necessarily on PATH), else on PATH."""
    beside = Path(sys.executable).parent / "actionlint"
    return str(beside) if beside.is_file() else shutil.which("actionlint")


@pytest.mark.skipif(actionlint() is None, reason="actionlint is not installed: `pip install -e '.[test]'` "
                                                 "installs it on Linux x86_64 and aarch64")
def test_actionlint_passes_the_workflow():
    done = subprocess.run([actionlint(), "-no-color", str(WORKFLOW)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_fails_a_broken_workflow(tmp_path):
    """The check above can fail: a step with both `uses` and `run` is refused."""
    if actionlint() is None:
        pytest.skip("actionlint is not installed: `pip install -e '.[test]'` installs it on Linux x86_64 and aarch64")
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("        id: socketlab\n",
                                                   "        id: socketlab\n        uses: actions/checkout@v5\n"))
    done = subprocess.run([actionlint(), "-no-color", str(broken)], capture_output=True, text=True)
    assert done.returncode == 1 and "run" in done.stdout, done.stdout + done.stderr

"""`lab grade --assignment` (pure parts): the lab's images from an assignment and the
build-then-checks sequence."""
from pathlib import Path
from types import SimpleNamespace

from lab.grade import run
from lab.grade.assignment import LECTURE, load
from lab.grade.harness import STUDENT_HOST, checks_for
from lab.grade.run import CheckResult

ROOT = Path(__file__).resolve().parents[2]
C_ASSIGNMENT = ROOT / "examples" / "assignments" / "c" / "assignment.yaml"


def test_the_lab_of_an_assignment_runs_its_image_on_the_student_host_and_the_clients():
    c = load(C_ASSIGNMENT)
    shape = run.lab_hosts(c)
    assert shape["hosts"] == {STUDENT_HOST: {"network": "servers", "image": c.image, "command": ["host-role", "idle"]}}
    assert shape["images"] == {"clients": {"image": c.image, "command": ["host-role", "client", "--no-demo"]}}
    assert run.lab_hosts(LECTURE) == {"hosts": {STUDENT_HOST: {"network": "servers"}}, "images": None}


class FakeChecks:
    """run._build and run._run_check replaced: the build's verdict given, each check passes."""

    def __init__(self, monkeypatch, build_status):
        self.ran = []
        monkeypatch.setattr(run, "_build", lambda a, g, progress: CheckResult(
            "builds", "it builds", 0.0, 0.0, build_status, "", 0.0))
        monkeypatch.setattr(run, "_run_check", lambda chk, g, progress: self.ran.append(chk.name) or CheckResult(
            chk.name, chk.description, chk.points, chk.points, "passed", "", 0.0))


def grading(assignment):
    return SimpleNamespace(assignment=assignment)


def test_a_failed_build_marks_every_check_not_run_and_each_is_a_step(monkeypatch):
    fake = FakeChecks(monkeypatch, "failed")
    steps = []
    results = run.build_and_check(grading(load(C_ASSIGNMENT)), checks_for("default"),
                                  step=lambda name, do: steps.append(name) or do())
    names = ["builds", *(c.name for c in checks_for("default"))]
    assert [r.name for r in results] == names == steps and fake.ran == []
    assert results[0].status == "failed"
    assert all(r.status == "not run" and r.score == 0 and "the build failed" in r.output for r in results[1:])
    assert [r.max_score for r in results[1:]] == [c.points for c in checks_for("default")]


def test_a_passing_build_runs_every_check_and_the_lecture_has_no_build(monkeypatch):
    fake = FakeChecks(monkeypatch, "passed")
    results = run.build_and_check(grading(load(C_ASSIGNMENT)), checks_for("default"))
    assert [r.status for r in results] == ["passed"] * (1 + len(checks_for("default")))
    assert fake.ran == [c.name for c in checks_for("default")]
    results = run.build_and_check(grading(LECTURE), checks_for("default"))
    assert [r.name for r in results] == fake.ran[len(checks_for("default")):] == [c.name for c in checks_for("default")]

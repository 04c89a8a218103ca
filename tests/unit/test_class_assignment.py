"""`lab grade --class --assignment` (pure parts): the lab's images from an assignment, the
build-then-checks sequence shared by one submission and a class, the resume key and the
gradebook's columns with an assignment."""
import hashlib
from pathlib import Path
from types import SimpleNamespace

from lab.grade import batch, gradebook, run
from lab.grade.assignment import LECTURE, load, load_text
from lab.grade.harness import STUDENT_HOST, checks_for
from lab.grade.run import CheckResult

ROOT = Path(__file__).resolve().parents[2]
C_ASSIGNMENT = ROOT / "examples" / "assignments" / "c" / "assignment.yaml"
TEXT = "toolchain: c\nbuild: make\ntcp_server: ./tcpserver {port}\n"


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


def test_the_resume_key_of_the_lecture_is_unchanged_and_an_assignment_changes_it():
    lecture = "\n".join(f"{c.name}:{c.points:g}" for c in checks_for("default"))
    assert batch.checks_key("default") == hashlib.sha256(lecture.encode()).hexdigest()[:16]   # earlier runs kept
    one, same = load_text(TEXT, "a.yaml"), load_text(TEXT, "b.yaml")
    changed = load_text(TEXT.replace("make", "make all"), "a.yaml")
    assert one.digest == hashlib.sha256(TEXT.encode()).hexdigest()
    assert batch.checks_key("default", one) == batch.checks_key("default", same)
    assert len({batch.checks_key("default"), batch.checks_key("default", one),
                batch.checks_key("default", changed), batch.checks_key("robust", one)}) == 4


def test_the_gradebook_has_a_build_column_worth_no_points():
    defs = batch.check_defs("default", load(C_ASSIGNMENT))
    assert defs == [("builds", 0.0)] + batch.check_defs("default") == \
        [("builds", 0.0)] + [(c.name, c.points) for c in checks_for("default")]
    assert batch.check_defs("default", load_text("tcp_server: ./s {port}\n")) == batch.check_defs("default")


def test_a_failed_build_counts_as_failed_in_the_summary():
    def rec(slug, build):
        checks = [{"name": "builds", "score": 0.0, "max_score": 0.0, "status": build, "output": "make: error"},
                  {"name": "a", "score": 0.0 if build == "failed" else 2.0, "max_score": 2.0,
                   "status": "not run" if build == "failed" else "passed", "output": "not run"}]
        return {"slug": slug, "folder": slug, "status": "graded", "score": sum(c["score"] for c in checks),
                "max_score": 2.0, "checks": checks}
    s = gradebook.summary([rec("x", "failed"), rec("y", "passed")], [("builds", 0.0), ("a", 2.0)])
    assert [(c.name, c.failed, c.graded) for c in s.checks] == [("builds", 1, 2), ("a", 1, 2)]
    assert s.checks[0].examples == [("x", "make: error")]


def test_side_by_side_runs_each_programs_checks_in_order_and_returns_them_in_order(monkeypatch):
    """The default level's checks in one lane per program (each lane in its order, the lanes
    at once), the robust level's after them, alone; the results in the order of the level."""
    from lab.grade.harness import lanes
    default, robust = checks_for("default"), checks_for("robust")
    parallel, alone = lanes(robust)
    assert sorted(c.name for lane in parallel for c in lane) == sorted(c.name for c in default)
    assert [c.name for c in alone] == [c.name for c in robust if c.level == "robust"]
    for lane in parallel:
        assert len({c.needs for c in lane}) == 1 and len(lane[0].needs) == 1
        assert [c.name for c in lane] == [c.name for c in default if c.needs == lane[0].needs]
    assert len(parallel) == 4
    fake = FakeChecks(monkeypatch, "passed")
    results = run.build_and_check(grading(load(C_ASSIGNMENT)), robust, side_by_side=True)
    assert [r.name for r in results] == ["builds", *(c.name for c in robust)]
    assert sorted(fake.ran) == sorted(c.name for c in robust) and fake.ran[-len(alone):] == [c.name for c in alone]

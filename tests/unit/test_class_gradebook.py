"""The pure parts of `lab grade --class`: finding a class's submissions in each layout,
refusing hostile ones with a reason, content hashes, the gradebook's columns, the
summary, the default number of workers, PrairieLearn's and GitHub Classroom's shapes."""
import csv
import io
import os

import pytest

from lab.grade import batch, gradebook
from lab.grade.classroom import content_hash, find_submissions, prepare, slug_of
from lab.grade.demo import LECTURE, make_class, make_hostile
from lab.grade.run import CheckResult, GradeReport

DEFS = [("a", 3.0), ("b", 2.0), ("c", 1.0)]


def rec(slug, status="graded", **points):
    checks = [{"name": n, "score": points.get(n, p), "max_score": p, "output": f"{n} saw\nmore"} for n, p in DEFS]
    return {"slug": slug, "folder": slug, "name": f"N {slug}", "email": f"{slug}@x", "sid": "", "status": status,
            "reason": "" if status == "graded" else "why", "score": sum(c["score"] for c in checks),
            "max_score": 6.0, "checks": checks if status == "graded" else []}


def test_gradebook_rows_and_columns_are_stable_and_spreadsheet_safe():
    records = [rec("bob", b=0), rec("alice"), rec("=evil", a=0), rec("zed", status="refused")]
    records[2]["folder"] = "=cmd|x\nline"
    rows = list(csv.reader(io.StringIO(gradebook.gradebook_csv(records, [n for n, _ in DEFS]))))
    assert rows[0] == gradebook.FIXED + ["a", "b", "c"]
    assert [r[3] for r in rows[1:]] == ["'=cmd|x\\nline", "alice", "bob", "zed"]   # by slug; escaped
    assert rows[3][4:8] == ["4", "6", "graded", ""] and rows[3][8:] == ["3", "0", "1"]
    assert rows[4][4] == "" and rows[4][6:8] == ["refused", "why"] and rows[4][8:] == ["", "", ""]
    again = gradebook.gradebook_csv(list(reversed(records)), [n for n, _ in DEFS])
    assert again == gradebook.gradebook_csv(records, [n for n, _ in DEFS])


def test_summary_counts_failures_per_check_with_two_examples_and_a_histogram():
    records = [rec("s1", b=0), rec("s2", b=0, c=0), rec("s3", b=0), rec("s4"), rec("s5", status="refused"),
               rec("s6", status="grader-error")]
    s = gradebook.summary(records, DEFS)
    assert (s.total, s.graded, s.full_marks, s.max_score) == (6, 4, 1, 6.0)
    assert s.histogram == {0.0: 0, 1.0: 0, 2.0: 0, 3.0: 1, 4.0: 2, 5.0: 0, 6.0: 1}
    assert [(c.name, c.failed, c.graded) for c in s.checks] == [("b", 3, 4), ("c", 1, 4), ("a", 0, 4)]
    assert s.checks[0].examples == [("s1", "b saw"), ("s2", "b saw")]
    assert s.refused == [("s5", "why")] and s.grader_errors == [("s6", "why")]
    text = gradebook.summary_text(s)
    assert "75%  b (3 of 4)" in text and "s5: why" in text and "run again" in text
    html = gradebook.summary_html(s, "t", records)
    assert "75% (3 of 4)" in html and 'href="s1/report.html"' in html


def test_an_example_message_is_the_first_line_and_what_it_introduces():
    assert gradebook._first_line("\n  nc got 'x'\nmore") == "nc got 'x'"
    assert gradebook._first_line("3 of 3 did not:\nclient1: exit 1, got refused\nclient2") == \
        "3 of 3 did not: client1: exit 1, got refused"
    assert len(gradebook._first_line("y" * 500)) == gradebook.EXAMPLE_CHARS


def test_summary_of_no_graded_submission_says_so():
    s = gradebook.summary([rec("x", status="refused")], DEFS)
    assert s.graded == 0 and s.mean is None and "0 of 1 submissions graded" in gradebook.summary_text(s)


def report(scores):
    r = GradeReport("sub", "default", ["TCPServer.py"])
    r.results = [CheckResult(n, f"{n} does.", p, scores.get(n, p), "passed" if scores.get(n, p) == p else "failed",
                             "seen\nmore", 1.0) for n, p in DEFS]
    return r


def test_prairielearn_shape_and_the_grader_failure():
    pl = gradebook.prairielearn(report({"b": 0.0}))
    assert pl["gradable"] is True and pl["score"] == pytest.approx(4 / 6)
    assert [(t["name"], t["points"], t["max_points"]) for t in pl["tests"]] == [("a", 3, 3), ("b", 0, 2), ("c", 1, 1)]
    assert pl["tests"][1]["message"] == "seen" and pl["tests"][1]["output"] == "seen\nmore"
    broken = gradebook.prairielearn(None, "no engine")
    assert broken["gradable"] is False and "no engine" in broken["message"]


def test_github_classroom_results_total_as_the_reporter_totals_them():
    gh = gradebook.github_classroom(report({"c": 0.0}))
    assert gh["max_score"] == 6 and sum(t["score"] for t in gh["tests"]) == 5 and gh["status"] == "fail"
    assert {t["status"] for t in gh["tests"]} == {"pass", "fail"}


@pytest.mark.parametrize("cpus, memory, jobs", [(2, 23 << 30, 4), (1, 8 << 30, 2), (16, 64 << 30, 8),
                                                 (8, 1 << 30, 2), (4, 100 << 20, 1), (2, 0, 4)])
def test_default_jobs_from_cpus_and_memory(cpus, memory, jobs):
    assert batch.default_jobs(cpus, memory) == jobs


def test_gradescope_export_gives_names_emails_and_sids(tmp_path):
    made = make_class(tmp_path, variants=["lecture", "one-shot"], gradescope=True)
    meta = tmp_path / "submission_metadata.yml"
    meta.write_text(meta.read_text() + "submission_999:\n  :submitters:\n  - :name: Ruby\n    :email: r@x\n"
                    "  :score: !ruby/object:BigDecimal 18:0.1e2\n")
    (tmp_path / "submission_999").mkdir()
    layout, subs = find_submissions(tmp_path)
    assert layout == "gradescope" and len(subs) == 3 and set(made) < {s.folder for s in subs}
    by = {s.folder: s for s in subs}
    assert by["submission_999"].name == "Ruby" and by["submission_999"].email == "r@x"
    one = by[[k for k, v in made.items() if v == "one-shot"][0]]
    assert one.name == "Student one-shot 1" and one.email == "one-shot.1@example.edu" and one.sid


def test_github_classroom_clones_are_named_by_user_and_git_is_not_hashed(tmp_path):
    for user in ("alice", "bob-smith"):
        repo = tmp_path / f"sockets-lab-{user}"
        (repo / ".git").mkdir(parents=True)
        (repo / "src").mkdir()
        (repo / "src" / "TCPServer.py").write_text(LECTURE["TCPServer.py"])
    layout, subs = find_submissions(tmp_path)
    assert layout == "github-classroom" and [s.name for s in subs] == ["alice", "bob-smith"]
    prepare(subs[0], tmp_path / "scratch")
    assert subs[0].root == tmp_path / "sockets-lab-alice" / "src" and not subs[0].refused
    before = subs[0].digest
    (tmp_path / "sockets-lab-alice" / ".git" / "HEAD").write_text("x")
    assert content_hash(subs[0].root.parent) == content_hash(subs[0].root.parent)
    prepare(subs[0], tmp_path / "scratch")
    assert subs[0].digest == before
    (subs[0].root / "TCPServer.py").write_text("changed")
    prepare(subs[0], tmp_path / "scratch")
    assert subs[0].digest != before


def test_hostile_submissions_are_refused_with_a_reason_and_odd_names_made_safe(tmp_path):
    expected = make_hostile(tmp_path / "class")
    make_class(tmp_path / "class", variants=["lecture"])
    (tmp_path / "class" / "notes.txt").write_text("not a submission")
    _, subs = find_submissions(tmp_path / "class")
    for s in subs:
        prepare(s, tmp_path / "scratch")
    why = {s.folder: s.refused for s in subs}
    assert set(why) == set(expected) | {"lecture"} and why["lecture"] == ""
    for folder, words in expected.items():
        assert (words in why[folder]) if words else why[folder] == "", (folder, why[folder])
    by = {s.folder: s for s in subs}
    assert by["new\nline"].slug == "new_line" and by["new\nline"].shown == "new\\nline"
    assert (by["zipped.zip"].root / "UDPServer.py").is_file()
    assert not (tmp_path / "outside.py").exists() and not (tmp_path / "scratch" / "outside.py").exists()


def test_slugs_are_unique_and_safe():
    taken = set()
    assert [slug_of(n, taken) for n in ["a b", "a_b", "../x", "", "summary.html", "A_B"]] == \
        ["a_b", "a_b-2", "x", "submission", "summary.html-2", "A_B-3"]
    assert all(os.sep not in s for s in taken)


def test_prairielearn_file_says_not_gradable_when_the_grader_cannot_run(tmp_path, monkeypatch):
    from click.testing import CliRunner
    from lab.cli import cli
    from lab.grade import run
    from lab.programs.shared.errors import LabEnvironmentError

    def no_engine(*args, **kwargs):
        raise LabEnvironmentError("cannot reach the Docker Engine")
    make_class(tmp_path / "c", variants=["lecture"])
    monkeypatch.setattr(run, "grade", no_engine)
    result = CliRunner().invoke(cli, ["grade", str(tmp_path / "c" / "lecture"), "--prairielearn",
                                      str(tmp_path / "pl.json")])
    assert result.exit_code == 3, result.output
    import json
    pl = json.loads((tmp_path / "pl.json").read_text())
    assert pl["gradable"] is False and pl["message"] == "the grader could not run: cannot reach the Docker Engine"


def test_class_options_are_refused_where_they_do_not_apply(tmp_path):
    from click.testing import CliRunner
    from lab.cli import cli
    make_class(tmp_path / "c", variants=["lecture"])
    for args in (["grade"], ["grade", str(tmp_path / "c" / "lecture"), "--class", str(tmp_path / "c")],
                 ["grade", "--class", str(tmp_path / "c"), "--junit", "x.xml"],
                 ["grade", str(tmp_path / "c" / "lecture"), "--jobs", "2"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2 and "lab grade:" in result.output, (args, result.output)

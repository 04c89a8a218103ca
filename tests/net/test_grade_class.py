"""`lab grade --class` on real containers: a class of the lecture and the six classic bugs,
read from a Gradescope export (names and emails), loses exactly the expected checks; the
verdicts of every check of every student are the same with --jobs 1 and --jobs 4 (graded
side by side), and so is the gradebook; nothing of one student reaches the next on a reused
lab; an interrupted run resumes (keeping what was graded, regrading what changed); hostile
submissions are one row each with a reason while the class goes on; a C class with
--assignment is built then checked on the assignment's image (the reference gets full
marks, a server that forgets to upper-case loses exactly that check, a failed build is one
failed check with the compiler's words and the rest not run, in the record, results.json
and junit.xml; a changed assignment regrades)."""
import csv
import json
import os
import shutil
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import docker
import pytest

from lab.grade.demo import EXPECTED_LOST, LEAVES_THINGS, LECTURE, make_class, make_hostile
from lab.grade.gradebook import FIXED
from lab.grade.run import checks_for  # run registers the checks

ASSIGNMENTS = Path(__file__).resolve().parents[2] / "examples" / "assignments"
BUGGY_SERVER = Path(__file__).parent / "data" / "assignments" / "buggy-tcpserver.c"

ENV = {**os.environ, "COLUMNS": "200"}


@pytest.fixture(scope="module")
def lab_grade_class(lab_command):
    """(folder, out, *args) -> `lab grade --class FOLDER --out OUT ARGS` run to its end."""
    def grade(folder, out, *args, timeout=1500):
        return lab_command("grade", "--class", folder, "--out", out, *args, check=False, timeout=timeout, env=ENV)
    return grade


def records(out):
    return {p.parent.name: json.loads(p.read_text()) for p in out.glob("*/grade.json")}


def verdicts(out):
    return {slug: [(c["name"], c["status"], c["score"]) for c in r["checks"]] for slug, r in records(out).items()}


@pytest.fixture(scope="module")
def klass(tmp_path_factory, lab_cli):
    """The class graded with --jobs 4 and with --jobs 1, both at once (each is the other's
    load: verdicts must not ride on it; the one-at-a-time run, mostly waiting, sets the
    time). jobs -> (the finished `lab grade --class`, its --out folder)."""
    folder = tmp_path_factory.mktemp("class")
    made = make_class(folder, gradescope=True)
    outs = {jobs: tmp_path_factory.mktemp(f"out{jobs}") for jobs in (4, 1)}
    logs = tmp_path_factory.mktemp("logs")      # files, not pipes: neither run waits on a reader
    procs = {}
    for jobs, out in outs.items():
        with (logs / f"{jobs}.out").open("w") as stdout, (logs / f"{jobs}.err").open("w") as stderr:
            procs[jobs] = lab_cli("grade", "--class", folder, "--out", out, "--jobs", str(jobs), env=ENV,
                                  stdout=stdout, stderr=stderr)
    runs = {}
    try:
        for jobs, proc in procs.items():
            proc.wait(timeout=1500)
            stdout, stderr = (logs / f"{jobs}.out").read_text(), (logs / f"{jobs}.err").read_text()
            assert "Traceback" not in stderr, stderr
            runs[jobs] = (subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), outs[jobs])
    finally:
        for proc in procs.values():
            if proc.poll() is None:     # a failed or hung run: SIGTERM removes its labs
                proc.terminate()
                proc.wait(timeout=180)
    return made, runs


def test_each_classic_bug_loses_exactly_its_checks_and_names_come_from_the_export(klass):
    made, runs = klass
    done, out = runs[4]
    assert done.returncode == 0, done.stderr
    recs = records(out)
    assert set(recs) == set(made)
    for slug, variant in made.items():
        r = recs[slug]
        lost = {c["name"] for c in r["checks"] if c["score"] < c["max_score"]}
        assert lost == EXPECTED_LOST[variant], (variant, {c["name"]: c["output"][:300] for c in r["checks"]
                                                          if c["name"] in lost ^ EXPECTED_LOST[variant]})
        assert r["name"] == f"Student {variant} 1" and r["email"] == f"{variant}.1@example.edu"
    rows = list(csv.DictReader((out / "gradebook.csv").open()))
    assert len(rows) == len(made) and {row["Email"] for row in rows} == {f"{v}.1@example.edu" for v in made.values()}
    lecture = [row for row in rows if row["Name"] == "Student lecture 1"][0]
    assert lecture["Total Score"] == lecture["Max Points"] == "19"
    assert "what the class got wrong" in done.stdout and (out / "summary.html").is_file()


def test_verdicts_and_gradebook_do_not_depend_on_jobs(klass):
    _made, runs = klass
    (done4, out4), (done1, out1) = runs[4], runs[1]
    assert done1.returncode == 0, done1.stderr
    assert verdicts(out1) == verdicts(out4)
    assert (out1 / "gradebook.csv").read_text() == (out4 / "gradebook.csv").read_text()


def test_each_student_gets_gradescope_results_junit_and_a_report_with_ladders(klass):
    made, runs = klass
    out = runs[4][1]
    slug = [s for s, v in made.items() if v == "loopback"][0]
    results = json.loads((out / slug / "results.json").read_text())
    assert results["score"] == sum(t["score"] for t in results["tests"])
    assert {"name", "score", "max_score", "output", "visibility"} <= set(results["tests"][0])
    assert (out / slug / "junit.xml").read_text().count("<failure") == len(EXPECTED_LOST["loopback"])
    html = (out / slug / "report.html").read_text()
    assert "<svg" in html and "the packets through the router" in html      # a failed check's ladder
    (rec,) = [r for s, r in records(out).items() if s == slug]
    failed = [c for c in rec["checks"] if c["name"] == "tcp_server_replies_in_upper_case"][0]
    assert failed["packets"] > 0 and "SYN" in failed["ladder_text"]
    assert any("tcp-client" in t["sent"] for t in failed["transcript"])
    lecture = [s for s, v in made.items() if v == "lecture"][0]     # full marks, as Gradescope reads them
    full = json.loads((out / lecture / "results.json").read_text())
    assert full["score"] == sum(t["max_score"] for t in full["tests"]) > 0
    assert isinstance(full["execution_time"], int) and full["execution_time"] > 0
    for test in full["tests"]:   # Gradescope's fields, with a one-sentence description
        assert {"name", "score", "max_score", "output", "visibility"} <= set(test)
        assert test["output"].split("\n")[0].endswith("."), test
    junit = ET.parse(out / lecture / "junit.xml").getroot()
    assert junit.get("failures") == "0" and len(junit.findall("testcase")) == len(full["tests"])


def test_nothing_of_one_student_reaches_the_next_on_a_reused_lab(tmp_path, lab_grade_class):
    """a-leaves-things leaves a process bound to port 12000 (in a session of its own, so
    the end of its command does not end it), files in /work, /tmp and /root, and TIME_WAIT
    sockets on port 12000 (the squatter closes first); b-lecture's server (no SO_REUSEADDR)
    leaves TIME_WAIT sockets of its own.  Graded next on the same lab, the lecture's
    programs get full marks twice, the second time checking that no file is left."""
    folder = tmp_path / "class"
    first = folder / "a-leaves-things"
    first.mkdir(parents=True)
    for name, text in LECTURE.items():
        (first / name).write_text(LEAVES_THINGS if name == "TCPServer.py" else text)
    for name in ("b-lecture", "c-lecture"):       # graded next, by the same worker, on the same lab
        (folder / name).mkdir()
        for file, text in LECTURE.items():
            (folder / name / file).write_text(text)
    (folder / "c-lecture" / "TCPServer.py").write_text(   # on the host where the last one left its files
        "import os, sys\nif any(os.path.exists(f'{d}/leftover.txt') for d in ('/work', '/tmp', '/root')):\n"
        "    sys.exit('found the last student files')\n" + LECTURE["TCPServer.py"])
    done = lab_grade_class(folder, tmp_path / "out", "--jobs", "1")
    assert done.returncode == 0, done.stderr
    recs = records(tmp_path / "out")
    assert recs["a-leaves-things"]["lab"] == recs["b-lecture"]["lab"] == recs["c-lecture"]["lab"]   # one lab
    # the file in /root changed the student host's own file system: that host was made again
    assert "changed: /root" in recs["b-lecture"]["hosts_remade"].get("student", ""), recs["b-lecture"]
    for slug in ("b-lecture", "c-lecture"):
        assert recs[slug]["score"] == recs[slug]["max_score"], \
            {c["name"]: c["output"][:300] for c in recs[slug]["checks"] if c["status"] != "passed"}


def _engine_labs(name):
    return [c.name for c in docker.from_env().containers.list(all=True) if c.name.startswith(name + "-")]


def test_an_interrupted_class_resumes_and_regrades_only_what_changed(tmp_path, lab_cli, lab_grade_class):
    folder, out = tmp_path / "class", tmp_path / "out"
    make_class(folder, variants=["lecture", "localhost", "one-shot"])
    proc = lab_cli("grade", "--class", folder, "--out", out, "--jobs", "1",
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.monotonic() + 600
    while not list(out.glob("*/grade.json")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)   # polling for the first record, with a deadline
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 130 and "resume" in stderr, stderr
    first = records(out)
    assert 1 <= len(first) < 3
    assert not any(_engine_labs(r["lab"]) for r in first.values())           # its lab is gone
    kept = {slug: (out / slug / "grade.json").stat().st_mtime_ns for slug in first}

    again = lab_grade_class(folder, out, "--jobs", "1")
    assert again.returncode == 0 and f"{len(first)} kept from an earlier run" in again.stderr, again.stderr
    assert set(records(out)) == {"lecture", "localhost", "one-shot"}
    assert {slug: (out / slug / "grade.json").stat().st_mtime_ns for slug in first} == kept

    (folder / "localhost" / "TCPClient.py").write_text(LECTURE["TCPClient.py"])     # the student fixed it
    third = lab_grade_class(folder, out, "--jobs", "1")
    assert "2 kept from an earlier run" in third.stderr and "1 to grade" in third.stderr, third.stderr
    lost = {c["name"] for c in records(out)["localhost"]["checks"] if c["score"] < c["max_score"]}
    assert lost == EXPECTED_LOST["localhost"] - {"tcp_client_gets_the_reply", "tcp_client_works_with_nc"}


def test_hostile_submissions_are_one_row_each_with_a_reason_and_the_class_goes_on(tmp_path, lab_grade_class):
    folder, out = tmp_path / "class", tmp_path / "out"
    expected = make_hostile(folder)
    make_class(folder, variants=["lecture"])
    done = lab_grade_class(folder, out, "--jobs", "2")
    assert done.returncode == 0, done.stderr
    rows = {row["Folder"]: row for row in csv.DictReader((out / "gradebook.csv").open())}
    assert set(rows) == {f.replace("\n", "\\n") for f in expected} | {"lecture"}
    for folder_name, words in expected.items():
        row = rows[folder_name.replace("\n", "\\n")]
        if words:
            assert row["Status"] == "refused" and words in row["Reason"], row
        else:
            assert row["Status"] == "graded" and float(row["Total Score"]) > 0, row
    assert rows["lecture"]["Total Score"] == "19"
    assert not (tmp_path / "outside.py").exists()
    assert "not graded (the submission could not be)" in done.stdout


def test_a_c_class_is_built_then_checked_and_a_changed_assignment_regrades(tmp_path, lab_grade_class,
                                                                           toolchain_images):
    folder, out, assignment = tmp_path / "class", tmp_path / "out", tmp_path / "assignment.yaml"
    shutil.copy(ASSIGNMENTS / "c" / "assignment.yaml", assignment)
    for name in ("reference", "no-build", "no-upper"):
        shutil.copytree(ASSIGNMENTS / "c", folder / name, ignore=shutil.ignore_patterns("assignment.yaml"))
    (folder / "no-build" / "udpclient.c").write_text("int main(void) { this is not C; }\n")
    shutil.copy(BUGGY_SERVER, folder / "no-upper" / "tcpserver.c")
    done = lab_grade_class(folder, out, "--jobs", "2", "--assignment", assignment)
    assert done.returncode == 0 and "3 to grade with 2 worker(s)" in done.stderr, done.stderr
    names = ["builds", *(c.name for c in checks_for("default"))]
    recs = records(out)
    ref = recs["reference"]
    assert [c["name"] for c in ref["checks"]] == names and ref["score"] == ref["max_score"] == 19, \
        {c["name"]: c["output"][:300] for c in ref["checks"] if c["status"] != "passed"}
    broken = recs["no-build"]
    assert broken["score"] == 0
    assert [c["status"] for c in broken["checks"]] == ["failed"] + ["not run"] * (len(names) - 1)
    assert "udpclient.c" in broken["checks"][0]["output"] and "error" in broken["checks"][0]["output"], \
        broken["checks"][0]["output"]
    results = json.loads((out / "no-build" / "results.json").read_text())     # what Gradescope gets
    assert results["score"] == 0 and all("not run: the build failed" in t["output"] for t in results["tests"][1:])
    junit = ET.parse(out / "no-build" / "junit.xml").getroot()
    assert len(junit.findall("testcase/skipped")) == len(names) - 1 == len(checks_for("default"))
    lost = {c["name"] for c in recs["no-upper"]["checks"] if c["score"] < c["max_score"]}
    assert lost == {"tcp_server_replies_in_upper_case"}, \
        {c["name"]: c["output"][:300] for c in recs["no-upper"]["checks"]}
    rows = list(csv.reader((out / "gradebook.csv").open()))
    assert rows[0] == FIXED + names
    assert "builds" in done.stdout      # what the class got wrong names the build

    again = lab_grade_class(folder, out, "--jobs", "2", "--assignment", assignment)
    assert again.returncode == 0 and "3 kept from an earlier run" in again.stderr, again.stderr
    assignment.write_text(assignment.read_text().replace("build: make", "build: 'false'"))
    changed = lab_grade_class(folder, out, "--jobs", "2", "--assignment", assignment)
    assert changed.returncode == 0 and "0 kept from an earlier run" in changed.stderr, changed.stderr
    assert all(r["checks"][0]["status"] == "failed" and r["score"] == 0 for r in records(out).values())

    assignment.write_text("# mine\nimage: socketlab-no-such-image:never\ntcp_server: ./srv {port}\n")
    refused = lab_grade_class(folder, tmp_path / "not-written", "--assignment", assignment)
    assert refused.returncode == 2 and not (tmp_path / "not-written").exists()
    assert f"{assignment}:2: image: socketlab-no-such-image:never is not in the engine" in refused.stderr, \
        refused.stderr

"""lab grade's pure parts: which checks a level has, and the reports' formats."""
import json
import xml.etree.ElementTree as ET

from lab.grade import report
from lab.grade.harness import CHECKS, checks_for
from lab.grade.run import CheckResult, GradeReport


def sample():
    r = GradeReport("submissions/alice", "default", ["TCPServer.py"], duration_s=12.6)
    r.results = [CheckResult("a_check", "Does a thing.", 3, 3, "passed", "fine", 1.0),
                 CheckResult("b_check", "Does b.", 2, 0, "failed", "got 'x'", 2.0),
                 CheckResult("c_check", "Does c.", 1, 0, "missing", "no UDPClient.py in the submission", 0.0)]
    return r


def test_every_check_has_points_a_sentence_and_a_unique_name():
    import lab.grade.checks  # noqa: F401 - registers them
    assert len({c.name for c in CHECKS}) == len(CHECKS)
    for c in CHECKS:
        assert c.points > 0 and c.description.endswith(".") and c.description.count(". ") == 0, c.name
    default, robust = checks_for("default"), checks_for("robust")
    assert set(default) < set(robust) and sum(c.points for c in default) == 19


def test_gradescope_results_have_the_fields_gradescope_reads():
    data = json.loads(report.gradescope_json(sample()))
    assert data["score"] == 3 and data["execution_time"] == 13 and "alice" not in data["output"]
    assert [(t["name"], t["score"], t["max_score"], t["status"]) for t in data["tests"]] == \
        [("a_check", 3, 3, "passed"), ("b_check", 0, 2, "failed"), ("c_check", 0, 1, "failed")]
    assert all(t["visibility"] == "visible" and t["output"].startswith("Does") for t in data["tests"])


def test_junit_marks_failures_and_missing_files():
    suite = ET.fromstring(report.junit_xml(sample()).split("\n", 1)[1])
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert cases["b_check"].find("failure").text == "got 'x'"
    assert cases["c_check"].find("skipped") is not None

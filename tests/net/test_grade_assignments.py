"""`lab grade --assignment` on real containers: the C and Java reference solutions get full
marks, and a bad assignment file is refused before anything starts. (A C server that
forgets to upper-case, and a build that fails, are graded in test_grade_class.py's C
class, with the same files: one `lab grade --class` proves them, not a lab each here.)"""
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lab.grade.run import checks_for  # run registers the checks

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "assignments"


@pytest.fixture(scope="module")
def grade(lab_command):
    """(folder, assignment, tmp_path) -> `lab grade FOLDER --assignment FILE`: (exit status, the
    Gradescope results, the JUnit root, stdout); on exit 2, (2, None, None, stderr)."""
    def run(folder: Path, assignment: Path, tmp_path: Path):
        gs, junit = tmp_path / "results.json", tmp_path / "junit.xml"
        done = lab_command("grade", folder, "--assignment", assignment, "--gradescope", gs, "--junit", junit,
                           check=False, timeout=900, env={**os.environ, "COLUMNS": "200"})
        if done.returncode == 2:
            return done.returncode, None, None, done.stderr
        return done.returncode, json.loads(gs.read_text()), ET.parse(junit).getroot(), done.stdout
    return run


def lost(results) -> set:
    return {t["name"] for t in results["tests"] if t["score"] < t["max_score"]}


def test_the_c_reference_solution_gets_full_marks(grade, toolchain_images, tmp_path):
    code, results, junit, out = grade(EXAMPLES / "c", EXAMPLES / "c" / "assignment.yaml", tmp_path)
    assert code == 0 and lost(results) == set(), out
    lecture = checks_for("default")     # the same checks and points as the Python lecture
    assert [t["name"] for t in results["tests"]] == ["builds", *(c.name for c in lecture)]
    assert results["score"] == sum(t["max_score"] for t in results["tests"]) == sum(c.points for c in lecture)


def test_the_java_reference_solution_gets_full_marks(grade, toolchain_images, tmp_path):
    code, results, junit, out = grade(EXAMPLES / "java", EXAMPLES / "java" / "assignment.yaml", tmp_path)
    assert code == 0 and lost(results) == set(), out


def test_bad_assignment_files_are_refused_before_anything_starts(grade, tmp_path):
    bad = tmp_path / "assignment.yaml"
    bad.write_text("toolchain: c\nbuild: make\ntcp_server: ./tcpserver {prot}\n")
    code, _, _, err = grade(EXAMPLES / "c", bad, tmp_path)
    assert code == 2 and f"{bad}:3:13: tcp_server: unknown placeholder {{prot}}" in err, err
    bad.write_text("# mine\nimage: socketlab-no-such-image:never\ntcp_server: ./srv {port}\n")
    code, _, _, err = grade(EXAMPLES / "c", bad, tmp_path)
    assert code == 2 and f"{bad}:2: image: socketlab-no-such-image:never is not in the engine" in err, err

"""`lab grade --assignment` on real containers: the C and Java reference solutions get full
marks, a C server that forgets to upper-case loses exactly that check, a build that fails
is one failed check with the compiler's last lines and the rest not run, and a bad
assignment file is refused before anything starts."""
import json
import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lab.grade.run import checks_for  # run registers the checks

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "assignments"
BUGGY_SERVER = Path(__file__).parent / "data" / "assignments" / "buggy-tcpserver.c"


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


def submission(tmp_path: Path, language: str) -> Path:
    folder = tmp_path / f"{language}-submission"
    shutil.copytree(EXAMPLES / language, folder)
    return folder


def test_the_c_reference_solution_gets_full_marks(grade, toolchain_images, tmp_path):
    code, results, junit, out = grade(EXAMPLES / "c", EXAMPLES / "c" / "assignment.yaml", tmp_path)
    assert code == 0 and lost(results) == set(), out
    lecture = checks_for("default")     # the same checks and points as the Python lecture
    assert [t["name"] for t in results["tests"]] == ["builds", *(c.name for c in lecture)]
    assert results["score"] == sum(t["max_score"] for t in results["tests"]) == sum(c.points for c in lecture)


def test_a_c_server_that_forgets_to_upper_case_loses_exactly_that_check(grade, toolchain_images, tmp_path):
    folder = submission(tmp_path, "c")
    shutil.copy(BUGGY_SERVER, folder / "tcpserver.c")
    code, results, junit, out = grade(folder, folder / "assignment.yaml", tmp_path)
    assert code == 1 and lost(results) == {"tcp_server_replies_in_upper_case"}, out


def test_a_build_that_fails_is_one_failed_check_and_the_rest_not_run(grade, toolchain_images, tmp_path):
    folder = submission(tmp_path, "c")
    (folder / "udpclient.c").write_text("int main(void) { this is not C; }\n")
    code, results, junit, out = grade(folder, folder / "assignment.yaml", tmp_path)
    assert code == 1 and results["score"] == 0, out
    build = results["tests"][0]
    assert build["name"] == "builds" and build["status"] == "failed"
    assert "udpclient.c" in build["output"] and "error" in build["output"], build["output"]
    assert len(junit.findall("testcase/skipped")) == len(results["tests"]) - 1 == len(checks_for("default"))
    assert all("not run: the build failed" in t["output"] for t in results["tests"][1:])


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

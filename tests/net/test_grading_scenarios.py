"""The grading scenarios judge a student's lecture programs from the folder given with
--work: the lecture's own files pass, a submission with a bug fails on exactly that bug."""
from pathlib import Path

from conftest import LECTURE, ROOT, lab_run_json
from test_scenarios import failed_expectations

GRADING = ROOT / "scenarios" / "grading"


def submission_with_a_bug(folder: Path) -> Path:
    """The lecture's programs, but the TCP server forgets to upper-case its reply."""
    folder.mkdir()
    for program in LECTURE.glob("*.py"):
        (folder / program.name).write_text(program.read_text())
    server = folder / "TCPServer.py"
    text = server.read_text()
    assert "sentence.upper()" in text
    server.write_text(text.replace("sentence.upper()", "sentence"))
    return folder


def test_the_lecture_programs_pass_both_gradings(tmp_path):
    code, reports, stderr = lab_run_json([GRADING / "servers.yaml", GRADING / "clients.yaml"], tmp_path,
                                         work=LECTURE)
    assert code == 0, stderr[-3000:]
    assert [(r["scenario"], r["errors"], failed_expectations(r)) for r in reports] == \
        [("grade-servers", [], []), ("grade-clients", [], [])]


def test_a_server_that_forgets_upper_fails_on_the_tcp_reply_only(tmp_path):
    code, [report], stderr = lab_run_json([GRADING / "servers.yaml"], tmp_path,
                                        work=submission_with_a_bug(tmp_path / "alice"))
    assert code == 1, stderr[-3000:]
    failed = {e["text"]: e["observed"] for e in report["expectations"] if not e["passed"]}
    assert list(failed) == ['tcp.received == "HELLO FROM THE GRADER"'], failed
    assert set(failed['tcp.received == "HELLO FROM THE GRADER"'].values()) == {"hello from the grader"}

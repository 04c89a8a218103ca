"""The grading scenarios judge a student's lecture programs from the folder given with
--work: the lecture's own files pass, a submission with a bug fails on exactly that bug."""
from pathlib import Path

GRADING = Path(__file__).resolve().parents[2] / "scenarios" / "grading"


def test_the_lecture_programs_pass_both_gradings(tmp_path, lab_run_json, lecture, failed_expectations):
    code, reports, stderr = lab_run_json([GRADING / "servers.yaml", GRADING / "clients.yaml"], tmp_path,
                                         work=lecture)
    assert code == 0, stderr[-3000:]
    assert [(r["scenario"], r["errors"], failed_expectations(r)) for r in reports] == \
        [("grade-servers", [], []), ("grade-clients", [], [])]


def test_a_server_that_forgets_upper_fails_on_the_tcp_reply_only(tmp_path, lab_run_json, submission_with_a_bug):
    code, [report], stderr = lab_run_json([GRADING / "servers.yaml"], tmp_path,
                                        work=submission_with_a_bug(tmp_path / "alice"))
    assert code == 1, stderr[-3000:]
    failed = {e["text"]: e["observed"] for e in report["expectations"] if not e["passed"]}
    assert list(failed) == ['tcp.received == "HELLO FROM THE GRADER"'], failed
    assert set(failed['tcp.received == "HELLO FROM THE GRADER"'].values()) == {"hello from the grader"}

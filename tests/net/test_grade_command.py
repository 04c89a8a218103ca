"""`lab grade` on real containers: a server that forgets .upper() loses exactly the reply
checks, hostile programs cost their points and never the grader, and a robust submission
passes the robust level with exit status 0. (The lecture's programs get full marks, with
Gradescope's fields and JUnit, in test_grade_class.py: `lab grade --class` writes the same
files, and grades the lecture there anyway.)"""
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPLY_CHECKS = {"tcp_server_replies_in_upper_case", "udp_server_replies_in_upper_case"}


@pytest.fixture(scope="module")
def lab_grade(lab_command):
    """(folder, tmp_path, *args, timeout=900) -> `lab grade FOLDER`: (exit status, the
    Gradescope results, the JUnit root, stdout)."""
    def grade(folder, tmp_path, *args, timeout=900):
        gs, junit = tmp_path / "results.json", tmp_path / "junit.xml"
        done = lab_command("grade", folder, "--gradescope", gs, "--junit", junit, *args, check=False,
                           timeout=timeout, env={**os.environ, "COLUMNS": "200"})
        return done.returncode, json.loads(gs.read_text()), ET.parse(junit).getroot(), done.stdout
    return grade


def lost(results):
    return {t["name"] for t in results["tests"] if t["score"] < t["max_score"]}


def test_a_server_that_forgets_upper_loses_exactly_the_reply_checks(tmp_path, lab_grade, submission_with_a_bug):
    code, results, junit, out = lab_grade(submission_with_a_bug(tmp_path / "alice"), tmp_path)
    assert code == 1 and lost(results) == {"tcp_server_replies_in_upper_case"}, out
    (tcp,) = [t for t in results["tests"] if t["name"] == "tcp_server_replies_in_upper_case"]
    assert "got 'hello from the grader'" in tcp["output"] and tcp["score"] == 0
    assert [c.get("name") for c in junit.iter("testcase") if c.find("failure") is not None] == \
        ["tcp_server_replies_in_upper_case"]


HOSTILE = {
    # never listens, floods its output
    "TCPServer.py": "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n",
    # crashes at once
    "UDPServer.py": "raise SystemExit('I give up')\n",
    # hangs forever without reading its input
    "TCPClient.py": "import time\ntime.sleep(3600)\n",
    # floods, then hangs
    "UDPClient.py": "import time\nprint('y' * 10_000_000, flush=True)\ntime.sleep(3600)\n",
}


def test_hanging_flooding_and_crashing_programs_cost_their_points_not_the_grader(tmp_path, lab_grade):
    folder = tmp_path / "mallory"
    folder.mkdir()
    for name, text in HOSTILE.items():
        (folder / name).write_text(text)
    code, results, junit, out = lab_grade(folder, tmp_path, timeout=600)
    assert code == 1 and results["score"] == 0, out
    assert all(t["status"] == "failed" for t in results["tests"])
    assert max(len(t["output"]) for t in results["tests"]) < 20_000   # outputs are capped
    (crash,) = [t for t in results["tests"] if t["name"] == "udp_server_replies_in_upper_case"]
    assert "I give up" in crash["output"]


def test_a_submission_missing_files_gets_zero_for_their_checks_only(tmp_path, lab_grade, lecture):
    folder = tmp_path / "bob"
    folder.mkdir()
    (folder / "UDPServer.py").write_text((lecture / "UDPServer.py").read_text())
    code, results, _junit, out = lab_grade(folder, tmp_path)
    passed = {t["name"] for t in results["tests"] if t["score"] == t["max_score"]}
    assert passed == {"udp_server_replies_in_upper_case", "udp_server_answers_several_clients",
                      "udp_server_works_with_nc"}, out
    assert all("no " in t["output"] for t in results["tests"] if t["name"] not in passed)


ROBUST_UDP_CLIENT = """from socket import *
import os, sys
serverName = os.environ.get('SERVER_NAME', 'server')
serverPort = int(os.environ.get('SERVER_PORT', 12000))
clientSocket = socket(AF_INET, SOCK_DGRAM)
clientSocket.settimeout(1.0)
message = input('Input lowercase sentence:')
for attempt in range(15):
    clientSocket.sendto(message.encode(), (serverName, serverPort))
    try:
        modifiedMessage, serverAddress = clientSocket.recvfrom(2048)
        break
    except timeout:
        continue
else:
    sys.exit('no reply after 15 tries')
print(modifiedMessage.decode())
"""


# Reads until the server closes (one recv() is not one message), and reports a refused or
# reset connection and a silent server in a sentence. The timeout is set after connect()
# and is long: under the robust level's 30 % loss a request can take many retransmissions.
ROBUST_TCP_CLIENT = """from socket import *
import os, sys
serverName = os.environ.get('SERVER_NAME', 'server')
serverPort = int(os.environ.get('SERVER_PORT', 12000))
clientSocket = socket(AF_INET, SOCK_STREAM)
sentence = input('Input lowercase sentence:')
reply = b''
try:
    clientSocket.connect((serverName, serverPort))
    clientSocket.settimeout(30)
    clientSocket.sendall(sentence.encode())
    while True:
        piece = clientSocket.recv(1024)
        if not piece:
            break
        reply += piece
except ConnectionRefusedError:
    sys.exit('the connection was refused: is the server running?')
except ConnectionResetError:
    sys.exit('the connection was reset before the whole reply came')
except timeout:
    sys.exit('the server did not answer within 30 s: giving up')
print('From Server: ', reply.decode())
"""


def robust_submission(folder: Path, lecture: Path) -> Path:
    """The lecture's programs, with the fixes the robust level asks for."""
    folder.mkdir()
    for program in lecture.glob("*.py"):
        (folder / program.name).write_text(program.read_text())
    (folder / "UDPClient.py").write_text(ROBUST_UDP_CLIENT)
    (folder / "TCPClient.py").write_text(ROBUST_TCP_CLIENT)
    server = folder / "TCPServer.py"
    text = server.read_text()
    server.write_text(text.replace("serverSocket.bind(", "serverSocket.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)\n"
                                                         "serverSocket.bind("))
    return folder


def test_the_robust_level_gives_a_robust_submission_full_marks(tmp_path, lab_grade, lecture):
    code, results, _junit, out = lab_grade(robust_submission(tmp_path / "carol", lecture), tmp_path,
                                           "--level", "robust")
    assert code == 0 and lost(results) == set(), out


STREAM_CHECKS = {"tcp_client_reads_a_reply_in_pieces", "tcp_client_reports_a_reset_connection",
                 "clients_give_up_on_a_silent_server"}


def test_the_lecture_clients_lose_the_stream_fault_checks(tmp_path, lab_grade, lecture):
    """One recv(1024) prints part of a sliced reply, a reset is a traceback, and no timeout
    waits on a silent server until the check gives up; every other client check of the
    lecture's TCP client still passes."""
    folder = tmp_path / "dave"
    folder.mkdir()
    for name in ("TCPClient.py", "UDPClient.py"):
        (folder / name).write_text((lecture / name).read_text())
    code, results, _junit, out = lab_grade(folder, tmp_path, "--level", "robust")
    tests = {t["name"]: t for t in results["tests"]}
    assert code == 1 and STREAM_CHECKS <= lost(results), out
    tcp_client = {name for name in tests if name.startswith("tcp_client_")} - STREAM_CHECKS
    assert tcp_client and not tcp_client & lost(results), out
    sliced = tests["tcp_client_reads_a_reply_in_pieces"]["output"]
    assert "From Server:" in sliced and "From Server:  HELLO FROM THE GRADER" not in sliced, sliced
    assert "ConnectionResetError" in tests["tcp_client_reports_a_reset_connection"]["output"]
    assert "still running" in tests["clients_give_up_on_a_silent_server"]["output"]

"""Our programs and a student's lecture programs work with each other unchanged.

Each direction runs on its own lab: a server that closes first leaves TIME_WAIT on
port 12000, and a TIME_WAIT left by a socket without SO_REUSEADDR (the lecture
server's) blocks the next bind() on that port for a minute, even one with it."""
import time

import pytest

from conftest import run_json


def start_in_background(lab, host, argv) -> int:
    """Start argv on host without waiting; returns its pid there."""
    result = lab.exec(host, ["sh", "-c", 'cd /work; exec "$@" >/tmp/bg.log 2>&1 & echo $!', "sh", *argv])
    return int(result.stdout)


def wait_listening(lab, host, proto, port=12000, timeout=20.0):
    flag = "-ltn" if proto == "tcp" else "-lun"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if str(port) in lab.exec(host, ["ss", "-H", flag, f"sport = :{port}"]).stdout:
            return
        time.sleep(0.1)  # polling a condition with a deadline
    log = lab.exec(host, ["cat", "/tmp/bg.log"]).stdout
    pytest.fail(f"nothing listens on {proto}/{port} on {host}; its output: {log}")


def stop(lab, host, pid):
    lab.exec(host, ["kill", str(pid)])
    # Wait (bounded) until the process is gone, so the port is free for the next test.
    lab.exec(host, ["timeout", "10", "sh", "-c", f"while kill -0 {pid} 2>/dev/null; do sleep 0.05; done"])


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_our_client_against_a_lecture_server(idle_lab, proto):
    script = {"tcp": "TCPServer.py", "udp": "UDPServer.py"}[proto]
    pid = start_in_background(idle_lab, "server", ["python3", script])
    try:
        wait_listening(idle_lab, "server", proto)
        result = run_json(idle_lab, "client1", [f"{proto}-client", "--json", "lecture interop"])
        assert result["error"] is None and result["received"] == "LECTURE INTEROP"
    finally:
        stop(idle_lab, "server", pid)


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_lecture_client_against_our_server(class_lab, proto):
    """The class lab's server runs our uppercase servers on 12000, as a student finds it."""
    script = {"tcp": "TCPClient.py", "udp": "UDPClient.py"}[proto]
    # The lecture client reads its sentence with input(): feed it on stdin.
    result = class_lab.exec("client1", ["sh", "-c", f"echo 'from a student' | python3 /work/{script}"])
    assert result.exit_code == 0, result.stderr
    assert "FROM A STUDENT" in result.stdout

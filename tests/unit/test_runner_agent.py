"""The host agent (lab/runner/agent.py): its line protocol, and the agent script itself run
here as a local process (it needs only Python and lab.programs, as in a host)."""
from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from lab.runner.agent import AGENT, Lines, decode_message
from lab.runner.processes import split_status

ROOT = Path(__file__).resolve().parents[2]


def test_lines_are_whole_across_chunks():
    lines = Lines()
    assert lines.feed(b'{"a": 1}\n{"b"') == [b'{"a": 1}']
    assert lines.feed(b': 2}') == []
    assert lines.feed(b'\n\n{"c": 3}\n') == [b'{"b": 2}', b'{"c": 3}']


def test_decode_message():
    assert decode_message(b'{"hello": 7}') == (None, None, b"", None)
    data = base64.b64encode(b"\x00hi\xff").decode()
    assert decode_message(json.dumps({"id": 3, "fd": 2, "data": data}).encode()) == (3, 2, b"\x00hi\xff", None)
    assert decode_message(b'{"id": 3, "exit": 0}') == (3, None, b"", 0)


class Agent:
    """AGENT as a local process; ``ask`` sends one request and collects its answer."""

    def __init__(self, tmp: Path):
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen([sys.executable, "-u", "-c", AGENT, "0.5"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env, cwd=tmp)
        self.ids = iter(range(1, 1000))
        assert "hello" in json.loads(self.proc.stdout.readline())
        self.lock = threading.Lock()

    def ask(self, op: str, **fields) -> tuple:
        """(stdout, stderr, exit) of one request (requests one at a time)."""
        rid = next(self.ids)
        self.proc.stdin.write((json.dumps({"id": rid, "op": op, **fields}) + "\n").encode())
        self.proc.stdin.flush()
        out, err = b"", b""
        while True:
            got, fd, data, code = decode_message(self.proc.stdout.readline())
            assert got == rid
            if code is not None:
                return out, err, code
            out, err = (out + data, err) if fd == 1 else (out, err + data)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(10)


@pytest.fixture
def agent(tmp_path):
    a = Agent(tmp_path)
    yield a
    a.close()


def step(agent, cmd, timeout=None, env=None, cwd=None):
    out, err, code = agent.ask("step", argv=["sh", "-c", cmd], timeout=timeout, run_id=f"t{os.getpid()}",
                               env=env or {}, cwd=cwd)
    assert code == 0
    stderr, status = split_status(err.decode())
    return out.decode(), stderr, status


def test_a_step_reports_as_step_exec_does(agent, tmp_path):
    out, err, status = step(agent, "echo out; echo err >&2; echo $X; pwd; exit 3", env={"X": "given"},
                            cwd=str(tmp_path))
    assert out == f"out\ngiven\n{tmp_path}\n"
    assert err == "err\n"
    assert status["exit_code"] == 3 and not status["timed_out"] and status["leftovers"] == 0


def test_a_step_over_its_time_is_ended(agent):
    out, _, status = step(agent, "echo started; sleep 30", timeout=0.5)
    assert out == "started\n"
    assert status["timed_out"] and status["exit_code"] != 0


def test_what_a_step_leaves_running_is_ended(agent):
    _, _, status = step(agent, "sleep 30 & echo $! ; true")
    assert status["leftovers"] == 1


def test_kill_reaches_the_steps_group(agent):
    run_id = f"k{os.getpid()}"
    rid = 500
    agent.proc.stdin.write((json.dumps({"id": rid, "op": "step", "argv": ["sh", "-c", "sleep 30"], "timeout": None,
                                        "run_id": run_id, "env": {}}) + "\n").encode())
    agent.proc.stdin.flush()
    pgid_file = Path("/tmp/socketlab") / f"{run_id}.pgid"
    for _ in range(200):
        if pgid_file.exists() and pgid_file.read_text():
            break
        threading.Event().wait(0.02)     # the step writes its group id as it starts
    assert agent.ask("kill", pgid_file=str(pgid_file), sig="TERM")[2] == 0
    err = b""
    while True:
        got, fd, data, code = decode_message(agent.proc.stdout.readline())
        assert got == rid
        if code is not None:
            break
        err += data if fd == 2 else b""
    status = split_status(err.decode())[1]
    assert status["signal"] == "SIGTERM" and not status["timed_out"]


def test_wait_port_answers_when_bound(agent):
    assert agent.ask("wait_port", port=1, udp=False, timeout=0.1)[2] == 1
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert agent.ask("wait_port", port=s.getsockname()[1], udp=False, timeout=5)[2] == 0


def test_a_prelude_runs_in_the_agent_before_its_hello(tmp_path):
    """The reset between two students runs as the next agent's prelude: in the agent's own
    process (so it spares itself), with its arguments, and what it printed in the hello."""
    code = "import os, sys; print('args', sys.argv[1:]); print(os.getpid())"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-u", "-c", AGENT, "0.5", code, "a", "b c"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env=env, cwd=tmp_path)
    try:
        hello = json.loads(proc.stdout.readline())
        assert hello["prelude"] == f"args ['a', 'b c']\n{proc.pid}\n" and hello["hello"] == proc.pid
    finally:
        proc.stdin.close()
        proc.wait(10)
    failing = subprocess.Popen([sys.executable, "-u", "-c", AGENT, "0.5", "raise SystemExit(3)"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=tmp_path)
    try:
        assert "the prelude failed: SystemExit" in json.loads(failing.stdout.readline())["prelude"]
    finally:
        failing.stdin.close()
        failing.wait(10)

"""Loopback integration tests for lab.programs (no Docker).

Every program runs as a real subprocess (`python -m lab.programs.X`) on
127.0.0.1. Servers listen on port 0 and the tests read the real port from
the "listening" line, so nothing waits on a sleep or collides on a port.
"""

import hashlib
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lab.programs import tcp_client, tcp_server, udp_measure

REPO = Path(__file__).resolve().parents[2]
LECTURE = REPO / "tests" / "lecture"
LOCAL = "127.0.0.1"
STARTUP_TIMEOUT = 20  # generous: a slow CI machine starting Python
RUN_TIMEOUT = 60


def _env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("PYTHONUNBUFFERED", None)  # our programs must flush on their own
    env.update(extra)
    return env


class Proc:
    """A background process whose stdout lines are collected by a thread."""

    def __init__(self, argv, env=None, stdin=subprocess.DEVNULL):
        self.popen = subprocess.Popen(argv, cwd=str(REPO), env=env or _env(), text=True,
                                      stdin=stdin, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE)
        self.lines = []
        self._queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.popen.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, predicate, timeout=STARTUP_TIMEOUT):
        """Return the first new stdout line matching predicate."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("no matching line; got %r" % self.lines)
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError("process ended; stdout %r, stderr %r"
                                     % (self.lines, self.popen.stderr.read()))
            self.lines.append(line)
            if predicate(line):
                return line

    def wait_json(self, event, timeout=STARTUP_TIMEOUT):
        line = self.wait_for(lambda l: l.startswith("{") and json.loads(l).get("event") == event,
                             timeout)
        return json.loads(line)

    def finish(self, sig=None, timeout=RUN_TIMEOUT):
        """Optionally signal, wait for exit, drain stdout; return (rc, stderr)."""
        if sig is not None and self.popen.poll() is None:
            self.popen.send_signal(sig)
        rc = self.popen.wait(timeout=timeout)
        while True:
            line = self._queue.get(timeout=timeout)
            if line is None:
                break
            self.lines.append(line)
        return rc, self.popen.stderr.read()

    def json_lines(self, event=None):
        objs = [json.loads(l) for l in self.lines if l.startswith("{")]
        return [o for o in objs if event is None or o.get("event") == event]

    def kill(self):
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


@pytest.fixture
def procs():
    started = []

    def start(argv, **kwargs):
        proc = Proc(argv, **kwargs)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()


def program(name, *args):
    return [sys.executable, "-m", "lab.programs." + name] + [str(a) for a in args]


def lecture(name):
    return [sys.executable, "-u", str(LECTURE / name)]


def start_tcp_server(procs, *args):
    server = procs(program("tcp_server", "--bind", LOCAL, "--port", 0, "--json", *args))
    listening = server.wait_json("listening")
    # Readiness checks match this text, in JSON mode too.
    assert listening["text"].startswith("tcp-server listening on %s:" % LOCAL)
    return server, listening["port"]


def start_udp_server(procs, *args):
    server = procs(program("udp_server", "--bind", LOCAL, "--port", 0, "--json", *args))
    listening = server.wait_json("listening")
    assert listening["text"].startswith("udp-server listening on %s:" % LOCAL)
    return server, listening["port"]


def run(argv, input_text=None, env=None, timeout=RUN_TIMEOUT):
    return subprocess.run(argv, cwd=str(REPO), env=env or _env(), input=input_text, text=True,
                          capture_output=True, timeout=timeout)


def run_json(name, *args):
    """Run a client program; return (exit code, its single JSON line)."""
    done = run(program(name, *args))
    lines = done.stdout.splitlines()
    assert len(lines) == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    return done.returncode, json.loads(lines[0])


def free_port(kind=socket.SOCK_STREAM):
    """A port nobody listens on (closed right away; only used where the
    test needs a closed port, or for the lecture servers' fixed port)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((LOCAL, 0))
        return sock.getsockname()[1]


def connect(port):
    return socket.create_connection((LOCAL, port), timeout=RUN_TIMEOUT)


def recv_all(sock):
    chunks = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


# --- uppercase exchanges --------------------------------------------------------

def test_tcp_uppercase_human_output(procs):
    server, port = start_tcp_server(procs)
    done = run(program("tcp_client", "hello world", "--host", LOCAL, "--port", port))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "From Server: HELLO WORLD\n"


def test_tcp_uppercase_json_matches_server_log(procs):
    server, port = start_tcp_server(procs)
    rc, result = run_json("tcp_client", "hello", "--host", LOCAL, "--port", port, "--json")
    assert rc == 0
    assert result["program"] == "tcp-client"
    assert (result["sent"], result["received"], result["error"]) == ("hello", "HELLO", None)
    assert result["remote"] == "%s:%d" % (LOCAL, port)
    assert result["local_address"] == LOCAL and result["local_port"] not in (0, port)
    assert result["connect_ms"] >= 0 and result["rtt_ms"] >= 0
    record = server.wait_json("connection")
    # The server saw the client's ephemeral port: both ends agree.
    assert record["peer_port"] == result["local_port"]
    assert (record["request"], record["reply"], record["kind"]) == ("hello", "HELLO", "lecture")
    assert record["bytes_received"] == record["bytes_sent"] == 5
    assert record["started"] <= record["finished"]


def test_tcp_client_prompts_like_the_lecture(procs):
    server, port = start_tcp_server(procs)
    done = run(program("tcp_client", "--host", LOCAL, "--port", port), input_text="typed text\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Input lowercase sentence: From Server: TYPED TEXT\n"


def test_tcp_client_without_input_reports_eof(procs):
    server, port = start_tcp_server(procs)
    done = run(program("tcp_client", "--host", LOCAL, "--port", port, "--json"), input_text="")
    assert done.returncode == 1
    assert json.loads(done.stdout)["error"] == "EOF"
    assert "Input lowercase sentence" in done.stderr  # the prompt stays off the JSON stdout


def test_udp_uppercase_and_verbose_log(procs):
    server, port = start_udp_server(procs, "--verbose")
    rc, result = run_json("udp_client", "hello udp", "--host", LOCAL, "--port", port, "--json")
    assert rc == 0
    assert (result["received"], result["replies"], result["error"]) == \
        ("HELLO UDP", ["HELLO UDP"], None)
    assert result["reply_from"] == "%s:%d" % (LOCAL, port)
    record = server.wait_json("datagram")
    assert record["peer"] == "%s:%d" % (LOCAL, result["local_port"])
    assert (record["request"], record["reply"]) == ("hello udp", "HELLO UDP")


def test_udp_server_is_quiet_without_verbose(procs):
    server, port = start_udp_server(procs)
    for text in ("one", "two"):
        rc, _ = run_json("udp_client", text, "--host", LOCAL, "--port", port, "--json")
        assert rc == 0
    rc, _ = server.finish(signal.SIGTERM)
    assert rc == 0
    assert [o["event"] for o in server.json_lines()] == ["listening", "stopped"]
    assert server.json_lines("stopped")[0]["received"] == 2


def test_udp_repeat_keeps_message_boundaries(procs):
    server, port = start_udp_server(procs)
    rc, result = run_json("udp_client", "abc", "--host", LOCAL, "--port", port, "--repeat", 4,
                          "--json")
    assert rc == 0
    assert result["replies"] == ["ABC"] * 4
    assert result["sent_bytes"] == result["received_bytes"] == 12


def test_lecture_server_reads_back_to_back_sends_as_one_stream(procs):
    """Three send()s queued before the server's single recv(1024) come back
    as one reply: TCP has no message boundaries."""
    server, port = start_tcp_server(procs)
    blocker = connect(port)          # the iterative server now waits in recv() on it
    victim = connect(port)
    for _ in range(3):
        victim.sendall(b"hello")     # on loopback this is queued at the server on return
    blocker.sendall(b"x")
    assert recv_all(blocker) == b"X"
    assert recv_all(victim) == b"HELLOHELLOHELLO"
    blocker.close()
    victim.close()


def test_tcp_client_repeat_reports_what_came_back(procs):
    server, port = start_tcp_server(procs)
    rc, result = run_json("tcp_client", "hello", "--host", LOCAL, "--port", port, "--repeat", 3,
                          "--json")
    # The server's one recv() got 1..3 of the sends, merged. Closing with
    # unread data makes its kernel answer with a RST, which can fail a later
    # send or the read: the reply that came must be reported all the same.
    assert re.fullmatch(r"(HELLO){1,3}", result["received"]), result
    assert result["sent"] == "hello" * (result["sent_bytes"] // 5)
    assert result["received_bytes"] <= result["sent_bytes"] <= 15
    record = server.wait_json("connection")
    assert record["bytes_received"] == result["received_bytes"]
    if result["sent_bytes"] == result["received_bytes"] == 15:
        assert (rc, result["error"]) == (0, None)
    else:
        assert (rc, result["error"]) in ((0, None), (1, "ECONNRESET"), (1, "EPIPE"))


# --- iterative versus concurrent -------------------------------------------------

def _serve_two_clients(procs, mode, service_time):
    server, port = start_tcp_server(procs, "--mode", mode, "--service-time", service_time)
    first, second = connect(port), connect(port)
    t_send = time.monotonic()
    first.sendall(b"first")
    second.sendall(b"second")
    replies = {}
    for name, sock in (("first", first), ("second", second)):
        replies[name] = (recv_all(sock), time.monotonic() - t_send)
        sock.close()
    records = sorted((server.wait_json("connection"), server.wait_json("connection")),
                     key=lambda r: r["connection"])
    return replies, records


def test_iterative_server_serialises_service_time(procs):
    service = 0.5
    replies, (one, two) = _serve_two_clients(procs, "iterative", service)
    assert replies["first"][0] == b"FIRST" and replies["second"][0] == b"SECOND"
    # The second client is only accepted once the first one is finished...
    assert two["started"] >= one["finished"]
    # ...so its reply needs at least two service times (sleep is a lower bound).
    assert replies["second"][1] >= 2 * service * 0.99
    # It waited in the kernel's accept queue (TCP_INFO) for about one service time.
    assert two["wait_ms"] is not None and two["wait_ms"] >= one["wait_ms"]


def test_concurrent_server_overlaps_service_time(procs):
    replies, (one, two) = _serve_two_clients(procs, "concurrent", 1.0)
    assert replies["first"][0] == b"FIRST" and replies["second"][0] == b"SECOND"
    # Both were being served at the same time.
    assert max(one["started"], two["started"]) < min(one["finished"], two["finished"])


def test_concurrent_server_answers_while_another_client_is_idle(procs):
    server, port = start_tcp_server(procs, "--mode", "concurrent")
    idle = connect(port)  # connected, never sends: blocks an iterative server forever
    rc, result = run_json("tcp_client", "busy", "--host", LOCAL, "--port", port, "--json")
    assert (rc, result["received"]) == (0, "BUSY")
    idle.sendall(b"late")
    assert recv_all(idle) == b"LATE"
    idle.close()


def test_iterative_server_answers_in_accept_order(procs):
    server, port = start_tcp_server(procs, "--mode", "iterative")
    idle = connect(port)
    client = procs(program("tcp_client", "queued", "--host", LOCAL, "--port", port, "--json"))
    # Nothing can be logged while the server is stuck in recv() on the idle client.
    idle.sendall(b"first")
    assert recv_all(idle) == b"FIRST"
    idle.close()
    rc, _ = client.finish()
    assert rc == 0 and json.loads(client.lines[0])["received"] == "QUEUED"
    one, two = server.wait_json("connection"), server.wait_json("connection")
    assert (one["request"], two["request"]) == ("first", "queued")
    assert two["started"] >= one["finished"]


def test_max_connections_exits_by_itself(procs):
    server, port = start_tcp_server(procs, "--max-connections", 2, "--mode", "concurrent")
    for text in ("a", "b"):
        rc, _ = run_json("tcp_client", text, "--host", LOCAL, "--port", port, "--json")
        assert rc == 0
    rc, stderr = server.finish()
    assert rc == 0, stderr
    stopped = server.json_lines("stopped")[0]
    assert (stopped["reason"], stopped["accepted"]) == ("max-connections", 2)
    assert len(server.json_lines("connection")) == 2


# --- errors as results --------------------------------------------------------------

@pytest.mark.parametrize("first_flags, second_flags", [
    ([], []),                                   # SO_REUSEADDR on both (the default)
    (["--no-reuseaddr"], ["--no-reuseaddr"]),
    ([], ["--no-reuseaddr"]),
])
def test_tcp_server_port_in_use_is_a_json_error(procs, first_flags, second_flags):
    # Linux refuses a second listening socket on a port even with SO_REUSEADDR.
    first, port = start_tcp_server(procs, *first_flags)
    done = run(program("tcp_server", "--bind", LOCAL, "--port", port, *second_flags))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    error = json.loads(done.stdout)
    assert error["program"] == "tcp-server"
    assert error["error"] == "EADDRINUSE" and error["port"] == port and error["message"]


def test_udp_server_port_in_use_is_a_json_error(procs):
    first, port = start_udp_server(procs)
    done = run(program("udp_server", "--bind", LOCAL, "--port", port))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert json.loads(done.stdout)["error"] == "EADDRINUSE"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux SO_REUSEADDR semantics")
def test_udp_servers_share_a_port_with_reuseaddr(procs):
    first, port = start_udp_server(procs, "--reuseaddr")
    second = procs(program("udp_server", "--bind", LOCAL, "--port", port, "--json",
                           "--reuseaddr"))
    assert second.wait_json("listening")["port"] == port


@pytest.mark.parametrize("name", ["tcp_server", "udp_server"])
def test_bind_to_foreign_address_is_eaddrnotavail(name):
    done = run(program(name, "--bind", "192.0.2.1", "--port", 0))  # TEST-NET-1, not ours
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert json.loads(done.stdout)["error"] == "EADDRNOTAVAIL"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may bind privileged ports")
def test_privileged_port_is_eacces():
    done = run(program("tcp_server", "--bind", LOCAL, "--port", 1))
    assert done.returncode == 1
    assert json.loads(done.stdout)["error"] == "EACCES"


def test_tcp_client_connection_refused():
    rc, result = run_json("tcp_client", "hi", "--host", LOCAL, "--port", free_port(), "--json")
    assert rc == 1
    assert result["error"] == "ECONNREFUSED" and result["received"] is None
    assert result["message"]
    assert result["connect_ms"] is not None  # how long the refused connect() took


def test_tcp_client_refused_human_output_goes_to_stderr():
    done = run(program("tcp_client", "hi", "--host", LOCAL, "--port", free_port()))
    assert done.returncode == 1 and done.stdout == ""
    assert "ECONNREFUSED" in done.stderr and "Traceback" not in done.stderr


def test_udp_client_connected_socket_sees_port_unreachable():
    port = free_port(socket.SOCK_DGRAM)
    rc, result = run_json("udp_client", "hi", "--host", LOCAL, "--port", port, "--connect",
                          "--json")
    assert (rc, result["error"]) == (1, "ECONNREFUSED")


def test_udp_client_unconnected_socket_only_times_out():
    port = free_port(socket.SOCK_DGRAM)
    rc, result = run_json("udp_client", "hi", "--host", LOCAL, "--port", port, "--timeout", 0.5,
                          "--json")
    assert (rc, result["error"], result["replies"]) == (1, "TIMEOUT", [])


def test_unknown_host_is_an_eai_error():
    rc, result = run_json("tcp_client", "hi", "--host", "no-such-host.invalid", "--json")
    assert rc == 1 and result["error"].startswith("EAI_")


@pytest.mark.parametrize("name", ["tcp_server", "udp_server"])
@pytest.mark.parametrize("sig, expected", [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_servers_stop_cleanly_on_signals(procs, name, sig, expected):
    server = procs(program(name, "--bind", LOCAL, "--port", 0))
    line = server.wait_for(lambda l: "listening" in l)
    assert line.startswith(name.replace("_", "-") + " listening on %s:" % LOCAL)
    rc, stderr = server.finish(sig)
    assert rc == expected
    assert "Traceback" not in stderr
    assert "stopped" in server.lines[-1]


def test_iterative_server_stops_while_serving(procs):
    server, port = start_tcp_server(procs)
    idle = connect(port)
    try:
        # Wait until the idle connection was accepted (the server is in recv).
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not _accept_queue_empty(port) and time.monotonic() < deadline:
            time.sleep(0.01)
        rc, stderr = server.finish(signal.SIGTERM)
    finally:
        idle.close()
    assert rc == 0 and "Traceback" not in stderr
    assert server.json_lines("stopped")[0]["reason"] == "SIGTERM"


def test_concurrent_server_stops_with_clients_in_service(procs):
    server, port = start_tcp_server(procs, "--mode", "concurrent", "--service-time", 30)
    clients = [connect(port) for _ in range(3)]
    for sock in clients:
        sock.sendall(b"pending")
    rc, stderr = server.finish(signal.SIGTERM)
    for sock in clients:
        sock.close()
    assert rc == 0
    assert "Traceback" not in stderr and "Fatal" not in stderr
    assert server.json_lines("stopped")[0]["accepted"] <= 3


def _accept_queue_empty(port):
    """True when /proc shows no connection waiting in the listen queue."""
    try:
        rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return True
    for row in rows:
        fields = row.split()
        local, state, queues = fields[1], fields[3], fields[4]
        if state == "0A" and int(local.split(":")[1], 16) == port:
            return int(queues.split(":")[1], 16) == 0
    return True


# --- measurements -------------------------------------------------------------------

def test_udp_measure_loopback_delivers_everything(procs):
    server, port = start_udp_server(procs)
    rc, result = run_json("udp_measure", "--host", LOCAL, "--port", port, "--count", 2000,
                          "--rate", 4000, "--wait", 5)
    assert rc == 0, result
    assert result["program"] == "udp-measure" and result["error"] is None
    assert (result["sent"], result["received"], result["lost"]) == (2000, 2000, 0)
    assert (result["duplicated"], result["corrupted"], result["unmatched"]) == (0, 0, 0)
    assert result["delivery"] == 1.0
    rtt = result["rtt_ms"]
    assert 0 < rtt["min"] <= rtt["p50"] <= rtt["p99"] <= rtt["max"]
    assert rtt["min"] <= rtt["avg"] <= rtt["max"]
    # Paced at 4000/s: 2000 datagrams cannot be sent in much less than 0.5 s.
    assert result["send_duration_s"] >= 0.49
    assert result["duration_s"] >= result["send_duration_s"]


def test_udp_measure_timeline_comes_before_the_result(procs):
    """--timeline adds one JSON line before the result, which stays the last one
    (the runner's result); a datagram the server never answered is null there."""
    count = 50
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOCAL, 0))
    sock.settimeout(RUN_TIMEOUT)

    def serve():  # an echo that ignores every tenth datagram
        for _ in range(count):
            data, peer = sock.recvfrom(65535)
            if udp_measure.parse_reply(data)[0] % 10 != 4:
                sock.sendto(data.upper(), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        done = run(program("udp_measure", "--host", LOCAL, "--port", sock.getsockname()[1],
                           "--count", count, "--rate", 500, "--wait", 0.5, "--timeline"))
    finally:
        thread.join(RUN_TIMEOUT)
        sock.close()
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and len(lines) == 2, (done.stdout, done.stderr)
    timeline, result = json.loads(lines[0])["timeline"], json.loads(lines[1])
    assert result["program"] == "udp-measure" and result["lost"] == 5
    send, rtt = timeline["send_ms"], timeline["rtt_ms"]
    assert len(send) == len(rtt) == count
    assert send[0] == 0.0 and send == sorted(send)
    assert send[-1] >= (count - 1) / 500 * 1000 - 1   # paced at 500/s: 2 ms apart
    assert [i for i, r in enumerate(rtt) if r is None] == [4, 14, 24, 34, 44]
    assert all(r > 0 for r in rtt if r is not None)
    assert min(r for r in rtt if r is not None) == result["rtt_ms"]["min"]


def test_udp_measure_against_misbehaving_echo():
    """An in-test echo server that duplicates, corrupts and reorders on
    purpose: the counts must come out exactly."""
    count = 200
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOCAL, 0))
    sock.settimeout(RUN_TIMEOUT)
    port = sock.getsockname()[1]

    def serve():
        held = None
        for _ in range(count):
            data, peer = sock.recvfrom(65535)
            seq = udp_measure.parse_reply(data)[0]
            reply = data.upper()
            if seq % 50 == 10:
                held = (reply, peer)  # answered after the next one: reordered
                continue
            if seq % 20 == 3:
                reply = reply[:-1] + b"!"  # corrupted
            sock.sendto(reply, peer)
            if seq % 25 == 7:
                sock.sendto(reply, peer)  # duplicated
            if held and seq % 50 == 11:
                sock.sendto(*held)
                held = None
            if seq == 0:
                sock.sendto(b"garbage", peer)  # unreadable (sent early: the run ends
                                               # as soon as every seq came back)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        rc, result = run_json("udp_measure", "--host", LOCAL, "--port", port, "--count", count,
                              "--rate", 2000, "--wait", 1)
    finally:
        thread.join(RUN_TIMEOUT)
        sock.close()
    assert rc == 0
    seqs = range(count)
    assert result["received"] == count and result["lost"] == 0
    assert result["duplicated"] == sum(1 for s in seqs if s % 25 == 7)
    assert result["reordered"] == sum(1 for s in seqs if s % 50 == 10)
    assert result["unmatched"] == 1
    assert result["corrupted"] == sum(1 for s in seqs if s % 20 == 3) + 1


def test_udp_measure_connected_to_closed_port_is_refused():
    rc, result = run_json("udp_measure", "--host", LOCAL, "--port", free_port(socket.SOCK_DGRAM),
                          "--count", 50, "--rate", 1000, "--connect")
    assert rc == 1
    assert result["error"] == "ECONNREFUSED" and result["received"] == 0
    assert 1 <= result["sent"] <= 50


def test_tcp_measure_10mb_hash_matches(procs):
    server, port = start_tcp_server(procs)
    nbytes = 10 * 1000 * 1000
    rc, result = run_json("tcp_measure", "--host", LOCAL, "--port", port, "--bytes", nbytes)
    assert rc == 0, result
    assert result["error"] is None and result["sha256_match"] is True
    assert result["bytes_acknowledged"] == result["bytes_sent"] == nbytes
    assert result["sha256_sent"] == result["sha256_received"]
    assert result["goodput_mbps"] > 0 and result["transfer_s"] > 0 and result["connect_ms"] >= 0
    record = server.wait_json("connection")
    assert record["kind"] == "stream" and record["stream_bytes"] == nbytes
    assert record["sha256"] == result["sha256_sent"]


def test_tcp_measure_zero_bytes(procs):
    server, port = start_tcp_server(procs)
    rc, result = run_json("tcp_measure", "--host", LOCAL, "--port", port, "--bytes", 0)
    assert rc == 0 and result["sha256_match"] is True
    assert result["sha256_sent"] == hashlib.sha256(b"").hexdigest()


def test_tcp_measure_connection_refused():
    rc, result = run_json("tcp_measure", "--host", LOCAL, "--port", free_port(), "--bytes", 1000)
    assert (rc, result["error"], result["sha256_match"]) == (1, "ECONNREFUSED", False)
    assert result["connect_ms"] is not None


def test_stream_header_split_across_reads_is_reassembled():
    """read_stream() keeps reading when the header line is not complete in
    the first recv (a header cut by a small MSS)."""
    left, right = socket.socketpair()
    try:
        left.sendall(b"0\nabcdefghij")
        rec = {"bytes_received": 0, "error": None}
        reply = tcp_server.read_stream(right, b"SOCKETLAB-STREAM 1", rec)
    finally:
        left.close()
        right.close()
    assert json.loads(reply) == {"bytes": 10,
                                 "sha256": hashlib.sha256(b"abcdefghij").hexdigest()}
    assert rec["error"] is None


def test_stream_cut_short_reports_what_arrived():
    left, right = socket.socketpair()
    left.sendall(b"abc")
    left.close()
    rec = {"bytes_received": 0, "error": None}
    reply = tcp_server.read_stream(right, b"SOCKETLAB-STREAM 10\nxy", rec)
    right.close()
    assert json.loads(reply)["bytes"] == 5
    assert rec["error"] == "EOF"


def test_bad_stream_header_gets_a_json_error(procs):
    server, port = start_tcp_server(procs)
    sock = connect(port)
    sock.sendall(b"SOCKETLAB-STREAM lots\n")
    assert json.loads(recv_all(sock))["error"] == "BAD_HEADER"
    sock.close()
    assert server.wait_json("connection")["error"] == "BAD_HEADER"


def test_read_reply_keeps_partial_data_on_timeout():
    left, right = socket.socketpair()
    try:
        right.settimeout(0.2)
        left.sendall(b"HEL")
        data, exc = tcp_client.read_reply(right, expected=5, until_eof=False)
        assert data == b"HEL" and isinstance(exc, socket.timeout)
        left.sendall(b"LO")
        data, exc = tcp_client.read_reply(right, expected=2, until_eof=False)
        assert (data, exc) == (b"LO", None)  # stopped at the expected length, no EOF needed
    finally:
        left.close()
        right.close()


# --- interoperability with the lecture programs -------------------------------------

def _lecture_env(port):
    return _env(SERVER_NAME=LOCAL, SERVER_PORT=str(port))


def test_lecture_tcp_client_against_our_server(procs):
    server, port = start_tcp_server(procs)
    done = run(lecture("TCPClient.py"), input_text="hello lecture\n", env=_lecture_env(port))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Input lowercase sentence:From Server:  HELLO LECTURE\n"


def test_lecture_udp_client_against_our_server(procs):
    server, port = start_udp_server(procs)
    done = run(lecture("UDPClient.py"), input_text="hello udp\n", env=_lecture_env(port))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Input lowercase sentence:HELLO UDP\n"


def _start_lecture_server(procs, name, kind):
    port = free_port(kind)
    server = procs(lecture(name), env=_lecture_env(port))
    server.wait_for(lambda l: l == "The server is ready to receive")
    return server, port


def test_our_clients_against_lecture_tcp_server(procs):
    server, port = _start_lecture_server(procs, "TCPServer.py", socket.SOCK_STREAM)
    rc, result = run_json("tcp_client", "interop", "--host", LOCAL, "--port", port, "--json")
    assert (rc, result["received"]) == (0, "INTEROP")
    # tcp-measure needs our server: against the lecture server it must fail
    # loudly, never report a match.
    rc, result = run_json("tcp_measure", "--host", LOCAL, "--port", port, "--bytes", 1000000)
    assert rc == 1 and result["error"] is not None and result["sha256_match"] is False


def test_udp_measure_against_lecture_udp_server(procs):
    server, port = _start_lecture_server(procs, "UDPServer.py", socket.SOCK_DGRAM)
    rc, result = run_json("udp_measure", "--host", LOCAL, "--port", port, "--count", 300,
                          "--rate", 2000, "--wait", 5)
    assert rc == 0
    assert result["delivery"] == 1.0 and result["corrupted"] == 0
    rc, result = run_json("udp_client", "interop", "--host", LOCAL, "--port", port, "--json")
    assert (rc, result["received"]) == (0, "INTEROP")

"""The checks of `lab grade`, in the order they run.  Each docstring is one sentence a
student reads next to their score.  See harness.py for the lab they run on.

Replies are judged case-insensitively everywhere but in the two "in upper case" checks.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from ..programs.shared.topology import DEFAULT_PORT
from .harness import (LINE, Failed, Grading, _received, _tail, check, expect_replies, icmp_errors)

TCPS, UDPS, TCPC, UDPC = "TCPServer.py", "UDPServer.py", "TCPClient.py", "UDPClient.py"
NC_REPLY = "REPLY FROM NC"
LOSS = "30%"
DELAY = "200ms"


def _is(text: str):
    return lambda host, r: _received(r) == text


def _same_words(text: str):
    return lambda host, r: (_received(r) or "").lower() == text.lower()


def _prints(text: str):
    return lambda host, r: text.lower() in r.stdout.lower()


# -- default level: the student's servers with our clients and nc --------------------------

@check(3, needs=[TCPS])
def tcp_server_replies_in_upper_case(g: Grading):
    """A line sent over TCP through the router comes back in upper case."""
    g.student_server(TCPS)
    return expect_replies(g.our_client("tcp", ["client1"]), _is(LINE.upper()),
                          f"tcp-client sends {LINE!r}, expects {LINE.upper()!r}")


@check(3, needs=[UDPS])
def udp_server_replies_in_upper_case(g: Grading):
    """A datagram sent through the router comes back in upper case."""
    g.student_server(UDPS)
    return expect_replies(g.our_client("udp", ["client1"]), _is(LINE.upper()),
                          f"udp-client sends {LINE!r}, expects {LINE.upper()!r}")


def _several(g: Grading, kind: str, file: str, hosts):
    g.student_server(file)
    results = g.lab.run_many(hosts, lambda host: f"{kind}-client --json --host student --timeout 15 "
                                                 f"{icmp_errors(kind)}'hello from {host}'", timeout=30)
    return expect_replies(results, lambda host, r: (_received(r) or "").lower() == f"hello from {host}",
                          f"{len(hosts)} clients at once each got their own line back")


@check(2, needs=[TCPS])
def tcp_server_answers_several_clients(g: Grading):
    """Three clients connecting at the same moment each get their own line back (served at once or queued)."""
    return _several(g, "tcp", TCPS, g.lab.clients[:3])


@check(2, needs=[UDPS])
def udp_server_answers_several_clients(g: Grading):
    """Three clients sending at the same moment each get their own datagram back."""
    return _several(g, "udp", UDPS, g.lab.clients[:3])


@check(1, needs=[TCPS])
def tcp_server_works_with_nc(g: Grading):
    """The TCP server answers `nc`, a client it was not written with."""
    g.student_server(TCPS)
    r = g.lab.run("client1", f"printf 'hello via nc\\n' | nc -N -w 5 student {DEFAULT_PORT}", timeout=15)
    if "hello via nc" not in r.stdout.lower():
        raise Failed(f"nc got {_tail(r.stdout) or 'nothing'!r}")
    return f"nc got {r.stdout.strip()!r}"


@check(1, needs=[UDPS])
def udp_server_works_with_nc(g: Grading):
    """The UDP server answers a datagram from `nc -u`."""
    g.student_server(UDPS)
    # nc -u stays 2 s after its reply (-w 2: it cannot know none follows); the check only
    # asks whether the reply is in what it printed, so it is ended once the reply is there.
    r = g.lab.run("client1", f"printf 'hello via nc' | nc -u -w 2 student {DEFAULT_PORT}", timeout=15,
                  until="hello via nc")
    if "hello via nc" not in r.stdout.lower():
        raise Failed(f"nc -u got {_tail(r.stdout) or 'nothing'!r}")
    return f"nc -u got {r.stdout.strip()!r}"


# -- default level: the student's clients with our servers and nc --------------------------

@check(1, needs=[TCPC])
def tcp_client_reports_a_refused_connection(g: Grading):
    """With no server running, the TCP client ends at once and says the connection was refused."""
    (r,) = g.student_client(TCPC, ["client1"], timeout=10).values()
    text = r.stdout + r.stderr
    if r.timed_out:
        raise Failed(f"it was still running after 10 s:\n{_tail(text)}")
    if "refused" not in text.lower() and "ECONNREFUSED" not in text:
        raise Failed(f"it ended (exit {r.exit_code}) without saying the connection was refused:\n{_tail(text)}")
    return f"it said: {_tail(text, 300)}"


def _with_lab_server(g: Grading, cmd: str, file: str, udp: bool, hosts=None, timeout: float = 10):
    server = g.lab_server(cmd, udp=udp)
    try:
        results = g.student_client(file, hosts or ["client1"], timeout=timeout)
    finally:
        server.stop()
    return expect_replies(results, _prints(LINE.upper()),
                          f"{file} printed {LINE.upper()!r} from the lab's server")


@check(2, needs=[TCPC])
def tcp_client_gets_the_reply(g: Grading):
    """The TCP client sends its line to the lab's tcp-server and prints the upper-case reply."""
    return _with_lab_server(g, "tcp-server --mode concurrent", TCPC, udp=False)


@check(2, needs=[UDPC])
def udp_client_gets_the_reply(g: Grading):
    """The UDP client sends its line to the lab's udp-server and prints the upper-case reply."""
    return _with_lab_server(g, "udp-server", UDPC, udp=True)


def _with_nc(g: Grading, file: str, udp: bool):
    # -N: over TCP nc closes its side once its reply is sent, as a server does, so a client
    # that reads until the server closes (what the robust level asks for) ends too.
    flags = "-u -l" if udp else "-N -l"
    nc = g.lab_server(f"printf '{NC_REPLY}\\n' | nc {flags} {DEFAULT_PORT}", udp=udp)
    try:
        (r,) = g.student_client(file, ["client1"]).values()
    finally:
        heard = nc.stop()
    if NC_REPLY.lower() not in r.stdout.lower():
        raise Failed(f"{file} did not print nc's reply {NC_REPLY!r}:\n{_tail(r.stdout + r.stderr)}")
    if LINE not in heard.stdout:
        raise Failed(f"nc did not receive {LINE!r} (it got {_tail(heard.stdout)!r})")
    return f"nc got {LINE!r}, {file} printed {NC_REPLY!r}"


@check(1, needs=[TCPC])
def tcp_client_works_with_nc(g: Grading):
    """The TCP client talks to `nc -N -l` as its server: nc gets the line, the client prints nc's answer."""
    return _with_nc(g, TCPC, udp=False)


@check(1, needs=[UDPC])
def udp_client_works_with_nc(g: Grading):
    """The UDP client talks to `nc -u -l` as its server: nc gets the line, the client prints nc's answer."""
    return _with_nc(g, UDPC, udp=True)


# -- robust level --------------------------------------------------------------------------

def _udp_client_under_loss(g: Grading, link: str):
    with g.lab.impair(link, loss=LOSS):
        return _with_lab_server(g, "udp-server", UDPC, udp=True, hosts=g.lab.clients, timeout=20)


@check(2, needs=[UDPC], level="robust")
def udp_client_survives_uplink_loss(g: Grading):
    """With 30 % of the datagrams to the server lost, every one of ten runs of the UDP client still gets its reply (it must time out and retry)."""
    return _udp_client_under_loss(g, "clients -> servers")


@check(2, needs=[UDPC], level="robust")
def udp_client_survives_downlink_loss(g: Grading):
    """With 30 % of the replies lost, every one of ten runs of the UDP client still gets its reply."""
    return _udp_client_under_loss(g, "servers -> clients")


@check(2, needs=[UDPC], level="robust")
def udp_client_survives_loss_both_ways(g: Grading):
    """With 30 % loss in both directions, every one of ten runs of the UDP client still gets its reply."""
    return _udp_client_under_loss(g, "clients <-> servers")


@check(1, needs=[TCPC], level="robust")
def tcp_client_under_loss(g: Grading):
    """With 30 % loss both ways, ten runs of the TCP client all get their reply (TCP retransmits)."""
    with g.lab.impair("clients <-> servers", loss=LOSS):
        return _with_lab_server(g, "tcp-server --mode concurrent", TCPC, udp=False, hosts=g.lab.clients,
                                timeout=60)


@check(1, needs=[TCPS], level="robust")
def tcp_server_under_loss(g: Grading):
    """With 30 % loss both ways, the TCP server answers ten clients correctly."""
    g.student_server(TCPS)
    # The lecture's server is iterative with listen(1): under this loss the clients queue
    # behind each other and TCP backs off (retransmissions 1, 2, 4, 8 ... s apart), so a
    # correct server can leave a client waiting past 40 s (3 of 30 did so, measured);
    # 100 s left none of 30 waiting. The check is about correctness, not speed.
    with g.lab.impair("clients <-> servers", loss=LOSS):
        results = g.our_client("tcp", g.lab.clients, timeout=130, extra="--timeout 100")
    return expect_replies(results, _same_words(LINE), "ten clients got their line back")


@check(1, needs=[UDPC], level="robust")
def udp_client_under_delay(g: Grading):
    """With 200 ms delay each way, the UDP client waits long enough for its reply."""
    with g.lab.impair("clients <-> servers", delay=DELAY):
        return _with_lab_server(g, "udp-server", UDPC, udp=True, timeout=20)


@check(1, needs=[TCPC], level="robust")
def tcp_client_under_delay(g: Grading):
    """With 200 ms delay each way, the TCP client still gets its reply."""
    with g.lab.impair("clients <-> servers", delay=DELAY):
        return _with_lab_server(g, "tcp-server --mode concurrent", TCPC, udp=False, timeout=20)


@check(2, needs=[TCPS], level="robust")
def tcp_server_answers_ten_clients(g: Grading):
    """Ten clients connecting at the same moment each get their own line back."""
    return _several(g, "tcp", TCPS, g.lab.clients)


@check(1, needs=[UDPS], level="robust")
def udp_server_answers_ten_clients(g: Grading):
    """Ten clients sending at the same moment each get their own datagram back."""
    return _several(g, "udp", UDPS, g.lab.clients)


@check(2, needs=[TCPS], level="robust")
def tcp_server_restarts_during_time_wait(g: Grading):
    """Started again right after serving clients, the TCP server can bind its port although its old connections wait in TIME_WAIT (SO_REUSEADDR)."""
    g.student_server(TCPS)
    g.our_client("tcp", ["client1"])      # at least one connection it closed: TIME_WAIT on its side
    waiting = g.lab.run("student", f"ss -Htan state time-wait sport = :{DEFAULT_PORT}").stdout.strip()
    if not waiting:
        raise Failed("no connection of the first server was in TIME_WAIT: nothing to check")
    g.restart_student_server(TCPS)
    return expect_replies(g.our_client("tcp", ["client1"]), _same_words(LINE),
                          f"restarted with {len(waiting.splitlines())} connection(s) in TIME_WAIT, it answered")


# -- robust level: stream faults at the router (docs/stream-faults.md) ----------------------

SLICE = 2               # bytes per piece of the reply
SLICE_GAP = "100ms"     # between pieces: a reply of 22 bytes takes over a second to arrive whole
SILENT_TIMEOUT = 45.0   # how long a client may wait on a silent server before it must give up
SILENT_UDP_SERVER = ("python3 -c \"import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                     f"s.bind(('', {DEFAULT_PORT}));\nwhile True: s.recvfrom(2048)\"")


# What an uncaught exception prints: Python's traceback, Java's stack trace.
TRACEBACKS = ("Traceback (most recent call last)", "Exception in thread ")


def _no_traceback(file: str, r, what: str) -> str:
    text = r.stdout + r.stderr
    if r.timed_out:
        raise Failed(f"{file} was still running after {what}:\n{_tail(text)}")
    if any(marker in text for marker in TRACEBACKS):
        raise Failed(f"{file} ended (exit {r.exit_code}) with a traceback instead of a message:\n{_tail(text)}")
    return text


@check(2, needs=[TCPC], level="robust")
def tcp_client_reads_a_reply_in_pieces(g: Grading):
    """With the reply arriving in 2-byte pieces 100 ms apart, the TCP client still prints the whole reply (one recv() is not one message: read until the server closes)."""
    with g.lab.impair("servers -> clients", segment=SLICE, gap=SLICE_GAP):
        return _with_lab_server(g, "tcp-server --mode concurrent", TCPC, udp=False, timeout=20)


@check(1, needs=[TCPC], level="robust")
def tcp_client_reports_a_reset_connection(g: Grading):
    """When the router resets the connection after the client's first byte, the TCP client ends saying the connection was reset, not with a traceback."""
    server = g.lab_server("tcp-server --mode concurrent")
    try:
        with g.lab.impair("clients -> servers", reset_after="1B"):
            (r,) = g.student_client(TCPC, ["client1"], timeout=15).values()
    finally:
        server.stop()
    text = _no_traceback(TCPC, r, "15 s")
    if "reset" not in text.lower() and "ECONNRESET" not in text:
        raise Failed(f"{TCPC} ended (exit {r.exit_code}) without saying the connection was reset:\n{_tail(text)}")
    return f"it said: {_tail(text, 300)}"


@check(2, needs=[TCPC, UDPC], level="robust")
def clients_give_up_on_a_silent_server(g: Grading):
    """When the server never answers (a TCP connection the router black-holes after its first byte, a UDP server that reads and never replies), both clients end within 45 s with a message, not a traceback."""
    tcp = g.lab_server("tcp-server --mode concurrent")
    udp = g.lab_server(SILENT_UDP_SERVER, udp=True)
    try:
        with g.lab.impair("clients -> servers", blackhole_after="1B"), ThreadPoolExecutor(2) as pool:
            runs = {file: pool.submit(g.student_client, file, [host], timeout=SILENT_TIMEOUT)
                    for file, host in ((TCPC, "client1"), (UDPC, "client2"))}
            results = {file: next(iter(run.result().values())) for file, run in runs.items()}
    finally:
        tcp.stop()
        udp.stop()
    said = []
    for file, r in results.items():
        text = _no_traceback(file, r, f"{SILENT_TIMEOUT:g} s of silence")
        if not text.replace("Input lowercase sentence:", "").strip():
            raise Failed(f"{file} ended (exit {r.exit_code}) without a word")
        said.append(f"{file}: {_tail(text, 300)}")
    return "\n".join(said)

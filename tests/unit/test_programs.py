"""Pure-logic tests for lab.programs (no sockets, no subprocesses)."""

import errno
import hashlib
import json
import random
import socket
import statistics
import struct
import sys

import pytest

from lab.programs import common, tcp_measure, tcp_server, udp_measure


# --- errno naming -------------------------------------------------------------

@pytest.mark.parametrize("exc, name", [
    (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), "ECONNREFUSED"),
    (OSError(errno.EADDRINUSE, "Address already in use"), "EADDRINUSE"),
    (OSError(errno.EHOSTUNREACH, "No route to host"), "EHOSTUNREACH"),
    (ConnectionResetError(errno.ECONNRESET, "reset"), "ECONNRESET"),
    # The kernel's ETIMEDOUT (SYN retries exhausted) is not a socket timeout.
    (TimeoutError(errno.ETIMEDOUT, "Connection timed out"), "ETIMEDOUT"),
    (socket.timeout("timed out"), "TIMEOUT"),
    (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "EAI_NONAME"),
    (socket.gaierror(socket.EAI_AGAIN, "Temporary failure"), "EAI_AGAIN"),
    (ValueError("bad"), "ValueError"),
])
def test_error_name(exc, name):
    assert common.error_name(exc) == name


def test_error_message_prefers_strerror():
    assert common.error_message(OSError(errno.EADDRINUSE, "Address already in use")) == \
        "Address already in use"
    assert common.error_message(socket.timeout("timed out")) == "timed out"


# --- statistics -----------------------------------------------------------------

def test_percentile_interpolates_between_ranks():
    assert common.percentile([4, 1, 3, 2], 50) == 2.5
    assert common.percentile([1, 2, 3, 4], 0) == 1
    assert common.percentile([1, 2, 3, 4], 100) == 4
    assert common.percentile([7], 99) == 7
    assert common.percentile([], 50) is None


def test_percentile_matches_statistics_inclusive_quantiles():
    rng = random.Random(42)
    values = [rng.uniform(0, 100) for _ in range(501)]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    assert common.percentile(values, 50) == pytest.approx(cuts[49])
    assert common.percentile(values, 99) == pytest.approx(cuts[98])


def test_percentile_rejects_out_of_range():
    with pytest.raises(ValueError):
        common.percentile([1, 2], 101)


def test_summarize():
    stats = common.summarize([3.0, 1.0, 2.0, 10.0])
    assert stats == {"min": 1.0, "avg": 4.0, "p50": 2.5, "p99": 9.79, "max": 10.0}
    assert common.summarize([]) == {"min": None, "avg": None, "p50": None, "p99": None,
                                    "max": None}


def test_small_formatting_helpers():
    assert common.fmt_addr(("10.0.0.2", 5000)) == "10.0.0.2:5000"
    assert common.fmt_addr(None) is None
    assert common.ms(0.0015) == 1.5
    assert common.ms(None) is None
    assert common.preview(b"x" * 300, limit=4) == "xxxx..."
    assert json.loads(common.to_json({"b": 1, "a": None})) == {"a": None, "b": 1}
    assert "\n" not in common.to_json({"text": "two\nlines"})


# --- the SOCKETLAB-STREAM header ------------------------------------------------

def test_stream_header_round_trip_keeps_leftover():
    data = common.stream_header(5) + b"abcdeEXTRA"
    assert data.startswith(b"SOCKETLAB-STREAM 5\n")
    assert common.parse_stream_header(data) == (5, b"abcdeEXTRA")


def test_stream_header_incomplete_or_absent():
    assert common.parse_stream_header(b"SOCKETLAB-STREAM 12") is None  # no newline yet
    assert common.parse_stream_header(b"hello") is None
    # A lecture client types lower case: never a stream request.
    assert common.parse_stream_header(b"socketlab-stream 5\nabcde") is None


@pytest.mark.parametrize("data", [
    b"SOCKETLAB-STREAM abc\n",
    b"SOCKETLAB-STREAM -5\n",
    b"SOCKETLAB-STREAM \n",
    b"SOCKETLAB-STREAM " + b"9" * 80,  # no newline within the header limit
])
def test_stream_header_malformed(data):
    with pytest.raises(ValueError):
        common.parse_stream_header(data)


# --- tcp-server helpers -----------------------------------------------------------

def test_parse_last_data_recv_offset():
    info = bytearray(104)
    struct.pack_into("=I", info, 52, 1234)
    struct.pack_into("=I", info, 44, 999)  # last_data_sent must not be picked up
    assert tcp_server.parse_last_data_recv(bytes(info)) == 1234
    assert tcp_server.parse_last_data_recv(b"\0" * 40) is None


def _record(**changes):
    rec = {"connection": 3, "peer": "10.0.0.2:4000", "kind": "lecture", "request": "hi",
           "reply": "HI", "bytes_received": 2, "bytes_sent": 2, "wait_ms": 12,
           "duration_ms": 5.0, "error": None, "message": None}
    rec.update(changes)
    return rec


def test_format_record_lecture_stream_and_error():
    line = tcp_server.format_record(_record())
    assert line.startswith("#3 10.0.0.2:4000 'hi' -> 'HI'")
    assert "waited 12 ms" in line
    line = tcp_server.format_record(_record(kind="stream", stream_bytes=10, sha256="ab" * 32,
                                            wait_ms=None))
    assert "stream 10 bytes" in line and "waited ? ms" in line
    line = tcp_server.format_record(_record(error="ECONNRESET", message="reset"))
    assert line.endswith("error ECONNRESET: reset")


# --- udp-measure payloads ---------------------------------------------------------

def test_payload_is_lowercase_ascii_of_exact_size():
    payload = udp_measure.build_payload(42, 123456789, 64, seed=0)
    assert len(payload) == 64
    assert payload.startswith(b"slab 42 123456789 ")
    assert payload == payload.lower()
    payload.decode("ascii")


def test_payload_is_deterministic_and_seed_dependent():
    a = udp_measure.build_payload(7, 1, 100, seed=0)
    assert a == udp_measure.build_payload(7, 1, 100, seed=0)
    assert a != udp_measure.build_payload(7, 1, 100, seed=1)
    assert a[20:] != udp_measure.build_payload(8, 1, 100, seed=0)[20:]


def test_payload_too_small_is_refused():
    with pytest.raises(ValueError):
        udp_measure.build_payload(12345, 10 ** 18, 20)
    # min_size leaves room for the largest seq and a 20-digit timestamp.
    size = udp_measure.min_size(10000)
    udp_measure.build_payload(9999, 10 ** 19, size)
    with pytest.raises(ValueError):
        udp_measure.build_payload(9999, 10 ** 19, size - 1)


def test_parse_reply_is_case_insensitive():
    payload = udp_measure.build_payload(5, 987, 48)
    assert udp_measure.parse_reply(payload.upper()) == (5, 987)
    assert udp_measure.parse_reply(payload) == (5, 987)


@pytest.mark.parametrize("data", [b"", b"HELLO", b"SLAB x 1 pad", b"SLAB 1", b"NOPE 1 2 x",
                                  b"SLAB 1_0 2 x", b"SLAB +1 2 x"])
def test_parse_reply_rejects_garbage(data):
    assert udp_measure.parse_reply(data) is None


def test_intact_only_for_exact_uppercase_echo():
    payload = udp_measure.build_payload(3, 555, 64, seed=2)
    assert udp_measure.is_intact(payload.upper(), 3, 555, 64, seed=2)
    assert not udp_measure.is_intact(payload, 3, 555, 64, seed=2)  # echoed, not uppercased
    flipped = bytearray(payload.upper())
    flipped[-1] ^= 0x01
    assert not udp_measure.is_intact(bytes(flipped), 3, 555, 64, seed=2)
    assert not udp_measure.is_intact(payload.upper()[:60], 3, 555, 64, seed=2)  # truncated
    assert not udp_measure.is_intact(payload.upper(), 3, 556, 64, seed=2)


def test_tracker_counts_reorder_duplicate_corrupt_and_unmatched():
    tracker = udp_measure.ReplyTracker(count=6)
    for seq, intact in [(0, True), (2, True), (1, True), (3, False), (3, True), (1, True),
                        (5, True), (4, True)]:
        tracker.record(seq, intact, rtt_ms=float(seq))
    tracker.record(99, True, 1.0)  # outside the run
    tracker.unreadable()
    assert tracker.received == 6
    assert tracker.duplicated == 2
    assert tracker.reordered == 2      # 1 after 2, 4 after 5
    assert tracker.corrupted == 1 + 2  # seq 3, plus the two unmatched
    assert tracker.unmatched == 2
    assert sorted(tracker.rtts_ms) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]  # first arrivals only
    assert tracker.complete()


def test_tracker_in_order_has_no_reordering():
    tracker = udp_measure.ReplyTracker(count=100)
    for seq in range(0, 100, 2):  # every other one lost
        tracker.record(seq, True, 1.0)
    assert (tracker.received, tracker.reordered, tracker.duplicated) == (50, 0, 0)
    assert not tracker.complete()


def test_tracker_keeps_the_first_rtt_of_each_seq():
    tracker = udp_measure.ReplyTracker(count=4)
    tracker.record(2, True, 5.0)
    tracker.record(0, False, 7.5)   # corrupted still came back
    tracker.record(2, True, 9.0)    # a duplicate does not replace the first RTT
    assert tracker.first_rtt_ms == [7.5, None, 5.0, None]


def test_timeline_is_relative_to_the_first_send_and_null_for_lost():
    send_ns = [1_000_000_000, 1_005_000_400, 1_010_123_456, 0]  # the 4th was never sent
    rtts = [0.12345, None, 20.0004, None]
    assert udp_measure.timeline(send_ns, rtts, sent=3) == {
        "send_ms": [0.0, 5.0, 10.123], "rtt_ms": [0.123, None, 20.0]}
    assert udp_measure.timeline([0, 0], [None, None], sent=0) == {"send_ms": [], "rtt_ms": []}


# --- tcp-measure data -------------------------------------------------------------

def test_stream_data_does_not_depend_on_chunk_size():
    block = bytes(range(256)) * 3  # small block: exercises wrap-around cheaply
    n = 10_000

    def joined(chunk):
        pieces = list(tcp_measure.iter_chunks(n, 0, chunk, block))
        assert all(len(p) <= chunk for p in pieces)
        return b"".join(bytes(p) for p in pieces)

    reference = (block * (n // len(block) + 1))[:n]
    for chunk in (1, 7, 768, 1000, 5000, 20000):
        assert joined(chunk) == reference


def test_stream_sha256_depends_on_seed_and_length():
    n = 3 * tcp_measure.BLOCK + 17
    digest = tcp_measure.stream_sha256(n, 0)
    block = tcp_measure.make_block(0)
    expected = hashlib.sha256((block * 4)[:n]).hexdigest()
    assert digest == expected
    assert tcp_measure.stream_sha256(n, 1) != digest
    assert tcp_measure.stream_sha256(n - 1, 0) != digest
    assert tcp_measure.stream_sha256(0, 0) == hashlib.sha256(b"").hexdigest()


def test_parse_server_reply():
    line = json.dumps({"bytes": 10, "sha256": "ab"}).encode()
    assert tcp_measure.parse_server_reply(line) == (10, "ab")
    for bad in (b"HELLO", b"[1, 2]", b'{"bytes": 1}', b"\xff\xfe"):
        with pytest.raises(ValueError):
            tcp_measure.parse_server_reply(bad)


def test_goodput():
    assert tcp_measure.goodput_mbps(1_000_000, 1.0) == 8.0
    assert tcp_measure.goodput_mbps(1_000_000, 0) is None


# --- argument checks ----------------------------------------------------------------

def test_udp_measure_refuses_a_size_below_the_header(capsys):
    with pytest.raises(SystemExit) as exit_info:
        udp_measure.main(["--count", "10", "--size", "10"])
    assert exit_info.value.code == 2
    assert "--size" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--count", "0"], ["--count", "5", "--rate", "-1"]])
def test_udp_measure_refuses_bad_numbers(argv):
    with pytest.raises(SystemExit):
        udp_measure.main(argv)


def test_socket_drops_come_from_the_overflow_message():
    import socket
    count = (1234).to_bytes(4, sys.byteorder)
    assert udp_measure.socket_drops([(socket.SOL_SOCKET, udp_measure.SO_RXQ_OVFL, count)]) == 1234
    assert udp_measure.socket_drops([(socket.SOL_SOCKET, 99, count)]) is None
    assert udp_measure.socket_drops([]) is None


def test_rcvbuf_errors_are_read_by_column_name():
    snmp = ("Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\n"
            "Udp: 10 0 3 12 7 0\n"
            "UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\n"
            "UdpLite: 0 0 0 0 0 0\n")
    assert udp_measure.udp_rcvbuf_errors(snmp) == 7
    assert udp_measure.udp_rcvbuf_errors("Ip: Forwarding\nIp: 1\n") is None

"""tcp-server: the lecture's uppercase TCP server, instrumented.

Per connection, exactly like the lecture: accept, ONE recv(1024), reply
data.upper(), close. `--mode iterative` handles clients one after the other
in the accept loop; `--mode concurrent` starts a thread per client.

A connection whose first bytes are `SOCKETLAB-STREAM <n>\\n` (sent by
tcp-measure) is a measurement instead: the server reads exactly n bytes,
replies one JSON line {"bytes": n, "sha256": "..."} and closes.
"""

import argparse
import hashlib
import socket
import struct
import sys
import threading
import time

from lab.programs import common
from lab.programs.shared.topology import DEFAULT_PORT

PROGRAM = "tcp-server"
LECTURE_RECV = 1024  # the lecture's recv size; a longer request is cut here
# A measuring stream is received into a few large buffers, hashed on a second thread.
STREAM_RECV = 1024 * 1024
STREAM_BUFFERS = 4

# struct tcp_info (linux/tcp.h): 8 one-byte fields, then 9 u32 (rto .. fackets),
# then the "times": last_data_sent (44), last_ack_sent (48), last_data_recv (52).
_TCPI_LAST_DATA_RECV = 52


def build_parser():
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Uppercase TCP server (lecture protocol) with measurement logging.")
    parser.add_argument("--bind", default="0.0.0.0",
                        help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help="port to listen on, 0 = any free port (default: %(default)s)")
    parser.add_argument("--mode", choices=("iterative", "concurrent"), default="iterative",
                        help="iterative: one client at a time; concurrent: a thread per client")
    parser.add_argument("--backlog", type=int, default=1,
                        help="listen() backlog (default: %(default)s, as in the lecture)")
    parser.add_argument("--reuseaddr", action=argparse.BooleanOptionalAction, default=True,
                        help="set SO_REUSEADDR (default: on; --no-reuseaddr shows TIME_WAIT)")
    parser.add_argument("--service-time", type=common.non_negative_float, default=0.0,
                        metavar="SECONDS",
                        help="sleep this long before answering each client")
    parser.add_argument("--max-connections", type=common.positive_int, metavar="N",
                        help="exit after handling N connections")
    parser.add_argument("--json", action="store_true",
                        help="log JSON objects instead of text")
    return parser


# --- pure helpers -----------------------------------------------------------

def parse_last_data_recv(tcp_info):
    """tcpi_last_data_recv (ms) from a raw struct tcp_info, or None if too short."""
    if len(tcp_info) < _TCPI_LAST_DATA_RECV + 4:
        return None
    return struct.unpack_from("=I", tcp_info, _TCPI_LAST_DATA_RECV)[0]


def format_record(rec):
    """One human-readable log line for a connection record."""
    head = "#%d %s" % (rec["connection"], rec["peer"])
    if rec["kind"] == "stream":
        body = "stream %d bytes sha256 %s" % (rec.get("stream_bytes") or 0,
                                              (rec.get("sha256") or "-")[:16])
    else:
        body = "%r -> %r (%d bytes in, %d out)" % (
            rec.get("request", ""), rec.get("reply", ""), rec["bytes_received"], rec["bytes_sent"])
    waited = "?" if rec["wait_ms"] is None else "%d" % rec["wait_ms"]
    line = "%s %s; waited %s ms, served in %.0f ms" % (head, body, waited, rec["duration_ms"])
    if rec["error"]:
        line += "; error %s: %s" % (rec["error"], rec["message"])
    return line


# --- socket work ------------------------------------------------------------

def open_listener(bind, port, backlog, reuseaddr):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if reuseaddr:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((bind, port))
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def kernel_wait_ms(conn):
    """How long the request had been sitting in the kernel when accept()
    returned (time since its last data, or since the handshake if no data
    came yet). Linux only, jiffy resolution; None when unavailable."""
    if not hasattr(socket, "TCP_INFO"):
        return None
    try:
        return parse_last_data_recv(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104))
    except OSError:
        return None


class HashPipeline:
    """SHA-256 of a byte stream on a second thread, so the socket keeps moving data
    while the previous buffers are hashed (hashlib releases the GIL on large
    updates). Buffers cycle through a small fixed pool: memory stays bounded."""

    def __init__(self, initial=b"", buffers=STREAM_BUFFERS, size=STREAM_RECV):
        import queue
        self.digest = hashlib.sha256(initial)
        self.free = queue.Queue()
        self.full = queue.Queue()
        for _ in range(buffers):
            self.free.put(bytearray(size))
        self.thread = threading.Thread(target=self._hash, daemon=True)
        self.thread.start()

    def _hash(self):
        while True:
            item = self.full.get()
            if item is None:
                return
            buf, n = item
            self.digest.update(memoryview(buf)[:n])
            self.free.put(buf)

    def take(self):
        """An empty buffer to receive into (waits while every buffer is being hashed)."""
        return self.free.get()

    def give(self, buf, n):
        """Hash the first n bytes of buf (then it returns to the pool)."""
        self.full.put((buf, n))

    def hexdigest(self):
        self.full.put(None)
        self.thread.join()
        return self.digest.hexdigest()


def read_stream(conn, first, rec):
    """Read the rest of a SOCKETLAB-STREAM request; return the JSON reply."""
    data = first
    header = common.parse_stream_header(data)
    while header is None:  # header line split over segments: keep reading
        more = conn.recv(common.MAX_STREAM_HEADER)
        if not more:
            raise EOFError("connection closed inside the stream header")
        data += more
        rec["bytes_received"] += len(more)
        header = common.parse_stream_header(data)
    expected, leftover = header
    hashing = HashPipeline(leftover[:expected])
    got = min(len(leftover), expected)
    while got < expected:
        buf = hashing.take()
        n = conn.recv_into(buf, min(len(buf), expected - got))
        hashing.give(buf, n)
        if n == 0:
            rec["error"], rec["message"] = "EOF", "peer closed after %d of %d bytes" % (got, expected)
            break
        got += n
        rec["bytes_received"] += n
    rec["stream_bytes"], rec["sha256"] = got, hashing.hexdigest()
    return (common.to_json({"bytes": got, "sha256": rec["sha256"]}) + "\n").encode("ascii")


def handle_connection(conn, peer, index, mode, service_time, wait_ms):
    """Serve one client; return its log record. Never raises OSError."""
    rec = {
        "event": "connection", "program": PROGRAM, "connection": index, "mode": mode,
        "peer": common.fmt_addr(peer), "peer_address": peer[0], "peer_port": peer[1],
        "kind": "lecture", "bytes_received": 0, "bytes_sent": 0, "wait_ms": wait_ms,
        "started": round(time.time(), 6), "error": None, "message": None,
    }
    t0 = time.monotonic()
    try:
        data = conn.recv(LECTURE_RECV)
        rec["bytes_received"] = len(data)
        if common.is_stream_start(data):
            rec["kind"] = "stream"
            try:
                reply = read_stream(conn, data, rec)
            except ValueError as exc:
                rec["error"], rec["message"] = "BAD_HEADER", str(exc)
                reply = (common.to_json({"error": "BAD_HEADER", "message": str(exc)}) + "\n").encode()
        else:
            reply = data.upper()
            rec["request"], rec["reply"] = common.preview(data), common.preview(reply)
        if service_time:
            time.sleep(service_time)
        conn.sendall(reply)
        rec["bytes_sent"] = len(reply)
    except EOFError as exc:
        rec["error"], rec["message"] = "EOF", str(exc)
    except OSError as exc:
        rec["error"], rec["message"] = common.error_name(exc), common.error_message(exc)
    finally:
        conn.close()
    rec["finished"] = round(time.time(), 6)
    rec["duration_ms"] = common.ms(time.monotonic() - t0)
    return rec


class Server:
    def __init__(self, args):
        self.args = args
        self.accepted = 0
        self.threads = []

    def log(self, rec):
        if self.args.json:
            common.emit_json(rec)
        else:
            common.emit_line(format_record(rec))

    def serve_one(self, conn, peer, index, wait_ms):
        rec = handle_connection(conn, peer, index, self.args.mode, self.args.service_time, wait_ms)
        self.log(rec)

    def accept_loop(self, listener):
        limit = self.args.max_connections
        while limit is None or self.accepted < limit:
            try:
                conn, peer = listener.accept()
            except OSError as exc:  # e.g. ECONNABORTED, EMFILE: report and keep serving
                self.log_event("accept-error", error=common.error_name(exc),
                               message=common.error_message(exc))
                time.sleep(0.1)
                continue
            self.accepted += 1
            index = self.accepted
            wait_ms = kernel_wait_ms(conn)
            if self.args.mode == "iterative":
                self.serve_one(conn, peer, index, wait_ms)
            else:
                thread = threading.Thread(target=self.serve_one, name="client-%d" % index,
                                          args=(conn, peer, index, wait_ms), daemon=True)
                # A SIGTERM raised inside Thread.start() corrupts threading's
                # bookkeeping (KeyError in the new thread): hold signals until it returns.
                with common.signals_deferred():
                    thread.start()
                self.threads = [t for t in self.threads if t.is_alive()] + [thread]
        # Scripted runs (--max-connections) expect every client answered.
        for thread in self.threads:
            thread.join()

    def log_event(self, event, **fields):
        fields.update(event=event, program=PROGRAM)
        if self.args.json:
            common.emit_json(fields)
        else:
            extra = ", ".join("%s=%s" % kv for kv in sorted(fields.items())
                              if kv[0] not in ("event", "program"))
            common.emit_line("%s %s: %s" % (PROGRAM, event, extra))


def main(argv=None) -> int:
    common.setup_process()
    args = build_parser().parse_args(argv)
    try:
        listener = open_listener(args.bind, args.port, args.backlog, args.reuseaddr)
    except OSError as exc:
        return common.report_bind_error(PROGRAM, exc, args.bind, args.port)
    server = Server(args)
    port = listener.getsockname()[1]
    common.raise_on_sigterm()
    reason, status = "max-connections", common.EXIT_OK
    try:
        # Readiness checks look for the text "tcp-server listening" (also in JSON).
        text = "%s listening on %s:%d" % (PROGRAM, args.bind, port)
        if args.json:
            common.emit_json({"event": "listening", "program": PROGRAM, "text": text,
                              "bind": args.bind, "port": port, "mode": args.mode,
                              "backlog": args.backlog, "reuseaddr": args.reuseaddr,
                              "service_time": args.service_time})
        else:
            common.emit_line("%s (mode=%s, backlog=%d, reuseaddr=%s)" % (
                text, args.mode, args.backlog, "on" if args.reuseaddr else "off"))
        server.accept_loop(listener)
    except common.Terminated:
        reason, status = "SIGTERM", common.EXIT_OK
    except KeyboardInterrupt:
        reason, status = "SIGINT", common.EXIT_SIGINT
    finally:
        listener.close()
    try:
        server.log_event("stopped", reason=reason, accepted=server.accepted)
        common.hold_output()  # handler threads may still be running
    except (common.Terminated, KeyboardInterrupt, BrokenPipeError):
        pass
    return status


if __name__ == "__main__":
    sys.exit(main())

"""udp-server: the lecture's uppercase UDP server.

Like the lecture: recvfrom(2048), sendto(data.upper(), addr), forever. Quiet
per datagram unless --verbose, because udp-measure sends thousands.
"""

import argparse
import sys

import socket

from lab.programs import common
from lab.programs.shared.topology import DEFAULT_PORT

PROGRAM = "udp-server"
LECTURE_RECV = 2048  # the lecture's recvfrom size; longer datagrams are truncated
# Big enough that a burst from udp-measure is not dropped here, where it would
# be mistaken for loss on the path.
DEFAULT_RCVBUF = 4 * 1024 * 1024


def build_parser():
    parser = argparse.ArgumentParser(
        prog=PROGRAM, description="Uppercase UDP server (lecture protocol).")
    parser.add_argument("--bind", default="0.0.0.0",
                        help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help="port, 0 = any free port (default: %(default)s)")
    parser.add_argument("--reuseaddr", action="store_true",
                        help="set SO_REUSEADDR (on Linux two UDP sockets may then share a port)")
    parser.add_argument("--rcvbuf", type=int, default=DEFAULT_RCVBUF, metavar="BYTES",
                        help="receive buffer to request, 0 = kernel default (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="log JSON objects instead of text")
    parser.add_argument("--verbose", action="store_true", help="log every datagram")
    return parser


def format_datagram(peer, data, reply):
    return "%s %r -> %r (%d bytes)" % (common.fmt_addr(peer), common.preview(data),
                                       common.preview(reply), len(data))


def open_socket(bind, port, reuseaddr, rcvbuf):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        if reuseaddr:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if rcvbuf:
            common.raise_rcvbuf(sock, rcvbuf)
        sock.bind((bind, port))
    except BaseException:
        sock.close()
        raise
    return sock


class Counters:
    def __init__(self):
        self.received = 0
        self.sent = 0
        self.errors = 0


def serve(sock, args, counters):
    while True:
        try:
            data, peer = sock.recvfrom(LECTURE_RECV)
        except OSError as exc:  # e.g. a queued ICMP error: not fatal for a server
            counters.errors += 1
            log_error(args, exc, None)
            continue
        counters.received += 1
        reply = data.upper()
        try:
            sock.sendto(reply, peer)
            counters.sent += 1
        except OSError as exc:
            counters.errors += 1
            log_error(args, exc, peer)
            continue
        if args.verbose:
            if args.json:
                common.emit_json({"event": "datagram", "program": PROGRAM,
                                  "peer": common.fmt_addr(peer), "bytes": len(data),
                                  "request": common.preview(data), "reply": common.preview(reply)})
            else:
                common.emit_line(format_datagram(peer, data, reply))


def log_error(args, exc, peer):
    if not args.verbose:
        return
    fields = {"event": "datagram-error", "program": PROGRAM, "peer": common.fmt_addr(peer),
              "error": common.error_name(exc), "message": common.error_message(exc)}
    if args.json:
        common.emit_json(fields)
    else:
        common.emit_line("%s error %s: %s" % (fields["peer"], fields["error"], fields["message"]))


def main(argv=None) -> int:
    common.setup_process()
    args = build_parser().parse_args(argv)
    try:
        sock = open_socket(args.bind, args.port, args.reuseaddr, args.rcvbuf)
    except OSError as exc:
        return common.report_bind_error(PROGRAM, exc, args.bind, args.port)
    port = sock.getsockname()[1]
    rcvbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    counters = Counters()
    common.raise_on_sigterm()
    reason, status = "SIGTERM", common.EXIT_OK
    try:
        # Readiness checks look for the text "udp-server listening" (also in JSON).
        text = "%s listening on %s:%d" % (PROGRAM, args.bind, port)
        if args.json:
            common.emit_json({"event": "listening", "program": PROGRAM, "text": text,
                              "bind": args.bind, "port": port, "reuseaddr": args.reuseaddr,
                              "rcvbuf": rcvbuf})
        else:
            common.emit_line("%s (rcvbuf=%d)" % (text, rcvbuf))
        serve(sock, args, counters)
    except common.Terminated:
        pass
    except KeyboardInterrupt:
        reason, status = "SIGINT", common.EXIT_SIGINT
    finally:
        sock.close()
    stopped = {"event": "stopped", "program": PROGRAM, "reason": reason,
               "received": counters.received, "sent": counters.sent, "errors": counters.errors}
    try:
        if args.json:
            common.emit_json(stopped)
        else:
            common.emit_line("%s stopped (%s): %d datagrams received, %d replies sent, %d errors"
                             % (PROGRAM, reason, counters.received, counters.sent, counters.errors))
    except (common.Terminated, KeyboardInterrupt, BrokenPipeError):
        pass
    return status


if __name__ == "__main__":
    sys.exit(main())

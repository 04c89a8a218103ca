"""udp-client: the lecture's uppercase UDP client, instrumented.

Like the lecture: sendto() a sentence, recvfrom() the reply. --connect uses
a connected UDP socket, the only kind to which Linux reports an ICMP "port
unreachable" (as ECONNREFUSED) by default. --icmp-errors keeps the socket
unconnected (a reply from any address counts, as for the lecture's client)
but asks for ICMP errors all the same (IP_RECVERR): a "port unreachable" for
the datagram sent ends the wait at once. --repeat K sends K datagrams and lists every
reply separately: UDP keeps message boundaries.
"""

import argparse
import socket
import sys
import time

from lab.programs import common

PROGRAM = "udp-client"
RECV_SIZE = 65535  # larger than any datagram, so a reply is never cut here


def build_parser():
    parser = argparse.ArgumentParser(
        prog=PROGRAM, description="Uppercase UDP client (lecture protocol).")
    parser.add_argument("message", nargs="?",
                        help="sentence to send (default: prompt for it, like the lecture)")
    common.add_target_args(parser, timeout=2.0)
    parser.add_argument("--connect", action="store_true",
                        help="connect() the UDP socket so ICMP errors surface (ECONNREFUSED)")
    parser.add_argument("--icmp-errors", action="store_true",
                        help="unconnected, but ICMP errors surface (IP_RECVERR): a port unreachable "
                             "ends the wait (ECONNREFUSED) instead of the timeout")
    parser.add_argument("--repeat", type=common.positive_int, default=1, metavar="K",
                        help="send K datagrams and collect the replies until the timeout")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    return parser


def new_result(args):
    return common.client_result(PROGRAM, args, connected=args.connect, replies=[], reply_from=None)


def collect_replies(sock, count, t_first_send, result):
    """recvfrom() until `count` replies came or the timeout expires; each
    datagram is one reply. Only a timeout with no reply at all is an error:
    fewer replies than datagrams is a result (loss), not a failure."""
    while len(result["replies"]) < count:
        try:
            data, peer = sock.recvfrom(RECV_SIZE)
        except socket.timeout as exc:
            if not result["replies"]:
                common.set_error(result, exc)
            return
        except OSError as exc:
            common.set_error(result, exc)
            return
        text = data.decode("utf-8", "replace")
        if not result["replies"]:
            result["rtt_ms"] = common.ms(time.monotonic() - t_first_send)
            result["reply_from"] = common.fmt_addr(peer)
            result["received"] = text
        result["replies"].append(text)
        result["received_bytes"] += len(data)


def exchange(args, result):
    remote = common.resolve(args.host, args.port, socket.SOCK_DGRAM)
    common.set_address(result, "remote", remote)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.settimeout(args.timeout)
        if args.icmp_errors:
            # Linux: without it an unconnected UDP socket is told of no ICMP error.  A port
            # unreachable means no socket took the datagram: no reply to it can come.
            sock.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_RECVERR", 11), 1)
        if args.connect:
            t0 = time.monotonic()
            sock.connect(remote)  # sends nothing: it fixes the peer and enables ICMP errors
            result["connect_ms"] = common.ms(time.monotonic() - t0)
        sentence = args.message if args.message is not None else common.read_sentence(args.json)
        payload = sentence.encode("utf-8")
        result["sent"] = sentence
        t1 = time.monotonic()
        for _ in range(args.repeat):
            if args.connect:
                sock.send(payload)
            else:
                sock.sendto(payload, remote)
            result["sent_bytes"] += len(payload)
        # The ephemeral port is only assigned by the first send.
        common.set_address(result, "local", sock.getsockname())
        collect_replies(sock, args.repeat, t1, result)
    finally:
        sock.close()


def print_human(result):
    for text in result["replies"]:
        print("From Server: %s" % text, flush=True)
    if result["repeat"] > 1:
        print("(sent %d datagrams, received %d replies)"
              % (result["repeat"], len(result["replies"])), flush=True)


def main(argv=None) -> int:
    common.setup_process()
    args = build_parser().parse_args(argv)
    return common.run_client(args, new_result(args), exchange, print_human)


if __name__ == "__main__":
    sys.exit(main())

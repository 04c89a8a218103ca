"""tcp-client: the lecture's uppercase TCP client, instrumented.

Like the lecture: connect, read a sentence (prompting if none was given),
send it, print the server's reply. --repeat K sends the sentence in K
separate send() calls and reads until the server closes: TCP is a byte
stream, so the lecture server's single recv(1024) may see them merged.
"""

import argparse
import sys
import time

from lab.programs import common

PROGRAM = "tcp-client"


def build_parser():
    parser = argparse.ArgumentParser(
        prog=PROGRAM, description="Uppercase TCP client (lecture protocol).")
    parser.add_argument("message", nargs="?",
                        help="sentence to send (default: prompt for it, like the lecture)")
    common.add_target_args(parser, timeout=5.0)
    parser.add_argument("--repeat", type=common.positive_int, default=1, metavar="K",
                        help="send the sentence K times as K back-to-back send() calls")
    parser.add_argument("--until-eof", action="store_true",
                        help="read until the server closes, then close (so the server closes first "
                             "and its side of the connection waits in TIME_WAIT)")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    return parser


def new_result(args):
    return common.client_result(PROGRAM, args)


def send_repeated(sock, payload, repeat):
    """send the payload `repeat` times; return (completed sends, exception).

    A send may fail because the lecture server already replied to the first
    part and closed (its kernel answers further data with a RST): the reply
    that did arrive must still be read and shown, so the error is returned,
    not raised."""
    for done in range(repeat):
        try:
            sock.sendall(payload)
        except OSError as exc:
            return done, exc
    return repeat, None


def read_reply(sock, expected, until_eof):
    """Read the reply; returns (data, exception or None) so that what did
    arrive is still reported when the connection then fails or times out.

    Stops at EOF (the lecture server closes after replying) or, unless
    until_eof, once `expected` bytes came (so a server that keeps the
    connection open still gives a clean result)."""
    chunks, total = [], 0
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
            total += len(data)
            if not until_eof and total >= expected:
                break
    except OSError as exc:
        return b"".join(chunks), exc
    return b"".join(chunks), None


def exchange(args, result):
    """The lecture exchange, filling result in as far as it gets."""
    sock = common.connect_tcp(args.host, args.port, args.timeout, result)
    try:
        # Prompt only after connecting, like the lecture: while the user types,
        # the connection already waits in the server's accept queue.
        sentence = args.message if args.message is not None else common.read_sentence(args.json)
        payload = sentence.encode("utf-8")
        t1 = time.monotonic()
        sends, send_exc = send_repeated(sock, payload, args.repeat)
        result["sent"] = sentence * sends
        result["sent_bytes"] = len(payload) * sends
        data, read_exc = read_reply(sock, len(payload) * sends, until_eof=args.repeat > 1 or args.until_eof)
        result["rtt_ms"] = common.ms(time.monotonic() - t1)
        result["received"] = data.decode("utf-8", "replace")
        result["received_bytes"] = len(data)
        if send_exc is not None or read_exc is not None:
            common.set_error(result, send_exc or read_exc)
    finally:
        sock.close()


def print_human(result):
    if result["received"] is not None:
        print("From Server: %s" % result["received"], flush=True)
        if result["repeat"] > 1:
            print("(sent %d bytes in %d send() calls, received %d bytes)"
                  % (result["sent_bytes"], result["repeat"], result["received_bytes"]), flush=True)


def main(argv=None) -> int:
    common.setup_process()
    args = build_parser().parse_args(argv)
    return common.run_client(args, new_result(args), exchange, print_human)


if __name__ == "__main__":
    sys.exit(main())

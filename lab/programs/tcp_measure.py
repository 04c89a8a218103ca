"""tcp-measure: bulk TCP transfer with an end-to-end integrity check.

Connects to tcp-server, sends `SOCKETLAB-STREAM <n>\\n` followed by n bytes
of deterministic pseudo-random data, and reads the server's one-line JSON
reply {"bytes": n, "sha256": "..."}. The server stops after exactly n bytes,
so no shutdown(SHUT_WR) is needed (and none is sent).
"""

import argparse
import hashlib
import json
import random
import sys
import time

from lab.programs import common

PROGRAM = "tcp-measure"
BLOCK = 1024 * 1024  # the data is one random block repeated: cheap, and not compressible
MAX_REPLY = 4096


# --- the data (pure) --------------------------------------------------------

def make_block(seed):
    return random.Random(seed).randbytes(BLOCK)


def iter_chunks(nbytes, seed, chunk, block=None):
    """Yield the n-byte stream for seed as memoryviews of at most chunk bytes.

    Byte i of the stream is block[i % len(block)], whatever the chunk size,
    so the SHA-256 depends on (nbytes, seed) only."""
    block = make_block(seed) if block is None else block
    size = len(block)
    # Extend the block so that any chunk starting inside it is one slice.
    extended = memoryview(block * (chunk // size + 2))
    pos = 0
    while pos < nbytes:
        length = min(chunk, nbytes - pos)
        start = pos % size
        yield extended[start:start + length]
        pos += length


def stream_sha256(nbytes, seed, block=None):
    digest = hashlib.sha256()
    for piece in iter_chunks(nbytes, seed, BLOCK, block):
        digest.update(piece)
    return digest.hexdigest()


def parse_server_reply(line):
    """{"bytes": n, "sha256": h} line -> (n, h); raises ValueError otherwise."""
    try:
        reply = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ValueError("not a SOCKETLAB-STREAM reply: %r" % line[:80])
    if not isinstance(reply, dict) or "bytes" not in reply or "sha256" not in reply:
        raise ValueError("not a SOCKETLAB-STREAM reply: %r" % line[:80])
    return reply["bytes"], reply["sha256"]


def goodput_mbps(nbytes, seconds):
    """Application bytes per second, in megabits (10^6 bits) per second."""
    if not seconds or seconds <= 0:
        return None
    return round(nbytes * 8 / seconds / 1e6, 3)


# --- the measurement --------------------------------------------------------

def build_parser():
    parser = argparse.ArgumentParser(
        prog=PROGRAM, description="Measure TCP goodput and integrity against tcp-server.")
    # Per socket operation. Under heavy loss TCP backs off its retransmissions (0.2, 0.4, ...
    # 25.6 s): at 20 % loss both ways a 2 MB transfer was seen to stall past 30 s.
    common.add_target_args(parser, timeout=90.0)
    parser.add_argument("--bytes", type=int, required=True, metavar="N", dest="nbytes",
                        help="bytes to transfer")
    parser.add_argument("--chunk", type=common.positive_int, default=BLOCK, metavar="BYTES",
                        help="bytes per sendall() call (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="selects the data (default: 0)")
    return parser


def new_result(args):
    return {
        "program": PROGRAM, "host": args.host, "port": args.port, "bytes": args.nbytes,
        "chunk": args.chunk, "seed": args.seed,
        "local": None, "local_address": None, "local_port": None,
        "remote": None, "remote_address": None, "remote_port": None,
        "bytes_sent": 0, "bytes_acknowledged": None,
        "sha256_sent": None, "sha256_received": None, "sha256_match": False,
        "connect_ms": None, "transfer_s": None, "goodput_mbps": None,
        "error": None, "message": None,
    }


def read_line(sock):
    data = b""
    while b"\n" not in data:
        if len(data) > MAX_REPLY:
            raise ValueError("reply line too long: %r" % data[:80])
        more = sock.recv(MAX_REPLY)
        if not more:
            if data:
                break
            raise EOFError("server closed without replying")
        data += more
    return data.split(b"\n", 1)[0]


def transfer(sock, args, block, result):
    chunks = iter_chunks(args.nbytes, args.seed, args.chunk, block)
    first = next(chunks, b"")
    t0 = time.monotonic()
    # Header and first data together: the server must handle the leftover.
    sock.sendall(common.stream_header(args.nbytes) + bytes(first))
    result["bytes_sent"] = len(first)
    for piece in chunks:
        sock.sendall(piece)
        result["bytes_sent"] += len(piece)
    line = read_line(sock)
    result["transfer_s"] = round(time.monotonic() - t0, 6)
    return line


def exchange(args, result):
    block = make_block(args.seed)
    # Hash before the clock starts, so hashing does not slow the transfer down.
    result["sha256_sent"] = stream_sha256(args.nbytes, args.seed, block)
    sock = common.connect_tcp(args.host, args.port, args.timeout, result)
    try:
        line = transfer(sock, args, block, result)
    finally:
        sock.close()
    try:
        acknowledged, digest = parse_server_reply(line)
    except ValueError as exc:
        result["error"], result["message"] = "BAD_REPLY", str(exc)
        return
    result["bytes_acknowledged"] = acknowledged
    result["sha256_received"] = digest
    result["sha256_match"] = digest == result["sha256_sent"] and acknowledged == args.nbytes
    if result["sha256_match"]:
        result["goodput_mbps"] = goodput_mbps(args.nbytes, result["transfer_s"])
    else:
        result["error"] = "MISMATCH"
        result["message"] = "server got %s bytes with a different SHA-256" % acknowledged


def run(args, result):
    try:
        exchange(args, result)
    except ValueError as exc:  # an over-long reply line
        result["error"], result["message"] = "BAD_REPLY", str(exc)


def main(argv=None) -> int:
    common.setup_process()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.nbytes < 0:
        parser.error("--bytes must be >= 0")
    return common.run_client(args, new_result(args), run)


if __name__ == "__main__":
    sys.exit(main())

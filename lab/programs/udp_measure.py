"""udp-measure: loss, duplication, reordering, corruption and RTT over UDP.

Sends N numbered datagrams at a fixed rate to an uppercase echo server (ours
or a student's) and matches the replies. Each payload is ASCII lower case:

    slab <seq> <send_time_ns> <padding derived from seq and seed>

so any uppercase server echoes it, and the reply must be exactly
payload.upper(); anything else counts as corrupted.

One thread, non-blocking socket: between paced sends it waits in select()
on the socket, so replies are read as soon as they arrive and never pile
up in the receive buffer (which is also raised) while we send.
"""

import argparse
import errno
import select
import socket
import sys
import time

from lab.programs import common
from lab.programs.shared.topology import DEFAULT_PORT

PROGRAM = "udp-measure"
MAGIC = b"slab"
ALPHABET = b"abcdefghijklmnopqrstuvwxyz"
MAX_TIME_DIGITS = 20  # monotonic_ns() fits in 20 digits for ~3000 years
RECV_SIZE = 65535
RCVBUF = 8 * 1024 * 1024
MAX_DATAGRAM = 65507
# Transient send failures: wait for the socket to drain and retry the datagram.
_RETRY_SEND = (errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS)
# Linux's per-socket drop counter, delivered with every datagram (socket.h: 40).
SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40)
_OVFL_SPACE = socket.CMSG_SPACE(4) if hasattr(socket, "CMSG_SPACE") else 0


# --- payloads (pure) --------------------------------------------------------

def padding(seq, seed, length):
    """Deterministic lower-case filler: the alphabet rotated by seq + seed."""
    shift = (seq + seed) % len(ALPHABET)
    rotated = ALPHABET[shift:] + ALPHABET[:shift]
    return (rotated * (length // len(rotated) + 1))[:length]


def header(seq, send_ns):
    return b"%s %d %d " % (MAGIC, seq, send_ns)


def min_size(count):
    """Smallest --size that fits the header of every datagram of a run."""
    return len(header(max(count - 1, 0), 10 ** (MAX_TIME_DIGITS - 1)))


def build_payload(seq, send_ns, size, seed=0):
    head = header(seq, send_ns)
    if len(head) > size:
        raise ValueError("size %d is smaller than the %d-byte header" % (size, len(head)))
    return head + padding(seq, seed, size - len(head))


def parse_reply(data):
    """(seq, send_ns) from a reply, case-insensitively; None if unreadable."""
    parts = data.split(b" ", 3)
    if len(parts) < 4 or parts[0].lower() != MAGIC:
        return None
    if not (parts[1].isdigit() and parts[2].isdigit()):
        return None
    return int(parts[1]), int(parts[2])


def is_intact(data, seq, send_ns, size, seed=0):
    """True when data is exactly the uppercase echo of what we sent."""
    return data == build_payload(seq, send_ns, size, seed).upper()


class ReplyTracker:
    """Counts what came back. Pure bookkeeping, no sockets.

    received:   distinct seqs that came back (corrupted ones included)
    duplicated: further copies of a seq already received
    reordered:  first arrivals whose seq is lower than the highest seq
                already received
    corrupted:  first arrivals (or unreadable datagrams) that are not
                exactly the uppercase echo
    unmatched:  datagrams whose seq cannot be read or is out of range
                (counted in corrupted as well)
    first_rtt_ms: per seq, the RTT of its first reply (None: none yet)
    """

    def __init__(self, count):
        self.count = count
        self.highest = -1
        self.received = self.duplicated = self.reordered = 0
        self.corrupted = self.unmatched = 0
        self.first_rtt_ms = [None] * count

    @property
    def rtts_ms(self):
        """The RTT of each datagram's first reply, for those that came back."""
        return [rtt for rtt in self.first_rtt_ms if rtt is not None]

    def unreadable(self):
        self.unmatched += 1
        self.corrupted += 1

    def record(self, seq, intact, rtt_ms):
        if not 0 <= seq < self.count:
            self.unreadable()
            return
        if self.first_rtt_ms[seq] is not None:
            self.duplicated += 1
            return
        self.received += 1
        if not intact:
            self.corrupted += 1
        if seq < self.highest:
            self.reordered += 1
        else:
            self.highest = seq
        self.first_rtt_ms[seq] = rtt_ms

    def complete(self):
        return self.received >= self.count


def socket_drops(ancdata):
    """The SO_RXQ_OVFL count in a datagram's ancillary data (None if absent): how
    many datagrams the kernel dropped on this socket, its buffer being full."""
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL and len(data) >= 4:
            return int.from_bytes(data[:4], sys.byteorder)
    return None


def udp_rcvbuf_errors(snmp_text):
    """Udp RcvbufErrors from /proc/net/snmp's text (None if absent): datagrams this
    host's kernel dropped because a receiving socket's buffer was full."""
    rows = [line.split() for line in snmp_text.splitlines() if line.startswith("Udp:")]
    if len(rows) < 2 or "RcvbufErrors" not in rows[0]:
        return None
    value = rows[1][rows[0].index("RcvbufErrors")]
    return int(value) if value.isdigit() else None


def read_rcvbuf_errors():
    try:
        with open("/proc/net/snmp") as f:
            return udp_rcvbuf_errors(f.read())
    except OSError:
        return None


def timeline(send_ns, first_rtt_ms, sent):
    """The --timeline line's data for the first `sent` datagrams: each one's send
    time in ms since the first send, and the RTT of its first reply (None: lost)."""
    t0 = send_ns[0] if sent else 0
    return {"send_ms": [round((ns - t0) / 1e6, 3) for ns in send_ns[:sent]],
            "rtt_ms": [None if rtt is None else round(rtt, 3) for rtt in first_rtt_ms[:sent]]}


# --- the measurement --------------------------------------------------------

def build_parser():
    parser = argparse.ArgumentParser(
        prog=PROGRAM, description="Measure a UDP path through an uppercase echo server.")
    parser.add_argument("--host", default=common.DEFAULT_HOST,
                        help="server name or address (default: %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help="server port (default: %(default)s)")
    parser.add_argument("--count", type=common.positive_int, required=True, metavar="N",
                        help="number of datagrams to send")
    parser.add_argument("--rate", type=common.non_negative_float, default=1000.0, metavar="PPS",
                        help="datagrams per second, 0 = as fast as possible (default: %(default)s)")
    parser.add_argument("--size", type=int, default=64, metavar="BYTES",
                        help="payload bytes per datagram (default: %(default)s)")
    parser.add_argument("--wait", type=common.non_negative_float, default=2.0, metavar="SECONDS",
                        help="how long to wait for replies after the last send (default: %(default)s)")
    parser.add_argument("--connect", action="store_true",
                        help="connect() the socket so ICMP errors surface (ECONNREFUSED)")
    parser.add_argument("--seed", type=int, default=0, help="varies the padding (default: 0)")
    parser.add_argument("--timeline", action="store_true",
                        help="before the result, print each datagram's send time and RTT "
                             "(null: lost) as one JSON line: {\"timeline\": {\"send_ms\": [...], "
                             "\"rtt_ms\": [...]}}")
    return parser


def check_args(parser, args):
    smallest = min_size(args.count)
    if not smallest <= args.size <= MAX_DATAGRAM:
        parser.error("--size must be within %d..%d for --count %d"
                     % (smallest, MAX_DATAGRAM, args.count))


class Measurement:
    def __init__(self, sock, args):
        self.sock = sock
        self.args = args
        self.remote = None  # set once the name resolves (if it does not, the empty counts are still a result)
        self.tracker = ReplyTracker(args.count)
        self.send_ns = [0] * args.count
        self.sent = 0
        self.socket_drops = None   # SO_RXQ_OVFL: replies the kernel dropped on our socket (None: unknown)
        self.send_retries = 0      # sends refused for a full buffer or queue, then retried

    def drain(self):
        """Read every reply already queued, without blocking."""
        while True:
            try:
                data, ancdata, _, _ = self.sock.recvmsg(RECV_SIZE, _OVFL_SPACE)
            except BlockingIOError:
                return
            now_ns = time.monotonic_ns()
            drops = socket_drops(ancdata)
            if drops is not None:
                self.socket_drops = drops
            parsed = parse_reply(data)
            if parsed is None or not 0 <= parsed[0] < self.sent:
                self.tracker.unreadable()
                continue
            seq = parsed[0]
            sent_ns = self.send_ns[seq]  # ours, not the echoed one: that may be corrupted
            intact = is_intact(data, seq, sent_ns, self.args.size, self.args.seed)
            self.tracker.record(seq, intact, (now_ns - sent_ns) / 1e6)

    def wait_readable(self, timeout):
        if timeout > 0:
            readable, _, _ = select.select([self.sock], [], [], timeout)
            if not readable:
                return
        self.drain()

    def send_one(self, seq):
        while True:
            send_ns = time.monotonic_ns()
            payload = build_payload(seq, send_ns, self.args.size, self.args.seed)
            try:
                if self.args.connect:
                    self.sock.send(payload)
                else:
                    self.sock.sendto(payload, self.remote)
            except OSError as exc:
                if exc.errno not in _RETRY_SEND:
                    raise
                # Send buffer or device queue full: read replies meanwhile.
                self.send_retries += 1
                select.select([self.sock], [self.sock], [], 0.01)
                self.drain()
                continue
            self.send_ns[seq] = send_ns
            self.sent = seq + 1
            return

    def send_all(self):
        """Paced on a fixed monotonic schedule (start + seq/rate), so a late
        wake-up is caught up instead of drifting the rate down."""
        interval = 1.0 / self.args.rate if self.args.rate > 0 else 0.0
        start = time.monotonic()
        for seq in range(self.args.count):
            due = start + seq * interval
            while True:
                delay = due - time.monotonic()
                if delay <= 0:
                    break
                self.wait_readable(delay)
            self.send_one(seq)
            self.drain()

    def collect(self, wait):
        deadline = time.monotonic() + wait
        while not self.tracker.complete():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self.wait_readable(remaining)


def new_result(args):
    return {
        "program": PROGRAM, "host": args.host, "port": args.port, "count": args.count,
        "rate": args.rate, "size": args.size, "connected": args.connect,
        "sent": 0, "received": 0, "lost": 0, "duplicated": 0, "reordered": 0,
        "corrupted": 0, "unmatched": 0, "delivery": None,
        "rtt_ms": common.summarize([]), "duration_s": None, "send_duration_s": None,
        "send_rate_pps": None, "rcvbuf": None,
        # Where a lost reply can be seen on this host: the kernel's drops on our
        # socket, this host's UDP receive-buffer drops during the run, our retried sends.
        "socket_drops": None, "host_rcvbuf_errors": None, "send_retries": 0,
        "error": None, "message": None,
    }


def fill_counts(result, m, t_start, t_sent, t_end):
    tr = m.tracker
    result.update(sent=m.sent, received=tr.received, lost=m.sent - tr.received,
                  duplicated=tr.duplicated, reordered=tr.reordered, corrupted=tr.corrupted,
                  unmatched=tr.unmatched, rtt_ms=common.summarize(tr.rtts_ms),
                  socket_drops=m.socket_drops,
                  send_retries=m.send_retries)
    result["delivery"] = round(tr.received / m.sent, 6) if m.sent else None
    if t_start is not None:
        result["duration_s"] = round(t_end - t_start, 6)
        send_s = (t_sent or t_end) - t_start
        result["send_duration_s"] = round(send_s, 6)
        result["send_rate_pps"] = round(m.sent / send_s, 1) if send_s > 0 else None


def exchange(args, result):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    m = Measurement(sock, args)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
        m.socket_drops = 0  # the kernel adds the count to a datagram only once it is > 0
    except OSError:  # not Linux: the count stays None
        pass
    errors_before = read_rcvbuf_errors()
    t_start = t_sent = None
    try:
        try:
            m.remote = common.resolve(args.host, args.port, socket.SOCK_DGRAM)
            result["rcvbuf"] = common.raise_rcvbuf(sock, RCVBUF)
            if args.connect:
                sock.connect(m.remote)
            sock.setblocking(False)
            t_start = time.monotonic()
            m.send_all()
            t_sent = time.monotonic()
            m.collect(args.wait)
        except OSError as exc:  # e.g. ECONNREFUSED: keep the counts made so far
            common.set_error(result, exc)
    finally:
        sock.close()
        fill_counts(result, m, t_start, t_sent, time.monotonic())
        errors_after = read_rcvbuf_errors()
        if errors_before is not None and errors_after is not None:
            result["host_rcvbuf_errors"] = errors_after - errors_before
    if args.timeline:  # before the result, which must stay the last JSON line
        common.emit_json({"timeline": timeline(m.send_ns, m.tracker.first_rtt_ms, m.sent)})


def main(argv=None) -> int:
    common.setup_process()
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    return common.run_client(args, new_result(args), exchange)


if __name__ == "__main__":
    sys.exit(main())

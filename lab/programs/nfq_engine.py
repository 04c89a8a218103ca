"""Userspace impairment engine for the lab's router: loss, delay, jitter, reorder,
duplicate and corrupt on packets that iptables sends to NFQUEUE.

Runs inside the router container (stdlib only, needs NET_ADMIN; NET_RAW for duplicates):

    python3 -m lab.programs.nfq_engine --config FILE [--seed N]

It speaks nfnetlink_queue directly over an AF_NETLINK socket, binds one queue per
directed link named in the config, and gives each queued packet a verdict now or later
(held packets are released from a timer heap, so verdicts go out of order).

Lifecycle, on stdout, one JSON object per line:
  {"event": "ready", ...}     once every queue is bound (start sending traffic after this)
  {"event": "stats", ...}     on SIGUSR1, and {"event": "exit", ...} when stopping
  {"event": "reloaded"} / {"event": "reload_failed", "error": ...}   after SIGHUP
SIGTERM or SIGINT: release held packets at once, unbind, print the exit line, exit 0.

Fail-open: the iptables rules use --queue-bypass, so if this process dies packets flow
UNIMPAIRED.  Whoever starts the engine must keep checking it is alive.

Config (JSON):
  {"version": 1, "queue_maxlen": 20000,
   "links": [{"queue": 0, "link": "clients->servers",
              "loss": 5, "loss_correlation": 25,            # percent; or instead of loss:
              "gemodel": {"p": 1, "r": 30, "one_minus_h": 100, "one_minus_k": 0},
              "delay_ms": 40, "jitter_ms": 10, "reorder": 25,
              "duplicate": 1, "corrupt": 0.1, "partition": false,
              "skb_priority": 65552}]}                      # tc class 1:10 for duplicates
Missing or null fields are "not set".  Semantics follow tc-netem, in its order: drop
(partition, loss), duplicate, corrupt, then delay or (reorder %) send at once.
"""

from __future__ import annotations

import argparse
import errno
import heapq
import json
import os
import random
import select
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple

# -- nfnetlink_queue protocol (linux/netfilter/nfnetlink_queue.h) --------------------------

NETLINK_NETFILTER = 12
NLMSG_ERROR = 2
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2

NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQA_CFG_MASK = 4
NFQA_CFG_FLAGS = 5
NFQA_CFG_F_GSO = 1 << 2      # hand GSO packets over whole, not cut into segments first
NFQNL_CFG_CMD_BIND = 1
NFQNL_CFG_CMD_UNBIND = 2
NFQNL_COPY_META = 1         # the packet's metadata only: no payload copied to us
NFQNL_COPY_PACKET = 2

NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_PAYLOAD = 10

NF_DROP = 0
NF_ACCEPT = 1

NLA_TYPE_MASK = 0x3FFF  # strips the nested / byte-order flag bits
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)

_NLMSGHDR = struct.Struct("=IHHII")   # len, type, flags, seq, pid (host byte order)
_NFGENMSG = struct.Struct("!BBH")     # family, version, res_id (queue number, big-endian)
_NLATTR = struct.Struct("=HH")        # len, type
_PACKET_HDR = struct.Struct("!IHB")   # packet_id, hw_protocol, hook
_VERDICT_HDR = struct.Struct("!II")   # verdict, packet_id
_HEADERS_LEN = _NLMSGHDR.size + _NFGENMSG.size


def _align4(n: int) -> int:
    return (n + 3) & ~3


def pack_attr(attr_type: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    length = _NLATTR.size + len(payload)
    return _NLATTR.pack(length, attr_type) + payload + b"\0" * (_align4(length) - length)


def pack_message(msg_type: int, queue: int, attrs: bytes, *, flags: int = NLM_F_REQUEST,
                 seq: int = 0, family: int = socket.AF_UNSPEC) -> bytes:
    """A nfnetlink_queue message: netlink header, nfgenmsg (queue in res_id), attributes."""
    length = _HEADERS_LEN + len(attrs)
    return (_NLMSGHDR.pack(length, (NFNL_SUBSYS_QUEUE << 8) | msg_type, flags, seq, 0)
            + _NFGENMSG.pack(family, 0, queue) + attrs)


def config_command(queue: int, command: int, seq: int) -> bytes:
    # struct nfqnl_msg_config_cmd { u8 command; u8 pad; __be16 pf; }
    cmd = struct.pack("!BxH", command, socket.AF_INET)
    return pack_message(NFQNL_MSG_CONFIG, queue, pack_attr(NFQA_CFG_CMD, cmd),
                        flags=NLM_F_REQUEST | NLM_F_ACK, seq=seq)


def config_copy_packet(queue: int, maxlen: int, seq: int, copy_range: int = 0xFFFF,
                       whole: bool = False) -> bytes:
    """Copy whole packets to us, and let the kernel hold up to ``maxlen`` for this queue
    (packets we are delaying count against it).

    ``whole`` is for links whose packets we never read nor split (delay, jitter,
    reorder, partition): the payload stays in the kernel (metadata-only copies) and GSO
    packets come whole, so a 64 KiB TCP burst is one verdict instead of forty-five."""
    # struct nfqnl_msg_config_params { __be32 copy_range; u8 copy_mode; } __packed
    mode = NFQNL_COPY_META if whole else NFQNL_COPY_PACKET
    params = struct.pack("!IB", 0 if whole else copy_range, mode)
    flags = struct.pack("!I", NFQA_CFG_F_GSO if whole else 0)
    attrs = (pack_attr(NFQA_CFG_PARAMS, params)
             + pack_attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", maxlen))
             + pack_attr(NFQA_CFG_FLAGS, flags)
             + pack_attr(NFQA_CFG_MASK, struct.pack("!I", NFQA_CFG_F_GSO)))
    return pack_message(NFQNL_MSG_CONFIG, queue, attrs, flags=NLM_F_REQUEST | NLM_F_ACK, seq=seq)


def verdict_message(queue: int, packet_id: int, verdict: int,
                    payload: Optional[bytes] = None) -> bytes:
    attrs = pack_attr(NFQA_VERDICT_HDR, _VERDICT_HDR.pack(verdict, packet_id))
    if payload is not None:
        attrs += pack_attr(NFQA_PAYLOAD, payload)  # the kernel replaces the packet with it
    return pack_message(NFQNL_MSG_VERDICT, queue, attrs)


def iter_messages(buf: bytes) -> Iterator[Tuple[int, int, bytes]]:
    """(type, seq, body) for each netlink message in one datagram."""
    offset = 0
    while offset + _NLMSGHDR.size <= len(buf):
        length, msg_type, _flags, seq, _pid = _NLMSGHDR.unpack_from(buf, offset)
        if length < _NLMSGHDR.size or offset + length > len(buf):
            raise ValueError(f"truncated netlink message (length {length} at {offset})")
        yield msg_type, seq, buf[offset + _NLMSGHDR.size:offset + length]
        offset += _align4(length)


def parse_attrs(buf: bytes, offset: int = 0) -> Dict[int, bytes]:
    attrs = {}
    while offset + _NLATTR.size <= len(buf):
        length, attr_type = _NLATTR.unpack_from(buf, offset)
        if length < _NLATTR.size:
            raise ValueError(f"bad netlink attribute length {length}")
        attrs[attr_type & NLA_TYPE_MASK] = buf[offset + _NLATTR.size:offset + length]
        offset += _align4(length)
    return attrs


@dataclass
class QueuedPacket:
    queue: int
    packet_id: int
    payload: bytes


def parse_packet(body: bytes) -> QueuedPacket:
    """A NFQNL_MSG_PACKET body (after the netlink header)."""
    _family, _version, queue = _NFGENMSG.unpack_from(body, 0)
    attrs = parse_attrs(body, _NFGENMSG.size)
    packet_id, _proto, _hook = _PACKET_HDR.unpack_from(attrs[NFQA_PACKET_HDR], 0)
    return QueuedPacket(queue, packet_id, attrs.get(NFQA_PAYLOAD, b""))


def parse_error(body: bytes) -> int:
    """The errno in a NLMSG_ERROR body (0 for an acknowledgement)."""
    (error,) = struct.unpack_from("=i", body, 0)
    return -error


# -- decisions (pure: a seeded random.Random in, numbers out) -------------------------------


class BernoulliLoss:
    def __init__(self, percent: float):
        self.p = percent / 100

    def lost(self, rng: random.Random) -> bool:
        return rng.random() < self.p


class CorrelatedLoss:
    """Loss whose events are correlated: a two-state Markov chain whose long-run loss rate
    is ``loss`` and whose lag-1 correlation between loss events is ``correlation``.

    (netem mixes successive uniform numbers instead, which also lowers the loss rate it
    gives; this keeps the configured rate.)
    """

    def __init__(self, percent: float, correlation_percent: float):
        p, rho = percent / 100, correlation_percent / 100
        self.after_loss = p + rho * (1 - p)
        self.after_pass = p * (1 - rho)
        self.previous = False

    def lost(self, rng: random.Random) -> bool:
        chance = self.after_loss if self.previous else self.after_pass
        self.previous = rng.random() < chance
        return self.previous


class GilbertElliottLoss:
    """netem's ``loss gemodel p r 1-h 1-k``: lose by the current state's chance, then
    maybe change state (Good -> Bad with p, Bad -> Good with r)."""

    def __init__(self, p: float, r: float, one_minus_h: float = 100, one_minus_k: float = 0):
        self.p, self.r = p / 100, r / 100
        self.loss_bad, self.loss_good = one_minus_h / 100, one_minus_k / 100
        self.bad = False

    def lost(self, rng: random.Random) -> bool:
        chance = self.loss_bad if self.bad else self.loss_good
        switch = rng.random() < (self.r if self.bad else self.p)
        lost = rng.random() < chance
        if switch:
            self.bad = not self.bad
        return lost


class NoLoss:
    def lost(self, rng: random.Random) -> bool:
        return False


_LINK_FIELDS = {"queue", "link", "loss", "loss_correlation", "gemodel", "delay_ms",
                "jitter_ms", "reorder", "duplicate", "corrupt", "partition", "skb_priority"}


@dataclass(frozen=True)
class LinkConfig:
    queue: int
    link: str = ""
    loss: float = 0.0
    loss_correlation: float = 0.0
    gemodel: Optional[dict] = None
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    reorder: float = 0.0
    duplicate: float = 0.0
    corrupt: float = 0.0
    partition: bool = False
    skb_priority: Optional[int] = None  # SO_PRIORITY for our duplicates: the link's tc class

    @classmethod
    def from_dict(cls, data: dict) -> "LinkConfig":
        unknown = set(data) - _LINK_FIELDS
        if unknown:
            raise ValueError(f"unknown field(s) in link config: {', '.join(sorted(unknown))}")
        values = {k: v for k, v in data.items() if v is not None}
        config = cls(**values)
        for name in ("loss", "loss_correlation", "reorder", "duplicate", "corrupt"):
            if not 0 <= getattr(config, name) <= 100:
                raise ValueError(f"queue {config.queue}: {name} must be 0..100")
        if config.delay_ms < 0 or config.jitter_ms < 0:
            raise ValueError(f"queue {config.queue}: delay and jitter must not be negative")
        return config

    @property
    def whole_packets(self) -> bool:
        """True when no decision needs the payload or per-segment chances: delay,
        jitter, reorder and partition act on a GSO packet as on each of its segments,
        while loss, duplicates and corruption are per segment (as tests count them)."""
        return not (self.loss or self.gemodel or self.duplicate or self.corrupt)

    def loss_model(self):
        if self.gemodel:
            return GilbertElliottLoss(**self.gemodel)
        if self.loss and self.loss_correlation:
            return CorrelatedLoss(self.loss, self.loss_correlation)
        if self.loss:
            return BernoulliLoss(self.loss)
        return NoLoss()


@dataclass(frozen=True)
class Emission:
    """One packet to let out: after ``delay`` seconds, corrupted or not.  ``copy`` marks a
    duplicate (sent by us) rather than the queued original (released by a verdict)."""

    delay: float
    corrupt: bool = False
    copy: bool = False
    reordered: bool = False


@dataclass
class Counters:
    seen: int = 0
    dropped: int = 0
    delayed: int = 0
    reordered: int = 0
    corrupted: int = 0
    duplicated: int = 0


class LinkImpairer:
    """Decides what happens to each packet of one link.  Holds the loss model's state."""

    def __init__(self, config: LinkConfig, rng: random.Random):
        self.config = config
        self.rng = rng
        self.loss_model = config.loss_model()
        self.counters = Counters()

    def decide(self) -> List[Emission]:
        """The emissions for the next packet: [] drops it, two means a duplicate."""
        cfg, rng = self.config, self.rng
        self.counters.seen += 1
        if cfg.partition or self.loss_model.lost(rng):
            self.counters.dropped += 1
            return []
        copies = 2 if cfg.duplicate and rng.random() * 100 < cfg.duplicate else 1
        self.counters.duplicated += copies - 1
        emissions = []
        for index in range(copies):
            corrupt = bool(cfg.corrupt) and rng.random() * 100 < cfg.corrupt
            self.counters.corrupted += corrupt
            delay, reordered = self._delay()
            self.counters.reordered += reordered
            self.counters.delayed += delay > 0
            emissions.append(Emission(delay, corrupt, copy=index > 0, reordered=reordered))
        return emissions

    def _delay(self) -> Tuple[float, bool]:
        """Seconds to hold a packet.  netem: a ``reorder`` share goes at once (overtaking
        the delayed ones); the rest wait delay +- jitter, uniform, never below zero."""
        cfg, rng = self.config, self.rng
        if not cfg.delay_ms:
            return 0.0, False
        if cfg.reorder and rng.random() * 100 < cfg.reorder:
            return 0.0, True
        delay_ms = cfg.delay_ms
        if cfg.jitter_ms:
            delay_ms += rng.uniform(-cfg.jitter_ms, cfg.jitter_ms)
        return max(delay_ms, 0.0) / 1000, False


def flip_random_bit(packet: bytes, rng: random.Random) -> bytes:
    """Flip one random bit after the IPv4 header (transport header or data), so the packet
    is still routed and the damage is for the receiver's checksum to find.  Checksums are
    left as they are, as netem does."""
    start = (packet[0] & 0x0F) * 4 if packet and packet[0] >> 4 == 4 else 0
    if start >= len(packet):
        start = 0  # nothing after the header: flip anywhere rather than not at all
    damaged = bytearray(packet)
    damaged[rng.randrange(start, len(damaged))] ^= 1 << rng.randrange(8)
    return bytes(damaged)


def link_rng(seed: Optional[int], queue: int) -> random.Random:
    """One generator per link, so a link's decisions repeat whatever other links carry."""
    return random.Random(f"{seed}:{queue}") if seed is not None else random.Random()


def load_config(path: str) -> Tuple[int, Dict[int, LinkConfig]]:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if data.get("version") != 1:
        raise ValueError(f"{path}: unsupported config version {data.get('version')!r}")
    links = {}
    for entry in data.get("links", []):
        config = LinkConfig.from_dict(entry)
        if config.queue in links:
            raise ValueError(f"{path}: queue {config.queue} appears twice")
        links[config.queue] = config
    return int(data.get("queue_maxlen", 20000)), links


# -- the running engine --------------------------------------------------------------------


def kernel_queue_stats() -> Dict[int, dict]:
    """The kernel's own per-queue counters: packets it holds for us, and packets it
    dropped because the queue was full or our socket buffer was."""
    stats = {}
    with open("/proc/net/netfilter/nfnetlink_queue", encoding="ascii") as f:
        for line in f:
            cols = [int(c) for c in line.split()]
            stats[cols[0]] = {"held": cols[2], "queue_full_dropped": cols[5],
                              "socket_full_dropped": cols[6]}
    return stats


@dataclass(order=True)
class _Held:
    release_at: float
    order: int
    queue: int = field(compare=False)
    packet_id: int = field(compare=False)     # -1 for a duplicate we send ourselves
    payload: Optional[bytes] = field(compare=False)


class Engine:
    RECV_BUFSIZE = 0x10000 + 4096
    RCVBUF_BYTES = 64 << 20       # room for bursts while we are busy releasing packets
    MAX_BATCH = 256               # packets read before releasing due ones and flushing
    FLUSH_BYTES = 32 << 10        # verdicts go out in one send of up to this many bytes

    def __init__(self, config_path: str, seed: Optional[int], sock: Optional[socket.socket] = None,
                 clock=time.monotonic):
        """``sock`` and ``clock`` are for tests; by default a fresh netlink socket."""
        self.config_path = config_path
        self.clock = clock
        self.seed = seed
        self.links: Dict[int, LinkImpairer] = {}
        self.maxlen = 20000
        self.heap: List[_Held] = []
        self.order = 0
        self.pending = bytearray()
        self.seq = 0
        self.enobufs = 0
        self.verdict_errors: Dict[str, int] = {}
        self.copy_errors: Dict[str, int] = {}
        self.raw: Optional[socket.socket] = None
        self.flags = {"reload": False, "stats": False, "stop": False}
        if sock is None:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
            sock.bind((0, 0))
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, self.RCVBUF_BYTES)
        self.sock = sock

    # setup ------------------------------------------------------------------------------

    def _request(self, message: bytes) -> None:
        """Send one config message and wait for its acknowledgement; raise on error.
        Packets that arrive meanwhile (a queue already bound) are handled, not lost."""
        self.sock.setblocking(True)
        self.sock.send(message)
        (seq,) = struct.unpack_from("=I", message, 8)
        while True:
            data = self._recv()
            if data is None:
                continue
            for msg_type, msg_seq, body in iter_messages(data):
                if msg_type == NLMSG_ERROR and msg_seq == seq:
                    error = parse_error(body)
                    if error:
                        raise OSError(error, f"nfnetlink_queue config: {os.strerror(error)}")
                    return
                self._handle(msg_type, msg_seq, body)

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def bind(self, queue: int, whole: bool = False) -> None:
        self._request(config_command(queue, NFQNL_CFG_CMD_BIND, self._next_seq()))
        self._request(config_copy_packet(queue, self.maxlen, self._next_seq(), whole=whole))

    def unbind(self, queue: int) -> None:
        self._request(config_command(queue, NFQNL_CFG_CMD_UNBIND, self._next_seq()))

    def apply_config(self, maxlen: int, configs: Dict[int, LinkConfig]) -> None:
        """Bind new queues, unbind dropped ones (releasing what they hold first), and give
        kept queues their new settings.  Held packets keep their release times."""
        if any(c.duplicate for c in configs.values()) and self.raw is None:
            # IPPROTO_RAW implies IP_HDRINCL: we send the copy exactly as forwarded.
            self.raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self.maxlen = maxlen
        for queue in sorted(set(self.links) - set(configs)):
            self._release(lambda held, q=queue: held.queue == q)
            self.flush()
            self.unbind(queue)
            del self.links[queue]
        for queue, config in sorted(configs.items()):
            old = self.links.get(queue)
            if old is None:
                self.bind(queue, whole=config.whole_packets)
                self.links[queue] = LinkImpairer(config, link_rng(self.seed, queue))
            else:
                self._request(config_copy_packet(queue, maxlen, self._next_seq(),
                                                 whole=config.whole_packets))
                # New settings start a new loss state, but keep the generator, and the
                # counters while the queue still serves the same link.
                fresh = LinkImpairer(config, old.rng)
                if config.link == old.config.link:
                    fresh.counters = old.counters
                self.links[queue] = fresh

    # packets ----------------------------------------------------------------------------

    def _handle(self, msg_type: int, seq: int, body: bytes) -> None:
        if msg_type == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
            self._on_packet(parse_packet(body))
        elif msg_type == NLMSG_ERROR:
            # We ask no acks for verdicts, so this is a refused verdict (seq 0), e.g. for a
            # packet the kernel no longer holds.  Counted and reported in the stats.
            name = errno.errorcode.get(parse_error(body), str(parse_error(body)))
            self.verdict_errors[name] = self.verdict_errors.get(name, 0) + 1

    def _on_packet(self, packet: QueuedPacket) -> None:
        link = self.links.get(packet.queue)
        if link is None:  # a queue being unbound: let it pass
            self._verdict(packet.queue, packet.packet_id, NF_ACCEPT)
            return
        emissions = link.decide()
        if not emissions:
            self._verdict(packet.queue, packet.packet_id, NF_DROP)
            return
        now = self.clock()
        for emission in emissions:
            payload = None
            if emission.corrupt:
                payload = flip_random_bit(packet.payload, link.rng)
            elif emission.copy:
                payload = packet.payload
            packet_id = -1 if emission.copy else packet.packet_id
            if emission.delay > 0:
                self.order += 1
                heapq.heappush(self.heap, _Held(now + emission.delay, self.order,
                                                packet.queue, packet_id, payload))
            else:
                self._emit(packet.queue, packet_id, payload)

    def _emit(self, queue: int, packet_id: int, payload: Optional[bytes]) -> None:
        if packet_id >= 0:
            self._verdict(queue, packet_id, NF_ACCEPT, payload)
        else:
            self._send_copy(queue, payload)

    def _send_copy(self, queue: int, packet: bytes) -> None:
        """A duplicate leaves through a raw socket: routed like the original, whose TTL
        the kernel has already lowered before the FORWARD hook queued it.  It skips the
        forward chain that puts the link's packets in their tc class, so we set the
        class as the socket's priority."""
        destination = socket.inet_ntoa(packet[16:20])
        priority = self.links[queue].config.skb_priority
        try:
            if priority is not None:
                self.raw.setsockopt(socket.SOL_SOCKET, socket.SO_PRIORITY, priority)
            self.raw.sendto(packet, (destination, 0))
        except OSError as exc:
            # A lost duplicate is not worth stopping for (stopping would let every packet
            # through unimpaired); it is counted and shown in the stats.
            name = errno.errorcode.get(exc.errno, str(exc.errno))
            self.copy_errors[name] = self.copy_errors.get(name, 0) + 1

    def _verdict(self, queue: int, packet_id: int, verdict: int,
                 payload: Optional[bytes] = None) -> None:
        self.pending += verdict_message(queue, packet_id, verdict, payload)
        if len(self.pending) >= self.FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Send the pending verdicts, many netlink messages in one datagram."""
        if self.pending:
            self.sock.setblocking(True)
            self.sock.send(self.pending)
            self.pending.clear()

    def _release(self, which=None) -> None:
        """Emit held packets: those due now, or (``which``) those matching, at once."""
        if which is None:
            now = self.clock()
            while self.heap and self.heap[0].release_at <= now:
                held = heapq.heappop(self.heap)
                self._emit(held.queue, held.packet_id, held.payload)
            return
        keep = []
        for held in sorted(self.heap):
            if which(held):
                self._emit(held.queue, held.packet_id, held.payload)
            else:
                keep.append(held)
        self.heap = keep  # a sorted list is a valid heap

    def _recv(self) -> Optional[bytes]:
        """One datagram, or None if our receive buffer had overflowed: the kernel then
        dropped packets (they show in kernel_queue_stats as socket_full_dropped).
        Counted in the stats, and reading goes on."""
        try:
            return self.sock.recv(self.RECV_BUFSIZE)
        except OSError as exc:
            if exc.errno != errno.ENOBUFS:
                raise
            self.enobufs += 1
            return None

    def _read_batch(self) -> None:
        self.sock.setblocking(False)
        for _ in range(self.MAX_BATCH):
            try:
                data = self._recv()
            except BlockingIOError:
                return
            if data is None:
                continue
            for msg_type, seq, body in iter_messages(data):
                self._handle(msg_type, seq, body)

    # running ----------------------------------------------------------------------------

    def stats(self) -> dict:
        try:
            kernel = kernel_queue_stats()
        except OSError as exc:
            kernel = {"error": str(exc)}
        return {
            "queues": {str(q): {"link": l.config.link, **vars(l.counters)}
                       for q, l in sorted(self.links.items())},
            "held": len(self.heap),
            "enobufs": self.enobufs,
            "verdict_errors": self.verdict_errors,
            "copy_errors": self.copy_errors,
            "kernel": {str(q): s for q, s in sorted(kernel.items())}
            if "error" not in kernel else kernel,
        }

    def _on_signals(self) -> None:
        if self.flags["reload"]:
            self.flags["reload"] = False
            try:
                self.apply_config(*load_config(self.config_path))
            except (OSError, ValueError, TypeError) as exc:
                # The old settings stay in force; the runner sees this line and decides.
                emit_line({"event": "reload_failed", "error": str(exc)})
            else:
                emit_line({"event": "reloaded", "queues": sorted(self.links)})
        if self.flags["stats"]:
            self.flags["stats"] = False
            emit_line({"event": "stats", **self.stats()})

    def run(self) -> None:
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        # A signal writes a byte here, so the wait returns and the flags get looked at.
        signal.set_wakeup_fd(wake_w.fileno())
        while not self.flags["stop"]:
            # select() waits to the microsecond: poll()'s whole milliseconds, rounded up,
            # would hold every delayed packet up to 1 ms too long.
            timeout = max(0.0, self.heap[0].release_at - self.clock()) if self.heap else None
            readable, _, _ = select.select([self.sock, wake_r], [], [], timeout)
            if wake_r in readable:
                while True:
                    try:
                        wake_r.recv(64)
                    except BlockingIOError:
                        break
            if self.sock in readable:
                self._read_batch()
            self._release()
            self.flush()
            self._on_signals()

    def shutdown(self) -> dict:
        """Let every held packet go now (late, but not lost), unbind, and return the final
        stats (taken before unbinding, while the kernel still has its queue counters)."""
        released = len(self.heap)
        self._release(lambda held: True)
        self.flush()
        final = {**self.stats(), "released_at_exit": released}
        for queue in sorted(self.links):
            self.unbind(queue)
        return final


def emit_line(obj: dict) -> None:
    print(json.dumps(obj, sort_keys=True), flush=True)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m lab.programs.nfq_engine",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="JSON config file (reloaded on SIGHUP)")
    parser.add_argument("--seed", type=int, help="make the random choices repeatable")
    args = parser.parse_args(argv)

    maxlen, links = load_config(args.config)
    engine = Engine(args.config, args.seed)

    def set_flag(name):
        return lambda _signum, _frame: engine.flags.__setitem__(name, True)

    signal.signal(signal.SIGHUP, set_flag("reload"))
    signal.signal(signal.SIGUSR1, set_flag("stats"))
    signal.signal(signal.SIGTERM, set_flag("stop"))
    signal.signal(signal.SIGINT, set_flag("stop"))
    engine.apply_config(maxlen, links)
    emit_line({"event": "ready", "pid": os.getpid(), "queues": sorted(engine.links),
               "seed": args.seed})
    engine.run()
    emit_line({"event": "exit", **engine.shutdown()})
    return 0


if __name__ == "__main__":
    sys.exit(main())

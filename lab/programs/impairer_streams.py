"""The stream kinds, decided per TCP segment: re-segmenting (``segment``, ``gap``),
resetting (``reset_after``), black-holing (``blackhole_after``), slow closes
(``hold_fin``), on a ``connections`` share chosen at each connection's SYN.

Pure: a parsed segment, the link's ``Impairment``, the time and a seeded generator in; a
``StreamVerdict`` out (let the original go, now or later, or drop it, and the packets the
router makes in its place).  The impairer carries it out.  Standard library only.

What the router makes is correct TCP: pieces carry their own sequence numbers and
checksums, and a reset goes to each end with the sequence number that end expects next
(``rcv_nxt``), so Linux takes it (RFC 5961 would only answer a challenge ACK to another).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from lab.programs import tcp_packets as tcp
from lab.programs.shared.impairment import Impairment

FLOW_IDLE_S = 300.0        # a connection not seen for this long is forgotten
FLOW_PRUNE_AT = 10_000     # ... looked for once this many are known
CUT_PIECE = 1400           # without segment, the cut part of a (GSO) segment goes in pieces this big


@dataclass(frozen=True)
class Made:
    """A packet the router makes and sends ``delay`` seconds from now."""

    delay: float
    packet: bytes
    what: str                  # "piece i/n of seq=S", "RST made by the router (reset_after N B)"


@dataclass(frozen=True)
class StreamVerdict:
    accept: bool               # the original packet: let it go (after ``delay``) or drop it
    delay: float = 0.0
    made: Tuple[Made, ...] = ()
    note: str = ""             # what was done, for fates and logs

    @classmethod
    def passes(cls, delay: float = 0.0, note: str = "") -> "StreamVerdict":
        return cls(True, delay, (), note)


PASS = StreamVerdict(True)
DROP = StreamVerdict(False)


@dataclass
class _Direction:
    start: Optional[int] = None      # sequence number of the first payload byte
    busy_until: float = 0.0          # when the last piece made for this direction leaves


@dataclass
class _Flow:
    seen: float
    dead: str = ""                   # "reset" or "blackhole": its packets are dropped
    chosen: Dict[int, bool] = field(default_factory=dict)          # queue -> stream kinds apply?
    directions: Dict[tuple, _Direction] = field(default_factory=dict)


def flow_key(pkt: tcp.TcpPacket) -> tuple:
    a, b = (pkt.src, pkt.sport), (pkt.dst, pkt.dport)
    return (a, b) if a <= b else (b, a)


class Streams:
    """Every TCP connection the impairer has seen, across its links (a reset or a
    blackhole decided on one link drops the connection's packets on the other too)."""

    def __init__(self):
        self.flows: Dict[tuple, _Flow] = {}
        # (flow key, dead?) as connections die or a new SYN revives their addresses: the
        # impairer puts them in (or out of) the kernel's set of dead connections, which
        # drops their packets both ways without queueing the other direction to us.
        self.changed: List[Tuple[tuple, bool]] = []

    def decide(self, imp: Impairment, queue: int, pkt: tcp.TcpPacket, now: float,
               rng: random.Random, counters) -> StreamVerdict:
        key = flow_key(pkt)
        flow = self.flows.get(key)
        if flow is None or (pkt.syn_only and flow.dead):
            if len(self.flows) >= FLOW_PRUNE_AT:
                self._prune(now)
            if flow is not None:
                self.changed.append((key, False))
            flow = self.flows[key] = _Flow(now)
        flow.seen = now
        if flow.dead:
            counters.dropped_dead += 1
            return DROP
        if not imp.stream():
            return PASS
        chosen = flow.chosen.get(queue)
        if chosen is None:
            # At the SYN (or the first packet seen of a connection older than the change).
            chosen = not imp.connections or rng.random() * 100 < imp.connections
            flow.chosen[queue] = chosen
        if not chosen:
            return PASS
        direction = flow.directions.setdefault((pkt.src, pkt.sport), _Direction())
        if pkt.has(tcp.SYN):
            direction.start = (pkt.seq + 1) % tcp.SEQ_MOD
        elif direction.start is None:
            direction.start = pkt.seq
        return self._payload(imp, flow, direction, pkt, now, counters)

    def _payload(self, imp: Impairment, flow: _Flow, direction: _Direction, pkt: tcp.TcpPacket,
                 now: float, counters) -> StreamVerdict:
        size = pkt.payload_len
        offset = (pkt.seq - direction.start) % tcp.SEQ_MOD   # payload bytes before this packet
        limits = [(n, kind) for n, kind in ((imp.reset_after, "reset"),
                                            (imp.blackhole_after, "blackhole")) if n]
        n_limit, ending = min(limits) if limits else (None, "")
        crosses = bool(size) and n_limit is not None and offset + size > n_limit
        at = max(now, direction.busy_until)      # keep this direction's order behind its pieces
        fin = pkt.has(tcp.FIN) and not crosses
        hold = (imp.hold_fin_ms or 0) / 1000 if fin else 0.0
        counters.fins_held += bool(hold)
        keep = max(0, min(size, n_limit - offset)) if crosses else size
        split = bool(imp.segment) and keep > imp.segment
        if not crosses and not split:
            if at > now or hold:
                return StreamVerdict.passes(at - now + hold, f"held {hold:g} s (hold_fin)" if hold else "")
            return PASS

        made: List[Made] = []
        gap = (imp.gap_ms or 0) / 1000
        if keep:
            parts = tcp.pieces(pkt, imp.segment or CUT_PIECE, limit=keep)
            for index, piece in enumerate(parts):
                last = index == len(parts) - 1
                made.append(Made(at - now + index * gap + (hold if last else 0.0), piece,
                                 f"piece {index + 1}/{len(parts)} of seq={pkt.seq}"))
            counters.pieces_made += len(parts) if split else 0
            at += len(parts) * gap if split else 0.0
        direction.busy_until = max(direction.busy_until, at)
        if not crosses:
            return StreamVerdict(False, 0.0, tuple(made), f"cut in {len(made)} pieces (segment {imp.segment})")
        flow.dead = ending
        self.changed.append((flow_key(pkt), True))
        if ending == "blackhole":
            counters.blackholed += 1
            return StreamVerdict(False, 0.0, tuple(made), f"black-holed after {n_limit} B")
        counters.resets_sent += 1
        seq_end = pkt.seq + keep
        why = f"RST made by the router (reset_after {n_limit} B)"
        to_receiver = tcp.reset(pkt.src, pkt.dst, pkt.sport, pkt.dport, seq_end, pkt.ack)
        to_sender = tcp.reset(pkt.dst, pkt.src, pkt.dport, pkt.sport, pkt.ack, seq_end)
        delay = at - now
        made += [Made(delay, to_receiver, why), Made(delay, to_sender, why)]
        return StreamVerdict(False, 0.0, tuple(made), why)

    def _prune(self, now: float) -> None:
        for key in [k for k, f in self.flows.items() if now - f.seen > FLOW_IDLE_S]:
            del self.flows[key]

"""What the router did to each packet, from its captures on both sides of it (pure).

The router captures every interface.  A packet that ARRIVES on one interface (direction IN)
for a host on another network should LEAVE on that network's interface (direction OUT),
unchanged but for its TTL and checksum.  Matching each arrival to the copies that left:

  no copy                      -> dropped, with the reason: the impairments in force on
                                  that link while it was in the router (from its arrival to
                                  the longest delay seen on the link: a partition applied
                                  while it waited in a queue counts); a partition says so;
                                  loss and a full rate-limit queue are both random, so when
                                  both were in force the reason names both, honestly
  two or more copies           -> duplicated
  a copy changed in transit    -> corrupted (same size, one header field or the payload differs)
  left later                   -> delayed by X ms (every copy's delay is kept)
  left before an earlier one   -> reordered (it overtook a packet of its flow that arrived before it)
  no copy, but pieces of it    -> cut: the router re-segmented it (``segment``, or the cut at
                                  ``reset_after``/``blackhole_after``) and sent pieces it made
  an RST nothing brought in    -> made by the router (``reset_after``)
  no copy, but IPv4 fragments  -> fragmented: the router cut the datagram into k fragments
  of its datagram                 for a link's ``mtu`` (each marked ``fragment i/k``); when
                                  one of them did not leave, the whole datagram is lost to
                                  its receiver (which cannot reassemble it): dropped, saying
                                  which fragment and why.  A datagram the sender had already
                                  fragmented is matched as a whole (the router reassembles
                                  before it forwards, then fragments again).

Identical arrivals (same digest: a TCP segment sent twice with identical bytes) share their
copies in time order: a copy belongs to the latest identical arrival before it.  A packet that
arrived in the last moments of the capture without a copy is "unknown", not dropped.

Every arrival gets a Fate (the ladder draws them all); ``FateLog`` keeps the impaired ones
for fates.json, at most ``limit`` of them, and says when it cut.
"""
from __future__ import annotations

import bisect
import ipaddress
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ..programs.shared.impairment import Impairment
from .model import FRAGMENT_WINDOW_S, IN, OUT, Packet

DELAYED_MS = 1.0          # a copy this much later than its arrival is "delayed"
END_MARGIN_S = 0.2        # arrivals this close to the capture's end may not have left yet
FUZZY_WINDOW_S = 10.0     # a corrupted copy leaves within this of its arrival
FATES_LIMIT = 5000        # impaired packets kept in fates.json

UNKNOWN_REASON = "which impairment: not recorded"
FORWARDED, DROPPED, DUPLICATED, CORRUPTED, UNKNOWN = "forwarded", "dropped", "duplicated", "corrupted", "unknown"
CUT = "cut"
FRAGMENTED = "fragmented"


@dataclass(frozen=True)
class Iface:
    """A router interface: its name, the lab network it is on and that network's subnet."""
    name: str
    network: str
    subnet: str

    def holds(self, address: str) -> bool:
        return ipaddress.ip_address(address) in ipaddress.ip_network(self.subnet)


def _egress_finder(ifaces: Sequence[Iface]):
    """address -> the interface whose subnet holds it (cached: a run has few addresses)."""
    cache: Dict[str, Optional[Iface]] = {}

    def find(address: str) -> Optional[Iface]:
        if address not in cache:
            cache[address] = next((i for i in ifaces if i.holds(address)), None)
        return cache[address]
    return find


@dataclass(frozen=True)
class Window:
    """An impairment in force on a link ("clients->servers") from ``start`` to ``end`` (epoch s)."""
    start: float
    end: float
    link: str
    impairment: Impairment


def windows(changes: Sequence[Tuple[float, float, Mapping]], end: float = math.inf) -> List[Window]:
    """Windows from the router's successive states: ``changes`` are (began, finished, state)
    in time order, a state mapping a link (anything whose str() is "a->b") to its Impairment.
    While a change is being applied both the old and the new state count as in force."""
    out: List[Window] = []
    for i, (began, _finished, state) in enumerate(changes):
        until = changes[i + 1][1] if i + 1 < len(changes) else end
        for link, imp in state.items():
            if not imp.is_empty():
                out.append(Window(began, until, str(link), imp))
    return out


def in_force(wins: Iterable[Window], link: str, t: float, until: Optional[float] = None) -> List[Impairment]:
    """The impairments in force on ``link`` at ``t``, or at any moment from ``t`` to ``until``."""
    until = t if until is None else until
    return [w.impairment for w in wins if w.link == link and w.start <= until and t <= w.end]


def drop_reason(imps: Sequence[Impairment]) -> str:
    """Why a packet that did not leave was dropped, from what was in force (see module doc)."""
    if any(i.partition for i in imps):
        return "partition"
    causes = []
    for imp in imps:
        if imp.loss:
            causes.append(f"loss {imp.loss:g}%" + (f" (correlated {imp.loss_correlation:g}%)" if imp.loss_correlation else ""))
        if imp.gemodel is not None:
            causes.append(f"bursty loss (mean {imp.gemodel.mean_loss_percent():.3g}%)")
        if imp.rate_kbit:
            queue = f", queue {imp.queue_limit} packets" if imp.queue_limit else ""
            causes.append(f"rate limiter's queue (rate {imp.rate_kbit:g} kbit/s{queue})")
    causes = list(dict.fromkeys(causes))
    if not causes:
        return "no impairment in force: dropped by the router's kernel"
    if len(causes) == 1:
        return causes[0] + " in force"
    return " or ".join(causes) + ": each in force"


@dataclass
class Fate:
    """What became of one packet that arrived at the router to be forwarded."""
    packet: Packet
    link: str                              # "clients->servers"
    verdict: str = FORWARDED
    copies: List[Packet] = field(default_factory=list)
    reason: str = ""                       # for drops
    reordered: bool = False
    fragments: int = 0                     # k: the fragments the router cut its datagram into
    lost_fragments: List[int] = field(default_factory=list)   # which of them did not leave (1-based)
    sent_fragment: str = ""                # "2/2" for a fragment the sender made (its datagram's fate)

    @property
    def delays_ms(self) -> List[float]:
        return [round((c.t - self.packet.t) * 1000, 3) for c in self.copies]

    @property
    def delay_ms(self) -> Optional[float]:
        return self.delays_ms[0] if self.copies else None

    @property
    def delayed(self) -> bool:
        return self.delay_ms is not None and self.delay_ms >= DELAYED_MS

    @property
    def impaired(self) -> bool:
        return self.verdict != FORWARDED or self.delayed or self.reordered

    def label(self) -> str:
        """'dropped (partition)', 'duplicated ×2', 'delayed 20.1 ms, reordered', ''."""
        parts = []
        if self.sent_fragment:
            parts.append(f"fragment {self.sent_fragment} from the sender")
        if self.fragments:
            parts.append(f"fragmented by the router into {self.fragments} fragments")
        if self.verdict == DROPPED and self.fragments:
            lost = self.lost_fragments
            which = (f"all {len(lost)} fragments" if len(lost) == self.fragments > 1
                     else ("fragments " if len(lost) > 1 else "fragment ") + ", ".join(f"{i}/{self.fragments}" for i in lost))
            parts.append(f"{which} dropped ({self.reason}): the datagram is lost")
        elif self.verdict == DROPPED:
            parts.append(f"dropped ({self.reason})")
        elif self.verdict == UNKNOWN:
            parts.append("not seen leaving (capture ended)")
        elif self.verdict == DUPLICATED:
            parts.append(f"duplicated ×{len(self.copies)}")
        elif self.verdict == CORRUPTED:
            parts.append("corrupted")
        elif self.verdict == CUT:
            parts.append(f"cut by the router into {len(self.copies)} piece{'s' if len(self.copies) > 1 else ''}")
        if self.delayed:
            parts.append(f"delayed {self.delay_ms:.1f} ms")
        if self.reordered:
            parts.append("reordered")
        return ", ".join(parts)

    def as_dict(self, t0: float = 0.0) -> dict:
        p = self.packet
        data = {"t": round(p.t - t0, 6), "link": self.link, "verdict": self.verdict,
                "proto": p.proto, "src": f"{p.src}:{p.sport}" if p.sport else p.src,
                "dst": f"{p.dst}:{p.dport}" if p.dport else p.dst, "ip_id": p.ip_id, "length": p.length,
                "label": self.label()}
        if p.proto == "tcp":
            data.update(flags=p.flags, seq=p.seq, ack=p.ack, payload_len=p.payload_len)
        if p.udp_seq is not None:
            data["udp_seq"] = p.udp_seq
        if p.icmp:
            data["icmp"] = p.icmp
        if self.reason:
            data["reason"] = self.reason
        if self.copies:
            data["copies"] = len(self.copies)
            data["delays_ms"] = self.delays_ms
        if self.reordered:
            data["reordered"] = True
        if self.fragments:
            data["fragments"] = self.fragments
        if self.lost_fragments:
            data["lost_fragments"] = list(self.lost_fragments)
        return data


@dataclass
class Matched:
    fates: List[Fate]                 # every arrival to forward, in time order
    local: List[Packet]               # to or from the router itself
    unmatched_out: List[Packet]       # left without a seen arrival (capture started late, or router-made)
    made: Dict[int, str] = field(default_factory=dict)   # id() of an unmatched packet the router made -> what


def _field_changes(a: Packet, b: Packet) -> int:
    names = ("src", "dst", "proto", "sport", "dport", "ip_id", "flags", "seq", "ack", "payload_len")
    return sum(getattr(a, n) != getattr(b, n) for n in names)


def match(packets: Iterable[Packet], ifaces: Sequence[Iface], wins: Optional[Sequence[Window]] = (),
          capture_end: Optional[float] = None) -> Matched:
    """Every packet the router was given to forward, with its fate (see the module docstring).
    ``wins``: the impairments in force over time; None when they are not known (then a drop
    says so rather than guess a reason)."""
    by_name = {i.name: i for i in ifaces}
    arrivals: List[Tuple[Packet, Iface, Iface]] = []
    leaving: Dict[Tuple[str, str], List[Packet]] = defaultdict(list)   # (iface, digest) -> copies
    local: List[Packet] = []
    egress = _egress_finder(ifaces)
    for p in sorted(packets, key=lambda p: (p.t, p.iface, p.index)):
        here = by_name.get(p.iface)
        if p.direction == IN and here is not None:
            there = egress(p.dst)
            if there is not None and there is not here:
                arrivals.append((p, here, there))
                continue
        if p.direction == OUT:
            leaving[(p.iface, p.digest)].append(p)
            continue
        local.append(p)

    fates = [Fate(p, f"{a.network}->{b.network}") for p, a, b in arrivals]
    # Identical arrivals share their copies in time order (see the module docstring).
    same: Dict[Tuple[str, str], List[int]] = defaultdict(list)
    for n, (p, _a, b) in enumerate(arrivals):
        same[(b.name, p.digest)].append(n)
    used = set()
    for key, numbers in same.items():
        copies = leaving.get(key, [])
        times = [c.t for c in copies]
        for k, n in enumerate(numbers):
            start = bisect.bisect_left(times, fates[n].packet.t)
            stop = bisect.bisect_left(times, fates[numbers[k + 1]].packet.t) if k + 1 < len(numbers) else len(copies)
            fates[n].copies = copies[start:stop]
            used.update(id(c) for c in fates[n].copies)
    unmatched = sorted((c for cs in leaving.values() for c in cs if id(c) not in used), key=lambda c: c.t)

    # A copy changed in transit: the same size, leaving soon after, one field (or only the payload) changed.
    spare: Dict[Tuple[str, int], List[Packet]] = defaultdict(list)
    for c in unmatched:
        spare[(c.iface, c.length)].append(c)
    for fate, (_p, _a, there) in zip(fates, arrivals):
        candidates = spare.get((there.name, fate.packet.length)) if not fate.copies else None
        if not candidates:
            continue
        p = fate.packet
        first = bisect.bisect_left([c.t for c in candidates], p.t)
        for c in candidates[first:]:
            if c.t > p.t + FUZZY_WINDOW_S:
                break
            if _field_changes(p, c) <= 1 and (c.frag_offset, c.more_fragments) == (p.frag_offset, p.more_fragments):
                fate.copies = [c]
                fate.verdict = CORRUPTED
                candidates.remove(c)
                used.add(id(c))
                break
    unmatched = [c for c in unmatched if id(c) not in used]
    made = _router_made(fates, arrivals, unmatched)
    made.update(_fragmented(fates, arrivals, [c for c in unmatched if id(c) not in made], wins))

    # A packet stays in the router up to the longest delay seen on its link (a queue, the
    # impairer): whatever was in force during that time may have dropped it, e.g. a partition
    # applied while it waited in a rate limiter's queue.
    held: Dict[str, float] = defaultdict(float)
    for fate in fates:
        if fate.copies:
            held[fate.link] = max(held[fate.link], fate.copies[0].t - fate.packet.t)
    for fate in fates:
        if fate.verdict in (CORRUPTED, CUT):
            continue
        if fate.fragments and not fate.copies and capture_end is not None \
                and fate.packet.t >= capture_end - END_MARGIN_S:
            fate.fragments, fate.lost_fragments = 0, []         # may not have left yet: unknown, below
        if fate.fragments:
            if fate.lost_fragments:
                t = fate.packet.t
                fate.verdict = DROPPED
                fate.reason = (UNKNOWN_REASON if wins is None
                               else drop_reason(in_force(wins, fate.link, t, t + held[fate.link])))
            continue
        if not fate.copies:
            if capture_end is not None and fate.packet.t >= capture_end - END_MARGIN_S:
                fate.verdict = UNKNOWN
            else:
                fate.verdict = DROPPED
                t = fate.packet.t
                fate.reason = (UNKNOWN_REASON if wins is None
                               else drop_reason(in_force(wins, fate.link, t, t + held[fate.link])))
        elif len(fate.copies) > 1:
            fate.verdict = DUPLICATED
    _mark_reordered(fates)
    return Matched(fates, local, unmatched, made)


def _router_made(fates: Sequence[Fate], arrivals, unmatched: Sequence[Packet]) -> Dict[int, str]:
    """The stream faults' packets: TCP pieces whose sequence numbers lie inside a segment that
    arrived and did not leave (that segment's fate becomes CUT, the pieces its copies), and
    RSTs that nothing brought in.  id() of each -> its note."""
    made: Dict[int, str] = {}
    by_flow: Dict[tuple, List[Packet]] = defaultdict(list)
    for c in unmatched:
        if c.proto == "tcp":
            by_flow[(c.iface, c.flow)].append(c)
    for fate, (p, _a, there) in zip(fates, arrivals):
        if fate.copies or fate.verdict != FORWARDED or p.proto != "tcp" or not p.payload_len:
            continue
        pieces = [c for c in by_flow.get((there.name, p.flow), ())
                  if id(c) not in made and "RST" not in c.flags and p.t <= c.t <= p.t + FUZZY_WINDOW_S
                  and 0 <= (c.seq - p.seq) % (1 << 32) < p.payload_len]
        if pieces:
            fate.verdict, fate.copies = CUT, pieces
            for n, c in enumerate(pieces, 1):
                made[id(c)] = f"piece {n}/{len(pieces)}, made by the router"
    for c in unmatched:
        if c.proto == "tcp" and "RST" in c.flags and id(c) not in made:
            made[id(c)] = "RST made by the router"
    return made


def _datagrams(fates: Sequence[Fate], arrivals) -> List[Tuple[str, List[Fate]]]:
    """Arrivals that did not leave as they came, as datagrams: (egress interface, the arrivals of
    one datagram: a whole packet, or the fragments the sender made, in time order)."""
    out: List[Tuple[str, List[Fate]]] = []
    open_: Dict[tuple, List[Fate]] = {}
    for fate, (p, _a, there) in zip(fates, arrivals):
        if fate.copies or fate.verdict != FORWARDED:
            continue
        key = (there.name, p.datagram)
        group = open_.get(key)
        if (not p.fragment or group is None or p.t - group[0].packet.t > FRAGMENT_WINDOW_S
                or any(f.packet.frag_offset == p.frag_offset for f in group)):
            group = [fate]
            out.append((there.name, group))
            if p.fragment:
                open_[key] = group
            else:
                open_.pop(key, None)
        else:
            group.append(fate)
    return out


def _fragmented(fates: Sequence[Fate], arrivals, unmatched: Sequence[Packet],
                wins: Optional[Sequence[Window]]) -> Dict[int, str]:
    """IPv4 fragments the router made: a datagram that arrived (whole, or in the sender's own
    fragments) and did not leave as it came, and fragments with its source, destination,
    protocol and id that left on its way soon after.  Its arrivals' fates get the fragment
    count k and which fragments did not leave; id() of each fragment -> 'fragment i/k, ...'."""
    made: Dict[int, str] = {}
    spare: Dict[Tuple[str, tuple], List[Packet]] = defaultdict(list)
    for c in unmatched:
        if c.fragment:
            spare[(c.iface, c.datagram)].append(c)
    for egress, group in _datagrams(fates, arrivals):
        first = group[0].packet
        last = group[-1].packet.t
        pieces = [c for c in spare.get((egress, first.datagram), ())
                  if id(c) not in made and first.t <= c.t <= last + FUZZY_WINDOW_S]
        mtu = _mtu(wins, group[0].link, first.t)
        if not pieces:          # every fragment lost: known only from the mtu in force
            size = _datagram_size(group)
            if mtu and size and size + 20 > mtu and not first.dont_fragment:
                k = -(-size // ((mtu - 20) // 8 * 8))
                for n, fate in enumerate(group, 1):
                    fate.fragments, fate.lost_fragments = k, list(range(1, k + 1))
                    fate.sent_fragment = _sent_fragment(group, n)
            continue
        pieces.sort(key=lambda c: (c.frag_offset, c.t))
        k, place = _fragment_places(group, pieces, mtu)
        for c in pieces:
            made[id(c)] = f"fragment {place(c)}/{k}, made by the router"
        seen = {place(c) for c in pieces}
        for n, fate in enumerate(group, 1):
            fate.verdict, fate.copies, fate.fragments = FRAGMENTED, list(pieces), k
            fate.lost_fragments = [i for i in range(1, k + 1) if i not in seen]
            fate.sent_fragment = _sent_fragment(group, n)
    return made


def _sent_fragment(group: Sequence[Fate], n: int) -> str:
    """'2/2' for the n-th of the fragments the sender made ('2/?' when some never arrived)."""
    if len(group) == 1 and not group[0].packet.fragment:
        return ""
    return f"{n}/{len(group)}" if _complete(group) else f"{n}/?"


def _datagram_size(group: Sequence[Fate]) -> int:
    """The datagram's bytes after its IP header, when what arrived shows its end (else 0)."""
    ends = [f.packet.frag_offset + f.packet.ip_payload_len for f in group if not f.packet.more_fragments]
    return max(ends, default=0)


def _complete(group: Sequence[Fate]) -> bool:
    """The sender's fragments that arrived cover their datagram from 0 to its last fragment."""
    end = 0
    for fate in sorted(group, key=lambda f: f.packet.frag_offset):
        p = fate.packet
        if p.frag_offset > end:
            return False
        end = max(end, p.frag_offset + p.ip_payload_len)
    return not max(group, key=lambda f: f.packet.frag_offset).packet.more_fragments


def _mtu(wins: Optional[Sequence[Window]], link: str, t: float) -> Optional[int]:
    return next((imp.mtu for imp in in_force(wins or (), link, t) if imp.mtu), None)


def _fragment_places(group: Sequence[Fate], pieces: Sequence[Packet], mtu: Optional[int]):
    """k, and each fragment's place 1..k.  A router cuts a datagram into equal fragments but
    the last: their size is a fragment's that has more following, else the mtu's (less a
    20-byte header, to a multiple of 8); the datagram's size is the arrivals' (or the last
    fragment's end)."""
    step = max((c.ip_payload_len for c in pieces if c.more_fragments), default=0)
    if not step and mtu:
        step = (mtu - 20) // 8 * 8
    ends = [f.packet.frag_offset + f.packet.ip_payload_len for f in group if not f.packet.more_fragments]
    ends += [c.frag_offset + c.ip_payload_len for c in pieces if not c.more_fragments]
    if step and ends:
        k = max(1, -(-max(ends) // step))
        return k, lambda c: c.frag_offset // step + 1
    order = {id(c): n for n, c in enumerate(pieces, 1)}      # not enough to know: in offset order
    return len(pieces), lambda c: order[id(c)]


def _mark_reordered(fates: Sequence[Fate]) -> None:
    """A packet that left before one of its own flow that arrived before it overtook it.
    (Across flows the order of a link's packets means nothing to either program.)"""
    latest: Dict[tuple, float] = {}
    for fate in fates:                      # in arrival order
        if not fate.copies:
            continue
        flow = fate.packet.flow
        left = fate.copies[0].t
        if left < latest.get(flow, -math.inf):
            fate.reordered = True
        latest[flow] = max(left, latest.get(flow, -math.inf))


def fate_log(matched: Matched, t0: float, limit: int = FATES_LIMIT) -> dict:
    """fates.json: counts of every verdict, and the impaired packets (at most ``limit``)."""
    counts: Dict[str, int] = defaultdict(int)
    impaired = []
    for fate in matched.fates:
        counts[fate.verdict] += 1
        counts["delayed"] += fate.delayed
        counts["reordered"] += fate.reordered
        if fate.impaired:
            impaired.append(fate)
    return {
        "t0": t0,
        "about": "what the router did to each packet it forwarded, from its captures on both sides; "
                 "t in seconds from t0 (epoch)",
        "arrived": len(matched.fates),
        "counts": dict(sorted(counts.items())),
        "impaired_total": len(impaired),
        "cut": len(impaired) > limit,
        "packets": [f.as_dict(t0) for f in impaired[:limit]],
        "left_without_arrival": len(matched.unmatched_out) - len(matched.made),
        "made_by_router": len(matched.made),
    }

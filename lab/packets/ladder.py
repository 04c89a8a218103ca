"""A ladder diagram as data, and its compact text form (pure).

Hosts are columns (the first network's hosts, e.g. the clients, then the router, then the
others, e.g. the server), time runs downwards, and each packet that reached the router is one
row: an arrow from its sender to its receiver, with its time and, for TCP, flags, relative
seq/ack and length; for UDP its length and a measuring program's datagram number; ICMP by name.
A packet the router dropped ends at the router with the reason; duplicates, corruption, delay,
reordering and TCP retransmissions are marked.

Long exchanges are folded: the first and last rows are kept, and so are the rows worth seeing
in between (drops, retransmissions, SYN/FIN/RST, ICMP...) up to a bound; each run of ordinary
rows between them becomes one row of counts.  So a 5 MB transfer still gives a page.
"""
from __future__ import annotations

import ipaddress
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from .fates import CORRUPTED, CUT, DROPPED, DUPLICATED, FRAGMENTED, UNKNOWN, Fate, Matched
from .model import Packet

HEAD_ROWS, TAIL_ROWS, MIDDLE_ROWS = 16, 10, 40
MAX_ROWS = HEAD_ROWS + TAIL_ROWS + MIDDLE_ROWS     # no folding up to this many
ROUTER = "router"


@dataclass(frozen=True)
class Column:
    name: str
    address: str = ""


@dataclass
class Row:
    t: float                    # seconds from the ladder's t0
    src: int                    # column indexes; -1 for a fold row
    dst: int
    text: str                   # "SYN seq=0 ack=0 len=0", "UDP len=5 #12", "ICMP port unreachable"
    note: str = ""              # "dropped (partition)", "retransmission", "duplicated ×2"
    kind: str = "packet"        # packet | dropped | duplicated | corrupted | unknown | retransmission | fold
    stops_at_router: bool = False
    folded: int = 0             # for a fold row: how many packets it stands for
    segment: tuple = ()         # TCP: (flow, seq) of a segment with data or SYN/FIN, to pair a drop with its resend

    @property
    def marked(self) -> bool:
        """Worth keeping when a long exchange is folded (a queue's delay alone is not)."""
        return self.kind not in ("packet", "delayed") or any(f in self.text for f in ("SYN", "FIN", "RST", "ICMP"))


@dataclass
class Ladder:
    title: str
    columns: List[Column]
    router: int                 # index of the router's column
    rows: List[Row] = field(default_factory=list)
    t0: float = 0.0             # epoch seconds of t = 0
    total: int = 0              # packets before folding
    notes: List[str] = field(default_factory=list)   # e.g. "capture cut at 200000 packets"


def _tcp_text(p: Packet, isn: Dict[tuple, int]) -> str:
    here, back = (p.src, p.sport, p.dst, p.dport), (p.dst, p.dport, p.src, p.sport)
    if "SYN" in p.flags.split(",") or here not in isn:
        isn.setdefault(here, p.seq)
    seq = (p.seq - isn[here]) % 2 ** 32
    parts = [p.flags or "(no flags)", f"seq={seq}"]
    if "ACK" in p.flags.split(","):
        parts.append(f"ack={(p.ack - isn[back]) % 2 ** 32}" if back in isn else f"ack={p.ack}")
    parts.append(f"len={p.payload_len}")
    return " ".join(parts)


def packet_text(p: Packet, isn: Dict[tuple, int]) -> str:
    if p.fragment:
        return _fragment_text(p, isn)
    return _whole_text(p, isn)


def _fragment_text(p: Packet, isn: Dict[tuple, int]) -> str:
    """'UDP len=1500 #3 frag off=0 MF', 'UDP frag off=552 MF len=552' (a later fragment's len is its bytes)."""
    where = f"frag id={p.ip_id} off={p.frag_offset}" + (" MF" if p.more_fragments else "")
    if p.frag_offset:
        return f"{p.proto.upper() if p.proto in ('tcp', 'udp') else p.proto} {where} len={p.ip_payload_len}"
    return f"{_whole_text(p, isn)} {where}"


def _whole_text(p: Packet, isn: Dict[tuple, int]) -> str:
    if p.proto == "tcp":
        return _tcp_text(p, isn)
    if p.proto == "udp":
        return f"UDP len={p.payload_len}" + (f" #{p.udp_seq}" if p.udp_seq is not None else "")
    if p.proto == "icmp":
        return f"ICMP {p.icmp}" + (f" ({p.quoted})" if p.quoted else "")
    return f"{p.proto} len={p.length}"


class _Retransmissions:
    """TCP segments carrying sequence space already sent in the same direction."""

    def __init__(self):
        self.sent_to: Dict[tuple, int] = {}        # flow -> highest seq + len seen (absolute, unwrapped enough)
        self.syns: set = set()

    def check(self, p: Packet) -> bool:
        if p.proto != "tcp":
            return False
        flow = (p.src, p.sport, p.dst, p.dport)
        flags = p.flags.split(",")
        if "SYN" in flags:
            again = (flow, p.seq) in self.syns
            self.syns.add((flow, p.seq))
            self.sent_to.setdefault(flow, p.seq + 1)
            return again
        span = p.payload_len + ("FIN" in flags)
        if span == 0:
            return False
        end = p.seq + span
        top = self.sent_to.get(flow)
        again = top is not None and 0 < (top - p.seq) % 2 ** 32 < 2 ** 31 and (top - end) % 2 ** 32 < 2 ** 31
        if top is None or (end - top) % 2 ** 32 < 2 ** 31:
            self.sent_to[flow] = end
        return again


def columns_for(packets: Sequence[Packet], hosts: Sequence[Tuple[str, str, str]],
                first_network: str) -> Tuple[List[Column], int, Dict[str, int]]:
    """Columns for the hosts that appear in ``packets``: those on ``first_network`` (the
    clients) left of the router, the others right.  ``hosts``: (name, address, network)."""
    seen = {a for p in packets for a in (p.src, p.dst)}
    left, right = [], []
    known = {}
    for name, address, network in hosts:
        if name == ROUTER:
            known[address] = None
            continue
        if address in seen:
            (left if network == first_network else right).append(Column(name, address))
    left.sort(key=_natural), right.sort(key=_natural)
    unknown = [Column(a, a) for a in sorted(seen - {a for _, a, _ in hosts}, key=_address)]   # no name for it
    columns = left + [Column(ROUTER)] + right + unknown
    index = {c.address: i for i, c in enumerate(columns) if c.address}
    router = len(left)
    for address in known:
        index[address] = router
    return columns, router, index


def _address(text: str):
    try:
        return (0, int(ipaddress.ip_address(text)))
    except ValueError:
        return (1, 0)


def _natural(column: Column):
    return [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", column.name)]


def build(matched: Matched, hosts: Sequence[Tuple[str, str, str]], first_network: str = "clients",
          title: str = "", t0: Optional[float] = None) -> Ladder:
    """The unfolded ladder of every packet the router saw (see the module docstring)."""
    events: List[Tuple[float, Packet, Optional[Fate]]] = [(f.packet.t, f.packet, f) for f in matched.fates]
    events += [(p.t, p, None) for p in matched.local]
    events += [(p.t, p, None) for p in matched.unmatched_out]
    events.sort(key=lambda e: e[0])
    packets = [p for _, p, _ in events]
    columns, router, index = columns_for(packets, hosts, first_network)
    if t0 is None:
        t0 = events[0][0] if events else 0.0
    ladder = Ladder(title, columns, router, t0=t0, total=len(events))
    isn: Dict[tuple, int] = {}
    retrans = _Retransmissions()
    unmatched = {id(p) for p in matched.unmatched_out}
    for t, p, fate in events:
        src, dst = index.get(p.src, router), index.get(p.dst, router)
        row = Row(t - t0, src, dst, packet_text(p, isn))
        if p.proto == "tcp" and (p.payload_len or "SYN" in p.flags or "FIN" in p.flags):
            row.segment = (p.src, p.sport, p.dst, p.dport, p.seq)
        notes = []
        if id(p) not in matched.made and retrans.check(p):   # pieces re-send the cut segment's seq
            row.kind = "retransmission"
            notes.append("retransmission")
        if fate is not None:
            label = fate.label()
            if label:
                notes.append(label)
            if fate.verdict in (DROPPED, UNKNOWN):
                row.kind, row.stops_at_router = fate.verdict, True
            elif fate.verdict in (CUT, FRAGMENTED):    # its pieces are drawn from the router
                row.stops_at_router = True
            elif fate.verdict in (DUPLICATED, CORRUPTED):
                row.kind = fate.verdict
            elif fate.reordered and row.kind == "packet":
                row.kind = "reordered"
            elif fate.delayed and row.kind == "packet":
                row.kind = "delayed"
        elif id(p) in matched.made:
            src = router
            notes.append(matched.made[id(p)])
        elif id(p) in unmatched:
            src = router
            notes.append("left the router; its arrival was not captured")
        elif src == dst:                                # to or from the router itself
            row.stops_at_router = dst == router
        row.src = src
        row.note = ", ".join(notes)
        ladder.rows.append(row)
    return ladder


def fold(ladder: Ladder, head: int = HEAD_ROWS, tail: int = TAIL_ROWS, middle: int = MIDDLE_ROWS) -> Ladder:
    """The ladder with its middle folded (see the module docstring); short ones unchanged."""
    rows = ladder.rows
    if len(rows) <= head + tail + middle:
        return ladder
    inner = rows[head:len(rows) - tail]
    # First what went wrong (drops and the like) and the resends of dropped segments, then
    # the other marked rows, in time order within each, up to ``middle`` rows.
    lost = {r.segment for r in rows if r.kind in ("dropped", "unknown") and r.segment}
    first = [i for i, r in enumerate(inner) if r.kind in ("dropped", "unknown", "duplicated", "corrupted")
             or (r.segment in lost and r.kind == "retransmission")]
    keep = set(first[:middle])
    for i, row in enumerate(inner):
        if len(keep) >= middle:
            break
        if row.marked:
            keep.add(i)
    out = list(rows[:head])
    run: List[Row] = []
    for i, row in enumerate(inner + [None]):
        if row is None or i in keep:
            if run:                  # a run of one is shown as itself: a fold row takes as much room
                out.append(run[0] if len(run) == 1 else _fold_row(run, ladder.columns))
                run = []
            if row is not None:
                out.append(row)
        else:
            run.append(row)
    out += rows[len(rows) - tail:]
    return Ladder(ladder.title, ladder.columns, ladder.router, out, ladder.t0, ladder.total, list(ladder.notes))


def _fold_row(run: Sequence[Row], columns: Sequence[Column]) -> Row:
    ways: Counter = Counter()
    kinds: Counter = Counter()
    for row in run:
        ways[(columns[row.src].name, columns[row.dst].name)] += 1
        if row.kind != "packet":
            kinds[row.kind] += 1
    span = run[-1].t - run[0].t
    text = f"⋮ {len(run):,} packets folded over {span * 1000:.1f} ms: " + ", ".join(
        f"{a}→{b} {n:,}" for (a, b), n in sorted(ways.items()))
    if kinds:
        text += " (" + ", ".join(f"{n:,} {k}" for k, n in sorted(kinds.items())) + ")"
    return Row(run[0].t, -1, -1, text, kind="fold", folded=len(run))


# -- the text form ---------------------------------------------------------------------

def text(ladder: Ladder, spacing: int = 14) -> str:
    """The ladder for a terminal: one line per row, columns as lifelines, notes on the right."""
    n = len(ladder.columns)
    width = (n - 1) * spacing + 1
    xs = [i * spacing for i in range(n)]
    lines = []
    if ladder.title:
        lines.append(ladder.title)
    head = [" "] * (width + spacing)
    for x, col in zip(xs, ladder.columns):
        for k, ch in enumerate(col.name[:spacing - 1]):
            head[x + k] = ch
    lines.append(f"{'time (ms)':>10}  " + "".join(head).rstrip())
    addr = [" "] * (width + spacing)
    for x, col in zip(xs, ladder.columns):
        for k, ch in enumerate(col.address[:spacing - 1]):
            addr[x + k] = ch
    if any(c.address for c in ladder.columns):
        lines.append(" " * 12 + "".join(addr).rstrip())
    for row in ladder.rows:
        canvas = [" "] * width
        for x in xs:
            canvas[x] = "│"
        if row.kind == "fold":
            lines.append(f"{'':>10}  " + "".join(canvas) + "  " + row.text)
            continue
        a, b = xs[row.src], xs[row.dst]
        end = xs[ladder.router] if row.stops_at_router and row.src != ladder.router else b
        if a == end:                                  # the router to itself: nothing to draw
            canvas[a] = "•"
        else:
            step = 1 if end > a else -1
            for x in range(a, end, step):
                canvas[x] = "┼" if x in xs and x != a else "─"
            canvas[a] = "├" if step == 1 else "┤"
            if row.stops_at_router and row.src != ladder.router:
                canvas[end] = "✗"
            else:
                canvas[end] = "▶" if step == 1 else "◀"
        note = f"  [{row.note}]" if row.note else ""
        lines.append(f"{row.t * 1000:10.3f}  " + "".join(canvas) + "  " + row.text + note)
    if ladder.total > len([r for r in ladder.rows if r.kind != "fold"]):
        lines.append(f"({ladder.total:,} packets in all; the middle is folded)")
    lines += [f"({note})" for note in ladder.notes]
    return "\n".join(lines) + "\n"

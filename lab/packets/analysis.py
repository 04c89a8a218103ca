"""From a router's pcap files to fates and ladders: the one pipeline `lab trace` and the run
report share (pure: bytes in, data out).

``PACKET_LIMIT`` bounds the packets read over all interfaces; a cut is said in the ladder's
notes and in fates.json, never silent.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, List, Mapping, Optional, Sequence, Tuple

from . import fates, ladder, pcap
from .fates import Iface, Matched, Window
from .model import Packet

PACKET_LIMIT = 400_000


@dataclass
class Analysis:
    packets: List[Packet]
    ifaces: List[Iface]
    matched: Matched
    notes: List[str] = field(default_factory=list)

    @property
    def t0(self) -> float:
        return min((p.t for p in self.packets), default=0.0)

    @property
    def end(self) -> float:
        return max((p.t for p in self.packets), default=0.0)

    def fate_log(self, t0: Optional[float] = None) -> dict:
        log = fates.fate_log(self.matched, self.t0 if t0 is None else t0)
        log["notes"] = list(self.notes)
        return log

    def ladder(self, hosts: Sequence[Tuple[str, str, str]], title: str = "",
               keep: Optional[Callable[[Packet], bool]] = None, first_network: str = "clients",
               t0: Optional[float] = None) -> ladder.Ladder:
        """The folded ladder of the packets ``keep`` accepts (all by default)."""
        m = self.matched
        if keep is not None:
            m = Matched([f for f in m.fates if keep(f.packet)], [p for p in m.local if keep(p)],
                        [p for p in m.unmatched_out if keep(p)], m.made)
        lad = ladder.build(m, hosts, first_network, title, t0)
        lad.notes += self.notes
        return ladder.fold(lad)


def analyse(pcaps: Mapping[str, bytes], ifaces: Sequence[Iface], wins: Optional[Sequence[Window]] = (),
            limit: int = PACKET_LIMIT, capture_end: Optional[float] = None) -> Analysis:
    """``pcaps``: interface name -> pcap file; ``ifaces``: the router's interfaces;
    ``capture_end``: when the capture stopped (epoch s), if known, else its last packet's time."""
    subnets = {i.name: i.subnet for i in ifaces}
    packets: List[Packet] = []
    notes = []
    each = max(1, limit // max(1, len(pcaps)))
    for name, data in sorted(pcaps.items()):
        cap = pcap.read_pcap(data, name, subnets.get(name), each)
        packets += cap.packets
        if cap.cut:
            notes.append(f"capture on {name} cut at {each:,} packets: later packets are not shown")
    last = max((p.t for p in packets), default=None)
    end = max(capture_end, last or capture_end) if capture_end is not None else last
    return Analysis(packets, list(ifaces), fates.match(packets, ifaces, wins, capture_end=end), notes)


def hosts_of(topology) -> List[Tuple[str, str, str]]:
    """(name, address, network) of every host of a lab Topology, the router's gateway
    addresses included (they are what the hosts talk to)."""
    out = []
    for host in topology.hosts:
        for network, address in host.addresses:
            out.append((host.name, str(address), network))
    for net in topology.networks:
        out.append(("router", str(net.gateway), net.name))
    return out


def ifaces_of(topology, ifnames: Mapping[str, str]) -> List[Iface]:
    """``ifnames``: network name -> the router's interface on it."""
    return [Iface(ifnames[n.name], n.name, str(n.subnet)) for n in topology.networks if n.name in ifnames]

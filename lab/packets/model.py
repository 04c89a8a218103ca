"""One captured packet, as the ladder and the fate matching need it (pure data).

A packet is seen on one router interface, in one direction relative to the router:
``in`` arrived from that interface's network (to be forwarded), ``out`` is leaving the router
onto it (forwarded from another network), ``local`` was sent to or by the router itself.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

IN, OUT, LOCAL = "in", "out", "local"
FRAGMENT_WINDOW_S = 30.0      # Linux's ipfrag_time: one datagram's fragments lie within it

# ICMP errors by name: (type, code) -> name; a type alone where the code does not matter.
ICMP_NAMES = {
    (3, 0): "net unreachable", (3, 1): "host unreachable", (3, 2): "protocol unreachable",
    (3, 3): "port unreachable", (3, 4): "fragmentation needed", (3, 9): "net prohibited",
    (3, 10): "host prohibited", (3, 13): "administratively prohibited",
    (0, None): "echo reply", (8, None): "echo request", (3, None): "destination unreachable",
    (11, 0): "TTL exceeded in transit", (11, 1): "fragment reassembly time exceeded",
    (4, None): "source quench", (5, None): "redirect", (12, None): "parameter problem",
}

TCP_FLAG_BITS = (("SYN", 0x02), ("FIN", 0x01), ("RST", 0x04), ("PSH", 0x08), ("ACK", 0x10),
                 ("URG", 0x20), ("ECE", 0x40), ("CWR", 0x80))


def icmp_name(icmp_type: int, code: int) -> str:
    return ICMP_NAMES.get((icmp_type, code)) or ICMP_NAMES.get((icmp_type, None)) or f"ICMP type {icmp_type} code {code}"


def tcp_flag_names(bits: int) -> str:
    """0x12 -> 'SYN,ACK' (in the order people say them)."""
    return ",".join(name for name, bit in TCP_FLAG_BITS if bits & bit)


@dataclass(frozen=True)
class Packet:
    t: float                 # capture time, seconds since the epoch (the kernel's receive stamp)
    iface: str               # the router interface it was seen on
    direction: str           # IN, OUT or LOCAL (see the module docstring)
    src: str
    dst: str
    proto: str               # tcp | udp | icmp | ip<N>
    sport: int = 0
    dport: int = 0
    ip_id: int = 0
    ttl: int = 0
    length: int = 0          # the IP packet's total length
    flags: str = ""          # TCP flags, e.g. "SYN,ACK"
    seq: int = 0             # TCP sequence and acknowledgement numbers (absolute)
    ack: int = 0
    payload_len: int = 0     # TCP or UDP payload bytes
    udp_seq: Optional[int] = None   # a measuring program's datagram number ("slab <seq> ...")
    icmp: str = ""           # an ICMP message by name
    quoted: str = ""         # for an ICMP error: the packet it is about, "udp 10.0.0.1:5 > 10.0.0.2:12000"
    digest: str = ""         # hash of the IP packet less what a router changes (TTL, checksum)
    index: int = 0           # position in its own capture file
    frag_offset: int = 0     # an IPv4 fragment's place in its datagram (bytes after the IP header)
    more_fragments: bool = False    # the MF bit: more fragments of this datagram follow
    ip_payload_len: int = 0  # bytes after the IP header (a fragment's share of its datagram)
    dont_fragment: bool = False     # the DF bit: a router answers ICMP "fragmentation needed" instead

    @property
    def fragment(self) -> bool:
        """One piece of a fragmented IPv4 datagram (only the first carries the TCP/UDP header:
        the others have their ports from it, filled in by ``pcap.read_pcap``)."""
        return self.more_fragments or self.frag_offset > 0

    @property
    def datagram(self) -> tuple:
        """What every fragment of one datagram shares (IPv4 reassembles by it)."""
        return (self.proto, self.src, self.dst, self.ip_id)

    @property
    def flow(self) -> tuple:
        return (self.proto, self.src, self.sport, self.dst, self.dport)

    def as_dict(self) -> dict:
        quiet = ("frag_offset", "more_fragments", "ip_payload_len", "dont_fragment")     # said only for fragments
        return {k: v for k, v in asdict(self).items()
                if v not in ("", None) and (self.fragment or k not in quiet)}

"""pcap bytes (one router interface) -> Packets, with dpkt (pure: no files, no Docker).

The router's captures are standard pcap files (nanosecond stamps, Ethernet).  Which way a
packet went is told from the interface's subnet: from a host on it to elsewhere is IN (it
arrived to be forwarded), from elsewhere to a host on it is OUT (the router forwarded it
there), anything else (ARP aside, which is skipped) is LOCAL to the router.

IPv4 fragments are read as such (id, offset, more-fragments): only the first fragment of a
datagram carries its TCP/UDP header, so the others get their ports (and a measuring program's
datagram number) from it, when the same file holds it (``fill_fragments``).

Bounded: at most ``limit`` packets are read from a file; ``PcapContents.cut`` says when more
were there.  A file cut short mid-record (a capture killed) ends the reading quietly there.
"""
from __future__ import annotations

import hashlib
import io
import ipaddress
import socket
from dataclasses import dataclass, field, replace
from typing import List, Optional, Tuple

import dpkt

from .model import FRAGMENT_WINDOW_S, IN, LOCAL, OUT, Packet, icmp_name, tcp_flag_names

DEFAULT_LIMIT = 200_000
MEASURE_MAGIC = b"slab "
ETHERTYPE_IPV4 = b"\x08\x00"      # udp-measure's datagrams: b"slab <seq> <send_ns> <padding>"


@dataclass
class PcapContents:
    """The packets read from one interface's pcap file."""

    iface: str
    packets: List[Packet] = field(default_factory=list)
    cut: bool = False          # more packets were in the file than the limit
    skipped: int = 0           # frames that are not IPv4 (ARP, IPv6)


L4_CHECKSUM_AT = {6: 16, 17: 6}    # TCP, UDP: where the checksum sits in their header


L4_NAMES = {6: "tcp", 17: "udp", 1: "icmp"}


def digest(ip_bytes: bytes, l4_header: bool = True) -> str:
    """A hash of the IP packet without what a forwarding router changes: the TTL, the header
    checksum, and the TCP/UDP checksum (a sender's NIC offload leaves it unfinished on the way
    in; it is completed on the way out when the packet went through the router's userspace)."""
    data = bytearray(ip_bytes)
    if len(data) >= 20:
        data[8] = 0                 # TTL
        data[10:12] = b"\0\0"       # header checksum
        at = L4_CHECKSUM_AT.get(data[9])
        ihl = (data[0] & 0x0F) * 4
        if l4_header and at is not None and len(data) >= ihl + at + 2:
            data[ihl + at:ihl + at + 2] = b"\0\0"
    return hashlib.blake2b(bytes(data), digest_size=8).hexdigest()


def measure_seq(payload: bytes) -> Optional[int]:
    """udp-measure's sequence number from a datagram or its upper-case echo."""
    if payload[:5].lower() != MEASURE_MAGIC:
        return None
    parts = payload[5:40].split(b" ", 1)
    return int(parts[0]) if parts and parts[0].isdigit() else None


def direction(src: str, dst: str, subnet) -> str:
    if subnet is None:
        return LOCAL
    return _direction(int(ipaddress.ip_address(src)), int(ipaddress.ip_address(dst)), _net(subnet))


def _net(subnet) -> Tuple[int, int]:
    net = ipaddress.ip_network(subnet)
    return int(net.network_address), int(net.netmask)


def _direction(src: int, dst: int, net: Optional[Tuple[int, int]]) -> str:
    if net is None:
        return LOCAL
    base, mask = net
    src_in, dst_in = (src & mask) == base, (dst & mask) == base
    if src_in and not dst_in:
        return IN
    if dst_in and not src_in:
        return OUT
    return LOCAL


def _quote(ip) -> str:
    """'udp 10.0.0.1:40000 > 10.0.0.2:12000' for the packet an ICMP error quotes."""
    try:
        proto = {6: "tcp", 17: "udp"}.get(ip.p, f"ip{ip.p}")
        src, dst = _addr(ip.src), _addr(ip.dst)
        data = ip.data
        if isinstance(data, (dpkt.tcp.TCP, dpkt.udp.UDP)):
            return f"{proto} {src}:{data.sport} > {dst}:{data.dport}"
        if isinstance(data, bytes) and len(data) >= 4:   # only the first 8 bytes are quoted
            return f"{proto} {src}:{int.from_bytes(data[0:2], 'big')} > {dst}:{int.from_bytes(data[2:4], 'big')}"
        return f"{proto} {src} > {dst}"
    except Exception:
        return ""


def _addr(raw: bytes) -> str:
    return socket.inet_ntoa(raw)


def packet_from_ip(ip_bytes: bytes, t: float, iface: str, subnet, index: int = 0) -> Optional[Packet]:
    """One IPv4 packet (bytes from its header on) -> Packet; None if it is not IPv4.
    ``subnet``: the interface's network, as text or as read_pcap's (base, mask) pair."""
    try:
        ip = dpkt.ip.IP(ip_bytes)
    except (dpkt.UnpackError, ValueError):
        return None
    if ip.v != 4:
        return None
    total = ip.len if 20 <= ip.len <= len(ip_bytes) else len(ip_bytes)
    src, dst = _addr(ip.src), _addr(ip.dst)
    net = _net(subnet) if isinstance(subnet, (str, ipaddress.IPv4Network)) else subnet
    way = _direction(int.from_bytes(ip.src, "big"), int.from_bytes(ip.dst, "big"), net)
    flags_offset = int.from_bytes(ip_bytes[6:8], "big")      # read here: dpkt's names for it vary
    offset, more = (flags_offset & 0x1FFF) * 8, bool(flags_offset & 0x2000)
    fields = dict(t=t, iface=iface, direction=way, src=src, dst=dst,
                  ip_id=ip.id, ttl=ip.ttl, length=ip.len, digest=digest(ip_bytes[:total], offset == 0), index=index,
                  frag_offset=offset, more_fragments=more, ip_payload_len=max(0, total - ip.hl * 4),
                  dont_fragment=bool(flags_offset & 0x4000))
    data = ip.data
    if offset:                      # a later fragment: no TCP/UDP header, only its bytes
        return Packet(proto=L4_NAMES.get(ip.p, f"ip{ip.p}"), **fields)
    if ip.p == dpkt.ip.IP_PROTO_TCP and isinstance(data, dpkt.tcp.TCP):
        return Packet(proto="tcp", sport=data.sport, dport=data.dport, flags=tcp_flag_names(data.flags),
                      seq=data.seq, ack=data.ack, payload_len=len(data.data), **fields)
    if ip.p == dpkt.ip.IP_PROTO_UDP and isinstance(data, dpkt.udp.UDP):
        # The first fragment: its header's length is the whole datagram's.
        size = data.ulen - 8 if more and data.ulen >= 8 else len(data.data)
        return Packet(proto="udp", sport=data.sport, dport=data.dport, payload_len=size,
                      udp_seq=measure_seq(bytes(data.data)), **fields)
    if ip.p == dpkt.ip.IP_PROTO_ICMP and isinstance(data, dpkt.icmp.ICMP):
        inner = getattr(data.data, "ip", None)
        return Packet(proto="icmp", icmp=icmp_name(data.type, data.code),
                      quoted=_quote(inner) if inner is not None else "", **fields)
    return Packet(proto=f"ip{ip.p}", **fields)


def read_pcap(data: bytes, iface: str, subnet=None, limit: int = DEFAULT_LIMIT) -> PcapContents:
    """Parse one interface's pcap file.  ``subnet``: that interface's network (for direction)."""
    capture = PcapContents(iface)
    if not data:
        return capture
    try:
        reader = dpkt.pcap.Reader(io.BytesIO(data))
    except (ValueError, dpkt.NeedData, dpkt.UnpackError) as exc:
        raise ValueError(f"{iface}: not a pcap file ({exc})") from None
    records = iter(reader)
    net = _net(subnet) if subnet is not None else None
    index = 0
    while True:
        try:
            ts, frame = next(records)
        except StopIteration:
            break
        except (dpkt.NeedData, dpkt.UnpackError, ValueError):   # cut short mid-record
            break
        if len(capture.packets) >= limit:
            capture.cut = True
            break
        index += 1
        if len(frame) < 34 or frame[12:14] != ETHERTYPE_IPV4:     # ARP, IPv6 (no VLANs on a lab's links)
            capture.skipped += 1
            continue
        ip_bytes = bytes(frame[14:])
        if len(ip_bytes) >= 4 and int.from_bytes(ip_bytes[2:4], "big") > len(ip_bytes):
            break       # the record was cut short (the capture was killed mid-write): the end
        packet = packet_from_ip(ip_bytes, float(ts), iface, net, index)
        if packet is None:
            capture.skipped += 1
        else:
            capture.packets.append(packet)
    capture.packets = fill_fragments(capture.packets)
    return capture


def fill_fragments(packets: List[Packet]) -> List[Packet]:
    """Later fragments with the ports (and datagram number) of their datagram's first fragment:
    the nearest in time with the same source, destination, protocol and id, within
    FRAGMENT_WINDOW_S.  Fragments whose first is not there keep port 0."""
    firsts: dict = {}
    for p in packets:
        if p.more_fragments and not p.frag_offset:
            firsts.setdefault(p.datagram, []).append(p)
    if not firsts:
        return packets
    out = []
    for p in packets:
        heads = firsts.get(p.datagram) if p.frag_offset else None
        if heads:
            head = min(heads, key=lambda h: abs(h.t - p.t))
            if abs(head.t - p.t) <= FRAGMENT_WINDOW_S:
                p = replace(p, sport=head.sport, dport=head.dport, udp_seq=head.udp_seq)
        out.append(p)
    return out

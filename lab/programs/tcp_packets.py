"""IPv4 TCP packets as the router reads and makes them: parsing the headers, cutting a
segment's payload into pieces with their own sequence numbers and checksums, and making
resets.  Pure (bytes in, bytes out); standard library only.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import List, Optional

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
_IP = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIBBHHH")
SEQ_MOD = 1 << 32


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


@dataclass(frozen=True)
class TcpPacket:
    """An IPv4 packet carrying a whole TCP segment (not a fragment)."""

    raw: bytes
    ip_len: int      # IPv4 header length
    tcp_len: int     # TCP header length, options included
    src: bytes
    dst: bytes
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int

    @property
    def payload(self) -> bytes:
        return self.raw[self.ip_len + self.tcp_len:]

    @property
    def payload_len(self) -> int:
        """Without copying the payload (a GSO packet's is up to 64 KiB)."""
        return len(self.raw) - self.ip_len - self.tcp_len

    @property
    def syn_only(self) -> bool:
        return bool(self.flags & SYN) and not self.flags & ACK

    def has(self, flag: int) -> bool:
        return bool(self.flags & flag)


def parse(packet: bytes) -> Optional[TcpPacket]:
    """The TCP segment in ``packet``, or None (not IPv4, not TCP, a fragment, truncated)."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return None
    _vihl, _tos, total, _id, frag, _ttl, proto, _sum, src, dst = _IP.unpack_from(packet)
    ip_len = (packet[0] & 0x0F) * 4
    if proto != 6 or frag & 0x3FFF or len(packet) < ip_len + 20:
        return None
    if total < len(packet):
        packet = packet[:total]
    sport, dport, seq, ack, offset, flags, _win, _sum, _urg = _TCP.unpack_from(packet, ip_len)
    tcp_len = (offset >> 4) * 4
    if tcp_len < 20 or len(packet) < ip_len + tcp_len:
        return None
    return TcpPacket(bytes(packet), ip_len, tcp_len, src, dst, sport, dport, seq, ack, flags)


def _tcp_checksum(src: bytes, dst: bytes, segment: bytes) -> int:
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(segment))
    return checksum(pseudo + segment)


def build(pkt: TcpPacket, payload: bytes, seq: int, flags: int) -> bytes:
    """``pkt``'s headers (options kept) around ``payload``, with ``seq`` and ``flags``, and
    the IPv4 length and both checksums made right."""
    ip = bytearray(pkt.raw[:pkt.ip_len])
    tcp = bytearray(pkt.raw[pkt.ip_len:pkt.ip_len + pkt.tcp_len])
    struct.pack_into("!H", ip, 2, len(ip) + len(tcp) + len(payload))
    struct.pack_into("!H", ip, 10, 0)
    struct.pack_into("!H", ip, 10, checksum(bytes(ip)))
    struct.pack_into("!I", tcp, 4, seq % SEQ_MOD)
    tcp[13] = flags
    struct.pack_into("!H", tcp, 16, 0)
    struct.pack_into("!H", tcp, 16, _tcp_checksum(pkt.src, pkt.dst, bytes(tcp) + payload))
    return bytes(ip) + bytes(tcp) + payload


def pieces(pkt: TcpPacket, size: int, limit: Optional[int] = None) -> List[bytes]:
    """The segment cut into pieces of at most ``size`` payload bytes (the first ``limit``
    bytes only, if given).  FIN and PSH go on the last piece only, and the FIN not at all
    when the payload is cut short."""
    payload = pkt.payload if limit is None else pkt.payload[:limit]
    truncated = len(payload) < len(pkt.payload)
    out = []
    for start in range(0, len(payload), size):
        last = start + size >= len(payload)
        flags = pkt.flags if last else pkt.flags & ~(FIN | PSH)
        if truncated:
            flags &= ~FIN
        out.append(build(pkt, payload[start:start + size], pkt.seq + start, flags))
    return out


def reset(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int) -> bytes:
    """A bare RST+ACK from ``src:sport`` to ``dst:dport``: TTL 64, DF, no options."""
    tcp = bytearray(_TCP.pack(sport, dport, seq % SEQ_MOD, ack % SEQ_MOD, 5 << 4, RST | ACK, 0, 0, 0))
    struct.pack_into("!H", tcp, 16, _tcp_checksum(src, dst, bytes(tcp)))
    ip = bytearray(_IP.pack(0x45, 0, 40, 0, 0x4000, 64, 6, 0, src, dst))
    struct.pack_into("!H", ip, 10, checksum(bytes(ip)))
    return bytes(ip) + bytes(tcp)


def describe(pkt: TcpPacket) -> str:
    """``10.0.0.2:5000 -> 10.0.1.2:12000``, for logs."""
    import socket
    return (f"{socket.inet_ntoa(pkt.src)}:{pkt.sport} -> "
            f"{socket.inet_ntoa(pkt.dst)}:{pkt.dport}")

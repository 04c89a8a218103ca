"""The nfnetlink_queue protocol (linux/netfilter/nfnetlink_queue.h), spoken over the
standard library's AF_NETLINK socket: packing config and verdict messages, parsing the
packets the kernel queues to us, and the kernel's own per-queue counters.

Pure packing and parsing, bar ``kernel_queue_stats`` (reads /proc).  Used by the
impairer (``lab.programs.impairer``) and the kernel probe.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Dict, Iterator, Optional, Tuple

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
                       whole: bool = False, gso: Optional[bool] = None) -> bytes:
    """Copy whole packets to us, and let the kernel hold up to ``maxlen`` for this queue
    (packets we are delaying count against it).

    ``whole`` is for links whose packets we never read nor split (delay, jitter,
    reorder, partition): the payload stays in the kernel (metadata-only copies) and GSO
    packets come whole, so a 64 KiB TCP burst is one verdict instead of forty-five.
    ``gso`` (default: as ``whole``) asks for GSO packets whole while copying them: for
    the stream kinds, which read the headers and cut only the rare segment they end in."""
    # struct nfqnl_msg_config_params { __be32 copy_range; u8 copy_mode; } __packed
    mode = NFQNL_COPY_META if whole else NFQNL_COPY_PACKET
    params = struct.pack("!IB", 0 if whole else copy_range, mode)
    flags = struct.pack("!I", NFQA_CFG_F_GSO if (whole if gso is None else gso) else 0)
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

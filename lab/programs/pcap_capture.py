"""pcap-capture IFACE FILE: write every frame on IFACE to FILE as a standard pcap
(nanosecond timestamps from the kernel, Ethernet), one record written per packet (like
``tcpdump -U``); SIGINT or SIGTERM stops it cleanly, so the file ends on a whole packet.

Why not tcpdump: Debian's tcpdump always switches to its own user and then needs
CAP_CHOWN to hand ``-w``'s file over; the router has NET_RAW and nothing more for this.
Prints ``listening on IFACE`` on stderr once the socket is bound, and ``N packets
captured`` at the end.  Standard library only.
"""
from __future__ import annotations

import argparse
import signal
import socket
import struct
import sys
import time

SO_TIMESTAMPNS, SO_RCVBUFFORCE, ETH_P_ALL = 35, 33, 3
SNAP = 262144
PCAP_NS_MAGIC = 0xA1B23C4D
LINKTYPE_ETHERNET = 1


def file_header(snap: int = SNAP) -> bytes:
    """pcap global header: nanosecond timestamps, version 2.4, Ethernet."""
    return struct.pack("=IHHiIII", PCAP_NS_MAGIC, 2, 4, 0, 0, snap, LINKTYPE_ETHERNET)


def record(sec: int, nsec: int, data: bytes, wire_length: int) -> bytes:
    return struct.pack("=IIII", sec, nsec, len(data), wire_length) + data


def timestamp(ancillary) -> tuple:
    """(seconds, nanoseconds) from SO_TIMESTAMPNS ancillary data, or now."""
    for level, kind, value in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            return struct.unpack("=qq", value[:16])
    return divmod(time.time_ns(), 10 ** 9)


def _stop(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="pcap-capture", description=__doc__.splitlines()[0])
    parser.add_argument("iface")
    parser.add_argument("file")
    args = parser.parse_args(argv)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 32 << 20)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.bind((args.iface, 0))
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    packets = 0
    with open(args.file, "wb", buffering=0) as out:
        out.write(file_header())
        print(f"listening on {args.iface}", file=sys.stderr, flush=True)
        try:
            while True:
                data, anc, flags, _addr = sock.recvmsg(SNAP, socket.CMSG_SPACE(16), socket.MSG_TRUNC)
                sec, nsec = timestamp(anc)
                out.write(record(sec, nsec, data[:SNAP], len(data)))
                packets += 1
        except KeyboardInterrupt:
            pass
    print(f"{packets} packets captured", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

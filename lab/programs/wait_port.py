"""wait-port: wait until something on this host listens on a port.

    wait-port [--udp] [--timeout 10] PORT

For a server that prints nothing useful when it is ready (a student's
TCPServer.py): a scenario runs it in the background and `wait-port 12000` with
`ready: listening`, so the clients start only once the port is open. Reads the
kernel's socket tables (/proc/net/tcp, udp and their IPv6 twins); it never
connects, so an iterative server's one connection is not used up by the check.
Prints "listening on tcp/12000" and exits 0, or exits 1 with a JSON error
TIMEOUT.
"""
from __future__ import annotations

import argparse
import sys
import time

from lab.programs import common

TCP_LISTEN = "0A"       # the state column of /proc/net/tcp: 0A is LISTEN
UDP_UNCONNECTED = "07"  # a bound UDP socket (not connected to a peer)
POLL_S = 0.05


def bound_ports(table: str, state: str) -> set[int]:
    """Local ports of the sockets in `state` in a /proc/net/{tcp,udp}[6] table (pure)."""
    ports = set()
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 3 and fields[3] == state:
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def is_open(port: int, udp: bool) -> bool:
    proto, state = ("udp", UDP_UNCONNECTED) if udp else ("tcp", TCP_LISTEN)
    for path in (f"/proc/net/{proto}", f"/proc/net/{proto}6"):
        try:
            with open(path, encoding="ascii") as f:
                if port in bound_ports(f.read(), state):
                    return True
        except FileNotFoundError:  # no IPv6 in this kernel
            continue
    return False


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="wait-port", description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--udp", action="store_true", help="wait for a bound UDP socket instead of a TCP listener")
    parser.add_argument("--timeout", type=common.positive_float, default=10.0, metavar="S")
    args = parser.parse_args(argv)
    name = f"{'udp' if args.udp else 'tcp'}/{args.port}"
    deadline = time.monotonic() + args.timeout
    while not is_open(args.port, args.udp):
        if time.monotonic() > deadline:
            common.emit_json({"program": "wait-port", "port": args.port, "error": "TIMEOUT",
                              "message": f"nothing listens on {name} after {args.timeout:g} s"})
            return 1
        time.sleep(POLL_S)  # polling the kernel's table, with a deadline
    print(f"listening on {name}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

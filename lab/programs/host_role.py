"""What a lab host does when it starts: `host-role router|server|client`.

- router: owns the first address of every lab network (the hosts' default
  gateway), keeps no route out of the lab, then waits.
- server: runs the uppercase TCP and UDP servers on one port.
- client: runs a short demo (one TCP and one UDP exchange), then stays up so a
  student can open a shell and run programs by hand.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from lab.programs.shared.topology import DEFAULT_PORT

READY_FILE = Path("/run/socketlab-router-ready")
IMPAIR_VAR = "SOCKETLAB_IMPAIR"   # impair_agent.ENV_VAR

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="host-role", description=__doc__.splitlines()[0])
    roles = parser.add_subparsers(dest="role", required=True)
    router = roles.add_parser("router", help="become the router between the lab networks")
    router.add_argument("--network", action="append", default=[], metavar="NAME=SUBNET",
                        help="a lab network's name and subnet (for impair-agent); repeat for each")
    server = roles.add_parser("server", help="run the uppercase TCP and UDP servers")
    server.add_argument("--port", type=int, default=DEFAULT_PORT)
    server.add_argument("--tcp-mode", choices=["iterative", "concurrent"], default="concurrent")
    client = roles.add_parser("client", help="run the demo exchange, then stay up")
    client.add_argument("--server", default="server")
    client.add_argument("--port", type=int, default=DEFAULT_PORT)
    client.add_argument("--no-demo", action="store_true")
    roles.add_parser("idle", help="do nothing until stopped (a host for scenario steps)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        if args.role == "router":
            return run_router(args.network)
        if args.role == "idle":
            signal.pause()
            return 0
        if args.role == "server":
            return run_server(args.port, args.tcp_mode)
        return run_client(args.server, args.port, demo=not args.no_demo)
    except KeyboardInterrupt:
        return 130


# --- router -----------------------------------------------------------------

def gateway_plan(interfaces: list[dict]) -> list[list[str]]:
    """`ip` commands that make each network's first address the router's primary one.

    `interfaces` is the output of `ip -j -4 addr`. The first address comes first
    so that ICMP errors (time exceeded, unreachable) come from the gateway.
    """
    commands = []
    for iface in interfaces:
        name = iface["ifname"]
        for addr in iface.get("addr_info", []):
            if addr.get("family") != "inet" or name == "lo":
                continue
            net = ipaddress.ip_interface(f"{addr['local']}/{addr['prefixlen']}").network
            gateway = f"{next(net.hosts())}/{net.prefixlen}"
            if addr["local"] == gateway.split("/")[0]:
                continue
            commands += [["ip", "addr", "flush", "dev", name],
                         ["ip", "addr", "add", gateway, "dev", name],
                         ["ip", "addr", "add", f"{addr['local']}/{addr['prefixlen']}", "dev", name]]
    return commands


def network_names(items: list[str]) -> dict:
    """["clients=10.77.1.0/24", ...] -> {"clients": "10.77.1.0/24"}; ValueError if malformed."""
    names = {}
    for item in items:
        name, _, subnet = item.partition("=")
        if not name or not subnet:
            raise ValueError(f"--network {item!r}: expected NAME=SUBNET")
        names[name] = str(ipaddress.ip_network(subnet))
    return names


ACCT_CHAIN = "SOCKETLAB_ACCT"


def count_connection_bytes() -> None:
    """Turn on the kernel's per-connection byte counts in the router's namespace before any
    lab connection exists (it counts only connections made after): the stream kinds queue
    a connection's bulk packets only once it has carried its SIZE (backends._queued_only).
    Adding a connbytes rule turns them on for good; the rule goes again at once. Where
    iptables has no connbytes, the probe says so and every packet of the link is queued."""
    rule = ["-p", "tcp", "-m", "connbytes", "--connbytes", "1:", "--connbytes-dir", "both",
            "--connbytes-mode", "bytes"]
    for argv in (["-N", ACCT_CHAIN], ["-A", ACCT_CHAIN, *rule], ["-F", ACCT_CHAIN], ["-X", ACCT_CHAIN]):
        subprocess.run(["iptables", "-w", *argv], capture_output=True, check=False)


def run_router(networks: list[str]) -> int:
    try:
        names = network_names(networks)
    except ValueError as exc:
        print(f"host-role router: {exc}", file=sys.stderr, flush=True)
        return 2
    interfaces = json.loads(_run(["ip", "-j", "-4", "addr"]))
    for cmd in gateway_plan(interfaces):
        _run(cmd)
    count_connection_bytes()
    # The router has no way out of the lab: no default route at all.
    if _run(["ip", "-4", "route", "show", "default"]).strip():
        _run(["ip", "-4", "route", "del", "default"])
    summary = " ".join(
        f"{i['ifname']}={a['local']}/{a['prefixlen']}"
        for i in json.loads(_run(["ip", "-j", "-4", "addr"])) if i["ifname"] != "lo"
        for a in i.get("addr_info", [])[:1])
    if names:  # impair-agent reads them
        from lab.programs.agent_router import NETWORKS_FILE
        Path(NETWORKS_FILE).parent.mkdir(parents=True, exist_ok=True)
        Path(NETWORKS_FILE).write_text(json.dumps(names, sort_keys=True) + "\n")
    if os.environ.get(IMPAIR_VAR, "").strip():
        # Compose's class lab: impairments from the environment, applied before the
        # router reports ready (so the server and clients start on the impaired network).
        done = subprocess.run([sys.executable, "-m", "lab.programs.impair_agent", "from-env"],
                              capture_output=True, text=True)
        if done.returncode != 0:
            message = done.stderr.strip().splitlines()[-1:] or [f"impair-agent exit {done.returncode}"]
            print(f"router: {message[0]}", file=sys.stderr, flush=True)
            return 2
        print(f"router: {IMPAIR_VAR} in force: {os.environ[IMPAIR_VAR].strip()}", flush=True)
    READY_FILE.write_text(summary + "\n")  # compose's healthcheck looks for it
    print(f"router ready: {summary}", flush=True)
    signal.pause()
    return 0


# --- server -----------------------------------------------------------------

def run_server(port: int, tcp_mode: str) -> int:
    children = [
        subprocess.Popen([sys.executable, "-m", "lab.programs.tcp_server", "--port", str(port), "--mode", tcp_mode]),
        subprocess.Popen([sys.executable, "-m", "lab.programs.udp_server", "--port", str(port)]),
    ]
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)  # supervising, not waiting for a result: just notice a child's exit
        return next(child.returncode for child in children if child.returncode is not None)
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
                child.wait()


# --- client -----------------------------------------------------------------

def run_client(server: str, port: int, demo: bool) -> int:
    me = _my_address()
    if demo:
        # In this process, not as `python -m` children: a class lab starts many clients
        # at once, and two Python start-ups less per client shorten everyone's bring-up.
        from lab.programs import tcp_client, udp_client
        for kind, program in (("tcp", tcp_client), ("udp", udp_client)):
            print(f"client {me}: {kind.upper()} exchange with {server}:{port}", flush=True)
            _retry_until_ok(program.main, ["--host", server, "--port", str(port), f"hello from {me} over {kind}"])
        print(f"client {me}: demo done; this host stays up for you (open a shell on it).", flush=True)
    signal.pause()
    return 0


def _retry_until_ok(program_main, argv: list[str], attempts: int = 20) -> None:
    """The server must be running first: retry (bounded) while it is not, show the last try."""
    for _ in range(attempts):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                status = program_main(argv)
            except SystemExit as exc:  # argparse's errors
                status = exc.code
        if status == 0:
            break
        time.sleep(0.5)
    sys.stdout.write(out.getvalue())
    sys.stdout.flush()


def _my_address() -> str:
    addrs = json.loads(_run(["ip", "-j", "-4", "addr"]))
    return next((a["local"] for i in addrs if i["ifname"] != "lo" for a in i.get("addr_info", [])),
                socket.gethostname())


def _run(argv: list[str]) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


if __name__ == "__main__":
    sys.exit(main())

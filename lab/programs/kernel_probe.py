"""Find out, by trying, which impairment mechanisms this kernel and its tools offer.

Runs inside the router image (stdlib only, needs NET_ADMIN, and NET_RAW for raw_socket):

    python3 -m lab.programs.kernel_probe

Prints ONE JSON line: each ability true or false, the error text for each one that
failed under "errors", and under "cleanup_errors" anything it could not remove (then it
exits 1; otherwise 0, whatever is missing).  Everything it adds it deletes again: a
veth pair "slprobe0/slprobe1", an ifb "slprobe-ifb", nftables tables "ip socketlab_probe"
and "netdev socketlab_probe",
iptables chain "SOCKETLAB_PROBE", nfnetlink queue 65000.  Nothing it does touches
existing interfaces, rules or traffic, so it may run in the real router as well as in a
throwaway container with network_mode "none". It also reports whether the kernel has
sch_netem as a module and whether it is loaded ("netem_module"), read from the engine's
/lib/modules when that is mounted in.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from typing import Callable, Dict, List, Optional

from lab.programs import nfqueue

DEV, PEER, IFB = "slprobe0", "slprobe1", "slprobe-ifb"
NFT_TABLE = "socketlab_probe"
IPT_CHAIN = "SOCKETLAB_PROBE"
PROBE_QUEUE = 65000

cleanup_errors: List[str] = []


class ProbeFailed(Exception):
    pass


def run(*argv: str, stdin: Optional[str] = None) -> None:
    """Run a command; a failure raises ProbeFailed with the tool's own words."""
    try:
        result = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProbeFailed(f"{argv[0]}: {exc}") from None
    if result.returncode != 0:
        text = (result.stderr or result.stdout).strip() or f"exit status {result.returncode}"
        raise ProbeFailed(" ".join(text.split()))


def undo(*argv: str) -> None:
    """Remove something a probe added; if that fails, say so in the output."""
    try:
        run(*argv)
    except ProbeFailed as exc:
        cleanup_errors.append(f"{' '.join(argv)}: {exc}")


# -- one function per ability: return normally if it works, raise ProbeFailed if not ------


def probe_tc(*qdisc: str, classes: tuple = ()) -> Callable[[], None]:
    def probe() -> None:
        run("tc", "qdisc", "add", "dev", DEV, "root", *qdisc)
        try:
            for klass in classes:
                run("tc", "class", "add", "dev", DEV, *klass)
        finally:
            undo("tc", "qdisc", "del", "dev", DEV, "root")
    return probe


def probe_nft(rule: str) -> Callable[[], None]:
    def probe() -> None:
        ruleset = (f"table ip {NFT_TABLE} {{\n"
                   f"\tchain probe {{\n"
                   f"\t\ttype filter hook forward priority filter - 10; policy accept;\n"
                   f"\t\t{rule}\n"
                   f"\t}}\n}}\n")
        run("nft", "-f", "-", stdin=ruleset)  # one transaction: on failure nothing is added
        undo("nft", "delete", "table", "ip", NFT_TABLE)
    return probe


def probe_nft_egress() -> None:
    """A netdev table's egress chain on our own veth: it sees each packet as it leaves,
    after the kernel fragmented it (the forward hook sees a datagram whole)."""
    ruleset = (f"table netdev {NFT_TABLE} {{\n"
               f"\tchain probe {{\n"
               f"\t\ttype filter hook egress device \"{DEV}\" priority filter; policy accept;\n"
               f"\t\tmeta mark 0x5c000000 numgen random mod 100 < 10 counter drop\n"
               f"\t}}\n}}\n")
    run("nft", "-f", "-", stdin=ruleset)
    undo("nft", "delete", "table", "netdev", NFT_TABLE)


def probe_iptables(*rule: str) -> Callable[[], None]:
    """In a chain of our own that nothing jumps to, so no traffic is affected."""
    def probe() -> None:
        run("iptables", "-w", "-N", IPT_CHAIN)
        try:
            run("iptables", "-w", "-A", IPT_CHAIN, *rule)
        finally:
            undo("iptables", "-w", "-F", IPT_CHAIN)
            undo("iptables", "-w", "-X", IPT_CHAIN)
    return probe


def probe_ifb() -> None:
    run("ip", "link", "add", IFB, "type", "ifb")
    undo("ip", "link", "del", IFB)


def probe_nfqueue_netlink() -> None:
    """Bind a queue over netlink the way the engine does, then unbind it."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, nfqueue.NETLINK_NETFILTER)
    except OSError as exc:
        raise ProbeFailed(f"netlink socket: {exc}") from None
    with sock:
        sock.bind((0, 0))
        sock.settimeout(5)
        for seq, command in ((1, nfqueue.NFQNL_CFG_CMD_BIND),
                             (2, nfqueue.NFQNL_CFG_CMD_UNBIND)):
            sock.send(nfqueue.config_command(PROBE_QUEUE, command, seq))
            error = _ack(sock, seq)
            if error:
                raise ProbeFailed(f"nfnetlink_queue bind: {os.strerror(error)}")


def _ack(sock: socket.socket, seq: int) -> int:
    try:
        while True:
            for msg_type, msg_seq, body in nfqueue.iter_messages(sock.recv(65536)):
                if msg_type == nfqueue.NLMSG_ERROR and msg_seq == seq:
                    return nfqueue.parse_error(body)
    except socket.timeout:
        raise ProbeFailed("nfnetlink_queue: no answer from the kernel") from None


def probe_raw_socket() -> None:
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW).close()
    except OSError as exc:
        raise ProbeFailed(f"raw socket: {exc}") from None


PROBES: Dict[str, Callable[[], None]] = {
    "netem": probe_tc("netem", "delay", "1ms"),
    "tc_tbf": probe_tc("tbf", "rate", "1mbit", "burst", "32kbit", "latency", "50ms"),
    "tc_htb": probe_tc("handle", "1:", "htb",
                       classes=(("parent", "1:", "classid", "1:10", "htb", "rate", "1mbit"),)),
    "ifb": probe_ifb,
    "nft": probe_nft("counter"),
    "nft_numgen": probe_nft("numgen random mod 100 < 10 drop"),
    "nft_dup": probe_nft(f'ip daddr 192.0.2.1 dup to 192.0.2.1 device "{DEV}"'),
    "nft_meta_priority": probe_nft(f'oifname "{DEV}" meta priority set 1:10'),
    "nft_queue": probe_nft(f"ip daddr 192.0.2.1 queue num {PROBE_QUEUE} bypass"),
    "nft_egress": probe_nft_egress,
    "iptables_nfqueue": probe_iptables("-j", "NFQUEUE", "--queue-num", str(PROBE_QUEUE),
                                       "--queue-bypass"),
    "iptables_statistic": probe_iptables("-m", "statistic", "--mode", "random",
                                         "--probability", "0.1", "-j", "DROP"),
    # Adding it also turns on the kernel's per-connection byte counts in this namespace,
    # for connections made from then on (the router probes itself at its start).
    "iptables_connbytes": probe_iptables("-p", "tcp", "-m", "connbytes", "--connbytes", "1:",
                                         "--connbytes-dir", "both", "--connbytes-mode", "bytes"),
    "nfqueue_netlink": probe_nfqueue_netlink,
    "raw_socket": probe_raw_socket,
}


def netem_module(release: str, modules_root: str = "/lib/modules", loaded: str = "/proc/modules") -> dict:
    """Whether the kernel this runs on has sch_netem as a module file and whether it is
    loaded. In a container, os.uname() and /proc/modules are the engine's kernel's; its
    module files are seen only when the engine's /lib/modules is mounted in (read-only,
    as `lab doctor`'s probe container does): else "module" is None (cannot tell)."""
    dep = os.path.join(modules_root, release, "modules.dep")
    try:
        with open(dep, errors="replace") as f:
            module: Optional[bool] = "/sch_netem.ko" in f.read()
    except OSError:
        module = None
    try:
        with open(loaded, errors="replace") as f:
            is_loaded = any(line.startswith("sch_netem ") for line in f)
    except OSError:
        is_loaded = False
    return {"module": module, "loaded": is_loaded}


def probe_all() -> dict:
    result: dict = {"version": 1, "kernel": os.uname().release}
    result["netem_module"] = netem_module(result["kernel"])
    errors: Dict[str, str] = {}
    try:
        # A veth pair of our own to put qdiscs and dup rules on, so no real one is touched.
        run("ip", "link", "add", DEV, "type", "veth", "peer", "name", PEER)
    except ProbeFailed as exc:
        errors["setup"] = f"cannot create a test interface: {exc}"
        device_ok = False
    else:
        device_ok = True
    try:
        for name, probe in PROBES.items():
            needs_device = name.startswith(("netem", "tc_", "nft_dup", "nft_meta", "nft_egress"))
            if needs_device and not device_ok:
                result[name], errors[name] = False, errors["setup"]
                continue
            try:
                probe()
            except ProbeFailed as exc:
                result[name], errors[name] = False, str(exc)
            else:
                result[name] = True
    finally:
        if device_ok:
            undo("ip", "link", "del", DEV)  # takes the peer with it
    result["errors"] = errors
    result["cleanup_errors"] = cleanup_errors
    return result


def main() -> int:
    print(json.dumps(probe_all(), sort_keys=True), flush=True)
    return 1 if cleanup_errors else 0


if __name__ == "__main__":
    sys.exit(main())

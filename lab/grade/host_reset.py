"""Making a grading lab's host as it was before a student, without making it again (what
reuse.py does between two students), and proving it.

Recreating every host between students cost 3 to 10 s a student (more on a busy
machine): container removal, creation, network namespaces, starting.  Instead each host
gets one exec of RESET (as root, inside it), which

- kills every process but the host's own two (docker-init and host-role, noted when the
  lab came up), pass after pass until none is left (a program that forks as it dies);
- empties the folders a program may write to that a host does not need: /tmp, /var/tmp,
  /dev/shm, /dev/mqueue (and /work on the student host, refilled with the next
  submission), and removes System V IPC objects;
- reports what is left: processes, sockets that were not there when the host came up,
  and every file of the container's own file system (``find -xdev``: not /work, /proc,
  /dev) whose inode changed since the last reset: a program that replaced `nc`, wrote
  /etc/hosts or left a file in /root.

A socket of a dead process that the kernel keeps (TIME_WAIT, FIN_WAIT2: a server that
closed first) would refuse the next student's bind() on port 12000 for a minute.  It is
ended the way the kernel allows an unprivileged peer to (the hosts have no
CAP_NET_ADMIN for ``ss -K``): the peer host sends a SYN from the same address and port;
the TIME_WAIT socket answers with an ACK, which the peer (not expecting it) answers with
a RST carrying exactly the sequence number the TIME_WAIT socket waits for, and a RST in
TIME_WAIT ends it (RFC 1337's "assassination", which Linux allows unless
net.ipv4.tcp_rfc1337 is set; a host cannot set it).  A socket left after that, a file
changed, a process that would not die, or a host-role that is gone: that host is made
again, as before.  Nothing is assumed clean that was not seen clean.

The decisions (``left_over``, ``peer_plan``) are pure; reuse.py runs the scripts.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

CLEARED = ("/tmp", "/var/tmp", "/dev/shm", "/dev/mqueue")
DNS_RESOLVER = "127.0.0.11"      # the engine's resolver in every container: its sockets are the host's own

# Run as `python3 -c RESET KEEP SINCE FOLDER...` (KEEP: pids to spare, comma-separated, "" at
# the first run: note them; SINCE: the host's clock at the last reset, 0 at the first run).
RESET = r'''
import json, os, shutil, subprocess, sys, time
keep = {int(p) for p in sys.argv[1].split(",") if p}
since = float(sys.argv[2])
me = os.getpid()

def alive():
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        state = stat.rsplit(")", 1)[1].split()[0]
        if state not in "ZX":
            found.append(int(name))
    return found

if not keep:
    keep = set(alive())
passes = 0
while passes < 500:
    left = [p for p in alive() if p not in keep]
    if not left:
        break
    for pid in left:
        try:
            os.kill(pid, 9)
        except OSError:
            pass
    passes += 1
    time.sleep(0.005)
for folder in sys.argv[3:]:
    try:
        names = os.listdir(folder)
    except OSError:
        continue
    for name in names:
        path = os.path.join(folder, name)
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
        except OSError:
            pass
subprocess.run(["ipcrm", "--all"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

def sockets():
    out = []
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        try:
            with open(f"/proc/net/{proto}") as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            out.append([proto, parts[3], parts[1], parts[2]])
    return out

changed = []
if since:
    prune = []
    for folder in ("/tmp", "/var/tmp", "/work"):
        prune += ["-path", folder, "-prune", "-o"]
    # "/" itself: its time changes with the first write anywhere below it (overlayfs copies
    # the folder up); its names are compared instead.
    found = subprocess.run(["find", "/", "-xdev", "-mindepth", "1", *prune, "-newerct", "@%f" % since, "-print"],
                           capture_output=True, text=True)
    changed = found.stdout.splitlines()[:20]
host_role = [p for p in keep if p != 1 and os.path.exists(f"/proc/{p}")]
print(json.dumps({"keep": sorted(keep), "left": [p for p in alive() if p not in keep], "passes": passes,
                  "sockets": sockets(), "changed": changed, "host_role": bool(host_role),
                  "top": sorted(os.listdir("/")),
                  "now": time.time()}))
'''

# Run as `python3 -c END_TIME_WAIT JSON` on a peer: [[bind_ip, bind_port, ip, port], ...].
# The peer's own port may still be held by a TIME_WAIT socket of a program without
# SO_REUSEADDR (a student's server, on the student host) that another peer is ending at
# the same moment: bind() is tried again until that one is gone, for at most 2 s.
END_TIME_WAIT = r'''
import errno, json, socket, sys, time
deadline = time.monotonic() + 2.0
for bind_ip, bind_port, ip, port in json.loads(sys.argv[1]):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setblocking(False)
    while True:
        try:
            s.bind((bind_ip, bind_port))
            s.connect_ex((ip, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE and time.monotonic() < deadline:
                time.sleep(0.02)
                continue
        break
    s.close()
'''

# Run as `sh -c SOCKET_TABLES` to see the sockets again after END_TIME_WAIT (no Python: cheap).
SOCKET_TABLES = 'for t in tcp tcp6 udp udp6; do echo "== $t"; cat /proc/net/$t 2>/dev/null; done'


def socket_rows(text: str) -> List[list]:
    """RESET's socket rows from SOCKET_TABLES' output."""
    rows, proto = [], None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "==":
            proto = parts[1]
        elif proto and len(parts) >= 4 and parts[0] != "sl":
            rows.append([proto, parts[3], parts[1], parts[2]])
    return rows


def _address(hex_addr: str) -> Tuple[str, int]:
    """/proc/net/tcp's ``0100007F:2EE0`` (or an IPv6 one) -> ('127.0.0.1', 12000); an IPv6
    address mapped from IPv4 is given as the IPv4 one."""
    host, port = hex_addr.split(":")
    raw = bytes.fromhex(host)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    ip = ipaddress.ip_address(words)
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return str(ip), int(port, 16)


@dataclass(frozen=True)
class Socket:
    proto: str          # tcp | tcp6 | udp | udp6
    state: str          # /proc/net's hex state: 06 TIME_WAIT, 0A LISTEN, 07 (udp) unconnected ...
    local: Tuple[str, int]
    remote: Tuple[str, int]

    @classmethod
    def parse(cls, row: Sequence[str]) -> "Socket":
        proto, state, local, remote = row
        return cls(proto, state.upper(), _address(local), _address(remote))

    @property
    def own(self) -> bool:
        """The engine's resolver's sockets, there in every host from its start."""
        return self.local[0] == DNS_RESOLVER


@dataclass
class HostReport:
    """What RESET saw on one host, judged."""
    keep: List[int]
    left: List[int]                 # processes that would not die
    sockets: List[Socket]           # not there when the host came up
    changed: List[str]              # files of the container's own file system changed
    host_role: bool                 # the host's own program still runs
    now: float                      # the host's clock at the end of the reset

    @property
    def clean(self) -> bool:
        return self.host_role and not self.left and not self.sockets and not self.changed

    def why(self) -> str:
        reasons = []
        if not self.host_role:
            reasons.append("its host-role ended")
        if self.left:
            reasons.append(f"{len(self.left)} process(es) would not end")
        if self.sockets:
            reasons.append(f"{len(self.sockets)} socket(s) left")
        if self.changed:
            reasons.append(f"changed: {', '.join(self.changed[:3])}")
        return "; ".join(reasons) or "clean"


@dataclass(frozen=True)
class Baseline:
    """A host as it came up: its sockets (the engine's resolver's) and the names in /."""
    sockets: frozenset
    top: tuple

    @classmethod
    def of(cls, output: Mapping) -> "Baseline":
        return cls(frozenset(Socket.parse(row) for row in output.get("sockets", [])), tuple(output.get("top", ())))


def left_over(output: Mapping, baseline: Optional[Baseline] = None) -> HostReport:
    """RESET's JSON judged against the host as it came up (None at the first reset, when
    everything is the host's own)."""
    socks = [Socket.parse(row) for row in output.get("sockets", [])]
    extra = [] if baseline is None else [s for s in socks if s not in baseline.sockets and not s.own]
    changed = list(output.get("changed", []))
    if baseline is not None and tuple(output.get("top", ())) != baseline.top:
        gone, new = set(baseline.top) - set(output.get("top", ())), set(output.get("top", ())) - set(baseline.top)
        changed.insert(0, "/ (" + ", ".join([f"-{n}" for n in sorted(gone)] + [f"+{n}" for n in sorted(new)]) + ")")
    return HostReport(list(output.get("keep", [])), list(output.get("left", [])), extra,
                      changed, bool(output.get("host_role")), float(output.get("now", 0)))


TCP_ENDABLE = {"06", "05", "04", "08", "09", "0B"}   # TIME_WAIT, FIN_WAIT2, FIN_WAIT1, CLOSE_WAIT, LAST_ACK, CLOSING


def peer_plan(left: Mapping[str, List[Socket]], host_of: Mapping[str, str]) -> Dict[str, List[list]]:
    """Which host sends which SYN to end the sockets left over: peer host -> [[bind ip, bind
    port, ip, port], ...].  A socket whose peer is not a lab host (or on the host itself,
    by loopback: that host's own name), or that is not TCP in a closing state, is in none:
    its host is made again."""
    plan: Dict[str, List[list]] = {}
    for host, socks in left.items():
        for s in socks:
            if not s.proto.startswith("tcp") or s.state not in TCP_ENDABLE:
                continue
            peer = host if ipaddress.ip_address(s.remote[0]).is_loopback else host_of.get(s.remote[0])
            if peer is not None:
                plan.setdefault(peer, []).append([s.remote[0], s.remote[1], s.local[0], s.local[1]])
    return plan

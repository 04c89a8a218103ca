"""A lab's networks and hosts as plain data. No Docker here: see docker_lab.py.

Address plan of every lab network (a /24):
  .1  the router, the hosts' default gateway (added by `host-role router`)
  .2  the router's Docker endpoint address
  .10 the server (on the servers network)
  .20+ extra hosts, .101+ clients (client1 = .101)
"""
from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from typing import ClassVar, Iterable, Optional, Union

from .errors import LabError

IPv4Net = ipaddress.IPv4Network
IPv4Addr = ipaddress.IPv4Address

DEFAULT_POOL = "10.77.0.0/16"
COMPOSE_SUBNETS = (ipaddress.ip_network("10.77.1.0/24"), ipaddress.ip_network("10.77.2.0/24"))
MAX_CLIENTS = 100
DEFAULT_PORT = 12000          # the lab's servers' port: every program and command takes it from here
LAB_NAME = re.compile(r"^[a-z][a-z0-9-]{0,23}$")
HOST_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")

SERVER_OFFSET, EXTRA_OFFSET, CLIENT_OFFSET = 10, 20, 100
NETWORKS_PER_LAB = 2          # clients and servers; a scenario may add more
MiB = 1024 ** 2


@dataclass(frozen=True)
class Limits:
    """What each host but the router may use, enforced by the engine (cgroups), so one
    student's fork bomb or leak cannot take the machine. A class's defaults; a scenario
    (`topology: {limits: ...}`) or `lab up --pids/--memory/--cpus` may change them."""
    pids: int = 512               # processes and threads
    memory: int = 512 * MiB       # bytes, swap included (the kernel's OOM killer acts beyond)
    cpus: float = 1.0             # CPUs' worth of time per host; 0: no cap

    MIN_PIDS: ClassVar[int] = 16          # fewer and a host cannot even start its shell
    MIN_MEMORY: ClassVar[int] = 16 * MiB

    def describe(self) -> str:
        cpus = f"{self.cpus:g} CPU" if self.cpus else "no CPU cap"
        return f"{self.pids} pids, {self.memory // MiB} MiB, {cpus}"


# The router is everyone's gateway and runs the impairer: it gets its own,
# larger limits, no CPU cap, and 4 times a host's CPU weight when CPUs are contended.
ROUTER_LIMITS = Limits(pids=1024, memory=1024 * MiB, cpus=0)
# Hosts keep Docker's default weight (1024), so on a shared machine they do not lose to
# other containers; the cap (Limits.cpus) is what bounds a busy host.
HOST_CPU_SHARES, ROUTER_CPU_SHARES = 1024, 4096


def limit_settings(limits: Limits, router: bool, engine_cpus: int) -> dict:
    """The container's resource settings (docker SDK create_host_config keywords)."""
    own = ROUTER_LIMITS if router else limits
    cpus = min(own.cpus, engine_cpus) if own.cpus else 0
    return {"pids_limit": own.pids, "mem_limit": own.memory, "memswap_limit": own.memory,
            "nano_cpus": int(cpus * 1e9) or None,
            "cpu_shares": ROUTER_CPU_SHARES if router else HOST_CPU_SHARES}


@dataclass(frozen=True)
class Network:
    name: str
    subnet: IPv4Net

    @property
    def gateway(self) -> IPv4Addr:
        return self.subnet.network_address + 1

    def address(self, offset: int) -> IPv4Addr:
        return self.subnet.network_address + offset


@dataclass(frozen=True)
class Host:
    name: str
    role: str                                   # router | server | client | host
    addresses: tuple[tuple[str, IPv4Addr], ...]  # (network name, address), first = primary
    command: tuple[str, ...]
    ready: tuple[str, ...] = ()                 # log lines that say the host is up
    image: Optional[str] = None                 # its own image (None: the lab's host image)
    ready_port: Optional[int] = None            # a TCP port that accepts from the router when up
    ready_timeout: Optional[float] = None       # seconds bring-up waits for it (None: bring-up's own)

    @property
    def address(self) -> IPv4Addr:
        return self.addresses[0][1]

    @property
    def own_image(self) -> bool:
        """Runs an image of its own: nothing of socketlab's runs inside it (no host-role;
        it routes through the router by its network's gateway, which the router holds)."""
        return self.image is not None


@dataclass(frozen=True)
class HostSpec:
    """What a host runs when it is not socketlab's own role: an image of its own (None: the
    lab's host image), a command (empty: the image's own; on the lab's image: nothing), and
    when it counts as up (a TCP port open to the router, a line in its output, or, with
    neither, its container running)."""
    network: str
    image: Optional[str] = None
    command: tuple[str, ...] = ()
    ready_port: Optional[int] = None
    ready_log: Optional[str] = None
    ready_timeout: Optional[float] = None

    def host(self, name: str, role: str, address: IPv4Addr) -> Host:
        command = self.command or (() if self.image else ("host-role", "idle"))
        return Host(name, role, ((self.network, address),), tuple(command),
                    (self.ready_log,) if self.ready_log else (), self.image, self.ready_port,
                    self.ready_timeout)


@dataclass(frozen=True)
class Topology:
    lab: str
    networks: tuple[Network, ...]
    hosts: tuple[Host, ...]
    port: int = DEFAULT_PORT
    limits: Limits = Limits()

    def host(self, name: str) -> Host:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    def network(self, name: str) -> Network:
        for n in self.networks:
            if n.name == name:
                return n
        raise KeyError(name)

    @property
    def clients(self) -> list[Host]:
        return [h for h in self.hosts if h.role == "client"]

    def names_for(self, host: Host) -> dict[str, str]:
        """/etc/hosts entries for `host`: every other host by the address it reaches it at."""
        mine = {net for net, _ in host.addresses}
        entries = {}
        for other in self.hosts:
            if other is host:
                continue
            same_net = [addr for net, addr in other.addresses if net in mine]
            if other.role == "router" and same_net:
                # Name the router by its gateway address on the shared network.
                same_net = [self.network(net).gateway for net, _ in other.addresses if net in mine]
            entries[other.name] = str((same_net or [other.address])[0])
        return entries


def check_lab_name(name: str) -> str:
    if not LAB_NAME.match(name):
        raise LabError(f"lab name {name!r}: use 1-24 lowercase letters, digits or '-', starting with a letter")
    return name


def pool() -> IPv4Net:
    """Where labs take their /24s: SOCKETLAB_SUBNETS, else 10.77.0.0/16 (for sites
    where that range is taken, and for keeping parallel sessions apart)."""
    text = os.environ.get("SOCKETLAB_SUBNETS") or DEFAULT_POOL
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise LabError(f"subnet pool (--subnets / SOCKETLAB_SUBNETS): {text!r} is not an IPv4 network ({exc})",
                       hint="e.g. --subnets 10.200.0.0/16 or SOCKETLAB_SUBNETS=10.200.0.0/16") from None
    if net.version != 4 or net.prefixlen > 23:
        raise LabError(f"subnet pool (--subnets / SOCKETLAB_SUBNETS): {text!r} must be an IPv4 network "
                       "of at least two /24s", hint="e.g. --subnets 10.200.0.0/16 or SOCKETLAB_SUBNETS=10.200.0.0/16")
    return net


def pool_subnets() -> list[IPv4Net]:
    """The /24s of the pool a lab may use (not its first, nor the compose lab's)."""
    p = pool()
    return [s for s in p.subnets(new_prefix=24)
            if s.network_address != p.network_address and not any(s.overlaps(c) for c in COMPOSE_SUBNETS)]


def subnet_candidates(used: Iterable[IPv4Net], start: int = 0) -> list[IPv4Net]:
    """The pool's /24s that overlap nothing in `used`, in the order to try them: from the
    `start`-th free one round to the one before it. Class labs start at 0 (predictable
    addresses); ephemeral labs at a random place, so labs made at the same moment mostly
    try different subnets first (the engine still decides who gets a contested one)."""
    taken = list(used)
    free = [s for s in pool_subnets() if not any(s.overlaps(t) for t in taken)]
    if not free:
        return []
    start %= len(free)
    return free[start:] + free[:start]


def free_subnets(used: Iterable[IPv4Net], count: int, start: int = 0) -> list[IPv4Net]:
    """`count` /24s from the pool that overlap nothing in `used` (nor the compose lab's)."""
    free = subnet_candidates(used, start)
    if len(free) < count:
        raise no_free_subnets(count)
    return free[:count]


def labs_that_fit(used: Iterable[IPv4Net], networks_per_lab: int = NETWORKS_PER_LAB) -> int:
    """How many more labs of two networks the pool holds next to `used`."""
    return len(subnet_candidates(used)) // networks_per_lab


def no_free_subnets(count: int) -> LabError:
    return LabError(f"no {count} free /24 subnets left in {pool()}",
                    hint="`lab down --stale` frees what ended runs left; `lab status` lists the labs; "
                         "or choose another pool with --subnets / SOCKETLAB_SUBNETS")


@dataclass
class LabSpec:
    """What a class lab is asked for; `build()` turns it into a Topology."""
    lab: str = "lab"
    clients: int = 1
    extra_networks: list[str] = field(default_factory=list)
    extra_hosts: dict[str, Union[str, HostSpec]] = field(default_factory=dict)  # name -> network (or HostSpec)
    server_command: tuple[str, ...] = ("host-role", "server")
    client_command: tuple[str, ...] = ("host-role", "client")
    port: int = DEFAULT_PORT
    limits: Limits = field(default_factory=Limits)
    # "server" / "clients" -> what they run instead of socketlab's roles (their own image)
    images: dict[str, HostSpec] = field(default_factory=dict)

    def image_refs(self) -> list[str]:
        """Every image of its own a host of this lab runs (to check they are in the engine)."""
        specs = [*self.images.values(), *(h for h in self.extra_hosts.values() if isinstance(h, HostSpec))]
        return sorted({s.image for s in specs if s.image})

    @property
    def server_ready(self) -> tuple[str, ...]:
        if self.server_command[:2] == ("host-role", "server"):
            return ("tcp-server listening", "udp-server listening")
        return ()

    def build(self, subnets: list[IPv4Net]) -> Topology:
        check_lab_name(self.lab)
        if not 0 <= self.clients <= MAX_CLIENTS:
            raise LabError(f"clients: {self.clients} is outside 0..{MAX_CLIENTS}")
        names = ["clients", "servers", *self.extra_networks]
        if len(subnets) < len(names):
            raise LabError(f"need {len(names)} subnets, got {len(subnets)}")
        networks = tuple(Network(n, s) for n, s in zip(names, subnets))
        by_name = {n.name: n for n in networks}
        # The router learns its networks' names from its command (its impair-agent uses them).
        router_command = ("host-role", "router", *(f"--network={n.name}={n.subnet}" for n in networks))
        server_address = by_name["servers"].address(SERVER_OFFSET)
        hosts = [Host("router", "router", tuple((n.name, n.address(2)) for n in networks),
                      router_command, ("router ready",)),
                 self.images["server"].host("server", "server", server_address) if "server" in self.images
                 else Host("server", "server", (("servers", server_address),), self.server_command,
                           self.server_ready)]
        for i, (name, extra) in enumerate(sorted(self.extra_hosts.items())):
            extra = extra if isinstance(extra, HostSpec) else HostSpec(extra)
            if extra.network not in by_name:
                raise LabError(f"host {name}: no network {extra.network!r} in this lab")
            hosts.append(extra.host(name, "host", by_name[extra.network].address(EXTRA_OFFSET + i)))
        clients = self.images.get("clients")
        for i in range(1, self.clients + 1):
            address = by_name["clients"].address(CLIENT_OFFSET + i)
            hosts.append(clients.host(f"client{i}", "client", address) if clients
                         else Host(f"client{i}", "client", (("clients", address),), self.client_command))
        return Topology(self.lab, networks, tuple(hosts), self.port, self.limits)

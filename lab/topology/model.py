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
from typing import Iterable

from ..errors import LabError

IPv4Net = ipaddress.IPv4Network
IPv4Addr = ipaddress.IPv4Address

DEFAULT_POOL = "10.77.0.0/16"
COMPOSE_SUBNETS = (ipaddress.ip_network("10.77.1.0/24"), ipaddress.ip_network("10.77.2.0/24"))
MAX_CLIENTS = 100
DEFAULT_PORT = 12000
LAB_NAME = re.compile(r"^[a-z][a-z0-9-]{0,23}$")
HOST_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")

SERVER_OFFSET, EXTRA_OFFSET, CLIENT_OFFSET = 10, 20, 100


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

    @property
    def address(self) -> IPv4Addr:
        return self.addresses[0][1]


@dataclass(frozen=True)
class Topology:
    lab: str
    networks: tuple[Network, ...]
    hosts: tuple[Host, ...]
    port: int = DEFAULT_PORT

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
        raise LabError(f"SOCKETLAB_SUBNETS: {text!r} is not an IPv4 network ({exc})",
                       hint="e.g. SOCKETLAB_SUBNETS=10.200.0.0/16") from None
    if net.version != 4 or net.prefixlen > 23:
        raise LabError(f"SOCKETLAB_SUBNETS: {text!r} must be an IPv4 network of at least two /24s",
                       hint="e.g. SOCKETLAB_SUBNETS=10.200.0.0/16")
    return net


def pool_subnets() -> list[IPv4Net]:
    """The /24s of the pool a lab may use (not its first, nor the compose lab's)."""
    p = pool()
    return [s for s in p.subnets(new_prefix=24)
            if s.network_address != p.network_address and not any(s.overlaps(c) for c in COMPOSE_SUBNETS)]


def free_subnets(used: Iterable[IPv4Net], count: int) -> list[IPv4Net]:
    """`count` /24s from the pool that overlap nothing in `used` (nor the compose lab's)."""
    taken = list(used)
    free = []
    for candidate in pool_subnets():
        if not any(candidate.overlaps(t) for t in taken):
            free.append(candidate)
            if len(free) == count:
                return free
    raise LabError(f"no {count} free /24 subnets left in {pool()}",
                   hint="run `lab down --all`, remove other Docker networks, or set SOCKETLAB_SUBNETS")


@dataclass
class LabSpec:
    """What a class lab is asked for; `build()` turns it into a Topology."""
    lab: str = "lab"
    clients: int = 1
    extra_networks: list[str] = field(default_factory=list)
    extra_hosts: dict[str, str] = field(default_factory=dict)   # host name -> network name
    server_command: tuple[str, ...] = ("host-role", "server")
    client_command: tuple[str, ...] = ("host-role", "client")
    port: int = DEFAULT_PORT

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
        hosts = [Host("router", "router", tuple((n.name, n.address(2)) for n in networks),
                      ("host-role", "router"), ("router ready",)),
                 Host("server", "server", (("servers", by_name["servers"].address(SERVER_OFFSET)),),
                      self.server_command, self.server_ready)]
        for i, (name, net) in enumerate(sorted(self.extra_hosts.items())):
            hosts.append(Host(name, "host", ((net, by_name[net].address(EXTRA_OFFSET + i)),),
                              ("host-role", "idle")))
        for i in range(1, self.clients + 1):
            hosts.append(Host(f"client{i}", "client",
                              (("clients", by_name["clients"].address(CLIENT_OFFSET + i)),),
                              self.client_command))
        return Topology(self.lab, networks, tuple(hosts), self.port)

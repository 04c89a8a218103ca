"""The resolved scenario: frozen dataclasses with every default filled in and every
unit converted (seconds, milliseconds, kbit/s, percent 0-100), ready for the runner.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any, ClassVar, Dict, List, Mapping, Optional, Tuple

from ..programs.shared.impairment import Change, Impairment, Link, impairment_to_dict
from ..programs.shared.topology import HostSpec, LabSpec, Limits
from .expect import Expectation, Position

CLIENT_COMMAND = ("host-role", "client", "--no-demo")


def frozen_map(items: Mapping) -> Mapping:
    return MappingProxyType(dict(items))


@dataclass(frozen=True)
class ScenarioTopology:
    clients: int = 1
    networks: Tuple[str, ...] = ()                 # extra networks (clients and servers always exist)
    hosts: Tuple[Tuple[str, str], ...] = ()        # extra hosts: (name, network), sorted by name
    server: str = "uppercase"                      # uppercase | idle | image (its own, in images)
    tcp_mode: str = "concurrent"                   # iterative | concurrent
    capture: bool = False
    limits: Limits = Limits()
    images: Tuple[Tuple[str, HostSpec], ...] = ()      # "server" / "clients" with an image of their own
    host_specs: Tuple[Tuple[str, HostSpec], ...] = ()  # extra hosts with an image, command or ready

    @property
    def all_networks(self) -> Tuple[str, ...]:
        return ("clients", "servers", *self.networks)

    @property
    def client_names(self) -> Tuple[str, ...]:
        return tuple(f"client{i}" for i in range(1, self.clients + 1))

    @property
    def host_names(self) -> Tuple[str, ...]:
        """Every host, in LabSpec's order: router, server, extra hosts, clients."""
        return ("router", "server", *(name for name, _ in self.hosts), *self.client_names)

    @property
    def server_command(self) -> Tuple[str, ...]:
        if self.server == "idle":
            return ("host-role", "idle")
        if self.tcp_mode == "concurrent":      # host-role's default: LabSpec then knows its ready lines
            return ("host-role", "server")
        return ("host-role", "server", "--tcp-mode", self.tcp_mode)

    def lab_spec(self, lab: str = "lab") -> LabSpec:
        """The lab to build.  Clients start without the demo exchange: in a scenario every
        packet should come from a step."""
        return LabSpec(lab=lab, clients=self.clients, extra_networks=list(self.networks),
                       extra_hosts={**dict(self.hosts), **dict(self.host_specs)},
                       server_command=self.server_command, client_command=CLIENT_COMMAND,
                       limits=self.limits, images=dict(self.images))

    @property
    def image_refs(self) -> List[str]:
        """The images of its own any host runs (checked to be in the engine before bring-up)."""
        return self.lab_spec().image_refs()

    def to_dict(self) -> Dict[str, Any]:
        return {"clients": self.clients, "networks": list(self.all_networks),
                "hosts": list(self.host_names), "extra_hosts": dict(self.hosts),
                "server": self.server, "tcp_mode": self.tcp_mode, "capture": self.capture,
                "limits": {"pids": self.limits.pids, "memory_bytes": self.limits.memory,
                           "cpus": self.limits.cpus},
                "server_command": list(self.server_command), "client_command": list(CLIENT_COMMAND),
                "images": {name: _spec_dict(h) for name, h in (*self.images, *self.host_specs)}}


def _spec_dict(host: HostSpec) -> Dict[str, Any]:
    return {"network": host.network, "image": host.image, "command": list(host.command),
            "ready_port": host.ready_port, "ready_log": host.ready_log}


def impairment_dict(link: Link, imp: Impairment) -> Dict[str, Any]:
    return {"link": str(link), **impairment_to_dict(imp)}


@dataclass(frozen=True)
class Step:
    """Common to every step: its place in the list, its time, its name, where it is written."""

    index: int
    at_s: float
    name: str
    position: Position
    after: Optional[str]           # an earlier step that must have ended first (None: the clock alone)
    kind: ClassVar[str] = "step"

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"kind": self.kind, "index": self.index, "name": self.name,
                               "at_s": self.at_s, "position": str(self.position)}
        for f in fields(self):
            if f.name in out or f.name == "position":
                continue
            value = getattr(self, f.name)
            if isinstance(value, Mapping):
                value = [impairment_dict(link, imp) for link, imp in value.items()]
            elif isinstance(value, tuple):
                value = [str(v) for v in value]
            out[f.name] = value
        return out


@dataclass(frozen=True)
class RunStep(Step):
    hosts: Tuple[str, ...]
    command: str                   # run with sh -c
    background: bool
    stagger_s: float
    timeout_s: Optional[float]     # None: no timeout (background steps by default)
    ready: Optional[str]           # text that releases later steps
    ready_timeout_s: float
    program: Optional[str]         # the lab program the command runs, if known (udp-measure, ...)
    together: bool = False         # every host held, then let go at one moment (the start barrier)
    kind: ClassVar[str] = "run"

    def start_offset_s(self, host: str) -> float:
        """When ``host`` starts, from the scenario's start."""
        return self.at_s + self.hosts.index(host) * self.stagger_s


@dataclass(frozen=True)
class RouterStep(Step):
    """A step that changes the router (impair, partition, heal): ``change`` says how, for
    ``impairments.model.next_state``; ``impairments`` is every link it touches with that
    link's full new impairment (for reports and plots)."""

    impairments: Mapping[Link, Impairment]

    @property
    def change(self) -> Change:
        raise NotImplementedError


@dataclass(frozen=True)
class ImpairStep(RouterStep):
    kind: ClassVar[str] = "impair"

    @property
    def change(self) -> Change:
        return Change(impair=self.impairments)


@dataclass(frozen=True)
class PartitionStep(RouterStep):
    links: Tuple[Link, ...]
    kind: ClassVar[str] = "partition"

    @property
    def change(self) -> Change:
        return Change(partition=self.links)


@dataclass(frozen=True)
class HealStep(RouterStep):
    links: Tuple[Link, ...]
    kind: ClassVar[str] = "heal"

    @property
    def change(self) -> Change:
        return Change(heal=self.links)


@dataclass(frozen=True)
class SignalStep(Step):
    action: str                    # stop (SIGTERM) | kill (SIGKILL) | restart (stop, then run again)
    targets: Tuple[str, ...]       # names of earlier run steps
    kind: ClassVar[str] = "signal"


@dataclass(frozen=True)
class HostStep(Step):
    action: str                    # stop | start | restart
    hosts: Tuple[str, ...]
    kind: ClassVar[str] = "host"


@dataclass(frozen=True)
class WaitStep(Step):
    duration_s: float
    kind: ClassVar[str] = "wait"


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    topology: ScenarioTopology
    impairments: Mapping[Link, Impairment]     # at t = 0, only links that have one
    steps: Tuple[Step, ...]
    expectations: Tuple[Expectation, ...]
    source: str                                # the file it was read from
    version: int = 1

    @property
    def capture(self) -> bool:
        return self.topology.capture

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    @property
    def run_steps(self) -> List[RunStep]:
        return [s for s in self.steps if isinstance(s, RunStep)]

    def resolved_dict(self) -> Dict[str, Any]:
        """The resolved scenario as JSON-able data (written next to the run's results)."""
        return {
            "version": self.version, "name": self.name, "description": self.description,
            "source": self.source, "topology": self.topology.to_dict(),
            "impairments": [impairment_dict(link, imp) for link, imp in self.impairments.items()],
            "steps": [step.to_dict() for step in self.steps],
            "expect": [e.to_dict() for e in self.expectations],
        }

"""Making a Topology real in the Docker Engine, and finding/removing it again by label.

Everything created carries org.socketlab=1 and org.socketlab.lab=<name>, so
`remove_lab` can clean up after a crash or Ctrl-C from any later process.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import docker.errors
import docker.types

from .. import engine
from ..engine import LABEL, LABEL_LAB, LABEL_ROLE
from ..errors import LabError
from ..images import definition
from . import model
from .model import Host, LabSpec, Topology

LABEL_HOST = "org.socketlab.host"
NETWORK_OPTIONS = {
    # The bridge gets no address: the Docker host is no gateway; the router is.
    "com.docker.network.bridge.inhibit_ipv4": "true",
    "com.docker.network.bridge.enable_ip_masquerade": "false",
}
ROUTER_SYSCTLS = {"net.ipv4.ip_forward": "1", "net.ipv4.conf.all.send_redirects": "0"}
# The router alone may change the network (NET_ADMIN) and see raw frames (NET_RAW);
# tcpdump also switches to its own user after opening the capture (SETUID, SETGID).
ROUTER_CAPS = ["NET_ADMIN", "NET_RAW", "SETGID", "SETUID"]
# Lab names come from /etc/hosts. Anything else goes to Docker's DNS, whose upstream
# is outside the lab and unreachable from it: fail in a second, not after 20 s of retries.
DNS_OPTIONS = ["timeout:1", "attempts:1"]


@dataclass
class ExecResult:
    exit_code: int
    stdout: str
    stderr: str


def labels(lab: str, **extra: str) -> dict[str, str]:
    return {LABEL: "1", LABEL_LAB: lab, **extra}


def container_name(lab: str, host: str) -> str:
    return f"{lab}-{host}"


def network_name(lab: str, net: str) -> str:
    return f"{lab}-{net}"


def host_settings(topo: Topology, host: Host, work_dir: Path | None) -> dict:
    """The container's settings as plain data (kept apart from the API calls, for tests)."""
    router = host.role == "router"
    return {
        "name": container_name(topo.lab, host.name),
        "hostname": host.name,
        "command": list(host.command),
        "labels": labels(topo.lab, **{LABEL_ROLE: host.role, LABEL_HOST: host.name}),
        # Only the router may change the network; no host can send raw frames
        # (which could skip the router), except the router for captures.
        "cap_drop": ["ALL"] if router else ["NET_RAW"],
        "cap_add": ROUTER_CAPS if router else [],
        "sysctls": ROUTER_SYSCTLS if router else {},
        "extra_hosts": topo.names_for(host),
        "dns_opt": DNS_OPTIONS,
        "binds": {str(work_dir): {"bind": "/work", "mode": "rw"}} if work_dir else {},
        "networks": [(network_name(topo.lab, net), str(addr)) for net, addr in host.addresses],
    }


class DockerLab:
    """A running (or about to run) lab. Use as a context manager to always clean up."""

    def __init__(self, topology: Topology, work_dir: Path | None = None, spec: LabSpec | None = None):
        self.topology = topology
        self.work_dir = work_dir.resolve() if work_dir else None
        self.spec = spec          # to choose subnets again if another lab takes ours first
        self.c = engine.client()

    @classmethod
    def plan(cls, spec: LabSpec, work_dir: Path | None = None) -> "DockerLab":
        """Choose free subnets for `spec` and refuse a lab name that is already up."""
        model.check_lab_name(spec.lab)
        if find_containers(spec.lab):
            raise LabError(f"a lab named {spec.lab!r} is already up",
                           hint=f"use another --name, or `lab down {spec.lab}` first")
        return cls(_build_on_free_subnets(spec), work_dir, spec)

    def __enter__(self) -> "DockerLab":
        self.up()
        return self

    def __exit__(self, *exc) -> None:
        self.down()

    # --- bring-up and tear-down -------------------------------------------

    def up(self, progress=lambda msg: None, ready_timeout: float = 60.0) -> None:
        """Create networks and hosts, start them in order. On any failure or Ctrl-C, remove all."""
        try:
            self._check_image()
            self._create_networks(progress)
            for host in self.topology.hosts:
                self._create_container(host)
            # Router first (it is everyone's gateway), then servers, then the rest.
            order = sorted(self.topology.hosts, key=lambda h: {"router": 0, "server": 1}.get(h.role, 2))
            for host in order:
                progress(f"starting {host.name} ({host.role}) {', '.join(str(a) for _, a in host.addresses)}")
                self.container(host.name).start()
                if host.ready:
                    self.wait_for_output(host.name, host.ready, ready_timeout)
        except BaseException:
            self.down()
            raise

    def down(self) -> None:
        remove_lab(self.topology.lab)

    def _check_image(self) -> None:
        try:
            image = self.c.images.get(definition.HOST_IMAGE)
        except docker.errors.ImageNotFound:
            raise LabError(f"the image {definition.HOST_IMAGE} is not in the engine", hint="run `lab images build`") from None
        built_from = image.labels.get(definition.PROGRAMS_LABEL)  # none: built by compose, trusted
        if built_from and built_from != definition.programs_digest(definition.context_files()):
            raise LabError(f"the image {definition.HOST_IMAGE} holds older lab programs than this checkout",
                           hint="run `lab images build` (it rebuilds only what changed)")

    def _create_networks(self, progress, attempts: int = 3) -> None:
        """Subnets are chosen before they are created, so a lab that another process
        brings up meanwhile can take one first ("Pool overlaps"): then choose again."""
        for attempt in range(1, attempts + 1):
            try:
                for net in self.topology.networks:
                    progress(f"network {network_name(self.topology.lab, net.name)} {net.subnet}")
                    self._create_network(net)
                return
            except docker.errors.APIError as exc:
                if "overlaps" not in str(exc) or self.spec is None or attempt == attempts:
                    raise
                progress("a subnet was taken meanwhile by another lab: choosing again")
                remove_lab(self.topology.lab)
                self.topology = _build_on_free_subnets(self.spec)

    def _create_network(self, net: model.Network) -> None:
        ipam = docker.types.IPAMConfig(pool_configs=[
            docker.types.IPAMPool(subnet=str(net.subnet), gateway=str(net.gateway))])
        self.c.networks.create(network_name(self.topology.lab, net.name), driver="bridge",
                               options=NETWORK_OPTIONS, ipam=ipam, labels=labels(self.topology.lab),
                               check_duplicate=True)

    def _create_container(self, host: Host) -> None:
        s = host_settings(self.topology, host, self.work_dir)
        api = self.c.api
        (first_net, first_ip), *more = s["networks"]
        host_config = api.create_host_config(
            cap_drop=s["cap_drop"], cap_add=s["cap_add"], sysctls=s["sysctls"] or None,
            extra_hosts=s["extra_hosts"], dns_opt=s["dns_opt"], binds=s["binds"] or None, init=True,
            network_mode=first_net)
        networking = api.create_networking_config(
            {first_net: api.create_endpoint_config(ipv4_address=first_ip)})
        api.create_container(definition.HOST_IMAGE, command=s["command"], name=s["name"], hostname=s["hostname"],
                             labels=s["labels"], host_config=host_config, networking_config=networking,
                             working_dir="/work")
        for net, ip in more:
            api.connect_container_to_network(s["name"], net, ipv4_address=ip)

    # --- using a running lab ----------------------------------------------

    def container(self, host: str):
        return self.c.containers.get(container_name(self.topology.lab, host))

    def logs(self, host: str) -> str:
        return self.container(host).logs().decode(errors="replace")

    def wait_for_output(self, host: str, lines: tuple[str, ...], timeout: float) -> str:
        """Wait until every one of `lines` appears in the host's output (bounded)."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.logs(host)
            if all(line in text for line in lines):
                return text
            ctr = self.container(host)
            if ctr.status == "exited" or time.monotonic() > deadline:
                tail = "\n    ".join(text.splitlines()[-8:])
                raise LabError(f"{host} did not become ready (waiting for {lines}); its output:\n    {tail}")
            time.sleep(0.1)  # polling a condition with a deadline, not hoping

    def exec(self, host: str, argv: list[str], user: str = "") -> ExecResult:
        return exec_in(self.container(host), argv, user)


def _build_on_free_subnets(spec: LabSpec) -> Topology:
    return spec.build(model.free_subnets(used_subnets(), 2 + len(spec.extra_networks)))


def exec_in(container, argv: list[str], user: str = "") -> ExecResult:
    api = container.client.api
    exec_id = api.exec_create(container.id, argv, user=user)["Id"]
    out, err = api.exec_start(exec_id, demux=True)
    code = api.exec_inspect(exec_id)["ExitCode"]
    return ExecResult(code, (out or b"").decode(errors="replace"), (err or b"").decode(errors="replace"))


# --- finding and removing labs by label ---------------------------------------

def find_containers(lab: str | None = None) -> list:
    label = f"{LABEL_LAB}={lab}" if lab else f"{LABEL}=1"
    return engine.client().containers.list(all=True, filters={"label": label})


def find_networks(lab: str | None = None) -> list:
    label = f"{LABEL_LAB}={lab}" if lab else f"{LABEL}=1"
    return engine.client().networks.list(filters={"label": label})


def used_subnets() -> list[model.IPv4Net]:
    import ipaddress
    subnets = []
    for net in engine.client().networks.list():
        for cfg in (net.attrs.get("IPAM") or {}).get("Config") or []:
            try:
                subnets.append(ipaddress.ip_network(cfg.get("Subnet", ""), strict=False))
            except ValueError:
                continue
    return [s for s in subnets if s.version == 4]


def remove_lab(lab: str | None) -> tuple[int, int]:
    """Remove every container and network of `lab` (None: of every lab). Idempotent.

    Uses single list calls and ignores "already gone": a request cut short by
    Ctrl-C may still be creating a container while we clean up, so look again
    until nothing labelled is left.
    """
    api = engine.client().api
    label = f"{LABEL_LAB}={lab}" if lab else f"{LABEL}=1"
    n_containers = n_networks = 0
    for _ in range(5):
        containers = api.containers(all=True, filters={"label": label})
        for ctr in containers:
            try:
                api.remove_container(ctr["Id"], force=True, v=True)
                n_containers += 1
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                if "already in progress" not in str(exc):
                    raise
        networks = api.networks(filters={"label": label})
        for net in networks:
            try:
                api.remove_network(net["Id"])
                n_networks += 1
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                if "active endpoints" not in str(exc):  # a container still leaving: next round
                    raise
        if not containers and not networks:
            break
    return n_containers, n_networks


def find_host(host: str, lab: str | None):
    """The container of `host` in `lab` (or in the only lab that is up)."""
    filters = {"label": [f"{LABEL_HOST}={host}"] + ([f"{LABEL_LAB}={lab}"] if lab else [])}
    found = engine.client().containers.list(all=True, filters=filters)
    if not found:
        where = f"lab {lab!r}" if lab else "any lab"
        raise LabError(f"no host {host!r} in {where}", hint="`lab status` lists the labs and their hosts")
    labs = sorted({c.labels.get(LABEL_LAB) for c in found})
    if len(found) > 1:
        raise LabError(f"host {host!r} is in several labs ({', '.join(labs)})", hint="pick one with --lab NAME")
    return found[0]

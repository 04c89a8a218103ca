"""Making a Topology real in the Docker Engine, and finding/removing it again by label.

Everything created carries the labels of labels.py: socketlab's mark, the lab's name,
the DockerLab instance that made it and, for an ephemeral lab, its owner process. So
`remove_lab` can clean up after a crash or Ctrl-C from any later process, and
`reap_stale` removes the ephemeral labs whose owner is gone (kill -9 included).

Subnets: several processes may bring labs up at the same moment, each choosing from
the same pool. The engine is the arbiter: creating a network on a subnet another one
overlaps fails ("Pool overlaps"), atomically, in the daemon. A lab then moves on to its
next candidate (ephemeral labs start at a random place in the pool), so labs made
together never fail for that race, whatever process made them (no shared lock needed).
"""
from __future__ import annotations

import codecs
import functools
import ipaddress
import json
import random
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import docker.errors
import docker.types
import docker.utils

from .. import engine, labels
from . import workdir
from ..concurrency import run_all
from ..programs.shared.errors import LabEnvironmentError, LabError
from ..images import definition
from ..labels import LABEL_HOST, LABEL_LAB, LABEL_ROLE, Owner
from ..programs.shared import topology as model
from ..programs.shared.topology import Host, LabSpec, Topology

NETWORK_OPTIONS = {
    # The bridge gets no address: the Docker host is no gateway; the router is.
    "com.docker.network.bridge.inhibit_ipv4": "true",
    "com.docker.network.bridge.enable_ip_masquerade": "false",
}
# Podman's Docker-compatible API ignores both options (it warns) and puts the gateway
# address on its bridge: the engine's host would answer for the router. Its own API
# (libpod) makes the network instead: the bridge holds the subnet's last address, the
# hosts get no default route to it, and a route of the network sends them to the router.
# The network is internal: no NAT and no forwarding on the engine's host. Otherwise its
# masquerade rule (br_netfilter, which Docker loads, puts bridged frames through it) would
# rewrite a client's frames to the router with the bridge's address, and no exchange
# through the router would come back.
PODMAN_API = "/v4.0.0/libpod"


def podman_network(name: str, subnet: model.IPv4Net, router: model.IPv4Addr, metric: int,
                   tags: dict) -> dict:
    """The libpod network-create body for a lab network on Podman (pure)."""
    return {
        "name": name, "driver": "bridge", "labels": tags, "internal": True, "dns_enabled": False,
        "subnets": [{"subnet": str(subnet), "gateway": str(subnet.broadcast_address - 1)}],
        "options": {"no_default_route": "true", "isolate": "true"},
        # A host on several lab networks (the router) gets one such route per network:
        # distinct metrics, or the second is refused ("File exists").
        "routes": [{"destination": "0.0.0.0/0", "gateway": str(router), "metric": metric}],
    }
ROUTER_SYSCTLS = {"net.ipv4.ip_forward": "1", "net.ipv4.conf.all.send_redirects": "0"}
# The router alone may change the network (NET_ADMIN) and see raw frames (NET_RAW);
# tcpdump also switches to its own user after opening the capture (SETUID, SETGID).
ROUTER_CAPS = ["NET_ADMIN", "NET_RAW", "SETGID", "SETUID"]
# Lab names come from /etc/hosts. Anything else goes to Docker's DNS, whose upstream
# is outside the lab and unreachable from it: fail in a second, not after 20 s of retries.
DNS_OPTIONS = ["timeout:1", "attempts:1"]
# How often a lab looks again at which subnets are free before it gives up: each
# look tries every free candidate once, so this bounds the work, not the luck.
SUBNET_ROUNDS = 4
# Removal looks again while something is still leaving (a network's endpoints go a moment after
# its containers, later on a busy machine): about 6 s in all, then it says what is left.
REMOVE_PAUSES_S = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2)


@dataclass
class ExecResult:
    exit_code: int
    stdout: str
    stderr: str


def container_name(lab: str, host: str) -> str:
    return f"{lab}-{host}"


def network_name(lab: str, net: str) -> str:
    return f"{lab}-{net}"


def new_instance() -> str:
    return secrets.token_hex(6)


def host_settings(topo: Topology, host: Host, work_dir: Path | None, instance: str = "",
                  owner: Optional[Owner] = None, engine_cpus: int = 1, by_archive: bool = False) -> dict:
    """The container's settings as plain data (kept apart from the API calls, for tests).
    The work folder is bind-mounted, or (by_archive) copied in and back (workdir.py)."""
    router = host.role == "router"
    work = {labels.LABEL_WORK: str(work_dir)} if work_dir and by_archive else {}
    return {
        "name": container_name(topo.lab, host.name),
        "hostname": host.name,
        "command": list(host.command),
        "labels": labels.lab_labels(topo.lab, instance, owner, **{LABEL_ROLE: host.role, LABEL_HOST: host.name},
                                    **work),
        # Only the router may change the network; no host can send raw frames
        # (which could skip the router), except the router for captures.
        "cap_drop": ["ALL"] if router else ["NET_RAW"],
        "cap_add": ROUTER_CAPS if router else [],
        "sysctls": ROUTER_SYSCTLS if router else {},
        "extra_hosts": topo.names_for(host),
        "dns_opt": DNS_OPTIONS,
        "binds": {str(work_dir): {"bind": "/work", "mode": "rw"}} if work_dir and not by_archive else {},
        "networks": [(network_name(topo.lab, net), str(addr)) for net, addr in host.addresses],
        "limits": model.limit_settings(topo.limits, router, engine_cpus),
    }


class DockerLab:
    """A running (or about to run) lab. Use as a context manager to always clean up.

    Ephemeral by default (tests, benchmarks, `lab run`, any library use): the lab carries
    this process as its owner, and once the process is gone any later `lab` command
    removes it. `ephemeral=False` makes a class lab (`lab up`): it stays until `lab down`.
    """

    def __init__(self, topology: Topology, work_dir: Path | None = None, spec: LabSpec | None = None,
                 ephemeral: bool = True, start: int = 0):
        self.topology = topology
        self.work_dir = work_dir.resolve() if work_dir else None
        self.spec = spec          # to choose other subnets if another lab takes ours first
        self.start = start        # where in the pool's free subnets this lab looks first
        self.owner = labels.current_owner() if ephemeral else None
        self.instance = new_instance()
        # Network name -> id of the networks this lab made. Containers join by id: two
        # processes bringing up the same name at once may both create a network of that
        # name (the engine's duplicate check is not atomic), and a name would be ambiguous.
        self.network_ids: dict[str, str] = {}
        self.c = engine.client()
        self._work_archive: bytes | None = None   # the work folder packed, when it goes by archive
        self._work_sent: dict[str, str] = {}          # by archive: what the hosts got (path -> sha256)
        self._work_seen: dict[str, tuple[int, int]] = {}  # the folder's signature at the last push

    @classmethod
    def plan(cls, spec: LabSpec, work_dir: Path | None = None, ephemeral: bool = True) -> "DockerLab":
        """Choose free subnets for `spec` and refuse a lab name that is already up."""
        model.check_lab_name(spec.lab)
        check_images(spec.image_refs())
        if find_containers(spec.lab):
            raise lab_taken(spec.lab)
        start = random.SystemRandom().randrange(1 << 16) if ephemeral else 0
        subnets = model.free_subnets(used_subnets(), model.NETWORKS_PER_LAB + len(spec.extra_networks), start)
        return cls(spec.build(subnets), work_dir, spec, ephemeral, start)

    @property
    def ephemeral(self) -> bool:
        return self.owner is not None

    def __enter__(self) -> "DockerLab":
        self.up()
        return self

    def __exit__(self, *exc) -> None:
        self.down()

    # --- bring-up and tear-down -------------------------------------------

    def up(self, progress=lambda msg: None, ready_timeout: float = 60.0) -> None:
        """Create networks and hosts, start them in order. On any failure or Ctrl-C, remove all.

        The order: router and servers are created and started together (the router is
        everyone's gateway); the other hosts are created while they boot, and started all
        at once when both have printed their ready lines (a client's demo goes through
        the router to the server). Creating, starting and waiting are concurrent API
        calls (run_all); readiness comes from each host's followed log stream, not from
        polling."""
        try:
            self._check_image()
            if self.work_dir and not engine.bind_mounts():
                progress(f"work folder {self.work_dir}: copied into each host, brought back when the lab is removed "
                         "(the engine cannot see this machine's files)")
                self._work_seen = workdir.signature(self.work_dir)
                self._work_archive, self._work_sent = workdir.pack(self.work_dir)
            self._create_networks(progress)
            self._settle_name_race()
            engine_cpus = int(self.c.info().get("NCPU") or 1)
            first = [h for h in self.topology.hosts if h.role in ("router", "server")]
            rest = [h for h in self.topology.hosts if h not in first]
            self._create_hosts(first, engine_cpus)
            self._start_hosts(first, progress)
            self._create_hosts(rest, engine_cpus)       # while router and server boot
            self.wait_for_outputs({h.name: h.ready for h in first if h.ready}, _longest(first, ready_timeout))
            self.wait_for_ports([h for h in first if h.ready_port], ready_timeout)
            self._start_hosts(rest, progress)
            self.wait_for_outputs({h.name: h.ready for h in rest if h.ready}, _longest(rest, ready_timeout))
            self.wait_for_ports([h for h in rest if h.ready_port], ready_timeout)
            self._check_running([h for h in self.topology.hosts if h.own_image])
        except BaseException:
            self.down()
            raise

    def _create_hosts(self, hosts: list[Host], engine_cpus: int) -> None:
        run_all(functools.partial(self._create_container, host, engine_cpus) for host in hosts)

    def _start_hosts(self, hosts: list[Host], progress) -> None:
        for host in hosts:
            progress(f"starting {host.name} ({host.role}) {', '.join(str(a) for _, a in host.addresses)}")
        run_all(functools.partial(self.c.api.start, container_name(self.topology.lab, h.name)) for h in hosts)

    @property
    def work_by_archive(self) -> bool:
        return self._work_archive is not None

    def push_work(self) -> list[str]:
        """By archive: the work folder's files that are new or changed since the last push
        (or bring-up) are copied into every host, as a bind mount would show them. Returns
        them (nothing when the folder did not change, or it is bind-mounted)."""
        if self._work_archive is None or not self.work_dir.is_dir():
            return []
        seen = workdir.signature(self.work_dir)
        if seen == self._work_seen:
            return []
        archive, sent, changed = workdir.pack_changes(self.work_dir, self._work_sent)
        if changed:
            run_all(functools.partial(workdir.put_into, self.c.api, container_name(self.topology.lab, h.name),
                                      archive) for h in self.topology.hosts)
        self._work_sent, self._work_seen = sent, seen
        return changed

    def pull_work(self, hosts: list[str]) -> list[str]:
        """By archive: what `hosts` changed in their /work is written into the work folder now
        (as a bind mount would show it), not only when the lab is removed. The next push
        gives it to the other hosts. Returns the conflicts, one line each."""
        if self._work_archive is None or not self.work_dir.is_dir():
            return []
        order = {h.name: i for i, h in enumerate(self.topology.hosts)}
        works = []
        try:
            for host in sorted(set(hosts), key=lambda h: order.get(h, len(order))):
                work = workdir.take_from(self.c.api, container_name(self.topology.lab, host), host)
                if work is not None:
                    works.append(work)
            plan = workdir.write_back(self.work_dir, works)
        finally:
            for w in works:
                if not w.tar.closed:
                    w.tar.close()
        return [f"{path} was changed on {', '.join(hs)}: {self.work_dir} has {hs[0]}'s"
                for path, hs in sorted(plan.conflicts.items())]

    def down(self) -> None:
        """Remove what this lab made (by its instance label: never another process's lab
        that happens to have the same name)."""
        remove_matching(labels.filters(instance=self.instance))

    def _check_image(self) -> None:
        try:
            image = self.c.images.get(definition.HOST_IMAGE)
        except docker.errors.ImageNotFound:
            raise LabEnvironmentError(f"the image {definition.HOST_IMAGE} is not in the engine", hint="run `lab images build`") from None
        built_from = image.labels.get(labels.LABEL_PROGRAMS)  # none: built by compose, trusted
        if built_from and built_from != definition.programs_digest(definition.context_files()):
            raise LabEnvironmentError(f"the image {definition.HOST_IMAGE} holds older lab programs than this checkout",
                           hint="run `lab images build` (it rebuilds only what changed)")

    def wait_for_ports(self, hosts: list[Host], timeout: float) -> None:
        """Wait until each host's ready port accepts a TCP connection from the router (a
        connect, then close: `nc -z` on the router, which every host routes through), or
        fail with the host's last output lines when it exits or the time is up."""
        started = time.monotonic()
        pending = list(hosts)
        router = self.container("router") if hosts else None
        while pending:
            for host in list(pending):
                probe = exec_in(router, ["nc", "-z", "-w", "1", str(host.address), str(host.ready_port)])
                if probe.exit_code == 0:
                    pending.remove(host)
                    continue
                ctr = self.container(host.name)
                if ctr.status != "running":
                    raise not_ready(host.name, f"exited before port {host.ready_port} accepted connections",
                                    self.logs(host.name))
                limit = host.ready_timeout or timeout
                if time.monotonic() - started > limit:
                    raise not_ready(host.name, f"port {host.ready_port} accepted no connection from the "
                                               f"router within {limit:g} s", self.logs(host.name))
            if pending:
                time.sleep(0.1)  # polling a condition with a deadline, not hoping

    def _check_running(self, hosts: list[Host]) -> None:
        """Hosts with an image of their own and no ready condition are up when their
        container runs: one that has exited already fails the bring-up."""
        for host in hosts:
            ctr = self.container(host.name)
            if ctr.status != "running":
                code = ctr.attrs.get("State", {}).get("ExitCode")
                raise not_ready(host.name, f"exited (exit {code}) during bring-up", self.logs(host.name))

    def _create_networks(self, progress) -> None:
        """Create the lab's networks, the engine deciding who gets a contested subnet.

        A subnet another process took since we chose it fails at once ("Pool overlaps"):
        move on to the next free candidate, looking again at what is free up to
        SUBNET_ROUNDS times. Hosts' addresses follow the subnets the lab really got.
        """
        names = [n.name for n in self.topology.networks]
        planned = [n.subnet for n in self.topology.networks]
        if self.spec is None:      # a fixed topology: its own subnets or nothing
            for net in self.topology.networks:
                progress(f"network {network_name(self.topology.lab, net.name)} {net.subnet}")
                self._create_network(net)
            return
        got: list[model.IPv4Net] = []
        tried: set[model.IPv4Net] = set()
        candidates = planned
        for _ in range(SUBNET_ROUNDS):
            for subnet in [*candidates, *model.subnet_candidates(used_subnets(), self.start)]:
                if len(got) == len(names):
                    break
                if subnet in tried:
                    continue
                tried.add(subnet)
                net = model.Network(names[len(got)], subnet)
                try:
                    self._create_network(net)
                except docker.errors.APIError as exc:
                    if "overlaps" not in str(exc) and "already used" not in str(exc):   # Docker, Podman
                        raise
                    progress(f"subnet {subnet} was taken meanwhile by another lab: trying the next")
                    continue
                got.append(subnet)
                progress(f"network {network_name(self.topology.lab, net.name)} {subnet}")
            if len(got) == len(names):
                break
            candidates = []
        else:
            raise model.no_free_subnets(len(names))
        if got != planned:
            self.topology = self.spec.build(got)

    def _settle_name_race(self, timeout: float = 30.0) -> None:
        """Two processes bringing up one lab name at the same moment can both create its
        networks (the engine's duplicate-name check is not atomic), and a container on a
        name two networks share cannot start ("ambiguous"). Exactly one lab wins, looking
        again until only its own networks carry the names (bounded):

        - a lab of that name that has containers already is up: this one loses;
        - else, of two networks on the name made last, the smaller id wins (a process
          refused at an earlier name has lost already, and removes what it made).

        A rival may appear after a first look found none, so the look is repeated, not
        taken once. The loser removes what it made and says the name is taken."""
        api = self.c.api
        if not self.network_ids:
            return
        last, mine_last = list(self.network_ids.items())[-1]
        deadline = time.monotonic() + timeout
        while True:
            others_up = [c for c in api.containers(all=True, filters=labels.filters(lab=self.topology.lab))
                         if c["Labels"].get(labels.LABEL_INSTANCE) != self.instance]
            named = {name: [n["Id"] for n in api.networks(names=[name]) if n["Name"] == name]
                     for name in self.network_ids}
            if others_up or min(named[last], default=mine_last) != mine_last:
                raise lab_taken(self.topology.lab)
            if all(set(ids) <= {self.network_ids[name]} for name, ids in named.items()):
                return
            if time.monotonic() > deadline:
                raise LabEnvironmentError(f"another lab's networks named {last} did not go away",
                                          hint=f"`lab down {self.topology.lab}`, then try again")
            time.sleep(0.1)  # the losing process is removing its networks

    def _create_network(self, net: model.Network) -> None:
        ipam = docker.types.IPAMConfig(pool_configs=[
            docker.types.IPAMPool(subnet=str(net.subnet), gateway=str(net.gateway))])
        name = network_name(self.topology.lab, net.name)
        # CheckDuplicate makes Engines before 25 (API 1.44) refuse a second network of
        # the same name; newer ones always do and ignore (and deprecate) the field.
        api_version = getattr(getattr(self.c, "api", None), "api_version", None)
        older = api_version is None or docker.utils.version_lt(api_version, "1.44")
        tags = labels.lab_labels(self.topology.lab, self.instance, self.owner)
        try:
            if self._podman():
                self.network_ids[name] = self._create_podman_network(name, net, tags)
                return
            created = self.c.networks.create(name, driver="bridge", options=NETWORK_OPTIONS, ipam=ipam,
                                             labels=tags, **({"check_duplicate": True} if older else {}))
        except docker.errors.APIError as exc:
            raise _name_taken(self.topology.lab, exc) or exc
        self.network_ids[name] = created.id

    def _podman(self) -> bool:
        """Whether the engine is Podman (asked once per lab)."""
        if not hasattr(self, "_is_podman"):
            self._is_podman = engine.kind_of(self.c.version(), self.c.info())[0] == "Podman"
        return self._is_podman

    def _create_podman_network(self, name: str, net: model.Network, tags: dict) -> str:
        api = self.c.api
        order = [n.name for n in self.topology.networks]
        metric = 100 + (order.index(net.name) if net.name in order else 0)
        body = podman_network(name, net.subnet, net.gateway, metric, tags)
        response = api.post(api.base_url + PODMAN_API + "/networks/create", data=json.dumps(body),
                            headers={"Content-Type": "application/json"})
        return api._result(response, json=True)["id"]   # noqa: SLF001 - raises APIError as the SDK does

    def _create_container(self, host: Host, engine_cpus: int = 1) -> None:
        s = host_settings(self.topology, host, self.work_dir, self.instance, self.owner, engine_cpus,
                          by_archive=self._work_archive is not None)
        api = self.c.api
        (first_net, first_ip), *more = [(self.network_ids.get(net, net), ip) for net, ip in s["networks"]]
        host_config = api.create_host_config(
            cap_drop=s["cap_drop"], cap_add=s["cap_add"], sysctls=s["sysctls"] or None,
            extra_hosts=s["extra_hosts"], dns_opt=s["dns_opt"], binds=s["binds"] or None, init=True,
            network_mode=first_net, **s["limits"])
        networking = api.create_networking_config(
            {first_net: api.create_endpoint_config(ipv4_address=first_ip)})
        try:
            # A host with its own image keeps that image's command (when none is given) and
            # working directory; socketlab's hosts start in /work, the shared folder.
            api.create_container(host.image or definition.HOST_IMAGE, command=s["command"] or None,
                                 name=s["name"], hostname=s["hostname"], labels=s["labels"],
                                 host_config=host_config, networking_config=networking,
                                 working_dir=None if host.own_image else "/work")
        except docker.errors.APIError as exc:
            raise _name_taken(self.topology.lab, exc) or exc
        for net, ip in more:
            api.connect_container_to_network(s["name"], net, ipv4_address=ip)
        if self._work_archive is not None:
            workdir.put_into(api, s["name"], self._work_archive)

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

    def wait_for_outputs(self, lines_of: dict[str, tuple[str, ...]], timeout: float) -> None:
        """Wait until each host has printed every one of its lines (all hosts at once, bounded)."""
        await_lines({container_name(self.topology.lab, host): lines for host, lines in lines_of.items()},
                    timeout, prefix=network_name(self.topology.lab, ""))

    def exec(self, host: str, argv: list[str], user: str = "") -> ExecResult:
        return exec_in(self.container(host), argv, user)


class OutputWatch:
    """Follows containers' output streams until each has printed its lines.

    `stop()` (from any thread) closes every stream, also one opened after it, so a
    follower blocked on a quiet host returns at once: at the deadline, or when another
    follower failed. What a follower keeps is bounded (the unmatched lines and a tail).
    """

    TAIL_CHARS = 4096

    def __init__(self):
        self.api = engine.stream_client()   # a quiet host is not a request timeout
        self._lock = threading.Lock()
        self._streams: list = []
        self.stopped = False

    def stop(self) -> None:
        with self._lock:
            self.stopped = True
            streams = list(self._streams)
        for stream in streams:
            stream.close()

    def follow(self, container: str, lines: tuple[str, ...], label: str, timeout: float) -> None:
        stream = self.api.logs(container, stream=True, follow=True)
        with self._lock:
            self._streams.append(stream)
            stopped = self.stopped
        if stopped:
            stream.close()
        decode = codecs.getincrementaldecoder("utf-8")(errors="replace").decode
        missing, tail = list(lines), ""
        keep = max(map(len, lines), default=0) + self.TAIL_CHARS
        try:
            for chunk in stream:
                text = tail + decode(chunk)
                missing = [line for line in missing if line not in text]
                if not missing:
                    stream.close()
                    return
                tail = text[-keep:]
        except Exception:
            if not self.stopped:   # a stream closed under a read may raise anything: that is stop()
                raise
        why = f"within {timeout:g} s" if self.stopped else "before it exited"
        shown = "\n    ".join(tail.splitlines()[-8:])
        raise LabError(f"{label} did not become ready {why} (waiting for {tuple(missing)}); its output:\n    {shown}")


def await_lines(lines_of: dict[str, tuple[str, ...]], timeout: float, prefix: str = "") -> None:
    """Wait until each container (name or id) has printed every one of its lines, following
    all their output streams at once; the first one that exits or times out is the error."""
    watch = OutputWatch()
    timer = threading.Timer(timeout, watch.stop)
    timer.daemon = True
    timer.start()
    try:
        run_all((functools.partial(watch.follow, ctr, lines, ctr.removeprefix(prefix), timeout)
                 for ctr, lines in lines_of.items()), workers=engine.POOL_SIZE, abort=watch.stop)
    finally:
        timer.cancel()


def _longest(hosts: list[Host], default: float) -> float:
    """How long to wait for a group's ready lines: the longest a host of it asks for."""
    return max([h.ready_timeout or default for h in hosts if h.ready] or [default])


def not_ready(host: str, why: str, output: str) -> LabError:
    tail = "\n    ".join(output.splitlines()[-8:]) or "(nothing)"
    return LabError(f"{host} did not become ready: {why}; its last output:\n    {tail}")


def check_images(refs: list[str]) -> None:
    """Every image in `refs` is in the engine, or a LabError (bad input, exit 2) with the
    engine's own answer: nothing is started for a lab that names an image it lacks.
    No images named, nothing to ask: the engine is not needed."""
    if not refs:
        return
    c = engine.client()
    for ref in refs:
        try:
            c.images.get(ref)
        except docker.errors.ImageNotFound as exc:
            answer = getattr(exc, "explanation", None) or str(exc)
            raise LabError(f"image {ref!r} is not in the engine: the Docker Engine said: {answer}",
                           hint="build or pull it first (`docker build -t REF .`, `docker pull REF`, "
                                "`docker load`); `docker images` lists what is there") from None


def lab_taken(lab: str) -> LabError:
    """The one error for a lab name already up (found before, or lost in a race)."""
    return LabError(f"a lab named {lab!r} is already up", hint=f"use another --name, or `lab down {lab}` first")


def _name_taken(lab: str, exc: docker.errors.APIError) -> LabError | None:
    """A name conflict (another process brought up a lab of this name at the same
    moment) as the same error `plan` gives when the lab was already up."""
    if getattr(exc, "status_code", None) == 409 or "already exists" in str(exc):
        return lab_taken(lab)
    return None


COMPOSE_SERVICE = "com.docker.compose.service"
COMPOSE_NUMBER = "com.docker.compose.container-number"
COMPOSE_NETWORK = "com.docker.compose.network"


def read_topology(lab: str, containers: list[dict], networks: list[dict]) -> tuple[Topology, dict[str, str]]:
    """A running lab's Topology read back from its labelled containers and networks (the
    engine's list answers, as plain data: pure), and host -> container id.

    A host is named by its label; a compose host (no such label) by its service, a
    scaled service's containers numbered (client1, client2, ...)."""
    prefix = network_name(lab, "")
    short: dict[str, str] = {}
    nets = []
    for net in networks:
        name = (net.get("Labels") or {}).get(COMPOSE_NETWORK) or net["Name"].removeprefix(prefix)
        short[net["Name"]] = name
        for cfg in (net.get("IPAM") or {}).get("Config") or []:
            if cfg.get("Subnet"):
                nets.append(model.Network(name, ipaddress.ip_network(cfg["Subnet"])))
    order = {"clients": 0, "servers": 1}
    nets.sort(key=lambda n: (order.get(n.name, 2), n.name))
    hosts, ids = [], {}
    for ctr in sorted(containers, key=lambda c: c.get("Names", [""])[0]):
        tags = ctr.get("Labels") or {}
        name = tags.get(LABEL_HOST)
        if name is None and tags.get(COMPOSE_SERVICE):
            service = tags[COMPOSE_SERVICE]
            name = f"{service}{tags.get(COMPOSE_NUMBER, '1')}" if service == "client" else service
        if name is None:
            name = (ctr.get("Names") or [ctr["Id"]])[0].lstrip("/")
        role = tags.get(LABEL_ROLE) or ("router" if name == "router" else "host")
        attached = ((ctr.get("NetworkSettings") or {}).get("Networks")) or {}
        addresses = tuple((short.get(net, net.removeprefix(prefix)), ipaddress.ip_address(cfg["IPAddress"]))
                          for net, cfg in sorted(attached.items()) if cfg.get("IPAddress"))
        hosts.append(Host(name, role, addresses, ()))
        ids[name] = ctr["Id"]
    return Topology(lab, tuple(nets), tuple(hosts)), ids


def exec_in(container, argv: list[str], user: str = "") -> ExecResult:
    api = container.client.api
    exec_id = api.exec_create(container.id, argv, user=user)["Id"]
    out, err = api.exec_start(exec_id, demux=True)
    code = api.exec_inspect(exec_id)["ExitCode"]
    return ExecResult(code, (out or b"").decode(errors="replace"), (err or b"").decode(errors="replace"))


# --- finding and removing labs by label ---------------------------------------

def find_containers(lab: str | None = None) -> list:
    return engine.client().containers.list(all=True, filters=labels.filters(lab=lab))


def find_networks(lab: str | None = None) -> list:
    return engine.client().networks.list(filters=labels.filters(lab=lab))


def used_subnets() -> list[model.IPv4Net]:
    subnets = []
    for net in engine.client().api.networks():
        for cfg in (net.get("IPAM") or {}).get("Config") or []:
            try:
                subnets.append(ipaddress.ip_network(cfg.get("Subnet", ""), strict=False))
            except ValueError:
                continue
    return [s for s in subnets if s.version == 4]


def remove_lab(lab: str | None) -> tuple[int, int]:
    """Remove every container and network of `lab` (None: of every lab). Idempotent."""
    return remove_matching(labels.filters(lab=lab))


def remove_machine_labs(any_owner: bool = False) -> tuple[int, int, list[str]]:
    """`lab down --all`: remove every lab this machine made (labels.mine), or with
    any_owner every lab. Returns containers and networks removed, and the names of the
    labs left because another machine made them."""
    api = engine.client().api
    here = labels.machine_id()
    items = api.containers(all=True, filters=labels.filters()) + api.networks(filters=labels.filters())
    ours, others = set(), set()
    for item in items:
        tags = item.get("Labels") or {}
        key = tags.get(labels.LABEL_INSTANCE) or tags.get(LABEL_LAB) or "?"
        (ours if labels.mine(tags, here, any_owner) else others).add((key, tags.get(LABEL_LAB, "?")))
    n_ctr = n_net = 0
    for key, lab in sorted(ours):
        by = labels.filters(instance=key) if key != lab else labels.filters(lab=lab)
        c, n = remove_matching(by)
        n_ctr, n_net = n_ctr + c, n_net + n
    return n_ctr, n_net, sorted({lab for _, lab in others})


def remove_matching(filters: dict) -> tuple[int, int]:
    """Remove every container and network matching label `filters`. Idempotent.

    Uses single list calls and ignores "already gone": a request cut short by
    Ctrl-C may still be creating a container while we clean up, so look again
    until nothing labelled is left.
    """
    api = engine.client().api
    n_containers = n_networks = 0
    # Hosts whose /work came in by archive give it back first (workdir.py); what could not
    # come back is said once everything is removed.
    problems = workdir.bring_back(api, filters, labels.machine_id())

    def remove(call, item_id: str, still_busy: str, gone: Callable[[str], bool] = lambda _: False) -> int:
        try:
            call(item_id)
            return 1
        except docker.errors.NotFound:
            return 0
        except docker.errors.APIError as exc:
            if still_busy in str(exc):  # e.g. a container still leaving: next round
                return 0
            if gone(item_id):   # removed, though the engine complained about its own clean-up
                return 1
            raise

    def container_gone(ctr_id: str) -> bool:
        # Podman removes the router and then reports that netavark could not delete the
        # default routes it gave it: the router deleted them itself (it has no way out).
        try:
            api.inspect_container(ctr_id)
        except docker.errors.NotFound:
            return True
        return False

    remove_container = functools.partial(api.remove_container, force=True, v=True)
    for pause in REMOVE_PAUSES_S:
        containers = api.containers(all=True, filters=filters)
        # One at a time: removing several containers of one network at once can leave the
        # engine (20.10) counting an endpoint that is gone, and the network then can never
        # be removed (seen after Ctrl-C during a 30-client bring-up, and after compose's
        # own parallel `down`).
        n_containers += sum(remove(remove_container, ctr["Id"], "already in progress", container_gone)
                            for ctr in containers)
        networks = api.networks(filters=filters)
        n_networks += sum(remove(api.remove_network, net["Id"], "active endpoints") for net in networks)
        if not containers and not networks:
            if problems:
                raise LabEnvironmentError("the lab is removed, but its work folder is not all back: "
                                          + "; ".join(problems))
            return n_containers, n_networks
        time.sleep(pause)  # something was still leaving: look again, a little later each time
    left = [net["Name"] for net in api.networks(filters=filters)]
    left_containers = api.containers(all=True, filters=filters)
    if left and not left_containers:
        # Never a silent leftover: a network that blocks its subnet breaks the next lab.
        raise LabEnvironmentError(
            f"the Docker Engine would not remove network(s) {', '.join(sorted(left))}: it still counts "
            "endpoints on them although none of their containers is left",
            hint="a fault of the engine's network store; restarting the engine clears it "
                 "(sudo systemctl restart docker), then `lab down --all`")
    return n_containers, n_networks


def stale_labs(start_of: Callable[[int], Optional[str]] = labels.process_start) -> dict[str, str]:
    """Ephemeral labs whose owner process is gone: instance id -> lab name."""
    api = engine.client().api
    here = labels.current_owner()
    found: dict[str, tuple[str, Owner]] = {}
    items = api.containers(all=True, filters=labels.filters(ephemeral=True)) + \
        api.networks(filters=labels.filters(ephemeral=True))
    for item in items:
        tags = item.get("Labels") or {}
        owner = Owner.from_labels(tags)
        instance = tags.get(labels.LABEL_INSTANCE)
        if owner is not None and instance:
            found[instance] = (tags.get(LABEL_LAB, "?"), owner)
    return {instance: lab for instance, (lab, owner) in found.items()
            if labels.owner_gone(owner, here, start_of)}


def reap_stale() -> list[str]:
    """Remove the ephemeral labs whose owner is gone; their names, sorted."""
    stale = stale_labs()
    for instance in stale:
        remove_matching(labels.filters(instance=instance))
    return sorted(stale.values())

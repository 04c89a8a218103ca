"""The one door to a running lab and its router.

A ``RunningLab`` is obtained in one of three ways, and every command, the pytest plugin,
`lab grade`, `lab run`, `lab trace` and `lab impair/partition/heal/watch` go through it:

    lab = RunningLab.plan(spec, work_dir)       # subnets chosen, nothing made yet; lab.up()
    lab = RunningLab.create(spec, work_dir)     # made and running (the caller closes it)
    lab = RunningLab.attach(name)               # one that is up already (`which_lab`)

and then offers, whatever way it came:

    lab.exec("client1", ["cat", "/proc/net/snmp"])      # -> ExecResult
    lab.run("client1", "tcp-client hello", timeout=30)  # a StepProcess, ended
    lab.start("server", "python3 s.py")                 # a StepProcess, started
    lab.change(Change(...)); lab.show(); lab.counters() # through the router's agent
    with lab.capture() as cap: ...                      # cap.pcaps, cap.ifnames
    lab.router                                          # the RouterImpairments client

Which lab (``which_lab``, one rule, one set of messages): the name given (``--lab``) >
``SOCKETLAB_LAB`` in the environment > the only lab that is up > the compose lab.

The containers themselves are made and removed by ``topology.docker_lab``; the router's
impairments are the router agent's (``impairments.router``).  This module only holds
them together.
"""
from __future__ import annotations

import contextlib
import functools
import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Mapping, Optional

from . import engine, labels
from .impairments.capture import CAPTURE_DIR
from .programs.shared.errors import LabError
from .programs.shared.impairment import Change, Impairment, Link
from .programs.shared.topology import LabSpec, Topology
from .runner.agent import AgentProcess, HostAgents
from .runner.processes import OUTPUT_CAP, StepProcess
from .topology.docker_lab import DockerLab, ExecResult, exec_in, read_topology

LAB_ENV = "SOCKETLAB_LAB"       # the lab to use when no --lab is given
COMPOSE_LAB = "compose"          # the lab name compose.yaml puts on its containers
NOT_LABS = ("doctor",)           # `lab doctor`'s probe container carries a lab label, but is no lab
STATUS_HINT = "`lab status` lists the labs; `lab up` starts one"


def which_lab(name: Optional[str], environ: Mapping[str, str], labs_up: Iterable[str]) -> str:
    """The lab a command means (pure): ``name`` > ``environ[SOCKETLAB_LAB]`` > the only
    lab that is up > the compose lab.  Raises LabError with a hint otherwise."""
    up = sorted({lab for lab in labs_up if lab and lab not in NOT_LABS})
    wanted = name or environ.get(LAB_ENV) or None
    if wanted:
        if wanted not in up:
            raise LabError(f"lab {wanted!r} is not up", hint=STATUS_HINT)
        return wanted
    own = [lab for lab in up if lab != COMPOSE_LAB]
    if len(own) == 1:
        return own[0]
    if not own and COMPOSE_LAB in up:
        return COMPOSE_LAB
    if not own:
        raise LabError("no lab is up", hint=STATUS_HINT)
    raise LabError(f"several labs are up ({', '.join(up)})",
                   hint=f"pick one with --lab NAME (or {LAB_ENV}=NAME)")


@dataclass
class Capture:
    """Packet captures of every router interface, filled when its ``with`` block ends."""

    ifnames: Dict[str, str] = field(default_factory=dict)   # network -> the router's interface
    pcaps: Dict[str, bytes] = field(default_factory=dict)    # interface -> pcap file

    def save(self, folder) -> List[Path]:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for ifname, data in sorted(self.pcaps.items()):
            path = folder / f"{ifname}.pcap"
            path.write_bytes(data)
            paths.append(path)
        return paths


class RunningLab:
    """A running lab and its router (see the module docstring).

    ``seed``, ``per_segment``, ``caps`` and ``progress`` go to the router client (made on
    first use).  A lab this object made (``plan``/``create``) is removed by ``close``; an
    attached one is left up."""

    def __init__(self, docker: DockerLab, *, owned: bool, container_ids: Optional[Mapping[str, str]] = None,
                 seed: Optional[int] = None, per_segment: bool = False, caps: Optional[dict] = None,
                 progress: Callable[[str], None] = lambda message: None):
        self.docker = docker
        self.owned = owned
        self._ids = dict(container_ids or {})
        self._router_options = {"seed": seed, "per_segment": per_segment, "caps": caps, "progress": progress}
        self._router = None
        self._asked = False
        self._runs = itertools.count(1)
        self.agents = None          # runner.agent.HostAgents once use_agents() was called

    # -- the three ways to one ----------------------------------------------------------

    @classmethod
    def plan(cls, spec: LabSpec, work_dir: Optional[Path] = None, ephemeral: bool = True,
             **router_options) -> "RunningLab":
        """Free subnets chosen for ``spec``, a name already up refused; ``up()`` makes it."""
        return cls(DockerLab.plan(spec, work_dir, ephemeral=ephemeral), owned=True, **router_options)

    @classmethod
    def create(cls, spec: LabSpec, work_dir: Optional[Path] = None, ephemeral: bool = True,
               progress: Callable[[str], None] = lambda message: None, **router_options) -> "RunningLab":
        """``plan`` and ``up``: the lab running (on failure, nothing left)."""
        lab = cls.plan(spec, work_dir, ephemeral, **router_options)
        lab.up(progress=progress)
        return lab

    @classmethod
    def attach(cls, name: Optional[str] = None, **router_options) -> "RunningLab":
        """A lab that is up (``which_lab``), its topology read back from its labels."""
        api = engine.client().api
        running = api.containers(filters=labels.filters())
        name = which_lab(name, os.environ, (c.get("Labels", {}).get(labels.LABEL_LAB) for c in running))
        containers = api.containers(all=True, filters=labels.filters(lab=name))
        topology, ids = read_topology(name, containers, api.networks(filters=labels.filters(lab=name)))
        return cls(DockerLab(topology), owned=False, container_ids=ids, **router_options)

    # -- what it is ----------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.topology.lab

    @property
    def topology(self) -> Topology:
        return self.docker.topology

    def has_host(self, host: str) -> bool:
        return any(h.name == host for h in self.topology.hosts)

    def _check_host(self, host: str) -> None:
        if not self.has_host(host):
            raise LabError(f"no host {host!r} in lab {self.name!r}",
                           hint="`lab status` lists the labs and their hosts")

    def container(self, host: str):
        """The Docker container of ``host`` (a LabError naming the lab if it has none)."""
        self._check_host(host)
        if host in self._ids:
            return self.docker.c.containers.get(self._ids[host])
        return self.docker.container(host)

    def logs(self, host: str) -> str:
        return self.container(host).logs().decode(errors="replace")

    # -- bring-up and tear-down ----------------------------------------------------------

    def up(self, progress: Callable[[str], None] = lambda message: None) -> None:
        self.docker.up(progress=progress)

    def down(self) -> None:
        """Remove the lab's containers and networks (only a lab this object made)."""
        if self.owned:
            self.docker.down()

    def close(self) -> None:
        """Stop any capture, clear the router's impairments (if this object touched them),
        then remove the lab if this object made it."""
        try:
            self.close_agents()
            if self._router is not None:
                self._router.close()
        finally:
            self.down()

    def __enter__(self) -> "RunningLab":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- programs on hosts ---------------------------------------------------------------

    def push_work(self) -> List[str]:
        """A work folder that goes by archive: its new and changed files into every host now
        (a bind-mounted one needs nothing). Returns the files pushed."""
        return self.docker.push_work()

    def pull_work(self, hosts: List[str]) -> List[str]:
        """A work folder that goes by archive: what ``hosts`` changed in /work into the folder
        now. Returns the conflicts (two hosts changed one file differently)."""
        return self.docker.pull_work(hosts)

    def exec(self, host: str, argv: List[str], user: str = "") -> ExecResult:
        """Run ``argv`` on ``host`` and wait (a plain exec: no time limit, no cap)."""
        return exec_in(self.container(host), argv, user)

    def process(self, host: str, command: str, timeout: Optional[float], *, step: str = "api",
                run_id: Optional[str] = None, environment: Optional[Mapping[str, str]] = None,
                cap: int = OUTPUT_CAP, ready: Optional[str] = None, until: Optional[str] = None) -> StepProcess:
        """A shell ``command`` on ``host`` under step-exec (its time limit, capped output),
        not started yet.  With ``use_agents()``, through the host's agent (runner/agent.py)."""
        cid = self.container(host).id
        agent = self.agents.get(cid, host) if self.agents is not None else None
        kind = StepProcess if agent is None else AgentProcess
        proc = kind(cid, host, step, command, timeout,
                    run_id=run_id or f"{step}-{host}-{os.getpid()}-{next(self._runs)}",
                    environment=dict(environment) if environment else None, cap=cap, ready=ready, until=until)
        if agent is not None:
            proc.agent = agent
        return proc

    def use_agents(self) -> None:
        """Start commands through one helper process per host instead of one `docker exec`
        each (runner/agent.py): for `lab grade`, whose checks run many short commands.
        Not for steps held at a start barrier (``hold_at``)."""
        if self.agents is None:
            self.agents = HostAgents()

    def start_agents(self, hosts: List[str]) -> None:
        """Start the agents of ``hosts`` now, all at once (else each starts at its host's
        first command, one after another inside the checks)."""
        if self.agents is not None:
            from .concurrency import run_all
            run_all(functools.partial(self.agents.get, self.container(h).id, h) for h in hosts)

    def start_agent(self, host: str, prelude: List[str]) -> Optional[str]:
        """A new agent on ``host`` (its last one closed) that first runs ``prelude`` (``[CODE,
        ARG...]``, as ``python3 -c`` would, in the agent's own process): what the prelude
        printed, or None when no agent started (commands go by `docker exec` then)."""
        if self.agents is None:
            return None
        agent = self.agents.start(self.container(host).id, host, prelude)
        return None if agent is None else agent.prelude

    def agent_exec(self, host: str, argv: List[str], timeout: float = 60.0) -> ExecResult:
        """``argv`` on ``host`` through its agent when it has one (no `docker exec`), else
        ``exec``."""
        agent = self.agents.get(self.container(host).id, host) if self.agents is not None else None
        done = agent.run(argv, timeout) if agent is not None else None
        if done is None:
            return self.exec(host, argv)
        return ExecResult(*done)

    def close_agents(self) -> None:
        """End every host's agent (before a reset kills them, or the lab goes)."""
        if self.agents is not None:
            self.agents.close()

    def port_open(self, host: str, port: int, udp: bool, timeout: float) -> Optional[bool]:
        """Whether something on ``host`` listens on ``port`` within ``timeout`` s, asked of its
        agent (answered as soon as it does); None when there is no agent to ask."""
        if self.agents is None:
            return None
        agent = self.agents.get(self.container(host).id, host)
        if agent is None:
            return None
        code = agent.call("wait_port", timeout + 30, port=int(port), udp=bool(udp), timeout=timeout)
        return None if code is None else code == 0

    def start(self, host: str, command: str, timeout: Optional[float] = None, **options) -> StepProcess:
        """``process`` started (it runs in the background)."""
        proc = self.process(host, command, timeout, **options)
        proc.start()
        return proc

    def run(self, host: str, command: str, timeout: float, **options) -> StepProcess:
        """``process`` started and waited for; step-exec ends it at ``timeout``, and a
        KILL 15 s later is the backstop."""
        proc = self.start(host, command, timeout, **options)
        try:
            if not proc.wait(timeout + 15):
                proc.signal("KILL")
                proc.wait(10)
        except BaseException:      # Ctrl-C: the command ends with the caller
            proc.signal("KILL")
            raise
        return proc

    # -- the router ----------------------------------------------------------------------

    @property
    def router(self):
        """The router client (``impairments.router.RouterImpairments``), made on first use."""
        if self._router is None:
            from .impairments.router import RouterImpairments
            if not self.has_host("router"):
                raise LabError(f"lab {self.name!r} has no running router")
            # A lab made here tells the agent its networks; a router that is up knows them.
            networks = {n.name: str(n.subnet) for n in self.topology.networks} if self.owned else None
            self._router = RouterImpairments(container=self.container("router"), networks=networks,
                                             **self._router_options)
        return self._router

    @property
    def router_used(self) -> bool:
        return self._router is not None

    def change(self, change: Change) -> dict:
        """Apply one change to what is in force (the agent's answer)."""
        answer = self.router.change(change)
        self._asked = True
        return answer

    def show(self) -> dict:
        answer = self.router.show()
        self._asked = True
        return answer

    def counters(self) -> dict:
        """Every counter ``lab watch`` shows, per link (see router_counters)."""
        return self.router.counters()

    @property
    def impairments(self) -> Dict[Link, Impairment]:
        """What is in force: link -> Impairment (the router is asked once, then each
        change's answer says it)."""
        if not self._asked:
            self.show()
        return dict(self.router.state)

    @contextlib.contextmanager
    def capture(self, directory: str = CAPTURE_DIR) -> Iterator[Capture]:
        """Capture every router interface while the block runs, into ``directory`` in the
        router (removed afterwards); ``.pcaps`` is filled when the block ends.  Changes no
        impairment."""
        router = self.router
        cap = Capture(ifnames=router.ifnames)
        router.start_capture(directory)
        try:
            yield cap
        finally:
            try:
                cap.pcaps = router.stop_capture()
            finally:
                router.shell.remove_dir(directory)

    def __repr__(self) -> str:
        return f"<RunningLab {self.name}: {', '.join(h.name for h in self.topology.hosts)}>"

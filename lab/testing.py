"""A running lab for tests: the Python API behind the pytest plugin and `lab grade`.

    from lab.testing import open_lab
    with open_lab(clients=2) as lab:                       # up now, removed on exit
        r = lab.run("client1", "tcp-client --json hello")  # -> Result: exit_code, stdout, stderr, json
        with lab.impair("clients <-> servers", loss="20%", delay="50ms"):
            ...                                            # the previous state is back on exit
        with lab.partition("clients", "servers"):
            ...
        server = lab.start("server", "python3 TCPServer.py", ready_port=12000)
        server.stop()
        with lab.capture() as cap:
            ...
        cap.pcaps                                          # router interface -> pcap bytes

`open_lab` takes what a scenario's `topology` takes (clients, server, tcp_mode, networks,
hosts, limits), checked by the scenario format itself, so a mistake reads like one in a
scenario file.  Impairment fields are the scenario's too (loss="20%", delay="50ms",
rate="1mbit", ...), parsed by its validator.  Labs are ephemeral labs: owned
by this process (reaped by any later `lab` command if it dies), on subnets the engine
arbitrates between processes, under a random name.

Every program runs under the image's `step-exec` (its own process group, a timeout
inside the host), with each output stream capped in memory (runner/processes.py), so a
hostile program costs its own result, never the caller.

A ``Lab`` is a ``lab.running.RunningLab`` (the one door to a running lab and its
router) with a test's conveniences.  The router's impairments change only as a
``shared.impairment.Change`` sent to the router's agent: the same state model,
``next_state``, as ``lab impair`` and ``lab run``; a block's exit makes the state from
before whole again.
"""
from __future__ import annotations

import dataclasses
import itertools
import re
import secrets
import string
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional

import yaml

from .programs.shared.errors import LabError
from .programs.shared.impairment import Change, Impairment, Link, State
from .runner.processes import OUTPUT_CAP, StepProcess, last_json_object
from .running import Capture, RunningLab  # noqa: F401 - Capture: what Lab.capture() yields
from .scenario import load_text
from .programs.shared.problems import ScenarioError

DEFAULT_TIMEOUT_S = 120.0
# As a scenario's ready_timeout: the wait ends as soon as the program is ready (or ends), so a
# long bound costs nothing then, and a start slowed past 15 s by a busy machine still passes.
READY_TIMEOUT_S = 60.0


def lab_name(prefix: str = "p") -> str:
    """``prefix`` + 8 random letters/digits: unique among labs started at the same moment
    by any process, whatever its pid namespace (xdist workers, CI jobs in containers on
    one engine).  A clash anyway is refused by ``RunningLab.plan``, never shared."""
    token = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
    return f"{prefix}{token}"[:24]


# -- results ---------------------------------------------------------------------------

@dataclass
class Result:
    """How one command on one host ended."""

    host: str
    command: str
    exit_code: Optional[int]          # None: it never reported (its host went away)
    stdout: str
    stderr: str
    elapsed: Optional[float]          # seconds, measured inside the host
    timed_out: bool = False

    @property
    def json(self) -> Optional[dict]:
        """The last JSON object the command printed on a line of its own (None: none)."""
        return last_json_object(self.stdout) or None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def __str__(self) -> str:
        how = "timed out" if self.timed_out else f"exit {self.exit_code}"
        return (f"{self.command!r} on {self.host}: {how}\n--- stdout\n{_tail(self.stdout)}"
                f"\n--- stderr\n{_tail(self.stderr)}")


def _tail(text: str, limit: int = 2000) -> str:
    return text if len(text) <= limit else "…" + text[-limit:]


class Background:
    """A program started with ``Lab.start``; ``stop()`` ends it and returns its Result."""

    def __init__(self, proc: StepProcess):
        self._proc = proc

    @property
    def running(self) -> bool:
        return self._proc.running

    def wait(self, timeout: Optional[float] = None) -> Optional[Result]:
        """Its Result once it ends, or None if it is still running after ``timeout`` s."""
        return _result(self._proc) if self._proc.wait(timeout) else None

    def stop(self, signal: str = "TERM", timeout: float = 10.0) -> Result:
        """Signal its process group (TERM, then KILL if it lingers) and return its Result."""
        if self._proc.running:
            self._proc.signal(signal)
            if not self._proc.wait(timeout):
                self._proc.signal("KILL")
                self._proc.wait(timeout)
        return _result(self._proc)

    def kill(self) -> Result:
        return self.stop("KILL")


def _result(proc: StepProcess) -> Result:
    o = proc.outcome
    return Result(proc.host, proc.command, o.exit_code, o.stdout, o.stderr, o.elapsed, o.timed_out)


# -- parsing what a caller gives, with the scenario format's own rules --------------------

def _scenario_text(topology: Mapping[str, Any], impairments: List[Mapping[str, Any]] = ()) -> str:
    return yaml.safe_dump({"name": "api", "description": "from lab.testing",
                           "topology": dict(topology), "impairments": list(impairments)},
                          sort_keys=False)


def _check(text: str, what: str):
    try:
        return load_text(text, what)
    except ScenarioError as exc:
        # Paths as the caller wrote them: `loss`, not `impairments[0].loss`.
        paths = [re.sub(r"^(impairments\[0\]|topology)\.?", "", p.path) for p in exc.problems]
        messages = "; ".join(f"{path}: {p.message}" if path else p.message
                             for path, p in zip(paths, exc.problems))
        raise LabError(f"{what}: {messages}") from None


def topology_fields(clients: int = 1, server: str = "uppercase", tcp_mode: Optional[str] = None,
                    networks=(), hosts: Optional[Mapping[str, Any]] = None,
                    limits: Optional[Mapping[str, Any]] = None,
                    images: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The scenario `topology` mapping for these arguments (hosts: name -> network, or
    name -> a scenario's extra host ``{network, image, command, ready}``; limits: the
    scenario's ``{pids, memory, cpus}``; images: ``{"server": REF, "clients": REF}``, each
    REF or a ``{image, command, ready}`` mapping)."""
    def own(value):
        return dict(value) if isinstance(value, Mapping) else {"image": value}
    images = dict(images or {})
    unknown = set(images) - {"server", "clients"}
    if unknown:
        raise LabError(f"socketlab(images=...): {', '.join(sorted(unknown))}: images are for "
                       "'server' and 'clients'; give other hosts theirs in hosts={NAME: {network, image}}")
    out: Dict[str, Any] = {"clients": {"count": clients, **own(images["clients"])} if "clients" in images
                           else clients,
                           "server": own(images["server"]) if "server" in images else server,
                           "networks": list(networks),
                           "hosts": {name: dict(h) if isinstance(h, Mapping) else {"network": h}
                                     for name, h in (hosts or {}).items()}}
    if tcp_mode is not None:
        out["tcp_mode"] = tcp_mode
    if limits is not None:
        out["limits"] = dict(limits)
    return out


def parse_impairment(link: str, fields: Mapping[str, Any], networks=()) -> Dict[Link, Impairment]:
    """``("clients <-> servers", {"loss": "20%"})`` -> each directed link's Impairment,
    parsed and checked as a scenario file's ``impairments`` entry is."""
    text = _scenario_text({"networks": list(networks)}, [{"link": link, **fields}])
    args = ", ".join([repr(link)] + [f"{k}={v!r}" for k, v in fields.items()])
    scenario = _check(text, f"impair({args})")
    return dict(scenario.impairments)


def on_top(state: State, changes: Mapping[Link, Impairment]) -> Change:
    """The Change that sets each changed link's given fields on top of what it has in
    ``state`` (pure; ``next_state(state, on_top(state, changes))`` is the result)."""
    impair = {}
    for link, imp in changes.items():
        given = {f.name: getattr(imp, f.name) for f in dataclasses.fields(imp)
                 if getattr(imp, f.name) not in (None, False)}
        impair[link] = dataclasses.replace(state.get(link, Impairment()), **given)
    return Change(impair=impair)


# -- the lab -----------------------------------------------------------------------------

class Lab:
    """A running lab (see the module docstring).  Close it (or use ``with``) to remove it."""

    def __init__(self, running: RunningLab, work: Path, max_output: int = OUTPUT_CAP):
        self._lab = running
        self.work = work
        self.max_output = max_output
        self._background: List[StepProcess] = []
        self._runs = itertools.count(1)
        self.closed = False

    # what it is
    @property
    def name(self) -> str:
        return self._lab.topology.lab

    @property
    def hosts(self) -> List[str]:
        return [h.name for h in self._lab.topology.hosts]

    @property
    def clients(self) -> List[str]:
        return [h.name for h in self._lab.topology.clients]

    @property
    def networks(self) -> List[str]:
        return [n.name for n in self._lab.topology.networks]

    @property
    def addresses(self) -> Dict[str, str]:
        """host -> its (first) address."""
        return {h.name: str(h.address) for h in self._lab.topology.hosts}

    def address(self, host: str, network: Optional[str] = None) -> str:
        """``host``'s address (on ``network``; for the router, its gateway address there)."""
        topo = self._lab.topology
        h = topo.host(host)
        if network is None:
            return str(h.address)
        if h.role == "router":
            return str(topo.network(network).gateway)
        for net, addr in h.addresses:
            if net == network:
                return str(addr)
        raise LabError(f"{host} is not on network {network!r}")

    @property
    def port(self) -> int:
        return self._lab.topology.port

    # running programs
    def _process(self, host: str, cmd: str, timeout: Optional[float], env,
                 ready: Optional[str] = None, until: Optional[str] = None) -> StepProcess:
        if host not in self.hosts:
            raise LabError(f"no host {host!r} in lab {self.name}; hosts: {', '.join(self.hosts)}")
        return self._lab.process(host, cmd, timeout, step="api", run_id=f"api-{host}-{next(self._runs)}",
                                 environment=env, cap=self.max_output, ready=ready, until=until)

    def exec(self, host: str, argv: List[str]) -> Result:
        """Run ``argv`` on ``host`` directly (no shell, none of our programs: for hosts of an
        image of their own, where run/start's ``sh -c`` under step-exec may not exist)."""
        if host not in self.hosts:
            raise LabError(f"no host {host!r} in lab {self.name}; hosts: {', '.join(self.hosts)}")
        self._lab.push_work()
        r = self._lab.exec(host, list(argv))
        self._pull([host])
        return Result(host=host, command=" ".join(argv), exit_code=r.exit_code, stdout=r.stdout,
                      stderr=r.stderr, elapsed=None)

    def run(self, host: str, cmd: str, timeout: float = DEFAULT_TIMEOUT_S,
            env: Optional[Mapping[str, str]] = None, until: Optional[str] = None) -> Result:
        """Run ``cmd`` (a shell command, in /work) on ``host`` and wait for it.  After
        ``timeout`` s it is stopped (TERM, then KILL) and the Result says timed_out.
        ``until``: a text (in any ASCII case) after which what it prints on stdout can no
        longer change what the caller makes of it: it is stopped (TERM) as soon as that
        text is on its stdout, and its Result holds what it printed until then."""
        return self._run(host, cmd, timeout, env, sync=True, until=until)

    def _run(self, host: str, cmd: str, timeout: float, env, sync: bool, until: Optional[str] = None) -> Result:
        """run(); sync: the work folder's changes go in before and come back after (by
        archive; a bind mount shares them anyway)."""
        proc = self._process(host, cmd, timeout, env, until=until)
        if sync:
            self._lab.push_work()
        proc.start()
        if until is not None and proc.wait_until(timeout + 15) and proc.running:
            proc.signal("TERM")           # what it printed already decides
        if not proc.wait(timeout + 15):   # step-exec ends it at `timeout`; this is the backstop
            proc.signal("KILL")
            proc.wait(10)
        if sync:
            self._pull([host])
        return _result(proc)

    def run_many(self, hosts, cmd, timeout: float = DEFAULT_TIMEOUT_S,
                 env: Optional[Mapping[str, str]] = None) -> Dict[str, Result]:
        """Run on several hosts at the same moment and wait for all: host -> Result.
        ``cmd`` is a command, or a function host -> command."""
        procs = {}
        for host in hosts:
            procs[host] = self._process(host, cmd(host) if callable(cmd) else cmd, timeout, env)
        self._lab.push_work()
        for proc in procs.values():
            proc.start()
        for proc in procs.values():
            if not proc.wait(timeout + 15):
                proc.signal("KILL")
                proc.wait(10)
        self._pull(list(procs))
        return {host: _result(proc) for host, proc in procs.items()}

    def _pull(self, hosts: List[str]) -> None:
        for problem in self._lab.pull_work(hosts):
            warnings.warn(f"socketlab work folder {self.work}: {problem}", stacklevel=3)

    def start(self, host: str, cmd: str, ready: Optional[str] = None,
              ready_port: Optional[int] = None, udp: bool = False, ready_timeout: float = READY_TIMEOUT_S,
              timeout: Optional[float] = None, env: Optional[Mapping[str, str]] = None) -> Background:
        """Start ``cmd`` on ``host`` in the background.  Returns once ``ready`` appears in
        its output, or (``ready_port``) once something on the host listens on that port
        (``udp``: a UDP port); raises LabError if that does not happen in ``ready_timeout`` s,
        or at once if the program ends first."""
        proc = self._process(host, cmd, timeout, env, ready)
        self._lab.push_work()
        proc.start()
        self._background.append(proc)
        bg = Background(proc)
        if ready is not None:
            self._wait_ready(bg, lambda: proc.ready_seen, repr(ready), ready_timeout)
        if ready_port is not None:
            probe = f"wait-port {'--udp ' if udp else ''}--timeout 1 {int(ready_port)}"
            what = f"a listener on {'udp' if udp else 'tcp'}/{ready_port}"
            # Short probes while it runs: a program that dies at once fails at once.
            def listening() -> bool:
                seen = self._lab.port_open(host, ready_port, udp, 0.25)     # by the host's agent, if any
                return seen if seen is not None else self._run(host, probe, 10, None, sync=False).ok
            self._wait_ready(bg, listening, what, ready_timeout)
        return bg

    @staticmethod
    def _wait_ready(bg: Background, condition, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if not bg.running or time.monotonic() > deadline:
                why = "it ended" if not bg.running else f"not within {timeout:g} s"
                output = bg.stop()   # its Result: the output without step-exec's status line
                raise LabError(f"{output.command!r} on {output.host}: {what} never appeared "
                               f"({why}); its output:\n{_tail(output.stdout + output.stderr)}")
            time.sleep(0.05)  # polling its output with a deadline

    # the network
    @property
    def running(self) -> RunningLab:
        """The lab as every command sees it (exec, change, counters, capture, router)."""
        return self._lab

    @property
    def impairments(self) -> Dict[Link, Impairment]:
        """The state in force: link -> Impairment."""
        return self._lab.impairments if self._lab.router_used else {}

    @contextmanager
    def _changed(self, change: Change) -> Iterator[None]:
        before = self._lab.impairments
        self._lab.change(change)
        try:
            yield
        finally:
            if not self.closed:
                self._lab.change(Change.replace_all(before))   # partitions included

    def impair(self, link: str = "clients <-> servers", **fields: Any):
        """Context manager: set the scenario-style ``fields`` (loss="20%", delay="50ms",
        jitter, duplicate, corrupt, reorder, rate="1mbit", queue, loss_correlation, gemodel,
        and the stream faults segment=2, gap="50ms", reset_after="1KiB", blackhole_after,
        hold_fin, connections="50%", mtu=576)
        on ``link`` ('a -> b' one way, 'a <-> b' both) on top of what it has; the state
        from before is back when the block ends."""
        changes = parse_impairment(link, fields, [n for n in self.networks if n not in ("clients", "servers")])
        return self._changed(on_top(self._lab.impairments, changes))

    def partition(self, a: str = "clients", b: str = "servers", both: bool = True):
        """Context manager: drop everything between networks ``a`` and ``b`` (a -> b only
        unless ``both``); healed when the block ends."""
        for net in (a, b):
            if net not in self.networks:
                raise LabError(f"partition: no network {net!r}; networks: {', '.join(self.networks)}")
        links = (Link(a, b), Link(b, a)) if both else (Link(a, b),)
        return self._changed(Change(partition=links))

    def capture(self):
        """Context manager: capture every router interface; ``.pcaps`` is filled on exit."""
        return self._lab.capture()

    # the end
    def close(self, keep: bool = False) -> None:
        """Stop background programs and remove the lab (``keep``: leave it up as it is)."""
        if self.closed:
            return
        self.closed = True
        if keep:
            return
        try:
            for proc in self._background:
                if proc.running:
                    proc.signal("KILL")
        finally:
            self._lab.close()     # clears the router if it was used, then removes the lab

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Lab {self.name}: {', '.join(f'{h} {a}' for h, a in self.addresses.items())}>"


def open_lab(clients: int = 1, server: str = "uppercase", tcp_mode: Optional[str] = None,
             networks=(), hosts: Optional[Mapping[str, str]] = None, work=None,
             name: Optional[str] = None, max_output: int = OUTPUT_CAP,
             per_segment: bool = True, limits: Optional[Mapping[str, Any]] = None,
             ephemeral: bool = True, progress=lambda message: None,
             images: Optional[Mapping[str, Any]] = None) -> Lab:
    """Bring up a lab and return it running (the caller closes it).

    clients, server ('uppercase' | 'idle'), tcp_mode ('concurrent' | 'iterative'),
    networks (extra network names), hosts (extra host name -> network, or -> ``{network,
    image, command, ready}``) are a scenario's `topology`; ``images`` gives the server or the
    clients an image of their own (``{"server": "myservice:test"}``, or ``{"server":
    {"image": ..., "command": [...], "ready": {"port": 8080}}}``), and so are ``limits`` (per host: ``{"pids": 256, "memory": "256MiB",
    "cpus": 0.5}``; left out: the engine's defaults, as for `lab up`); ``work`` is the folder mounted as /work on every host (default: a new
    empty temporary folder); ``name`` defaults to a unique one.  ``per_segment``
    (default) impairs TCP per wire packet, not per GSO burst: every impaired link goes
    through the router's impairer, which splits TCP's 64 KiB GSO packets (nftables alone
    would drop whole bursts of ~44 segments, and TCP then stalls behind backed-off
    retransmission timers); False is faster where only UDP matters.  ``ephemeral=False`` makes a lab no reaper
    removes once this process ends (for ``--socketlab-keep``: only ``lab down`` does)."""
    topo_fields = topology_fields(clients, server, tcp_mode, networks, hosts, limits, images)
    scenario = _check(_scenario_text(topo_fields), "socketlab(...)")
    name = name or lab_name()
    work = Path(work) if work is not None else Path(tempfile.mkdtemp(prefix=f"socketlab-{name}-"))
    work.mkdir(parents=True, exist_ok=True)
    # Ephemeral by default; up() picks other subnets if another process took ours
    # first, and removes what it made (by its own instance) if it fails.
    running = RunningLab.create(scenario.topology.lab_spec(name), work, ephemeral=ephemeral,
                                progress=progress, per_segment=per_segment)
    return Lab(running, work.resolve(), max_output)

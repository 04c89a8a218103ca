"""Apply impairment state to a running lab's router: the one I/O layer for impairments.

``backends.plan()`` turns a state (link -> Impairment) into commands as data; this
module runs them inside the router container, one command per exec, through ONE
method (``RouterImpairments.run``) that raises ``RouterCommandError`` on a non-zero
exit with the command and its stderr.  Nothing here logs a failure and carries on.

    with RouterImpairments(lab, seed=1) as imp:        # clears and stops on exit
        imp.apply({Link("clients", "servers"): Impairment(loss=20)})
        imp.partition("clients", "servers")              # both directions
        imp.heal("clients", "servers")
        imp.check_alive()                                # raises EngineDied if it died

The userspace engine (``lab.programs.nfq_engine``) runs in the router only while the
current plan needs it.  Its iptables rules use ``--queue-bypass``, so if it dies packets
flow UNIMPAIRED: callers must call ``check_alive()`` (``apply`` and ``engine_stats`` do
it too, and stopping reports a death nobody had noticed).

Files this puts in the router live under ``WORK_DIR`` (written with ``put_archive``):
nftables rulesets (fed to ``nft -f FILE``, as a ``Command.stdin`` asks), the engine's
config, its stdout (JSON lines: ready / reloaded / stats / exit) and stderr.

Packet capture: Debian's tcpdump, run as root, always switches to its own user (even
with ``-Z root``).  The router has SETUID/SETGID for that, so ``tcpdump -ni eth0`` works
there by hand, but ``tcpdump -w`` also hands the file to that user, which needs CAP_CHOWN.
Rather than widen the router's capabilities again, ``start_capture`` runs a small AF_PACKET
capture script (below, ``CAPTURE_SCRIPT``) that writes standard pcap files with the
kernel's receive timestamps, one packet record written per packet (like ``tcpdump -U``),
and stops cleanly on SIGINT.
"""

from __future__ import annotations

import dataclasses
import io
import ipaddress
import json
import shlex
import tarfile
import threading
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ..errors import LabEnvironmentError, add_note
from ..topology.docker_lab import DockerLab, ExecResult, exec_in
from .backends import NFT_GUARD_TABLE, NFT_TABLE, Command, Plan, plan, transition
from .model import Capabilities, Impairment, Link

WORK_DIR = "/run/socketlab-impair"
CAPTURE_DIR = "/run/socketlab-capture"
ENGINE_MODULE = "lab.programs.nfq_engine"
POLL_INTERVAL = 0.05  # seconds between looks at a condition that has a deadline

State = Mapping[Link, Impairment]


class RouterImpairmentError(LabEnvironmentError):
    """Something went wrong applying impairments on the router (the environment: exit 3)."""


class RouterCommandError(RouterImpairmentError):
    """A command in the router exited non-zero.  The router may be half-changed."""

    def __init__(self, command: Union[Command, Sequence[str]], result: ExecResult):
        self.command = command
        self.command_status = result.exit_code  # not exit_code: that is lab's own (LabError)
        self.stdout = result.stdout
        self.stderr = result.stderr
        text = " ".join(command.argv) if isinstance(command, Command) else " ".join(command)
        detail = (result.stderr or result.stdout).strip() or "(no output)"
        super().__init__(f"router command failed (exit {result.exit_code}): {text}\n    {detail}")


class EngineError(RouterImpairmentError):
    """The impairment engine did not start, reload or stop as it should."""


class EngineDied(EngineError):
    """The engine is gone: the links it handled now pass packets unimpaired (fail-open)."""


# -- the capture script (stdlib only; runs in the router with NET_RAW) -------------------

CAPTURE_SCRIPT = r'''
import signal, socket, struct, sys
iface, path = sys.argv[1], sys.argv[2]
SO_TIMESTAMPNS, SO_RCVBUFFORCE, ETH_P_ALL, SNAP = 35, 33, 3, 262144
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 32 << 20)
sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
sock.bind((iface, 0))
def stop(signum, frame):
    raise KeyboardInterrupt
signal.signal(signal.SIGINT, stop)
signal.signal(signal.SIGTERM, stop)
out = open(path, "wb", buffering=0)
out.write(struct.pack("=IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, SNAP, 1))  # pcap, ns, Ethernet
print("listening on %s" % iface, file=sys.stderr, flush=True)
packets = 0
try:
    while True:
        data, anc, flags, addr = sock.recvmsg(SNAP, socket.CMSG_SPACE(16), socket.MSG_TRUNC)
        sec = nsec = None
        for level, kind, value in anc:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                sec, nsec = struct.unpack("=qq", value[:16])
        if sec is None:
            import time
            now = time.time_ns()
            sec, nsec = divmod(now, 10 ** 9)
        out.write(struct.pack("=IIII", sec, nsec, len(data), len(data)) + data)
        packets += 1
except KeyboardInterrupt:
    pass
finally:
    out.close()
    print("%d packets captured" % packets, file=sys.stderr, flush=True)
'''


@dataclasses.dataclass
class _Process:
    """A long-running process in the router, started by a detached exec."""

    name: str
    exec_id: str
    pid_file: str
    out_file: str
    err_file: str
    pid: Optional[int] = None
    result_file: str = ""   # what it produces (a capture's pcap)


BATCH_MARK = "SOCKETLAB-COMMAND "


def batch_script(argvs: Sequence[Sequence[str]]) -> str:
    """A shell script running each argv in turn and stopping at the first failure; each
    command is announced on stderr first, so the failure can be told apart (pure)."""
    return "\n".join(f"echo '{BATCH_MARK}{i}' >&2\n{shlex.join(argv)} || exit $?"
                     for i, argv in enumerate(argvs)) + "\n"


def failed_command(stderr: str) -> Tuple[int, str]:
    """(index of the command that failed, its own stderr) from a batch_script's stderr."""
    _before, mark, after = stderr.rpartition(BATCH_MARK)
    if not mark:
        return 0, stderr
    number, _, own = after.partition("\n")
    return int(number), own


class RouterImpairments:
    """Impairments on one running lab's router.  See the module docstring."""

    def __init__(self, lab: DockerLab, seed: Optional[int] = None, *, per_segment: bool = False,
                 router: str = "router", ready_timeout: float = 15.0,
                 progress: Callable[[str], None] = lambda message: None):
        self.lab = lab
        self.seed = seed
        self.per_segment = per_segment
        self.router = router
        self.ready_timeout = ready_timeout
        self.progress = progress
        self.container = lab.container(router)
        self.api = self.container.client.api
        self._lock = threading.RLock()
        self._caps: Optional[Capabilities] = None
        self._ifnames: Optional[Dict[str, str]] = None
        self._default_qdiscs: Optional[Dict[str, str]] = None
        self.state: Dict[Link, Impairment] = {}
        self.plan: Optional[Plan] = None
        self._dirty = False          # a change failed half-way: the router's state is unknown
        self._engine: Optional[_Process] = None
        self._engine_generation = 0
        self._death_reported = False
        self.engine_final_stats: List[dict] = []   # the exit line of every engine stopped
        self._captures: Dict[str, _Process] = {}
        self._files = 0
        self._dirs: set = set()

    # -- the one way commands run --------------------------------------------------------

    def run(self, command: Union[Command, Sequence[str]]) -> ExecResult:
        """Run one command in the router; raise RouterCommandError unless it exits 0.

        A ``Command`` with stdin (an nftables ruleset) is written to a file in the router
        and the command's ``-`` argument is replaced by that file's path."""
        argv = self._argv_with_files([command])[0]
        result = exec_in(self.container, argv)
        if result.exit_code != 0:
            raise RouterCommandError(command, result)
        return result

    def run_all(self, commands: Sequence[Command]) -> None:
        """Run ``commands`` in order in ONE exec, stopping at the first that fails (raised
        as RouterCommandError for that command).  A docker exec costs about 0.1 s and a
        change of impairments is a dozen commands: one by one, a step's change would take
        effect a second or more after its time."""
        if not commands:
            return
        script = batch_script(self._argv_with_files(commands))
        result = exec_in(self.container, ["sh", "-c", script])
        if result.exit_code != 0:
            index, stderr = failed_command(result.stderr)
            raise RouterCommandError(commands[index], ExecResult(result.exit_code, result.stdout, stderr))

    def _argv_with_files(self, commands: Sequence[Union[Command, Sequence[str]]]) -> List[List[str]]:
        """Each command's argv, with its stdin (if any) written to a file in the router,
        all files in one write."""
        argvs, files = [], {}
        for command in commands:
            if not isinstance(command, Command):
                argvs.append(list(command))
                continue
            argv = list(command.argv)
            if command.stdin is not None:
                if "-" not in argv:
                    raise ValueError(f"{command}: stdin given but no '-' argument to read it")
                self._files += 1
                path = f"{WORK_DIR}/stdin-{self._files}"
                files[path] = command.stdin.encode()
                argv[argv.index("-")] = path
            argvs.append(argv)
        if files:
            self.put_files(WORK_DIR, files)
        return argvs

    def put_file(self, path: str, data: bytes, mode: int = 0o600) -> None:
        """Write one file into the router (its directory is created if missing)."""
        directory, _, _name = path.rpartition("/")
        self.put_files(directory, {path: data}, mode)

    def put_files(self, directory: str, files: Mapping[str, bytes], mode: int = 0o600) -> None:
        """Write files (full paths, all in ``directory``) into the router at once."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for path, data in files.items():
                info = tarfile.TarInfo(path.rpartition("/")[2])
                info.size, info.mode, info.mtime = len(data), mode, int(time.time())
                tar.addfile(info, io.BytesIO(data))
        self._mkdir(directory)
        if not self.container.put_archive(directory, buf.getvalue()):
            raise RouterImpairmentError(f"could not write {', '.join(files)} into the router")

    def _mkdir(self, directory: str) -> None:
        if directory not in self._dirs:
            self.run(["mkdir", "-p", directory])
            self._dirs.add(directory)

    def get_file(self, path: str) -> bytes:
        """Read one file out of the router."""
        stream, _stat = self.container.get_archive(path)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.getmembers()[0]
            extracted = tar.extractfile(member)
            if extracted is None:
                raise RouterImpairmentError(f"{path} in the router is not a regular file")
            return extracted.read()

    def _read_text(self, path: str) -> str:
        return self.run(["cat", path]).stdout

    # -- what the router is and can do ---------------------------------------------------

    def probe(self) -> Capabilities:
        """Run kernel-probe in the router and remember what it found."""
        result = self.run(["kernel-probe"])
        try:
            self._caps = Capabilities.from_probe(json.loads(result.stdout.strip().splitlines()[-1]))
        except (ValueError, IndexError) as exc:
            raise RouterImpairmentError(f"kernel-probe printed no JSON line: {result.stdout!r}") from exc
        return self._caps

    @property
    def caps(self) -> Capabilities:
        if self._caps is None:
            self.probe()
        return self._caps

    def discover_ifnames(self) -> Dict[str, str]:
        """network name -> the router's interface on it, from its addresses and the
        networks' subnets."""
        interfaces = json.loads(self.run(["ip", "-j", "-4", "addr", "show"]).stdout)
        found: Dict[str, str] = {}
        for net in self.lab.topology.networks:
            subnet = ipaddress.ip_network(str(net.subnet))
            names = sorted({iface["ifname"] for iface in interfaces
                            for addr in iface.get("addr_info", [])
                            if addr.get("family") == "inet"
                            and ipaddress.ip_address(addr["local"]) in subnet})
            if len(names) != 1:
                raise RouterImpairmentError(
                    f"the router has {len(names) or 'no'} interface(s) on network {net.name} "
                    f"({subnet}): {names or 'none'}")
            found[net.name] = names[0]
        self._ifnames = found
        return found

    @property
    def ifnames(self) -> Dict[str, str]:
        if self._ifnames is None:
            self.discover_ifnames()
        return dict(self._ifnames)

    def root_qdiscs(self) -> Dict[str, str]:
        """interface -> the kind of its root qdisc."""
        kinds = {}
        for ifname in self.ifnames.values():
            qdiscs = json.loads(self.run(["tc", "-j", "qdisc", "show", "dev", ifname]).stdout or "[]")
            roots = [q["kind"] for q in qdiscs if q.get("root")]
            kinds[ifname] = roots[0] if roots else ""
        return kinds

    # -- changing the state --------------------------------------------------------------

    @property
    def backends(self) -> Dict[str, Dict[str, str]]:
        """link -> kind -> backend for the current state (strings, for JSON and display)."""
        return self.plan.backend_table() if self.plan else {}

    def plan_for(self, state: State) -> Plan:
        """The plan for ``state`` on this router, without running anything (raises
        UnsupportedImpairment for what this kernel cannot do)."""
        return plan(state, self.ifnames, self.caps, per_segment=self.per_segment)

    def apply(self, state: State) -> Plan:
        """Make ``state`` (every link's full impairment; links left out: none) the
        router's state, from whatever this object put there before.  Returns the plan."""
        with self._lock:
            if self._dirty:
                raise RouterImpairmentError(
                    "an earlier change failed half-way, so the router's state is unknown",
                    hint="call clear() first")
            state = {link: imp for link, imp in state.items()}
            new = self.plan_for(state)  # raises before anything runs
            if self._default_qdiscs is None:
                self._default_qdiscs = self.root_qdiscs()
            if self._engine is not None:
                self.check_alive()
            old = self.plan
            if new.needs_engine:
                self._write_engine_config(new.engine_config)
                if self._engine is None:
                    self._start_engine()
                else:
                    self._reload_engine()
            try:
                self.run_all(transition(old, new))
            except BaseException:
                self._dirty = True
                raise
            self.plan, self.state = new, state
            if not new.needs_engine and self._engine is not None:
                self._stop_engine()
            return new

    def update(self, changes: State) -> Plan:
        """Change only the links in ``changes`` (each to its full new impairment)."""
        with self._lock:
            return self.apply({**self.state, **changes})

    def _links(self, a: str, b: str, both: bool) -> List[Link]:
        return [Link(a, b), Link(b, a)] if both else [Link(a, b)]

    def partition(self, a: str, b: str, both: bool = True) -> Plan:
        """Drop everything between networks a and b (a -> b only unless ``both``); the
        links' other impairments stay configured for after ``heal``."""
        with self._lock:
            return self.update({link: dataclasses.replace(self.state.get(link, Impairment()),
                                                          partition=True)
                                for link in self._links(a, b, both)})

    def heal(self, a: str, b: str, both: bool = True) -> Plan:
        with self._lock:
            return self.update({link: dataclasses.replace(self.state.get(link, Impairment()),
                                                          partition=False)
                                for link in self._links(a, b, both)})

    def clear(self) -> None:
        """Remove every impairment and stop the engine.  Afterwards ``leftovers()`` is
        empty, or this raises saying what is left.

        Runs the current plan's clear commands; after a failed change (state unknown) it
        removes what it finds instead.  If a clear command fails, it still removes what it
        finds and stops the engine, then raises that failure.  A death of the engine that
        nobody had been told about is raised here too (after cleaning up)."""
        with self._lock:
            failure: Optional[RouterCommandError] = None
            try:
                if self.plan is not None and not self._dirty:
                    self.run_all(self.plan.clear)
                else:
                    self._reset()
            except RouterCommandError as exc:
                failure, self._dirty = exc, True
                try:
                    self._reset()
                except RouterCommandError as again:
                    add_note(exc, f"removing what was found also failed: {again}")
            self.plan, self.state = None, {}
            try:
                if self._engine is not None:
                    self._stop_engine()
            finally:
                if failure is not None:
                    raise failure
            left = self.leftovers()
            if left:
                self._dirty = True
                raise RouterImpairmentError("impairments left on the router after clear: "
                                            + "; ".join(left))
            self._dirty = False

    def _reset(self) -> None:
        """Remove whatever impairment rules exist, by looking (not from a plan)."""
        for line in self.run(["iptables", "-w", "-S", "FORWARD"]).stdout.splitlines():
            if "-j NFQUEUE" in line and line.startswith("-A "):
                self.run(["iptables", "-w", "-D"] + shlex.split(line)[1:])
        for family, table in self._nft_tables():
            self.run(["nft", "delete", "table", family, table])
        defaults = self._default_qdiscs or {}
        for ifname, kind in self.root_qdiscs().items():
            if kind not in ("noqueue", defaults.get(ifname, "noqueue")):
                self.run(["tc", "qdisc", "del", "dev", ifname, "root"])

    def _nft_tables(self) -> List[Tuple[str, str]]:
        """(family, name) of our tables: the impairments', and a transition's guard."""
        tables = []
        for line in self.run(["nft", "list", "tables"]).stdout.splitlines():
            words = line.split()
            if len(words) == 3 and words[0] == "table" and words[2] in (NFT_TABLE, NFT_GUARD_TABLE):
                tables.append((words[1], words[2]))
        return tables

    def leftovers(self) -> List[str]:
        """What impairment state is on the router now (empty: none): socketlab nft
        tables, NFQUEUE rules in FORWARD, non-default root qdiscs, a running engine."""
        left = [f"nft table {family} {table}" for family, table in self._nft_tables()]
        left += [f"iptables {line}" for line in
                 self.run(["iptables", "-w", "-S", "FORWARD"]).stdout.splitlines()
                 if "NFQUEUE" in line]
        defaults = self._default_qdiscs or {}
        for ifname, kind in self.root_qdiscs().items():
            if kind not in ("noqueue", defaults.get(ifname, "noqueue")):
                left.append(f"qdisc {kind} on {ifname}")
        if self._engine is not None:
            left.append(f"engine (pid {self._engine.pid})")
        return left

    # -- the engine ----------------------------------------------------------------------

    @property
    def engine_running(self) -> bool:
        return self._engine is not None and self._exec_running(self._engine)

    @property
    def engine_pid(self) -> Optional[int]:
        """The engine's pid inside the router, or None when it is not started."""
        return self._engine.pid if self._engine else None

    def _write_engine_config(self, config: dict) -> None:
        self.put_file(f"{WORK_DIR}/engine.json",
                      (json.dumps(config, indent=1, sort_keys=True) + "\n").encode())

    def _start_engine(self) -> None:
        self._engine_generation += 1
        argv = ["python3", "-m", ENGINE_MODULE, "--config", f"{WORK_DIR}/engine.json"]
        if self.seed is not None:
            argv += ["--seed", str(self.seed)]
        self.progress(f"starting the impairment engine in {self.router}")
        self._engine = self._spawn(f"engine-{self._engine_generation}", argv)
        self._death_reported = False
        try:
            ready = self._wait_event(self._engine, "ready", 0, self.ready_timeout)
        except BaseException:
            self._kill(self._engine)
            self._engine = None
            raise
        self._engine.pid = ready["pid"]

    def _reload_engine(self) -> None:
        before = len(self._events(self._engine, ("reloaded", "reload_failed")))
        self._signal(self._engine, "HUP")
        event = self._wait_event(self._engine, ("reloaded", "reload_failed"), before,
                                 self.ready_timeout)
        if event["event"] == "reload_failed":
            raise EngineError(f"the engine refused the new config (the old one stays in "
                              f"force): {event.get('error')}")

    def _stop_engine(self) -> Optional[dict]:
        """SIGTERM, wait for its exit line, keep the final stats.  Raises EngineDied if
        it had died and nobody was told (the state is cleaned up first)."""
        engine, self._engine = self._engine, None
        if not self._exec_running(engine):
            if self._death_reported:
                return None
            self._death_reported = True
            raise EngineDied(self._death_message(engine))
        self._signal(engine, "TERM")
        try:
            exit_line = self._wait_event(engine, "exit", 0, self.ready_timeout)
        except EngineError:
            self._kill(engine)
            raise
        self._wait(lambda: not self._exec_running(engine), self.ready_timeout,
                   f"the engine (pid {engine.pid}) to end after its exit line")
        self.engine_final_stats.append(exit_line)
        return exit_line

    def check_alive(self) -> None:
        """Raise EngineDied if the engine should be running and is not.  (Fail-open:
        without this check a dead engine looks like a link with no impairment.)"""
        with self._lock:
            if self._engine is None:
                return
            if not self._exec_running(self._engine):
                self._death_reported = True
                raise EngineDied(self._death_message(self._engine))

    def engine_stats(self) -> dict:
        """The running engine's counters (SIGUSR1 and its ``stats`` line)."""
        with self._lock:
            if self._engine is None:
                raise EngineError("the impairment engine is not running (no link needs it)")
            self.check_alive()
            before = len(self._events(self._engine, "stats"))
            self._signal(self._engine, "USR1")
            return self._wait_event(self._engine, "stats", before, self.ready_timeout)

    def _death_message(self, engine: _Process) -> str:
        code = self.api.exec_inspect(engine.exec_id).get("ExitCode")
        err = self._tail(engine.err_file)
        out = self._tail(engine.out_file)
        return (f"the impairment engine (pid {engine.pid}) died with exit status {code}: the "
                f"links it handled ({', '.join(self.backends) or 'none'}) now pass packets "
                f"UNIMPAIRED (fail-open)\n    stderr: {err or '(empty)'}\n    stdout: {out or '(empty)'}")

    def _tail(self, path: str, lines: int = 6) -> str:
        try:
            text = self._read_text(path)
        except RouterCommandError:
            return ""
        return "\n            ".join(text.splitlines()[-lines:])

    # -- long-running processes in the router --------------------------------------------

    def _spawn(self, name: str, argv: Sequence[str], directory: str = WORK_DIR) -> _Process:
        """Start ``argv`` in the router in the background (a detached exec); its pid,
        stdout and stderr go to files named after ``name``."""
        proc = _Process(name, "", f"{directory}/{name}.pid", f"{directory}/{name}.out",
                        f"{directory}/{name}.err")
        self._mkdir(directory)
        self.run(["rm", "-f", proc.pid_file, proc.out_file, proc.err_file])
        script = (f"echo $$ > {shlex.quote(proc.pid_file)}; exec {shlex.join(argv)} "
                  f"> {shlex.quote(proc.out_file)} 2> {shlex.quote(proc.err_file)}")
        proc.exec_id = self.api.exec_create(self.container.id, ["sh", "-c", script],
                                            stdout=False, stderr=False)["Id"]
        self.api.exec_start(proc.exec_id, detach=True)
        self._wait(lambda: self._pid_of(proc) is not None or not self._exec_running(proc),
                   self.ready_timeout, f"{name} to start")
        proc.pid = self._pid_of(proc)
        return proc

    def _pid_of(self, proc: _Process) -> Optional[int]:
        result = exec_in(self.container, ["cat", proc.pid_file])
        text = result.stdout.strip()
        return int(text) if result.exit_code == 0 and text.isdigit() else None

    def _exec_running(self, proc: _Process) -> bool:
        return bool(self.api.exec_inspect(proc.exec_id).get("Running"))

    def _signal(self, proc: _Process, signal_name: str) -> None:
        if proc.pid is None:
            raise RouterImpairmentError(f"{proc.name} has no known pid to signal")
        try:
            self.run(["kill", f"-{signal_name}", str(proc.pid)])
        except RouterCommandError:
            if proc is self._engine and not self._exec_running(proc):
                self._death_reported = True
                raise EngineDied(self._death_message(proc)) from None
            raise

    def _kill(self, proc: _Process) -> None:
        """Last resort: SIGKILL, ignoring a process that is already gone."""
        if proc.pid is not None and self._exec_running(proc):
            exec_in(self.container, ["kill", "-KILL", str(proc.pid)])

    def _events(self, proc: _Process, names) -> List[dict]:
        """The JSON lines ``proc`` printed so far whose "event" is in ``names``."""
        names = (names,) if isinstance(names, str) else tuple(names)
        text = exec_in(self.container, ["cat", proc.out_file]).stdout
        events = []
        for line in text.split("\n")[:-1]:  # only complete lines
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict) and obj.get("event") in names:
                events.append(obj)
        return events

    def _wait_event(self, proc: _Process, names, after: int, timeout: float) -> dict:
        """The first ``names`` event after the first ``after`` of them, within ``timeout``
        seconds; EngineDied if the process ends first without printing it."""
        deadline = time.monotonic() + timeout
        label = names if isinstance(names, str) else "/".join(names)
        while True:
            events = self._events(proc, names)
            if len(events) > after:
                return events[after]
            if not self._exec_running(proc):
                events = self._events(proc, names)  # it may have printed it, then ended
                if len(events) > after:
                    return events[after]
                if proc is self._engine:
                    self._death_reported = True
                raise EngineDied(f"{proc.name} ended before printing '{label}': "
                                 + self._death_message(proc))
            if time.monotonic() > deadline:
                raise EngineError(f"{proc.name} printed no '{label}' within {timeout:g} s; "
                                  f"stderr: {self._tail(proc.err_file) or '(empty)'}")
            time.sleep(POLL_INTERVAL)

    def _wait(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise RouterImpairmentError(f"timed out after {timeout:g} s waiting for {what}")
            time.sleep(POLL_INTERVAL)

    # -- packet capture ------------------------------------------------------------------

    def start_capture(self, dir_in_router: str = CAPTURE_DIR) -> Dict[str, str]:
        """Capture every router interface on a lab network into ``dir_in_router``
        (``<ifname>.pcap``).  Returns ifname -> pcap path.  Waits until each capture
        is listening."""
        with self._lock:
            if self._captures:
                raise RouterImpairmentError("a capture is already running")
            script = f"{dir_in_router}/capture.py"
            self.put_file(script, CAPTURE_SCRIPT.encode())
            paths = {}
            try:
                for ifname in sorted(self.ifnames.values()):
                    path = f"{dir_in_router}/{ifname}.pcap"
                    proc = self._spawn(f"capture-{ifname}", ["python3", script, ifname, path],
                                       directory=dir_in_router)
                    proc.result_file = path
                    self._captures[ifname] = proc
                    paths[ifname] = path
                    self._wait_text(proc, f"listening on {ifname}")
            except BaseException:
                self._stop_captures()
                raise
            return paths

    def _wait_text(self, proc: _Process, text: str) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while text not in exec_in(self.container, ["cat", proc.err_file]).stdout:
            if not self._exec_running(proc) or time.monotonic() > deadline:
                raise RouterImpairmentError(f"{proc.name} did not start: "
                                            f"{self._tail(proc.err_file) or '(no output)'}")
            time.sleep(POLL_INTERVAL)

    def stop_capture(self) -> Dict[str, bytes]:
        """Stop the captures (SIGINT, so each file ends on a whole packet) and return
        ifname -> pcap file contents."""
        with self._lock:
            if not self._captures:
                raise RouterImpairmentError("no capture is running")
            captures = dict(self._captures)
            self._stop_captures()
            return {ifname: self.get_file(proc.result_file) for ifname, proc in captures.items()}

    def _stop_captures(self) -> None:
        captures, self._captures = self._captures, {}
        problems = []
        for ifname, proc in captures.items():
            if proc.pid is not None and self._exec_running(proc):
                self.run(["kill", "-INT", str(proc.pid)])
        for ifname, proc in captures.items():
            try:
                self._wait(lambda p=proc: not self._exec_running(p), self.ready_timeout,
                           f"the capture on {ifname} to stop")
            except RouterImpairmentError:
                self._kill(proc)
                problems.append(f"{ifname}: did not stop on SIGINT (killed)")
                continue
            code = self.api.exec_inspect(proc.exec_id).get("ExitCode")
            if code != 0:
                problems.append(f"{ifname}: exit status {code}: {self._tail(proc.err_file)}")
        if problems:
            raise RouterImpairmentError("packet capture failed: " + "; ".join(problems))

    # -- context manager -----------------------------------------------------------------

    def close(self) -> None:
        """Stop any capture, clear every impairment, stop the engine."""
        with self._lock:
            try:
                if self._captures:
                    self._stop_captures()
            finally:
                self.clear()

    def __enter__(self) -> "RouterImpairments":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.close()
        except Exception as cleanup_error:
            if exc_type is None:
                raise
            # An error is already on its way out: keep it, and say what cleaning up hit.
            add_note(exc, f"and cleaning up the router's impairments failed: {cleanup_error}")

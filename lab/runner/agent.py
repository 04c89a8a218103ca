"""One helper process per host that starts the grader's commands inside it, instead of one
`docker exec` per command.

A `docker exec` costs the engine a process spawned into the container's namespaces: 0.3 s
on a quiet 2-CPU machine, 1 to 2 s at a load of 15 (measured, benchmarks/grade_class.py),
and a check of `lab grade` ran 3 to 6 of them (a server, probes for its port, clients, a
signal to stop it).  ``HostAgent`` makes one exec per host, of AGENT (``python3 -c``,
nothing added to the image), and speaks to it over that exec's stdin and stdout, one JSON
object a line:

    {"id": 3, "op": "step", "argv": ["sh", "-c", CMD], "timeout": 10, "run_id": ID, "env": {...}, "cwd": "/work"}
        -> {"id": 3, "fd": 1 | 2, "data": B64} ... {"id": 3, "exit": 0}
    {"id": 4, "op": "kill", "pgid_file": PATH, "sig": "TERM"} -> {"id": 4, "exit": 0}
    {"id": 5, "op": "wait_port", "port": 12000, "udp": false, "timeout": 1} -> {"id": 5, "exit": 0 | 1}

A step is what `step-exec` makes of a command, done by the agent with step-exec's own
``run_step`` (imported from the image): its own process group, its group id in
/tmp/socketlab/ID.pgid, the time limit (TERM, then KILL after the grace), what is left of
the group killed, and the same `SOCKETLAB-STATUS` line at the end of stderr, so that
``AgentProcess`` (a ``StepProcess``) reads its output exactly as before.  It runs in /work,
with the exec's environment and the command's own variables, stdin /dev/null: what it
sees is what a `docker exec` of step-exec gave it, without a `docker exec` and without
step-exec's own Python start-up (under load both cost more than most commands).
``wait_port`` reads the kernel's socket tables as `wait-port` does (its own function, in
the image) and answers as soon as the port is bound, without starting a program.

An agent may be started with a prelude (``HostAgent(..., prelude=[CODE, ARG...])``): a
script it runs in its own process before it says hello, as ``python3 -c CODE ARG...``
would, whose printed report comes back in the hello.  The class grader's reset between two
students is such a prelude (lab/grade/reuse.py): the next agent resets its host, ending the
last agent with the student's processes, then takes the next student's commands.

When a host's agent is gone (a reset ended it; a student's program may kill it), its
commands that were running end as on a stopped host, and the next command starts a new
agent.  When an agent cannot be started at all (it does
not say hello), commands go by `docker exec` as before.
"""
from __future__ import annotations

import base64
import itertools
import json
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .. import engine
from .processes import StepProcess

HELLO_TIMEOUT_S = 60.0      # a python3 start-up on a host of a machine at a load of 30
DRAIN_S = 2.0               # after a command ended: what its pipes still hold, at most this long

AGENT = r'''
import base64, json, os, signal, subprocess, sys, threading, time
out = sys.stdout.buffer
lock = threading.Lock()

def send(msg):
    line = (json.dumps(msg) + "\n").encode()
    with lock:
        out.write(line)
        out.flush()

def pump(rid, fd, stream):
    while True:
        data = os.read(stream.fileno(), 65536)
        if not data:
            return
        send({"id": rid, "fd": fd, "data": base64.b64encode(data).decode()})

def step(req):
    # What step-exec does, with its own run_step (lab/programs/step_exec.py), without starting it.
    from lab.programs import step_exec as se
    rid, pumps = req["id"], []

    def started(p):
        for fd, stream in ((1, p.stdout), (2, p.stderr)):
            pumps.append(threading.Thread(target=pump, args=(rid, fd, stream), daemon=True))
            pumps[-1].start()
    se.STATE_DIR.mkdir(parents=True, exist_ok=True)
    try:
        status = se.run_step(req["argv"], req.get("timeout"), subprocess.PIPE, subprocess.PIPE,
                             pgid_file=se.STATE_DIR / (req["run_id"] + ".pgid"), stdin=subprocess.DEVNULL,
                             env={**os.environ, **(req.get("env") or {})}, cwd=req.get("cwd") or "/",
                             started=started)
    except OSError as exc:
        send({"id": rid, "fd": 2, "data": base64.b64encode(str(exc).encode()).decode()})
        send({"id": rid, "exit": 127})
        return
    for t in pumps:
        t.join(DRAIN)
    send({"id": rid, "fd": 2, "data": base64.b64encode(se.status_line(status).encode()).decode()})
    send({"id": rid, "exit": 0})

def kill(req):
    try:
        with open(req["pgid_file"]) as f:
            os.killpg(int(f.read().strip()), getattr(signal, "SIG" + req["sig"]))
    except (OSError, ValueError):
        pass
    send({"id": req["id"], "exit": 0})

def wait_port(req):
    from lab.programs.wait_port import is_open
    deadline = time.monotonic() + float(req["timeout"])
    while not is_open(int(req["port"]), bool(req.get("udp"))):
        if time.monotonic() > deadline:
            send({"id": req["id"], "exit": 1})
            return
        time.sleep(0.05)
    send({"id": req["id"], "exit": 0})

OPS = {"step": step, "kill": kill, "wait_port": wait_port}
DRAIN = float(sys.argv[1])
hello = {"hello": os.getpid()}
if len(sys.argv) > 2:
    # The prelude: a script run here, before the first command, as `python3 -c CODE ARGS...`
    # would run it (its own pid is this one's); what it prints goes in the hello.
    import contextlib, io
    printed, code = io.StringIO(), sys.argv[2]
    sys.argv = ["-c", *sys.argv[3:]]
    with contextlib.redirect_stdout(printed):
        try:
            exec(compile(code, "<prelude>", "exec"), {"__name__": "__main__"})
        except BaseException as exc:
            print(f"(the prelude failed: {type(exc).__name__}: {exc})")
    hello["prelude"] = printed.getvalue()
send(hello)
for line in sys.stdin.buffer:
    req = json.loads(line)
    threading.Thread(target=OPS[req["op"]], args=(req,), daemon=True).start()
'''


class Lines:
    """Whole lines out of a stream fed in chunks (pure)."""

    def __init__(self):
        self._rest = b""

    def feed(self, data: bytes) -> List[bytes]:
        lines = (self._rest + data).split(b"\n")
        self._rest = lines.pop()
        return [line for line in lines if line.strip()]


def decode_message(line: bytes) -> Tuple[Optional[int], Optional[int], bytes, Optional[int]]:
    """(id, fd, data, exit) of one of the agent's lines (pure); fd/data for output, exit at the end."""
    msg = json.loads(line)
    data = base64.b64decode(msg["data"]) if "data" in msg else b""
    return msg.get("id"), msg.get("fd"), data, msg.get("exit")


class HostAgent:
    """The grader's side of one host's agent (see the module doc)."""

    def __init__(self, container_id: str, host: str, prelude: Sequence[str] = ()):
        """``prelude``: (CODE, ARG...), a script the agent runs before its first command, as
        ``python3 -c CODE ARG...`` would, in the agent's own process; what it printed is
        ``self.prelude`` (None: the agent did not start)."""
        self.container_id = container_id
        self.host = host
        self.prelude: Optional[str] = None
        self._ids = itertools.count(1)
        self._handlers: Dict[int, Tuple[Callable[[int, bytes], None], Callable[[Optional[int]], None]]] = {}
        self._lock = threading.Lock()
        self._write = threading.Lock()
        self._hello = threading.Event()
        self.alive = False
        api = engine.stream_client()
        exec_id = api.exec_create(container_id, ["python3", "-u", "-c", AGENT, str(DRAIN_S), *prelude],
                                  stdin=True, workdir="/")["Id"]
        self._sock = api.exec_start(exec_id, socket=True)
        self._raw = getattr(self._sock, "_sock", self._sock)
        threading.Thread(target=self._read, daemon=True, name=f"agent@{host}").start()
        self.alive = self._hello.wait(HELLO_TIMEOUT_S) and self.alive

    def _read(self) -> None:
        from docker.utils.socket import frames_iter
        lines = Lines()
        self.alive = True
        try:
            for stream, data in frames_iter(self._sock, tty=False):
                if stream != 1 or not data:
                    continue
                for line in lines.feed(data):
                    self._dispatch(line)
        except Exception:  # noqa: BLE001 - the agent or its host went away: every command with it
            pass
        finally:
            self.alive = False
            self._hello.set()
            with self._lock:
                handlers, self._handlers = self._handlers, {}
            for _, done in handlers.values():
                done(None)

    def _dispatch(self, line: bytes) -> None:
        try:
            rid, fd, data, code = decode_message(line)
        except (ValueError, KeyError):
            return
        if rid is None:
            try:
                self.prelude = json.loads(line).get("prelude")
            except (ValueError, AttributeError):
                pass
            self._hello.set()
            return
        with self._lock:
            handler = self._handlers.get(rid)
            if handler is not None and code is not None:
                del self._handlers[rid]
        if handler is None:
            return
        if code is not None:
            handler[1](code)
        elif data:
            handler[0](fd, data)

    def request(self, op: str, on_output: Callable[[int, bytes], None],
                on_exit: Callable[[Optional[int]], None], **fields) -> None:
        """Send one request; ``on_exit(code)`` is called once (None: the agent went away)."""
        rid = next(self._ids)
        with self._lock:
            if not self.alive:
                rid = None
            else:
                self._handlers[rid] = (on_output, on_exit)
        if rid is None:
            on_exit(None)
            return
        line = (json.dumps({"id": rid, "op": op, **fields}) + "\n").encode()
        try:
            with self._write:
                self._raw.sendall(line)
        except OSError:
            self.close()

    def call(self, op: str, wait: float, **fields) -> Optional[int]:
        """A request whose answer is only its exit code; None if the agent went away."""
        done, box = threading.Event(), []
        self.request(op, lambda fd, data: None, lambda code: (box.append(code), done.set()), **fields)
        done.wait(wait)
        return box[0] if box else None

    def run(self, argv: List[str], timeout: float) -> Optional[Tuple[int, str, str]]:
        """``argv`` as a step of its own, waited for: (exit code, stdout, stderr), or None if
        the agent went away."""
        from .processes import decode, split_status
        done, out, err, box = threading.Event(), bytearray(), bytearray(), []

        def output(fd: int, data: bytes) -> None:
            (out if fd == 1 else err).extend(data)
        self.request("step", output, lambda code: (box.append(code), done.set()), argv=list(argv),
                     timeout=timeout, run_id=f"agent-run-{next(self._ids)}", env={}, cwd="/")
        done.wait(timeout + 30)
        stderr, status = split_status(decode(bytes(err)))
        if not box or box[0] is None or status is None:
            return None
        return status["exit_code"], decode(bytes(out)), stderr

    def close(self) -> None:
        self.alive = False
        try:
            self._raw.close()
        except OSError:
            pass


class HostAgents:
    """One agent per container, started on first use and again after it went away."""

    def __init__(self):
        self._agents: Dict[str, HostAgent] = {}
        self._failed: set = set()      # containers whose agent did not start: docker exec for them
        self._starting: Dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, container_id: str, host: str) -> Optional[HostAgent]:
        """A live agent on the container, or None (then `docker exec` it is).  Agents of
        different containers start at the same time; one container's, once."""
        with self._lock:
            starting = self._starting.setdefault(container_id, threading.Lock())
        with starting:
            with self._lock:
                agent = self._agents.get(container_id)
                if agent is not None and agent.alive:
                    return agent
                if container_id in self._failed:
                    return None
            try:
                agent = HostAgent(container_id, host)
            except Exception:  # noqa: BLE001 - no agent: docker exec, as before
                agent = None
            with self._lock:
                if agent is None or not agent.alive:
                    self._failed.add(container_id)
                    return None
                self._agents[container_id] = agent
            return agent

    def start(self, container_id: str, host: str, prelude: Sequence[str] = ()) -> Optional[HostAgent]:
        """A new agent on the container (the one before it closed), running ``prelude`` first
        (HostAgent); None if it did not start (then `docker exec` it is for that host)."""
        with self._lock:
            starting = self._starting.setdefault(container_id, threading.Lock())
        with starting:
            with self._lock:
                old = self._agents.pop(container_id, None)
                self._failed.discard(container_id)
            if old is not None:
                old.close()
            try:
                agent = HostAgent(container_id, host, prelude)
            except Exception:  # noqa: BLE001 - no agent: docker exec, as before
                return None
            with self._lock:
                if not agent.alive:
                    self._failed.add(container_id)
                    return None
                self._agents[container_id] = agent
            return agent

    def close(self) -> None:
        with self._lock:
            agents, self._agents = self._agents, {}
        for agent in agents.values():
            agent.close()


class AgentProcess(StepProcess):
    """A StepProcess whose exec and signals go through its host's agent."""

    agent: Optional[HostAgent] = None

    def start(self) -> None:
        if self.hold:               # the start barrier is step-exec's own
            super().start()
            return
        self.started_at = time.monotonic()
        self.agent.request("step", self._output, self._exited, argv=["sh", "-c", self.command],
                           timeout=self.timeout_s, run_id=self.run_id, env=self.environment or {}, cwd="/work")

    def _output(self, fd: int, data: bytes) -> None:
        self.feed(data if fd == 1 else None, data if fd == 2 else None)

    def _exited(self, code: Optional[int]) -> None:
        if code is None:
            self.outcome.ended_by = self.outcome.ended_by or "agent went away"
        self._finish()

    def signal(self, sig: str) -> None:
        agent = self.agent
        if agent is None or agent.call("kill", 30.0, pgid_file=self.pid_file, sig=sig) is None:
            super().signal(sig)
            return
        if self.running:
            self.outcome.ended_by = self.outcome.ended_by or sig

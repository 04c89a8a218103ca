"""What the checks of `lab grade` (checks.py) stand on: the registry (points, level, the
files a check needs, its docstring as the sentence a student reads) and ``Grading``,
the running lab and the student's servers shared by the checks of one submission.

The lab (see ``Submission.topology``): the student's folder is /work on every host;
``server`` runs the lab's own servers (or ``nc``) for the student's clients, which reach
it by SERVER_NAME=server, SERVER_PORT=12000; the student's own servers run on the host
``student`` (same network), where our clients and ``nc`` reach them.  Keeping them apart
means no TIME_WAIT left by one side's connections blocks the other's bind on port 12000.

The student's servers start once, at the first check that needs them, and serve every
later check (a server without SO_REUSEADDR could not bind again for a minute); a check
that finds one dead says so.  Every program runs with a timeout and capped output: a
hang, a flood or a crash costs that check's points, never the grader.

A check returns normally to pass, or raises ``Failed`` (any other exception fails it
too, with its message).  Only the two "replies in upper case" checks look at the case
of the answer: every other server check compares case-insensitively, so a server that
forgets ``.upper()`` loses exactly those.
"""
from __future__ import annotations

import shlex
import threading
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

from ..programs.shared.errors import LabError
from ..programs.shared.topology import DEFAULT_PORT
from ..testing import Background, Lab, Result

SERVER_ENV = {"SERVER_NAME": "server", "SERVER_PORT": str(DEFAULT_PORT)}
STUDENT_HOST = "student"
LINE = "hello from the grader"
CLIENT_TIMEOUT = 10.0
# Our own clients end by their own --timeout (8 s a socket operation); the run's bound is only
# the backstop, and it counts their Python start-up, which took over 2 s at a load of 30.
OUR_CLIENT_RUN_S = 20.0
LEVELS = ("default", "robust")
FILES = ("TCPServer.py", "UDPServer.py", "TCPClient.py", "UDPClient.py")
# A student's program's output (both streams) goes through this: one that floods gets
# SIGPIPE after 256 KiB instead of streaming through the Docker Engine all along.
CAP = "2>&1 | head -c 262144"


class Failed(Exception):
    """The check did not pass; the message says what was seen."""


@dataclass(frozen=True)
class GradeCheck:
    name: str
    points: float
    level: str
    needs: tuple
    func: Callable

    @property
    def description(self) -> str:
        return " ".join((self.func.__doc__ or "").split())

    @property
    def lane(self) -> Optional[str]:
        """The one program a default-level check is about, or None (see ``lanes``)."""
        return self.needs[0] if self.level == "default" and len(self.needs) == 1 else None


CHECKS: List[GradeCheck] = []


def check(points: float, needs=(), level: str = "default"):
    def register(func):
        CHECKS.append(GradeCheck(func.__name__, points, level, tuple(needs), func))
        return func
    return register


def checks_for(level: str) -> List[GradeCheck]:
    order = LEVELS[:LEVELS.index(level) + 1]
    return [c for c in CHECKS if c.level in order]


def lanes(selected: List[GradeCheck]) -> Tuple[List[List[GradeCheck]], List[GradeCheck]]:
    """``selected`` split into lanes that may run side by side, each in the order given, and
    the checks that must run alone after them (in order).

    A check of the default level is about one program and sets no impairment, and the four
    programs use the lab apart from each other: the student's TCP and UDP servers are
    reached on the host ``student`` (tcp/12000, udp/12000) by our clients, the student's
    TCP and UDP clients reach our servers (or nc) on the host ``server`` (tcp/12000,
    udp/12000) from client1.  So the checks of one program run in order, one lane per
    program, and the four lanes at once.  The robust level's checks impair the router's
    links for every host (or need two programs), so they run alone, after the lanes."""
    by_program: Dict[str, List[GradeCheck]] = {}
    alone: List[GradeCheck] = []
    for chk in selected:
        if chk.lane is None:
            alone.append(chk)
        else:
            by_program.setdefault(chk.lane, []).append(chk)
    return list(by_program.values()), alone


# -- what a check has at hand -----------------------------------------------------------

class Grading:
    """The running lab and the student's servers, shared by the checks of one submission."""

    def __init__(self, lab: Lab, files: set, assignment=None):
        from .assignment import LECTURE, ROLES
        self._lab = lab
        self._here = threading.local()          # a lane's own view of the lab (``as_seen_by``)
        self.files = files
        self.assignment = assignment or LECTURE
        self._role_of = {file: role for role, file in ROLES.items()}
        self._servers: Dict[str, Background] = {}
        self._starts: Dict[str, str] = {}      # file -> why it could not start

    @property
    def lab(self) -> Lab:
        """The lab, as this thread's lane sees it (``as_seen_by``), else as given."""
        return getattr(self._here, "lab", None) or self._lab

    def as_seen_by(self, lab) -> None:
        """From now on, this thread's checks use ``lab`` (a recorder around the lab)."""
        self._here.lab = lab

    # the student's servers, started once on the host `student`
    def student_server(self, file: str) -> Background:
        if file in self._starts:
            raise Failed(f"{file} could not be started earlier: {self._starts[file]}")
        server = self._servers.get(file)
        if server is None:
            try:
                server = self.lab.start(STUDENT_HOST, f"{self.program(file, STUDENT_HOST)} < /dev/null {CAP}",
                                        ready_port=DEFAULT_PORT, udp=file.startswith("UDP"), ready_timeout=15)
            except LabError as exc:
                self._starts[file] = str(exc)
                raise Failed(f"{file} did not listen on port {DEFAULT_PORT}: {exc}") from None
            self._servers[file] = server
        if not server.running:
            result = server.wait(0)
            raise Failed(f"{file} is no longer running (it ended earlier, exit {result.exit_code}):\n"
                         f"{_tail(result.stdout + result.stderr)}")
        return server

    def program(self, file: str, host: str) -> str:
        """The shell command running the student's program for `file`'s role (the lecture's
        `python3 -u TCPServer.py`, or the assignment's, with {host} and {port} filled in)."""
        return self.assignment.command(self._role_of[file], host=host, port=DEFAULT_PORT)

    def restart_student_server(self, file: str) -> Background:
        old = self._servers.pop(file, None)
        if old is not None:
            old.stop()
        return self.student_server(file)

    def stop_all(self) -> None:
        for server in self._servers.values():
            server.stop()

    # running clients
    def our_client(self, kind: str, hosts: List[str], message: str = LINE, timeout: float = OUR_CLIENT_RUN_S,
                   extra: str = "") -> Dict[str, Result]:
        # 8 s for each socket operation: on a machine at a load of 30 a correct server just
        # started took longer than 3 s to answer (a lost point that was the machine's, not the
        # student's).  A refused or reset connection still ends at once.  The run's bound is
        # a backstop above that: with 10 s, a udp-client whose start-up took over 2 s (load
        # 30 and more) was ended before its own 8 s and a correct server lost the check.
        cmd = (f"{kind}-client --json --host {STUDENT_HOST} --timeout 8 {icmp_errors(kind)}{extra} "
               f"{shlex.quote(message)}")
        return self.lab.run_many(hosts, lambda host: cmd, timeout=timeout)

    def student_client(self, file: str, hosts: List[str], message: str = LINE,
                       timeout: float = CLIENT_TIMEOUT) -> Dict[str, Result]:
        program = self.program(file, SERVER_ENV["SERVER_NAME"])
        cmd = lambda host: f"printf '%s\\n' {shlex.quote(message)} | {program} {CAP}"  # noqa: E731
        return self.lab.run_many(hosts, cmd, timeout=timeout, env=SERVER_ENV)

    def lab_server(self, cmd: str, udp: bool = False) -> Background:
        """One of our programs (or nc) listening on port 12000 of the host ``server``: it
        always does, so the bound is the plugin's (a start past 15 s was seen at load 30)."""
        return self.lab.start("server", cmd, ready_port=DEFAULT_PORT, udp=udp)


def icmp_errors(kind: str) -> str:
    """udp-client's flag for an ICMP "port unreachable" to end its wait: the datagram reached
    no socket on the student host (a server bound to 127.0.0.1, or not to port 12000), so no
    reply to it can come and the check fails as it would after the timeout, only sooner.  A
    correct server bound to the port gives none; the socket stays unconnected, so a reply
    from another address or port still counts, as for the lecture's client."""
    return "--icmp-errors " if kind == "udp" else ""


def _tail(text: str, limit: int = 1500) -> str:
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-limit:]


def _received(result: Result) -> Optional[str]:
    return (result.json or {}).get("received")


def expect_replies(results: Dict[str, Result], want: Callable[[str, Result], bool], what: str) -> str:
    bad = {host: r for host, r in results.items() if not want(host, r)}
    if bad:
        lines = []
        for host, r in sorted(bad.items()):
            how = "timed out" if r.timed_out else f"exit {r.exit_code}"
            seen = _received(r)
            seen = repr(seen) if seen is not None else (r.json or {}).get("error") or _tail(r.stdout + r.stderr, 300)
            lines.append(f"{host}: {how}, got {seen}")
        raise Failed(f"{what}; {len(bad)} of {len(results)} did not:\n" + "\n".join(lines))
    return f"{what}: all {len(results)} did"

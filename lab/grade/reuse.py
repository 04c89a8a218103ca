"""One lab graded on again and again: what a worker of `lab grade --class` holds.

Bringing a lab up costs networks, a router (with its impairer) and every host, and making
the hosts again between students cost 3 to 10 s a student.  Instead every host is reset
in place and proved clean (host_reset.py): every process of the last student killed,
/tmp, /dev/shm and /work emptied (the next submission goes in after), the sockets the
kernel kept (TIME_WAIT on port 12000) ended from their peers, and nothing of the
container's file system changed; a host that is not seen clean is made again (new
processes, network namespace and file system).  The router's impairments are cleared to
none.  The router runs no student code.

The checks run under one capture on the router; it is read (into a ladder of each failed
check's packets) only when a check failed, so a student sees *why*.
"""
from __future__ import annotations

import functools
import json
import re
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Dict, List, Optional

from ..concurrency import run_all
from ..programs.shared.errors import LabError
from ..programs.shared.impairment import Change
from ..running import Capture
from ..testing import Lab, lab_name, open_lab
from . import checks as _checks  # noqa: F401 - registers the checks
from . import host_reset
from .assignment import LECTURE, Assignment
from .harness import CAP, STUDENT_HOST, Grading, checks_for
from .run import OUTPUT_CAP, GradeReport, build_and_check, lab_hosts

TRANSCRIPT_CAP = 2000       # characters of what one command printed, in a student's report
TRANSCRIPT_ENTRIES = 12     # commands shown per check


# Rounds of SYNs from the peers (one is the rule: END_TIME_WAIT waits for its port); a
# socket left after them makes its host be made again.
END_ROUNDS = 2
PROGRAMS_DIR = "/usr/local/lib/socketlab"   # where the host image keeps our programs (images/host/Dockerfile)


def clients_for(level: str) -> int:
    return 10 if level == "robust" else 3


# -- the only places that reach under testing.Lab ------------------------------------------

def _docker(lab: Lab):
    """The DockerLab under ``lab``: its topology, its engine client, host creation."""
    return lab.running.docker


def _work_by_archive(lab: Lab) -> bool:
    """/work reaches the hosts by archive (a remote engine), not a bind mount: each command
    pushes and pulls it, which lanes side by side would interleave."""
    return getattr(_docker(lab), "_work_archive", None) is not None


def _forget_programs(lab: Lab) -> None:
    """The background programs ``lab`` knows of died with their hosts."""
    lab._background.clear()


class ReusedLab:
    """A grading lab reset between submissions (see the module doc and host_reset.py)."""

    def __init__(self, level: str, work: Path, progress: Callable[[str], None] = lambda m: None,
                 assignment: Optional[Assignment] = None):
        self.level = level
        self.work = work
        self.assignment = assignment or LECTURE
        self.graded = 0
        self._keep: Dict[str, List[int]] = {}          # host -> its own processes (docker-init, host-role)
        self._since: Dict[str, float] = {}             # host -> its clock at its last clean reset
        self._baseline: Dict[str, host_reset.Baseline] = {}   # host -> its sockets and / when it came up
        self.remade: Dict[str, str] = {}               # host -> why it was made again, at the last reset
        # The hosts made again keep the images they were planned with.
        self.lab: Lab = open_lab(clients=clients_for(level), server="idle", **lab_hosts(self.assignment),
                                 work=work, max_output=OUTPUT_CAP, name=lab_name("grade"), progress=progress)
        self.lab.running.use_agents()      # the checks' commands: one exec per host, not per command
        self._capture: Optional[Dict[str, str]] = None      # router interface -> its pcap file there
        try:
            self._note(self._host_names())
            self.lab.running.start_agents(self._host_names())
        except BaseException:
            self.lab.close()
            raise

    @property
    def name(self) -> str:
        return self.lab.name

    # -- one capture on the router for every student of this lab -----------------------------

    def start_capture(self) -> bool:
        """Capture every router interface from now on, for the rest of this lab's life (once:
        at its first student); whether it captures.  One capture cut by each check's time
        window: starting and stopping one per student cost a dozen execs on the router, 3 to
        6 s a student under load.  Without it: no ladders, the same verdicts."""
        if self._capture is None:
            try:
                self._capture = self.lab.running.router.start_capture()
            except LabError:
                return False
        return True

    def capture(self) -> Optional[Capture]:
        """What the router captured so far (``start_capture``), each interface's file as it
        is now (a last record being written is cut short, which the reader allows); None:
        nothing to read."""
        router = self.lab.running.router
        if self._capture is None:
            return None
        try:
            return Capture(ifnames=router.ifnames,
                           pcaps={ifname: router.shell.get_file(path) for ifname, path in self._capture.items()})
        except Exception:  # noqa: BLE001 - a capture we cannot read costs the picture only
            return None

    def _hosts(self):
        return [h for h in _docker(self.lab).topology.hosts if h.role != "router"]

    def _host_names(self) -> List[str]:
        return [h.name for h in self._hosts()]

    # -- one host, inside -----------------------------------------------------------------

    def _reset_one(self, host: str, folders=host_reset.CLEARED) -> host_reset.HostReport:
        """RESET on ``host`` (as root), as the prelude of the host's next agent: one exec
        starts the agent, which resets the host (ending the last agent with the rest) before
        it takes the next student's commands.  Where no agent starts, a plain exec of RESET.
        Its judged report; a host that cannot run it is reported unclean (it is made again)."""
        first = host not in self._keep
        args = ["" if first else ",".join(map(str, self._keep[host])), "0" if first else repr(self._since[host])]
        printed = self.lab.running.start_agent(host, [host_reset.RESET, *args, *folders])
        if printed is None:
            r = self.lab.running.exec(host, ["python3", "-c", host_reset.RESET, *args, *folders])
            printed = r.stdout + r.stderr if r.exit_code == 0 else f"exit {r.exit_code}: {r.stdout + r.stderr}"
        try:
            output = json.loads(printed.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return host_reset.HostReport([], [], [], [f"(the reset did not run: {printed.strip()[-300:]})"],
                                         False, 0.0)
        return host_reset.left_over(output, None if first else self._baseline[host])

    def _sockets_left(self, host: str) -> List[host_reset.Socket]:
        r = self.lab.running.agent_exec(host, ["sh", "-c", host_reset.SOCKET_TABLES])
        rows = host_reset.socket_rows(r.stdout)
        base = self._baseline[host]
        left = [s for s in map(host_reset.Socket.parse, rows) if s not in base.sockets and not s.own]
        return left if r.exit_code == 0 else left + [host_reset.Socket("?", "?", ("?", 0), ("?", 0))]

    def _note(self, hosts: List[str]) -> None:
        """A host that just came up: its own processes and sockets, and the clock from which
        a change of its files is the next student's doing.  Our own programs' bytecode is
        written first (else the first run of each would look like a change)."""
        def one(host: str):
            self.lab.running.exec(host, ["python3", "-m", "compileall", "-q", PROGRAMS_DIR])
            for key in (self._keep, self._since, self._baseline):
                key.pop(host, None)
            r = self.lab.running.exec(host, ["python3", "-c", host_reset.RESET, "", "0"])
            output = json.loads(r.stdout.strip().splitlines()[-1])
            return host, output
        for host, output in run_all(functools.partial(one, h) for h in hosts):
            self._keep[host] = list(output["keep"])
            self._since[host] = float(output["now"])
            self._baseline[host] = host_reset.Baseline.of(output)

    # -- between two students ---------------------------------------------------------------

    def reset(self) -> Dict[str, str]:
        """Leave nothing of the last student (see host_reset.py): every host reset in place,
        the sockets the kernel kept ended from their peers, and a host that is still not as
        it came up made again.  /work is emptied (the next submission goes in after).
        Returns host -> why, for each host made again."""
        lab = self.lab
        _forget_programs(lab)
        hosts = self._host_names()

        def folders(host: str):
            return host_reset.CLEARED + (("/work",) if host == STUDENT_HOST else ())

        reports = dict(zip(hosts, run_all(functools.partial(self._reset_one, h, folders(h)) for h in hosts)))
        for _ in range(END_ROUNDS):
            left = {h: r.sockets for h, r in reports.items() if r.sockets}
            plan = host_reset.peer_plan(left, self._addresses())
            if not plan:
                break
            run_all(functools.partial(lab.running.agent_exec, peer,
                                      ["python3", "-c", host_reset.END_TIME_WAIT, json.dumps(pairs)])
                    for peer, pairs in plan.items())
            for host, r in zip(left, run_all(functools.partial(self._sockets_left, h) for h in left)):
                reports[host].sockets = r
        dirty = {h: r.why() for h, r in reports.items() if not r.clean}
        for host, r in reports.items():
            if r.clean:
                self._since[host] = r.now
        if dirty:
            self._remake(list(dirty))
            lab.running.exec("router", ["ip", "neigh", "flush", "all"])    # new hosts, new MAC addresses
        if lab.running.router_used and lab.running.impairments:
            lab.running.change(Change.replace_all({}))    # no impairment or partition left over
        lab.running.start_agents(list(dirty))   # a host made again: its first agent (the others have theirs)
        self.remade = dirty
        return dirty

    def _addresses(self) -> Dict[str, str]:
        """address -> host, for every host but the router."""
        topology = _docker(self.lab).topology
        return {str(addr): h.name for h in topology.hosts if h.role != "router" for _, addr in h.addresses}

    def _remake(self, names: List[str], ready_timeout: float = 60.0) -> None:
        """Remove ``names`` and make them again from their plan (new processes, network
        namespace, file system), started and ready, then noted."""
        lab, dlab = self.lab, _docker(self.lab)
        api = dlab.c.api
        hosts = [h for h in self._hosts() if h.name in names]
        for host in hosts:
            try:
                api.remove_container(f"{lab.name}-{host.name}", force=True)
            except Exception as exc:  # noqa: BLE001 - already gone is fine; the create below says otherwise
                if "No such container" not in str(exc):
                    raise LabError(f"could not remove host {host.name} of {lab.name}: {exc}") from None
        engine_cpus = int(dlab.c.info().get("NCPU") or 1)
        first = [h for h in hosts if h.role == "server"]
        rest = [h for h in hosts if h not in first]
        dlab._create_hosts(hosts, engine_cpus)
        dlab._start_hosts(first, lambda m: None)
        dlab.wait_for_outputs({h.name: h.ready for h in first if h.ready}, ready_timeout)
        dlab._start_hosts(rest, lambda m: None)
        dlab.wait_for_outputs({h.name: h.ready for h in rest if h.ready}, ready_timeout)
        self._note([h.name for h in hosts])

    def close(self) -> None:
        self.lab.close()


class _Recorder:
    """The lab as a check sees it, noting each command it runs and what came back."""

    def __init__(self, lab: Lab):
        self._lab = lab
        self.log: List[dict] = []

    def __getattr__(self, name):
        return getattr(self._lab, name)

    def _note(self, host: str, cmd: str, seen: str) -> None:
        if len(self.log) < TRANSCRIPT_ENTRIES:
            cmd = cmd.replace(f" {CAP}", "")
            seen = seen if len(seen) <= TRANSCRIPT_CAP else seen[:TRANSCRIPT_CAP] + "…"
            self.log.append({"host": host, "sent": cmd, "seen": seen})

    def _result(self, host, r) -> None:
        how = "timed out" if r.timed_out else f"exit {r.exit_code}"
        self._note(host, r.command, f"[{how}]\n{(r.stdout + r.stderr).strip()}")

    def run(self, host, cmd, *args, **kwargs):
        r = self._lab.run(host, cmd, *args, **kwargs)
        self._result(host, r)
        return r

    def run_many(self, hosts, cmd, *args, **kwargs):
        results = self._lab.run_many(hosts, cmd, *args, **kwargs)
        for host, r in results.items():
            self._result(host, r)
        return results

    def start(self, host, cmd, *args, **kwargs):
        bg = self._lab.start(host, cmd, *args, **kwargs)
        self._note(host, cmd, "[started in the background; it was listening]")
        return bg


def _ladders(lab: Lab, cap, windows: Dict[str, tuple], end: float) -> Dict[str, dict]:
    """check -> its ladder, from one capture of the whole grading cut by each check's time
    window (the router's capture and these clocks are the same machine's) and, for a check
    that ran beside others, by its own program's packets (``lane_packets``)."""
    from ..packets import ladder as ladder_mod
    from ..packets.analysis import analyse, hosts_of, ifaces_of
    from ..report.html import ladder_section
    topology = _docker(lab).topology
    analysis = analyse(cap.pcaps, ifaces_of(topology, cap.ifnames), wins=None, capture_end=end)
    out = {}
    for name, (title, t0, t1, mine) in windows.items():
        lad = analysis.ladder(hosts_of(topology), title=title,
                              keep=lambda p, t0=t0, t1=t1, mine=mine: t0 <= p.t <= t1 and mine(p))
        if lad.total:
            out[name] = {"ladder_html": ladder_section(lad, "the packets through the router"),
                         "ladder_text": ladder_mod.text(lad), "packets": lad.total}
    return out


def lane_packets(lab: Lab, program: Optional[str]) -> Callable:
    """packet -> whether it is of the lane of ``program`` (harness.lanes): TCP or UDP (and
    the ICMP errors about UDP) to or from the host the program's peer is on: the student
    host for the student's servers, the host ``server`` for the student's clients.  None
    (a check that ran alone): every packet."""
    if program is None:
        return lambda p: True
    udp = program.startswith("UDP")
    where = lab.address(STUDENT_HOST if program.endswith("Server.py") else "server")

    def mine(p) -> bool:
        about = re.findall(r"([0-9.]+):[0-9]+", p.quoted) if p.proto == "icmp" else []
        if where not in (p.src, p.dst, *about):
            return False
        if p.proto == "icmp":
            return udp and p.quoted.startswith("udp")
        return p.proto == ("udp" if udp else "tcp")
    return mine


def grade_on(rlab: ReusedLab, files: List[str], submission: str, capture: bool = True,
             progress: Callable[[str], None] = lambda m: None):
    """Build the submission (when the assignment has a build) and run every check of the
    level on ``rlab`` (its hosts fresh, /work holding the submission): (GradeReport, per
    check: transcript and, for failed checks, a ladder).

    One capture runs on the router through every student of the lab (``ReusedLab.capture``:
    starting and stopping one per check, then per student, cost more than the checks); each
    failed check's ladder holds the packets of its own time window (and lane)."""
    began = time.monotonic()
    lab = rlab.lab
    report = GradeReport(submission, rlab.level, files)
    g = Grading(lab, set(files), rlab.assignment)
    extras: Dict[str, dict] = {}
    windows: Dict[str, tuple] = {}
    program = {c.name: c.lane for c in checks_for(rlab.level)}

    def step(name: str, run):
        """One check (or the build) with its transcript, and its time window if it failed;
        each in the lane's own thread, with a recorder of its own."""
        rec = _Recorder(lab)
        g.as_seen_by(rec)
        t0 = time.time()
        result = run()
        if result.status == "failed":
            windows[name] = (name, t0, time.time(), lane_packets(lab, program.get(name)))
        extras[name] = {"transcript": list(rec.log)}
        return result

    capturing = capture and rlab.start_capture()
    try:
        report.results.extend(build_and_check(g, checks_for(rlab.level), progress, step,
                                              side_by_side=not _work_by_archive(lab)))
    finally:
        g.stop_all()
    cap = rlab.capture() if capturing and windows else None
    pcaps = cap.pcaps if cap is not None else {}
    if windows and any(len(p) > 24 for p in pcaps.values()):
        try:
            for name, extra in _ladders(lab, cap, windows, time.time()).items():
                extras[name].update(extra)
        except Exception as exc:  # noqa: BLE001 - a capture we cannot read costs the picture only
            for name in windows:
                extras[name]["ladder_text"] = f"(the capture could not be read: {type(exc).__name__}: {exc})"
    report.duration_s = round(time.monotonic() - began, 3)
    rlab.graded += 1
    return report, [extras[r.name] for r in report.results]


def check_rows(report: GradeReport, extras: List[dict]) -> List[dict]:
    return [{**asdict(r), **e} for r, e in zip(report.results, extras)]

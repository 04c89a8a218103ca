"""One lab graded on again and again: what a worker of `lab grade --class` holds.

Bringing a lab up costs networks, a router (with its impairer) and every host.  Between two
students only what a student's programs can touch is made new: every host but the router
is removed and created again (new processes, new network namespaces: no socket in
TIME_WAIT, no file in /tmp, no stray process of the last student survives), /work is
emptied and filled with the next submission before the hosts start, the router's
impairments are cleared to none and its neighbour cache flushed (the new hosts have new
MAC addresses).  The router runs no student code.

The checks run under one capture on the router; it is read (into a ladder of each failed
check's packets) only when a check failed, so a student sees *why*.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Dict, List, Optional

from ..programs.shared.errors import LabError
from ..programs.shared.impairment import Change
from ..testing import Lab, lab_name, open_lab
from . import checks as _checks  # noqa: F401 - registers the checks
from .assignment import LECTURE, Assignment
from .harness import CAP, STUDENT_HOST, Grading, checks_for
from .run import OUTPUT_CAP, GradeReport, build_and_check, lab_hosts

TRANSCRIPT_CAP = 2000       # characters of what one command printed, in a student's report
TRANSCRIPT_ENTRIES = 12     # commands shown per check


def clients_for(level: str) -> int:
    return 10 if level == "robust" else 3


# -- the only places that reach under testing.Lab ------------------------------------------

def _docker(lab: Lab):
    """The DockerLab under ``lab``: its topology, its engine client, host creation."""
    return lab.running.docker


def _forget_programs(lab: Lab) -> None:
    """The background programs ``lab`` knows of died with their hosts."""
    lab._background.clear()


class ReusedLab:
    """A grading lab whose hosts are made new for every submission (see the module doc)."""

    def __init__(self, level: str, work: Path, progress: Callable[[str], None] = lambda m: None,
                 assignment: Optional[Assignment] = None):
        self.level = level
        self.work = work
        self.assignment = assignment or LECTURE
        self.graded = 0
        # The hosts made again between students keep the images they were planned with.
        self.lab: Lab = open_lab(clients=clients_for(level), server="idle", **lab_hosts(self.assignment),
                                 work=work, max_output=OUTPUT_CAP, name=lab_name("grade"), progress=progress)

    @property
    def name(self) -> str:
        return self.lab.name

    def _hosts(self):
        return [h for h in _docker(self.lab).topology.hosts if h.role != "router"]

    def remove_hosts(self) -> None:
        """End every program of the last student: its hosts go, with all they ran."""
        lab, dlab = self.lab, _docker(self.lab)
        _forget_programs(lab)
        # What the programs wrote in /work belongs to the hosts' root: removed from inside,
        # so a grader that is not root can refill the folder.
        lab.running.exec(STUDENT_HOST, ["sh", "-c", "rm -rf /work/* /work/.[!.]* /work/..?*"])
        api = dlab.c.api
        for host in self._hosts():
            try:
                api.remove_container(f"{lab.name}-{host.name}", force=True)
            except Exception as exc:  # noqa: BLE001 - already gone is fine; the create below says otherwise
                if "No such container" not in str(exc):
                    raise LabError(f"could not remove host {host.name} of {lab.name}: {exc}") from None
        if lab.running.router_used:
            lab.running.change(Change.replace_all({}))    # no impairment or partition left over
        lab.running.exec("router", ["ip", "neigh", "flush", "all"])

    def start_hosts(self, ready_timeout: float = 60.0) -> None:
        dlab = _docker(self.lab)
        engine_cpus = int(dlab.c.info().get("NCPU") or 1)
        hosts = self._hosts()
        first = [h for h in hosts if h.role == "server"]
        rest = [h for h in hosts if h not in first]
        dlab._create_hosts(hosts, engine_cpus)
        dlab._start_hosts(first, lambda m: None)
        dlab.wait_for_outputs({h.name: h.ready for h in first if h.ready}, ready_timeout)
        dlab._start_hosts(rest, lambda m: None)
        dlab.wait_for_outputs({h.name: h.ready for h in rest if h.ready}, ready_timeout)

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


def _ladders(lab: Lab, cap, windows: Dict[int, tuple], end: float) -> Dict[int, dict]:
    """check index -> its ladder, from one capture of the whole grading cut by each check's
    time window (the router's capture and these clocks are the same machine's)."""
    from ..packets import ladder as ladder_mod
    from ..packets.analysis import analyse, hosts_of, ifaces_of
    from ..report.html import ladder_section
    topology = _docker(lab).topology
    analysis = analyse(cap.pcaps, ifaces_of(topology, cap.ifnames), wins=None, capture_end=end)
    out = {}
    for index, (title, t0, t1) in windows.items():
        lad = analysis.ladder(hosts_of(topology), title=title, keep=lambda p, t0=t0, t1=t1: t0 <= p.t <= t1)
        if lad.total:
            out[index] = {"ladder_html": ladder_section(lad, "the packets through the router"),
                          "ladder_text": ladder_mod.text(lad), "packets": lad.total}
    return out


def _start_capture(lab: Lab, stack: contextlib.ExitStack):
    try:
        return stack.enter_context(lab.capture())
    except LabError:
        return None      # no picture, the same verdicts


def grade_on(rlab: ReusedLab, files: List[str], submission: str, capture: bool = True,
             progress: Callable[[str], None] = lambda m: None):
    """Build the submission (when the assignment has a build) and run every check of the
    level on ``rlab`` (its hosts fresh, /work holding the submission): (GradeReport, per
    check: transcript and, for failed checks, a ladder).

    One capture runs on the router through all the checks (starting and stopping one per
    check cost more than the checks); each failed check's ladder holds the packets of its
    own time window."""
    began = time.monotonic()
    lab = rlab.lab
    report = GradeReport(submission, rlab.level, files)
    rec = _Recorder(lab)
    g = Grading(rec, set(files), rlab.assignment)
    extras: List[dict] = []
    windows: Dict[int, tuple] = {}

    def step(name: str, run):
        """One check (or the build) with its transcript, and its time window if it failed."""
        rec.log = []
        t0 = time.time()
        result = run()
        if result.status == "failed":
            windows[len(extras)] = (name, t0, time.time())
        extras.append({"transcript": list(rec.log)})
        return result

    stack = contextlib.ExitStack()
    cap = _start_capture(lab, stack) if capture else None
    try:
        report.results.extend(build_and_check(g, checks_for(rlab.level), progress, step))
    finally:
        try:
            g.stop_all()
        finally:
            stack.close()       # the capture stops; cap.pcaps is filled
    pcaps = cap.pcaps if cap is not None else {}
    if windows and any(len(p) > 24 for p in pcaps.values()):
        try:
            for index, extra in _ladders(lab, cap, windows, time.time()).items():
                extras[index].update(extra)
        except Exception as exc:  # noqa: BLE001 - a capture we cannot read costs the picture only
            for index in windows:
                extras[index]["ladder_text"] = f"(the capture could not be read: {type(exc).__name__}: {exc})"
    report.duration_s = round(time.monotonic() - began, 3)
    rlab.graded += 1
    return report, extras


def check_rows(report: GradeReport, extras: List[dict]) -> List[dict]:
    return [{**asdict(r), **e} for r, e in zip(report.results, extras)]

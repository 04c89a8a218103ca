"""Grading one submission: its folder is copied (the student's programs may write to /work;
the submission stays as it was), a lab is brought up with that copy as /work, every check
of the level runs in order, and the lab is removed, whatever happened.

A check that fails, crashes, hangs or floods costs its own points (harness.py bounds
each program); a problem of the grader itself (no engine, no image) is a LabError and
stops the grading with exit 3 (the environment's code), so a broken set-up never hands
out zeros.
"""
from __future__ import annotations

import functools
import shutil
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

from ..concurrency import run_all
from ..programs.shared.errors import LabError
from ..testing import open_lab
from . import checks as _checks  # noqa: F401 - registers the checks
from .assignment import LECTURE, Assignment
from .harness import FILES, STUDENT_HOST, Failed, Grading, checks_for, lanes

MAX_SUBMISSION_BYTES = 50 << 20
OUTPUT_CAP = 1 << 20     # per stream of every student program


@dataclass
class CheckResult:
    name: str
    description: str
    max_score: float
    score: float
    status: str            # passed | failed | missing (a file it needs is not there) | not run (no build)
    output: str
    duration_s: float


@dataclass
class GradeReport:
    submission: str
    level: str
    files: List[str]
    results: List[CheckResult] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def score(self) -> float:
        return sum(r.score for r in self.results)

    @property
    def max_score(self) -> float:
        return sum(r.max_score for r in self.results)


def copy_submission(folder: Path, into: Path) -> List[str]:
    """Copy the submission (refusing what is not a folder or is too big); its lecture files."""
    if not folder.is_dir():
        raise LabError(f"{folder}: not a folder", hint="give the folder holding TCPServer.py etc.")
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    if size > MAX_SUBMISSION_BYTES:
        raise LabError(f"{folder}: {size} bytes, over {MAX_SUBMISSION_BYTES >> 20} MiB: not a submission")
    shutil.copytree(folder, into, symlinks=True, dirs_exist_ok=True)
    into.chmod(0o777)   # the programs run as root in the hosts; anyone may clean up after
    return [name for name in FILES if (into / name).is_file()]


def grade(folder: Path, level: str = "default", progress: Callable[[str], None] = lambda m: None,
          assignment: Optional[Assignment] = None) -> GradeReport:
    """Grade the submission in `folder`; `assignment` says how to build and run its programs
    (None: the lecture's Python files)."""
    began = time.monotonic()
    assignment = assignment or LECTURE
    if assignment.image:
        check_assignment_image(assignment)
    with tempfile.TemporaryDirectory(prefix="socketlab-grade-") as tmp:
        work = Path(tmp) / "work"
        files = list(assignment.files(tuple(copy_submission(Path(folder), work))))
        report = GradeReport(str(folder), level, files)
        selected = checks_for(level)
        clients = 10 if level == "robust" else 3
        progress(f"bringing up a lab with {clients} clients and the host {STUDENT_HOST} …")
        lab = open_lab(clients=clients, server="idle", **lab_hosts(assignment), work=work, max_output=OUTPUT_CAP,
                       name=None, progress=progress)
        lab.running.use_agents()      # the checks' commands: one exec per host, not per command
        g = Grading(lab, set(files), assignment)
        try:
            report.results.extend(build_and_check(g, selected, progress))
        finally:
            try:
                g.stop_all()
            finally:
                lab.close()
    report.duration_s = round(time.monotonic() - began, 3)
    return report


def lab_hosts(assignment: Assignment) -> dict:
    """``open_lab``'s hosts and images for grading ``assignment``: the student host on the
    servers' network, and with the assignment's image on it and on the clients (the
    student's programs run there; its image carries socketlab's programs too)."""
    own = {"image": assignment.image, "command": ["host-role", "idle"]} if assignment.image else {}
    images = {"clients": {**own, "command": ["host-role", "client", "--no-demo"]}} if own else None
    return {"hosts": {STUDENT_HOST: {"network": "servers", **own}}, "images": images}


def not_run(chk) -> CheckResult:
    return CheckResult(chk.name, chk.description, chk.points, 0.0, "not run",
                       "not run: the build failed (see builds)", 0.0)


def build_and_check(g: Grading, selected, progress: Callable[[str], None] = lambda m: None,
                    step: Callable[[str, Callable[[], CheckResult]], CheckResult] = lambda name, run: run(),
                    side_by_side: bool = False) -> List[CheckResult]:
    """The assignment's build (when it has one), then every check of ``selected`` in order;
    each check "not run" when the build failed.  ``step(name, run)`` runs each one (and may
    note what happened around it): one result per step, the build's first, in that order.

    ``side_by_side``: the checks of each program in a lane of their own, the lanes at once,
    then the checks that must run alone (``harness.lanes``); each lane's checks still run in
    their order, and the results come back in the order of ``selected``."""
    results: List[CheckResult] = []
    built = None
    if g.assignment.build:
        built = step("builds", lambda: _build(g.assignment, g, progress))
        results.append(built)
    if built is not None and built.status != "passed":
        return results + [step(chk.name, lambda chk=chk: not_run(chk)) for chk in selected]
    if not side_by_side:
        return results + [step(chk.name, lambda chk=chk: _run_check(chk, g, progress)) for chk in selected]
    parallel, alone = lanes(selected)
    done: Dict[str, CheckResult] = {}

    def lane(chks) -> None:
        for chk in chks:
            done[chk.name] = step(chk.name, lambda chk=chk: _run_check(chk, g, progress))
    run_all(functools.partial(lane, chks) for chks in parallel)   # the first error is raised, after all ended
    lane(alone)
    return results + [done[chk.name] for chk in selected]


BUILD_TIMEOUT_S = 300.0


def _build(assignment: Assignment, g: Grading, progress) -> CheckResult:
    """The assignment's build, once, on the student host in the submission's folder (which
    every host shares): a check of its own, worth no points; its last lines when it fails."""
    progress(f"builds: {assignment.build} …")
    began = time.monotonic()
    # Its output to a file, then the last lines: a pipe into `head` would hide its exit status.
    log = "/tmp/socketlab-build.log"
    r = g.lab.run(STUDENT_HOST, f"{{ {assignment.build}\n}} > {log} 2>&1; code=$?; tail -n 40 {log} | "
                                f"head -c 65536; exit $code", timeout=BUILD_TIMEOUT_S)
    duration = round(time.monotonic() - began, 3)
    text = (r.stdout + r.stderr).strip()
    tail = "\n".join(text.splitlines()[-20:])
    what = f"`{assignment.build}` in the submission's folder ends with exit 0."
    if r.ok:
        return CheckResult("builds", what, 0.0, 0.0, "passed", tail, duration)
    how = f"timed out after {BUILD_TIMEOUT_S:g} s" if r.timed_out else f"exit {r.exit_code}"
    progress(f"builds: failed ({how})")
    return CheckResult("builds", what, 0.0, 0.0, "failed", f"{how}; its last lines:\n{tail}", duration)


def check_assignment_image(assignment: Assignment) -> None:
    """The assignment's image is in the engine and carries socketlab's programs (our clients
    and servers run next to the student's): a LabError naming the file's line, else."""
    import docker.errors
    from .. import engine, labels
    where = f"{assignment.source}:{assignment.image_line}: image"
    try:
        image = engine.client().images.get(assignment.image)
    except docker.errors.ImageNotFound:
        hint = "build it with `lab images build --with c` (or --with java)" \
            if assignment.image.rsplit(":", 1)[-1].split("-")[-1] in ("c", "java") else "build or pull it first"
        raise LabError(f"{where}: {assignment.image} is not in the engine", hint=hint) from None
    if not (image.labels or {}).get(labels.LABEL_PROGRAMS):
        raise LabError(f"{where}: {assignment.image} is not built on socketlab's host image",
                       hint="build it FROM socketlab-host:latest, or use a toolchain image "
                            "(toolchain: c or java; `lab images build --with c`)")


def _run_check(chk, g: Grading, progress) -> CheckResult:
    missing = [f for f in chk.needs if f not in g.files]
    if missing:
        why = (f"no {', '.join(missing)} in the submission" if g.assignment.lecture else
               f"the assignment has no {', '.join(g._role_of[f] for f in missing)}")
        return CheckResult(chk.name, chk.description, chk.points, 0.0, "missing", why, 0.0)
    progress(f"{chk.name} …")
    began = time.monotonic()
    try:
        output = chk.func(g) or ""
        status, score = "passed", float(chk.points)
    except Failed as exc:
        output, status, score = str(exc), "failed", 0.0
    except LabError:
        raise    # the grader's own set-up broke: no zero for the student
    except Exception as exc:  # noqa: BLE001 - a check that broke on odd output fails, with why
        output, status, score = (f"the check could not judge this submission: {type(exc).__name__}: {exc}\n"
                                 + traceback.format_exc(limit=3)), "failed", 0.0
    duration = round(time.monotonic() - began, 3)
    progress(f"{chk.name}: {status} ({score:g}/{chk.points:g})")
    return CheckResult(chk.name, chk.description, float(chk.points), score, status, output, duration)

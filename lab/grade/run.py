"""Grading one submission: its folder is copied (the student's programs may write to /work;
the submission stays as it was), a lab is brought up with that copy as /work, every check
of the level runs in order, and the lab is removed, whatever happened.

A check that fails, crashes, hangs or floods costs its own points (harness.py bounds
each program); a problem of the grader itself (no engine, no image) is a LabError and
stops the grading with exit 3 (the environment's code), so a broken set-up never hands
out zeros.
"""
from __future__ import annotations

import shutil
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List

from ..programs.shared.errors import LabError
from ..testing import open_lab
from . import checks as _checks  # noqa: F401 - registers the checks
from .harness import FILES, STUDENT_HOST, Failed, Grading, checks_for

MAX_SUBMISSION_BYTES = 50 << 20
OUTPUT_CAP = 1 << 20     # per stream of every student program


@dataclass
class CheckResult:
    name: str
    description: str
    max_score: float
    score: float
    status: str            # passed | failed | missing (a file it needs is not there)
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


def grade(folder: Path, level: str = "default", progress: Callable[[str], None] = lambda m: None) -> GradeReport:
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="socketlab-grade-") as tmp:
        work = Path(tmp) / "work"
        files = copy_submission(Path(folder), work)
        report = GradeReport(str(folder), level, files)
        selected = checks_for(level)
        clients = 10 if level == "robust" else 3
        progress(f"bringing up a lab with {clients} clients and the host {STUDENT_HOST} …")
        lab = open_lab(clients=clients, server="idle", hosts={STUDENT_HOST: "servers"}, work=work,
                       max_output=OUTPUT_CAP, name=None, progress=progress)
        g = Grading(lab, set(files))
        try:
            for chk in selected:
                report.results.append(_run_check(chk, g, progress))
        finally:
            try:
                g.stop_all()
            finally:
                lab.close()
    report.duration_s = round(time.monotonic() - began, 3)
    return report


def _run_check(chk, g: Grading, progress) -> CheckResult:
    missing = [f for f in chk.needs if f not in g.files]
    if missing:
        return CheckResult(chk.name, chk.description, chk.points, 0.0, "missing",
                           f"no {', '.join(missing)} in the submission", 0.0)
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

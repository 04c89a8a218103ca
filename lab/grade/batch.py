"""`lab grade --class DIR`: every submission of a class, graded by a few worker processes
that each keep one lab (reuse.py), with a gradebook and a summary at the end.

    OUT/gradebook.csv            one row per student (gradebook.py)
    OUT/summary.html             score histogram, what most of the class got wrong
    OUT/<student>/grade.json     the record (written last: its presence means "graded")
    OUT/<student>/results.json   Gradescope's shape
    OUT/<student>/junit.xml
    OUT/<student>/report.html    the student's own report, with ladders of failed checks

Resume: a second run keeps every record whose content hash, level and set of checks are
unchanged (unless ``regrade``), and grades the rest.  A submission that is refused (see
classroom.py) or whose grading the grader itself broke (a LabError, after one retry on a
fresh lab) is one row with its reason and nothing against the student; the class goes on.

Verdicts do not depend on the number of workers: every submission runs alone on its own
lab (no two students share hosts or a router), and the default number of workers keeps the
machine far enough from saturation that timeouts are not reached (see ``default_jobs``).
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import queue
import shutil
import signal
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

from ..programs.shared.errors import LabError
from . import checks as _checks  # noqa: F401 - registers the checks
from . import gradebook
from .assignment import LECTURE, Assignment
from .classroom import Submission, copy_into, find_submissions, prepare
from .harness import checks_for

RECORD = "grade.json"
LAB_MEMORY = 512 << 20      # what one grading lab may use at most (hosts' limits, the impairer, captures)
# Measured (benchmarks/grade_class.py, tests/net/test_grade_class.py): 4 on 2 CPUs gave serial's
# verdicts, also with each lab's four lanes side by side, and kept both CPUs busy (load 7 to 20).
JOBS_PER_CPU = 2
MAX_JOBS = 8


def default_jobs(cpus: int, memory: int) -> int:
    """Workers for an engine with ``cpus`` CPUs and ``memory`` bytes: two per CPU (a grading
    lab mostly waits: on container starts, on the checks' clients and timeouts), no more
    than the memory holds at LAB_MEMORY each, at most MAX_JOBS, at least one."""
    by_memory = memory // LAB_MEMORY if memory else MAX_JOBS
    return max(1, min(JOBS_PER_CPU * max(1, cpus), by_memory, MAX_JOBS))


def engine_jobs() -> int:
    from .. import engine
    info = engine.client().info()
    return default_jobs(int(info.get("NCPU") or 1), int(info.get("MemTotal") or 0))


def check_engine() -> None:
    """Refuse to start the workers where no submission could be graded (exit 3), instead
    of a grader error on every row."""
    import docker.errors
    from .. import engine
    from ..images import definition
    from ..programs.shared.errors import LabEnvironmentError
    try:
        engine.client().images.get(definition.HOST_IMAGE)
    except docker.errors.ImageNotFound:
        raise LabEnvironmentError(f"the image {definition.HOST_IMAGE} is not in the engine",
                                  hint="run `lab images build`") from None


def checks_key(level: str, assignment: Assignment = LECTURE) -> str:
    """What a kept record must have been graded with: the level's checks and points, and
    (not for the lecture) the assignment file's content: a changed assignment regrades."""
    text = "\n".join(f"{c.name}:{c.points:g}" for c in checks_for(level))
    if not assignment.lecture:
        text += f"\nassignment:{assignment.digest}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_defs(level: str, assignment: Assignment = LECTURE) -> List[tuple]:
    """(name, points) of each column of the gradebook: the build (when the assignment has
    one, worth no points), then the level's checks."""
    build = [("builds", 0.0)] if assignment.build else []
    return build + [(c.name, c.points) for c in checks_for(level)]


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def load_record(folder: Path) -> Optional[dict]:
    try:
        return json.loads((folder / RECORD).read_text())
    except (OSError, ValueError):
        return None


def _base_record(sub: Submission, level: str, assignment: Assignment = LECTURE) -> dict:
    return {"slug": sub.slug, "folder": sub.folder, "name": sub.name, "email": sub.email, "sid": sub.sid,
            "digest": sub.digest, "level": level, "checks_key": checks_key(level, assignment),
            "notes": list(sub.notes), "status": "graded", "reason": "", "score": 0.0,
            "max_score": float(sum(p for _, p in check_defs(level, assignment))), "files": [], "checks": []}


def write_outputs(out: Path, rec: dict, report=None) -> None:
    """A student's files; grade.json last (and only for a final verdict: a grader error
    is retried by the next run)."""
    from . import report as rep
    from .student_report import student_html
    folder = out / rec["slug"]
    folder.mkdir(parents=True, exist_ok=True)
    if report is not None:
        _write_atomic(folder / "results.json", rep.gradescope_json(report))
        _write_atomic(folder / "junit.xml", rep.junit_xml(report))
    else:
        _write_atomic(folder / "results.json", json.dumps({
            "score": 0.0, "output": f"not graded: {rec['reason']}", "visibility": "visible", "tests": []},
            indent=2) + "\n")
    _write_atomic(folder / "report.html", student_html(rec))
    if rec["status"] != "grader-error":
        _write_atomic(folder / RECORD, json.dumps(rec, indent=1) + "\n")
    else:
        (folder / RECORD).unlink(missing_ok=True)


# -- a worker process ----------------------------------------------------------------------

def _end_with_parent() -> None:
    """If `lab grade` itself dies (kill -9), its workers stop as on Ctrl-C and remove their
    labs, instead of grading on for nobody."""
    import threading
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)    # polling the parent's liveness: no portable event for it
        os.kill(os.getpid(), signal.SIGINT)
    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def _worker(index: int, level: str, out: str, tasks, results, capture: bool,
            assignment: Assignment = LECTURE) -> None:
    """Grade tasks from ``tasks`` on one reused lab until a None; report on ``results``."""
    from .reuse import ReusedLab, check_rows, grade_on
    _end_with_parent()
    work = Path(tempfile.mkdtemp(prefix=f"socketlab-class-{index}-"))
    rlab = None
    try:
        while True:
            task = tasks.get()
            if task is None:
                return
            sub = Submission(**task)
            results.put(("start", sub.slug, index))
            rec = _base_record(sub, level, assignment)
            for attempt in (1, 2):
                try:
                    setup = time.monotonic()
                    remade = {}
                    if rlab is not None:
                        remade = rlab.reset()       # empties /work too
                        rec["reset_s"] = round(time.monotonic() - setup, 3)
                    files = list(assignment.files(tuple(copy_into(sub.root, work))))
                    if rlab is None:
                        rlab = ReusedLab(level, work, assignment=assignment)
                    rec["setup_s"] = round(time.monotonic() - setup, 3)
                    rec["hosts_remade"] = remade
                    report, extras = grade_on(rlab, files, sub.folder, capture=capture)
                    rec.update(score=report.score, max_score=report.max_score, files=files,
                               duration_s=report.duration_s, checks=check_rows(report, extras), lab=rlab.name)
                    write_outputs(Path(out), rec, report)
                    break
                except Exception as exc:  # noqa: BLE001 - the grader's own failure (engine, lab): retried, never a zero
                    if rlab is not None:           # start again on a fresh lab
                        try:
                            rlab.close()
                        except Exception:  # noqa: BLE001 - it is being replaced anyway
                            pass
                        rlab = None
                    if attempt == 2:
                        rec.update(status="grader-error",
                                   reason=(str(exc).splitlines() or [type(exc).__name__])[0][:500])
                        write_outputs(Path(out), rec)
            results.put(("done", rec, index))
    except KeyboardInterrupt:
        pass
    except BaseException:
        results.put(("crash", traceback.format_exc(), index))
    finally:
        try:
            if rlab is not None:
                rlab.close()
        finally:
            shutil.rmtree(work, ignore_errors=True)


# -- the class ------------------------------------------------------------------------------

@dataclass
class Progress:
    done: int
    total: int
    failing: int            # graded with points lost, so far
    not_graded: int         # refused or grader errors, so far
    eta_s: Optional[float]  # time left, once something was graded in this run
    running: int


@dataclass
class ClassResult:
    layout: str
    records: List[dict]
    kept: int                # from an earlier run
    graded_now: int
    jobs: int
    duration_s: float
    total: int = 0
    interrupted: bool = False


def grade_class(directory: Path, out: Path, level: str = "default", jobs: Optional[int] = None,
                regrade: bool = False, capture: bool = True,
                on_progress: Callable[[Progress], None] = lambda p: None,
                say: Callable[[str], None] = lambda m: None,
                assignment: Optional[Assignment] = None) -> ClassResult:
    """``assignment``: how to build and run each student's programs (None: the lecture's
    Python files), as for one submission (run.grade)."""
    began = time.monotonic()
    assignment = assignment or LECTURE
    if assignment.image:   # bad input (exit 2, naming the file's line) before anything is written
        from .run import check_assignment_image
        check_assignment_image(assignment)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    layout, subs = find_submissions(Path(directory))
    key = checks_key(level, assignment)
    scratch = Path(tempfile.mkdtemp(prefix="socketlab-class-unpacked-"))
    records: Dict[str, dict] = {}
    pending: List[Submission] = []
    kept = 0
    try:
        for sub in subs:
            prepare(sub, scratch)
            if sub.refused:
                rec = _base_record(sub, level, assignment)
                rec.update(status="refused", reason=sub.refused)
                write_outputs(out, rec)
                records[sub.slug] = rec
                continue
            old = load_record(out / sub.slug)
            if (not regrade and old and old.get("digest") == sub.digest and old.get("checks_key") == key
                    and old.get("status") == "graded"):
                old.update(folder=sub.folder, name=sub.name, email=sub.email, sid=sub.sid)
                records[sub.slug] = old
                kept += 1
            else:
                pending.append(sub)
        if pending:
            check_engine()
        jobs = max(1, min(jobs or engine_jobs(), len(pending) or 1))
        say(f"{len(subs)} submissions ({layout}): {kept} kept from an earlier run, "
            f"{len(records) - kept} not gradable, {len(pending)} to grade with {jobs} worker(s)")
        interrupted = False
        if pending:
            interrupted = _run_workers(pending, records, out, level, jobs, capture, len(subs), on_progress,
                                       assignment)
        result = ClassResult(layout, [records[s.slug] for s in subs if s.slug in records], kept,
                             len(records) - kept, jobs, round(time.monotonic() - began, 1), len(subs), interrupted)
        write_class_files(out, result.records, level, assignment)
        return result
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _failing(rec: dict) -> bool:
    return rec["status"] == "graded" and rec["score"] < rec["max_score"]


def _run_workers(pending, records, out: Path, level, jobs, capture, total, on_progress,
                 assignment: Assignment = LECTURE) -> bool:
    ctx = multiprocessing.get_context("spawn")
    tasks, results = ctx.Queue(), ctx.Queue()
    for sub in pending:
        tasks.put({"slug": sub.slug, "folder": sub.folder, "path": sub.path, "name": sub.name, "email": sub.email,
                   "sid": sub.sid, "root": sub.root, "digest": sub.digest, "notes": sub.notes})
    for _ in range(jobs):
        tasks.put(None)
    workers = [ctx.Process(target=_worker, args=(i, level, str(out), tasks, results, capture, assignment),
                           daemon=False) for i in range(jobs)]
    for w in workers:
        w.start()
    began, graded_now, running = time.monotonic(), 0, set()

    def report() -> None:
        done = len(records)
        left = total - done
        eta = (time.monotonic() - began) / graded_now * left / 1 if graded_now else None
        on_progress(Progress(done, total, sum(map(_failing, records.values())),
                             sum(r["status"] != "graded" for r in records.values()), eta, len(running)))

    try:
        report()
        while graded_now < len(pending):
            try:
                kind, payload, index = results.get(timeout=1.0)
            except queue.Empty:
                if not any(w.is_alive() for w in workers):
                    raise LabError("every grading worker ended before the class was graded")
                report()
                continue
            if kind == "start":
                running.add(index)
            elif kind == "done":
                running.discard(index)
                records[payload["slug"]] = payload
                graded_now += 1
            elif kind == "crash":
                raise LabError(f"a grading worker crashed:\n{payload}")
            report()
        for w in workers:
            w.join(120)
        return False
    except KeyboardInterrupt:
        return _stop(workers, records, results)
    finally:
        for w in workers:
            if w.is_alive():
                w.kill()


def _stop(workers, records, results) -> bool:
    """Ctrl-C: every worker removes its lab and ends; what finished is kept."""
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)     # a second Ctrl-C must not cut the cleanup
    try:
        for w in workers:
            if w.is_alive():
                try:
                    os.kill(w.pid, signal.SIGINT)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 90
        while any(w.is_alive() for w in workers) and time.monotonic() < deadline:
            try:
                kind, payload, _ = results.get(timeout=0.5)
                if kind == "done":
                    records[payload["slug"]] = payload
            except queue.Empty:
                pass
        return True
    finally:
        signal.signal(signal.SIGINT, old)


def write_class_files(out: Path, records: List[dict], level: str,
                      assignment: Assignment = LECTURE) -> gradebook.Summary:
    defs = check_defs(level, assignment)
    _write_atomic(out / "gradebook.csv", gradebook.gradebook_csv(records, [n for n, _ in defs]))
    s = gradebook.summary(records, defs)
    _write_atomic(out / "summary.html", gradebook.summary_html(s, f"lab grade --class ({level} level)", records))
    _write_atomic(out / "summary.txt", gradebook.summary_text(s))
    return s

"""`lab grade`: grade a student's lecture programs, or a whole class of them."""
from __future__ import annotations

import json
import sys
import time

import click

from .. import ui
from .options import Refused

JOBS_HELP = ("Submissions graded at once, each on its own lab (default: two per CPU of the Docker Engine, "
             "fewer if its memory holds fewer labs at 512 MiB each, at most 8: measured on 2 CPUs, 4 at once "
             "gave the same verdicts as one at a time).")


@click.command()
@click.argument("folder", required=False, type=click.Path(exists=True, file_okay=False))
@click.option("--class", "class_dir", type=click.Path(exists=True, file_okay=False),
              help="Grade every submission in this folder: one folder per submission, a Gradescope export "
                   "(submission_metadata.yml) or cloned GitHub Classroom repositories.")
@click.option("--level", type=click.Choice(["default", "robust"]), default="default", show_default=True,
              help="robust adds loss, delay, ten clients, a restart during TIME_WAIT, and a sliced reply, a reset "
                   "and a silent server.")
@click.option("--jobs", type=click.IntRange(1, 64), default=None, help=JOBS_HELP)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="grades", show_default=True,
              help="With --class: where the gradebook, the summary and each student's folder go.")
@click.option("--regrade", is_flag=True, help="With --class: grade again what an earlier run graded.")
@click.option("--junit", "junit_file", type=click.Path(dir_okay=False), help="Write JUnit XML here.")
@click.option("--gradescope", "gradescope_file", type=click.Path(dir_okay=False),
              help="Write Gradescope's results.json here.")
@click.option("--prairielearn", "pl_file", type=click.Path(dir_okay=False),
              help="Write PrairieLearn's results.json here (gradable: false if the grader could not run).")
@click.option("--github-classroom", "ghc_file", type=click.Path(dir_okay=False),
              help="Write the results GitHub Classroom's grading reporter reads (JSON; it wants it base64).")
@click.option("--assignment", "assignment_file", type=click.Path(dir_okay=False),
              help="An assignment file: the image, the build and each program's command, for programs "
                   "in any language (default: the lecture's four Python files); with --class, for every "
                   "submission.")
def grade(folder, class_dir, level, jobs, out_dir, regrade, junit_file, gradescope_file, pl_file, ghc_file,
          assignment_file):
    """Grade a student's lecture programs (TCPServer.py, UDPServer.py, TCPClient.py, UDPClient.py) in FOLDER,
    or a whole class with --class DIR.

    One submission: exit 0 full marks, 1 points lost, 2 bad input, 3 the grader could not run (no engine,
    no image).  A class: exit 0 once every submission has a row (points lost or not), 3 if the grader
    failed on some (their rows say so), 130 if interrupted (run the same command again to resume:
    graded submissions are kept unless changed or --regrade)."""
    from pathlib import Path
    if bool(folder) == bool(class_dir):
        raise Refused("grade", "give one submission FOLDER or --class DIR")
    if class_dir:
        if junit_file or gradescope_file or pl_file or ghc_file:
            raise Refused("grade", "--junit, --gradescope, --prairielearn and --github-classroom are for one "
                                   "submission; with --class each student's files are in OUT/<student>/")
        from ..grade.assignment import load as load_assignment
        assignment = load_assignment(Path(assignment_file)) if assignment_file else None
        _grade_class(Path(class_dir), Path(out_dir), level, jobs, regrade, assignment)
        return
    if jobs or regrade:
        raise Refused("grade", "--jobs and --regrade are for --class")
    from ..grade import gradebook
    from ..grade import report as rep
    from ..grade.run import grade as run_grade
    from ..grade.assignment import load as load_assignment
    from ..programs.shared.errors import LabEnvironmentError
    assignment = load_assignment(Path(assignment_file)) if assignment_file else None
    try:
        result = run_grade(Path(folder), level, progress=ui.progress, assignment=assignment)
    except LabEnvironmentError as exc:
        if pl_file:
            Path(pl_file).write_text(json.dumps(gradebook.prairielearn(None, str(exc)), indent=2) + "\n")
        raise
    rep.print_report(result)
    if junit_file:
        Path(junit_file).write_text(rep.junit_xml(result))
    if gradescope_file:
        Path(gradescope_file).write_text(rep.gradescope_json(result))
    if pl_file:
        Path(pl_file).write_text(json.dumps(gradebook.prairielearn(result), indent=2) + "\n")
    if ghc_file:
        Path(ghc_file).write_text(json.dumps(gradebook.github_classroom(result), indent=2) + "\n")
    sys.exit(0 if result.score == result.max_score else 1)


def _duration(seconds) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _grade_class(class_dir, out, level, jobs, regrade, assignment=None):
    from ..grade import batch, gradebook
    from ..grade.assignment import LECTURE
    tty = ui.err.is_terminal
    last = {"line": ""}

    def on_progress(p):
        line = (f"{p.done}/{p.total} done, {p.failing} lost points, {p.not_graded} not graded, "
                f"{p.running} grading now, time left {_duration(p.eta_s)}")
        if line == last["line"]:
            return
        last["line"] = line
        if tty:
            sys.stderr.write("\r\033[K" + line)
            sys.stderr.flush()
        elif p.done != getattr(on_progress, "done", None):   # one line per finished submission in a log
            on_progress.done = p.done
            ui.progress(line)

    began = time.monotonic()
    try:
        result = batch.grade_class(class_dir, out, level, jobs, regrade, on_progress=on_progress, say=ui.progress,
                                   assignment=assignment)
    finally:
        if tty and last["line"]:
            sys.stderr.write("\n")
    s = gradebook.summary(result.records, batch.check_defs(level, assignment or LECTURE))
    sys.stdout.write(gradebook.summary_text(s))
    ui.progress(f"{len(result.records)} rows in {out / 'gradebook.csv'}; summary in {out / 'summary.html'}; "
                f"{result.graded_now} graded now, {result.kept} kept, with {result.jobs} worker(s) in "
                f"{_duration(time.monotonic() - began)}")
    errors = [r for r in result.records if r["status"] == "grader-error"]
    if result.interrupted:
        ui.err.print(f"lab grade: interrupted; {len(result.records)} of {result.total} submissions "
                     "have a row; run the same command again to resume")
        sys.exit(130)
    if errors:
        ui.error(f"{len(errors)} submission(s) not graded because the grader failed (see their rows); "
                 "run the same command again to retry them", label="lab grade:")
        sys.exit(3)

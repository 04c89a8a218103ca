"""`lab grade`: grade a student's lecture programs."""
from __future__ import annotations

import sys

import click

from .. import ui


@click.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--level", type=click.Choice(["default", "robust"]), default="default", show_default=True,
              help="robust adds loss, delay, ten clients and a restart during TIME_WAIT.")
@click.option("--junit", "junit_file", type=click.Path(dir_okay=False), help="Write JUnit XML here.")
@click.option("--gradescope", "gradescope_file", type=click.Path(dir_okay=False),
              help="Write Gradescope's results.json here.")
@click.option("--assignment", "assignment_file", type=click.Path(dir_okay=False),
              help="An assignment file: the image, the build and each program's command, for programs "
                   "in any language (default: the lecture's four Python files).")
def grade(folder, level, junit_file, gradescope_file, assignment_file):
    """Grade a student's lecture programs (TCPServer.py, UDPServer.py, TCPClient.py, UDPClient.py):
    exit 0 full marks, 1 points lost, 2 bad input, 3 the grader could not run (no engine, no image)."""
    from pathlib import Path
    from ..grade import report as rep
    from ..grade.run import grade as run_grade
    from ..grade.assignment import load as load_assignment
    assignment = load_assignment(Path(assignment_file)) if assignment_file else None
    result = run_grade(Path(folder), level, progress=ui.progress, assignment=assignment)
    rep.print_report(result)
    if junit_file:
        Path(junit_file).write_text(rep.junit_xml(result))
    if gradescope_file:
        Path(gradescope_file).write_text(rep.gradescope_json(result))
    sys.exit(0 if result.score == result.max_score else 1)

"""`lab validate` and `lab run`: check scenario files, and run them on real containers."""
from __future__ import annotations

import sys

import click
import docker.errors

from .. import ui
from ..programs.shared.errors import EXIT_BAD_INPUT, LabEnvironmentError, LabError, Terminated


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--check-images", is_flag=True,
              help="Also check that every image the files name (`image:`) is in the engine.")
def validate(files, check_images):
    """Check scenario files without running them: exit 0 if all are valid, 2 if not."""
    from ..programs.shared.problems import ScenarioError
    from ..scenario import load_file
    bad = 0
    for path in files:
        try:
            scenario = load_file(path)
        except ScenarioError as exc:
            bad += 1
            for line in exc.lines:
                ui.say(ui.out, line)
            continue
        problem = _missing_image(path, scenario) if check_images else None
        if problem:
            bad += 1
            ui.say(ui.out, problem)
        else:
            ui.say(ui.out, f"{path}: ok ({scenario.name}: {len(scenario.steps)} steps, "
                           f"{len(scenario.expectations)} expectations)")
    if bad:
        sys.exit(2)


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True,
              help="Print the results as JSON on stdout, a list with one report per file (progress stays on stderr).")
@click.option("--json-file", type=click.Path(dir_okay=False),
              help="Write the same JSON list here, rewritten as each scenario ends.")
@click.option("--junit", "junit_file", type=click.Path(dir_okay=False),
              help="Write JUnit XML here, rewritten as each scenario ends.")
@click.option("--keep", is_flag=True, help="Leave the lab up after the run, to explore it.")
@click.option("--seed", type=int, help="Make the run's random choices repeatable where the backend allows.")
@click.option("--runs-dir", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="Where each run's artifacts folder goes.")
@click.option("--work", "work_dir", default="work", show_default=True, type=click.Path(file_okay=False),
              help="Folder that is /work on every host; on a remote engine copied in, and back when the run ends.")
def run(files, as_json, json_file, junit_file, keep, seed, runs_dir, work_dir):
    """Run scenario files on real containers and judge them.

    Every file is checked before anything starts. The reports (--json, --json-file,
    --junit) hold one report per file, and are written also when a run errs or is
    interrupted: what ran so far, the scenario that broke as an error, the rest skipped.
    """
    from pathlib import Path
    from ..report.model import RunReport
    from ..report.render import ReportSink, print_report
    from ..runner.run import RunOptions, run_scenario
    from ..scenario import load_file
    sink = ReportSink(files, json_file, junit_file, as_json)
    scenarios, problems = [], []
    for i, path in enumerate(files):  # every file is checked before anything starts
        try:
            scenarios.append(load_file(path))
        except LabError as exc:  # FILE:LINE:COL: field: message, one per problem
            lines = getattr(exc, "lines", None) or [str(exc)]
            problems += lines
            sink.add(i, RunReport.not_run(path, errors=lines, error_kind="input"))
    for i, (path, scenario) in enumerate(zip(files, scenarios)) if not problems else ():
        try:
            missing = _missing_image(path, scenario)   # an image the engine lacks: nothing starts
        except LabEnvironmentError as exc:             # no engine to ask: the environment, exit 3
            sink.add(i, RunReport.not_run(path, errors=[str(exc)], error_kind="environment",
                                          name=scenario.name))
            sink.close("not run: the Docker Engine could not be reached")
            raise
        if missing:
            problems.append(missing)
            sink.add(i, RunReport.not_run(path, errors=[missing], error_kind="input"))
    if problems:  # one line per problem, the reports say why, and nothing started
        for line in problems:
            ui.say(ui.err, line)
        sink.close("not run: another file is invalid")
        sys.exit(EXIT_BAD_INPUT)
    opts = RunOptions(Path(runs_dir), Path(work_dir), seed, keep, ui.progress)
    try:
        for i, (path, scenario) in enumerate(zip(files, scenarios)):
            ui.err.rule(ui.printable(f"scenario {scenario.name}"))
            ui.say(ui.err, scenario.description.strip(), newlines=True)
            try:
                report = run_scenario(scenario, opts)
            except BaseException as exc:  # the report of what broke, then on as before
                sink.add(i, RunReport.not_run(path, errors=[_why_it_ended(exc)], error_kind=_error_kind(exc),
                                              name=scenario.name))
                raise
            sink.add(i, report)
            if not as_json:
                print_report(report)
    finally:
        sink.close("not run: an earlier scenario ended the run")
    sys.exit(max(r.exit_code for r in sink.reports))


def _missing_image(path: str, scenario) -> str | None:
    """'FILE: topology: image ... is not in the engine ...', or None when every image is there."""
    from ..topology.docker_lab import check_images
    try:
        check_images(scenario.topology.image_refs)
    except LabEnvironmentError:
        raise
    except LabError as exc:
        return f"{path}: topology: {exc}"
    return None


def _why_it_ended(exc: BaseException) -> str:
    if isinstance(exc, Terminated):
        return "interrupted (SIGTERM)"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (SIGINT)"
    return f"{type(exc).__name__}: {exc}" if not isinstance(exc, LabError) else str(exc)


def _error_kind(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, LabError):
        return "input" if exc.exit_code == 2 else "environment"
    return "environment" if isinstance(exc, docker.errors.DockerException) else "crash"

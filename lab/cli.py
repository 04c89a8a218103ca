"""The `lab` command line. Each command is a thin layer over a module that does the work."""
from __future__ import annotations

import signal
import sys

import click
import docker.errors

from . import ui
from .errors import EXIT_BAD_INPUT, EXIT_CODES_HELP, EXIT_ENVIRONMENT, EXIT_SIGINT, EXIT_SIGTERM, LabError, Terminated


class LabGroup(click.Group):
    """Turns LabError into a one-line message and its exit code, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except LabError as exc:
            ui.error(str(exc), getattr(exc, "__notes__", []), exc.hint)  # notes: what also went wrong
            sys.exit(exc.exit_code)
        except Terminated:
            ui.err.print("lab: terminated (SIGTERM); interrupted")
            sys.exit(EXIT_SIGTERM)
        except KeyboardInterrupt:
            ui.err.print("lab: interrupted")
            sys.exit(EXIT_SIGINT)
        except docker.errors.DockerException as exc:  # what the engine refused, in its words
            ui.error(str(exc), label="lab: the Docker Engine said:")
            sys.exit(EXIT_ENVIRONMENT)


@click.group(cls=LabGroup, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_CODES_HELP)
@click.version_option(package_name="socketlab", prog_name="lab")  # the installed package's version
@click.option("--subnets", metavar="POOL", envvar="SOCKETLAB_SUBNETS", show_envvar=True,
              help="Where labs take their /24 subnets (default 10.77.0.0/16).")
@click.pass_context
def cli(ctx, subnets):
    """socketlab: socket programs on real separate hosts, joined by a router."""
    from .topology import lifecycle
    lifecycle.use_pool(subnets)
    if ctx.invoked_subcommand not in ("validate", "down"):   # `down` reaps by itself
        lifecycle.reap_and_say(ui.err, quiet_errors=True)


@cli.group()
def images():
    """Build or remove the lab host image."""


@images.command("build")
@click.option("--offline", is_flag=True, help="Build the base from Debian packages (mmdebstrap) even if a registry is reachable.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def images_build(offline, as_json):
    """Build the host image (idempotent); picks online or offline by itself."""
    from .images import build
    built = build.build_all(offline=offline)
    if as_json:
        ui.print_json([b.as_dict() for b in built])
        return
    ui.table("socketlab images", ["image", "id", "size", "action", "seconds"],
             [[b.tag, b.id.split(":")[-1][:12], ui.human_size(b.size), b.action, f"{b.seconds:.1f}"] for b in built])


@images.command("remove")
def images_remove():
    """Remove every socketlab image from the engine (the next build starts from nothing)."""
    from .images import build
    for tag in build.remove_all():
        ui.progress(f"removed {tag}")


LAB_OPTION = click.option("--lab", "lab_name", default=None, metavar="NAME",
                          help="The lab to use (default: the only one that is up).")


@cli.command()
@click.option("--name", default="lab", show_default=True, help="Lab name; labs with different names run side by side.")
@click.option("--clients", default=1, show_default=True, type=click.IntRange(0, 100), help="Number of client hosts.")
@click.option("--work", "work_dir", default="work", show_default=True, type=click.Path(file_okay=False),
              help="Folder mounted as /work on every host (your own programs).")
@click.option("--server", "server_runs", type=click.Choice(["uppercase", "idle"]), default="uppercase",
              show_default=True, help="What the server host runs: our uppercase TCP+UDP servers on 12000, or nothing.")
@click.option("--tcp-mode", type=click.Choice(["iterative", "concurrent"]), default="concurrent", show_default=True,
              help="The uppercase TCP server's mode.")
@click.option("--pids", type=click.IntRange(16, 1 << 22), default=512, show_default=True,
              help="Most processes and threads per host (the router has its own limits).")
@click.option("--memory", default="512MiB", show_default=True, metavar="SIZE",
              help="Most memory per host, swap included (256MiB, 1GiB).")
@click.option("--cpus", type=click.FloatRange(0, 1024), default=1.0, show_default=True,
              help="CPUs' worth of time per host; 0: no cap.")
@click.option("--json", "as_json", is_flag=True, help="Print the lab's hosts as JSON.")
def up(name, clients, work_dir, server_runs, tcp_mode, pids, memory, cpus, as_json):
    """Bring up the class lab: router, server and clients on two networks. It stays until `lab down`."""
    from pathlib import Path
    from .topology import view
    from .topology.docker_lab import DockerLab
    from .topology.lifecycle import limits_option
    from .topology.model import LabSpec
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    server = ("host-role", "server", "--tcp-mode", tcp_mode) if server_runs == "uppercase" else ("host-role", "idle")
    spec = LabSpec(lab=name, clients=clients, server_command=server, limits=limits_option(pids, memory, cpus))
    lab = DockerLab.plan(spec, Path(work_dir), ephemeral=False)
    lab.up(progress=ui.progress)
    try:  # the demos are part of bringing the lab up: Ctrl-C or a failed demo leaves nothing
        lab.wait_for_outputs({client.name: ("demo done",) for client in lab.topology.clients}, timeout=90)
    except BaseException:
        lab.down()
        raise
    if as_json:
        ui.print_json(view.topology_dict(lab.topology))
        return
    view.print_topology(lab.topology)
    for client in lab.topology.clients:
        ui.out.rule(ui.printable(f"{client.name} ({client.address})"))
        ui.say(ui.out, lab.logs(client.name).rstrip(), newlines=True)
    ui.say(ui.out, "\nNext: ", ("lab shell client1", "bold"), " (or any host), ", ("lab status", "bold"), ", ",
           (f"lab down {name}", "bold"), newlines=True)


@cli.command()
@click.argument("name", required=False, default="lab")
@click.option("--all", "everything", is_flag=True, help="Remove every socketlab container and network, of any lab.")
@click.option("--stale", is_flag=True, help="Only remove the labs of runs, tests and benchmarks that ended "
                                            "(every other command does this too).")
def down(name, everything, stale):
    """Remove a lab's containers and networks (by label, also after a crash)."""
    from .topology import lifecycle
    from .topology.docker_lab import remove_lab
    if not lifecycle.reap_and_say(ui.err) and stale:
        ui.progress("no stale labs")
    if stale:
        return
    n_ctr, n_net = remove_lab(None if everything else name)
    ui.progress(f"removed {n_ctr} containers and {n_net} networks")


@cli.command()
@click.option("--json", "as_json", is_flag=True)
def status(as_json):
    """The labs that are up, their hosts and addresses."""
    from .topology import view
    labs = view.running_labs()
    if as_json:
        ui.print_json(labs)
    elif not labs:
        ui.out.print("no lab is up (start one with `lab up`)")
    else:
        view.print_status(labs)


@cli.command("exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@LAB_OPTION
@click.argument("host")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_(lab_name, host, command):
    """Run a command on a lab host: lab exec client1 -- tcp-client hello"""
    from .terminal import interactive
    from .topology.docker_lab import find_host
    argv = list(command)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        raise click.UsageError("give a command after the host, e.g. lab exec client1 -- tracepath server")
    sys.exit(interactive(find_host(host, lab_name), argv))


@cli.command()
@LAB_OPTION
@click.argument("host")
def shell(lab_name, host):
    """Open a shell on a lab host."""
    from .terminal import interactive
    from .topology.docker_lab import find_host
    sys.exit(interactive(find_host(host, lab_name), ["bash", "-l"]))


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@LAB_OPTION
@click.option("--seconds", type=click.FloatRange(0.1, 3600), help="Capture this long (with a command: its time limit).")
@click.option("-o", "html_file", type=click.Path(dir_okay=False), help="Write the ladder as a self-contained HTML page.")
@click.option("--text", "as_text", is_flag=True, help="Print the ladder as text (the default without -o).")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def trace(lab_name, seconds, html_file, as_text, command):
    """Capture on the router while a host runs a command, and show its packets as a ladder:
    lab trace -- client1 tcp-client hello"""
    from pathlib import Path
    from .packets import ladder, trace as tracing
    from .report import html
    argv = list(command)[1:] if list(command)[:1] == ["--"] else list(command)
    result = tracing.trace(lab_name, argv, seconds, ui.progress)
    if result.output:
        ui.err.print(result.output.rstrip(), markup=False, highlight=False)
    if html_file:
        Path(html_file).write_text(html.trace_page(result.title, result.command, result.output, result.ladder,
                                                   result.analysis.fate_log()))
        ui.progress(f"wrote {html_file}")
    if as_text or not html_file:
        sys.stdout.write(ladder.text(result.ladder))


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def validate(files):
    """Check scenario files without running them: exit 0 if all are valid, 2 if not."""
    from .scenario import ScenarioError, load_file
    bad = 0
    for path in files:
        try:
            scenario = load_file(path)
        except ScenarioError as exc:
            bad += 1
            for line in exc.lines:
                ui.say(ui.out, line)
        else:
            ui.say(ui.out, f"{path}: ok ({scenario.name}: {len(scenario.steps)} steps, "
                           f"{len(scenario.expectations)} expectations)")
    if bad:
        sys.exit(2)


@cli.command()
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
              help="Folder mounted as /work on every host.")
def run(files, as_json, json_file, junit_file, keep, seed, runs_dir, work_dir):
    """Run scenario files on real containers and judge them.

    Every file is checked before anything starts. The reports (--json, --json-file,
    --junit) hold one report per file, and are written also when a run errs or is
    interrupted: what ran so far, the scenario that broke as an error, the rest skipped.
    """
    from pathlib import Path
    from .report.model import RunReport
    from .report.render import ReportSink, print_report
    from .runner.run import RunOptions, run_scenario
    from .scenario import load_file
    sink = ReportSink(files, json_file, junit_file, as_json)
    scenarios, problems = [], []
    for i, path in enumerate(files):  # every file is checked before anything starts
        try:
            scenarios.append(load_file(path))
        except LabError as exc:  # FILE:LINE:COL: field: message, one per problem
            lines = getattr(exc, "lines", None) or [str(exc)]
            problems += lines
            sink.add(i, RunReport.not_run(path, errors=lines, error_kind="input"))
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


@cli.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--level", type=click.Choice(["default", "robust"]), default="default", show_default=True,
              help="robust adds loss, delay, ten clients and a restart during TIME_WAIT.")
@click.option("--junit", "junit_file", type=click.Path(dir_okay=False), help="Write JUnit XML here.")
@click.option("--gradescope", "gradescope_file", type=click.Path(dir_okay=False),
              help="Write Gradescope's results.json here.")
def grade(folder, level, junit_file, gradescope_file):
    """Grade a student's lecture programs (TCPServer.py, UDPServer.py, TCPClient.py, UDPClient.py):
    exit 0 full marks, 1 points lost, 2 the grader could not run."""
    from pathlib import Path
    from .grade import report as rep
    from .grade.run import grade as run_grade
    result = run_grade(Path(folder), level, progress=ui.progress)
    rep.print_report(result)
    if junit_file:
        Path(junit_file).write_text(rep.junit_xml(result))
    if gradescope_file:
        Path(gradescope_file).write_text(rep.gradescope_json(result))
    sys.exit(0 if result.score == result.max_score else 1)


@cli.command()
@click.option("--json", "as_json", is_flag=True)
def doctor(as_json):
    """Check this machine: engine, images, Compose, kernel abilities, free subnets."""
    from dataclasses import asdict
    from . import doctor as doc
    checks = doc.run_checks()
    if as_json:
        ui.print_json([asdict(c) for c in checks])
    else:
        doc.print_report(checks)
    if any(c.status == "fail" for c in checks):
        sys.exit(EXIT_ENVIRONMENT)  # what failed is this machine


from .impairments.live import heal, impair, partition  # noqa: E402  (the live network: its own module)
from .impairments.watch import watch  # noqa: E402

for _live in (impair, partition, heal, watch):
    cli.add_command(_live)


def _interrupt(signum, frame):
    raise Terminated


def main() -> None:
    # A SIGTERM (CI cancelling, `kill`) cleans up like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    cli(prog_name="lab")

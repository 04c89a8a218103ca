"""The `lab` command line. Each command is a thin layer over a module that does the work."""
from __future__ import annotations

import signal
import sys

import click
import docker.errors
from rich.markup import escape

from . import ui
from .errors import LabError


class LabGroup(click.Group):
    """Turns LabError into a one-line message with exit code 2, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except LabError as exc:
            ui.err.print(f"[bold red]lab: error:[/bold red] {escape(str(exc))}", soft_wrap=True)
            for note in getattr(exc, "__notes__", []):  # what also went wrong on the way out
                ui.err.print(f"  {escape(note)}", soft_wrap=True)
            if exc.hint:
                ui.err.print(f"  [yellow]fix:[/yellow] {escape(exc.hint)}")
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            ui.err.print("lab: interrupted")
            sys.exit(130)
        except docker.errors.DockerException as exc:  # what the engine refused, in its words
            ui.err.print(f"[bold red]lab: the Docker Engine said:[/bold red] {escape(str(exc))}", soft_wrap=True)
            sys.exit(2)


@click.group(cls=LabGroup, context_settings={"help_option_names": ["-h", "--help"]})
def cli():
    """socketlab: socket programs on real separate hosts, joined by a router."""


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
@click.option("--json", "as_json", is_flag=True, help="Print the lab's hosts as JSON.")
def up(name, clients, work_dir, server_runs, tcp_mode, as_json):
    """Bring up the class lab: router, server and clients on two networks."""
    from pathlib import Path
    from .topology import view
    from .topology.docker_lab import DockerLab
    from .topology.model import LabSpec
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    server = ("host-role", "server", "--tcp-mode", tcp_mode) if server_runs == "uppercase" else ("host-role", "idle")
    lab = DockerLab.plan(LabSpec(lab=name, clients=clients, server_command=server), Path(work_dir))
    lab.up(progress=ui.progress)
    for client in lab.topology.clients:
        lab.wait_for_output(client.name, ("demo done",), timeout=90)
    if as_json:
        ui.print_json(view.topology_dict(lab.topology))
        return
    view.print_topology(lab.topology)
    for client in lab.topology.clients:
        ui.out.rule(f"{client.name} ({client.address})")
        ui.out.print(lab.logs(client.name).rstrip(), markup=False)
    ui.out.print(f"\nNext: [bold]lab shell client1[/bold] (or any host), [bold]lab status[/bold], "
                 f"[bold]lab down {name}[/bold]")


@cli.command()
@click.argument("name", required=False, default="lab")
@click.option("--all", "everything", is_flag=True, help="Remove every socketlab container and network, of any lab.")
def down(name, everything):
    """Remove a lab's containers and networks (by label, also after a crash)."""
    from .topology.docker_lab import remove_lab
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
                ui.out.print(line, markup=False, soft_wrap=True)
        else:
            ui.out.print(f"{path}: ok ({scenario.name}: {len(scenario.steps)} steps, "
                         f"{len(scenario.expectations)} expectations)", markup=False)
    if bad:
        sys.exit(2)


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout (progress stays on stderr).")
@click.option("--junit", "junit_file", type=click.Path(dir_okay=False), help="Write JUnit XML here.")
@click.option("--keep", is_flag=True, help="Leave the lab up after the run, to explore it.")
@click.option("--seed", type=int, help="Make the run's random choices repeatable where the backend allows.")
@click.option("--runs-dir", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="Where each run's artifacts folder goes.")
@click.option("--work", "work_dir", default="work", show_default=True, type=click.Path(file_okay=False),
              help="Folder mounted as /work on every host.")
def run(files, as_json, junit_file, keep, seed, runs_dir, work_dir):
    """Run scenario files on real containers: exit 0 all passed, 1 an expectation failed, 2 bad input."""
    from pathlib import Path
    from .report.render import junit_xml, print_report
    from .runner.run import RunOptions, run_scenario
    from .scenario import ScenarioError, load_file
    scenarios, problems = [], []
    for path in files:  # every file is checked before anything starts
        try:
            scenarios.append(load_file(path))
        except ScenarioError as exc:
            problems += exc.lines
    if problems:  # FILE:LINE:COL: field: message, one per line, and nothing started
        for line in problems:
            ui.err.print(line, markup=False, soft_wrap=True)
        sys.exit(2)
    opts = RunOptions(Path(runs_dir), Path(work_dir), seed, keep, ui.progress)
    reports = []
    for scenario in scenarios:
        ui.err.rule(f"scenario {scenario.name}")
        ui.err.print(scenario.description.strip(), markup=False)
        report = run_scenario(scenario, opts)
        reports.append(report)
        if not as_json:
            print_report(report)
    if as_json:
        ui.print_json([r.as_dict() for r in reports] if len(reports) > 1 else reports[0].as_dict())
    if junit_file:
        Path(junit_file).write_text(junit_xml(reports))
    sys.exit(max(r.exit_code for r in reports))


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
        sys.exit(2)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main() -> None:
    # A SIGTERM (CI cancelling, `kill`) cleans up like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    cli(prog_name="lab")

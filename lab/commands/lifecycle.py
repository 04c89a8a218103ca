"""`lab up`, `lab down`, `lab status`, `lab exec`, `lab shell`: a class lab's life and a way in."""
from __future__ import annotations

import sys

import click

from .. import ui
from .options import LAB_OPTION


@click.command()
@click.option("--name", default="lab", show_default=True, help="Lab name; labs with different names run side by side.")
@click.option("--clients", default=1, show_default=True, type=click.IntRange(0, 100), help="Number of client hosts.")
@click.option("--work", "work_dir", default="work", show_default=True, type=click.Path(file_okay=False),
              help="Folder that is /work on every host (your own programs); on a remote engine copied in, "
                   "and back at `lab down`.")
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
@click.option("--image", "images", multiple=True, metavar="ROLE=REF",
              help="Run your own image: server=REF or clients=REF (its own command; nothing of ours inside).")
@click.option("--host", "hosts", multiple=True, metavar="NAME=NETWORK[:REF]",
              help="An extra host on clients or servers, with its own image if REF is given.")
@click.option("--json", "as_json", is_flag=True, help="Print the lab's hosts as JSON.")
def up(name, clients, work_dir, server_runs, tcp_mode, pids, memory, cpus, images, hosts, as_json):
    """Bring up the class lab: router, server and clients on two networks. It stays until `lab down`."""
    from pathlib import Path
    from ..topology import view
    from ..topology.docker_lab import DockerLab
    from ..topology.lifecycle import image_options, limits_option
    from ..programs.shared.topology import LabSpec
    own_images, extra_hosts = image_options(images, hosts)
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    server = ("host-role", "server", "--tcp-mode", tcp_mode) if server_runs == "uppercase" else ("host-role", "idle")
    # Our clients' demo talks to our uppercase server: not to a server of another image.
    client = ("host-role", "client") + (("--no-demo",) if "server" in own_images else ())
    spec = LabSpec(lab=name, clients=clients, server_command=server, client_command=client,
                   limits=limits_option(pids, memory, cpus), images=own_images, extra_hosts=extra_hosts)
    lab = DockerLab.plan(spec, Path(work_dir), ephemeral=False)
    lab.up(progress=ui.progress)
    try:  # the demos are part of bringing the lab up: Ctrl-C or a failed demo leaves nothing
        lab.wait_for_outputs({client.name: ("demo done",) for client in lab.topology.clients
                              if "--no-demo" not in client.command and not client.own_image}, timeout=90)
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


@click.command()
@click.argument("name", required=False, default="lab")
@click.option("--all", "everything", is_flag=True,
              help="Remove every lab this machine made (on a shared engine, other machines' labs stay).")
@click.option("--any-owner", is_flag=True, help="With --all: every socketlab lab in the engine, whoever made it.")
@click.option("--stale", is_flag=True, help="Only remove the labs of runs, tests and benchmarks that ended "
                                            "(every other command does this too).")
def down(name, everything, any_owner, stale):
    """Remove a lab's containers and networks (by label, also after a crash)."""
    from ..topology import lifecycle
    from ..topology.docker_lab import remove_lab, remove_machine_labs
    if any_owner and not everything:
        raise click.UsageError("--any-owner goes with --all")
    if not lifecycle.reap_and_say(ui.err) and stale:
        ui.progress("no stale labs")
    if stale:
        return
    if everything:
        n_ctr, n_net, others = remove_machine_labs(any_owner)
        if others:
            ui.progress(f"left {len(others)} lab(s) of other machines: {', '.join(others)} "
                        "(`lab down --all --any-owner` removes them too)")
    else:
        n_ctr, n_net = remove_lab(name)
    ui.progress(f"removed {n_ctr} containers and {n_net} networks")


@click.command()
@click.option("--json", "as_json", is_flag=True)
def status(as_json):
    """The labs that are up, their hosts and addresses."""
    from ..topology import view
    labs = view.running_labs()
    if as_json:
        ui.print_json(labs)
    elif not labs:
        ui.out.print("no lab is up (start one with `lab up`)")
    else:
        view.print_status(labs)


@click.command("exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@LAB_OPTION
@click.argument("host")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_(lab_name, host, command):
    """Run a command on a lab host: lab exec client1 -- tcp-client hello"""
    from ..running import RunningLab
    from ..terminal import interactive
    argv = list(command)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        raise click.UsageError("give a command after the host, e.g. lab exec client1 -- tracepath server")
    sys.exit(interactive(RunningLab.attach(lab_name).container(host), argv))


@click.command()
@LAB_OPTION
@click.argument("host")
def shell(lab_name, host):
    """Open a shell on a lab host."""
    from ..running import RunningLab
    from ..terminal import interactive
    from ..terminal import shell_argv
    container = RunningLab.attach(lab_name).container(host)
    sys.exit(interactive(container, shell_argv(container, host)))

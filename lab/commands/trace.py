"""`lab trace`: capture on a running lab's router while a command runs on a host (or for N
seconds), then show the ladder of what crossed the router, with the router's decisions.

Never changes the lab: it starts and stops capture processes on the router (through
``RunningLab.capture``) and runs the command the way `lab run` runs a step
(step-exec, with a time limit).  What the capture means is ``packets.trace``'s.

A command that fails (a non-zero exit status, its time limit, its host stopped under it) still
gets its ladder and its page, then one line saying how it ended, and exit 1: a script that
traces a command learns that the command failed.
"""
from __future__ import annotations

import os
import shlex
import sys
import time
from typing import Callable, Optional, Sequence

import click

from .. import ui
from ..programs.shared.errors import EXIT_FAILED, LabError
from .options import LAB_OPTION

SETTLE_S = 0.5      # after the command: the last ACKs and FINs still crossing the router
DEFAULT_LIMIT_S = 60.0


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@LAB_OPTION
@click.option("--seconds", type=click.FloatRange(0.1, 3600), help="Capture this long (with a command: its time limit).")
@click.option("-o", "html_file", type=click.Path(dir_okay=False), help="Write the ladder as a self-contained HTML page.")
@click.option("--text", "as_text", is_flag=True, help="Print the ladder as text (the default without -o).")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def trace(lab_name, seconds, html_file, as_text, command):
    """Capture on the router while a host runs a command, and show its packets as a ladder:
    lab trace -- client1 tcp-client hello"""
    from pathlib import Path
    from ..packets import ladder
    from ..report import html
    argv = list(command)[1:] if list(command)[:1] == ["--"] else list(command)
    result, failed = _trace(lab_name, argv, seconds, ui.progress)
    if result.output:
        ui.err.print(result.output.rstrip(), markup=False, highlight=False)
    if html_file:
        Path(html_file).write_text(html.trace_page(result.title, result.command, result.output, result.ladder,
                                                   result.analysis.fate_log()))
        ui.progress(f"wrote {html_file}")
    if as_text or not html_file:
        sys.stdout.write(ladder.text(result.ladder))
    if failed:
        sys.stdout.flush()      # the ladder first, then the line that ends it
        ui.say(ui.err, ("lab trace:", "bold red"), " ", failed)
        sys.exit(EXIT_FAILED)


def _trace(lab_name: Optional[str], argv: Sequence[str], seconds: Optional[float],
           progress: Callable[[str], None]):
    from ..packets.trace import trace_of
    from ..running import RunningLab
    if not argv and not seconds:
        raise LabError("nothing to trace: give --seconds N, or a host and a command after --",
                       hint="e.g. lab trace -- client1 tcp-client hello")
    if argv and len(argv) < 2:
        raise LabError(f"give a command after the host {argv[0]!r}", hint="e.g. lab trace -- client1 tcp-client hello")
    lab = RunningLab.attach(lab_name)
    host, command = (argv[0], shlex.join(argv[1:])) if argv else ("", "")
    if host and not lab.has_host(host):
        raise LabError(f"no host {host!r} in lab {lab.name!r}", hint="`lab status` lists the hosts")
    output, code, failed = "", None, None
    directory = f"/run/socketlab-trace-{os.getpid()}"
    with lab.capture(directory) as cap:
        if host:
            progress(f"capturing on the router while {host} runs: {command}")
            # Ctrl-C: the command ends with the trace (run() kills it)
            proc = lab.run(host, command, seconds or DEFAULT_LIMIT_S, step="trace", run_id=f"trace-{os.getpid()}")
            output, code = proc.outcome.stdout + proc.outcome.stderr, proc.outcome.exit_code
            failed = how_it_failed(host, proc.outcome, seconds or DEFAULT_LIMIT_S)
            time.sleep(SETTLE_S)        # a fixed tail for packets in flight, by design
        else:
            progress(f"capturing on the router for {seconds:g} s")
            time.sleep(seconds)         # the capture's length is what was asked for
        stopped = time.time()
    return trace_of(lab.topology, host, command, output, code, cap.pcaps, cap.ifnames, stopped), failed


def how_it_failed(host: str, outcome, limit: float) -> Optional[str]:
    """One line saying how the traced command failed, or None when it exited 0."""
    if outcome.timed_out:
        return (f"the command on {host} was stopped at its time limit of {limit:g} s "
                f"(exit status {outcome.exit_code}; --seconds sets the limit)")
    if outcome.exit_code is None:
        return f"the command on {host} ended without an exit status ({outcome.ended_by or 'host stopped'})"
    if outcome.exit_code != 0:
        return f"the command on {host} exited with status {outcome.exit_code}"
    return None

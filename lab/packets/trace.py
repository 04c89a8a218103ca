"""`lab trace`: capture on a running lab's router while a command runs on a host (or for N
seconds), then show the ladder of what crossed the router, with the router's decisions.

Never changes the lab: it starts and stops capture processes on the router (through
``capture.router_capture``) and runs the command the way `lab run` runs a step (step-exec,
with a time limit).  Which impairment made a drop is not known here (another process applied
it), so drops say "impairment in force not recorded"; the drop itself is exact.
"""
from __future__ import annotations

import os
import shlex
import time
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

from ..programs.shared.errors import LabError
from .analysis import Analysis, analyse, hosts_of, ifaces_of
from .capture import router_capture
from .ladder import Ladder

SETTLE_S = 0.5      # after the command: the last ACKs and FINs still crossing the router
DEFAULT_LIMIT_S = 60.0


@dataclass
class Trace:
    lab: str
    host: str
    command: str
    output: str
    exit_code: Optional[int]
    analysis: Analysis
    ladder: Ladder

    @property
    def title(self) -> str:
        what = f"{self.host}: {self.command}" if self.command else "traffic"
        return f"lab {self.lab}, {what}"


def trace(lab_name: Optional[str], argv: Sequence[str], seconds: Optional[float],
          progress: Callable[[str], None] = lambda m: None) -> Trace:
    from ..runner.processes import StepProcess
    from ..topology.docker_lab import attach
    if not argv and not seconds:
        raise LabError("nothing to trace: give --seconds N, or a host and a command after --",
                       hint="e.g. lab trace -- client1 tcp-client hello")
    if argv and len(argv) < 2:
        raise LabError(f"give a command after the host {argv[0]!r}", hint="e.g. lab trace -- client1 tcp-client hello")
    lab = attach(lab_name)
    host, command = (argv[0], shlex.join(argv[1:])) if argv else ("", "")
    if host:
        try:
            lab.topology.host(host)
        except KeyError:
            raise LabError(f"no host {host!r} in lab {lab.topology.lab!r}",
                           hint="`lab status` lists the hosts") from None
    output, code = "", None
    directory = f"/run/socketlab-trace-{os.getpid()}"
    with router_capture(lab, directory) as cap:
        if host:
            progress(f"capturing on the router while {host} runs: {command}")
            proc = StepProcess(lab.container(host).id, host, "trace", command, seconds or DEFAULT_LIMIT_S,
                               run_id=f"trace-{os.getpid()}")
            proc.start()
            try:
                proc.wait((seconds or DEFAULT_LIMIT_S) + 15)
            except BaseException:           # Ctrl-C: the command ends with the trace
                proc.signal("KILL")
                raise
            output, code = proc.outcome.stdout + proc.outcome.stderr, proc.outcome.exit_code
            time.sleep(SETTLE_S)        # a fixed tail for packets in flight, by design
        else:
            progress(f"capturing on the router for {seconds:g} s")
            time.sleep(seconds)         # the capture's length is what was asked for
        stopped = time.time()
    analysis = analyse(cap.pcaps, ifaces_of(lab.topology, cap.ifnames), wins=None, capture_end=stopped)
    result = Trace(lab.topology.lab, host, command, output, code, analysis, None)
    result.ladder = analysis.ladder(hosts_of(lab.topology), title=result.title)
    return result

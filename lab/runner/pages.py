"""After a run: the router's decisions (fates.json), a ladder per captured step, and the
run's page (report.html), from what the run folder already holds.

Glue only: the work is in lab.packets (pure) and lab.report.html (pure).  Nothing here can
fail a run: a page or a ladder that cannot be made is a warning, and the results stand.
"""
from __future__ import annotations

import math
import time
from typing import Dict, List, Tuple

from ..programs.shared.impairment import Change, Impairment, Link, next_state
from ..packets import analysis, ladder
from ..packets.fates import Window, windows
from ..report import html
from ..scenario import RouterStep, Scenario
from .artifacts import RunFolder, safe_name

SETTLE_S = 0.5     # a step's last packets (FIN, ACK) cross the router just after it ends


def impairment_windows(scenario: Scenario, applied: Dict[str, Tuple[float, float]], t0_epoch: float) -> List[Window]:
    """The impairments in force over the run, in epoch seconds: the scenario's t=0 state
    (put in place before the capture started), then each change when the router applied it."""
    state: Dict[Link, Impairment] = next_state({}, Change.replace_all(scenario.impairments))
    changes = [(-math.inf, -math.inf, dict(state))]
    steps = [s for s in scenario.steps if isinstance(s, RouterStep) and s.name in applied]
    for step in sorted(steps, key=lambda s: applied[s.name][0]):
        state = next_state(state, step.change)
        began, finished = applied[step.name]
        changes.append((t0_epoch + began, t0_epoch + finished, dict(state)))
    return windows(changes)


def write_pages(folder: RunFolder, scenario: Scenario, report, player, lab, router, say) -> None:
    """fates.json and ladders/ (with a capture), then report.html (always)."""
    ladders: List[Tuple[str, ladder.Ladder]] = []
    fate_log = None
    if scenario.capture and router is not None and player is not None:
        try:
            ladders, fate_log = _packets(folder, scenario, player, lab, router.ifnames)
        except Exception as exc:          # the results stand without the pictures
            say(f"warning: no ladders or fates: {type(exc).__name__}: {exc}")
    try:
        folder.write_text("report.html", html.run_report(report, folder.path, ladders, fate_log))
    except Exception as exc:
        say(f"warning: no report.html: {type(exc).__name__}: {exc}")


def _packets(folder: RunFolder, scenario: Scenario, player, lab, ifnames):
    offset = time.time() - time.monotonic()            # monotonic -> epoch, on this machine's clock
    pcaps = {p.stem: p.read_bytes() for p in sorted((folder.path / "captures").glob("*.pcap"))}
    topo = lab.topology
    wins = impairment_windows(scenario, player.applied, player.t0 + offset)
    # The capture stopped after every step had ended: packets that arrived before then had
    # time to leave (a lower bound of the capture's real end; its last packet may be earlier).
    ended = [p.ended_at for p in player.processes.values() if p.ended_at]
    capture_end = max(ended) + offset if ended else None
    result = analysis.analyse(pcaps, analysis.ifaces_of(topo, ifnames), wins, capture_end=capture_end)
    t0 = player.t0 + offset
    fate_log = result.fate_log(t0)
    folder.write_json("fates.json", fate_log)
    hosts = analysis.hosts_of(topo)
    ladders = []
    for (step, host), proc in player.processes.items():
        try:
            addresses = {str(a) for _, a in topo.host(host).addresses}
        except KeyError:
            continue
        start = proc.started_at + offset
        end = (proc.ended_at or time.monotonic()) + offset + SETTLE_S

        def keep(p, addresses=addresses, start=start, end=end):
            return start <= p.t <= end and (p.src in addresses or p.dst in addresses)
        lad = result.ladder(hosts, title=f"step {step} on {host}: {proc.command}", keep=keep, t0=start)
        if not lad.rows:
            continue
        folder.write_text(f"ladders/{safe_name(step)}-{safe_name(host)}.txt", ladder.text(lad))
        ladders.append((f"step {step} on {host}", lad))
    return ladders, fate_log

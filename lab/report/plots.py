"""Pictures of a run: each datagram's RTT over the scenario's time (udp-measure --timeline).

Pure apart from writing the PNG: the runner hands in the scenario, each step's output and
when it started. Labels hold names from scenario files: they are drawn literally
(`parse_math=False`: a `$x$` is not mathtext; control characters escaped).
matplotlib is imported only when a plot is drawn (it is slow to import),
and only its Agg canvas is used: no display, no pyplot state.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..scenario import RouterStep, Scenario
from ..ui import printable

SIZE_IN = (10, 4)
DPI = 100


def find_timeline(output: str) -> dict | None:
    """The {"send_ms": [...], "rtt_ms": [...]} of udp-measure's --timeline line, if any."""
    for line in output.splitlines():
        if line.startswith('{"timeline"'):
            try:
                data = json.loads(line)["timeline"]
            except (ValueError, KeyError, TypeError):
                continue
            if isinstance(data, dict) and len(data.get("send_ms", ())) == len(data.get("rtt_ms", ())):
                return data
    return None


def links_label(links) -> str:
    """clients->servers, servers->clients -> 'clients<->servers'."""
    pairs = {(link.src, link.dst) for link in links}
    out = []
    for src, dst in sorted(pairs):
        if (dst, src) in pairs:
            if src < dst:
                out.append(f"{src}<->{dst}")
        else:
            out.append(f"{src}->{dst}")
    return ", ".join(out)


@dataclass(frozen=True)
class ImpairmentMark:
    """A change of the router's impairments as a plot marks it: when the scenario has
    it, and when the router began and finished applying it (seconds from the scenario's
    start)."""
    at_s: float
    label: str
    applied: tuple[float, float] | None = None


def impairment_changes(scenario: Scenario, applied: dict | None = None) -> list[ImpairmentMark]:
    """The steps that change the router's impairments (impair, partition, heal); steps at
    the same time share one label. ``applied``: step name -> (began, finished), if known."""
    out: list[ImpairmentMark] = []
    for step in scenario.steps:
        if isinstance(step, RouterStep):
            change = ImpairmentMark(step.at_s, f"{step.kind} {links_label(step.impairments)}",
                                    (applied or {}).get(step.name))
            if out and out[-1].at_s == step.at_s:
                prev = out.pop()
                spans = [c.applied for c in (prev, change) if c.applied]
                change = ImpairmentMark(step.at_s, f"{prev.label}; {change.label}",
                                        (min(a for a, _ in spans), max(b for _, b in spans)) if spans else None)
            out.append(change)
    return out


def plot_timeline(path: Path, title: str, timeline: dict, start_s: float, changes: list[ImpairmentMark]) -> Path:
    """Draw RTT against time since the scenario's start (the step started at start_s),
    lost datagrams as red ticks in a strip below 0 ms, impairment changes as dashed lines
    (with a shaded span while the router applied them)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    sent = [start_s + ms / 1000 for ms in timeline["send_ms"]]
    got = [(t, rtt) for t, rtt in zip(sent, timeline["rtt_ms"]) if rtt is not None]
    lost = [t for t, rtt in zip(sent, timeline["rtt_ms"]) if rtt is None]

    fig = Figure(figsize=SIZE_IN, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.scatter([t for t, _ in got], [rtt for _, rtt in got], s=4, color="tab:blue", linewidths=0,
               label=f"RTT of the first reply ({len(got)} of {len(sent)})")
    top = max((rtt for _, rtt in got), default=1.0) * 1.05 or 1.0
    strip = top * 0.07  # the lost ones, below 0 ms: apart from the smallest RTTs
    ax.set_ylim(-strip, top)
    ax.axhline(0, color="0.6", linewidth=0.8)
    ax.scatter(lost, [-strip / 2] * len(lost), marker="|", s=50, color="tab:red",
               label=f"lost, no reply ({len(lost)})")
    label_box = {"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8}
    for change in changes:
        ax.axvline(change.at_s, color="0.35", linestyle="--", linewidth=1, label="impairment change (scheduled)")
        if change.applied:
            ax.axvspan(*change.applied, color="0.5", alpha=0.15, linewidth=0, label="router applying the change")
        ax.annotate(printable(change.label), (change.at_s, 1), parse_math=False, xycoords=ax.get_xaxis_transform(), xytext=(3, -3),
                    textcoords="offset points", rotation=90, ha="left", va="top", fontsize=8,
                    color="0.25", bbox=label_box)
    times = sent + [c.applied[1] if c.applied else c.at_s for c in changes]
    ax.set_xlim(0, max(times, default=1) * 1.02 or 1)
    ax.set_xlabel("time since the scenario's start (s)")
    ax.set_ylabel("round-trip time (ms)")
    ax.set_title(printable(title), parse_math=False)
    ax.grid(True, alpha=0.3)
    legend = dict(zip(*reversed(ax.get_legend_handles_labels())))  # label -> handle, once each
    ax.legend(legend.values(), legend.keys(), loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8,
              markerscale=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path

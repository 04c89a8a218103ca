"""`lab watch`: what the router does to each link, live, from its own counters.

Every second the router's agent reads its counters; ``impairments.watch.Totals`` turns
the readings into counts since the watch began and a rate over the last interval.
Ctrl-C ends it.

    lab watch [--lab NAME]          a table, redrawn every second
    lab watch --json                one JSON line per second: {"time", "lab", "links": [...]}
"""
from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone

import click

from ..impairments.watch import Totals
from ..running import RunningLab
from .options import LAB_OPTION


def _rate(bps: float) -> str:
    for unit, size in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bps >= size:
            return f"{bps / size:.2f} {unit}"
    return f"{bps:.0f} bit/s"


def table(lab: str, totals: Totals, backends: dict):
    from rich.table import Table
    t = Table(title=f"lab {lab}: the router's counters since the watch began (Ctrl-C ends)",
              title_justify="left")
    for col in ("link", "forwarded", "bytes", "rate", "lost", "cut", "queue drops", "impairer queue drops",
                "duplicated", "delayed", "reordered", "corrupted", "impairments"):
        t.add_column(col, justify="left" if col in ("link", "impairments") else "right")
    for row in totals.rows():
        kinds = backends.get(row["link"], {})
        t.add_row(row["link"], str(row["forwarded_packets"]), str(row["forwarded_bytes"]),
                  _rate(row["rate_bps"]), str(row["dropped_loss"]), str(row["dropped_partition"]),
                  str(row["dropped_queue"]), str(row["dropped_engine_queue"]), str(row["duplicated"]), str(row["delayed"]),
                  str(row["reordered"]), str(row["corrupted"]),
                  ", ".join(f"{k.replace('_', ' ')} ({b})" for k, b in kinds.items()) or "none")
    return t


def watch_loop(lab: str, running: RunningLab, as_json: bool, interval: float = 1.0) -> None:
    totals = Totals()
    next_at = time.monotonic()

    def reading() -> dict:
        data = running.counters()
        totals.add(data)
        return data

    if as_json:
        while True:
            data = reading()
            line = {"time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                    "lab": lab, "links": totals.rows(), "backends": data.get("backends", {})}
            sys.stdout.write(json.dumps(line, sort_keys=True) + "\n")
            sys.stdout.flush()
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))  # the refresh period
    from rich.live import Live
    from .. import ui
    data = reading()
    with Live(table(lab, totals, data.get("backends", {})), console=ui.out, auto_refresh=False) as live:
        while True:
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))  # the refresh period
            data = reading()
            live.update(table(lab, totals, data.get("backends", {})), refresh=True)


@click.command()
@LAB_OPTION
@click.option("--json", "as_json", is_flag=True, help="One JSON line per second instead of a table.")
def watch(lab_name, as_json):
    """Live counters per link and direction: forwarded, dropped, duplicated, delayed, rate."""
    lab = RunningLab.attach(lab_name)
    try:
        watch_loop(lab.name, lab, as_json)
    except KeyboardInterrupt:
        pass

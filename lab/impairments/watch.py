"""What `lab watch` counts (lab/commands/watch.py shows it): the router's counters per
link, from successive readings, as counts since the watch began and a rate over the
last interval.

The router's agent reads its counters (``lab/programs/router_counters.py``: nftables
rule counters, ``tc -s``, the impairer's stats).  A counter that went down (its rule or
impairer was replaced by a change) counts from zero again, so totals never go backwards.
"""
from __future__ import annotations

from typing import Dict, Optional

from ..programs.router_counters import FIELDS, row_growth


class Totals:
    """Counts since the first reading, from readings of counters that may restart at zero."""

    def __init__(self):
        self.previous: Optional[dict] = None
        self.totals: Dict[str, Dict[str, int]] = {}
        self.rate_bps: Dict[str, float] = {}

    def add(self, reading: dict) -> None:
        links = reading["links"]
        if self.previous is None:
            self.totals = {link: dict.fromkeys(FIELDS, 0) for link in links}
            self.rate_bps = dict.fromkeys(links, 0.0)
        else:
            elapsed = max(reading["time"] - self.previous["time"], 1e-6)
            for link, row in links.items():
                before = self.previous["links"].get(link, {})
                total = self.totals.setdefault(link, dict.fromkeys(FIELDS, 0))
                deltas = row_growth({name: row.get(name, 0) for name in FIELDS}, before)
                for name in FIELDS:
                    total[name] += deltas[name]
                self.rate_bps[link] = deltas["forwarded_bytes"] * 8 / elapsed
        self.previous = reading

    def rows(self) -> list:
        return [{"link": link, **counts, "rate_bps": round(self.rate_bps.get(link, 0.0), 1)}
                for link, counts in sorted(self.totals.items())]

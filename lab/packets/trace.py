"""What `lab trace` shows: one command's (or N seconds') capture on the router, read as a
ladder with the router's decisions.

Driving the lab (capturing, running the command) is the command's (lab/commands/trace.py);
this module only reads what was captured.  Which impairment made a drop is not known here
(another process applied it), so drops say "impairment in force not recorded"; the drop
itself is exact.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

from .analysis import Analysis, analyse, hosts_of, ifaces_of
from .ladder import Ladder


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


def trace_of(topology, host: str, command: str, output: str, exit_code: Optional[int],
             pcaps: Dict[str, bytes], ifnames: Dict[str, str], capture_end: float) -> Trace:
    """The trace of a capture on the router of ``topology`` (interface -> pcap bytes,
    network -> the router's interface on it) that ended at ``capture_end``."""
    analysis = analyse(pcaps, ifaces_of(topology, ifnames), wins=None, capture_end=capture_end)
    result = Trace(topology.lab, host, command, output, exit_code, analysis, None)
    result.ladder = analysis.ladder(hosts_of(topology), title=result.title)
    return result

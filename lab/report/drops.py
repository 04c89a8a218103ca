"""Where a run's packets were dropped, so that no loss goes unexplained.

`lab run` reads two sets of counters before the steps play and again after they
end: the router's (per directed link: what the impairments dropped, duplicated or
corrupted, what a full tc queue dropped, what the kernel dropped in front of the userspace
impairer) and each host's own kernel counters (`/proc/net/snmp`: a full receive or send
buffer, bad checksums, datagrams to a port with no socket, IPv4 reassembly failures, TCP's
retransmissions). The
report shows the differences that are not zero. A datagram udp-measure counts as lost is
then either in one of these rows or, if it is in none, plainly unexplained.

Pure: parsing and subtracting. The runner does the reading (`runner/run.py`).
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Tuple

from ..programs.router_counters import row_growth

# The router's counters (router_counters.FIELDS) that say a packet was changed or lost.
ROUTER_FIELDS = {
    "dropped_loss": "dropped by the loss impairment",
    "dropped_partition": "dropped by a partition",
    "dropped_queue": "dropped by a full queue (tc)",
    "dropped_engine_queue": "dropped in front of the impairer (its kernel queue or socket was full)",
    "duplicated": "duplicated",
    "corrupted": "corrupted",
}
# A host's kernel counters (protocol, name in /proc/net/snmp) worth a row when they move.
# Ip ReasmFails: a receiver holds an incomplete datagram's fragments for 30 s (ipfrag_time)
# in 4 MiB at most (ipfrag_high_thresh, per host); full, it drops every fragment that comes,
# of complete datagrams too. It also counts each datagram given up after the 30 s.
HOST_FIELDS = {
    ("Udp", "RcvbufErrors"): "UDP datagrams dropped: receive buffer full",
    ("Udp", "SndbufErrors"): "UDP datagrams dropped: send buffer full",
    ("Udp", "InCsumErrors"): "UDP datagrams dropped: bad checksum",
    ("Udp", "NoPorts"): "UDP datagrams to a port with no socket",
    ("Ip", "ReasmFails"): "IPv4 reassembly failures: fragments dropped (its memory full) or datagrams given up",
    ("Tcp", "RetransSegs"): "TCP segments retransmitted",
}

SnmpCounters = Dict[str, int]          # "Udp.RcvbufErrors" -> count


def parse_snmp(text: str) -> SnmpCounters:
    """/proc/net/snmp (pairs of lines: names, then values) -> {"Proto.Name": value}."""
    counters: SnmpCounters = {}
    lines = [line.split() for line in text.splitlines() if ":" in line]
    for names, values in zip(lines[::2], lines[1::2]):
        if not names or names[0] != values[0]:
            continue
        proto = names[0].rstrip(":")
        for name, value in zip(names[1:], values[1:]):
            try:
                counters[f"{proto}.{name}"] = int(value)
            except ValueError:
                continue
    return counters


def host_deltas(before: Mapping[str, SnmpCounters], after: Mapping[str, SnmpCounters]) -> Dict[str, Dict[str, int]]:
    """host -> {"Udp.RcvbufErrors": n, ...}: the HOST_FIELDS that grew (hosts read both times)."""
    out = {}
    for host in sorted(set(before) & set(after)):
        grew = {}
        for proto, name in HOST_FIELDS:
            key = f"{proto}.{name}"
            delta = after[host].get(key, 0) - before[host].get(key, 0)
            if delta > 0:
                grew[key] = delta
        if grew:
            out[host] = grew
    return out


def router_deltas(before: Mapping[str, Mapping[str, int]], after: Mapping[str, Mapping[str, int]]) -> Dict[str, Dict[str, int]]:
    """link -> {field: n}: the ROUTER_FIELDS that grew (a restarted counter counts from zero)."""
    out = {}
    for link in sorted(after):
        growth = row_growth(dict(after[link]), dict(before.get(link, {})))
        grew = {field: growth[field] for field in ROUTER_FIELDS if growth.get(field, 0) > 0}
        if grew:
            out[link] = grew
    return out


def describe(drops: Mapping) -> List[Tuple[str, str, int]]:
    """(where, what, count) rows for people: the router's links first, then the hosts."""
    rows = []
    for link, fields in sorted((drops.get("router") or {}).items()):
        rows += [(f"router {link}", ROUTER_FIELDS.get(f, f), n) for f, n in fields.items()]
    names = {f"{p}.{n}": text for (p, n), text in HOST_FIELDS.items()}
    for host, fields in sorted((drops.get("hosts") or {}).items()):
        rows += [(host, names.get(f, f), n) for f, n in fields.items()]
    return rows

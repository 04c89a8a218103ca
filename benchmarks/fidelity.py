"""Impairment fidelity: what each backend is configured to do vs what a client observes.

    .venv/bin/python benchmarks/fidelity.py [--json] [--quick] [--backends auto,fallback] [--kinds K,...]

Brings up its own lab (client1 -> router -> server, named ``bench-fid-<pid>``), measures
the unimpaired RTT first, then applies one impairment at a time on clients -> servers
(one way, so the numbers are simple) and measures it from client1 with the lab's own
programs (udp-measure, tcp-measure).  Progress goes to stderr; the table (or JSON) to
stdout.  Everything is removed at the end, also on Ctrl-C, SIGTERM and errors (the lab
and the router's impairments are context managers).

Counts are checked with exact binomial acceptance intervals at 99 % (lab.scenario.stats),
times with tolerances derived from the baseline's own spread, TCP goodput against the
payload share of the configured rate.  The impairer runs unseeded, so every run is a fresh
sample.  There are seven binomial checks: one of them falls outside its interval by
chance in about one run in fifteen, so run again before blaming a backend.

Backends: on a kernel with netem the cases run twice, with the kernel's best backends
(netem) and with the fallbacks (SOCKETLAB_BACKEND=fallback: nftables, the NFQUEUE
impairer), and the table shows each case's rows side by side.  Reorder and corrupt are
measured from the client's view (plus the impairer's own counts when it does the work).
A case that fails to measure is a row saying why, and the exit status is 1; a number
outside its acceptance range is a row marked ✗ (chance, see above), exit status 0.
"""
from __future__ import annotations

import argparse
import io
import json
import math
import os
import signal
import socket
import struct
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import docker.errors
import dpkt
from rich import box
from rich.table import Table

from lab import ui
from lab.programs.shared.errors import LabError
from lab.programs.impairer_streams import CUT_PIECE
from lab.programs.shared.backends import UnsupportedImpairment
from lab.programs.shared.impairment import BACKEND_ENV, Impairment, Link
from lab.impairments.router import RouterImpairments
from lab.running import RunningLab
from lab.scenario.stats import acceptance_interval, clopper_pearson
from lab.programs.shared.topology import LabSpec

LINK = Link("clients", "servers")
CLIENT = "client1"
CONFIDENCE = 0.99
IMPAIRER_GRANULARITY_MS = 1.0   # the impairer releases a held packet up to 1 ms late
TCP_PAYLOAD_SHARE = 1448 / 1514   # TCP payload per full Ethernet frame, which htb counts
UDP_WAIT_S = 1.0              # how long udp-measure waits for late replies
GSO_MAX_BYTES = 65536         # the biggest packet TCP hands the router (GSO)


@dataclass
class Row:
    """One line of the table; ``data`` holds the numbers behind it, for --json."""

    kind: str
    backend: str
    configured: str
    observed: str
    accepted: str
    ok: Optional[bool]
    samples: str
    data: dict = field(default_factory=dict)
    mode: str = "auto"     # SOCKETLAB_BACKEND for this row: auto (kernel's best) or fallback
    error: str = ""        # why the case could not be measured


@dataclass
class Bench:
    """What a measurement needs: the lab, its router, the mode, and the baseline RTT."""

    lab: RunningLab
    router: RouterImpairments
    quick: bool
    baseline_rtt: Optional[dict] = None


@dataclass(frozen=True)
class Case:
    """One measurement: an impairment on LINK (None: none) and how to measure it.

    ``samples`` is (full, quick) datagrams for UDP cases; ``seconds`` is (full, quick)
    seconds of transfer at the configured rate for TCP cases; ``pps`` is udp-measure's
    sending rate."""

    kind: str
    impairment: Optional[Impairment]
    measure: Callable[[Bench, "Case"], Row]
    samples: tuple = (0, 0)
    seconds: tuple = (0.0, 0.0)
    pps: int = 5000

    def amount(self, quick: bool):
        values = self.seconds if self.seconds[0] else self.samples
        return values[1] if quick else values[0]


# --- running the lab's programs on client1 -------------------------------------------


class BenchError(LabError):
    """A measuring program failed: no number to report."""


def run_program(bench: Bench, argv: list) -> dict:
    result = bench.lab.exec(CLIENT, argv)
    lines = result.stdout.strip().splitlines()
    try:
        data = json.loads(lines[-1])
    except (IndexError, ValueError):
        raise BenchError(f"{argv[0]} printed no JSON (exit {result.exit_code}): "
                         f"{(result.stderr or result.stdout).strip()[:300]}") from None
    if data.get("error"):
        raise BenchError(f"{argv[0]} failed: {data['error']}: {data.get('message')}")
    return data


def udp_measure(bench: Bench, count: int, pps: int, wait: float = UDP_WAIT_S) -> dict:
    result = run_program(bench, ["udp-measure", "--host", "server", "--count", str(count),
                                 "--rate", str(pps), "--wait", f"{wait:g}"])
    if result["sent"] != count:
        raise BenchError(f"udp-measure sent {result['sent']} of {count} datagrams")
    bench.router.check_alive()  # a dead impairer passes packets unimpaired (fail-open)
    return result


def tcp_measure(bench: Bench, nbytes: int, timeout: float) -> dict:
    result = run_program(bench, ["tcp-measure", "--host", "server", "--bytes", str(nbytes),
                                 "--timeout", f"{timeout:g}"])
    if not result["sha256_match"]:
        raise BenchError(f"tcp-measure: the stream arrived damaged: {result}")
    return result


def server_udp_counters(bench: Bench) -> dict:
    """The server's UDP counters (its own network namespace's /proc/net/snmp)."""
    text = bench.lab.exec("server", ["cat", "/proc/net/snmp"]).stdout
    names, values = [line.split()[1:] for line in text.splitlines() if line.startswith("Udp:")]
    return dict(zip(names, map(int, values)))


# --- formatting ------------------------------------------------------------------------


def pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def pct_range(lo: float, hi: float) -> str:
    return f"{100 * lo:.2f}..{100 * hi:.2f} %"


def ms(x: float) -> str:
    return f"{x:.1f} ms"


def describe(imp: Optional[Impairment]) -> str:
    """The configured impairment as a short text."""
    if imp is None:
        return "none"
    parts = []
    if imp.loss:
        parts.append(f"{imp.loss:g} %")
    if imp.delay_ms and not imp.reorder:
        jitter = f" ± {imp.jitter_ms:g} ms" if imp.jitter_ms else ""
        parts.append(f"{imp.delay_ms:g} ms{jitter}")
    if imp.duplicate:
        parts.append(f"{imp.duplicate:g} %")
    if imp.reorder:
        parts.append(f"{imp.reorder:g} %, delay {imp.delay_ms:g} ms")
    if imp.corrupt:
        parts.append(f"{imp.corrupt:g} %")
    if imp.rate_kbit:
        parts.append(f"{imp.rate_kbit / 1000:g} Mbit/s")
    if imp.segment:
        parts.append(f"{imp.segment} B, gap {imp.gap_ms or 0:g} ms")
    for size in (imp.reset_after, imp.blackhole_after):
        if size:
            parts.append(f"{size:,} B")
    if imp.mtu:
        parts.append(f"{imp.mtu} B")
    return ", ".join(parts)


def row(bench: Bench, case: Case, **fields) -> Row:
    """A Row for ``case`` with the backend(s) the router chose for it."""
    backends = bench.router.backends.get(str(LINK), {})
    return Row(kind=case.kind, backend=", ".join(sorted(set(backends.values()))) or "-",
               configured=describe(case.impairment), **fields)


def binomial_check(count: int, n: int, p: float) -> tuple:
    """(lo, hi, ok): the counts an exact two-sided binomial test at CONFIDENCE accepts
    for Binomial(n, p), and whether ``count`` is one of them."""
    lo, hi = acceptance_interval(n, p, CONFIDENCE)
    return lo, hi, lo <= count <= hi


# --- the measurements ----------------------------------------------------------------


def measure_baseline(bench: Bench, case: Case) -> Row:
    result = udp_measure(bench, case.amount(bench.quick), case.pps)
    rtt = bench.baseline_rtt = result["rtt_ms"]
    return row(bench, case, observed=f"RTT p50 {rtt['p50']:.3f}, mean {rtt['avg']:.3f}, "
                                     f"p99 {rtt['p99']:.3f} ms",
               accepted="(subtracted from delays)", ok=None,
               samples=f"{result['received']:,} RTTs", data={"result": result})


def measure_loss(bench: Bench, case: Case) -> Row:
    """Requests only cross clients -> servers: each comes back with chance 1 - p."""
    p = case.impairment.loss / 100
    result = udp_measure(bench, case.amount(bench.quick), case.pps)
    n, back = result["sent"], result["received"]
    lo, hi, ok = binomial_check(back, n, 1 - p)
    loss_lo, loss_hi = clopper_pearson(n - back, n, CONFIDENCE)
    return row(bench, case, observed=f"{pct((n - back) / n)} lost",
               accepted=f"{pct_range((n - hi) / n, (n - lo) / n)} lost", ok=ok,
               samples=f"{n:,} UDP",
               data={"configured_loss": p, "observed_loss": (n - back) / n,
                     "accept_received": [lo, hi],
                     "observed_loss_interval": [loss_lo, loss_hi], "result": result})


def added_rtt(bench: Bench, rtt: dict) -> dict:
    base = bench.baseline_rtt
    if base is None:
        raise BenchError("the baseline RTT must be measured before delay or jitter")
    return {"p50": rtt["p50"] - base["p50"], "mean": rtt["avg"] - base["avg"]}


def timing_tolerance(bench: Bench) -> float:
    """How far a median may stray: the unimpaired path's own spread (p99 - p50) plus
    the impairer's granularity."""
    base = bench.baseline_rtt
    return (base["p99"] - base["p50"]) + IMPAIRER_GRANULARITY_MS


def measure_delay(bench: Bench, case: Case) -> Row:
    """Added RTT = RTT - baseline RTT.  The median must be within timing_tolerance of
    the delay, and nothing may come back early."""
    delay = case.impairment.delay_ms
    result = udp_measure(bench, case.amount(bench.quick), case.pps, UDP_WAIT_S + delay / 1000)
    rtt = result["rtt_ms"]
    added = added_rtt(bench, rtt)
    tolerance = timing_tolerance(bench)
    ok = abs(added["p50"] - delay) <= tolerance and rtt["min"] >= delay
    return row(bench, case,
               observed=f"+{added['p50']:.1f} p50, +{added['mean']:.1f} mean, min {ms(rtt['min'])}",
               accepted=f"p50 +{delay:g} ± {tolerance:.1f} ms, min ≥ {delay:g} ms",
               ok=ok, samples=f"{result['received']:,} RTTs",
               data={"configured_ms": delay, "added_ms": added, "tolerance_ms": tolerance,
                     "result": result})


def measure_jitter(bench: Bench, case: Case) -> Row:
    """Delay d ± j, uniform.  Spread = p99 - min RTT: for a uniform of width 2j that is
    0.99 x 2j (the max is shown, not checked: one scheduling hiccup sets it).  It may
    exceed that by the path's own spread and the impairer's granularity, and fall short by
    the sampling error of the extremes (under 0.5 ms for a thousand samples).  Nothing
    may come back before d - j, and the median must sit at d."""
    delay, jitter = case.impairment.delay_ms, case.impairment.jitter_ms
    result = udp_measure(bench, case.amount(bench.quick), case.pps,
                         UDP_WAIT_S + (delay + jitter) / 1000)
    rtt = result["rtt_ms"]
    added = added_rtt(bench, rtt)
    tolerance = timing_tolerance(bench)
    p50_tolerance = tolerance + 4 * jitter / math.sqrt(result["received"])
    spread, expected = rtt["p99"] - rtt["min"], 0.99 * 2 * jitter
    spread_range = (expected - 0.5, expected + tolerance)
    ok = (spread_range[0] <= spread <= spread_range[1] and rtt["min"] >= delay - jitter
          and abs(added["p50"] - delay) <= p50_tolerance)
    return row(bench, case,
               observed=f"spread {ms(spread)} ({rtt['min']:.1f}..{rtt['p99']:.1f}; "
                        f"max {rtt['max']:.1f}), p50 +{added['p50']:.1f}",
               accepted=f"spread {spread_range[0]:.1f}..{spread_range[1]:.1f}, "
                        f"min ≥ {delay - jitter:g}, p50 +{delay:g} ± {p50_tolerance:.1f}",
               ok=ok, samples=f"{result['received']:,} RTTs",
               data={"configured_ms": delay, "configured_jitter_ms": jitter,
                     "spread_p99_minus_min_ms": spread, "expected_spread_ms": expected,
                     "accept_spread_ms": list(spread_range), "added_ms": added,
                     "p50_tolerance_ms": p50_tolerance, "result": result})


def measure_duplicate(bench: Bench, case: Case) -> Row:
    """Each request that reaches the server is copied with chance p; both are echoed."""
    p = case.impairment.duplicate / 100
    result = udp_measure(bench, case.amount(bench.quick), case.pps)
    n, dup = result["received"], result["duplicated"]
    lo, hi, ok = binomial_check(dup, n, p)
    return row(bench, case, observed=f"{pct(dup / n)} duplicated",
               accepted=f"{pct_range(lo / n, hi / n)}", ok=ok, samples=f"{n:,} UDP",
               data={"configured": p, "observed": dup / n, "accept_duplicated": [lo, hi],
                     "result": result})


def impairer_queue(bench: Bench) -> Optional[str]:
    """The impairer's queue number for LINK, as its stats name it; None when the impairer
    does not handle LINK (netem does the work)."""
    queue = bench.router.impairer_queues.get(str(LINK))
    return None if queue is None else str(queue)


def measure_reorder(bench: Bench, case: Case) -> Row:
    """netem semantics: a share r goes at once, the rest wait ``delay``.  udp-measure
    counts a datagram reordered when a later one arrived first, i.e. a delayed datagram
    with at least one of its k followers (those sent within the delay) sent at once:
    a share (1 - r)(1 - (1 - r)^k).  The impairer's own count of packets it sent at once
    is the direct view of r; both must be in their intervals."""
    r, delay = case.impairment.reorder / 100, case.impairment.delay_ms
    queue = impairer_queue(bench)
    before = bench.router.impairer_stats()["queues"][queue] if queue else None
    result = udp_measure(bench, case.amount(bench.quick), case.pps, UDP_WAIT_S + delay / 1000)
    n, reordered = result["sent"], result["reordered"]
    k = math.ceil(delay / 1000 * min(case.pps, result["send_rate_pps"])) - 1  # as really sent
    expected = (1 - r) * (1 - (1 - r) ** k)
    lo, hi, udp_ok = binomial_check(reordered, n, expected)
    observed, accepted = f"{pct(reordered / n)} reordered", f"{pct_range(lo / n, hi / n)} (model {pct(expected)}"
    at_once = seen = e_lo = e_hi = None
    engine_ok = True
    if queue:  # the impairer's own view: the share it sent at once is r
        after = bench.router.impairer_stats()["queues"][queue]
        at_once, seen = after["reordered"] - before["reordered"], after["seen"] - before["seen"]
        e_lo, e_hi, engine_ok = binomial_check(at_once, seen, r)
        observed += f" (impairer: {pct(at_once / seen)} sent at once)"
        accepted += f"; impairer {pct_range(e_lo / seen, e_hi / seen)}"
    return row(bench, case, observed=observed, accepted=accepted + ")",
               ok=udp_ok and engine_ok, samples=f"{n:,} UDP",
               data={"configured": r, "delay_ms": delay, "followers_k": k,
                     "expected_reordered": expected, "observed_reordered": reordered / n,
                     "accept_reordered": [lo, hi], "engine_sent_at_once": at_once,
                     "engine_seen": seen, "accept_engine_at_once": [e_lo, e_hi],
                     "result": result})


def measure_corrupt(bench: Bench, case: Case) -> Row:
    """The impairer flips one bit after the IP header and leaves the checksum, as netem
    does: the server's UDP layer drops the datagram (a checksum error, or a bad length
    field), so corruption shows as loss to udp-measure and nothing damaged reaches the
    application.  The server's UDP InErrors counter shows where they went."""
    p = case.impairment.corrupt / 100
    queue = impairer_queue(bench)

    def engine_counts() -> dict:
        return bench.router.impairer_stats()["queues"][queue] if queue else {"corrupted": 0, "seen": 0}

    before, engine_before = server_udp_counters(bench), engine_counts()
    result = udp_measure(bench, case.amount(bench.quick), case.pps)
    after, engine_after = server_udp_counters(bench), engine_counts()
    n, back = result["sent"], result["received"]
    errors = after["InErrors"] - before["InErrors"]
    checksum_errors = after["InCsumErrors"] - before["InCsumErrors"]
    lo, hi, ok = binomial_check(back, n, 1 - p)
    return row(bench, case,
               observed=f"{pct((n - back) / n)} lost ({errors:,} UDP errors at the server, "
                        f"{checksum_errors:,} checksum), {result['corrupted']} damaged",
               accepted=f"{pct_range((n - hi) / n, (n - lo) / n)} lost, 0 damaged",
               ok=ok and result["corrupted"] == 0, samples=f"{n:,} UDP",
               data={"configured": p, "observed_loss": (n - back) / n,
                     "accept_received": [lo, hi], "server_udp_errors": errors,
                     "server_checksum_errors": checksum_errors,
                     "engine_corrupted": (engine_after["corrupted"] - engine_before["corrupted"]) if queue else None,
                     "engine_seen": (engine_after["seen"] - engine_before["seen"]) if queue else None,
                     "result": result})


def measure_rate(bench: Bench, case: Case) -> Row:
    """TCP goodput through htb.  htb counts whole frames, so the ceiling is the rate
    times the payload share of a full frame (1448 of 1514 bytes).  htb charges a
    packet's tokens after sending it, and TCP hands the router GSO packets of up to
    64 KiB, so the last one can leave that much early: the upper bound allows it.
    The lower bound is 90 % of the ceiling."""
    rate_mbit = case.impairment.rate_kbit / 1000
    seconds = case.amount(bench.quick)
    nbytes = int(rate_mbit * 1e6 / 8 * seconds)
    result = tcp_measure(bench, nbytes, timeout=10 * seconds + 10)
    goodput = result["goodput_mbps"]
    ceiling = rate_mbit * TCP_PAYLOAD_SHARE
    low = 0.90 * ceiling
    high = ceiling * nbytes / (nbytes - GSO_MAX_BYTES)
    return row(bench, case,
               observed=f"{goodput:.2f} Mbit/s ({100 * goodput / rate_mbit:.1f} %)",
               accepted=f"{low:.2f}..{high:.2f} Mbit/s",
               ok=low <= goodput <= high, samples=f"{nbytes / 1e6:.2g} MB TCP",
               data={"configured_mbps": rate_mbit, "goodput_mbps": goodput,
                     "ceiling_mbps": ceiling, "accept_mbps": [low, high], "result": result})


# --- what is measured --------------------------------------------------------------------

# --- the stream faults and mtu: judged on the router's own capture -----------------------
#
# These kinds are the impairer's (and the kernel's routing) on every kernel, so the rows of
# both modes measure the same mechanism.  What left the router is read from the pcap of its
# interface on the servers' side (OUT: the router forwarded or made it); everything but the
# gaps' upper bound is exact, so the rows are deterministic on a busy or emulated machine.

STREAM_BYTES = (3_000, 1_000)       # tcp-measure bytes for segment (full, quick)
CUT_BYTES = (100_000, 30_000)       # a transfer past reset_after/blackhole_after's SIZE
CUT_SIZE = 10_240
MTU_DATAGRAMS = (200, 50)
MTU_DATAGRAM_BYTES = 4000


def _ipv4(pcap: bytes):
    """(time, IPv4 header fields, the L4 bytes) of every IPv4 packet of one interface's pcap."""
    for ts, frame in dpkt.pcap.Reader(io.BytesIO(pcap)):
        if len(frame) < 34 or frame[12:14] != b"\x08\x00":
            continue
        ip = frame[14:]
        ihl, total = (ip[0] & 15) * 4, struct.unpack("!H", ip[2:4])[0]
        ident, frag = struct.unpack("!HH", ip[4:8])
        yield float(ts), {"len": total, "id": ident, "mf": bool(frag & 0x2000), "off": (frag & 0x1FFF) * 8,
                          "proto": ip[9], "src": socket.inet_ntoa(ip[12:16]),
                          "dst": socket.inet_ntoa(ip[16:20])}, ip[ihl:total]


def _tcp(l4: bytes) -> dict:
    sport, dport, seq, ack, off_flags = struct.unpack("!HHIIH", l4[:14])
    head = (off_flags >> 12) * 4
    return {"sport": sport, "dport": dport, "seq": seq, "ack": ack, "flags": off_flags & 0x3F,
            "payload": len(l4) - head}


SYN, RST_FLAG = 0x02, 0x04


def _captured(bench: Bench, argv: list) -> tuple:
    """Run ``argv`` on client1 while the router captures: (its JSON, pcap of the servers'
    side, pcap of the clients' side, client1's address)."""
    with bench.lab.capture() as cap:
        result = bench.lab.exec(CLIENT, argv)
    ifnames = cap.ifnames
    client = bench.lab.exec(CLIENT, ["hostname", "-I"]).stdout.split()[0]
    lines = result.stdout.strip().splitlines()
    data = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    return data, cap.pcaps.get(ifnames["servers"], b""), cap.pcaps.get(ifnames["clients"], b""), client


def _to_server_tcp(pcap: bytes, client: str) -> list:
    """(time, tcp fields) of the TCP packets from client1 that left toward the server."""
    return [(t, _tcp(l4)) for t, ip, l4 in _ipv4(pcap) if ip["proto"] == 6 and ip["src"] == client]


def measure_segment(bench: Bench, case: Case) -> Row:
    imp = case.impairment
    nbytes = case.amount(bench.quick)
    _data, servers, _clients, client = _captured(
        bench, ["tcp-measure", "--host", "server", "--bytes", str(nbytes), "--timeout", "60"])
    pieces = [(t, p) for t, p in _to_server_tcp(servers, client) if p["payload"]]
    if not pieces:
        raise BenchError("no TCP payload from client1 left the router toward the server")
    sizes = [p["payload"] for _t, p in pieces]
    gap = imp.gap_ms
    t0 = pieces[0][0]
    early = [i for i, (t, _p) in enumerate(pieces) if (t - t0) * 1000 < i * gap - IMPAIRER_GRANULARITY_MS]
    gaps = sorted((b[0] - a[0]) * 1000 for a, b in zip(pieces, pieces[1:]))
    median = gaps[len(gaps) // 2] if gaps else 0.0
    tolerance = timing_tolerance(bench)
    ok = max(sizes) <= imp.segment and not early and abs(median - gap) <= tolerance
    return row(bench, case, observed=f"{len(pieces)} pieces, largest {max(sizes)} B; gap p50 {median:.1f} ms, "
                                     f"{len(early)} early",
               accepted=f"≤ {imp.segment} B, none early, p50 {gap:g} ± {tolerance:.1f} ms",
               ok=ok, samples=f"{nbytes:,} B stream (pcap)",
               data={"sizes": sizes, "gaps_ms": gaps, "early": early})


def _cut(bench: Bench, case: Case) -> tuple:
    """A transfer past SIZE: (payload bytes that left toward the server, their packets on
    the servers' side, packets on the clients' side, client1's address, tcp-measure's JSON)."""
    nbytes = case.amount(bench.quick)
    data, servers, clients, client = _captured(
        bench, ["tcp-measure", "--host", "server", "--bytes", str(nbytes), "--timeout", "5"])
    out = _to_server_tcp(servers, client)
    syns = [p for _t, p in out if p["flags"] & SYN]
    if not syns:
        raise BenchError("the connection's SYN did not leave the router")
    start = syns[0]["seq"] + 1
    delivered = max(((p["seq"] - start) % 2**32 + p["payload"] for _t, p in out
                     if p["payload"] and p["seq"] != syns[0]["seq"]), default=0)
    return delivered, out, clients, client, data


def measure_reset_after(bench: Bench, case: Case) -> Row:
    size = case.impairment.reset_after
    delivered, out, clients, client, data = _cut(bench, case)
    to_server = sum(1 for _t, p in out if p["flags"] & RST_FLAG)
    to_client = sum(1 for _t, ip, l4 in _ipv4(clients)
                    if ip["proto"] == 6 and ip["dst"] == client and _tcp(l4)["flags"] & RST_FLAG)
    ok = size - CUT_PIECE < delivered <= size and to_server >= 1 and to_client >= 1
    return row(bench, case, observed=f"{delivered:,} B left for the server; RST to server {to_server}, "
                                     f"to client {to_client}; client: {data.get('error') or 'no error'}",
               accepted=f"{size - CUT_PIECE + 1:,}..{size:,} B (one piece), an RST each way",
               ok=ok, samples="1 connection (pcap)", data={"delivered": delivered})


def measure_blackhole_after(bench: Bench, case: Case) -> Row:
    size = case.impairment.blackhole_after
    delivered, out, clients, client, data = _cut(bench, case)
    cut_at = max((t for t, p in out if p["payload"]), default=0.0)
    after = sum(1 for t, _p in out if t > cut_at)
    after += sum(1 for t, ip, _l4 in _ipv4(clients) if ip["proto"] == 6 and ip["dst"] == client and t > cut_at)
    ok = delivered == size and after == 0
    return row(bench, case, observed=f"{delivered:,} B left for the server, then {after} packets either way; "
                                     f"client: {data.get('error') or 'no error'}",
               accepted=f"exactly {size:,} B, then none", ok=ok, samples="1 connection (pcap)",
               data={"delivered": delivered, "after": after})


def measure_mtu(bench: Bench, case: Case) -> Row:
    mtu, count = case.impairment.mtu, case.amount(bench.quick)
    _data, servers, _clients, client = _captured(
        bench, ["udp-measure", "--host", "server", "--count", str(count), "--rate", "100",
                "--size", str(MTU_DATAGRAM_BYTES), "--wait", f"{UDP_WAIT_S:g}"])
    datagrams: dict = {}
    for _t, ip, _l4 in _ipv4(servers):
        if ip["proto"] == 17 and ip["src"] == client:
            datagrams.setdefault(ip["id"], []).append(ip)
    per_fragment = (mtu - 20) // 8 * 8
    want = math.ceil((MTU_DATAGRAM_BYTES + 8) / per_fragment)
    counts = sorted({len(f) for f in datagrams.values()})
    largest = max((ip["len"] for f in datagrams.values() for ip in f), default=0)
    ok = len(datagrams) == count and counts == [want] and largest <= mtu
    return row(bench, case, observed=f"{len(datagrams)} datagrams left as {'/'.join(map(str, counts))} "
                                     f"fragments, largest {largest} B",
               accepted=f"{count} datagrams × {want} fragments ≤ {mtu} B", ok=ok,
               samples=f"{count} UDP of {MTU_DATAGRAM_BYTES:,} B (pcap)",
               data={"datagrams": len(datagrams), "fragments": counts, "largest": largest})


UDP = (10_000, 2_000)     # datagrams (full, quick) for counting cases
RTT = (5_000, 1_000)      # datagrams for timing cases, at 1000/s

CASES = [
    Case("baseline", None, measure_baseline, samples=(5_000, 1_000), pps=1000),
    Case("loss", Impairment(loss=1), measure_loss, samples=UDP),
    Case("loss", Impairment(loss=5), measure_loss, samples=UDP),
    Case("loss", Impairment(loss=20), measure_loss, samples=UDP),
    Case("delay", Impairment(delay_ms=20), measure_delay, samples=RTT, pps=1000),
    Case("delay", Impairment(delay_ms=50), measure_delay, samples=RTT, pps=1000),
    Case("delay", Impairment(delay_ms=100), measure_delay, samples=RTT, pps=1000),
    Case("jitter", Impairment(delay_ms=50, jitter_ms=10), measure_jitter, samples=RTT, pps=1000),
    Case("duplicate", Impairment(duplicate=10), measure_duplicate, samples=UDP),
    Case("reorder", Impairment(delay_ms=20, reorder=25), measure_reorder, samples=UDP, pps=2000),
    Case("corrupt", Impairment(corrupt=10), measure_corrupt, samples=UDP, pps=2000),
    Case("rate", Impairment(rate_kbit=1_000), measure_rate, seconds=(10.0, 3.0)),
    Case("rate", Impairment(rate_kbit=10_000), measure_rate, seconds=(4.0, 1.5)),
    Case("rate", Impairment(rate_kbit=50_000), measure_rate, seconds=(4.0, 1.5)),
    Case("segment", Impairment(segment=100, gap_ms=20), measure_segment, samples=STREAM_BYTES),
    Case("reset_after", Impairment(reset_after=CUT_SIZE), measure_reset_after, samples=CUT_BYTES),
    Case("blackhole_after", Impairment(blackhole_after=CUT_SIZE), measure_blackhole_after, samples=CUT_BYTES),
    Case("mtu", Impairment(mtu=576), measure_mtu, samples=MTU_DATAGRAMS),
]


# --- running it --------------------------------------------------------------------------


def run_case(bench: Bench, case: Case, number: int, mode: str) -> Row:
    """One case; a failure to measure it is a row saying why (the next cases still run)."""
    ui.progress(f"[{number}/{len(CASES)}] {mode}: {case.kind} {describe(case.impairment)}")
    started = time.monotonic()
    try:
        bench.router.apply({LINK: case.impairment} if case.impairment else {})
        result = case.measure(bench, case)
    except (LabError, UnsupportedImpairment, docker.errors.DockerException, KeyError, TypeError,
            ValueError, ZeroDivisionError) as exc:
        message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]
        ui.progress(f"      could not measure: {message}")
        try:
            backend = row(bench, case, observed="", accepted="", ok=False, samples="").backend
        except Exception:  # noqa: BLE001 - the router may be what failed
            backend = "?"
        return Row(case.kind, backend, describe(case.impairment), f"error: {message}", "", False, "",
                   mode=mode, error=message)
    result.mode = mode
    mark = {True: "ok", False: "OUTSIDE", None: ""}[result.ok]
    ui.progress(f"      {result.observed}  {mark}  ({time.monotonic() - started:.1f} s)")
    return result


def measure_all(lab: RunningLab, quick: bool, mode: str) -> list:
    """Every case with SOCKETLAB_BACKEND=mode (read when the router probes its kernel),
    through a router client of its own (attached: closing it clears, the lab stays)."""
    os.environ[BACKEND_ENV] = mode
    with RunningLab.attach(lab.name, progress=ui.progress) as view:
        router = view.router
        if mode == "fallback" and router.caps.netem:  # the router plans with netem hidden
            raise LabError("internal: SOCKETLAB_BACKEND=fallback was not applied")
        bench = Bench(lab, router, quick)
        return [run_case(bench, case, i, mode) for i, case in enumerate(CASES, 1)]


def modes_for(lab: RunningLab, asked: Optional[list]) -> list:
    """The backend modes to run: as asked, else both where the kernel has netem (the
    fallbacks are what a kernel without it uses), else only the kernel's own."""
    if asked:
        return asked
    os.environ[BACKEND_ENV] = "auto"
    with RunningLab.attach(lab.name) as view:
        return ["auto", "fallback"] if view.router.caps.netem else ["auto"]


def run_all(quick: bool, modes: Optional[list] = None) -> list:
    """Bring up the lab, measure in each mode, remove it.  Rows of one case sit together."""
    spec = LabSpec(lab=f"bench-fid-{os.getpid() % 100000}", clients=1,
                   client_command=("host-role", "client", "--no-demo"))
    ui.progress(f"bringing up lab {spec.lab} (client1 -> router -> server)")
    saved = os.environ.get(BACKEND_ENV)
    try:
        with RunningLab.create(spec) as lab:
            modes = modes_for(lab, modes)
            ui.progress(f"backend modes: {', '.join(modes)}")
            by_mode = [measure_all(lab, quick, mode) for mode in modes]
            ui.progress(f"removing lab {spec.lab}")
    finally:
        if saved is None:
            os.environ.pop(BACKEND_ENV, None)
        else:
            os.environ[BACKEND_ENV] = saved
    return [r for rows in zip(*by_mode) for r in rows]


def print_table(rows: list, title: str) -> None:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD,
                  caption="accepted: counts: exact binomial 99 % interval; times: tolerance "
                          "from the baseline's spread and the impairer's 1 ms granularity; rate: "
                          "90 % of the payload share (1448/1514) of the rate, up to one 64 KiB "
                          "GSO packet early",
                  caption_justify="left")
    table.add_column("kind", no_wrap=True)
    table.add_column("backend")
    table.add_column("configured", no_wrap=True)
    table.add_column("observed")
    table.add_column("accepted")
    table.add_column("ok", no_wrap=True)
    table.add_column("samples", no_wrap=True, justify="right")
    marks = {True: "✓", False: "✗", None: ""}
    for r in rows:
        backend = r.backend if r.backend != "-" else f"- ({r.mode})"
        table.add_row(r.kind, backend, r.configured, r.observed, r.accepted, marks[r.ok], r.samples)
    ui.out.print(table)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--quick", action="store_true",
                        help="fewer samples: about half a minute (full: under two minutes) per mode")
    parser.add_argument("--kinds", type=lambda v: {k.strip() for k in v.split(",") if k.strip()},
                        help="only these kinds' cases (the baseline always runs): e.g. segment,mtu")
    parser.add_argument("--backends", type=lambda v: [m.strip() for m in v.split(",") if m.strip()],
                        help="modes to run, from auto,fallback (default: both where the kernel has "
                             "netem, else auto)")
    args = parser.parse_args()
    for mode in args.backends or []:
        if mode not in ("auto", "fallback"):
            parser.error(f"--backends: unknown mode {mode!r} (auto, fallback)")
    if args.kinds:
        unknown = args.kinds - {case.kind for case in CASES}
        if unknown:
            parser.error(f"--kinds: no case of {', '.join(sorted(unknown))}")
        CASES[:] = [case for case in CASES if case.kind == "baseline" or case.kind in args.kinds]
    signal.signal(signal.SIGTERM, _interrupt)  # cleaned up like Ctrl-C
    started = time.monotonic()
    try:
        rows = run_all(args.quick, args.backends)
    except (LabError, UnsupportedImpairment, docker.errors.DockerException) as exc:
        ui.err.print(f"[bold red]fidelity: error:[/bold red] {exc}", soft_wrap=True)
        if getattr(exc, "hint", ""):
            ui.err.print(f"  [yellow]fix:[/yellow] {exc.hint}")
        return 2
    except KeyboardInterrupt:
        ui.err.print("fidelity: interrupted (lab removed)")
        return 130
    elapsed = time.monotonic() - started
    mode = "quick" if args.quick else "full"
    if args.json:
        ui.print_json({"mode": mode, "confidence": CONFIDENCE, "link": str(LINK),
                       "elapsed_s": round(elapsed, 1), "rows": [asdict(r) for r in rows]})
    else:
        print_table(rows, f"Impairment fidelity on {LINK} ({mode} run, {elapsed:.0f} s)")
        failed = sum(r.ok is False for r in rows)
        ui.out.print(f"{sum(r.ok is True for r in rows)} of {sum(r.ok is not None for r in rows)} "
                     f"within their acceptance range" + (f"; {failed} outside" if failed else ""))
    errors = [r for r in rows if r.error]
    for r in errors:
        ui.err.print(f"fidelity: {r.mode} {r.kind} {r.configured}: not measured: {r.error}", soft_wrap=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

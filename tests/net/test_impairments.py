"""Impairments on real containers: what the router does to packets, measured from a client.

One lab for the module (client1 -> router -> server); each test gets a fresh
RouterImpairments that clears the router when the test ends.

Statistics: each count is checked against the exact binomial distribution it must follow
if the impairment does what it is configured to do (acceptance region of a two-sided
exact test).  There are five such checks in this file, each at level
1 - 0.01 / 5 (Bonferroni, conftest's STAT_CHECKS), so the file as a whole wrongly fails at most 1 % of
the time when everything works.  The intervals are tight enough to catch a wrong rate:
at n = 10,000 the 20 % loss check accepts 19.0-21.0 % of datagrams lost.

Backends follow the kernel: where the router's kernel has netem, loss, delay, duplicate
and reorder are netem's (what most users' machines do), elsewhere nftables' and the
NFQUEUE impairer's; the expectations below read which from the router's own probe
(``expected``), and SOCKETLAB_BACKEND=fallback makes a netem kernel take the fallback
path (CI's VM runs this file both ways).  Tests of the impairer itself (its duplicates,
its death) force the fallback backends so they run on every kernel that has NFQUEUE.

Timing: the impairer holds a packet until its release time and polls with a timeout rounded
UP to whole milliseconds (impairer.Impairer.run), so a packet is never early and at most
IMPAIRER_GRANULARITY_MS late (plus scheduling).
"""
from __future__ import annotations

import json
import math
import re
import struct
import threading
import time

import pytest

from lab.programs.shared.impairment import Impairment, Link
from lab.programs.shared import backends as B
from lab.programs.shared.impairment import BACKEND_ENV
from lab.programs.router_counters import grown
from lab.impairments.router import ImpairerDied, RouterImpairments
from lab.topology.docker_lab import DockerLab
from lab.programs.shared.topology import LabSpec
from lab.runner.processes import last_json_object
from lab.scenario.stats import acceptance_interval

C2S, S2C = Link("clients", "servers"), Link("servers", "clients")
IMPAIRER_GRANULARITY_MS = 1.0
SEED = 7


# --- exact binomial intervals (assert_binomial, a conftest fixture) ----------------------

def test_binomial_interval_is_exact_and_can_reject():
    """The interval assert_binomial uses.  20 % loss of 10,000 at 99 %: P(X <= 7895) =
    0.00468 and P(X >= 8103) = 0.00499 (the normal approximation in platform-facts says
    7,897-8,103; the binomial is slightly skewed)."""
    assert acceptance_interval(10_000, 0.8, 0.99) == (7896, 8102)
    assert acceptance_interval(100, 0.5, 0.95) == (40, 60)
    assert acceptance_interval(50, 0.0) == (0, 0) and acceptance_interval(50, 1.0) == (50, 50)


# --- the lab ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lab(lab_name):
    spec = LabSpec(lab=lab_name("imp"), clients=1, client_command=("host-role", "client", "--no-demo"))
    with DockerLab.plan(spec) as running:
        yield running


@pytest.fixture
def imp(lab):
    with RouterImpairments(lab, seed=SEED) as router:
        yield router
    assert router.leftovers() == []


@pytest.fixture
def impairer_imp(lab, monkeypatch):
    """A router whose impairments use the fallback backends (the NFQUEUE impairer) even
    on a kernel with netem: for tests of the impairer itself."""
    monkeypatch.setenv(BACKEND_ENV, "fallback")
    with RouterImpairments(lab, seed=SEED) as router:
        assert not router.caps.netem
        yield router
    assert router.leftovers() == []


def expected(imp, fallback: str) -> str:
    """The backend a netem-capable kind must get: netem where the router's kernel has
    it (and SOCKETLAB_BACKEND does not rule it out), else the given fallback."""
    return B.NETEM if imp.caps.netem else fallback


def measured(lab, argv: list[str]) -> dict:
    """The JSON line a measuring program printed last on client1."""
    done = lab.exec("client1", argv)
    result = last_json_object(done.stdout)
    assert result, f"{argv} printed no JSON: {done.stderr}"
    return result


def udp(lab, count: int, rate: float = 5000, wait: float = 1.0, size: int = 64) -> dict:
    result = measured(lab, ["udp-measure", "--host", "server", "--count", str(count),
                            "--rate", f"{rate:g}", "--wait", f"{wait:g}", "--size", str(size)])
    assert result["error"] is None, result
    assert result["sent"] == count, result
    return result


def tcp(lab, nbytes: int, timeout: float = 30) -> dict:
    return measured(lab, ["tcp-measure", "--host", "server", "--bytes", str(nbytes), "--timeout", f"{timeout:g}"])


def assert_stream_intact(result: dict, nbytes: int) -> None:
    assert result["error"] is None, result
    assert result["sha256_match"] is True, result
    assert result["bytes_acknowledged"] == nbytes == result["bytes_sent"], result


# --- loss ---------------------------------------------------------------------------------

class RouterCounts:
    """What the router itself did on each link between two readings of its counters
    (router_counters: forwarded is what left it; loss is nftables' rule's drops, or
    netem's, which are its qdisc's). A statistical test judges these, never what a
    slow receiver failed to read: at 5,000 datagrams a second on a busy or emulated
    machine, the receiving side drops what the router never touched."""

    def __init__(self, imp):
        self.imp, self.before = imp, imp.counters()["links"]

    def since(self, link: Link) -> dict:
        now, then = self.imp.counters()["links"][str(link)], self.before[str(link)]
        counts = {name: grown(now[name], then[name]) for name in now}
        counts["lost"] = counts["dropped_loss"] + counts["dropped_queue"]
        counts["arrived"] = counts["forwarded_packets"] + counts["lost"]
        return counts


def test_one_way_loss_matches_the_configured_rate(lab, imp, assert_binomial):
    imp.apply({C2S: Impairment(loss=20)})
    assert imp.backends == {"clients->servers": {"loss": expected(imp, B.NFT_NUMGEN)}}
    router = RouterCounts(imp)
    result = udp(lab, 10_000, rate=5000)
    c2s = router.since(C2S)
    assert c2s["arrived"] >= result["sent"], (c2s, result)     # every request met the rule
    assert_binomial(c2s["lost"], c2s["arrived"], 0.2, "requests the router dropped with 20 % loss one way")
    # What the client saw is what the router let through, less receivers' own drops.
    assert result["received"] <= c2s["forwarded_packets"], (c2s, result)
    assert result["duplicated"] == result["corrupted"] == 0


def test_tcp_delivers_intact_what_udp_loses(lab, imp, assert_binomial):
    """The lesson: the same 10 % loss both ways; UDP loses datagrams, TCP retransmits."""
    p = 0.10
    imp.apply({C2S: Impairment(loss=p * 100), S2C: Impairment(loss=p * 100)})
    router = RouterCounts(imp)
    result = udp(lab, 5000, rate=5000)
    assert result["lost"] > 0
    # The same p on both links, every packet on its own: pooled, the drops are Binomial too.
    c2s, s2c = router.since(C2S), router.since(S2C)
    assert_binomial(c2s["lost"] + s2c["lost"], c2s["arrived"] + s2c["arrived"], p,
                    "packets the router dropped with 10 % loss each way")
    assert result["received"] <= s2c["forwarded_packets"], (s2c, result)
    nbytes = 4_000_000
    assert_stream_intact(tcp(lab, nbytes), nbytes)


# --- delay --------------------------------------------------------------------------------

def test_delay_holds_every_packet_and_spreads_them_by_the_jitter(lab, imp):
    """What holds on any machine, however slow: nothing arrives before delay - jitter,
    and the jitter shows as a spread of at least the jitter."""
    count, delay, jitter = 1000, 40.0, 5.0
    imp.apply({C2S: Impairment(delay_ms=delay, jitter_ms=jitter)})
    assert imp.backends["clients->servers"] == {"delay": expected(imp, B.IMPAIRER)}
    delayed = udp(lab, count, rate=1000)
    rtt = delayed["rtt_ms"]
    assert delayed["received"] == count
    assert rtt["min"] >= delay - jitter, rtt
    assert rtt["max"] - rtt["min"] >= jitter, rtt


@pytest.mark.timing
def test_delay_adds_the_configured_time_to_the_rtt(lab, imp):
    """The median added RTT is the delay, within the unloaded path's own spread: true
    on a machine with CPU to spare, not under emulation (TCG) or heavy load."""
    count, delay, jitter = 2000, 40.0, 5.0
    base = udp(lab, count, rate=2000)["rtt_ms"]
    imp.apply({C2S: Impairment(delay_ms=delay, jitter_ms=jitter)})
    assert imp.backends["clients->servers"] == {"delay": expected(imp, B.IMPAIRER)}
    delayed = udp(lab, count, rate=2000)
    rtt = delayed["rtt_ms"]
    assert delayed["received"] == count
    # Median of (base RTT + delay + uniform(-jitter, jitter) + impairer lateness): the
    # base path's own spread, the impairer's ms granularity, and the sampling error of a
    # median of a uniform (sd ~ jitter / sqrt(n)), at 4 sd.
    tolerance = (base["p99"] - base["p50"]) + IMPAIRER_GRANULARITY_MS + 4 * jitter / math.sqrt(count)
    added = rtt["p50"] - base["p50"]
    assert abs(added - delay) <= tolerance, (added, tolerance, base, rtt)


# --- duplicate and reorder ----------------------------------------------------------------

def test_duplicates_show_up_and_tcp_is_unharmed(lab, imp, assert_binomial):
    p = 0.10
    imp.apply({C2S: Impairment(duplicate=p * 100)})
    assert imp.backends["clients->servers"] == {"duplicate": expected(imp, B.NFT_DUP)}
    result = udp(lab, 5000, rate=5000)
    # Each request that reaches the server is copied with chance p; the copy is echoed too.
    assert_binomial(result["duplicated"], result["received"], p, "duplicated requests")
    assert result["reordered"] == 0 or result["reordered"] < result["duplicated"]
    nbytes = 4_000_000
    assert_stream_intact(tcp(lab, nbytes), nbytes)


def test_reorder_shows_up_and_tcp_is_unharmed(lab, imp, assert_binomial):
    """netem semantics: a ``reorder`` share is sent at once, the rest wait ``delay``.

    A delayed request i is counted reordered by udp-measure exactly when one of the
    k requests sent after it within the delay went at once (and so arrived first);
    requests sent at once are never counted.  So the count is Binomial(n, (1-r)(1-(1-r)^k))
    up to the last few datagrams, which have fewer followers."""
    delay, r, rate, count = 20.0, 0.25, 2000, 5000
    imp.apply({C2S: Impairment(delay_ms=delay, reorder=r * 100)})
    backend = expected(imp, B.IMPAIRER)
    assert imp.backends["clients->servers"] == {"delay": backend, "reorder": backend}
    on_impairer = backend == B.IMPAIRER
    before = imp.impairer_stats()["queues"]["0"] if on_impairer else None
    result = udp(lab, count, rate=rate, wait=1.0)
    assert result["received"] == count, result
    # k from the rate the client really sent at: a slow (emulated) machine falls short
    # of the rate asked for, and fewer followers within the delay means fewer overtakes.
    k = math.ceil(delay / 1000 * min(rate, result["send_rate_pps"])) - 1
    assert_binomial(result["reordered"], count, (1 - r) * (1 - (1 - r) ** k), "reordered datagrams")
    if on_impairer:
        # Cross-check with the impairer's own decisions, judged from its counters: it sent a
        # share r at once (Binomial(n, r)), and none of those can be counted reordered by
        # udp-measure. Delayed requests with no overtaker are not counted either: a tail at
        # the end of the run, and any stall of a busy sender longer than the delay, so how
        # many is the machine's timing, not the router's, and is not bounded here.
        after = imp.impairer_stats()["queues"]["0"]
        sent_at_once = after["reordered"] - before["reordered"]
        assert after["seen"] - before["seen"] == count
        assert_binomial(sent_at_once, count, r, "requests the impairer sent at once")
        not_counted = result["received"] - result["reordered"]
        assert not_counted >= sent_at_once, (not_counted, sent_at_once)
    nbytes = 4_000_000
    assert_stream_intact(tcp(lab, nbytes), nbytes)


def test_impairer_duplicates_on_a_delayed_link(lab, impairer_imp, assert_binomial):
    """Duplication on a link the impairer already handles comes from the impairer."""
    p, imp = 0.10, impairer_imp
    imp.apply({C2S: Impairment(delay_ms=5, duplicate=p * 100)})
    assert imp.backends["clients->servers"]["duplicate"] == B.IMPAIRER
    # 1000/s, not faster: the impairer is Python in the router, and on a slow (emulated)
    # machine a faster stream overflows its queue, which is loss, not what is tested here.
    # What the router did is judged from the impairer's own counts (a busy receiver, or a
    # full queue in front of the impairer on an emulated machine, loses datagrams that the
    # router never decided about); the client must see duplicates, never more than made.
    before = imp.impairer_stats()["queues"]["0"]
    result = udp(lab, 4000, rate=1000)
    after = imp.impairer_stats()["queues"]["0"]
    seen, made = after["seen"] - before["seen"], after["duplicated"] - before["duplicated"]
    assert 2000 <= seen <= 4000, (seen, result)   # enough decisions for a stable test
    assert_binomial(made, seen, p, "duplicates the impairer made")
    assert 0 < result["duplicated"] <= made, (result["duplicated"], made)


# --- rate ---------------------------------------------------------------------------------

def test_rate_limit_bounds_tcp_goodput(lab, imp):
    rate_mbit = 20
    imp.apply({C2S: Impairment(rate_kbit=rate_mbit * 1000)})
    assert imp.backends["clients->servers"] == {"rate": "tc htb"}
    nbytes = 5_000_000
    result = tcp(lab, nbytes)
    assert_stream_intact(result, nbytes)
    goodput = result["goodput_mbps"]
    # htb counts whole frames: goodput is at most the rate times the payload share of a
    # full-size frame (1448 of 1514 bytes), plus one htb burst (a few frames) over the run.
    payload_share = 1448 / 1514
    burst_share = 10 * 1514 / nbytes
    assert goodput <= rate_mbit * (payload_share + burst_share), result
    assert goodput > 0.5 * rate_mbit, result


# --- partition ----------------------------------------------------------------------------

def syn_sent_retransmits(lab, server: str) -> int | None:
    """Retransmissions of client1's SYN to the server, or None if it is not connecting."""
    out = lab.exec("client1", ["ss", "-tno", "state", "syn-sent", "dst", server]).stdout
    match = re.search(r"timer:\(on,[^,]+,(\d+)\)", out)
    return int(match.group(1)) if match else None


def test_partition_stalls_tcp_which_recovers_after_heal(lab, imp):
    server = str(lab.topology.host("server").address)
    imp.partition("clients", "servers")
    assert imp.backends == {"clients->servers": {"partition": "nftables drop"},
                            "servers->clients": {"partition": "nftables drop"}}
    cut = udp(lab, 200, rate=2000, wait=0.5)
    assert cut["received"] == 0 and cut["delivery"] == 0.0, cut

    nbytes, results = 2_000_000, []
    started = time.monotonic()
    worker = threading.Thread(target=lambda: results.append(tcp(lab, nbytes)), daemon=True)
    worker.start()
    # Stalled: the SYN is sent and retransmitted (so at least one was dropped).
    deadline = time.monotonic() + 10
    while (syn_sent_retransmits(lab, server) or 0) < 1:
        assert time.monotonic() < deadline, "tcp-measure never retransmitted its SYN"
        assert worker.is_alive(), results
        time.sleep(0.05)
    stalled_for = time.monotonic() - started
    assert worker.is_alive()
    imp.heal("clients", "servers")
    assert imp.backends == {}
    worker.join(timeout=30)
    assert not worker.is_alive(), "tcp-measure did not finish after heal"
    (result,) = results
    assert_stream_intact(result, nbytes)
    assert result["connect_ms"] >= 1000 * min(stalled_for, 1.0) - 50, result  # the SYN waited
    healed = udp(lab, 500, rate=2000)
    assert healed["delivery"] == 1.0, healed


def test_partition_keeps_the_links_other_impairments_for_after_heal(lab, imp):
    imp.apply({C2S: Impairment(delay_ms=30)})
    imp.partition("clients", "servers")
    assert imp.state[C2S] == Impairment(delay_ms=30, partition=True)
    assert udp(lab, 100, rate=1000, wait=0.5)["received"] == 0
    imp.heal("clients", "servers")
    assert imp.state[C2S] == Impairment(delay_ms=30)
    result = udp(lab, 200, rate=1000)
    assert result["delivery"] == 1.0 and result["rtt_ms"]["min"] >= 30, result


# --- the impairer dying ---------------------------------------------------------------------

def kill_impairer(lab, imp) -> None:
    """Kill the impairer from outside (as a crash would), and wait until it is gone."""
    pid = imp.impairer_pid
    assert pid and imp.impairer_running
    result = lab.exec("router", ["kill", "-KILL", str(pid)])
    assert result.exit_code == 0, result.stderr
    deadline = time.monotonic() + 10
    while imp.impairer_running:
        assert time.monotonic() < deadline, "the killed impairer still shows as running"
        time.sleep(0.05)


def test_a_dead_engine_is_detected_not_silently_passed(lab, impairer_imp):
    imp = impairer_imp
    imp.apply({C2S: Impairment(delay_ms=20)})
    imp.check_alive()
    assert udp(lab, 200, rate=1000)["rtt_ms"]["min"] >= 20
    kill_impairer(lab, imp)
    with pytest.raises(ImpairerDied, match="UNIMPAIRED"):
        imp.check_alive()
    # Why it matters: --queue-bypass lets packets through with no delay at all.
    assert udp(lab, 200, rate=1000)["rtt_ms"]["p50"] < 20
    with pytest.raises(ImpairerDied):
        imp.apply({C2S: Impairment(delay_ms=10)})
    imp.clear()  # reported once already: cleaning up is not an error
    assert imp.leftovers() == []


def test_an_unnoticed_engine_death_is_raised_by_clear(lab, impairer_imp):
    imp = impairer_imp
    imp.apply({S2C: Impairment(delay_ms=5)})
    kill_impairer(lab, imp)
    with pytest.raises(ImpairerDied):
        imp.clear()
    assert imp.leftovers() == []


# --- clear --------------------------------------------------------------------------------

def router_state(lab, ifnames) -> dict:
    def out(argv):
        result = lab.exec("router", argv)
        assert result.exit_code == 0, (argv, result.stderr)
        return result.stdout
    return {
        # the impairments' tables; the router's own accounting table (made by the first
        # counters read, kept for lab watch) is not an impairment
        "nft tables": [t for t in out(["nft", "list", "tables"]).splitlines()
                       if t.strip() != "table ip socketlab_account"],
        "forward": [line for line in out(["iptables", "-S", "FORWARD"]).splitlines()],
        "qdiscs": {ifname: [q["kind"] for q in json.loads(out(["tc", "-j", "qdisc", "show", "dev", ifname]))]
                   for ifname in ifnames.values()},
        "impairer": lab.exec("router", ["pgrep", "-f", "lab.programs.impairer"]).stdout.split(),
    }


def test_clear_leaves_nothing_behind(lab, impairer_imp):
    """Every fallback mechanism at once (nftables, NFQUEUE and the impairer, htb); netem's
    qdiscs are checked after every test by the ``imp`` fixture's leftovers()."""
    imp = impairer_imp
    ifnames = imp.ifnames
    before = router_state(lab, ifnames)
    assert not any("socketlab" in t for t in before["nft tables"]) and before["impairer"] == []
    imp.apply({C2S: Impairment(loss=1, duplicate=1, delay_ms=5, rate_kbit=50_000),
               S2C: Impairment(loss=1, rate_kbit=50_000)})
    during = router_state(lab, ifnames)
    assert "table ip socketlab" in during["nft tables"]
    assert any("NFQUEUE" in rule for rule in during["forward"])
    assert all("htb" in kinds for kinds in during["qdiscs"].values())
    assert len(during["impairer"]) == 1
    imp.clear()
    after = router_state(lab, ifnames)
    assert not any("socketlab" in t for t in after["nft tables"])
    assert not any("NFQUEUE" in rule for rule in after["forward"])
    assert after == before
    assert imp.impairer_final_stats and imp.impairer_final_stats[-1]["event"] == "exit"


# --- students cannot undo impairments ----------------------------------------------------

def test_a_client_cannot_remove_the_impairment(lab, imp):
    imp.apply({C2S: Impairment(partition=True), S2C: Impairment(rate_kbit=1000)})
    for argv in (["tc", "qdisc", "del", "dev", "eth0", "root"],
                 ["tc", "qdisc", "add", "dev", "eth0", "root", "pfifo"],
                 ["nft", "flush", "ruleset"],
                 ["iptables", "-F"]):
        result = lab.exec("client1", argv)
        assert result.exit_code != 0, argv
        assert re.search(r"not permitted|permission denied", result.stderr, re.I), (argv, result.stderr)
    assert udp(lab, 200, rate=2000, wait=0.5)["received"] == 0
    assert len(imp.leftovers()) >= 2  # the nft table and the htb qdisc are still there


# --- capture ------------------------------------------------------------------------------

def pcap_udp_to_port(pcap: bytes, port: int) -> int:
    """Datagrams to ``port`` in a pcap of Ethernet frames."""
    magic = struct.unpack_from("=I", pcap, 0)[0]
    assert magic in (0xA1B2C3D4, 0xA1B23C4D), hex(magic)
    assert struct.unpack_from("=I", pcap, 20)[0] == 1  # Ethernet
    count, offset = 0, 24
    while offset + 16 <= len(pcap):
        _sec, _frac, caplen, _length = struct.unpack_from("=IIII", pcap, offset)
        frame = pcap[offset + 16:offset + 16 + caplen]
        assert len(frame) == caplen, "truncated record: the capture did not end cleanly"
        offset += 16 + caplen
        if frame[12:14] == b"\x08\x00" and frame[23] == 17:
            ihl = (frame[14] & 0x0F) * 4
            if struct.unpack_from("!H", frame, 14 + ihl + 2)[0] == port:
                count += 1
    assert offset == len(pcap)
    return count


def test_capture_sees_both_sides_of_the_router(lab, imp):
    """With clients->servers cut, the clients side sees the requests, the servers side none."""
    ifnames = imp.ifnames
    imp.apply({C2S: Impairment(partition=True)})
    paths = imp.start_capture("/run/test-capture")
    assert set(paths) == set(ifnames.values())
    udp(lab, 50, rate=1000, wait=0.2)
    pcaps = imp.stop_capture()
    port = lab.topology.port
    assert pcap_udp_to_port(pcaps[ifnames["clients"]], port) == 50
    assert pcap_udp_to_port(pcaps[ifnames["servers"]], port) == 0

"""Impairments on real containers: what the router does to packets, measured from a client.

One lab for the module (client1 -> router -> server); each test gets a fresh
RouterImpairments that clears the router when the test ends.

Statistics: each count is checked against the exact binomial distribution it must follow
if the impairment does what it is configured to do (acceptance region of a two-sided
exact test), each at conftest's BINOMIAL_LEVEL (1 - 1e-5: a check wrongly fails once in
100,000 runs when everything works).  The intervals are tight enough to catch a wrong rate:
at n = 10,000 the 20 % loss check accepts 18.3-21.8 % of datagrams lost.

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
from lab.impairments.router import ImpairerDied, RouterImpairments
from lab.topology.docker_lab import DockerLab
from lab.programs.shared.topology import LabSpec
from lab.packets.pcap import read_pcap
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

def test_one_way_loss_matches_the_configured_rate(lab, imp, assert_binomial, router_counts):
    imp.apply({C2S: Impairment(loss=20)})
    assert imp.backends == {"clients->servers": {"loss": expected(imp, B.NFT_NUMGEN)}}
    router = router_counts(imp)
    result = udp(lab, 10_000, rate=5000)
    c2s = router.since(C2S)
    assert c2s["arrived"] >= result["sent"], (c2s, result)     # every request met the rule
    assert_binomial(c2s["lost"], c2s["arrived"], 0.2, "requests the router dropped with 20 % loss one way")
    # What the client saw is what the router let through, less receivers' own drops.
    assert result["received"] <= c2s["forwarded_packets"], (c2s, result)
    assert result["duplicated"] == result["corrupted"] == 0


def test_tcp_delivers_intact_what_udp_loses(lab, imp, assert_binomial, router_counts):
    """The lesson: the same 10 % loss both ways; UDP loses datagrams, TCP retransmits."""
    p = 0.10
    imp.apply({C2S: Impairment(loss=p * 100), S2C: Impairment(loss=p * 100)})
    router = router_counts(imp)
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

def test_delay_holds_every_packet_and_spreads_them_by_the_jitter(lab, imp, router_counts):
    """What holds on any machine, however slow or busy: the router drops nothing for a
    delay, nothing arrives before delay - jitter, half of what arrives took at least the
    delay (less the median's sampling error), and the jitter shows as a spread of at
    least the jitter. How close the median is to the delay from above is a timing claim
    that load breaks (a busy router is late, never early): benchmarks/fidelity.py
    measures it, against the path's own RTT measured in the same run."""
    count, delay, jitter = 1000, 40.0, 5.0
    imp.apply({C2S: Impairment(delay_ms=delay, jitter_ms=jitter)})
    assert imp.backends["clients->servers"] == {"delay": expected(imp, B.IMPAIRER)}
    router = router_counts(imp)
    delayed = udp(lab, count, rate=1000)
    c2s = router.since(C2S)
    # Every request met the delay, and the delay dropped none of them (a full queue in
    # front of an engine on a starved machine is the machine's, and counted apart).
    assert c2s["forwarded_packets"] + c2s["dropped_engine_queue"] >= count, (c2s, delayed)
    assert c2s["lost"] == c2s["dropped_partition"] == 0, c2s
    rtt, n = delayed["rtt_ms"], delayed["received"]
    # What came back is a sample of the delayed requests, however many a slow receiver
    # missed: enough of them that the bounds below cannot fail by chance (the range of
    # 100 uniform jitters is under the jitter with chance ~1e-28).
    assert 100 <= n <= c2s["forwarded_packets"], (n, c2s)
    assert rtt["min"] >= delay - jitter, rtt
    # RTT = the path + delay + uniform(-jitter, jitter) + lateness, each of the others >= 0:
    # its median is at least delay + the median of n uniforms (sd jitter / sqrt(n), at 4 sd).
    assert rtt["p50"] >= delay - 4 * jitter / math.sqrt(n), rtt
    assert rtt["max"] - rtt["min"] >= jitter, rtt


# --- duplicate and reorder ----------------------------------------------------------------

def test_duplicates_show_up_and_tcp_is_unharmed(lab, imp, assert_binomial, router_counts):
    """Each request that reaches the router is copied with chance p. nftables counts the
    copies it made (its rule's counter): that is the binomial sample, whatever a slow
    receiver missed. netem counts none, so there the client must see copies, and the
    rate itself is measured by benchmarks/fidelity.py (netem and fallback side by side)."""
    p = 0.10
    imp.apply({C2S: Impairment(duplicate=p * 100)})
    backend = expected(imp, B.NFT_DUP)
    assert imp.backends["clients->servers"] == {"duplicate": backend}
    router = router_counts(imp)
    result = udp(lab, 5000, rate=5000)
    c2s = router.since(C2S)
    assert c2s["lost"] == 0, c2s
    if backend == B.NFT_DUP:
        assert c2s["forwarded_packets"] >= result["sent"], (c2s, result)   # every request met the rule
        assert_binomial(c2s["duplicated"], result["sent"], p, "requests the router duplicated")
        assert 0 < result["duplicated"] <= c2s["duplicated"], (result, c2s)
    else:
        assert 0 < result["duplicated"] <= result["received"], result
    assert result["reordered"] == 0 or result["reordered"] < result["duplicated"]
    nbytes = 4_000_000
    assert_stream_intact(tcp(lab, nbytes), nbytes)


def test_reorder_shows_up_and_tcp_is_unharmed(lab, imp, assert_binomial, router_counts):
    """netem semantics: a ``reorder`` share is sent at once, the rest wait ``delay``.

    The router counts the requests it sent at once (the impairer its own decisions, netem
    its requeues: how it puts a packet at the head of its queue): that is the binomial
    sample (Binomial(n, r)), whatever a slow receiver missed, and udp-measure can count
    none of them reordered. How many delayed requests were overtaken depends on the
    sender's pace (any stall longer than the delay leaves them without an overtaker): the
    machine's timing, not the router's, so not bounded here."""
    delay, r, rate, count = 20.0, 0.25, 2000, 5000
    imp.apply({C2S: Impairment(delay_ms=delay, reorder=r * 100)})
    backend = expected(imp, B.IMPAIRER)
    assert imp.backends["clients->servers"] == {"delay": backend, "reorder": backend}
    router = router_counts(imp)
    result = udp(lab, count, rate=rate, wait=1.0)
    c2s = router.since(C2S)
    assert 0 < result["reordered"] < result["received"], result
    # Every request met it (and whatever else crossed the link then: a late segment of
    # the TCP test before, say), and it decided about each packet on its own.
    seen, sent_at_once = c2s["arrived"], c2s["reordered"]
    assert seen >= count, (c2s, result)
    assert_binomial(sent_at_once, seen, r, "packets the router sent at once")
    # No request sent at once is counted reordered; at most count - received of them
    # went missing, and seen - count of them were not requests.
    not_counted = result["received"] - result["reordered"]
    assert not_counted + (count - result["received"]) + (seen - count) >= sent_at_once, (result, sent_at_once)
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
    # enough decisions for a stable test (a late segment of the test before may add a few)
    assert seen >= 2000, (seen, result)
    assert_binomial(made, seen, p, "duplicates the impairer made")
    assert 0 < result["duplicated"] <= made, (result["duplicated"], made)


# --- rate ---------------------------------------------------------------------------------

def test_rate_limit_bounds_tcp_goodput(lab, imp):
    """The rate is a ceiling: goodput never above it, however quiet the machine. How close
    to it a transfer comes is the machine's (a busy sender falls short of any floor) and
    is measured by benchmarks/fidelity.py."""
    rate_mbit = 20
    imp.apply({C2S: Impairment(rate_kbit=rate_mbit * 1000)})
    assert imp.backends["clients->servers"] == {"rate": "tc htb"}
    nbytes = 5_000_000
    result = tcp(lab, nbytes)
    assert_stream_intact(result, nbytes)
    goodput = result["goodput_mbps"]
    # htb counts whole frames: goodput is at most the rate times the payload share of a
    # full-size frame (1448 of 1514 bytes), plus one htb burst (a few frames) over the run.
    # htb also charges a packet after sending it, so a GSO packet (up to 64 KiB; a busy
    # sender's are bigger) can go early: two of them over the run, as test_live allows.
    payload_share = 1448 / 1514
    burst_share = 10 * 1514 / nbytes
    early = 2 * 65536
    assert 0 < goodput <= rate_mbit * (payload_share + burst_share) * nbytes / (nbytes - early), result


# --- partition ----------------------------------------------------------------------------

def syn_sent_retransmits(lab, server: str) -> int | None:
    """Retransmissions of client1's SYN to the server, or None if it is not connecting."""
    out = lab.exec("client1", ["ss", "-tno", "state", "syn-sent", "dst", server]).stdout
    match = re.search(r"timer:\(on,[^,]+,(\d+)\)", out)
    return int(match.group(1)) if match else None


def assert_heal_passes_everything(router, result: dict) -> None:
    """After heal the router drops nothing: every request and every echo it met, it
    forwarded (judged by its counters; a busy receiver may still miss some, and an
    engine's full queue on a starved machine is counted apart), and the client got
    echoes back."""
    c2s, s2c = router.since(C2S), router.since(S2C)
    assert c2s["forwarded_packets"] + c2s["dropped_engine_queue"] >= result["sent"], (c2s, result)
    assert c2s["lost"] == c2s["dropped_partition"] == s2c["lost"] == s2c["dropped_partition"] == 0, (c2s, s2c)
    assert 0 < result["received"] <= s2c["forwarded_packets"], (s2c, result)


def test_partition_stalls_tcp_which_recovers_after_heal(lab, imp, router_counts):
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
    worker.join(timeout=300)   # tcp-measure's own 30 s per operation end it before this
    assert not worker.is_alive(), "tcp-measure did not finish after heal"
    (result,) = results
    assert_stream_intact(result, nbytes)
    assert result["connect_ms"] >= 1000 * min(stalled_for, 1.0) - 50, result  # the SYN waited
    router = router_counts(imp)
    healed = udp(lab, 500, rate=2000)
    assert_heal_passes_everything(router, healed)


def test_partition_keeps_the_links_other_impairments_for_after_heal(lab, imp, router_counts):
    imp.apply({C2S: Impairment(delay_ms=30)})
    imp.partition("clients", "servers")
    assert imp.state[C2S] == Impairment(delay_ms=30, partition=True)
    assert udp(lab, 100, rate=1000, wait=0.5)["received"] == 0
    imp.heal("clients", "servers")
    assert imp.state[C2S] == Impairment(delay_ms=30)
    router = router_counts(imp)
    result = udp(lab, 200, rate=1000)
    assert_heal_passes_everything(router, result)
    assert result["rtt_ms"]["min"] >= 30, result


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


def router_holds_ms(pcaps: dict, ifnames: dict, port: int) -> list:
    """How long the router held each request: from its kernel's capture stamp on the
    clients side to its first on the servers side (udp-measure's datagram number)."""
    def first_seen(side: str) -> dict:
        seen = {}
        for packet in read_pcap(pcaps[ifnames[side]], ifnames[side]).packets:
            if packet.proto == "udp" and packet.dport == port and packet.udp_seq is not None:
                seen.setdefault(packet.udp_seq, packet.t)
        return seen
    came, left = first_seen("clients"), first_seen("servers")
    return [(left[seq] - came[seq]) * 1000 for seq in came if seq in left]


def test_a_dead_engine_is_detected_not_silently_passed(lab, impairer_imp):
    imp = impairer_imp
    imp.apply({C2S: Impairment(delay_ms=20)})
    imp.check_alive()
    assert udp(lab, 200, rate=1000)["rtt_ms"]["min"] >= 20
    kill_impairer(lab, imp)
    with pytest.raises(ImpairerDied, match="UNIMPAIRED"):
        imp.check_alive()
    # Why it matters: --queue-bypass lets packets through with no delay at all. Judged by
    # the router's own capture stamps on both its sides, not by the client's RTT, which a
    # busy machine stretches past any bound: forwarded in the kernel, no request is held.
    imp.start_capture("/run/test-capture")
    udp(lab, 200, rate=1000)
    holds = router_holds_ms(imp.stop_capture(), imp.ifnames, lab.topology.port)
    assert len(holds) >= 100 and max(holds) < 20, (len(holds), sorted(holds)[-5:])
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

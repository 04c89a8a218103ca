"""Changing a running lab's network: `lab impair`, `lab partition`/`lab heal`, `lab watch`,
on a lab made by `lab up`, through the installed `lab` command as an instructor runs it.

Each test starts from a router with nothing in force (the `clean` fixture clears it and
checks, through the router's own agent, that nothing is left).  Counts are the router's
own (the router_counts fixture: what it forwarded, dropped, copied), never what a slow
receiver failed to read, checked against exact binomial intervals (the assert_binomial
fixture; this file's four checks are few enough that its Bonferroni level covers them).
"""
from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest

from lab.impairments.router import RouterImpairments
from lab.running import RunningLab
from lab.topology.docker_lab import remove_lab


class Live:
    """The module's lab as an instructor's shell sees it: `lab ...` commands on it (through
    the installed console script), and what its client1 measures."""

    def __init__(self, name: str, lab_command):
        self.name, self.lab = name, lab_command

    def impair(self, *args, check: bool = True) -> subprocess.CompletedProcess:
        return self.lab("impair", "--lab", self.name, *args, check=check)

    def shown(self) -> dict:
        return json.loads(self.impair("--show", "--json").stdout)

    def in_force(self) -> dict:
        """link -> its impairment fields, as --show --json says."""
        return {item["link"]: item["impairment"] for item in self.shown()["links"]}

    def udp(self, count: int, rate: float = 5000) -> dict:
        done = RunningLab.attach(self.name).exec(
            "client1", ["udp-measure", "--host", "server", "--count", str(count), "--rate", f"{rate:g}", "--wait", "1"])
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result["error"] is None and result["sent"] == count, result
        return result

    def tcp(self, nbytes: int, timeout: float = 60) -> dict:
        done = RunningLab.attach(self.name).exec(
            "client1", ["tcp-measure", "--host", "server", "--bytes", str(nbytes), "--timeout", f"{timeout:g}"])
        return json.loads(done.stdout.strip().splitlines()[-1])


def loss_backend(router: RouterImpairments) -> str:
    """What applies loss on this router's kernel: netem where it has it (and
    SOCKETLAB_BACKEND does not rule it out), else nftables."""
    return "tc netem" if router.caps.netem else "nftables numgen"


@pytest.fixture(scope="module")
def live(lab_name, lab_command):
    live = Live(lab_name("live"), lab_command)
    remove_lab(live.name)
    try:
        lab_command("up", "--name", live.name, "--clients", "1")
        yield live
    finally:
        remove_lab(live.name)


@pytest.fixture(scope="module")
def router(live):
    """The lab's router, through the one door (RunningLab)."""
    return RunningLab.attach(live.name).router


@pytest.fixture
def clean(live, router):
    live.impair("--clear")
    yield router
    live.impair("--clear")
    assert router.leftovers() == []


# --- every kind, live -------------------------------------------------------------------------

def test_loss_is_applied_live_within_the_binomial_interval(clean, live, assert_binomial, router_counts):
    live.impair("clients -> servers", "--loss", "20%")
    assert live.shown()["links"][0]["backends"] == {"loss": loss_backend(clean)}
    router = router_counts(clean)
    result = live.udp(10_000)
    c2s = router.since("clients->servers")
    # The router's own counts, not what a slow receiver read (module docstring).
    assert c2s["arrived"] >= result["sent"], (c2s, result)
    assert_binomial(c2s["lost"], c2s["arrived"], 0.2, "requests the router dropped with 20 % live loss one way")
    assert result["received"] <= c2s["forwarded_packets"], (c2s, result)


def test_delay_and_jitter_are_applied_live(clean, live, router_counts):
    live.impair("clients -> servers", "--delay", "40ms", "--jitter", "5ms")
    router = router_counts(clean)
    result = live.udp(1000, rate=1000)
    c2s = router.since("clients->servers")
    assert c2s["lost"] == c2s["dropped_partition"] == 0, c2s      # a delay drops nothing
    rtt, n = result["rtt_ms"], result["received"]
    # What holds however busy the machine (test_impairments' delay test says why): nothing
    # early, the median at least the delay less its sampling error (4 sd), the jitter's
    # spread. How close to the delay from above is measured by benchmarks/fidelity.py.
    assert n >= 100, result
    assert rtt["min"] >= 35 and rtt["max"] - rtt["min"] >= 5, rtt
    assert rtt["p50"] >= 40 - 4 * 5 / n ** 0.5, rtt


def test_duplicate_corrupt_reorder_and_bursty_loss_are_applied_live(clean, live, assert_binomial, router_counts):
    """Each kind in force, replacing the one before. Where the router counts its own
    decisions (nftables' rules, the impairer) they are the binomial sample; netem counts
    neither duplicates nor corruption, so there the client must see them (the rates are
    measured by benchmarks/fidelity.py); loss is always the router's count."""
    live.impair("clients -> servers", "--duplicate", "10%")
    router = router_counts(clean)
    result = live.udp(5000)
    c2s = router.since("clients->servers")
    if clean.caps.netem:
        assert 0 < result["duplicated"] <= result["received"], result
    else:
        assert c2s["forwarded_packets"] >= result["sent"], (c2s, result)
        assert_binomial(c2s["duplicated"], result["sent"], 0.10, "live duplicates the router made")
        assert 0 < result["duplicated"] <= c2s["duplicated"], (result, c2s)

    live.impair("clients -> servers", "--corrupt", "10%")
    assert live.in_force() == {"clients->servers": {"corrupt": 10.0}}   # replaced, not added
    router = router_counts(clean)
    result = live.udp(5000)
    c2s = router.since("clients->servers")
    # A corrupted request fails the server's UDP checksum: the client sees it as a loss.
    assert result["lost"] + result["corrupted"] > 0, result
    if not clean.caps.netem:
        # The engine decided about every request that reached it (its queue full on a
        # starved machine is the machine's, counted apart).
        assert c2s["arrived"] + c2s["dropped_engine_queue"] >= result["sent"], (c2s, result)
        assert_binomial(c2s["corrupted"], c2s["arrived"], 0.10, "live corruption the router made")

    # The router's count of what it sent early (the impairer's decisions, netem's requeues)
    # is the sample; whether a receiver sees an overtaking depends on the sender's pace.
    live.impair("clients -> servers", "--delay", "20ms", "--reorder", "25%", "--seed", "3")
    router = router_counts(clean)
    result = live.udp(2000, rate=2000)
    c2s = router.since("clients->servers")
    assert_binomial(c2s["reordered"], c2s["arrived"], 0.25, f"datagrams the router sent early (client: {result})")

    live.impair("clients -> servers", "--gemodel", "5%,50%")
    backends = live.shown()["links"][0]["backends"]
    assert backends == {"correlated_loss": "tc netem" if clean.caps.netem else "nfqueue impairer"}
    router = router_counts(clean)
    result = live.udp(5000)
    c2s = router.since("clients->servers")
    assert 0 < c2s["lost"] < c2s["arrived"], c2s

    live.impair("clients -> servers", "--loss", "10%", "--loss-correlation", "50%")
    router = router_counts(clean)
    live.udp(5000)
    assert router.since("clients->servers")["lost"] > 0


def test_rate_and_queue_bound_tcp_live(clean, live):
    live.impair("clients <-> servers", "--rate", "4mbit", "--queue", "50")
    assert set(live.in_force()) == {"clients->servers", "servers->clients"}
    nbytes = 1_200_000
    result = live.tcp(nbytes)
    assert result["error"] is None and result["sha256_match"], result
    # Unlimited, this path carries gigabits; limited, the payload stays under the rate, but
    # for a transfer this short htb can be up to two 64 KiB GSO packets early (it charges a
    # packet after sending it; benchmarks/fidelity.py allows the same).
    early = 2 * 65536
    # No floor: how close to the rate a transfer comes is the machine's (a busy sender
    # falls short of any), measured by benchmarks/fidelity.py.
    assert 0 < result["goodput_mbps"] <= 4.0 * nbytes / (nbytes - early), result


# --- state in the router ----------------------------------------------------------------------

def test_show_is_true_after_a_sequence_of_changes_and_clear(clean, live, lab_command):
    live.impair("clients -> servers", "--loss", "5%")
    live.impair("servers -> clients", "--delay", "10ms")          # another link: the first stays
    lab_command("partition", "--lab", live.name, "clients", "servers")
    assert live.in_force() == {"clients->servers": {"loss": 5.0, "partition": True},
                          "servers->clients": {"delay_ms": 10.0, "partition": True}}
    lab_command("heal", "--lab", live.name)                             # every cut link
    assert live.in_force() == {"clients->servers": {"loss": 5.0}, "servers->clients": {"delay_ms": 10.0}}
    # A second, independent reader (another shell) sees the same: the router holds it.
    assert RunningLab.attach(live.name).show()["state"] == [
        {"link": "clients->servers", "loss": 5.0}, {"link": "servers->clients", "delay_ms": 10.0}]
    live.impair("--clear", "clients -> servers")
    assert live.in_force() == {"servers->clients": {"delay_ms": 10.0}}
    live.impair("--clear")
    assert live.in_force() == {}
    assert clean.leftovers() == []


def test_bad_values_are_refused_and_nothing_changes(clean, live):
    live.impair("clients -> servers", "--loss", "5%")
    before = live.shown()
    for args, line in [
        (["clients -> servers", "--loss", "120%"], "lab impair: --loss: 120% is over 100%"),
        (["clients -> servers", "--jitter", "5ms"], "lab impair: --jitter: jitter needs delay"),
        (["clients -> servers", "--rate", "1MB"], "lab impair: --rate: '1MB': unknown rate unit"),
        (["clients -> nowhere", "--loss", "1%"], "lab impair: link clients->nowhere: the router has no interface"),
    ]:
        done = live.impair(*args, check=False)
        assert done.returncode == 2, done
        assert done.stderr.startswith(line) and done.stderr.count("\n") == 1, done.stderr
    assert live.shown() == before


def test_partition_and_heal_with_a_tcp_transfer_running_across_them(clean, live, lab_command):
    # 20 MB at 1 Mbit/s would take 160 s: the `lab partition` comes mid-way however slow
    # the machine is to run it (seconds under emulation), and the rate is lifted after the
    # heal, so the transfer ends when the test says, not when the clock says.
    live.impair("clients <-> servers", "--rate", "1mbit")
    nbytes, outcome = 20_000_000, {}
    worker = threading.Thread(target=lambda: outcome.update(live.tcp(nbytes, timeout=90)))
    worker.start()
    try:
        deadline = time.monotonic() + 120   # a hang, not a slow start: the exec, hashing 20 MB
        while clean.counters()["links"]["clients->servers"]["forwarded_bytes"] < 100_000:
            assert time.monotonic() < deadline, "the transfer never started"
            time.sleep(0.05)  # polling a condition with a deadline
        lab_command("partition", "--lab", live.name, "clients", "servers")
        cut = clean.counters()["links"]["clients->servers"]
        # While cut, the router drops what TCP retransmits, and forwards nothing.
        deadline = time.monotonic() + 60
        while clean.counters()["links"]["clients->servers"]["dropped_partition"] == 0:
            assert time.monotonic() < deadline, "no retransmission reached the cut"
            time.sleep(0.1)  # polling a condition with a deadline
        assert worker.is_alive(), outcome   # the transfer is stalled, not done
        assert clean.counters()["links"]["clients->servers"]["forwarded_packets"] == cut["forwarded_packets"]
        lab_command("heal", "--lab", live.name, "clients", "servers")
        live.impair("--clear")     # the rest at full speed
    finally:
        worker.join(300)           # tcp-measure's own 90 s per operation end it before this
    assert outcome["error"] is None and outcome["sha256_match"] is True, outcome
    assert outcome["bytes_acknowledged"] == nbytes, outcome


# --- lab watch --------------------------------------------------------------------------------

def test_watch_json_counts_what_the_router_did(clean, live, lab_exe, assert_binomial, router_counts):
    """`lab watch --json` shows the router's own counts since it began: forwarded is what
    left the router, after its egress qdisc (with netem the loss is that qdisc's drop,
    and forwarded used to count it as sent), so forwarded + lost is every request and the
    loss is the configured one. What the client got back can only be less (receivers on a
    busy machine drop too): it is bounded by what the router forwarded, never equal to it."""
    live.impair("clients -> servers", "--loss", "20%")
    watch = subprocess.Popen([str(lab_exe), "watch", "--lab", live.name, "--json"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(watch.stdout.readline())
        assert {row["link"] for row in first["links"]} == {"clients->servers", "servers->clients"}
        router = router_counts(clean)
        result = live.udp(3000)
        # netem's own loss is a drop of the link's qdisc (router_counters: "dropped by the queue")
        lost = "dropped_queue" if clean.caps.netem else "dropped_loss"
        deadline = time.monotonic() + 30
        while True:
            line = json.loads(watch.stdout.readline())
            row = next(r for r in line["links"] if r["link"] == "clients->servers")
            if row["forwarded_packets"] + row[lost] >= result["sent"]:
                break
            assert time.monotonic() < deadline, row
        back = next(r for r in line["links"] if r["link"] == "servers->clients")
        c2s, s2c = router.since("clients->servers"), router.since("servers->clients")
        # The same counts as the router's agent gives (the traffic is over: nothing moves).
        assert ({k: row[k] for k in ("forwarded_packets", lost)}, back["forwarded_packets"]) == (
            {k: c2s[k] for k in ("forwarded_packets", lost)}, s2c["forwarded_packets"]), (row, back, c2s, s2c)
        assert row["forwarded_packets"] + row[lost] == result["sent"], (row, result)
        assert_binomial(row[lost], result["sent"], 0.2, "requests lab watch counted dropped with 20 % loss")
        # The server echoes at most what the router let through; the client gets at most that.
        assert result["received"] <= back["forwarded_packets"] <= row["forwarded_packets"], (row, back, result)
        assert line["backends"] == {"clients->servers": {"loss": loss_backend(clean)}}
    finally:
        watch.terminate()
        watch.wait(10)

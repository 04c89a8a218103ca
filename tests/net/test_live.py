"""Changing a running lab's network: `lab impair`, `lab partition`/`lab heal`, `lab watch`,
on a lab made by `lab up`, through the installed `lab` command as an instructor runs it.

Each test starts from a router with nothing in force (the `clean` fixture clears it and
checks, through the router's own agent, that nothing is left).  Counts are checked
against exact binomial intervals (the assert_binomial fixture; this file's checks are few
enough that its Bonferroni level covers them too).
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

def test_loss_is_applied_live_within_the_binomial_interval(clean, live, assert_binomial):
    live.impair("clients -> servers", "--loss", "20%")
    assert live.shown()["links"][0]["backends"] == {"loss": loss_backend(clean)}
    result = live.udp(10_000)
    assert_binomial(result["received"], result["sent"], 0.8, "delivery with 20 % live loss one way")


def test_delay_and_jitter_are_applied_live(clean, live):
    base = live.udp(1000, rate=1000)["rtt_ms"]
    live.impair("clients -> servers", "--delay", "40ms", "--jitter", "5ms")
    result = live.udp(1000, rate=1000)
    rtt = result["rtt_ms"]
    assert result["received"] == 1000, result
    # The documented tolerance (test_impairments): the base path's spread, the engine's
    # millisecond granularity, the median's sampling error at 4 sd.
    tolerance = (base["p99"] - base["p50"]) + 1.0 + 4 * 5 / 1000 ** 0.5
    assert abs(rtt["p50"] - base["p50"] - 40) <= tolerance, (rtt, base)
    assert rtt["min"] >= 35 and rtt["max"] - rtt["min"] >= 5, rtt


def test_duplicate_corrupt_reorder_and_bursty_loss_are_applied_live(clean, live, assert_binomial):
    live.impair("clients -> servers", "--duplicate", "10%")
    result = live.udp(5000)
    assert_binomial(result["duplicated"], result["sent"], 0.10, "live duplicates")

    live.impair("clients -> servers", "--corrupt", "10%")
    assert live.in_force() == {"clients->servers": {"corrupt": 10.0}}   # replaced, not added
    result = live.udp(5000)
    # A corrupted request fails the server's UDP checksum: it shows as a loss.
    assert_binomial(result["lost"], result["sent"], 0.10, "live corruption (seen as loss)")

    live.impair("clients -> servers", "--delay", "20ms", "--reorder", "25%", "--seed", "3")
    assert live.udp(2000, rate=2000)["reordered"] > 0

    live.impair("clients -> servers", "--gemodel", "5%,50%")
    backends = live.shown()["links"][0]["backends"]
    assert backends == {"correlated_loss": "tc netem" if clean.caps.netem else "nfqueue impairer"}
    result = live.udp(5000)
    assert 0 < result["lost"] < result["sent"], result

    live.impair("clients -> servers", "--loss", "10%", "--loss-correlation", "50%")
    assert live.udp(5000)["lost"] > 0


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
    assert 2.0 < result["goodput_mbps"] <= 4.0 * nbytes / (nbytes - early), result


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
    # 1 MB at 1 Mbit/s takes about 8 s: time enough for the `lab partition` to come mid-way.
    live.impair("clients <-> servers", "--rate", "1mbit")
    nbytes, outcome = 1_000_000, {}
    worker = threading.Thread(target=lambda: outcome.update(live.tcp(nbytes, timeout=90)))
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while clean.counters()["links"]["clients->servers"]["forwarded_bytes"] < 100_000:
            assert time.monotonic() < deadline, "the transfer never started"
            time.sleep(0.05)  # polling a condition with a deadline
        lab_command("partition", "--lab", live.name, "clients", "servers")
        cut = clean.counters()["links"]["clients->servers"]
        # While cut, the router drops what TCP retransmits, and forwards nothing.
        deadline = time.monotonic() + 30
        while clean.counters()["links"]["clients->servers"]["dropped_partition"] == 0:
            assert time.monotonic() < deadline, "no retransmission reached the cut"
            time.sleep(0.1)  # polling a condition with a deadline
        assert worker.is_alive(), outcome   # the transfer is stalled, not done
        assert clean.counters()["links"]["clients->servers"]["forwarded_packets"] == cut["forwarded_packets"]
        lab_command("heal", "--lab", live.name, "clients", "servers")
    finally:
        worker.join(120)
    assert outcome["error"] is None and outcome["sha256_match"] is True, outcome
    assert outcome["bytes_acknowledged"] == nbytes, outcome


# --- lab watch --------------------------------------------------------------------------------

def test_watch_json_counts_match_what_udp_measure_saw(clean, live, lab_exe):
    live.impair("clients -> servers", "--loss", "20%")
    watch = subprocess.Popen([str(lab_exe), "watch", "--lab", live.name, "--json"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(watch.stdout.readline())
        assert {row["link"] for row in first["links"]} == {"clients->servers", "servers->clients"}
        result = live.udp(3000)
        # netem's own loss is a drop of the link's qdisc (router_counters: "dropped by the queue")
        lost = "dropped_queue" if clean.caps.netem else "dropped_loss"
        expected = {"forwarded_packets": result["received"], lost: result["sent"] - result["received"]}
        deadline = time.monotonic() + 30
        while True:
            line = json.loads(watch.stdout.readline())
            row = next(r for r in line["links"] if r["link"] == "clients->servers")
            if row["forwarded_packets"] + row[lost] >= result["sent"]:
                break
            assert time.monotonic() < deadline, row
        assert {k: row[k] for k in expected} == expected, (row, result)
        back = next(r for r in line["links"] if r["link"] == "servers->clients")
        assert back["forwarded_packets"] == result["received"], (back, result)
        assert line["backends"] == {"clients->servers": {"loss": loss_backend(clean)}}
    finally:
        watch.terminate()
        watch.wait(10)

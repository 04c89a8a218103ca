"""TCP and UDP under an impaired router (see the package docstring)."""
import time

import pytest

from lab.programs.shared.topology import DEFAULT_PORT
from lab.scenario.stats import acceptance_interval

# Each check wrongly fails once in 100,000 runs when all works (at 0.999 the suite's seven
# checks failed by chance about once in 140 runs: too often for anyone's CI).
CONFIDENCE = 1 - 1e-5
TCP_BYTES = 200_000
UDP_COUNT = 500


def within_binomial(count: int, n: int, p: float) -> bool:
    low, high = acceptance_interval(n, p, CONFIDENCE)
    return low <= count <= high


def tcp(lab, nbytes=TCP_BYTES, timeout=180):
    r = lab.run("client1", f"tcp-measure --timeout 120 --bytes {nbytes}", timeout=timeout)
    assert r.json is not None, r
    return r.json


def udp(lab, count=UDP_COUNT, rate=500, host="client2"):
    r = lab.run(host, f"udp-measure --count {count} --rate {rate}", timeout=120)
    assert r.json is not None, r
    return r.json


@pytest.mark.parametrize("link", ["clients -> servers", "servers -> clients"])
@pytest.mark.parametrize("loss", [0, 5, 20, 40])
def test_tcp_arrives_intact_while_udp_loses_the_configured_share(lab, link, loss):
    if loss == 0 and link == "servers -> clients":
        pytest.skip("no loss is the same in both directions")
    with lab.impair(link, loss=f"{loss}%") if loss else _nothing():
        t = tcp(lab)
        u = udp(lab)
    assert t["sha256_match"] is True and t["bytes_acknowledged"] == TCP_BYTES, t
    # One direction lossy: a datagram's round trip survives with chance 1 - loss.
    assert u["sent"] == UDP_COUNT
    if loss == 0:
        assert u["received"] == UDP_COUNT, u
    else:
        assert within_binomial(u["received"], UDP_COUNT, 1 - loss / 100), u


def test_reordering_is_seen_by_udp_and_hidden_by_tcp(lab):
    with lab.impair("clients -> servers", delay="20ms", reorder="25%"):
        u = udp(lab, count=1000, rate=1000)
        t = tcp(lab)
    assert u["reordered"] > 0 and u["received"] == 1000, u
    assert t["sha256_match"] is True, t


def test_duplication_is_seen_by_udp_and_hidden_by_tcp(lab):
    with lab.impair("clients -> servers", duplicate="10%"):
        u = udp(lab, count=1000, rate=1000)
        t = tcp(lab)
    assert within_binomial(u["duplicated"], 1000, 0.10), u
    assert t["sha256_match"] is True, t


def test_transfer_time_grows_with_delay(lab):
    base = tcp(lab)["transfer_s"]
    with lab.impair("clients -> servers", delay="40ms"):
        delayed = tcp(lab)["transfer_s"]
    # The data and the reply line cross the delayed link at least once: 40 ms at the very least.
    assert delayed >= base + 0.040, (base, delayed)


def test_transfer_time_shrinks_with_bandwidth(lab):
    nbytes = 500_000
    with lab.impair("clients -> servers", rate="2mbit"):
        slow = tcp(lab, nbytes)["transfer_s"]
    with lab.impair("clients -> servers", rate="8mbit"):
        fast = tcp(lab, nbytes)["transfer_s"]
    assert slow >= 0.9 * nbytes * 8 / 2e6, slow          # the limit holds
    assert slow > 2 * fast, (slow, fast)                   # four times the rate: well under half the time


def wait_for(lab, host, cmd, timeout=30):
    """Poll until ``cmd`` on ``host`` prints something."""
    deadline = time.monotonic() + timeout
    while not lab.run(host, cmd, timeout=10).stdout.strip():
        assert time.monotonic() < deadline, f"{cmd!r} on {host} printed nothing within {timeout} s"
        time.sleep(0.05)


def test_a_partition_stalls_tcp_which_recovers_and_udp_loses_what_was_sent(lab):
    cut_s, rate = 2.0, 100
    with lab.impair("clients -> servers", rate="2mbit"):
        transfer = lab.start("client1", "tcp-measure --timeout 60 --bytes 1000000")
        probe = lab.start("client2", f"udp-measure --count 600 --rate {rate} --wait 2")
        # Cut once both are sending: the TCP connection is up, the UDP socket exists.
        wait_for(lab, "client1", f"ss -Htn state established dport = :{DEFAULT_PORT}")
        wait_for(lab, "client2", "ss -Huan")   # udp-measure's socket (the only one there)
        with lab.partition("clients", "servers"):
            began = time.monotonic()      # the cut is in force from here ...
            time.sleep(cut_s)
            cut = time.monotonic() - began  # ... to here at least (healing starts after)
        t = transfer.wait(90).json
        u = probe.wait(90).json
    assert t["sha256_match"] is True, t
    assert t["transfer_s"] >= cut, (t, cut)                            # it waited the cut out
    assert u["lost"] >= 0.8 * cut * rate and u["received"] > 0, (u, cut)  # the cut's datagrams are gone


def test_an_iterative_server_makes_slow_clients_queue_a_concurrent_one_does_not(lab):
    service_s, n = 1.5, 4
    times = {}
    for mode, port in (("iterative", 12001), ("concurrent", 12002)):
        server = lab.start("server", f"tcp-server --mode {mode} --port {port} --backlog 16 "
                                     f"--service-time {service_s}", ready_port=port)
        # n clients at once from one host; the command ends when the last has its reply.
        clients = " ".join([f"tcp-client --json --port {port} --timeout 20 hi &"] * n)
        r = lab.run("client1", f"{clients} wait", timeout=60)
        server.stop()
        assert r.stdout.count('"received": "HI"') == n, r
        times[mode] = r.elapsed
    # One at a time, the command lasts all n services; all at once, about one (plus start-up:
    # four Pythons starting at once on a busy machine take up to a second or so).
    assert times["iterative"] >= n * service_s, times
    assert times["concurrent"] < 2 * service_s, times


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

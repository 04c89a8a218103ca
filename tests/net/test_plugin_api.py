"""The plugin's fixtures and the lab API, on real containers (module-scoped lab for speed)."""
import json

import pytest

from lab.programs.shared.errors import LabError
from lab.programs.shared.impairment import Link


@pytest.fixture(scope="module")
def api_lab(socketlab_module):
    return socketlab_module(clients=2, networks=["dmz"], hosts={"web": "dmz"})


def test_run_gives_exit_code_output_and_the_last_json_object(api_lab):
    r = api_lab.run("client1", "echo first; tcp-client --json 'hello there'; echo oops >&2; exit 3")
    assert r.exit_code == 3 and not r.ok
    assert r.stdout.startswith("first\n") and "oops" in r.stderr
    assert r.json["received"] == "HELLO THERE" and r.json["remote_address"] == api_lab.address("server")


def test_addresses_follow_the_topology(api_lab):
    assert set(api_lab.hosts) == {"router", "server", "web", "client1", "client2"}
    assert api_lab.clients == ["client1", "client2"]
    r = api_lab.run("client2", "python3 -c 'import socket; print(socket.gethostbyname(\"web\"))'")
    assert r.stdout.strip() == api_lab.address("web") == api_lab.addresses["web"]
    assert api_lab.address("router", "dmz").endswith(".1")


def test_a_command_past_its_timeout_is_stopped_and_says_so(api_lab):
    r = api_lab.run("client1", "echo started; sleep 30", timeout=1)
    assert r.timed_out and r.stdout == "started\n" and r.elapsed < 10


def test_a_flood_of_output_is_capped_and_keeps_its_end(api_lab):
    r = api_lab.run("client1", "head -c 50000000 /dev/zero | tr '\\0' x; echo; echo '{\"end\": true}'",
                timeout=60)
    assert r.exit_code == 0 and r.json == {"end": True}
    assert len(r.stdout) < 10_000_000 and "bytes of stdout dropped here" in r.stdout


def test_start_waits_for_the_port_and_stop_ends_it(api_lab):
    server = api_lab.start("web", "python3 -m http.server 8080", ready_port=8080)
    assert server.running
    r = api_lab.run("client1", "python3 -c \"import urllib.request as u; print(u.urlopen('http://web:8080/').status)\"")
    assert r.stdout.strip() == "200", r
    result = server.stop()
    assert not server.running and result.exit_code is not None


def test_start_fails_clearly_when_the_ready_text_never_comes(api_lab):
    with pytest.raises(LabError, match="never appeared"):
        api_lab.start("client1", "echo nope", ready="listening")


def test_impair_is_undone_on_exit_and_nests(api_lab):
    assert api_lab.impairments == {}
    with api_lab.impair("clients -> servers", delay="30ms"):
        with api_lab.impair("clients -> servers", loss="1%"):
            (imp,) = api_lab.impairments.values()
            assert (imp.delay_ms, imp.loss) == (30.0, 1.0)
        (imp,) = api_lab.impairments.values()
        assert (imp.delay_ms, imp.loss) == (30.0, None)
        rtt = api_lab.run("client1", "udp-measure --count 20 --rate 100").json["rtt_ms"]["min"]
        assert rtt >= 30
    assert api_lab.impairments == {}
    assert api_lab.run("client1", "udp-measure --count 20 --rate 100").json["rtt_ms"]["min"] < 30


def test_loss_on_tcp_counts_wire_segments(api_lab, router_counts, assert_binomial):
    """The plugin's labs impair per wire segment: TCP's 64 KiB GSO bursts reach the loss
    rule cut into segments, so "20 %" is a fifth of the segments, not a fifth of the
    bursts (whole bursts lost stalled transfers for minutes)."""
    nbytes = 2_000_000
    with api_lab.impair("clients -> servers", loss="20%"):
        router = router_counts(api_lab.running.router)
        r = api_lab.run("client1", f"tcp-measure --bytes {nbytes} --timeout 600", timeout=900)
        c2s = router.since("clients->servers")
    assert r.exit_code == 0 and r.json["sha256_match"] is True, r
    assert c2s["arrived"] >= nbytes / 1500, c2s           # no packet larger than the MTU
    assert_binomial(c2s["dropped_loss"], c2s["arrived"], 0.20, "segments the loss rule dropped")


def test_a_bad_impairment_reads_like_a_scenario_error(api_lab):
    with pytest.raises(LabError, match=r"loss: .*150"):
        api_lab.impair("clients <-> servers", loss="150%")
    with pytest.raises(LabError, match="unknown network"):
        api_lab.impair("clients <-> nowhere", loss="1%")


def test_partition_cuts_and_heals(api_lab):
    with api_lab.partition("clients", "servers"):
        r = api_lab.run("client1", "tcp-client --json --timeout 1 hi")
        assert r.json["error"] == "TIMEOUT"
    assert api_lab.run("client1", "tcp-client --json hi").json["received"] == "HI"


def test_impair_within_a_partition_keeps_the_cut_and_lab_impair_sees_the_same_state(api_lab, lab_command):
    cut = Link("clients", "servers")
    with api_lab.partition("clients", "servers"):
        with api_lab.impair("clients -> servers", delay="10ms"):
            assert (api_lab.impairments[cut].partition, api_lab.impairments[cut].delay_ms) == (True, 10.0)
            shown = lab_command("impair", "--show", "--json", "--lab", api_lab.name, timeout=60)
            links = {item["link"]: item["impairment"] for item in json.loads(shown.stdout)["links"]}
            assert links["clients->servers"] == {"partition": True, "delay_ms": 10.0}, links
            assert links["servers->clients"] == {"partition": True}, links
        # the inner block's exit restores the cut without the delay; the outer one heals
        assert api_lab.impairments[cut].partition and api_lab.impairments[cut].delay_ms is None
        assert api_lab.run("client1", "tcp-client --json --timeout 1 hi").json["error"] == "TIMEOUT"
    assert api_lab.impairments == {}


def test_limits_reach_the_engine(socketlab):
    from lab import engine
    small = socketlab(clients=1, server="idle", limits={"pids": 128, "memory": "256MiB", "cpus": 0.5})
    config = engine.client().api.inspect_container(f"{small.name}-client1")["HostConfig"]
    assert (config["PidsLimit"], config["Memory"], config["NanoCpus"]) == (128, 256 * 2 ** 20, 500_000_000)
    with pytest.raises(LabError, match=r"limits\.pids"):
        socketlab(clients=1, limits={"pids": 1})


def test_capture_holds_the_exchange(api_lab):
    with api_lab.capture() as cap:
        api_lab.run("client1", "udp-client 'captured words'")
    assert set(cap.pcaps) == {"eth0", "eth1", "eth2"}
    assert any(b"captured words" in data for data in cap.pcaps.values())

"""The resolved model: defaults, units, per-link state over time, LabSpec, resolved_dict."""
import json
from pathlib import Path

import pytest

from lab.programs.shared.impairment import GilbertElliott, Impairment, Link
from lab.scenario import HealStep, HostStep, ImpairStep, PartitionStep, RunStep, SignalStep, WaitStep, load_file, load_text
from lab.programs.shared.problems import ScenarioError
from lab.programs.shared.topology import LabSpec

DATA = Path(__file__).parent / "data"
C2S, S2C = Link("clients", "servers"), Link("servers", "clients")


@pytest.fixture(scope="module")
def full():
    return load_file(DATA / "scenario_full.yaml")


def test_full_example_top_level(full):
    assert full.name == "udp-under-loss"
    assert full.description.startswith("Three clients measure")
    assert full.source == str(DATA / "scenario_full.yaml")
    assert full.version == 1
    assert full.capture is True


def test_full_example_topology(full):
    t = full.topology
    assert t.clients == 3
    assert t.networks == ("dmz",)
    assert t.all_networks == ("clients", "servers", "dmz")
    assert t.hosts == (("server2", "servers"), ("web", "dmz"))
    assert t.host_names == ("router", "server", "server2", "web", "client1", "client2", "client3")
    assert t.server_command == ("host-role", "server", "--tcp-mode", "iterative")


def test_topology_makes_a_lab_spec(full):
    spec = full.topology.lab_spec("mylab")
    assert isinstance(spec, LabSpec)
    assert (spec.lab, spec.clients, spec.extra_networks) == ("mylab", 3, ["dmz"])
    assert spec.extra_hosts == {"server2": "servers", "web": "dmz"}
    assert spec.client_command == ("host-role", "client", "--no-demo")
    topo = spec.build([__import__("ipaddress").ip_network(f"10.77.{i}.0/24") for i in (10, 11, 12)])
    assert [h.name for h in topo.hosts] == list(full.topology.host_names)


def test_initial_impairments_are_per_directed_link(full):
    assert full.impairments == {
        C2S: Impairment(loss=10.0, delay_ms=50.0, jitter_ms=10.0),
        Link("servers", "dmz"): Impairment(rate_kbit=1000.0, queue_limit=50),
        Link("dmz", "servers"): Impairment(rate_kbit=1000.0, queue_limit=50),
    }


def test_steps_have_kinds_times_names_and_positions(full):
    kinds = [type(s) for s in full.steps]
    assert kinds == [RunStep, RunStep, ImpairStep, PartitionStep, HealStep, SignalStep, HostStep, WaitStep]
    assert [s.at_s for s in full.steps] == [0, 1, 5, 10, 15, 20, 21, 22]
    assert [s.name for s in full.steps] == ["srv", "probe", "step-2", "step-3", "step-4", "step-5",
                                            "step-6", "step-7"]
    assert [s.index for s in full.steps] == list(range(8))
    assert str(full.steps[1].position) == f"{DATA / 'scenario_full.yaml'}:31:5"


def test_run_steps(full):
    srv, probe = full.steps[0], full.steps[1]
    assert srv.hosts == ("server2",) and srv.background and srv.timeout_s is None
    assert srv.ready == "listening" and srv.ready_timeout_s == 60.0 and srv.program is None
    assert probe.hosts == ("client1", "client2", "client3")
    assert probe.command == "udp-measure --count 1000 --rate 500"
    assert (probe.background, probe.stagger_s, probe.timeout_s) == (False, 0.1, 30.0)
    assert probe.program == "udp-measure"
    assert [probe.start_offset_s(h) for h in probe.hosts] == pytest.approx([1.0, 1.1, 1.2])
    assert full.run_steps == [srv, probe]
    assert full.step("probe") is probe


def test_impair_replaces_the_whole_link_state(full):
    assert full.steps[2].impairments == {C2S: Impairment(loss=20.0)}   # delay and jitter are gone


def test_partition_and_heal_carry_the_full_new_state(full):
    part, heal = full.steps[3], full.steps[4]
    assert part.links == (C2S, S2C)
    assert part.impairments == {C2S: Impairment(loss=20.0, partition=True), S2C: Impairment(partition=True)}
    assert heal.impairments == {C2S: Impairment(loss=20.0), S2C: Impairment()}


def test_impair_during_a_partition_keeps_it():
    s = load_text("name: t\ndescription: d\nsteps:\n  - {at: 0s, partition: 'clients -> servers'}\n"
                  "  - {at: 1s, impair: {link: clients <-> servers, delay: 5ms}}\n", "x.yaml")
    assert s.steps[0].links == (C2S,)
    assert s.steps[1].impairments == {C2S: Impairment(delay_ms=5.0, partition=True),
                                      S2C: Impairment(delay_ms=5.0)}


def test_signal_host_and_wait_steps(full):
    assert (full.steps[5].action, full.steps[5].targets) == ("stop", ("srv",))
    assert (full.steps[6].action, full.steps[6].hosts) == ("restart", ("server",))
    assert full.steps[7].duration_s == 2.0


def test_defaults_of_a_minimal_scenario():
    s = load_file(DATA / "scenario_minimal.yaml")
    t = s.topology
    assert (t.clients, t.networks, t.hosts, t.server, t.tcp_mode, t.capture) == (1, (), (), "uppercase",
                                                                               "concurrent", False)
    assert t.server_command == ("host-role", "server")        # LabSpec then knows its ready lines
    assert t.lab_spec().server_ready == ("tcp-server listening", "udp-server listening")
    assert s.impairments == {}
    hello = s.steps[0]
    assert (hello.background, hello.stagger_s, hello.timeout_s, hello.ready) == (False, 0.0, 60.0, None)
    assert hello.program == "tcp-client"


def test_idle_server():
    s = load_text("name: t\ndescription: d\ntopology: {server: idle}\n", "x.yaml")
    assert s.topology.server_command == ("host-role", "idle")


def test_units_are_converted():
    s = load_text("name: t\ndescription: d\nimpairments:\n  - link: clients -> servers\n"
                  "    gemodel: {p: 1%, r: 30%}\n    delay: 1.5s\n    jitter: 500us\n    rate: 2gbit\n"
                  "    duplicate: 0.5\n    corrupt: 0.1%\n    reorder: 25%\n", "x.yaml")
    assert s.impairments[C2S] == Impairment(gemodel=GilbertElliott(p=1, r=30), delay_ms=1500.0, jitter_ms=0.5,
                                            rate_kbit=2e6, duplicate=0.5, corrupt=0.1, reorder=25.0)


def test_an_all_zero_impairment_is_left_out_of_the_start_state():
    s = load_text("name: t\ndescription: d\nimpairments:\n  - {link: clients -> servers, loss: 0%}\n", "x.yaml")
    assert s.impairments == {}


def test_model_is_frozen(full):
    import dataclasses
    with pytest.raises(dataclasses.FrozenInstanceError):
        full.name = "x"
    with pytest.raises(TypeError):
        full.impairments[C2S] = Impairment()


def test_resolved_dict_is_json_and_complete(full):
    d = json.loads(json.dumps(full.resolved_dict()))
    assert d["name"] == "udp-under-loss"
    assert d["topology"]["hosts"][:3] == ["router", "server", "server2"]
    assert d["topology"]["server_command"] == ["host-role", "server", "--tcp-mode", "iterative"]
    assert d["impairments"][0] == {"link": "clients->servers", "loss": 10.0, "delay_ms": 50.0, "jitter_ms": 10.0}
    assert d["steps"][1]["kind"] == "run" and d["steps"][1]["hosts"] == ["client1", "client2", "client3"]
    assert d["steps"][3]["impairments"][0] == {"link": "clients->servers", "loss": 20.0, "partition": True}
    assert d["steps"][3]["links"] == ["clients->servers", "servers->clients"]
    assert d["expect"][0] == {"text": "probe.delivery between [0.85, 0.95]", "step": "probe", "path": "delivery",
                              "aggregate": None, "op": "between", "value": [0.85, 0.95],
                              "position": f"{DATA / 'scenario_full.yaml'}:50:5"}


def test_expectations_are_resolved_with_units(full):
    by_text = {e.text: e for e in full.expectations}
    assert set(by_text) == {
        "probe.delivery between [0.85, 0.95]", "probe consistent_with_loss 10%", "probe.rtt_ms.p99 < 300",
        "probe.error == null", "probe.exit_code == 0", "probe.elapsed < 10s", "max(probe.rtt_ms.max) > 40ms",
        'srv.output contains "listening"'}
    assert by_text["probe.elapsed < 10s"].value == 10.0                  # seconds
    assert by_text["max(probe.rtt_ms.max) > 40ms"].value == 40.0         # milliseconds
    loss = by_text["probe consistent_with_loss 10%"]
    assert (loss.value, loss.confidence, loss.path) == (0.1, 0.99, ())
    assert by_text["probe.delivery between [0.85, 0.95]"].value == (0.85, 0.95)


def test_several_operators_make_several_expectations():
    s = load_text("name: t\ndescription: d\nsteps:\n  - {at: 0s, name: p, on: client1, run: x}\n"
                  "expect:\n  - p.delivery: {ge: 90%, lt: 1}\n", "x.yaml")
    assert [(e.op, e.value) for e in s.expectations] == [("ge", 0.9), ("lt", 1.0)]
    assert s.expectations[0].position == s.expectations[1].position


def test_second_and_third_examples_load():
    s = load_file(DATA / "scenario_server_restart.yaml")
    assert s.topology.server_command == ("host-role", "idle")
    queued = s.step("queued")
    assert queued.hosts == ("client1", "client2", "client3", "client4") and queued.timeout_s == 20.0
    assert [e.field for e in s.expectations][:4] == ["queued.received", "max(queued.rtt_ms)",
                                                     "min(queued.rtt_ms)", "count(queued)"]
    assert s.expectations[1].value == 1500.0


def test_load_file_problems():
    from lab.programs.shared.errors import LabError
    with pytest.raises(LabError, match="cannot read scenario"):
        load_file(DATA / "no-such-file.yaml")


def test_load_file_refuses_non_utf8(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"name: t\ndescription: \xff\n")
    with pytest.raises(ScenarioError) as info:
        load_file(path)
    assert info.value.lines == [f"{path}:2:1: not UTF-8 text"]


def test_load_file_refuses_huge_files(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("name: t\ndescription: d\n" + "#" * (1 << 20))
    with pytest.raises(ScenarioError, match="over 1024 KiB"):
        load_file(path)

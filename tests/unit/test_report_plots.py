"""lab.report.plots, and the runner's use of it, from synthetic data: no Docker."""
import json
import random
from types import SimpleNamespace

import pytest

from lab.programs.shared.impairment import Link
from lab.report import plots
from lab.runner import run
from lab.runner.artifacts import RunFolder
from lab.runner.processes import StepProcess
from lab.scenario import load_text

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

SCENARIO = """
name: cut
description: d
topology: {clients: 1}
steps:
  - at: 0s
    name: probe
    on: client1
    run: udp-measure --count 10 --timeline
  - at: 1s
    partition: [clients, servers]
  - at: 2s
    heal: clients -> servers
  - at: 2.5s
    impair: {link: clients -> servers, delay: 20ms}
"""


def synthetic_timeline(n=1200, rate=200.0, cut=(1.0, 4.0)):
    rng = random.Random(1)
    send_ms = [round(i * 1000 / rate, 3) for i in range(n)]
    rtt_ms = [None if cut[0] <= t / 1000 < cut[1] or rng.random() < 0.02 else round(rng.uniform(0.2, 3), 3)
              for t in send_ms]
    return {"send_ms": send_ms, "rtt_ms": rtt_ms}


def test_find_timeline_reads_the_timeline_line_only():
    output = ('noise\n{"timeline": {"rtt_ms": [1.5, null], "send_ms": [0.0, 5.0]}}\n'
              '{"program": "udp-measure", "sent": 2}\n')
    assert plots.find_timeline(output) == {"send_ms": [0.0, 5.0], "rtt_ms": [1.5, None]}
    assert plots.find_timeline('{"program": "udp-measure"}\n') is None
    assert plots.find_timeline('{"timeline": {"send_ms": [0.0], "rtt_ms": []}}\n') is None
    assert plots.find_timeline('{"timeline": broken\n') is None


def test_links_label_joins_both_directions():
    a, b = Link("clients", "servers"), Link("servers", "clients")
    assert plots.links_label([a, b]) == "clients<->servers"
    assert plots.links_label([b]) == "servers->clients"


def test_impairment_changes_come_from_the_scenario():
    scenario = load_text(SCENARIO, "s.yaml")
    assert plots.impairment_changes(scenario, {"step-2": (2.01, 3.3)}) == [
        plots.ImpairmentMark(1.0, "partition clients<->servers"),
        plots.ImpairmentMark(2.0, "heal clients->servers", applied=(2.01, 3.3)),
        plots.ImpairmentMark(2.5, "impair clients->servers")]


def test_impairment_changes_at_the_same_time_share_a_label():
    scenario = load_text(SCENARIO.replace("at: 2.5s", "at: 2s"), "s.yaml")
    changes = plots.impairment_changes(scenario, {"step-2": (2.0, 2.5), "step-3": (2.5, 2.75)})
    assert changes[1:] == [plots.ImpairmentMark(2.0, "heal clients->servers; impair clients->servers", (2.0, 2.75))]


def test_plot_timeline_writes_a_png(tmp_path):
    changes = plots.impairment_changes(load_text(SCENARIO, "s.yaml"), {"step-2": (2.0, 3.3)})
    path = plots.plot_timeline(tmp_path / "plots" / "probe-client1.png", "cut: probe on client1",
                               synthetic_timeline(), start_s=0.05, changes=changes)
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_plot_timeline_copes_with_nothing_back_and_nothing_sent(tmp_path):
    all_lost = {"send_ms": [0.0, 1.0, 2.0], "rtt_ms": [None, None, None]}
    for name, timeline in (("lost.png", all_lost), ("empty.png", {"send_ms": [], "rtt_ms": []})):
        path = plots.plot_timeline(tmp_path / name, "t", timeline, start_s=0.0, changes=[])
        assert path.read_bytes()[:8] == PNG_MAGIC


def finished_process(step, host, stdout, started_at, ended_at):
    proc = StepProcess("container", host, step, "udp-measure --timeline", 60.0, run_id=f"{step}-{host}-1")
    proc.outcome.stdout, proc.started_at, proc.ended_at = stdout, started_at, ended_at
    return proc


def test_the_first_send_is_placed_by_the_end_of_the_output():
    out = '{"timeline": {"send_ms": [0.0], "rtt_ms": [1.0]}}\n{"duration_s": 6.5, "sent": 1}\n'
    proc = finished_process("probe", "client1", out, started_at=100.1, ended_at=107.0)
    assert run._first_send_s(proc, t0=100.0) == pytest.approx(0.5)
    # Without a duration_s (no result line), its start is the best there is.
    assert run._first_send_s(finished_process("p", "c", "", 100.1, 107.0), t0=100.0) == pytest.approx(0.1)


def test_the_runner_draws_each_timeline_and_warns_about_a_broken_one(tmp_path):
    scenario = load_text(SCENARIO, "s.yaml")
    good = json.dumps({"timeline": synthetic_timeline()}) + '\n{"duration_s": 6.0}\n'
    broken = '{"timeline": {"send_ms": [0.0, "x"], "rtt_ms": [1.0, 2.0]}}\n'
    player = SimpleNamespace(t0=10.0, applied={"step-1": (1.0, 1.1)}, processes={
        ("probe", "client1"): finished_process("probe", "client1", good, 10.1, 16.2),
        ("probe", "client2"): finished_process("probe", "client2", broken, 10.1, 16.2),
        ("other", "client1"): finished_process("other", "client1", "no timeline\n", 10.1, 16.2)})
    folder = RunFolder(tmp_path, "cut")
    said = []
    run._save_plots(folder, scenario, player, said.append)
    assert sorted(p.name for p in (folder.path / "plots").iterdir()) == ["probe-client1.png"]
    assert (folder.path / "plots" / "probe-client1.png").read_bytes()[:8] == PNG_MAGIC
    assert len(said) == 1 and said[0].startswith("warning: no plot for probe on client2: TypeError")

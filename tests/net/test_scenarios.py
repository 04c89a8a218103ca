"""Every scenario shipped in scenarios/ passes its own expectations on real containers,
run the way an instructor runs it: `lab run FILE --json` (those in data/under-load.txt
under load, in test_under_load.py)."""
from pathlib import Path

import pytest

from lab.topology.docker_lab import find_containers, find_networks

ROOT = Path(__file__).resolve().parents[2]

SHIPPED = sorted((ROOT / "scenarios").glob("*.yaml"))
# Scenarios whose expectations are about timing, so that a machine much slower than
# the scenario assumes (emulation, TCG) fails them without anything being wrong:
# partition-and-heal needs the router's cut (timed from its clients' release, at least
# 3 s long) to fall inside a 6 s transfer, and under TCG the cut itself took ~7 s to be
# in force. (A busy machine is not a reason: tests/net/test_under_load.py.) The `timing` marker lets CI's VM stage leave
# them out, saying so; everywhere else they run.
TIMING = {"partition-and-heal"}
# Scenarios whose binomial verdict is about the router's loss: it holds only if the
# receivers dropped nothing themselves (issue 16's rule), so that premise is asserted
# from the run's drop accounting, and each lost datagram must have lost a packet at the
# router. large-udp-and-mtu came back 64 % lost for 57 % under emulation on a netem
# kernel: netem lets a lost datagram's other fragments through, and they filled the
# server's reassembly memory (Ip ReasmFails), which then dropped complete datagrams too.
RECEIVER_DROPS = ("Udp.RcvbufErrors", "Ip.ReasmFails")
ROUTER_LOSS = {"large-udp-and-mtu": ("clients->servers", ("large", "small"))}


# Scenarios that tests/net/test_under_load.py runs, two at once beside a CPU hog, with the
# checks below: passing there is passing, so they are not run alone here too, unless they
# carry a marker of their own (TIMING: the VM stage chooses by it).
UNDER_LOAD = {line for line in (ROOT / "tests" / "net" / "data" / "under-load.txt").read_text().splitlines()
              if line and not line.startswith("#")}
ALONE = [p for p in SHIPPED if p.stem not in UNDER_LOAD - TIMING]


def scenario_param(path):
    marks = [pytest.mark.timing] if path.stem in TIMING else []
    return pytest.param(path, id=path.stem, marks=marks)


def test_scenarios_are_shipped():
    assert len(SHIPPED) >= 12, [p.name for p in SHIPPED]
    assert UNDER_LOAD <= {p.stem for p in SHIPPED}, UNDER_LOAD   # what is left out here is run there


@pytest.mark.parametrize("path", [scenario_param(p) for p in ALONE])
def test_shipped_scenario_passes_its_own_expectations(path, tmp_path, lab_run_json, failed_expectations):
    code, [report], stderr = lab_run_json([path], tmp_path)
    if path.stem in ROUTER_LOSS:
        link, steps = ROUTER_LOSS[path.stem]
        drops = report.get("drops") or {}
        assert "hosts" in drops and "router" in drops, ("the drop counters were not read", stderr[-3000:])
        receivers = {host: {k: n for k, n in counts.items() if k in RECEIVER_DROPS}
                     for host, counts in drops["hosts"].items()}
        assert not any(receivers.values()), ("the receivers dropped datagrams themselves", drops)
        # Each datagram lost lost at least one of its fragments at the router (the loss
        # impairment's drops, or netem's, which are its qdisc's).
        router = drops["router"].get(link, {})
        at_router = router.get("dropped_loss", 0) + router.get("dropped_queue", 0)
        lost = sum(r["lost"] for step in steps for r in report["results"][step].values())
        assert 0 < lost <= at_router, (lost, drops)
    assert (code, report["errors"], failed_expectations(report)) == (0, [], []), stderr[-3000:]
    assert report["expectations"], "a shipped scenario must expect something"
    # The run folder holds what an instructor looks at afterwards.
    folder = Path(report["artifacts"])
    assert {"scenario.json", "results.json", "outputs", "logs"} <= {p.name for p in folder.iterdir()}
    # And the lab is gone.
    assert find_containers(report["lab"]) == [] and find_networks(report["lab"]) == []

"""The runner's pure parts: the schedule, reading step output, state merging, JUnit."""
import xml.etree.ElementTree as ET

from lab.programs.shared.impairment import Impairment, Link
from lab.report.model import ExpectationResult, RunReport
from lab.report.render import junit_xml
from lab.runner.processes import Outcome, last_json_object, result_of, split_status
from lab.runner.run import impairment_states
from lab.runner.schedule import end_of_waits, events
from lab.scenario import load_text

SCENARIO = """
name: sched
description: d
topology: {clients: 3, server: idle}
steps:
  - at: 0s
    name: srv
    on: server
    run: tcp-server
    background: true
    ready: listening
  - at: 1s
    name: probe
    on: clients
    stagger: 500ms
    run: udp-measure --count 10
  - at: 1.6s
    impair: {link: clients -> servers, loss: 5%}
  - at: 2s
    partition: [clients, servers]
  - at: 3s
    heal: [clients, servers]
  - at: 4s
    wait: 3s
expect:
  - probe.exit_code: 0
"""


def test_events_are_in_time_order_with_staggered_starts_and_a_ready_gate():
    evs = events(load_text(SCENARIO, "s.yaml"))
    assert [(e.at_s, e.action, e.host or e.step.name) for e in evs] == [
        (0.0, "start", "server"), (0.0, "gate", "srv"),
        (1.0, "start", "client1"), (1.5, "start", "client2"),
        (1.6, "step", "step-2"),
        (2.0, "start", "client3"),
        (2.0, "step", "step-3"), (3.0, "step", "step-4"), (4.0, "step", "step-5")]


def test_waits_set_the_earliest_end():
    assert end_of_waits(load_text(SCENARIO, "s.yaml")) == 7.0


def test_impairment_states_follow_the_steps():
    states = impairment_states(load_text(SCENARIO, "s.yaml"))
    link = Link("clients", "servers")
    assert states[0] == {}
    assert states[1] == {link: Impairment(loss=5.0)}
    assert states[2][link].partition and states[2][link].loss == 5.0
    assert not states[3][link].partition and states[3][link].loss == 5.0


def test_status_line_is_split_from_the_commands_stderr():
    err, status = split_status('oops\n\nSOCKETLAB-STATUS {"exit_code": 3, "elapsed": 0.5, "timed_out": false}\n')
    assert err == "oops\n" and status["exit_code"] == 3
    assert split_status("no status") == ("no status", None)


def test_the_last_json_object_line_is_the_result():
    out = 'listening\n{"a": 1}\nnoise {not json}\n{"b": 2}\ntrailing text\n'
    assert last_json_object(out) == {"b": 2}
    assert last_json_object("[1, 2]\nplain") == {}


def test_runner_fields_override_the_programs_own():
    outcome = Outcome(stdout='{"host": "server", "delivery": 0.9}\n', stderr="", exit_code=0, elapsed=1.5)
    result = result_of("client2", outcome)
    assert result["host"] == "client2" and result["delivery"] == 0.9 and result["exit_code"] == 0


def test_junit_has_a_failure_per_failed_expectation():
    report = RunReport("s", "d", "s.yaml", "lab", None, "2026-01-01T00:00:00+00:00", duration_s=1.0)
    report.expectations = [ExpectationResult("a: 1", "s.yaml:3:5", True, 1, "1"),
                           ExpectationResult("b: 2", "s.yaml:4:5", False, 3, "3 is not 2")]
    report.errors = ["srv: 'listening' never appeared"]
    root = ET.fromstring(junit_xml([report]))
    suite = root.find("testsuite")
    assert suite.get("tests") == "3" and suite.get("failures") == "1" and suite.get("errors") == "1"
    assert [c.find("failure") is not None for c in suite.findall("testcase")] == [False, True, False]
    assert report.exit_code == 1


def test_per_host_values_that_agree_are_shown_once():
    from lab.report.render import observed_text
    from lab.scenario.expect import PerHost
    assert observed_text(PerHost(client1="HI", client2="HI", client3="HI")) == '3 hosts: "HI"'
    assert observed_text(PerHost(client1=1, client2=2)) == '{"client1": 1, "client2": 2}'
    # A value that is itself a mapping (one host's rtt_ms) is shown as it is.
    assert observed_text({"avg": None, "max": None}) == '{"avg": null, "max": null}'
    assert observed_text(0.93) == "0.93"


def test_an_expectation_marks_per_host_observations():
    from lab.scenario.expect import PerHost
    scenario = load_text(SCENARIO, "s.yaml")
    exp = scenario.expectations[0]   # probe.exit_code: 0
    _, observed, _ = exp.evaluate({"client1": {"exit_code": 0}, "client2": {"exit_code": 0}})
    assert isinstance(observed, PerHost) and observed == {"client1": 0, "client2": 0}
    _, observed, _ = exp.evaluate({"client1": {"exit_code": 0}})
    assert observed == 0

"""Choreography that does not ride on exec latency (issue 16), its pure parts: the
`together` and `after` keys, the release in the schedule, spread(...), the hosts'
timestamps in a result, and step-exec's barrier and leftovers (on this machine's own
processes, no Docker)."""
import os
import subprocess
import sys
import textwrap
import time

import pytest

from lab.programs import step_exec
from lab.programs.shared.problems import ScenarioError
from lab.runner.processes import Outcome, result_of, strip_held
from lab.runner.schedule import events
from lab.scenario import load_text

HEAD = "name: t\ndescription: d\ntopology: {clients: 3, server: idle}\n"

SCENARIO = HEAD + """steps:
  - at: 0s
    name: srv
    on: server
    run: tcp-server
    background: true
    ready: listening
    together: true
  - at: 0s
    name: other
    on: client1
    run: udp-measure --count 10
    together: true
  - at: 1s
    name: clients
    on: clients
    together: true
    run: tcp-client --json hi
  - at: 1s
    name: next
    after: clients
    on: clients
    together: true
    run: tcp-client --json hi
  - at: 1s
    stop: srv
    after: next
expect:
  - spread(clients.started_at): {lt: 0.5s}
  - clients.leftovers: 0
"""


def problem(body):
    with pytest.raises(ScenarioError) as info:
        load_text(HEAD + textwrap.dedent(body), "x.yaml")
    assert len(info.value.lines) == 1, info.value.lines
    return info.value.lines[0]


def test_together_steps_of_one_time_are_released_once_after_all_their_starts():
    scenario = load_text(SCENARIO, "s.yaml")
    evs = [(e.at_s, e.action, e.host or ",".join(s.name for s in e.group) or e.step.name)
           for e in events(scenario)]
    assert evs == [
        (0.0, "start", "server"), (0.0, "start", "client1"), (0.0, "release", "srv,other"),
        (0.0, "gate", "srv"),         # the gate of a held server comes after its release
        (1.0, "start", "client1"), (1.0, "start", "client2"), (1.0, "start", "client3"),
        (1.0, "release", "clients"),
        # `next` has its own `after`: its own release, not the one of `clients`
        (1.0, "start", "client1"), (1.0, "start", "client2"), (1.0, "start", "client3"),
        (1.0, "release", "next"),
        (1.0, "step", "step-4")]
    assert scenario.step("next").after == "clients" and scenario.step("step-4").after == "next"
    assert scenario.step("clients").together and not scenario.step("srv").after


def test_spread_is_max_minus_min_in_seconds():
    scenario = load_text(SCENARIO, "s.yaml")
    exp = scenario.expectations[0]
    assert exp.value == 0.5
    results = {"client1": {"started_at": 100.25}, "client2": {"started_at": 100.0},
               "client3": {"started_at": 100.5}}
    assert exp.evaluate(results)[:2] == (False, 0.5)      # 0.5 is not < 0.5
    results["client3"]["started_at"] = 100.4
    assert exp.evaluate(results)[0] is True


def test_after_must_name_an_earlier_step():
    assert problem("""\
        steps:
          - {at: 0s, name: a, on: client1, run: 'true', after: b}
          - {at: 0s, name: b, on: client1, run: 'true'}
        """) == "x.yaml:5:56: steps[0].after: 'b' (steps[1]) is not earlier than this step"
    assert problem("""\
        steps:
          - {at: 0s, name: first, on: client1, run: 'true'}
          - {at: 0s, stop: first, after: frist}
        """).endswith("steps[1].after: no step is named 'frist' (did you mean 'first'?)")


def test_together_and_stagger_contradict():
    assert problem("""\
        steps:
          - {at: 0s, name: a, on: clients, run: 'true', together: true, stagger: 1s}
        """) == ("x.yaml:5:49: steps[0].together: together starts every host at one moment: "
                 "leave out stagger")


def test_a_result_carries_the_hosts_timestamps_and_leftovers():
    outcome = Outcome(stdout='{"received": "HI"}\n', exit_code=0, elapsed=1.5, started_at=1000.0, leftovers=2)
    result = result_of("client1", outcome)
    assert (result["started_at"], result["ended_at"], result["leftovers"]) == (1000.0, 1001.5, 2)
    own = result_of("client1", Outcome(stdout='{"started_at": 1000.2, "ended_at": 1000.3}\n',
                                       elapsed=1.5, started_at=1000.0))
    assert (own["started_at"], own["ended_at"]) == (1000.2, 1000.3)   # the program's own win


def test_the_held_line_is_not_part_of_the_output():
    assert strip_held(b"SOCKETLAB-HELD\nboom\n") == b"boom\n"
    assert strip_held(b"x\nSOCKETLAB-HELD\ny\n") == b"x\ny\n"
    assert strip_held(b"no SOCKETLAB-HELD here") == b"no SOCKETLAB-HELD here"


def run_step_exec(tmp_path, *args):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return subprocess.Popen([sys.executable, "-m", "lab.programs.step_exec", "--id", f"t{os.getpid()}",
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)


def status_of(stderr: str) -> dict:
    import json
    return json.loads(stderr.rsplit(step_exec.STATUS_MARK, 1)[1])


def test_step_exec_holds_until_the_release_file_exists(tmp_path):
    release = tmp_path / "release"
    proc = run_step_exec(tmp_path, "--hold", str(release), "--", "sh", "-c", "echo ran")
    first = proc.stderr.readline()
    assert first.strip() == step_exec.HELD_MARK
    assert proc.poll() is None             # held: nothing ran
    released = time.time()
    release.touch()
    out, err = proc.communicate(timeout=30)
    assert out == "ran\n"
    assert status_of(err)["started_at"] >= released - 0.01


def test_step_exec_ends_what_its_step_left_running(tmp_path):
    mine = f"sleep 300.{os.getpid()}"     # a command line no other process on the machine has
    proc = run_step_exec(tmp_path, "--", "sh", "-c", f"{mine} & {mine} & echo started")
    out, err = proc.communicate(timeout=30)
    status = status_of(err)
    assert out == "started\n" and status["exit_code"] == 0
    assert status["leftovers"] == 2
    # and they are gone
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert mine not in ps


def test_group_members_reads_the_group_from_proc():
    assert os.getpid() in step_exec.group_members(os.getpgrp())

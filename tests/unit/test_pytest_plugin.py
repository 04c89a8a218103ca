"""The pytest plugin without a Docker Engine, and the lab API's pure parts."""
import os
import subprocess
import sys

import pytest

from lab.programs.shared.errors import LabError
from lab.programs.shared.impairment import Change, Impairment, Link, next_state
from lab.testing import lab_name, on_top, parse_impairment

USER_TESTS = '''
import pytest

def test_with_a_lab(socketlab):
    socketlab(clients=1)

@pytest.mark.socketlab
def test_marked():
    pass

def test_plain():
    pass
'''


def run_pytest(folder, *args, **env):
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", *args],
                          cwd=folder, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})
    return done.returncode, done.stdout + done.stderr


def test_without_an_engine_the_lab_tests_are_skipped_with_one_reason(tmp_path):
    (tmp_path / "test_user.py").write_text(USER_TESTS)
    code, out = run_pytest(tmp_path, "--strict-markers", DOCKER_HOST="unix:///nonexistent/docker.sock")
    assert code == 0 and "1 passed, 2 skipped" in out, out
    skipped = [line for line in out.splitlines() if line.startswith("SKIPPED")]
    assert len(skipped) == 1 and skipped[0].startswith("SKIPPED [2] "), out   # one reason for both
    assert ": socketlab: no Docker Engine reachable (cannot reach the Docker Engine" in skipped[0], out


def test_require_docker_turns_the_skip_into_a_failure(tmp_path):
    (tmp_path / "test_user.py").write_text(USER_TESTS)
    (tmp_path / "pytest.ini").write_text("[pytest]\nsocketlab_require_docker = true\n")
    code, out = run_pytest(tmp_path, DOCKER_HOST="unix:///nonexistent/docker.sock")
    assert code == 1 and "1 passed, 2 errors" in out, out


def test_impairments_parse_like_a_scenario_file():
    state = parse_impairment("clients <-> servers", {"loss": "20%", "delay": "50ms", "rate": "1mbit"})
    assert set(state) == {Link("clients", "servers"), Link("servers", "clients")}
    assert state[Link("clients", "servers")] == Impairment(loss=20.0, delay_ms=50.0, rate_kbit=1000.0)
    assert list(parse_impairment("servers -> clients", {"loss": 5})) == [Link("servers", "clients")]
    with pytest.raises(LabError, match=r"impair\('clients -> servers', jitter='5ms'\): .*jitter needs delay"):
        parse_impairment("clients -> servers", {"jitter": "5ms"})
    with pytest.raises(LabError, match=r"los='5%'\): los: unknown key .*did you mean 'loss'"):
        parse_impairment("clients -> servers", {"los": "5%"})


def test_impair_sets_fields_on_top_through_the_one_state_model():
    a, b = Link("clients", "servers"), Link("servers", "clients")
    state = {a: Impairment(delay_ms=30.0, partition=True), b: Impairment(loss=2.0)}
    change = on_top(state, {a: Impairment(loss=1.0)})
    assert change.impair == {a: Impairment(delay_ms=30.0, loss=1.0, partition=True)}
    # next_state, as `lab impair` and the router's agent apply it: the cut stays, b is untouched
    assert next_state(state, change) == {a: Impairment(delay_ms=30.0, loss=1.0, partition=True),
                                         b: Impairment(loss=2.0)}
    assert next_state({}, on_top({}, {a: Impairment()})) == {}
    # what a block's exit sends makes the state from before whole again
    assert next_state(next_state(state, change), Change.replace_all(state)) == state


def test_lab_names_are_random_and_valid():
    from lab.programs.shared.topology import check_lab_name
    names = {lab_name() for _ in range(50)}
    assert len(names) == 50 and all(check_lab_name(n) for n in names)

"""The pytest plugin as a user meets it: `pytest` in a folder of their own, with socketlab
installed (entry point pytest11), no conftest of ours."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"


def pytest_in(folder: Path, *args, env=None, timeout=600):
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", *args],
                          cwd=folder, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    return done.returncode, done.stdout + done.stderr


def test_the_issue_example_runs_as_it_is(tmp_path):
    shutil.copy(DATA / "acceptance_udp_loses.py", tmp_path / "test_acceptance.py")
    code, out = pytest_in(tmp_path)
    assert code == 0 and "1 passed" in out, out


TWO_TESTS = '''
import os
import pytest

def note(lab):
    with open("labs.txt", "a") as f:
        f.write(f"{os.environ.get('PYTEST_XDIST_WORKER')} {lab.name} {lab.address('server')}\\n")

@pytest.mark.socketlab
def test_one(socketlab):
    lab = socketlab(clients=1)
    note(lab)
    assert lab.run("client1", "tcp-client --json one").json["received"] == "ONE"

def test_two(socketlab):
    lab = socketlab(clients=2, server="idle")
    note(lab)
    server = lab.start("server", "udp-server", ready="listening")
    assert lab.run("client2", "udp-client --json two").json["received"] == "TWO"
    assert server.stop().exit_code is not None
'''


def test_two_workers_bring_up_labs_side_by_side(tmp_path):
    (tmp_path / "test_two.py").write_text(TWO_TESTS)
    code, out = pytest_in(tmp_path, "-n", "2", "--strict-markers", "-p", "xdist")
    assert code == 0 and "2 passed" in out, out
    workers, names, servers = zip(*(line.split() for line in (tmp_path / "labs.txt").read_text().splitlines()))
    # Two workers, two labs, two subnets.
    assert sorted(workers) == ["gw0", "gw1"] and len(set(names)) == 2 and len(set(servers)) == 2


def test_a_missing_image_fails_rather_than_skips(tmp_path):
    (tmp_path / "test_two.py").write_text(TWO_TESTS)
    code, out = pytest_in(tmp_path, "-k", "one", env={"SOCKETLAB_IMAGE": "socketlab-host:not-built-h9"})
    assert code == 1 and "1 failed" in out and "lab images build" in out, out


def test_keep_leaves_the_failed_tests_lab_up(tmp_path):
    from lab.topology.docker_lab import find_containers, remove_lab
    (tmp_path / "test_fail.py").write_text(
        "def test_fails(socketlab):\n    lab = socketlab(clients=1)\n    print('LAB', lab.name)\n    assert False\n")
    code, out = pytest_in(tmp_path, "-s", "--socketlab-keep")
    name = re.search(r"LAB (\S+)", out).group(1)
    try:
        assert code == 1 and "labs left up: " + name in out, out
        assert len(find_containers(name)) == 3
    finally:
        remove_lab(name)


def test_scenario_files_are_test_items(tmp_path):
    folder = tmp_path / "scenarios"
    folder.mkdir()
    shutil.copy(ROOT / "scenarios" / "udp-uppercase.yaml", folder)
    shutil.copy(DATA / "runcli-fail.yaml", folder)
    junit = tmp_path / "junit.xml"
    code, out = pytest_in(tmp_path, "scenarios", f"--junitxml={junit}")
    assert code == 1 and "1 failed, 1 passed" in out, out
    # The failure message is the expectations table, the failed row marked.
    assert re.search(r"✗ .*", out) and "FAILED" in out, out
    xml = junit.read_text()
    assert 'name="udp-uppercase"' in xml and "<failure" in xml
    code, out = pytest_in(tmp_path, "scenarios", "-k", "uppercase", "--co")
    assert "udp-uppercase.yaml::udp-uppercase" in out and "1 deselected" in out, out


def test_any_folder_of_scenarios_with_the_option(tmp_path):
    shutil.copy(ROOT / "scenarios" / "tcp-uppercase.yaml", tmp_path)
    (tmp_path / "broken.yaml").write_text("name: broken\ndescription: x\nstepz: []\n")
    code, out = pytest_in(tmp_path, "--co")
    assert "no tests collected" in out, out                      # off by default outside scenarios/
    code, out = pytest_in(tmp_path, "--socketlab-scenarios", "--co")
    assert "broken.yaml:3:1: stepz" in out and "tcp-uppercase" in out, out

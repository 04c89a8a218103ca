"""Labs come up side by side, and leave nothing behind: by `lab down`, Ctrl-C or SIGTERM."""
import signal
import subprocess

import pytest

from lab.topology.docker_lab import DockerLab, find_containers, find_networks, remove_lab
from lab.programs.shared.topology import LabSpec


def test_two_labs_run_side_by_side(tmp_path, lab_name, run_json):
    a = DockerLab.plan(LabSpec(lab=lab_name("a"), clients=1), tmp_path)
    with a:
        b = DockerLab.plan(LabSpec(lab=lab_name("b"), clients=1), tmp_path)
        with b:
            subnets_a = {n.subnet for n in a.topology.networks}
            subnets_b = {n.subnet for n in b.topology.networks}
            assert not any(x.overlaps(y) for x in subnets_a for y in subnets_b)
            for lab in (a, b):
                result = run_json(lab, "client1", ["tcp-client", "--json", "side by side"])
                assert result["received"] == "SIDE BY SIDE"
                assert result["remote_address"] == str(lab.topology.host("server").address)
        assert find_containers(b.topology.lab) == []
        # Taking b down left a untouched.
        assert run_json(a, "client1", ["udp-client", "--json", "still here"])["received"] == "STILL HERE"


def test_same_lab_name_twice_is_refused(tmp_path, lab_cli, lab_name):
    name = lab_name("twice")
    with DockerLab.plan(LabSpec(lab=name, clients=0), tmp_path):
        second = lab_cli("up", "--name", name, stderr=subprocess.PIPE, text=True)
        _, err = second.communicate(timeout=60)
        assert second.returncode == 2
        assert "already up" in err and "Traceback" not in err
        assert len(find_containers(name)) == 2  # the first lab is intact


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_during_bring_up_leaves_nothing(tmp_path, sig, read_lines, lab_cli, lab_name):
    name = lab_name(f"int{int(sig)}")
    up = lab_cli("up", "--name", name, "--clients", "30", "--work", str(tmp_path),
                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = read_lines(up.stderr)
    try:
        # Interrupt once containers are being started: read progress, not the clock.
        err.wait_for("starting client", timeout=120)
        assert find_containers(name), "the lab had not started creating containers"
        up.send_signal(sig)
        up.wait(timeout=120)
        assert up.returncode == 128 + sig, err.text()      # 130 Ctrl-C, 143 SIGTERM (lab --help)
        assert "Traceback" not in err.text()
        assert find_containers(name) == [] and find_networks(name) == []
    finally:
        up.kill()
        remove_lab(name)


def test_a_missing_image_is_the_environment_exit_3_and_creates_nothing(tmp_path, lab_cli, lab_name):
    import os
    name = lab_name("noimg")
    env = {**os.environ, "SOCKETLAB_IMAGE": "socketlab-host:no-such-image"}
    done = lab_cli("up", "--name", name, "--work", tmp_path, env=env,
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = done.communicate(timeout=120)
    assert done.returncode == 3, err
    assert "socketlab-host:no-such-image is not in the engine" in err and "lab images build" in err
    assert "Traceback" not in err
    assert not find_containers(name) and not find_networks(name)


def test_ten_clients_come_up_concurrently_and_leave_nothing(tmp_path, lab_cli, lab_name):
    """Concurrent bring-up keeps the order that matters: every client's demo went through
    the router to the server (so both were ready before it ran), and `lab down` leaves no
    labelled container or network of the lab's 12 and 2."""
    name = lab_name("ten")
    up = lab_cli("up", "--name", name, "--clients", "10", "--work", str(tmp_path),
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = up.communicate(timeout=300)
        assert up.returncode == 0, err
        assert len(find_containers(name)) == 12 and len(find_networks(name)) == 2
        for i in range(1, 11):
            ctr = next(c for c in find_containers(name) if c.name == f"{name}-client{i}")
            log = ctr.logs().decode()
            assert "OVER TCP" in log and "OVER UDP" in log and "demo done" in log, log
        down = lab_cli("down", name, stderr=subprocess.PIPE, text=True)
        down.communicate(timeout=120)
        assert down.returncode == 0
        assert find_containers(name) == [] and find_networks(name) == []
    finally:
        up.kill()
        remove_lab(name)

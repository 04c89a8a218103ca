"""Engines that are not this machine's (docs/remote-engines.md), on the real engine: a
second machine sharing it (SOCKETLAB_MACHINE_ID), and work folders by archive
(SOCKETLAB_BIND_MOUNTS=0: what a remote engine gets)."""
import json
import os
import signal
import subprocess
import sys

import pytest

from lab import engine
from lab.programs.shared.topology import LabSpec
from lab.topology.docker_lab import DockerLab, container_name, find_containers, remove_lab

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAKE_LAB = """
import sys, time
from lab.topology.docker_lab import DockerLab
from lab.programs.shared.topology import LabSpec
lab = DockerLab.plan(LabSpec(lab=sys.argv[1], clients=1))
lab.up()
print("up", flush=True)
time.sleep(600)
"""


def as_machine(machine: str) -> dict:
    return dict(os.environ, SOCKETLAB_MACHINE_ID=machine, PYTHONPATH=ROOT)


def test_a_second_machines_lab_survives_this_ones_reaping_and_its_own_reaps_it(lab_name, lab_exe, read_lines):
    name, other = lab_name("othermachine"), f"other-{lab_name('m')}"
    proc = subprocess.Popen([sys.executable, "-c", MAKE_LAB, name], stdout=subprocess.PIPE, text=True,
                            env=as_machine(other))
    try:
        read_lines(proc.stdout).wait_for("up", timeout=120)
        os.kill(proc.pid, signal.SIGKILL)          # its owner is gone: stale, for its own machine
        proc.wait(30)
        # Any `lab` command of this machine reaps stale labs first: not another machine's.
        status = subprocess.run([str(lab_exe), "status", "--json"], capture_output=True, text=True, timeout=120,
                                env=dict(os.environ, PYTHONPATH=ROOT), check=True)
        shown = json.loads(status.stdout)[name]
        assert shown["machine"] == other and shown["this_machine"] is False
        assert find_containers(name), "this machine removed another machine's lab"
        # The other machine's own next command judges it stale and removes it.
        down = subprocess.run([str(lab_exe), "down", "--stale"], capture_output=True, text=True, timeout=120,
                              env=as_machine(other))
        assert down.returncode == 0, down.stderr
        assert name in down.stderr, down.stderr
        assert not find_containers(name)
    finally:
        if proc.poll() is None:
            proc.kill()
        remove_lab(name)


def test_work_goes_in_and_comes_back_by_archive_without_a_bind_mount(tmp_path, monkeypatch, lab_name):
    monkeypatch.setenv(engine.BIND_MOUNTS_ENV, "0")
    work = tmp_path / "work"
    (work / "in").mkdir(parents=True)
    (work / "in" / "given.txt").write_text("from this machine\n")
    (work / "kept.txt").write_text("as it was\n")
    with DockerLab.plan(LabSpec(lab=lab_name("archive"), clients=1), work) as lab:
        mounts = lab.c.api.inspect_container(container_name(lab.topology.lab, "server"))["Mounts"]
        assert mounts == [], mounts
        assert lab.exec("client1", ["cat", "/work/in/given.txt"]).stdout == "from this machine\n"
        made = lab.exec("server", ["sh", "-c", "mkdir -p /work/out && echo made on the server >/work/out/r.txt"])
        assert made.exit_code == 0, made.stderr
        assert lab.exec("client1", ["test", "-e", "/work/out/r.txt"]).exit_code == 1   # each host its own copy
        assert not (work / "out").exists()        # nothing comes back while the lab runs
    assert (work / "out" / "r.txt").read_text() == "made on the server\n"
    assert (work / "kept.txt").read_text() == "as it was\n"


@pytest.mark.parametrize("bind_mounts", ["1", "0"], ids=["bind-mount", "archive"])
def test_the_plugins_work_folder_is_the_same_by_archive_as_by_bind_mount(tmp_path, monkeypatch, lab_name,
                                                                         bind_mounts):
    """Lab.work after bring-up: what a test writes there reaches the hosts before its next
    run; what a run writes in /work is in the folder when the run returns; with and without
    a bind mount alike (a remote engine has none)."""
    from lab.testing import open_lab
    monkeypatch.setenv(engine.BIND_MOUNTS_ENV, bind_mounts)
    work = tmp_path / "work"
    work.mkdir()
    (work / "before.txt").write_text("written before bring-up\n")
    lab = open_lab(clients=1, work=work, name=lab_name(f"plugwork{bind_mounts}"))
    try:
        assert lab.running.docker.work_by_archive == (bind_mounts == "0")
        (work / "after.txt").write_text("written after bring-up\n")
        (work / "before.txt").write_text("changed after bring-up\n")
        (work / "sub").mkdir()
        (work / "sub" / "new.txt").write_text("in a new folder\n")
        r = lab.run("client1", "cat /work/after.txt /work/before.txt /work/sub/new.txt")
        assert r.stdout == "written after bring-up\nchanged after bring-up\nin a new folder\n", r
        assert lab.run("server", "echo from the server >/work/made.txt").ok
        assert (work / "made.txt").read_text() == "from the server\n"   # back when the run returns
        r = lab.run("client1", "cat /work/made.txt")                     # and on the other hosts
        assert r.stdout == "from the server\n", r
        (work / "made.txt").write_text("changed here\n")
        assert lab.exec("server", ["cat", "/work/made.txt"]).stdout == "changed here\n"
    finally:
        lab.close()
    assert (work / "made.txt").read_text() == "changed here\n"
    assert (work / "before.txt").read_text() == "changed after bring-up\n"


def test_a_class_lab_by_archive_gives_its_work_back_at_lab_down(tmp_path, lab_name, lab_exe):
    name = lab_name("archup")
    work = tmp_path / "work"
    env = dict(os.environ, PYTHONPATH=ROOT, SOCKETLAB_BIND_MOUNTS="0")
    try:
        up = subprocess.run([str(lab_exe), "up", "--name", name, "--clients", "1", "--work", str(work)],
                            capture_output=True, text=True, timeout=300, env=env)
        assert up.returncode == 0, up.stderr
        assert "brought back when the lab is removed" in up.stderr + up.stdout
        wrote = subprocess.run([str(lab_exe), "exec", "--lab", name, "client1", "--", "sh", "-c",
                                "echo from client1 >/work/notes.txt"], capture_output=True, text=True,
                               timeout=120, env=env)
        assert wrote.returncode == 0, wrote.stderr
        assert not (work / "notes.txt").exists()
        down = subprocess.run([str(lab_exe), "down", name], capture_output=True, text=True, timeout=120, env=env)
        assert down.returncode == 0, down.stderr
        assert (work / "notes.txt").read_text() == "from client1\n"
    finally:
        remove_lab(name)

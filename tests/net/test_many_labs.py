"""Many labs on one engine: runs started together, crash cleanup, per-host limits.

- 8 `lab run` started at the same moment, in a pool small enough that they contend for
  subnets, all pass, each on its own subnets and name, and leave nothing.
- Two `lab up` of one name at the same moment: one wins, the other says so and leaves it whole.
- A `lab run` killed with -9 mid-step: the next `lab` command removes its lab, and says so.
- `lab down --stale` removes only labs whose owner is gone: not a class lab, not a live run.
- Limits are in the engine's HostConfig: defaults, `lab up` options, the router's own.
- A fork bomb and a memory hog stay on their hosts: the router, the server and a third
  client still answer; the run reports the timeout and the OOM kill; the bomb ends with
  its step (the host forks again after it).

About 2.5 minutes on the shared 2-core machine: the 8 parallel runs about 70 s, the others
20-30 s each.
"""
import functools
import ipaddress
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import docker

from lab import labels
from lab.programs.shared import topology as model
from lab.topology.docker_lab import DockerLab, find_containers, find_networks, remove_lab
from lab.programs.shared.topology import LabSpec

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
PARALLEL = 8

RUN_TIMEOUT = 300
IDLE = ("host-role", "idle")


@functools.lru_cache(maxsize=1)
def engine() -> docker.DockerClient:
    return docker.from_env()


def left_of(lab: str) -> list:
    return find_containers(lab) + find_networks(lab)


def wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(0.1)  # polling a condition with a deadline


def contended_pool() -> ipaddress.IPv4Network:
    """The last /19 of this session's pool: 31 usable /24s for 8 labs of 2, so random starts
    still collide and the engine's arbitration is exercised (the whole pool if smaller)."""
    pool = model.pool()
    return list(pool.subnets(new_prefix=19))[-1] if pool.prefixlen <= 19 else pool


def test_parallel_runs_each_get_their_own_subnets_and_all_pass(tmp_path, lab_exe):
    pool = contended_pool()
    procs = []
    for i in range(PARALLEL):
        procs.append(subprocess.Popen(
            [str(lab_exe), "--subnets", str(pool), "run", DATA / "many-echo.yaml", "--json",
             "--runs-dir", tmp_path / f"runs{i}", "--work", tmp_path / "work"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT))
    done = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=RUN_TIMEOUT)
            done.append((proc.returncode, out, err))
    finally:
        for proc in procs:
            proc.kill()
    names = set()
    for code, out, err in done:
        assert "Traceback" not in err, err
        assert code == 0, err
        report, = json.loads(out)                          # --json: one report per file
        assert report["passed"], report
        names.add(report["lab"])
        subnets = [ipaddress.ip_network(s) for s in re.findall(r"network \S+ (\S+/24)", err)]
        assert len(subnets) == 2 and all(s.subnet_of(pool) for s in subnets), err
    assert len(names) == PARALLEL                          # a name of its own, each
    taken = sum(err.count("was taken meanwhile") for _, _, err in done)
    print(f"{taken} subnet collisions among {PARALLEL} parallel runs, all resolved")
    for name in names:
        assert left_of(name) == []


def test_two_lab_up_of_one_name_at_once_one_wins_and_the_other_leaves_it_intact(tmp_path, lab_cli, lab_name):
    name = lab_name("same")
    procs = [lab_cli("up", "--name", name, "--clients", "0", "--server", "idle", "--work", tmp_path,
                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        errs = [proc.communicate(timeout=180)[1] for proc in procs]
        codes = [proc.returncode for proc in procs]
        assert sorted(codes) == [0, 2], errs
        loser = errs[codes.index(2)]
        assert "already up" in loser and "Traceback" not in loser, loser
        # The winner's lab is whole: the loser removed only what it had made itself.
        assert sorted(c.status for c in find_containers(name)) == ["running", "running"]
        assert len(find_networks(name)) == 2
    finally:
        for proc in procs:
            proc.kill()
        remove_lab(name)


def test_a_run_killed_with_9_is_removed_by_the_next_lab_command(tmp_path, lab_exe, read_lines, lab_cli):
    run = lab_cli("run", DATA / "many-sleep.yaml", "--runs-dir", tmp_path / "runs", "--work", tmp_path / "work",
                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = read_lines(run.stderr)
    name = None
    try:
        name = re.search(r"bringing up lab (\S+)", err.wait_for("bringing up lab", timeout=120)).group(1)
        err.wait_for("sleeper on client1: sleep 60", timeout=120)          # mid-step
        assert len(find_containers(name)) == 3 and len(find_networks(name)) == 2
        run.kill()                                                           # SIGKILL: no cleanup at all
        run.wait(timeout=30)
        assert len(find_containers(name)) == 3, "kill -9 cannot have cleaned up: the test would prove nothing"
        status = subprocess.run([str(lab_exe), "status"], capture_output=True, text=True, timeout=120)
        assert status.returncode == 0, status.stderr
        said = [line for line in status.stderr.splitlines() if name in line]
        assert len(said) == 1 and said[0].startswith("lab: removed"), status.stderr
        assert left_of(name) == []
        assert name not in status.stdout                                    # not listed as up either
    finally:
        run.kill()
        if name:
            remove_lab(name)


def _stale_lab(name: str) -> None:
    """A lab made by a process that then ends without taking it down (os._exit)."""
    code = ("import os, sys; from pathlib import Path; from lab.topology.docker_lab import DockerLab; "
            "from lab.programs.shared.topology import LabSpec; "
            f"DockerLab.plan(LabSpec(lab={name!r}, clients=0, server_command={IDLE!r})).up(); os._exit(0)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, cwd=ROOT)


def test_down_stale_removes_only_labs_whose_owner_is_gone(tmp_path, lab_exe, lab_name):
    stale, live, kept = lab_name("stale"), lab_name("owned"), lab_name("kept")
    try:
        up = subprocess.run([str(lab_exe), "up", "--name", kept, "--clients", "0", "--server", "idle",
                             "--work", tmp_path], capture_output=True, text=True, timeout=120)
        assert up.returncode == 0, up.stderr
        _stale_lab(stale)
        with DockerLab.plan(LabSpec(lab=live, clients=0, server_command=IDLE), tmp_path):
            assert find_containers(stale)
            down = subprocess.run([str(lab_exe), "down", "--stale"], capture_output=True, text=True, timeout=120)
            assert down.returncode == 0, down.stderr
            assert stale in down.stderr and live not in down.stderr and kept not in down.stderr
            assert left_of(stale) == []
            assert len(find_containers(live)) == 2 and len(find_containers(kept)) == 2
    finally:
        for name in (stale, live, kept):
            remove_lab(name)


def host_config(lab: str, host: str) -> dict:
    return engine().api.inspect_container(f"{lab}-{host}")["HostConfig"]


def test_limits_are_enforced_by_the_engine(tmp_path, lab_exe, lab_name):
    mib = 2 ** 20
    cls, lib = lab_name("limits"), lab_name("deflimits")
    try:
        up = subprocess.run([str(lab_exe), "up", "--name", cls, "--clients", "1",
                             "--pids", "100", "--memory", "200MiB", "--cpus", "0.5", "--work", tmp_path],
                            capture_output=True, text=True, timeout=180)
        assert up.returncode == 0, up.stderr
        client = host_config(cls, "client1")
        assert (client["PidsLimit"], client["Memory"], client["MemorySwap"], client["NanoCpus"],
                client["CpuShares"]) == (100, 200 * mib, 200 * mib, 500_000_000, 1024)
        router = host_config(cls, "router")
        assert (router["PidsLimit"], router["Memory"], router["NanoCpus"], router["CpuShares"]) == \
            (1024, 1024 * mib, 0, 4096)
        # A class lab has no owner process, only this machine's mark; a library's lab (the
        # default) is owned by this process.
        class_labels = find_containers(cls)[0].labels
        process_keys = set(labels.Owner("", "", 0, "").labels()) - {labels.LABEL_MACHINE}
        assert not any(k in class_labels for k in process_keys)
        assert labels.machine_of(class_labels) == labels.machine_id()
        with DockerLab.plan(LabSpec(lab=lib, clients=1, server_command=IDLE), tmp_path):
            client = host_config(lib, "client1")
            assert (client["PidsLimit"], client["Memory"], client["MemorySwap"], client["NanoCpus"]) == \
                (512, 512 * mib, 512 * mib, 1_000_000_000)
            owner = labels.Owner.from_labels(find_containers(lib)[0].labels)
            assert owner == labels.current_owner()
    finally:
        remove_lab(cls)
        remove_lab(lib)


def test_a_fork_bomb_and_a_memory_hog_stay_on_their_hosts(tmp_path, read_lines, lab_cli):
    run = lab_cli("run", DATA / "hostile-limits.yaml", "--json", "--runs-dir", tmp_path / "runs",
                  "--work", tmp_path / "work", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err, out = read_lines(run.stderr), read_lines(run.stdout)
    name = None
    try:
        name = re.search(r"bringing up lab (\S+)", err.wait_for("bringing up lab", timeout=120)).group(1)
        err.wait_for("forkbomb on client1", timeout=120)
        # The bomb reaches its limit (how soon depends on the machine's load: look until the
        # step's own timeout) while client3 talks to the server through the router.
        pids, deadline = 0, time.monotonic() + 8
        while pids < 100 and time.monotonic() < deadline:
            stats = engine().api.stats(f"{name}-client1", stream=False, one_shot=True)
            pids = max(pids, stats["pids_stats"].get("current") or 0)
        run.wait(timeout=RUN_TIMEOUT)
        text = err.text()
        assert run.returncode == 0, text
        assert pids is not None and pids >= 100, f"the bomb had only {pids} processes"
        report, = json.loads(out.text())
        results = report["results"]
        assert report["passed"], [e for e in report["expectations"] if not e["passed"]]
        assert results["forkbomb"]["client1"]["timed_out"] is True
        # The bomb ended with its step, not at teardown: the host could fork again after it.
        assert results["forkbomb"]["client1"]["leftovers"] > 0
        assert results["after-bomb"]["client1"]["exit_code"] == 0   # and "forked 40", expected in the file
        assert results["memhog"]["client2"]["oom_killed"] is True
        assert results["tcp"]["client3"]["received"] == "STILL HERE"
        assert "memhog on client2: killed by the kernel's OOM killer" in text
        assert left_of(name) == []
    finally:
        run.kill()
        if name:
            remove_lab(name)

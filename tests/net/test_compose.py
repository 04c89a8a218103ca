"""compose.yaml's class lab, with whichever Compose this machine has (v2 or v1)."""
import os
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = f"sltest{os.getpid() % 100000}"


@pytest.fixture(scope="module")
def compose(compose_command):
    base = compose_command() + ["-p", PROJECT, "-f", str(ROOT / "compose.yaml")]

    def run(*args, check=True):
        result = subprocess.run(base + list(args), capture_output=True, text=True, cwd=ROOT, timeout=300)
        if check:
            assert result.returncode == 0, result.stderr
        return result

    run("down", "-v", "-t", "1", check=False)   # v1 cannot recreate containers on newer engines
    try:
        run("up", "-d", "--scale", "client=2")
        yield run
    finally:
        run("down", "-v", "-t", "1", check=False)


def wait_for_logs(compose, service, text, count, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logs = compose("logs", "--no-color", service).stdout
        if logs.count(text) >= count:
            return logs
        time.sleep(0.5)  # polling a condition with a deadline
    pytest.fail(f"{service} never printed {text!r} {count} times:\n{logs}")


def test_both_clients_run_the_demo_through_the_router(compose):
    logs = wait_for_logs(compose, "client", "demo done", 2)
    assert logs.count("From Server: HELLO FROM") == 4      # TCP and UDP, two clients


def test_client_reaches_the_server_only_through_the_router(compose):
    out = compose("exec", "-T", "--index", "2", "client", "tracepath", "-n", "-m", "4", "server").stdout
    hops = {line.split()[0]: line.split()[1] for line in out.splitlines() if line.strip()[:2] in ("1:", "2:")}
    assert hops["1:"] == "10.77.1.1" and hops["2:"] == "10.77.2.10"


def test_every_host_sees_the_work_folder(compose):
    marker = ROOT / "work" / f".compose-test-{PROJECT}"
    marker.write_text("shared")
    try:
        for service in ("router", "server", "client"):
            assert compose("exec", "-T", service, "cat", f"/work/{marker.name}").stdout == "shared"
    finally:
        marker.unlink()


def test_only_the_router_has_capabilities(compose):
    import docker
    containers = docker.from_env().containers.list(filters={"label": f"com.docker.compose.project={PROJECT}"})
    assert len(containers) == 4
    for c in containers:
        cfg = c.attrs["HostConfig"]
        assert not cfg["Privileged"]
        service = c.labels["com.docker.compose.service"]
        assert bool(cfg.get("CapAdd")) == (service == "router")

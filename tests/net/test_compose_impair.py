"""compose.yaml's class lab with impairments from the environment (SOCKETLAB_IMPAIR),
applied by the router itself at start, and changed live with `lab impair --lab compose`.

Only one compose lab can exist at a time on an engine (fixed subnets): this module's
labs come up and go one after the other.
"""
import json
import os
import subprocess
from pathlib import Path

import pytest

from lab.running import RunningLab

ROOT = Path(__file__).resolve().parents[2]
PROJECT = f"slimp{os.getpid() % 100000}"


@pytest.fixture(scope="module")
def compose_env(compose_command):
    """(env_file, *args, check=True, extra_env=None) -> compose ARGS on this file's project."""
    command = compose_command()

    def run(env_file, *args, check=True, extra_env=None):
        env = {k: v for k, v in os.environ.items() if k != "SOCKETLAB_IMPAIR"}
        env.update(extra_env or {})
        base = command + ["-p", PROJECT, "-f", str(ROOT / "compose.yaml")]
        if env_file is not None:
            base += ["--env-file", str(env_file)]
        result = subprocess.run(base + list(args), capture_output=True, text=True, cwd=ROOT, timeout=300, env=env)
        if check:
            assert result.returncode == 0, result.stderr
        return result
    return run


def test_a_bad_value_stops_the_router_with_one_line(tmp_path, compose_env):
    compose_env(None, "down", "-v", "-t", "1", check=False)
    try:
        up = compose_env(None, "up", "-d", check=False,
                     extra_env={"SOCKETLAB_IMPAIR": "clients -> servers loss 120%"})
        assert up.returncode != 0, up.stdout + up.stderr
        logs = compose_env(None, "logs", "--no-color", "router").stdout
        assert "router: SOCKETLAB_IMPAIR: loss: 120% is over 100%" in logs, logs
        assert "Traceback" not in logs, logs
    finally:
        compose_env(None, "down", "-v", "-t", "1", check=False)


@pytest.fixture(scope="module")
def impaired(tmp_path_factory, compose_env):
    """The class lab with `SOCKETLAB_IMPAIR=...` in an env file (as in .env)."""
    env_file = tmp_path_factory.mktemp("env") / "env"
    env_file.write_text("SOCKETLAB_IMPAIR=clients <-> servers loss 5% delay 20ms\n")
    compose_env(env_file, "down", "-v", "-t", "1", check=False)
    try:
        compose_env(env_file, "up", "-d")
        yield lambda *args, **kw: compose_env(env_file, *args, **kw)
    finally:
        compose_env(env_file, "down", "-v", "-t", "1", check=False)


def test_the_environment_s_impairments_are_in_force_from_the_start(impaired, lab_command, assert_binomial,
                                                                   router_counts):
    shown = json.loads(lab_command("impair", "--lab", "compose", "--show", "--json").stdout)
    assert {item["link"]: item["impairment"] for item in shown["links"]} == {
        "clients->servers": {"loss": 5.0, "delay_ms": 20.0},
        "servers->clients": {"loss": 5.0, "delay_ms": 20.0}}
    router = router_counts(RunningLab.attach("compose").router)
    out = impaired("exec", "-T", "client", "udp-measure", "--host", "server", "--count", "4000",
                   "--rate", "2000", "--wait", "1").stdout
    result = json.loads(out.strip().splitlines()[-1])
    # The router's own counts, never what a slow receiver failed to read: the same 5 %
    # on both links, every packet on its own, so pooled the drops are Binomial too.
    c2s, s2c = router.since("clients->servers"), router.since("servers->clients")
    # (an engine's full queue on a starved machine is the machine's, counted apart)
    assert c2s["arrived"] + c2s["dropped_engine_queue"] >= result["sent"], (c2s, result)
    assert_binomial(c2s["lost"] + s2c["lost"], c2s["arrived"] + s2c["arrived"], 0.05,
                    "compose: packets the router dropped with 5 % loss each way")
    assert 0 < result["received"] <= s2c["forwarded_packets"], (s2c, result)
    assert result["rtt_ms"]["min"] >= 40, result      # 20 ms each way, never early


def test_lab_impair_changes_the_compose_lab_live(impaired, lab_command, assert_binomial, router_counts):
    lab_command("impair", "--lab", "compose", "clients -> servers", "--loss", "20%")
    lab_command("impair", "--lab", "compose", "--clear", "servers -> clients")
    shown = json.loads(lab_command("impair", "--lab", "compose", "--show", "--json").stdout)
    assert {item["link"]: item["impairment"] for item in shown["links"]} == {
        "clients->servers": {"loss": 20.0}}
    router = router_counts(RunningLab.attach("compose").router)
    out = impaired("exec", "-T", "client", "udp-measure", "--host", "server", "--count", "5000",
                   "--rate", "5000", "--wait", "1").stdout
    result = json.loads(out.strip().splitlines()[-1])
    c2s = router.since("clients->servers")
    assert c2s["arrived"] >= result["sent"], (c2s, result)
    assert_binomial(c2s["lost"], c2s["arrived"], 0.20, "compose: requests the router dropped with 20 % live loss")
    assert result["received"] <= c2s["forwarded_packets"], (c2s, result)

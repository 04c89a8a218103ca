"""Pure parts of running many labs at once: labels and owners (crash cleanup),
subnet candidates (parallel bring-up), per-host limits, OOM-kill marking."""
import ipaddress

import docker.errors
from types import SimpleNamespace
from pathlib import Path

import pytest
import yaml

from lab import engine, labels
from lab.labels import Owner, owner_gone
from lab.runner import oom
from lab.scenario import load_text
from lab.programs.shared.problems import ScenarioError
from lab.programs.shared.units import parse_size
from lab.topology.docker_lab import host_settings
from lab.programs.shared.topology import (ROUTER_LIMITS, LabSpec, Limits, labs_that_fit, limit_settings,
                                subnet_candidates)

ROOT = Path(__file__).resolve().parents[2]
NETS = [ipaddress.ip_network("10.77.3.0/24"), ipaddress.ip_network("10.77.4.0/24")]
HERE = Owner("box", "boot-1", 4242, "1000", "pid:[1]")


# --- owners: whose lab is stale ------------------------------------------------------

def starts(table):
    return lambda pid: table.get(pid)


def test_an_owner_that_is_still_running_keeps_its_lab():
    owner = Owner("box", "boot-1", 77, "555")
    assert not owner_gone(owner, HERE, starts({77: "555"}))


def test_an_owner_whose_pid_is_gone_is_gone():
    assert owner_gone(Owner("box", "boot-1", 77, "555"), HERE, starts({}))


def test_a_reused_pid_is_not_the_owner():
    # Same pid, started at another time: another process took the number.
    assert owner_gone(Owner("box", "boot-1", 77, "555"), HERE, starts({77: "9999"}))


def test_a_lab_from_before_a_reboot_is_stale():
    assert owner_gone(Owner("box", "boot-0", 77, "555"), HERE, starts({77: "555"}))


def test_another_hosts_labs_are_never_judged():
    # A process elsewhere (another machine on the same engine, a container) may be alive.
    assert not owner_gone(Owner("elsewhere", "boot-9", 77, "555"), HERE, starts({}))


def test_another_pid_namespaces_labs_are_never_judged():
    # A container that shares the host name (network host) has pids of its own.
    assert not owner_gone(Owner("box", "boot-1", 77, "555", "pid:[2]"), HERE, starts({}))
    assert owner_gone(Owner("box", "boot-1", 77, "555", "pid:[1]"), HERE, starts({}))


def test_an_unknown_start_time_counts_as_alive():
    assert not owner_gone(Owner("box", "boot-1", 77, ""), HERE, starts({77: "555"}))
    assert not owner_gone(Owner("box", "boot-1", 77, "555"), HERE, starts({77: ""}))


def test_owner_labels_round_trip_and_class_labs_have_none():
    tags = labels.lab_labels("x", "inst", HERE, **{labels.LABEL_ROLE: "client"})
    assert Owner.from_labels(tags) == HERE
    assert tags[labels.LABEL_INSTANCE] == "inst" and tags[labels.LABEL_LAB] == "x"
    assert Owner.from_labels(labels.lab_labels("x", "inst", None)) is None
    assert Owner.from_labels({labels.LABEL_OWNER_HOST: "box", labels.LABEL_OWNER_PID: "notanumber"}) is None


def test_this_process_is_its_own_live_owner():
    me = labels.current_owner()
    assert me.start and me.start == labels.process_start(me.pid)
    assert not owner_gone(me, me, labels.process_start)


def test_start_time_is_field_22_after_a_name_with_spaces_and_parens():
    fields = ["S"] + [str(i) for i in range(4, 60)]       # fields 3, 4, ...: field 22 is "22"
    assert labels.start_in_stat("123 (a) b (c)) " + " ".join(fields)) == "22"
    assert labels.start_in_stat("123 (short) S 1") == ""


def test_filters_are_built_in_one_place():
    assert labels.filters() == {"label": ["org.socketlab=1"]}
    assert labels.filters(lab="x", host="client1") == {
        "label": ["org.socketlab=1", "org.socketlab.lab=x", "org.socketlab.host=client1"]}
    assert labels.filters(ephemeral=True)["label"][-1] == labels.LABEL_OWNER_PID
    assert labels.filters(instance="i")["label"][-1] == "org.socketlab.instance=i"


# --- subnets for many labs at once ---------------------------------------------------

def test_candidates_start_where_asked_and_wrap_round(monkeypatch):
    monkeypatch.setenv("SOCKETLAB_SUBNETS", "10.217.0.0/22")        # .0 (skipped), .1, .2, .3
    used = [ipaddress.ip_network("10.217.2.0/24")]
    assert [str(s) for s in subnet_candidates(used)] == ["10.217.1.0/24", "10.217.3.0/24"]
    assert [str(s) for s in subnet_candidates(used, start=1)] == ["10.217.3.0/24", "10.217.1.0/24"]
    assert [str(s) for s in subnet_candidates(used, start=7)] == ["10.217.3.0/24", "10.217.1.0/24"]


def test_random_starts_spread_labs_over_the_pool(monkeypatch):
    monkeypatch.setenv("SOCKETLAB_SUBNETS", "10.217.0.0/16")
    firsts = {subnet_candidates([], start)[0] for start in range(0, 65536, 997)}
    assert len(firsts) > 50           # not everyone on the first free subnet


def test_no_free_subnets_is_an_empty_list(monkeypatch):
    monkeypatch.setenv("SOCKETLAB_SUBNETS", "10.217.0.0/23")
    assert subnet_candidates([ipaddress.ip_network("10.217.0.0/16")]) == []


def test_labs_that_fit_count_two_networks_each(monkeypatch):
    monkeypatch.setenv("SOCKETLAB_SUBNETS", "10.217.0.0/16")
    assert labs_that_fit([]) == 127                  # 255 usable /24s
    assert labs_that_fit([ipaddress.ip_network("10.217.0.0/17")]) == 64     # 128 left


# --- per-host limits -----------------------------------------------------------------

@pytest.mark.parametrize("text, size", [("256MiB", 256 * 2 ** 20), ("1GiB", 2 ** 30), ("1.5GiB", 3 * 2 ** 29),
                                        ("500MB", 500 * 10 ** 6), ("64 mib", 64 * 2 ** 20), ("2048KiB", 2 ** 21)])
def test_sizes_parse_with_units(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text, message", [(256, "no unit"), ("256", "no unit"), ("256Mb/s", "not a size"),
                                           ("lots", "not a size"), ("3 parsecs", "unknown size unit"), ("12TiB", "unknown size unit"),
                                           ("-1MiB", "negative")])
def test_bad_sizes_say_why(text, message):
    with pytest.raises(ValueError, match=message):
        parse_size(text)


def test_hosts_get_the_limits_and_the_router_its_own():
    topo = LabSpec(lab="x", clients=1, limits=Limits(pids=64, memory=128 * 2 ** 20, cpus=0.5)).build(NETS)
    client = host_settings(topo, topo.host("client1"), None, engine_cpus=2)["limits"]
    router = host_settings(topo, topo.host("router"), None, engine_cpus=2)["limits"]
    assert client == {"pids_limit": 64, "mem_limit": 128 * 2 ** 20, "memswap_limit": 128 * 2 ** 20,
                      "nano_cpus": 500_000_000, "cpu_shares": 1024}
    assert router["pids_limit"] == ROUTER_LIMITS.pids and router["nano_cpus"] is None
    assert router["cpu_shares"] >= 4 * client["cpu_shares"]


def test_a_cpu_cap_never_exceeds_the_engines_cpus():
    assert limit_settings(Limits(cpus=4), False, engine_cpus=2)["nano_cpus"] == 2_000_000_000
    assert limit_settings(Limits(cpus=0), False, engine_cpus=2)["nano_cpus"] is None


SCENARIO = "name: l\ndescription: d\ntopology:\n  limits: {}\n"


def test_scenario_limits_default_and_override():
    assert load_text(SCENARIO.replace("{}", "{}")).topology.limits == Limits()
    got = load_text(SCENARIO.replace("{}", "{pids: 256, memory: 256MiB, cpus: 0.5}")).topology.limits
    assert got == Limits(pids=256, memory=256 * 2 ** 20, cpus=0.5)
    assert load_text("name: l\ndescription: d\n").topology.lab_spec("x").limits == Limits()


def test_bad_scenario_limits_are_reported_at_once_with_positions():
    with pytest.raises(ScenarioError) as err:
        load_text(SCENARIO.replace("{}", "{pids: 8, memory: 100, cpus: -1, pid: 3}"), "f.yaml")
    lines = err.value.lines
    assert len(lines) == 4
    assert lines[0].startswith("f.yaml:4:") and "topology.limits.pids: 8 is below the minimum of 16" in lines[0]
    assert "memory: 100 has no unit: write it as 100MiB or 100GiB" in lines[1]     # memory: never bytes
    assert "cpus: -1 is below" in lines[2]
    assert "did you mean 'pids'" in lines[3]


def test_compose_has_the_same_limits_as_lab_up():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    for name, service in compose["services"].items():
        want = limit_settings(Limits(), name == "router", engine_cpus=1024)
        assert service["pids_limit"] == want["pids_limit"]
        assert parse_size(service["mem_limit"].replace("m", "MiB").replace("g", "GiB")) == want["mem_limit"]
        assert service["memswap_limit"] == service["mem_limit"]
        assert service["cpus"] * 1e9 == (want["nano_cpus"] or 0)
        assert service["cpu_shares"] == want["cpu_shares"]


# --- OOM kills -----------------------------------------------------------------------

V1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"
V2 = "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n"


def test_oom_counter_is_read_from_cgroup_v1_and_v2():
    assert oom.oom_kills(V1) == 2 and oom.oom_kills(V2) == 1 and oom.oom_kills("") is None


def test_only_sigkilled_steps_on_a_host_with_oom_kills_are_marked():
    results = {"hog": {"client2": {"exit_code": 137, "timed_out": False}},
               "bomb": {"client1": {"exit_code": 137, "timed_out": True}},     # its timeout killed it
               "ok": {"client3": {"exit_code": 0, "timed_out": False}},
               "other": {"client4": {"exit_code": 137, "timed_out": False}}}  # kill step, no OOM
    asked = []

    def read(host):
        asked.append(host)
        return V1 if host == "client2" else "oom_kill 0\n"
    assert oom.mark_oom_kills(results, read) == [("hog", "client2")]
    assert [r["oom_killed"] for by in results.values() for r in by.values()] == [True, False, False, False]
    assert "client3" not in asked


# --- the engine as arbiter: a taken subnet moves the lab on (fake engine) ------------

class FakeNetworks:
    """Creating a network fails like the daemon's IPAM when another lab holds the subnet."""

    def __init__(self, taken):
        self.taken, self.created = set(taken), []

    def create(self, name, ipam=None, **kwargs):
        import docker.errors
        subnet = ipaddress.ip_network(ipam["Config"][0]["Subnet"])
        if subnet in self.taken:
            raise docker.errors.APIError("Pool overlaps with other one on this address space")
        self.taken.add(subnet)
        self.created.append((name, subnet))
        return SimpleNamespace(id=f"id-{name}")


def fake_lab(monkeypatch, taken, used_seen):
    from types import SimpleNamespace
    from lab import engine
    from lab.topology import docker_lab
    networks = FakeNetworks(taken)
    monkeypatch.setattr(engine, "client", lambda: SimpleNamespace(networks=networks, version=lambda: {},
                                                                 info=lambda: {}))
    monkeypatch.setattr(docker_lab, "used_subnets", lambda: list(used_seen))
    monkeypatch.setenv("SOCKETLAB_SUBNETS", "10.217.0.0/21")   # .1 .. .7
    spec = LabSpec(lab="x", clients=1)
    planned = [ipaddress.ip_network("10.217.1.0/24"), ipaddress.ip_network("10.217.2.0/24")]
    return docker_lab.DockerLab(spec.build(planned), None, spec, ephemeral=True, start=0), networks


def test_a_subnet_taken_meanwhile_moves_the_lab_to_the_next_and_addresses_follow(monkeypatch):
    # Another process took .2 after we chose it (our view of the engine did not show it).
    taken = [ipaddress.ip_network("10.217.2.0/24")]
    lab, networks = fake_lab(monkeypatch, taken, used_seen=[])
    said = []
    lab._create_networks(said.append)
    assert [str(s) for _, s in networks.created] == ["10.217.1.0/24", "10.217.3.0/24"]
    assert str(lab.topology.host("server").address) == "10.217.3.10"
    assert any("10.217.2.0/24 was taken meanwhile" in line for line in said)


def test_a_full_pool_ends_in_one_clear_error_after_bounded_tries(monkeypatch):
    from lab.programs.shared.errors import LabError
    taken = [ipaddress.ip_network(f"10.217.{i}.0/24") for i in range(1, 8)]
    lab, networks = fake_lab(monkeypatch, taken, used_seen=[])
    with pytest.raises(LabError, match="no 2 free /24 subnets"):
        lab._create_networks(lambda line: None)
    assert networks.created == []


class StuckNetworkApi:
    """An engine whose network store still counts an endpoint of a removed container."""

    def __init__(self):
        self.removals = 0

    def containers(self, all, filters):
        return []

    def networks(self, filters):
        return [{"Id": "n1", "Name": "lab-clients"}]

    def remove_container(self, ctr_id, force, v):
        raise AssertionError("there is no container to remove")

    def remove_network(self, net_id):
        self.removals += 1
        raise docker.errors.APIError("error while removing network: network lab-clients has active endpoints")


def test_a_network_the_engine_will_not_remove_is_said_never_left_silently(monkeypatch):
    from lab.programs.shared.errors import LabEnvironmentError
    from lab.topology import docker_lab
    api = StuckNetworkApi()
    monkeypatch.setattr(engine, "client", lambda: SimpleNamespace(api=api, version=lambda: {}, info=lambda: {}))
    monkeypatch.setattr(docker_lab.time, "sleep", lambda s: None)
    with pytest.raises(LabEnvironmentError, match="lab-clients") as caught:
        docker_lab.remove_matching({"label": "org.socketlab=1"})
    assert "restart" in caught.value.hint
    assert api.removals == len(docker_lab.REMOVE_PAUSES_S)   # it looked again each round before saying so


class ComplainingPodmanApi:
    """Podman: removing the router removes it, then answers 500 (netavark could not delete
    the default routes it gave the router, which the router had deleted itself)."""

    def __init__(self, removed_anyway: bool):
        self.removed_anyway = removed_anyway
        self.left = {"c1": "lab-router", "c2": "lab-server"}
        self.networks_left = [{"Id": "n1", "Name": "lab-clients"}]

    def containers(self, all, filters):
        return [{"Id": i, "Names": [f"/{n}"], "Labels": {}} for i, n in self.left.items()]

    def networks(self, filters):
        return [] if self.left else list(self.networks_left)

    def inspect_container(self, ctr_id):
        if ctr_id not in self.left:
            raise docker.errors.NotFound(f"no container {ctr_id}")
        return {"Id": ctr_id}

    def remove_container(self, ctr_id, force, v):
        if self.left[ctr_id] == "lab-router":
            if self.removed_anyway:
                del self.left[ctr_id]
            raise docker.errors.APIError("cleaning up container: removing container network: netavark: "
                                         "Netlink error: No such process (os error 3)")
        del self.left[ctr_id]

    def remove_network(self, net_id):
        self.networks_left = [n for n in self.networks_left if n["Id"] != net_id]


def test_a_container_the_engine_removed_while_complaining_counts_as_removed(monkeypatch):
    from lab.topology import docker_lab
    api = ComplainingPodmanApi(removed_anyway=True)
    monkeypatch.setattr(engine, "client", lambda: SimpleNamespace(api=api, version=lambda: {}, info=lambda: {}))
    monkeypatch.setattr(docker_lab.time, "sleep", lambda s: None)
    assert docker_lab.remove_matching({"label": "org.socketlab=1"}) == (2, 1)
    assert not api.left and not api.networks_left


def test_a_container_the_engine_failed_to_remove_is_still_an_error(monkeypatch):
    from lab.topology import docker_lab
    api = ComplainingPodmanApi(removed_anyway=False)
    monkeypatch.setattr(engine, "client", lambda: SimpleNamespace(api=api, version=lambda: {}, info=lambda: {}))
    monkeypatch.setattr(docker_lab.time, "sleep", lambda s: None)
    with pytest.raises(docker.errors.APIError, match="netavark"):
        docker_lab.remove_matching({"label": "org.socketlab=1"})

import ipaddress

import pytest

from lab import labels
from lab.programs.shared.errors import LabError
from lab.topology.docker_lab import host_settings
from lab.programs.shared.topology import COMPOSE_SUBNETS, LabSpec, free_subnets

NETS = [ipaddress.ip_network("10.77.3.0/24"), ipaddress.ip_network("10.77.4.0/24")]


def test_class_lab_address_plan():
    topo = LabSpec(lab="x", clients=3).build(NETS)
    assert [h.name for h in topo.hosts] == ["router", "server", "client1", "client2", "client3"]
    assert str(topo.host("server").address) == "10.77.4.10"
    assert [str(c.address) for c in topo.clients] == ["10.77.3.101", "10.77.3.102", "10.77.3.103"]
    assert [str(a) for _, a in topo.host("router").addresses] == ["10.77.3.2", "10.77.4.2"]
    assert [str(n.gateway) for n in topo.networks] == ["10.77.3.1", "10.77.4.1"]


def test_clients_know_the_server_and_router_by_name():
    topo = LabSpec(lab="x", clients=2).build(NETS)
    names = topo.names_for(topo.host("client1"))
    assert names["server"] == "10.77.4.10"
    assert names["router"] == "10.77.3.1"       # the gateway on the client's own network
    assert names["client2"] == "10.77.3.102"
    assert "client1" not in names


def test_free_subnets_skip_used_and_compose_ones(monkeypatch):
    monkeypatch.delenv("SOCKETLAB_SUBNETS", raising=False)   # the default pool
    used = [ipaddress.ip_network("10.77.3.0/24"), ipaddress.ip_network("10.77.0.0/23")]
    got = free_subnets(used, 2)
    assert [str(s) for s in got] == ["10.77.4.0/24", "10.77.5.0/24"]
    assert not any(s.overlaps(c) for s in got for c in COMPOSE_SUBNETS)


@pytest.mark.parametrize("spec, message", [
    (LabSpec(lab="Bad_Name"), "lab name"),
    (LabSpec(lab="x", clients=101), "clients"),
])
def test_bad_specs_are_refused(spec, message):
    with pytest.raises(LabError, match=message):
        spec.build(NETS)


def test_only_the_router_gets_capabilities(tmp_path):
    topo = LabSpec(lab="x", clients=1).build(NETS)
    router = host_settings(topo, topo.host("router"), tmp_path)
    client = host_settings(topo, topo.host("client1"), tmp_path)
    assert router["cap_drop"] == ["ALL"] and router["cap_add"] == ["NET_ADMIN", "NET_RAW", "SETGID", "SETUID"]
    assert router["sysctls"]["net.ipv4.ip_forward"] == "1"
    assert client["cap_add"] == [] and client["cap_drop"] == ["NET_RAW"] and client["sysctls"] == {}
    assert client["binds"] == {str(tmp_path): {"bind": "/work", "mode": "rw"}}
    assert client["labels"][labels.LABEL_LAB] == "x"
    assert router["networks"] == [("x-clients", "10.77.3.2"), ("x-servers", "10.77.4.2")]


def test_subnet_pool_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("SOCKETLAB_SUBNETS", "10.200.0.0/16")
    got = free_subnets([], 2)
    assert [str(s) for s in got] == ["10.200.1.0/24", "10.200.2.0/24"]


def test_a_bad_subnet_pool_is_one_clear_error(monkeypatch):
    from lab.programs.shared.errors import LabError
    monkeypatch.setenv("SOCKETLAB_SUBNETS", "10.200.0.0/24")
    with pytest.raises(LabError, match="SOCKETLAB_SUBNETS"):
        free_subnets([], 2)


def test_a_podman_network_keeps_the_router_the_gateway_and_the_bridge_off_its_address():
    import ipaddress
    from lab.topology.docker_lab import podman_network
    subnet = ipaddress.ip_network("10.83.1.0/24")
    body = podman_network("lab-clients", subnet, ipaddress.ip_address("10.83.1.1"), 101, {"org.socketlab": "1"})
    assert body["subnets"] == [{"subnet": "10.83.1.0/24", "gateway": "10.83.1.254"}]   # the bridge's, unused
    assert body["options"]["no_default_route"] == "true"
    assert body["routes"] == [{"destination": "0.0.0.0/0", "gateway": "10.83.1.1", "metric": 101}]
    assert body["labels"] == {"org.socketlab": "1"} and not body["dns_enabled"]
    assert body["internal"]   # no masquerade of the frames bridged to the router

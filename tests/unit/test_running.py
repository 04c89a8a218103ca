"""The one door to a running lab: which lab a command means, the topology read back from
labelled containers, and no second door left in the tree."""
from __future__ import annotations

import ast
import ipaddress
from pathlib import Path

import pytest

from lab.labels import LABEL, LABEL_HOST, LABEL_LAB, LABEL_ROLE
from lab.programs.shared.errors import LabError
from lab.running import which_lab
from lab.topology.docker_lab import read_topology

ROOT = Path(__file__).resolve().parents[2]


# -- which lab ---------------------------------------------------------------------------

def test_the_name_given_wins_over_the_environment_and_the_only_lab():
    assert which_lab("b", {"SOCKETLAB_LAB": "a"}, ["a", "b"]) == "b"


def test_the_environment_names_the_lab_when_no_name_is_given():
    assert which_lab(None, {"SOCKETLAB_LAB": "a"}, ["a", "b"]) == "a"


def test_the_only_lab_up_is_the_one_meant():
    assert which_lab(None, {}, ["a", "a", "doctor"]) == "a"


def test_the_only_lab_up_wins_over_the_compose_lab():
    assert which_lab(None, {}, ["compose", "a"]) == "a"


def test_the_compose_lab_is_meant_when_no_other_lab_is_up():
    assert which_lab(None, {}, ["compose"]) == "compose"


def test_a_named_lab_that_is_not_up_is_refused_with_a_hint():
    with pytest.raises(LabError) as err:
        which_lab("x", {}, ["a"])
    assert str(err.value) == "lab 'x' is not up" and "lab status" in err.value.hint


def test_no_lab_up_is_refused_with_a_hint():
    with pytest.raises(LabError) as err:
        which_lab(None, {}, ["doctor", None])
    assert str(err.value) == "no lab is up" and "lab up" in err.value.hint


def test_several_labs_up_are_refused_naming_them():
    with pytest.raises(LabError) as err:
        which_lab(None, {}, ["b", "a", "compose"])
    assert str(err.value) == "several labs are up (a, b, compose)" and "--lab NAME" in err.value.hint


# -- the topology read back --------------------------------------------------------------

def _container(cid: str, name: str, tags: dict, nets: dict) -> dict:
    return {"Id": cid, "Names": [f"/{name}"], "Labels": {LABEL: "1", **tags},
            "NetworkSettings": {"Networks": {n: {"IPAddress": ip} for n, ip in nets.items()}}}


def test_a_socketlab_lab_is_read_back_from_its_labels():
    networks = [{"Name": "l1-servers", "IPAM": {"Config": [{"Subnet": "10.81.2.0/24"}]}},
                {"Name": "l1-clients", "IPAM": {"Config": [{"Subnet": "10.81.1.0/24"}]}}]
    containers = [
        _container("c1", "l1-client1", {LABEL_LAB: "l1", LABEL_HOST: "client1", LABEL_ROLE: "client"},
                   {"l1-clients": "10.81.1.10"}),
        _container("r", "l1-router", {LABEL_LAB: "l1", LABEL_HOST: "router", LABEL_ROLE: "router"},
                   {"l1-clients": "10.81.1.1", "l1-servers": "10.81.2.1"}),
    ]
    topo, ids = read_topology("l1", containers, networks)
    assert [n.name for n in topo.networks] == ["clients", "servers"]
    assert topo.network("servers").subnet == ipaddress.ip_network("10.81.2.0/24")
    assert topo.host("router").role == "router"
    assert dict(topo.host("router").addresses)["servers"] == ipaddress.ip_address("10.81.2.1")
    assert ids == {"client1": "c1", "router": "r"}


def test_a_compose_lab_is_read_back_by_service_and_number():
    compose = {LABEL_LAB: "compose"}
    networks = [{"Name": "socketlab_clients", "Labels": {"com.docker.compose.network": "clients"},
                 "IPAM": {"Config": [{"Subnet": "10.77.1.0/24"}]}}]
    containers = [
        _container("r", "socketlab_router_1", {**compose, "com.docker.compose.service": "router"},
                   {"socketlab_clients": "10.77.1.1"}),
        _container("c2", "socketlab_client_2", {**compose, "com.docker.compose.service": "client",
                                                "com.docker.compose.container-number": "2"},
                   {"socketlab_clients": "10.77.1.12"}),
    ]
    topo, ids = read_topology("compose", containers, networks)
    assert ids == {"router": "r", "client2": "c2"}
    assert topo.host("router").role == "router"
    assert topo.host("client2").addresses == (("clients", ipaddress.ip_address("10.77.1.12")),)


# -- one door ----------------------------------------------------------------------------

def _defined(names: set) -> list:
    found = []
    for path in sorted([*(ROOT / "lab").rglob("*.py"), *(ROOT / "tests").rglob("*.py"),
                        *(ROOT / "benchmarks").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name in names:
                found.append(f"{path.relative_to(ROOT)}:{node.name}")
    return found


def test_there_is_one_door_to_a_running_lab():
    assert _defined({"attach"}) == ["lab/running.py:attach"]
    assert _defined({"find_router", "find_host", "router_for", "router_capture", "_RouterAdapter"}) == []


def test_one_class_is_named_capture():
    assert _defined({"Capture"}) == ["lab/running.py:Capture"]

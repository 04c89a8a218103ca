"""Hosts with an image of their own, as the scenario format, the topology model and
`lab up`'s options declare them (pure: no engine)."""
import ipaddress

import pytest

from lab.programs.shared.errors import LabError
from lab.programs.shared.problems import ScenarioError
from lab.programs.shared.topology import HostSpec, LabSpec
from lab.scenario.validate import load_text
from lab.testing import topology_fields
from lab.topology.lifecycle import image_options

SUBNETS = [ipaddress.ip_network(f"10.9.{i}.0/24") for i in range(3)]


def topo(text: str):
    return load_text(f"name: x\ndescription: y\ntopology:\n{text}", "s.yaml").topology


def problems(text: str) -> list:
    with pytest.raises(ScenarioError) as info:
        topo(text)
    return info.value.lines


def test_server_clients_and_extra_hosts_with_their_own_images():
    t = topo("  server: {image: 'svc:test', command: ./serve --port 8080, ready: {port: 8080, timeout: 5s}}\n"
             "  clients: {count: 2, image: 'cli:1', command: [run, '--fast']}\n"
             "  hosts:\n"
             "    app: {network: servers, image: 'app:2', ready: {log: listening}}\n"
             "    plain: {network: clients}\n")
    spec = t.lab_spec("lab1")
    assert spec.image_refs() == ["app:2", "cli:1", "svc:test"]
    hosts = {h.name: h for h in spec.build(SUBNETS).hosts}
    assert hosts["server"].image == "svc:test" and hosts["server"].command == ("./serve", "--port", "8080")
    assert hosts["server"].ready_port == 8080 and hosts["server"].ready_timeout == 5.0
    assert [hosts[c].command for c in ("client1", "client2")] == [("run", "--fast")] * 2
    assert hosts["app"].command == () and hosts["app"].ready == ("listening",)   # the image's own command
    assert hosts["plain"].image is None and hosts["plain"].command == ("host-role", "idle")
    assert hosts["router"].image is None and not hosts["router"].own_image


def test_ours_stay_as_they_were_without_images():
    hosts = {h.name: h for h in topo("  clients: 2\n").lab_spec().build(SUBNETS).hosts}
    assert hosts["server"].command == ("host-role", "server") and not hosts["server"].own_image
    assert topo("  clients: 2\n").image_refs == []


@pytest.mark.parametrize("text, line", [
    ("  server: {image: 'a b'}\n", "s.yaml:4:19: topology.server.image: 'a b' is not an image reference"),
    ("  server: {command: x}\n", "s.yaml:4:11: topology.server: missing required key 'image'"),
    ("  clients: {count: 2}\n", "s.yaml:4:12: topology.clients: missing required key 'image'"),
    ("  hosts: {a: {network: servers, ready: {port: 0}}}\n", "topology.hosts.a.ready.port: 0 is below"),
    ("  hosts: {a: {network: servers, ready: {}}}\n", "topology.hosts.a.ready: a ready condition needs one of"),
    ("  hosts: {a: {network: servers, ready: {port: 1, log: x}}}\n", "has both 'port' and 'log'"),
    ("  hosts: {a: {network: servers, command: 'run \"x'}}\n", "topology.hosts.a.command: 'run \"x' is not a command line"),
    ("  server: {image: x, colour: red}\n", "topology.server.colour: unknown key for the server"),
    ("  server: {image: x}\n  tcp_mode: iterative\n", "a server with its own image runs its own program"),
])
def test_bad_own_image_fields_name_file_line_and_field(text, line):
    found = problems(text)
    assert len(found) == 1 and line in found[0], found


def test_lab_up_options():
    images, hosts = image_options(("server=svc:test", "clients=cli:1"), ("app=servers:app:2", "db=clients"))
    assert images == {"server": HostSpec("servers", "svc:test"), "clients": HostSpec("clients", "cli:1")}
    assert hosts == {"app": HostSpec("servers", "app:2"), "db": HostSpec("clients", None)}
    for bad in [(("router=x",), ()), (("server",), ()), ((), ("app=nowhere:x",)), ((), ("client1=servers",)),
                ((), ("app",))]:
        with pytest.raises(LabError):
            image_options(*bad)


def test_plugin_arguments_become_the_scenario_topology():
    fields = topology_fields(clients=2, images={"server": "svc:test", "clients": {"image": "c:1"}},
                             hosts={"app": {"network": "servers", "image": "a:1"}, "plain": "clients"})
    assert fields["server"] == {"image": "svc:test"}
    assert fields["clients"] == {"count": 2, "image": "c:1"}
    assert fields["hosts"] == {"app": {"network": "servers", "image": "a:1"}, "plain": {"network": "clients"}}
    with pytest.raises(LabError, match="images are for 'server' and 'clients'"):
        topology_fields(images={"router": "x"})


def test_an_extra_host_on_a_network_the_lab_lacks_is_refused():
    with pytest.raises(LabError, match="no network 'elsewhere'"):
        LabSpec(extra_hosts={"a": HostSpec("elsewhere", "x:1")}).build(SUBNETS)

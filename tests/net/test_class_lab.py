"""The class lab on real containers: client → router → server."""
import ipaddress
import json


def test_tcp_uppercase_exchange_crosses_the_router(class_lab, run_json):
    result = run_json(class_lab, "client1", ["tcp-client", "--json", "hello over tcp"])
    assert result["error"] is None
    assert result["received"] == "HELLO OVER TCP"
    assert result["remote_address"] == str(class_lab.topology.host("server").address)


def test_udp_uppercase_exchange_crosses_the_router(class_lab, run_json):
    result = run_json(class_lab, "client2", ["udp-client", "--json", "hello over udp"])
    assert result["error"] is None
    assert result["received"] == "HELLO OVER UDP"


def test_every_client_ran_the_demo(class_lab):
    for client in class_lab.topology.clients:
        logs = class_lab.logs(client.name)
        assert f"From Server: HELLO FROM {client.address} OVER TCP" in logs
        assert f"From Server: HELLO FROM {client.address} OVER UDP" in logs


def test_server_name_resolves_to_the_server_behind_the_router(class_lab):
    server = class_lab.topology.host("server").address
    for client in class_lab.topology.clients:
        out = class_lab.exec(client.name, ["getent", "ahostsv4", "server"]).stdout.split()
        assert out[0] == str(server)


def test_router_hop_is_on_the_path(class_lab):
    gateway = class_lab.topology.network("clients").gateway
    server = class_lab.topology.host("server").address
    out = class_lab.exec("client1", ["tracepath", "-n", "-m", "5", "server"]).stdout
    hops = [line.split() for line in out.splitlines() if line.strip()[:2] in ("1:", "2:")]
    assert [h[1] for h in hops if h[0] == "1:"][0] == str(gateway)
    assert any(h[0] == "2:" and h[1] == str(server) and "reached" in h for h in hops), out


def test_ttl_of_one_dies_at_the_router(class_lab):
    gateway = class_lab.topology.network("clients").gateway
    result = class_lab.exec("client1", ["ping", "-n", "-c", "1", "-t", "1", "-W", "2", "server"])
    assert result.exit_code != 0
    assert f"From {gateway}" in result.stdout and "Time to live exceeded" in result.stdout


def test_no_host_has_a_route_out_of_the_lab(class_lab):
    """Route lookups only (no packet is sent): hosts' only next hop is the router,
    and the router has no route to anything outside the lab networks."""
    outside = "192.0.2.1"  # TEST-NET-1, never routed
    subnets = [n.subnet for n in class_lab.topology.networks]
    gateways = {str(n.gateway) for n in class_lab.topology.networks}
    router = class_lab.exec("router", ["ip", "-4", "-j", "route", "show"])
    for route in json.loads(router.stdout):
        assert route["dst"] != "default"
        assert any(ipaddress.ip_network(route["dst"]).subnet_of(s) for s in subnets), route
    lookup = class_lab.exec("router", ["ip", "route", "get", outside])
    assert lookup.exit_code != 0 and "unreachable" in lookup.stderr
    for host in ("server", "client1", "client2"):
        lookup = class_lab.exec(host, ["ip", "-j", "route", "get", outside])
        if lookup.exit_code == 0:
            assert json.loads(lookup.stdout)[0]["gateway"] in gateways


def test_hosts_cannot_change_the_network_or_send_raw_frames(class_lab):
    for host in ("server", "client1"):
        route = class_lab.exec(host, ["ip", "route", "add", "198.51.100.0/24", "dev", "eth0"])
        assert route.exit_code != 0 and "not permitted" in route.stderr
        raw = class_lab.exec(host, ["python3", "-c",
                                    "import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW)"])
        assert raw.exit_code != 0 and "PermissionError" in raw.stderr


def test_only_the_router_has_extra_capabilities(class_lab):
    for host in class_lab.topology.hosts:
        cfg = class_lab.container(host.name).attrs["HostConfig"]
        assert not cfg["Privileged"]
        assert not any("docker.sock" in b for b in cfg.get("Binds") or [])
        if host.role == "router":
            assert sorted(cfg["CapAdd"]) == ["NET_ADMIN", "NET_RAW", "SETGID", "SETUID"] and cfg["CapDrop"] == ["ALL"]
        else:
            assert not cfg["CapAdd"] and cfg["CapDrop"] == ["NET_RAW"]


def test_tcpdump_on_the_router_sees_a_client_crossing_it(class_lab):
    """An instructor's live capture: plain tcpdump works on the router (and only there)."""
    client = str(class_lab.topology.host("client1").address)
    class_lab.exec("router", ["sh", "-c", "timeout 20 tcpdump -lni eth0 -c 2 icmp >/tmp/td.out 2>/tmp/td.err &"])
    ready = class_lab.exec("router", ["timeout", "10", "sh", "-c",
                                      "until grep -q 'listening on' /tmp/td.err; do sleep 0.05; done"])
    assert ready.exit_code == 0, class_lab.exec("router", ["cat", "/tmp/td.err"]).stdout
    assert class_lab.exec("client1", ["ping", "-c", "2", "-i", "0.2", "server"]).exit_code == 0
    class_lab.exec("router", ["timeout", "10", "sh", "-c", "while pgrep -x tcpdump >/dev/null; do sleep 0.05; done"])
    out = class_lab.exec("router", ["cat", "/tmp/td.out"]).stdout
    assert f"IP {client} > " in out and "ICMP echo request" in out, out

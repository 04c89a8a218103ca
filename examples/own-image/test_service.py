"""The service of this folder behind socketlab's router: what it does when the network is
lossy, and what a client sees when the network is cut.

    docker build -t own-image-example:test .
    pytest test_service.py            (socketlab installed: the plugin gives the fixture)
"""
import os

IMAGE = os.environ.get("OWN_IMAGE_EXAMPLE", "own-image-example:test")
SERVICE = {"image": IMAGE, "ready": {"port": 8080}}


def test_answers_through_a_lossy_link(socketlab):
    lab = socketlab(images={"server": SERVICE})
    with lab.impair("clients <-> servers", loss="20%"):     # TCP retransmits: every answer arrives
        for i in range(5):
            r = lab.run("client1", f"tcp-client --json --host server --port 8080 --timeout 30 'order {i}'",
                        timeout=60)
            assert r.json["received"] == f"ORDER {i}", r


def test_a_client_times_out_when_the_network_is_cut(socketlab):
    lab = socketlab(images={"server": SERVICE})
    assert lab.run("client1", "tcp-client --json --host server --port 8080 ping").json["received"] == "PING"
    with lab.partition("clients", "servers"):
        r = lab.run("client1", "tcp-client --json --host server --port 8080 --timeout 2 ping", timeout=30)
        assert not r.ok and r.json["error"] == "TIMEOUT", r
    # healed: the service is still there
    assert lab.run("client1", "tcp-client --json --host server --port 8080 pong").json["received"] == "PONG"

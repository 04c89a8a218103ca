def test_udp_loses_tcp_does_not(socketlab):
    lab = socketlab(clients=1)
    with lab.impair("clients <-> servers", loss="20%"):
        tcp = lab.run("client1", "tcp-measure --bytes 2000000")
        udp = lab.run("client1", "udp-measure --count 2000 --rate 1000")
    assert tcp.exit_code == 0 and tcp.json["sha256_match"] is True
    assert 0.55 < udp.json["delivery"] < 0.75

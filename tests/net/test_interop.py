"""Our programs and a student's lecture programs work with each other unchanged.

Each direction runs on its own lab: a server that closes first leaves TIME_WAIT on
port 12000, and a TIME_WAIT left by a socket without SO_REUSEADDR (the lecture
server's) blocks the next bind() on that port for a minute, even one with it."""
import pytest


@pytest.fixture(scope="module")
def idle_lab(socketlab_module, tmp_path_factory, copy_lecture_programs):
    """A lab whose server runs nothing, with the lecture programs in /work."""
    work = tmp_path_factory.mktemp("lecture")
    copy_lecture_programs(work)
    return socketlab_module(clients=1, server="idle", work=work)


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_our_client_against_a_lecture_server(idle_lab, proto):
    script = {"tcp": "TCPServer.py", "udp": "UDPServer.py"}[proto]
    server = idle_lab.start("server", f"python3 {script}", ready_port=12000, udp=proto == "udp")
    try:
        result = idle_lab.run("client1", f"{proto}-client --json 'lecture interop'")
        assert result.json is not None, result
        assert result.json["error"] is None and result.json["received"] == "LECTURE INTEROP", result
    finally:
        server.stop()   # returns once it has ended: the port is free for the next test


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_lecture_client_against_our_server(class_lab, proto):
    """The class lab's server runs our uppercase servers on 12000, as a student finds it."""
    script = {"tcp": "TCPClient.py", "udp": "UDPClient.py"}[proto]
    # The lecture client reads its sentence with input(): feed it on stdin.
    result = class_lab.exec("client1", ["sh", "-c", f"echo 'from a student' | python3 /work/{script}"])
    assert result.exit_code == 0, result.stderr
    assert "FROM A STUDENT" in result.stdout

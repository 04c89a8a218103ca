"""wait-port: reading the kernel's socket tables, and waiting on this machine's own."""
import socket
import threading

from lab.programs import wait_port

TCP_TABLE = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:2EE0 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1061 1
   1: 0100007F:827D 0100007F:2EE1 06 00000000:00000000 03:00000A3C 00000000     0        0 0 3
   2: 0A4D040A:2EE2 0A4D0365:C350 01 00000000:00000000 00:00000000 00000000     0        0 99 1
"""


def test_only_listening_sockets_count():
    # 0x2EE0 = 12000 listens; 12001 is a TIME_WAIT peer; 12002 an established connection.
    assert wait_port.bound_ports(TCP_TABLE, wait_port.TCP_LISTEN) == {12000}


def test_waits_until_a_listener_comes(capsys):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        assert not wait_port.is_open(port, udp=False)   # bound is not listening
        later = threading.Timer(0.3, listener.listen, args=(1,))
        later.start()
        try:
            assert wait_port.main([str(port), "--timeout", "10"]) == 0
        finally:
            later.join()
    assert capsys.readouterr().out == f"listening on tcp/{port}\n"


def test_finds_a_bound_udp_socket():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        assert wait_port.is_open(sock.getsockname()[1], udp=True)


def test_a_port_nobody_listens_on_times_out_as_a_result(capsys):
    with socket.socket() as s:  # bound but not listening: not open
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        assert wait_port.main([str(port), "--timeout", "0.2"]) == 1
    assert '"error": "TIMEOUT"' in capsys.readouterr().out

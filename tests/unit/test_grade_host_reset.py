"""host_reset's pure half: /proc/net's addresses read, what a reset left judged against
the host as it came up, and which peer sends the SYN that ends a socket the kernel kept."""
from lab.grade import host_reset
from lab.grade.host_reset import Baseline, Socket, left_over, peer_plan

DNS_LISTEN = ["tcp", "0A", "0B00007F:92E1", "00000000:0000"]       # 127.0.0.11:37601, the engine's resolver
TIME_WAIT = ["tcp", "06", "1437540A:2EE0", "6536540A:E430"]       # 10.84.55.20:12000 <- 10.84.54.101:58416
TOP = ["bin", "etc", "tmp", "usr", "work"]


def first(**extra):
    return {"keep": [1, 8], "left": [], "sockets": [DNS_LISTEN], "changed": [], "host_role": True,
            "top": TOP, "now": 100.0, **extra}


def test_proc_net_addresses_are_read_as_the_kernel_writes_them():
    assert Socket.parse(TIME_WAIT) == Socket("tcp", "06", ("10.84.55.20", 12000), ("10.84.54.101", 58416))
    mapped = ["tcp6", "06", "0000000000000000FFFF00001437540A:2EE0", "0000000000000000FFFF00006536540A:E430"]
    assert Socket.parse(mapped).local == ("10.84.55.20", 12000)
    loop6 = ["tcp6", "0A", "00000000000000000000000001000000:2EE0", "00000000000000000000000000000000:0000"]
    assert Socket.parse(loop6).local == ("::1", 12000)


def test_a_host_as_it_came_up_is_clean():
    base = Baseline.of(first())
    report = left_over(first(now=200.0), base)
    assert report.clean and report.why() == "clean" and report.now == 200.0


def test_each_thing_left_makes_a_host_unclean_and_says_what():
    base = Baseline.of(first())
    cases = {
        "socket": (first(sockets=[DNS_LISTEN, TIME_WAIT]), "1 socket(s) left"),
        "process": (first(left=[42]), "1 process(es) would not end"),
        "file": (first(changed=["/usr/bin/nc"]), "changed: /usr/bin/nc"),
        "gone from /": (first(top=["bin", "etc", "tmp", "work"]), "changed: / (-usr)"),
        "new in /": (first(top=TOP + ["x"]), "changed: / (+x)"),
        "host-role": (first(host_role=False), "its host-role ended"),
    }
    for what, (output, why) in cases.items():
        report = left_over(output, base)
        assert not report.clean, what
        assert why in report.why(), (what, report.why())


def test_the_resolvers_sockets_are_the_hosts_own_even_on_another_port():
    moved = ["udp", "07", "0B00007F:1234", "00000000:0000"]
    assert left_over(first(sockets=[DNS_LISTEN, moved]), Baseline.of(first())).clean


def test_the_peer_of_each_closing_socket_sends_the_syn_and_the_rest_are_left():
    student = Socket.parse(TIME_WAIT)
    on_client = Socket("tcp", "06", ("10.84.54.101", 33404), ("10.84.55.10", 12000))
    loopback = Socket("tcp", "06", ("127.0.0.1", 12000), ("127.0.0.1", 40000))
    outsider = Socket("tcp", "06", ("10.84.55.20", 12000), ("192.0.2.1", 40000))
    listening = Socket("tcp", "0A", ("0.0.0.0", 12000), ("0.0.0.0", 0))
    udp = Socket("udp", "07", ("0.0.0.0", 12000), ("0.0.0.0", 0))
    hosts = {"10.84.55.20": "student", "10.84.54.101": "client1", "10.84.55.10": "server"}
    plan = peer_plan({"student": [student, loopback, outsider, listening, udp], "client1": [on_client]}, hosts)
    assert plan == {"client1": [["10.84.54.101", 58416, "10.84.55.20", 12000]],
                    "student": [["127.0.0.1", 40000, "127.0.0.1", 12000]],
                    "server": [["10.84.55.10", 12000, "10.84.54.101", 33404]]}


def test_the_scripts_compile_and_clear_only_scratch_folders():
    compile(host_reset.RESET, "RESET", "exec")
    compile(host_reset.END_TIME_WAIT, "END_TIME_WAIT", "exec")
    assert set(host_reset.CLEARED) == {"/tmp", "/var/tmp", "/dev/shm", "/dev/mqueue"}


def test_the_socket_tables_read_again_give_resets_rows():
    text = ("== tcp\n  sl  local_address rem_address   st tx_queue rx_queue\n"
            "   0: 1437540A:2EE0 6536540A:E430 06 00000000:00000000 03:00001234 00000000     0        0 0\n"
            "== tcp6\n  sl  local_address remote_address st\n== udp\n"
            "   sl  local_address rem_address   st\n"
            "  12: 0B00007F:92E1 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1\n"
            "== udp6\n")
    assert host_reset.socket_rows(text) == [["tcp", "06", "1437540A:2EE0", "6536540A:E430"],
                                            ["udp", "07", "0B00007F:92E1", "00000000:0000"]]

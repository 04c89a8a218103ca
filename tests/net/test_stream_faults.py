"""Stream faults on real containers, seen from the programs' side (issue 19): the sizes
of the pieces a receiver's recv() gets, ECONNRESET, a hang that only a timeout ends, a
late FIN, the share of connections a fault applies to (exact binomial bounds), and the
MTU's fragments (each marked ``fragment i/k`` on the trace's ladder) and ICMP "fragmentation
needed".

Every program runs on the lab's hosts; the router's impairer does the work (these kinds
are never netem's, so the test is the same on both kernels).
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

PORT = 15000
LAB = Path(sys.executable).parent / "lab"

# One server for every test: it accepts connections; for each it reads a command line
# "send N CHUNK_DELAY_MS" / "sink" / "close-after-ms T" and does it, printing nothing.
SERVER = textwrap.dedent(r'''
    import socket, threading, time
    def serve(conn):
        with conn:
            line = b""
            while not line.endswith(b"\n"):
                data = conn.recv(100)
                if not data:
                    return
                line += data
            words = line.split()
            try:
                if words[0] == b"send":
                    conn.sendall(b"x" * int(words[1]))
                    time.sleep(0.5)
                elif words[0] == b"sink":
                    while conn.recv(65536):
                        pass
            except OSError:
                pass
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("", PORT)); s.listen(64)
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
''').replace("PORT", str(PORT))

# A client: sends COMMAND, then records each recv()'s size and time, and how it ended; one
# JSON line per connection, REPEAT connections one after another (one interpreter start).
CLIENT = textwrap.dedent(r'''
    import json, socket, sys, time
    command, timeout, extra = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    repeat = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    def one():
        start = time.monotonic()
        sizes, times, end = [], [], "eof"
        try:
            s = socket.create_connection(("server", PORT), timeout=10)
        except OSError as e:             # said in the output, not a traceback
            return {"sizes": [], "times": [], "end": "connect: %r" % e, "elapsed": 0}
        s.settimeout(timeout if timeout > 0 else None)
        try:
            s.sendall(command.encode() + b"\n")
            if extra:
                s.sendall(b"y" * extra)
                time.sleep(0.3)
                s.sendall(b"y" * extra)
            while True:
                data = s.recv(65536)
                if not data:
                    break
                sizes.append(len(data)); times.append(time.monotonic() - start)
        except socket.timeout:
            end = "timeout"
        except (ConnectionResetError, BrokenPipeError):
            end = "reset"
        except OSError as e:             # anything else: said, not a traceback
            end = "error: %r" % e
        finally:
            s.close()
        return {"sizes": sizes, "times": times, "end": end, "elapsed": time.monotonic() - start}
    for _ in range(repeat):
        print(json.dumps(one()), flush=True)
''').replace("PORT", str(PORT))


@pytest.fixture(scope="module")
def stream_lab(socketlab_module):
    lab = socketlab_module()
    (lab.work / "stream_server.py").write_text(SERVER)
    (lab.work / "stream_client.py").write_text(CLIENT)
    lab.start("server", "python3 stream_server.py", ready_port=PORT)
    return lab


def client(lab, command, timeout=10.0, extra=0, run_timeout=60):
    r = lab.run("client1", f"python3 stream_client.py '{command}' {timeout} {extra}", timeout=run_timeout)
    assert r.exit_code == 0, r
    return r.json


def test_segment_cuts_the_reply_into_pieces_of_n_bytes_gap_apart(stream_lab):
    lab = stream_lab
    with lab.impair("servers -> clients", segment=3, gap="100ms"):
        got = client(lab, "send 30")
    assert sum(got["sizes"]) == 30 and got["end"] == "eof"
    # recv() returns what has arrived: whole 3-byte pieces (two or more at once only if the
    # client was kept off the CPU past a gap), never the 30 bytes in one
    assert all(size % 3 == 0 for size in got["sizes"]) and len(got["sizes"]) >= 2, got
    # the last piece leaves 9 gaps after the first, which needed the request first: never early
    assert got["times"][-1] >= 9 * 0.100 - 0.005, got


def test_segment_of_one_byte_with_no_gap_still_delivers_everything(stream_lab):
    lab = stream_lab
    with lab.impair("servers -> clients", segment=1):
        got = client(lab, "send 20000")
    assert sum(got["sizes"]) == 20000 and got["end"] == "eof"


def test_reset_after_resets_the_client_after_that_many_bytes(stream_lab):
    lab = stream_lab
    with lab.impair("servers -> clients", reset_after="1KiB"):
        got = client(lab, "send 100000")
    assert got["end"] == "reset" and sum(got["sizes"]) == 1024, got


def test_reset_after_on_the_sending_side_gives_the_sender_a_reset_too(stream_lab):
    lab = stream_lab
    with lab.impair("clients -> servers", reset_after="2KiB"):
        got = client(lab, "sink", extra=3000)
    assert got["end"] == "reset", got


def test_blackhole_after_hangs_a_client_without_timeout_and_times_out_one_with(stream_lab):
    lab = stream_lab
    with lab.impair("servers -> clients", blackhole_after="500B"):
        with_timeout = client(lab, "send 5000", timeout=2)
        without = lab.run("client1", f"python3 stream_client.py 'send 5000' 0 0", timeout=4)
    assert with_timeout["end"] == "timeout" and sum(with_timeout["sizes"]) == 500, with_timeout
    assert without.timed_out, without


def test_hold_fin_delays_the_end_of_the_reply(stream_lab):
    lab = stream_lab
    with lab.impair("servers -> clients", hold_fin="1500ms"):
        got = client(lab, "send 10")
    # the data comes at once; the end (recv() == b"") only after the held FIN
    assert got["sizes"] == [10] and got["times"][0] < 0.5 + 0.4
    assert got["elapsed"] >= 0.5 + 1.5, got


def test_connections_applies_to_its_share_of_connections(stream_lab, assert_binomial):
    lab = stream_lab
    n = 120
    # One interpreter for all n connections: n starts of Python took longer than any fixed
    # timeout under emulation beside a busy host. The timeout only bounds a wedged run
    # (each connection times out by itself after 10 s).
    with lab.impair("servers -> clients", reset_after="1KiB", connections="25%"):
        r = lab.run("client1", f"python3 stream_client.py 'send 3000' 10 0 {n}", timeout=15 * n)
    ends = [json.loads(line)["end"] for line in r.stdout.splitlines() if line.startswith("{")]
    assert len(ends) == n and set(ends) <= {"eof", "reset"}, (r.exit_code, r.stderr[-2000:], ends)
    assert_binomial(ends.count("reset"), n, 0.25, "connections reset with connections: 25%")


def test_mtu_fragments_large_packets_and_refuses_df_ones_with_icmp(stream_lab):
    lab = stream_lab
    server = lab.address("server")
    with lab.impair("clients -> servers", mtu=576):
        df = lab.run("client1", f"ping -c 1 -W 2 -M do -s 1000 {server}")
        before = lab.run("server", "cat /proc/net/snmp").stdout
        frag = lab.run("client1", f"ping -c 1 -W 2 -M dont -s 1000 {server}")
        after = lab.run("server", "cat /proc/net/snmp").stdout
        small = lab.run("client1", f"ping -c 1 -W 2 -M do -s 500 {server}")
    assert "mtu = 576" in df.stdout + df.stderr, df
    assert frag.exit_code == 0 and small.exit_code == 0, (frag, small)

    def reassembled(text):
        head, values = [l.split()[1:] for l in text.splitlines() if l.startswith("Ip:")]
        return int(dict(zip(head, values))["ReasmOKs"])
    assert reassembled(after) - reassembled(before) == 1   # the 1028-byte packet came in pieces


# Two 1,500-byte datagrams cut at the sender's interface MTU (1,500), whatever path MTU it
# learned before (IP_PMTUDISC_OMIT: the test above taught it 576), without DF.
FRAGMENT_SENDER = textwrap.dedent(r'''
    import socket, time
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, 10, 5)     # IP_MTU_DISCOVER (not in every Python): OMIT
    for n in range(2):
        s.sendto(b"%d" % n + b"x" * 1499, ("server", 12000))
        time.sleep(0.1)
''')


def test_trace_marks_each_fragment_the_router_made_for_an_mtu(stream_lab):
    lab = stream_lab
    (lab.work / "fragment_sender.py").write_text(FRAGMENT_SENDER)
    with lab.impair("clients -> servers", mtu=576):
        # 1,500 bytes of UDP payload: the client's 1,500-byte MTU cuts it in 2 (1,480 + 28),
        # the router reassembles it and cuts it again at 576: 552 + 552 + 404 bytes.
        trace = subprocess.run([str(LAB), "trace", "--lab", lab.name, "--seconds", "20", "--",
                                "client1", "python3", "/work/fragment_sender.py"],
                               capture_output=True, text=True, timeout=120)
    assert trace.returncode == 0, trace.stderr
    lines = trace.stdout.splitlines()
    made = [line for line in lines if "made by the router]" in line]
    assert [line.rsplit("[", 1)[1] for line in made] == [
        f"fragment {i}/3, made by the router]" for i in (1, 2, 3)] * 2, trace.stdout + trace.stderr
    assert [line.split("off=")[1].split()[0] for line in made] == ["0", "552", "1104"] * 2
    assert sum("fragment 1/2 from the sender, fragmented by the router into 3 fragments" in line
               for line in lines) == 2, trace.stdout


def test_lab_watch_counts_what_the_router_made(stream_lab):
    lab = stream_lab
    with lab.impair("servers -> clients", segment=4, reset_after="100B"):
        watch = subprocess.Popen([str(LAB), "watch", "--lab", lab.name, "--json"],
                                 stdout=subprocess.PIPE, text=True)
        try:
            json.loads(watch.stdout.readline())          # the watch has begun
            got = client(lab, "send 1000")
            deadline, row = time.monotonic() + 30, {}
            while time.monotonic() < deadline and not row.get("resets_sent"):
                line = json.loads(watch.stdout.readline())
                row = next(r for r in line["links"] if r["link"] == "servers->clients")
        finally:
            watch.terminate()
            watch.wait(10)
    assert got["end"] == "reset" and sum(got["sizes"]) == 100
    assert row["pieces_made"] == 25 and row["resets_sent"] == 1, row

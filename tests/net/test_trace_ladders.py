"""See the packets, on real containers: `lab trace` ladders of a handshake, a refused
connection and an ICMP port unreachable, and a run's fates.json, ladder and report.html for a
TCP transfer cut by a partition (the drop is made certain; its retransmission must follow)."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
import browser_check  # noqa: E402
from lab.packets import svg  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
# time, the drawing (lifelines and the arrow: no letters), the packet, [the notes]
ROW = re.compile(r"^\s*(?P<ms>\d+\.\d{3})  (?P<arrow>[│├┤┼─▶◀✗• ]+)  (?P<text>[^│├┤┼─▶◀✗• ].*?)(?:  \[(?P<note>[^\]]*)\])?$")


def only_report(stdout: str) -> dict:
    """`lab run --json` of one scenario: its report (a list of one, or the report itself)."""
    data = json.loads(stdout)
    return data[0] if isinstance(data, list) else data


@pytest.fixture(scope="module")
def trace(lab_command):
    """(lab, *argv, extra=(), status=0) -> `lab trace --lab LAB EXTRA -- ARGV`, which must exit
    with ``status``: (stdout, stderr)."""
    def run(lab, *argv, extra=(), status=0):
        done = lab_command("trace", "--lab", lab.topology.lab, *extra, "--", *argv, timeout=180, cwd=ROOT,
                           check=False)
        assert done.returncode == status, done.stderr + done.stdout
        return done.stdout, done.stderr
    return run


def rows(text):
    """(arrow, packet text, note) of each packet row of a text ladder."""
    out = []
    for line in text.splitlines():
        m = ROW.match(line)
        if m:
            out.append((m["arrow"].strip(), m["text"], m["note"] or ""))
    return out


def test_trace_of_a_tcp_exchange_shows_handshake_data_and_fin(class_lab, tmp_path, trace):
    page = tmp_path / "trace.html"
    out, err = trace(class_lab, "client1", "tcp-client", "hello", extra=("--text", "-o", page))
    assert "From Server: HELLO" in err
    seen = rows(out)
    texts = [t for _, t, _ in seen]
    assert texts[:3] == ["SYN seq=0 len=0", "SYN,ACK seq=0 ack=1 len=0", "ACK seq=1 ack=1 len=0"], out
    assert seen[0][0].endswith("▶") and seen[1][0].startswith("◀")          # client -> server, and back
    assert "PSH,ACK seq=1 ack=1 len=5" in texts                               # "hello"
    assert "PSH,ACK seq=1 ack=6 len=5" in texts                               # "HELLO"
    assert sum(t.startswith("FIN") for t in texts) == 2                       # both sides close
    assert not any("dropped" in note for _, _, note in seen)
    assert out.splitlines()[1].split()[-3:] == ["client1", "router", "server"]
    html = page.read_text()
    assert "<svg" in html and "SYN,ACK seq=0 ack=1 len=0" in html
    seen_page = browser_check.look(page, tmp_path / "trace.png", (1200, 900))
    assert seen_page.console == [] and "SYN,ACK seq=0 ack=1 len=0" in seen_page.dom
    assert browser_check.has_colour(seen_page.png, svg.COLOURS["packet"]) > 100


def test_trace_of_a_refused_connection_and_a_port_unreachable(class_lab, trace):
    # the clients fail (exit 1), so the trace does too, ladder and all
    out, _ = trace(class_lab, "client1", "tcp-client", "--port", "9", "hi", status=1)
    texts = [t for _, t, _ in rows(out)]
    assert texts[:2] == ["SYN seq=0 len=0", "RST,ACK seq=0 ack=1 len=0"], out
    out, _ = trace(class_lab, "client1", "udp-client", "--port", "9", "--timeout", "1", "hi", status=1)
    seen = rows(out)
    assert seen[0][1] == "UDP len=2" and seen[0][0].endswith("▶"), out
    assert seen[1][1].startswith("ICMP port unreachable (udp ") and seen[1][1].endswith(":9)"), out
    assert seen[1][0].startswith("◀")


def test_a_command_that_fails_makes_the_trace_fail_after_its_ladder_and_page(class_lab, tmp_path, trace):
    page = tmp_path / "trace.html"
    out, err = trace(class_lab, "client1", "sh", "-c", "tcp-client --port 9 hi; echo partial; exit 7",
                     extra=("--text", "-o", page), status=1)
    assert "partial" in err                                         # the command's own output is kept
    said = [line for line in err.splitlines() if "exited with status" in line]
    assert said == ["lab trace: the command on client1 exited with status 7"], err
    assert err.rstrip().endswith(said[0]) and "Traceback" not in err
    assert [t for _, t, _ in rows(out)][:2] == ["SYN seq=0 len=0", "RST,ACK seq=0 ack=1 len=0"], out
    assert "RST,ACK seq=0 ack=1 len=0" in page.read_text()          # the page is still written


def test_trace_refuses_a_missing_host_with_one_line(class_lab, lab_exe):
    done = subprocess.run([str(lab_exe), "trace", "--lab", class_lab.topology.lab, "--", "nohost", "true"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "no host 'nohost'" in done.stderr and "Traceback" not in done.stderr


def test_a_partitioned_transfer_shows_drops_retransmissions_and_a_report(tmp_path, lab_run):
    run = lab_run(DATA / "packets-cut.yaml", "--json")
    assert run.returncode == 0, run.stderr
    folder = Path(only_report(run.stdout)["artifacts"])
    fates = json.loads((folder / "fates.json").read_text())
    dropped = [p for p in fates["packets"] if p["verdict"] == "dropped"]
    # The transfer spans the cut (about 6 s of data, cut at 2.5 s for 1 s), so packets were dropped.
    assert dropped, f"nothing dropped: {fates['counts']}"
    assert {p["reason"] for p in dropped} == {"partition"}
    assert fates["counts"]["dropped"] == len(dropped) and not fates["cut"]
    # Every dropped TCP segment (with data, or a SYN) shows in the ladder, dropped with its reason,
    # and a later segment of the same connection carries the same seq again: its retransmission.
    ladder = (folder / "ladders" / "bulk-client1.txt").read_text()
    seen = rows(ladder)
    drops = [i for i, (_, _, note) in enumerate(seen) if "dropped (partition)" in note]
    assert drops, ladder
    for i in drops:
        arrow, text, _ = seen[i]
        assert "✗" in arrow, seen[i]
        seq = re.search(r"seq=(\d+)", text)[1]
        if "len=0" in text and not text.startswith("SYN"):
            continue                       # a lost pure ACK is not sent again
        again = [s for s in seen[i + 1:] if f"seq={seq} " in s[1] and "retransmission" in s[2]]
        assert again, f"no retransmission of seq={seq} after its drop:\n{ladder}"
    # The run's page, in a real browser: loads cleanly, shows the table, draws the ladder.
    page = folder / "report.html"
    html = page.read_text()
    assert not browser_check.EXTERNAL.search(html)
    seen_page = browser_check.look(page, tmp_path / "report.png", (1400, 2400))
    assert seen_page.console == []
    assert '<table class="expectations">' in seen_page.dom and "bulk.sha256_match" in seen_page.dom
    assert "dropped (partition)" in seen_page.dom
    assert browser_check.pixels(seen_page.png).std() > 0.05
    assert browser_check.has_colour(seen_page.png, svg.COLOURS["packet"]) > 100


def test_fates_of_duplicated_and_delayed_datagrams_agree_with_what_the_client_counted(tmp_path, lab_run):
    run = lab_run(DATA / "packets-dup-delay.yaml", "--json")
    assert run.returncode == 0, run.stderr
    report = only_report(run.stdout)
    probe = report["results"]["probe"]["client1"]
    folder = Path(report["artifacts"])
    fates = json.loads((folder / "fates.json").read_text())
    requests = [p for p in fates["packets"] if p["link"] == "clients->servers" and p["proto"] == "udp"]
    duplicated = [p for p in requests if p["verdict"] == "duplicated"]
    # Two independent counts of one thing: the router's copies, seen on its far side, and the
    # client's extra echoes (the server answers each copy; nothing is lost on the way back).
    # udp-measure stops reading once every datagram has had an echo, so a duplicate echo that
    # leaves the router after the last first echo may go uncounted by it: those set the slack.
    assert probe["lost"] == 0 and probe["duplicated"] > 0, probe
    late = late_duplicate_echoes(folder, {p["udp_seq"] for p in duplicated})
    assert len(duplicated) - late <= probe["duplicated"] <= len(duplicated), (len(duplicated), late, probe)
    assert all(p["copies"] == 2 and p["label"].startswith("duplicated ×2") for p in duplicated)
    # Every request left the router at least 20 ms after it arrived (the kernel's stamps on both sides).
    assert len({p["udp_seq"] for p in requests}) == 300
    assert min(min(p["delays_ms"]) for p in requests) >= 20.0
    assert fates["counts"].get("dropped", 0) == 0
    ladder = (folder / "ladders" / "probe-client1.txt").read_text()
    assert "[duplicated ×2, delayed" in ladder


def late_duplicate_echoes(folder: Path, duplicated_seqs: set) -> int:
    """How many second echoes of duplicated datagrams left the router for the client after
    every datagram's first echo had (from the clients-side capture)."""
    from lab.packets import pcap
    echoes = {}
    for path in (folder / "captures").glob("*.pcap"):
        for p in pcap.read_pcap(path.read_bytes(), path.stem).packets:
            if p.proto == "udp" and p.sport == 12000 and p.udp_seq is not None and p.dst.endswith(".101"):
                echoes.setdefault(path.stem, {}).setdefault(p.udp_seq, []).append(p.t)
    # The clients-side interface is the one where the echoes to client1 were seen leaving last.
    side = max(echoes.values(), key=lambda seqs: max(max(ts) for ts in seqs.values()))
    complete = max(min(ts) for ts in side.values())
    return sum(1 for seq in duplicated_seqs if len(side.get(seq, [])) > 1 and sorted(side[seq])[1] > complete)

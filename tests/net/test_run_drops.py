"""No unexplained loss: `lab run` reports where each lost datagram went (report/drops.py).

One real run of data/drops.yaml: the router drops 20 % of the datagrams to the server, and
a program on the server never reads its tiny-buffered UDP socket while client1 floods it.
Every datagram udp-measure lost must be one the router counted, and every flood datagram
that passed the router must be one the server's kernel counted as a full receive buffer
(bar the few that fit in it)."""
from pathlib import Path


DATA = Path(__file__).resolve().parent / "data"
FLOOD = 500          # datagrams the flood step sends (data/drops.yaml)
FIT_AT_MOST = 8      # 1000-byte datagrams a 2 KiB SO_RCVBUF (doubled by the kernel) can hold


def test_every_lost_datagram_is_counted_at_the_router_or_in_the_receivers_buffer(tmp_path, lab_run_json):
    code, reports, stderr = lab_run_json([DATA / "drops.yaml"], tmp_path)
    assert code == 0, stderr
    report, = reports
    lost_by_probe = report["results"]["probe"]["client1"]["lost"]
    assert report["results"]["flood"]["client1"]["exit_code"] == 0
    router = report["drops"]["router"]["clients->servers"]
    overflowed = report["drops"]["hosts"]["server"]["Udp.RcvbufErrors"]
    assert set(report["drops"]["router"]) == {"clients->servers"}   # nothing on the way back
    # The flood's datagrams the router let through all reached the deaf socket's buffer:
    unexplained = (lost_by_probe + FLOOD) - (router["dropped_loss"] + overflowed)
    assert 0 <= unexplained <= FIT_AT_MOST, report["drops"]
    assert overflowed > FLOOD // 2
    page = (Path(report["artifacts"]) / "report.html").read_text()
    assert "Where packets were dropped or changed" in page and "receive buffer full" in page

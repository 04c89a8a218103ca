"""Where a run's packets went: the pure half (report/drops.py) and the router's field for
the kernel's drops in front of the impairer (router_counters.read)."""
from lab.programs import router_counters
from lab.report import drops
from lab.report.model import RunReport
from lab.report.render import report_text

SNMP = """Ip: Forwarding DefaultTTL InReceives ReasmTimeout ReasmReqds ReasmOKs ReasmFails
Ip: 2 64 1000 0 {reqds} 0 {reasm}
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
Udp: 500 {noports} 7 480 {rcvbuf} 0 3 0 0
UdpLite: InDatagrams NoPorts
UdpLite: 0 0
"""


def snmp(rcvbuf=0, noports=0, reasm=0, reqds=0):
    return drops.parse_snmp(SNMP.format(rcvbuf=rcvbuf, noports=noports, reasm=reasm, reqds=reqds))


def test_parse_snmp_pairs_names_with_values():
    counters = snmp(rcvbuf=4, noports=2)
    assert counters["Udp.RcvbufErrors"] == 4
    assert counters["Udp.NoPorts"] == 2
    assert counters["Ip.InReceives"] == 1000
    assert counters["UdpLite.InDatagrams"] == 0


def test_host_deltas_keep_only_what_grew_on_hosts_read_both_times():
    before = {"server": snmp(rcvbuf=4), "client1": snmp(), "gone": snmp()}
    after = {"server": snmp(rcvbuf=19, noports=1), "client1": snmp()}
    assert drops.host_deltas(before, after) == {"server": {"Udp.RcvbufErrors": 15, "Udp.NoPorts": 1}}


def test_a_receivers_reassembly_failures_are_its_drops_and_fragments_it_rebuilt_are_not():
    # A receiver whose reassembly memory filled (fragments of incomplete datagrams held
    # 30 s) drops fragments of complete datagrams too: those are its drops, not the router's.
    before = {"server": snmp(reqds=100)}
    after = {"server": snmp(reqds=3724, reasm=388)}
    assert drops.host_deltas(before, after) == {"server": {"Ip.ReasmFails": 388}}
    [row] = drops.describe({"hosts": drops.host_deltas(before, after)})
    assert row[0] == "server" and "reassembly" in row[1] and row[2] == 388


def test_router_deltas_per_link_and_a_restarted_engine_counts_from_zero():
    before = {"clients->servers": {"dropped_loss": 10, "duplicated": 5, "forwarded_packets": 100},
              "servers->clients": {"dropped_loss": 0}}
    after = {"clients->servers": {"dropped_loss": 30, "duplicated": 2, "forwarded_packets": 900},
             "servers->clients": {"dropped_loss": 0}}
    assert drops.router_deltas(before, after) == {"clients->servers": {"dropped_loss": 20, "duplicated": 2}}


def test_describe_and_the_terminal_report_name_each_place():
    report = RunReport("s", "", "s.yaml", "lab", None, "now")
    report.drops = {"router": {"clients->servers": {"dropped_engine_queue": 12}},
                    "hosts": {"server": {"Udp.RcvbufErrors": 3}}}
    rows = drops.describe(report.drops)
    assert rows == [("router clients->servers", drops.ROUTER_FIELDS["dropped_engine_queue"], 12),
                    ("server", drops.HOST_FIELDS[("Udp", "RcvbufErrors")], 3)]
    text = report_text(report)
    assert "server: 3 UDP datagrams dropped: receive buffer full" in text
    assert "router clients->servers: 12 dropped in front of the impairer" in text
    assert drops.describe({}) == []


def test_router_counters_add_the_kernels_drops_in_front_of_the_engine(monkeypatch):
    monkeypatch.setattr(router_counters, "ensure_accounting", lambda ifnames: None)
    monkeypatch.setattr(router_counters, "rule_counters", lambda table, family="ip": {})
    monkeypatch.setattr(router_counters, "qdisc_stats", lambda devices: {})
    stats = {"queues": {"0": {"link": "clients->servers", "dropped": 4, "delayed": 50}},
             "kernel": {"0": {"held": 0, "queue_full_dropped": 7, "socket_full_dropped": 2}}}
    links = router_counters.read({"clients": "eth0", "servers": "eth1"}, stats, {})["links"]
    assert links["clients->servers"]["dropped_engine_queue"] == 9
    assert links["clients->servers"]["dropped_loss"] == 4
    assert links["servers->clients"]["dropped_engine_queue"] == 0


def fake_router(monkeypatch, forwarded=0, qdisc_drops=0, requeues=0):
    monkeypatch.setattr(router_counters, "ensure_accounting", lambda ifnames: None)
    monkeypatch.setattr(router_counters, "rule_counters", lambda table, family="ip": (
        {"forwarded clients->servers": {"packets": forwarded, "bytes": 0}} if table == router_counters.ACCOUNT_TABLE
        else {}))
    monkeypatch.setattr(router_counters, "qdisc_stats", lambda devices: {
        ("eth1", "1:"): {"kind": "netem", "drops": qdisc_drops, "requeues": requeues}})


def test_forwarded_excludes_what_the_egress_qdisc_dropped(monkeypatch):
    """netem's loss (and a full rate-limit queue) drops after the accounting rule counted
    the packet: forwarded is what left the router, so the qdisc's drops come off it."""
    fake_router(monkeypatch, forwarded=10_000, qdisc_drops=2_000)
    links = router_counters.read({"clients": "eth0", "servers": "eth1"}, None, {},
                                 tc_qdiscs=[("clients->servers", "eth1", "1:")])["links"]
    assert links["clients->servers"]["forwarded_packets"] == 8_000
    assert links["clients->servers"]["dropped_queue"] == 2_000


def test_netem_reorders_are_its_requeues():
    text = ('[{"kind":"htb","handle":"1:","drops":0,"requeues":3},'
            '{"kind":"netem","handle":"10:","parent":"1:10","drops":5,"requeues":250}]')
    assert router_counters.parse_qdiscs(text, "eth1") == {
        ("eth1", "1:"): {"kind": "htb", "drops": 0, "requeues": 3},
        ("eth1", "10:"): {"kind": "netem", "drops": 5, "requeues": 250}}
    assert router_counters.parse_qdiscs("", "eth1") == {}


def test_a_netem_links_reordered_count_comes_from_its_qdisc(monkeypatch):
    fake_router(monkeypatch, forwarded=1_000, requeues=250)
    links = router_counters.read({"clients": "eth0", "servers": "eth1"}, None, {},
                                 tc_qdiscs=[("clients->servers", "eth1", "1:")])["links"]
    assert links["clients->servers"]["reordered"] == 250
    assert links["servers->clients"]["reordered"] == 0


def test_a_stopped_engines_counts_are_carried_into_the_next(monkeypatch):
    fake_router(monkeypatch)
    first = {"queues": {"0": {"link": "clients->servers", "dropped": 40, "delayed": 500}},
             "kernel": {"0": {"queue_full_dropped": 3, "socket_full_dropped": 0}}}
    second = {"queues": {"0": {"link": "clients->servers", "dropped": 2}}}
    carried = router_counters.carry(router_counters.carry({}, first), second)
    assert carried["clients->servers"]["dropped"] == 42
    assert carried["clients->servers"]["dropped_engine_queue"] == 3
    live = {"queues": {"1": {"link": "clients->servers", "dropped": 5}}, "kernel": {}}
    links = router_counters.read({"clients": "eth0", "servers": "eth1"}, live, {}, carried=carried)["links"]
    assert links["clients->servers"]["dropped_loss"] == 47
    assert links["clients->servers"]["delayed"] == 500
    assert links["clients->servers"]["dropped_engine_queue"] == 3


def test_forwarded_grows_by_what_was_accounted_less_what_the_qdisc_dropped():
    """Two readings where the qdisc's drops were read after more packets were dropped:
    forwarded (accounted - dropped) went down by 3, which is not a replaced counter: 3 more
    accounted, 6 more dropped."""
    then = {"forwarded_packets": 33_000, "dropped_queue": 40}
    now = {"forwarded_packets": 32_997, "dropped_queue": 46}
    assert router_counters.row_growth(now, then) == {"forwarded_packets": -3, "dropped_queue": 6}
    # A qdisc replaced by a change counts its drops from zero: that is still growth.
    assert router_counters.row_growth({"forwarded_packets": 33_100, "dropped_queue": 5}, then) == \
        {"forwarded_packets": 60, "dropped_queue": 5}


def test_watch_totals_do_not_jump_when_forwarded_dips():
    from lab.impairments.watch import Totals
    totals = Totals()
    for time, forwarded, dropped in ((0, 33_000, 40), (1, 32_997, 46), (2, 33_500, 50)):
        row = dict.fromkeys(router_counters.FIELDS, 0)
        row.update(forwarded_packets=forwarded, dropped_queue=dropped)
        totals.add({"time": time, "links": {"clients->servers": row}})
    total, = totals.rows()
    # accounted 33,040 -> 33,550, dropped 40 -> 50: 500 forwarded, not 33,000 more
    assert (total["forwarded_packets"], total["dropped_queue"]) == (500, 10)

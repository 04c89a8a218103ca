"""lab.packets: pcap parsing, fates from both sides of the router, ladders, folding, SVG.
Synthetic pcaps written with dpkt; no Docker."""
import io
import xml.etree.ElementTree as ET

import dpkt
import pytest

from lab.programs.shared.impairment import Impairment, Link
from lab.packets import fates, ladder, pcap, svg
from packet_builders import (CLIENT, HOSTS, IFACES, SERVER, SUBNET, forwarded, fragments,
                             handshake_with_a_lost_segment, ip_packet, packets, pcap_bytes, tcp, udp)

# -- pcap --------------------------------------------------------------------------------

def test_read_pcap_tcp_udp_icmp_and_direction():
    syn = tcp(CLIENT, SERVER, dpkt.tcp.TH_SYN, seq=1000)
    measure = udp(CLIENT, SERVER, b"slab 17 123456 abcdef")
    echo = udp(SERVER, CLIENT, b"SLAB 17 123456 ABCDEF", sport=12000, dport=40000)
    unreach = dpkt.icmp.ICMP(type=3, code=3, data=dpkt.icmp.ICMP.Unreach(data=udp(CLIENT, SERVER, b"hi")))
    icmp = ip_packet(SERVER, CLIENT, unreach, dpkt.ip.IP_PROTO_ICMP)
    cap = pcap.read_pcap(pcap_bytes([(1.0, syn), (1.1, measure), (1.2, forwarded(echo)), (1.3, forwarded(icmp))]),
                         "eth0", "10.9.1.0/24")
    p_syn, p_measure, p_echo, p_icmp = cap.packets
    assert (p_syn.proto, p_syn.flags, p_syn.seq, p_syn.direction) == ("tcp", "SYN", 1000, "in")
    assert p_syn.t == pytest.approx(1.0)
    assert (p_measure.udp_seq, p_measure.payload_len) == (17, 21)
    assert p_echo.udp_seq == 17 and p_echo.direction == "out"
    assert p_icmp.icmp == "port unreachable"
    assert p_icmp.quoted == f"udp {CLIENT}:40000 > {SERVER}:12000"


def test_read_pcap_skips_non_ip_bounds_and_survives_a_cut_file():
    arp = dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\xff" * 6, type=dpkt.ethernet.ETH_TYPE_ARP, data=b"\0" * 28)
    buf = io.BytesIO()
    w = dpkt.pcap.Writer(buf, nano=True)
    w.writepkt(bytes(arp), ts=1)
    for i in range(5):
        eth = dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=dpkt.ethernet.ETH_TYPE_IP,
                                     data=udp(CLIENT, SERVER, b"x" * 10, ip_id=i))
        w.writepkt(bytes(eth), ts=2 + i)
    data = buf.getvalue()
    whole = pcap.read_pcap(data, "eth0", SUBNET["eth0"])
    assert (len(whole.packets), whole.skipped, whole.cut) == (5, 1, False)
    assert len(pcap.read_pcap(data[:-7], "eth0").packets) == 4          # last record cut short
    bounded = pcap.read_pcap(data, "eth0", limit=3)
    assert len(bounded.packets) == 3 and bounded.cut
    with pytest.raises(ValueError, match="eth0: not a pcap"):
        pcap.read_pcap(b"garbage" * 10, "eth0")


def test_digest_ignores_what_forwarding_changes_and_nothing_else():
    ip = udp(CLIENT, SERVER, b"hello")
    raw = bytes(ip)
    other = bytearray(raw)
    other[8] -= 1                              # TTL
    other[10:12] = b"\x12\x34"                 # header checksum
    other[26:28] = b"\xab\xcd"                 # UDP checksum (offload finishes it on the way out)
    assert pcap.digest(bytes(other)) == pcap.digest(raw)
    changed = bytearray(raw)
    changed[-1] ^= 1                           # one payload bit
    assert pcap.digest(bytes(changed)) != pcap.digest(raw)


def test_flag_names_in_the_usual_order():
    from lab.packets.model import tcp_flag_names
    assert tcp_flag_names(dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK) == "SYN,ACK"
    assert tcp_flag_names(dpkt.tcp.TH_FIN | dpkt.tcp.TH_ACK | dpkt.tcp.TH_PUSH) == "FIN,PSH,ACK"


# -- fates -------------------------------------------------------------------------------

def test_forwarded_dropped_duplicated_delayed():
    a = udp(CLIENT, SERVER, b"one", ip_id=1)
    b = udp(CLIENT, SERVER, b"two", ip_id=2)
    c = udp(CLIENT, SERVER, b"three", ip_id=3)
    d = udp(CLIENT, SERVER, b"four", ip_id=4)
    m = fates.match(packets([(1.0, a), (1.1, b), (1.2, c), (1.3, d)],
                            [(1.0001, forwarded(a)), (1.2001, forwarded(c)), (1.2002, forwarded(c)),
                             (1.3251, forwarded(d))]),
                    IFACES, [fates.Window(0, 99, "clients->servers", Impairment(loss=20))])
    verdicts = [f.verdict for f in m.fates]
    assert verdicts == ["forwarded", "dropped", "duplicated", "forwarded"]
    assert m.fates[1].reason == "loss 20% in force"
    assert m.fates[1].label() == "dropped (loss 20% in force)"
    assert m.fates[2].label() == "duplicated ×2"
    assert m.fates[3].delay_ms == pytest.approx(25.1, abs=0.01) and m.fates[3].delayed
    assert not m.fates[0].impaired
    assert all(f.link == "clients->servers" for f in m.fates)


def test_drop_reasons_from_what_was_in_force():
    assert fates.drop_reason([Impairment(partition=True), Impairment(loss=5)]) == "partition"
    assert fates.drop_reason([Impairment(rate_kbit=16000, queue_limit=100)]) == \
        "rate limiter's queue (rate 16000 kbit/s, queue 100 packets) in force"
    assert fates.drop_reason([Impairment(loss=5, rate_kbit=1000)]) == \
        "loss 5% or rate limiter's queue (rate 1000 kbit/s): each in force"
    assert "no impairment in force" in fates.drop_reason([])


def test_a_packet_dropped_while_queued_when_a_partition_came_is_the_partitions():
    queued = udp(CLIENT, SERVER, b"queued", ip_id=1)
    early = udp(CLIENT, SERVER, b"early", ip_id=2)
    slow = udp(CLIENT, SERVER, b"slow", ip_id=3)
    wins = [fates.Window(0, 99, "clients->servers", Impairment(rate_kbit=1000)),
            fates.Window(5.0, 99, "clients->servers", Impairment(rate_kbit=1000, partition=True))]
    m = fates.match(packets([(1.0, early), (4.0, slow), (4.9, queued)], [(4.3, forwarded(slow))]), IFACES, wins)
    by = {f.packet.ip_id: f for f in m.fates}
    assert by[2].reason.startswith("rate limiter's queue")      # long before the partition
    assert by[3].verdict == "forwarded"                          # stayed 300 ms: the link's longest stay
    assert by[1].verdict == by[2].verdict == "dropped" and by[1].reason == "partition"


def test_windows_overlap_while_a_change_is_applied():
    link = Link("clients", "servers")
    wins = fates.windows([(10.0, 10.1, {link: Impairment(loss=5)}),
                          (12.0, 12.2, {link: Impairment(partition=True)}),
                          (15.0, 15.1, {})])
    assert fates.in_force(wins, "clients->servers", 11) == [Impairment(loss=5)]
    assert len(fates.in_force(wins, "clients->servers", 12.1)) == 2          # both, honestly
    assert fates.in_force(wins, "clients->servers", 13) == [Impairment(partition=True)]
    assert fates.in_force(wins, "clients->servers", 16) == []
    assert fates.in_force(wins, "servers->clients", 13) == []


def test_reordered_corrupted_and_unknown_at_the_end():
    a, b = udp(CLIENT, SERVER, b"aaaa", ip_id=1), udp(CLIENT, SERVER, b"bbbb", ip_id=2)
    c = udp(CLIENT, SERVER, b"cccc", ip_id=3)
    bad = forwarded(c)
    bad.data.data = b"cccd"          # one byte changed in transit
    late = udp(CLIENT, SERVER, b"late", ip_id=4)
    m = fates.match(packets([(1.0, a), (1.01, b), (1.02, c), (1.95, late)],
                            [(1.021, forwarded(b)), (1.05, forwarded(a)), (1.03, bad)]),
                    IFACES, capture_end=2.0)
    by = {f.packet.ip_id: f for f in m.fates}
    assert by[2].reordered and not by[1].reordered          # b left before a, which arrived first
    assert by[3].verdict == "corrupted"
    assert by[4].verdict == "unknown" and "capture ended" in by[4].label()
    assert m.unmatched_out == []


def test_reordering_is_within_a_flow():
    a = udp(CLIENT, SERVER, b"aaaa", ip_id=1, sport=1111)
    b = udp(CLIENT, SERVER, b"bbbb", ip_id=2, sport=2222)          # another flow overtakes: not reordered
    m = fates.match(packets([(1.0, a), (1.01, b)], [(1.02, forwarded(b)), (1.05, forwarded(a))]), IFACES)
    assert not any(f.reordered for f in m.fates)


def test_identical_arrivals_share_copies_in_time_order():
    seg = tcp(CLIENT, SERVER, dpkt.tcp.TH_ACK | dpkt.tcp.TH_PUSH, seq=5, ack=9, data=b"data", ip_id=0)
    m = fates.match(packets([(1.0, seg), (1.5, seg)], [(1.5001, forwarded(seg))]), IFACES,
                    [fates.Window(0, 99, "clients->servers", Impairment(partition=True))])
    assert [f.verdict for f in m.fates] == ["dropped", "forwarded"]
    assert m.fates[0].reason == "partition"


def test_fate_log_is_bounded_and_counts_everything():
    items = [(1 + i / 100, udp(CLIENT, SERVER, b"x%d" % i, ip_id=i)) for i in range(30)]
    m = fates.match(packets(items, []), IFACES, [fates.Window(0, 99, "clients->servers", Impairment(loss=100))])
    log = fates.fate_log(m, 1.0, limit=10)
    assert log["counts"]["dropped"] == 30 and log["impaired_total"] == 30
    assert log["cut"] and len(log["packets"]) == 10
    assert log["packets"][0]["reason"] == "loss 100% in force" and log["packets"][0]["t"] == 0


# -- ladders -----------------------------------------------------------------------------

def test_ladder_of_a_handshake_a_drop_and_its_retransmission():
    lad = handshake_with_a_lost_segment()
    assert [c.name for c in lad.columns] == ["client1", "router", "server"]
    assert [r.text for r in lad.rows] == [
        "SYN seq=0 len=0", "SYN,ACK seq=0 ack=1 len=0", "ACK seq=1 ack=1 len=0",
        "PSH,ACK seq=1 ack=1 len=5", "PSH,ACK seq=1 ack=1 len=5", "FIN,ACK seq=6 ack=1 len=0"]
    dropped, retransmitted = lad.rows[3], lad.rows[4]
    assert dropped.kind == "dropped" and dropped.stops_at_router and dropped.note == "dropped (partition)"
    assert retransmitted.kind == "retransmission" and retransmitted.note == "retransmission"
    assert (lad.rows[1].src, lad.rows[1].dst) == (2, 0)
    out = ladder.text(lad)
    assert "├─────────────✗" in out and "[dropped (partition)]" in out
    assert "◀" in out.splitlines()[4] and "client1 <hello>" in out


def test_folding_a_long_transfer_keeps_the_ends_and_what_matters():
    rows = [ladder.Row(i / 1000, 0, 2, f"PSH,ACK seq={i * 1448} ack=1 len=1448") for i in range(5000)]
    rows[2500].kind, rows[2500].note, rows[2500].stops_at_router = "dropped", "dropped (loss 5% in force)", True
    lad = ladder.Ladder("big", [ladder.Column("client1"), ladder.Column("router"), ladder.Column("server")], 1,
                        rows, total=5000)
    folded = ladder.fold(lad)
    assert len(folded.rows) <= ladder.MAX_ROWS
    assert folded.rows[:ladder.HEAD_ROWS] == rows[:ladder.HEAD_ROWS]
    assert folded.rows[-ladder.TAIL_ROWS:] == rows[-ladder.TAIL_ROWS:]
    assert rows[2500] in folded.rows
    assert sum(r.folded for r in folded.rows) + sum(r.kind != "fold" for r in folded.rows) == 5000
    assert "packets folded" in ladder.text(folded)
    # Many marked rows: the drops and the resends of dropped segments come first.
    many = [ladder.Row(i / 1000, 0, 2, f"PSH,ACK seq={i} len=1", kind="retransmission", segment=("f", i))
            for i in range(5000)]
    many[4000] = ladder.Row(4.0, 0, 2, "PSH,ACK seq=7 len=1", "dropped (x)", "dropped", True, segment=("f", 7))
    many[4500] = ladder.Row(4.5, 0, 2, "PSH,ACK seq=7 len=1", "retransmission", "retransmission", segment=("f", 7))
    kept = ladder.fold(ladder.Ladder("m", lad.columns, 1, many, total=5000)).rows
    assert many[4000] in kept and many[4500] in kept
    assert sum(r.kind != "fold" for r in kept) <= ladder.MAX_ROWS
    assert len(kept) <= ladder.MAX_ROWS + ladder.MIDDLE_ROWS + 1     # a fold row between kept ones at most
    short = ladder.Ladder("s", lad.columns, 1, rows[:20], total=20)
    assert ladder.fold(short).rows == rows[:20]


def test_svg_is_well_formed_and_escapes_hostile_text():
    lad = handshake_with_a_lost_segment()
    lad.title = '<script>alert("x")</script> & co'
    lad.columns[0] = ladder.Column('client1"><script>', CLIENT)
    doc = svg.render(lad)
    root = ET.fromstring(doc)                       # well-formed XML
    assert root.tag.endswith("svg") and "<script>" not in doc
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert 'client1"><script>' in texts and "dropped (partition)" in texts
    lad.columns[0] = ladder.Column("a-very-long-host-name-indeed-yes", CLIENT)
    assert "a-very-long-host-name…" in svg.render(lad)
    assert sum(1 for _ in root.iter("{http://www.w3.org/2000/svg}line")) >= 6


def test_a_runs_impairment_windows_follow_its_steps():
    from lab.runner.pages import impairment_windows
    from lab.scenario import load_text
    scenario = load_text("""
name: w
description: d
topology: {clients: 1, capture: true}
impairments:
  - link: clients -> servers
    loss: 5%
steps:
  - at: 0s
    name: probe
    on: client1
    run: udp-client hi
  - at: 1s
    name: cut
    partition: [clients, servers]
  - at: 2s
    name: mend
    heal: [clients, servers]
""", "w.yaml")
    wins = impairment_windows(scenario, {"cut": (1.0, 1.1), "mend": (2.0, 2.2)}, 1000.0)
    assert drop_at(wins, 1000.5) == "loss 5% in force"
    assert drop_at(wins, 1001.5) == "partition"
    assert drop_at(wins, 1002.1) == "partition"                 # the heal is still being applied
    assert drop_at(wins, 1003) == "loss 5% in force"
    assert fates.drop_reason(fates.in_force(wins, "servers->clients", 1003)) .startswith("no impairment")


def drop_at(wins, t):
    return fates.drop_reason(fates.in_force(wins, "clients->servers", t))


def test_columns_put_the_clients_left_of_the_router_and_name_unknown_hosts_by_address():
    client2 = "10.9.1.102"
    a = udp(CLIENT, SERVER, b"one", ip_id=1)
    b = udp(client2, SERVER, b"two", ip_id=2)
    c = udp(client2, "10.9.2.77", b"three", ip_id=3)
    hosts = HOSTS + [("client2", client2, "clients")]
    m = fates.match(packets([(1.0, a), (1.1, b), (1.2, c)],
                            [(1.0001, forwarded(a)), (1.1001, forwarded(b)), (1.2001, forwarded(c))]), IFACES)
    lad = ladder.build(m, hosts)
    assert [c.name for c in lad.columns] == ["client1", "client2", "router", "server", "10.9.2.77"]
    assert lad.router == 2
    assert [(r.src, r.dst) for r in lad.rows] == [(0, 3), (1, 3), (1, 4)]
    assert "client2" in ladder.text(lad).splitlines()[0]


def test_pieces_and_resets_the_router_made_are_marked_as_its_own():
    reply = tcp(SERVER, CLIENT, dpkt.tcp.TH_ACK | dpkt.tcp.TH_PUSH, seq=500, ack=9, data=b"HELLO",
                sport=12000, dport=40000)
    piece1 = tcp(SERVER, CLIENT, dpkt.tcp.TH_ACK, seq=500, ack=9, data=b"HE", sport=12000, dport=40000, ttl=63)
    piece2 = tcp(SERVER, CLIENT, dpkt.tcp.TH_ACK, seq=502, ack=9, data=b"LL", sport=12000, dport=40000, ttl=63)
    rst = tcp(SERVER, CLIENT, dpkt.tcp.TH_RST | dpkt.tcp.TH_ACK, seq=504, ack=9, sport=12000, dport=40000)
    m = fates.match(packets([(1.05, piece1), (1.1, piece2), (1.15, rst)], [(1.0, reply)]), IFACES)
    (fate,) = m.fates
    assert fate.verdict == fates.CUT and fate.label().startswith("cut by the router into 2 pieces")
    notes = sorted(m.made.values())
    assert notes == ["RST made by the router", "piece 1/2, made by the router",
                     "piece 2/2, made by the router"]
    log = fates.fate_log(m, 0.0)
    assert log["made_by_router"] == 3 and log["left_without_arrival"] == 0
    rows = ladder.build(m, HOSTS).rows
    assert [r.note for r in rows][1:] == ["piece 1/2, made by the router",
                                          "piece 2/2, made by the router",
                                          "RST made by the router"]


# -- IPv4 fragments ------------------------------------------------------------------------

def _datagram(size=1500, ip_id=77):
    """A udp-measure datagram of ``size`` payload bytes, number 7."""
    return udp(CLIENT, SERVER, b"slab 7 " + b"x" * (size - 7), ip_id=ip_id)


def test_read_pcap_reads_fragments_and_gives_later_ones_their_ports():
    pieces = fragments(forwarded(_datagram()), 576)
    got = pcap.read_pcap(pcap_bytes([(1.0 + n / 1000, f) for n, f in enumerate(reversed(pieces))]),
                         "eth1", SUBNET["eth1"]).packets
    got.sort(key=lambda p: p.frag_offset)
    assert [(p.frag_offset, p.more_fragments, p.ip_payload_len) for p in got] == [
        (0, True, 552), (552, True, 552), (1104, False, 404)]
    assert all(p.fragment and p.proto == "udp" and (p.sport, p.dport) == (40000, 12000) for p in got)
    assert [p.payload_len for p in got] == [1500, 0, 0]        # the first says the datagram's size
    assert {p.udp_seq for p in got} == {7} and {p.ip_id for p in got} == {77}
    whole = pcap.read_pcap(pcap_bytes([(1.0, _datagram(100))]), "eth0", SUBNET["eth0"]).packets[0]
    assert not whole.fragment and "frag_offset" not in whole.as_dict()
    assert got[1].as_dict()["frag_offset"] == 552


def test_a_datagram_the_router_fragmented_marks_each_fragment_i_of_k():
    dgram = _datagram()
    out = [(1.0001 + n / 10000, f) for n, f in enumerate(fragments(forwarded(dgram), 576))]
    m = fates.match(packets([(1.0, dgram)], out), IFACES,
                    [fates.Window(0, 9, "clients->servers", Impairment(mtu=576))])
    (fate,) = m.fates
    assert fate.verdict == fates.FRAGMENTED and fate.fragments == 3 and fate.lost_fragments == []
    assert fate.label() == "fragmented by the router into 3 fragments"
    assert sorted(m.made.values()) == [f"fragment {i}/3, made by the router" for i in (1, 2, 3)]
    assert fates.fate_log(m, 0.0)["counts"]["fragmented"] == 1
    lad = ladder.build(m, HOSTS)
    assert lad.rows[0].stops_at_router and lad.rows[0].text == "UDP len=1500 #7"
    assert [r.note for r in lad.rows[1:]] == [f"fragment {i}/3, made by the router" for i in (1, 2, 3)]
    assert lad.rows[2].text == "UDP frag id=77 off=552 MF len=552"
    assert "fragment 2/3, made by the router" in ladder.text(lad)


def test_a_lost_fragment_loses_the_whole_datagram_and_says_which():
    dgram = _datagram()
    first, _second, third = fragments(forwarded(dgram), 576)
    m = fates.match(packets([(1.0, dgram)], [(1.0001, first), (1.0003, third)]), IFACES,
                    [fates.Window(0, 9, "clients->servers", Impairment(mtu=576, loss=10))])
    (fate,) = m.fates
    assert fate.verdict == fates.DROPPED and fate.fragments == 3 and fate.lost_fragments == [2]
    assert fate.label() == ("fragmented by the router into 3 fragments, "
                            "fragment 2/3 dropped (loss 10% in force): the datagram is lost")
    assert sorted(m.made.values()) == ["fragment 1/3, made by the router", "fragment 3/3, made by the router"]
    assert fate.as_dict()["lost_fragments"] == [2]
    row = ladder.build(m, HOSTS).rows[0]
    assert row.kind == "dropped" and row.stops_at_router


def test_the_last_fragment_lost_is_counted_from_the_mtu_size_of_the_others():
    dgram = _datagram(1200)                  # 1,208 bytes: 552 + 552 + 104
    first, second, _third = fragments(forwarded(dgram), 576)
    m = fates.match(packets([(1.0, dgram)], [(1.001, first), (1.002, second)]), IFACES, None)
    (fate,) = m.fates
    assert (fate.verdict, fate.fragments, fate.lost_fragments) == (fates.DROPPED, 3, [3])
    assert fate.reason == fates.UNKNOWN_REASON


def test_the_senders_fragments_refragmented_by_the_router_are_one_datagram():
    dgram = _datagram(2000)                  # the sender cuts 2,008 bytes at its 1,500 MTU: 1480 + 528
    sent = fragments(dgram, 1500)
    out = fragments(forwarded(dgram), 576)   # the router reassembles, then cuts at 576: 4 fragments
    m = fates.match(packets([(1.0, sent[0]), (1.0001, sent[1])],
                            [(1.0002 + n / 10000, f) for n, f in enumerate(out)]), IFACES)
    assert [f.verdict for f in m.fates] == [fates.FRAGMENTED] * 2
    assert [f.label() for f in m.fates] == [
        "fragment 1/2 from the sender, fragmented by the router into 4 fragments",
        "fragment 2/2 from the sender, fragmented by the router into 4 fragments"]
    assert sorted(m.made.values()) == [f"fragment {i}/4, made by the router" for i in (1, 2, 3, 4)]


def test_fragments_that_fit_pass_as_they_came_and_ids_do_not_mix():
    a, b = _datagram(1000, ip_id=5), _datagram(1000, ip_id=6)
    sent = fragments(a, 576)                 # already small enough: forwarded unchanged
    m = fates.match(packets([(1.0, sent[0]), (1.0001, sent[1]), (1.0002, b)],
                            [(1.001, forwarded(sent[0])), (1.0011, forwarded(sent[1]))]
                            + [(1.002 + n / 1000, f) for n, f in enumerate(fragments(forwarded(b), 576))]),
                    IFACES, capture_end=9.0)
    assert [f.verdict for f in m.fates] == [fates.FORWARDED, fates.FORWARDED, fates.FRAGMENTED]
    assert m.fates[2].fragments == 2 and len(m.made) == 2


def test_a_datagram_with_every_fragment_lost_is_known_from_the_mtu_in_force_and_df_is_not():
    dgram = _datagram()                       # 1,508 bytes of UDP: 3 fragments at 576
    df = udp(CLIENT, SERVER, b"y" * 1000, ip_id=9)
    df.df = 1
    lossy = [fates.Window(0, 9, "clients->servers", Impairment(mtu=576, loss=30))]
    m = fates.match(packets([(1.0, dgram), (1.1, df)], []), IFACES, lossy, capture_end=9.0)
    lost, refused = m.fates
    assert (lost.verdict, lost.fragments, lost.lost_fragments) == (fates.DROPPED, 3, [1, 2, 3])
    assert lost.label() == ("fragmented by the router into 3 fragments, "
                            "all 3 fragments dropped (loss 30% in force): the datagram is lost")
    assert (refused.verdict, refused.fragments) == (fates.DROPPED, 0)     # DF: not fragmented
    assert refused.label() == "dropped (loss 30% in force)"
    assert fates.match(packets([(8.9, dgram)], []), IFACES, lossy, capture_end=9.0).fates[0].verdict == fates.UNKNOWN


def test_two_fragments_lost_are_both_named():
    dgram = _datagram()
    first = fragments(forwarded(dgram), 576)[0]
    m = fates.match(packets([(1.0, dgram)], [(1.0001, first)]), IFACES,
                    [fates.Window(0, 9, "clients->servers", Impairment(mtu=576, loss=30))])
    assert m.fates[0].label() == ("fragmented by the router into 3 fragments, "
                                  "fragments 2/3, 3/3 dropped (loss 30% in force): the datagram is lost")


def test_the_senders_fragments_all_lost_at_the_router_say_so():
    sent = fragments(_datagram(2000), 1500)
    m = fates.match(packets([(1.0, sent[0]), (1.0001, sent[1])], []), IFACES,
                    [fates.Window(0, 9, "clients->servers", Impairment(mtu=576, loss=30))], capture_end=9.0)
    assert [f.label() for f in m.fates] == [
        f"fragment {n}/2 from the sender, fragmented by the router into 4 fragments, "
        "all 4 fragments dropped (loss 30% in force): the datagram is lost" for n in (1, 2)]

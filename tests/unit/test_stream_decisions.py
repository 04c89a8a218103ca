"""The stream kinds without a kernel: their input checks (scenario, one-line form, the
model), their backends, the TCP pieces and resets the router makes, and the per-connection
decisions, with exact binomial bounds for ``connections``."""

import math
from dataclasses import replace
import random
import socket
import struct

import pytest

from lab.programs import tcp_packets as tcp
from lab.programs.impairer_decisions import Counters, LinkConfig
from lab.programs.impairer import dead_elements, dead_ruleset
from lab.programs.impairer_streams import CUT_PIECE, Streams, flow_key
from lab.programs.shared import oneline
from lab.programs.shared.backends import UnsupportedImpairment, plan
from lab.programs.shared.impairment import Capabilities, Impairment, Link

C2S, S2C = Link("clients", "servers"), Link("servers", "clients")
IFNAMES = {"clients": "eth0", "servers": "eth1"}
CAPS = Capabilities(nft=True, nft_numgen=True, nft_dup=True, nft_meta_priority=True,
                    iptables_nfqueue=True, nfqueue_netlink=True, raw_socket=True, tc_htb=True)
CLIENT, SERVER = socket.inet_aton("10.85.1.2"), socket.inet_aton("10.85.2.2")


# -- input ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, key, message", [
    ("segment 0", "segment", "below the minimum of 1"),
    ("reset-after 5", "reset-after", "5 has no unit: write it as 5B or 5KiB"),     # compose's SOCKETLAB_IMPAIR too
    ("blackhole-after 5", "blackhole-after", "5 has no unit: write it as 5B or 5KiB"),
    ("reset-after -5B", "reset-after", "negative"),
    ("blackhole-after 1KiB connections 120%", "connections", "over 100%"),
    ("mtu 40", "mtu", "below the minimum of 68"),
    ("gap 50ms", "gap", "gap needs segment"),
    ("connections 50%", "connections", "needs segment or reset_after"),
    ("segmnt 2", "segmnt", "unknown impairment"),
])
def test_bad_one_line_values_name_their_key(text, key, message):
    with pytest.raises(oneline.OneLineError) as info:
        oneline.parse_changes(f"clients -> servers {text}")
    assert info.value.key == key and message in info.value.message


def test_one_line_form_sets_every_stream_kind():
    change = oneline.parse_changes("clients -> servers segment 2 gap 50ms reset-after 1KiB "
                                   "hold-fin 2s connections 50% mtu 576")
    assert change.impair[C2S] == Impairment(segment=2, gap_ms=50.0, reset_after=1024, hold_fin_ms=2000.0,
                                            connections=50.0, mtu=576)
    assert change.impair[C2S].kinds() == ("segment", "reset_after", "hold_fin", "mtu")


@pytest.mark.parametrize("fields", [{"segment": 0}, {"mtu": 67}, {"mtu": 65536},
                                    {"connections": 101, "segment": 1}, {"gap_ms": 5},
                                    {"connections": 50}, {"reset_after": 0}])
def test_the_model_refuses_out_of_range(fields):
    with pytest.raises(ValueError):
        Impairment(**fields)


# -- backends -------------------------------------------------------------------------------

def test_stream_kinds_go_to_the_impairer_even_with_netem():
    with_netem = Capabilities(**{**{k: v for k, v in vars(CAPS).items() if k != "errors"}, "netem": True})
    p = plan({C2S: Impairment(delay_ms=10, segment=2, gap_ms=5)}, IFNAMES, with_netem)
    assert p.backends[C2S] == {"delay": "tc netem", "segment": "nfqueue impairer"}
    links = {entry["link"]: entry["impairment"] for entry in p.impairer_config["links"]}
    assert links == {"clients->servers": {"segment": 2, "gap_ms": 5}}
    assert sum("NFQUEUE" in c.argv for c in p.apply) == 1


def test_stream_kinds_without_a_raw_socket_are_refused_not_ignored():
    caps = Capabilities(**{**{k: v for k, v in vars(CAPS).items() if k != "errors"}, "raw_socket": False})
    with pytest.raises(UnsupportedImpairment, match="segment needs nfqueue impairer.*raw_socket"):
        plan({C2S: Impairment(segment=2)}, IFNAMES, caps)


def test_mtu_is_a_routing_table_of_the_link_and_cleared_exactly():
    p = plan({C2S: Impairment(mtu=576)}, IFNAMES, CAPS)
    assert p.backends[C2S] == {"mtu": "ip route mtu"} and p.impairer_config is None
    script, rule = p.apply
    assert script.argv[:2] == ("sh", "-c") and "dev eth1 mtu 576 table 100" in script.argv[2]
    assert rule.argv == ("ip", "rule", "add", "iif", "eth0", "lookup", "100", "pref", "100")
    assert [c.argv for c in p.clear] == [("ip", "rule", "del", "pref", "100"),
                                         ("ip", "route", "flush", "table", "100")]


def test_loss_on_a_link_with_mtu_drops_each_fragment_at_egress():
    """The forward hook sees a datagram whole (conntrack reassembled it, and the kernel
    fragments after postrouting): the link's loss is an egress rule, matched by a mark
    that every fragment inherits, counted under the usual "loss LINK" comment."""
    p = plan({C2S: Impairment(mtu=576, loss=10.0)}, IFNAMES, replace(CAPS, nft_egress=True))
    assert p.backends[C2S] == {"loss": "nftables egress", "mtu": "ip route mtu"}
    ruleset = p.apply[0].stdin
    assert 'iifname "eth0" oifname "eth1" meta mark set 0x5c000000' in ruleset
    netdev = ruleset[ruleset.index("table netdev socketlab {"):]
    assert 'type filter hook egress device "eth1"' in netdev
    assert 'meta mark 0x5c000000 numgen random mod 1000000 < 100000 counter drop comment "loss clients->servers"' \
        in netdev
    assert ("nft", "delete", "table", "netdev", "socketlab") in [c.argv for c in p.clear]
    # without mtu, loss stays in the forward chain and no netdev table is made
    plain = plan({C2S: Impairment(loss=10.0)}, IFNAMES, replace(CAPS, nft_egress=True))
    assert plain.backends[C2S] == {"loss": "nftables numgen"} and "netdev" not in plain.apply[0].stdin


def test_loss_with_mtu_is_refused_where_no_egress_hook_sees_fragments():
    with pytest.raises(UnsupportedImpairment, match="loss needs tc netem or nftables egress"):
        plan({C2S: Impairment(mtu=576, loss=10.0)}, IFNAMES, CAPS)
    netem = plan({C2S: Impairment(mtu=576, loss=10.0)}, IFNAMES, replace(CAPS, netem=True))
    assert netem.backends[C2S]["loss"] == "tc netem"    # netem's egress qdisc sees each fragment


def nfqueue_rules(p):
    return [c.argv[4:] for c in p.apply if c.argv[:4] == ("iptables", "-w", "-A", "FORWARD")]


def test_threshold_kinds_queue_only_syn_fin_rst_and_connections_past_their_size():
    """Bulk packets of a connection that has not carried SIZE bytes (headers and both ways
    counted: never less than one direction's payload) stay in the kernel."""
    caps = replace(CAPS, iptables_connbytes=True)
    queue = ("-j", "NFQUEUE", "--queue-num", "0", "--queue-bypass")
    link = ("-i", "eth0", "-o", "eth1", "-p", "tcp")
    p = plan({C2S: Impairment(reset_after=1024, blackhole_after=4096, connections=50.0)}, IFNAMES, caps)
    assert nfqueue_rules(p) == [
        link + ("!", "--tcp-flags", "SYN,FIN,RST", "NONE") + queue,
        link + ("-m", "connbytes", "--connbytes", "1025:", "--connbytes-dir", "both",
                "--connbytes-mode", "bytes") + queue]
    assert [c.argv[4:] for c in p.clear if c.argv[:3] == ("iptables", "-w", "-D")] == nfqueue_rules(p)
    assert nfqueue_rules(plan({C2S: Impairment(hold_fin_ms=100.0)}, IFNAMES, caps)) == \
        [link + ("!", "--tcp-flags", "SYN,FIN,RST", "NONE") + queue]


@pytest.mark.parametrize("imp, caps, per_segment", [
    (Impairment(reset_after=1024, segment=100), replace(CAPS, iptables_connbytes=True), False),
    (Impairment(reset_after=1024, delay_ms=10.0), replace(CAPS, iptables_connbytes=True), False),
    (Impairment(reset_after=1024), CAPS, False),                                # no connbytes
    (Impairment(reset_after=1024), replace(CAPS, iptables_connbytes=True), True),
])
def test_every_packet_is_queued_where_the_engine_must_see_them_all(imp, caps, per_segment):
    assert nfqueue_rules(plan({C2S: imp}, IFNAMES, caps, per_segment=per_segment)) == \
        [("-i", "eth0", "-o", "eth1", "-j", "NFQUEUE", "--queue-num", "0", "--queue-bypass")]


def test_link_config_holds_the_impairment():
    config = LinkConfig.from_dict({"queue": 1, "link": "a->b", "impairment": {"segment": 3}})
    assert config.impairment == Impairment(segment=3) and not config.whole_packets
    assert config.gso          # one verdict per GSO burst: the stream kinds cut where they must
    assert not LinkConfig.from_dict({"queue": 1, "impairment": {"segment": 3, "loss": 1}}).gso


# -- the packets the router makes ---------------------------------------------------------

def segment(payload=b"", seq=1000, ack=5000, flags=tcp.ACK | tcp.PSH, src=CLIENT, dst=SERVER,
            sport=40000, dport=12000):
    options = b"\x01\x01\x08\x0a" + struct.pack("!II", 7, 9)   # NOP NOP timestamps
    tcp_header = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, (20 + len(options)) // 4 << 4,
                             flags, 65535, 0, 0) + options
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp_header) + len(payload), 1, 0x4000, 63,
                     6, 0, src, dst)
    return tcp.parse(tcp.build(tcp.parse(ip + tcp_header + payload), payload, seq, flags))


def valid(packet: bytes) -> bool:
    pkt = tcp.parse(packet)
    ip_ok = tcp.checksum(packet[:pkt.ip_len]) == 0
    pseudo = pkt.src + pkt.dst + struct.pack("!BBH", 0, 6, len(packet) - pkt.ip_len)
    return ip_ok and tcp.checksum(pseudo + packet[pkt.ip_len:]) == 0


def test_pieces_carry_their_sequence_numbers_checksums_and_the_fin_on_the_last():
    original = segment(b"HELLO WORLD", seq=2**32 - 4, flags=tcp.ACK | tcp.PSH | tcp.FIN)
    parts = [tcp.parse(p) for p in tcp.pieces(original, 4)]
    assert [p.payload for p in parts] == [b"HELL", b"O WO", b"RLD"]
    assert [p.seq for p in parts] == [2**32 - 4, 0, 4]            # wraps around
    assert [p.flags for p in parts] == [tcp.ACK, tcp.ACK, tcp.ACK | tcp.PSH | tcp.FIN]
    assert all(valid(p.raw) for p in parts) and all(p.ack == 5000 for p in parts)
    assert all(p.raw[pkt_len:pkt_len + 12] == original.raw[pkt_len:pkt_len + 12]
               for p in parts for pkt_len in [p.ip_len + 20])     # options kept


def test_a_reset_is_a_valid_rst_ack():
    rst = tcp.parse(tcp.reset(SERVER, CLIENT, 12000, 40000, 77, 88))
    assert rst.flags == tcp.RST | tcp.ACK and (rst.seq, rst.ack) == (77, 88) and valid(rst.raw)


# -- decisions ----------------------------------------------------------------------------

def decide(streams, imp, pkt, now=0.0, queue=0, rng=None, counters=None):
    return streams.decide(imp, queue, pkt, now, rng or random.Random(1), counters or Counters())


def test_segment_with_gap_spaces_the_pieces_and_keeps_later_packets_behind_them():
    streams, counters, imp = Streams(), Counters(), Impairment(segment=2, gap_ms=50)
    decide(streams, imp, segment(seq=999, flags=tcp.SYN))
    verdict = decide(streams, imp, segment(b"HELLO", seq=1000), now=1.0, counters=counters)
    assert not verdict.accept and [m.delay for m in verdict.made] == [0.0, 0.05, 0.1]
    assert [tcp.parse(m.packet).payload for m in verdict.made] == [b"HE", b"LL", b"O"]
    assert counters.pieces_made == 3
    later = decide(streams, imp, segment(b"!", seq=1005), now=1.01)
    assert later.accept and later.delay == pytest.approx(0.14)   # after the last piece + a gap


def test_reset_after_cuts_at_size_and_resets_both_ends_with_their_next_sequence_numbers():
    streams, counters, imp = Streams(), Counters(), Impairment(reset_after=8)
    decide(streams, imp, segment(seq=999, flags=tcp.SYN))
    assert decide(streams, imp, segment(b"12345", seq=1000)).accept
    verdict = decide(streams, imp, segment(b"67890", seq=1005, ack=5000), counters=counters)
    made = [tcp.parse(m.packet) for m in verdict.made]
    assert not verdict.accept and made[0].payload == b"678"
    to_server, to_client = made[1], made[2]
    assert (to_server.dst, to_server.seq, to_server.ack) == (SERVER, 1008, 5000)
    assert (to_client.dst, to_client.seq, to_client.ack) == (CLIENT, 5000, 1008)
    assert counters.resets_sent == 1
    assert streams.changed == [(flow_key(made[0]), True)]    # for the kernel's set of dead flows
    # the connection is dead both ways until a new SYN on the same addresses
    reply = segment(b"x", seq=5000, src=SERVER, dst=CLIENT, sport=12000, dport=40000)
    assert not decide(streams, Impairment(), reply, queue=1).accept
    assert decide(streams, imp, segment(seq=3000, flags=tcp.SYN)).accept
    assert streams.changed[-1] == (flow_key(made[0]), False)


def test_blackhole_after_passes_exactly_size_then_drops_both_ways():
    streams, counters, imp = Streams(), Counters(), Impairment(blackhole_after=4)
    decide(streams, imp, segment(seq=999, flags=tcp.SYN))
    verdict = decide(streams, imp, segment(b"ABCDEF", seq=1000), counters=counters)
    assert [tcp.parse(m.packet).payload for m in verdict.made] == [b"ABCD"]
    assert counters.blackholed == 1
    reply = segment(seq=5000, src=SERVER, dst=CLIENT, sport=12000, dport=40000)
    assert not decide(streams, Impairment(), reply, queue=1).accept


def test_hold_fin_delays_fins_only():
    streams, imp = Streams(), Impairment(hold_fin_ms=2000)
    assert decide(streams, imp, segment(b"data")).delay == 0
    verdict = decide(streams, imp, segment(flags=tcp.ACK | tcp.FIN, seq=1004))
    assert verdict.accept and verdict.delay == 2.0


def binomial_interval(n, p, confidence=0.999):
    tail = (1 - confidence) / 2
    pmf = [math.comb(n, k) * p**k * (1 - p)**(n - k) for k in range(n + 1)]
    lo = next(k for k in range(n + 1) if sum(pmf[:k + 1]) > tail)
    hi = next(k for k in range(n + 1) if sum(pmf[:k + 1]) >= 1 - tail)
    return lo, hi


def test_connections_share_is_chosen_once_per_connection_at_its_syn():
    streams, rng, imp = Streams(), random.Random(7), Impairment(reset_after=1, connections=30)
    n, reset = 1000, 0
    for port in range(20000, 20000 + n):
        decide(streams, imp, segment(seq=0, flags=tcp.SYN, sport=port), rng=rng)
        first = decide(streams, imp, segment(b"ab", seq=1, sport=port), rng=rng)
        second = decide(streams, imp, segment(b"cd", seq=3, sport=port), rng=rng)
        reset += not first.accept
        assert second.accept == first.accept      # the choice holds for the connection
    lo, hi = binomial_interval(n, 0.30)
    assert lo <= reset <= hi


def test_a_cut_gso_burst_goes_in_pieces_a_raw_socket_can_send():
    streams, imp = Streams(), Impairment(blackhole_after=5000)
    decide(streams, imp, segment(seq=999, flags=tcp.SYN))
    verdict = decide(streams, imp, segment(b"z" * 60000, seq=1000))
    sizes = [len(tcp.parse(m.packet).payload) for m in verdict.made]
    assert sum(sizes) == 5000 and max(sizes) == CUT_PIECE


def test_dead_connections_are_dropped_both_ways_by_the_kernel_set():
    key = flow_key(segment())
    assert dead_elements(key) in ("{ 10.85.1.2 . 40000 . 10.85.2.2 . 12000, 10.85.2.2 . 12000 . 10.85.1.2 . 40000 }",
                                  "{ 10.85.2.2 . 12000 . 10.85.1.2 . 40000, 10.85.1.2 . 40000 . 10.85.2.2 . 12000 }")
    rules = dead_ruleset()
    assert "priority filter - 5" in rules and "tcp flags & (syn | ack) != syn" in rules

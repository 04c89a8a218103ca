"""Backend choice and the router commands plan() builds.

The command lists are the product here, so golden lists are the right test: each one
below was also run on a real router container (see the impairment report).
"""

import pytest

from lab.programs.shared.impairment import Capabilities, GilbertElliott, Impairment, Link
from lab.programs.shared.backends import Command, UnsupportedImpairment, describe_backends, plan, transition
from lab.programs.shared import backends
from lab.programs.impairer_decisions import LinkConfig

C2S, S2C = Link("clients", "servers"), Link("servers", "clients")
IFNAMES = {"clients": "eth0", "servers": "eth1"}
IFNAMES3 = {"clients": "eth0", "servers": "eth1", "extra": "eth2"}

# This kernel: no netem, everything else.
NO_NETEM = Capabilities(nft=True, nft_numgen=True, nft_dup=True, nft_meta_priority=True,
                        iptables_nfqueue=True, iptables_statistic=True, nfqueue_netlink=True,
                        raw_socket=True, tc_tbf=True, tc_htb=True, ifb=True,
                        errors={"netem": "Error: Specified qdisc kind is unknown."})
# A typical kernel with netem.
FULL = Capabilities(**{**{k: v for k, v in vars(NO_NETEM).items() if k != "errors"},
                       "netem": True})
NOTHING = Capabilities(errors={"netem": "Error: Specified qdisc kind is unknown.",
                               "iptables_nfqueue": "No chain/target/match by that name."})


def argvs(commands):
    return [" ".join(c.argv) for c in commands]


def test_no_impairment_plans_nothing():
    p = plan({C2S: Impairment()}, IFNAMES, NO_NETEM)
    assert p.apply == () and p.clear == () and p.impairer_config is None
    assert not p.needs_impairer and p.backends == {}


def test_loss_without_netem_is_an_nft_numgen_rule():
    p = plan({C2S: Impairment(loss=20)}, IFNAMES, NO_NETEM)
    assert p.backends == {C2S: {"loss": "nftables numgen"}}
    (load,) = p.apply
    assert load.argv == ("nft", "-f", "-")
    assert load.stdin == (
        "table ip socketlab {}\n"
        "delete table ip socketlab\n"
        "table ip socketlab {\n"
        "\tchain impair {\n"
        "\t\ttype filter hook forward priority filter + 10; policy accept;\n"
        '\t\tiifname "eth0" oifname "eth1" numgen random mod 1000000 < 200000 counter drop comment "loss clients->servers"\n'
        "\t}\n"
        "}\n"
        "table ip6 socketlab {}\n"
        "delete table ip6 socketlab\n"
        "table ip6 socketlab {\n"
        "\tchain impair {\n"
        "\t\ttype filter hook forward priority filter + 10; policy accept;\n"
        '\t\tiifname "eth0" oifname "eth1" numgen random mod 1000000 < 200000 counter drop comment "loss clients->servers"\n'
        "\t}\n"
        "}\n")
    assert argvs(p.clear) == ["nft delete table ip socketlab", "nft delete table ip6 socketlab"]


def test_partition_drops_both_directions():
    p = plan({C2S: Impairment(partition=True), S2C: Impairment(partition=True)}, IFNAMES,
             NO_NETEM)
    assert '\t\tiifname "eth0" oifname "eth1" counter drop comment "partition clients->servers"\n' in p.apply[0].stdin
    assert '\t\tiifname "eth1" oifname "eth0" counter drop comment "partition servers->clients"\n' in p.apply[0].stdin


def test_delay_without_netem_goes_to_the_engine():
    p = plan({C2S: Impairment(delay_ms=40, jitter_ms=10, reorder=25)}, IFNAMES, NO_NETEM)
    assert p.backends[C2S] == {"delay": "nfqueue impairer", "reorder": "nfqueue impairer"}
    assert argvs(p.apply) == [
        "iptables -w -A FORWARD -i eth0 -o eth1 -j NFQUEUE --queue-num 0 --queue-bypass"]
    assert argvs(p.clear) == [
        "iptables -w -D FORWARD -i eth0 -o eth1 -j NFQUEUE --queue-num 0 --queue-bypass"]
    assert p.impairer_config == {
        "version": 2, "queue_maxlen": backends.IMPAIRER_QUEUE_MAXLEN,
        "links": [{"queue": 0, "link": "clients->servers",
                   "impairment": {"delay_ms": 40, "jitter_ms": 10, "reorder": 25}}]}


def test_engine_gets_only_the_kinds_it_applies():
    imp = Impairment(loss=5, delay_ms=10, corrupt=1)
    p = plan({C2S: imp}, IFNAMES, NO_NETEM)
    assert p.backends[C2S] == {"loss": "nftables numgen", "corrupt": "nfqueue impairer",
                               "delay": "nfqueue impairer"}
    (link,) = p.impairer_config["links"]
    imp = link["impairment"]
    assert "loss" not in imp and imp["corrupt"] == 1 and imp["delay_ms"] == 10


def test_bursty_loss_goes_to_the_engine_with_its_parameters():
    ge = GilbertElliott(p=1, r=30)
    p = plan({S2C: Impairment(gemodel=ge)}, IFNAMES, NO_NETEM)
    assert p.impairer_config["links"][0]["impairment"]["gemodel"] == {
        "p": 1, "r": 30, "one_minus_h": 100.0, "one_minus_k": 0.0}


def test_one_queue_per_engine_link_from_queue_base():
    p = plan({S2C: Impairment(delay_ms=5), C2S: Impairment(delay_ms=7)}, IFNAMES, NO_NETEM,
             queue_base=100)
    assert [(l["queue"], l["link"]) for l in p.impairer_config["links"]] == [
        (100, "clients->servers"), (101, "servers->clients")]


def test_duplicate_by_nft_unless_the_engine_already_handles_the_link():
    alone = plan({C2S: Impairment(duplicate=5)}, IFNAMES, NO_NETEM)
    assert alone.backends[C2S] == {"duplicate": "nftables dup"}
    assert ('\t\tiifname "eth0" oifname "eth1" numgen random mod 1000000 < 50000 counter '
            'dup to ip daddr device "eth1" comment "duplicate clients->servers"\n') in alone.apply[0].stdin
    assert 'dup to ip6 daddr device "eth1"' in alone.apply[0].stdin
    # nft's copy would skip the impairer's delay, so the impairer makes it.
    delayed = plan({C2S: Impairment(duplicate=5, delay_ms=10)}, IFNAMES, NO_NETEM)
    assert delayed.backends[C2S]["duplicate"] == "nfqueue impairer"
    assert delayed.impairer_config["links"][0]["impairment"]["duplicate"] == 5


def test_rate_without_netem_is_an_htb_class_chosen_by_nft_priority():
    p = plan({C2S: Impairment(rate_kbit=2000, queue_limit=50)}, IFNAMES, NO_NETEM)
    assert p.backends[C2S] == {"rate": "tc htb"}
    assert argvs(p.apply[1:]) == [
        "tc qdisc replace dev eth1 root handle 1: htb",
        "tc class add dev eth1 parent 1: classid 1:10 htb rate 2000kbit ceil 2000kbit "
        "quantum 1514",
        "tc qdisc add dev eth1 parent 1:10 handle 10: pfifo limit 50"]
    assert '\t\tiifname "eth0" oifname "eth1" meta priority set 1:10\n' in p.apply[0].stdin
    assert argvs(p.clear) == ["tc qdisc del dev eth1 root", "nft delete table ip socketlab",
                              "nft delete table ip6 socketlab"]


def test_priority_rule_comes_before_dup_so_copies_are_shaped_too():
    ruleset = plan({C2S: Impairment(rate_kbit=100, duplicate=1)}, IFNAMES,
                   NO_NETEM).apply[0].stdin
    assert ruleset.index("meta priority set") < ruleset.index("dup to")


def test_two_links_into_one_interface_get_two_classes():
    p = plan({Link("clients", "servers"): Impairment(rate_kbit=100),
              Link("extra", "servers"): Impairment(rate_kbit=200)}, IFNAMES3, NO_NETEM)
    assert [a for a in argvs(p.apply) if "classid" in a] == [
        "tc class add dev eth1 parent 1: classid 1:10 htb rate 100kbit ceil 100kbit quantum 1514",
        "tc class add dev eth1 parent 1: classid 1:11 htb rate 200kbit ceil 200kbit quantum 1514"]
    ruleset = p.apply[0].stdin
    assert 'iifname "eth0" oifname "eth1" meta priority set 1:10' in ruleset
    assert 'iifname "eth2" oifname "eth1" meta priority set 1:11' in ruleset


def test_with_netem_each_link_gets_an_htb_class_with_a_netem_leaf():
    imp = Impairment(delay_ms=40, jitter_ms=10, loss=1, duplicate=2, corrupt=0.5, reorder=25)
    p = plan({C2S: imp}, IFNAMES, FULL)
    assert set(p.backends[C2S].values()) == {"tc netem"}
    assert p.impairer_config is None
    assert argvs(p.apply[1:]) == [
        "tc qdisc replace dev eth1 root handle 1: htb",
        "tc class add dev eth1 parent 1: classid 1:10 htb rate 100gbit ceil 100gbit quantum 1514",
        "tc qdisc add dev eth1 parent 1:10 handle 10: netem limit 10000 delay 40ms 10ms "
        "loss random 1% duplicate 2% corrupt 0.5% reorder 25%"]


def test_netem_gemodel_and_correlated_loss_arguments():
    ge = Impairment(gemodel=GilbertElliott(p=1, r=30, one_minus_h=90, one_minus_k=0.1))
    assert backends.netem_args(ge, ge.kinds()) == [
        "netem", "limit", "10000", "loss", "gemodel", "1%", "30%", "90%", "0.1%"]
    corr = Impairment(loss=5, loss_correlation=25)
    assert backends.netem_args(corr, corr.kinds()) == [
        "netem", "limit", "10000", "loss", "random", "5%", "25%"]


def test_netem_with_rate_keeps_the_queue_limit_in_netem():
    p = plan({C2S: Impairment(delay_ms=10, rate_kbit=500, queue_limit=20)}, IFNAMES, FULL)
    assert p.backends[C2S] == {"delay": "tc netem", "rate": "tc htb"}
    assert argvs(p.apply[2:]) == [
        "tc class add dev eth1 parent 1: classid 1:10 htb rate 500kbit ceil 500kbit quantum 1514",
        "tc qdisc add dev eth1 parent 1:10 handle 10: netem limit 20 delay 10ms"]


def test_without_htb_two_networks_use_a_root_tbf_with_netem_inside():
    caps = Capabilities(netem=True, tc_tbf=True)
    p = plan({C2S: Impairment(delay_ms=10, rate_kbit=800)}, IFNAMES, caps)
    assert p.backends[C2S] == {"delay": "tc netem", "rate": "tc tbf"}
    assert argvs(p.apply) == [
        "tc qdisc replace dev eth1 root handle 1: tbf rate 800kbit burst 6056 limit 1514000",
        "tc qdisc add dev eth1 parent 1:1 handle 10: netem limit 1000 delay 10ms"]
    assert argvs(p.clear) == ["tc qdisc del dev eth1 root"]


def test_without_nft_two_networks_use_htbs_default_class():
    caps = Capabilities(tc_htb=True)
    p = plan({C2S: Impairment(rate_kbit=800)}, IFNAMES, caps)
    assert argvs(p.apply)[0] == "tc qdisc replace dev eth1 root handle 1: htb default 10"


def test_rate_on_three_networks_needs_per_link_classes():
    caps = Capabilities(tc_tbf=True, tc_htb=True)  # no nftables to classify with
    with pytest.raises(UnsupportedImpairment, match="rate needs tc htb or tc tbf"):
        plan({C2S: Impairment(rate_kbit=800)}, IFNAMES3, caps)


def test_unsupported_kind_is_an_error_before_any_command():
    with pytest.raises(UnsupportedImpairment) as info:
        plan({C2S: Impairment(corrupt=1)}, IFNAMES, NOTHING)
    message = str(info.value)
    assert message.startswith("corrupt needs tc netem or nfqueue impairer; none is available")
    assert "Specified qdisc kind is unknown" in message
    assert "No chain/target/match by that name" in message


def test_unknown_network_is_an_error():
    with pytest.raises(ValueError, match="no interface on 'dmz'"):
        plan({Link("clients", "dmz"): Impairment(loss=1)}, IFNAMES, NO_NETEM)


def test_loss_below_numgen_resolution_is_an_error_not_zero():
    with pytest.raises(UnsupportedImpairment, match="resolution"):
        plan({C2S: Impairment(loss=0.00001)}, IFNAMES, NO_NETEM)


def test_loss_and_duplication_of_100_percent_match_every_packet():
    # nftables refuses `numgen random mod 1000000 < 1000000` (the value must be below the modulus).
    p = plan({C2S: Impairment(loss=100)}, IFNAMES, NO_NETEM)
    assert ('\t\tiifname "eth0" oifname "eth1" counter drop comment "loss clients->servers"\n' in p.apply[0].stdin
            and "numgen" not in p.apply[0].stdin)
    p = plan({C2S: Impairment(duplicate=100)}, IFNAMES, NO_NETEM)
    assert 'iifname "eth0" oifname "eth1" counter dup to ip daddr device "eth1"' in p.apply[0].stdin


def test_full_plan_orders_nft_then_tc_then_iptables_and_clears_in_reverse():
    p = plan({C2S: Impairment(loss=1, delay_ms=5, rate_kbit=1000)}, IFNAMES, NO_NETEM)
    assert [c.argv[0] for c in p.apply] == ["nft", "tc", "tc", "tc", "iptables"]
    assert [c.argv[0] for c in p.clear] == ["iptables", "tc", "nft", "nft"]


def test_transition_clears_the_old_state_then_applies_the_new():
    old = plan({C2S: Impairment(loss=1)}, IFNAMES, NO_NETEM)
    new = plan({C2S: Impairment(delay_ms=5)}, IFNAMES, NO_NETEM)
    assert transition(old, new) == old.clear + new.apply
    assert transition(None, new) == new.apply


def test_a_cut_link_stays_cut_while_the_router_changes():
    """Partition and heal: a guard drops the link's packets from before the old state is
    cleared until the new one is in place, so no burst slips through the gap."""
    shaped = plan({C2S: Impairment(rate_kbit=1000)}, IFNAMES, NO_NETEM)
    cut = plan({C2S: Impairment(rate_kbit=1000, partition=True)}, IFNAMES, NO_NETEM)
    assert cut.cut == (("eth0", "eth1"),) and shaped.cut == ()
    for old, new in ((shaped, cut), (cut, shaped)):
        commands = transition(old, new)
        assert commands[1:-2] == old.clear + new.apply
        guard = commands[0]
        assert guard.argv == ("nft", "-f", "-")
        assert 'iifname "eth0" oifname "eth1" drop' in guard.stdin
        assert "table ip socketlab_guard" in guard.stdin and "table ip6 socketlab_guard" in guard.stdin
        assert [c.argv for c in commands[-2:]] == [("nft", "delete", "table", "ip", "socketlab_guard"),
                                                   ("nft", "delete", "table", "ip6", "socketlab_guard")]


def test_no_guard_where_nftables_does_not_apply_the_partition():
    netem_only = Capabilities(netem=True, tc_htb=True, tc_tbf=True)
    old = plan({C2S: Impairment(rate_kbit=1000)}, IFNAMES, netem_only)
    new = plan({C2S: Impairment(rate_kbit=1000, partition=True)}, IFNAMES, netem_only)
    assert new.backends[C2S]["partition"] == "tc netem" and new.cut == ()
    assert transition(old, new) == old.clear + new.apply
    assert all(c.argv[0] == "tc" for c in transition(old, new))


def test_backend_table_is_json_friendly():
    p = plan({C2S: Impairment(loss=1)}, IFNAMES, NO_NETEM)
    assert p.backend_table() == {"clients->servers": {"loss": "nftables numgen"}}


def test_command_str_marks_stdin():
    assert str(Command(("nft", "-f", "-"), stdin="x")) == "nft -f - <<ruleset"


def test_describe_backends_on_this_kernel():
    assert describe_backends(NO_NETEM) == {
        "partition": "nftables drop",
        "loss": "nftables numgen",
        "correlated_loss": "nfqueue impairer",
        "duplicate": "nftables dup (nfqueue impairer on links it already handles)",
        "corrupt": "nfqueue impairer",
        "delay": "nfqueue impairer",
        "reorder": "nfqueue impairer",
        "rate": "tc htb",
        "segment": "nfqueue impairer",
        "reset_after": "nfqueue impairer",
        "blackhole_after": "nfqueue impairer",
        "hold_fin": "nfqueue impairer",
        "mtu": "ip route mtu",
    }


def test_describe_backends_with_netem_and_with_nothing():
    # the stream kinds stay on the impairer with netem: no qdisc re-segments or resets
    assert set(describe_backends(FULL).values()) == {"nftables drop", "tc netem", "tc htb",
                                                     "nfqueue impairer", "ip route mtu"}
    table = describe_backends(NOTHING)
    assert all(v.startswith("unavailable: ") for k, v in table.items() if k != "mtu")


def test_per_segment_sends_every_impaired_link_through_the_engine():
    # nftables still drops, but after the impairer's queue has split GSO packets
    p = plan({C2S: Impairment(loss=1), S2C: Impairment(duplicate=2)}, IFNAMES, NO_NETEM,
             per_segment=True)
    assert p.backends == {C2S: {"loss": "nftables numgen"},
                          S2C: {"duplicate": "nfqueue impairer"}}
    assert p.impairer_config["links"] == [
        {"queue": 0, "link": "clients->servers", "impairment": {}, "split": True},
        {"queue": 1, "link": "servers->clients", "impairment": {"duplicate": 2}, "split": True}]
    # A link the impairer decides nothing on still asks the kernel to cut GSO packets:
    # otherwise nftables' loss after it drops 64 KiB bursts whole.
    configs = [LinkConfig.from_dict(link) for link in p.impairer_config["links"]]
    assert [c.gso for c in configs] == [False, False] and configs[0].whole_packets
    assert [a for a in argvs(p.apply) if a.startswith("iptables")] == [
        "iptables -w -A FORWARD -i eth0 -o eth1 -j NFQUEUE --queue-num 0 --queue-bypass",
        "iptables -w -A FORWARD -i eth1 -o eth0 -j NFQUEUE --queue-num 1 --queue-bypass"]


def test_without_per_segment_stream_links_take_gso_bursts_whole():
    p = plan({C2S: Impairment(loss=1, segment=100)}, IFNAMES, NO_NETEM)
    link, = p.impairer_config["links"]
    assert "split" not in link and LinkConfig.from_dict(link).gso


def test_per_segment_without_the_engine_is_an_error():
    with pytest.raises(UnsupportedImpairment, match="per-segment impairment needs the nfqueue"):
        plan({C2S: Impairment(loss=1)}, IFNAMES, Capabilities(nft=True, nft_numgen=True),
             per_segment=True)


def test_engine_duplicates_on_a_shaped_link_carry_its_class():
    p = plan({C2S: Impairment(duplicate=5, delay_ms=10, rate_kbit=1000)}, IFNAMES, NO_NETEM)
    assert p.impairer_config["links"][0]["skb_priority"] == 0x10010  # class 1:10


def test_queue_numbers_are_fixed_per_link_whatever_else_is_impaired():
    only_back = plan({S2C: Impairment(delay_ms=5)}, IFNAMES3, NO_NETEM)
    both = plan({C2S: Impairment(delay_ms=5), S2C: Impairment(delay_ms=5)}, IFNAMES3, NO_NETEM)
    # sorted links: clients->extra 0, clients->servers 1, extra->clients 2, ... servers->clients 4
    assert [l["queue"] for l in only_back.impairer_config["links"]] == [4]
    assert [l["queue"] for l in both.impairer_config["links"]] == [1, 4]

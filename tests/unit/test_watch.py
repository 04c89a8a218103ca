"""lab watch's arithmetic (pure): counts since the watch began from counters that may restart."""
from lab.impairments.watch import FIELDS, Totals
from lab.commands.watch import made_by_router
from lab.programs.router_counters import accounting_ruleset, fragments_made


def reading(t, **counts):
    return {"time": t, "links": {"a->b": {**dict.fromkeys(FIELDS, 0), **counts}}}


def test_totals_are_differences_from_the_first_reading_and_rate_is_per_interval():
    totals = Totals()
    totals.add(reading(10.0, forwarded_packets=100, forwarded_bytes=1000))
    totals.add(reading(11.0, forwarded_packets=150, forwarded_bytes=2000))
    totals.add(reading(12.0, forwarded_packets=160, forwarded_bytes=2500))
    row = totals.rows()[0]
    assert row["forwarded_packets"] == 60 and row["forwarded_bytes"] == 1500
    assert row["rate_bps"] == 500 * 8


def test_a_counter_that_restarts_counts_from_zero_again():
    totals = Totals()
    totals.add(reading(0.0, dropped_loss=40))
    totals.add(reading(1.0, dropped_loss=50))
    totals.add(reading(2.0, dropped_loss=7))     # the rule was replaced by a change
    assert totals.rows()[0]["dropped_loss"] == 10 + 7


def test_the_accounting_table_counts_every_directed_link():
    text = accounting_ruleset({"clients": "eth0", "servers": "eth1"})
    assert 'iifname "eth0" oifname "eth1" counter comment "forwarded clients->servers"' in text
    assert 'iifname "eth1" oifname "eth0" counter comment "forwarded servers->clients"' in text
    assert "hook postrouting" in text


def test_what_the_router_made_is_one_column():
    assert made_by_router(dict.fromkeys(FIELDS, 0)) == "0"
    row = {**dict.fromkeys(FIELDS, 0), "pieces_made": 12, "resets_sent": 1, "fragments": 4}
    assert made_by_router(row) == "12 pieces, 1 resets, 4 fragments"


def test_fragments_are_the_kernels_fragcreates():
    snmp = ("Ip: Forwarding DefaultTTL FragOKs FragFails FragCreates\n"
            "Ip: 1 64 2 0 6\nIcmp: InMsgs\nIcmp: 0\n")
    assert fragments_made(snmp) == 6 and fragments_made("") == 0

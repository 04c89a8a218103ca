"""The impairment model: validation, kinds, and reading the kernel probe's output."""

import pytest

from lab.programs.shared.impairment import Capabilities, GilbertElliott, Impairment, Link


def test_empty_impairment_sets_no_kind():
    assert Impairment().kinds() == ()
    assert Impairment(loss=0, delay_ms=None).is_empty()


def test_kinds_come_in_the_order_a_packet_meets_them():
    imp = Impairment(rate_kbit=100, delay_ms=5, loss=1, duplicate=1, corrupt=1, reorder=5)
    assert imp.kinds() == ("loss", "duplicate", "corrupt", "delay", "reorder", "rate")


def test_correlated_and_bursty_loss_are_their_own_kind():
    assert Impairment(loss=5, loss_correlation=25).kinds() == ("correlated_loss",)
    assert Impairment(gemodel=GilbertElliott(p=1)).kinds() == ("correlated_loss",)


@pytest.mark.parametrize("fields, message", [
    ({"loss": 101}, "loss must be a percentage"),
    ({"delay_ms": -1}, "delay_ms must not be negative"),
    ({"loss_correlation": 20}, "loss_correlation needs loss"),
    ({"loss": 1, "gemodel": GilbertElliott(p=1)}, "not both"),
    ({"jitter_ms": 5}, "jitter_ms needs delay_ms"),
    ({"reorder": 10}, "reorder needs delay_ms"),
    ({"queue_limit": 10}, "needs rate_kbit"),
    ({"rate_kbit": 1}, "below 8 kbit/s"),
])
def test_meaningless_combinations_are_errors(fields, message):
    with pytest.raises(ValueError, match=message):
        Impairment(**fields)


def test_gemodel_defaults_are_netems():
    ge = GilbertElliott(p=2)
    assert (ge.r, ge.one_minus_h, ge.one_minus_k) == (98, 100, 0)


def test_gemodel_mean_loss_is_time_in_bad_state_times_its_loss():
    # p/(p+r) of the time in Bad, losing 1-h there; 1-k in Good.
    ge = GilbertElliott(p=1, r=9, one_minus_h=50, one_minus_k=1)
    assert ge.mean_loss_percent() == pytest.approx(0.1 * 50 + 0.9 * 1)


def test_from_dict_builds_gemodel_and_rejects_unknown_fields():
    imp = Impairment.from_dict({"gemodel": {"p": 1, "r": 20}, "delay_ms": 10})
    assert imp.gemodel == GilbertElliott(p=1, r=20)
    with pytest.raises(ValueError, match="unknown impairment field.*latency"):
        Impairment.from_dict({"latency": 10})


def test_link_is_directed():
    link = Link("clients", "servers")
    assert link.reverse() == Link("servers", "clients")
    assert str(link) == "clients->servers"
    with pytest.raises(ValueError):
        Link("a", "a")


# What kernel_probe printed on a kernel without netem (Linux 6.18, Debian bookworm tools).
PROBE_NO_NETEM = {
    "cleanup_errors": [], "ifb": True, "iptables_nfqueue": True, "iptables_statistic": True,
    "kernel": "6.18.44", "netem": False, "nfqueue_netlink": True, "nft": True, "nft_dup": True,
    "nft_meta_priority": True, "nft_numgen": True, "nft_queue": False, "raw_socket": True,
    "tc_htb": True, "tc_tbf": True, "version": 1,
    "errors": {"netem": "Error: Specified qdisc kind is unknown.",
               "nft_queue": "Error: Could not process rule: No such file or directory"},
}


def test_capabilities_from_probe():
    caps = Capabilities.from_probe(PROBE_NO_NETEM)
    assert not caps.netem and caps.nft_numgen and caps.tc_htb
    assert caps.nfqueue_impairer
    assert caps.why_not("netem") == "Error: Specified qdisc kind is unknown."


def test_capabilities_missing_keys_count_as_absent():
    caps = Capabilities.from_probe({"nft": True, "some_future_ability": True})
    assert caps.nft and not caps.tc_htb and not caps.nfqueue_impairer
    assert caps.why_not("tc_htb") == "not probed"


def test_socketlab_backend_fallback_hides_netem_and_says_why(monkeypatch):
    from lab.programs.shared.impairment import Capabilities
    probe = {"netem": True, "nft": True, "nft_numgen": True}
    monkeypatch.delenv("SOCKETLAB_BACKEND", raising=False)
    assert Capabilities.from_probe(probe).netem
    monkeypatch.setenv("SOCKETLAB_BACKEND", "fallback")
    caps = Capabilities.from_probe(probe)
    assert not caps.netem and caps.nft_numgen
    assert "SOCKETLAB_BACKEND=fallback" in caps.why_not("netem")
    assert Capabilities.from_probe(probe, backend="auto").netem


def test_socketlab_backend_rejects_unknown_values():
    import pytest
    from lab.programs.shared.impairment import Capabilities
    with pytest.raises(ValueError, match="SOCKETLAB_BACKEND must be one of auto, fallback"):
        Capabilities.from_probe({}, backend="netem-please")

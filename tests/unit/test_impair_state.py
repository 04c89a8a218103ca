"""One model of router state: how a Change moves a state (impairment.next_state), and its JSON form."""
import pytest

from lab.programs.shared.impairment import Change, GilbertElliott, Impairment, Link, next_state, state_from_list, state_to_list

C2S, S2C = Link("clients", "servers"), Link("servers", "clients")


def test_impair_sets_links_and_keeps_the_others():
    state = next_state({}, Change(impair={C2S: Impairment(loss=5)}))
    state = next_state(state, Change(impair={S2C: Impairment(delay_ms=20)}))
    assert state == {C2S: Impairment(loss=5), S2C: Impairment(delay_ms=20)}


def test_an_empty_impairment_removes_the_link():
    assert next_state({C2S: Impairment(loss=1.0)}, Change(impair={C2S: Impairment()})) == {}


def test_a_partition_survives_impair_and_the_impairment_survives_heal():
    state = next_state({C2S: Impairment(delay_ms=30)}, Change(partition=(C2S,)))
    assert state == {C2S: Impairment(delay_ms=30, partition=True)}
    state = next_state(state, Change(impair={C2S: Impairment(loss=10)}))
    assert state == {C2S: Impairment(loss=10, partition=True)}
    assert next_state(state, Change(heal=(C2S,))) == {C2S: Impairment(loss=10)}


def test_clear_one_link_or_all():
    state = {C2S: Impairment(loss=1), S2C: Impairment(loss=2, partition=True)}
    assert next_state(state, Change(clear=(S2C,))) == {C2S: Impairment(loss=1)}
    assert next_state(state, Change(clear_all=True)) == {}


def test_replace_all_gives_exactly_that_state_partitions_included():
    old = {S2C: Impairment(loss=2, partition=True)}
    wanted = {C2S: Impairment(delay_ms=5, partition=True)}
    assert next_state(old, Change.replace_all(wanted)) == wanted


def test_state_and_change_round_trip_through_json():
    state = {C2S: Impairment(gemodel=GilbertElliott(p=1, r=30), delay_ms=5, partition=True),
             S2C: Impairment(rate_kbit=1000, queue_limit=50)}
    assert state_from_list(state_to_list(state)) == state
    change = Change(impair=state, partition=(C2S,), heal=(S2C,), clear=(S2C,), clear_all=True)
    assert Change.from_dict(change.to_dict()) == change


def test_link_parse_is_str_inverse():
    assert Link.parse(str(C2S)) == C2S
    with pytest.raises(ValueError):
        Link.parse("clients")


def test_heal_all_heals_every_cut_link_and_keeps_the_rest():
    state = {C2S: Impairment(loss=3, partition=True), S2C: Impairment(partition=True)}
    assert next_state(state, Change(heal_all=True)) == {C2S: Impairment(loss=3)}


def test_the_agent_plans_without_netem_when_the_fallback_backend_is_asked():
    from lab.programs.shared.impairment import Capabilities
    from lab.programs.impair_agent import InputError, backend_caps
    caps = Capabilities(netem=True, nft=True)
    assert backend_caps(caps, None).netem and backend_caps(caps, "auto").netem
    assert not backend_caps(caps, "fallback").netem
    with pytest.raises(InputError):
        backend_caps(caps, "netem-please")


def test_the_router_role_reads_its_networks_names():
    from lab.programs.host_role import network_names
    assert network_names(["clients=10.77.1.0/24", "servers=10.77.2.0/24"]) == {
        "clients": "10.77.1.0/24", "servers": "10.77.2.0/24"}
    with pytest.raises(ValueError):
        network_names(["clients"])

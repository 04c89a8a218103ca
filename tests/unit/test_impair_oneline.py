"""The one-line form shared by `lab impair` and compose's SOCKETLAB_IMPAIR."""
import pytest

from lab.programs.shared.impairment import Change, GilbertElliott, Impairment, Link
from lab.programs.shared.oneline import OneLineError, impairment_of, parse_changes

C2S, S2C = Link("clients", "servers"), Link("servers", "clients")


def test_both_directions_with_units():
    change = parse_changes("clients <-> servers loss 5% delay 20ms")
    assert change == Change(impair={C2S: Impairment(loss=5, delay_ms=20),
                                    S2C: Impairment(loss=5, delay_ms=20)})


def test_every_kind_and_several_changes():
    change = parse_changes("clients->servers loss 1% loss-correlation 25% duplicate 2% corrupt 0.5% "
                           "delay 50ms jitter 10ms reorder 25%; servers -> clients rate 1mbit queue 50")
    assert change.impair[C2S] == Impairment(loss=1, loss_correlation=25, duplicate=2, corrupt=0.5,
                                            delay_ms=50, jitter_ms=10, reorder=25)
    assert change.impair[S2C] == Impairment(rate_kbit=1000, queue_limit=50)


def test_gemodel():
    assert impairment_of([("gemodel", "1%,30%")]) == Impairment(gemodel=GilbertElliott(p=1, r=30))


def test_partition_heal_clear():
    assert parse_changes("partition clients servers") == Change(partition=(C2S, S2C))
    assert parse_changes("heal") == Change(heal_all=True)
    assert parse_changes("clear clients -> servers") == Change(clear=(C2S,))
    assert parse_changes("clear") == Change(clear_all=True)


@pytest.mark.parametrize("text, key, message", [
    ("clients -> servers loss 120%", "loss", "120% is over 100%"),
    ("clients -> servers delay 5parsecs", "delay", "5parsecs"),
    ("clients -> servers rate 1MB", "rate", "unknown rate unit"),
    ("clients -> servers jitter 5ms", "jitter", "jitter needs delay"),
    ("clients -> servers queue 50", "queue", "needs rate"),
    ("clients -> servers los 5%", "los", "did you mean 'loss'"),
    ("clients -> servers loss", "loss", "has no value"),
    ("clients servers loss 5%", "link", "does not start with a link"),
    ("clients -> clients loss 5%", "link", "two different networks"),
])
def test_bad_values_name_the_key(text, key, message):
    with pytest.raises(OneLineError) as info:
        parse_changes(text)
    assert info.value.key == key and message in str(info.value), str(info.value)
    assert str(info.value).startswith(f"{key}: ")

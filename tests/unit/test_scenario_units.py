"""Durations, percentages and rates (lab.programs.shared.units), and their schema patterns."""
import re

import pytest

from lab.programs.shared import units


@pytest.mark.parametrize("text, seconds", [
    ("300ms", 0.3), ("5s", 5.0), ("1.5s", 1.5), ("2m", 120.0), ("1h", 3600.0), ("500us", 0.0005),
    (".5s", 0.5), ("10 ms", 0.01), ("0", 0.0), (0, 0.0), ("0s", 0.0), ("-0s", 0.0),
])
def test_durations(text, seconds):
    assert units.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text, message", [
    (50, "50 has no unit: write 50ms or 50s"),
    ("50", "'50' has no unit: write 50ms or 50s"),
    ("-5ms", "'-5ms' is negative"),
    ("5 sec", "unknown time unit 'sec'"),
    ("fast", "is not a duration"),
    (True, "expected a duration like 300ms or 5s, got the boolean true"),
    (None, "got nothing (null)"),
])
def test_bad_durations(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        units.parse_duration(text)


@pytest.mark.parametrize("value, percent", [
    ("10%", 10.0), ("0.5%", 0.5), ("100%", 100.0), (10, 10.0), (0.1, 0.1), ("7 %", 7.0), ("120%", 120.0),
])
def test_percentages_plain_numbers_mean_percent(value, percent):
    assert units.parse_percent(value) == percent


def test_percent_range_messages():
    with pytest.raises(ValueError, match=r"^120% is over 100%$"):
        units.check_percent_range(120)
    with pytest.raises(ValueError, match=r"^-5% is negative$"):
        units.check_percent_range(-5)
    units.check_percent_range(0)
    units.check_percent_range(100)


@pytest.mark.parametrize("value", ["ten%", "10", "%", [10]])
def test_bad_percentages(value):
    with pytest.raises(ValueError):
        units.parse_percent(value)


def test_infinite_percent_is_refused():
    with pytest.raises(ValueError, match="not a finite number"):
        units.parse_percent(float("inf"))


@pytest.mark.parametrize("text, kbit", [
    ("1mbit", 1000.0), ("512kbit", 512.0), ("1.5gbit", 1.5e6), ("8000bit", 8.0), ("2Mbit", 2000.0),
    ("100 kbit", 100.0),
])
def test_rates_are_bits_per_second_in_kbit(text, kbit):
    assert units.parse_rate(text) == pytest.approx(kbit)


@pytest.mark.parametrize("text, message", [
    ("1mbps", "write rates in bits per second (1mbit); 'mbps' is ambiguous (tc reads it as bytes per second)"),
    ("10kbps", "(10kbit)"),
    ("1000", "has no unit"),
    (1000, "1000 has no unit: write it as 1000kbit or 1000mbit"),
    ("1 furlong", "unknown rate unit 'furlong'"),
    ("-1mbit", "is negative"),
])
def test_bad_rates(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        units.parse_rate(text)


@pytest.mark.parametrize("pattern, good, bad", [
    (units.DURATION_PATTERN, ["300ms", "1.5s", "2m", "10 ms", "500us"], ["-5ms", "5", "5sec", "ms"]),
    (units.PERCENT_PATTERN, ["10%", "0.5%", "100%", "100.0%", ".5%", "99.99%"], ["120%", "100.5%", "-1%", "10"]),
    (units.RATE_PATTERN, ["1mbit", "512kbit", "1Gbit", "8000bit"], ["1mbps", "-1mbit", "1000"]),
])
def test_schema_patterns_agree_with_the_parsers(pattern, good, bad):
    regex = re.compile(pattern)
    for text in good:
        assert regex.match(text), text
    for text in bad:
        assert not regex.match(text), text


def test_describe_names_yaml_types_for_messages():
    assert units.describe(None) == "nothing (null)"
    assert units.describe(False) == "the boolean false"
    assert units.describe(3) == "the number 3"
    assert units.describe("x") == "the string 'x'"
    assert units.describe([1]) == "a list"
    assert units.describe({}) == "a mapping"

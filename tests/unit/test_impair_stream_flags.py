"""`lab impair`'s stream-fault flags refuse bad values with the flag named and exit 2,
before the lab is looked for."""
import pytest
from click.testing import CliRunner

from lab.cli import cli


@pytest.mark.parametrize("flags, message", [
    (["--segment", "0"], "--segment: 0 is below the minimum of 1"),
    (["--segment", "-1"], "--segment: -1 is below the minimum of 1"),
    (["--reset-after", "5"], "--reset-after: 5 has no unit: write it as 5B or 5KiB"),     # bytes, not MiB
    (["--blackhole-after", "5"], "--blackhole-after: 5 has no unit: write it as 5B or 5KiB"),
    (["--reset-after", "-5B"], "--reset-after: '-5B' is negative"),
    (["--blackhole-after", "1KiB", "--connections", "120%"], "--connections: 120% is over 100%"),
    (["--mtu", "40"], "--mtu: 40 is below the minimum of 68"),
    (["--gap", "50ms"], "--gap: gap needs segment"),
    (["--hold-fin", "2"], "--hold-fin: 2 has no unit"),
])
def test_bad_stream_fault_flags_exit_2_naming_the_flag(monkeypatch, flags, message):
    from lab import engine
    from lab.topology import lifecycle

    def no_engine(*args, **kwargs):
        raise AssertionError("a refused flag must not reach the engine")

    monkeypatch.setattr(lifecycle, "reap_and_say", lambda *args, **kwargs: None)   # every command's sweep
    monkeypatch.setattr(engine, "client", no_engine)
    result = CliRunner().invoke(cli, ["impair", "--lab", "nolab", "clients -> servers", *flags])
    assert result.exit_code == 2 and message in result.output, result.output

"""`lab --version` prints the installed package's version, and needs no Docker Engine."""
from importlib.metadata import version

from click.testing import CliRunner

from lab.cli import cli


def test_version_is_the_installed_package_version(monkeypatch):
    from lab.topology import lifecycle

    def no_engine(*args, **kwargs):
        raise AssertionError("lab --version must not talk to the engine")

    monkeypatch.setattr(lifecycle, "reap_and_say", no_engine)
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output == f"lab, version {version('socketlab')}\n"

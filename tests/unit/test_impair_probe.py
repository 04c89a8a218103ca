"""kernel_probe with a fake command runner: what it reports, and that it removes all it adds."""

from lab.programs import kernel_probe


def fake_kernel(monkeypatch, failing=("netem",)):
    """Commands succeed unless one of ``failing`` is in their argv; all are recorded."""
    commands = []

    def run(*argv, stdin=None):
        commands.append(" ".join(argv) + (" " + stdin if stdin else ""))
        for word in failing:
            if word in " ".join(argv) + (stdin or ""):
                raise kernel_probe.ProbeFailed(f"Error: no {word} here")

    monkeypatch.setattr(kernel_probe, "run", run)
    monkeypatch.setattr(kernel_probe, "cleanup_errors", [])
    monkeypatch.setitem(kernel_probe.PROBES, "nfqueue_netlink", lambda: None)
    monkeypatch.setitem(kernel_probe.PROBES, "raw_socket", lambda: None)
    return commands


def test_reports_each_ability_with_an_error_text_for_the_missing(monkeypatch):
    fake_kernel(monkeypatch, failing=("netem", "queue num"))
    result = kernel_probe.probe_all()
    assert result["netem"] is False and result["nft_queue"] is False
    assert result["errors"] == {"netem": "Error: no netem here",
                                "nft_queue": "Error: no queue num here"}
    assert all(result[name] for name in kernel_probe.PROBES if name not in ("netem", "nft_queue"))
    assert result["cleanup_errors"] == []


def test_everything_added_is_removed(monkeypatch):
    commands = fake_kernel(monkeypatch, failing=())
    kernel_probe.probe_all()

    def count(word):
        return sum(word in c for c in commands)

    assert count("ip link add") == count("ip link del") == 2  # veth pair, ifb
    assert count("tc qdisc add") == count("tc qdisc del") == 3
    assert count("nft -f -") == count("nft delete table") == 6
    assert count("iptables -w -N") == count("iptables -w -X") == 3


def test_no_test_interface_means_device_probes_fail_with_that_reason(monkeypatch):
    fake_kernel(monkeypatch, failing=("veth",))
    result = kernel_probe.probe_all()
    assert result["tc_htb"] is False
    assert result["errors"]["tc_htb"].startswith("cannot create a test interface")
    assert result["nft"] is True  # needs no device

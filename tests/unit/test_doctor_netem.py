"""lab doctor's account of why netem is or is not used (pure: module files in tmp_path)."""
from lab.doctor import netem_status
from lab.programs.kernel_probe import netem_module
from lab.programs.shared.impairment import Capabilities

NO_NETEM = {"netem": False, "errors": {"netem": "Error: Specified qdisc kind is unknown."}}


def status(tmp_path, probe, dep="", loaded="", backend="auto"):
    """What the probe (lab/programs/kernel_probe.py) reports of the engine's module files."""
    (tmp_path / "6.1.0").mkdir()
    (tmp_path / "6.1.0" / "modules.dep").write_text(dep)
    (tmp_path / "modules").write_text(loaded)
    facts = {"kernel": "6.1.0", "netem_module": netem_module("6.1.0", str(tmp_path), str(tmp_path / "modules"))}
    return netem_status(Capabilities.from_probe(probe, backend=backend), facts)


def test_netem_present_is_used(tmp_path):
    check = status(tmp_path, {"netem": True})
    assert check.status == "ok" and "tc netem works" in check.detail


def test_a_module_that_did_not_load_gets_the_modprobe_to_run(tmp_path):
    dep = "kernel/net/sched/sch_netem.ko.xz:\nkernel/net/sched/sch_htb.ko.xz:\n"
    check = status(tmp_path, NO_NETEM, dep=dep, loaded="sch_htb 1 0 - Live\n")
    assert check.status == "warn" and "not loaded" in check.detail
    assert check.fix.startswith("sudo modprobe sch_netem")


def test_a_kernel_without_netem_says_so_and_names_the_fallbacks(tmp_path):
    check = status(tmp_path, NO_NETEM, dep="kernel/net/sched/sch_htb.ko:\n")
    assert check.status == "info" and "no sch_netem in the engine's kernel 6.1.0" in check.detail
    assert "NFQUEUE impairer" in check.detail and "qdisc kind is unknown" in check.detail


def test_socketlab_backend_fallback_is_named_as_the_reason(tmp_path):
    check = status(tmp_path, {"netem": True}, backend="fallback")
    assert check.status == "info" and "SOCKETLAB_BACKEND=fallback" in check.detail


def test_module_files_that_could_not_be_read_are_not_taken_for_absent(tmp_path):
    facts = {"kernel": "6.1.0", "netem_module": netem_module("6.1.0", str(tmp_path / "none"), str(tmp_path / "x"))}
    assert facts["netem_module"] == {"module": None, "loaded": False}
    check = netem_status(Capabilities.from_probe(NO_NETEM), facts)
    assert check.status == "info" and "could not be read" in check.detail

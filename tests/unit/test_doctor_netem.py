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


# -- a probe that cannot run (the engine's runtime refuses its container) -----------------

def kernel_rows(monkeypatch, probe):
    """check_kernel's rows by name, the probe container faked by ``probe()``."""
    from lab import doctor
    from lab.impairments import kernel
    monkeypatch.setattr(kernel, "probe_kernel", probe)
    return {c.name: c for c in doctor.check_kernel()}


def test_a_failed_probe_still_gives_the_netem_and_impairment_rows_with_its_reason(monkeypatch):
    import docker.errors

    def refused():
        raise docker.errors.APIError("500 Server Error: OCI runtime create failed: crun: cgroups v1 unsupported\n"
                                     "second line")
    rows = kernel_rows(monkeypatch, refused)
    assert rows["kernel probe"].status == "fail"                          # `lab doctor` still exits 3
    assert rows["netem"].status == "unknown" and "OCI runtime create failed" in rows["netem"].detail
    assert all("\n" not in c.detail and "second line" not in c.detail for c in rows.values())
    probed = kernel_rows(monkeypatch, lambda: {"netem": True, "kernel": "6.1.0"})
    assert set(probed) - {"kernel probe"} <= set(rows)                     # every row a caller may read
    assert all(rows[name].status == "unknown" for name in probed if name.startswith("impairment "))


def test_doctor_json_has_the_netem_row_when_the_image_is_missing(monkeypatch):
    import json
    from click.testing import CliRunner
    from lab import doctor
    from lab.cli import cli
    from lab.topology import lifecycle
    monkeypatch.setattr(lifecycle, "reap_and_say", lambda *args, **kwargs: None)
    for name in ("check_engine_place", "check_compose"):
        monkeypatch.setattr(doctor, name, lambda: [])
    for name in ("check_engine", "check_toolchains", "check_mmdebstrap", "check_subnets"):
        monkeypatch.setattr(doctor, name, lambda name=name: doctor.Check(name, "ok", ""))
    monkeypatch.setattr(doctor, "check_image", lambda: doctor.Check("host image", "fail", "missing"))
    result = CliRunner().invoke(cli, ["doctor", "--json"])
    checks = {c["name"]: c for c in json.loads(result.output)}
    assert result.exit_code == 3 and checks["netem"]["status"] == "unknown", result.output
    assert "image" in checks["netem"]["detail"] and checks["impairment loss"]["status"] == "unknown"

"""`lab run` as a user runs it: the `lab` console script in a subprocess, on real containers.

Exit codes, --json, --junit, refusing invalid files before anything starts, Ctrl-C and
SIGTERM while a step runs, packet captures and --keep. The scenario files are in data/.
"""
import functools
import ipaddress
import json
import os
import re
import signal
import struct
import subprocess
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from lab import labels

DATA = Path(__file__).resolve().parent / "data"
RUN_TIMEOUT = 180      # s for a whole `lab run` of a tiny scenario (a few s; the machine may be busy)
SIGNAL_BOUND = 30      # s from the signal to the end of `lab run`, teardown included
# One line per problem: FILE:LINE:COL: field.path: message
PROBLEM = re.compile(r"^(?P<file>\S.*?):(?P<line>\d+):(?P<col>\d+): (?P<field>[A-Za-z0-9_.\[\]-]+): (?P<message>\S.*)$")


@functools.lru_cache(maxsize=1)
def engine() -> docker.DockerClient:
    return docker.from_env()


def labelled(lab: str) -> tuple[list, list]:
    """The containers and networks labelled org.socketlab.lab=<lab>, straight from the engine."""
    label = labels.filters(lab=lab)
    return engine().containers.list(all=True, filters=label), engine().networks.list(filters=label)


def socketlab_resources() -> set[tuple[str, str, str]]:
    """(kind, id, lab) of every container and network labelled org.socketlab=1."""
    label = labels.filters()
    # sparse: the list's own data, no inspect per container (other people's labs come and go
    # on this engine meanwhile, and inspecting one just removed fails with NotFound).
    containers = engine().containers.list(all=True, filters=label, sparse=True)
    return ({("container", c.id, (c.attrs.get("Labels") or {}).get(labels.LABEL_LAB, "")) for c in containers}
            | {("network", n.id, (n.attrs.get("Labels") or {}).get(labels.LABEL_LAB, ""))
               for n in engine().networks.list(filters=label)})


def created_by_these_files(before: set, after: set) -> set:
    """What appeared between two snapshots in a lab of this file's scenarios. (Other people's
    labs may come and go at the same time on this engine; ours are named after runcli-*.)"""
    return {r for r in after - before if "runcli-" in r[2]}


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(0.1)  # polling a condition with a deadline


# --- 1. a failed expectation -------------------------------------------------------------

def test_failed_expectation_exits_1_reports_it_in_json_and_junit_and_leaves_no_lab(tmp_path, own_labs, lab_run):
    junit = tmp_path / "junit.xml"
    run = lab_run(DATA / "runcli-fail.yaml", "--json", "--junit", junit)
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr

    [report] = json.loads(run.stdout)  # stdout is the JSON list alone; progress went to stderr
    assert report["scenario"] == "runcli-fail" and report["passed"] is False and report["errors"] == []
    assert [e["passed"] for e in report["expectations"]] == [True, False]
    failed = report["expectations"][1]
    assert failed["text"].startswith("answer.answer")
    assert failed["observed"] == 41
    assert failed["position"].endswith("runcli-fail.yaml:15:5")
    assert report["results"]["answer"]["client1"]["answer"] == 41

    suites = ET.parse(junit).getroot()
    failures = list(suites.iter("failure"))
    assert len(failures) == 1
    failed_case = next(case for case in suites.iter("testcase") if case.find("failure") is not None)
    assert failed_case.get("name").startswith("answer.answer")
    assert "41" in failures[0].text
    assert len(list(suites.iter("testcase"))) == 2

    lab = report["lab"]
    assert own_labs == [lab]  # the lab the progress announced is the one in the report
    containers, networks = labelled(lab)
    assert containers == [] and networks == [], f"lab {lab} left behind: {containers} {networks}"


# --- 2. invalid files --------------------------------------------------------------------

def test_invalid_scenario_exits_2_with_one_positioned_line_per_problem_and_creates_nothing(tmp_path, own_labs, lab_run):
    path = DATA / "runcli-invalid.yaml"
    junit = tmp_path / "junit.xml"
    before = socketlab_resources()
    run = lab_run(path, "--junit", junit, "--json-file", tmp_path / "r.json", timeout=60)
    after = socketlab_resources()

    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr + run.stdout
    lines = run.stderr.splitlines()
    problems = [PROBLEM.match(line) for line in lines]
    assert lines and all(problems), f"not FILE:LINE:COL: field: message:\n{run.stderr}"
    assert {p["file"] for p in problems} == {str(path)}
    found = {p["field"]: (int(p["line"]), int(p["col"]), p["message"]) for p in problems}
    assert set(found) == {"topology.colour", "impairments[0].loss"}
    assert found["topology.colour"][:2] == (5, 3) and "unknown key" in found["topology.colour"][2]
    assert found["impairments[0].loss"][:2] == (8, 11) and "120%" in found["impairments[0].loss"][2]

    # CI shows why: an error case per problem, naming FILE:LINE:COL, in JUnit and JSON.
    errors = [e.text for e in ET.parse(junit).getroot().iter("error")]
    assert sorted(errors) == sorted(lines)
    [report] = json.loads((tmp_path / "r.json").read_text())
    assert report["passed"] is False and sorted(report["errors"]) == sorted(lines)

    assert own_labs == []
    assert created_by_these_files(before, after) == set()
    assert not (tmp_path / "runs").exists() and not (tmp_path / "work").exists()


def test_one_invalid_file_of_two_means_nothing_runs(tmp_path, own_labs, lab_run):
    valid, invalid = DATA / "runcli-ok.yaml", DATA / "runcli-invalid.yaml"
    before = socketlab_resources()
    junit = tmp_path / "junit.xml"
    run = lab_run(valid, invalid, "--junit", junit, timeout=60)  # the valid one comes first
    after = socketlab_resources()

    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr + run.stdout
    problems = [PROBLEM.match(line) for line in run.stderr.splitlines()]
    assert problems and all(problems), run.stderr
    assert {p["file"] for p in problems} == {str(invalid)}
    assert "runcli-ok" not in run.stderr and run.stdout == ""  # not even announced
    suites = ET.parse(junit).getroot()
    assert [s.get("name") for s in suites] == ["runcli-ok", "runcli-invalid"]
    assert suites[0].find("testcase/skipped") is not None and suites[0].find(".//error") is None
    assert len(suites[1].findall(".//error")) == len(problems)
    assert own_labs == []
    assert created_by_these_files(before, after) == set()
    assert not (tmp_path / "runs").exists() and not (tmp_path / "work").exists()


# --- 3. Ctrl-C and SIGTERM while a step runs ---------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_while_a_step_runs_ends_the_run_promptly_and_leaves_no_lab(tmp_path, own_labs, sig, read_lines, lab_cli, labs_brought_up):
    # runcli-ok passes first. runcli-sleep: `sleep 60` (timeout 2m) at 0 s, and another step
    # at 40 s, so the signal comes while a step runs and the player waits for its next step.
    junit, js = tmp_path / "junit.xml", tmp_path / "r.json"
    proc = lab_cli("run", "--runs-dir", tmp_path / "runs", "--work", tmp_path / "work", "--junit", junit,
                   "--json-file", js, "--json", DATA / "runcli-ok.yaml", DATA / "runcli-sleep.yaml",
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err, out = read_lines(proc.stderr), read_lines(proc.stdout)
    try:
        lab = labs_brought_up(err.wait_for("-runcli-sleep …", timeout=RUN_TIMEOUT))[0]
        own_labs.append(lab)
        own_labs += labs_brought_up(err.wait_for("-runcli-ok …", timeout=1))
        err.wait_for("sleeper on client1: sleep 60", timeout=RUN_TIMEOUT)  # the step has started

        def lab_running():
            containers, networks = labelled(lab)
            return len(containers) == 3 and all(c.status == "running" for c in containers) and len(networks) == 2
        wait_until(lab_running, 30, f"lab {lab}'s three containers to run")
        assert proc.poll() is None, err.text()

        proc.send_signal(sig)
        sent = time.monotonic()
        try:
            proc.wait(timeout=SIGNAL_BOUND)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`lab run` still running {SIGNAL_BOUND} s after {sig.name}")
        took = time.monotonic() - sent
        stderr, stdout = err.text(), out.text()
        assert proc.returncode == {signal.SIGINT: 130, signal.SIGTERM: 143}[sig], stderr
        assert "Traceback" not in stderr + stdout
        assert "interrupted" in stderr
        # The reports hold the first scenario's pass and the interrupted one as an error.
        suites = ET.parse(junit).getroot()
        assert [(s.get("name"), s.get("failures"), s.get("errors")) for s in suites] == \
            [("runcli-ok", "0", "0"), ("runcli-sleep", "0", "1")]
        assert f"interrupted ({sig.name})" in suites[1].find(".//error").text
        reports = json.loads(js.read_text())
        assert json.loads(stdout) == reports
        assert [(r["scenario"], r["passed"]) for r in reports] == [("runcli-ok", True), ("runcli-sleep", False)]
        containers, networks = labelled(lab)
        assert containers == [] and networks == [], f"lab {lab} left behind {took:.1f} s after {sig.name}"
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_an_unreachable_engine_is_the_environment_exit_3_with_a_junit_error(tmp_path, lab_exe):
    junit = tmp_path / "junit.xml"
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    run = subprocess.run([str(lab_exe), "run", "--runs-dir", str(tmp_path / "runs"), "--work", str(tmp_path / "work"),
                          "--junit", str(junit), str(DATA / "runcli-ok.yaml")],
                         capture_output=True, text=True, env=env, timeout=RUN_TIMEOUT)
    assert run.returncode == 3, run.stderr
    assert "Traceback" not in run.stderr and "cannot reach the Docker Engine" in run.stderr
    [error] = ET.parse(junit).getroot().iter("error")
    assert "cannot reach the Docker Engine" in error.text and error.get("type") == "environment"


# --- 4. packet capture -------------------------------------------------------------------

def read_pcap(path: Path) -> list[bytes]:
    """The frames of a classic pcap file (µs or ns timestamps, either byte order), Ethernet only.
    Fails unless the file is well formed to its last byte."""
    data = path.read_bytes()
    assert len(data) >= 24, f"{path.name}: {len(data)} bytes, shorter than a pcap header"
    for endian in "<>":
        magic = struct.unpack_from(endian + "I", data)[0]
        if magic in (0xA1B2C3D4, 0xA1B23C4D):
            frac_limit = 10 ** 6 if magic == 0xA1B2C3D4 else 10 ** 9
            break
    else:
        pytest.fail(f"{path.name}: not a pcap file (magic {data[:4].hex()})")
    major, minor, _zone, _sigfigs, snaplen, linktype = struct.unpack_from(endian + "HHiIII", data, 4)
    assert (major, minor) == (2, 4) and linktype == 1, f"{path.name}: pcap {major}.{minor}, link type {linktype}"
    frames, offset = [], 24
    while offset < len(data):
        assert offset + 16 <= len(data), f"{path.name}: a record header is cut at byte {offset}"
        _sec, frac, caplen, origlen = struct.unpack_from(endian + "IIII", data, offset)
        offset += 16
        assert frac < frac_limit and caplen <= min(snaplen, origlen), f"{path.name}: bad record at byte {offset - 16}"
        assert offset + caplen <= len(data), f"{path.name}: the last record is cut"
        frames.append(data[offset:offset + caplen])
        offset += caplen
    return frames


@dataclass(frozen=True)
class Datagram:
    src: ipaddress.IPv4Address
    sport: int
    dst: ipaddress.IPv4Address
    dport: int
    ttl: int
    payload: bytes


def udp_datagrams(frames: list[bytes]) -> list[Datagram]:
    """The UDP datagrams in Ethernet frames (IPv4, unfragmented)."""
    found = []
    for frame in frames:
        if len(frame) < 14 + 20 or struct.unpack_from("!H", frame, 12)[0] != 0x0800:
            continue
        ip = frame[14:]
        ihl = (ip[0] & 0x0F) * 4
        total, frag, ttl, proto = struct.unpack_from("!H2xHBB", ip, 2)
        if ip[0] >> 4 != 4 or proto != 17 or frag & 0x3FFF or len(ip) < max(total, ihl + 8):
            continue
        sport, dport, length = struct.unpack_from("!HHH", ip, ihl)
        found.append(Datagram(ipaddress.IPv4Address(ip[12:16]), sport, ipaddress.IPv4Address(ip[16:20]), dport,
                              ttl, ip[ihl + 8:ihl + length]))
    return found


def test_capture_writes_a_pcap_per_router_interface_with_the_steps_datagrams(tmp_path, own_labs, lab_run):
    run = lab_run(DATA / "runcli-capture.yaml", "--json")
    assert run.returncode == 0, run.stderr + run.stdout
    [report] = json.loads(run.stdout)
    hello = report["results"]["hello"]["client1"]
    # The hosts' addresses, as the progress showed them when the lab came up.
    router_addresses = re.search(r"starting router \(router\) (.+)", run.stderr).group(1).split(", ")
    client = ipaddress.IPv4Address(re.search(r"starting client1 \(client\) (\S+)", run.stderr).group(1))
    server = ipaddress.IPv4Address(hello["remote_address"])

    run_dir = Path(report["artifacts"])
    assert run_dir.parent == tmp_path / "runs"
    pcaps = sorted((run_dir / "captures").iterdir())
    assert len(router_addresses) == 2
    assert len(pcaps) == len(router_addresses) and all(p.suffix == ".pcap" for p in pcaps), pcaps

    request = (client, hello["local_port"], server, 12000, b"captured hello")
    reply = (server, 12000, client, hello["local_port"], b"CAPTURED HELLO")
    ttls = []
    for pcap in pcaps:
        datagrams = udp_datagrams(read_pcap(pcap))
        seen = [(d.src, d.sport, d.dst, d.dport, d.payload) for d in datagrams]
        assert request in seen, f"{pcap.name}: no request {request} in {seen}"
        assert reply in seen, f"{pcap.name}: no reply {reply} in {seen}"
        ttls += [d.ttl for d in datagrams if (d.src, d.sport, d.dst, d.dport, d.payload) == request]
    # One file per side of the router: the request before routing, and after (one hop less).
    assert len(ttls) == 2 and abs(ttls[0] - ttls[1]) == 1, ttls


# --- 5. --keep ---------------------------------------------------------------------------

def test_keep_leaves_the_lab_running_until_lab_down(tmp_path, own_labs, lab_exe, lab_run):
    run = lab_run(DATA / "runcli-ok.yaml", "--keep", "--json")
    assert run.returncode == 0, run.stderr + run.stdout
    lab = json.loads(run.stdout)[0]["lab"]
    assert own_labs == [lab]
    assert f"lab down {lab}" in " ".join(run.stderr.split())  # it says how to remove it (maybe wrapped)

    containers, networks = labelled(lab)
    assert sorted(c.name for c in containers) == sorted(f"{lab}-{h}" for h in ("router", "server", "client1"))
    assert all(c.status == "running" for c in containers), [(c.name, c.status) for c in containers]
    assert len(networks) == 2

    down = subprocess.run([str(lab_exe), "down", lab], capture_output=True, text=True, timeout=120)
    assert down.returncode == 0, down.stderr
    containers, networks = labelled(lab)
    assert containers == [] and networks == []

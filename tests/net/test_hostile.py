"""Students' programs are hostile input. Each case is a real `lab run` of a small scenario
(written here, next to its assertions) whose program misbehaves on purpose, and each
asserts the same floor: the run ends with its reports (the JSON list and the JUnit file
parse, the terminal shows no traceback and no raw escape sequence) and nothing of the
lab is left in the engine. Then what is special to the case.

(The fork bomb and the memory hog are in the per-host limits' tests.) The seven runs take
about 2.5 minutes together on 2 shared cores (each 8-25 s, the flood and the one with an
impairment the longest).
"""
from __future__ import annotations

import json
import os
import random
import re
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from lab import labels
from lab.runner.processes import OUTPUT_CAP
from lab.topology.docker_lab import remove_lab

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 240          # s for a whole `lab run` of one of these (a few s; the machine may be busy)
RSS_BOUND_MB = 200         # lab's own peak memory, whatever a program prints
ESC = "\x1b"


@dataclass
class Run:
    returncode: int
    stdout: str          # the terminal table (no --json: the people's view)
    stderr: str          # progress lines and errors
    report: dict         # the one file's report, from --json-file
    junit: ET.Element
    max_rss_mb: float    # `lab`'s peak resident memory (wait4's rusage of that one child)

    @property
    def folder(self) -> Path:
        return Path(self.report["artifacts"])

    def result(self, step: str, host: str = "client1") -> dict:
        return self.report["results"][step][host]


def leftovers(lab: str) -> list[str]:
    client = docker.from_env()
    label = labels.filters(lab=lab)
    return ([c.name for c in client.containers.list(all=True, filters=label)]
            + [n.name for n in client.networks.list(filters=label)])


def plain_env() -> dict:
    """The environment of a `lab run` whose output is a file: no forced colours (so any
    escape character in it came from a program), and wide enough that cells do not wrap."""
    forcing = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "CLICOLOR_FORCE")
    return {**{k: v for k, v in os.environ.items() if k not in forcing}, "COLUMNS": "400"}


@pytest.fixture(scope="module")
def hostile_run(lab_cli):
    """(tmp_path, scenario, expect_code, work_files=None) -> the Run of `lab run` of
    `scenario` (YAML text) with --junit and --json-file; checks the floor."""
    return lambda *args, **kwargs: _hostile_run(lab_cli, *args, **kwargs)


def _hostile_run(lab_cli, tmp_path: Path, scenario: str, expect_code: int, work_files: dict | None = None) -> Run:
    path = tmp_path / "scenario.yaml"
    path.write_text(scenario)
    work = tmp_path / "work"
    work.mkdir()
    for name, data in (work_files or {}).items():
        (work / name).write_bytes(data)
    junit, js = tmp_path / "junit.xml", tmp_path / "report.json"
    out_path, err_path = tmp_path / "stdout", tmp_path / "stderr"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = lab_cli("run", path, "--junit", junit, "--json-file", js, "--runs-dir", tmp_path / "runs",
                       "--work", work, stdout=out, stderr=err, cwd=ROOT, env=plain_env())
    watchdog = threading.Timer(RUN_TIMEOUT, proc.kill)  # a bound, so a hang fails instead of blocking
    watchdog.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage: its peak RSS
    finally:
        watchdog.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    stdout = out_path.read_bytes().decode("utf-8", errors="backslashreplace")
    stderr = err_path.read_bytes().decode("utf-8", errors="backslashreplace")
    labs = re.findall(r"bringing up lab (\S+)", stderr)
    try:
        assert proc.returncode == expect_code, f"exit {proc.returncode}:\n{stderr[-3000:]}\n{stdout[-3000:]}"
        assert "Traceback" not in stdout + stderr, stderr
        assert ESC not in stdout + stderr, "a raw escape sequence reached the terminal"
        assert "🐱" not in stdout + stderr
        reports = json.loads(js.read_text())
        assert isinstance(reports, list) and len(reports) == 1
        report = reports[0]
        root = ET.parse(junit).getroot()     # parses: no character XML cannot hold
        assert [s.get("name") for s in root] == [report["scenario"]]
        assert labs == [report["lab"]]
        assert leftovers(report["lab"]) == [], f"lab {report['lab']} left behind"
    finally:
        for lab in labs:
            remove_lab(lab)
    return Run(proc.returncode, stdout, stderr, report, root, usage.ru_maxrss / 1024)


def one_step(name: str, command: str, expect: list[str], description: str = "a hostile program",
             timeout: str = "30s", extra: str = "") -> str:
    """A scenario with one step on client1 (and an idle server, unless `extra` says more)."""
    lines = "\n".join(f"  - {e}" for e in expect)
    return (f"name: {name}\ndescription: {json.dumps(description)}\n{extra or 'topology: {server: idle}'}\n"
            f"steps:\n  - at: 0s\n    name: prog\n    on: client1\n    run: {json.dumps(command)}\n"
            f"    timeout: {timeout}\nexpect:\n{lines}\n")


def test_markup_and_emoji_are_shown_as_typed(tmp_path, hostile_run):
    said = "x[/b]y :cat: [red]x"
    run = hostile_run(tmp_path, one_step(
        "hostile-markup", f"echo 'x[/b]y'; echo ':cat: [red]x [bold]'; echo '{json.dumps({'said': said})}'",
        ['prog.said: "what the teacher wanted"', "prog.exit_code: 0"],
        description="[bold]not bold[/bold] :cat: x[/b]y"), expect_code=1)
    assert run.result("prog")["said"] == said
    assert said in run.stdout                      # the observed value, literally, in the table
    assert "[bold]not bold[/bold] :cat: x[/b]y" in run.stderr   # the description, literally
    failure = run.junit.find(".//failure")
    assert said in failure.text
    stored = (run.folder / "outputs" / "prog" / "client1.txt").read_text()
    assert stored.startswith("x[/b]y\n:cat: [red]x [bold]\n")


def test_escape_sequences_are_shown_escaped_never_obeyed(tmp_path, hostile_run):
    # Clear the screen, set the window title (OSC), a carriage return that would hide text.
    run = hostile_run(tmp_path, one_step(
        "hostile-escapes", r"printf 'A\033[2JB\033]0;pwned\007C\rD\n'",
        ['prog.output: {contains: "something else"}'],
        description="clears \x1b[2J the screen"), expect_code=1)
    assert "A\\x1b[2JB\\x1b]0;pwned\\x07C\\rD" in run.stdout       # observed, in the table
    assert "clears \\x1b[2J the screen" in run.stderr
    assert (run.folder / "outputs" / "prog" / "client1.txt").read_bytes() == b"A\x1b[2JB\x1b]0;pwned\x07C\rD\n"
    assert "A\\x1b[2JB\\x1b]0;pwned\\x07C" in run.junit.find(".//failure").text


def test_a_flood_of_output_is_bounded_and_lab_stays_small(tmp_path, hostile_run):
    flood = 250_000_000
    run = hostile_run(tmp_path, one_step(
        "hostile-flood", f"head -c {flood} /dev/zero | tr '\\0' y; echo; echo '{{\"done\": true}}'",
        ["prog.done: true", "prog.exit_code: 0"], timeout="2m"), expect_code=0)
    stored = (run.folder / "outputs" / "prog" / "client1.txt").read_bytes()
    assert len(stored) <= OUTPUT_CAP // 2 + 200                     # stdout's half of the cap, and the mark
    assert stored.startswith(b"yyyy") and stored.endswith(b'y\n{"done": true}\n')   # head and tail kept
    dropped = run.result("prog")["output_dropped"]
    assert dropped == flood + len('\n{"done": true}\n') - (OUTPUT_CAP // 2)
    assert f"{dropped} bytes of stdout dropped here".encode() in stored
    assert f"prog on client1: {dropped} bytes of output dropped" in run.stdout
    assert run.max_rss_mb < RSS_BOUND_MB, f"lab held {run.max_rss_mb:.0f} MB"


def test_binary_output_is_stored_as_is_and_shown_escaped(tmp_path, hostile_run):
    blob = bytes(random.Random(6).randrange(256) for _ in range(100_000)) + b"\x00\x1b[2J\xff\xfe\x00"
    run = hostile_run(tmp_path, one_step("hostile-binary", "cat blob.bin",
                                         ['prog.output: {contains: "never in it"}', "prog.exit_code: 0"]),
                      expect_code=1, work_files={"blob.bin": blob})
    assert (run.folder / "outputs" / "prog" / "client1.txt").read_bytes() == blob
    assert run.result("prog")["exit_code"] == 0
    assert run.junit.find(".//failure") is not None   # the observed bytes, in XML that parses


def test_a_program_that_never_ends_is_stopped_at_its_timeout(tmp_path, hostile_run):
    # It ignores SIGTERM, so step-exec's SIGKILL after the grace period ends it.
    run = hostile_run(tmp_path, one_step("hostile-forever", "trap '' TERM; while :; do sleep 1; done",
                                         ["prog.timed_out: true"], timeout="3s"), expect_code=0)
    result = run.result("prog")
    assert result["timed_out"] is True and result["exit_code"] == 128 + 9


def test_a_program_that_closes_stdout_at_once(tmp_path, hostile_run):
    run = hostile_run(tmp_path, one_step(
        "hostile-closed", "exec 1>&-; echo lost; echo 'still on stderr' >&2; exit 0",
        ["prog.exit_code: 0", 'prog.output: {contains: "still on stderr"}']), expect_code=0)
    stored = (run.folder / "outputs" / "prog" / "client1.txt").read_bytes()
    assert b"still on stderr" in stored and b"lost" not in stored


def test_a_program_cannot_change_routes_or_rules_and_the_impairment_stays(tmp_path, hostile_run):
    # All of client1's packets to the servers are dropped (100 % loss). The program tries
    # to get around it on its own host; then a UDP exchange must still get no answer.
    tries = ("ip route flush table main; a=$?; ip route add 0.0.0.0/1 dev eth0; b=$?; "
             "nft flush ruleset; c=$?; nft add table ip evil; d=$?; "
             "echo \"{\\\"route_flush\\\": $a, \\\"route_add\\\": $b, \\\"nft_flush\\\": $c, \\\"nft_add\\\": $d}\"")
    scenario = f"""name: hostile-netadmin
description: a program tries to undo the router's impairment from its own host
impairments:
  - link: clients -> servers
    loss: 100%
steps:
  - at: 0s
    name: undo
    on: client1
    run: {json.dumps(tries)}
    timeout: 20s
  - at: 2s
    name: probe
    on: client1
    run: udp-client --json --timeout 1 hello
    timeout: 20s
expect:
  - undo.route_flush: {{not: 0}}
  - undo.route_add: {{not: 0}}
  - undo.nft_flush: {{not: 0}}
  - undo.nft_add: {{not: 0}}
  - probe.error: TIMEOUT
"""
    run = hostile_run(tmp_path, scenario, expect_code=0)
    undo = run.result("undo")
    assert all(undo[k] not in (0, None) for k in ("route_flush", "route_add", "nft_flush", "nft_add")), undo
    assert run.result("probe")["error"] == "TIMEOUT"

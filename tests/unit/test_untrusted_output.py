"""What students' programs print is hostile input: the pure parts that keep it literal
(escaping for the terminal, JUnit and plots) and bounded (the head/tail buffer), and the
reports that survive a broken run."""
import io
import json
import random
import xml.etree.ElementTree as ET

import pytest
from rich.console import Console

from lab import ui
from lab.programs.shared.errors import EXIT_ENVIRONMENT, LabEnvironmentError, LabError
from lab.report import plots, render
from lab.report.model import ExpectationResult, RunReport
from lab.runner.processes import (HeadTail, Outcome, StepProcess, TextWatch, decode, last_json_object,
                                  result_of)

HOSTILE = ["x[/b]y", ":cat:", "[red]x", "[bold]b[/bold]", "\x1b[2J\x1b[H", "\x1b]0;pwned\x07", "a\rb",
           "nul\x00here", "\u202eevil", "$\\alpha$ and $x^2$", "\x85c1"]


def rendered(renderable) -> str:
    """What the terminal would receive, with colours (so escape sequences would show)."""
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, color_system="truecolor", width=200,
                      highlight=False, markup=False, emoji=False)
    console.print(renderable, soft_wrap=True)
    return buf.getvalue()


@pytest.mark.parametrize("text", HOSTILE)
def test_printable_leaves_no_control_character(text):
    shown = ui.printable(text)
    assert not any(ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f or 0x202a <= ord(c) <= 0x202e for c in shown)


def test_printable_shows_what_it_escaped():
    assert ui.printable("\x1b[2J") == "\\x1b[2J"
    assert ui.printable("a\tb\nc\r") == "a\\tb\\nc\\r"
    assert ui.printable("a\tb\nc\x1b", newlines=True) == "a\tb\nc\\x1b"
    assert ui.printable("\u202e") == "\\u202e"
    assert ui.printable(b"\xff\x00ok") == "\\xff\\x00ok"       # bytes: undecodable ones as \xNN
    assert ui.printable("x[/b]y :cat: é") == "x[/b]y :cat: é"  # markup-looking text is not touched


@pytest.mark.parametrize("text", HOSTILE)
def test_a_line_and_a_table_show_hostile_text_literally(text):
    line = rendered(ui.styled(("run error:", "red"), " ", text))
    table = render.Table()
    table.add_column("c")
    table.add_row(ui.cell(text))
    for out in (line, rendered(table)):
        assert ui.printable(text) in out                # literally, escapes visible
        assert "🐱" not in out and "\x07" not in out
        assert "\x1b[2J" not in out and "\x1b]0" not in out  # never a sequence the terminal obeys


def test_the_consoles_take_no_markup_and_no_emoji():
    for console in (ui.out, ui.err):
        assert console._markup is False and console._emoji is False and console._highlight is False


def report_with(text: str) -> RunReport:
    report = RunReport(f"s{text}", text, "s.yaml", "lab", None, "2026-01-01T00:00:00+00:00", duration_s=1.0)
    report.expectations = [ExpectationResult(f"out contains {text}", "s.yaml:3:5", False, text, f"saw {text}")]
    report.errors = [f"step printed {text}"]
    return report


def test_print_report_survives_hostile_text(capsys):
    for text in HOSTILE:
        render.print_report(report_with(text))  # no MarkupError
    out = capsys.readouterr().out
    assert "x[/b]y" in out and ":cat:" in out and "[red]x" in out and "\\x1b[2J" in out and "\x1b" not in out


def test_junit_parses_whatever_the_text_holds():
    everything = "".join(chr(c) for c in range(0x20)) + "\ufffe\uffff\ud800 x[/b]y ]]> <a> &amp;"
    root = ET.fromstring(render.junit_xml([report_with(everything), report_with("\x1b[2J")]))
    failure = root.find(".//failure")
    assert "\\x00" in failure.text and "\\x1b" in failure.text and "]]> <a> &amp;" in failure.text
    assert "\\x1b[2J" in root.findall(".//error")[1].text


def test_junit_has_an_error_case_for_an_invalid_file_and_a_skipped_one_for_the_rest():
    invalid = RunReport.not_run("bad.yaml", errors=["bad.yaml:5:3: topology.colour: unknown key"],
                                error_kind="input")
    skipped = RunReport.not_run("ok.yaml", "not run: another file is invalid")
    root = ET.fromstring(render.junit_xml([skipped, invalid]))
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["ok", "bad"]
    assert suites[0].find("testcase/skipped") is not None and suites[0].get("skipped") == "1"
    error = suites[1].find("testcase/error")
    assert error.text == "bad.yaml:5:3: topology.colour: unknown key" and suites[1].get("errors") == "1"
    assert (invalid.exit_code, skipped.exit_code, skipped.passed) == (2, 1, False)
    env = RunReport.not_run("e.yaml", errors=["router command failed"], error_kind="environment")
    assert env.exit_code == EXIT_ENVIRONMENT


def test_the_report_sink_rewrites_valid_files_after_each_report_and_skips_the_rest(tmp_path, capsys):
    junit, js = tmp_path / "r.xml", tmp_path / "r.json"
    sink = render.ReportSink(["a.yaml", "b.yaml", "c.yaml"], str(js), str(junit), to_stdout=True)
    sink.add(0, report_with("one"))
    assert [s.get("name") for s in ET.parse(junit).getroot()] == ["sone"]
    assert [r["scenario"] for r in json.loads(js.read_text())] == ["sone"]
    sink.add(1, RunReport.not_run("b.yaml", errors=["interrupted (SIGINT)"], error_kind="interrupted", name="b"))
    sink.close("not run: an earlier scenario ended the run")
    names = [(r["scenario"], r["skipped"]) for r in json.loads(js.read_text())]
    assert names == [("sone", ""), ("b", ""), ("c", "not run: an earlier scenario ended the run")]
    assert json.loads(capsys.readouterr().out) == json.loads(js.read_text())  # always a list
    assert len(ET.parse(junit).getroot()) == 3 and not list(tmp_path.glob(".*tmp"))


def test_a_router_command_failure_is_the_environment_and_keeps_its_status_apart():
    from lab.impairments.router import RouterCommandError
    from lab.topology.docker_lab import ExecResult
    exc = RouterCommandError(["tc", "qdisc", "add"], ExecResult(1, "", "RTNETLINK answers: nope"))
    assert isinstance(exc, LabEnvironmentError) and isinstance(exc, LabError)
    assert exc.exit_code == EXIT_ENVIRONMENT and exc.command_status == 1


def test_head_tail_keeps_both_ends_and_counts_what_it_dropped():
    buf = HeadTail(cap=100)
    data = bytes(random.Random(1).randrange(256) for _ in range(10_000))
    for i in range(0, len(data), 37):
        buf.feed(data[i:i + 37])
        assert len(buf.head) + len(buf._tail) <= 50 + 50 + 64 * 1024  # bounded at every moment
    assert bytes(buf.head) == data[:50] and buf.tail == data[-50:]
    assert buf.dropped == 10_000 - 100 and buf.total == 10_000
    value = buf.value("stdout")
    assert value.startswith(data[:50]) and value.endswith(data[-50:])
    assert b"9900 bytes of stdout dropped" in value


def test_head_tail_memory_stays_near_its_cap():
    buf = HeadTail(cap=8 << 20)
    chunk = b"y" * 32768
    peak = 0
    for _ in range(1000):  # 32 MB through a 8 MiB buffer
        buf.feed(chunk)
        peak = max(peak, len(buf.head) + len(buf._tail))
    assert peak <= (8 << 20) * 1.25 + 32768 and buf.dropped == 32768 * 1000 - (8 << 20)


def test_head_tail_under_the_cap_keeps_everything_as_is():
    buf = HeadTail(cap=100)
    for chunk in (b"\x00\xff", b"ab" * 20, b"\n{\"ok\": 1}\n"):
        buf.feed(chunk)
    assert buf.dropped == 0 and buf.value() == b"\x00\xff" + b"ab" * 20 + b"\n{\"ok\": 1}\n"


def test_text_watch_finds_text_across_chunks_and_after_the_cap():
    watch = TextWatch("listening")
    for chunk in (b"x" * 1000, b"...liste", b"ning on 12000\n"):
        watch.feed(chunk)
    assert watch.seen
    split = TextWatch("ab")
    split.feed(b"xa")
    assert not split.seen
    split.feed(b"b")
    assert split.seen
    assert TextWatch(None).seen
    folded = TextWatch("hello via nc", fold=True)      # `until`: the reply in any case
    for chunk in (b"HELLO V", b"iA Nc"):
        folded.feed(chunk)
    assert folded.seen and not TextWatch("hello", fold=False).seen


def test_until_wakes_its_caller_once_seen_or_ended():
    proc = StepProcess("c", "h", "api", "nc", 5, "r1", until="hello via nc")
    assert not proc.wait_until(0)
    proc.feed(b"HELLO VIA", None)
    assert not proc.wait_until(0)
    proc.feed(b" NC", None)
    assert proc.wait_until(0) and proc.until_seen and proc.running
    ended = StepProcess("c", "h", "api", "nc", 5, "r2", until="x")
    ended.started_at = 0.0
    ended._finish()
    assert ended.wait_until(0) and not ended.until_seen


def test_the_json_result_at_the_end_survives_a_flood():
    proc = StepProcess("c", "client1", "flood", "yes", None, run_id="r", cap=4096)
    for _ in range(1000):
        proc._out.feed(b"y\n" * 500)
        proc._ready.feed(b"y\n" * 500)
    proc._out.feed(b'{"answer": 42}\n')
    proc._err.feed(b'\nSOCKETLAB-STATUS {"exit_code": 0, "elapsed": 1.0, "timed_out": false}\n')
    proc._finish()
    result = result_of("client1", proc.outcome)
    assert result["answer"] == 42 and result["exit_code"] == 0
    assert result["output_dropped"] == 1000 * 1000 + 15 - 2048
    assert b"SOCKETLAB-STATUS" not in proc.outcome.raw and len(proc.outcome.raw) < 4096 + 200


def test_binary_output_is_kept_as_bytes_and_shown_escaped():
    proc = StepProcess("c", "client1", "bin", "head -c 100 /dev/urandom", None, run_id="r")
    data = bytes(range(256))
    proc._out.feed(data)
    proc._err.feed(b'\nSOCKETLAB-STATUS {"exit_code": 0, "elapsed": 1.0, "timed_out": false}\n')
    proc._finish()
    assert proc.outcome.raw == data
    assert "\\xff" in proc.outcome.stdout and decode(b"\xc3\xa9") == "é"


def test_plot_labels_are_not_mathtext(tmp_path):
    pytest.importorskip("matplotlib")
    timeline = {"send_ms": [0.0, 1.0], "rtt_ms": [1.0, None]}
    changes = [plots.ImpairmentMark(0.5, "impair $\\frac{a}{$ \x1b[2J")]  # invalid mathtext would raise
    path = plots.plot_timeline(tmp_path / "p.png", "step $x^$ on [red]client1", timeline, 0.0, changes)
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_last_json_object_still_reads_the_result_line():
    assert last_json_object('noise\n{"a": 1}\n') == {"a": 1}
    assert result_of("h", Outcome(stdout="x", dropped=7))["output_dropped"] == 7


def test_a_lab_error_is_one_literal_line_with_its_exit_code(tmp_path):
    from click.testing import CliRunner
    from lab.cli import cli
    name = str(tmp_path / "x[/b]y :cat: \x1b[2J.yaml")   # no such file: a LabError naming it
    result = CliRunner().invoke(cli, ["validate", name])
    assert result.exit_code == 2, result.output
    assert "lab: error: cannot read scenario" in result.output
    assert "x[/b]y :cat: \\x1b[2J.yaml" in result.output and "\x1b" not in result.output


def test_the_help_lists_the_exit_codes():
    from click.testing import CliRunner
    from lab.cli import cli
    text = " ".join(CliRunner().invoke(cli, ["--help"]).output.split())
    for code in ("0 all passed", "1 an expectation failed", "2 bad input", "3 the environment", "130/143"):
        assert code in text

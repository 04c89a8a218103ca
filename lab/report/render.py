"""Showing a RunReport: a table in the terminal, and JUnit XML for CI systems.

Everything in a report may come from a student's program or a scenario file, so it is
shown literally: table cells are rich Text (no markup, no emoji) made `ui.printable`
(control characters escaped), and JUnit text has the characters XML 1.0 cannot hold
escaped the same visible way, so the file always parses.
"""
from __future__ import annotations

import io
import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .. import ui
from ..scenario.expect import PerHost
from . import drops
from .model import RunReport


def short(value, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def observed_text(value, width: int = 30) -> str:
    """What an expectation saw; per-host values that all agree are shown once."""
    if isinstance(value, PerHost):
        values = {json.dumps(v, sort_keys=True, default=str) for v in value.values()}
        if len(values) == 1:
            return short(f"{len(value)} hosts: {values.pop()}", width)
    return short(value, width)


def dropped_outputs(report: RunReport) -> list[str]:
    """'STEP on HOST: N bytes of output dropped' for every output over the cap."""
    return [f"{step} on {host}: {result['output_dropped']} bytes of output dropped (over the cap)"
            for step, hosts in report.results.items() for host, result in hosts.items()
            if result.get("output_dropped")]


def print_report(report: RunReport, console=None) -> None:
    console = console or ui.out
    verdict = ("SKIPPED", "yellow") if report.skipped else \
        ("PASSED", "bold green") if report.passed else ("FAILED", "bold red")
    title = ui.styled(f"{report.scenario}: ", verdict, f"  ({report.duration_s:.1f} s)")
    table = Table(title=title, title_justify="left")
    for col in ("", "expectation", "observed", "detail"):
        table.add_column(col, overflow="fold")
    for e in report.expectations:
        mark = Text("✓", "green") if e.passed else Text("✗", "red")
        table.add_row(mark, ui.cell(e.text), ui.cell(observed_text(e.observed)), ui.cell(short(e.detail, 70)))
    console.print(table)
    if report.skipped:
        ui.say(console, ("not run:", "yellow"), " ", report.skipped)
    for error in report.errors:
        ui.say(console, ("run error:", "red"), " ", error, newlines=True)
    for line in dropped_outputs(report):
        ui.say(console, ("output:", "yellow"), " ", line)
    for where, what, count in drops.describe(report.drops):
        ui.say(console, ("packets:", "cyan"), " ", f"{where}: {count:,} {what}")
    if report.artifacts:
        ui.say(console, f"artifacts: {report.artifacts}")


def report_text(report: RunReport, width: int = 120) -> str:
    """The same table and lines as plain text (for a pytest failure, a log)."""
    buffer = io.StringIO()
    print_report(report, Console(file=buffer, width=width, no_color=True, highlight=False,
                                 markup=False, emoji=False))
    return buffer.getvalue()


# Characters XML 1.0 cannot hold at all (and the surrogates a decoder may leave).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(value) -> str:
    """Text that XML 1.0 can hold: the characters it cannot are shown as \\xNN / \\uNNNN."""
    text = value if isinstance(value, str) else str(value)
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                        else f"\\u{ord(m.group()):04x}", text)


def _element(parent, tag: str, text: str | None = None, **attrs) -> ET.Element:
    element = ET.SubElement(parent, tag, {k: xml_text(v) for k, v in attrs.items()})
    if text is not None:
        element.text = xml_text(text)
    return element


def junit_xml(reports: list[RunReport]) -> str:
    suites = ET.Element("testsuites", name="socketlab")
    for r in reports:
        failures = sum(not e.passed for e in r.expectations)
        suite = _element(suites, "testsuite", name=r.scenario,
                         tests=str(len(r.expectations) + len(r.errors) + bool(r.skipped)),
                         failures=str(failures), errors=str(len(r.errors)), skipped=str(int(bool(r.skipped))),
                         time=f"{r.duration_s:.3f}", timestamp=r.started, file=r.source)
        classname = f"scenario.{r.scenario}"
        for e in r.expectations:
            case = _element(suite, "testcase", classname=classname, name=e.text, file=e.position.split(":")[0])
            if not e.passed:
                _element(case, "failure", f"{e.position}\nobserved: {short(e.observed, 2000)}\n{e.detail}",
                         message=short(e.detail, 200))
        for error in r.errors:
            name = {"input": "validate"}.get(r.error_kind, "run")
            case = _element(suite, "testcase", classname=classname, name=name, file=r.source)
            _element(case, "error", error, message=short(error, 200), type=r.error_kind or "run")
        if r.skipped:
            case = _element(suite, "testcase", classname=classname, name="run", file=r.source)
            _element(case, "skipped", message=r.skipped)
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


class ReportSink:
    """The reports of one `lab run`, one slot per file, written as each arrives: the JUnit
    and JSON files are rewritten whole (through a temporary file and a rename, so they are
    valid at every moment), and the JSON list goes to stdout once, at the end."""

    def __init__(self, files, json_file: str | None, junit_file: str | None, to_stdout: bool):
        self.files = list(files)
        self.slots: list[RunReport | None] = [None] * len(self.files)
        self.json_file, self.junit_file, self.to_stdout = json_file, junit_file, to_stdout

    @property
    def reports(self) -> list[RunReport]:
        return [r for r in self.slots if r is not None]

    def add(self, index: int, report: RunReport) -> None:
        self.slots[index] = report
        self.write()

    def write(self) -> None:
        if self.junit_file:
            _replace(Path(self.junit_file), junit_xml(self.reports))
        if self.json_file:
            _replace(Path(self.json_file), json_text(self.reports))

    def close(self, why_skipped: str) -> None:
        """Every file that has no report gets a skipped one; write everything a last time."""
        for i, path in enumerate(self.files):
            if self.slots[i] is None:
                self.slots[i] = RunReport.not_run(path, why_skipped)
        self.write()
        if self.to_stdout:
            ui.print_json([r.as_dict() for r in self.reports])


def json_text(reports: list[RunReport]) -> str:
    return json.dumps([r.as_dict() for r in reports], indent=2, sort_keys=True, default=str) + "\n"


def _replace(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)

"""Showing a RunReport: a table in the terminal, and JUnit XML for CI systems."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from rich.table import Table

from .. import ui
from ..scenario.expect import PerHost
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


def print_report(report: RunReport) -> None:
    verdict = "[bold green]PASSED[/bold green]" if report.passed else "[bold red]FAILED[/bold red]"
    table = Table(title=f"{report.scenario}: {verdict}  ({report.duration_s:.1f} s)", title_justify="left")
    for col in ("", "expectation", "observed", "detail"):
        table.add_column(col, overflow="fold")
    for e in report.expectations:
        mark = "[green]✓[/green]" if e.passed else "[red]✗[/red]"
        table.add_row(mark, e.text, observed_text(e.observed), short(e.detail, 70))
    ui.out.print(table)
    for error in report.errors:
        ui.out.print(f"[red]run error:[/red] {error}", markup=True, soft_wrap=True)
    if report.artifacts:
        ui.out.print(f"artifacts: {report.artifacts}", markup=False)


def junit_xml(reports: list[RunReport]) -> str:
    suites = ET.Element("testsuites", name="socketlab")
    for r in reports:
        failures = sum(not e.passed for e in r.expectations)
        suite = ET.SubElement(suites, "testsuite", name=r.scenario, tests=str(len(r.expectations) + len(r.errors)),
                              failures=str(failures), errors=str(len(r.errors)), time=f"{r.duration_s:.3f}",
                              timestamp=r.started)
        for e in r.expectations:
            case = ET.SubElement(suite, "testcase", classname=f"scenario.{r.scenario}", name=e.text,
                                 file=e.position.split(":")[0])
            if not e.passed:
                failure = ET.SubElement(case, "failure", message=short(e.detail, 200))
                failure.text = f"{e.position}\nobserved: {short(e.observed, 2000)}\n{e.detail}"
        for error in r.errors:
            case = ET.SubElement(suite, "testcase", classname=f"scenario.{r.scenario}", name="run")
            ET.SubElement(case, "error", message=short(error, 200)).text = error
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"

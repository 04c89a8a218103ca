"""Showing a GradeReport: a terminal table, JUnit XML, and Gradescope's results.json
(https://gradescope-autograders.readthedocs.io/en/latest/specs/: top-level score and
execution_time, and per test name, score, max_score, output, visibility)."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from rich.table import Table
from rich.text import Text

from .. import ui
from .run import GradeReport

MARKS = {"passed": ("✓", "green"), "failed": ("✗", "red"), "missing": ("–", "yellow"), "not run": ("–", "yellow")}


def print_report(report: GradeReport) -> None:
    # What a student's program printed is shown literally (ui.printable: no markup, no controls).
    table = Table(title=ui.styled(f"{report.submission} ({report.level} level): ",
                                  (f"{report.score:g} / {report.max_score:g} points", "bold"),
                                  f"  ({report.duration_s:.0f} s)"), title_justify="left")
    table.add_column("")
    table.add_column("check", no_wrap=True)
    table.add_column("points", no_wrap=True)
    table.add_column("what it checks / what was seen", overflow="fold")
    for r in report.results:
        seen = "" if r.status == "passed" else "\n" + _short(r.output, 400)
        table.add_row(Text(*MARKS[r.status]), r.name, f"{r.score:g}/{r.max_score:g}",
                      Text(ui.printable(r.description + seen, newlines=True)))
    ui.out.print(table)


def _short(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit - 1] + "…"


def junit_xml(report: GradeReport) -> str:
    failures = sum(r.status == "failed" for r in report.results)
    suite = ET.Element("testsuite", name=f"lab grade {report.submission}", tests=str(len(report.results)),
                       failures=str(failures), skipped=str(sum(r.status in ("missing", "not run") for r in report.results)),
                       time=f"{report.duration_s:.3f}")
    for r in report.results:
        case = ET.SubElement(suite, "testcase", classname=f"grade.{report.level}", name=r.name,
                             time=f"{r.duration_s:.3f}")
        ET.SubElement(case, "properties").extend([
            ET.Element("property", name="score", value=f"{r.score:g}"),
            ET.Element("property", name="max_score", value=f"{r.max_score:g}")])
        if r.status == "failed":
            ET.SubElement(case, "failure", message=_short(r.description, 200)).text = r.output
        elif r.status in ("missing", "not run"):
            ET.SubElement(case, "skipped", message=r.output)
        else:
            ET.SubElement(case, "system-out").text = r.output
    ET.indent(suite)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def gradescope_results(report: GradeReport, visibility: str = "visible") -> dict:
    return {
        "score": report.score,
        "execution_time": round(report.duration_s),
        "output": f"socketlab lab grade, {report.level} level: {report.score:g} / {report.max_score:g} points; "
                  f"files found: {', '.join(report.files) or 'none'}",
        "visibility": visibility,
        "stdout_visibility": "hidden",
        "tests": [{"name": r.name, "score": r.score, "max_score": r.max_score,
                   "status": "passed" if r.status == "passed" else "failed",
                   "output": f"{r.description}\n\n{_short(r.output, 8000)}".strip(), "visibility": visibility}
                  for r in report.results],
    }


def gradescope_json(report: GradeReport) -> str:
    return json.dumps(gradescope_results(report), indent=2) + "\n"

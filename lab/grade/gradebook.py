"""A class's grades, from the record of each submission (pure: records in, text out).

A record (``OUT/<student>/grade.json``) is a dict: slug, folder, name, email, sid, status
(``graded`` | ``refused``: the submission cannot be graded, ``grader-error``: the grader
itself failed, nothing is held against the student), reason, score, max_score, level,
digest and checks (name, description, score, max_score, status, output, ...).

    gradebook_csv     one row per student: Name, Email, SID, Folder, Total Score, Max Points,
                      Status, Reason, then one column per check (its points); the columns
                      depend on the level only, so they are the same from run to run.
                      Gradescope's score upload matches rows by Email (or SID).
    summary           the score histogram, and per check the share of graded students who
                      failed it, with two example messages: what most of the class got wrong
    summary_text / summary_html
    prairielearn      PrairieLearn's results.json for one submission
    github_classroom  the results GitHub Classroom's grading reporter reads for one submission
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from html import escape
from typing import Dict, List, Optional, Sequence

FIXED = ["Name", "Email", "SID", "Folder", "Total Score", "Max Points", "Status", "Reason"]
EXAMPLES = 2
EXAMPLE_CHARS = 160


def _num(x: float) -> str:
    return f"{x:g}"


def _cell(text: str) -> str:
    """A CSV cell a spreadsheet shows as it is: control characters escaped, and no leading
    = + - @ (which spreadsheets would run as a formula)."""
    text = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in str(text))
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def columns(check_names: Sequence[str]) -> List[str]:
    return FIXED + list(check_names)


def gradebook_csv(records: Sequence[dict], check_names: Sequence[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns(check_names))
    for rec in sorted(records, key=lambda r: r["slug"]):
        points = {c["name"]: c["score"] for c in rec.get("checks", [])}
        graded = rec["status"] == "graded"
        writer.writerow([_cell(rec.get("name", "")), _cell(rec.get("email", "")), _cell(rec.get("sid", "")),
                         _cell(rec["folder"]), _num(rec.get("score", 0)) if graded else "",
                         _num(rec.get("max_score", 0)), rec["status"], _cell(rec.get("reason", ""))]
                        + [_num(points[n]) if graded and n in points else "" for n in check_names])
    return out.getvalue()


@dataclass
class CheckSummary:
    name: str
    max_score: float
    failed: int
    graded: int
    examples: List[tuple] = field(default_factory=list)    # (student folder, first line of what was seen)

    @property
    def share(self) -> float:
        return self.failed / self.graded if self.graded else 0.0


@dataclass
class Summary:
    total: int
    graded: int
    refused: List[tuple]            # (folder, reason)
    grader_errors: List[tuple]
    max_score: float
    histogram: Dict[float, int]     # score -> students (graded only), every score 0..max present
    checks: List[CheckSummary]
    full_marks: int
    mean: Optional[float]


def _first_line(text: str) -> str:
    """A failure's gist: its first line, and the line after it when the first only
    introduces what follows (ends with ':')."""
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    gist = " ".join(lines[:2]) if len(lines) > 1 and lines[0].endswith(":") else (lines[0] if lines else "")
    return gist if len(gist) <= EXAMPLE_CHARS else gist[:EXAMPLE_CHARS - 1] + "…"


def summary(records: Sequence[dict], check_defs: Sequence[tuple]) -> Summary:
    """``check_defs``: (name, points) of the level's checks, in order."""
    records = sorted(records, key=lambda r: r["slug"])
    graded = [r for r in records if r["status"] == "graded"]
    max_score = float(sum(p for _, p in check_defs))
    hist: Dict[float, int] = {float(s): 0 for s in range(int(max_score) + 1)}
    for r in graded:
        hist[float(r["score"])] = hist.get(float(r["score"]), 0) + 1
    checks = []
    for name, points in check_defs:
        cs = CheckSummary(name, float(points), 0, 0)
        for r in graded:
            (c,) = [c for c in r["checks"] if c["name"] == name] or [None]
            if c is None:
                continue
            cs.graded += 1
            if c["score"] < c["max_score"] or c.get("status") == "failed":    # a build is worth no points
                cs.failed += 1
                if len(cs.examples) < EXAMPLES:
                    cs.examples.append((r["folder"], _first_line(c["output"])))
        checks.append(cs)
    checks.sort(key=lambda c: (-c.share, [n for n, _ in check_defs].index(c.name)))
    scores = [r["score"] for r in graded]
    return Summary(len(records), len(graded),
                   [(r["folder"], r.get("reason", "")) for r in records if r["status"] == "refused"],
                   [(r["folder"], r.get("reason", "")) for r in records if r["status"] == "grader-error"],
                   max_score, dict(sorted(hist.items())), checks,
                   sum(s == max_score for s in scores), sum(scores) / len(scores) if scores else None)


def _printable(text: str) -> str:
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in str(text))


def summary_text(s: Summary, width: int = 40) -> str:
    lines = [f"{s.graded} of {s.total} submissions graded; {s.full_marks} with full marks"
             + (f"; mean {s.mean:.1f} / {_num(s.max_score)}" if s.mean is not None else "")]
    if s.graded:
        lines.append("scores:")
        top = max(s.histogram.values()) or 1
        for score, n in s.histogram.items():
            lines.append(f"  {_num(score):>5} {'#' * round(width * n / top) if n else '':<{width}} {n}")
        lines.append("what the class got wrong (share of graded students who lost the check):")
        for c in s.checks:
            if not c.failed:
                continue
            lines.append(f"  {c.share:5.0%}  {c.name} ({c.failed} of {c.graded})")
            for folder, msg in c.examples:
                lines.append(f"         {_printable(folder)}: {_printable(msg)}")
        if not any(c.failed for c in s.checks):
            lines.append("  nothing: every graded submission passed every check")
    for title, rows in (("not graded (the submission could not be):", s.refused),
                        ("not graded (the grader failed; run again to retry):", s.grader_errors)):
        if rows:
            lines.append(title)
            lines += [f"  {_printable(folder)}: {_printable(reason)}" for folder, reason in rows]
    return "\n".join(lines) + "\n"


CSS = """body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1100px; color: #222; padding: 0 1em; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: .25em .6em; text-align: left;
vertical-align: top; font-size: .92em; } th { background: #f3f3f3; } .bar { background: #4a7; height: 1em; }
.pass { color: #1e7e34; font-weight: bold; } .fail { color: #c0392b; font-weight: bold; }
pre { background: #f7f7f7; padding: .6em; overflow-x: auto; font-size: .85em; white-space: pre-wrap; }
.ladder-box { overflow-x: auto; border: 1px solid #ddd; margin: .5em 0; } .muted { color: #666; }"""


def page(title: str, body: str) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head>\n<body>\n{body}\n</body></html>\n")


def summary_html(s: Summary, title: str, records: Sequence[dict] = ()) -> str:
    body = [f"<h1>{escape(title)}</h1>",
            f"<p>{s.graded} of {s.total} submissions graded; {s.full_marks} with full marks"
            + (f"; mean {s.mean:.1f} / {_num(s.max_score)}" if s.mean is not None else "") + ".</p>",
            "<h2>Scores</h2><table><tr><th>score</th><th>students</th><th></th></tr>"]
    top = max(s.histogram.values(), default=0) or 1
    for score, n in s.histogram.items():
        body.append(f'<tr><td>{_num(score)}</td><td>{n}</td><td><div class="bar" '
                    f'style="width:{round(300 * n / top)}px"></div></td></tr>')
    body.append("</table><h2>What the class got wrong</h2><table><tr><th>check</th><th>failed</th>"
                "<th>examples</th></tr>")
    for c in s.checks:
        ex = "<br>".join(f"<b>{escape(_printable(f))}</b>: {escape(m)}" for f, m in c.examples)
        body.append(f"<tr><td>{escape(c.name)}</td><td>{c.share:.0%} ({c.failed} of {c.graded})</td>"
                    f"<td>{ex}</td></tr>")
    body.append("</table>")
    for heading, rows in (("Not graded: the submission could not be", s.refused),
                          ("Not graded: the grader failed (run again to retry)", s.grader_errors)):
        if rows:
            body.append(f"<h2>{escape(heading)}</h2><ul>" + "".join(
                f"<li><b>{escape(_printable(f))}</b>: {escape(_printable(r))}</li>" for f, r in rows) + "</ul>")
    if records:
        body.append("<h2>Students</h2><table><tr><th>folder</th><th>name</th><th>score</th><th>report</th></tr>")
        for r in sorted(records, key=lambda r: r["slug"]):
            score = f"{_num(r['score'])} / {_num(r['max_score'])}" if r["status"] == "graded" else r["status"]
            body.append(f"<tr><td>{escape(_printable(r['folder']))}</td><td>{escape(r.get('name', ''))}</td>"
                        f"<td>{escape(score)}</td><td><a href=\"{escape(r['slug'])}/report.html\">report</a></td></tr>")
        body.append("</table>")
    return page(title, "\n".join(body))


def prairielearn(report=None, error: str = "") -> dict:
    """PrairieLearn's external-grader results.json for one GradeReport (score 0 to 1), or
    ``gradable: false`` with ``error`` when the grader itself could not run."""
    if report is None:
        return {"gradable": False, "score": 0.0, "message": f"the grader could not run: {error}".strip(),
                "output": error, "tests": []}
    return {
        "gradable": True,
        "score": round(report.score / report.max_score, 6) if report.max_score else 0.0,
        "message": f"{_num(report.score)} / {_num(report.max_score)} points ({report.level} level)",
        "output": f"files found: {', '.join(report.files) or 'none'}",
        "tests": [{"name": r.name, "description": r.description, "points": r.score, "max_points": r.max_score,
                   "message": "passed" if r.status == "passed" else r.output.strip().split("\n")[0][:300],
                   "output": r.output} for r in report.results],
    }


def github_classroom(report) -> dict:
    """What GitHub Classroom's grading reporter reads (base64 in ``<RUNNER>_RESULTS``):
    a max_score and each test's score; the reporter totals them as "Points X/Y"."""
    return {
        "version": 1,
        "status": "pass" if report.score == report.max_score else "fail",
        "max_score": report.max_score,
        "tests": [{"name": r.name, "status": "pass" if r.status == "passed" else "fail", "score": r.score,
                   "message": r.output.strip()[:1000], "line_no": 0, "execution_time": f"{r.duration_s:.1f}s"}
                  for r in report.results],
    }

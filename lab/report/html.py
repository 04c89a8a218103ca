"""Self-contained HTML pages: a run's report (runs/<run>/report.html) and `lab trace -o`.

One file each: inline CSS, no script, no font or image from anywhere (plots are data: URIs,
ladders inline SVG).  Everything that comes from a scenario file, a program's output or the
network is escaped with html.escape: it is untrusted text.  Pure: data in, a string out.
"""
from __future__ import annotations

import base64
import json
from html import escape
from pathlib import Path
from typing import Iterable, List, Mapping, Optional, Sequence, Tuple

from ..packets import ladder as ladder_mod
from ..packets import svg
from . import drops
from .model import RunReport

CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1400px; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .5em 0; } td, th { border: 1px solid #ccc; padding: .25em .6em;
  text-align: left; vertical-align: top; font-size: .92em; } th { background: #f3f3f3; }
.pass { color: #1e7e34; font-weight: bold; } .fail { color: #c0392b; font-weight: bold; }
pre { background: #f7f7f7; padding: .6em; overflow-x: auto; font-size: .85em; white-space: pre-wrap; }
.ladder-box { overflow-x: auto; border: 1px solid #ddd; margin: .5em 0; }
img.plot { max-width: 100%; border: 1px solid #ddd; } .muted { color: #666; }
"""


def page(title: str, body: str) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head>\n<body>\n{body}\n</body></html>\n")


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    """Cells are HTML already (escape what goes in)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def ladder_section(lad: ladder_mod.Ladder, heading: str) -> str:
    return (f"<h3>{escape(heading)}</h3>"
            f'<div class="ladder-box">{svg.render(lad)}</div>'
            f"<details><summary>text form</summary><pre>{escape(ladder_mod.text(lad))}</pre></details>")


def fate_counts(log: Optional[Mapping]) -> str:
    if not log:
        return ""
    counts = log.get("counts", {})
    rows = [[escape(k), f"{v:,}"] for k, v in counts.items() if v]
    text = (f"<p>{log.get('arrived', 0):,} packets reached the router to be forwarded; "
            f"{log.get('impaired_total', 0):,} of them were impaired "
            f"(each listed in <a href=\"fates.json\">fates.json</a>"
            + (f", the first {len(log.get('packets', [])):,} of them" if log.get("cut") else "") + ").</p>")
    notes = "".join(f'<p class="muted">{escape(n)}</p>' for n in log.get("notes", []))
    return text + _table(["what the router did", "packets"], rows) + notes


def _value(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return escape(text if len(text) <= 400 else text[:399] + "…")


def run_report(report: RunReport, folder: Path, ladders: Sequence[Tuple[str, ladder_mod.Ladder]] = (),
               fate_log: Optional[Mapping] = None) -> str:
    """The run's page.  ``folder``: the run's artifacts folder (plots are read from it and
    embedded; captures, outputs and logs are linked relative to it)."""
    verdict = '<span class="pass">PASSED</span>' if report.passed else '<span class="fail">FAILED</span>'
    parts = [f"<h1>{escape(report.scenario)}: {verdict}</h1>",
             f'<p class="muted">{escape(report.source)} · started {escape(report.started)} · '
             f"{report.duration_s:.1f} s · lab {escape(report.lab)}"
             + (f" · seed {report.seed}" if report.seed is not None else "") + "</p>",
             f"<pre>{escape(report.description.strip())}</pre>"]
    if report.errors:
        parts.append("<h2>Run errors</h2>" + "".join(f'<p class="fail">{escape(e)}</p>' for e in report.errors))
    parts.append("<h2>Expectations</h2>")
    rows = [['<span class="pass">✓</span>' if e.passed else '<span class="fail">✗</span>', escape(e.text),
             _value(e.observed), escape(e.detail), escape(e.position)] for e in report.expectations]
    parts.append(_table(["", "expectation", "observed", "detail", "where"], rows, "expectations")
                 if rows else "<p>(no expectations)</p>")
    if report.backends:
        parts.append("<h2>How the router applied the impairments</h2>")
        parts.append(_table(["link", "impairment", "backend"],
                            [[escape(link), escape(kind), escape(backend)]
                             for link, kinds in sorted(report.backends.items()) for kind, backend in sorted(kinds.items())]))
    rows = drops.describe(report.drops)
    if rows:
        parts.append("<h2>Where packets were dropped or changed</h2>")
        parts.append(_table(["where", "what", "packets"],
                            [[escape(where), escape(what), f"{count:,}"] for where, what, count in rows], "drops"))
    plots = sorted((folder / "plots").glob("*.png")) if (folder / "plots").is_dir() else []
    if plots:
        parts.append("<h2>Plots</h2>")
        for plot in plots:
            data = base64.b64encode(plot.read_bytes()).decode()
            parts.append(f'<p><img class="plot" alt="{escape(plot.stem)}" src="data:image/png;base64,{data}"></p>')
    if fate_log is not None:
        parts.append("<h2>The router's decisions</h2>" + fate_counts(fate_log))
    if ladders:
        parts.append("<h2>Packets, step by step</h2>")
        parts += [ladder_section(lad, heading) for heading, lad in ladders]
    parts.append("<h2>Files</h2>" + _links(folder))
    return page(f"{report.scenario}: {'PASSED' if report.passed else 'FAILED'}", "\n".join(parts))


def _links(folder: Path) -> str:
    items: List[str] = []
    for sub in ("captures", "outputs", "logs"):
        for path in sorted((folder / sub).rglob("*")) if (folder / sub).is_dir() else []:
            if path.is_file():
                rel = path.relative_to(folder).as_posix()
                items.append(f'<li><a href="{escape(rel)}">{escape(rel)}</a></li>')
    for name in ("results.json", "fates.json", "scenario.json", "engine.json"):
        if (folder / name).exists():
            items.append(f'<li><a href="{escape(name)}">{escape(name)}</a></li>')
    return "<ul>" + "".join(items) + "</ul>" if items else "<p>(none)</p>"


def trace_page(title: str, command: str, output: str, lad: ladder_mod.Ladder, fate_log: Mapping) -> str:
    body = [f"<h1>{escape(title)}</h1>"]
    if command:
        body.append(f"<p>command: <code>{escape(command)}</code></p><pre>{escape(output)}</pre>")
    body.append(ladder_section(lad, "ladder"))
    body.append("<h2>The router's decisions</h2>" + fate_counts(fate_log).replace(
        '<a href="fates.json">fates.json</a>', "the trace's data"))
    return page(title, "\n".join(body))

"""A student's own report.html: each check, what it sent and what it saw, and for every
failed check the ladder of its packets through the router (from a capture taken while it
ran).  One self-contained file; everything from the submission or the network is escaped."""
from __future__ import annotations

from html import escape

from .gradebook import _num, _printable, page


def student_html(rec: dict) -> str:
    title = f"{_printable(rec['folder'])}: lab grade ({rec.get('level', 'default')} level)"
    body = [f"<h1>{escape(title)}</h1>"]
    if rec["status"] != "graded":
        what = "could not be graded" if rec["status"] == "refused" else "was not graded: the grader failed"
        body.append(f"<p class=\"fail\">This submission {what}: {escape(_printable(rec.get('reason', '')))}</p>")
        return page(title, "\n".join(body))
    body.append(f"<p><b>{_num(rec['score'])} / {_num(rec['max_score'])} points.</b> Files found: "
                f"{escape(', '.join(rec.get('files', [])) or 'none')}.</p>")
    body.append("<table><tr><th></th><th>check</th><th>points</th><th>what it checks</th></tr>")
    for c in rec["checks"]:
        mark = {"passed": ('<span class="pass">✓</span>'), "failed": '<span class="fail">✗</span>'}.get(
            c["status"], "–")
        body.append(f"<tr><td>{mark}</td><td><a href=\"#{escape(c['name'])}\">{escape(c['name'])}</a></td>"
                    f"<td>{_num(c['score'])}/{_num(c['max_score'])}</td><td>{escape(c['description'])}</td></tr>")
    body.append("</table>")
    for c in rec["checks"]:
        body.append(f"<h2 id=\"{escape(c['name'])}\">{escape(c['name'])}: {escape(c['status'])} "
                    f"({_num(c['score'])}/{_num(c['max_score'])})</h2><p>{escape(c['description'])}</p>")
        body.append(f"<p>what was seen:</p><pre>{escape(c['output'])}</pre>")
        if c.get("transcript"):
            body.append("<details" + (" open" if c["status"] == "failed" else "") +
                        "><summary>what was sent and what came back</summary><table>"
                        "<tr><th>host</th><th>sent (command)</th><th>seen</th></tr>")
            for t in c["transcript"]:
                body.append(f"<tr><td>{escape(t['host'])}</td><td><code>{escape(t['sent'])}</code></td>"
                            f"<td><pre>{escape(t['seen'])}</pre></td></tr>")
            body.append("</table></details>")
        if c.get("ladder_html"):
            body.append(c["ladder_html"])   # built by report.html.ladder_section: escaped there
        elif c.get("ladder_text"):
            body.append(f"<pre>{escape(c['ladder_text'])}</pre>")
    return page(title, "\n".join(body))

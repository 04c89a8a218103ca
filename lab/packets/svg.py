"""A Ladder as an SVG document (pure; hand-written, every text escaped: it is untrusted,
host names and ICMP quotes come from the network and from scenario files)."""
from __future__ import annotations

from html import escape

from .ladder import Ladder, Row

COL_W, ROW_H, LEFT, TOP, NOTES_W = 180, 24, 130, 64, 470
COLOURS = {"packet": "#1f4e79", "dropped": "#c0392b", "unknown": "#7f8c8d", "duplicated": "#8e44ad",
           "corrupted": "#d35400", "retransmission": "#b7950b", "reordered": "#16a085",
           "delayed": "#2e86c1", "fold": "#7f8c8d"}


def _text(x, y, s, size=11, anchor="start", fill="#222", weight="normal") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}" '
            f'font-weight="{weight}">{escape(s)}</text>')


def render(ladder: Ladder) -> str:
    n = len(ladder.columns)
    xs = [LEFT + i * COL_W for i in range(n)]
    width = LEFT + (n - 1) * COL_W + NOTES_W
    height = TOP + len(ladder.rows) * ROW_H + 40
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="ladder" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans Mono, monospace" role="img">',
           f'<title>{escape(ladder.title or "ladder diagram")}</title>',
           '<defs>' + "".join(
               f'<marker id="arrow-{k}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
               f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{c}"/></marker>'
               for k, c in COLOURS.items()) + '</defs>',
           f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>']
    if ladder.title:
        out.append(_text(8, 18, ladder.title, 13, weight="bold"))
    out.append(_text(8, TOP - 14, "time (ms)", 10, fill="#555"))
    bottom = height - 16
    for x, col in zip(xs, ladder.columns):
        out.append(f'<line x1="{x}" y1="{TOP - 8}" x2="{x}" y2="{bottom}" stroke="#bbb" stroke-width="1.5"/>')
        name = col.name if len(col.name) <= 22 else col.name[:21] + "…"
        out.append(_text(x, TOP - 30, name, 12, "middle", weight="bold"))
        if col.address:
            out.append(_text(x, TOP - 16, col.address, 10, "middle", "#555"))
    for i, row in enumerate(ladder.rows):
        out.append(_row(ladder, row, xs, TOP + i * ROW_H + 14, width))
    out.append("</svg>")
    return "\n".join(out)


def _row(ladder: Ladder, row: Row, xs, y: float, width: int) -> str:
    colour = COLOURS.get(row.kind, COLOURS["packet"])
    if row.kind == "fold":
        return (f'<rect x="{LEFT - 40}" y="{y - 12}" width="{width - LEFT + 30}" height="{ROW_H - 6}" '
                f'fill="#f2f3f4" stroke="#bbb" stroke-dasharray="4 3"/>'
                + _text(LEFT - 30, y + 1, row.text, 11, fill="#444"))
    parts = [_text(8, y + 4, f"{row.t * 1000:.3f}", 10, fill="#555")]
    a = xs[row.src]
    stops = row.stops_at_router and row.src != ladder.router
    end = xs[ladder.router] if stops else xs[row.dst]
    dash = ' stroke-dasharray="5 3"' if row.kind in ("retransmission", "unknown") else ""
    if a == end:
        parts.append(f'<circle cx="{a}" cy="{y}" r="4" fill="{colour}"/>')
    else:
        marker = "" if stops else f' marker-end="url(#arrow-{row.kind if row.kind in COLOURS else "packet"})"'
        parts.append(f'<line x1="{a}" y1="{y}" x2="{end}" y2="{y}" stroke="{colour}" stroke-width="1.6"{dash}{marker}/>')
        if stops:
            parts.append(f'<path d="M{end - 6},{y - 6} L{end + 6},{y + 6} M{end - 6},{y + 6} L{end + 6},{y - 6}" '
                         f'stroke="{colour}" stroke-width="2.4"/>')
    mid = (a + end) / 2 if a != end else a + 40
    parts.append(_text(mid, y - 4, row.text, 10, "middle", colour))
    if row.note:
        parts.append(_text(xs[-1] + 22, y + 4, row.note, 11, fill=colour, weight="bold"))
    return "".join(parts)

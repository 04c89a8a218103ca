"""report.html and trace pages: self-contained, escaped, and seen by a real headless Chromium."""
import base64
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import browser_check  # noqa: E402
from lab.packets import ladder, svg  # noqa: E402
from lab.report import html  # noqa: E402
from lab.report.model import ExpectationResult, RunReport  # noqa: E402
from packet_builders import handshake_with_a_lost_segment  # noqa: E402

PNG_1x1 = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC")
HOSTILE = '<script>alert(1)</script><img src="http://example.invalid/x.png">'


def sample(tmp_path: Path) -> Path:
    folder = tmp_path / "run"
    (folder / "plots").mkdir(parents=True)
    (folder / "plots" / "probe-client1.png").write_bytes(PNG_1x1)
    (folder / "captures").mkdir()
    (folder / "captures" / "eth0.pcap").write_bytes(b"")
    (folder / "outputs" / "probe").mkdir(parents=True)
    (folder / "outputs" / "probe" / "client1.txt").write_text("hi")
    report = RunReport("demo", f"A description with {HOSTILE}\nand a second line.", "demo.yaml", "r1-demo", 7,
                       "2026-01-01T00:00:00+00:00", 3.2,
                       [ExpectationResult("probe.delivery: {ge: 0.9}", "demo.yaml:12:5", True, 0.97, "ok"),
                        ExpectationResult(f"probe.received: {HOSTILE}", "demo.yaml:13:5", False, HOSTILE, "no")],
                       ["a run error <b>bold?</b>"], {"clients->servers": {"loss": "nftables numgen"}},
                       artifacts=str(folder))
    lad = handshake_with_a_lost_segment()
    lad.columns[0] = ladder.Column(HOSTILE, lad.columns[0].address)
    log = {"arrived": 6, "impaired_total": 1, "counts": {"dropped": 1, "forwarded": 5}, "packets": [], "cut": False}
    page = folder / "report.html"
    page.write_text(html.run_report(report, folder, [("step probe on client1", lad)], log))
    return page


def test_the_page_is_self_contained_and_escaped(tmp_path):
    text = sample(tmp_path).read_text()
    assert "<script" not in text
    assert not browser_check.EXTERNAL.search(text), browser_check.EXTERNAL.search(text)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert 'src="data:image/png;base64,' in text
    assert '<a href="captures/eth0.pcap">' in text and '<a href="outputs/probe/client1.txt">' in text
    assert text.count("<svg") == 1 and "FAILED" in text
    assert re.search(r"<td>probe\.delivery: \{ge: 0\.9\}</td><td>0\.97</td>", text)


def test_chromium_sees_no_console_error_on_a_bad_page(tmp_path):
    """The check itself can fail: a page with script errors shows console lines."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><p>x</p><script>console.error("boom"); nope();</script>')
    seen = browser_check.look(bad, None)
    assert any("boom" in line for line in seen.console) and any("nope" in line for line in seen.console)


def test_chromium_renders_the_report_table_and_ladder(tmp_path):
    page = sample(tmp_path)
    seen = browser_check.look(page, tmp_path / "report.png")
    assert seen.console == []
    assert '<table class="expectations">' in seen.dom and "probe.delivery" in seen.dom
    assert "<svg" in seen.dom and "dropped (partition)" in seen.dom
    assert "<script" not in seen.dom.split("</head>", 1)[-1]          # hostile text stayed text
    px = browser_check.pixels(seen.png)
    assert px.std() > 0.05                                              # not a blank page
    # The SVG was drawn: its arrows' colours are on the screen (drop red, retransmission amber).
    assert browser_check.has_colour(seen.png, svg.COLOURS["dropped"]) > 20
    assert browser_check.has_colour(seen.png, svg.COLOURS["packet"]) > 100


def test_trace_page_escapes_the_command_and_output(tmp_path):
    lad = handshake_with_a_lost_segment()
    text = html.trace_page("lab t, client1: tcp-client", f"tcp-client {HOSTILE}", HOSTILE, lad,
                           {"arrived": 6, "impaired_total": 1, "counts": {"dropped": 1}})
    assert "<script" not in text and text.count("&lt;script&gt;") >= 2
    assert not browser_check.EXTERNAL.search(text)

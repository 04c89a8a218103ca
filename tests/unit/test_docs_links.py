"""The documentation's links resolve, and the README stays a front door.

Every Markdown file of the project (README.md, docs/*.md and the other READMEs) is read;
each relative link must name a file or folder of the checkout, and each `#anchor` a
heading of the page it points into, slugged as GitHub does (github-slugger): the heading's
rendered text, lower-cased, with every character that is not a letter, mark, digit,
space, `-` or `_` removed and each space turned into `-`; a repeated slug gets `-1`,
`-2`… Links inside code (fenced blocks, `inline spans`) are not links and are skipped,
as are links with a scheme (https:, mailto:). Only ATX headings (`## …`) are read: the
project writes no other kind.
"""
from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_MAX_CHARS = 10_000          # issue 15: a front door that fits a screen or two
SKIP_DIRS = {".git", ".venv", "node_modules", "runs", "work", ".pytest_cache"}

# Pages that other work is writing; a link to one is accepted while it does not exist yet,
# and checked like any other (anchors too) from the moment it does.
PENDING_PAGES: set = set()

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
HTML_ANCHOR = re.compile(r"<a\s[^>]*\b(?:name|id)=\"([^\"]+)\"", re.I)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def markdown_files(root: Path) -> list[Path]:
    found = []
    for path in sorted(root.rglob("*.md")):
        if not SKIP_DIRS.intersection(path.relative_to(root).parts[:-1]):
            found.append(path)
    return found


def prose_lines(text: str):
    """(line number, line) outside fenced code blocks."""
    fence = None
    for number, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)[0] * len(m.group(1))
            continue
        if fence is not None:
            if line.strip().startswith(fence) and set(line.strip()) <= {fence[0]}:
                fence = None
            continue
        yield number, line


def rendered(heading: str) -> str:
    """A heading's text as GitHub renders it: code spans keep their content, links their text."""
    text = INLINE_CODE.sub(lambda m: m.group(2), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"<[^>]+>", "", text)


def github_slug(text: str) -> str:
    kept = "".join(ch for ch in text.lower()
                   if ch in " -_" or unicodedata.category(ch)[0] in "LMN")
    return kept.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor a page offers: its headings' slugs (repeats numbered) and HTML anchors."""
    seen: dict[str, int] = {}
    found = set()
    for _, line in prose_lines(text):
        found.update(HTML_ANCHOR.findall(line))
        m = HEADING.match(line)
        if not m:
            continue
        slug = base = github_slug(rendered(m.group(2)))
        while slug in seen:
            seen[base] += 1
            slug = f"{base}-{seen[base]}"
        seen[slug] = 0
        found.add(slug)
    return found


def links(text: str):
    """(line number, target) of every link outside code."""
    for number, line in prose_lines(text):
        m = REF_DEFINITION.match(line)
        if m:
            yield number, m.group(1)
            continue
        for m in LINK.finditer(INLINE_CODE.sub("", line)):
            yield number, m.group(1)


def broken_links(files: list[Path], root: Path, pending=frozenset()) -> list[str]:
    """One line per link that does not resolve: FILE:LINE: target: why."""
    problems = []
    texts: dict[Path, str] = {}

    def text_of(path: Path) -> str:
        if path not in texts:
            texts[path] = path.read_text(encoding="utf-8")
        return texts[path]

    for page in files:
        for number, target in links(text_of(page)):
            where = f"{page.relative_to(root)}:{number}: {target}"
            if not target or SCHEME.match(target):
                continue
            path_part, _, anchor = target.partition("#")
            dest = (page.parent / path_part).resolve() if path_part else page
            try:
                name = dest.relative_to(root).as_posix()
            except ValueError:
                problems.append(f"{where}: points outside the checkout")
                continue
            if not dest.exists():
                if name not in pending:
                    problems.append(f"{where}: no such file {name}")
                continue
            if not anchor:
                continue
            if dest.suffix != ".md" or dest.is_dir():
                problems.append(f"{where}: an anchor into {name}, which is not a Markdown page")
            elif anchor not in anchors(text_of(dest)):
                problems.append(f"{where}: {name} has no heading with the anchor #{anchor}")
    return problems


# -- the project's own documentation ------------------------------------------------------

def test_every_link_in_the_documentation_resolves():
    files = markdown_files(ROOT)
    assert README in files and len([f for f in files if f.parent == DOCS]) >= 5
    assert broken_links(files, ROOT, PENDING_PAGES) == []


def test_every_docs_page_is_listed_in_the_index():
    index = DOCS / "index.md"
    listed = {(index.parent / t.partition("#")[0]).resolve() for _, t in links(index.read_text(encoding="utf-8"))}
    pages = {p.resolve() for p in DOCS.glob("*.md")} - {index.resolve()}
    assert sorted(p.name for p in pages - listed) == []


def test_readme_is_a_front_door():
    text = README.read_text(encoding="utf-8")
    assert len(text) <= README_MAX_CHARS, f"README.md has {len(text)} characters; move detail to docs/"
    # CI and users run exactly these two (.ci/run: "the test command in README.md").
    assert re.search(r"^\./quickstart\b", text, re.M)
    assert re.search(r"^\.venv/bin/python -m pytest\b", text, re.M)
    assert "docs/index.md" in {t for _, t in links(text)}


# -- the checker itself: it finds what is broken ------------------------------------------

@pytest.mark.parametrize("heading, slug", [
    ("Test your own code: the pytest plugin, and `lab grade`",
     "test-your-own-code-the-pytest-plugin-and-lab-grade"),
    ("The stock-kernel VM (`tests/vm/run`)", "the-stock-kernel-vm-testsvmrun"),
    ("lab's memory under an output flood", "labs-memory-under-an-output-flood"),
    ("\"several labs are up\", \"host … is in several labs\"",
     "several-labs-are-up-host--is-in-several-labs"),
    ("From the lecture's Python 2 to the lab's Python 3",
     "from-the-lectures-python-2-to-the-labs-python-3"),
    ("See [the packets](x.md) ✗ × `lab/__init__.py`", "see-the-packets---lab__init__py"),
    ("Ünïcode Wörds 2", "ünïcode-wörds-2"),
])
def test_slugs_follow_github(heading, slug):
    assert github_slug(rendered(heading)) == slug


def test_repeated_headings_are_numbered_and_code_is_not_a_heading():
    page = "# A\n## Notes\n```\n## Notes\n```\n## Notes\n### Notes\n"
    assert anchors(page) == {"a", "notes", "notes-1", "notes-2"}


def test_broken_links_are_found(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Alpha\n\n## Two words\n", encoding="utf-8")
    (tmp_path / "README.md").write_text(
        "[ok](docs/a.md) [ok](docs/a.md#two-words) [ok](#top) [ok](https://example.org/x)\n"
        "# Top\n"
        "[gone](docs/b.md)\n"
        "[bad anchor](docs/a.md#two_words)\n"
        "[bad own anchor](#nowhere)\n"
        "[out](../../etc/passwd)\n"
        "`[in code](docs/none.md)`\n"
        "```\n[in a fence](docs/none.md)\n```\n"
        "[later](docs/pending.md) [ref]: docs/c.md\n"
        "[ref]: docs/c.md\n", encoding="utf-8")
    files = markdown_files(tmp_path)
    problems = broken_links(files, tmp_path, pending={"docs/pending.md"})
    assert [p.split(": ", 1)[0] for p in problems] == [
        "README.md:3", "README.md:4", "README.md:5", "README.md:6", "README.md:12"]
    assert "no such file docs/b.md" in problems[0]
    assert "no heading with the anchor #two_words" in problems[1]
    assert "points outside the checkout" in problems[3]


def test_a_pending_page_is_checked_once_it_exists(tmp_path):
    (tmp_path / "README.md").write_text("[arch](docs/arch.md#layers)\n", encoding="utf-8")
    assert broken_links([tmp_path / "README.md"], tmp_path, pending={"docs/arch.md"}) == []
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "arch.md").write_text("# Architecture\n", encoding="utf-8")
    assert broken_links([tmp_path / "README.md"], tmp_path, pending={"docs/arch.md"}) == [
        "README.md:1: docs/arch.md#layers: docs/arch.md has no heading with the anchor #layers"]

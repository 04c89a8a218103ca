"""A class's submissions, as `lab grade --class DIR` finds them: one folder per submission,
a Gradescope "export submissions" folder (``submission_metadata.yml`` gives names and
emails), or a folder of cloned GitHub Classroom repositories (``assignment-USER``).

Everything here only looks at files (no lab, no engine), and treats every submission as
hostile: sizes are read from ``lstat`` before any byte is, a symlink that leaves the
submission or a special file refuses it, archives are unpacked with limits on members,
sizes and paths, and odd names (newlines, control characters) get a safe folder name of
their own.  A refused submission becomes one gradebook row with its reason; the class
goes on.

The content hash (resume: a submission whose hash is unchanged keeps its grade) covers the
relative paths and bytes of the files graded, never ``.git``.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import yaml

from ..programs.shared.errors import LabError
from .harness import FILES

MAX_BYTES = 50 << 20          # a submission's files together (the lecture's are a few kB)
MAX_FILES = 2000
MAX_DEPTH = 3                 # where the lecture files may sit below the submission's top
ARCHIVES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
SKIP = {".git", "__MACOSX", "__pycache__"}
GRADESCOPE_METADATA = "submission_metadata.yml"


class Refused(Exception):
    """This submission cannot be graded; the message is its reason, shown in its row."""


@dataclass
class Submission:
    slug: str                   # OUT/<slug>/: safe as a file name, unique in the class
    folder: str                 # the entry of DIR it came from, as found (may hold odd characters)
    path: Path                  # that entry
    name: str = ""              # the student's name(s), where the layout gives them
    email: str = ""
    sid: str = ""
    root: Optional[Path] = None  # the folder holding the lecture files, once prepared
    digest: str = ""            # content hash, once prepared
    refused: str = ""           # why it cannot be graded ("" if it can)
    notes: List[str] = field(default_factory=list)

    @property
    def shown(self) -> str:
        """The folder name for a terminal or a CSV cell: control characters escaped."""
        return printable_name(self.folder)


def printable_name(name: str) -> str:
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in name)


def slug_of(name: str, taken: set) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")[:60] or "submission"
    slug, n = base, 2
    while slug.lower() in taken or slug in ("summary.html", "gradebook.csv"):
        slug, n = f"{base}-{n}", n + 1
    taken.add(slug.lower())
    return slug


# -- finding the submissions of a class ----------------------------------------------------

class _LenientLoader(yaml.SafeLoader):
    """Gradescope's metadata is written by Ruby: tags like ``!ruby/object:BigDecimal`` are
    read as plain values instead of refusing the whole file."""


def _any_tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)


_LenientLoader.add_multi_constructor("!", _any_tag)


def _key(mapping: dict, name: str):
    """Gradescope's keys are Ruby symbols (``:submitters``); plain keys work too."""
    return mapping.get(f":{name}", mapping.get(name))


def gradescope_people(metadata: Path) -> Dict[str, Tuple[str, str, str]]:
    """submission folder -> (names, emails, sids) from a Gradescope export's metadata."""
    try:
        data = yaml.load(metadata.read_text(errors="replace"), Loader=_LenientLoader) or {}
    except yaml.YAMLError as exc:
        raise LabError(f"{metadata}: not readable YAML: {exc}".splitlines()[0],
                       hint="give the folder Gradescope's 'Export Submissions' zip unpacks to") from None
    if not isinstance(data, dict):
        raise LabError(f"{metadata}: expected a mapping of submission folders")
    people = {}
    for folder, entry in data.items():
        submitters = _key(entry, "submitters") if isinstance(entry, dict) else None
        submitters = [s for s in submitters or [] if isinstance(s, dict)]
        people[str(folder)] = tuple("; ".join(str(_key(s, what) or "") for s in submitters).strip("; ")
                                    for what in ("name", "email", "sid"))
    return people


def _common_prefix(names: List[str]) -> str:
    """GitHub Classroom names repositories ASSIGNMENT-USER: the shared ``ASSIGNMENT-``."""
    if len(names) < 2:
        return ""
    prefix = os.path.commonprefix(names)
    return prefix[:prefix.rfind("-") + 1] if "-" in prefix else ""


def find_submissions(directory: Path) -> Tuple[str, List[Submission]]:
    """(layout, submissions in a stable order) of a class folder; layout is 'gradescope',
    'github-classroom' or 'folders'."""
    directory = Path(directory)
    if not directory.is_dir():
        raise LabError(f"{directory}: not a folder", hint="give the folder holding one folder per submission")
    entries = sorted((p for p in directory.iterdir() if p.name not in SKIP and not p.name.startswith(".")),
                     key=lambda p: p.name)
    metadata = directory / GRADESCOPE_METADATA
    people: Dict[str, Tuple[str, str, str]] = {}
    layout = "folders"
    if metadata.is_file():
        layout, people = "gradescope", gradescope_people(metadata)
        entries = [p for p in entries if p.name != GRADESCOPE_METADATA]
    elif entries and all((p / ".git").exists() for p in entries if p.is_dir() and not p.is_symlink()) \
            and any(p.is_dir() for p in entries):
        layout = "github-classroom"
    # a loose file that is no archive (a README, last run's CSV) is not a submission
    entries = [p for p in entries if p.is_dir() or p.is_symlink() or p.name.endswith(ARCHIVES)]
    prefix = _common_prefix([p.name for p in entries]) if layout == "github-classroom" else ""
    taken: set = set()
    subs = []
    for p in entries:
        sub = Submission(slug_of(p.name, taken), p.name, p)
        if layout == "gradescope":
            sub.name, sub.email, sub.sid = people.get(p.name, ("", "", ""))
        elif layout == "github-classroom":
            sub.name = p.name[len(prefix):] if prefix and len(p.name) > len(prefix) else p.name
        if sub.folder != sub.shown:
            sub.notes.append("its folder name holds control characters: shown escaped")
        subs.append(sub)
    if not subs:
        raise LabError(f"{directory}: no submissions in it",
                       hint="one folder per submission, a Gradescope export, or cloned GitHub Classroom repositories")
    return layout, subs


# -- checking and preparing one submission ---------------------------------------------------

def _scan(top: Path) -> List[Tuple[Path, os.stat_result]]:
    """Every entry under ``top`` (not following links), refusing what a submission may not
    hold; sizes from lstat, so a 2 GB file is refused without reading it."""
    out, total = [], 0
    top_real = os.path.realpath(top)
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP)
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            st = os.lstat(path)
            rel = path.relative_to(top)
            if stat.S_ISLNK(st.st_mode):
                target = os.path.realpath(path)
                if os.path.commonpath([top_real, target]) != top_real:
                    raise Refused(f"{printable_name(str(rel))} is a symlink to {printable_name(os.readlink(path))}, "
                                  f"outside the submission")
            elif not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                raise Refused(f"{printable_name(str(rel))} is not a file or a folder (a device, socket or pipe)")
            elif stat.S_ISREG(st.st_mode):
                total += st.st_size
                if st.st_size > MAX_BYTES or total > MAX_BYTES:
                    raise Refused(f"{printable_name(str(rel))} is {st.st_size / 1e6:,.1f} MB: a submission may "
                                  f"hold {MAX_BYTES >> 20} MiB in all")
            out.append((path, st))
            if len(out) > MAX_FILES:
                raise Refused(f"more than {MAX_FILES} files")
    return out


def _unpack(archive: Path, into: Path) -> None:
    """Unpack with limits: no absolute or ``..`` paths, no links, bounded sizes and count."""
    name = printable_name(archive.name)
    if archive.stat().st_size > MAX_BYTES:
        raise Refused(f"{name} is {archive.stat().st_size / 1e6:,.1f} MB: over {MAX_BYTES >> 20} MiB")
    into.mkdir(parents=True, exist_ok=True)
    total = 0
    try:
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as z:
                members = z.infolist()
                if len(members) > MAX_FILES:
                    raise Refused(f"{name} holds more than {MAX_FILES} files")
                for m in members:
                    _safe_member(m.filename, name)
                    total += m.file_size
                    if total > MAX_BYTES:
                        raise Refused(f"{name} unpacks to more than {MAX_BYTES >> 20} MiB")
                for m in members:
                    if (m.external_attr >> 16) & 0o170000 == 0o120000:
                        raise Refused(f"{name} holds a symlink ({printable_name(m.filename)})")
                    z.extract(m, into)
        else:
            with tarfile.open(archive) as t:
                members = []
                for m in t:
                    members.append(m)
                    if len(members) > MAX_FILES:
                        raise Refused(f"{name} holds more than {MAX_FILES} files")
                    _safe_member(m.name, name)
                    if not (m.isfile() or m.isdir()):
                        raise Refused(f"{name} holds {printable_name(m.name)}, not a file or a folder")
                    total += m.size
                    if total > MAX_BYTES:
                        raise Refused(f"{name} unpacks to more than {MAX_BYTES >> 20} MiB")
                for m in members:
                    m.mode = (m.mode | 0o600) & 0o777
                    t.extract(m, into, set_attrs=False)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, ValueError, RuntimeError) as exc:
        raise Refused(f"{name} does not unpack: {type(exc).__name__}: {printable_name(str(exc))[:200]}") from None


def _safe_member(member: str, archive: str) -> None:
    parts = Path(member).parts
    if member.startswith(("/", "\\")) or ".." in parts or any(":" in p for p in parts[:1]):
        raise Refused(f"{archive} holds a path outside itself: {printable_name(member)}")


def _lecture_root(top: Path) -> Path:
    """The shallowest folder (up to MAX_DEPTH below ``top``) holding a lecture file."""
    level = [top]
    for _ in range(MAX_DEPTH + 1):
        for folder in level:
            if any((folder / f).is_file() and not (folder / f).is_symlink() for f in FILES):
                return folder
        level = sorted(d for f in level for d in f.iterdir()
                       if d.is_dir() and not d.is_symlink() and d.name not in SKIP)
    return top


def prepare(sub: Submission, scratch: Path) -> None:
    """Check ``sub`` and find its lecture files (unpacking an archive into ``scratch``);
    sets ``root`` and ``digest``, or ``refused`` with the reason."""
    try:
        path = sub.path
        if path.is_symlink():
            raise Refused(f"the submission itself is a symlink (to {printable_name(os.readlink(path))})")
        if path.is_file():
            if not path.name.endswith(ARCHIVES):
                raise Refused("a single file, not a folder or an archive")
            _unpack(path, scratch / sub.slug)
            path = scratch / sub.slug
        entries = _scan(path)
        archives = [p for p, st in entries if stat.S_ISREG(st.st_mode) and p.name.endswith(ARCHIVES)]
        if archives and not any(p.name in FILES for p, _ in entries):
            _unpack(archives[0], scratch / sub.slug)     # a folder holding only the zip they uploaded
            path = scratch / sub.slug
            entries = _scan(path)
        sub.root = _lecture_root(path)
        sub.digest = content_hash(sub.root)
    except Refused as exc:
        sub.refused = str(exc)
    except OSError as exc:
        sub.refused = f"cannot be read: {type(exc).__name__}: {printable_name(str(exc))[:200]}"


def content_hash(top: Path) -> str:
    """sha256 over relative path, kind and bytes of every entry (links by their target)."""
    h = hashlib.sha256()
    for path, st in _scan(top):
        rel = str(path.relative_to(top)).encode("utf-8", "surrogateescape")
        if stat.S_ISLNK(st.st_mode):
            h.update(b"L" + rel + b"\0" + os.readlink(path).encode("utf-8", "surrogateescape") + b"\0")
        elif stat.S_ISDIR(st.st_mode):
            h.update(b"D" + rel + b"\0")
        else:
            h.update(b"F" + rel + b"\0" + str(st.st_size).encode() + b"\0")
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 16), b""):
                    h.update(chunk)
    return h.hexdigest()


def copy_into(root: Path, work: Path) -> List[str]:
    """Copy a prepared submission's folder into an emptied ``work``; its lecture files."""
    for entry in work.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    shutil.copytree(root, work, symlinks=True, dirs_exist_ok=True,
                    ignore=lambda d, names: [n for n in names if n in SKIP])
    work.chmod(0o777)
    return [name for name in FILES if (work / name).is_file()]

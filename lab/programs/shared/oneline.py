"""The one-line form of a change to a running lab's network: what ``lab impair`` takes
on its command line and compose's ``SOCKETLAB_IMPAIR`` holds.  One parser for both;
values are checked by the scenario format's own field types (spec.IMPAIRMENT), so the
units, ranges and messages are a scenario file's.

    clients <-> servers loss 5% delay 20ms         # impair a link (both directions)
    clients -> servers loss 1% loss-correlation 25% ; servers -> clients rate 1mbit queue 50
    clients -> servers gemodel 1%,30%              # Gilbert-Elliott: p[,r[,1-h[,1-k]]]
    partition clients servers   |   heal [clients servers]   |   clear [LINK]

Keys: loss, loss-correlation, gemodel, delay, jitter, duplicate, corrupt, reorder, rate,
queue, and the stream faults segment, gap, reset-after, blackhole-after, hold-fin,
connections, mtu (``lab impair`` has each as ``--KEY``).

    clients -> servers segment 2 gap 50ms ; servers -> clients reset-after 1KiB connections 50%  Changes are separated by ``;``.
Errors are ``OneLineError(key, message)``; ``str()`` gives ``key: message``.
Pure, standard library only (the router's image holds it).
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .impairment import STREAM_FIELDS, Change, Impairment, Link
from . import impairment_entry, spec
from .fieldtypes import Checker

KEYS = ("loss", "loss-correlation", "gemodel", "delay", "jitter", "duplicate", "corrupt",
        "reorder", "rate", "queue") + tuple(f.key.replace("_", "-") for f in STREAM_FIELDS)
GEMODEL_PARTS = ("p", "r", "one_minus_h", "one_minus_k")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_LINK_AT_START = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*(<->|->)\s*([A-Za-z0-9_.-]+)(.*)$", re.S)


class OneLineError(ValueError):
    def __init__(self, key: Optional[str], message: str):
        super().__init__(f"{key}: {message}" if key else message)
        self.key, self.message = key, message


class _NoPositions:
    """The checker's document: a one-line form has no lines and columns to point at."""

    def mark(self, path, key=False):
        return 0, 0


def _scalar(text: str) -> Any:
    """A command-line word as YAML would read it: plain numbers become numbers."""
    if _NUMBER.match(text):
        return float(text) if "." in text else int(text)
    return text


def links_of(text: str, key: str = "link") -> List[Link]:
    try:
        src, dst, both = spec.parse_link(text)
    except ValueError as exc:
        raise OneLineError(key, str(exc)) from None
    return [Link(src, dst), Link(dst, src)] if both else [Link(src, dst)]


def impairment_of(values: Sequence[Tuple[str, str]]) -> Impairment:
    """(key, text) pairs, keys as in KEYS, into an Impairment, checked as a scenario's."""
    entry: Dict[str, Any] = {"link": "a -> b"}
    for key, text in values:
        if key not in KEYS:
            close = [k for k in KEYS if k.startswith(key[:3])]
            raise OneLineError(key, "unknown impairment" + (f" (did you mean {close[0]!r}?)" if close else
                                                            f"; expected one of: {', '.join(KEYS)}"))
        name = key.replace("-", "_")
        if name in entry:
            raise OneLineError(key, "given twice")
        if name == "gemodel":
            parts = [p for p in text.split(",")]
            if not 1 <= len(parts) <= 4 or not all(p.strip() for p in parts):
                raise OneLineError(key, f"{text!r}: write p[,r[,1-h[,1-k]]] like 1%,30%")
            entry[name] = {part: _scalar(p.strip()) for part, p in zip(GEMODEL_PARTS, parts)}
        else:
            entry[name] = _scalar(text)
    checker = Checker(_NoPositions())
    checked = spec.IMPAIRMENT.check(entry, (), checker)
    if checker.problems:
        first = checker.problems[0]
        key = first.path.split(".")[0].replace("_", "-") or None
        raise OneLineError(key, first.message)
    try:
        return impairment_entry.build(checked)
    except impairment_entry.EntryError as exc:
        raise OneLineError(exc.key.replace("_", "-") if exc.key else None, str(exc)) from None


def parse_change(text: str) -> Change:
    """One change (no ``;``)."""
    words = text.split()
    if not words:
        raise OneLineError(None, "empty: give a link and its impairments, or partition, heal, clear")
    verb = words[0]
    if verb in ("partition", "heal"):
        nets = words[1:]
        if verb == "partition" and len(nets) != 2 or verb == "heal" and len(nets) not in (0, 2):
            raise OneLineError(verb, f"give two networks: {verb} clients servers")
        if not nets:
            return Change(heal_all=True)
        links = links_of(f"{nets[0]} <-> {nets[1]}", verb)
        return Change(partition=tuple(links)) if verb == "partition" else Change(heal=tuple(links))
    if verb == "clear":
        rest = " ".join(words[1:])
        return Change(clear=tuple(links_of(rest, "clear"))) if rest else Change(clear_all=True)
    match = _LINK_AT_START.match(text)
    if not match:
        raise OneLineError("link", f"{text.strip()!r} does not start with a link: write "
                                   "'clients -> servers' or 'clients <-> servers'")
    src, arrow, dst, rest = match.groups()
    links = links_of(f"{src} {arrow} {dst}")
    words = rest.split()
    if len(words) % 2:
        raise OneLineError(words[-1], "has no value")
    if not words:
        raise OneLineError("link", "no impairment given (to remove one: clear LINK)")
    imp = impairment_of(list(zip(words[0::2], words[1::2])))
    return Change(impair={link: imp for link in links})


def parse_changes(text: str) -> Change:
    """Several changes separated by ``;``, merged into one (applied at once)."""
    parts = [p for p in text.split(";") if p.strip()]
    if not parts:
        raise OneLineError(None, "empty")
    merged = Change()
    for part in parts:
        change = parse_change(part)
        merged = Change(impair={**merged.impair, **change.impair},
                        partition=merged.partition + change.partition,
                        heal=merged.heal + change.heal, clear=merged.clear + change.clear,
                        clear_all=merged.clear_all or change.clear_all,
                        heal_all=merged.heal_all or change.heal_all)
    return merged

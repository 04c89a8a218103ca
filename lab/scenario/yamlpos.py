"""Safe YAML loading that remembers where every key and value came from.

The node tree is composed by ``yaml.SafeLoader`` (no object is ever constructed from
a tag) and converted to plain data here, which lets us:

* know the 1-based line and column of every value and key (``Document.mark``);
* read scalars by the YAML 1.2 core schema, as editors do: only ``true``/``false``
  are booleans, so ``on:``, ``yes`` and ``no`` stay strings, and ``1:30`` is not 90;
* refuse every tag outside plain data (``!!python/object``, ``!!set``, ``!custom``);
* refuse duplicate keys (YAML itself silently keeps the last one);
* allow anchors, aliases and ``<<`` merge keys, but count the nodes the aliases expand
  to and stop at ``MAX_NODES`` (a "billion laughs" file), and refuse recursive aliases.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ..programs.shared.problems import Path, Problem, format_path

MAX_NODES = 100_000
MAX_DEPTH = 64

Mark = Tuple[int, int]  # (line, column), 1-based

_PLAIN = "tag:socketlab.plain"      # an untagged plain scalar, resolved below
_STD = "tag:yaml.org,2002:"

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"^[-+]?[0-9]+$")
_INT_OCT = re.compile(r"^0o[0-7]+$")
_INT_HEX = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_INF = re.compile(r"^[-+]?\.(?:inf|Inf|INF)$")
_NAN = re.compile(r"^\.(?:nan|NaN|NAN)$")


class _Loader(yaml.SafeLoader):
    """Composes nodes only; plain scalars get a tag of ours so that explicit tags
    (``!!str 10``) stay distinguishable from implicit ones."""

    def resolve(self, kind, value, implicit):
        if kind is ScalarNode and implicit[0]:
            return _PLAIN
        return super().resolve(kind, value, implicit)


@dataclass
class Document:
    """Plain data (dict/list/str/int/float/bool/None) plus where each piece was written."""

    data: Any
    marks: Dict[Path, Mark] = field(default_factory=dict)      # value positions
    key_marks: Dict[Path, Mark] = field(default_factory=dict)  # positions of mapping keys
    refused: set = field(default_factory=set)                  # paths of values refused (tags): None now

    def mark(self, path: Path, key: bool = False) -> Mark:
        """Where the value (or with ``key``, the key) at ``path`` was written; falls back
        to the nearest enclosing value that has a position."""
        if key and path in self.key_marks:
            return self.key_marks[path]
        while path not in self.marks and path:
            path = path[:-1]
        return self.marks.get(path, (1, 1))


class _Stop(Exception):
    """Conversion cannot go on (too many nodes, a recursive alias)."""

    def __init__(self, node: Node, path: Path, message: str):
        super().__init__(message)
        self.mark, self.path, self.message = _mark(node), path, message


def _mark(node: Node) -> Mark:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _tag_name(tag: str) -> str:
    return "!!" + tag[len(_STD):] if tag.startswith(_STD) else tag


class _Converter:
    def __init__(self) -> None:
        self.doc = Document(None)
        self.problems: List[Problem] = []
        self.count = 0
        self.active: set = set()  # collection nodes being converted (recursion guard)

    def problem(self, mark: Mark, path: Path, message: str) -> None:
        self.problems.append(Problem(mark[0], mark[1], format_path(path), message))

    def convert(self, node: Node, path: Path, depth: int = 0) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise _Stop(node, path, f"the document expands to more than {MAX_NODES} values "
                                    "(aliases repeating aliases?); refusing to load it")
        if depth > MAX_DEPTH:
            raise _Stop(node, path, f"nested more than {MAX_DEPTH} levels deep")
        self.doc.marks.setdefault(path, _mark(node))
        if isinstance(node, ScalarNode):
            return self.scalar(node, path)
        if id(node) in self.active:
            raise _Stop(node, path, "an alias refers to a value that contains it (recursive alias)")
        self.active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                if node.tag != _STD + "seq":
                    return self.bad_tag(node, path)
                return [self.convert(item, path + (i,), depth + 1) for i, item in enumerate(node.value)]
            if node.tag != _STD + "map":
                return self.bad_tag(node, path)
            return self.mapping(node, path, depth)
        finally:
            self.active.discard(id(node))

    def bad_tag(self, node: Node, path: Path, value: bool = True) -> None:
        if value:
            self.doc.refused.add(path)
        self.problem(_mark(node), path, f"YAML tag {_tag_name(node.tag)} is not allowed: "
                                        "a scenario is plain data (strings, numbers, lists, mappings)")
        return None

    def scalar(self, node: ScalarNode, path: Path) -> Any:
        text, tag = node.value, node.tag
        if tag == _PLAIN:
            return resolve_plain(text)
        if tag == _STD + "str":
            return text
        value = resolve_plain(text) if tag in (_STD + "int", _STD + "float", _STD + "bool", _STD + "null") else None
        wanted = {_STD + "int": int, _STD + "float": (int, float), _STD + "bool": bool, _STD + "null": type(None)}
        if tag in wanted:
            ok = isinstance(value, wanted[tag]) and not (tag != _STD + "bool" and isinstance(value, bool))
            if ok:
                return float(value) if tag == _STD + "float" else value
            self.problem(_mark(node), path, f"{text!r} is not a valid {_tag_name(tag)}")
            self.doc.refused.add(path)
            return None
        return self.bad_tag(node, path)

    def mapping(self, node: MappingNode, path: Path, depth: int) -> Dict[str, Any]:
        result: Dict[str, Any] = {}
        for key, key_node, value_node in self.pairs(node, path):
            key_path = path + (key,)
            self.doc.key_marks.setdefault(key_path, _mark(key_node))
            result[key] = self.convert(value_node, key_path, depth + 1)
        return result

    def pairs(self, node: MappingNode, path: Path) -> List[Tuple[str, Node, Node]]:
        """(key, key node, value node) with ``<<`` merges applied: explicit keys win over
        merged ones, and earlier merge sources win over later ones."""
        explicit: List[Tuple[str, Node, Node]] = []
        merged: List[Tuple[str, Node, Node]] = []
        seen: Dict[str, Mark] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.problem(_mark(key_node), path, "a mapping key must be a plain string")
                continue
            if key_node.tag == _PLAIN and key_node.value == "<<":
                merged += self.merge_sources(value_node, path)
                continue
            if key_node.tag not in (_PLAIN, _STD + "str"):
                self.bad_tag(key_node, path, value=False)
                continue
            key = key_node.value
            if key in seen:
                self.problem(_mark(key_node), path + (key,),
                             f"duplicate key {key!r} (first written at line {seen[key][0]})")
                continue
            seen[key] = _mark(key_node)
            explicit.append((key, key_node, value_node))
        for key, key_node, value_node in merged:
            if key not in seen:
                seen[key] = _mark(key_node)
                explicit.append((key, key_node, value_node))
        return explicit

    def merge_sources(self, value_node: Node, path: Path) -> List[Tuple[str, Node, Node]]:
        sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
        merged: List[Tuple[str, Node, Node]] = []
        for source in sources:
            self.count += 1
            if self.count > MAX_NODES:
                raise _Stop(source, path, f"the document expands to more than {MAX_NODES} values")
            if not isinstance(source, MappingNode):
                self.problem(_mark(source), path, "'<<' merges a mapping (or a list of mappings) only")
                continue
            if id(source) in self.active:
                raise _Stop(source, path, "an alias refers to a value that contains it (recursive alias)")
            self.active.add(id(source))
            try:
                merged += self.pairs(source, path)
            finally:
                self.active.discard(id(source))
        return merged


def resolve_plain(text: str) -> Any:
    """An untagged plain scalar by the YAML 1.2 core schema."""
    if _NULL.match(text):
        return None
    if text in _BOOL:
        return _BOOL[text]
    if _INT.match(text):
        return int(text)
    if _INT_OCT.match(text):
        return int(text[2:], 8)
    if _INT_HEX.match(text):
        return int(text[2:], 16)
    if _FLOAT.match(text):
        return float(text)
    if _INF.match(text):
        return -math.inf if text.startswith("-") else math.inf
    if _NAN.match(text):
        return math.nan
    return text


def load(text: str) -> Tuple[Optional[Document], List[Problem]]:
    """Parse ``text``: (document, problems). The document is None when the YAML itself
    cannot be read; otherwise problems lists tags refused and duplicate keys."""
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = exc.problem or exc.context or "cannot be read"
        if exc.context and what.startswith("but "):
            what = f"{exc.context}, {what}"
        return None, [Problem(where[0], where[1], "", f"YAML syntax: {what}")]
    except yaml.YAMLError as exc:
        return None, [Problem(1, 1, "", f"YAML: {exc}")]
    except RecursionError:
        return None, [Problem(1, 1, "", "nested too deeply to read")]
    if root is None:
        return Document(None, {(): (1, 1)}), []
    converter = _Converter()
    try:
        converter.doc.data = converter.convert(root, ())
    except _Stop as stop:
        return None, [Problem(stop.mark[0], stop.mark[1], format_path(stop.path), stop.message)]
    return converter.doc, converter.problems

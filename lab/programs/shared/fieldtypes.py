"""The building blocks of the declarative format: each type both checks a YAML value
(reporting positioned problems, returning the normalised value) and describes itself
as JSON Schema.  ``spec.py`` assembles the scenario format from these, so the
validator and the published schema cannot drift apart.
"""
from __future__ import annotations

import copy
import difflib
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Protocol, Sequence, Tuple

from . import units
from .problems import Path, Problem, format_path
from .units import describe


class _Invalid:
    """A value that failed its check (its problem is already reported)."""

    def __repr__(self) -> str:
        return "INVALID"

    def __bool__(self) -> bool:
        return False


INVALID: Any = _Invalid()
_NO_DEFAULT: Any = object()


def valid(*values: Any) -> bool:
    return not any(v is INVALID for v in values)


class Positions(Protocol):
    """Where each value of a checked document was written: ``lab.scenario.yamlpos.Document``
    for a scenario file (host side, PyYAML), a stand-in for the one-line form."""

    def mark(self, path: Path, key: bool = False) -> Tuple[int, int]: ...


class Checker:
    """Collects positioned problems for one document."""

    def __init__(self, doc: Positions):
        self.doc = doc
        self.problems: List[Problem] = []

    def error(self, path: Path, message: str, key: bool = False) -> None:
        line, column = self.doc.mark(path, key)
        self.problems.append(Problem(line, column, format_path(path), message))


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def one_of_text(choices: Sequence[str]) -> str:
    return ", ".join(choices)


class Type:
    """Base: ``check`` returns the normalised value or INVALID; ``schema`` the JSON Schema."""

    expected = "a value"
    kinds: Tuple[type, ...] = (object,)   # Python types this accepts, for AnyOf dispatch

    def __init__(self, description: str = ""):
        self.description = description

    def check(self, value: Any, path: Path, ck: Checker) -> Any:
        raise NotImplementedError

    def body(self) -> Dict[str, Any]:
        raise NotImplementedError

    def schema(self) -> Dict[str, Any]:
        out = {"description": self.description} if self.description else {}
        out.update(self.body())
        return out

    def accepts_kind(self, value: Any) -> bool:
        if isinstance(value, bool):
            return bool in self.kinds
        return isinstance(value, self.kinds)

    def wrong_type(self, value: Any, path: Path, ck: Checker) -> Any:
        ck.error(path, f"expected {self.expected}, got {describe(value)}")
        return INVALID


class Text(Type):
    """A string; optionally a regex it must match and a converter (ValueError = problem)."""

    expected = "a string"
    kinds = (str,)

    def __init__(self, description: str = "", pattern: Optional[str] = None, pattern_help: str = "",
                 convert: Optional[Callable[[str], Any]] = None, min_length: int = 1,
                 examples: Sequence[str] = ()):
        super().__init__(description)
        self.pattern, self.regex = pattern, re.compile(pattern) if pattern else None
        self.pattern_help, self.convert = pattern_help, convert
        self.min_length, self.examples = min_length, list(examples)

    def check(self, value, path, ck):
        if not isinstance(value, str):
            return self.wrong_type(value, path, ck)
        if len(value.strip()) < self.min_length:
            ck.error(path, "must not be empty")
            return INVALID
        if self.regex and not self.regex.match(value):
            ck.error(path, f"{value!r} {self.pattern_help or 'does not match ' + self.pattern}")
            return INVALID
        if self.convert:
            try:
                return self.convert(value)
            except ValueError as exc:
                ck.error(path, str(exc))
                return INVALID
        return value

    def body(self):
        out: Dict[str, Any] = {"type": "string"}
        if self.pattern:
            out["pattern"] = self.pattern
        elif self.min_length:
            out["minLength"] = self.min_length
        if self.examples:
            out["examples"] = self.examples
        return out


class Integer(Type):
    expected = "a whole number"
    kinds = (int,)

    def __init__(self, description: str = "", minimum: Optional[int] = None, maximum: Optional[int] = None):
        super().__init__(description)
        self.minimum, self.maximum = minimum, maximum

    def check(self, value, path, ck):
        if isinstance(value, bool) or not isinstance(value, int):
            return self.wrong_type(value, path, ck)
        if self.maximum is not None and value > self.maximum:
            ck.error(path, f"{value} is over the maximum of {self.maximum}")
            return INVALID
        if self.minimum is not None and value < self.minimum:
            ck.error(path, f"{value} is below the minimum of {self.minimum}")
            return INVALID
        return value

    def body(self):
        out: Dict[str, Any] = {"type": "integer"}
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        return out


class Boolean(Type):
    expected = "true or false"
    kinds = (bool,)

    def check(self, value, path, ck):
        if not isinstance(value, bool):
            return self.wrong_type(value, path, ck)
        return value

    def body(self):
        return {"type": "boolean"}


class Choice(Type):
    """One of a few strings."""

    kinds = (str,)

    def __init__(self, description: str, choices: Sequence[str]):
        super().__init__(description)
        self.choices = list(choices)
        self.expected = "one of " + one_of_text(self.choices)

    def check(self, value, path, ck):
        if not isinstance(value, str):
            return self.wrong_type(value, path, ck)
        if value not in self.choices:
            ck.error(path, f"{value!r} is not one of: {one_of_text(self.choices)}"
                           f"{did_you_mean(value, self.choices)}")
            return INVALID
        return value

    def body(self):
        return {"type": "string", "enum": self.choices}


class Duration(Type):
    """A duration with a unit; the value is seconds (a float)."""

    expected = "a duration like 300ms or 5s"
    kinds = (str, int, float)

    def __init__(self, description: str = "", positive: bool = False):
        super().__init__(description)
        self.positive = positive

    def check(self, value, path, ck):
        if not self.accepts_kind(value):
            return self.wrong_type(value, path, ck)
        try:
            seconds = units.parse_duration(value)
        except ValueError as exc:
            ck.error(path, str(exc))
            return INVALID
        if self.positive and seconds <= 0:
            ck.error(path, "must be longer than 0")
            return INVALID
        return seconds

    def body(self):
        text = {"type": "string", "pattern": units.DURATION_PATTERN}
        return text if self.positive else {"anyOf": [text, {"const": 0}]}


class Percent(Type):
    """A percentage (``10%`` or a plain 10); the value is 0..100 (a float)."""

    expected = "a percentage like 10%"
    kinds = (str, int, float)

    def __init__(self, description: str = "", low: float = 0.0, high: float = 100.0):
        super().__init__(description)
        self.low, self.high = low, high

    def check(self, value, path, ck):
        if not self.accepts_kind(value):
            return self.wrong_type(value, path, ck)
        try:
            percent = units.parse_percent(value)
            units.check_percent_range(percent)
        except ValueError as exc:
            ck.error(path, str(exc))
            return INVALID
        if percent > self.high:
            ck.error(path, f"{units.fmt_percent(percent)} is over {units.fmt_percent(self.high)}")
            return INVALID
        if percent < self.low:
            ck.error(path, f"{units.fmt_percent(percent)} is below {units.fmt_percent(self.low)}")
            return INVALID
        return percent

    def body(self):
        number: Dict[str, Any] = {"type": "number", "minimum": self.low, "maximum": self.high}
        return {"anyOf": [{"type": "string", "pattern": units.PERCENT_PATTERN}, number]}


class Rate(Type):
    """A bit rate with a unit; the value is kbit/s."""

    expected = "a rate like 1mbit"
    kinds = (str, int, float)

    def check(self, value, path, ck):
        if not self.accepts_kind(value):
            return self.wrong_type(value, path, ck)
        try:
            return units.parse_rate(value)
        except ValueError as exc:
            ck.error(path, str(exc))
            return INVALID

    def body(self):
        return {"type": "string", "pattern": units.RATE_PATTERN}


class Size(Type):
    """A size with a unit (256MiB, 1GiB); the value is bytes (an int).  ``kind`` is
    units.MEMORY or units.BYTES: what the messages suggest for a number without a unit."""

    kinds = (str, int, float)

    def __init__(self, description: str = "", minimum: int = 0, kind=units.MEMORY):
        super().__init__(description)
        self.minimum, self.kind = minimum, kind
        self.expected = f"a size like {kind[1].split(',')[0]}"

    def check(self, value, path, ck):
        if not self.accepts_kind(value):
            return self.wrong_type(value, path, ck)
        try:
            size = units.parse_size(value, self.kind)
        except ValueError as exc:
            ck.error(path, str(exc))
            return INVALID
        if size < self.minimum:
            ck.error(path, f"{value} is below the minimum of {units.fmt_size(self.minimum)}")
            return INVALID
        return size

    def body(self):
        return {"type": "string", "pattern": units.SIZE_PATTERN}


class Decimal(Type):
    """A number that may have a fraction (0.5, 2)."""

    expected = "a number"
    kinds = (int, float)

    def __init__(self, description: str = "", minimum: float = 0.0, maximum: Optional[float] = None):
        super().__init__(description)
        self.minimum, self.maximum = minimum, maximum

    def check(self, value, path, ck):
        if not units.is_number(value):
            return self.wrong_type(value, path, ck)
        if not math.isfinite(value):
            ck.error(path, f"{value} is not a finite number")
            return INVALID
        if self.maximum is not None and value > self.maximum:
            ck.error(path, f"{value:g} is over the maximum of {self.maximum:g}")
            return INVALID
        if value < self.minimum:
            ck.error(path, f"{value:g} is below the minimum of {self.minimum:g}")
            return INVALID
        return float(value)

    def body(self):
        out: Dict[str, Any] = {"type": "number", "minimum": self.minimum}
        if self.maximum is not None:
            out["maximum"] = self.maximum
        return out


class Scalar(Type):
    """A string, number, boolean or null, taken as is."""

    expected = "a string, number, true/false or null"
    kinds = (str, int, float, bool, type(None))

    def check(self, value, path, ck):
        if not self.accepts_kind(value):
            return self.wrong_type(value, path, ck)
        return value

    def body(self):
        return {"type": ["string", "number", "boolean", "null"]}


class ListOf(Type):
    expected = "a list"
    kinds = (list,)

    def __init__(self, item: Type, description: str = "", min_items: int = 0,
                 max_items: Optional[int] = None, partial: bool = False):
        super().__init__(description)
        self.item, self.min_items, self.max_items = item, min_items, max_items
        self.partial = partial   # True: keep the valid items (INVALID in place of the others)

    def check(self, value, path, ck):
        if not isinstance(value, list):
            return self.wrong_type(value, path, ck)
        if self.max_items is not None and self.min_items == self.max_items and len(value) != self.min_items:
            ck.error(path, f"expected a list of exactly {self.min_items} items, got {len(value)}")
            return INVALID
        if len(value) < self.min_items:
            ck.error(path, f"needs at least {self.min_items} item{'s' * (self.min_items > 1)}")
            return INVALID
        if self.max_items is not None and len(value) > self.max_items:
            ck.error(path, f"takes at most {self.max_items} items, got {len(value)}")
            return INVALID
        items = [self.item.check(v, path + (i,), ck) for i, v in enumerate(value)]
        return items if self.partial or valid(*items) else INVALID

    def body(self):
        out: Dict[str, Any] = {"type": "array", "items": self.item.schema()}
        if self.min_items:
            out["minItems"] = self.min_items
        if self.max_items is not None:
            out["maxItems"] = self.max_items
        return out


class AnyOf(Type):
    """The first alternative whose Python kind fits the value decides."""

    def __init__(self, description: str, *alternatives: Type):
        super().__init__(description)
        self.alternatives = alternatives
        self.expected = " or ".join(a.expected for a in alternatives)
        self.kinds = tuple(k for a in alternatives for k in a.kinds)

    def check(self, value, path, ck):
        for alternative in self.alternatives:
            if alternative.accepts_kind(value):
                return alternative.check(value, path, ck)
        return self.wrong_type(value, path, ck)

    def body(self):
        return {"anyOf": [a.schema() for a in self.alternatives]}


@dataclass
class Field:
    type: Type
    description: str = ""
    required: bool = False
    default: Any = _NO_DEFAULT          # the normalised value used when the key is absent
    shown_default: Any = _NO_DEFAULT    # the same, as written in YAML (for the schema)

    def schema(self) -> Dict[str, Any]:
        out = self.type.schema()
        if self.description:
            out["description"] = self.description
        if self.shown_default is not _NO_DEFAULT:
            out["default"] = self.shown_default
        return out


class Record(Type):
    """A mapping with known keys: unknown keys are errors with a did-you-mean."""

    expected = "a mapping (key: value lines)"
    kinds = (dict,)

    def __init__(self, description: str, fields: Dict[str, Field], title: str = "",
                 elsewhere: Optional[Dict[str, str]] = None, extensions: bool = False):
        super().__init__(description)
        self.fields, self.title = fields, title
        self.elsewhere = elsewhere or {}   # key -> where it belongs instead (a hint)
        self.extensions = extensions       # keys starting with x- are free (anchors live there)

    def check(self, value, path, ck):
        if not isinstance(value, dict):
            return self.wrong_type(value, path, ck)
        out: Dict[str, Any] = {}
        for key, item in value.items():
            if key not in self.fields:
                if not (self.extensions and key.startswith("x-")):
                    self.unknown_key(key, path, ck)
                continue
            out[key] = self.fields[key].type.check(item, path + (key,), ck)
        for key, fld in self.fields.items():
            if key in value:
                continue
            if fld.required:
                ck.error(path, f"missing required key {key!r}")
                out[key] = INVALID
            else:
                out[key] = None if fld.default is _NO_DEFAULT else copy.copy(fld.default)
        return out

    def defaults(self) -> Dict[str, Any]:
        """What ``check`` gives for an empty mapping (when no key is required)."""
        return {k: None if f.default is _NO_DEFAULT else copy.copy(f.default)
                for k, f in self.fields.items()}

    def unknown_key(self, key: str, path: Path, ck: Checker) -> None:
        if key in self.elsewhere:
            message = f"{key!r} {self.elsewhere[key]}"
        else:
            hint = did_you_mean(key, list(self.fields))
            message = "unknown key" + (hint or f"; expected one of: {one_of_text(list(self.fields))}")
            if self.title:
                message = message.replace("unknown key", f"unknown key for {self.title}", 1)
        ck.error(path + (key,), message, key=True)

    def body(self):
        out: Dict[str, Any] = {"type": "object",
                               "properties": {k: f.schema() for k, f in self.fields.items()}}
        required = [k for k, f in self.fields.items() if f.required]
        if required:
            out["required"] = required
        if self.extensions:
            out["patternProperties"] = {"^x-": {"description": "Free for your own use, such as "
                                                              "YAML anchors to reuse."}}
        out["additionalProperties"] = False
        return out


class MapOf(Type):
    """A mapping from names (checked by ``key``) to values of one type."""

    expected = "a mapping (name: value lines)"
    kinds = (dict,)

    def __init__(self, description: str, key: Text, value: Type):
        super().__init__(description)
        self.key, self.value = key, value

    def check(self, value, path, ck):
        if not isinstance(value, dict):
            return self.wrong_type(value, path, ck)
        out = {}
        for name, item in value.items():
            if self.key.regex and not self.key.regex.match(name):
                ck.error(path + (name,), f"{name!r} {self.key.pattern_help}", key=True)
                continue
            out[name] = self.value.check(item, path + (name,), ck)
        return out

    def body(self):
        return {"type": "object", "propertyNames": {"pattern": self.key.pattern},
                "additionalProperties": self.value.schema()}


class Variants(Type):
    """A mapping that is one of several records, told apart by which action key it has
    (exactly one).  Keys shared by all variants are in ``common``."""

    expected = "a mapping (key: value lines)"
    kinds = (dict,)

    def __init__(self, description: str, noun: str, common: Dict[str, Field],
                 variants: Dict[str, Tuple[str, Dict[str, Field]]]):
        super().__init__(description)
        self.noun = noun
        self.actions = list(variants)
        owner: Dict[str, List[str]] = {}
        for action, (_, fields) in variants.items():
            for key in fields:
                owner.setdefault(key, []).append(action)
        self.records: Dict[str, Record] = {}
        for action, (text, fields) in variants.items():
            elsewhere = {k: f"belongs to {' and '.join(a + ' ' + noun + 's' for a in acts)}, "
                            f"not to {action} {noun}s"
                         for k, acts in owner.items() if k not in fields and k not in self.actions}
            self.records[action] = Record(text, {action: fields[action], **common,
                                                 **{k: v for k, v in fields.items() if k != action}},
                                          title=f"a {action} {noun}", elsewhere=elsewhere)

    def action_of(self, value: Dict[str, Any]) -> Optional[str]:
        present = [a for a in self.actions if a in value]
        return present[0] if len(present) == 1 else None

    def check(self, value, path, ck):
        if not isinstance(value, dict):
            return self.wrong_type(value, path, ck)
        present = [a for a in self.actions if a in value]
        if len(present) > 1:
            ck.error(path + (present[1],), f"a {self.noun} does one thing, and this one has both "
                                          f"{present[0]!r} and {present[1]!r}: make them two {self.noun}s",
                     key=True)
            return INVALID
        if not present:
            known = {k for record in self.records.values() for k in record.fields}
            for key in (k for k in value if k not in known):
                hint = did_you_mean(key, self.actions)
                if hint:
                    ck.error(path + (key,), "unknown key" + hint, key=True)
                    return INVALID
            ck.error(path, f"a {self.noun} needs one of: {one_of_text(self.actions)}")
            return INVALID
        out = self.records[present[0]].check(value, path, ck)
        if out is not INVALID:
            out["kind"] = present[0]
        return out

    def body(self):
        return {"type": "object", "oneOf": [r.schema() for r in self.records.values()]}

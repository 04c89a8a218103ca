"""Expectations and their evaluation against a step's results (pure: no I/O).

A step's results are one mapping per host: the program's JSON result plus the runner's
``exit_code``, ``elapsed``, ``timed_out``, ``host`` and ``output``.  Without an
aggregate, every host's value must pass; with one, the hosts' values are combined
first:

  max, min, mean, sum   numbers only; a host without the value fails the expectation
  spread                max - min (numbers only): spread(clients.started_at) is how far
                        apart the hosts' own clocks saw them start
  count                 hosts whose value is true (booleans) or present and not null;
                        count(step) alone is the number of hosts that ran it
  all, any              whether every / some host's value is truthy
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

from . import stats
from ..programs.shared.units import fmt_percent, is_number

_MISSING: Any = type("Missing", (), {"__repr__": lambda self: "missing"})()

SYMBOLS = {"equals": "==", "not": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
ORDERING = ("lt", "le", "gt", "ge", "between")

Verdict = Tuple[bool, Any, str]   # (passed, observed value, human detail)


class PerHost(dict):
    """An observed value that is one value per host (host -> value), as opposed to a
    value that is itself a mapping (like udp-measure's rtt_ms). JSON sees a dict."""


@dataclass(frozen=True)
class Position:
    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


def render(value: Any) -> str:
    """A value as an instructor would write it."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(render(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:g}" if abs(value) < 1e15 else repr(value)
    if isinstance(value, str):
        if len(value) > 80:
            value = value[:77] + "..."
        return value if value and re.match(r"^[\w.%:/+-]+$", value) else json.dumps(value)
    return str(value)


def lookup(result: Any, path: Tuple[str, ...]) -> Any:
    here = result
    for part in path:
        if isinstance(here, Mapping) and part in here:
            here = here[part]
        elif isinstance(here, (list, tuple)) and part.isdigit() and int(part) < len(here):
            here = here[int(part)]
        else:
            return _MISSING
    return here


def same(a: Any, b: Any) -> bool:
    """Equality that keeps booleans apart from numbers (True is not 1 here)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if is_number(a) and is_number(b):
        return a == b
    return type(a) is type(b) and a == b


def apply(op: str, observed: Any, expected: Any) -> Tuple[bool, str]:
    """(passed, why not) for one operator."""
    shown = render(observed)
    if op == "equals":
        return same(observed, expected), f"{shown}, expected {render(expected)}"
    if op == "not":
        return not same(observed, expected), f"{shown}, expected anything else"
    if op == "one_of":
        return any(same(observed, e) for e in expected), f"{shown} is not one of {render(expected)}"
    if op in ORDERING:
        if not is_number(observed):
            return False, f"{shown} is not a number"
        if op == "between":
            lo, hi = expected
            return lo <= observed <= hi, f"{shown} is not between {render(lo)} and {render(hi)}"
        ok = {"lt": observed < expected, "le": observed <= expected,
              "gt": observed > expected, "ge": observed >= expected}[op]
        return ok, f"{shown} is not {SYMBOLS[op]} {render(expected)}"
    if op == "contains":
        if isinstance(observed, str):
            return str(expected) in observed, f"the text does not contain {render(str(expected))}"
        if isinstance(observed, (list, tuple)):
            return any(same(item, expected) for item in observed), f"{shown} has no {render(expected)}"
        return False, f"{shown} is neither text nor a list"
    if op == "matches":
        if not isinstance(observed, str):
            return False, f"{shown} is not text"
        return re.search(expected, observed) is not None, f"no match for /{expected}/"
    raise ValueError(f"unknown operator {op!r}")


def _aggregate(name: str, values: Dict[str, Any]) -> Tuple[Any, str]:
    """(combined value or _MISSING, why it is missing)."""
    if name == "count":
        return sum(1 for v in values.values()
                   if (v is True) or (v is not _MISSING and v is not None and not isinstance(v, bool))), ""
    if name == "all":
        return all(v is not _MISSING and bool(v) for v in values.values()), ""
    if name == "any":
        return any(v is not _MISSING and bool(v) for v in values.values()), ""
    bad = [f"{host}: {render(v) if v is not _MISSING else 'missing'}"
           for host, v in values.items() if not is_number(v)]
    if bad:
        return _MISSING, f"{name} needs a number from every host, but {'; '.join(bad)}"
    numbers = list(values.values())
    if name == "max":
        return max(numbers), ""
    if name == "min":
        return min(numbers), ""
    if name == "sum":
        return sum(numbers), ""
    if name == "spread":
        return max(numbers) - min(numbers), ""
    return sum(numbers) / len(numbers), ""   # mean


@dataclass(frozen=True)
class Expectation:
    """One test of one step's results.  ``value`` is in the field's unit (durations are
    ms for *_ms fields and seconds for *_s and elapsed; percentages are fractions, and
    the loss of consistent_with_loss too); ``between`` and ``one_of`` hold tuples."""

    step: str
    path: Tuple[str, ...]
    aggregate: Optional[str]
    op: str
    value: Any
    position: Position
    text: str
    confidence: float = 0.99       # consistent_with_loss only

    @property
    def field(self) -> str:
        ref = ".".join((self.step, *self.path))
        return f"{self.aggregate}({ref})" if self.aggregate else ref

    def to_dict(self) -> Dict[str, Any]:
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        out = {"text": self.text, "step": self.step, "path": ".".join(self.path),
               "aggregate": self.aggregate, "op": self.op, "value": value,
               "position": str(self.position)}
        if self.op == "consistent_with_loss":
            out["confidence"] = self.confidence
        return out

    def evaluate(self, results_by_host: Mapping[str, Mapping[str, Any]]) -> Verdict:
        """(passed, observed, detail) for the step's results, one mapping per host."""
        if not results_by_host:
            return False, None, f"step {self.step!r} has no results"
        if self.op == "consistent_with_loss":
            return self._loss(results_by_host)
        values = {host: lookup(result, self.path) for host, result in results_by_host.items()}
        if self.aggregate == "count" and not self.path:
            values = {host: True for host in results_by_host}
        if self.aggregate:
            combined, why = _aggregate(self.aggregate, values)
            label = f"{self.aggregate} over {len(values)} host{'s' * (len(values) != 1)}"
            if combined is _MISSING:
                return False, None, why
            ok, why = apply(self.op, combined, self.value)
            return ok, combined, f"{label} = {render(combined)}" + ("" if ok else f": {why}")
        failures = []
        for host, value in values.items():
            if value is _MISSING:
                failures.append(f"{host}: no {'.'.join(self.path) or 'result'}")
                continue
            ok, why = apply(self.op, value, self.value)
            if not ok:
                failures.append(f"{host}: {why}")
        shown = PerHost((h, (None if v is _MISSING else v)) for h, v in values.items())
        observed = next(iter(shown.values())) if len(shown) == 1 else shown
        if failures:
            return False, observed, "; ".join(failures)
        if len(shown) == 1:
            return True, observed, render(observed)
        numbers = [v for v in shown.values() if is_number(v)]
        spread = f" (min {render(min(numbers))}, max {render(max(numbers))})" if numbers else ""
        return True, observed, f"all {len(shown)} hosts pass{spread}"

    def _loss(self, results_by_host: Mapping[str, Mapping[str, Any]]) -> Verdict:
        counts: Dict[str, Tuple[int, int]] = {}
        failures: List[str] = []
        for host, result in results_by_host.items():
            value = lookup(result, self.path)
            sent = lookup(value, ("sent",)) if isinstance(value, Mapping) else _MISSING
            received = lookup(value, ("received",)) if isinstance(value, Mapping) else _MISSING
            if not (isinstance(sent, int) and isinstance(received, int)) or isinstance(sent, bool):
                failures.append(f"{host}: no sent/received counts")
            else:
                counts[host] = (sent, received)
        if failures:
            return False, None, "; ".join(failures)
        if self.aggregate == "sum":
            counts = {"all hosts": (sum(s for s, _ in counts.values()), sum(r for _, r in counts.values()))}
        observed, details, passed = {}, [], True
        for host, (sent, received) in counts.items():
            ok, loss, detail = self._loss_one(sent, received)
            passed = passed and ok
            observed[host] = loss
            details.append(detail if len(counts) == 1 else f"{host}: {detail}")
        shown = next(iter(observed.values())) if len(observed) == 1 else observed
        return passed, shown, "; ".join(details)

    def _loss_one(self, sent: int, received: int) -> Tuple[bool, Optional[float], str]:
        if sent <= 0:
            return False, None, "nothing was sent"
        if not 0 <= received <= sent:
            return False, None, f"received {received} of {sent}: not a count of distinct replies"
        lo, hi = stats.acceptance_interval(sent, 1 - self.value, self.confidence)
        loss = 1 - received / sent
        low, high = stats.clopper_pearson(sent - received, sent, self.confidence)
        conf = f"{self.confidence * 100:g}%"
        ok = lo <= received <= hi
        detail = (f"received {received} of {sent} (loss {loss:.2%}, {conf} interval "
                  f"{low:.2%}..{high:.2%}); {fmt_percent(self.value * 100)} loss allows "
                  f"{lo}..{hi} received")
        return ok, round(loss, 6), detail

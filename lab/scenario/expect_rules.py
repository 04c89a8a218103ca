"""Expectations against the steps they name: the step must be an earlier-defined run
step, the field must exist when the step runs one of the lab's programs, units convert
to the field's unit, and operators must fit their aggregate.

A mixin of the builder in validate.py.
"""
from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Tuple

from . import results
from .expect import ORDERING, SYMBOLS, Expectation, render
from ..programs.shared.fieldtypes import INVALID, did_you_mean
from .model import RunStep
from ..programs.shared.problems import Path


class ExpectRules:
    # --- expectations ------------------------------------------------------------------------

    def build_expectations(self) -> List[Expectation]:
        out: List[Expectation] = []
        for i, e in enumerate(self.data["expect"] or []):
            if e is INVALID:
                continue
            key = e["key"]
            path = ("expect", i, key)
            step = self.expected_step(e["step"], path)
            if step is INVALID:
                continue
            program = step.program if isinstance(step, RunStep) else None
            problem = results.check_path(program, e["path"])
            if problem:
                self.error(path, problem, key=True)
                continue
            for op, value, raw in e["tests"]:
                built = self.expectation(e, op, value, raw, path)
                if built is not None:
                    out.append(built)
        return out

    def expected_step(self, name: str, path: Path) -> Any:
        if name in self.by_name:
            index, step = self.by_name[name]
            if step is not None and not isinstance(step, RunStep):
                self.error(path, f"{name!r} (steps[{index}]) is a {step.kind} step: only run steps "
                                 "have results", key=True)
                return INVALID
            return step
        if name in self.all_names:        # a step with problems of its own: already reported
            return None
        self.error(path, f"no step is named {name!r}{did_you_mean(name, self.run_names())}", key=True)
        return INVALID

    def expectation(self, e: Dict[str, Any], op: str, value: Any, raw: Any, path: Path) -> Optional[Expectation]:
        if value is INVALID or e["confidence"] is INVALID:
            return None
        aggregate, field_path, key = e["aggregate"], e["path"], e["key"]
        op_path = path + (op,) if isinstance(self.doc_value(path), dict) else path
        if op == "consistent_with_loss":
            if aggregate not in (None, "sum"):
                self.error(path, f"consistent_with_loss works per host, or on pooled counts with "
                                 f"sum(...), not with {aggregate}", key=True)
                return None
            value = value / 100
        elif not field_path and aggregate != "count":
            self.error(path, f"name a field to test: {e['step']}.FIELD (for example "
                             f"{e['step']}.exit_code)", key=True)
            return None
        elif op in ORDERING and aggregate in ("all", "any"):
            self.error(op_path, f"{aggregate}(...) is true or false: compare it with equals", key=op_path != path)
            return None
        elif op in ORDERING:
            value = self.in_field_unit(value, field_path, op_path)
            if value is None:
                return None
        elif op in ("equals", "not", "one_of") and field_path == ("error",):
            if not self.check_error_names(value, op_path):
                return None
        if op == "between":
            if value[0] > value[1]:
                self.error(op_path, f"between [{render(raw[0])}, {render(raw[1])}]: the low end comes first")
                return None
        confidence = e["confidence"] / 100 if e["confidence"] is not None else 0.99
        shown = json.dumps(raw) if op in ("contains", "matches") and isinstance(raw, str) else render(raw)
        text = f"{key} {SYMBOLS.get(op, op)} {shown}"
        if op == "consistent_with_loss" and e["confidence"] is not None:
            text += f" (confidence {render(confidence * 100)}%)"
        return Expectation(step=e["step"], path=field_path, aggregate=aggregate, op=op,
                           value=tuple(value) if isinstance(value, list) else value,
                           position=self.position(path, key=True), text=text, confidence=confidence)

    def doc_value(self, path: Path) -> Any:
        here = self.doc.data
        for part in path:
            here = here[part]
        return here

    def in_field_unit(self, value: Any, field_path: Tuple[str, ...], path: Path) -> Any:
        """A Measure (kind, number) or a list of them -> numbers in the field's unit."""
        if isinstance(value, list):
            converted = [self.in_field_unit(v, field_path, path) for v in value]
            return None if None in converted else converted
        kind, number = value
        unit = results.unit_of(field_path)
        if kind == "duration":
            if unit is None:
                self.error(path, f"a duration needs a field in milliseconds (*_ms) or seconds "
                                 f"(*_s, elapsed); {'.'.join(field_path)} has no time unit")
                return None
            return number * 1000 if unit == "ms" else number
        if kind == "percent":
            if unit is not None:
                self.error(path, f"{'.'.join(field_path)} is in {'milliseconds' if unit == 'ms' else 'seconds'}, "
                                 "not a fraction: compare it with a duration or a number")
                return None
            return number / 100
        return number

    def check_error_names(self, value: Any, path: Path) -> bool:
        for name in (value if isinstance(value, list) else [value]):
            if isinstance(name, str) and name not in results.ERROR_NAMES:
                hint = did_you_mean(name, sorted(results.ERROR_NAMES))
                if hint:
                    self.error(path, f"{name!r} is not an error name the programs report{hint}")
                    return False
        return True

"""What a scenario run produced, as plain data."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ExpectationResult:
    text: str            # as written in the file, e.g. "probe.delivery: {between: [0.85, 0.95]}"
    position: str        # FILE:LINE:COL
    passed: bool
    observed: Any
    detail: str


@dataclass
class RunReport:
    scenario: str
    description: str
    source: str
    lab: str
    seed: int | None
    started: str                       # ISO time
    duration_s: float = 0.0
    expectations: list[ExpectationResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)      # the run itself went wrong (ready timeout, ...)
    backends: dict[str, dict[str, str]] = field(default_factory=dict)
    artifacts: str = ""
    results: dict[str, dict[str, dict]] = field(default_factory=dict)   # step -> host -> result

    @property
    def passed(self) -> bool:
        return not self.errors and all(e.passed for e in self.expectations)

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def as_dict(self, with_output: bool = False) -> dict:
        data = asdict(self)
        data["passed"] = self.passed
        if not with_output:  # raw output is in the artifacts; keep the JSON readable
            for hosts in data["results"].values():
                for result in hosts.values():
                    result.pop("output", None)
        return data

"""What a scenario run produced, as plain data."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..programs.shared.errors import EXIT_BAD_INPUT, EXIT_ENVIRONMENT, EXIT_FAILED, EXIT_OK


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
    # What kind of trouble the errors are: "" (the scenario's programs: exit 1), "input" (the
    # file is invalid: exit 2), "environment" (engine, image, router: exit 3), "interrupted".
    error_kind: str = ""
    skipped: str = ""                  # why it was not run at all (another file was invalid, ...)
    # Where packets were dropped during the steps (report/drops.py): {"router": {link: {field: n}},
    # "hosts": {host: {"Udp.RcvbufErrors": n, ...}}}, only what moved; empty if not read.
    drops: dict = field(default_factory=dict)

    @classmethod
    def not_run(cls, source: str, why: str = "", errors: list[str] = (), error_kind: str = "",
                name: str = "") -> "RunReport":
        """The report of a file that did not run to its end: invalid or broken (errors),
        or skipped (why). Named after the scenario, or the file if it has no valid name."""
        from datetime import datetime, timezone
        from pathlib import Path
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        return cls(name or Path(source).stem, "", str(source), "", None, started, errors=list(errors),
                   error_kind=error_kind, skipped="" if errors else why)

    @property
    def passed(self) -> bool:
        return not self.errors and not self.skipped and all(e.passed for e in self.expectations)

    @property
    def exit_code(self) -> int:
        if self.passed:
            return EXIT_OK
        return {"input": EXIT_BAD_INPUT, "environment": EXIT_ENVIRONMENT}.get(self.error_kind, EXIT_FAILED)

    def as_dict(self, with_output: bool = False) -> dict:
        data = asdict(self)
        data["passed"] = self.passed
        if not with_output:  # raw output is in the artifacts; keep the JSON readable
            for hosts in data["results"].values():
                for result in hosts.values():
                    result.pop("output", None)
        return data

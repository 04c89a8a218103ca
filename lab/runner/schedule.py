"""A scenario's steps as a time-ordered list of events (pure: no Docker, no clock).

A run step on N hosts becomes N start events (spread by `stagger`); a step with
`ready` adds a gate after its last start that holds every later event.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..scenario import RunStep, Scenario, Step


@dataclass(frozen=True)
class Event:
    at_s: float
    step: Step
    action: str              # start | gate | step
    host: str | None = None

    def describe(self) -> str:
        if self.action == "start":
            return f"{self.step.name} on {self.host}"
        if self.action == "gate":
            return f"{self.step.name}: waiting for {self.step.ready!r}"
        return f"{self.step.name} ({self.step.kind})"


def events(scenario: Scenario) -> list[Event]:
    out: list[tuple[float, int, int, Event]] = []
    for step in scenario.steps:
        if isinstance(step, RunStep):
            for order, host in enumerate(step.hosts):
                at = step.start_offset_s(host)
                out.append((at, step.index, order, Event(at, step, "start", host)))
            if step.ready:
                last = max(step.start_offset_s(h) for h in step.hosts)
                out.append((last, step.index, len(step.hosts), Event(last, step, "gate")))
        else:
            out.append((step.at_s, step.index, 0, Event(step.at_s, step, "step")))
    return [event for *_, event in sorted(out, key=lambda item: item[:3])]


def end_of_waits(scenario: Scenario) -> float:
    """The scenario does not end before every `wait` is over."""
    from ..scenario import WaitStep
    return max([s.at_s + s.duration_s for s in scenario.steps if isinstance(s, WaitStep)], default=0.0)

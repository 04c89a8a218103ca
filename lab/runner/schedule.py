"""A scenario's steps as a time-ordered list of events (pure: no Docker, no clock).

A run step on N hosts becomes N start events (spread by `stagger`); a `together`
step adds a release event after them (the start barrier: every host held, then let go
at once); a step with `ready` adds a gate after its last start (and release) that
holds every later event. The times are minimums: the player keeps each gap after an
event that came late (StepPlayer.slip), and a step with `after` waits for that step.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..scenario import RunStep, Scenario, Step


@dataclass(frozen=True)
class Event:
    at_s: float
    step: Step
    action: str              # start | release | gate | step
    host: str | None = None
    group: tuple = ()        # a release: every together step it lets go (same `at`)

    def describe(self) -> str:
        if self.action == "start":
            return f"{self.step.name} on {self.host}"
        if self.action == "release":
            return f"{', '.join(s.name for s in self.group)}: releasing their hosts together"
        if self.action == "gate":
            return f"{self.step.name}: waiting for {self.step.ready!r}"
        return f"{self.step.name} ({self.step.kind})"


AFTER_STARTS = 1 << 20      # sorts a group's release (and its gates) after every start of the group


def group_key(step: RunStep) -> tuple:
    """Together steps with the same `at` and the same `after` are released at one moment."""
    return (step.at_s, step.after)


def together_groups(scenario: Scenario) -> dict[tuple, tuple[RunStep, ...]]:
    """`together` steps by group_key, in the order of the file."""
    groups: dict[tuple, list[RunStep]] = {}
    for step in scenario.steps:
        if isinstance(step, RunStep) and step.together:
            groups.setdefault(group_key(step), []).append(step)
    return {key: tuple(steps) for key, steps in groups.items()}


def events(scenario: Scenario) -> list[Event]:
    out: list[tuple[float, int, int, Event]] = []
    groups = together_groups(scenario)
    for (at, _), group in groups.items():
        last = group[-1]
        out.append((at, last.index, AFTER_STARTS, Event(at, last, "release", group=group)))
    for step in scenario.steps:
        if isinstance(step, RunStep):
            for order, host in enumerate(step.hosts):
                at = step.start_offset_s(host)
                out.append((at, step.index, order, Event(at, step, "start", host)))
            last = max(step.start_offset_s(h) for h in step.hosts)
            if step.ready and step.together:     # not before the group's release
                group = groups[group_key(step)]
                out.append((last, group[-1].index, AFTER_STARTS + 1 + step.index, Event(last, step, "gate")))
            elif step.ready:
                out.append((last, step.index, len(step.hosts), Event(last, step, "gate")))
        else:
            out.append((step.at_s, step.index, 0, Event(step.at_s, step, "step")))
    return [event for *_, event in sorted(out, key=lambda item: item[:3])]


def end_of_waits(scenario: Scenario) -> float:
    """The scenario does not end before every `wait` is over."""
    from ..scenario import WaitStep
    return max([s.at_s + s.duration_s for s in scenario.steps if isinstance(s, WaitStep)], default=0.0)

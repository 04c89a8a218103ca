"""The steps' rules: time order, unique names, references to earlier run steps, and the
state each step acts on (hosts stopped and started, links partitioned and healed), which
also gives every network step the full new state of the links it changes.

A mixin of the builder in validate.py (``_Builder``). What it needs of that class is
declared below as annotations, the whole contract: the builder's state it reads and
writes, and the helpers it calls. A unit test holds the mixin to it (every ``self.X``
used here is defined here or declared) and the builder to providing each.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

from ..programs.shared.impairment import Change, Impairment, Link, next_state
from . import results
from ..programs.shared.fieldtypes import INVALID, did_you_mean, valid
from .model import (HealStep, HostStep, ImpairStep, PartitionStep, RunStep, SignalStep, Step, WaitStep,
                    frozen_map)
from ..programs.shared.problems import Path
from ..programs.shared.units import fmt_seconds

DEFAULT_TIMEOUT_S = 60.0


class StepRules:
    # --- what the builder provides (validate._Builder) ----------------------------------
    data: Dict[str, Any]                               # the checked document
    steps: List[Step]                                  # built steps, appended here
    by_name: Dict[str, Tuple[int, Optional[Step]]]     # step name -> (index, step or None)
    all_names: Dict[str, int]                          # every name as written -> index
    state: Dict[Link, Impairment]                      # links' impairments so far
    partitioned: Dict[Link, int]                       # link -> step that partitioned it
    stopped: Dict[str, int]                            # host -> step that stopped it
    error: Callable[..., None]                          # (path, message, key=False)
    position: Callable[..., Any]                       # (path, key=False) -> expect.Position
    given: Callable[[Path], bool]                      # was the field written in the file?
    expand_hosts: Callable[..., Optional[Tuple[str, ...]]]  # (value, path, running=True)
    links: Callable[[Any, Path], Optional[List[Link]]]
    impairment: Callable[[Dict[str, Any], Path], Optional[Impairment]]

    # --- steps -----------------------------------------------------------------------------

    def build_steps(self) -> None:
        previous_at: Optional[float] = None
        for i, s in enumerate(self.data["steps"] or []):
            path = ("steps", i)
            if s is INVALID:
                self.by_name.setdefault(self._raw_name(i), (i, None))
                continue
            at = s["at"]
            if at is not INVALID:
                if previous_at is not None and at < previous_at:
                    self.error(path + ("at",), f"{fmt_seconds(at)} is before the previous step's "
                                               f"{fmt_seconds(previous_at)}: list steps in time order")
                previous_at = at
            name = s["name"] if s["name"] is not None else f"step-{i}"
            if name is not INVALID and name in self.by_name:
                self.error(path + ("name",) if s["name"] else path,
                           f"step name {name!r} is already used by steps[{self.by_name[name][0]}]")
                name = INVALID
            step = self.build_step(s, i, path, at, name)
            if name is not INVALID:
                self.by_name[name] = (i, step)
            if step is not None:
                self.steps.append(step)

    def run_names(self) -> List[str]:
        return [n for n, (_, step) in self.by_name.items() if isinstance(step, RunStep)]

    def _raw_name(self, i: int) -> str:
        return next((n for n, j in self.all_names.items() if j == i), f"step-{i}")

    def build_step(self, s: Dict[str, Any], i: int, path: Path, at: Any, name: Any) -> Optional[Step]:
        kind = s["kind"]
        after = self.step_after(s, path)
        base = dict(index=i, at_s=at, name=name, position=self.position(path), after=after)
        built: Any = getattr(self, f"step_{kind}")(s, path + (kind,), path)
        if built is None or not valid(at, name, after):
            return None
        cls, extra = built
        return cls(**base, **extra)

    def step_after(self, s, path) -> Any:
        """`after`: the name of an earlier step (None when not given)."""
        name = s.get("after")
        if name is None or name is INVALID:
            return name
        if name not in self.by_name:
            if name in self.all_names:
                self.error(path + ("after",), f"{name!r} (steps[{self.all_names[name]}]) is not earlier "
                                              "than this step")
            else:
                self.error(path + ("after",), f"no step is named {name!r}"
                                              f"{did_you_mean(name, list(self.by_name))}")
            return INVALID
        return name

    def step_run(self, s, path, step_path):
        hosts = self.expand_hosts(s["on"], step_path + ("on",))
        if s.get("together") and self.given(step_path + ("stagger",)):
            self.error(step_path + ("together",), "together starts every host at one moment: "
                                                  "leave out stagger", key=True)
            return None
        if self.given(step_path + ("ready_timeout",)) and s["ready"] is None:
            self.error(step_path + ("ready_timeout",), "ready_timeout goes with ready", key=True)
        if not valid(s["run"], s["background"], s["stagger"], s["timeout"], s["ready"], s["ready_timeout"]) \
                or hosts is None:
            return None
        timeout = s["timeout"] if s["timeout"] is not None else (None if s["background"] else DEFAULT_TIMEOUT_S)
        return RunStep, dict(hosts=hosts, command=s["run"], background=s["background"],
                             stagger_s=s["stagger"], timeout_s=timeout, ready=s["ready"],
                             ready_timeout_s=s["ready_timeout"], program=results.program_of(s["run"]),
                             together=bool(s.get("together")))

    def step_impair(self, s, path, step_path):
        entry = s["impair"]
        if entry is INVALID:
            return None
        links = self.links(entry["link"], path + ("link",))
        imp = self.impairment(entry, path)
        if links is None or imp is None:
            return None
        self.state = next_state(self.state, Change(impair={link: imp for link in links}))
        changes = {link: self.state.get(link, Impairment()) for link in links}
        return ImpairStep, dict(impairments=frozen_map(changes))

    def step_partition(self, s, path, step_path, heal: bool = False):
        links = self.links(s["heal" if heal else "partition"], path)
        if links is None:
            return None
        index = step_path[1]
        changed, wrong = [], []
        for link in links:
            if heal and link not in self.partitioned:
                wrong.append(str(link))
            elif not heal and link in self.partitioned:
                wrong.append(f"{link} (by steps[{self.partitioned[link]}])")
            else:
                changed.append(link)
        if not changed:         # a pair heals (or cuts) whichever direction needs it
            self.error(path, f"{' and '.join(wrong)} {'is' if len(wrong) == 1 else 'are'} "
                             + ("not partitioned at this time" if heal else "already partitioned"))
            return None
        change = Change(heal=tuple(changed)) if heal else Change(partition=tuple(changed))
        self.state = next_state(self.state, change)
        for link in changed:
            if heal:
                self.partitioned.pop(link, None)
            else:
                self.partitioned[link] = index
        changes = {link: self.state.get(link, Impairment()) for link in changed}
        return (HealStep if heal else PartitionStep), dict(links=tuple(changed), impairments=frozen_map(changes))

    def step_heal(self, s, path, step_path):
        return self.step_partition(s, path, step_path, heal=True)

    def step_signal(self, s, path, step_path, action):
        value = s[action]
        if value is INVALID:
            return None
        items = [(value, path)] if isinstance(value, str) else [(v, path + (i,)) for i, v in enumerate(value)]
        targets, ok = [], True
        for name, ipath in items:
            if name is INVALID:
                ok = False
                continue
            if name not in self.by_name:
                ok = False
                if name in self.all_names:
                    self.error(ipath, f"{name!r} (steps[{self.all_names[name]}]) is not earlier than this step")
                else:
                    self.error(ipath, f"no step is named {name!r}{did_you_mean(name, self.run_names())}")
                continue
            index, target = self.by_name[name]
            if target is not None and not isinstance(target, RunStep):
                self.error(ipath, f"{name!r} (steps[{index}]) is a {target.kind} step: "
                                  "only run steps have processes")
                ok = False
                continue
            if action == "restart" and isinstance(target, RunStep):
                stopped = [h for h in target.hosts if h in self.stopped]
                if stopped:
                    self.error(ipath, f"cannot run {name!r} again: {', '.join(stopped)} is stopped")
                    ok = False
                    continue
            targets.append(name)
        return (SignalStep, dict(action=action, targets=tuple(targets))) if ok else None

    def step_stop(self, s, path, step_path):
        return self.step_signal(s, path, step_path, "stop")

    def step_kill(self, s, path, step_path):
        return self.step_signal(s, path, step_path, "kill")

    def step_restart(self, s, path, step_path):
        return self.step_signal(s, path, step_path, "restart")

    def step_host(self, s, path, step_path):
        value = s["host"]
        if value is INVALID:
            return None
        action = value["kind"]
        hpath = path + (action,)
        hosts = self.expand_hosts(value[action], hpath, running=False)
        if hosts is None:
            return None
        ok = True
        for host in hosts:
            if host == "router":
                self.error(hpath, "the router carries the impairments and cannot be stopped or "
                                  "restarted; to cut networks apart use partition")
                ok = False
            elif action == "start" and host not in self.stopped:
                self.error(hpath, f"{host} is running at this time: start is for a host a step stopped")
                ok = False
            elif action in ("stop", "restart") and host in self.stopped:
                self.error(hpath, f"{host} is already stopped (by steps[{self.stopped[host]}])"
                                  + ("; use start" if action == "restart" else ""))
                ok = False
        if not ok:
            return None
        for host in hosts:
            if action == "stop":
                self.stopped[host] = step_path[1]
            elif action == "start":
                self.stopped.pop(host, None)
        return HostStep, dict(action=action, hosts=hosts)

    def step_wait(self, s, path, step_path):
        if s["wait"] is INVALID:
            return None
        return WaitStep, dict(duration_s=s["wait"])

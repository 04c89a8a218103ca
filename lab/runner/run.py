"""`lab run`: build the scenario's lab, play its steps, judge it, tear it down.

Order of work, and why:
1. Probe the kernel in a throwaway container and plan every impairment state of the
   steps, so an impairment this machine cannot apply is refused before any lab
   exists (exit 2), never silently skipped.
2. Bring the lab up, put the t=0 impairments on the router, start captures.
3. Play the events (schedule.py) at their times, as minimums: an event that came
   late (a slow `docker exec` on a busy machine) moves every later one by as much,
   so no gap the scenario wrote is ever shortened; `after` waits for a step's end;
   `together` steps are released at one moment (the start barrier). Check the
   impairer is alive at every event (it fails open, so a dead impairer must not pass
   silently).
4. Wait for foreground steps, stop background ones, collect results, evaluate.
5. Always tear down (also on Ctrl-C and errors), unless --keep.
"""
from __future__ import annotations

import secrets
import string
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..programs.shared.errors import LabEnvironmentError
from ..programs.shared import backends
from ..programs.shared.impairment import Capabilities, Change, Impairment, Link, next_state
from ..impairments.router import ImpairerDied, RouterImpairmentError
from ..concurrency import run_all
from ..report import drops, plots
from ..report.model import ExpectationResult, RunReport
from ..scenario import HostStep, RouterStep, RunStep, Scenario, SignalStep, WaitStep
from ..running import RunningLab
from . import oom
from .artifacts import RunFolder, safe_name
from .pages import write_pages
from .processes import StepProcess, last_json_object, result_of
from .schedule import Event, end_of_waits, events, group_key

SIGNALS = {"stop": "TERM", "kill": "KILL"}
IMPAIRER_CHECK_S = 1.0   # between looks at the impairer during play (changes and the end look too)
HOLD_LIMIT_S = 120.0     # for every host of a together step to be held at the barrier
AFTER_LIMIT_S = 300.0    # for a step named by `after` that has no timeout (a background step)
RELEASE_DIR = ".socketlab-release"   # in the lab's shared folder (/work in every host)
COUNTED_HOSTS = 16     # hosts whose own counters are read (a bigger lab: those with steps, and servers)


@dataclass
class RunOptions:
    runs_dir: Path = Path("runs")
    work_dir: Path = Path("work")
    seed: int | None = None
    keep: bool = False
    progress: callable = print


class RunError(Exception):
    """The run itself could not go on (a ready text never came, a host vanished)."""


def lab_name_for(scenario: Scenario) -> str:
    """`r` + 6 random letters/digits + the scenario's name, at most 24 characters: unique
    among runs started at the same moment, in one process or many (36^6 names; a clash
    anyway is refused by the engine, never shared)."""
    token = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(6))
    return f"r{token}-{scenario.name}"[:24].rstrip("-")


def impairment_states(scenario: Scenario) -> list[dict[Link, Impairment]]:
    """Every state the router will be in: at t=0, then after each changing step."""
    state = next_state({}, Change.replace_all(scenario.impairments))
    states = [state]
    for step in scenario.steps:
        if isinstance(step, RouterStep):
            state = next_state(state, step.change)
            states.append(state)
    return states


def check_plans(scenario: Scenario, caps: Capabilities) -> dict[str, dict[str, str]]:
    """Plan every state with this kernel's abilities; refuse what cannot be applied."""
    ifnames = {net: f"eth{i}" for i, net in enumerate(scenario.topology.all_networks)}
    table: dict[str, dict[str, str]] = {}
    for state in impairment_states(scenario):
        try:
            plan = backends.plan(state, ifnames, caps)
        except backends.UnsupportedImpairment as exc:
            raise LabEnvironmentError(f"{scenario.source}: this machine cannot apply an impairment of the "
                           f"scenario: {exc}", hint="`lab doctor` shows what each impairment uses here") from None
        for link, kinds in plan.backend_table().items():
            table.setdefault(link, {}).update(kinds)
    return table


def run_scenario(scenario: Scenario, opts: RunOptions) -> RunReport:
    from ..impairments.kernel import probe_kernel

    say = opts.progress
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    probe = None   # the kernel is probed once per lab: here, and the router's agent keeps it
    if scenario.impairments or any(isinstance(s, RouterStep) for s in scenario.steps):
        say("probing the kernel's impairment abilities …")
        probe = probe_kernel()
        backend_table = check_plans(scenario, Capabilities.from_probe(probe))
    else:
        backend_table = {}
    folder = RunFolder(opts.runs_dir, scenario.name)
    folder.write_json("scenario.json", scenario.resolved_dict())
    report = RunReport(scenario.name, scenario.description, scenario.source, lab_name_for(scenario),
                       opts.seed, started, backends=backend_table, artifacts=str(folder.path))
    opts.work_dir.mkdir(parents=True, exist_ok=True)
    # Ephemeral: a run killed with -9 leaves a lab that the next `lab` command removes.
    # --keep asks for the lab to outlive the run: a class lab then, until `lab down`.
    lab = RunningLab.plan(scenario.topology.lab_spec(report.lab), opts.work_dir, ephemeral=not opts.keep,
                          seed=opts.seed, caps=probe)
    began = time.monotonic()
    router = player = None
    try:
        say(f"bringing up lab {report.lab} …")
        lab.up(progress=say)
        router = lab.router
        router.apply(dict(scenario.impairments))
        if scenario.capture:
            router.start_capture()
        counters = _read_counters(scenario, lab, router, say)
        player = StepPlayer(scenario, lab, router, say)
        # Ctrl-C or SIGTERM (KeyboardInterrupt, not an Exception) skips collecting, which
        # waits the running steps out: tearing down (below) ends them at once.
        try:
            player.play()
        except RunError as exc:
            report.errors.append(str(exc))
        except ImpairerDied as exc:
            report.errors.append(str(exc))
            report.error_kind = "environment"
        except Exception:
            _collect(scenario, player, router, lab, folder, report, counters)  # keep what ran
            raise
        _collect(scenario, player, router, lab, folder, report, counters)
    finally:
        report.duration_s = round(time.monotonic() - began, 3)
        if player is not None:
            player.remove_release_files()   # also after Ctrl-C, which skips finish()
        if opts.keep:
            say(f"--keep: lab {report.lab} stays up (impairments in place); `lab down {report.lab}` removes it")
        else:
            try:
                if router is not None:
                    router.close()  # stops the impairer, which reports its final counters
            except RouterImpairmentError as exc:
                report.errors.append(f"cleaning up the router: {exc}")
                report.error_kind = "environment"
            finally:
                lab.down()
    if router is not None:
        folder.write_json("engine.json", {"stopped_engines": router.impairer_final_stats})
    report.expectations = evaluate(scenario, report.results)
    folder.write_json("results.json", report.as_dict())
    if player is not None:
        _save_plots(folder, scenario, player, say)
    write_pages(folder, scenario, report, player, lab, router, say)
    return report


def _collect(scenario: Scenario, player: "StepPlayer", router, lab: RunningLab, folder: RunFolder,
             report: RunReport, counters: dict | None = None) -> None:
    """Wait for the steps to end, then keep their results, outputs, drops and captures."""
    player.finish()
    report.results = player.results()
    after = _read_counters(scenario, lab, router, player.say) if counters is not None else None
    if after is not None:
        report.drops = {"router": drops.router_deltas(counters["router"], after["router"]),
                        "hosts": drops.host_deltas(counters["hosts"], after["hosts"])}
    for step, host in oom.mark_oom_kills(report.results, lambda h: lab.exec(h, oom.READ_COUNTER).stdout):
        player.log(f"{step} on {host}: killed by the kernel's OOM killer (over the host's memory limit, "
                     f"{lab.topology.limits.memory // 2**20} MiB)")
    _save_outputs(folder, player, lab)
    if scenario.capture:
        for name, data in router.stop_capture().items():
            folder.write_bytes(f"captures/{safe_name(name)}.pcap", data)
    _check_impairer(router, report)


def _read_counters(scenario: Scenario, lab: RunningLab, router, say) -> dict | None:
    """The router's per-link counters and the hosts' /proc/net/snmp (report/drops.py), or
    None with a warning: the counters explain the results, they are not the run."""
    hosts = [h.name for h in lab.topology.hosts if h.role != "router"]
    if len(hosts) > COUNTED_HOSTS:
        stepped = {host for step in scenario.steps for host in getattr(step, "hosts", ())}
        hosts = [h.name for h in lab.topology.hosts if h.name in stepped or h.role == "server"]
    def snmp(host: str) -> str | None:
        try:
            r = lab.exec(host, ["cat", "/proc/net/snmp"])
            return r.stdout if r.exit_code == 0 else None   # an image of its own may lack cat
        except Exception:  # noqa: BLE001 - a host a step stopped: left out of the comparison
            return None

    try:
        links = router.counters()["links"]
        texts = run_all(lambda host=host: snmp(host) for host in hosts)
    except Exception as exc:  # noqa: BLE001 - any failure to read: say so, and go on
        say(f"warning: the drop counters could not be read ({type(exc).__name__}: {exc})")
        return None
    return {"router": links,
            "hosts": {host: drops.parse_snmp(text) for host, text in zip(hosts, texts) if text is not None}}


def _check_impairer(router, report: RunReport) -> None:
    """The impairer fails open, so a death during the run is a run error (said once)."""
    try:
        router.check_alive()
    except ImpairerDied as exc:
        report.error_kind = "environment"
        if str(exc) not in report.errors:
            report.errors.append(str(exc))


def evaluate(scenario: Scenario, results: dict[str, dict[str, dict]]) -> list[ExpectationResult]:
    out = []
    for exp in scenario.expectations:
        passed, observed, detail = exp.evaluate(results.get(exp.step, {}))
        out.append(ExpectationResult(exp.text, str(exp.position), passed, observed, detail))
    return out


def _save_outputs(folder: RunFolder, player: "StepPlayer", lab: RunningLab) -> None:
    for (step, host), proc in player.processes.items():
        # As the program printed it (bytes, binary too), bounded by the output cap.
        folder.write_bytes(f"outputs/{safe_name(step)}/{host}.txt", proc.outcome.raw)
        proc.outcome.raw = b""  # on disk now: not held a second time (many hosts may have flooded)
    for host in lab.topology.hosts:
        try:
            folder.write_text(f"logs/{host.name}.log", lab.logs(host.name))
        except Exception as exc:  # a stopped or vanished host: say so in its log file
            folder.write_text(f"logs/{host.name}.log", f"(no log: {exc})\n")


def _save_plots(folder: RunFolder, scenario: Scenario, player: "StepPlayer", say) -> None:
    """plots/STEP-HOST.png for every output with a udp-measure --timeline line. A plot
    that fails is a warning, not a run error: the results stand without it."""
    changes = plots.impairment_changes(scenario, player.applied)
    for (step, host), proc in player.processes.items():
        path = folder.path / "plots" / f"{safe_name(step)}-{host}.png"
        try:
            data = plots.find_timeline(proc.outcome.stdout)
            if data is None:
                continue
            plots.plot_timeline(path, f"{scenario.name}: step {step} on {host}", data,
                                start_s=_first_send_s(proc, player.t0), changes=changes)
        except Exception as exc:  # any failure to draw: say so, and go on
            say(f"warning: no plot for {step} on {host}: {type(exc).__name__}: {exc}")


def _first_send_s(proc: StepProcess, t0: float) -> float:
    """When udp-measure sent its first datagram, in seconds from t0: its output's end less
    its own duration_s. Its start (proc.started_at) is no good: step-exec's and Python's
    start-up inside the container come between, 0.1-0.6 s on a busy machine; the end is
    late only by the program's exit, a few tens of ms."""
    duration = last_json_object(proc.outcome.stdout).get("duration_s")
    if isinstance(duration, (int, float)) and proc.ended_at:
        return proc.ended_at - t0 - duration
    return proc.started_at - t0


class StepPlayer:
    """Plays a scenario's steps (as events, schedule.py) on a running lab."""

    def __init__(self, scenario: Scenario, lab: RunningLab, router, say):
        self.scenario, self.lab, self.router, self.say = scenario, lab, router, say
        self.processes: dict[tuple[str, str], StepProcess] = {}
        self.applied: dict[str, tuple[float, float]] = {}   # impairment step -> when applied (from t0)
        self.released: dict[str, float] = {}   # together step -> when its hosts were let go (from t0)
        self.t0 = 0.0
        self.slip = 0.0     # how late play runs: every event's time plus this (gaps are minimums)
        self._runs = 0
        self._release_files: list[Path] = []
        self._hold_paths: dict[str, str] = {}   # together step -> the release file of its next release

    def now(self) -> float:
        return time.monotonic() - self.t0

    def log(self, text: str) -> None:
        self.say(f"t+{self.now():6.2f}s  {text}")

    def play(self) -> None:
        self.t0 = time.monotonic()
        checked = 0.0
        waited: set[str] = set()
        for event in events(self.scenario):
            after = event.step.after
            if after and event.step.name not in waited:
                waited.add(event.step.name)
                self._wait_ended(event.step, after)
                self.slip = max(self.slip, self.now() - event.at_s)
            delay = event.at_s + self.slip - self.now()
            if delay > 0:
                time.sleep(delay)  # the schedule: wait for the event's time
            if time.monotonic() - checked >= IMPAIRER_CHECK_S:   # an exec when the impairer runs
                self.router.check_alive()
                checked = time.monotonic()
            self._do(event)
            # Late (the exec, the router, a ready text took long): later events keep their gaps.
            self.slip = max(self.slip, self.now() - event.at_s)

    def finish(self) -> None:
        """Wait for foreground steps, honour `wait`s, then stop background steps."""
        for (step_name, host), proc in list(self.processes.items()):
            step = self.scenario.step(step_name)
            if not step.background:
                limit = None if step.timeout_s is None else step.timeout_s + 15
                if not proc.wait(limit):
                    proc.signal("KILL")
                    proc.wait(10)
        remaining = end_of_waits(self.scenario) + self.slip - self.now()
        if remaining > 0:
            time.sleep(remaining)
        for proc in self.processes.values():
            if proc.running:
                proc.signal("TERM")
        for proc in self.processes.values():
            if not proc.wait(10):
                proc.signal("KILL")
                proc.wait(10)
        self.remove_release_files()
        self.log("all steps ended")

    def remove_release_files(self) -> None:
        """The start barrier's files in the shared folder: nothing of the run stays in /work."""
        for path in self._release_files:
            path.unlink(missing_ok=True)
        self._release_files = []

    def results(self) -> dict[str, dict[str, dict]]:
        out: dict[str, dict[str, dict]] = {}
        for (step, host), proc in self.processes.items():
            out.setdefault(step, {})[host] = result_of(host, proc.outcome)
        return out

    # --- events --------------------------------------------------------------

    def _do(self, event: Event) -> None:
        step = event.step
        if event.action == "start":
            self._start(step, event.host)
        elif event.action == "release":
            self._release(event.group, group_key(step))
        elif event.action == "gate":
            self._wait_ready(step)
        elif isinstance(step, RouterStep):
            self.log(f"{step.name}: {step.kind} {', '.join(str(l) for l in step.impairments)}")
            began = self.now()
            self.router.change(step.change)
            self.applied[step.name] = (began, self.now())
        elif isinstance(step, SignalStep):
            for target in step.targets:
                self._signal(target, step.action)
        elif isinstance(step, HostStep):
            for host in step.hosts:
                self._host(host, step.action)
        elif isinstance(step, WaitStep):
            self.log(f"{step.name}: wait {step.duration_s:g} s")

    def _start(self, step: RunStep, host: str, hold_key: tuple | None = None) -> None:
        self._runs += 1
        proc = self.lab.process(host, step.command, step.timeout_s, step=step.name,
                                run_id=f"{safe_name(step.name)}-{host}-{self._runs}", ready=step.ready)
        if step.together:
            proc.hold_at(self._release_path(hold_key or group_key(step)), in_program=step.program is not None)
        old = self.processes.get((step.name, host))
        if old is not None and old.running:
            raise RunError(f"{step.name} is still running on {host}")
        self.processes[(step.name, host)] = proc
        proc.start()
        self.log(f"{step.name} on {host}: {step.command}" + ("  (background)" if step.background else ""))

    # --- timing: after, the start barrier -------------------------------------------

    def _wait_ended(self, step, after: str) -> None:
        """`after`: hold the step until every process of the step named has ended."""
        target = self.scenario.step(after)
        procs = [p for (name, _), p in self.processes.items() if name == after]
        if not procs:
            return      # not a run step: it was done when play moved past it
        limit = AFTER_LIMIT_S if target.timeout_s is None else target.timeout_s + 15
        deadline = time.monotonic() + limit
        for proc in procs:
            if not proc.wait(max(0.0, deadline - time.monotonic())):
                raise RunError(f"{step.name}: {after} did not end within {limit:g} s; see {step.position}")
        self.log(f"{step.name}: {after} has ended")

    @property
    def _work_dir(self) -> Path | None:
        """The folder shared by every host as /work (None: a lab without one)."""
        return self.lab.docker.work_dir

    def _release_path(self, key: tuple) -> str:
        """The release file of a group of together steps, as their hosts see it."""
        if key not in self._hold_paths:     # one per release (a restart releases again)
            name = f"{self.lab.topology.lab}-{self._runs}"
            self._hold_paths[key] = (f"/work/{RELEASE_DIR}/{name}" if self._work_dir is not None
                                     else f"/tmp/socketlab/release-{name}")
        return self._hold_paths[key]

    def _release(self, steps: tuple, key: tuple) -> None:
        """Once every host of the steps is held, let them all go at one moment."""
        procs = [self.processes[(step.name, h)] for step in steps for h in step.hosts]
        names = ", ".join(step.name for step in steps)
        deadline = time.monotonic() + HOLD_LIMIT_S
        while not all(p.held or not p.running for p in procs):
            if time.monotonic() > deadline:
                late = ", ".join(p.host for p in procs if not p.held)
                raise RunError(f"{names}: {late} not started within {HOLD_LIMIT_S:g} s; "
                               f"see {steps[0].position}")
            time.sleep(0.02)   # polling the output streams with a deadline
        path = self._hold_paths.pop(key)
        if self._work_dir is not None:   # one file in the shared folder: every host sees it at once
            local = self._work_dir / RELEASE_DIR / path.rsplit("/", 1)[1]
            local.parent.mkdir(parents=True, exist_ok=True)
            local.touch()
            self._release_files.append(local)
        else:                                # no shared folder: one exec per host, at once
            run_all(lambda h=p.host: self.lab.exec(h, ["touch", path]) for p in procs)
        for step in steps:
            self.released[step.name] = self.now()
        self.log(f"{names}: released {len(procs)} host{'s' * (len(procs) != 1)} together")

    def _wait_ready(self, step: RunStep) -> None:
        deadline = time.monotonic() + step.ready_timeout_s
        procs = [self.processes[(step.name, h)] for h in step.hosts]
        while not all(p.ready_seen for p in procs):
            ended = [p for p in procs if not p.running and not p.ready_seen]
            if ended or time.monotonic() > deadline:
                late = ", ".join(p.host for p in procs if not p.ready_seen)
                why = "ended" if ended else f"did not within {step.ready_timeout_s:g} s"
                raise RunError(f"{step.name}: {step.ready!r} never appeared on {late} (it {why}); "
                               f"see {step.position}")
            time.sleep(0.05)  # polling the output with a deadline
        self.log(f"{step.name}: ready ({step.ready!r})")

    def _signal(self, target: str, action: str) -> None:
        step = self.scenario.step(target)
        procs = [p for (name, _), p in self.processes.items() if name == target]
        self.log(f"{action} {target} on {', '.join(p.host for p in procs) or 'no host'}")
        for proc in procs:
            proc.signal(SIGNALS.get(action, "TERM"))
        for proc in procs:
            proc.wait(15)
        if action == "restart":
            key = ("restart", step.name, self._runs)
            for proc in procs:
                self._start(step, proc.host, hold_key=key)
            if step.together:
                self._release((step,), key)

    def _host(self, host: str, action: str) -> None:
        container = self.lab.container(host)
        self.log(f"host {action} {host}")
        if action in ("stop", "restart"):
            container.stop(timeout=2)
        if action in ("start", "restart"):
            since = time.time()
            container.start()
            spec = self.lab.topology.host(host)
            if spec.ready:
                self._wait_for_logs(host, spec.ready, since)

    def _wait_for_logs(self, host: str, lines: tuple[str, ...], since: float, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            text = self.lab.container(host).logs(since=since).decode(errors="replace")
            if all(line in text for line in lines):
                return
            if time.monotonic() > deadline:
                raise RunError(f"{host} did not come back up within {timeout:g} s")
            time.sleep(0.1)  # polling a condition with a deadline

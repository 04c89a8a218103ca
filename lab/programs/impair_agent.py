"""impair-agent: the router's own keeper of its impairments (standard library only).

Every party that changes or reads the network of a lab speaks to this one program in
the router, one ``docker exec`` per request: ``lab run``, ``lab impair``, ``lab watch``,
the test fixtures, and the compose router at start (``SOCKETLAB_IMPAIR``).  So there is
one state in force, kept in the router itself (``STATE_FILE``), true from any shell.

    impair-agent change --request '{"change": {...}, "options": {...}, "caps": {...}, "networks": {...}}'
    impair-agent clear    # remove every impairment, stop the engine, check nothing is left
    impair-agent show     # what is in force: per link, each kind and its backend
    impair-agent check    # exit 0 if the engine runs where it must (it fails open)
    impair-agent stats    # the engine's counters
    impair-agent counters # every counter ``lab watch`` shows (nft, tc -s, the engine)
    impair-agent leftovers
    impair-agent from-env # apply $SOCKETLAB_IMPAIR (compose), one line on error, exit 2

Answers are one JSON object on stdout; a failure is ``{"error": KIND, "message": ...}``
with exit status 1 (KIND: input, unsupported, command, state, engine, engine_died).

How a change is made: ``impairment.next_state`` gives the new state, ``backends.plan`` turns
it into commands with the kernel's abilities (probed once per router and kept in
``CAPS_FILE``; a caller that already probed the same kernel may hand its result over),
and ``backends.transition`` moves from the old plan to the new one in one go (a guard
table keeps a cut link cut throughout).  The engine is started, reloaded or stopped
around that (``agent_engine``).  A change that fails half-way marks the state unknown
("dirty"): only ``clear`` (which removes what it finds) goes on from there.

Network names: ``host-role router --network NAME=SUBNET`` records them at start
(``NETWORKS_FILE``); a request's "networks" may give them too.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import shlex
import sys
from typing import Dict, List, Optional

from lab.programs.shared.backends import Command, Plan, UnsupportedImpairment, plan, transition
from lab.programs.shared.impairment import Capabilities, Change, next_state, state_from_list, state_to_list
from lab.programs import agent_engine as engine
from lab.programs.agent_router import (NETWORKS_FILE, WORK_DIR, AgentError, CommandFailed, InputError, StateUnknown,
                                       Unsupported, discover_ifnames, mtu_rules, nft_tables, read_networks, root_qdiscs, run,
                                       run_commands)

STATE_FILE = f"{WORK_DIR}/agent.json"
CAPS_FILE = f"{WORK_DIR}/caps.json"
LOCK_FILE = f"{WORK_DIR}/lock"
# How long the engine may take to start, reload, answer or stop. Every wait ends as soon as
# the engine answers (or dies), so this bounds only a wedged engine. 15 s was not enough for
# a Python start on an emulated CPU beside a loaded host (seen: no 'ready' within 15 s).
ENGINE_TIMEOUT_S = 90.0
ENV_VAR = "SOCKETLAB_IMPAIR"


def backend_caps(caps: Capabilities, backend: Optional[str]) -> Capabilities:
    """The abilities planning may use: ``backend="fallback"`` forbids netem (the CLI passes
    $SOCKETLAB_BACKEND on, read by ``impairment.backend_choice``)."""
    try:
        return caps.for_backend(backend or "auto")
    except ValueError as exc:
        raise InputError(str(exc)) from None


# -- the agent -------------------------------------------------------------------------------

def _empty() -> dict:
    return {"state": [], "plan": None, "options": {}, "dirty": False, "engine": None,
            "generation": 0, "death_reported": False, "default_qdiscs": None,
            "engine_carried": {},   # per link, the final counters of engines stopped so far
            }


class Agent:
    """One request's view of the router; ``save()`` writes what it changed back."""

    def __init__(self, request: Optional[dict] = None):
        self.request = request or {}
        os.makedirs(WORK_DIR, exist_ok=True)
        try:
            with open(STATE_FILE) as f:
                self.data = {**_empty(), **json.load(f)}
        except FileNotFoundError:
            self.data = _empty()
        options = {k: v for k, v in (self.request.get("options") or {}).items() if v is not None}
        self.data["options"].update(options)
        if self.request.get("networks"):
            _write_json(NETWORKS_FILE, self.request["networks"])
        self._caps: Optional[Capabilities] = None
        self._ifnames: Optional[Dict[str, str]] = None

    def save(self) -> None:
        _write_json(STATE_FILE, self.data)

    # what the router is and can do

    def probe(self) -> dict:
        try:
            with open(CAPS_FILE) as f:
                return json.load(f)
        except FileNotFoundError:
            pass
        probe = self.request.get("caps")
        if not probe:
            from lab.programs import kernel_probe
            probe = kernel_probe.probe_all()
        _write_json(CAPS_FILE, probe)
        return probe

    @property
    def caps(self) -> Capabilities:
        if self._caps is None:
            self._caps = backend_caps(Capabilities.from_probe(self.probe()),
                                      self.data["options"].get("backend"))
        return self._caps

    @property
    def ifnames(self) -> Dict[str, str]:
        if self._ifnames is None:
            self._ifnames = discover_ifnames(read_networks())
        return self._ifnames

    @property
    def state(self):
        return state_from_list(self.data["state"])

    def plan_for(self, state) -> Plan:
        try:
            return plan(state, self.ifnames, self.caps,
                        per_segment=bool(self.data["options"].get("per_segment")))
        except UnsupportedImpairment as exc:
            raise Unsupported(str(exc)) from None
        except ValueError as exc:
            raise InputError(str(exc)) from None

    def _old_plan(self) -> Optional[Plan]:
        stored = self.data["plan"]
        if not stored:
            return None
        return Plan(clear=tuple(Command(tuple(a), s) for a, s in stored["clear"]),
                    cut=tuple(tuple(c) for c in stored["cut"]))

    def _links_of_engine(self) -> List[str]:
        return list(self.data.get("engine_links") or [])

    # changing the state

    def change(self, change: Change) -> dict:
        return self.apply(next_state(self.state, change))

    def apply(self, new_state) -> dict:
        if self.data["dirty"]:
            raise StateUnknown("an earlier change failed half-way, so the router's state is "
                               "unknown: clear it first (lab impair --clear)")
        new = self.plan_for(new_state)  # raises before anything runs
        if self.data["default_qdiscs"] is None:
            self.data["default_qdiscs"] = root_qdiscs(self.ifnames.values())
        info = self.data["engine"]
        if info is not None and not engine.alive(info["pid"]):
            self.data["death_reported"] = True
            self.save()
            raise engine.EngineDied(engine.death_message(info, self._links_of_engine()))
        stopped: List[dict] = []
        if new.needs_impairer:
            if info is None:
                self.data["generation"] += 1
                self.data["engine"] = engine.start(WORK_DIR, self.data["generation"], new.impairer_config,
                                                   self.data["options"].get("seed"), ENGINE_TIMEOUT_S)
                self.data["death_reported"] = False
                self.save()
            else:
                engine.reload(info, new.impairer_config, ENGINE_TIMEOUT_S, self._links_of_engine())
        try:
            run_commands(transition(self._old_plan(), new))
        except BaseException:
            self.data["dirty"] = True
            self.save()
            raise
        self.data["state"] = state_to_list(new_state)
        self.data["plan"] = {"clear": [[list(c.argv), c.stdin] for c in new.clear],
                             "cut": [list(c) for c in new.cut]}
        self.data["backends"] = new.backend_table()
        engine_links = (new.impairer_config or {}).get("links", [])
        self.data["engine_links"] = [e["link"] for e in engine_links]
        self.data["engine_queues"] = {e["link"]: e["queue"] for e in engine_links}
        self.data["tc_qdiscs"] = [list(q) for q in new.tc_qdiscs]
        if not new.needs_impairer and self.data["engine"] is not None:
            info, self.data["engine"] = self.data["engine"], None
            self.save()
            stopped.append(self._carry(engine.stop(info, ENGINE_TIMEOUT_S)))
        self.save()
        return {**self.show(), "stopped_engines": stopped}

    def clear(self) -> dict:
        """Remove every impairment and stop the engine; afterwards nothing is left, or this
        says what is.  After a failed change it removes what it finds.  An engine death
        nobody was told about is raised after cleaning up."""
        failure: Optional[CommandFailed] = None
        try:
            if self.data["plan"] and not self.data["dirty"]:
                run_commands(self._old_plan().clear)
            else:
                self.reset()
        except CommandFailed as exc:
            failure = exc
            try:
                self.reset()
            except CommandFailed:
                pass
        self.data.update(state=[], plan=None, backends={}, engine_links=[], engine_queues={}, tc_qdiscs=[])
        stopped: List[dict] = []
        died = None
        info, self.data["engine"] = self.data["engine"], None
        if info is not None:
            if engine.alive(info["pid"]):
                try:
                    stopped.append(self._carry(engine.stop(info, ENGINE_TIMEOUT_S)))
                except engine.EngineError as exc:
                    died = exc
            elif not self.data["death_reported"]:
                died = engine.EngineDied(engine.death_message(info, []))
        self.data["death_reported"] = False
        if failure is not None:
            self.data["dirty"] = True
            self.save()
            raise failure
        left = self.leftovers()
        self.data["dirty"] = bool(left)
        self.save()
        if left:
            raise AgentError("impairments left on the router after clear: " + "; ".join(left))
        if died is not None:
            raise died
        return {**self.show(), "stopped_engines": stopped}

    def reset(self) -> None:
        """Remove whatever impairment rules exist, by looking (not from a plan)."""
        for line in run(["iptables", "-w", "-S", "FORWARD"]).splitlines():
            if "-j NFQUEUE" in line and line.startswith("-A "):
                run(["iptables", "-w", "-D"] + shlex.split(line)[1:])
        for family, table in nft_tables():
            run(["nft", "delete", "table", family, table])
        for pref in mtu_rules():
            run(["ip", "rule", "del", "pref", str(pref)])
            run(["ip", "route", "flush", "table", str(pref)])
        defaults = self.data["default_qdiscs"] or {}
        for ifname, kind in root_qdiscs(self.ifnames.values()).items():
            if kind not in ("noqueue", defaults.get(ifname, "noqueue")):
                run(["tc", "qdisc", "del", "dev", ifname, "root"])

    def leftovers(self) -> List[str]:
        left = [f"nft table {family} {table}" for family, table in nft_tables()]
        left += [f"ip rule {pref} (mtu)" for pref in mtu_rules()]
        left += [f"iptables {line}" for line in run(["iptables", "-w", "-S", "FORWARD"]).splitlines()
                 if "NFQUEUE" in line]
        defaults = self.data["default_qdiscs"] or {}
        for ifname, kind in root_qdiscs(self.ifnames.values()).items():
            if kind not in ("noqueue", defaults.get(ifname, "noqueue")):
                left.append(f"qdisc {kind} on {ifname}")
        info = self.data["engine"]
        if info is not None and engine.alive(info["pid"]):
            left.append(f"engine (pid {info['pid']})")
        return left

    # reading

    def check(self) -> dict:
        info = self.data["engine"]
        if info is not None and not engine.alive(info["pid"]):
            self.data["death_reported"] = True
            self.save()
            raise engine.EngineDied(engine.death_message(info, self._links_of_engine()))
        return self.show()

    def show(self) -> dict:
        info = self.data["engine"]
        return {"state": self.data["state"], "backends": self.data.get("backends", {}),
                "engine": {"pid": info["pid"], "running": engine.alive(info["pid"])} if info else None,
                "dirty": self.data["dirty"], "ifnames": self._ifnames_or_none(),
                "options": self.data["options"], "engine_queues": self.data.get("engine_queues", {}),
                # What planning may use here (the kernel's abilities after the backend choice).
                "caps": {k: v for k, v in vars(self.caps).items() if k != "errors"}}

    def _ifnames_or_none(self):
        try:
            return self.ifnames
        except AgentError:
            return None

    def stats(self) -> dict:
        info = self.data["engine"]
        if info is None:
            raise engine.EngineError("the impairment engine is not running (no link needs it)")
        return engine.stats(info, ENGINE_TIMEOUT_S, self._links_of_engine())

    def counters(self) -> dict:
        """Everything `lab watch` shows, read from the router's own counters."""
        from lab.programs import router_counters
        info = self.data["engine"]
        stats = None
        if info is not None and engine.alive(info["pid"]):
            stats = engine.stats(info, ENGINE_TIMEOUT_S, self._links_of_engine())
        partitioned = [str(link) for link, imp in self.state.items() if imp.partition]
        return router_counters.read(self.ifnames, stats, self.data.get("backends", {}),
                                    [tuple(q) for q in self.data.get("tc_qdiscs", [])], partitioned,
                                    self.data["engine_carried"])

    def _carry(self, final: dict) -> dict:
        """Keep a stopped engine's final counters, so the counters go on from them."""
        from lab.programs import router_counters
        self.data["engine_carried"] = router_counters.carry(self.data["engine_carried"], final)
        return final


def _write_json(path: str, data) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, sort_keys=True)
    os.replace(tmp, path)


# -- the command line ------------------------------------------------------------------------

def handle(command: str, request: dict) -> dict:
    """One request, under the router-wide lock (two shells never interleave changes)."""
    os.makedirs(WORK_DIR, exist_ok=True)
    with open(LOCK_FILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        agent = Agent(request)
        if command == "change":
            return agent.change(Change.from_dict(request.get("change") or {}))
        if command == "clear":
            return agent.clear()
        if command == "show":
            return agent.show()
        if command == "check":
            return agent.check()
        if command == "stats":
            return agent.stats()
        if command == "counters":
            return agent.counters()
        if command == "leftovers":
            return {"leftovers": agent.leftovers()}
        raise InputError(f"unknown command {command!r}")


def from_env(text: str, networks: Optional[Dict[str, str]] = None) -> dict:
    """Apply the one-line form (compose's SOCKETLAB_IMPAIR) on this router."""
    from lab.programs.shared.oneline import OneLineError, parse_changes
    try:
        change = parse_changes(text)
    except OneLineError as exc:
        raise InputError(f"{ENV_VAR}: {exc}") from None
    return handle("change", {"change": change.to_dict(), "networks": networks or {}})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="impair-agent", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["change", "clear", "show", "check", "stats", "counters",
                                            "leftovers", "from-env"])
    parser.add_argument("--request", default="", help="the request as JSON ('-': read stdin)")
    args = parser.parse_args(argv)
    try:
        if args.command == "from-env":
            text = os.environ.get(ENV_VAR, "").strip()
            answer = from_env(text) if text else {"state": []}
        else:
            raw = sys.stdin.read() if args.request == "-" else args.request
            request = json.loads(raw) if raw.strip() else {}
            answer = handle(args.command, request)
    except (AgentError, engine.EngineError) as exc:
        kind = "engine_died" if isinstance(exc, engine.EngineDied) else getattr(exc, "kind", "engine")
        error = {"error": kind, "message": str(exc)}
        if isinstance(exc, CommandFailed):
            error.update(argv=exc.argv, exit_code=exc.exit_code, stderr=exc.stderr)
        print(json.dumps(error, sort_keys=True), flush=True)
        if args.command == "from-env":
            print(str(exc).splitlines()[0], file=sys.stderr, flush=True)
            return 2
        return 1
    print(json.dumps(answer, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""From loaded YAML to a resolved ``Scenario``, or a ``ScenarioError`` listing every problem.

``spec.py`` checks each value on its own; the builder here checks what needs several at
once: the topology's names, links between known networks, impairment combinations (as
``Impairment`` itself rejects them, positioned), and hosts that exist.  The steps' rules
are in ``step_rules.py`` and the expectations' in ``expect_rules.py``.
"""
from __future__ import annotations

import re
from pathlib import Path as FilePath
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from ..programs.shared.errors import LabError
from ..programs.shared.impairment import Impairment, Link
from ..programs.shared.topology import HostSpec, Limits
from ..programs.shared import impairment_entry, spec
from . import yamlpos
from .expect import Position
from .expect_rules import ExpectRules
from ..programs.shared.fieldtypes import INVALID, Checker, did_you_mean, valid
from .model import Scenario, ScenarioTopology, Step, frozen_map
from ..programs.shared.problems import Path, Problem, ScenarioError
from .step_rules import StepRules

MAX_FILE_BYTES = 1 << 20
_RESERVED_HOST = re.compile(r"^(?:router|server|clients|client[0-9]+)$")
# Impairment's attribute names -> the scenario's keys (for its error messages).


def read_text(path: Union[str, FilePath], what: str, max_bytes: int, too_big: str = "") -> str:
    """The text of a short file given by a user: LabError if it cannot be read, a positioned
    ScenarioError if it is over `max_bytes` or not UTF-8 (scenario and assignment files)."""
    name = str(path)
    try:
        raw = FilePath(path).read_bytes()
    except OSError as exc:
        raise LabError(f"cannot read {what} {name}: {exc.strerror or exc}") from None
    if len(raw) > max_bytes:
        raise ScenarioError(name, [Problem(1, 1, "", f"the file is over {max_bytes // 1024} KiB{too_big}")])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ScenarioError(name, [Problem(line, 1, "", "not UTF-8 text")]) from None


def load_file(path: Union[str, FilePath]) -> Scenario:
    """Read and validate a scenario file."""
    return load_text(read_text(path, "scenario", MAX_FILE_BYTES, "; a scenario is a short text"), str(path))


def load_text(text: str, filename: str = "<scenario>") -> Scenario:
    """Validate a scenario given as text; ``filename`` is only used in messages."""
    doc, problems = yamlpos.load(text)
    if doc is None:
        raise ScenarioError(filename, problems)
    ck = _QuietChecker(doc)
    data = spec.check(doc.data, ck)
    scenario = None
    if data is not INVALID:
        scenario = _Builder(ck, doc, data, filename).build()
    problems += ck.problems
    if problems or scenario is None:
        raise ScenarioError(filename, problems)
    return scenario


class _QuietChecker(Checker):
    """Leaves out problems at or under a value the YAML loader refused (a refused tag
    would otherwise also be 'expected a string, got nothing')."""

    def error(self, path: Path, message: str, key: bool = False) -> None:
        if any(path[:len(r)] == r for r in self.doc.refused):
            return
        super().error(path, message, key)


def _names(names: Sequence[str], limit: int = 8) -> str:
    names = list(names)
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")


class _Builder(StepRules, ExpectRules):
    """Builds the model from checked data; rules for steps and expectations are in
    step_rules.py and expect_rules.py."""

    def __init__(self, ck: Checker, doc: yamlpos.Document, data: Dict[str, Any], filename: str):
        self.ck, self.doc, self.data, self.filename = ck, doc, data, filename
        self.topology: Optional[ScenarioTopology] = None
        self.hosts: Optional[List[str]] = None       # None: the topology is invalid, do not check hosts
        self.networks: Optional[List[str]] = None
        self.clients_known = True                     # False: topology.clients is invalid
        self.state: Dict[Link, Impairment] = {}
        self.partitioned: Dict[Link, int] = {}        # link -> index of the step that partitioned it
        self.stopped: Dict[str, int] = {}             # host -> index of the step that stopped it
        self.steps: List[Step] = []
        self.by_name: Dict[str, Tuple[int, Optional[Step]]] = {}
        self.all_names: Dict[str, int] = self._all_step_names()

    # --- helpers -------------------------------------------------------------------------

    def error(self, path: Path, message: str, key: bool = False) -> None:
        self.ck.error(path, message, key)

    def position(self, path: Path, key: bool = False) -> Position:
        line, column = self.doc.mark(path, key)
        return Position(self.filename, line, column)

    def given(self, path: Path) -> bool:
        return path in self.doc.marks

    def _all_step_names(self) -> Dict[str, int]:
        """Every step's name as written (even in steps with problems), for references."""
        steps = self.doc.data.get("steps") if isinstance(self.doc.data, dict) else None
        names: Dict[str, int] = {}
        for i, step in enumerate(steps if isinstance(steps, list) else []):
            name = step.get("name") if isinstance(step, dict) else None
            names.setdefault(name if isinstance(name, str) else f"step-{i}", i)
        return names

    # --- the whole scenario --------------------------------------------------------------

    def build(self) -> Optional[Scenario]:
        self.build_topology()
        initial = self.build_initial_impairments()
        self.build_steps()
        expectations = self.build_expectations()
        d = self.data
        if self.ck.problems or not valid(d["name"], d["description"], d["version"]) or self.topology is None:
            return None
        return Scenario(name=d["name"], description=d["description"], topology=self.topology,
                        impairments=frozen_map(initial), steps=tuple(self.steps),
                        expectations=tuple(expectations), source=self.filename, version=d["version"])

    # --- topology ------------------------------------------------------------------------

    def build_topology(self) -> None:
        t = self.data["topology"]
        if t is None:
            t = spec.TOPOLOGY.defaults()
        if t is INVALID:
            return
        path = ("topology",)
        networks: List[str] = []
        for i, net in enumerate(t["networks"] if t["networks"] is not INVALID else []):
            if net is INVALID:
                continue
            if net in ("clients", "servers"):
                self.error(path + ("networks", i), f"{net!r} is always there: list only extra networks")
            elif net in networks:
                self.error(path + ("networks", i), f"{net!r} is listed twice")
            else:
                networks.append(net)
        self.networks = ["clients", "servers", *networks]
        if t["networks"] is INVALID:
            self.networks = None
        extra: Dict[str, str] = {}
        specs: Dict[str, HostSpec] = {}
        for name, host in (t["hosts"] if t["hosts"] is not INVALID else {}).items():
            hpath = path + ("hosts", name)
            if _RESERVED_HOST.match(name):
                self.error(hpath, f"{name!r} is one of the lab's own names "
                                  "(router, server, clients, client1..clientN)", key=True)
                continue
            if host is INVALID or host["network"] is INVALID:
                extra[name] = ""
                continue
            self.check_network(host["network"], hpath + ("network",))
            extra[name] = host["network"]
            if host["image"] is not None or host["command"] is not None or host["ready"] is not None:
                specs[name] = _host_spec(host, host["network"])
        images: Dict[str, HostSpec] = {}
        clients, server = t["clients"], t["server"]
        if isinstance(clients, dict):
            images["clients"] = _host_spec(clients, "clients")
            clients = clients["count"]
        if isinstance(server, dict):
            images["server"] = _host_spec(server, "servers")
            server = "image"
        if t["hosts"] is not INVALID:
            self.clients_known = valid(clients)
            self.hosts = ["router", "server", *sorted(extra),
                          *(f"client{i}" for i in range(1, clients + 1 if valid(clients) else 1))]
        if t["tcp_mode"] is not None and server == "idle":
            self.error(path + ("tcp_mode",), "tcp_mode is for server: uppercase (an idle server runs nothing)")
        elif t["tcp_mode"] is not None and server == "image":
            self.error(path + ("tcp_mode",), "tcp_mode is for server: uppercase (a server with its own "
                                             "image runs its own program)")
        limits = t["limits"]
        if valid(*t.values()) and isinstance(limits, dict) and valid(*limits.values()) \
                and all(_valid_spec(h) for h in [*specs.values(), *images.values()]):
            self.topology = ScenarioTopology(clients=clients, networks=tuple(networks),
                                             hosts=tuple(sorted(extra.items())), server=server,
                                             images=tuple(sorted(images.items())),
                                             host_specs=tuple(sorted(specs.items())),
                                             tcp_mode=t["tcp_mode"] or "concurrent", capture=t["capture"],
                                             limits=Limits(**limits))

    def check_network(self, net: str, path: Path) -> bool:
        if self.networks is None or net in self.networks:
            return True
        self.error(path, f"unknown network {net!r}{did_you_mean(net, self.networks)}; "
                         f"networks: {_names(self.networks)}")
        return False

    # --- links and impairments -----------------------------------------------------------

    def links(self, value: Any, path: Path) -> Optional[List[Link]]:
        """A link string's links, or a [net, net] pair's two links."""
        if value is INVALID:
            return None
        if isinstance(value, tuple):                  # parsed link text: (src, dst, both)
            src, dst, both = value
            ok = self.check_network(src, path) & self.check_network(dst, path)
        else:                                         # [a, b]
            if not valid(*value):
                return None
            src, dst, both = value[0], value[1], True
            if src == dst:
                self.error(path, f"{src!r} twice: a partition is between two different networks")
                return None
            ok = self.check_network(src, path + (0,)) & self.check_network(dst, path + (1,))
        if not ok:
            return None
        return [Link(src, dst), Link(dst, src)] if both else [Link(src, dst)]

    def impairment(self, entry: Dict[str, Any], path: Path) -> Optional[Impairment]:
        if not valid(*entry.values()):
            return None
        ge = entry["gemodel"]
        if ge is not None and not valid(*ge.values()):
            return None
        try:
            return impairment_entry.build(entry)
        except impairment_entry.EntryError as exc:
            self.error(path + (exc.key,) if exc.key else path, str(exc))
            return None

    def build_initial_impairments(self) -> Dict[Link, Impairment]:
        initial: Dict[Link, Impairment] = {}
        where: Dict[Link, int] = {}
        for i, entry in enumerate(self.data["impairments"] or []):
            if entry is INVALID:
                continue
            path = ("impairments", i)
            links = self.links(entry["link"], path + ("link",))
            imp = self.impairment(entry, path)
            for link in links or []:
                if link in where:
                    self.error(path + ("link",), f"{link} is already set by impairments[{where[link]}]")
                    continue
                where[link] = i
                if imp is not None:
                    initial[link] = imp
        self.state = dict(initial)
        return {link: imp for link, imp in initial.items() if not imp.is_empty()}

    # --- hosts -----------------------------------------------------------------------------

    def expand_hosts(self, value: Any, path: Path, running: bool = True) -> Optional[Tuple[str, ...]]:
        """Host names (``clients`` expanded) that exist and, with ``running``, are not stopped."""
        if value is INVALID:
            return None
        items = [(value, path)] if isinstance(value, str) else [(v, path + (i,)) for i, v in enumerate(value)]
        hosts: List[str] = []
        ok = True
        for name, ipath in items:
            if name is INVALID:
                ok = False
                continue
            if self.hosts is None or (not self.clients_known and re.match(r"^clients?[0-9]*$", name)):
                hosts.append(name)       # cannot check: the topology has problems of its own
                continue
            if name == "clients":
                names = [h for h in self.hosts if h.startswith("client")]
                if not names:
                    self.error(ipath, "there are no clients (topology.clients is 0)")
                    ok = False
            elif name in self.hosts:
                names = [name]
            else:
                self.error(ipath, f"unknown host {name!r}{did_you_mean(name, self.hosts)}; "
                                  f"hosts: {_names(self.hosts)} (or clients for every client)")
                ok = False
                continue
            for host in names:
                if host in hosts:
                    self.error(ipath, f"{host} is named twice")
                    ok = False
                elif running and host in self.stopped:
                    self.error(ipath, f"{host} is stopped at this time (by steps[{self.stopped[host]}])")
                    ok = False
                else:
                    hosts.append(host)
        return tuple(hosts) if ok else None


def _host_spec(checked: Dict[str, Any], network: str) -> HostSpec:
    """A host's checked `image`/`command`/`ready` as the topology model's HostSpec (INVALID
    values pass through: the caller builds no topology then)."""
    ready = checked.get("ready") or {}
    command = checked.get("command")
    return HostSpec(network, checked.get("image"),
                    tuple(command) if isinstance(command, list) else (() if command is None else command),
                    ready.get("port") if isinstance(ready, dict) and ready.get("kind") == "port" else None,
                    ready.get("log") if isinstance(ready, dict) and ready.get("kind") == "log" else None,
                    ready.get("timeout") if isinstance(ready, dict) else None)


def _valid_spec(host: HostSpec) -> bool:
    return valid(host.image, host.command, host.ready_port, host.ready_log, host.ready_timeout) and \
        all(valid(part) for part in host.command)

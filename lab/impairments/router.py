"""The host side of a router's impairments: a small client of the router's own agent
(``lab/programs/impair_agent.py``, in the image), plus its packet capture.

The router owns what is in force.  Every change goes to the agent as data (a
``shared.impairment.Change``), and the agent plans it with the kernel abilities it probed once,
applies it atomically, and keeps the state in the router; so ``lab run``, ``lab impair``,
``lab watch`` and the compose router all see the same state.  This class holds nothing
the router does not also hold.

    with RouterImpairments.for_lab(lab, seed=1) as router:      # clears and stops on exit
        router.apply({Link("clients", "servers"): Impairment(loss=20)})   # the whole state
        router.change(Change(partition=(Link("clients", "servers"),)))     # one change
        router.partition("clients", "servers"); router.heal("clients", "servers")
        router.check_alive()            # raises ImpairerDied if the impairer died (fail-open)
        router.show()                   # what is in force: state, backends, impairer
        paths = router.start_capture()  # ifname -> pcap path in the router
        pcaps = router.stop_capture()   # ifname -> pcap bytes

Errors: ``RouterCommandError`` (a command in the router failed; its state is then
unknown until ``clear``), ``ImpairerDied``/``ImpairerError``, ``UnsupportedImpairment``
(this kernel cannot; nothing changed), ``ImpairmentRefused`` (bad input: an unknown
network; nothing changed), ``RouterImpairmentError`` for the rest.
"""
from __future__ import annotations

import json
import threading
from typing import Callable, Dict, List, Mapping, Optional

from ..programs.shared.errors import add_note
from ..topology.docker_lab import ExecResult, exec_in
from ..programs.shared.backends import UnsupportedImpairment
from .capture import CAPTURE_DIR, CaptureProcesses
from .errors import ImpairerDied, ImpairerError, ImpairmentRefused, RouterCommandError, RouterImpairmentError
from ..programs.shared.impairment import Capabilities, Change, Impairment, Link, State, backend_choice, state_from_list
from .router_exec import RouterShell

__all__ = ["RouterImpairments", "RouterImpairmentError", "RouterCommandError", "ImpairmentRefused", "ImpairerError",
           "ImpairerDied", "UnsupportedImpairment", "AGENT"]

AGENT = "impair-agent"


class RouterImpairments:
    """Impairments on one running lab's router.  See the module docstring."""

    def __init__(self, lab=None, seed: Optional[int] = None, *, per_segment: bool = False,
                 router: str = "router", container=None, caps: Optional[dict] = None,
                 backend: Optional[str] = None, networks: Optional[Mapping[str, str]] = None,
                 progress: Callable[[str], None] = lambda message: None):
        self.container = container if container is not None else lab.container(router)
        if networks is None and lab is not None:
            networks = {net.name: str(net.subnet) for net in lab.topology.networks}
        self.shell = RouterShell(self.container)
        if backend is None:   # SOCKETLAB_BACKEND=fallback: plan without netem (as `lab doctor` shows)
            backend = backend_choice()
        self.options = {"seed": seed, "per_segment": per_segment or None, "backend": backend}
        self.networks = dict(networks or {})
        self._caps = caps
        self.progress = progress
        self._lock = threading.RLock()
        self._answer: dict = {}
        self._ifnames: Optional[Dict[str, str]] = None
        self.impairer_final_stats: List[dict] = []   # the exit line of every impairer stopped
        self._capture: Optional[CaptureProcesses] = None

    @classmethod
    def for_lab(cls, lab, **kwargs) -> "RouterImpairments":
        return cls(lab, **kwargs)

    # -- talking to the agent --------------------------------------------------------------

    def ask(self, command: str, **request) -> dict:
        """One request to the router's agent; its answer, or the matching exception."""
        request = {"options": self.options, **request}
        if self.networks:
            request["networks"] = self.networks
        if self._caps is not None:
            request["caps"] = self._caps
        with self._lock:
            result = exec_in(self.container, [AGENT, command, "--request", json.dumps(request)])
        lines = result.stdout.strip().splitlines()
        try:
            answer = json.loads(lines[-1])
        except (IndexError, ValueError):
            raise RouterImpairmentError(
                f"the router's {AGENT} answered no JSON (exit {result.exit_code}): "
                f"{(result.stderr or result.stdout).strip()[-600:] or '(nothing)'}",
                hint="`lab images build`, then recreate the lab, if the image is older") from None
        if "error" in answer:
            raise _error(answer)
        self._keep(answer)
        return answer

    def _keep(self, answer: dict) -> None:
        if "state" in answer:
            self._answer = answer
        if answer.get("ifnames"):
            self._ifnames = dict(answer["ifnames"])   # fixed for the router's life
        self.impairer_final_stats += answer.get("stopped_engines") or []

    def change(self, change: Change) -> dict:
        """Apply one change to what is in force; returns the agent's answer (state,
        backends, impairer).  Nothing changes if it cannot be applied."""
        return self.ask("change", change=change.to_dict())

    def apply(self, state: State) -> dict:
        """Make ``state`` (every link's full impairment; links left out: none) the router's
        whole state."""
        return self.change(Change.replace_all(state))

    def update(self, changes: State) -> dict:
        """Change only the links in ``changes`` (each to its full new impairment)."""
        return self.apply({**self.state, **changes})

    def partition(self, a: str, b: str, both: bool = True) -> dict:
        """Drop everything between networks a and b (a -> b only unless ``both``); the
        links' other impairments stay configured for after ``heal``."""
        return self.change(Change(partition=tuple(_links(a, b, both))))

    def heal(self, a: str, b: str, both: bool = True) -> dict:
        return self.change(Change(heal=tuple(_links(a, b, both))))

    def clear(self) -> None:
        """Remove every impairment and stop the impairer; raises saying what is left if
        anything is, and raises a death of the impairer nobody was told about."""
        self.ask("clear")

    def show(self) -> dict:
        return self.ask("show")

    def check_alive(self) -> None:
        """Raise ImpairerDied if the impairer should be running and is not.  Free when the
        state this object last saw needs no impairer (no exec: ``lab run`` calls it often)."""
        if self._answer and not self._answer.get("engine"):
            return
        self.ask("check")

    def impairer_stats(self) -> dict:
        """The running impairer's counters."""
        return self.ask("stats")

    def counters(self) -> dict:
        """Every counter ``lab watch`` shows, per link (see router_counters)."""
        return self.ask("counters")

    def leftovers(self) -> List[str]:
        """What impairment state is on the router now (empty: none)."""
        return self.ask("leftovers")["leftovers"]

    # -- what is in force (as of the last answer; ``show()`` asks again) -----------------

    @property
    def state(self) -> Dict[Link, Impairment]:
        return state_from_list(self._answer.get("state") or [])

    @property
    def backends(self) -> Dict[str, Dict[str, str]]:
        """link -> kind -> backend for the current state."""
        return dict(self._answer.get("backends") or {})

    @property
    def caps(self) -> Capabilities:
        """What the router plans with: its kernel's abilities after the backend choice
        (SOCKETLAB_BACKEND=fallback hides netem). Asks the router once if no answer has it."""
        if "caps" not in self._answer:
            self.show()
        return Capabilities.from_probe(self._answer["caps"], backend="auto")

    @property
    def impairer_queues(self) -> Dict[str, int]:
        """link -> its impairer queue number, for links the impairer handles."""
        return dict(self._answer.get("engine_queues") or {})

    @property
    def ifnames(self) -> Dict[str, str]:
        """network -> the router's interface on it (known after any answer; kept, so it
        can be read after the lab is gone)."""
        if self._ifnames is None:
            self.show()
        return dict(self._ifnames or {})

    @property
    def impairer_pid(self) -> Optional[int]:
        engine = self.show().get("engine")
        return engine["pid"] if engine else None

    @property
    def impairer_running(self) -> bool:
        engine = self.show().get("engine")
        return bool(engine and engine["running"])

    # -- packet capture --------------------------------------------------------------------

    def start_capture(self, dir_in_router: str = CAPTURE_DIR) -> Dict[str, str]:
        """Capture every router interface on a lab network into ``dir_in_router``
        (``<ifname>.pcap``); returns ifname -> pcap path, once each is listening."""
        with self._lock:
            if self._capture is None:
                self._capture = CaptureProcesses(self.shell, self.ifnames)
            return self._capture.start(dir_in_router)

    def stop_capture(self) -> Dict[str, bytes]:
        """Stop the captures and return ifname -> pcap file contents."""
        with self._lock:
            if self._capture is None:
                raise RouterImpairmentError("no capture is running")
            return self._capture.stop()

    # -- context manager -------------------------------------------------------------------

    def close(self) -> None:
        """Stop any capture, clear every impairment, stop the impairer."""
        with self._lock:
            try:
                if self._capture is not None and self._capture.running:
                    self._capture.stop()
            finally:
                self.clear()

    def __enter__(self) -> "RouterImpairments":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.close()
        except Exception as cleanup_error:
            if exc_type is None:
                raise
            add_note(exc, f"and cleaning up the router's impairments failed: {cleanup_error}")


def _links(a: str, b: str, both: bool) -> List[Link]:
    return [Link(a, b), Link(b, a)] if both else [Link(a, b)]


def _error(answer: dict) -> Exception:
    kind, message = answer.get("error"), answer.get("message", "")
    if kind == "engine_died":
        return ImpairerDied(message)
    if kind == "engine":
        return ImpairerError(message)
    if kind == "unsupported":
        return UnsupportedImpairment(message)
    if kind == "command":
        return RouterCommandError(answer.get("argv") or [],
                                  ExecResult(answer.get("exit_code", 1), "", answer.get("stderr", "")))
    if kind == "input":
        return ImpairmentRefused(message)
    return RouterImpairmentError(message)

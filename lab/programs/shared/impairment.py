"""What an impairment is, which link it sits on, and what the router's kernel can do.

Pure data: no Docker, no I/O (bar reading SOCKETLAB_BACKEND, see ``backend_choice``).
Percentages are 0-100 (as tc-netem takes them), times are milliseconds, rates
kbit/s, queue lengths packets.  ``None`` or 0 means "not set" everywhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from typing import Any, Dict, Mapping, Optional


def _check_percent(name: str, value: Optional[float]) -> None:
    if value is not None and not 0 <= value <= 100:
        raise ValueError(f"{name} must be a percentage between 0 and 100, got {value!r}")


def _check_non_negative(name: str, value: Optional[float]) -> None:
    if value is not None and value < 0:
        raise ValueError(f"{name} must not be negative, got {value!r}")


@dataclass(frozen=True)
class Link:
    """A directed link: packets the router forwards from network ``src`` out into network ``dst``.

    Impairments are per direction, so a two-network lab has two links,
    ``Link("clients", "servers")`` and ``Link("servers", "clients")``.
    """

    src: str
    dst: str

    def __post_init__(self) -> None:
        if self.src == self.dst:
            raise ValueError(f"a link joins two different networks, got {self.src!r} twice")

    def reverse(self) -> "Link":
        return Link(self.dst, self.src)

    def __str__(self) -> str:
        return f"{self.src}->{self.dst}"

    @classmethod
    def parse(cls, text: str) -> "Link":
        """The inverse of ``str``: ``"clients->servers"``."""
        src, arrow, dst = text.partition("->")
        if not arrow:
            raise ValueError(f"{text!r} is not a directed link like 'clients->servers'")
        return cls(src.strip(), dst.strip())


@dataclass(frozen=True)
class GilbertElliott:
    """Bursty loss as ``tc netem loss gemodel p r 1-h 1-k`` takes it (all in percent).

    Two states, Good and Bad.  ``p``: chance per packet of moving Good -> Bad;
    ``r``: chance of moving Bad -> Good; ``one_minus_h``: loss chance while Bad;
    ``one_minus_k``: loss chance while Good.  The defaults are netem's:
    r = 100 - p, 1-h = 100, 1-k = 0 (the "simple Gilbert" model).
    """

    p: float
    r: Optional[float] = None
    one_minus_h: float = 100.0
    one_minus_k: float = 0.0

    def __post_init__(self) -> None:
        if self.r is None:
            object.__setattr__(self, "r", 100.0 - self.p)
        for f in fields(self):
            _check_percent(f"gemodel {f.name}", getattr(self, f.name))

    def mean_loss_percent(self) -> float:
        """The long-run loss rate: time share in each state times that state's loss chance."""
        if self.p + self.r == 0:  # never leaves Good
            return self.one_minus_k
        bad_share = self.p / (self.p + self.r)
        return bad_share * self.one_minus_h + (1 - bad_share) * self.one_minus_k

    def to_dict(self) -> Dict[str, float]:
        return {"p": self.p, "r": self.r, "one_minus_h": self.one_minus_h,
                "one_minus_k": self.one_minus_k}


@dataclass(frozen=True)
class StreamField:
    """One stream impairment field, declared once: the model's attribute, the scenario
    key (``lab impair --KEY`` with ``-`` for ``_``), the kind of value in a scenario file
    (``bytes``: a plain integer; ``size``: 100B, 1KiB; ``duration``; ``percent``), its
    range in model units, what it needs, and one line of help."""

    attr: str
    key: str
    value: str
    minimum: float
    maximum: Optional[float]
    needs: tuple
    help: str


# The stream kinds (what the impairer does to TCP connections) and mtu (a route on the
# router).  spec.py, the one-line form, `lab impair` and the impairer read them here.
STREAM_KINDS = ("segment", "reset_after", "blackhole_after", "hold_fin")
STREAM_FIELDS = (
    StreamField("segment", "segment", "bytes", 1, 65535, (),
                "TCP payload arrives in pieces of at most this many bytes (the router re-segments)."),
    StreamField("gap_ms", "gap", "duration", 0, None, ("segment",),
                "Time between the pieces of one segment (needs segment)."),
    StreamField("reset_after", "reset_after", "size", 1, None, (),
                "After this much payload (100B, 1KiB) the router resets the connection, both ends."),
    StreamField("blackhole_after", "blackhole_after", "size", 1, None, (),
                "After this much payload the connection's packets are dropped both ways: it hangs."),
    StreamField("hold_fin_ms", "hold_fin", "duration", 0, None, (),
                "FIN packets are held this long before they go on (a slow close)."),
    StreamField("connections", "connections", "percent", 0, 100, STREAM_KINDS,
                "Share of TCP connections (chosen at the SYN) the stream kinds apply to."),
    StreamField("mtu", "mtu", "bytes", 68, 65535, (),
                "The router's MTU toward the link's destination: larger IPv4 packets are "
                "fragmented, or dropped with ICMP 'fragmentation needed' when DF is set."),
)
STREAM_ATTRS = {f.key: f.attr for f in STREAM_FIELDS}


@dataclass(frozen=True)
class Impairment:
    """Everything that can be done to one directed link.  All fields default to "not set".

    ``reorder`` follows netem: with a delay set, that share of packets is sent at once
    and so overtakes the packets still being delayed.  ``queue_limit`` bounds the queue
    in front of the rate limiter, so it needs ``rate_kbit``.  ``partition`` drops
    everything on the link (the other fields stay configured but see no packets).
    """

    loss: Optional[float] = None
    loss_correlation: Optional[float] = None
    gemodel: Optional[GilbertElliott] = None
    delay_ms: Optional[float] = None
    jitter_ms: Optional[float] = None
    duplicate: Optional[float] = None
    corrupt: Optional[float] = None
    reorder: Optional[float] = None
    rate_kbit: Optional[float] = None
    queue_limit: Optional[int] = None
    partition: bool = False
    segment: Optional[int] = None
    gap_ms: Optional[float] = None
    reset_after: Optional[int] = None
    blackhole_after: Optional[int] = None
    hold_fin_ms: Optional[float] = None
    connections: Optional[float] = None
    mtu: Optional[int] = None

    def __post_init__(self) -> None:
        for name in ("loss", "loss_correlation", "duplicate", "corrupt", "reorder"):
            _check_percent(name, getattr(self, name))
        for name in ("delay_ms", "jitter_ms", "rate_kbit", "queue_limit"):
            _check_non_negative(name, getattr(self, name))
        # Combinations that netem rejects or that would do nothing are errors, not no-ops.
        if self.loss_correlation and not self.loss:
            raise ValueError("loss_correlation needs loss")
        if self.gemodel is not None and self.loss:
            raise ValueError("give either loss (random) or gemodel (bursty), not both")
        if self.jitter_ms and not self.delay_ms:
            raise ValueError("jitter_ms needs delay_ms (jitter varies the delay around it)")
        if self.reorder and not self.delay_ms:
            raise ValueError("reorder needs delay_ms: reordered packets are the ones not delayed")
        if self.queue_limit and not self.rate_kbit:
            raise ValueError("queue_limit bounds the rate limiter's queue, so it needs rate_kbit")
        if self.rate_kbit is not None and 0 < self.rate_kbit < 8:
            raise ValueError("rate_kbit below 8 kbit/s cannot pass one full-size packet a second")
        for spec in STREAM_FIELDS:
            value = getattr(self, spec.attr)
            if value is None:
                continue
            if value < spec.minimum or spec.maximum is not None and value > spec.maximum:
                bounds = (f"between {spec.minimum:g} and {spec.maximum:g}" if spec.maximum is not None
                          else f"at least {spec.minimum:g}")
                raise ValueError(f"{spec.attr} must be {bounds}, got {value!r}")
            if spec.needs and not any(getattr(self, STREAM_ATTRS[n]) for n in spec.needs):
                raise ValueError(f"{spec.attr} needs {' or '.join(spec.needs)}")

    def stream(self) -> bool:
        """Does any stream kind (the impairer's work on TCP connections) apply?"""
        return any(getattr(self, STREAM_ATTRS[k]) for k in STREAM_KINDS)

    # -- which kinds are set ---------------------------------------------------------------

    def kinds(self) -> tuple:
        """The impairment kinds this sets, in the order the router applies them."""
        present = {
            "partition": self.partition,
            "loss": bool(self.loss) and not self.loss_correlation,
            "correlated_loss": bool(self.loss and self.loss_correlation) or self.gemodel is not None,
            "duplicate": bool(self.duplicate),
            "corrupt": bool(self.corrupt),
            "delay": bool(self.delay_ms),
            "reorder": bool(self.reorder),
            "rate": bool(self.rate_kbit),
            "segment": bool(self.segment),
            "reset_after": bool(self.reset_after),
            "blackhole_after": bool(self.blackhole_after),
            "hold_fin": bool(self.hold_fin_ms),
            "mtu": bool(self.mtu),
        }
        return tuple(kind for kind in KINDS if present[kind])

    def is_empty(self) -> bool:
        return not self.kinds()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Impairment":
        """Build from a scenario-file mapping; unknown keys are an error, not ignored."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown impairment field(s): {', '.join(sorted(unknown))}")
        values = dict(data)
        if isinstance(values.get("gemodel"), Mapping):
            values["gemodel"] = GilbertElliott(**values["gemodel"])
        return cls(**values)


# Every impairment kind, in the order a packet meets them on the router (netem's order:
# drop first, then duplicate, corrupt, delay/reorder; the rate limiter sits at egress).
# The stream kinds come after them (the impairer sees what netem and nftables let through),
# and mtu is the route the router forwards with.
KINDS = ("partition", "loss", "correlated_loss", "duplicate", "corrupt", "delay", "reorder", "rate",
         "segment", "reset_after", "blackhole_after", "hold_fin", "mtu")


# SOCKETLAB_BACKEND: "auto" (the best the kernel has) or "fallback" (never netem).
BACKEND_ENV = "SOCKETLAB_BACKEND"
BACKEND_CHOICES = ("auto", "fallback")


def backend_choice() -> str:
    """The one place that reads SOCKETLAB_BACKEND."""
    return os.environ.get(BACKEND_ENV, "").strip().lower() or "auto"


@dataclass(frozen=True)
class Capabilities:
    """What the router's kernel and tools can do, as measured by ``lab.programs.kernel_probe``."""

    netem: bool = False
    nft: bool = False
    nft_numgen: bool = False
    nft_dup: bool = False
    nft_meta_priority: bool = False
    nft_queue: bool = False
    nft_egress: bool = False
    iptables_nfqueue: bool = False
    iptables_statistic: bool = False
    iptables_connbytes: bool = False
    nfqueue_netlink: bool = False
    raw_socket: bool = False
    tc_tbf: bool = False
    tc_htb: bool = False
    ifb: bool = False
    errors: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_probe(cls, probe: Mapping[str, Any], backend: Optional[str] = None) -> "Capabilities":
        """Read the probe's JSON object.  A missing ability counts as absent; a key this
        version does not know is kept out (a newer probe may test more things).

        ``backend`` (default: the SOCKETLAB_BACKEND environment variable, else "auto")
        set to "fallback" hides netem from the choice, so a netem kernel uses the
        backends of a kernel without it (nftables, tc htb/tbf, the NFQUEUE impairer):
        for tests and benchmarks of both paths, and for users who want to compare.
        """
        flags = {f.name for f in fields(cls)} - {"errors"}
        values = {name: bool(probe.get(name, False)) for name in flags}
        caps = cls(errors=dict(probe.get("errors", {})), **values)
        return caps.for_backend(backend_choice() if backend is None else backend)

    def for_backend(self, choice: str) -> "Capabilities":
        """These abilities as planning may use them: "fallback" hides netem, so a netem
        kernel uses the backends of a kernel without it; "auto" changes nothing."""
        if choice not in BACKEND_CHOICES:
            raise ValueError(f"{BACKEND_ENV} must be one of {', '.join(BACKEND_CHOICES)}, got {choice!r}")
        if choice == "fallback" and self.netem:
            why = f"the kernel has it, but {BACKEND_ENV}=fallback chose the fallback backends"
            return replace(self, netem=False, errors={**self.errors, "netem": why})
        return self

    @property
    def nfqueue_impairer(self) -> bool:
        """The impairer needs an NFQUEUE target to send packets to it and a
        netlink queue to bind to."""
        return self.iptables_nfqueue and self.nfqueue_netlink

    def why_not(self, ability: str) -> str:
        """The probe's error text for a missing ability, for error messages."""
        return self.errors.get(ability, "not probed")


# -- the router's state, and how one change moves it -------------------------------------

State = Mapping[Link, Impairment]   # every impaired link -> its full impairment; others: none


@dataclass(frozen=True)
class Change:
    """One change of what the router does, as ``lab impair``, a scenario step or compose's
    environment asks for it.  Applied by ``next_state`` in this order: ``clear_all``,
    ``clear``, ``impair``, ``partition``, ``heal`` (and ``heal_all``).

    ``impair`` gives each link its new impairment; a partition in force on that link stays
    (impairing a cut link changes what it does once healed).  ``partition``/``heal`` cut
    and restore links and keep their other impairments for after the heal.
    """

    impair: Mapping[Link, Impairment] = field(default_factory=dict)
    partition: tuple = ()
    heal: tuple = ()
    clear: tuple = ()
    clear_all: bool = False
    heal_all: bool = False      # heal every partitioned link

    @classmethod
    def replace_all(cls, state: "State") -> "Change":
        """The change that makes ``state`` (partitions included) the whole new state."""
        return cls(impair=dict(state), clear_all=True,
                   partition=tuple(link for link, imp in state.items() if imp.partition))

    def to_dict(self) -> Dict[str, Any]:
        return {"impair": state_to_list(self.impair), "partition": [str(l) for l in self.partition],
                "heal": [str(l) for l in self.heal], "clear": [str(l) for l in self.clear],
                "clear_all": self.clear_all, "heal_all": self.heal_all}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Change":
        return cls(impair=state_from_list(data.get("impair", [])),
                   partition=tuple(Link.parse(t) for t in data.get("partition", [])),
                   heal=tuple(Link.parse(t) for t in data.get("heal", [])),
                   clear=tuple(Link.parse(t) for t in data.get("clear", [])),
                   clear_all=bool(data.get("clear_all", False)),
                   heal_all=bool(data.get("heal_all", False)))


def next_state(state: State, change: Change) -> Dict[Link, Impairment]:
    """The state after ``change``: the one place that says how a change moves the router
    (the scenario validator, ``lab run``, and the router's agent all use it)."""
    new: Dict[Link, Impairment] = {} if change.clear_all else dict(state)
    for link in change.clear:
        new.pop(link, None)
    for link, imp in change.impair.items():
        kept = new.get(link, Impairment()).partition
        new[link] = Impairment(**{**_values(imp), "partition": kept})
    for link in change.partition:
        new[link] = Impairment(**{**_values(new.get(link, Impairment())), "partition": True})
    healed = [link for link, imp in new.items() if imp.partition] if change.heal_all else []
    for link in tuple(change.heal) + tuple(healed):
        new[link] = Impairment(**{**_values(new.get(link, Impairment())), "partition": False})
    return {link: imp for link, imp in sorted(new.items(), key=lambda kv: (kv[0].src, kv[0].dst))
            if not imp.is_empty()}


def _values(imp: Impairment) -> Dict[str, Any]:
    return {f.name: getattr(imp, f.name) for f in fields(imp)}


def impairment_to_dict(imp: Impairment) -> Dict[str, Any]:
    """The fields that are set, as JSON-able data (``Impairment.from_dict`` reads it back)."""
    out: Dict[str, Any] = {}
    for f in fields(imp):
        value = getattr(imp, f.name)
        if value is None or (f.name == "partition" and not value):
            continue
        out[f.name] = value.to_dict() if hasattr(value, "to_dict") else value
    return out


def state_to_list(state: State) -> list:
    """[{"link": "clients->servers", field: value, ...}, ...]: a state as JSON-able data."""
    return [{"link": str(link), **impairment_to_dict(imp)} for link, imp in state.items()]


def state_from_list(items) -> Dict[Link, Impairment]:
    out: Dict[Link, Impairment] = {}
    for item in items:
        values = dict(item)
        link = Link.parse(values.pop("link"))
        out[link] = Impairment.from_dict(values)
    return out

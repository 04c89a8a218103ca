"""The scenario file format, declared once.

``SCENARIO.check`` validates the structure of a loaded file (types, keys, units,
ranges) and ``SCENARIO.schema()`` is the published JSON Schema.  Rules that need
more than one field at a time (a step's host must exist, a link's networks must
exist, ...) live in ``validate.py``.
"""
from __future__ import annotations

import re
import shlex
from typing import Any, Dict, Optional, Tuple

from .impairment import STREAM_FIELDS
from .topology import DEFAULT_PORT, HOST_NAME, MAX_CLIENTS, Limits
from . import units
from .fieldtypes import (INVALID, AnyOf, Boolean, Checker, Choice, Decimal, Duration, Field, Integer, ListOf,
                         MapOf, Percent, Rate, Record, Scalar, Size, Text, Type, Variants, did_you_mean,
                         one_of_text)
from .units import is_number

FORMAT_VERSION = 1

SCENARIO_NAME = r"^[a-z][a-z0-9-]{0,63}$"
NETWORK_NAME = HOST_NAME.pattern
STEP_NAME = r"^[a-z][a-z0-9_-]{0,63}$"
_NET = HOST_NAME.pattern.strip("^$")
LINK_PATTERN = rf"^\s*({_NET})\s*(->|<->)\s*({_NET})\s*$"
_LINK = re.compile(LINK_PATTERN)

AGGREGATES = ("max", "min", "mean", "sum", "count", "all", "any", "spread")
_REF = r"[a-z][a-z0-9_-]*(?:\.[A-Za-z0-9_]+)*"
EXPECT_KEY_PATTERN = rf"^(?:{_REF}|(?:{'|'.join(AGGREGATES)})\({_REF}\))$"
_AGG_ALIASES = {"avg": "mean", "average": "mean", "total": "sum", "maximum": "max", "minimum": "min"}
_AGG_CALL = re.compile(r"^\s*([A-Za-z_]+)\s*\((.*)\)\s*$")
_REF_RE = re.compile(rf"^{_REF}$")


def parse_link(text: str) -> Tuple[str, str, bool]:
    """``"clients -> servers"`` -> ("clients", "servers", False); ``<->`` sets both ways."""
    match = _LINK.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a link: write 'clients -> servers' (one direction) "
                         "or 'clients <-> servers' (both)")
    src, arrow, dst = match.groups()
    if src == dst:
        raise ValueError(f"{text!r}: a link joins two different networks")
    return src, dst, arrow == "<->"


def parse_key(key: str) -> Tuple[Optional[str], str, Tuple[str, ...]]:
    """``"max(probe.rtt_ms.max)"`` -> ("max", "probe", ("rtt_ms", "max"))."""
    aggregate = None
    ref = key.strip()
    call = _AGG_CALL.match(ref)
    if call:
        aggregate, ref = call.group(1), call.group(2).strip()
        if aggregate not in AGGREGATES:
            hint = (f" (did you mean {_AGG_ALIASES[aggregate]!r}?)" if aggregate in _AGG_ALIASES
                    else did_you_mean(aggregate, AGGREGATES))
            raise ValueError(f"unknown aggregate {aggregate!r}{hint}; "
                             f"aggregates: {one_of_text(AGGREGATES)}")
    if not _REF_RE.match(ref):
        raise ValueError(f"{key!r} is not STEP.FIELD.PATH (optionally inside an aggregate like max(...))")
    step, *path = ref.split(".")
    return aggregate, step, tuple(path)


def _check_regex(text: str) -> str:
    try:
        re.compile(text)
    except re.error as exc:
        raise ValueError(f"{text!r} is not a valid regular expression: {exc}") from None
    return text


class Measure(Type):
    """A number, or a duration or percentage to convert to the field's unit later.
    The value is ("number" | "duration" | "percent", float)."""

    expected = "a number, a duration (300ms) or a percentage (90%)"
    kinds = (str, int, float)

    def check(self, value, path, ck):
        if not self.accepts_kind(value):
            return self.wrong_type(value, path, ck)
        if is_number(value):
            return ("number", float(value))
        if value.strip().endswith("%"):
            try:
                return ("percent", units.parse_percent(value))
            except ValueError as exc:
                ck.error(path, str(exc))
                return INVALID
        try:
            return ("duration", units.parse_duration(value))
        except ValueError:
            ck.error(path, f"{value!r} is not a number, duration (300ms, 5s) or percentage (90%)")
            return INVALID

    def body(self):
        return {"anyOf": [{"type": "number"},
                          {"type": "string", "pattern": units.DURATION_PATTERN},
                          {"type": "string", "pattern": r"^-?[0-9.]+\s*%$"}]}


# Comparison operators of an expectation: name -> (type of its value, description).
OPERATORS: Dict[str, Tuple[Type, str]] = {
    "equals": (Scalar(), "The value equals this (writing the value alone means the same)."),
    "not": (Scalar(), "The value is anything but this."),
    "lt": (Measure(), "Less than. Units (300ms, 5s, 90%) convert to the field's unit."),
    "le": (Measure(), "Less than or equal."),
    "gt": (Measure(), "Greater than."),
    "ge": (Measure(), "Greater than or equal."),
    "between": (ListOf(Measure(), min_items=2, max_items=2),
                "[low, high], both ends included."),
    "one_of": (ListOf(Scalar(), min_items=1), "Equals one of these."),
    "contains": (Scalar(), "Text contains this substring, or a list contains this item."),
    "matches": (Text(convert=_check_regex), "A regular expression found in the text (Python re.search)."),
    "consistent_with_loss": (Percent(), "Exact binomial test: the result's sent/received counts "
                                        "are consistent with this (round-trip) loss."),
}
OPTIONS: Dict[str, Tuple[Type, str]] = {
    "confidence": (Percent(low=50, high=99.9999),
                   "For consistent_with_loss: the confidence of the two-sided interval (default 99%)."),
}


class ExpectationField(Type):
    """One list item of ``expect``: ``KEY: value`` or ``KEY: {operator: value, ...}``."""

    expected = "a 'step.field: test' mapping"
    kinds = (dict,)

    def __init__(self, description: str):
        super().__init__(description)
        self.op_record = Record("Tests applied to the value; all must pass.",
                                {name: Field(t, d) for name, (t, d) in {**OPERATORS, **OPTIONS}.items()})

    def check(self, value, path, ck):
        if not isinstance(value, dict):
            return self.wrong_type(value, path, ck)
        if len(value) != 1:
            ck.error(path, f"an expectation is one 'step.field: test' pair, this has {len(value)}: "
                           "start each one with its own '- '")
            return INVALID
        (key, test), = value.items()
        try:
            aggregate, step, field_path = parse_key(key)
        except ValueError as exc:
            ck.error(path + (key,), str(exc), key=True)
            return INVALID
        out: Dict[str, Any] = {"key": key, "aggregate": aggregate, "step": step, "path": field_path,
                               "tests": [], "confidence": None}
        if isinstance(test, dict):
            ops = self.op_record.check(test, path + (key,), ck)
            given = [op for op in test if op in OPERATORS]     # in the file's order
            if not given and not set(test) - set(self.op_record.fields):
                ck.error(path + (key,), f"needs an operator: {one_of_text(list(OPERATORS))}")
                return INVALID
            if ops.get("confidence") is not None and "consistent_with_loss" not in test:
                ck.error(path + (key, "confidence"), "confidence goes with consistent_with_loss", key=True)
            out["confidence"] = ops.get("confidence")
            out["tests"] = [(op, ops.get(op, INVALID), test[op]) for op in given]
        elif isinstance(test, list):
            ck.error(path + (key,), "expected a value or an {operator: value} mapping; "
                                    "to allow several values use {one_of: [...]}")
            return INVALID
        else:
            out["tests"] = [("equals", test, test)]
        return out

    def body(self):
        op_schema = self.op_record.schema()
        op_schema["minProperties"] = 1
        return {"type": "object", "minProperties": 1, "maxProperties": 1,
                "propertyNames": {"pattern": EXPECT_KEY_PATTERN},
                "additionalProperties": {"anyOf": [Scalar().schema(), op_schema]}}


# --- the pieces --------------------------------------------------------------------------

def _network(description: str = "A network name.") -> Text:
    return Text(description, pattern=NETWORK_NAME,
                pattern_help="is not a valid network name: up to 31 lowercase letters, digits or '-', "
                             "starting with a letter")


def _host(description: str = "") -> Text:
    return Text(description, pattern=HOST_NAME.pattern,
                pattern_help="is not a valid host name: up to 31 lowercase letters, digits or '-', "
                             "starting with a letter")


def _step_name(description: str = "") -> Text:
    return Text(description, pattern=STEP_NAME,
                pattern_help="is not a valid step name: lowercase letters, digits, '-' or '_', "
                             "starting with a letter")


LINK = Text("A directed link between two networks: 'clients -> servers' is what the router "
            "forwards from clients into servers; 'clients <-> servers' is both directions.",
            pattern=LINK_PATTERN, convert=parse_link,
            pattern_help="is not a link: write 'clients -> servers' (one direction) or "
                         "'clients <-> servers' (both)",
            examples=["clients -> servers", "clients <-> servers"])

HOSTS = AnyOf("A host name, 'clients' (every client), or a list of them.",
              _host(), ListOf(_host(), min_items=1))

NETWORK_PAIR = AnyOf("Two networks, [clients, servers] (both directions), or one link "
                     "('clients -> servers' for one direction only).",
                     ListOf(_network(), min_items=2, max_items=2), LINK)

GEMODEL = Record("Bursty loss (Gilbert-Elliott model, as tc netem's 'loss gemodel').", {
    "p": Field(Percent(), "Chance per packet of moving from the Good to the Bad state.", required=True),
    "r": Field(Percent(), "Chance per packet of moving from Bad back to Good (default 100% - p)."),
    "one_minus_h": Field(Percent(), "Loss chance while Bad (default 100%).", shown_default="100%"),
    "one_minus_k": Field(Percent(), "Loss chance while Good (default 0%).", shown_default="0%"),
})

IMPAIRMENT_FIELDS: Dict[str, Field] = {
    "link": Field(LINK, required=True),
    "loss": Field(Percent(), "Random loss: each packet is dropped with this chance."),
    "loss_correlation": Field(Percent(), "How much each loss decision depends on the previous one "
                                         "(needs loss)."),
    "gemodel": Field(GEMODEL),
    "delay": Field(Duration(), "Added one-way delay (300ms, 1.5s)."),
    "jitter": Field(Duration(), "Random variation around the delay (needs delay)."),
    "duplicate": Field(Percent(), "Chance of sending a packet twice."),
    "corrupt": Field(Percent(), "Chance of flipping a bit in a packet."),
    "reorder": Field(Percent(), "Share of packets sent at once, overtaking the delayed ones "
                                "(needs delay)."),
    "rate": Field(Rate(), "Bandwidth limit in bits per second: 512kbit, 1mbit, 1gbit."),
    "queue": Field(Integer(minimum=1), "Packets the rate limiter may queue before dropping "
                                       "(needs rate)."),
}

# -- stream faults (issue 19): declared in impairment.STREAM_FIELDS, typed here -----------
def _stream_type(value: str, minimum: float, maximum):
    if value == "bytes":
        return Integer(minimum=int(minimum), maximum=None if maximum is None else int(maximum))
    if value == "size":     # a byte count: `reset_after: 5` most likely meant 5B
        return Size(minimum=int(minimum), kind=units.BYTES)
    if value == "duration":
        return Duration()
    return Percent(low=minimum, high=100.0 if maximum is None else maximum)


IMPAIRMENT_FIELDS.update({f.key: Field(_stream_type(f.value, f.minimum, f.maximum), f.help)
                          for f in STREAM_FIELDS})
# -- end of stream faults -----------------------------------------------------------------

IMPAIRMENT = Record("The impairment of one link (or both directions with '<->'); "
                    "every field left out means 'none'.", IMPAIRMENT_FIELDS, title="an impairment")

_DEFAULT_LIMITS = Limits()
LIMITS = Record("What each host but the router may use, enforced by the engine, so a fork bomb or a "
                "memory leak stays on its host. The router has its own, larger limits.", {
    "pids": Field(Integer(minimum=Limits.MIN_PIDS, maximum=1 << 22),
                  "Most processes and threads on one host; a fork bomb stops there.",
                  default=_DEFAULT_LIMITS.pids, shown_default=_DEFAULT_LIMITS.pids),
    "memory": Field(Size(minimum=Limits.MIN_MEMORY),
                    "Most memory of one host, swap included (256MiB, 1GiB); beyond it the kernel's "
                    "OOM killer ends a process of that host.",
                    default=_DEFAULT_LIMITS.memory, shown_default=units.fmt_size(_DEFAULT_LIMITS.memory)),
    "cpus": Field(Decimal(minimum=0, maximum=1024),
                  "CPUs' worth of time one host may use (0.5: half a CPU); 0: no cap.",
                  default=_DEFAULT_LIMITS.cpus, shown_default=_DEFAULT_LIMITS.cpus),
}, title="the limits")

IMAGE_REF = r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,254}$"


def _split_command(text: str) -> list:
    try:
        argv = shlex.split(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a command line: {exc}") from None
    if not argv:
        raise ValueError("must not be empty")
    return argv


IMAGE = Text("An image in the engine (REF as `docker images` shows it, e.g. myservice:test): the host "
             "runs it instead of socketlab's host image, with its own command (or `command`), and "
             "nothing of socketlab's runs inside it. `lab validate --check-images` checks it is there.",
             pattern=IMAGE_REF, pattern_help="is not an image reference (name:tag, registry/name@sha256:...)",
             examples=["myservice:test", "socketlab-host:c"])
COMMAND = AnyOf("The host's command: a list of arguments, or one line split like a shell does "
                "(no shell runs it). Left out: the image's own command (socketlab's image: nothing).",
                Text(convert=_split_command), ListOf(Text(min_length=0), min_items=1))
READY = Variants("When the host counts as up: its container runs (left out), a TCP port accepts "
                 "connections from the router, or a text appears in its output. A host that exits "
                 "or is not ready in time fails bring-up with its last output lines.",
                 "ready condition", {"timeout": Field(Duration(positive=True), "How long bring-up waits for "
                                                                             "it (default 60s).")}, {
                     "port": ("A TCP port on the host that accepts a connection from the router.",
                              {"port": Field(Integer(minimum=1, maximum=65535), required=True)}),
                     "log": ("A text the host prints (stdout or stderr) when it is up.",
                             {"log": Field(Text(), required=True)}),
                 })


def _named(record: Record, expected: str) -> Record:
    record.expected = expected      # what a wrong value is told it should be
    return record


def _own_image_fields(image_required: bool) -> Dict[str, Field]:
    return {"image": Field(IMAGE, required=image_required),
            "command": Field(COMMAND),
            "ready": Field(READY)}


SERVER = AnyOf("What the server host runs: uppercase (the TCP and UDP uppercase servers), idle "
               "(nothing), or {image, command, ready}: your own image.",
               Choice("", ["uppercase", "idle"]),
               _named(Record("The server runs its own image.", _own_image_fields(True), title="the server"),
                      "an {image, command, ready} mapping"))
CLIENTS = AnyOf(f"How many clients (client1..clientN), 0..{MAX_CLIENTS}; or {{count, image, command, "
                "ready}}: that many clients, each running your own image.",
                Integer(minimum=0, maximum=MAX_CLIENTS),
                _named(Record("Clients that run their own image.",
                              {"count": Field(Integer(minimum=0, maximum=MAX_CLIENTS), "How many clients.",
                                              default=1, shown_default=1),
                               **_own_image_fields(True)}, title="the clients"),
                       "a {count, image, command, ready} mapping"))
EXTRA_HOST = Record("An extra host: socketlab's image running nothing, or `image`/`command` of your own.",
                    {"network": Field(_network("The network it is on."), required=True),
                     **_own_image_fields(False)}, title="an extra host")

TOPOLOGY = Record("The lab's networks and hosts. Left out: the class lab with one client "
                  "and the uppercase server.", {
    "clients": Field(CLIENTS, default=1, shown_default=1),
    "networks": Field(ListOf(_network(), partial=True), "Extra networks besides clients and servers; the router "
                                          "joins every network.", default=[], shown_default=[]),
    "hosts": Field(MapOf("Extra hosts by name; each runs nothing at start unless it has an image "
                         "or a command.", _host(), EXTRA_HOST),
                   default={}, shown_default={}),
    "server": Field(SERVER, f"uppercase: the TCP and UDP uppercase servers on port {DEFAULT_PORT}; idle: "
                            "nothing (start your own in a step); {image: REF, ...}: your own image.",
                    default="uppercase", shown_default="uppercase"),
    "tcp_mode": Field(Choice("", ["iterative", "concurrent"]),
                      "How the uppercase TCP server serves clients: one at a time (iterative) or "
                      "a thread each (concurrent).", shown_default="concurrent"),
    "capture": Field(Boolean(), "Write a pcap of every router interface to the run's artifacts.",
                     default=False, shown_default=False),
    "limits": Field(LIMITS, "Per-host limits; left out: "
                            f"{_DEFAULT_LIMITS.describe()} per host.",
                    default=LIMITS.defaults(), shown_default={}),
}, title="the topology")

# --- timing that does not ride on the clock (issue 16) -------------------------------------
# `after` holds a step until another has ended; `together` starts a run step's hosts held and
# lets them go at one moment (the start barrier, lab/programs/step_exec.py). With the
# aggregate spread(...) (max - min over the hosts) a scenario judges order and queueing from
# the hosts' own timestamps (started_at, ended_at) rather than from when `lab` saw them.
TIMING_STEP_FIELDS: Dict[str, Field] = {
    "after": Field(_step_name("The name of an earlier step."),
                   "Start only once that step has ended (a run step: all its processes; any other "
                   "step: once done), and not before `at`; later steps keep their gaps after it."),
}
TIMING_RUN_FIELDS: Dict[str, Field] = {
    "together": Field(Boolean(), "Start the command on every host of the step held, then let them "
                                 "all go at one moment (the start barrier), with every other "
                                 "together step of the same `at`: they start together however "
                                 "long each `docker exec` takes. Not with stagger.",
                      default=False, shown_default=False),
}
# --- end of issue 16's fields --------------------------------------------------------------

COMMON_STEP_FIELDS: Dict[str, Field] = {
    "at": Field(Duration(), "When the step starts, from the start of the scenario (0s, 1.5s, 2m). "
                            "Steps are listed in time order.", required=True),
    "name": Field(_step_name(), "A name to refer to the step (stop:, expect). "
                                "Default: step-N, N its place in the list from 0."),
    **TIMING_STEP_FIELDS,
}

STEP = Variants("One timed action.", "step", COMMON_STEP_FIELDS, {
    "run": ("Run a shell command on one or more hosts.", {
        "run": Field(Text(), "The shell command (sh -c); runs in /work, the shared folder.",
                     required=True),
        "on": Field(HOSTS, required=True),
        "background": Field(Boolean(), "Do not wait for it to end; it is stopped (SIGTERM) when "
                                       "the scenario ends. For servers.",
                            default=False, shown_default=False),
        "stagger": Field(Duration(), "With several hosts: the i-th host starts (i-1) x stagger "
                                     "after the step's time.", default=0.0, shown_default="0s"),
        "timeout": Field(Duration(positive=True), "Killed and marked timed_out after this long "
                                                  "(default 60s; background steps: none)."),
        "ready": Field(Text(), "Later steps wait until this text appears in the output."),
        "ready_timeout": Field(Duration(positive=True), "How long to wait for ready before the "
                                                        "scenario fails (default 60s: the wait "
                                                        "ends when ready appears, so only a slow start "
                                                        "waits long).",
                               default=60.0, shown_default="60s"),
        **TIMING_RUN_FIELDS,
    }),
    "impair": ("Replace the impairment of a link from now on.", {
        "impair": Field(IMPAIRMENT, "The link's new impairment; only `link` removes every "
                                    "impairment from it.", required=True),
    }),
    "partition": ("Drop every packet between two networks.", {
        "partition": Field(NETWORK_PAIR, required=True),
    }),
    "heal": ("End a partition.", {"heal": Field(NETWORK_PAIR, required=True)}),
    "stop": ("Stop (SIGTERM) the processes of earlier run steps.", {
        "stop": Field(AnyOf("A run step's name, or a list of them.", _step_name(),
                            ListOf(_step_name(), min_items=1)), required=True),
    }),
    "kill": ("Kill (SIGKILL) the processes of earlier run steps.", {
        "kill": Field(AnyOf("A run step's name, or a list of them.", _step_name(),
                            ListOf(_step_name(), min_items=1)), required=True),
    }),
    "restart": ("Stop the processes of earlier run steps, then run them again.", {
        "restart": Field(AnyOf("A run step's name, or a list of them.", _step_name(),
                               ListOf(_step_name(), min_items=1)), required=True),
    }),
    "host": ("Stop, start or restart whole hosts (containers).", {
        "host": Field(Variants("", "host action", {}, {
            "stop": ("Stop the host.", {"stop": Field(HOSTS, required=True)}),
            "start": ("Start a stopped host.", {"start": Field(HOSTS, required=True)}),
            "restart": ("Restart the host.", {"restart": Field(HOSTS, required=True)}),
        }), "What to do to which hosts: {stop: server}, {start: server}, {restart: [client1, client2]}.",
            required=True),
    }),
    "wait": ("Let time pass: the scenario does not end before at + wait.", {
        "wait": Field(Duration(positive=True), required=True),
    }),
})

EXPECTATION = ExpectationField("'STEP.FIELD.PATH: value' or 'STEP.FIELD: {operator: value}'; an aggregate "
                          "(max, min, mean, sum, count, all, any) around the key combines the step's hosts.")

SCENARIO = Record("A socketlab scenario: a lab, timed steps, and expectations on the results.", {
    "version": Field(Integer(minimum=FORMAT_VERSION, maximum=FORMAT_VERSION),
                     "The format version (1).", default=FORMAT_VERSION, shown_default=FORMAT_VERSION),
    "name": Field(Text(pattern=SCENARIO_NAME,
                       pattern_help="is not a valid scenario name: lowercase letters, digits and '-', "
                                    "starting with a letter, at most 64"),
                  "The scenario's name.", required=True),
    "description": Field(Text(), "Shown to students: what to observe and why.", required=True),
    "topology": Field(TOPOLOGY),
    "impairments": Field(ListOf(IMPAIRMENT, partial=True), "The impairments at the start (t = 0).",
                         default=[], shown_default=[]),
    "steps": Field(ListOf(STEP, partial=True), "What happens when, in time order.", default=[], shown_default=[]),
    "expect": Field(ListOf(EXPECTATION, partial=True), "What the results must show.",
                    default=[], shown_default=[]),
}, title="a scenario", extensions=True)


def check(doc_data: Any, ck: Checker) -> Any:
    """Structural check of a whole file; the normalised data (INVALID where it failed)."""
    if doc_data is None:
        ck.error((), "the file is empty: a scenario needs at least name and description")
        return INVALID
    return SCENARIO.check(doc_data, (), ck)


__all__ = ["SCENARIO", "TOPOLOGY", "IMPAIRMENT", "STEP", "OPERATORS", "AGGREGATES", "check",
           "parse_key", "parse_link"]

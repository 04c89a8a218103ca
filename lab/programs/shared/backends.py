"""Turn per-link impairments into router commands, as data.

Nothing here runs anything.  ``plan()`` returns argv lists (and nftables rulesets to
feed to ``nft -f -``) for the caller to run inside the router container, in order.

Which mechanism does what, per directed link A->B (A_if, B_if: the router's interfaces
on networks A and B):

* tc netem, where the kernel has it: one netem qdisc per link on B_if's egress.
* nftables (tables ``ip socketlab`` and ``ip6 socketlab``, forward hook, after iptables'
  filter table): partition (drop), plain loss (``numgen random``), duplication (``dup to``) and, for
  per-link tc classes, ``meta priority set`` so the packet lands in the link's class.
* tc htb on B_if (tbf if there is no htb and only one network can feed B_if): rate and
  queue limit, and the per-link classes that hold each link's netem.
* the userspace NFQUEUE impairer (``lab.programs.impairer``), where netem is missing:
  delay, jitter, reorder, corrupt, correlated and Gilbert-Elliott loss, and duplication
  on links it already handles.  iptables ``-j NFQUEUE --queue-bypass`` in FORWARD sends
  it each link's packets, one queue number per link.  Bypass means fail-open: if the
  impairer dies, packets flow unimpaired, so the caller must keep checking it is alive.

A kind that no available mechanism can apply raises ``UnsupportedImpairment`` before
anything is run.  To change impairments at a step: run ``transition(old, new)``
(the old plan's clear, then the new plan's apply).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from .impairment import KINDS, STREAM_KINDS, Capabilities, Impairment, Link, impairment_to_dict

# Backend names, as shown by ``lab doctor`` and in Plan.backends.
NETEM = "tc netem"
NFT_DROP = "nftables drop"
NFT_NUMGEN = "nftables numgen"
NFT_DUP = "nftables dup"
IMPAIRER = "nfqueue impairer"
HTB = "tc htb"
TBF = "tc tbf"
ROUTE_MTU = "ip route mtu"
NFT_EGRESS = "nftables egress"   # loss on a link with mtu: each fragment, as it leaves
MTU_TABLE_BASE = 100          # link i's routing table (and its rule's preference) for mtu

NFT_TABLE = "socketlab"
NFT_GUARD_TABLE = "socketlab_guard"   # only while a change to a partitioned link is made
NFT_EGRESS_MARK = 0x5C000000   # | queue: the forward chain marks an mtu link's packets for egress
NFT_STREAMS_TABLE = "socketlab_streams"   # the impairer's set of dead (reset, black-holed) connections
NFT_FAMILIES = ("ip", "ip6")
NFT_CHAIN = "impair"          # not "fwd": that is an nftables keyword
NUMGEN_MOD = 1_000_000        # numgen resolution: 0.0001 %
DEFAULT_QUEUE_LIMIT = 1000    # packets, like a veth's txqueuelen
NETEM_HOLD_LIMIT = 10_000     # netem's own limit when no queue limit is asked: it also counts
                              # packets being delayed, so netem's default 1000 drops at ~10k pkt/s x 100 ms
IMPAIRER_CONFIG_VERSION = 2    # 2: each link's entry holds an "impairment" (impairment_to_dict's form)
IMPAIRER_QUEUE_MAXLEN = 20_000  # kernel-side queue length per NFQUEUE queue (held packets count)
MTU_BYTES = 1514              # Ethernet frame: converts packet counts to tbf's byte limit
UNLIMITED_RATE = "100gbit"    # htb class rate for links that only need a class for their netem

# Model fields each kind carries, used to give the impairer only what it must do.
_KIND_FIELDS = {
    "partition": ("partition",),
    "loss": ("loss",),
    "correlated_loss": ("loss", "loss_correlation", "gemodel"),
    "duplicate": ("duplicate",),
    "corrupt": ("corrupt",),
    "delay": ("delay_ms", "jitter_ms"),
    "reorder": ("reorder",),
    "rate": ("rate_kbit", "queue_limit"),
    "segment": ("segment", "gap_ms", "connections"),
    "reset_after": ("reset_after", "connections"),
    "blackhole_after": ("blackhole_after", "connections"),
    "hold_fin": ("hold_fin_ms", "connections"),
}


class UnsupportedImpairment(Exception):
    """An impairment that nothing on this router can apply.  Raised before any command runs."""


@dataclass(frozen=True)
class Command:
    """One command for the router: argv, and text for its standard input if any."""

    argv: Tuple[str, ...]
    stdin: Optional[str] = None

    def __str__(self) -> str:
        return " ".join(self.argv) + (" <<ruleset" if self.stdin is not None else "")


@dataclass(frozen=True)
class Plan:
    """What to run on the router for one impairment state.

    apply:  run in order after the impairer (if ``impairer_config``) is up and has printed ready.
    clear:  run in order to remove exactly what ``apply`` installed (each command then succeeds).
    impairer_config: the JSON-able config for the impairer, or None when no link needs it.
    backends: link -> kind -> backend name, for every kind set on every impaired link.
    """

    apply: Tuple[Command, ...] = ()
    clear: Tuple[Command, ...] = ()
    impairer_config: Optional[dict] = None
    backends: Mapping[Link, Mapping[str, str]] = field(default_factory=dict)
    cut: Tuple[Tuple[str, str], ...] = ()   # (in, out) interfaces of links nftables partitions
    tc_qdiscs: Tuple[Tuple[str, str, str], ...] = ()  # (link, device, handle): each link's own qdiscs

    @property
    def needs_impairer(self) -> bool:
        return self.impairer_config is not None

    def backend_table(self) -> Dict[str, Dict[str, str]]:
        """``backends`` with string keys, for JSON and display."""
        return {str(link): dict(kinds) for link, kinds in self.backends.items()}


def transition(old: Optional[Plan], new: Plan) -> Tuple[Command, ...]:
    """Commands to move the router from ``old`` (None: nothing installed) to ``new``.

    Clear-then-apply: between the two, for the few milliseconds the commands take (the
    router runs them as one script), packets pass unimpaired.  Packets the impairer already holds keep their release times.  Except
    on a link cut before or after: a guard table drops its packets from before the clear
    until after the apply, so a partition starts and ends exactly between two packets
    (a TCP sender cannot slip a burst through the gap).
    """
    cut = sorted(set(old.cut if old else ()) | set(new.cut))
    body = (old.clear if old else ()) + new.apply
    if not cut:
        return body
    return (Command(("nft", "-f", "-"), stdin=guard_ruleset(cut)),) + body + guard_removal()


def guard_ruleset(cut: Sequence[Tuple[str, str]]) -> str:
    """A table that drops what goes from each in-interface to its out-interface."""
    lines = []
    for family in NFT_FAMILIES:
        lines += [f"table {family} {NFT_GUARD_TABLE} {{", f"\tchain {NFT_CHAIN} {{",
                  "\t\ttype filter hook forward priority filter + 5; policy accept;"]
        lines += [f"\t\tiifname {_nft_quoted(i)} oifname {_nft_quoted(o)} drop" for i, o in cut]
        lines += ["\t}", "}"]
    return "\n".join(lines) + "\n"


def guard_removal() -> Tuple[Command, ...]:
    return tuple(Command(("nft", "delete", "table", family, NFT_GUARD_TABLE)) for family in NFT_FAMILIES)


# -- choosing a backend ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    caps: Capabilities
    single_source: bool  # only one other network can feed each interface (router has 2)
    per_segment: bool = False  # every impaired link passes through the impairer's queue

    @property
    def per_link_classes(self) -> bool:
        """Can tc put each link's packets in a class of its own on the egress interface?"""
        if self.caps.tc_htb and (self.caps.nft_meta_priority or self.single_source):
            return True
        return self.single_source  # no classes needed: one qdisc at the root is the link's

    @property
    def netem(self) -> bool:
        return self.caps.netem and self.per_link_classes

    @property
    def impairer(self) -> bool:
        return self.caps.nfqueue_impairer


def _netem_missing_reason(ctx: _Context) -> str:
    if not ctx.caps.netem:
        return f"tc netem: {ctx.caps.why_not('netem')}"
    return "tc netem: cannot be applied per link (needs tc htb and nftables 'meta priority')"


def _impairer_missing_reason(caps: Capabilities) -> str:
    missing = [name for name in ("iptables_nfqueue", "nfqueue_netlink") if not getattr(caps, name)]
    return "nfqueue impairer: " + "; ".join(f"{name}: {caps.why_not(name)}" for name in missing)


def _choose(kind: str, ctx: _Context, impairer_on_link: bool, fragments: bool = False) -> str:
    """The backend for one kind on one link, or UnsupportedImpairment naming what is missing.
    ``fragments``: the link has an ``mtu``, so its loss must hit each fragment the router
    makes (conntrack reassembles fragments before the forward hook, and the kernel
    fragments after postrouting: only an egress hook sees them)."""
    caps = ctx.caps
    # (backend, usable here?) in order of preference
    options: Sequence[Tuple[str, bool]]
    if kind == "partition":
        options = [(NFT_DROP, caps.nft), (NETEM, ctx.netem), (IMPAIRER, ctx.impairer)]
    elif kind == "loss" and fragments:
        options = [(NETEM, ctx.netem), (NFT_EGRESS, caps.nft_egress and caps.nft_numgen)]
    elif kind == "loss":
        options = [(NETEM, ctx.netem), (NFT_NUMGEN, caps.nft_numgen), (IMPAIRER, ctx.impairer)]
    elif kind in ("correlated_loss", "corrupt", "delay", "reorder"):
        options = [(NETEM, ctx.netem), (IMPAIRER, ctx.impairer)]
    elif kind == "duplicate":
        # nft's copy leaves at once, skipping the impairer's delay, so links the impairer
        # handles anyway get their duplicates from the impairer (a raw socket).
        options = [(NETEM, ctx.netem),
                   (NFT_DUP, caps.nft_dup and not impairer_on_link),
                   (IMPAIRER, ctx.impairer and caps.raw_socket)]
    elif kind == "rate":
        options = [(HTB, caps.tc_htb and (caps.nft_meta_priority or ctx.single_source)),
                   (TBF, caps.tc_tbf and ctx.single_source)]
    elif kind in STREAM_KINDS:
        # Always the impairer, with netem or without: no qdisc re-segments or resets TCP.
        # Its pieces and resets leave through a raw socket.
        options = [(IMPAIRER, ctx.impairer and caps.raw_socket)]
    elif kind == "mtu":
        options = [(ROUTE_MTU, True)]   # iproute2 is in the image
    else:
        raise ValueError(f"unknown impairment kind {kind!r}")
    for backend, usable in options:
        if usable:
            return backend
    raise UnsupportedImpairment(_unsupported_message(kind, ctx, [b for b, _ in options]))


def _unsupported_message(kind: str, ctx: _Context, backends: Sequence[str]) -> str:
    caps = ctx.caps
    reasons = []
    for backend in backends:
        if backend == NETEM:
            reasons.append(_netem_missing_reason(ctx))
        elif backend == IMPAIRER:
            reasons.append(_impairer_missing_reason(caps)
                           + ("" if caps.raw_socket or kind not in ("duplicate",) + STREAM_KINDS
                              else f"; raw_socket: {caps.why_not('raw_socket')}"))
        elif backend in (HTB, TBF) and not ctx.single_source:
            reasons.append(f"{backend}: with more than two networks needs tc htb and nftables "
                           "'meta priority' to shape one link without the others")
        else:
            ability = {NFT_DROP: "nft", NFT_NUMGEN: "nft_numgen", NFT_DUP: "nft_dup",
                       HTB: "tc_htb", TBF: "tc_tbf", NFT_EGRESS: "nft_egress"}[backend]
            reasons.append(f"{backend}: {caps.why_not(ability)}")
    options = " or ".join(backends)
    return (f"{kind.replace('_', ' ')} needs {options}; none is available here "
            f"({'; '.join(reasons)})")


def choose_backends(imp: Impairment, ctx: _Context) -> Dict[str, str]:
    """kind -> backend for one link's impairment."""
    chosen = {kind: _choose(kind, ctx, impairer_on_link=False, fragments=bool(imp.mtu))
              for kind in imp.kinds() if kind != "duplicate"}
    if "duplicate" in imp.kinds():
        impairer_on_link = ctx.per_segment or IMPAIRER in chosen.values()
        chosen["duplicate"] = _choose("duplicate", ctx, impairer_on_link)
    return {kind: chosen[kind] for kind in imp.kinds()}


def describe_backends(caps: Capabilities, networks: int = 3) -> Dict[str, str]:
    """kind -> what applies it on a router joining ``networks`` networks, or why nothing can.

    For ``lab doctor``.  Per link the duplicate backend can differ (see ``_choose``).
    """
    ctx = _Context(caps, single_source=networks <= 2)
    table = {}
    for kind in KINDS:
        try:
            backend = _choose(kind, ctx, impairer_on_link=False)
        except UnsupportedImpairment as exc:
            table[kind] = f"unavailable: {exc}"
            continue
        if kind == "duplicate" and backend == NFT_DUP and ctx.impairer and caps.raw_socket:
            backend += f" ({IMPAIRER} on links it already handles)"
        table[kind] = backend
    return table


# -- command builders (small, pure) ---------------------------------------------------------


def _pct(value: float) -> str:
    return f"{value:g}%"


def _ms(value: float) -> str:
    return f"{value:g}ms"


def netem_args(imp: Impairment, kinds: Sequence[str]) -> List[str]:
    """``netem ...`` arguments for the given kinds of ``imp``."""
    args = ["netem"]
    if "rate" in kinds or imp.rate_kbit:
        # The rate limiter's backlog sits in netem when netem is the class's leaf.
        limit = imp.queue_limit or DEFAULT_QUEUE_LIMIT
    else:
        limit = NETEM_HOLD_LIMIT
    args += ["limit", str(limit)]
    if "delay" in kinds:
        args += ["delay", _ms(imp.delay_ms)]
        if imp.jitter_ms:
            args.append(_ms(imp.jitter_ms))
    if "partition" in kinds:
        args += ["loss", "random", "100%"]
    elif "loss" in kinds:
        args += ["loss", "random", _pct(imp.loss)]
    elif "correlated_loss" in kinds:
        if imp.gemodel is not None:
            ge = imp.gemodel
            args += ["loss", "gemodel", _pct(ge.p), _pct(ge.r), _pct(ge.one_minus_h),
                     _pct(ge.one_minus_k)]
        else:
            args += ["loss", "random", _pct(imp.loss), _pct(imp.loss_correlation)]
    if "duplicate" in kinds:
        args += ["duplicate", _pct(imp.duplicate)]
    if "corrupt" in kinds:
        args += ["corrupt", _pct(imp.corrupt)]
    if "reorder" in kinds:
        args += ["reorder", _pct(imp.reorder)]
    return args


def tbf_args(rate_kbit: float, queue_limit: Optional[int]) -> List[str]:
    """tbf takes its queue in bytes: full-size frames times the packet limit."""
    rate_bytes = rate_kbit * 1000 / 8
    burst = max(4 * MTU_BYTES, int(rate_bytes / 100))  # 10 ms of traffic, at least 4 frames
    limit = (queue_limit or DEFAULT_QUEUE_LIMIT) * MTU_BYTES
    return ["tbf", "rate", f"{rate_kbit:g}kbit", "burst", str(burst), "limit", str(limit)]


def _tc(*args: str) -> Command:
    return Command(("tc",) + args)


def _classid(minor: int) -> str:
    return f"1:{minor:x}"  # tc and nftables both read the minor as hex


def _nft_quoted(name: str) -> str:
    return f'"{name}"'


def _numgen_threshold(percent: float) -> int:
    threshold = round(percent / 100 * NUMGEN_MOD)
    if percent > 0 and threshold == 0:
        raise UnsupportedImpairment(f"{percent}% is below nftables numgen's resolution "
                                    f"({100 / NUMGEN_MOD}%)")
    return threshold


def _numgen_match(percent: float) -> str:
    """The nft match for "this packet, with probability percent", '' for every packet
    (nftables refuses `mod N < N`: the value must be below the modulus)."""
    threshold = _numgen_threshold(percent)
    return "" if threshold >= NUMGEN_MOD else f"numgen random mod {NUMGEN_MOD} < {threshold} "


@dataclass
class _Builder:
    """Accumulates one plan's pieces while walking the links."""

    ifnames: Mapping[str, str]
    ctx: _Context
    nft_rules: List[str] = field(default_factory=list)
    egress: Dict[str, List[Tuple[Link, Impairment, List[str]]]] = field(default_factory=dict)
    impairer_links: List[dict] = field(default_factory=list)
    nfqueue_rules: List[Tuple[str, ...]] = field(default_factory=list)
    tc_qdiscs: List[Tuple[str, str, str]] = field(default_factory=list)  # (link, dev, handle)
    egress_rules: Dict[str, List[str]] = field(default_factory=dict)   # dev -> its egress chain's rules
    route_apply: List[Command] = field(default_factory=list)
    route_clear: List[Command] = field(default_factory=list)

    def add_link(self, link: Link, imp: Impairment, kinds: Mapping[str, str], queue: int) -> None:
        """Record one link; ``queue`` is its impairer queue number, if it needs the impairer."""
        src_if, dst_if = self.ifnames[link.src], self.ifnames[link.dst]
        match = f"iifname {_nft_quoted(src_if)} oifname {_nft_quoted(dst_if)}"
        by_backend: Dict[str, List[str]] = {}
        for kind, backend in kinds.items():
            by_backend.setdefault(backend, []).append(kind)

        # Each rule counts what it does, named by its comment ("KIND LINK"): `lab watch`
        # reads the counters back per link and kind.
        if NFT_DROP in by_backend:
            self.nft_rules.append(f"{match} counter drop comment {_nft_quoted(f'partition {link}')}")
        if NFT_NUMGEN in by_backend:
            self.nft_rules.append(f"{match} {_numgen_match(imp.loss)}counter drop "
                                  f"comment {_nft_quoted(f'loss {link}')}")
        tc_kinds = by_backend.get(NETEM, []) + by_backend.get(HTB, []) + by_backend.get(TBF, [])
        if tc_kinds:
            into_dst = self.egress.setdefault(dst_if, [])
            into_dst.append((link, imp, by_backend.get(NETEM, [])))
            if self.uses_htb and self.ctx.caps.nft_meta_priority:
                # htb reads skb->priority before any filter, so this puts the packet in
                # the link's class.  Before the dup rule, so the copies are shaped too.
                minor = 0x10 + len(into_dst) - 1
                self.nft_rules.append(f"{match} meta priority set {_classid(minor)}")
        if NFT_EGRESS in by_backend:
            # Marked here, dropped as each fragment leaves: the kernel copies the mark
            # into every fragment it makes.
            mark = f"0x{NFT_EGRESS_MARK | queue:08x}"
            self.nft_rules.append(f"{match} meta mark set {mark}")
            self.egress_rules.setdefault(dst_if, []).append(
                f"meta mark {mark} {_numgen_match(imp.loss)}counter drop comment {_nft_quoted(f'loss {link}')}")
        if NFT_DUP in by_backend:
            # The copy is routed to the packet's own destination, out of B's interface.
            # "{family}" is filled in per table: dup needs to know the address family.
            self.nft_rules.append(f"{match} {_numgen_match(imp.duplicate)}counter "
                                  f"dup to {{family}} daddr device {_nft_quoted(dst_if)} "
                                  f"comment {_nft_quoted(f'duplicate {link}')}")
        if ROUTE_MTU in by_backend:
            self.add_mtu_route(src_if, dst_if, imp.mtu, MTU_TABLE_BASE + queue)
        if IMPAIRER in by_backend or self.ctx.per_segment:
            entry = _impairer_link(link, imp, by_backend.get(IMPAIRER, []), queue,
                                   split=self.ctx.per_segment)
            if tc_kinds and self.uses_htb and self.ctx.caps.nft_meta_priority:
                # The impairer's duplicates skip the forward chain, so it tags them itself.
                entry["skb_priority"] = (1 << 16) | (0x10 + len(self.egress[dst_if]) - 1)
            self.impairer_links.append(entry)
            target = ("-j", "NFQUEUE", "--queue-num", str(queue), "--queue-bypass")
            only = _queued_only(imp, by_backend.get(IMPAIRER, []), self.ctx)
            for match in only if only is not None else [()]:
                self.nfqueue_rules.append(("FORWARD", "-i", src_if, "-o", dst_if) + match + target)

    def add_mtu_route(self, src_if: str, dst_if: str, mtu: int, table: int) -> None:
        """Packets that came in on ``src_if`` are routed by a table of their own whose
        routes into ``dst_if``'s networks carry ``mtu``: the kernel then fragments what is
        larger, or (DF set) drops it with ICMP "fragmentation needed"."""
        routes = (f"for net in $(ip -4 -o route show table main dev {dst_if} scope link | cut -d' ' -f1); "
                  f"do ip route replace \"$net\" dev {dst_if} mtu {mtu} table {table} || exit 1; done")
        self.route_apply += [Command(("sh", "-c", routes)),
                             Command(("ip", "rule", "add", "iif", src_if, "lookup", str(table),
                                      "pref", str(table)))]
        self.route_clear += [Command(("ip", "rule", "del", "pref", str(table))),
                             Command(("ip", "route", "flush", "table", str(table)))]

    @property
    def uses_htb(self) -> bool:
        return self.ctx.caps.tc_htb and (self.ctx.caps.nft_meta_priority or self.ctx.single_source)

    def tc_commands(self) -> Tuple[List[Command], List[Command]]:
        """The egress qdisc trees, and for each the command deleting it."""
        apply, clear = [], []
        for dst_if, links in sorted(self.egress.items()):
            if self.uses_htb:
                apply += self._htb_tree(dst_if, links)
            else:
                apply += self._root_tree(dst_if, links)
            clear.append(_tc("qdisc", "del", "dev", dst_if, "root"))
        return apply, clear

    def _htb_tree(self, dst_if: str, links) -> List[Command]:
        """An htb root with one class per link; unclassified traffic is sent unshaped.

        With nftables, a forward rule (see add_link) sets the packet's priority to its
        link's class id.  Without it there is only one link into this interface, so its
        class is htb's default.
        """
        use_priority = self.ctx.caps.nft_meta_priority
        root = ["qdisc", "replace", "dev", dst_if, "root", "handle", "1:", "htb"]
        if not use_priority:
            root += ["default", f"{0x10:x}"]
        commands = [_tc(*root)]
        for index, (_link, imp, netem_kinds) in enumerate(links):
            minor = 0x10 + index
            rate = f"{imp.rate_kbit:g}kbit" if imp.rate_kbit else UNLIMITED_RATE
            commands.append(_tc("class", "add", "dev", dst_if, "parent", "1:", "classid",
                                _classid(minor), "htb", "rate", rate, "ceil", rate,
                                "quantum", str(MTU_BYTES)))
            if netem_kinds:
                leaf = netem_args(imp, netem_kinds)
            else:
                leaf = ["pfifo", "limit", str(imp.queue_limit or DEFAULT_QUEUE_LIMIT)]
            self.tc_qdiscs.append((str(_link), dst_if, f"{minor:x}:"))
            commands.append(_tc("qdisc", "add", "dev", dst_if, "parent", _classid(minor),
                                "handle", f"{minor:x}:", *leaf))
        return commands

    def _root_tree(self, dst_if: str, links) -> List[Command]:
        """No htb: only valid with one link into the interface, whose qdisc is the root."""
        (_link, imp, netem_kinds), = links  # _Context guarantees a single source here
        self.tc_qdiscs.append((str(_link), dst_if, "1:"))
        if imp.rate_kbit and netem_kinds:
            self.tc_qdiscs.append((str(_link), dst_if, "10:"))
        if imp.rate_kbit:
            commands = [_tc("qdisc", "replace", "dev", dst_if, "root", "handle", "1:",
                            *tbf_args(imp.rate_kbit, imp.queue_limit))]
            if netem_kinds:
                commands.append(_tc("qdisc", "add", "dev", dst_if, "parent", "1:1",
                                    "handle", "10:", *netem_args(imp, netem_kinds)))
            return commands
        return [_tc("qdisc", "replace", "dev", dst_if, "root", "handle", "1:",
                    *netem_args(imp, netem_kinds))]

    def nft_ruleset(self) -> Optional[str]:
        """One table per address family (``dup`` is not allowed in an ``inet`` table)."""
        if not self.nft_rules:
            return None
        lines = []
        for family in NFT_FAMILIES:
            # Adding then deleting first makes the load replace any older table, all in
            # one transaction.  The chain runs after iptables' filter table (priority 0),
            # whose NFQUEUE rules hand packets to the impairer: the kernel splits TCP's
            # 64 KiB GSO packets into wire-size segments before queueing them, and
            # re-injects them one by one, so on links through the impairer our drops count
            # wire packets.  (Elsewhere a GSO packet is dropped whole, as netem does.)
            lines += [f"table {family} {NFT_TABLE} {{}}", f"delete table {family} {NFT_TABLE}",
                      f"table {family} {NFT_TABLE} {{", f"\tchain {NFT_CHAIN} {{",
                      "\t\ttype filter hook forward priority filter + 10; policy accept;"]
            lines += ["\t\t" + rule.format(family=family) for rule in self.nft_rules]
            lines += ["\t}", "}"]
        if self.egress_rules:
            lines += [f"table netdev {NFT_TABLE} {{}}", f"delete table netdev {NFT_TABLE}",
                      f"table netdev {NFT_TABLE} {{"]
            for dev, rules in sorted(self.egress_rules.items()):
                lines += [f"\tchain egress_{dev} {{",
                          f"\t\ttype filter hook egress device {_nft_quoted(dev)} priority filter; "
                          "policy accept;"]
                lines += ["\t\t" + rule for rule in rules]
                lines += ["\t}"]
            lines += ["}"]
        return "\n".join(lines) + "\n"


# The stream kinds that act only at a connection's SYN, on its FINs, or once it has carried
# a given number of bytes: their link needs only those packets in the queue.
_THRESHOLD_KINDS = frozenset(("reset_after", "blackhole_after", "hold_fin"))


def _queued_only(imp: Impairment, kinds: Sequence[str], ctx: _Context) -> Optional[List[Tuple[str, ...]]]:
    """The iptables matches of the packets a link must queue to the impairer, or None
    for all of them.  A link whose impairer kinds are only reset_after, blackhole_after
    and hold_fin (on a connections share or not) queues its TCP packets with SYN, FIN or
    RST (a connection's choice and start, its close) and those of connections that have
    carried more than the smaller SIZE (the kernel's per-connection byte count, headers
    and both directions included, is never below the payload one direction carried):
    bulk packets before that never leave the kernel, and the impairer still cuts at the
    exact byte, counted from the SYN's sequence number."""
    if ctx.per_segment or not kinds or not set(kinds) <= _THRESHOLD_KINDS or not ctx.caps.iptables_connbytes:
        return None
    tcp = ("-p", "tcp")
    rules = [tcp + ("!", "--tcp-flags", "SYN,FIN,RST", "NONE")]
    sizes = [n for n in (imp.reset_after, imp.blackhole_after) if n]
    if sizes:
        rules.append(tcp + ("-m", "connbytes", "--connbytes", f"{min(sizes) + 1}:",
                            "--connbytes-dir", "both", "--connbytes-mode", "bytes"))
    return rules


def _impairer_link(link: Link, imp: Impairment, kinds: Sequence[str], queue: int,
                   split: bool = False) -> dict:
    """The impairer's config for one link: the impairment with only the kinds it must
    apply there (as ``impairment_to_dict`` writes it).  ``split`` (per-segment labs): GSO
    packets leave the impairer as wire segments, so that nftables' and netem's decisions
    after it count wire packets too."""
    names = {name for kind in kinds for name in _KIND_FIELDS[kind]}
    only = Impairment(**{name: getattr(imp, name) for name in names})
    entry = {"queue": queue, "link": str(link), "impairment": impairment_to_dict(only)}
    if split:
        entry["split"] = True
    return entry


def plan(link_impairments: Mapping[Link, Impairment], ifnames: Mapping[str, str],
         caps: Capabilities, queue_base: int = 0, per_segment: bool = False) -> Plan:
    """The commands that put ``link_impairments`` on the router, and those that remove them.

    ``ifnames`` maps each network the router joins to its interface there.  Each directed
    link has a fixed impairer queue number, ``queue_base`` plus its place among all the
    router's links in sorted order, so a link keeps its queue (and the packets the impairer
    holds for it) from one step's plan to the next.

    TCP hands the router 64 KiB GSO packets, and nftables and netem drop (or duplicate)
    such a packet whole: "1 % loss" then hits 1 % of bursts of ~44 segments.  With
    ``per_segment`` every impaired link passes through the impairer's queue, which splits
    them, so every kind counts wire packets (UDP is per datagram either way).  It costs
    a trip through userspace per packet.
    """
    if per_segment and not caps.nfqueue_impairer:
        raise UnsupportedImpairment("per-segment impairment needs the nfqueue impairer; "
                                    + _impairer_missing_reason(caps))
    for link in link_impairments:
        for network in (link.src, link.dst):
            if network not in ifnames:
                raise ValueError(f"link {link}: the router has no interface on {network!r} "
                                 f"(it has {', '.join(sorted(ifnames))})")
    ctx = _Context(caps, single_source=len(ifnames) <= 2, per_segment=per_segment)
    builder = _Builder(ifnames, ctx)
    backends: Dict[Link, Dict[str, str]] = {}
    every_link = [(a, b) for a in sorted(ifnames) for b in sorted(ifnames) if a != b]
    for link in sorted(link_impairments, key=lambda l: (l.src, l.dst)):
        imp = link_impairments[link]
        if imp.is_empty():
            continue
        backends[link] = choose_backends(imp, ctx)  # raises before anything is built
        builder.add_link(link, imp, backends[link],
                         queue_base + every_link.index((link.src, link.dst)))

    apply: List[Command] = []
    clear: List[Command] = []
    tc_apply, tc_clear = builder.tc_commands()
    ruleset = builder.nft_ruleset()
    if ruleset is not None:
        apply.append(Command(("nft", "-f", "-"), stdin=ruleset))
    apply += tc_apply
    apply += builder.route_apply
    apply += [Command(("iptables", "-w", "-A") + rule) for rule in builder.nfqueue_rules]
    # Clear in reverse: stop queueing to the impairer first, then routes, tc, nftables.
    clear += [Command(("iptables", "-w", "-D") + rule) for rule in builder.nfqueue_rules]
    clear += builder.route_clear
    clear += tc_clear
    if ruleset is not None:
        clear += [Command(("nft", "delete", "table", family, NFT_TABLE))
                  for family in NFT_FAMILIES + (("netdev",) if builder.egress_rules else ())]

    impairer_config = None
    if builder.impairer_links:
        impairer_config = {"version": IMPAIRER_CONFIG_VERSION, "queue_maxlen": IMPAIRER_QUEUE_MAXLEN,
                         "links": builder.impairer_links}
    # The guard of a transition is an nftables table: only for partitions nftables applies.
    cut = tuple((ifnames[link.src], ifnames[link.dst])
                for link, kinds in backends.items() if kinds.get("partition") == NFT_DROP)
    return Plan(apply=tuple(apply), clear=tuple(clear), impairer_config=impairer_config,
                backends=backends, cut=cut, tc_qdiscs=tuple(builder.tc_qdiscs))

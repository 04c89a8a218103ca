"""The impairer's decisions, pure: a seeded ``random.Random`` and a link's ``Impairment``
in, what to do with the next packet out.  Loss models (random, correlated,
Gilbert-Elliott), duplicates, corruption, delay, jitter and reorder, as tc-netem does
them and in its order.  The stream kinds are in ``impairer_streams``.
Standard library only.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from lab.programs.shared.backends import IMPAIRER_CONFIG_VERSION as CONFIG_VERSION
from lab.programs.shared.impairment import Impairment


class BernoulliLoss:
    def __init__(self, percent: float):
        self.p = percent / 100

    def lost(self, rng: random.Random) -> bool:
        return rng.random() < self.p


class CorrelatedLoss:
    """Loss whose events are correlated: a two-state Markov chain whose long-run loss rate
    is ``loss`` and whose lag-1 correlation between loss events is ``correlation``.

    (netem mixes successive uniform numbers instead, which also lowers the loss rate it
    gives; this keeps the configured rate.)
    """

    def __init__(self, percent: float, correlation_percent: float):
        p, rho = percent / 100, correlation_percent / 100
        self.after_loss = p + rho * (1 - p)
        self.after_pass = p * (1 - rho)
        self.previous = False

    def lost(self, rng: random.Random) -> bool:
        chance = self.after_loss if self.previous else self.after_pass
        self.previous = rng.random() < chance
        return self.previous


class GilbertElliottLoss:
    """netem's ``loss gemodel p r 1-h 1-k``: lose by the current state's chance, then
    maybe change state (Good -> Bad with p, Bad -> Good with r)."""

    def __init__(self, p: float, r: float, one_minus_h: float = 100, one_minus_k: float = 0):
        self.p, self.r = p / 100, r / 100
        self.loss_bad, self.loss_good = one_minus_h / 100, one_minus_k / 100
        self.bad = False

    def lost(self, rng: random.Random) -> bool:
        chance = self.loss_bad if self.bad else self.loss_good
        switch = rng.random() < (self.r if self.bad else self.p)
        lost = rng.random() < chance
        if switch:
            self.bad = not self.bad
        return lost


class NoLoss:
    def lost(self, rng: random.Random) -> bool:
        return False


@dataclass(frozen=True)
class LinkConfig:
    """One queue's link and the ``Impairment`` the impairer applies there (only the kinds
    the backends gave it).  ``split``: the link is impaired per wire segment (a per-segment
    lab), so GSO packets must reach the router's later rules (nftables' loss, netem) cut
    into segments, whatever the impairer itself decides."""

    queue: int
    link: str = ""
    impairment: Impairment = Impairment()
    skb_priority: Optional[int] = None  # SO_PRIORITY for what we send: the link's tc class
    split: bool = False

    @classmethod
    def of(cls, queue: int, link: str = "", skb_priority: Optional[int] = None, **fields) -> "LinkConfig":
        """A config from impairment fields as keywords (gemodel may be a dict)."""
        return cls(queue, link, Impairment.from_dict(fields), skb_priority)

    @classmethod
    def from_dict(cls, data: dict) -> "LinkConfig":
        unknown = set(data) - {"queue", "link", "impairment", "skb_priority", "split"}
        if unknown:
            raise ValueError(f"unknown field(s) in link config: {', '.join(sorted(unknown))}")
        try:
            impairment = Impairment.from_dict(data.get("impairment") or {})
        except (ValueError, TypeError) as exc:
            raise ValueError(f"queue {data.get('queue')}: {exc}") from None
        return cls(int(data["queue"]), data.get("link", ""), impairment, data.get("skb_priority"),
                   bool(data.get("split", False)))

    @property
    def whole_packets(self) -> bool:
        """True when no decision needs the payload or per-segment chances: delay,
        jitter, reorder and partition act on a GSO packet as on each of its segments,
        while loss, duplicates and corruption are per segment (as tests count them), and
        the stream kinds read every segment's headers."""
        imp = self.impairment
        return not (imp.loss or imp.gemodel or imp.duplicate or imp.corrupt or imp.stream())

    @property
    def gso(self) -> bool:
        """GSO packets whole (one verdict per 64 KiB burst) unless a decision is per
        segment, here or (``split``) in the rules after us: the stream kinds read headers
        and cut only where they must."""
        imp = self.impairment
        return not (self.split or imp.loss or imp.gemodel or imp.duplicate or imp.corrupt)

    def loss_model(self):
        imp = self.impairment
        if imp.gemodel:
            return GilbertElliottLoss(**imp.gemodel.to_dict())
        if imp.loss and imp.loss_correlation:
            return CorrelatedLoss(imp.loss, imp.loss_correlation)
        if imp.loss:
            return BernoulliLoss(imp.loss)
        return NoLoss()


@dataclass(frozen=True)
class Emission:
    """One packet to let out: after ``delay`` seconds, corrupted or not.  ``copy`` marks a
    duplicate (sent by us) rather than the queued original (released by a verdict)."""

    delay: float
    corrupt: bool = False
    copy: bool = False
    reordered: bool = False


@dataclass
class Counters:
    seen: int = 0
    dropped: int = 0
    delayed: int = 0
    reordered: int = 0
    corrupted: int = 0
    duplicated: int = 0
    pieces_made: int = 0        # stream kinds: pieces the router made (and sent) in place of segments
    resets_sent: int = 0        # connections reset by the router (an RST made to each end)
    blackholed: int = 0         # connections whose packets are dropped from then on, both ways
    fins_held: int = 0          # FIN packets held (hold_fin)
    dropped_dead: int = 0       # packets of reset or black-holed connections, dropped


class LinkImpairer:
    """Decides what happens to each packet of one link.  Holds the loss model's state."""

    def __init__(self, config: LinkConfig, rng: random.Random):
        self.config = config
        self.rng = rng
        self.loss_model = config.loss_model()
        self.counters = Counters()

    def decide(self) -> List[Emission]:
        """The emissions for the next packet: [] drops it, two means a duplicate."""
        cfg, rng = self.config.impairment, self.rng
        self.counters.seen += 1
        if cfg.partition or self.loss_model.lost(rng):
            self.counters.dropped += 1
            return []
        copies = 2 if cfg.duplicate and rng.random() * 100 < cfg.duplicate else 1
        self.counters.duplicated += copies - 1
        emissions = []
        for index in range(copies):
            corrupt = bool(cfg.corrupt) and rng.random() * 100 < cfg.corrupt
            self.counters.corrupted += corrupt
            delay, reordered = self._delay()
            self.counters.reordered += reordered
            self.counters.delayed += delay > 0
            emissions.append(Emission(delay, corrupt, copy=index > 0, reordered=reordered))
        return emissions

    def _delay(self) -> Tuple[float, bool]:
        """Seconds to hold a packet.  netem: a ``reorder`` share goes at once (overtaking
        the delayed ones); the rest wait delay +- jitter, uniform, never below zero."""
        cfg, rng = self.config.impairment, self.rng
        if not cfg.delay_ms:
            return 0.0, False
        if cfg.reorder and rng.random() * 100 < cfg.reorder:
            return 0.0, True
        delay_ms = cfg.delay_ms
        if cfg.jitter_ms:
            delay_ms += rng.uniform(-cfg.jitter_ms, cfg.jitter_ms)
        return max(delay_ms, 0.0) / 1000, False


def flip_random_bit(packet: bytes, rng: random.Random) -> bytes:
    """Flip one random bit after the IPv4 header (transport header or data), so the packet
    is still routed and the damage is for the receiver's checksum to find.  Checksums are
    left as they are, as netem does."""
    start = (packet[0] & 0x0F) * 4 if packet and packet[0] >> 4 == 4 else 0
    if start >= len(packet):
        start = 0  # nothing after the header: flip anywhere rather than not at all
    damaged = bytearray(packet)
    damaged[rng.randrange(start, len(damaged))] ^= 1 << rng.randrange(8)
    return bytes(damaged)


def link_rng(seed: Optional[int], queue: int) -> random.Random:
    """One generator per link, so a link's decisions repeat whatever other links carry."""
    return random.Random(f"{seed}:{queue}") if seed is not None else random.Random()


def load_config(path: str) -> Tuple[int, Dict[int, LinkConfig]]:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if data.get("version") != CONFIG_VERSION:
        raise ValueError(f"{path}: unsupported config version {data.get('version')!r}")
    links = {}
    for entry in data.get("links", []):
        config = LinkConfig.from_dict(entry)
        if config.queue in links:
            raise ValueError(f"{path}: queue {config.queue} appears twice")
        links[config.queue] = config
    return int(data.get("queue_maxlen", 20000)), links

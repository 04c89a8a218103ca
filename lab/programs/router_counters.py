"""The router's own counters, per directed link, for `lab watch` (standard library only;
``impair_agent counters`` calls ``read``).  Nothing is estimated: every number is a
kernel or engine counter.

* forwarded packets/bytes: an accounting table (``ip socketlab_account``) counts, in
  postrouting, what each link hands to its egress interface (after nftables' drops and
  the engine's verdicts, before the egress qdisc).  Created on first use and kept, so
  counters only grow; a reader takes differences.  Forwarded packets are what left the
  router: the egress qdiscs' drops (netem's loss, a full rate-limit queue) are taken off
  (forwarded bytes are not: tc counts no dropped bytes).
* dropped by partition / by loss, duplicated: the counter of each impairment rule in
  ``ip socketlab`` (backends.py names each rule "KIND LINK" in its comment), and in
  ``netdev socketlab`` for the loss of a link with an mtu (each fragment as it leaves).
* dropped by the queue: the drops of the link's own tc qdiscs (``tc -s``; with netem
  these include netem's own loss).  Reordered, on a netem link: its netem qdisc's
  requeues, which is how netem counts each packet it sends early for ``reorder``.
* the engine's links: its per-queue counters (dropped, duplicated, delayed, reordered,
  corrupted), and what the kernel dropped in front of it (its NFQUEUE queue or netlink
  socket full: ``dropped_engine_queue``), and what it made for the stream kinds: pieces
  of re-segmented TCP segments, connections reset (an RST made to each end),
  connections black-holed; plus the final counters of every engine stopped before it
  (a change that needed none), per link (``carry``), so a restart does not count from zero.
* fragments: the kernel's ``Ip: FragCreates`` (/proc/net/snmp), the fragments the
  router made for ``mtu``.  The kernel counts them for the whole router, so they are
  shown on the links whose mtu it applies (each of them, if several).
"""
from __future__ import annotations

import json
import subprocess
import time
from typing import Dict, Optional

ACCOUNT_TABLE = "socketlab_account"
FIELDS = ("forwarded_packets", "forwarded_bytes", "dropped_partition", "dropped_loss",
          "dropped_queue", "dropped_engine_queue", "duplicated", "delayed", "reordered", "corrupted",
          "pieces_made", "resets_sent", "blackholed", "fragments")
# the impairer's per-queue counters that go into a link's row as they are
IMPAIRER_FIELDS = ("duplicated", "delayed", "reordered", "corrupted", "pieces_made", "resets_sent",
                   "blackholed")


def grown(now: int, then: int) -> int:
    """How much a counter grew between two readings. One that went down was replaced
    (its rule or engine restarted with a change) and counts from zero again."""
    return now - then if now >= then else now


def row_growth(now: dict, then: dict) -> Dict[str, int]:
    """field -> how much one link's row grew between two readings (``grown`` per counter).

    ``forwarded_packets`` is derived: the accounting count minus the qdisc's drops, read one
    after the other, so between two readings it can dip by what the qdisc dropped in
    between (seen under emulation). Taken as a counter it would look replaced and add its
    whole value; its growth is the accounting's growth minus the drops' growth instead,
    which may be a few packets below zero for such an interval, so that growths summed over
    successive readings are exact."""
    growth = {name: grown(now.get(name, 0), then.get(name, 0)) for name in now}
    if "forwarded_packets" in now:
        queue_now, queue_then = now.get("dropped_queue", 0), then.get("dropped_queue", 0)
        accounted = grown(now["forwarded_packets"] + queue_now, then.get("forwarded_packets", 0) + queue_then)
        growth["forwarded_packets"] = accounted - grown(queue_now, queue_then)
    return growth


ENGINE_FIELDS = ("dropped", *IMPAIRER_FIELDS, "dropped_engine_queue")


def engine_link_counts(stats: Optional[dict]) -> Dict[str, Dict[str, int]]:
    """An engine's stats (or exit line) as counts per link: ENGINE_FIELDS."""
    out: Dict[str, Dict[str, int]] = {}
    kernel = (stats or {}).get("kernel") or {}
    for number, queue in ((stats or {}).get("queues") or {}).items():
        row = out.setdefault(queue.get("link"), dict.fromkeys(ENGINE_FIELDS, 0))
        for name in ENGINE_FIELDS[:-1]:
            row[name] += int(queue.get(name, 0))
        in_front = kernel.get(str(number)) if isinstance(kernel.get(str(number)), dict) else {}
        row["dropped_engine_queue"] += (int(in_front.get("queue_full_dropped", 0))
                                        + int(in_front.get("socket_full_dropped", 0)))
    return out


def carry(carried: Dict[str, Dict[str, int]], final: Optional[dict]) -> Dict[str, Dict[str, int]]:
    """The counts of engines stopped so far, with a stopped engine's final counters added."""
    out = {link: dict(row) for link, row in carried.items()}
    for link, row in engine_link_counts(final).items():
        mine = out.setdefault(link, dict.fromkeys(ENGINE_FIELDS, 0))
        for name, value in row.items():
            mine[name] = mine.get(name, 0) + value
    return out


def _run(argv, stdin: Optional[str] = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True)


def accounting_ruleset(ifnames: Dict[str, str]) -> str:
    lines = [f"table ip {ACCOUNT_TABLE} {{", "\tchain forwarded {",
             "\t\ttype filter hook postrouting priority filter; policy accept;"]
    for src, src_if in sorted(ifnames.items()):
        for dst, dst_if in sorted(ifnames.items()):
            if src != dst:
                lines.append(f'\t\tiifname "{src_if}" oifname "{dst_if}" counter '
                             f'comment "forwarded {src}->{dst}"')
    return "\n".join(lines + ["\t}", "}"]) + "\n"


def ensure_accounting(ifnames: Dict[str, str]) -> None:
    if _run(["nft", "list", "table", "ip", ACCOUNT_TABLE]).returncode == 0:
        return
    done = _run(["nft", "-f", "-"], accounting_ruleset(ifnames))
    if done.returncode != 0:
        raise OSError(f"nft: cannot add the accounting table: {done.stderr.strip()}")


def rule_counters(table: str, family: str = "ip") -> Dict[str, Dict[str, int]]:
    """comment -> {"packets", "bytes"} of every counting rule of ``FAMILY TABLE`` (empty if none)."""
    done = _run(["nft", "-j", "list", "table", family, table])
    if done.returncode != 0:
        return {}
    found = {}
    for item in json.loads(done.stdout).get("nftables", []):
        rule = item.get("rule")
        if not rule or "comment" not in rule:
            continue
        for expr in rule.get("expr", []):
            if isinstance(expr, dict) and "counter" in expr:
                counter = expr["counter"]
                found[rule["comment"]] = {"packets": counter["packets"], "bytes": counter["bytes"]}
    return found


def parse_qdiscs(text: str, dev: str) -> Dict[tuple, dict]:
    """(dev, handle) -> {"kind", "drops", "requeues"} from ``tc -s -j qdisc show dev DEV``."""
    found = {}
    for qdisc in json.loads(text) if text.strip() else []:
        found[(dev, qdisc.get("handle", ""))] = {"kind": qdisc.get("kind", ""),
                                                "drops": int(qdisc.get("drops", 0)),
                                                "requeues": int(qdisc.get("requeues", 0))}
    return found


def qdisc_stats(devices) -> Dict[tuple, dict]:
    """(device, handle) -> its kind, drops and requeues, for every qdisc on ``devices``."""
    stats = {}
    for dev in sorted(set(devices)):
        done = _run(["tc", "-s", "-j", "qdisc", "show", "dev", dev])
        if done.returncode == 0:
            stats.update(parse_qdiscs(done.stdout, dev))
    return stats


def fragments_made(snmp: str) -> int:
    """``Ip: FragCreates`` from the text of /proc/net/snmp (0 if missing)."""
    rows = [line.split()[1:] for line in snmp.splitlines() if line.startswith("Ip:")]
    if len(rows) < 2:
        return 0
    return int(dict(zip(rows[0], rows[1])).get("FragCreates", 0))


def _router_fragments() -> int:
    try:
        with open("/proc/net/snmp", encoding="ascii") as f:
            return fragments_made(f.read())
    except OSError:
        return 0


def read(ifnames: Dict[str, str], engine_stats: Optional[dict], backends: Dict[str, Dict[str, str]],
         tc_qdiscs=(), partitioned=(), carried: Optional[Dict[str, Dict[str, int]]] = None) -> dict:
    """{"time": seconds (monotonic), "links": {link: {field: count}}} for every directed link."""
    ensure_accounting(ifnames)
    now = time.monotonic()
    forwarded = rule_counters(ACCOUNT_TABLE)
    impaired = {**rule_counters("socketlab"), **rule_counters("socketlab", "netdev")}   # netdev: loss per fragment
    qdiscs = qdisc_stats(dev for _link, dev, _handle in tc_qdiscs)
    links = {}
    for src in sorted(ifnames):
        for dst in sorted(ifnames):
            if src == dst:
                continue
            link = f"{src}->{dst}"
            row = dict.fromkeys(FIELDS, 0)
            row["forwarded_packets"] = forwarded.get(f"forwarded {link}", {}).get("packets", 0)
            row["forwarded_bytes"] = forwarded.get(f"forwarded {link}", {}).get("bytes", 0)
            row["dropped_partition"] = impaired.get(f"partition {link}", {}).get("packets", 0)
            row["dropped_loss"] = impaired.get(f"loss {link}", {}).get("packets", 0)
            row["duplicated"] = impaired.get(f"duplicate {link}", {}).get("packets", 0)
            own = [qdiscs.get((dev, handle), {}) for owner, dev, handle in tc_qdiscs if owner == link]
            row["dropped_queue"] = sum(q.get("drops", 0) for q in own)
            # netem sends a reordered packet at once by putting it at the head of its
            # queue, and counts it as a requeue (a netem leaf under htb counts nothing else)
            row["reordered"] = sum(q.get("requeues", 0) for q in own if q.get("kind") == "netem")
            row["forwarded_packets"] = max(0, row["forwarded_packets"] - row["dropped_queue"])
            links[link] = row
    for source in (engine_link_counts(engine_stats), carried or {}):
        for link, counts in source.items():
            row = links.get(link)
            if row is None:
                continue
            row["dropped_engine_queue"] += counts.get("dropped_engine_queue", 0)
            cut = link in partitioned
            row["dropped_partition" if cut else "dropped_loss"] += counts.get("dropped", 0)
            for name in IMPAIRER_FIELDS:
                row[name] += counts.get(name, 0)
    mtu_links = [link for link, kinds in (backends or {}).items() if "mtu" in kinds and link in links]
    if mtu_links:
        made = _router_fragments()
        for link in mtu_links:
            links[link]["fragments"] = made
    return {"time": now, "links": links, "backends": backends}

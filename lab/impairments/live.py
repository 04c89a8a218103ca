"""A running lab's live network, as the `lab impair/partition/heal/watch` commands
(lab/commands/live.py, lab/commands/watch.py) show it: the router's answer (what is in
force) shaped for showing.  Pure.

The router's agent plans and applies each change and keeps what is in force; the lab
and its router are found by ``lab.running.RunningLab.attach``.
"""
from __future__ import annotations

from typing import Dict


# -- showing what is in force ------------------------------------------------------------------

def describe(item: dict) -> Dict[str, str]:
    """kind -> its setting in the user's units, from one state entry."""
    out = {}
    if item.get("partition"):
        out["partition"] = "cut"
    if item.get("loss") is not None:
        corr = item.get("loss_correlation")
        out["correlated_loss" if corr else "loss"] = f"{item['loss']:g}%" + (f" (correlation {corr:g}%)" if corr else "")
    if item.get("gemodel"):
        ge = item["gemodel"]
        out["correlated_loss"] = (f"gemodel p {ge['p']:g}% r {ge['r']:g}% 1-h {ge['one_minus_h']:g}% "
                                  f"1-k {ge['one_minus_k']:g}%")
    if item.get("delay_ms") is not None:
        out["delay"] = f"{item['delay_ms']:g}ms" + (f" ± {item['jitter_ms']:g}ms" if item.get("jitter_ms") else "")
    for kind in ("duplicate", "corrupt", "reorder"):
        if item.get(kind) is not None:
            out[kind] = f"{item[kind]:g}%"
    if item.get("rate_kbit") is not None:
        rate = item["rate_kbit"]
        text = f"{rate / 1000:g}mbit" if rate >= 1000 else f"{rate:g}kbit"
        out["rate"] = text + (f" queue {item['queue_limit']}" if item.get("queue_limit") else "")
    return out


def shown(lab: str, answer: dict) -> dict:
    """The answer as ``--show --json`` prints it."""
    links = []
    for item in answer.get("state", []):
        link = item["link"]
        links.append({"link": link, "impairment": {k: v for k, v in item.items() if k != "link"},
                      "settings": describe(item), "backends": answer.get("backends", {}).get(link, {})})
    return {"lab": lab, "links": links, "engine": answer.get("engine"),
            "state_unknown": bool(answer.get("dirty"))}

"""Which steps the kernel's OOM killer ended.

A host's memory limit (topology.limits.memory) is enforced by its memory cgroup: past
it, the kernel kills a process of that host with SIGKILL and counts it in the cgroup
(`oom_kill N` in memory.events on cgroup v2, memory.oom_control on v1; both readable
inside the container). A step that ended by SIGKILL, not by its own timeout, on a host
whose count is above zero is marked `oom_killed: true` in its result, so a report says
"out of memory" rather than a bare exit code 137.
"""
from __future__ import annotations

import re

# Read inside the host: v2 first, then v1. Prints nothing if neither exists.
READ_COUNTER = ["sh", "-c", "cat /sys/fs/cgroup/memory.events 2>/dev/null || "
                            "cat /sys/fs/cgroup/memory/memory.oom_control 2>/dev/null || true"]
_OOM_KILL = re.compile(r"^oom_kill\s+(\d+)\s*$", re.MULTILINE)
SIGKILL_EXIT = 128 + 9


def oom_kills(text: str) -> int | None:
    """The `oom_kill` counter in a memory cgroup file's text, or None if absent."""
    match = _OOM_KILL.search(text)
    return int(match.group(1)) if match else None


def killed_by_oom(result: dict, host_oom_kills: int | None) -> bool:
    return (result.get("exit_code") == SIGKILL_EXIT and not result.get("timed_out")
            and bool(host_oom_kills))


def mark_oom_kills(results: dict[str, dict[str, dict]], read_counter) -> list[tuple[str, str]]:
    """Add `oom_killed` to every step result; `read_counter(host)` gives the host's
    cgroup text (or raises). Only hosts with a SIGKILLed step are asked. Returns the
    (step, host) pairs the OOM killer ended."""
    counts: dict[str, int | None] = {}
    marked = []
    for step, by_host in results.items():
        for host, result in by_host.items():
            if result.get("exit_code") == SIGKILL_EXIT and host not in counts:
                try:
                    counts[host] = oom_kills(read_counter(host))
                except Exception:  # a stopped or vanished host: unknown, not OOM
                    counts[host] = None
            result["oom_killed"] = killed_by_oom(result, counts.get(host))
            if result["oom_killed"]:
                marked.append((step, host))
    return marked

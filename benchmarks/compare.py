"""socketlab against references measured in the same run, on the same machine.

    .venv/bin/python benchmarks/compare.py [--clients 50] [--repeat 3] [--json] [--no-compose] [--paths-only]

| what | socketlab | reference |
|---|---|---|
| 1 and N clients up, every demo done | `DockerLab` up | `docker compose up --scale client=N` of compose.yaml |
| N clients down | `DockerLab` down | `docker compose down` |
| the engine's part | the same lab, clients that only sleep: up and down | Compose's up and down above |
| TCP client1 -> router -> server | `tcp-measure` goodput (SHA-256 at both ends) | `iperf3` on the same path |
| TCP through a 1 ms delay | `iperf3` through the router's delay backend | `iperf3` on the kernel path |
| delay under that load | `udp-measure` RTT p50 minus the idle p50, during the iperf3 run | the configured 1 ms |
| jitter: TCP through 1 ms +- 0.5 ms, and the RTT spread under that load | `iperf3`; `udp-measure` p99 - min | the kernel path; 0.99 ms |
| rate: TCP through 1000 Mbit/s and 1 ms | `iperf3` goodput | the rate's payload share (1448/1514) |

Every row is the median of ``--repeat`` rounds, A and B taken in turn, so a machine that
drifts affects both; the ratio is socketlab / reference (lower is better for times, higher
for rates). The compose rows need Compose (v2 or v1) and no compose class lab up (both
use the fixed subnets of compose.yaml); otherwise they are left out with the reason.
Progress goes to stderr, the table (or JSON) to stdout. Everything is removed at the end,
also on Ctrl-C and SIGTERM.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich import box
from rich.table import Table

from lab import engine, labels, ui
from lab.programs.shared.errors import LabError
from lab.programs.shared.impairment import Impairment, Link
from lab.running import RunningLab
from lab.topology.docker_lab import DockerLab, await_lines, container_name, remove_lab
from lab.programs.shared.topology import LabSpec

ROOT = Path(__file__).resolve().parents[1]
PREFIX = f"bench-cmp-{os.getpid() % 100000}"
COMPOSE_PROJECT = f"benchcmp{os.getpid() % 100000}"
DEMO_TIMEOUT_S = 180
DELAY_MS = 1.0
JITTER_MS = 0.5          # delay 1 ms +- 0.5 ms, uniform: p99 - min of the RTTs about 0.99 ms
RATE_MBIT = 1000         # with the 1 ms delay: htb shapes, the engine delays
PAYLOAD_SHARE = 1448 / 1514   # TCP payload of a full Ethernet frame (htb counts frames)


# --- references: Compose ------------------------------------------------------------------

def compose_command() -> list[str] | None:
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def compose_blocked() -> str:
    """Why the compose rows cannot run here ('' if they can)."""
    if compose_command() is None:
        return "no Compose (docker compose or docker-compose) on this machine"
    if engine.client().containers.list(all=True, filters=labels.filters(lab="compose")):
        return "a compose class lab is up (it holds compose.yaml's fixed subnets)"
    return ""


def _compose(args: list[str], work: Path) -> None:
    env = {**os.environ, "COMPOSE_PROJECT_NAME": COMPOSE_PROJECT}
    done = subprocess.run([*compose_command(), "-f", str(ROOT / "compose.yaml"),
                           "--project-directory", str(work), *args],
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise LabError(f"compose {' '.join(args)} failed: {done.stderr.strip()[-400:]}")


def _compose_clients() -> list:
    return engine.client().containers.list(all=True, filters={"label": [
        f"com.docker.compose.project={COMPOSE_PROJECT}", "com.docker.compose.service=client"]})


def _wait_demos(containers: list[str]) -> None:
    """Until each container (name or id) has printed 'demo done': the same wait, followed
    output streams, for both sides, so the waiting costs them the same."""
    await_lines({ctr: ("demo done",) for ctr in containers}, DEMO_TIMEOUT_S)


def compose_round(clients: int, work: Path) -> tuple[float, float]:
    """(seconds until every client's demo is done, seconds to take it down)."""
    (work / "work").mkdir(exist_ok=True)
    shutil.copy(ROOT / ".env", work / ".env")
    started = time.monotonic()
    try:
        _compose(["up", "-d", "--scale", f"client={clients}"], work)
        found = [c.id for c in _compose_clients()]
        if len(found) != clients:
            raise LabError(f"compose made {len(found)} clients, not {clients}")
        _wait_demos(found)
        up_s = time.monotonic() - started
    finally:
        removing = time.monotonic()
        _compose(["down", "--remove-orphans"], work)
    return up_s, time.monotonic() - removing


# --- socketlab ------------------------------------------------------------------------------

def lab_round(clients: int) -> tuple[float, float]:
    lab = DockerLab.plan(LabSpec(lab=f"{PREFIX}-up", clients=clients))
    started = time.monotonic()
    try:
        lab.up()
        _wait_demos([container_name(lab.topology.lab, c.name) for c in lab.topology.clients])
        up_s = time.monotonic() - started
    finally:
        removing = time.monotonic()
        lab.down()
    return up_s, time.monotonic() - removing


def idle_round(clients: int) -> tuple[float, float]:
    """The same lab with clients that only sleep: what creating, starting and removing
    the containers costs the engine, with no program's work in it (the floor under both
    socketlab and Compose)."""
    lab = DockerLab.plan(LabSpec(lab=f"{PREFIX}-idle", clients=clients, client_command=("sleep", "infinity")))
    started = time.monotonic()
    try:
        lab.up()
        up_s = time.monotonic() - started
    finally:
        removing = time.monotonic()
        lab.down()
    return up_s, time.monotonic() - removing


def _json_line(lab: RunningLab, argv: list[str]) -> dict:
    result = lab.exec("client1", argv)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise LabError(f"{' '.join(argv)} printed no JSON: {result.stderr.strip()[-300:]}")
    return json.loads(lines[-1])


def iperf3_mbps(lab: RunningLab, seconds: int = 3) -> float:
    lab.exec("server", ["sh", "-c", "pkill -x iperf3; iperf3 -s -1 -D"])
    report = _json_line(lab, ["sh", "-c", f"iperf3 -c server -t {seconds} -J | tr -d '\\n'; echo"])
    return report["end"]["sum_received"]["bits_per_second"] / 1e6


def tcp_measure_mbps(lab: RunningLab, nbytes: int) -> float:
    report = _json_line(lab, ["tcp-measure", "--bytes", str(nbytes)])
    if not report.get("sha256_match"):
        raise LabError(f"tcp-measure did not arrive intact: {report.get('error')}")
    return report["goodput_mbps"]


def rtt_p50(lab: RunningLab, count: int = 2000) -> float:
    return _json_line(lab, ["udp-measure", "--count", str(count), "--rate", "1000"])["rtt_ms"]["p50"]


def loaded_rtt(lab: RunningLab, seconds: int = 3) -> tuple[dict, float]:
    """(udp-measure's rtt_ms during an iperf3 run, that iperf3's Mbit/s)."""
    lab.exec("server", ["sh", "-c", "pkill -x iperf3; iperf3 -s -1 -D"])
    script = (f"iperf3 -c server -t {seconds + 1} -J > /tmp/iperf.json & "
              f"udp-measure --count {seconds * 1000} --rate 1000 > /tmp/udp.json; wait; "
              "tr -d '\\n' < /tmp/iperf.json; echo; cat /tmp/udp.json")
    result = lab.exec("client1", ["sh", "-c", script])
    objects = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    iperf = next(o for o in objects if "end" in o)
    udp = next(o for o in objects if o.get("program") == "udp-measure")
    return udp["rtt_ms"], iperf["end"]["sum_received"]["bits_per_second"] / 1e6


def paths(repeat: int, nbytes: int) -> dict:
    """tcp-measure vs iperf3, and the delay backend's path vs the kernel path, in one lab."""
    spec = LabSpec(lab=f"{PREFIX}-tcp", clients=1, client_command=("host-role", "client", "--no-demo"))
    out = {"tcp_measure": [], "iperf3": [], "iperf3_delay": [], "delay_added_ms": [],
           "iperf3_delay_loaded": [], "delay_spread_ms": [], "iperf3_jitter": [], "jitter_spread_ms": [],
           "iperf3_rate": []}
    link = Link("clients", "servers")
    with RunningLab.create(spec, progress=ui.progress) as lab:
        router = lab.router
        for i in range(1, repeat + 1):
            ui.progress(f"paths, round {i} of {repeat}: kernel path")
            out["iperf3"].append(iperf3_mbps(lab))
            out["tcp_measure"].append(tcp_measure_mbps(lab, nbytes))
            idle = rtt_p50(lab)
            router.apply({link: Impairment(delay_ms=DELAY_MS)})
            out["backend"] = router.backends.get(str(link), {}).get("delay", "?")
            ui.progress(f"paths, round {i} of {repeat}: {DELAY_MS:g} ms delay by {out['backend']}")
            out["iperf3_delay"].append(iperf3_mbps(lab))
            loaded, mbps = loaded_rtt(lab)
            out["delay_added_ms"].append(loaded["p50"] - idle)
            out["delay_spread_ms"].append(loaded["p99"] - loaded["min"])  # the loaded path's own spread
            out["iperf3_delay_loaded"].append(mbps)
            router.apply({link: Impairment(delay_ms=DELAY_MS, jitter_ms=JITTER_MS)})
            ui.progress(f"paths, round {i} of {repeat}: {DELAY_MS:g} ± {JITTER_MS:g} ms")
            out["iperf3_jitter"].append(iperf3_mbps(lab))
            loaded, _mbps = loaded_rtt(lab)
            out["jitter_spread_ms"].append(loaded["p99"] - loaded["min"])
            router.apply({link: Impairment(delay_ms=DELAY_MS, rate_kbit=RATE_MBIT * 1000)})
            out["rate_backend"] = router.backends.get(str(link), {}).get("rate", "?")
            ui.progress(f"paths, round {i} of {repeat}: {RATE_MBIT} Mbit/s by {out['rate_backend']}, "
                        f"{DELAY_MS:g} ms delay")
            out["iperf3_rate"].append(iperf3_mbps(lab))
            router.apply({})
    return out


# --- the table ------------------------------------------------------------------------------

def med(values: list[float]) -> float:
    return statistics.median(values)


def rows_of(results: dict, clients: int) -> list[dict]:
    rows = []

    def row(what, ours, ref, unit, target, better="lower"):
        ratio = ours / ref if ref else None
        ok = None if ratio is None or target is None else (
            ratio <= target if better == "lower" else ratio >= target)
        rows.append({"what": what, "socketlab": round(ours, 3), "reference": round(ref, 3) if ref else None,
                     "unit": unit, "ratio": round(ratio, 3) if ratio is not None else None,
                     "target": target, "ok": ok})

    up = results.get("bringup", {})
    for n in sorted(up):
        r = up[n]
        ref_up = med(r["compose_up"]) if r.get("compose_up") else None
        row(f"{n} client{'s' if n > 1 else ''} up, every demo done", med(r["lab_up"]), ref_up, "s", 0.5)
        if n == clients and n > 1:
            per_client = (med(r["lab_up"]) - med(up[min(up)]["lab_up"])) / (n - min(up)) if len(up) > 1 else None
            if per_client is not None:
                rows.append({"what": "each added client", "socketlab": round(per_client, 3), "reference": None,
                             "unit": "s", "ratio": None, "target": 0.15, "ok": per_client <= 0.15})
            ref_down = med(r["compose_down"]) if r.get("compose_down") else None
            row(f"{n} clients down", med(r["lab_down"]), ref_down, "s", 0.5)
            if r.get("idle_up"):
                for what, key, ref in (("up", "idle_up", ref_up), ("down", "idle_down", ref_down)):
                    row(f"  the engine's part: {n} idle clients {what} (no program runs)", med(r[key]), ref, "s", None)
    p = results.get("paths")
    if p:
        row("TCP client1 -> router -> server: tcp-measure vs iperf3", med(p["tcp_measure"]), med(p["iperf3"]),
            "Mbit/s", 0.4, better="higher")
        row(f"TCP through a {DELAY_MS:g} ms delay ({p['backend']}) vs the kernel path", med(p["iperf3_delay"]),
            med(p["iperf3"]), "Mbit/s", 0.1, better="higher")
        added = med(p["delay_added_ms"])
        rows.append({"what": f"delay added under that load (iperf3 at {med(p['iperf3_delay_loaded']):.0f} Mbit/s)",
                     "socketlab": round(added, 3), "reference": DELAY_MS, "unit": "ms",
                     "ratio": round(added / DELAY_MS, 3), "target": f"{DELAY_MS:g} ± {0.5 + 0.02 * DELAY_MS:g}",
                     "ok": abs(added - DELAY_MS) <= 0.5 + 0.02 * DELAY_MS})
        if p.get("iperf3_jitter"):
            row(f"TCP through {DELAY_MS:g} ± {JITTER_MS:g} ms jitter vs the kernel path", med(p["iperf3_jitter"]),
                med(p["iperf3"]), "Mbit/s", 0.1, better="higher")
            # The jitter's own spread: what the RTTs spread (p99 - min) more than with the delay
            # alone under the same load (the loaded path spreads by itself too).
            spread = med(p["jitter_spread_ms"]) - med(p["delay_spread_ms"])
            expected = 0.99 * 2 * JITTER_MS
            rows.append({"what": "jitter under that load: RTT spread (p99 - min) beyond the delay's alone",
                         "socketlab": round(spread, 3),
                         "reference": round(expected, 3), "unit": "ms", "ratio": round(spread / expected, 3),
                         "target": f"{expected:.2f} ± {0.5 + 0.02 * expected:.2f}",
                         "ok": abs(spread - expected) <= 0.5 + 0.02 * expected})
            ceiling = RATE_MBIT * PAYLOAD_SHARE
            got = med(p["iperf3_rate"])
            rows.append({"what": f"rate {RATE_MBIT} Mbit/s ({p['rate_backend']}) with the {DELAY_MS:g} ms delay: "
                                 "TCP goodput vs the rate's payload share",
                         "socketlab": round(got, 3), "reference": round(ceiling, 3), "unit": "Mbit/s",
                         "ratio": round(got / ceiling, 3), "target": "0.9..1.02×",
                         "ok": 0.9 <= got / ceiling <= 1.02})
    return rows


def print_table(rows: list[dict], title: str, notes: list[str]) -> None:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for name in ("what", "socketlab", "reference", "ratio", "target", "ok"):
        table.add_column(name, justify="left" if name == "what" else "right")
    marks = {True: "✓", False: "✗", None: ""}
    for r in rows:
        ref = "–" if r["reference"] is None else f"{r['reference']:g} {r['unit']}"
        ratio = "–" if r["ratio"] is None else f"{r['ratio']:.2f}×"
        target = r["target"] if isinstance(r["target"], str) else (
            "–" if r["target"] is None else f"{'≤' if r['unit'] == 's' else '≥'} {r['target']:g}"
            + ("" if r["what"] == "each added client" else "×"))
        table.add_row(r["what"], f"{r['socketlab']:g} {r['unit']}", ref, ratio, target, marks[r["ok"]])
    ui.out.print(table)
    for note in notes:
        ui.out.print(f"note: {note}", markup=False)


def measure(clients: int, repeat: int, nbytes: int, with_compose: bool) -> tuple[dict, list[str]]:
    notes, results = [], {"bringup": {}}
    blocked = compose_blocked() if with_compose else "--no-compose"
    if blocked:
        notes.append(f"compose rows left out: {blocked}")
    with tempfile.TemporaryDirectory(prefix="socketlab-compare-") as tmp:
        for n in sorted({1, clients}):
            r = results["bringup"][n] = {"lab_up": [], "lab_down": [], "compose_up": [], "compose_down": [],
                                         "idle_up": [], "idle_down": []}
            for i in range(1, repeat + 1):
                ui.progress(f"{n} client(s), round {i} of {repeat}: lab")
                up_s, down_s = lab_round(n)
                r["lab_up"].append(up_s)
                r["lab_down"].append(down_s)
                if n > 1:
                    ui.progress(f"{n} client(s), round {i} of {repeat}: the same lab, clients idle")
                    up_s, down_s = idle_round(n)
                    r["idle_up"].append(up_s)
                    r["idle_down"].append(down_s)
                if not blocked:
                    ui.progress(f"{n} client(s), round {i} of {repeat}: compose")
                    up_s, down_s = compose_round(n, Path(tmp))
                    r["compose_up"].append(up_s)
                    r["compose_down"].append(down_s)
    results["paths"] = paths(repeat, nbytes)
    return results, notes


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def cleanup(with_compose: bool) -> None:
    for suffix in ("up", "idle", "tcp"):
        remove_lab(f"{PREFIX}-{suffix}")
    if with_compose and compose_command():
        subprocess.run([*compose_command(), "-p", COMPOSE_PROJECT, "-f", str(ROOT / "compose.yaml"), "down",
                        "--remove-orphans"], capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50, help="the large lab's clients (default: 50)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per row (default: 3)")
    parser.add_argument("--bytes", type=int, default=1_000_000_000, help="tcp-measure's transfer")
    parser.add_argument("--no-compose", action="store_true", help="leave out the Compose references")
    parser.add_argument("--paths-only", action="store_true", help="only the TCP and impairment rows (no bring-up)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    try:
        if args.paths_only:
            results, notes = {"paths": paths(args.repeat, args.bytes)}, []
        else:
            results, notes = measure(args.clients, args.repeat, args.bytes, not args.no_compose)
    except LabError as exc:
        cleanup(not args.no_compose)
        ui.err.print(f"compare: error: {exc}", markup=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        cleanup(not args.no_compose)
        ui.err.print("compare: interrupted (everything removed)")
        return 130
    rows = rows_of(results, args.clients)
    machine = f"{os.cpu_count()} cores, Docker {engine.client().version().get('Version')}, kernel {os.uname().release}"
    if args.json:
        ui.print_json({"machine": machine, "repeat": args.repeat, "elapsed_s": round(time.monotonic() - started, 1),
                       "rows": rows, "raw": results, "notes": notes})
    else:
        print_table(rows, f"socketlab vs references, same run (median of {args.repeat}; {machine})", notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How long the packet pictures take: reading a run's pcaps, matching the two sides of the
router, building, folding and drawing the ladder, for transfers of growing size.

No Docker: the pcaps are made here (a TCP transfer through the router, both sides, 1 % of the
data segments dropped), so the numbers depend on this machine's CPU only.  The reference is
dpkt's own reading of the same files (iterating the records, no parsing), measured in the same
run; each stage is given in seconds and as a ratio to it.

    .venv/bin/python benchmarks/packets.py                # 1, 5 and 25 MB, 3 rounds each
    .venv/bin/python benchmarks/packets.py --mb 5 --repeat 5 --json
"""
from __future__ import annotations

import argparse
import io
import json
import random
import statistics
import sys
import time

import dpkt

from lab.packets import analysis, ladder, svg
from lab.packets.fates import Iface, Window
from lab.programs.shared.impairment import Impairment

CLIENT, SERVER = bytes([10, 9, 1, 101]), bytes([10, 9, 2, 10])
IFACES = [Iface("eth0", "clients", "10.9.1.0/24"), Iface("eth1", "servers", "10.9.2.0/24")]
HOSTS = [("client1", "10.9.1.101", "clients"), ("server", "10.9.2.10", "servers")]
MSS = 1448


def transfer(mb: float, seed: int = 1):
    """pcap bytes of eth0 and eth1 for an MB-sized transfer with an ACK every 2 segments."""
    rng = random.Random(seed)
    w0, w1 = io.BytesIO(), io.BytesIO()
    p0, p1 = dpkt.pcap.Writer(w0, nano=True), dpkt.pcap.Writer(w1, nano=True)
    t, seq = 1.0, 1000
    segments = int(mb * 1_000_000 // MSS)
    payload = b"x" * MSS
    for n in range(segments):
        seg = _ip(CLIENT, SERVER, dpkt.tcp.TCP(sport=40000, dport=12000, seq=seq, ack=1, flags=0x18, data=payload), n)
        p0.writepkt(_eth(seg), ts=t)
        if rng.random() >= 0.01:
            p1.writepkt(_eth(_fwd(seg)), ts=t + 0.0001)
        seq += MSS
        if n % 2:
            ack = _ip(SERVER, CLIENT, dpkt.tcp.TCP(sport=12000, dport=40000, seq=1, ack=seq, flags=0x10), n)
            p1.writepkt(_eth(ack), ts=t + 0.0003)
            p0.writepkt(_eth(_fwd(ack)), ts=t + 0.0004)
        t += 0.0005
    return {"eth0": w0.getvalue(), "eth1": w1.getvalue()}, segments


def _ip(src, dst, l4, ident):
    ip = dpkt.ip.IP(src=src, dst=dst, p=6, ttl=64, id=ident & 0xFFFF, data=l4)
    ip.len = len(bytes(ip))
    return ip


def _fwd(ip):
    copy = dpkt.ip.IP(bytes(ip))
    copy.ttl -= 1
    copy.sum = 0
    return copy


def _eth(ip):
    return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=0x0800, data=ip))


def measure(mb: float) -> dict:
    pcaps, segments = transfer(mb)
    began = time.perf_counter()
    for data in pcaps.values():
        for _ in dpkt.pcap.Reader(io.BytesIO(data)):
            pass
    reference = time.perf_counter() - began
    stages = {}
    began = time.perf_counter()
    result = analysis.analyse(pcaps, IFACES, [Window(0, 1e12, "clients->servers", Impairment(loss=1))])
    stages["read + match"] = time.perf_counter() - began
    began = time.perf_counter()
    lad = result.ladder(HOSTS)
    stages["ladder + fold"] = time.perf_counter() - began
    began = time.perf_counter()
    ladder.text(lad), svg.render(lad)
    stages["text + SVG"] = time.perf_counter() - began
    return {"mb": mb, "packets": len(result.packets), "segments": segments, "rows": len(lad.rows),
            "reference_s": reference, "stages_s": stages,
            "dropped": sum(f.verdict == "dropped" for f in result.matched.fates)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, nargs="*", default=[1, 5, 25])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    for mb in args.mb:
        runs = [measure(mb) for _ in range(args.repeat)]
        print(f"measured {mb:g} MB ({args.repeat} rounds)", file=sys.stderr)
        med = lambda key: statistics.median(r["stages_s"][key] for r in runs)  # noqa: E731
        ref = statistics.median(r["reference_s"] for r in runs)
        rows.append({"mb": mb, "packets": runs[0]["packets"], "rows": runs[0]["rows"], "dropped": runs[0]["dropped"],
                     "dpkt_reference_s": ref, **{k: med(k) for k in runs[0]["stages_s"]}})
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'MB':>5} {'packets':>8} {'ladder rows':>11} {'dpkt read (ref)':>16} {'read + match':>18} "
          f"{'ladder + fold':>18} {'text + SVG':>16}")
    for r in rows:
        ref = r["dpkt_reference_s"]
        cell = lambda k: f"{r[k]:7.3f} s ×{r[k] / ref:5.1f}"  # noqa: E731
        print(f"{r['mb']:5g} {r['packets']:8,} {r['rows']:11} {ref:14.3f} s {cell('read + match'):>18} "
              f"{cell('ladder + fold'):>18} {cell('text + SVG'):>16}")


if __name__ == "__main__":
    main()

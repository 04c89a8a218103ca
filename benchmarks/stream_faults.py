"""What the stream faults cost a link carrying bulk TCP: iperf3's throughput from client1
to the server with each kind set on ``clients -> servers`` so that it never fires
(``reset_after``/``blackhole_after`` far beyond the transfer, ``hold_fin`` only on the
last packet, ``connections``), as a ratio to the same link with nothing set, measured in
the same run; ``segment``'s pieces per second (throughput / piece size); and how many
packets the kernel queued to the engine during each case's transfer (a count, not a
timing: it does not move with the machine's load).

    .venv/bin/python benchmarks/stream_faults.py                  # 3 rounds, 3 s per case
    .venv/bin/python benchmarks/stream_faults.py --rounds 5 --seconds 5 --json

Each round measures every case, the reference first; a case's ratio is the median over
rounds of its throughput / that round's reference (the machine's load moves both).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys

from lab.testing import open_lab

CASES = [
    ("none", {}),
    ("reset_after 100GiB", {"reset_after": "100GiB"}),
    ("blackhole_after 100GiB", {"blackhole_after": "100GiB"}),
    ("hold_fin 100ms", {"hold_fin": "100ms"}),
    ("connections 50% (reset_after 100GiB)", {"reset_after": "100GiB", "connections": "50%"}),
    ("segment 100 B", {"segment": 100}),
    ("segment 1000 B", {"segment": 1000}),
]


def queued(lab) -> int:
    """Packets the router's kernel has handed to the engine's queues so far (id_sequence,
    the 8th column of /proc/net/netfilter/nfnetlink_queue, per queue bound)."""
    text = lab.running.exec("router", ["cat", "/proc/net/netfilter/nfnetlink_queue"]).stdout
    return sum(int(line.split()[7]) for line in text.splitlines() if len(line.split()) > 7)


def iperf(lab, seconds: float) -> float:
    r = lab.run("client1", f"iperf3 -c server -t {seconds:g} -J", timeout=seconds + 30)
    data = json.loads(r.stdout)
    return data["end"]["sum_received"]["bits_per_second"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    lab = open_lab(per_segment=False)
    samples = {name: [] for name, _ in CASES}
    through_queue = {name: [] for name, _ in CASES}
    try:
        lab.start("server", "iperf3 -s", ready_port=5201)
        for _ in range(args.rounds):
            for name, fields in CASES:
                if fields:
                    with lab.impair("clients -> servers", **fields):
                        before = queued(lab)
                        samples[name].append(iperf(lab, args.seconds))
                        through_queue[name].append(queued(lab) - before)
                else:
                    samples[name].append(iperf(lab, args.seconds))
    finally:
        lab.close()
    reference = samples["none"]
    rows = []
    for name, fields in CASES:
        ratio = statistics.median(b / r for b, r in zip(samples[name], reference))
        bps = statistics.median(samples[name])
        segment = fields.get("segment")
        rows.append({"case": name, "bps": bps, "ratio": ratio, "samples": samples[name],
                     "pieces_per_s": bps / 8 / segment if segment else None,
                     "queued": statistics.median(through_queue[name]) if through_queue[name] else 0})
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'case':40} {'Mbit/s':>10} {'ratio':>7} {'pieces/s':>10} {'queued':>9}")
    for row in rows:
        pieces = f"{row['pieces_per_s']:,.0f}" if row["pieces_per_s"] else "–"
        print(f"{row['case']:40} {row['bps'] / 1e6:10.1f} {row['ratio']:7.2f} {pieces:>10} {row['queued']:>9,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

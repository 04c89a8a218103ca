"""The impairer: the lab's router's userspace impairments on packets that iptables sends
to NFQUEUE: loss, delay, jitter, reorder, duplicate and corrupt (``impairer_decisions``),
and the stream kinds on TCP connections: re-segmenting, resets, blackholes and slow
closes (``impairer_streams``; the pieces and resets are made here and sent through a raw
socket, the original dropped).

Runs inside the router container (stdlib only, needs NET_ADMIN; NET_RAW for duplicates):

    python3 -m lab.programs.impairer --config FILE [--seed N]

It speaks nfnetlink_queue (``nfqueue``) directly over an AF_NETLINK socket, binds one queue per
directed link named in the config, and gives each queued packet a verdict now or later
(held packets are released from a timer heap, so verdicts go out of order).

Lifecycle, on stdout, one JSON object per line:
  {"event": "ready", ...}     once every queue is bound (start sending traffic after this)
  {"event": "stats", ...}     on SIGUSR1, and {"event": "exit", ...} when stopping
  {"event": "reloaded"} / {"event": "reload_failed", "error": ...}   after SIGHUP
SIGTERM or SIGINT: release held packets at once, unbind, print the exit line, exit 0.

Fail-open: the iptables rules use --queue-bypass, so if this process dies packets flow
UNIMPAIRED.  Whoever starts the impairer must keep checking it is alive.

Config (JSON), as ``backends.plan`` writes it:
  {"version": 2, "queue_maxlen": 20000,
   "links": [{"queue": 0, "link": "clients->servers",
              "impairment": {"loss": 5, "delay_ms": 40, "segment": 2, "gap_ms": 50, ...},
              "skb_priority": 65552,            # tc class 1:10 for the packets we send
              "split": true}]}                  # a per-segment lab: GSO packets go on cut
"impairment" is ``impairment_to_dict``'s form of an ``Impairment``; an empty one queues a
link only so that the connections reset or black-holed the other way are dropped here.
Semantics follow tc-netem, in its order: drop (partition, loss), duplicate, corrupt, then
delay or (reorder %) send at once; then the stream kinds.
"""

from __future__ import annotations

import argparse
import errno
import heapq
import json
import os
import select
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional

import subprocess

from lab.programs import tcp_packets
from lab.programs.impairer_decisions import LinkConfig, LinkImpairer, flip_random_bit, link_rng, load_config
from lab.programs.impairer_streams import Streams
from lab.programs.shared.backends import NFT_STREAMS_TABLE
from lab.programs.nfqueue import (NF_ACCEPT, NF_DROP, NFNL_SUBSYS_QUEUE, NFQNL_CFG_CMD_BIND,
                                  NFQNL_CFG_CMD_UNBIND, NFQNL_MSG_PACKET, NLMSG_ERROR,
                                  NETLINK_NETFILTER, SO_RCVBUFFORCE, QueuedPacket, config_command,
                                  config_copy_packet, iter_messages, kernel_queue_stats, parse_error,
                                  parse_packet, verdict_message)


DEAD_TABLE = NFT_STREAMS_TABLE


def dead_ruleset() -> str:
    """A set of dead connections (reset or black-holed) whose packets the forward hook
    drops both ways, before iptables queues anything to us.  Pure SYNs pass, so a new
    connection on the same addresses reaches us and revives them."""
    return "\n".join([
        f"table ip {DEAD_TABLE} {{}}", f"delete table ip {DEAD_TABLE}", f"table ip {DEAD_TABLE} {{",
        "\tset dead { type ipv4_addr . inet_service . ipv4_addr . inet_service; flags timeout; timeout 30m; }",
        "\tchain drop_dead {", "\t\ttype filter hook forward priority filter - 5; policy accept;",
        "\t\tip protocol tcp tcp flags & (syn | ack) != syn "
        "ip saddr . tcp sport . ip daddr . tcp dport @dead counter drop",
        "\t}", "}", ""])


def dead_elements(key: tuple) -> str:
    """Both directions of a flow key, as nft set elements."""
    (a, p), (b, q) = key
    a, b = socket.inet_ntoa(a), socket.inet_ntoa(b)
    return f"{{ {a} . {p} . {b} . {q}, {b} . {q} . {a} . {p} }}"


def nft(argv: List[str], stdin: Optional[str] = None) -> Optional[str]:
    """Run nft; the error text, or None.  A failure is reported in the stats, not fatal:
    stopping would let every packet through unimpaired."""
    done = subprocess.run(["nft"] + argv, input=stdin, capture_output=True, text=True)
    return None if done.returncode == 0 else (done.stderr.strip() or f"exit {done.returncode}")


@dataclass(order=True)
class _Held:
    release_at: float
    order: int
    queue: int = field(compare=False)
    packet_id: int = field(compare=False)     # -1 for a duplicate we send ourselves
    payload: Optional[bytes] = field(compare=False)


class Impairer:
    RECV_BUFSIZE = 0x10000 + 4096
    RCVBUF_BYTES = 64 << 20       # room for bursts while we are busy releasing packets
    MAX_BATCH = 256               # packets read before releasing due ones and flushing
    FLUSH_BYTES = 32 << 10        # verdicts go out in one send of up to this many bytes

    def __init__(self, config_path: str, seed: Optional[int], sock: Optional[socket.socket] = None,
                 clock=time.monotonic):
        """``sock`` and ``clock`` are for tests; by default a fresh netlink socket."""
        self.config_path = config_path
        self.clock = clock
        self.seed = seed
        self.links: Dict[int, LinkImpairer] = {}
        self.maxlen = 20000
        self.heap: List[_Held] = []
        self.order = 0
        self.pending = bytearray()
        self.seq = 0
        self.enobufs = 0
        self.verdict_errors: Dict[str, int] = {}
        self.copy_errors: Dict[str, int] = {}
        self.raw: Optional[socket.socket] = None
        self.flags = {"reload": False, "stats": False, "stop": False}
        self.streams = Streams()
        self.streaming = False       # some link has stream kinds: parse TCP headers
        self.dead_table = False      # DEAD_TABLE is loaded
        self.nft_errors: List[str] = []
        if sock is None:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
            sock.bind((0, 0))
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, self.RCVBUF_BYTES)
        self.sock = sock

    # setup ------------------------------------------------------------------------------

    def _request(self, message: bytes) -> None:
        """Send one config message and wait for its acknowledgement; raise on error.
        Packets that arrive meanwhile (a queue already bound) are handled, not lost."""
        self.sock.setblocking(True)
        self.sock.send(message)
        (seq,) = struct.unpack_from("=I", message, 8)
        while True:
            data = self._recv()
            if data is None:
                continue
            for msg_type, msg_seq, body in iter_messages(data):
                if msg_type == NLMSG_ERROR and msg_seq == seq:
                    error = parse_error(body)
                    if error:
                        raise OSError(error, f"nfnetlink_queue config: {os.strerror(error)}")
                    return
                self._handle(msg_type, msg_seq, body)

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def bind(self, queue: int, whole: bool = False, gso: Optional[bool] = None) -> None:
        self._request(config_command(queue, NFQNL_CFG_CMD_BIND, self._next_seq()))
        self._request(config_copy_packet(queue, self.maxlen, self._next_seq(), whole=whole, gso=gso))

    def unbind(self, queue: int) -> None:
        self._request(config_command(queue, NFQNL_CFG_CMD_UNBIND, self._next_seq()))

    def apply_config(self, maxlen: int, configs: Dict[int, LinkConfig]) -> None:
        """Bind new queues, unbind dropped ones (releasing what they hold first), and give
        kept queues their new settings.  Held packets keep their release times."""
        self.streaming = any(c.impairment.stream() for c in configs.values())
        if self.streaming and not self.dead_table:
            error = nft(["-f", "-"], dead_ruleset())
            if error:
                raise OSError(f"nft: cannot load table {DEAD_TABLE}: {error}")
            self.dead_table = True
        elif not self.streaming and self.dead_table:
            nft(["delete", "table", "ip", DEAD_TABLE])
            self.dead_table = False
        if (any(c.impairment.duplicate for c in configs.values()) or self.streaming) and self.raw is None:
            # IPPROTO_RAW implies IP_HDRINCL: we send the copy exactly as forwarded.
            self.raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self.maxlen = maxlen
        for queue in sorted(set(self.links) - set(configs)):
            self._release(lambda held, q=queue: held.queue == q)
            self.flush()
            self.unbind(queue)
            del self.links[queue]
        for queue, config in sorted(configs.items()):
            old = self.links.get(queue)
            if old is None:
                self.bind(queue, whole=config.whole_packets, gso=config.gso)
                self.links[queue] = LinkImpairer(config, link_rng(self.seed, queue))
            else:
                self._request(config_copy_packet(queue, maxlen, self._next_seq(),
                                                 whole=config.whole_packets, gso=config.gso))
                # New settings start a new loss state, but keep the generator, and the
                # counters while the queue still serves the same link.
                fresh = LinkImpairer(config, old.rng)
                if config.link == old.config.link:
                    fresh.counters = old.counters
                self.links[queue] = fresh

    # packets ----------------------------------------------------------------------------

    def _handle(self, msg_type: int, seq: int, body: bytes) -> None:
        if msg_type == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
            self._on_packet(parse_packet(body))
        elif msg_type == NLMSG_ERROR:
            # We ask no acks for verdicts, so this is a refused verdict (seq 0), e.g. for a
            # packet the kernel no longer holds.  Counted and reported in the stats.
            name = errno.errorcode.get(parse_error(body), str(parse_error(body)))
            self.verdict_errors[name] = self.verdict_errors.get(name, 0) + 1

    def _on_packet(self, packet: QueuedPacket) -> None:
        link = self.links.get(packet.queue)
        if link is None:  # a queue being unbound: let it pass
            self._verdict(packet.queue, packet.packet_id, NF_ACCEPT)
            return
        emissions = link.decide()
        if not emissions:
            self._verdict(packet.queue, packet.packet_id, NF_DROP)
            return
        now = self.clock()
        segment = tcp_packets.parse(packet.payload) if self.streaming else None
        if segment is not None:
            verdict = self.streams.decide(link.config.impairment, packet.queue, segment, now,
                                          link.rng, link.counters)
            while self.streams.changed:
                key, dead = self.streams.changed.pop(0)
                error = nft(["add" if dead else "delete", "element", "ip", DEAD_TABLE, "dead",
                             dead_elements(key)])
                if error:
                    self.nft_errors = (self.nft_errors + [error])[-5:]
            if not verdict.accept:
                self._verdict(packet.queue, packet.packet_id, NF_DROP)
                for made in verdict.made:
                    self._hold(now + emissions[0].delay + made.delay, packet.queue, -1, made.packet)
                return
            if verdict.delay:
                emissions = [replace(e, delay=e.delay + verdict.delay) for e in emissions]
        for emission in emissions:
            payload = None
            if emission.corrupt:
                payload = flip_random_bit(packet.payload, link.rng)
            elif emission.copy:
                payload = packet.payload
            packet_id = -1 if emission.copy else packet.packet_id
            if emission.delay > 0:
                self._hold(now + emission.delay, packet.queue, packet_id, payload)
            else:
                self._emit(packet.queue, packet_id, payload)

    def _hold(self, release_at: float, queue: int, packet_id: int, payload: Optional[bytes]) -> None:
        """Emit at ``release_at`` (at once if due): packets held together keep their order."""
        if release_at <= self.clock() and not self.heap:
            self._emit(queue, packet_id, payload)
            return
        self.order += 1
        heapq.heappush(self.heap, _Held(release_at, self.order, queue, packet_id, payload))

    def _emit(self, queue: int, packet_id: int, payload: Optional[bytes]) -> None:
        if packet_id >= 0:
            self._verdict(queue, packet_id, NF_ACCEPT, payload)
        else:
            self._send_copy(queue, payload)

    def _send_copy(self, queue: int, packet: bytes) -> None:
        """A duplicate, a piece or a reset leaves through a raw socket: routed like the
        original, whose TTL the kernel has already lowered before the FORWARD hook queued
        it.  It skips the forward chain that puts the link's packets in their tc class,
        so we set the class as the socket's priority."""
        self.flush()   # verdicts given before go first: a reset must not overtake the data
        destination = socket.inet_ntoa(packet[16:20])
        priority = self.links[queue].config.skb_priority
        try:
            if priority is not None:
                self.raw.setsockopt(socket.SOL_SOCKET, socket.SO_PRIORITY, priority)
            self.raw.sendto(packet, (destination, 0))
        except OSError as exc:
            # A lost duplicate is not worth stopping for (stopping would let every packet
            # through unimpaired); it is counted and shown in the stats.
            name = errno.errorcode.get(exc.errno, str(exc.errno))
            self.copy_errors[name] = self.copy_errors.get(name, 0) + 1

    def _verdict(self, queue: int, packet_id: int, verdict: int,
                 payload: Optional[bytes] = None) -> None:
        self.pending += verdict_message(queue, packet_id, verdict, payload)
        if len(self.pending) >= self.FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Send the pending verdicts, many netlink messages in one datagram.  The socket
        is left as it was: flushing in the middle of reading a batch must not make the
        batch's next read block."""
        if self.pending:
            blocking = self.sock.getblocking()
            self.sock.setblocking(True)
            self.sock.send(self.pending)
            self.sock.setblocking(blocking)
            self.pending.clear()

    def _release(self, which=None) -> None:
        """Emit held packets: those due now, or (``which``) those matching, at once."""
        if which is None:
            now = self.clock()
            while self.heap and self.heap[0].release_at <= now:
                held = heapq.heappop(self.heap)
                self._emit(held.queue, held.packet_id, held.payload)
            return
        keep = []
        for held in sorted(self.heap):
            if which(held):
                self._emit(held.queue, held.packet_id, held.payload)
            else:
                keep.append(held)
        self.heap = keep  # a sorted list is a valid heap

    def _recv(self) -> Optional[bytes]:
        """One datagram, or None if our receive buffer had overflowed: the kernel then
        dropped packets (they show in kernel_queue_stats as socket_full_dropped).
        Counted in the stats, and reading goes on."""
        try:
            return self.sock.recv(self.RECV_BUFSIZE)
        except OSError as exc:
            if exc.errno != errno.ENOBUFS:
                raise
            self.enobufs += 1
            return None

    def _read_batch(self) -> None:
        self.sock.setblocking(False)
        for _ in range(self.MAX_BATCH):
            try:
                data = self._recv()
            except BlockingIOError:
                return
            if data is None:
                continue
            for msg_type, seq, body in iter_messages(data):
                self._handle(msg_type, seq, body)

    # running ----------------------------------------------------------------------------

    def stats(self) -> dict:
        try:
            kernel = kernel_queue_stats()
        except OSError as exc:
            kernel = {"error": str(exc)}
        return {
            "queues": {str(q): {"link": l.config.link, **vars(l.counters)}
                       for q, l in sorted(self.links.items())},
            "held": len(self.heap),
            "enobufs": self.enobufs,
            "verdict_errors": self.verdict_errors,
            "copy_errors": self.copy_errors,
            "nft_errors": self.nft_errors,
            "kernel": {str(q): s for q, s in sorted(kernel.items())}
            if "error" not in kernel else kernel,
        }

    def _on_signals(self) -> None:
        if self.flags["reload"]:
            self.flags["reload"] = False
            try:
                self.apply_config(*load_config(self.config_path))
            except (OSError, ValueError, TypeError) as exc:
                # The old settings stay in force; the runner sees this line and decides.
                emit_line({"event": "reload_failed", "error": str(exc)})
            else:
                emit_line({"event": "reloaded", "queues": sorted(self.links)})
        if self.flags["stats"]:
            self.flags["stats"] = False
            emit_line({"event": "stats", **self.stats()})

    def run(self) -> None:
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        # A signal writes a byte here, so the wait returns and the flags get looked at.
        signal.set_wakeup_fd(wake_w.fileno())
        while not self.flags["stop"]:
            # select() waits to the microsecond: poll()'s whole milliseconds, rounded up,
            # would hold every delayed packet up to 1 ms too long.
            timeout = max(0.0, self.heap[0].release_at - self.clock()) if self.heap else None
            readable, _, _ = select.select([self.sock, wake_r], [], [], timeout)
            if wake_r in readable:
                while True:
                    try:
                        wake_r.recv(64)
                    except BlockingIOError:
                        break
            if self.sock in readable:
                self._read_batch()
            self._release()
            self.flush()
            self._on_signals()

    def shutdown(self) -> dict:
        """Let every held packet go now (late, but not lost), unbind, and return the final
        stats (taken before unbinding, while the kernel still has its queue counters)."""
        released = len(self.heap)
        self._release(lambda held: True)
        self.flush()
        final = {**self.stats(), "released_at_exit": released}
        for queue in sorted(self.links):
            self.unbind(queue)
        if self.dead_table:
            nft(["delete", "table", "ip", DEAD_TABLE])
        return final


def emit_line(obj: dict) -> None:
    print(json.dumps(obj, sort_keys=True), flush=True)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m lab.programs.impairer",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="JSON config file (reloaded on SIGHUP)")
    parser.add_argument("--seed", type=int, help="make the random choices repeatable")
    args = parser.parse_args(argv)

    maxlen, links = load_config(args.config)
    engine = Impairer(args.config, args.seed)

    def set_flag(name):
        return lambda _signum, _frame: engine.flags.__setitem__(name, True)

    signal.signal(signal.SIGHUP, set_flag("reload"))
    signal.signal(signal.SIGUSR1, set_flag("stats"))
    signal.signal(signal.SIGTERM, set_flag("stop"))
    signal.signal(signal.SIGINT, set_flag("stop"))
    engine.apply_config(maxlen, links)
    emit_line({"event": "ready", "pid": os.getpid(), "queues": sorted(engine.links),
               "seed": args.seed})
    engine.run()
    emit_line({"event": "exit", **engine.shutdown()})
    return 0


if __name__ == "__main__":
    sys.exit(main())

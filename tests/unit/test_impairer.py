"""The impairer without a kernel: netlink packing and parsing, the per-packet
decisions (checked against binomial intervals, not magic numbers), and the scheduling of
held packets with a fake socket and clock."""

import json
import math
import random
import struct

import pytest

from lab.programs import impairer_decisions as decisions
from lab.programs import nfqueue
from lab.programs.impairer import Impairer as Engine
from lab.programs.impairer_decisions import (CorrelatedLoss, GilbertElliottLoss, LinkConfig,
                                             LinkImpairer, link_rng)

N = 20_000


# -- statistics helpers -------------------------------------------------------------------


def binomial_interval(n: int, p: float, confidence: float = 0.99):
    """The central interval [lo, hi] of Binomial(n, p) holding ``confidence`` of its mass,
    computed exactly (log-space pmf summed over mean +- 12 standard deviations)."""
    tail = (1 - confidence) / 2
    mean, sd = n * p, math.sqrt(n * p * (1 - p))
    start, stop = max(0, int(mean - 12 * sd)), min(n, int(mean + 12 * sd) + 1)

    def pmf(k):
        return math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
                        + k * math.log(p) + (n - k) * math.log1p(-p))

    cumulative, lo = 0.0, None
    for k in range(start, stop + 1):
        cumulative += pmf(k)
        if lo is None and cumulative > tail:
            lo = k
        if cumulative >= 1 - tail:
            return lo, k
    return lo, stop


def assert_share(count: int, n: int, percent: float, inflation: float = 1.0):
    """``count`` of ``n`` is a plausible draw at ``percent``.  ``inflation`` widens the
    interval for correlated draws: n / inflation of them carry as much information as
    independent ones (variance grows by that factor)."""
    n_eff = int(n / inflation)
    lo, hi = binomial_interval(n_eff, percent / 100)
    share = count / n
    assert lo / n_eff <= share <= hi / n_eff, (
        f"{count}/{n} = {share:.4%} outside the 99% interval "
        f"[{lo / n_eff:.4%}, {hi / n_eff:.4%}] for {percent}%")


def impairer(seed=1, **fields):
    return LinkImpairer(LinkConfig.of(queue=0, **fields), random.Random(seed))


def test_binomial_interval_agrees_with_the_normal_approximation():
    # 8,000 +- 2.576 * 40 = 7,897..8,103 for 10,000 draws at 80 %; exact may differ by one
    lo, hi = binomial_interval(10_000, 0.8)
    assert abs(lo - 7897) <= 1 and abs(hi - 8103) <= 1


# -- loss ---------------------------------------------------------------------------------


@pytest.mark.parametrize("percent", [1, 10, 50])
def test_random_loss_rate(percent):
    link = impairer(loss=percent)
    dropped = sum(not link.decide() for _ in range(N))
    assert_share(dropped, N, percent)
    assert link.counters.dropped == dropped and link.counters.seen == N


def test_partition_drops_everything():
    link = impairer(partition=True)
    assert all(link.decide() == [] for _ in range(1000))


def test_correlated_loss_keeps_its_rate_and_has_its_correlation():
    p, rho = 0.10, 0.5
    model, rng = CorrelatedLoss(p * 100, rho * 100), random.Random(3)
    losses = [model.lost(rng) for _ in range(100_000)]
    assert_share(sum(losses), len(losses), p * 100, inflation=(1 + rho) / (1 - rho))
    after_loss = [b for a, b in zip(losses, losses[1:]) if a]
    assert_share(sum(after_loss), len(after_loss), (p + rho * (1 - p)) * 100)


def test_gilbert_elliott_rate_and_burst_length():
    # Simple Gilbert (1-h = 100 %, 1-k = 0): loss = being in Bad; bursts are geometric
    # with mean 1/r.  The state chain's correlation decays as lam = 1 - p - r.
    p, r = 0.02, 0.25
    model, rng = GilbertElliottLoss(p * 100, r * 100), random.Random(4)
    losses = [model.lost(rng) for _ in range(200_000)]
    lam = 1 - p - r
    assert_share(sum(losses), len(losses), p / (p + r) * 100, inflation=(1 + lam) / (1 - lam))
    bursts, run = [], 0
    for lost in losses:
        if lost:
            run += 1
        elif run:
            bursts.append(run)
            run = 0
    mean = sum(bursts) / len(bursts)
    sd = math.sqrt(1 - r) / r  # of a geometric distribution
    assert abs(mean - 1 / r) < 2.576 * sd / math.sqrt(len(bursts))


def test_gilbert_elliott_losses_by_state():
    # 1-k = 10 % in Good, 1-h = 60 % in Bad: long-run 10 % * 0.8 + 60 % * 0.2 = 20 %
    model, rng = GilbertElliottLoss(p=5, r=20, one_minus_h=60, one_minus_k=10), random.Random(5)
    losses = [model.lost(rng) for _ in range(200_000)]
    lam = 1 - 0.05 - 0.20
    assert_share(sum(losses), len(losses), 20, inflation=(1 + lam) / (1 - lam))


def test_config_picks_the_loss_model():
    assert isinstance(LinkConfig.of(queue=0, loss=5).loss_model(), decisions.BernoulliLoss)
    assert isinstance(LinkConfig.of(queue=0, loss=5, loss_correlation=9).loss_model(),
                      CorrelatedLoss)
    assert isinstance(LinkConfig.of(queue=0, gemodel={"p": 1, "r": 9}).loss_model(),
                      GilbertElliottLoss)
    assert isinstance(LinkConfig.of(queue=0).loss_model(), decisions.NoLoss)


# -- delay, jitter, reorder, duplicate, corrupt ---------------------------------------------


def test_delay_with_jitter_is_uniform_around_the_delay():
    link = impairer(delay_ms=40, jitter_ms=10)
    delays = [link.decide()[0].delay * 1000 for _ in range(N)]
    assert 30 <= min(delays) and max(delays) <= 50
    sd = 10 / math.sqrt(3)  # of a uniform on [-10, 10]
    assert abs(sum(delays) / N - 40) < 2.576 * sd / math.sqrt(N)
    assert_share(sum(d < 35 for d in delays), N, 25)  # a quarter of [30, 50]


def test_jitter_larger_than_delay_never_gives_a_negative_delay():
    link = impairer(delay_ms=5, jitter_ms=20)
    assert min(link.decide()[0].delay for _ in range(2000)) == 0


def test_reorder_sends_that_share_at_once_and_delays_the_rest():
    link = impairer(delay_ms=100, reorder=25)
    emissions = [link.decide()[0] for _ in range(N)]
    at_once = [e for e in emissions if e.delay == 0]
    assert all(e.reordered for e in at_once)
    assert all(e.delay == 0.1 for e in emissions if not e.reordered)
    assert_share(len(at_once), N, 25)
    assert link.counters.reordered == len(at_once)
    assert link.counters.delayed == N - len(at_once)


def test_duplicates_are_extra_copies_with_their_own_delay():
    link = impairer(delay_ms=10, jitter_ms=5, duplicate=10)
    decisions = [link.decide() for _ in range(N)]
    copies = [d[1] for d in decisions if len(d) == 2]
    assert_share(len(copies), N, 10)
    assert all(c.copy for c in copies) and not any(d[0].copy for d in decisions)
    assert any(d[0].delay != d[1].delay for d in decisions if len(d) == 2)


def test_corrupt_share():
    link = impairer(corrupt=5)
    corrupted = sum(link.decide()[0].corrupt for _ in range(N))
    assert_share(corrupted, N, 5)


def test_loss_comes_before_duplication():
    # netem order: a dropped packet is not duplicated
    link = impairer(loss=50, duplicate=100)
    decisions = [link.decide() for _ in range(2000)]
    assert {len(d) for d in decisions} == {0, 2}


def test_flip_random_bit_changes_one_bit_after_the_ip_header():
    packet = bytes([0x45]) + bytes(19) + bytes(range(40))  # IPv4, IHL 5 -> 20-byte header
    rng = random.Random(6)
    for _ in range(200):
        damaged = decisions.flip_random_bit(packet, rng)
        assert damaged[:20] == packet[:20]
        diff = [a ^ b for a, b in zip(packet, damaged)]
        assert sum(bin(d).count("1") for d in diff) == 1


def test_same_seed_same_decisions_per_link():
    def run(seed, queue):
        link = LinkImpairer(LinkConfig.of(queue=queue, loss=20, delay_ms=10, jitter_ms=5,
                                       reorder=10), link_rng(seed, queue))
        return [link.decide() for _ in range(500)]
    assert run(7, 0) == run(7, 0)
    assert run(7, 0) != run(7, 1)
    assert run(7, 0) != run(8, 0)


# -- config -------------------------------------------------------------------------------


def write_config(tmp_path, data):
    path = tmp_path / "engine.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_load_config(tmp_path):
    path = write_config(tmp_path, {"version": 2, "queue_maxlen": 500, "links": [
        {"queue": 3, "link": "a->b", "impairment": {"delay_ms": 10, "loss": None}}]})
    maxlen, links = decisions.load_config(path)
    assert maxlen == 500 and links == {3: LinkConfig.of(queue=3, link="a->b", delay_ms=10)}


@pytest.mark.parametrize("data, message", [
    ({"version": 1, "links": []}, "unsupported config version"),
    ({"version": 2, "links": [{"queue": 0, "latency": 5}]}, "unknown field.*latency"),
    ({"version": 2, "links": [{"queue": 0, "impairment": {"latency": 5}}]}, "unknown impairment field.*latency"),
    ({"version": 2, "links": [{"queue": 0}, {"queue": 0}]}, "appears twice"),
    ({"version": 2, "links": [{"queue": 0, "impairment": {"loss": 120}}]}, "loss must be a percentage"),
    ({"version": 2, "links": [{"queue": 0, "impairment": {"segment": 0}}]}, "segment must be between 1"),
])
def test_bad_config_is_an_error(tmp_path, data, message):
    with pytest.raises(ValueError, match=message):
        decisions.load_config(write_config(tmp_path, data))


def test_plan_engine_config_loads(tmp_path):
    # what lab.impairments.plan() writes, the engine reads
    from lab.programs.shared.impairment import Capabilities, GilbertElliott, Impairment, Link
    from lab.programs.shared.backends import plan
    caps = Capabilities(iptables_nfqueue=True, nfqueue_netlink=True, raw_socket=True)
    p = plan({Link("a", "b"): Impairment(gemodel=GilbertElliott(p=1), delay_ms=5, jitter_ms=1,
                                         reorder=5, duplicate=1, corrupt=1)},
             {"a": "eth0", "b": "eth1"}, caps)
    _, links = decisions.load_config(write_config(tmp_path, p.impairer_config))
    assert links[0].impairment.gemodel.to_dict() == {"p": 1, "r": 99, "one_minus_h": 100.0, "one_minus_k": 0.0}
    assert links[0].loss_model().lost(random.Random(0)) in (True, False)


# -- netlink messages ---------------------------------------------------------------------


def test_pack_attr_pads_to_four_bytes():
    assert nfqueue.pack_attr(10, b"abc") == struct.pack("=HH", 7, 10) + b"abc\0"
    assert nfqueue.pack_attr(2, b"12345678") == struct.pack("=HH", 12, 2) + b"12345678"


def test_verdict_message_layout():
    msg = nfqueue.verdict_message(queue=5, packet_id=42, verdict=nfqueue.NF_ACCEPT)
    assert msg == (struct.pack("=IHHII", 32, 0x0301, nfqueue.NLM_F_REQUEST, 0, 0)
                   + struct.pack("!BBH", 0, 0, 5)
                   + struct.pack("=HH", 12, nfqueue.NFQA_VERDICT_HDR) + struct.pack("!II", 1, 42))


def test_verdict_with_payload_carries_it():
    msg = nfqueue.verdict_message(queue=0, packet_id=1, verdict=nfqueue.NF_ACCEPT, payload=b"\x45xyz")
    attrs = nfqueue.parse_attrs(msg, 20)
    assert attrs[nfqueue.NFQA_PAYLOAD] == b"\x45xyz"
    assert struct.unpack("!II", attrs[nfqueue.NFQA_VERDICT_HDR]) == (1, 1)


def test_config_messages_layout():
    bind = nfqueue.config_command(queue=7, command=nfqueue.NFQNL_CFG_CMD_BIND, seq=9)
    length, msg_type, flags, seq, _ = struct.unpack_from("=IHHII", bind)
    assert (length, msg_type, flags, seq) == (len(bind), 0x0302,
                                              nfqueue.NLM_F_REQUEST | nfqueue.NLM_F_ACK, 9)
    assert struct.unpack_from("!BBH", bind, 16) == (0, 0, 7)
    assert nfqueue.parse_attrs(bind, 20) == {nfqueue.NFQA_CFG_CMD: bytes([1, 0, 0, 2])}  # AF_INET=2
    params = nfqueue.parse_attrs(nfqueue.config_copy_packet(queue=7, maxlen=1000, seq=10), 20)
    assert params[nfqueue.NFQA_CFG_PARAMS] == struct.pack("!IB", 0xFFFF, nfqueue.NFQNL_COPY_PACKET)
    assert params[nfqueue.NFQA_CFG_QUEUE_MAXLEN] == struct.pack("!I", 1000)
    assert params[nfqueue.NFQA_CFG_FLAGS] == struct.pack("!I", 0)  # GSO packets cut into segments
    assert params[nfqueue.NFQA_CFG_MASK] == struct.pack("!I", nfqueue.NFQA_CFG_F_GSO)


def test_whole_packets_only_where_no_decision_needs_segments_or_payload():
    whole = nfqueue.parse_attrs(nfqueue.config_copy_packet(queue=7, maxlen=1000, seq=10, whole=True), 20)
    assert whole[nfqueue.NFQA_CFG_PARAMS] == struct.pack("!IB", 0, nfqueue.NFQNL_COPY_META)
    assert whole[nfqueue.NFQA_CFG_FLAGS] == struct.pack("!I", nfqueue.NFQA_CFG_F_GSO)
    assert decisions.LinkConfig.of(queue=0, delay_ms=1, jitter_ms=0.5, reorder=10).whole_packets
    assert decisions.LinkConfig.of(queue=0, partition=True).whole_packets
    for per_segment in ({"loss": 1}, {"gemodel": {"p": 1, "r": 30}}, {"duplicate": 1},
                        {"corrupt": 1}):
        assert not decisions.LinkConfig.of(queue=0, delay_ms=1, **per_segment).whole_packets


def kernel_packet(queue: int, packet_id: int, payload: bytes, seq: int = 0) -> bytes:
    """A NFQNL_MSG_PACKET as the kernel builds it (7-byte packet header, padded)."""
    attrs = (nfqueue.pack_attr(nfqueue.NFQA_PACKET_HDR, struct.pack("!IHB", packet_id, 0x0800, 2))
             + nfqueue.pack_attr(5, struct.pack("!I", 3))  # NFQA_IFINDEX_INDEV, which we skip
             + nfqueue.pack_attr(nfqueue.NFQA_PAYLOAD, payload))
    body = struct.pack("!BBH", 2, 0, queue) + attrs
    return struct.pack("=IHHII", 16 + len(body), 0x0300, 0, seq, 0) + body


def test_parse_packet_from_a_kernel_message():
    ((msg_type, seq, body),) = list(nfqueue.iter_messages(kernel_packet(4, 77, b"\x45payload")))
    assert msg_type == 0x0300 and seq == 0
    packet = nfqueue.parse_packet(body)
    assert (packet.queue, packet.packet_id, packet.payload) == (4, 77, b"\x45payload")


def test_iter_messages_walks_several_and_rejects_truncation():
    data = kernel_packet(0, 1, b"a") + kernel_packet(0, 2, b"bb")
    ids = [nfqueue.parse_packet(body).packet_id for _, _, body in nfqueue.iter_messages(data)]
    assert ids == [1, 2]
    with pytest.raises(ValueError, match="truncated"):
        list(nfqueue.iter_messages(data[:-3]))


def test_parse_error():
    assert nfqueue.parse_error(struct.pack("=i", -16) + bytes(16)) == 16  # EBUSY
    assert nfqueue.parse_error(struct.pack("=i", 0) + bytes(16)) == 0


# -- the engine's scheduling, with a fake socket and clock ----------------------------------


class FakeSocket:
    def __init__(self):
        self.sent = []
        self.blocking = True

    def setblocking(self, flag):
        self.blocking = flag

    def getblocking(self):
        return self.blocking

    def send(self, data):
        self.sent.append(bytes(data))

    def sendto(self, data, address):
        self.sent.append((bytes(data), address))

    def setsockopt(self, level, option, value):
        self.sent.append(("setsockopt", option, value))

    def recv(self, size):
        """The kernel's acknowledgement of the last config message sent."""
        (seq,) = struct.unpack_from("=I", self.sent[-1], 8)
        body = struct.pack("=i", 0) + self.sent[-1][:16]
        return struct.pack("=IHHII", 16 + len(body), nfqueue.NLMSG_ERROR, 0, seq, 0) + body

    def config_commands(self):
        """(queue, command) for each bind/unbind sent, in order."""
        out = []
        for datagram in self.sent:
            for msg_type, _, body in nfqueue.iter_messages(datagram):
                attrs = nfqueue.parse_attrs(body, 4)
                if msg_type == 0x0302 and nfqueue.NFQA_CFG_CMD in attrs:
                    out.append((struct.unpack_from("!H", body, 2)[0], attrs[nfqueue.NFQA_CFG_CMD][0]))
        return out

    def verdicts(self):
        """(packet id, verdict, payload) for every verdict sent so far, in order."""
        out = []
        for datagram in self.sent:
            for msg_type, _, body in nfqueue.iter_messages(datagram):
                if msg_type != 0x0301:  # config messages
                    continue
                attrs = nfqueue.parse_attrs(body, 4)
                verdict, packet_id = struct.unpack("!II", attrs[nfqueue.NFQA_VERDICT_HDR])
                out.append((packet_id, verdict, attrs.get(nfqueue.NFQA_PAYLOAD)))
        return out


@pytest.fixture
def engine():
    clock = [1000.0]
    sock = FakeSocket()
    eng = Engine("unused.json", seed=1, sock=sock, clock=lambda: clock[0])
    eng.clock_value = clock
    return eng


def set_link(engine, **fields):
    engine.links[0] = LinkImpairer(LinkConfig.of(queue=0, **fields), random.Random(2))


def feed(engine, packet_id, payload=b"\x45" + bytes(27)):
    ((msg_type, seq, body),) = list(nfqueue.iter_messages(kernel_packet(0, packet_id, payload)))
    engine._handle(msg_type, seq, body)


def test_unimpaired_packets_are_accepted_at_once(engine):
    set_link(engine)
    for packet_id in range(1, 4):
        feed(engine, packet_id)
    engine.flush()
    assert engine.sock.verdicts() == [(1, 1, None), (2, 1, None), (3, 1, None)]
    assert len(engine.sock.sent) == 1  # batched into one datagram


def test_delayed_packets_are_released_later_and_reordered_ones_overtake(engine):
    set_link(engine, delay_ms=100, reorder=50)
    for packet_id in range(1, 41):
        feed(engine, packet_id)
    engine._release()
    engine.flush()
    at_once = [v[0] for v in engine.sock.verdicts()]
    assert 0 < len(at_once) < 40 and len(engine.heap) == 40 - len(at_once)
    engine.clock_value[0] += 0.099
    engine._release()
    assert len(engine.heap) == 40 - len(at_once)  # not yet
    engine.clock_value[0] += 0.002
    engine._release()
    engine.flush()
    released = [v[0] for v in engine.sock.verdicts()][len(at_once):]
    assert released == sorted(set(range(1, 41)) - set(at_once))  # in arrival order
    assert not engine.heap


def test_dropped_packets_get_a_drop_verdict(engine):
    set_link(engine, partition=True)
    feed(engine, 9)
    engine.flush()
    assert engine.sock.verdicts() == [(9, nfqueue.NF_DROP, None)]


def test_corrupted_packets_are_accepted_with_a_new_payload(engine):
    set_link(engine, corrupt=100)
    payload = b"\x45" + bytes(19) + b"data" * 4
    feed(engine, 5, payload)
    engine.flush()
    ((packet_id, verdict, new),) = engine.sock.verdicts()
    assert (packet_id, verdict) == (5, nfqueue.NF_ACCEPT)
    assert len(new) == len(payload) and new != payload and new[:20] == payload[:20]


def test_duplicates_go_out_through_the_raw_socket(engine):
    set_link(engine, duplicate=100)
    engine.raw = FakeSocket()
    payload = b"\x45" + bytes(11) + bytes([10, 88, 1, 3, 10, 88, 2, 10]) + b"data"
    feed(engine, 6, payload)
    engine.flush()
    assert engine.sock.verdicts() == [(6, nfqueue.NF_ACCEPT, None)]
    assert engine.raw.sent == [(payload, ("10.88.2.10", 0))]


def test_shutdown_releases_everything_held(engine):
    set_link(engine, delay_ms=10_000)
    engine.unbind = lambda queue: None  # no kernel here
    for packet_id in (1, 2):
        feed(engine, packet_id)
    final = engine.shutdown()
    assert [v[0] for v in engine.sock.verdicts()] == [1, 2] and not engine.heap
    assert final["released_at_exit"] == 2 and final["queues"]["0"]["delayed"] == 2


def test_refused_verdicts_are_counted(engine):
    engine._handle(nfqueue.NLMSG_ERROR, 0, struct.pack("=i", -2) + bytes(16))
    assert engine.stats()["verdict_errors"] == {"ENOENT": 1}


def test_duplicates_on_a_shaped_link_get_its_tc_class_as_priority(engine):
    engine.links[0] = LinkImpairer(LinkConfig.of(queue=0, duplicate=100, skb_priority=0x10010),
                                   random.Random(2))
    engine.raw = FakeSocket()
    payload = b"\x45" + bytes(11) + bytes([10, 88, 1, 3, 10, 88, 2, 10]) + b"data"
    feed(engine, 6, payload)
    import socket
    assert engine.raw.sent == [("setsockopt", socket.SO_PRIORITY, 0x10010),
                               (payload, ("10.88.2.10", 0))]


def test_reload_binds_new_queues_unbinds_old_ones_and_releases_what_they_hold(engine):
    bind, unbind = nfqueue.NFQNL_CFG_CMD_BIND, nfqueue.NFQNL_CFG_CMD_UNBIND
    engine.apply_config(100, {0: LinkConfig.of(queue=0, link="a->b", delay_ms=1000),
                              1: LinkConfig.of(queue=1, link="b->a", loss=5)})
    assert engine.sock.config_commands() == [(0, bind), (1, bind)]
    feed(engine, 7)  # held for a second on queue 0
    engine.links[1].counters.seen = 3
    engine.sock.sent.clear()
    engine.apply_config(100, {1: LinkConfig.of(queue=1, link="b->a", loss=9),
                              2: LinkConfig.of(queue=2, link="a->c")})
    assert engine.sock.verdicts()[0] == (7, nfqueue.NF_ACCEPT, None)  # released, not lost
    assert engine.sock.config_commands() == [(0, unbind), (2, bind)]
    assert sorted(engine.links) == [1, 2] and not engine.heap
    assert engine.links[1].config.impairment.loss == 9 and engine.links[1].counters.seen == 3


def test_reload_resets_counters_when_a_queue_serves_another_link(engine):
    engine.apply_config(100, {0: LinkConfig.of(queue=0, link="a->b")})
    engine.links[0].counters.seen = 3
    engine.apply_config(100, {0: LinkConfig.of(queue=0, link="b->a")})
    assert engine.links[0].counters.seen == 0


def test_a_flush_while_reading_a_batch_leaves_the_socket_non_blocking(engine):
    # the router sends what it made (a piece, a reset) mid-batch, flushing verdicts
    # first; the batch's next read must still not block
    engine.sock.setblocking(False)
    engine._verdict(0, 1, nfqueue.NF_ACCEPT)
    engine.flush()
    assert engine.sock.sent and not engine.sock.getblocking()

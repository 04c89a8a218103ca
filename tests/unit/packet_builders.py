"""Packets and pcap files built by hand, for the pure tests of lab.packets and lab.report
(a helper module, not a test module: test files import it, never each other)."""
import io

import dpkt

from lab.packets import fates, ladder, pcap
from lab.packets.fates import Iface
from lab.programs.shared.impairment import Impairment

CLIENT, SERVER = "10.9.1.101", "10.9.2.10"
IFACES = [Iface("eth0", "clients", "10.9.1.0/24"), Iface("eth1", "servers", "10.9.2.0/24")]
HOSTS = [("router", "10.9.1.1", "clients"), ("router", "10.9.2.1", "servers"),
         ("client1", CLIENT, "clients"), ("server", SERVER, "servers")]
SUBNET = {i.name: i.subnet for i in IFACES}


def ip_packet(src, dst, l4, proto, ttl=64, ip_id=1):
    ip = dpkt.ip.IP(src=bytes(map(int, src.split("."))), dst=bytes(map(int, dst.split("."))),
                    p=proto, ttl=ttl, id=ip_id, data=l4)
    ip.len = len(bytes(ip))
    return ip


def tcp(src, dst, flags, seq=0, ack=0, data=b"", sport=40000, dport=12000, **kw):
    return ip_packet(src, dst, dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags, data=data),
                     dpkt.ip.IP_PROTO_TCP, **kw)


def udp(src, dst, data, sport=40000, dport=12000, **kw):
    u = dpkt.udp.UDP(sport=sport, dport=dport, data=data)
    u.ulen = 8 + len(data)
    return ip_packet(src, dst, u, dpkt.ip.IP_PROTO_UDP, **kw)


def pcap_bytes(items):
    """items: (time, ip packet) -> pcap file bytes (ns stamps, Ethernet, as the router writes)."""
    buf = io.BytesIO()
    w = dpkt.pcap.Writer(buf, nano=True)
    for t, ip in items:
        eth = dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=dpkt.ethernet.ETH_TYPE_IP, data=ip)
        w.writepkt(bytes(eth), ts=t)
    return buf.getvalue()


def forwarded(ip):
    """The copy a router sends on: TTL one less (the checksum is recomputed)."""
    copy = dpkt.ip.IP(bytes(ip))
    copy.ttl -= 1
    copy.sum = 0
    return copy


def packets(eth0, eth1):
    return (pcap.read_pcap(pcap_bytes(eth0), "eth0", SUBNET["eth0"]).packets
            + pcap.read_pcap(pcap_bytes(eth1), "eth1", SUBNET["eth1"]).packets)


def handshake_with_a_lost_segment():
    """SYN, SYN-ACK, ACK, a data segment dropped by a partition, its retransmission, FIN."""
    syn = tcp(CLIENT, SERVER, dpkt.tcp.TH_SYN, seq=1000, ip_id=1)
    synack = tcp(SERVER, CLIENT, dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK, seq=5000, ack=1001, sport=12000, dport=40000)
    ack = tcp(CLIENT, SERVER, dpkt.tcp.TH_ACK, seq=1001, ack=5001, ip_id=2)
    data = tcp(CLIENT, SERVER, dpkt.tcp.TH_ACK | dpkt.tcp.TH_PUSH, seq=1001, ack=5001, data=b"hello", ip_id=3)
    again = tcp(CLIENT, SERVER, dpkt.tcp.TH_ACK | dpkt.tcp.TH_PUSH, seq=1001, ack=5001, data=b"hello", ip_id=4)
    fin = tcp(CLIENT, SERVER, dpkt.tcp.TH_FIN | dpkt.tcp.TH_ACK, seq=1006, ack=5001, ip_id=5)
    eth0 = [(1.0, syn), (1.002, forwarded(synack)), (1.003, ack), (1.004, data), (1.3, again), (1.4, fin)]
    eth1 = [(1.0001, forwarded(syn)), (1.0019, synack), (1.0031, forwarded(ack)), (1.3001, forwarded(again)),
            (1.4001, forwarded(fin))]
    m = fates.match(packets(eth0, eth1), IFACES,
                    [fates.Window(1.0035, 1.1, "clients->servers", Impairment(partition=True))])
    return ladder.build(m, HOSTS, title="client1 <hello>")


def fragments(ip, mtu):
    """The IPv4 fragments a router with this MTU makes of ``ip``, as Linux cuts them: every
    fragment but the last carries (mtu - 20) // 8 * 8 bytes; the id is kept."""
    whole = bytes(ip)
    hl = ip.hl * 4
    data = whole[hl:ip.len]
    step = (mtu - hl) // 8 * 8
    flags_offset = int.from_bytes(whole[6:8], "big")
    start = flags_offset & 0x1FFF        # already a fragment: its offset, in 8-byte units
    more_after = bool(flags_offset & 0x2000)
    out = []
    for at in range(0, len(data), step):
        last = at + step >= len(data)
        header = bytearray(whole[:hl])
        header[2:4] = (hl + len(data[at:at + step])).to_bytes(2, "big")
        header[6:8] = ((start + at // 8) | (0x2000 if not last or more_after else 0)).to_bytes(2, "big")
        header[10:12] = b"\0\0"
        out.append(dpkt.ip.IP(bytes(header) + data[at:at + step]))
    return out

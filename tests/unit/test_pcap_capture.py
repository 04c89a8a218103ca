"""pcap-capture's file format (pure parts): a standard nanosecond pcap, Ethernet frames."""
import shutil
import struct
import subprocess

import pytest

from lab.programs.pcap_capture import LINKTYPE_ETHERNET, PCAP_NS_MAGIC, file_header, record, timestamp

FRAME = bytes.fromhex("ffffffffffff020000000001" "0806") + bytes(28)   # an ARP frame, padded


def test_header_and_record_layout():
    header = file_header()
    magic, major, minor, _zone, _sigfigs, snap, link = struct.unpack("=IHHiIII", header)
    assert (magic, major, minor, link) == (PCAP_NS_MAGIC, 2, 4, LINKTYPE_ETHERNET) and snap > 1500
    rec = record(1700000000, 123456789, FRAME, len(FRAME))
    assert struct.unpack("=IIII", rec[:16]) == (1700000000, 123456789, len(FRAME), len(FRAME))
    assert rec[16:] == FRAME


def test_timestamp_falls_back_to_now_without_ancillary_data():
    sec, nsec = timestamp([])
    assert sec > 1_600_000_000 and 0 <= nsec < 10 ** 9


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed here")
def test_tcpdump_reads_the_file(tmp_path):
    path = tmp_path / "one.pcap"
    path.write_bytes(file_header() + record(1700000000, 5, FRAME, len(FRAME)))
    done = subprocess.run(["tcpdump", "-nr", str(path)], capture_output=True, text=True)
    assert done.returncode == 0 and "ARP" in done.stdout, done.stderr

"""pcap files with ERF INFINIBAND records (link type 197, ERF type 21)."""

from __future__ import annotations

import contextlib
import io
import struct
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ibmig.errors import WireError
from ibmig.wire.capture import (
    CapturedPacket,
    CaptureWriter,
    encode_capture,
    erf_timestamp,
    erf_timestamp_ns,
    iter_capture,
    read_capture,
    write_capture,
)
from tests.wire.tshark_util import mad_packet, tshark_fields

PACKET = bytes(range(34))  # any bytes: the container does not look inside

# Laid out by hand: pcap global header (little endian, nanosecond magic), then one
# record: pcap record header, ERF header, packet.
HAND_BUILT = (
    bytes.fromhex("4d3cb2a1")  # magic 0xA1B23C4D (nanosecond resolution), little endian
    + bytes.fromhex("0200 0400")  # version 2.4
    + bytes.fromhex("00000000 00000000")  # thiszone, sigfigs
    + bytes.fromhex("ffff0000")  # snaplen 65535
    + bytes.fromhex("c5000000")  # link type 197 (ERF)
    + bytes.fromhex("05000000")  # ts_sec 5
    + bytes.fromhex("00e1f505")  # ts_nsec 100_000_000 (0x05F5E100)
    + bytes.fromhex("32000000 32000000")  # incl_len, orig_len: 16 + 34 = 50
    + bytes.fromhex("9a999919 05000000")  # ERF ts: 5 s + 0.1 s = 0x1999999A / 2**32, LE
    + bytes.fromhex("15")  # type 21 INFINIBAND
    + bytes.fromhex("04")  # flags: variable length
    + bytes.fromhex("0032")  # rlen 50, big endian
    + bytes.fromhex("0000")  # lctr
    + bytes.fromhex("0022")  # wlen 34
    + PACKET
)


def test_hand_built_capture_both_ways() -> None:
    assert encode_capture([(5_100_000_000, PACKET)]) == HAND_BUILT
    assert list(iter_capture(HAND_BUILT)) == [CapturedPacket(5_100_000_000, PACKET)]
    out = io.BytesIO()
    CaptureWriter(out).write(PACKET, 5_100_000_000)
    assert out.getvalue() == HAND_BUILT


def test_files(tmp_path: Path) -> None:
    path = tmp_path / "x.pcap"
    write_capture(path, [(1, b"a" * 26), (2, b"b" * 30)])
    assert read_capture(path) == [CapturedPacket(1, b"a" * 26), CapturedPacket(2, b"b" * 30)]
    assert read_capture(str(path)) == read_capture(path)
    (tmp_path / "bad.pcap").write_bytes(b"\0" * 24)
    with pytest.raises(WireError, match=r"bad\.pcap: bad pcap magic"):
        read_capture(tmp_path / "bad.pcap")


timestamps = st.integers(0, (1 << 32) * 1_000_000_000 - 1)


@given(timestamps)
def test_erf_timestamp_round_trip(ns: int) -> None:
    ts = erf_timestamp(ns)
    assert ts >> 64 == 0
    assert erf_timestamp_ns(ts) == ns
    # the nearest 32.32 fixed-point value
    assert abs(Fraction(ts, 2**32) - Fraction(ns, 10**9)) <= Fraction(1, 2**33)


@given(st.lists(st.tuples(timestamps, st.binary(max_size=300)), max_size=5))
def test_round_trip(records: list[tuple[int, bytes]]) -> None:
    data = encode_capture(records)
    assert list(iter_capture(data)) == [CapturedPacket(ts, p) for ts, p in records]


@given(st.binary(max_size=200))
def test_arbitrary_bytes_give_packets_or_wire_error(data: bytes) -> None:
    with contextlib.suppress(WireError):
        list(iter_capture(data))


@given(st.binary(max_size=120))
def test_arbitrary_records_after_valid_header(tail: bytes) -> None:
    with contextlib.suppress(WireError):
        list(iter_capture(HAND_BUILT[:24] + tail))


def test_errors() -> None:
    with pytest.raises(WireError, match="truncated pcap header"):
        list(iter_capture(HAND_BUILT[:10]))
    with pytest.raises(WireError, match="bad pcap magic"):
        list(iter_capture(b"\x0a\x0d\x0d\x0a" + HAND_BUILT[4:]))  # pcapng
    wrong_link = HAND_BUILT[:20] + struct.pack("<I", 1) + HAND_BUILT[24:]
    with pytest.raises(WireError, match="wrong link type 1"):
        list(iter_capture(wrong_link))
    with pytest.raises(WireError, match="truncated record header"):
        list(iter_capture(HAND_BUILT[:30]))
    with pytest.raises(WireError, match="truncated record of packet 0"):
        list(iter_capture(HAND_BUILT[:-1]))
    wrong_type = bytearray(HAND_BUILT)
    wrong_type[24 + 16 + 8] = 2  # ERF type 2: Ethernet
    with pytest.raises(WireError, match="wrong ERF type 2"):
        list(iter_capture(bytes(wrong_type)))
    big_rlen = bytearray(HAND_BUILT)
    big_rlen[24 + 16 + 10 : 24 + 16 + 12] = struct.pack(">H", 51)
    with pytest.raises(WireError, match="rlen 51"):
        list(iter_capture(bytes(big_rlen)))
    short_erf = HAND_BUILT[:24] + struct.pack("<IIII", 0, 0, 8, 8) + bytes(8)
    with pytest.raises(WireError, match="truncated ERF header"):
        list(iter_capture(short_erf))
    with pytest.raises(WireError, match="does not fit"):
        encode_capture([(0, bytes(70000))])
    with pytest.raises(WireError, match="negative"):
        encode_capture([(-1, PACKET)])
    with pytest.raises(WireError, match="32-bit seconds"):
        encode_capture([((1 << 32) * 1_000_000_000, PACKET)])


def test_reads_other_pcap_flavours() -> None:
    # Big-endian, microsecond pcap with link type 247 (raw InfiniBand).
    data = (
        struct.pack(">IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 247)
        + struct.pack(">IIII", 7, 250, len(PACKET), len(PACKET))
        + PACKET
    )
    assert list(iter_capture(data)) == [CapturedPacket(7_000_250_000, PACKET)]
    # ERF record with one extension header and padding to 8 bytes after wlen.
    erf = (
        struct.pack("<Q", erf_timestamp(3_000_000_000))
        + struct.pack(">BBHHH", 0x80 | 21, 0x04, 16 + 8 + 34 + 6, 0, 34)
        + bytes.fromhex("0100000000000000")  # extension header, no further one
        + PACKET
        + bytes(6)
    )
    data = HAND_BUILT[:24] + struct.pack("<IIII", 0, 0, len(erf), len(erf)) + erf
    assert list(iter_capture(data)) == [CapturedPacket(3_000_000_000, PACKET)]
    # The extension header says another follows, but the record ends.
    erf = (
        struct.pack("<Q", 0)
        + struct.pack(">BBHHH", 0x80 | 21, 0x04, 16 + 8, 0, 0)
        + bytes.fromhex("8100000000000000")
    )
    data = HAND_BUILT[:24] + struct.pack("<IIII", 0, 0, len(erf), len(erf)) + erf
    with pytest.raises(WireError, match="extension header"):
        list(iter_capture(data))


@pytest.mark.interop
def test_tshark_reads_our_captures(tshark: str, tmp_path: Path) -> None:
    mad = struct.pack(">BBBBHHQHHI", 1, 0x01, 1, 0x01, 0, 0, 0x1234, 0x0011, 0, 0) + bytes(232)
    packets = [mad_packet(mad, qp=0), mad_packet(mad, qp=1)]
    rows = tshark_fields(
        tmp_path,
        packets,
        ["erf.types.type", "erf.flags", "erf.rlen", "erf.wlen", "erf.lctr", "frame.len",
         "frame.protocols", "infiniband.mad.mgmtclass", "infiniband.mad.method"],
    )  # fmt: skip
    for packet, row in zip(packets, rows, strict=True):
        assert row["erf.types.type"] == ["21"]
        assert [int(v, 0) for v in row["erf.flags"]] == [0x04]
        assert row["erf.rlen"] == [str(16 + len(packet))]
        assert row["erf.wlen"] == [str(len(packet))]
        assert row["erf.lctr"] == ["0"]
        assert row["frame.len"] == [str(len(packet))]
        assert row["frame.protocols"] == ["erf:infiniband"]
        assert row["infiniband.mad.mgmtclass"] == ["0x01"]
        assert row["infiniband.mad.method"] == ["0x01"]


@pytest.mark.interop
def test_tshark_shows_our_timestamps(tshark: str, tmp_path: Path) -> None:
    stamps = [0, 5, 999_999_999, 1_700_000_000_123_456_789, (1 << 32) * 1_000_000_000 - 1]
    path = tmp_path / "t.pcap"
    write_capture(path, [(ts, PACKET) for ts in stamps])
    out = subprocess.run(
        [tshark, "-r", str(path), "-T", "fields", "-e", "frame.time_epoch"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert out == [f"{ts // 10**9}.{ts % 10**9:09d}" for ts in stamps]

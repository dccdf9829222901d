"""Capture files of InfiniBand packets that Wireshark/tshark can read.

Written format: a classic pcap file (nanosecond variant, magic 0xA1B23C4D, little
endian) with link type 197 (DLT_ERF), each packet inside an ERF record of type 21
(TYPE_INFINIBAND), which is the container tshark 4.0 dissects as InfiniBand; it
refuses link type 247 (DLT_INFINIBAND) outright. The 16-byte ERF record header
(Endace "Extensible Record Format"):

    byte 0   timestamp, 64-bit little endian, 32.32 fixed point: seconds since
             1970 in the high 32 bits, binary fraction of a second in the low 32
    byte 8   type (bit 7: an extension header follows; bits 6..0: 21)
    byte 9   flags (0x04: variable-length record)
    byte 10  rlen, big endian: record length, this header included
    byte 12  lctr, big endian: loss counter (0)
    byte 14  wlen, big endian: the packet's length on the wire

The packet is the whole IBA packet, LRH through VCRC.

Reading accepts pcap files in either byte order, microsecond or nanosecond
resolution, with link type 197 (ERF records of type 21, extension headers
skipped, padding beyond wlen dropped) or 247 (the packet alone, timestamp
from the pcap record header). Anything else raises WireError.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import BinaryIO, ClassVar

from ibmig.errors import WireError

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
PCAP_VERSION = (2, 4)
PCAP_HEADER_SIZE = 24
PCAP_RECORD_HEADER_SIZE = 16
ERF_HEADER_SIZE = 16
ERF_EXT_HEADER_SIZE = 8
ERF_FLAG_VLEN = 0x04
ERF_TYPE_MASK = 0x7F
ERF_EXT_FLAG = 0x80
SNAPLEN = 0xFFFF
NS_PER_S = 1_000_000_000


class LinkType(IntEnum):
    """pcap link-layer header types (tcpdump.org LINKTYPE_*)."""

    ERF = 197
    INFINIBAND = 247


class ErfType(IntEnum):
    """ERF record types used here."""

    INFINIBAND = 21


_PCAP_HEADER_LE = struct.Struct("<IHHiIII")
_PCAP_RECORD_LE = struct.Struct("<IIII")
_PCAP_RECORD_BE = struct.Struct(">IIII")
_ERF_TIMESTAMP = struct.Struct("<Q")
_ERF_TAIL = struct.Struct(">BBHHH")
_ERF_RECORD_PREFIX = struct.Struct("<IIIIQ")  # pcap record header + ERF timestamp


def erf_timestamp(timestamp_ns: int) -> int:
    """Nanoseconds since the epoch -> ERF 32.32 fixed point (nearest fraction)."""
    seconds, ns = divmod(timestamp_ns, NS_PER_S)
    if not 0 <= seconds <= 0xFFFFFFFF:
        raise WireError(f"timestamp {timestamp_ns} ns does not fit ERF's 32-bit seconds")
    frac = (ns * (1 << 32) + NS_PER_S // 2) // NS_PER_S
    erf_ts = (seconds << 32) + frac  # frac may round up to 2**32: carries into seconds
    if erf_ts >> 64:
        raise WireError(f"timestamp {timestamp_ns} ns does not fit ERF's 32-bit seconds")
    return erf_ts


def erf_timestamp_ns(erf_ts: int) -> int:
    """ERF 32.32 fixed point -> nanoseconds (nearest). Inverts `erf_timestamp`."""
    frac = erf_ts & 0xFFFFFFFF
    return (erf_ts >> 32) * NS_PER_S + (frac * NS_PER_S + (1 << 31)) // (1 << 32)


@dataclass(frozen=True, slots=True)
class CapturedPacket:
    """One packet read from a capture file: its time and its bytes."""

    timestamp_ns: int
    data: bytes


class CaptureWriter:
    """Writes a pcap (link type ERF) file of InfiniBand packets to a binary file
    object; the pcap header goes out on construction."""

    HEADER: ClassVar[bytes] = _PCAP_HEADER_LE.pack(
        PCAP_MAGIC_NS, *PCAP_VERSION, 0, 0, SNAPLEN, LinkType.ERF
    )

    def __init__(self, fileobj: BinaryIO) -> None:
        self._file = fileobj
        fileobj.write(self.HEADER)

    def write(self, packet: bytes, timestamp_ns: int) -> None:
        self._file.write(encode_record(packet, timestamp_ns))


def encode_record(packet: bytes, timestamp_ns: int) -> bytes:
    """One pcap record (header + ERF INFINIBAND record) for `packet`."""
    size = len(packet)
    if size > SNAPLEN - ERF_HEADER_SIZE:
        raise WireError(f"packet of {size} bytes does not fit an ERF record")
    if timestamp_ns < 0:
        raise WireError(f"negative timestamp {timestamp_ns} ns")
    erf_ts = erf_timestamp(timestamp_ns)
    seconds, ns = divmod(timestamp_ns, NS_PER_S)
    rlen = ERF_HEADER_SIZE + size
    return (
        _ERF_RECORD_PREFIX.pack(seconds, ns, rlen, rlen, erf_ts)
        + _ERF_TAIL.pack(ErfType.INFINIBAND, ERF_FLAG_VLEN, rlen, 0, size)
        + packet
    )


def encode_capture(packets: Iterable[tuple[int, bytes]]) -> bytes:
    """A whole capture file in memory from (timestamp_ns, packet) pairs."""
    parts = [CaptureWriter.HEADER]
    parts.extend(encode_record(packet, ts) for ts, packet in packets)
    return b"".join(parts)


def write_capture(path: str | Path, packets: Iterable[tuple[int, bytes]]) -> None:
    """Write (timestamp_ns, packet) pairs to a capture file at `path`."""
    with open(path, "wb") as f:
        writer = CaptureWriter(f)
        for ts, packet in packets:
            writer.write(packet, ts)


def read_capture(path: str | Path) -> list[CapturedPacket]:
    """Every packet of the capture file at `path`, in file order."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return list(iter_capture(data))
    except WireError as exc:
        raise WireError(f"{path}: {exc}") from None


def iter_capture(data: bytes) -> Iterator[CapturedPacket]:
    """Decode a capture file held in memory, packet by packet."""
    if len(data) < PCAP_HEADER_SIZE:
        raise WireError(f"truncated pcap header: {len(data)} of {PCAP_HEADER_SIZE} bytes")
    magic_le = int.from_bytes(data[:4], "little")
    magic_be = int.from_bytes(data[:4], "big")
    if magic_le in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
        endian, magic = "<", magic_le
    elif magic_be in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
        endian, magic = ">", magic_be
    else:
        raise WireError(f"bad pcap magic {data[:4].hex()} (not a pcap file)")
    sub_ns = 1 if magic == PCAP_MAGIC_NS else 1000
    record = _PCAP_RECORD_LE if endian == "<" else _PCAP_RECORD_BE
    (linktype,) = struct.unpack_from(endian + "I", data, 20)
    linktype &= 0x0FFFFFFF  # the top bits may carry FCS information
    if linktype not in (LinkType.ERF, LinkType.INFINIBAND):
        raise WireError(
            f"wrong link type {linktype}: expected {LinkType.ERF} (ERF) "
            f"or {LinkType.INFINIBAND} (InfiniBand)"
        )
    offset = PCAP_HEADER_SIZE
    index = 0
    while offset < len(data):
        if len(data) - offset < PCAP_RECORD_HEADER_SIZE:
            raise WireError(f"truncated record header of packet {index} at offset {offset}")
        ts_sec, ts_sub, incl_len, _orig_len = record.unpack_from(data, offset)
        offset += PCAP_RECORD_HEADER_SIZE
        if len(data) - offset < incl_len:
            raise WireError(
                f"truncated record of packet {index} at offset {offset}: "
                f"{len(data) - offset} of {incl_len} bytes"
            )
        body = data[offset : offset + incl_len]
        offset += incl_len
        if linktype == LinkType.INFINIBAND:
            yield CapturedPacket(ts_sec * NS_PER_S + ts_sub * sub_ns, bytes(body))
        else:
            yield _decode_erf(body, index)
        index += 1


def _decode_erf(body: bytes, index: int) -> CapturedPacket:
    if len(body) < ERF_HEADER_SIZE:
        raise WireError(
            f"truncated ERF header of packet {index}: {len(body)} of {ERF_HEADER_SIZE} bytes"
        )
    (erf_ts,) = _ERF_TIMESTAMP.unpack_from(body)
    erf_type, _flags, rlen, _lctr, wlen = _ERF_TAIL.unpack_from(body, 8)
    if erf_type & ERF_TYPE_MASK != ErfType.INFINIBAND:
        raise WireError(
            f"wrong ERF type {erf_type & ERF_TYPE_MASK} in packet {index}: "
            f"expected {ErfType.INFINIBAND} (INFINIBAND)"
        )
    if rlen < ERF_HEADER_SIZE or rlen > len(body):
        raise WireError(
            f"ERF rlen {rlen} of packet {index} disagrees with its {len(body)}-byte record"
        )
    start = ERF_HEADER_SIZE
    more = erf_type & ERF_EXT_FLAG
    while more:
        if rlen - start < ERF_EXT_HEADER_SIZE:
            raise WireError(f"truncated ERF extension header in packet {index}")
        more = body[start] & ERF_EXT_FLAG
        start += ERF_EXT_HEADER_SIZE
    end = min(rlen, start + wlen)
    return CapturedPacket(erf_timestamp_ns(erf_ts), bytes(body[start:end]))

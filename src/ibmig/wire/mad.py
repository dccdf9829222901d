"""The common MAD header, the 256-byte MAD, and the RMPP header.

Every management datagram is 256 bytes (IBA Vol 1, 13.4.2 "Management Datagram
Format"). It starts with the common header of 24 bytes (13.4.3 "MAD Base
Format"):

    byte 0   BaseVersion (1)
    byte 1   MgmtClass
    byte 2   ClassVersion
    byte 3   R (bit 7: response) | Method (bits 6..0)
    byte 4   Status (16 bits; for directed-route SMPs bit 15 is the D bit)
    byte 6   ClassSpecific (16 bits; hop pointer and hop count for DR SMPs)
    byte 8   TransactionID (64 bits)
    byte 16  AttributeID
    byte 18  Reserved
    byte 20  AttributeModifier (32 bits)

`method` keeps the whole byte, R bit included, as OpenSM and Wireshark show it
(GetResp is 0x81). Classes that use RMPP (SA, 13.6 "Reliable Multi-Packet
Transaction Protocol") follow the common header with a 12-byte RMPP header.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

from ibmig.errors import WireError

MAD_SIZE = 256
MAD_HEADER_SIZE = 24
RMPP_HEADER_SIZE = 12
BASE_VERSION = 1


class MgmtClass(IntEnum):
    """Management classes (IBA Vol 1, 13.4.4, Table 115)."""

    SUBN_LID_ROUTED = 0x01
    SUBN_ADM = 0x03
    PERF = 0x04
    BM = 0x05
    DEV_MGT = 0x06
    COMM_MGT = 0x07
    SNMP = 0x08
    SUBN_DIRECTED_ROUTE = 0x81


class Method(IntEnum):
    """Method values with the response bit where it belongs (IBA Vol 1, 13.4.5, Table 116;
    SA methods 15.2.2, Table 187)."""

    GET = 0x01
    SET = 0x02
    SEND = 0x03
    TRAP = 0x05
    REPORT = 0x06
    TRAP_REPRESS = 0x07
    GET_TABLE = 0x12
    GET_TRACE_TABLE = 0x13
    GET_MULTI = 0x14
    DELETE = 0x15
    GET_RESP = 0x81
    REPORT_RESP = 0x86
    GET_TABLE_RESP = 0x92
    GET_MULTI_RESP = 0x94
    DELETE_RESP = 0x95


RESPONSE_BIT = 0x80


class MadStatus(IntEnum):
    """Common MAD status field values (IBA Vol 1, 13.4.7, Table 117).

    Bits 0..1 are flags (busy, redirect); bits 2..4 carry the invalid-field code;
    bits 8..14 are class specific (SA codes in `ibmig.wire.sa`).
    """

    OK = 0x0000
    BUSY = 0x0001
    REDIRECT = 0x0002
    BAD_VERSION = 0x0004  # code 1: class version or base version not supported
    METHOD_NOT_SUPPORTED = 0x0008  # code 2
    METHOD_ATTR_NOT_SUPPORTED = 0x000C  # code 3: method/attribute combination
    INVALID_FIELD = 0x001C  # code 7: invalid value in attribute or modifier


_HEADER = struct.Struct(">BBBBHHQHHI")
_RMPP = struct.Struct(">BBBBII")


@dataclass(frozen=True, slots=True)
class MadHeader:
    """The 24-byte common MAD header (IBA Vol 1, 13.4.3)."""

    mgmt_class: int
    method: int
    attribute_id: int
    tid: int = 0
    attribute_modifier: int = 0
    status: int = 0
    class_specific: int = 0
    class_version: int = 1
    base_version: int = BASE_VERSION

    SIZE: ClassVar[int] = MAD_HEADER_SIZE

    @property
    def is_response(self) -> bool:
        return bool(self.method & RESPONSE_BIT)

    def pack(self) -> bytes:
        try:
            return _HEADER.pack(
                self.base_version,
                self.mgmt_class,
                self.class_version,
                self.method,
                self.status,
                self.class_specific,
                self.tid,
                self.attribute_id,
                0,
                self.attribute_modifier,
            )
        except struct.error as exc:
            raise WireError(f"MAD header field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes) -> MadHeader:
        if len(data) < MAD_HEADER_SIZE:
            raise WireError(f"MAD header needs {MAD_HEADER_SIZE} bytes, got {len(data)}")
        (bv, mclass, cver, method, status, cspec, tid, attr, _rsv, amod) = _HEADER.unpack_from(data)
        return cls(mclass, method, attr, tid, amod, status, cspec, cver, bv)


class RmppType(IntEnum):
    """RMPP packet types (IBA Vol 1, 13.6.2.1, Table 167)."""

    NONE = 0
    DATA = 1
    ACK = 2
    STOP = 3
    ABORT = 4


class RmppFlags(IntEnum):
    ACTIVE = 0x01
    FIRST = 0x02
    LAST = 0x04


@dataclass(frozen=True, slots=True)
class RmppHeader:
    """The 12-byte RMPP header (IBA Vol 1, 13.6.2.1 "RMPP Header Fields").

    byte 0 RMPVersion, byte 1 RMPPType, byte 2 RRespTime (bits 7..3) | RMPPFlags
    (bits 2..0: Last, First, Active), byte 3 RMPPStatus, bytes 4..7 SegmentNumber
    (DATA) or Data1, bytes 8..11 PayloadLength (DATA) or NewWindowLast (ACK) or Data2.
    """

    rmpp_version: int = 0
    rmpp_type: int = RmppType.NONE
    resp_time: int = 0
    flags: int = 0
    rmpp_status: int = 0
    data1: int = 0
    data2: int = 0

    SIZE: ClassVar[int] = RMPP_HEADER_SIZE
    NONE: ClassVar[RmppHeader]

    @property
    def segment_number(self) -> int:
        return self.data1

    @property
    def payload_length(self) -> int:
        return self.data2

    def pack(self) -> bytes:
        if not 0 <= self.resp_time <= 0x1F:
            raise WireError(f"RMPP RRespTime {self.resp_time} does not fit 5 bits")
        if not 0 <= self.flags <= 0x7:
            raise WireError(f"RMPP flags {self.flags} do not fit 3 bits")
        try:
            return _RMPP.pack(
                self.rmpp_version,
                self.rmpp_type,
                (self.resp_time << 3) | self.flags,
                self.rmpp_status,
                self.data1,
                self.data2,
            )
        except struct.error as exc:
            raise WireError(f"RMPP header field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> RmppHeader:
        if len(data) - offset < RMPP_HEADER_SIZE:
            raise WireError(f"RMPP header needs {RMPP_HEADER_SIZE} bytes")
        ver, typ, rt_flags, status, d1, d2 = _RMPP.unpack_from(data, offset)
        return cls(ver, typ, rt_flags >> 3, rt_flags & 0x7, status, d1, d2)


RmppHeader.NONE = RmppHeader()


@dataclass(frozen=True, slots=True)
class Mad:
    """Any 256-byte MAD: the common header and 232 bytes of class data, undecoded.

    Class-specific codecs (`smp`, `sa`, `cm`) decode `data` further; this record is
    what `ibmig decode` falls back to for classes it does not know.
    """

    header: MadHeader
    data: bytes = bytes(MAD_SIZE - MAD_HEADER_SIZE)

    SIZE: ClassVar[int] = MAD_SIZE

    def pack(self) -> bytes:
        if len(self.data) != MAD_SIZE - MAD_HEADER_SIZE:
            raise WireError(
                f"MAD data must be {MAD_SIZE - MAD_HEADER_SIZE} bytes, got {len(self.data)}"
            )
        return self.header.pack() + self.data

    @classmethod
    def unpack(cls, data: bytes) -> Mad:
        check_mad_size(data)
        return cls(MadHeader.unpack(data), bytes(data[MAD_HEADER_SIZE:MAD_SIZE]))


def check_mad_size(data: bytes) -> None:
    """Raise WireError unless `data` is exactly one 256-byte MAD."""
    if len(data) != MAD_SIZE:
        raise WireError(f"a MAD is {MAD_SIZE} bytes, got {len(data)}")


def peek_tid(data: bytes) -> int:
    """The 64-bit TransactionID of an encoded MAD, without decoding the rest."""
    if len(data) < MAD_HEADER_SIZE:
        raise WireError(f"MAD header needs {MAD_HEADER_SIZE} bytes, got {len(data)}")
    return int.from_bytes(data[8:16], "big")


def with_tid(data: bytes, tid: int) -> bytes:
    """An encoded MAD with its TransactionID replaced. One MAD sent to many
    receivers, each transaction with its own TID (the SA's Reports of one notice),
    is encoded once and stamped per receiver."""
    if len(data) < MAD_HEADER_SIZE:
        raise WireError(f"MAD header needs {MAD_HEADER_SIZE} bytes, got {len(data)}")
    if not 0 <= tid <= 0xFFFF_FFFF_FFFF_FFFF:
        raise WireError(f"TransactionID {tid:#x} does not fit 64 bits")
    return data[:8] + tid.to_bytes(8, "big") + data[16:]


def peek_class(data: bytes) -> tuple[int, int, int]:
    """(mgmt_class, method, attribute_id) of a MAD without decoding it."""
    if len(data) < MAD_HEADER_SIZE:
        raise WireError(f"MAD header needs {MAD_HEADER_SIZE} bytes, got {len(data)}")
    return data[1], data[3], (data[16] << 8) | data[17]

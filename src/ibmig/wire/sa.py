"""Subnet Administration (management class 0x03): the SA MAD and its records.

The SA MAD (IBA Vol 1, 15.2.1.1 "SA MAD Format") is a 256-byte MAD:

    byte 0    common MAD header (24 bytes, `ibmig.wire.mad.MadHeader`)
    byte 24   RMPP header (12 bytes, `ibmig.wire.mad.RmppHeader`)
    byte 36   SM_Key (64)
    byte 44   AttributeOffset (16): spacing of the records in 8-byte words
    byte 46   reserved (16)
    byte 48   ComponentMask (64): which record components a query constrains
    byte 56   SubnetAdminData, 200 bytes

A SubnAdmGet/Set/Report/Delete carries one record at the start of the data. A
SubnAdmGetTableResp carries a table: record i starts at i * AttributeOffset * 8,
AttributeOffset being the record size rounded up to 8 bytes (OpenSM's
`ib_get_attr_offset`). A response too long for one MAD travels as RMPP segments
(13.6); `decode_records` decodes a reassembled payload, `SaMad.records()` what
one MAD holds. OpenSM sets RMPP PayloadLength of a table to 20 + n * record
size padded (the 20 bytes of SA header after the RMPP header, counted once), and
`SaMad.records()` uses it to tell records from padding.

Record sizes (IBA Vol 1, 15.2.5; padding as in OpenSM ib_types.h, which
Wireshark's dissector agrees with), in bytes and in AttributeOffset words:

    PathRecord        0x0035   64   8     15.2.5.16
    NodeRecord        0x0011  112  14     15.2.5.2 (108 + 4 pad)
    PortInfoRecord    0x0012   72   9     15.2.5.3 (68 + 4 pad)
    GUIDInfoRecord    0x0030   72   9     15.2.5.18
    InformInfoRecord  0x00F3   64   8     15.2.5.12 (60 + 4 pad)
    InformInfo        0x0003   36   5     13.4.8.3 (never in a table)
    ClassPortInfo     0x0001   72   9     13.4.8.1
    Notice            0x0002   80  10     13.4.8.2 (`ibmig.wire.notice`)
    LinkRecord        0x0020    8   1     15.2.5.13 (6 + 2 pad)
    SwitchInfoRecord  0x0014   24   3     15.2.5.5
    SMInfoRecord      0x0018   32   4     15.2.5.10 (25 + 7 pad)
    P_KeyTableRecord  0x0033   72   9     15.2.5.11
    SLtoVLMappingTableRecord 0x0013 16 2  15.2.5.4
    VLArbitrationTableRecord 0x0036 72 9  15.2.5.9
    LinearForwardingTableRecord 0x0015 72 9  15.2.5.6
    MulticastForwardingTableRecord 0x0017 72 9  15.2.5.8
    MCMemberRecord    0x0038   56   7     15.2.5.17 (52 + 4 pad)
    ServiceRecord     0x0031  176  22     15.2.5.14
    MultiPathRecord   0x003A 24 + 16 per GID  15.2.5.20 (in SubnAdmGetMulti only)

SA MADs use class version 2 (IBA 1.2 and later; OpenSM answers ClassPortInfo
with class_ver 2).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import ClassVar, Final

from ibmig.errors import WireError
from ibmig.wire.fastrecord import fast_constructor as _fast_constructor
from ibmig.wire.mad import (
    BASE_VERSION,
    MAD_SIZE,
    MadHeader,
    Method,
    MgmtClass,
    RmppFlags,
    RmppHeader,
    RmppType,
)
from ibmig.wire.notice import Notice
from ibmig.wire.smp_attrs import (
    GUIDInfo,
    LinearForwardingTable,
    MulticastForwardingTable,
    NodeDescription,
    NodeInfo,
    PKeyTable,
    PortInfo,
    SMInfo,
    SwitchInfo,
)

SA_CLASS_VERSION: Final = 2
SA_HEADER_SIZE: Final = 56  # common header + RMPP header + SM_Key..ComponentMask
SA_CLASS_HEADER_SIZE: Final = 20  # SM_Key, AttributeOffset, reserved, ComponentMask
SA_DATA_SIZE: Final = MAD_SIZE - SA_HEADER_SIZE  # 200
GID_SIZE: Final = 16


class SaStatus(IntEnum):
    """SA class-specific MAD status values, bits 14..8 of the status field
    (IBA Vol 1, 15.2.1.1, SA MAD status codes; OpenSM IB_SA_MAD_STATUS_*)."""

    ERR_NO_RESOURCES = 0x0100
    ERR_REQ_INVALID = 0x0200
    ERR_NO_RECORDS = 0x0300
    ERR_TOO_MANY_RECORDS = 0x0400
    ERR_REQ_INVALID_GID = 0x0500
    ERR_REQ_INSUFFICIENT_COMPONENTS = 0x0600
    ERR_REQ_DENIED = 0x0700
    ERR_REQ_PRIORITY_SUGGESTED = 0x0800


class SaAttr(IntEnum):
    """SA attribute IDs (IBA Vol 1, 15.2.5 "Attributes", SA attribute table)."""

    CLASS_PORT_INFO = 0x0001
    NOTICE = 0x0002
    INFORM_INFO = 0x0003
    NODE_RECORD = 0x0011
    PORT_INFO_RECORD = 0x0012
    SL_TO_VL_MAPPING_TABLE_RECORD = 0x0013
    SWITCH_INFO_RECORD = 0x0014
    LINEAR_FORWARDING_TABLE_RECORD = 0x0015
    RANDOM_FORWARDING_TABLE_RECORD = 0x0016
    MULTICAST_FORWARDING_TABLE_RECORD = 0x0017
    SM_INFO_RECORD = 0x0018
    LINK_SPEED_WIDTH_PAIRS_TABLE_RECORD = 0x0019
    LINK_RECORD = 0x0020
    GUID_INFO_RECORD = 0x0030
    SERVICE_RECORD = 0x0031
    P_KEY_TABLE_RECORD = 0x0033
    PATH_RECORD = 0x0035
    VL_ARBITRATION_TABLE_RECORD = 0x0036
    MC_MEMBER_RECORD = 0x0038
    TRACE_RECORD = 0x0039
    MULTI_PATH_RECORD = 0x003A
    SERVICE_ASSOCIATION_RECORD = 0x003B
    INFORM_INFO_RECORD = 0x00F3


class Selector(IntEnum):
    """MTU/Rate/PacketLifeTime selectors of a PathRecord (IBA Vol 1, 15.2.5.16)."""

    GREATER_THAN = 0x0
    LESS_THAN = 0x1
    EXACTLY = 0x2
    LARGEST = 0x3  # largest available (MTU, rate) or smallest (packet lifetime)


def _check_gid(name: str, gid: bytes) -> None:
    if not isinstance(gid, bytes) or len(gid) != GID_SIZE:
        raise WireError(f"{name} must be {GID_SIZE} bytes, got {gid!r}")


def _need(data: bytes, offset: int, size: int, what: str) -> None:
    if offset < 0 or len(data) - offset < size:
        raise WireError(f"{what} needs {size} bytes at offset {offset}, got {len(data) - offset}")


def _fields_out_of_range(what: str, checks: Sequence[tuple[str, int, int]]) -> WireError:
    """The WireError naming the first (name, value, bits) that does not fit."""
    for name, value, bits in checks:
        try:
            bad = value >> bits or value < 0
        except TypeError:
            return WireError(f"{what} {name} must be an int, got {value!r}")
        if bad:
            return WireError(f"{what} {name} {value} does not fit {bits} bits")
    return WireError(f"{what}: a field is out of range")


# --------------------------------------------------------------------------- PathRecord


class PathRecordComp(IntFlag):
    """ComponentMask bits of a PathRecord query (IBA Vol 1, 15.2.5.16; OpenSM IB_PR_COMPMASK_*)."""

    SERVICE_ID_MSB = 1 << 0
    SERVICE_ID_LSB = 1 << 1
    DGID = 1 << 2
    SGID = 1 << 3
    DLID = 1 << 4
    SLID = 1 << 5
    RAW_TRAFFIC = 1 << 6
    RESERVED0 = 1 << 7
    FLOW_LABEL = 1 << 8
    HOP_LIMIT = 1 << 9
    TCLASS = 1 << 10
    REVERSIBLE = 1 << 11
    NUMB_PATH = 1 << 12
    PKEY = 1 << 13
    QOS_CLASS = 1 << 14
    SL = 1 << 15
    MTU_SELECTOR = 1 << 16
    MTU = 1 << 17
    RATE_SELECTOR = 1 << 18
    RATE = 1 << 19
    PACKET_LIFE_TIME_SELECTOR = 1 << 20
    PACKET_LIFE_TIME = 1 << 21
    PREFERENCE = 1 << 22
    SERVICE_ID = SERVICE_ID_MSB | SERVICE_ID_LSB


_PATH = struct.Struct(">Q16s16sHHIBBHHBBBB6x")


@dataclass(frozen=True, slots=True)
class PathRecord:
    """PathRecord (IBA Vol 1, 15.2.5.16), 64 bytes:

    byte 0   ServiceID (64)
    byte 8   DGID, byte 24 SGID
    byte 40  DLID, byte 42 SLID
    byte 44  RawTraffic (1) | reserved (3) | FlowLabel (20) | HopLimit (8)
    byte 48  TClass
    byte 49  Reversible (1) | NumbPath (7)
    byte 50  P_Key
    byte 52  QoSClass (12) | SL (4)
    byte 54  MTUSelector (2) | MTU (6)
    byte 55  RateSelector (2) | Rate (6)
    byte 56  PacketLifeTimeSelector (2) | PacketLifeTime (6)
    byte 57  Preference
    byte 58  reserved (48)
    """

    service_id: int = 0
    dgid: bytes = bytes(GID_SIZE)
    sgid: bytes = bytes(GID_SIZE)
    dlid: int = 0
    slid: int = 0
    raw_traffic: bool = False
    flow_label: int = 0
    hop_limit: int = 0
    tclass: int = 0
    reversible: bool = False
    numb_path: int = 0
    pkey: int = 0
    qos_class: int = 0
    sl: int = 0
    mtu_selector: int = 0
    mtu: int = 0
    rate_selector: int = 0
    rate: int = 0
    packet_life_time_selector: int = 0
    packet_life_time: int = 0
    preference: int = 0

    ATTRIBUTE_ID: ClassVar[int] = SaAttr.PATH_RECORD
    SIZE: ClassVar[int] = 64
    ATTRIBUTE_OFFSET: ClassVar[int] = 8

    def pack(self) -> bytes:
        dgid = self.dgid
        sgid = self.sgid
        if dgid.__class__ is not bytes or len(dgid) != GID_SIZE:
            _check_gid("PathRecord DGID", dgid)
        if sgid.__class__ is not bytes or len(sgid) != GID_SIZE:
            _check_gid("PathRecord SGID", sgid)
        fl, hl, nbp = self.flow_label, self.hop_limit, self.numb_path
        qos, sl = self.qos_class, self.sl
        mts, mtu, rts, rate = self.mtu_selector, self.mtu, self.rate_selector, self.rate
        pts, plt = self.packet_life_time_selector, self.packet_life_time
        try:
            bad = (
                fl >> 20
                or hl >> 8
                or nbp >> 7
                or qos >> 12
                or sl >> 4
                or mts >> 2
                or mtu >> 6
                or rts >> 2
                or rate >> 6
                or pts >> 2
                or plt >> 6
            )
        except TypeError:
            bad = True
        if bad:
            raise _fields_out_of_range(
                "PathRecord",
                (
                    ("FlowLabel", fl, 20),
                    ("HopLimit", hl, 8),
                    ("NumbPath", nbp, 7),
                    ("QoSClass", qos, 12),
                    ("SL", sl, 4),
                    ("MTUSelector", mts, 2),
                    ("MTU", mtu, 6),
                    ("RateSelector", rts, 2),
                    ("Rate", rate, 6),
                    ("PacketLifeTimeSelector", pts, 2),
                    ("PacketLifeTime", plt, 6),
                ),
            )
        try:
            return _PATH.pack(
                self.service_id,
                dgid,
                sgid,
                self.dlid,
                self.slid,
                (0x80000000 if self.raw_traffic else 0) | (fl << 8) | hl,
                self.tclass,
                (0x80 if self.reversible else 0) | nbp,
                self.pkey,
                (qos << 4) | sl,
                (mts << 6) | mtu,
                (rts << 6) | rate,
                (pts << 6) | plt,
                self.preference,
            )
        except struct.error as exc:
            raise WireError(f"PathRecord field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> PathRecord:
        """Decode the record at `offset` (a fixed-size slot: trailing bytes are allowed)."""
        if offset < 0 or len(data) - offset < 64:
            _need(data, offset, 64, "PathRecord")
        (sid, dgid, sgid, dlid, slid, word, tclass, rev_nbp, pkey, qos_sl, mtu, rate, plt, pref) = (
            _PATH.unpack_from(data, offset)
        )
        return _new_path_record(
            sid,
            dgid,
            sgid,
            dlid,
            slid,
            word >= 0x80000000,
            (word >> 8) & 0xFFFFF,
            word & 0xFF,
            tclass,
            rev_nbp >= 0x80,
            rev_nbp & 0x7F,
            pkey,
            qos_sl >> 4,
            qos_sl & 0xF,
            mtu >> 6,
            mtu & 0x3F,
            rate >> 6,
            rate & 0x3F,
            plt >> 6,
            plt & 0x3F,
            pref,
        )


_new_path_record = _fast_constructor(PathRecord)

# --------------------------------------------------------------------------- InformInfo

_INFORM = struct.Struct(">16sHH2xBBHHII")


@dataclass(frozen=True, slots=True)
class InformInfo:
    """InformInfo (IBA Vol 1, 13.4.8.3), 36 bytes: a subscription to notices.

        byte 0   GID (all-zero: use the LID range)
        byte 16  LIDRangeBegin, byte 18 LIDRangeEnd (0xFFFF: all)
        byte 20  reserved (16)
        byte 22  IsGeneric (8), byte 23 Subscribe (8)
        byte 24  Type (16; 0xFFFF: all)
        byte 26  TrapNumber, or DeviceID if not generic (0xFFFF: all)
        byte 28  QPN (24) | reserved (3) | RespTimeValue (5)
        byte 32  reserved (8) | ProducerType, or VendorID if not generic (24)

    IsGeneric and Subscribe are whole bytes on the wire (1 or 0) and stay ints
    here, so any byte value survives a decode and re-encode.
    """

    gid: bytes = bytes(GID_SIZE)
    lid_range_begin: int = 0xFFFF
    lid_range_end: int = 0
    is_generic: int = 1
    subscribe: int = 1
    type: int = 0xFFFF
    trap_number: int = 0xFFFF
    qpn: int = 0
    resp_time_value: int = 0
    producer_type: int = 0xFFFFFF

    ATTRIBUTE_ID: ClassVar[int] = SaAttr.INFORM_INFO
    SIZE: ClassVar[int] = 36
    ATTRIBUTE_OFFSET: ClassVar[int] = 5

    @property
    def device_id(self) -> int:
        return self.trap_number

    @property
    def vendor_id(self) -> int:
        return self.producer_type

    def pack(self) -> bytes:
        _check_gid("InformInfo GID", self.gid)
        qpn, rtv, prod = self.qpn, self.resp_time_value, self.producer_type
        try:
            bad = qpn >> 24 or rtv >> 5 or prod >> 24
        except TypeError:
            bad = True
        if bad:
            raise _fields_out_of_range(
                "InformInfo",
                (("QPN", qpn, 24), ("RespTimeValue", rtv, 5), ("ProducerType", prod, 24)),
            )
        try:
            return _INFORM.pack(
                self.gid,
                self.lid_range_begin,
                self.lid_range_end,
                self.is_generic,
                self.subscribe,
                self.type,
                self.trap_number,
                (qpn << 8) | rtv,
                prod,
            )
        except struct.error as exc:
            raise WireError(f"InformInfo field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> InformInfo:
        """Decode the record at `offset` (a fixed-size slot: trailing bytes are allowed)."""
        _need(data, offset, 36, "InformInfo")
        gid, begin, end, generic, subscribe, typ, trap, qpn_rtv, prod = _INFORM.unpack_from(
            data, offset
        )
        return cls(
            gid,
            begin,
            end,
            generic,
            subscribe,
            typ,
            trap,
            qpn_rtv >> 8,
            qpn_rtv & 0x1F,
            prod & 0xFFFFFF,
        )


class InformInfoRecordComp(IntFlag):
    """ComponentMask bits of an InformInfoRecord query (IBA Vol 1, 15.2.5.12;
    OpenSM IB_IIR_COMPMASK_*)."""

    SUBSCRIBER_GID = 1 << 0
    ENUM = 1 << 1
    RESERVED0 = 1 << 2
    GID = 1 << 3
    LID_RANGE_BEGIN = 1 << 4
    LID_RANGE_END = 1 << 5
    RESERVED1 = 1 << 6
    IS_GENERIC = 1 << 7
    SUBSCRIBE = 1 << 8
    TYPE = 1 << 9
    TRAP_NUMBER = 1 << 10  # DeviceID when not generic
    QPN = 1 << 11
    RESERVED2 = 1 << 12
    RESP_TIME_VALUE = 1 << 13
    RESERVED3 = 1 << 14
    PRODUCER_TYPE = 1 << 15  # VendorID when not generic


_INFORM_RECORD = struct.Struct(">16sH6x36s4x")


@dataclass(frozen=True, slots=True)
class InformInfoRecord:
    """InformInfoRecord (IBA Vol 1, 15.2.5.12), 64 bytes with padding:

    byte 0   SubscriberGID
    byte 16  Enum (16): tells apart subscriptions of one subscriber
    byte 18  reserved (48)
    byte 24  InformInfo (36 bytes)
    byte 60  padding (4)
    """

    subscriber_gid: bytes
    enum: int
    inform_info: InformInfo

    ATTRIBUTE_ID: ClassVar[int] = SaAttr.INFORM_INFO_RECORD
    SIZE: ClassVar[int] = 64
    ATTRIBUTE_OFFSET: ClassVar[int] = 8

    def pack(self) -> bytes:
        _check_gid("InformInfoRecord SubscriberGID", self.subscriber_gid)
        if not isinstance(self.inform_info, InformInfo):
            raise WireError(f"InformInfoRecord needs an InformInfo, got {self.inform_info!r}")
        try:
            return _INFORM_RECORD.pack(self.subscriber_gid, self.enum, self.inform_info.pack())
        except struct.error as exc:
            raise WireError(f"InformInfoRecord field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> InformInfoRecord:
        """Decode the record at `offset` (a fixed-size slot: trailing bytes are allowed)."""
        _need(data, offset, 64, "InformInfoRecord")
        gid, enum, _ = _INFORM_RECORD.unpack_from(data, offset)
        return cls(gid, enum, InformInfo.unpack(data, offset + 24))


# --------------------------------------------------------------------------- ClassPortInfo


class ClassCapability(IntFlag):
    """ClassPortInfo CapabilityMask bits common to all classes (IBA Vol 1, 13.4.8.1)."""

    IS_TRAP_SUPPORTED = 0x0001  # OpenSM IB_CLASS_CAP_TRAP
    IS_GET_SET_SUPPORTED = 0x0002  # OpenSM IB_CLASS_CAP_GETSET
    IS_CAPABILITY_MASK2_SUPPORTED = 0x0004  # OpenSM IB_CLASS_CAP_CAPMASK2


_CPI = struct.Struct(">BBHI16sIHHII16sIHHII")


@dataclass(frozen=True, slots=True)
class ClassPortInfo:
    """ClassPortInfo (IBA Vol 1, 13.4.8.1), 72 bytes:

    byte 0   BaseVersion, byte 1 ClassVersion, byte 2 CapabilityMask (16)
    byte 4   CapabilityMask2 (27) | RespTimeValue (5)
    byte 8   RedirectGID
    byte 24  RedirectTC (8) | RedirectSL (4) | RedirectFL (20)
    byte 28  RedirectLID, byte 30 RedirectP_Key
    byte 32  reserved (8) | RedirectQP (24)
    byte 36  RedirectQ_Key
    byte 40  TrapGID
    byte 56  TrapTC (8) | TrapSL (4) | TrapFL (20)
    byte 60  TrapLID, byte 62 TrapP_Key
    byte 64  TrapHL (8) | TrapQP (24)
    byte 68  TrapQ_Key
    """

    base_version: int = 1
    class_version: int = SA_CLASS_VERSION
    capability_mask: int = 0
    capability_mask2: int = 0
    resp_time_value: int = 0
    redirect_gid: bytes = bytes(GID_SIZE)
    redirect_tc: int = 0
    redirect_sl: int = 0
    redirect_flow_label: int = 0
    redirect_lid: int = 0
    redirect_pkey: int = 0
    redirect_qp: int = 0
    redirect_qkey: int = 0
    trap_gid: bytes = bytes(GID_SIZE)
    trap_tc: int = 0
    trap_sl: int = 0
    trap_flow_label: int = 0
    trap_lid: int = 0
    trap_pkey: int = 0
    trap_hop_limit: int = 0
    trap_qp: int = 0
    trap_qkey: int = 0

    ATTRIBUTE_ID: ClassVar[int] = SaAttr.CLASS_PORT_INFO
    SIZE: ClassVar[int] = 72
    ATTRIBUTE_OFFSET: ClassVar[int] = 9

    def pack(self) -> bytes:
        _check_gid("ClassPortInfo RedirectGID", self.redirect_gid)
        _check_gid("ClassPortInfo TrapGID", self.trap_gid)
        checks = (
            ("CapabilityMask2", self.capability_mask2, 27),
            ("RespTimeValue", self.resp_time_value, 5),
            ("RedirectTC", self.redirect_tc, 8),
            ("RedirectSL", self.redirect_sl, 4),
            ("RedirectFL", self.redirect_flow_label, 20),
            ("RedirectQP", self.redirect_qp, 24),
            ("TrapTC", self.trap_tc, 8),
            ("TrapSL", self.trap_sl, 4),
            ("TrapFL", self.trap_flow_label, 20),
            ("TrapHL", self.trap_hop_limit, 8),
            ("TrapQP", self.trap_qp, 24),
        )
        try:
            bad = any(value >> bits or value < 0 for _, value, bits in checks)
        except TypeError:
            bad = True
        if bad:
            raise _fields_out_of_range("ClassPortInfo", checks)
        try:
            return _CPI.pack(
                self.base_version,
                self.class_version,
                self.capability_mask,
                (self.capability_mask2 << 5) | self.resp_time_value,
                self.redirect_gid,
                (self.redirect_tc << 24) | (self.redirect_sl << 20) | self.redirect_flow_label,
                self.redirect_lid,
                self.redirect_pkey,
                self.redirect_qp,
                self.redirect_qkey,
                self.trap_gid,
                (self.trap_tc << 24) | (self.trap_sl << 20) | self.trap_flow_label,
                self.trap_lid,
                self.trap_pkey,
                (self.trap_hop_limit << 24) | self.trap_qp,
                self.trap_qkey,
            )
        except struct.error as exc:
            raise WireError(f"ClassPortInfo field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> ClassPortInfo:
        """Decode the attribute at `offset` (a fixed-size slot: trailing bytes are allowed)."""
        _need(data, offset, 72, "ClassPortInfo")
        (bv, cv, cap, cap2_rtv, rgid, rflow, rlid, rpkey, rqp, rqkey, tgid, tflow, tlid, tpkey,
         thl_qp, tqkey) = _CPI.unpack_from(data, offset)  # fmt: skip
        return cls(
            bv,
            cv,
            cap,
            cap2_rtv >> 5,
            cap2_rtv & 0x1F,
            rgid,
            rflow >> 24,
            (rflow >> 20) & 0xF,
            rflow & 0xFFFFF,
            rlid,
            rpkey,
            rqp & 0xFFFFFF,
            rqkey,
            tgid,
            tflow >> 24,
            (tflow >> 20) & 0xF,
            tflow & 0xFFFFF,
            tlid,
            tpkey,
            thl_qp >> 24,
            thl_qp & 0xFFFFFF,
            tqkey,
        )


# --------------------------------------------------------------------------- NodeRecord


class NodeRecordComp(IntFlag):
    """ComponentMask bits of a NodeRecord query (IBA Vol 1, 15.2.5.2; OpenSM IB_NR_COMPMASK_*)."""

    LID = 1 << 0
    RESERVED1 = 1 << 1
    BASE_VERSION = 1 << 2
    CLASS_VERSION = 1 << 3
    NODE_TYPE = 1 << 4
    NUM_PORTS = 1 << 5
    SYSTEM_IMAGE_GUID = 1 << 6
    NODE_GUID = 1 << 7
    PORT_GUID = 1 << 8
    PARTITION_CAP = 1 << 9
    DEVICE_ID = 1 << 10
    REVISION = 1 << 11
    LOCAL_PORT_NUM = 1 << 12
    VENDOR_ID = 1 << 13
    NODE_DESCRIPTION = 1 << 14


_NODE_RECORD = struct.Struct(">H2x40s64s4x")
_NO_DESCRIPTION: Final = NodeDescription()


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """NodeRecord (IBA Vol 1, 15.2.5.2), 112 bytes with padding:

    byte 0   LID (16)
    byte 2   reserved (16)
    byte 4   NodeInfo (40 bytes, IBA Vol 1, 14.2.5.3)
    byte 44  NodeDescription (64 bytes, 14.2.5.2)
    byte 108 padding to 8 bytes (4)
    """

    lid: int
    node_info: NodeInfo
    node_description: NodeDescription = _NO_DESCRIPTION

    ATTRIBUTE_ID: ClassVar[int] = SaAttr.NODE_RECORD
    SIZE: ClassVar[int] = 112
    ATTRIBUTE_OFFSET: ClassVar[int] = 14

    def pack(self) -> bytes:
        if not isinstance(self.node_info, NodeInfo):
            raise WireError(f"NodeRecord needs a NodeInfo, got {self.node_info!r}")
        if not isinstance(self.node_description, NodeDescription):
            raise WireError(f"NodeRecord needs a NodeDescription, got {self.node_description!r}")
        try:
            return _NODE_RECORD.pack(self.lid, self.node_info.pack(), self.node_description.pack())
        except struct.error as exc:
            raise WireError(f"NodeRecord field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> NodeRecord:
        """Decode the record at `offset` (a fixed-size slot: trailing bytes are allowed)."""
        _need(data, offset, 112, "NodeRecord")
        (lid,) = struct.unpack_from(">H", data, offset)
        return cls(
            lid, NodeInfo.unpack(data, offset + 4), NodeDescription.unpack(data, offset + 44)
        )


# --------------------------------------------------------------------------- PortInfoRecord


class PortInfoRecordComp(IntFlag):
    """ComponentMask bits of a PortInfoRecord query (IBA Vol 1, 15.2.5.3; OpenSM
    IB_PIR_COMPMASK_*): the record's own fields and the first PortInfo components.
    Bit n + 3 selects the n-th PortInfo component in PortInfo's layout order."""

    ENDPORT_LID = 1 << 0
    PORT_NUM = 1 << 1
    OPTIONS = 1 << 2
    M_KEY = 1 << 3
    GID_PREFIX = 1 << 4
    LID = 1 << 5  # PortInfo.LID (base LID)
    MASTER_SM_LID = 1 << 6
    CAPABILITY_MASK = 1 << 7
    DIAG_CODE = 1 << 8
    M_KEY_LEASE_PERIOD = 1 << 9
    LOCAL_PORT_NUM = 1 << 10
    LINK_WIDTH_ENABLED = 1 << 11
    LINK_WIDTH_SUPPORTED = 1 << 12
    LINK_WIDTH_ACTIVE = 1 << 13
    LINK_SPEED_SUPPORTED = 1 << 14
    PORT_STATE = 1 << 15
    PORT_PHYSICAL_STATE = 1 << 16
    LINK_DOWN_DEFAULT_STATE = 1 << 17


_PORT_INFO_RECORD = struct.Struct(">HBB64s4x")


@dataclass(frozen=True, slots=True)
class PortInfoRecord:
    """PortInfoRecord (IBA Vol 1, 15.2.5.3), 72 bytes with padding:

    byte 0   EndportLID (16): LID of the end port (a switch's port 0)
    byte 2   PortNum (8)
    byte 3   Options (8; reserved before Release 1.3)
    byte 4   PortInfo (64 bytes, IBA Vol 1, 14.2.5.6)
    byte 68  padding to 8 bytes (4)
    """

    endport_lid: int
    port_num: int
    port_info: PortInfo
    options: int = 0

    ATTRIBUTE_ID: ClassVar[int] = SaAttr.PORT_INFO_RECORD
    SIZE: ClassVar[int] = 72
    ATTRIBUTE_OFFSET: ClassVar[int] = 9

    def pack(self) -> bytes:
        if not isinstance(self.port_info, PortInfo):
            raise WireError(f"PortInfoRecord needs a PortInfo, got {self.port_info!r}")
        try:
            return _PORT_INFO_RECORD.pack(
                self.endport_lid, self.port_num, self.options, self.port_info.pack()
            )
        except struct.error as exc:
            raise WireError(f"PortInfoRecord field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> PortInfoRecord:
        """Decode the record at `offset` (a fixed-size slot: trailing bytes are allowed)."""
        _need(data, offset, 72, "PortInfoRecord")
        lid, port, options, _ = _PORT_INFO_RECORD.unpack_from(data, offset)
        return cls(lid, port, PortInfo.unpack(data, offset + 4), options)


# --------------------------------------------------------------------------- GUIDInfoRecord


class GUIDInfoRecordComp(IntFlag):
    """ComponentMask bits of a GUIDInfoRecord query (IBA Vol 1, 15.2.5.18; OpenSM
    IB_GIR_COMPMASK_*)."""

    LID = 1 << 0
    BLOCK_NUM = 1 << 1
    RESERVED1 = 1 << 2
    RESERVED2 = 1 << 3
    GUID0 = 1 << 4
    GUID1 = 1 << 5
    GUID2 = 1 << 6
    GUID3 = 1 << 7
    GUID4 = 1 << 8
    GUID5 = 1 << 9
    GUID6 = 1 << 10
    GUID7 = 1 << 11


_GUID_INFO_RECORD = struct.Struct(">HB5x64s")


@dataclass(frozen=True, slots=True)
class GUIDInfoRecord:
    """GUIDInfoRecord (IBA Vol 1, 15.2.5.18), 72 bytes:

        byte 0   LID (16)
        byte 2   BlockNum (8): GUIDs 8 * BlockNum .. 8 * BlockNum + 7
        byte 3   reserved (8)
        byte 4   reserved (32)
        byte 8   GUIDInfo (64 bytes, IBA Vol 1, 14.2.5.5)

    OpenSM accepts SubnAdmSet/Delete of this record to add or remove alias GUIDs
    (vGUIDs).
    """

    lid: int
    block_num: int
    guid_info: GUIDInfo

    ATTRIBUTE_ID: ClassVar[int] = SaAttr.GUID_INFO_RECORD
    SIZE: ClassVar[int] = 72
    ATTRIBUTE_OFFSET: ClassVar[int] = 9

    def pack(self) -> bytes:
        if not isinstance(self.guid_info, GUIDInfo):
            raise WireError(f"GUIDInfoRecord needs a GUIDInfo, got {self.guid_info!r}")
        try:
            return _GUID_INFO_RECORD.pack(self.lid, self.block_num, self.guid_info.pack())
        except struct.error as exc:
            raise WireError(f"GUIDInfoRecord field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> GUIDInfoRecord:
        """Decode the record at `offset` (a fixed-size slot: trailing bytes are allowed)."""
        _need(data, offset, 72, "GUIDInfoRecord")
        lid, block, _ = _GUID_INFO_RECORD.unpack_from(data, offset)
        return cls(lid, block, GUIDInfo.unpack(data, offset + 8))


# --------------------------------------------------------------------------- LinkRecord


class LinkRecordComp(IntFlag):
    """ComponentMask bits of a LinkRecord query (IBA Vol 1, 15.2.5.13; OpenSM IB_LR_COMPMASK_*)."""

    FROM_LID = 1 << 0
    FROM_PORT = 1 << 1
    TO_PORT = 1 << 2
    TO_LID = 1 << 3


_LINK_RECORD = struct.Struct(">HBBH2x")


@dataclass(frozen=True, slots=True)
class LinkRecord:
    """LinkRecord (IBA Vol 1, 15.2.5.13), 8 bytes with padding (ib_link_record_t):

    byte 0 FromLID (16), 2 FromPort (8), 3 ToPort (8), 4 ToLID (16), 6 padding (16).
    A LID is the base LID of the port's node (a switch's port 0).
    """

    from_lid: int
    from_port_num: int
    to_port_num: int
    to_lid: int

    ATTRIBUTE_ID: ClassVar[int] = SaAttr.LINK_RECORD
    SIZE: ClassVar[int] = 8
    ATTRIBUTE_OFFSET: ClassVar[int] = 1

    def pack(self) -> bytes:
        try:
            return _LINK_RECORD.pack(
                self.from_lid, self.from_port_num, self.to_port_num, self.to_lid
            )
        except struct.error as exc:
            raise WireError(f"LinkRecord field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> LinkRecord:
        """Decode the record at `offset` (a fixed-size slot: trailing bytes are allowed)."""
        _need(data, offset, 8, "LinkRecord")
        return cls(*_LINK_RECORD.unpack_from(data, offset))


# --------------------------------------------------------------------------- SwitchInfoRecord


class SwitchInfoRecordComp(IntFlag):
    """ComponentMask bits of a SwitchInfoRecord query (IBA Vol 1, 15.2.5.5; OpenSM
    IB_SWIR_COMPMASK_*). OpenSM matches the LID only; so does ibmig."""

    LID = 1 << 0
    RESERVED1 = 1 << 1


_SWITCH_INFO_RECORD = struct.Struct(">H2x")


@dataclass(frozen=True, slots=True)
class SwitchInfoRecord:
    """SwitchInfoRecord (IBA Vol 1, 15.2.5.5), 24 bytes (ib_switch_info_record_t):

    byte 0 LID (16, the switch's port 0), 2 reserved (16), 4 SwitchInfo (20 bytes,
    IBA Vol 1, 14.2.5.4).
    """

    lid: int
    switch_info: SwitchInfo

    ATTRIBUTE_ID: ClassVar[int] = SaAttr.SWITCH_INFO_RECORD
    SIZE: ClassVar[int] = 24
    ATTRIBUTE_OFFSET: ClassVar[int] = 3

    def pack(self) -> bytes:
        if not isinstance(self.switch_info, SwitchInfo):
            raise WireError(f"SwitchInfoRecord needs a SwitchInfo, got {self.switch_info!r}")
        try:
            return _SWITCH_INFO_RECORD.pack(self.lid) + self.switch_info.pack()
        except struct.error as exc:
            raise WireError(f"SwitchInfoRecord field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> SwitchInfoRecord:
        """Decode the record at `offset` (a fixed-size slot: trailing bytes are allowed)."""
        _need(data, offset, 24, "SwitchInfoRecord")
        (lid,) = _SWITCH_INFO_RECORD.unpack_from(data, offset)
        return cls(lid, SwitchInfo.unpack(data, offset + 4))


# --------------------------------------------------------------------------- SMInfoRecord


class SMInfoRecordComp(IntFlag):
    """ComponentMask bits of an SMInfoRecord query (IBA Vol 1, 15.2.5.10; OpenSM
    IB_SMIR_COMPMASK_*)."""

    LID = 1 << 0
    RESERVED1 = 1 << 1
    GUID = 1 << 2
    SM_KEY = 1 << 3
    ACT_COUNT = 1 << 4
    PRIORITY = 1 << 5
    SM_STATE = 1 << 6


_SM_INFO_RECORD = struct.Struct(">H2x")
_SM_INFO_PAD: Final = bytes(7)


@dataclass(frozen=True, slots=True)
class SMInfoRecord:
    """SMInfoRecord (IBA Vol 1, 15.2.5.10), 32 bytes with padding (ib_sminfo_record_t):

    byte 0 LID (16, the SM's port), 2 reserved (16), 4 SMInfo (21 bytes, IBA Vol 1,
    14.2.5.13), 25 padding (7 bytes).
    """

    lid: int
    sm_info: SMInfo

    ATTRIBUTE_ID: ClassVar[int] = SaAttr.SM_INFO_RECORD
    SIZE: ClassVar[int] = 32
    ATTRIBUTE_OFFSET: ClassVar[int] = 4

    def pack(self) -> bytes:
        if not isinstance(self.sm_info, SMInfo):
            raise WireError(f"SMInfoRecord needs an SMInfo, got {self.sm_info!r}")
        try:
            return _SM_INFO_RECORD.pack(self.lid) + self.sm_info.pack() + _SM_INFO_PAD
        except struct.error as exc:
            raise WireError(f"SMInfoRecord field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> SMInfoRecord:
        """Decode the record at `offset` (a fixed-size slot: trailing bytes are allowed)."""
        _need(data, offset, 32, "SMInfoRecord")
        (lid,) = _SM_INFO_RECORD.unpack_from(data, offset)
        return cls(lid, SMInfo.unpack(data, offset + 4))


# --------------------------------------------------------------------------- PKeyTableRecord


class PKeyTableRecordComp(IntFlag):
    """ComponentMask bits of a P_KeyTableRecord query (IBA Vol 1, 15.2.5.11; OpenSM
    IB_PKEY_COMPMASK_*)."""

    LID = 1 << 0
    BLOCK = 1 << 1
    PORT = 1 << 2


_PKEY_TABLE_RECORD = struct.Struct(">HHB3x")


@dataclass(frozen=True, slots=True)
class PKeyTableRecord:
    """P_KeyTableRecord (IBA Vol 1, 15.2.5.11), 72 bytes (ib_pkey_table_record_t):

    byte 0 LID (16; a switch's port 0 LID), 2 BlockNum (16), 4 PortNum (8; a CA's
    own port), 5 reserved (24), 8 P_KeyTable block (64 bytes, IBA Vol 1, 14.2.5.7).
    """

    lid: int
    block_num: int
    port_num: int
    pkey_table: PKeyTable

    ATTRIBUTE_ID: ClassVar[int] = SaAttr.P_KEY_TABLE_RECORD
    SIZE: ClassVar[int] = 72
    ATTRIBUTE_OFFSET: ClassVar[int] = 9

    def pack(self) -> bytes:
        if not isinstance(self.pkey_table, PKeyTable):
            raise WireError(f"PKeyTableRecord needs a PKeyTable, got {self.pkey_table!r}")
        try:
            head = _PKEY_TABLE_RECORD.pack(self.lid, self.block_num, self.port_num)
        except struct.error as exc:
            raise WireError(f"PKeyTableRecord field out of range: {exc}") from None
        return head + self.pkey_table.pack()

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> PKeyTableRecord:
        """Decode the record at `offset` (a fixed-size slot: trailing bytes are allowed)."""
        _need(data, offset, 72, "PKeyTableRecord")
        lid, block, port = _PKEY_TABLE_RECORD.unpack_from(data, offset)
        return cls(lid, block, port, PKeyTable.unpack(data, offset + 8))


# ------------------------------------------------------------ SLtoVLMappingTableRecord


class SLtoVLMappingTableRecordComp(IntFlag):
    """ComponentMask bits of an SLtoVLMappingTableRecord query (IBA Vol 1, 15.2.5.4;
    OpenSM IB_SLVL_COMPMASK_*)."""

    LID = 1 << 0
    IN_PORT = 1 << 1
    OUT_PORT = 1 << 2


_SLVL_RECORD = struct.Struct(">HBB4x8s")
SL_COUNT: Final = 16
_ZERO_VLS: Final = (0,) * SL_COUNT


@dataclass(frozen=True, slots=True)
class SLtoVLMappingTableRecord:
    """SLtoVLMappingTableRecord (IBA Vol 1, 15.2.5.4), 16 bytes (ib_slvl_table_record_t):

    byte 0 LID (16; a switch's port 0 LID), 2 InputPortNum (8), 3 OutputPortNum (8)
    (both reserved for a CA), 4 reserved (32), 8 SLtoVLMappingTable (IBA Vol 1,
    14.2.5.8: 16 VLs of 4 bits, SL 0 in the high nibble of byte 0).
    """

    lid: int
    in_port_num: int
    out_port_num: int
    vls: tuple[int, ...] = _ZERO_VLS

    ATTRIBUTE_ID: ClassVar[int] = SaAttr.SL_TO_VL_MAPPING_TABLE_RECORD
    SIZE: ClassVar[int] = 16
    ATTRIBUTE_OFFSET: ClassVar[int] = 2

    def pack(self) -> bytes:
        vls = self.vls
        if len(vls) != SL_COUNT or any(not 0 <= vl <= 0xF for vl in vls):
            raise WireError(f"SLtoVLMappingTable holds 16 VLs of 4 bits, got {vls!r}")
        table = bytes((vls[i] << 4) | vls[i + 1] for i in range(0, SL_COUNT, 2))
        try:
            return _SLVL_RECORD.pack(self.lid, self.in_port_num, self.out_port_num, table)
        except struct.error as exc:
            raise WireError(f"SLtoVLMappingTableRecord field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> SLtoVLMappingTableRecord:
        """Decode the record at `offset` (a fixed-size slot: trailing bytes are allowed)."""
        _need(data, offset, 16, "SLtoVLMappingTableRecord")
        lid, in_port, out_port, table = _SLVL_RECORD.unpack_from(data, offset)
        vls = tuple(nibble for byte in table for nibble in (byte >> 4, byte & 0x0F))
        return cls(lid, in_port, out_port, vls)


# ------------------------------------------------------------ VLArbitrationTableRecord


class VLArbitrationTableRecordComp(IntFlag):
    """ComponentMask bits of a VLArbitrationTableRecord query (IBA Vol 1, 15.2.5.9;
    OpenSM IB_VLA_COMPMASK_*)."""

    LID = 1 << 0
    OUT_PORT = 1 << 1
    BLOCK = 1 << 2


_VLARB_RECORD = struct.Struct(">HBB4x")
VL_ARB_BLOCK_SIZE: Final = 32
_ZERO_ARB: Final = ((0, 0),) * VL_ARB_BLOCK_SIZE


@dataclass(frozen=True, slots=True)
class VLArbitrationTableRecord:
    """VLArbitrationTableRecord (IBA Vol 1, 15.2.5.9), 72 bytes (ib_vl_arb_table_record_t):

    byte 0 LID (16; a switch's port 0 LID), 2 OutputPortNum (8), 3 BlockNum (8: 1, 2
    low priority, 3, 4 high priority), 4 reserved (32), 8 VLArbitrationTable block
    (IBA Vol 1, 14.2.5.9): 32 entries of reserved (4) | VL (4), Weight (8).
    """

    lid: int
    out_port_num: int
    block_num: int
    entries: tuple[tuple[int, int], ...] = _ZERO_ARB
    """(VL, Weight) per entry."""

    ATTRIBUTE_ID: ClassVar[int] = SaAttr.VL_ARBITRATION_TABLE_RECORD
    SIZE: ClassVar[int] = 72
    ATTRIBUTE_OFFSET: ClassVar[int] = 9

    def pack(self) -> bytes:
        entries = self.entries
        if len(entries) != VL_ARB_BLOCK_SIZE or any(
            not (0 <= vl <= 0xF and 0 <= weight <= 0xFF) for vl, weight in entries
        ):
            raise WireError(f"a VLArbitrationTable block holds 32 (VL, Weight), got {entries!r}")
        table = bytes(b for entry in entries for b in entry)
        try:
            return _VLARB_RECORD.pack(self.lid, self.out_port_num, self.block_num) + table
        except struct.error as exc:
            raise WireError(f"VLArbitrationTableRecord field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> VLArbitrationTableRecord:
        """Decode the record at `offset` (a fixed-size slot: trailing bytes are allowed)."""
        _need(data, offset, 72, "VLArbitrationTableRecord")
        lid, port, block = _VLARB_RECORD.unpack_from(data, offset)
        base = offset + 8
        entries = tuple(
            (data[base + 2 * i] & 0x0F, data[base + 2 * i + 1]) for i in range(VL_ARB_BLOCK_SIZE)
        )
        return cls(lid, port, block, entries)


# --------------------------------------------------------- LinearForwardingTableRecord


class LFTRecordComp(IntFlag):
    """ComponentMask bits of a LinearForwardingTableRecord query (IBA Vol 1, 15.2.5.6;
    OpenSM IB_LFTR_COMPMASK_*)."""

    LID = 1 << 0
    BLOCK = 1 << 1


_LFT_RECORD = struct.Struct(">HH4x")


@dataclass(frozen=True, slots=True)
class LFTRecord:
    """LinearForwardingTableRecord (IBA Vol 1, 15.2.5.6), 72 bytes (ib_lft_record_t):

    byte 0 LID (16, the switch's port 0), 2 BlockNum (16), 4 reserved (32), 8 one
    LinearForwardingTable block (64 ports, IBA Vol 1, 14.2.5.10).
    """

    lid: int
    block_num: int
    lft: LinearForwardingTable

    ATTRIBUTE_ID: ClassVar[int] = SaAttr.LINEAR_FORWARDING_TABLE_RECORD
    SIZE: ClassVar[int] = 72
    ATTRIBUTE_OFFSET: ClassVar[int] = 9

    def pack(self) -> bytes:
        if not isinstance(self.lft, LinearForwardingTable):
            raise WireError(f"LFTRecord needs a LinearForwardingTable, got {self.lft!r}")
        try:
            return _LFT_RECORD.pack(self.lid, self.block_num) + self.lft.pack()
        except struct.error as exc:
            raise WireError(f"LFTRecord field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> LFTRecord:
        """Decode the record at `offset` (a fixed-size slot: trailing bytes are allowed)."""
        _need(data, offset, 72, "LFTRecord")
        lid, block = _LFT_RECORD.unpack_from(data, offset)
        return cls(lid, block, LinearForwardingTable.unpack(data, offset + 8))


# ----------------------------------------------------- MulticastForwardingTableRecord


class MFTRecordComp(IntFlag):
    """ComponentMask bits of a MulticastForwardingTableRecord query (IBA Vol 1,
    15.2.5.8; OpenSM IB_MFTR_COMPMASK_*)."""

    LID = 1 << 0
    POSITION = 1 << 1
    RESERVED1 = 1 << 2
    BLOCK = 1 << 3
    RESERVED2 = 1 << 4


_MFT_RECORD = struct.Struct(">HH4x")


@dataclass(frozen=True, slots=True)
class MFTRecord:
    """MulticastForwardingTableRecord (IBA Vol 1, 15.2.5.8), 72 bytes (ib_mft_record_t):

    byte 0 LID (16, the switch's port 0), 2 Position (4 bits) | reserved (3) |
    BlockNum (9), 4 reserved (32), 8 one MulticastForwardingTable block (32 PortMasks
    of the 16 ports of `position`, IBA Vol 1, 14.2.5.11).
    """

    lid: int
    position: int
    block_num: int
    mft: MulticastForwardingTable

    ATTRIBUTE_ID: ClassVar[int] = SaAttr.MULTICAST_FORWARDING_TABLE_RECORD
    SIZE: ClassVar[int] = 72
    ATTRIBUTE_OFFSET: ClassVar[int] = 9

    def pack(self) -> bytes:
        if not isinstance(self.mft, MulticastForwardingTable):
            raise WireError(f"MFTRecord needs a MulticastForwardingTable, got {self.mft!r}")
        try:
            bad = self.position >> 4 or self.block_num >> 9
        except TypeError:
            bad = True
        if bad:
            raise _fields_out_of_range(
                "MFTRecord", (("Position", self.position, 4), ("BlockNum", self.block_num, 9))
            )
        try:
            word = (self.position << 12) | self.block_num
            return _MFT_RECORD.pack(self.lid, word) + self.mft.pack()
        except struct.error as exc:
            raise WireError(f"MFTRecord field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> MFTRecord:
        """Decode the record at `offset` (a fixed-size slot: trailing bytes are allowed)."""
        _need(data, offset, 72, "MFTRecord")
        lid, word = _MFT_RECORD.unpack_from(data, offset)
        return cls(lid, word >> 12, word & 0x1FF, MulticastForwardingTable.unpack(data, offset + 8))


# --------------------------------------------------------------------------- MCMemberRecord


class MCMemberRecordComp(IntFlag):
    """ComponentMask bits of an MCMemberRecord (IBA Vol 1, 15.2.5.17; OpenSM
    IB_MCR_COMPMASK_*)."""

    MGID = 1 << 0
    PORT_GID = 1 << 1
    QKEY = 1 << 2
    MLID = 1 << 3
    MTU_SELECTOR = 1 << 4
    MTU = 1 << 5
    TCLASS = 1 << 6
    PKEY = 1 << 7
    RATE_SELECTOR = 1 << 8
    RATE = 1 << 9
    PACKET_LIFE_TIME_SELECTOR = 1 << 10
    PACKET_LIFE_TIME = 1 << 11
    SL = 1 << 12
    FLOW_LABEL = 1 << 13
    HOP_LIMIT = 1 << 14
    SCOPE = 1 << 15
    JOIN_STATE = 1 << 16
    PROXY_JOIN = 1 << 17


class JoinState(IntFlag):
    """MCMemberRecord JoinState bits (IBA Vol 1, 15.2.5.17; bit 3 is
    SendOnlyFullMember, IBA 1.2.1 / OpenSM IB_JOIN_STATE_SEND_ONLY_FULL)."""

    FULL_MEMBER = 0x1
    NON_MEMBER = 0x2
    SEND_ONLY_NON_MEMBER = 0x4
    SEND_ONLY_FULL_MEMBER = 0x8


_MC_MEMBER = struct.Struct(">16s16sIHBBHBBIBB2x4x")


@dataclass(frozen=True, slots=True)
class MCMemberRecord:
    """MCMemberRecord (IBA Vol 1, 15.2.5.17), 52 bytes padded to 56 (ib_member_rec_t):

    byte 0   MGID (128)
    byte 16  PortGID (128)
    byte 32  Q_Key (32)
    byte 36  MLID (16)
    byte 38  MTUSelector (2) | MTU (6)
    byte 39  TClass (8)
    byte 40  P_Key (16)
    byte 42  RateSelector (2) | Rate (6)
    byte 43  PacketLifeTimeSelector (2) | PacketLifeTime (6)
    byte 44  SL (4) | FlowLabel (20) | HopLimit (8)
    byte 48  Scope (4) | JoinState (4)
    byte 49  ProxyJoin (1) | reserved (23)
    byte 52  padding (OpenSM's pad[4])
    """

    mgid: bytes = bytes(GID_SIZE)
    port_gid: bytes = bytes(GID_SIZE)
    q_key: int = 0
    mlid: int = 0
    mtu_selector: int = 0
    mtu: int = 0
    traffic_class: int = 0
    pkey: int = 0
    rate_selector: int = 0
    rate: int = 0
    packet_life_time_selector: int = 0
    packet_life_time: int = 0
    sl: int = 0
    flow_label: int = 0
    hop_limit: int = 0
    scope: int = 0
    join_state: int = 0
    proxy_join: bool = False

    ATTRIBUTE_ID: ClassVar[int] = SaAttr.MC_MEMBER_RECORD
    SIZE: ClassVar[int] = 56
    ATTRIBUTE_OFFSET: ClassVar[int] = 7

    def pack(self) -> bytes:
        _check_gid("MCMemberRecord MGID", self.mgid)
        _check_gid("MCMemberRecord PortGID", self.port_gid)
        checks = (
            ("MTUSelector", self.mtu_selector, 2),
            ("MTU", self.mtu, 6),
            ("RateSelector", self.rate_selector, 2),
            ("Rate", self.rate, 6),
            ("PacketLifeTimeSelector", self.packet_life_time_selector, 2),
            ("PacketLifeTime", self.packet_life_time, 6),
            ("SL", self.sl, 4),
            ("FlowLabel", self.flow_label, 20),
            ("Scope", self.scope, 4),
            ("JoinState", self.join_state, 4),
        )
        for _name, value, bits in checks:
            if not isinstance(value, int) or not 0 <= value < (1 << bits):
                raise _fields_out_of_range("MCMemberRecord", checks)
        try:
            return _MC_MEMBER.pack(
                self.mgid,
                self.port_gid,
                self.q_key,
                self.mlid,
                (self.mtu_selector << 6) | self.mtu,
                self.traffic_class,
                self.pkey,
                (self.rate_selector << 6) | self.rate,
                (self.packet_life_time_selector << 6) | self.packet_life_time,
                (self.sl << 28) | (self.flow_label << 8) | self.hop_limit,
                (self.scope << 4) | self.join_state,
                0x80 if self.proxy_join else 0,
            )
        except struct.error as exc:
            raise WireError(f"MCMemberRecord field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> MCMemberRecord:
        """Decode the record at `offset`; the 4 padding bytes may be absent."""
        _need(data, offset, 52, "MCMemberRecord")
        if len(data) - offset < 56:
            data = bytes(data[offset : offset + 52]) + bytes(4)
            offset = 0
        (mgid, port_gid, q_key, mlid, mtu, tclass, pkey, rate, plt, sfh, scope_state, proxy) = (
            _MC_MEMBER.unpack_from(data, offset)
        )
        return cls(
            mgid,
            port_gid,
            q_key,
            mlid,
            mtu >> 6,
            mtu & 0x3F,
            tclass,
            pkey,
            rate >> 6,
            rate & 0x3F,
            plt >> 6,
            plt & 0x3F,
            sfh >> 28,
            (sfh >> 8) & 0xFFFFF,
            sfh & 0xFF,
            scope_state >> 4,
            scope_state & 0x0F,
            proxy >= 0x80,
        )


# --------------------------------------------------------------------------- ServiceRecord


class ServiceRecordComp(IntFlag):
    """ComponentMask bits of a ServiceRecord (IBA Vol 1, 15.2.5.14; OpenSM
    IB_SR_COMPMASK_*). ServiceData8[i] is bit 7 + i, ServiceData16[i] bit 23 + i,
    ServiceData32[i] bit 31 + i, ServiceData64[i] bit 35 + i (`service_data_bit`)."""

    SERVICE_ID = 1 << 0
    SERVICE_GID = 1 << 1
    SERVICE_PKEY = 1 << 2
    RESERVED1 = 1 << 3
    SERVICE_LEASE = 1 << 4
    SERVICE_KEY = 1 << 5
    SERVICE_NAME = 1 << 6


SERVICE_DATA_BITS: Final = ((7, 16), (23, 8), (31, 4), (35, 2))
"""(first ComponentMask bit, count) of ServiceData8, 16, 32 and 64."""

_SERVICE_RECORD = struct.Struct(">Q16sHHI16s64s16s8H4I2Q")
INDEFINITE_LEASE: Final = 0xFFFF_FFFF
_ZERO_DATA16: Final = (0,) * 8
_ZERO_DATA32: Final = (0,) * 4
_ZERO_DATA64: Final = (0,) * 2


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    """ServiceRecord (IBA Vol 1, 15.2.5.14), 176 bytes (ib_service_record_t):

    byte 0   ServiceID (64)
    byte 8   ServiceGID (128)
    byte 24  ServiceP_Key (16)
    byte 26  reserved (16)
    byte 28  ServiceLease (32, seconds; 0xFFFFFFFF: indefinite)
    byte 32  ServiceKey (128)
    byte 48  ServiceName (64 bytes, UTF-8, NUL padded)
    byte 112 ServiceData8 (16 x 8), 128 ServiceData16 (8 x 16),
    byte 144 ServiceData32 (4 x 32), 160 ServiceData64 (2 x 64)
    """

    service_id: int = 0
    service_gid: bytes = bytes(GID_SIZE)
    service_pkey: int = 0
    service_lease: int = 0
    service_key: bytes = bytes(16)
    service_name: bytes = bytes(64)
    service_data8: bytes = bytes(16)
    service_data16: tuple[int, ...] = _ZERO_DATA16
    service_data32: tuple[int, ...] = _ZERO_DATA32
    service_data64: tuple[int, ...] = _ZERO_DATA64

    ATTRIBUTE_ID: ClassVar[int] = SaAttr.SERVICE_RECORD
    SIZE: ClassVar[int] = 176
    ATTRIBUTE_OFFSET: ClassVar[int] = 22

    def pack(self) -> bytes:
        _check_gid("ServiceRecord ServiceGID", self.service_gid)
        for name, value, size in (
            ("ServiceKey", self.service_key, 16),
            ("ServiceName", self.service_name, 64),
            ("ServiceData8", self.service_data8, 16),
        ):
            if not isinstance(value, bytes) or len(value) != size:
                raise WireError(f"ServiceRecord {name} must be {size} bytes, got {value!r}")
        for name, values, count in (
            ("ServiceData16", self.service_data16, 8),
            ("ServiceData32", self.service_data32, 4),
            ("ServiceData64", self.service_data64, 2),
        ):
            if len(values) != count:
                raise WireError(f"ServiceRecord {name} holds {count} values, got {values!r}")
        try:
            return _SERVICE_RECORD.pack(
                self.service_id,
                self.service_gid,
                self.service_pkey,
                0,
                self.service_lease,
                self.service_key,
                self.service_name,
                self.service_data8,
                *self.service_data16,
                *self.service_data32,
                *self.service_data64,
            )
        except struct.error as exc:
            raise WireError(f"ServiceRecord field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> ServiceRecord:
        """Decode the record at `offset` (a fixed-size slot: trailing bytes are allowed)."""
        _need(data, offset, 176, "ServiceRecord")
        fields = _SERVICE_RECORD.unpack_from(data, offset)
        return cls(
            fields[0],
            fields[1],
            fields[2],
            fields[4],
            fields[5],
            fields[6],
            fields[7],
            tuple(fields[8:16]),
            tuple(fields[16:20]),
            tuple(fields[20:22]),
        )

    @property
    def name(self) -> str:
        """ServiceName up to the first NUL, decoded leniently."""
        return self.service_name.split(b"\0", 1)[0].decode("utf-8", "replace")


# --------------------------------------------------------------------------- MultiPathRecord


class MultiPathRecordComp(IntFlag):
    """ComponentMask bits of a MultiPathRecord (IBA Vol 1, 15.2.5.20; OpenSM
    IB_MPR_COMPMASK_*)."""

    RAW_TRAFFIC = 1 << 0
    RESERVED0 = 1 << 1
    FLOW_LABEL = 1 << 2
    HOP_LIMIT = 1 << 3
    TCLASS = 1 << 4
    REVERSIBLE = 1 << 5
    NUMB_PATH = 1 << 6
    PKEY = 1 << 7
    QOS_CLASS = 1 << 8
    SL = 1 << 9
    MTU_SELECTOR = 1 << 10
    MTU = 1 << 11
    RATE_SELECTOR = 1 << 12
    RATE = 1 << 13
    PACKET_LIFE_TIME_SELECTOR = 1 << 14
    PACKET_LIFE_TIME = 1 << 15
    SERVICE_ID_MSB = 1 << 16
    INDEPENDENCE_SELECTOR = 1 << 17
    RESERVED3 = 1 << 18
    SGID_COUNT = 1 << 19
    DGID_COUNT = 1 << 20
    SERVICE_ID_LSB = 1 << 21
    SERVICE_ID = SERVICE_ID_MSB | SERVICE_ID_LSB


_MULTI_PATH = struct.Struct(">IBBHHBBBBBBB7s")
MULTI_PATH_MAX_GIDS: Final = 11
"""GIDs a MultiPathRecord carries in one MAD (24 + 11 x 16 = 200 bytes; OpenSM
IB_MULTIPATH_MAX_GIDS)."""


@dataclass(frozen=True, slots=True)
class MultiPathRecord:
    """MultiPathRecord (IBA Vol 1, 15.2.5.20; ib_multipath_rec_t), 24 bytes and then
    SGIDCount source GIDs followed by DGIDCount destination GIDs:

        byte 0   RawTraffic (1) | reserved (3) | FlowLabel (20) | HopLimit (8)
        byte 4   TClass
        byte 5   Reversible (1) | NumbPath (7)
        byte 6   P_Key
        byte 8   QoSClass (12) | SL (4)
        byte 10  MTUSelector (2) | MTU (6)
        byte 11  RateSelector (2) | Rate (6)
        byte 12  PacketLifeTimeSelector (2) | PacketLifeTime (6)
        byte 13  ServiceID, 8 most significant bits
        byte 14  IndependenceSelector (2) | reserved (6)
        byte 15  SGIDCount
        byte 16  DGIDCount
        byte 17  ServiceID, 56 least significant bits
        byte 24  SGIDs, then DGIDs (16 bytes each)

    It is sent in SubnAdmGetMulti only; the answer is PathRecords. `pack()` fills the
    200 bytes of SA data (at most 11 GIDs)."""

    sgids: tuple[bytes, ...] = ()
    dgids: tuple[bytes, ...] = ()
    raw_traffic: bool = False
    flow_label: int = 0
    hop_limit: int = 0
    tclass: int = 0
    reversible: bool = False
    numb_path: int = 0
    pkey: int = 0
    qos_class: int = 0
    sl: int = 0
    mtu_selector: int = 0
    mtu: int = 0
    rate_selector: int = 0
    rate: int = 0
    packet_life_time_selector: int = 0
    packet_life_time: int = 0
    service_id: int = 0
    independence_selector: int = 0

    ATTRIBUTE_ID: ClassVar[int] = SaAttr.MULTI_PATH_RECORD
    SIZE: ClassVar[int] = 200
    ATTRIBUTE_OFFSET: ClassVar[int] = 25

    def pack(self) -> bytes:
        gids = (*self.sgids, *self.dgids)
        if len(gids) > MULTI_PATH_MAX_GIDS:
            raise WireError(f"a MultiPathRecord holds {MULTI_PATH_MAX_GIDS} GIDs, not {len(gids)}")
        for gid in gids:
            _check_gid("MultiPathRecord GID", gid)
        checks = (
            ("FlowLabel", self.flow_label, 20),
            ("HopLimit", self.hop_limit, 8),
            ("NumbPath", self.numb_path, 7),
            ("QoSClass", self.qos_class, 12),
            ("SL", self.sl, 4),
            ("MTUSelector", self.mtu_selector, 2),
            ("MTU", self.mtu, 6),
            ("RateSelector", self.rate_selector, 2),
            ("Rate", self.rate, 6),
            ("PacketLifeTimeSelector", self.packet_life_time_selector, 2),
            ("PacketLifeTime", self.packet_life_time, 6),
            ("IndependenceSelector", self.independence_selector, 2),
            ("ServiceID", self.service_id, 64),
        )
        for _name, value, bits in checks:
            if not isinstance(value, int) or value < 0 or value >> bits:
                raise _fields_out_of_range("MultiPathRecord", checks)
        try:
            head = _MULTI_PATH.pack(
                (0x80000000 if self.raw_traffic else 0) | (self.flow_label << 8) | self.hop_limit,
                self.tclass,
                (0x80 if self.reversible else 0) | self.numb_path,
                self.pkey,
                (self.qos_class << 4) | self.sl,
                (self.mtu_selector << 6) | self.mtu,
                (self.rate_selector << 6) | self.rate,
                (self.packet_life_time_selector << 6) | self.packet_life_time,
                self.service_id >> 56,
                self.independence_selector << 6,
                len(self.sgids),
                len(self.dgids),
                (self.service_id & ((1 << 56) - 1)).to_bytes(7, "big"),
            )
        except struct.error as exc:
            raise WireError(f"MultiPathRecord field out of range: {exc}") from None
        return (head + b"".join(gids)).ljust(self.SIZE, b"\0")

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> MultiPathRecord:
        """Decode the record at `offset`; its GIDs must all be there."""
        _need(data, offset, 24, "MultiPathRecord")
        (word, tclass, rev_nbp, pkey, qos_sl, mtu, rate, plt, sid_msb, indep, nsrc, ndst, lsb) = (
            _MULTI_PATH.unpack_from(data, offset)
        )
        if nsrc + ndst > MULTI_PATH_MAX_GIDS:
            raise WireError(f"MultiPathRecord SGIDCount {nsrc} + DGIDCount {ndst} exceed 11")
        _need(data, offset, 24 + 16 * (nsrc + ndst), "MultiPathRecord with its GIDs")
        base = offset + 24
        gids = tuple(bytes(data[base + 16 * i : base + 16 * i + 16]) for i in range(nsrc + ndst))
        return cls(
            gids[:nsrc],
            gids[nsrc:],
            word >= 0x80000000,
            (word >> 8) & 0xFFFFF,
            word & 0xFF,
            tclass,
            rev_nbp >= 0x80,
            rev_nbp & 0x7F,
            pkey,
            qos_sl >> 4,
            qos_sl & 0xF,
            mtu >> 6,
            mtu & 0x3F,
            rate >> 6,
            rate & 0x3F,
            plt >> 6,
            plt & 0x3F,
            (sid_msb << 56) | int.from_bytes(lsb, "big"),
            indep >> 6,
        )


# --------------------------------------------------------------------------- registry

SaRecord = (
    PathRecord
    | NodeRecord
    | PortInfoRecord
    | GUIDInfoRecord
    | InformInfo
    | InformInfoRecord
    | ClassPortInfo
    | Notice
    | LinkRecord
    | SwitchInfoRecord
    | SMInfoRecord
    | PKeyTableRecord
    | SLtoVLMappingTableRecord
    | VLArbitrationTableRecord
    | LFTRecord
    | ServiceRecord
    | MultiPathRecord
    | MFTRecord
    | MCMemberRecord
)
"""Any record class this module can put in or take out of an SA MAD."""

SA_RECORDS: Final[dict[int, type[SaRecord]]] = {
    SaAttr.CLASS_PORT_INFO: ClassPortInfo,
    SaAttr.NOTICE: Notice,
    SaAttr.INFORM_INFO: InformInfo,
    SaAttr.NODE_RECORD: NodeRecord,
    SaAttr.PORT_INFO_RECORD: PortInfoRecord,
    SaAttr.GUID_INFO_RECORD: GUIDInfoRecord,
    SaAttr.PATH_RECORD: PathRecord,
    SaAttr.INFORM_INFO_RECORD: InformInfoRecord,
    SaAttr.LINK_RECORD: LinkRecord,
    SaAttr.SWITCH_INFO_RECORD: SwitchInfoRecord,
    SaAttr.SM_INFO_RECORD: SMInfoRecord,
    SaAttr.P_KEY_TABLE_RECORD: PKeyTableRecord,
    SaAttr.SL_TO_VL_MAPPING_TABLE_RECORD: SLtoVLMappingTableRecord,
    SaAttr.VL_ARBITRATION_TABLE_RECORD: VLArbitrationTableRecord,
    SaAttr.LINEAR_FORWARDING_TABLE_RECORD: LFTRecord,
    SaAttr.SERVICE_RECORD: ServiceRecord,
    SaAttr.MULTI_PATH_RECORD: MultiPathRecord,
    SaAttr.MULTICAST_FORWARDING_TABLE_RECORD: MFTRecord,
    SaAttr.MC_MEMBER_RECORD: MCMemberRecord,
}
"""SA attribute ID -> record class."""


def report_response(report: bytes) -> bytes:
    """The SubnAdmReportResp() acknowledging an encoded SubnAdmReport(): the same
    common header (TID, attribute, modifier) with the ReportResp method and status
    0, RMPP and SA header cleared, the Notice echoed in the data (the Report and
    ReportResp methods: IBA Vol 1, 13.4.5; the SA MAD layout: 15.2.1.1)."""
    if len(report) != MAD_SIZE:
        raise WireError(f"an SA MAD is {MAD_SIZE} bytes, got {len(report)}")
    if report[1] != _SUBN_ADM or report[3] != _REPORT_METHOD:
        raise WireError(f"not an SA Report: class {report[1]:#04x}, method {report[3]:#04x}")
    return b"".join(
        (report[:3], _REPORT_RESP_METHOD_STATUS, report[6:24], _CLEARED_SA_HEADER, report[56:])
    )


# Every subscriber answers one Report per migration in the subnet: the method is
# compared with a plain int, not looked up on the enum each time.
_REPORT_METHOD: Final = int(Method.REPORT)
_REPORT_RESP_METHOD_STATUS: Final = bytes((Method.REPORT_RESP, 0, 0))
_CLEARED_SA_HEADER: Final = bytes(SA_HEADER_SIZE - 24)


def record_class(attribute_id: int) -> type[SaRecord]:
    """The record class of an SA attribute ID; WireError if ibmig has none."""
    try:
        return SA_RECORDS[attribute_id]
    except KeyError:
        raise WireError(f"no codec for SA attribute {attribute_id:#06x}") from None


def decode_records(
    attribute_id: int, payload: bytes, attribute_offset: int, count: int | None = None
) -> tuple[SaRecord, ...]:
    """Decode the records of a (possibly RMPP-reassembled) SA payload.

    Records are `attribute_offset * 8` bytes apart; `count` records are decoded,
    or as many whole records as `payload` holds. AttributeOffset 0 means a single
    record at the start (Get, Set, Report, Delete).
    """
    klass = record_class(attribute_id)
    if attribute_offset < 0:
        raise WireError(f"AttributeOffset {attribute_offset} is negative")
    if attribute_offset == 0:
        if count == 0:
            return ()
        if count not in (None, 1):
            raise WireError(f"AttributeOffset 0 holds one record, not {count}")
        return (klass.unpack(payload),)
    stride = attribute_offset * 8
    if stride < klass.SIZE:
        raise WireError(
            f"AttributeOffset {attribute_offset} ({stride} bytes) is shorter than "
            f"{klass.__name__} ({klass.SIZE} bytes)"
        )
    fits = (len(payload) - klass.SIZE) // stride + 1 if len(payload) >= klass.SIZE else 0
    if count is None:
        count = fits
    elif count < 0 or count > fits:
        raise WireError(f"{count} records of {stride} bytes do not fit {len(payload)} bytes")
    unpack = klass.unpack
    return tuple(unpack(payload, i * stride) for i in range(count))


# --------------------------------------------------------------------------- SA MAD

_SA = struct.Struct(">BBBBHHQHHIBBBBIIQH2xQ200s")
# Plain ints: comparing with an IntEnum member costs a class attribute lookup per use.
_SUBN_ADM: Final = int(MgmtClass.SUBN_ADM)
_GET_TABLE_RESP: Final = int(Method.GET_TABLE_RESP)
_GET_MULTI_RESP: Final = int(Method.GET_MULTI_RESP)  # PathRecords of a MultiPathRecord query
_ZERO_DATA: Final = bytes(SA_DATA_SIZE)
_TABLE_RMPP_FLAGS: Final = RmppFlags.ACTIVE | RmppFlags.FIRST | RmppFlags.LAST


@dataclass(frozen=True, slots=True)
class SaMad:
    """An SA MAD (IBA Vol 1, 15.2.1.1): header, RMPP header, SA header, 200 data bytes.

    `data` is the SubnetAdminData exactly as on the wire (200 bytes); build one
    from records with `from_records`/`from_record` and read them back with
    `records()`/`record()`.
    """

    header: MadHeader
    rmpp: RmppHeader = RmppHeader.NONE
    sm_key: int = 0
    attribute_offset: int = 0
    component_mask: int = 0
    data: bytes = bytes(SA_DATA_SIZE)

    SIZE: ClassVar[int] = MAD_SIZE

    @property
    def method(self) -> int:
        return self.header.method

    @property
    def attribute_id(self) -> int:
        return self.header.attribute_id

    @property
    def tid(self) -> int:
        return self.header.tid

    @property
    def status(self) -> int:
        return self.header.status

    def pack(self) -> bytes:
        h, r, data = self.header, self.rmpp, self.data
        if h.mgmt_class != _SUBN_ADM:
            raise WireError(f"an SA MAD has management class 0x03, not {h.mgmt_class!r}")
        if data.__class__ is not bytes or len(data) != SA_DATA_SIZE:
            raise WireError(f"SA data must be {SA_DATA_SIZE} bytes, got {len(data)}")
        try:
            bad = r.resp_time >> 5 or r.flags >> 3
        except TypeError:
            bad = True
        if bad:
            raise _fields_out_of_range(
                "RMPP", (("RRespTime", r.resp_time, 5), ("flags", r.flags, 3))
            )
        try:
            return _SA.pack(
                h.base_version,
                h.mgmt_class,
                h.class_version,
                h.method,
                h.status,
                h.class_specific,
                h.tid,
                h.attribute_id,
                0,
                h.attribute_modifier,
                r.rmpp_version,
                r.rmpp_type,
                (r.resp_time << 3) | r.flags,
                r.rmpp_status,
                r.data1,
                r.data2,
                self.sm_key,
                self.attribute_offset,
                self.component_mask,
                data,
            )
        except struct.error as exc:
            raise WireError(f"SA MAD field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes) -> SaMad:
        if len(data) != MAD_SIZE:
            raise WireError(f"an SA MAD is {MAD_SIZE} bytes, got {len(data)}")
        (bv, mclass, cver, method, status, cspec, tid, attr, _rsv, amod, rver, rtype, rt_flags,
         rstatus, d1, d2, sm_key, offset, mask, payload) = _SA.unpack(data)  # fmt: skip
        if mclass != _SUBN_ADM:
            raise WireError(f"not an SA MAD: management class {mclass:#04x}")
        if rver or rtype or rt_flags or rstatus or d1 or d2:
            rmpp = _new_rmpp_header(rver, rtype, rt_flags >> 3, rt_flags & 0x7, rstatus, d1, d2)
        else:
            rmpp = RmppHeader.NONE  # immutable, so the common all-zero header is shared
        return _new_sa_mad(
            _new_mad_header(mclass, method, attr, tid, amod, status, cspec, cver, bv),
            rmpp,
            sm_key,
            offset,
            mask,
            payload,
        )

    # ---- building from records, reading records back

    @classmethod
    def from_records(
        cls,
        records: Sequence[SaRecord],
        *,
        method: int,
        tid: int = 0,
        attribute_id: int | None = None,
        component_mask: int = 0,
        status: int = 0,
        sm_key: int = 0,
        attribute_modifier: int = 0,
        attribute_offset: int | None = None,
        rmpp: RmppHeader | None = None,
    ) -> SaMad:
        """An SA MAD carrying `records` (all of one class) in one 256-byte MAD.

        AttributeOffset defaults to the record size in words for a
        SubnAdmGetTableResp (0 when it has no records) and to 0 otherwise. A
        GetTableResp gets OpenSM's single-segment RMPP header unless `rmpp` is
        given: version 1, DATA, RRespTime 14, Active|First|Last, segment 1,
        PayloadLength 20 + n * AttributeOffset * 8. Records that do not fit 200 bytes
        raise WireError (split them over RMPP segments with `decode_records`'s
        layout instead).
        """
        if attribute_id is None:
            if not records:
                raise WireError("an SA MAD without records needs an attribute_id")
            attribute_id = records[0].ATTRIBUTE_ID
        klass = record_class(attribute_id)
        for record in records:
            if record.__class__ is not klass:
                raise WireError(
                    f"{record.__class__.__name__} cannot go in an SA MAD of attribute "
                    f"{attribute_id:#06x} ({klass.__name__})"
                )
        table = method in (_GET_TABLE_RESP, _GET_MULTI_RESP)
        if attribute_offset is None:
            attribute_offset = klass.ATTRIBUTE_OFFSET if (table and records) else 0
        if len(records) > 1 and attribute_offset == 0:
            raise WireError("several records need a non-zero AttributeOffset")
        stride = attribute_offset * 8
        if stride and stride < klass.SIZE:
            raise WireError(f"AttributeOffset {attribute_offset} is too short for {klass.__name__}")
        if not records:
            body = b""
        elif len(records) == 1 and not stride:
            body = records[0].pack()
        else:
            pad = bytes(stride - klass.SIZE)
            body = b"".join(record.pack() + pad for record in records)
        if len(body) > SA_DATA_SIZE:
            raise WireError(
                f"{len(records)} x {klass.__name__} ({len(body)} bytes) exceed one SA MAD's "
                f"{SA_DATA_SIZE} bytes"
            )
        if rmpp is None:
            if table:
                rmpp = _new_rmpp_header(
                    1,  # RMPVersion
                    RmppType.DATA,
                    14,  # RRespTime, as OpenSM
                    _TABLE_RMPP_FLAGS,
                    0,  # RMPPStatus
                    1,  # SegmentNumber
                    SA_CLASS_HEADER_SIZE + len(records) * stride,  # PayloadLength
                )
            else:
                rmpp = RmppHeader.NONE
        header = _new_mad_header(
            _SUBN_ADM,
            method,
            attribute_id,
            tid,
            attribute_modifier,
            status,
            0,  # ClassSpecific
            SA_CLASS_VERSION,
            BASE_VERSION,
        )
        data = body + _ZERO_DATA[len(body) :]
        return _new_sa_mad(header, rmpp, sm_key, attribute_offset, component_mask, data)

    @classmethod
    def from_record(
        cls,
        record: SaRecord,
        *,
        method: int,
        tid: int = 0,
        component_mask: int = 0,
        status: int = 0,
        sm_key: int = 0,
        attribute_modifier: int = 0,
        attribute_offset: int | None = None,
        rmpp: RmppHeader | None = None,
    ) -> SaMad:
        """An SA MAD carrying one record (a query, Set, Report, Get response...)."""
        klass = record.__class__
        if (
            method != _GET_TABLE_RESP
            and not attribute_offset
            and rmpp is None
            and SA_RECORDS.get(klass.ATTRIBUTE_ID) is klass
        ):
            # The common case, kept short: it is on the simulator's hot path.
            body = record.pack()
            header = _new_mad_header(
                _SUBN_ADM,
                method,
                klass.ATTRIBUTE_ID,
                tid,
                attribute_modifier,
                status,
                0,
                SA_CLASS_VERSION,
                BASE_VERSION,
            )
            data = body + _ZERO_DATA[len(body) :]
            return _new_sa_mad(header, RmppHeader.NONE, sm_key, 0, component_mask, data)
        return cls.from_records(
            (record,),
            method=method,
            tid=tid,
            component_mask=component_mask,
            status=status,
            sm_key=sm_key,
            attribute_modifier=attribute_modifier,
            attribute_offset=attribute_offset,
            rmpp=rmpp,
        )

    def record_count(self) -> int:
        """How many records this MAD holds.

        AttributeOffset 0: one. Otherwise as many as fit the 200 bytes, limited by
        an RMPP PayloadLength (20 + n * AttributeOffset * 8, OpenSM's convention) when the
        MAD is the first RMPP DATA segment.
        """
        if self.attribute_offset == 0:
            return 1
        klass = record_class(self.header.attribute_id)
        stride = self.attribute_offset * 8
        fits = (SA_DATA_SIZE - klass.SIZE) // stride + 1 if stride else 0
        r = self.rmpp
        if (
            r.rmpp_type == RmppType.DATA
            and r.flags & RmppFlags.ACTIVE
            and r.flags & RmppFlags.FIRST
        ):
            announced = r.data2 - SA_CLASS_HEADER_SIZE
            if announced < 0:
                raise WireError(f"RMPP PayloadLength {r.data2} is shorter than the SA header")
            whole, rest = divmod(announced, stride)
            return min(fits, whole + (rest >= klass.SIZE))
        return fits

    def records(self) -> tuple[SaRecord, ...]:
        """The records this MAD carries (see `record_count`)."""
        return decode_records(
            self.header.attribute_id, self.data, self.attribute_offset, self.record_count()
        )

    def record(self) -> SaRecord:
        """The first (or only) record; WireError if there is none."""
        if self.attribute_offset == 0:
            return record_class(self.header.attribute_id).unpack(self.data)
        found = self.records()
        if not found:
            raise WireError("the SA MAD holds no records")
        return found[0]


_new_mad_header = _fast_constructor(MadHeader)
_new_rmpp_header = _fast_constructor(RmppHeader)
_new_sa_mad = _fast_constructor(SaMad)

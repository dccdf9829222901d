"""Communication management (CM) MADs: REQ, MRA, REJ, REP, RTU, DREQ, DREP.

The connection manager sets up and tears down reliable connections with MADs of
management class 0x07 (IBA Vol 1, chapter 12 "Communication Management"; message
formats in 12.6 "Communication Management Messages"). Every CM message is a Send
(method 0x03) whose AttributeID names the message; it fills the whole 232-byte data
region that follows the 24-byte common MAD header (CM does not use RMPP), and each
one ends with a fixed-size Private Data field that the consumer owns.

Offsets in the tables of this module count from the start of that data region
(byte 24 of the MAD). Bit fields are numbered from the most significant bit, as the
specification's Byte[Bit] notation does: a 24-bit QPN "at byte 32" is the top 24
bits of the big-endian word at 32, and the byte at 35 holds the next field. Layouts
cross-checked against Linux `include/rdma/ibta_vol1_c12.h` (field locations taken
from the same tables) and Wireshark's `packet-infiniband.c` (`parse_COM_MGT`).

Time-outs (`*_cm_response_timeout`, `local_ack_timeout`, `service_timeout`,
`target_ack_delay`) are 5-bit exponents: the time is 4.096 us * 2**value.

Every field defaults to zero, so a record can be built with keywords naming only
what a test or an engine cares about. Private Data must be given at its full
fixed size (`Req.PRIVATE_DATA_SIZE` etc.); pad shorter consumer data with zeros.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from operator import attrgetter
from typing import ClassVar, Self

from ibmig.errors import WireError
from ibmig.wire.mad import (
    BASE_VERSION,
    MAD_HEADER_SIZE,
    MAD_SIZE,
    Method,
    MgmtClass,
    check_mad_size,
)

CM_DATA_SIZE = MAD_SIZE - MAD_HEADER_SIZE  # 232
CM_CLASS_VERSION = 2  # IBA 1.2 and later; what Linux's ib_cm sends
GID_SIZE = 16


class CmAttributeId(IntEnum):
    """CM attribute identifiers (IBA Vol 1, 12.6: one attribute per message)."""

    CLASS_PORT_INFO = 0x0001
    REQ = 0x0010
    MRA = 0x0011
    REJ = 0x0012
    REP = 0x0013
    RTU = 0x0014
    DREQ = 0x0015
    DREP = 0x0016
    SIDR_REQ = 0x0017
    SIDR_REP = 0x0018
    LAP = 0x0019
    APR = 0x001A


class TransportServiceType(IntEnum):
    """REQ Transport Service Type (IBA Vol 1, 12.6.5). 3 defers to the Extended
    Transport Type field (XRC, IBA Vol 1 Annex A14)."""

    RC = 0x0
    UC = 0x1
    RD = 0x2
    EXTENDED = 0x3


class ExtendedTransportType(IntEnum):
    """REQ Extended Transport Type, meaningful when Transport Service Type is 3."""

    NONE = 0x0
    XRC = 0x1


class MraedMessage(IntEnum):
    """MRA Message MRAed: which message is being acknowledged (IBA Vol 1, 12.6.6)."""

    REQ = 0x0
    REP = 0x1
    LAP = 0x2


class RejectedMessage(IntEnum):
    """REJ Message REJected: which message is being rejected (IBA Vol 1, 12.6.7)."""

    REQ = 0x0
    REP = 0x1
    OTHER = 0x2  # no message of this connection is being rejected in particular


class RejReason(IntEnum):
    """REJ Reason codes (IBA Vol 1, 12.6.7, Table 109 in Release 1.3).

    0x23 comes from a later IBTA erratum (vendor options, Linux ib_cm.h); other
    unknown codes decode as plain ints.
    """

    NO_QP = 0x01
    NO_EEC = 0x02
    NO_RESOURCES = 0x03
    TIMEOUT = 0x04
    UNSUPPORTED_REQUEST = 0x05
    INVALID_COMM_ID = 0x06
    INVALID_COMM_INSTANCE = 0x07
    INVALID_SERVICE_ID = 0x08
    INVALID_TRANSPORT_SERVICE_TYPE = 0x09
    STALE_CONNECTION = 0x0A
    RDC_DOES_NOT_EXIST = 0x0B
    INVALID_PRIMARY_GID = 0x0C
    INVALID_PRIMARY_LID = 0x0D
    INVALID_PRIMARY_SL = 0x0E
    INVALID_PRIMARY_TRAFFIC_CLASS = 0x0F
    INVALID_PRIMARY_HOP_LIMIT = 0x10
    INVALID_PRIMARY_PACKET_RATE = 0x11
    INVALID_ALTERNATE_GID = 0x12
    INVALID_ALTERNATE_LID = 0x13
    INVALID_ALTERNATE_SL = 0x14
    INVALID_ALTERNATE_TRAFFIC_CLASS = 0x15
    INVALID_ALTERNATE_HOP_LIMIT = 0x16
    INVALID_ALTERNATE_PACKET_RATE = 0x17
    PORT_CM_REDIRECT = 0x18
    PORT_REDIRECT = 0x19
    INVALID_PATH_MTU = 0x1A
    INSUFFICIENT_RESPONDER_RESOURCES = 0x1B
    CONSUMER_REJECT = 0x1C
    INVALID_RNR_RETRY_COUNT = 0x1D
    DUPLICATE_LOCAL_COMM_ID = 0x1E
    UNSUPPORTED_CLASS_VERSION = 0x1F
    INVALID_PRIMARY_FLOW_LABEL = 0x20
    INVALID_ALTERNATE_FLOW_LABEL = 0x21
    VENDOR_OPTION_NOT_SUPPORTED = 0x23


# --- helpers -----------------------------------------------------------------------


def _misfit(record: object, fields: tuple[tuple[str, int], ...]) -> WireError:
    """The precise error for the first bit field of `record` that does not fit.

    Only called once the fast combined check in a pack() has failed, so the loop
    costs nothing on the hot path. Names may be dotted ("primary_path.sl").
    """
    for name, bits in fields:
        value = attrgetter(name)(record)
        if not 0 <= value < (1 << bits):
            return WireError(f"{type(record).__name__}.{name} = {value!r} does not fit {bits} bits")
    return WireError(f"{type(record).__name__}: a bit field is out of range")  # pragma: no cover


def _bad_blob(record: object, name: str, size: int) -> WireError:
    got = len(getattr(record, name))
    return WireError(
        f"{type(record).__name__}.{name} must be exactly {size} bytes, got {got}"
        + (" (pad private data with zeros)" if name == "private_data" else "")
    )


def _check_size(name: str, data: bytes, size: int) -> None:
    if len(data) != size:
        raise WireError(f"CM {name} message needs exactly {size} bytes, got {len(data)}")


def _check_room(name: str, data: bytes, offset: int, size: int) -> None:
    if offset < 0 or len(data) - offset < size:
        raise WireError(
            f"CM {name} message needs {size} bytes at offset {offset}, buffer has {len(data)}"
        )


# --- path fields of REQ --------------------------------------------------------------

# Local Port LID, Remote Port LID, Local Port GID, Remote Port GID,
# Flow Label (20) | reserved (6) | Packet Rate (6), Traffic Class, Hop Limit,
# SL (4) | Subnet Local (1) | reserved (3), Local ACK Timeout (5) | reserved (3).
_PATH_FMT = "HH16s16sIBBBB"
_PATH = struct.Struct(">" + _PATH_FMT)

_PATH_BITS: tuple[tuple[str, int], ...] = (
    ("flow_label", 20),
    ("packet_rate", 6),
    ("sl", 4),
    ("subnet_local", 1),
    ("local_ack_timeout", 5),
)


@dataclass(frozen=True, slots=True)
class CmPath:
    """The 44 bytes that describe one path in a REQ (IBA Vol 1, 12.6.5, REQ bytes
    52..95 for the primary path and 96..139 for the alternate path).

    An alternate path that is not offered is all zeros (`CmPath()`).
    """

    local_lid: int = 0
    remote_lid: int = 0
    local_gid: bytes = bytes(GID_SIZE)
    remote_gid: bytes = bytes(GID_SIZE)
    flow_label: int = 0  # 20 bits
    packet_rate: int = 0  # 6 bits, PathRecord Rate encoding
    traffic_class: int = 0
    hop_limit: int = 0
    sl: int = 0  # 4 bits
    subnet_local: bool = False
    local_ack_timeout: int = 0  # 5 bits, exponent

    SIZE: ClassVar[int] = 44

    @property
    def is_empty(self) -> bool:
        """True for the all-zero path a REQ carries when it offers no alternate."""
        return self == _EMPTY_PATH

    def _check(self) -> None:
        if (
            (self.flow_label >> 20)
            | (self.packet_rate >> 6)
            | (self.sl >> 4)
            | (self.subnet_local >> 1)
            | (self.local_ack_timeout >> 5)
        ):
            raise _misfit(self, _PATH_BITS)
        if len(self.local_gid) != GID_SIZE:
            raise _bad_blob(self, "local_gid", GID_SIZE)
        if len(self.remote_gid) != GID_SIZE:
            raise _bad_blob(self, "remote_gid", GID_SIZE)

    def pack(self) -> bytes:
        self._check()
        try:
            return _PATH.pack(
                self.local_lid,
                self.remote_lid,
                self.local_gid,
                self.remote_gid,
                (self.flow_label << 12) | self.packet_rate,
                self.traffic_class,
                self.hop_limit,
                (self.sl << 4) | (self.subnet_local << 3),
                self.local_ack_timeout << 3,
            )
        except struct.error as exc:
            raise WireError(f"CmPath field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes) -> CmPath:
        if len(data) != cls.SIZE:
            raise WireError(f"a CM path needs exactly {cls.SIZE} bytes, got {len(data)}")
        llid, rlid, lgid, rgid, fl_rate, tc, hop, sl_sub, ack = _PATH.unpack(data)
        return cls(
            llid, rlid, lgid, rgid, fl_rate >> 12, fl_rate & 0x3F, tc, hop,
            sl_sub >> 4, bool(sl_sub & 0x08), ack >> 3,
        )  # fmt: skip


_EMPTY_PATH = CmPath()
_ZERO_GID = bytes(GID_SIZE)


# --- REQ -----------------------------------------------------------------------------

# IBA Vol 1, 12.6.5 "REQ" (Table 106 in Release 1.3), offsets in the data region:
#   0 Local Communication ID        4 reserved        8 Service ID
#  16 Local CA GUID                24 reserved       28 Local Q_Key
#  32 Local QPN (24) | Responder Resources (8)
#  36 Local EECN (24) | Initiator Depth (8)
#  40 Remote EECN (24) | Remote CM Response Timeout (5) | Transport Service Type (2)
#     | End-to-End Flow Control (1)
#  44 Starting PSN (24) | Local CM Response Timeout (5) | Retry Count (3)
#  48 Partition Key
#  50 Path Packet Payload MTU (4) | RDC Exists (1) | RNR Retry Count (3)
#  51 Max CM Retries (4) | SRQ (1) | Extended Transport Type (3)
#  52 primary path (44 bytes)      96 alternate path (44 bytes; byte 139 bit 5 is
#     SAP Supported)              140 Private Data (92 bytes)
_REQ = struct.Struct(">I4xQQ4xIIIIIHBB" + _PATH_FMT + _PATH_FMT + "92s")
assert _REQ.size == CM_DATA_SIZE

_REQ_BITS: tuple[tuple[str, int], ...] = (
    ("local_qpn", 24),
    ("responder_resources", 8),
    ("local_eecn", 24),
    ("initiator_depth", 8),
    ("remote_eecn", 24),
    ("remote_cm_response_timeout", 5),
    ("transport_service_type", 2),
    ("end_to_end_flow_control", 1),
    ("starting_psn", 24),
    ("local_cm_response_timeout", 5),
    ("retry_count", 3),
    ("path_packet_payload_mtu", 4),
    ("rdc_exists", 1),
    ("rnr_retry_count", 3),
    ("max_cm_retries", 4),
    ("srq", 1),
    ("extended_transport_type", 3),
    ("sap_supported", 1),
    *((f"primary_path.{name}", bits) for name, bits in _PATH_BITS),
    *((f"alternate_path.{name}", bits) for name, bits in _PATH_BITS),
)


@dataclass(frozen=True, slots=True)
class Req:
    """REQ, request for communication (IBA Vol 1, 12.6.5)."""

    local_comm_id: int = 0
    service_id: int = 0
    local_ca_guid: int = 0
    local_q_key: int = 0  # RD only
    local_qpn: int = 0  # 24 bits
    responder_resources: int = 0
    local_eecn: int = 0  # 24 bits, RD only
    initiator_depth: int = 0
    remote_eecn: int = 0  # 24 bits, RD only
    remote_cm_response_timeout: int = 0  # 5 bits, exponent
    transport_service_type: int = TransportServiceType.RC  # 2 bits
    end_to_end_flow_control: bool = False
    starting_psn: int = 0  # 24 bits
    local_cm_response_timeout: int = 0  # 5 bits, exponent
    retry_count: int = 0  # 3 bits
    partition_key: int = 0
    path_packet_payload_mtu: int = 0  # 4 bits, PathRecord MTU encoding
    rdc_exists: bool = False
    rnr_retry_count: int = 0  # 3 bits
    max_cm_retries: int = 0  # 4 bits
    srq: bool = False
    extended_transport_type: int = ExtendedTransportType.NONE  # 3 bits
    primary_path: CmPath = _EMPTY_PATH
    alternate_path: CmPath = _EMPTY_PATH
    sap_supported: bool = False
    private_data: bytes = bytes(92)

    ATTRIBUTE_ID: ClassVar[int] = CmAttributeId.REQ
    SIZE: ClassVar[int] = CM_DATA_SIZE
    PRIVATE_DATA_SIZE: ClassVar[int] = 92

    def pack(self) -> bytes:
        p = self.primary_path
        a = self.alternate_path
        if (
            (self.local_qpn >> 24)
            | (self.responder_resources >> 8)
            | (self.local_eecn >> 24)
            | (self.initiator_depth >> 8)
            | (self.remote_eecn >> 24)
            | (self.remote_cm_response_timeout >> 5)
            | (self.transport_service_type >> 2)
            | (self.end_to_end_flow_control >> 1)
            | (self.starting_psn >> 24)
            | (self.local_cm_response_timeout >> 5)
            | (self.retry_count >> 3)
            | (self.path_packet_payload_mtu >> 4)
            | (self.rdc_exists >> 1)
            | (self.rnr_retry_count >> 3)
            | (self.max_cm_retries >> 4)
            | (self.srq >> 1)
            | (self.extended_transport_type >> 3)
            | (self.sap_supported >> 1)
            | (p.flow_label >> 20)
            | (p.packet_rate >> 6)
            | (p.sl >> 4)
            | (p.subnet_local >> 1)
            | (p.local_ack_timeout >> 5)
            | (a.flow_label >> 20)
            | (a.packet_rate >> 6)
            | (a.sl >> 4)
            | (a.subnet_local >> 1)
            | (a.local_ack_timeout >> 5)
        ):
            raise _misfit(self, _REQ_BITS)
        if not (
            len(p.local_gid)
            == len(p.remote_gid)
            == len(a.local_gid)
            == len(a.remote_gid)
            == GID_SIZE
        ):
            p._check()
            a._check()
        if len(self.private_data) != 92:
            raise _bad_blob(self, "private_data", 92)
        try:
            return _REQ.pack(
                self.local_comm_id,
                self.service_id,
                self.local_ca_guid,
                self.local_q_key,
                (self.local_qpn << 8) | self.responder_resources,
                (self.local_eecn << 8) | self.initiator_depth,
                (self.remote_eecn << 8)
                | (self.remote_cm_response_timeout << 3)
                | (self.transport_service_type << 1)
                | self.end_to_end_flow_control,
                (self.starting_psn << 8) | (self.local_cm_response_timeout << 3) | self.retry_count,
                self.partition_key,
                (self.path_packet_payload_mtu << 4) | (self.rdc_exists << 3) | self.rnr_retry_count,
                (self.max_cm_retries << 4) | (self.srq << 3) | self.extended_transport_type,
                p.local_lid,
                p.remote_lid,
                p.local_gid,
                p.remote_gid,
                (p.flow_label << 12) | p.packet_rate,
                p.traffic_class,
                p.hop_limit,
                (p.sl << 4) | (p.subnet_local << 3),
                p.local_ack_timeout << 3,
                a.local_lid,
                a.remote_lid,
                a.local_gid,
                a.remote_gid,
                (a.flow_label << 12) | a.packet_rate,
                a.traffic_class,
                a.hop_limit,
                (a.sl << 4) | (a.subnet_local << 3),
                (a.local_ack_timeout << 3) | (self.sap_supported << 2),
                self.private_data,
            )
        except struct.error as exc:
            raise WireError(f"REQ field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes) -> Req:
        _check_size("REQ", data, CM_DATA_SIZE)
        return cls.unpack_from(data)

    @classmethod
    def unpack_from(cls, data: bytes, offset: int = 0) -> Req:
        _check_room("REQ", data, offset, CM_DATA_SIZE)
        (
            lcid, sid, guid, qkey, w32, w36, w40, w44, pkey, b50, b51,
            p_llid, p_rlid, p_lgid, p_rgid, p_flr, p_tc, p_hop, p_sls, p_ack,
            a_llid, a_rlid, a_lgid, a_rgid, a_flr, a_tc, a_hop, a_sls, a_ack,
            pdata,
        ) = _REQ.unpack_from(data, offset)  # fmt: skip
        primary = CmPath(
            p_llid, p_rlid, p_lgid, p_rgid, p_flr >> 12, p_flr & 0x3F, p_tc, p_hop,
            p_sls >> 4, bool(p_sls & 0x08), p_ack >> 3,
        )  # fmt: skip
        if (
            a_llid | a_rlid | a_flr | a_tc | a_hop | a_sls | (a_ack & 0xF8)
            or a_lgid != _ZERO_GID
            or a_rgid != _ZERO_GID
        ):
            alternate = CmPath(
                a_llid, a_rlid, a_lgid, a_rgid, a_flr >> 12, a_flr & 0x3F, a_tc, a_hop,
                a_sls >> 4, bool(a_sls & 0x08), a_ack >> 3,
            )  # fmt: skip
        else:
            # Most REQs offer no alternate path: share one empty record, it is immutable.
            alternate = _EMPTY_PATH
        return cls(
            lcid, sid, guid, qkey,
            w32 >> 8, w32 & 0xFF,
            w36 >> 8, w36 & 0xFF,
            w40 >> 8, (w40 >> 3) & 0x1F, (w40 >> 1) & 0x3, bool(w40 & 0x1),
            w44 >> 8, (w44 >> 3) & 0x1F, w44 & 0x7,
            pkey,
            b50 >> 4, bool(b50 & 0x08), b50 & 0x7,
            b51 >> 4, bool(b51 & 0x08), b51 & 0x7,
            primary, alternate, bool(a_ack & 0x04), pdata,
        )  # fmt: skip


# --- MRA -----------------------------------------------------------------------------

# IBA Vol 1, 12.6.6 "MRA" (Table 107): 0 Local Communication ID, 4 Remote
# Communication ID, 8 Message MRAed (2) | reserved (6), 9 Service Timeout (5) |
# reserved (3), 10 Private Data (222 bytes).
_MRA = struct.Struct(">IIBB222s")
assert _MRA.size == CM_DATA_SIZE

_MRA_BITS: tuple[tuple[str, int], ...] = (("message_mraed", 2), ("service_timeout", 5))


@dataclass(frozen=True, slots=True)
class Mra:
    """MRA, message receipt acknowledgement: "I got it, answer will be late"
    (IBA Vol 1, 12.6.6)."""

    local_comm_id: int = 0
    remote_comm_id: int = 0
    message_mraed: int = MraedMessage.REQ  # 2 bits
    service_timeout: int = 0  # 5 bits, exponent
    private_data: bytes = bytes(222)

    ATTRIBUTE_ID: ClassVar[int] = CmAttributeId.MRA
    SIZE: ClassVar[int] = CM_DATA_SIZE
    PRIVATE_DATA_SIZE: ClassVar[int] = 222

    def pack(self) -> bytes:
        if (self.message_mraed >> 2) | (self.service_timeout >> 5):
            raise _misfit(self, _MRA_BITS)
        if len(self.private_data) != 222:
            raise _bad_blob(self, "private_data", 222)
        try:
            return _MRA.pack(
                self.local_comm_id,
                self.remote_comm_id,
                self.message_mraed << 6,
                self.service_timeout << 3,
                self.private_data,
            )
        except struct.error as exc:
            raise WireError(f"MRA field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes) -> Mra:
        _check_size("MRA", data, CM_DATA_SIZE)
        return cls.unpack_from(data)

    @classmethod
    def unpack_from(cls, data: bytes, offset: int = 0) -> Mra:
        _check_room("MRA", data, offset, CM_DATA_SIZE)
        lcid, rcid, b8, b9, pdata = _MRA.unpack_from(data, offset)
        return cls(lcid, rcid, b8 >> 6, b9 >> 3, pdata)


# --- REJ -----------------------------------------------------------------------------

# IBA Vol 1, 12.6.7 "REJ" (Table 108): 0 Local Communication ID, 4 Remote
# Communication ID, 8 Message REJected (2) | reserved (6), 9 Reject Info Length (7) |
# reserved (1), 10 Reason (16), 12 Additional Reject Information (72 bytes),
# 84 Private Data (148 bytes).
_REJ = struct.Struct(">IIBBH72s148s")
assert _REJ.size == CM_DATA_SIZE
ARI_SIZE = 72


@dataclass(frozen=True, slots=True)
class Rej:
    """REJ, reject (IBA Vol 1, 12.6.7).

    `ari` is the Additional Reject Information actually used (0..72 bytes); its
    length is the Reject Info Length field and the rest of the 72-byte slot is
    sent as zeros.
    """

    local_comm_id: int = 0
    remote_comm_id: int = 0
    message_rejected: int = RejectedMessage.REQ  # 2 bits
    reason: int = 0
    ari: bytes = b""
    private_data: bytes = bytes(148)

    ATTRIBUTE_ID: ClassVar[int] = CmAttributeId.REJ
    SIZE: ClassVar[int] = CM_DATA_SIZE
    PRIVATE_DATA_SIZE: ClassVar[int] = 148

    @property
    def ari_length(self) -> int:
        """The Reject Info Length field: bytes of `ari` in use."""
        return len(self.ari)

    def pack(self) -> bytes:
        if self.message_rejected >> 2:
            raise _misfit(self, (("message_rejected", 2),))
        if len(self.ari) > ARI_SIZE:
            raise WireError(
                f"Rej.ari holds at most {ARI_SIZE} bytes of reject information, got {len(self.ari)}"
            )
        if len(self.private_data) != 148:
            raise _bad_blob(self, "private_data", 148)
        try:
            return _REJ.pack(
                self.local_comm_id,
                self.remote_comm_id,
                self.message_rejected << 6,
                len(self.ari) << 1,
                self.reason,
                self.ari,  # struct pads the 72-byte slot with zeros
                self.private_data,
            )
        except struct.error as exc:
            raise WireError(f"REJ field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes) -> Rej:
        _check_size("REJ", data, CM_DATA_SIZE)
        return cls.unpack_from(data)

    @classmethod
    def unpack_from(cls, data: bytes, offset: int = 0) -> Rej:
        _check_room("REJ", data, offset, CM_DATA_SIZE)
        lcid, rcid, b8, b9, reason, ari, pdata = _REJ.unpack_from(data, offset)
        ari_length = b9 >> 1
        if ari_length > ARI_SIZE:
            raise WireError(
                f"REJ Reject Info Length {ari_length} exceeds the {ARI_SIZE}-byte ARI field"
            )
        return cls(lcid, rcid, b8 >> 6, reason, ari[:ari_length], pdata)


# --- REP -----------------------------------------------------------------------------

# IBA Vol 1, 12.6.8 "REP" (Table 110): 0 Local Communication ID, 4 Remote
# Communication ID, 8 Local Q_Key, 12 Local QPN (24) | reserved (8),
# 16 Local EE Context Number (24) | reserved, 20 Starting PSN (24) | reserved,
# 24 Responder Resources, 25 Initiator Depth, 26 Target ACK Delay (5) | Failover
# Accepted (2) | End-to-End Flow Control (1), 27 RNR Retry Count (3) | SRQ (1) |
# reserved (4), 28 Local CA GUID, 36 Private Data (196 bytes).
_REP = struct.Struct(">IIIIIIBBBBQ196s")
assert _REP.size == CM_DATA_SIZE

_REP_BITS: tuple[tuple[str, int], ...] = (
    ("local_qpn", 24),
    ("local_eecn", 24),
    ("starting_psn", 24),
    ("target_ack_delay", 5),
    ("failover_accepted", 2),
    ("end_to_end_flow_control", 1),
    ("rnr_retry_count", 3),
    ("srq", 1),
)


@dataclass(frozen=True, slots=True)
class Rep:
    """REP, reply to request for communication (IBA Vol 1, 12.6.8)."""

    local_comm_id: int = 0
    remote_comm_id: int = 0
    local_q_key: int = 0  # RD only
    local_qpn: int = 0  # 24 bits
    local_eecn: int = 0  # 24 bits, "Local EE Context Number", RD only
    starting_psn: int = 0  # 24 bits
    responder_resources: int = 0
    initiator_depth: int = 0
    target_ack_delay: int = 0  # 5 bits, exponent
    failover_accepted: int = 0  # 2 bits
    end_to_end_flow_control: bool = False
    rnr_retry_count: int = 0  # 3 bits
    srq: bool = False
    local_ca_guid: int = 0
    private_data: bytes = bytes(196)

    ATTRIBUTE_ID: ClassVar[int] = CmAttributeId.REP
    SIZE: ClassVar[int] = CM_DATA_SIZE
    PRIVATE_DATA_SIZE: ClassVar[int] = 196

    def pack(self) -> bytes:
        if (
            (self.local_qpn >> 24)
            | (self.local_eecn >> 24)
            | (self.starting_psn >> 24)
            | (self.target_ack_delay >> 5)
            | (self.failover_accepted >> 2)
            | (self.end_to_end_flow_control >> 1)
            | (self.rnr_retry_count >> 3)
            | (self.srq >> 1)
        ):
            raise _misfit(self, _REP_BITS)
        if len(self.private_data) != 196:
            raise _bad_blob(self, "private_data", 196)
        try:
            return _REP.pack(
                self.local_comm_id,
                self.remote_comm_id,
                self.local_q_key,
                self.local_qpn << 8,
                self.local_eecn << 8,
                self.starting_psn << 8,
                self.responder_resources,
                self.initiator_depth,
                (self.target_ack_delay << 3)
                | (self.failover_accepted << 1)
                | self.end_to_end_flow_control,
                (self.rnr_retry_count << 5) | (self.srq << 4),
                self.local_ca_guid,
                self.private_data,
            )
        except struct.error as exc:
            raise WireError(f"REP field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes) -> Rep:
        _check_size("REP", data, CM_DATA_SIZE)
        return cls.unpack_from(data)

    @classmethod
    def unpack_from(cls, data: bytes, offset: int = 0) -> Rep:
        _check_room("REP", data, offset, CM_DATA_SIZE)
        (lcid, rcid, qkey, w12, w16, w20, rres, idepth, b26, b27, guid, pdata) = _REP.unpack_from(
            data, offset
        )
        return cls(
            lcid, rcid, qkey, w12 >> 8, w16 >> 8, w20 >> 8, rres, idepth,
            b26 >> 3, (b26 >> 1) & 0x3, bool(b26 & 0x1),
            b27 >> 5, bool(b27 & 0x10), guid, pdata,
        )  # fmt: skip


# --- RTU, DREQ, DREP -------------------------------------------------------------------

# IBA Vol 1, 12.6.9 "RTU" (Table 111) and 12.6.11 "DREP" (Table 113): 0 Local
# Communication ID, 4 Remote Communication ID, 8 Private Data (224 bytes).
_IDS_ONLY = struct.Struct(">II224s")
# IBA Vol 1, 12.6.10 "DREQ" (Table 112): the same, then 8 Remote QPN/EECN (24) |
# reserved (8), 12 Private Data (220 bytes).
_DREQ = struct.Struct(">III220s")
assert _IDS_ONLY.size == _DREQ.size == CM_DATA_SIZE


@dataclass(frozen=True, slots=True)
class _IdsOnly:
    """The layout RTU and DREP share: both communication IDs, 224 bytes of private data."""

    local_comm_id: int = 0
    remote_comm_id: int = 0
    private_data: bytes = bytes(224)

    NAME: ClassVar[str] = ""
    SIZE: ClassVar[int] = CM_DATA_SIZE
    PRIVATE_DATA_SIZE: ClassVar[int] = 224

    def pack(self) -> bytes:
        if len(self.private_data) != 224:
            raise _bad_blob(self, "private_data", 224)
        try:
            return _IDS_ONLY.pack(self.local_comm_id, self.remote_comm_id, self.private_data)
        except struct.error as exc:
            raise WireError(f"{self.NAME} field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes) -> Self:
        _check_size(cls.NAME, data, CM_DATA_SIZE)
        return cls.unpack_from(data)

    @classmethod
    def unpack_from(cls, data: bytes, offset: int = 0) -> Self:
        _check_room(cls.NAME, data, offset, CM_DATA_SIZE)
        return cls(*_IDS_ONLY.unpack_from(data, offset))


@dataclass(frozen=True, slots=True)
class Rtu(_IdsOnly):
    """RTU, ready to use (IBA Vol 1, 12.6.9)."""

    NAME: ClassVar[str] = "RTU"
    ATTRIBUTE_ID: ClassVar[int] = CmAttributeId.RTU


@dataclass(frozen=True, slots=True)
class Dreq:
    """DREQ, disconnection request (IBA Vol 1, 12.6.10)."""

    local_comm_id: int = 0
    remote_comm_id: int = 0
    remote_qpn_eecn: int = 0  # 24 bits
    private_data: bytes = bytes(220)

    ATTRIBUTE_ID: ClassVar[int] = CmAttributeId.DREQ
    SIZE: ClassVar[int] = CM_DATA_SIZE
    PRIVATE_DATA_SIZE: ClassVar[int] = 220

    def pack(self) -> bytes:
        if self.remote_qpn_eecn >> 24:
            raise _misfit(self, (("remote_qpn_eecn", 24),))
        if len(self.private_data) != 220:
            raise _bad_blob(self, "private_data", 220)
        try:
            return _DREQ.pack(
                self.local_comm_id,
                self.remote_comm_id,
                self.remote_qpn_eecn << 8,
                self.private_data,
            )
        except struct.error as exc:
            raise WireError(f"DREQ field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes) -> Dreq:
        _check_size("DREQ", data, CM_DATA_SIZE)
        return cls.unpack_from(data)

    @classmethod
    def unpack_from(cls, data: bytes, offset: int = 0) -> Dreq:
        _check_room("DREQ", data, offset, CM_DATA_SIZE)
        lcid, rcid, w8, pdata = _DREQ.unpack_from(data, offset)
        return cls(lcid, rcid, w8 >> 8, pdata)


@dataclass(frozen=True, slots=True)
class Drep(_IdsOnly):
    """DREP, reply to disconnection request (IBA Vol 1, 12.6.11)."""

    NAME: ClassVar[str] = "DREP"
    ATTRIBUTE_ID: ClassVar[int] = CmAttributeId.DREP


# --- the whole MAD ---------------------------------------------------------------------

CmMessage = Req | Mra | Rej | Rep | Rtu | Dreq | Drep

CM_MESSAGES: dict[int, type[CmMessage]] = {
    CmAttributeId.REQ: Req,
    CmAttributeId.MRA: Mra,
    CmAttributeId.REJ: Rej,
    CmAttributeId.REP: Rep,
    CmAttributeId.RTU: Rtu,
    CmAttributeId.DREQ: Dreq,
    CmAttributeId.DREP: Drep,
}
"""Attribute ID -> message record, for the messages this module decodes."""

# The common MAD header (IBA Vol 1, 13.4.3), same layout as ibmig.wire.mad.MadHeader.
_HEADER = struct.Struct(">BBBBHHQHHI")
_COMM_MGT = int(MgmtClass.COMM_MGT)


@dataclass(frozen=True, slots=True)
class CmMad:
    """A whole 256-byte CM MAD: common header fields and one CM message.

    The management class is always CommMgt (0x07) and the AttributeID is the
    message's; CM messages are sent with method Send (0x03) (IBA Vol 1, 12.6).
    Unpacking a MAD of another class, or of a CM attribute this module has no
    record for (ClassPortInfo, SIDR_REQ, SIDR_REP, LAP, APR), raises WireError;
    check with `ibmig.wire.mad.peek_class` first to route those elsewhere.
    """

    message: CmMessage
    tid: int = 0
    method: int = Method.SEND
    attribute_modifier: int = 0
    status: int = 0
    class_specific: int = 0
    class_version: int = CM_CLASS_VERSION
    base_version: int = BASE_VERSION

    SIZE: ClassVar[int] = MAD_SIZE

    @property
    def mgmt_class(self) -> int:
        return _COMM_MGT

    @property
    def attribute_id(self) -> int:
        return self.message.ATTRIBUTE_ID

    def pack(self) -> bytes:
        try:
            header = _HEADER.pack(
                self.base_version,
                _COMM_MGT,
                self.class_version,
                self.method,
                self.status,
                self.class_specific,
                self.tid,
                self.message.ATTRIBUTE_ID,
                0,
                self.attribute_modifier,
            )
        except struct.error as exc:
            raise WireError(f"CM MAD header field out of range: {exc}") from None
        return header + self.message.pack()

    @classmethod
    def unpack(cls, data: bytes) -> CmMad:
        check_mad_size(data)
        (bv, mclass, cver, method, status, cspec, tid, attr, _rsv, amod) = _HEADER.unpack_from(data)
        if mclass != _COMM_MGT:
            raise WireError(f"not a CM MAD: management class 0x{mclass:02x}, expected 0x07")
        message_type = CM_MESSAGES.get(attr)
        if message_type is None:
            raise WireError(f"CM attribute 0x{attr:04x} has no message codec in ibmig.wire.cm")
        message = message_type.unpack_from(data, MAD_HEADER_SIZE)
        return cls(message, tid, method, amod, status, cspec, cver, bv)

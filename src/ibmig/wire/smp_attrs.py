"""Subnet management attributes carried in the 64-byte data slot of an SMP.

IBA Vol 1, 14.2.5 "Attributes" defines them; this module implements the ones the
subnet manager, the SMAs and the SA need:

    attribute                    id      SIZE  modifier
    NodeDescription (14.2.5.2)   0x0010   64   0
    NodeInfo (14.2.5.3)          0x0011   40   0
    SwitchInfo (14.2.5.4)        0x0012   20   0
    GUIDInfo (14.2.5.5)          0x0014   64   block number (8 GUIDs per block)
    PortInfo (14.2.5.6)          0x0015   64   port number (0 on CAs = the port the SMP came in)
    P_KeyTable (14.2.5.7)        0x0016   64   bits 15..0 block (32 P_Keys per block),
                                               bits 31..16 port number on switches
    LinearForwardingTable        0x0019   64   block number (64 LIDs per block)
      (14.2.5.10)
    MulticastForwardingTable     0x001B   64   bits 31..28 position (16 ports each),
      (14.2.5.11)                              bits 8..0 block (32 MLIDs per block)
    SMInfo (14.2.5.13)           0x0020   21   0 for Get; Set carries the SM control code

`SIZE` is the attribute's own length, without the padding up to the 64-byte SMP data
slot. `unpack(data, offset)` decodes the `SIZE` bytes at `offset` and ignores what
follows, so the same call decodes an SMP data slot and an attribute embedded in an
SA record (NodeRecord, PortInfoRecord, GUIDInfoRecord, ...). `pack()` returns exactly
`SIZE` bytes; `ibmig.wire.smp` pads them to the 64-byte slot.

Fields that hold an enumerated value (node type, port states, MTUs, SM state) decode
to the `IntEnum` member when the value is known and to a plain `int` otherwise.
Bit-mask fields (link widths and speeds, capability masks) stay plain `int`s; the
enums below name their bits. Single-bit flags are `bool`s. Reserved bits are written
as zero and ignored on decode. Notice (0x0002) lives in `ibmig.wire.notice`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, Protocol, Self

from ibmig.errors import WireError

SMP_DATA_SIZE = 64
LFT_BLOCK_SIZE = 64
PKEY_BLOCK_SIZE = 32
GUID_BLOCK_SIZE = 8
NODE_DESCRIPTION_SIZE = 64


class SmpAttr(IntEnum):
    """Subnet management attribute identifiers (IBA Vol 1, 14.2.5, Table 145)."""

    NOTICE = 0x0002
    NODE_DESCRIPTION = 0x0010
    NODE_INFO = 0x0011
    SWITCH_INFO = 0x0012
    GUID_INFO = 0x0014
    PORT_INFO = 0x0015
    P_KEY_TABLE = 0x0016
    SL_TO_VL_MAPPING_TABLE = 0x0017
    VL_ARBITRATION_TABLE = 0x0018
    LINEAR_FORWARDING_TABLE = 0x0019
    RANDOM_FORWARDING_TABLE = 0x001A
    MULTICAST_FORWARDING_TABLE = 0x001B
    SM_INFO = 0x0020
    VENDOR_DIAG = 0x0030
    LED_INFO = 0x0031


class NodeType(IntEnum):
    """NodeInfo:NodeType (IBA Vol 1, 14.2.5.3)."""

    CA = 0x1
    SWITCH = 0x2
    ROUTER = 0x3


class PortState(IntEnum):
    """PortInfo:PortState, the logical link state (IBA Vol 1, 14.2.5.6; 7.2)."""

    NO_CHANGE = 0x0
    DOWN = 0x1
    INIT = 0x2
    ARMED = 0x3
    ACTIVE = 0x4


class PhysPortState(IntEnum):
    """PortInfo:PortPhysicalState and LinkDownDefaultState (IBA Vol 1, 14.2.5.6; 5.6.3).

    LinkDownDefaultState uses NO_CHANGE, SLEEP and POLLING only.
    """

    NO_CHANGE = 0x0
    SLEEP = 0x1
    POLLING = 0x2
    DISABLED = 0x3
    PORT_CONFIGURATION_TRAINING = 0x4
    LINK_UP = 0x5
    LINK_ERROR_RECOVERY = 0x6
    PHY_TEST = 0x7


class LinkWidth(IntEnum):
    """Bits of PortInfo:LinkWidthSupported/Enabled/Active (IBA Vol 1, 14.2.5.6).

    Active holds exactly one bit; Supported and Enabled are masks. LinkWidthEnabled 0
    means "no change" and 0xFF "set to LinkWidthSupported".
    """

    WIDTH_1X = 0x01
    WIDTH_4X = 0x02
    WIDTH_8X = 0x04
    WIDTH_12X = 0x08
    WIDTH_2X = 0x10


class LinkSpeed(IntEnum):
    """Bits of PortInfo:LinkSpeedSupported/Enabled/Active, in Gb/s per lane
    (IBA Vol 1, 14.2.5.6).

    LinkSpeedActive 0 means the extended speed fields apply; LinkSpeedEnabled 0 means
    "no change" and 0xF "set to LinkSpeedSupported".
    """

    GBPS_2_5 = 0x1
    GBPS_5 = 0x2
    GBPS_10 = 0x4


class LinkSpeedExt(IntEnum):
    """Bits of PortInfo:LinkSpeedExtSupported/Enabled/Active, in Gb/s per lane
    (IBA Vol 1, 14.2.5.6). LinkSpeedExtEnabled 0x1E disables extended speeds and
    0x1F means "set to LinkSpeedExtSupported"."""

    GBPS_14 = 0x01
    GBPS_25 = 0x02
    GBPS_50 = 0x04
    GBPS_100 = 0x08


class Mtu(IntEnum):
    """MTU codes of PortInfo:NeighborMTU and MTUCap, PathRecord and others
    (IBA Vol 1, 14.2.5.6; 9.4 defines the sizes)."""

    MTU_256 = 0x1
    MTU_512 = 0x2
    MTU_1024 = 0x3
    MTU_2048 = 0x4
    MTU_4096 = 0x5

    @property
    def size_bytes(self) -> int:
        return 128 << self.value


class SmState(IntEnum):
    """SMInfo:SMState (IBA Vol 1, 14.2.5.13; 14.4.1)."""

    NOT_ACTIVE = 0x0
    DISCOVERING = 0x1
    STANDBY = 0x2
    MASTER = 0x3


class PortCapability(IntEnum):
    """Bits of PortInfo:CapabilityMask (IBA Vol 1, 14.2.5.6, Table 146 notes)."""

    IS_SM = 0x00000002
    IS_NOTICE_SUPPORTED = 0x00000004
    IS_TRAP_SUPPORTED = 0x00000008
    IS_OPTIONAL_IPD_SUPPORTED = 0x00000010
    IS_AUTOMATIC_MIGRATION_SUPPORTED = 0x00000020
    IS_SL_MAPPING_SUPPORTED = 0x00000040
    IS_M_KEY_NVRAM = 0x00000080
    IS_P_KEY_NVRAM = 0x00000100
    IS_LED_INFO_SUPPORTED = 0x00000200
    IS_SM_DISABLED = 0x00000400
    IS_SYSTEM_IMAGE_GUID_SUPPORTED = 0x00000800
    IS_P_KEY_SWITCH_EXTERNAL_PORT_TRAP_SUPPORTED = 0x00001000
    IS_EXTENDED_SPEEDS_SUPPORTED = 0x00004000
    IS_CAPABILITY_MASK2_SUPPORTED = 0x00008000
    IS_COMMUNICATION_MANAGEMENT_SUPPORTED = 0x00010000
    IS_SNMP_TUNNELING_SUPPORTED = 0x00020000
    IS_REINIT_SUPPORTED = 0x00040000
    IS_DEVICE_MANAGEMENT_SUPPORTED = 0x00080000
    IS_VENDOR_CLASS_SUPPORTED = 0x00100000
    IS_DR_NOTICE_SUPPORTED = 0x00200000
    IS_CAPABILITY_MASK_NOTICE_SUPPORTED = 0x00400000
    IS_BOOT_MANAGEMENT_SUPPORTED = 0x00800000
    IS_LINK_ROUND_TRIP_LATENCY_SUPPORTED = 0x01000000
    IS_CLIENT_REREGISTRATION_SUPPORTED = 0x02000000
    IS_OTHER_LOCAL_CHANGES_NOTICE_SUPPORTED = 0x04000000
    IS_LINK_SPEED_WIDTH_PAIRS_TABLE_SUPPORTED = 0x08000000
    IS_VENDOR_SPECIFIC_MADS_TABLE_SUPPORTED = 0x10000000
    IS_MULTICAST_PKEY_TRAP_SUPPRESSION_SUPPORTED = 0x20000000
    IS_MULTICAST_FDB_TOP_SUPPORTED = 0x40000000
    IS_HIERARCHY_INFO_SUPPORTED = 0x80000000


class SmpAttribute(Protocol):
    """What every attribute record here provides."""

    ATTRIBUTE_ID: ClassVar[int]
    SIZE: ClassVar[int]

    def pack(self) -> bytes: ...

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> Self: ...


# Known enumerated values, for decoding to the enum member (plain int otherwise).
_NODE_TYPES: dict[int, int] = {int(m): m for m in NodeType}
_PORT_STATES: dict[int, int] = {int(m): m for m in PortState}
_PHYS_STATES: dict[int, int] = {int(m): m for m in PhysPortState}
_MTUS: dict[int, int] = {int(m): m for m in Mtu}
_SM_STATES: dict[int, int] = {int(m): m for m in SmState}


def _need(data: bytes, offset: int, size: int, name: str) -> None:
    if offset < 0 or len(data) - offset < size:
        raise WireError(f"{name} needs {size} bytes at offset {offset}, got {len(data)} in all")


def _check_bits(name: str, value: int, bits: int) -> None:
    if not 0 <= value < (1 << bits):
        raise WireError(f"{name} {value} does not fit {bits} bits")


# --- NodeDescription -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeDescription:
    """NodeDescription (IBA Vol 1, 14.2.5.2): 64 bytes of UTF-8 text, NUL padded.

    The string is not NUL-terminated when it fills all 64 bytes; decoding strips the
    trailing NULs. A description may not itself end in NUL (it would not survive the
    round trip) and must encode to at most 64 bytes.
    """

    description: str = ""

    ATTRIBUTE_ID: ClassVar[int] = SmpAttr.NODE_DESCRIPTION
    SIZE: ClassVar[int] = NODE_DESCRIPTION_SIZE

    def pack(self) -> bytes:
        raw = self.description.encode("utf-8")
        if len(raw) > NODE_DESCRIPTION_SIZE:
            raise WireError(
                f"NodeDescription is {len(raw)} bytes of UTF-8, at most {NODE_DESCRIPTION_SIZE} fit"
            )
        if raw.endswith(b"\x00"):
            raise WireError("NodeDescription may not end in NUL")
        return raw.ljust(NODE_DESCRIPTION_SIZE, b"\x00")

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> NodeDescription:
        _need(data, offset, NODE_DESCRIPTION_SIZE, "NodeDescription")
        raw = bytes(data[offset : offset + NODE_DESCRIPTION_SIZE]).rstrip(b"\x00")
        try:
            return cls(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise WireError(f"NodeDescription is not UTF-8: {exc}") from None


# --- NodeInfo -------------------------------------------------------------------------

_NODE_INFO = struct.Struct(">BBBBQQQHHII")


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """NodeInfo (IBA Vol 1, 14.2.5.3), 40 bytes.

    byte 0 BaseVersion, 1 ClassVersion, 2 NodeType, 3 NumPorts, 4 SystemImageGUID,
    12 NodeGUID, 20 PortGUID (of the port the SMP arrived on; a switch answers with
    its port 0), 28 PartitionCap, 30 DeviceID, 32 Revision, 36 LocalPortNum (the port
    the SMP arrived on), 37 VendorID (24 bits).
    """

    node_type: int
    num_ports: int
    node_guid: int
    port_guid: int
    system_image_guid: int = 0
    partition_cap: int = 0
    device_id: int = 0
    revision: int = 0
    local_port_num: int = 0
    vendor_id: int = 0
    base_version: int = 1
    class_version: int = 1

    ATTRIBUTE_ID: ClassVar[int] = SmpAttr.NODE_INFO
    SIZE: ClassVar[int] = 40

    def pack(self) -> bytes:
        _check_bits("NodeInfo VendorID", self.vendor_id, 24)
        _check_bits("NodeInfo LocalPortNum", self.local_port_num, 8)
        try:
            return _NODE_INFO.pack(
                self.base_version,
                self.class_version,
                self.node_type,
                self.num_ports,
                self.system_image_guid,
                self.node_guid,
                self.port_guid,
                self.partition_cap,
                self.device_id,
                self.revision,
                (self.local_port_num << 24) | self.vendor_id,
            )
        except struct.error as exc:
            raise WireError(f"NodeInfo field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> NodeInfo:
        _need(data, offset, 40, "NodeInfo")
        (bv, cv, ntype, nports, sysguid, nguid, pguid, pcap, dev, rev, port_vendor) = (
            _NODE_INFO.unpack_from(data, offset)
        )
        return cls(
            _NODE_TYPES.get(ntype, ntype),
            nports,
            nguid,
            pguid,
            sysguid,
            pcap,
            dev,
            rev,
            port_vendor >> 24,
            port_vendor & 0xFFFFFF,
            bv,
            cv,
        )


# --- SwitchInfo -----------------------------------------------------------------------

_SWITCH_INFO = struct.Struct(">HHHHBBBBHHBxH")


@dataclass(frozen=True, slots=True)
class SwitchInfo:
    """SwitchInfo (IBA Vol 1, 14.2.5.4), 20 bytes.

    byte 0 LinearFDBCap, 2 RandomFDBCap, 4 MulticastFDBCap, 6 LinearFDBTop,
    8 DefaultPort, 9 DefaultMulticastPrimaryPort, 10 DefaultMulticastNotPrimaryPort,
    11 LifeTimeValue (bits 7..3) | PortStateChange (bit 2) |
    OptimizedSLtoVLMappingProgramming (bits 1..0), 12 LIDsPerPort,
    14 PartitionEnforcementCap, 16 InboundEnforcementCap (bit 7) |
    OutboundEnforcementCap (6) | FilterRawInboundCap (5) | FilterRawOutboundCap (4) |
    EnhancedPort0 (3), 17 reserved, 18 MulticastFDBTop.
    """

    linear_fdb_cap: int = 0
    random_fdb_cap: int = 0
    multicast_fdb_cap: int = 0
    linear_fdb_top: int = 0
    default_port: int = 0
    default_multicast_primary_port: int = 0
    default_multicast_not_primary_port: int = 0
    life_time_value: int = 0
    port_state_change: bool = False
    optimized_sl_to_vl_mapping_programming: int = 0
    lids_per_port: int = 0
    partition_enforcement_cap: int = 0
    inbound_enforcement_cap: bool = False
    outbound_enforcement_cap: bool = False
    filter_raw_inbound_cap: bool = False
    filter_raw_outbound_cap: bool = False
    enhanced_port0: bool = False
    multicast_fdb_top: int = 0

    ATTRIBUTE_ID: ClassVar[int] = SmpAttr.SWITCH_INFO
    SIZE: ClassVar[int] = 20

    def pack(self) -> bytes:
        _check_bits("SwitchInfo LifeTimeValue", self.life_time_value, 5)
        _check_bits(
            "SwitchInfo OptimizedSLtoVLMappingProgramming",
            self.optimized_sl_to_vl_mapping_programming,
            2,
        )
        life = (
            (self.life_time_value << 3)
            | (0x04 if self.port_state_change else 0)
            | self.optimized_sl_to_vl_mapping_programming
        )
        caps = (
            (0x80 if self.inbound_enforcement_cap else 0)
            | (0x40 if self.outbound_enforcement_cap else 0)
            | (0x20 if self.filter_raw_inbound_cap else 0)
            | (0x10 if self.filter_raw_outbound_cap else 0)
            | (0x08 if self.enhanced_port0 else 0)
        )
        try:
            return _SWITCH_INFO.pack(
                self.linear_fdb_cap,
                self.random_fdb_cap,
                self.multicast_fdb_cap,
                self.linear_fdb_top,
                self.default_port,
                self.default_multicast_primary_port,
                self.default_multicast_not_primary_port,
                life,
                self.lids_per_port,
                self.partition_enforcement_cap,
                caps,
                self.multicast_fdb_top,
            )
        except struct.error as exc:
            raise WireError(f"SwitchInfo field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> SwitchInfo:
        _need(data, offset, 20, "SwitchInfo")
        (lin_cap, rnd_cap, mc_cap, lin_top, dport, dmpp, dmnpp, life, lpp, pcap, caps, mc_top) = (
            _SWITCH_INFO.unpack_from(data, offset)
        )
        return cls(
            lin_cap,
            rnd_cap,
            mc_cap,
            lin_top,
            dport,
            dmpp,
            dmnpp,
            life >> 3,
            bool(life & 0x04),
            life & 0x03,
            lpp,
            pcap,
            bool(caps & 0x80),
            bool(caps & 0x40),
            bool(caps & 0x20),
            bool(caps & 0x10),
            bool(caps & 0x08),
            mc_top,
        )


# --- GUIDInfo -------------------------------------------------------------------------

_GUID_INFO = struct.Struct(">8Q")
_ZERO_GUIDS = (0,) * GUID_BLOCK_SIZE


@dataclass(frozen=True, slots=True)
class GUIDInfo:
    """GUIDInfo (IBA Vol 1, 14.2.5.5): one block of 8 port GUIDs, 64 bytes.

    The attribute modifier is the block number: `guids[i]` is GUID index
    8 * block + i. Index 0 is the port's own GUID (read-only); the others are alias
    GUIDs (the vGUIDs of SR-IOV virtual functions). 0 marks an unused entry.
    """

    guids: tuple[int, ...] = _ZERO_GUIDS

    ATTRIBUTE_ID: ClassVar[int] = SmpAttr.GUID_INFO
    SIZE: ClassVar[int] = 64

    def pack(self) -> bytes:
        if len(self.guids) != GUID_BLOCK_SIZE:
            raise WireError(f"GUIDInfo holds {GUID_BLOCK_SIZE} GUIDs, got {len(self.guids)}")
        try:
            return _GUID_INFO.pack(*self.guids)
        except struct.error as exc:
            raise WireError(f"GUIDInfo GUID out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> GUIDInfo:
        _need(data, offset, 64, "GUIDInfo")
        return cls(_GUID_INFO.unpack_from(data, offset))


# --- PortInfo -------------------------------------------------------------------------

_PORT_INFO = struct.Struct(">QQHHIHHBBBBBBBBBBBBBBBBHHHBBBBHIHBB")


@dataclass(frozen=True, slots=True)
class PortInfo:
    """PortInfo (IBA Vol 1, 14.2.5.6, Table 146), 64 bytes.

    The attribute modifier is the port number (switches; a CA answers for the port
    the SMP arrived on). Layout (byte: field, bits high to low):

        0  M_Key                     8  GIDPrefix
        16 LID                       18 MasterSMLID
        20 CapabilityMask            24 DiagCode
        26 M_KeyLeasePeriod (s)      28 LocalPortNum
        29 LinkWidthEnabled          30 LinkWidthSupported     31 LinkWidthActive
        32 LinkSpeedSupported 7..4 | PortState 3..0
        33 PortPhysicalState 7..4 | LinkDownDefaultState 3..0
        34 M_KeyProtectBits 7..6 | reserved 5..3 | LMC 2..0
        35 LinkSpeedActive 7..4 | LinkSpeedEnabled 3..0
        36 NeighborMTU 7..4 | MasterSMSL 3..0
        37 VLCap 7..4 | InitType 3..0
        38 VLHighLimit               39 VLArbitrationHighCap   40 VLArbitrationLowCap
        41 InitTypeReply 7..4 | MTUCap 3..0
        42 VLStallCount 7..5 | HOQLife 4..0
        43 OperationalVLs 7..4 | PartitionEnforcementInbound 3 |
           PartitionEnforcementOutbound 2 | FilterRawInbound 1 | FilterRawOutbound 0
        44 M_KeyViolations           46 P_KeyViolations        48 Q_KeyViolations
        50 GUIDCap
        51 ClientReregister 7 | MulticastPKeyTrapSuppressionEnabled 6..5 |
           SubnetTimeOut 4..0
        52 reserved 7..5 | RespTimeValue 4..0
        53 LocalPhyErrors 7..4 | OverrunErrors 3..0
        54 MaxCreditHint             56 reserved (8 bits) | LinkRoundTripLatency (24 bits)
        60 CapabilityMask2
        62 LinkSpeedExtActive 7..4 | LinkSpeedExtSupported 3..0
        63 reserved 7..5 | LinkSpeedExtEnabled 4..0

    `gid_prefix` is the 64-bit subnet prefix (an int, not a GID). `subnet_timeout`,
    `resp_time_value` and `hoq_life` are exponents: 4.096 us * 2**value.
    """

    m_key: int = 0
    gid_prefix: int = 0
    lid: int = 0
    master_sm_lid: int = 0
    capability_mask: int = 0
    diag_code: int = 0
    m_key_lease_period: int = 0
    local_port_num: int = 0
    link_width_enabled: int = 0
    link_width_supported: int = 0
    link_width_active: int = 0
    link_speed_supported: int = 0
    port_state: int = PortState.NO_CHANGE
    port_physical_state: int = PhysPortState.NO_CHANGE
    link_down_default_state: int = PhysPortState.NO_CHANGE
    m_key_protect_bits: int = 0
    lmc: int = 0
    link_speed_active: int = 0
    link_speed_enabled: int = 0
    neighbor_mtu: int = 0
    master_sm_sl: int = 0
    vl_cap: int = 0
    init_type: int = 0
    vl_high_limit: int = 0
    vl_arbitration_high_cap: int = 0
    vl_arbitration_low_cap: int = 0
    init_type_reply: int = 0
    mtu_cap: int = 0
    vl_stall_count: int = 0
    hoq_life: int = 0
    operational_vls: int = 0
    partition_enforcement_inbound: bool = False
    partition_enforcement_outbound: bool = False
    filter_raw_inbound: bool = False
    filter_raw_outbound: bool = False
    m_key_violations: int = 0
    p_key_violations: int = 0
    q_key_violations: int = 0
    guid_cap: int = 0
    client_reregister: bool = False
    multicast_pkey_trap_suppression_enabled: int = 0
    subnet_timeout: int = 0
    resp_time_value: int = 0
    local_phy_errors: int = 0
    overrun_errors: int = 0
    max_credit_hint: int = 0
    link_round_trip_latency: int = 0
    capability_mask2: int = 0
    link_speed_ext_active: int = 0
    link_speed_ext_supported: int = 0
    link_speed_ext_enabled: int = 0

    ATTRIBUTE_ID: ClassVar[int] = SmpAttr.PORT_INFO
    SIZE: ClassVar[int] = 64

    def _check(self) -> None:
        for name, value, bits in (
            ("LinkSpeedSupported", self.link_speed_supported, 4),
            ("PortState", self.port_state, 4),
            ("PortPhysicalState", self.port_physical_state, 4),
            ("LinkDownDefaultState", self.link_down_default_state, 4),
            ("M_KeyProtectBits", self.m_key_protect_bits, 2),
            ("LMC", self.lmc, 3),
            ("LinkSpeedActive", self.link_speed_active, 4),
            ("LinkSpeedEnabled", self.link_speed_enabled, 4),
            ("NeighborMTU", self.neighbor_mtu, 4),
            ("MasterSMSL", self.master_sm_sl, 4),
            ("VLCap", self.vl_cap, 4),
            ("InitType", self.init_type, 4),
            ("InitTypeReply", self.init_type_reply, 4),
            ("MTUCap", self.mtu_cap, 4),
            ("VLStallCount", self.vl_stall_count, 3),
            ("HOQLife", self.hoq_life, 5),
            ("OperationalVLs", self.operational_vls, 4),
            (
                "MulticastPKeyTrapSuppressionEnabled",
                self.multicast_pkey_trap_suppression_enabled,
                2,
            ),
            ("SubnetTimeOut", self.subnet_timeout, 5),
            ("RespTimeValue", self.resp_time_value, 5),
            ("LocalPhyErrors", self.local_phy_errors, 4),
            ("OverrunErrors", self.overrun_errors, 4),
            ("LinkRoundTripLatency", self.link_round_trip_latency, 24),
            ("LinkSpeedExtActive", self.link_speed_ext_active, 4),
            ("LinkSpeedExtSupported", self.link_speed_ext_supported, 4),
            ("LinkSpeedExtEnabled", self.link_speed_ext_enabled, 5),
        ):
            if not 0 <= value < (1 << bits):
                raise WireError(f"PortInfo {name} {value} does not fit {bits} bits")

    def pack(self) -> bytes:
        # The range test of all sub-byte fields at once is the common (fast) path;
        # _check() names the offending field.
        if (
            (
                self.link_speed_supported
                | self.port_state
                | self.port_physical_state
                | self.link_down_default_state
                | self.link_speed_active
                | self.link_speed_enabled
                | self.neighbor_mtu
                | self.master_sm_sl
                | self.vl_cap
                | self.init_type
                | self.init_type_reply
                | self.mtu_cap
                | self.operational_vls
                | self.local_phy_errors
                | self.overrun_errors
                | self.link_speed_ext_active
                | self.link_speed_ext_supported
            )
            & ~0xF
            or (self.m_key_protect_bits | self.multicast_pkey_trap_suppression_enabled) & ~0x3
            or (self.lmc | self.vl_stall_count) & ~0x7
            or (
                self.hoq_life
                | self.subnet_timeout
                | self.resp_time_value
                | self.link_speed_ext_enabled
            )
            & ~0x1F
            or self.link_round_trip_latency & ~0xFFFFFF
        ):
            self._check()
        try:
            return _PORT_INFO.pack(
                self.m_key,
                self.gid_prefix,
                self.lid,
                self.master_sm_lid,
                self.capability_mask,
                self.diag_code,
                self.m_key_lease_period,
                self.local_port_num,
                self.link_width_enabled,
                self.link_width_supported,
                self.link_width_active,
                (self.link_speed_supported << 4) | self.port_state,
                (self.port_physical_state << 4) | self.link_down_default_state,
                (self.m_key_protect_bits << 6) | self.lmc,
                (self.link_speed_active << 4) | self.link_speed_enabled,
                (self.neighbor_mtu << 4) | self.master_sm_sl,
                (self.vl_cap << 4) | self.init_type,
                self.vl_high_limit,
                self.vl_arbitration_high_cap,
                self.vl_arbitration_low_cap,
                (self.init_type_reply << 4) | self.mtu_cap,
                (self.vl_stall_count << 5) | self.hoq_life,
                (self.operational_vls << 4)
                | (0x08 if self.partition_enforcement_inbound else 0)
                | (0x04 if self.partition_enforcement_outbound else 0)
                | (0x02 if self.filter_raw_inbound else 0)
                | (0x01 if self.filter_raw_outbound else 0),
                self.m_key_violations,
                self.p_key_violations,
                self.q_key_violations,
                self.guid_cap,
                (0x80 if self.client_reregister else 0)
                | (self.multicast_pkey_trap_suppression_enabled << 5)
                | self.subnet_timeout,
                self.resp_time_value,
                (self.local_phy_errors << 4) | self.overrun_errors,
                self.max_credit_hint,
                self.link_round_trip_latency,
                self.capability_mask2,
                (self.link_speed_ext_active << 4) | self.link_speed_ext_supported,
                self.link_speed_ext_enabled,
            )
        except struct.error as exc:
            raise WireError(f"PortInfo field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> PortInfo:
        _need(data, offset, 64, "PortInfo")
        (
            m_key,
            gid_prefix,
            lid,
            master_sm_lid,
            cap_mask,
            diag_code,
            lease,
            local_port,
            lw_enabled,
            lw_supported,
            lw_active,
            b32,
            b33,
            b34,
            b35,
            b36,
            b37,
            vl_high_limit,
            vl_arb_high,
            vl_arb_low,
            b41,
            b42,
            b43,
            mkey_viol,
            pkey_viol,
            qkey_viol,
            guid_cap,
            b51,
            b52,
            b53,
            max_credit,
            rtl,
            cap_mask2,
            b62,
            b63,
        ) = _PORT_INFO.unpack_from(data, offset)
        state = b32 & 0x0F
        phys = b33 >> 4
        down_default = b33 & 0x0F
        neighbor_mtu = b36 >> 4
        mtu_cap = b41 & 0x0F
        return cls(
            m_key,
            gid_prefix,
            lid,
            master_sm_lid,
            cap_mask,
            diag_code,
            lease,
            local_port,
            lw_enabled,
            lw_supported,
            lw_active,
            b32 >> 4,
            _PORT_STATES.get(state, state),
            _PHYS_STATES.get(phys, phys),
            _PHYS_STATES.get(down_default, down_default),
            b34 >> 6,
            b34 & 0x07,
            b35 >> 4,
            b35 & 0x0F,
            _MTUS.get(neighbor_mtu, neighbor_mtu),
            b36 & 0x0F,
            b37 >> 4,
            b37 & 0x0F,
            vl_high_limit,
            vl_arb_high,
            vl_arb_low,
            b41 >> 4,
            _MTUS.get(mtu_cap, mtu_cap),
            b42 >> 5,
            b42 & 0x1F,
            b43 >> 4,
            bool(b43 & 0x08),
            bool(b43 & 0x04),
            bool(b43 & 0x02),
            bool(b43 & 0x01),
            mkey_viol,
            pkey_viol,
            qkey_viol,
            guid_cap,
            bool(b51 & 0x80),
            (b51 >> 5) & 0x03,
            b51 & 0x1F,
            b52 & 0x1F,
            b53 >> 4,
            b53 & 0x0F,
            max_credit,
            rtl & 0xFFFFFF,
            cap_mask2,
            b62 >> 4,
            b62 & 0x0F,
            b63 & 0x1F,
        )


# --- P_KeyTable -----------------------------------------------------------------------

_PKEY_TABLE = struct.Struct(">32H")
_ZERO_PKEYS = (0,) * PKEY_BLOCK_SIZE


@dataclass(frozen=True, slots=True)
class PKeyTable:
    """P_KeyTable (IBA Vol 1, 14.2.5.7): one block of 32 P_Keys, 64 bytes.

    Attribute modifier bits 15..0 are the block number (`pkeys[i]` is entry
    32 * block + i); on a switch bits 31..16 select the port. Bit 15 of a P_Key is the
    membership type (1 full, 0 limited); 0 marks an unused entry.
    """

    pkeys: tuple[int, ...] = _ZERO_PKEYS

    ATTRIBUTE_ID: ClassVar[int] = SmpAttr.P_KEY_TABLE
    SIZE: ClassVar[int] = 64

    def pack(self) -> bytes:
        if len(self.pkeys) != PKEY_BLOCK_SIZE:
            raise WireError(f"P_KeyTable holds {PKEY_BLOCK_SIZE} P_Keys, got {len(self.pkeys)}")
        try:
            return _PKEY_TABLE.pack(*self.pkeys)
        except struct.error as exc:
            raise WireError(f"P_KeyTable P_Key out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> PKeyTable:
        _need(data, offset, 64, "P_KeyTable")
        return cls(_PKEY_TABLE.unpack_from(data, offset))


# --- LinearForwardingTable ------------------------------------------------------------

_ZERO_PORTS = (0,) * LFT_BLOCK_SIZE


@dataclass(frozen=True, slots=True)
class LinearForwardingTable:
    """LinearForwardingTable (IBA Vol 1, 14.2.5.10): one block of 64 egress ports.

    The attribute modifier is the block number: `ports[i]` is the port for LID
    64 * block + i (see `lft_block_lids`). Port 0xFF means "no route" (drop).
    """

    ports: tuple[int, ...] = _ZERO_PORTS

    ATTRIBUTE_ID: ClassVar[int] = SmpAttr.LINEAR_FORWARDING_TABLE
    SIZE: ClassVar[int] = 64

    NO_ROUTE: ClassVar[int] = 0xFF

    def pack(self) -> bytes:
        if len(self.ports) != LFT_BLOCK_SIZE:
            raise WireError(
                f"LinearForwardingTable holds {LFT_BLOCK_SIZE} ports, got {len(self.ports)}"
            )
        try:
            return bytes(self.ports)
        except (ValueError, TypeError) as exc:
            raise WireError(f"LinearForwardingTable port out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> LinearForwardingTable:
        _need(data, offset, 64, "LinearForwardingTable")
        return cls(tuple(data[offset : offset + LFT_BLOCK_SIZE]))


def lft_block_lids(block: int) -> range:
    """The LIDs covered by LinearForwardingTable block `block`."""
    return range(block * LFT_BLOCK_SIZE, (block + 1) * LFT_BLOCK_SIZE)


# --- SMInfo ---------------------------------------------------------------------------

_SM_INFO = struct.Struct(">QQIB")


class SmInfoControl(IntEnum):
    """SMInfo Set attribute modifiers: the SM control packets (IBA Vol 1, 14.4.1,
    Table 168 "SM State Transition")."""

    HANDOVER = 0x1
    ACKNOWLEDGE = 0x2
    DISABLE = 0x3
    STANDBY = 0x4
    DISCOVER = 0x5


@dataclass(frozen=True, slots=True)
class SMInfo:
    """SMInfo (IBA Vol 1, 14.2.5.13), 21 bytes.

    byte 0 GUID (the SM's port GUID), 8 SM_Key, 16 ActCount, 20 Priority (bits 7..4) |
    SMState (bits 3..0).
    """

    guid: int = 0
    sm_key: int = 0
    act_count: int = 0
    priority: int = 0
    sm_state: int = SmState.NOT_ACTIVE

    ATTRIBUTE_ID: ClassVar[int] = SmpAttr.SM_INFO
    SIZE: ClassVar[int] = 21

    def pack(self) -> bytes:
        _check_bits("SMInfo Priority", self.priority, 4)
        _check_bits("SMInfo SMState", self.sm_state, 4)
        try:
            return _SM_INFO.pack(
                self.guid, self.sm_key, self.act_count, (self.priority << 4) | self.sm_state
            )
        except struct.error as exc:
            raise WireError(f"SMInfo field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> SMInfo:
        _need(data, offset, 21, "SMInfo")
        guid, sm_key, act_count, pri_state = _SM_INFO.unpack_from(data, offset)
        state = pri_state & 0x0F
        return cls(guid, sm_key, act_count, pri_state >> 4, _SM_STATES.get(state, state))


# --- MulticastForwardingTable ---------------------------------------------------------

MFT_BLOCK_SIZE = 32
"""MLIDs per MulticastForwardingTable block (IBA Vol 1, 14.2.5.11)."""
MFT_PORTS_PER_POSITION = 16
"""Ports per PortMask: position p covers ports 16p .. 16p + 15."""
MULTICAST_LID_BASE = 0xC000
"""The first multicast LID (IBA Vol 1, 4.1.3; OpenSM IB_LID_MCAST_START_HO)."""
_MFT = struct.Struct(">32H")
_ZERO_MASKS = (0,) * MFT_BLOCK_SIZE


@dataclass(frozen=True, slots=True)
class MulticastForwardingTable:
    """MulticastForwardingTable (IBA Vol 1, 14.2.5.11): one block of 32 PortMasks.

    The attribute modifier holds the block (bits 8..0: MLIDs 0xC000 + 32 * block ..
    + 31) and the position (bits 31..28: the mask covers ports 16 * position ..
    16 * position + 15, bit i of the 16-bit mask being port 16 * position + i).
    `port_masks[i]` is the mask of MLID 0xC000 + 32 * block + i.
    """

    port_masks: tuple[int, ...] = _ZERO_MASKS

    ATTRIBUTE_ID: ClassVar[int] = SmpAttr.MULTICAST_FORWARDING_TABLE
    SIZE: ClassVar[int] = 64

    def pack(self) -> bytes:
        if len(self.port_masks) != MFT_BLOCK_SIZE:
            raise WireError(
                f"MulticastForwardingTable holds {MFT_BLOCK_SIZE} PortMasks, "
                f"got {len(self.port_masks)}"
            )
        try:
            return _MFT.pack(*self.port_masks)
        except struct.error as exc:
            raise WireError(f"MulticastForwardingTable PortMask out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> MulticastForwardingTable:
        _need(data, offset, 64, "MulticastForwardingTable")
        return cls(_MFT.unpack_from(data, offset))


def mft_modifier(block: int, position: int) -> int:
    """The attribute modifier of MulticastForwardingTable block `block`, `position`."""
    if not 0 <= block <= 0x1FF or not 0 <= position <= 0xF:
        raise WireError(f"MFT block {block} / position {position} out of range")
    return (position << 28) | block


def mft_block_position(modifier: int) -> tuple[int, int]:
    """(block, position) of a MulticastForwardingTable attribute modifier."""
    return modifier & 0x1FF, (modifier >> 28) & 0xF


SMP_ATTRIBUTES: dict[int, type[SmpAttribute]] = {
    SmpAttr.NODE_DESCRIPTION: NodeDescription,
    SmpAttr.NODE_INFO: NodeInfo,
    SmpAttr.SWITCH_INFO: SwitchInfo,
    SmpAttr.GUID_INFO: GUIDInfo,
    SmpAttr.PORT_INFO: PortInfo,
    SmpAttr.P_KEY_TABLE: PKeyTable,
    SmpAttr.LINEAR_FORWARDING_TABLE: LinearForwardingTable,
    SmpAttr.MULTICAST_FORWARDING_TABLE: MulticastForwardingTable,
    SmpAttr.SM_INFO: SMInfo,
}


def unpack_attribute(attribute_id: int, data: bytes, offset: int = 0) -> SmpAttribute:
    """Decode the attribute `attribute_id` from `data` (an SMP data slot, usually)."""
    try:
        record_type = SMP_ATTRIBUTES[attribute_id]
    except KeyError:
        raise WireError(f"no codec for SMP attribute 0x{attribute_id:04x}") from None
    return record_type.unpack(data, offset)

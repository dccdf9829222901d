"""SMP attribute codecs: round trips, hand-built vectors (IBA Vol 1, 14.2.5), errors."""

from __future__ import annotations

import dataclasses
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ibmig.errors import WireError
from ibmig.wire.smp_attrs import (
    SMP_ATTRIBUTES,
    GUIDInfo,
    LinearForwardingTable,
    LinkSpeed,
    LinkWidth,
    Mtu,
    MulticastForwardingTable,
    NodeDescription,
    NodeInfo,
    NodeType,
    PhysPortState,
    PKeyTable,
    PortInfo,
    PortState,
    SMInfo,
    SmpAttr,
    SmpAttribute,
    SmState,
    SwitchInfo,
    lft_block_lids,
    mft_block_position,
    mft_modifier,
    unpack_attribute,
)
from tests.wire.strategies import bits

FAST = settings(deadline=None, max_examples=150)


# --- strategies ----------------------------------------------------------------------

node_descriptions = st.builds(
    NodeDescription,
    st.text(max_size=64)
    .filter(lambda s: len(s.encode("utf-8")) <= 64)
    .filter(lambda s: not s.endswith("\x00")),
)
node_infos = st.builds(
    NodeInfo,
    node_type=bits(8),
    num_ports=bits(8),
    node_guid=bits(64),
    port_guid=bits(64),
    system_image_guid=bits(64),
    partition_cap=bits(16),
    device_id=bits(16),
    revision=bits(32),
    local_port_num=bits(8),
    vendor_id=bits(24),
    base_version=bits(8),
    class_version=bits(8),
)
switch_infos = st.builds(
    SwitchInfo,
    linear_fdb_cap=bits(16),
    random_fdb_cap=bits(16),
    multicast_fdb_cap=bits(16),
    linear_fdb_top=bits(16),
    default_port=bits(8),
    default_multicast_primary_port=bits(8),
    default_multicast_not_primary_port=bits(8),
    life_time_value=bits(5),
    port_state_change=st.booleans(),
    optimized_sl_to_vl_mapping_programming=bits(2),
    lids_per_port=bits(16),
    partition_enforcement_cap=bits(16),
    inbound_enforcement_cap=st.booleans(),
    outbound_enforcement_cap=st.booleans(),
    filter_raw_inbound_cap=st.booleans(),
    filter_raw_outbound_cap=st.booleans(),
    enhanced_port0=st.booleans(),
    multicast_fdb_top=bits(16),
)
guid_infos = st.builds(GUIDInfo, st.tuples(*[bits(64)] * 8))
pkey_tables = st.builds(PKeyTable, st.tuples(*[bits(16)] * 32))
lfts = st.builds(LinearForwardingTable, st.tuples(*[bits(8)] * 64))
mfts = st.builds(MulticastForwardingTable, st.tuples(*[bits(16)] * 32))
sm_infos = st.builds(
    SMInfo,
    guid=bits(64),
    sm_key=bits(64),
    act_count=bits(32),
    priority=bits(4),
    sm_state=bits(4),
)

# Width in bits of every PortInfo field (1 = bool flag).
PORT_INFO_BITS: dict[str, int] = {
    "m_key": 64,
    "gid_prefix": 64,
    "lid": 16,
    "master_sm_lid": 16,
    "capability_mask": 32,
    "diag_code": 16,
    "m_key_lease_period": 16,
    "local_port_num": 8,
    "link_width_enabled": 8,
    "link_width_supported": 8,
    "link_width_active": 8,
    "link_speed_supported": 4,
    "port_state": 4,
    "port_physical_state": 4,
    "link_down_default_state": 4,
    "m_key_protect_bits": 2,
    "lmc": 3,
    "link_speed_active": 4,
    "link_speed_enabled": 4,
    "neighbor_mtu": 4,
    "master_sm_sl": 4,
    "vl_cap": 4,
    "init_type": 4,
    "vl_high_limit": 8,
    "vl_arbitration_high_cap": 8,
    "vl_arbitration_low_cap": 8,
    "init_type_reply": 4,
    "mtu_cap": 4,
    "vl_stall_count": 3,
    "hoq_life": 5,
    "operational_vls": 4,
    "partition_enforcement_inbound": 1,
    "partition_enforcement_outbound": 1,
    "filter_raw_inbound": 1,
    "filter_raw_outbound": 1,
    "m_key_violations": 16,
    "p_key_violations": 16,
    "q_key_violations": 16,
    "guid_cap": 8,
    "client_reregister": 1,
    "multicast_pkey_trap_suppression_enabled": 2,
    "subnet_timeout": 5,
    "resp_time_value": 5,
    "local_phy_errors": 4,
    "overrun_errors": 4,
    "max_credit_hint": 16,
    "link_round_trip_latency": 24,
    "capability_mask2": 16,
    "link_speed_ext_active": 4,
    "link_speed_ext_supported": 4,
    "link_speed_ext_enabled": 5,
}
port_infos = st.builds(
    PortInfo,
    **{
        name: (st.booleans() if width == 1 else bits(width))
        for name, width in PORT_INFO_BITS.items()
    },
)

RECORDS: list[tuple[type[Any], st.SearchStrategy[Any]]] = [
    (NodeDescription, node_descriptions),
    (NodeInfo, node_infos),
    (SwitchInfo, switch_infos),
    (GUIDInfo, guid_infos),
    (PortInfo, port_infos),
    (PKeyTable, pkey_tables),
    (LinearForwardingTable, lfts),
    (MulticastForwardingTable, mfts),
    (SMInfo, sm_infos),
]
IDS = [cls.__name__ for cls, _ in RECORDS]


def test_port_info_bits_cover_every_field() -> None:
    assert set(PORT_INFO_BITS) == {f.name for f in dataclasses.fields(PortInfo)}
    assert sum(PORT_INFO_BITS.values()) <= 64 * 8


# --- generic properties --------------------------------------------------------------


@pytest.mark.parametrize(("cls", "strategy"), RECORDS, ids=IDS)
def test_round_trip(cls: type[Any], strategy: st.SearchStrategy[Any]) -> None:
    @FAST
    @given(strategy)
    def check(record: Any) -> None:
        raw = record.pack()
        assert len(raw) == cls.SIZE
        assert cls.unpack(raw) == record
        # In a 64-byte SMP data slot, and embedded at an offset in a longer record.
        assert cls.unpack(raw.ljust(64, b"\xaa")) == record
        assert cls.unpack(b"\x55" * 7 + raw + b"\x55" * 9, 7) == record

    check()


@pytest.mark.parametrize(("cls", "strategy"), RECORDS, ids=IDS)
def test_arbitrary_bytes(cls: type[Any], strategy: st.SearchStrategy[Any]) -> None:
    @FAST
    @given(st.binary(max_size=80), st.integers(-2, 20))
    def check(data: bytes, offset: int) -> None:
        try:
            record = cls.unpack(data, offset)
        except WireError:
            return
        assert isinstance(record, cls)
        # Whatever decodes packs again (reserved bits come back as zero).
        assert len(record.pack()) == cls.SIZE

    check()


@pytest.mark.parametrize(("cls", "strategy"), RECORDS, ids=IDS)
def test_short_input_is_wire_error(cls: type[Any], strategy: st.SearchStrategy[Any]) -> None:
    with pytest.raises(WireError, match=str(cls.SIZE)):
        cls.unpack(bytes(cls.SIZE - 1))
    with pytest.raises(WireError):
        cls.unpack(bytes(cls.SIZE), 1)
    with pytest.raises(WireError):
        cls.unpack(bytes(cls.SIZE), -1)


def test_attribute_table() -> None:
    expected = {
        0x0010: (NodeDescription, 64),
        0x0011: (NodeInfo, 40),
        0x0012: (SwitchInfo, 20),
        0x0014: (GUIDInfo, 64),
        0x0015: (PortInfo, 64),
        0x0016: (PKeyTable, 64),
        0x0019: (LinearForwardingTable, 64),
        0x001B: (MulticastForwardingTable, 64),
        0x0020: (SMInfo, 21),
    }
    assert {k: (v, v.SIZE) for k, v in SMP_ATTRIBUTES.items()} == expected
    for attribute_id, record_type in SMP_ATTRIBUTES.items():
        assert attribute_id == record_type.ATTRIBUTE_ID
        assert record_type.SIZE <= 64
    assert SmpAttr.NOTICE.value == 0x0002
    assert SmpAttr.SL_TO_VL_MAPPING_TABLE.value == 0x0017
    assert SmpAttr.VL_ARBITRATION_TABLE.value == 0x0018
    assert SmpAttr.RANDOM_FORWARDING_TABLE.value == 0x001A
    assert SmpAttr.MULTICAST_FORWARDING_TABLE.value == 0x001B
    assert SmpAttr.VENDOR_DIAG.value == 0x0030
    assert SmpAttr.LED_INFO.value == 0x0031


def test_unpack_attribute() -> None:
    raw = SMInfo(guid=7, priority=3, sm_state=SmState.MASTER).pack().ljust(64, b"\0")
    record: SmpAttribute = unpack_attribute(SmpAttr.SM_INFO, raw)
    assert record == SMInfo(guid=7, priority=3, sm_state=SmState.MASTER)
    with pytest.raises(WireError, match="0x0002"):
        unpack_attribute(SmpAttr.NOTICE, raw)


def test_enum_values() -> None:
    assert [int(m) for m in NodeType] == [1, 2, 3]
    assert [int(m) for m in PortState] == [0, 1, 2, 3, 4]
    assert PhysPortState.LINK_UP.value == 5
    assert PhysPortState.POLLING.value == 2
    assert [int(m) for m in Mtu] == [1, 2, 3, 4, 5]
    assert [m.size_bytes for m in Mtu] == [256, 512, 1024, 2048, 4096]
    assert LinkWidth.WIDTH_4X.value == 2
    assert LinkWidth.WIDTH_12X.value == 8
    assert LinkSpeed.GBPS_10.value == 4


# --- NodeDescription -----------------------------------------------------------------


def test_node_description_vector() -> None:
    raw = b"sw-leaf-01 HCA-1" + bytes(48)
    record = NodeDescription.unpack(raw)
    assert record == NodeDescription("sw-leaf-01 HCA-1")
    assert record.pack() == raw


def test_node_description_full_and_utf8() -> None:
    full = "x" * 64
    assert NodeDescription(full).pack() == full.encode()
    assert NodeDescription.unpack(full.encode()).description == full
    text = "nœud-ø"
    assert NodeDescription.unpack(NodeDescription(text).pack()).description == text


def test_node_description_errors() -> None:
    with pytest.raises(WireError, match="at most 64"):
        NodeDescription("x" * 65).pack()
    with pytest.raises(WireError, match="at most 64"):
        NodeDescription("é" * 33).pack()
    with pytest.raises(WireError, match="NUL"):
        NodeDescription("abc\x00").pack()
    with pytest.raises(WireError, match="UTF-8"):
        NodeDescription.unpack(b"\xff\xfe" + bytes(62))


# --- NodeInfo ------------------------------------------------------------------------


def test_node_info_vector() -> None:
    # IBA Vol 1, 14.2.5.3, built byte by byte.
    raw = bytearray(40)
    raw[0] = 1  # BaseVersion
    raw[1] = 1  # ClassVersion
    raw[2] = 2  # NodeType: switch
    raw[3] = 36  # NumPorts
    raw[4:12] = (0x0002C90300001111).to_bytes(8, "big")  # SystemImageGUID
    raw[12:20] = (0x0002C90300002222).to_bytes(8, "big")  # NodeGUID
    raw[20:28] = (0x0002C90300003333).to_bytes(8, "big")  # PortGUID
    raw[28:30] = b"\x00\x08"  # PartitionCap
    raw[30:32] = b"\xc7\x38"  # DeviceID
    raw[32:36] = b"\x00\x00\x00\xa1"  # Revision
    raw[36] = 5  # LocalPortNum
    raw[37:40] = b"\x00\x02\xc9"  # VendorID
    record = NodeInfo(
        node_type=NodeType.SWITCH,
        num_ports=36,
        node_guid=0x0002C90300002222,
        port_guid=0x0002C90300003333,
        system_image_guid=0x0002C90300001111,
        partition_cap=8,
        device_id=0xC738,
        revision=0xA1,
        local_port_num=5,
        vendor_id=0x0002C9,
    )
    assert record.pack() == bytes(raw)
    decoded = NodeInfo.unpack(bytes(raw))
    assert decoded == record
    assert decoded.node_type is NodeType.SWITCH


def test_node_info_unknown_type_is_int() -> None:
    raw = bytearray(NodeInfo(node_type=1, num_ports=1, node_guid=1, port_guid=2).pack())
    raw[2] = 9
    decoded = NodeInfo.unpack(bytes(raw))
    assert decoded.node_type == 9
    assert type(decoded.node_type) is int


@pytest.mark.parametrize(
    "changes",
    [
        {"vendor_id": 1 << 24},
        {"local_port_num": 256},
        {"local_port_num": -1},
        {"num_ports": 256},
        {"node_guid": 1 << 64},
        {"port_guid": -1},
        {"revision": 1 << 32},
    ],
)
def test_node_info_out_of_range(changes: dict[str, Any]) -> None:
    base = NodeInfo(node_type=1, num_ports=1, node_guid=1, port_guid=2)
    with pytest.raises(WireError):
        dataclasses.replace(base, **changes).pack()


# --- SwitchInfo ----------------------------------------------------------------------


def test_switch_info_vector() -> None:
    raw = bytearray(20)
    raw[0:2] = (0xC000).to_bytes(2, "big")  # LinearFDBCap
    raw[2:4] = (0).to_bytes(2, "big")  # RandomFDBCap
    raw[4:6] = (0x1000).to_bytes(2, "big")  # MulticastFDBCap
    raw[6:8] = (0x0123).to_bytes(2, "big")  # LinearFDBTop
    raw[8] = 0  # DefaultPort
    raw[9] = 0xFF  # DefaultMulticastPrimaryPort
    raw[10] = 0xFF  # DefaultMulticastNotPrimaryPort
    raw[11] = (18 << 3) | 0x04 | 0x01  # LifeTimeValue 18, PortStateChange, OptSL2VL 1
    raw[12:14] = (0).to_bytes(2, "big")  # LIDsPerPort
    raw[14:16] = (8).to_bytes(2, "big")  # PartitionEnforcementCap
    raw[16] = 0x80 | 0x40 | 0x08  # Inbound, Outbound enforcement, EnhancedPort0
    raw[18:20] = (0xC010).to_bytes(2, "big")  # MulticastFDBTop
    record = SwitchInfo(
        linear_fdb_cap=0xC000,
        multicast_fdb_cap=0x1000,
        linear_fdb_top=0x123,
        default_multicast_primary_port=0xFF,
        default_multicast_not_primary_port=0xFF,
        life_time_value=18,
        port_state_change=True,
        optimized_sl_to_vl_mapping_programming=1,
        partition_enforcement_cap=8,
        inbound_enforcement_cap=True,
        outbound_enforcement_cap=True,
        enhanced_port0=True,
        multicast_fdb_top=0xC010,
    )
    assert record.pack() == bytes(raw)
    assert SwitchInfo.unpack(bytes(raw)) == record
    raw[16] |= 0x07  # reserved bits are ignored
    raw[17] = 0xFF
    assert SwitchInfo.unpack(bytes(raw)) == record


@pytest.mark.parametrize(
    "changes",
    [
        {"life_time_value": 32},
        {"life_time_value": -1},
        {"optimized_sl_to_vl_mapping_programming": 4},
        {"linear_fdb_top": 1 << 16},
        {"default_port": 256},
    ],
)
def test_switch_info_out_of_range(changes: dict[str, Any]) -> None:
    with pytest.raises(WireError):
        dataclasses.replace(SwitchInfo(), **changes).pack()


# --- GUIDInfo, P_KeyTable, LFT -------------------------------------------------------


def test_guid_info_vector() -> None:
    guids = tuple(0x0002C90300000000 + i for i in range(8))
    raw = b"".join(g.to_bytes(8, "big") for g in guids)
    assert GUIDInfo(guids).pack() == raw
    assert GUIDInfo.unpack(raw) == GUIDInfo(guids)
    assert GUIDInfo().guids == (0,) * 8


def test_pkey_table_vector() -> None:
    pkeys = (0xFFFF, 0x8001, 0x7FFF) + (0,) * 29
    raw = b"\xff\xff\x80\x01\x7f\xff" + bytes(58)
    assert PKeyTable(pkeys).pack() == raw
    assert PKeyTable.unpack(raw) == PKeyTable(pkeys)


def test_lft_vector() -> None:
    ports = tuple(range(64))
    raw = bytes(range(64))
    assert LinearForwardingTable(ports).pack() == raw
    assert LinearForwardingTable.unpack(raw) == LinearForwardingTable(ports)
    assert lft_block_lids(3) == range(192, 256)
    assert LinearForwardingTable.NO_ROUTE == 0xFF


@pytest.mark.parametrize(
    "record",
    [
        GUIDInfo((0,) * 7),
        GUIDInfo((0,) * 9),
        GUIDInfo((1 << 64,) + (0,) * 7),
        GUIDInfo((-1,) + (0,) * 7),
        PKeyTable((0,) * 31),
        PKeyTable((0x10000,) + (0,) * 31),
        LinearForwardingTable((0,) * 63),
        LinearForwardingTable((256,) + (0,) * 63),
        LinearForwardingTable((-1,) + (0,) * 63),
    ],
)
def test_table_out_of_range(record: Any) -> None:
    with pytest.raises(WireError):
        record.pack()


# --- PortInfo ------------------------------------------------------------------------


def test_port_info_vector() -> None:
    # IBA Vol 1, 14.2.5.6 Table 146, built from the spec's bit offsets.
    raw = bytearray(64)
    raw[0:8] = (0x1122334455667788).to_bytes(8, "big")  # M_Key
    raw[8:16] = (0xFE80000000000000).to_bytes(8, "big")  # GIDPrefix
    raw[16:18] = (0x0012).to_bytes(2, "big")  # LID
    raw[18:20] = (0x0001).to_bytes(2, "big")  # MasterSMLID
    raw[20:24] = (0x0251084A).to_bytes(4, "big")  # CapabilityMask
    raw[24:26] = (0x0000).to_bytes(2, "big")  # DiagCode
    raw[26:28] = (0x000F).to_bytes(2, "big")  # M_KeyLeasePeriod
    raw[28] = 3  # LocalPortNum
    raw[29] = 0x03  # LinkWidthEnabled (1X | 4X)
    raw[30] = 0x03  # LinkWidthSupported
    raw[31] = 0x02  # LinkWidthActive 4X
    raw[32] = (0x7 << 4) | 4  # LinkSpeedSupported 2.5|5|10, PortState Active
    raw[33] = (5 << 4) | 2  # PortPhysicalState LinkUp, LinkDownDefaultState Polling
    raw[34] = (2 << 6) | 0b111000 | 3  # M_KeyProtectBits 2, reserved bits set, LMC 3
    raw[35] = (4 << 4) | 7  # LinkSpeedActive 10, LinkSpeedEnabled 7
    raw[36] = (5 << 4) | 0xA  # NeighborMTU 4096, MasterSMSL 10
    raw[37] = (4 << 4) | 0x1  # VLCap VL0-7, InitType 1
    raw[38] = 0x10  # VLHighLimit
    raw[39] = 8  # VLArbitrationHighCap
    raw[40] = 9  # VLArbitrationLowCap
    raw[41] = (0x2 << 4) | 4  # InitTypeReply 2, MTUCap 2048
    raw[42] = (7 << 5) | 19  # VLStallCount 7, HOQLife 19
    raw[43] = (4 << 4) | 0x8 | 0x1  # OperationalVLs 4, PE inbound, FilterRaw outbound
    raw[44:46] = (1).to_bytes(2, "big")  # M_KeyViolations
    raw[46:48] = (2).to_bytes(2, "big")  # P_KeyViolations
    raw[48:50] = (3).to_bytes(2, "big")  # Q_KeyViolations
    raw[50] = 32  # GUIDCap
    raw[51] = 0x80 | (2 << 5) | 18  # ClientReregister, McastPKeyTrapSuppr 2, SubnetTimeOut 18
    raw[52] = 0xE0 | 17  # reserved bits set, RespTimeValue 17
    raw[53] = (0xC << 4) | 0x3  # LocalPhyErrors 12, OverrunErrors 3
    raw[54:56] = (0x0400).to_bytes(2, "big")  # MaxCreditHint
    raw[56] = 0xAA  # reserved
    raw[57:60] = (0x123456).to_bytes(3, "big")  # LinkRoundTripLatency
    raw[60:62] = (0x0004).to_bytes(2, "big")  # CapabilityMask2
    raw[62] = (2 << 4) | 0x3  # LinkSpeedExtActive 25, LinkSpeedExtSupported 14|25
    raw[63] = 0xE0 | 0x1E  # reserved bits set, LinkSpeedExtEnabled 30
    record = PortInfo(
        m_key=0x1122334455667788,
        gid_prefix=0xFE80000000000000,
        lid=0x12,
        master_sm_lid=1,
        capability_mask=0x0251084A,
        diag_code=0,
        m_key_lease_period=15,
        local_port_num=3,
        link_width_enabled=0x03,
        link_width_supported=0x03,
        link_width_active=LinkWidth.WIDTH_4X,
        link_speed_supported=0x7,
        port_state=PortState.ACTIVE,
        port_physical_state=PhysPortState.LINK_UP,
        link_down_default_state=PhysPortState.POLLING,
        m_key_protect_bits=2,
        lmc=3,
        link_speed_active=LinkSpeed.GBPS_10,
        link_speed_enabled=7,
        neighbor_mtu=Mtu.MTU_4096,
        master_sm_sl=10,
        vl_cap=4,
        init_type=1,
        vl_high_limit=0x10,
        vl_arbitration_high_cap=8,
        vl_arbitration_low_cap=9,
        init_type_reply=2,
        mtu_cap=Mtu.MTU_2048,
        vl_stall_count=7,
        hoq_life=19,
        operational_vls=4,
        partition_enforcement_inbound=True,
        partition_enforcement_outbound=False,
        filter_raw_inbound=False,
        filter_raw_outbound=True,
        m_key_violations=1,
        p_key_violations=2,
        q_key_violations=3,
        guid_cap=32,
        client_reregister=True,
        multicast_pkey_trap_suppression_enabled=2,
        subnet_timeout=18,
        resp_time_value=17,
        local_phy_errors=12,
        overrun_errors=3,
        max_credit_hint=0x400,
        link_round_trip_latency=0x123456,
        capability_mask2=4,
        link_speed_ext_active=2,
        link_speed_ext_supported=3,
        link_speed_ext_enabled=30,
    )
    decoded = PortInfo.unpack(bytes(raw))
    assert decoded == record
    assert decoded.port_state is PortState.ACTIVE
    assert decoded.port_physical_state is PhysPortState.LINK_UP
    assert decoded.neighbor_mtu is Mtu.MTU_4096
    # Packing writes zeros where the vector had reserved bits set.
    clean = bytearray(raw)
    clean[34] &= 0xC7
    clean[52] &= 0x1F
    clean[56] = 0
    clean[63] &= 0x1F
    assert record.pack() == bytes(clean)


def test_port_info_lid_offset() -> None:
    raw = PortInfo(lid=0xBEEF, master_sm_lid=0x0102).pack()
    assert raw[16:20] == b"\xbe\xef\x01\x02"


@pytest.mark.parametrize(("name", "width"), [(n, w) for n, w in PORT_INFO_BITS.items() if w > 1])
def test_port_info_out_of_range(name: str, width: int) -> None:
    with pytest.raises(WireError):
        dataclasses.replace(PortInfo(), **_one(name, 1 << width)).pack()
    with pytest.raises(WireError):
        dataclasses.replace(PortInfo(), **_one(name, -1)).pack()
    # The largest value fits.
    PortInfo.unpack(dataclasses.replace(PortInfo(), **_one(name, (1 << width) - 1)).pack())


def _one(name: str, value: int) -> dict[str, Any]:
    return {name: value}


def test_port_info_sub_byte_error_names_field() -> None:
    with pytest.raises(WireError, match="LMC 8 does not fit 3 bits"):
        PortInfo(lmc=8).pack()


def test_port_info_unknown_state_is_int() -> None:
    raw = bytearray(64)
    raw[32] = 0x0C
    decoded = PortInfo.unpack(bytes(raw))
    assert decoded.port_state == 12
    assert type(decoded.port_state) is int


# --- SMInfo --------------------------------------------------------------------------


def test_sm_info_vector() -> None:
    raw = struct.pack(">QQI", 0x0002C90300ABCDEF, 0x1234, 77) + bytes([(14 << 4) | 3])
    assert len(raw) == 21
    record = SMInfo(guid=0x0002C90300ABCDEF, sm_key=0x1234, act_count=77, priority=14, sm_state=3)
    assert record.pack() == raw
    decoded = SMInfo.unpack(raw)
    assert decoded == record
    assert decoded.sm_state is SmState.MASTER


@pytest.mark.parametrize(
    "changes", [{"priority": 16}, {"sm_state": 16}, {"act_count": 1 << 32}, {"guid": -1}]
)
def test_sm_info_out_of_range(changes: dict[str, Any]) -> None:
    with pytest.raises(WireError):
        dataclasses.replace(SMInfo(), **changes).pack()


def test_multicast_forwarding_table_bytes_and_modifier() -> None:
    """Each PortMask big-endian, bit i = port 16 * position + i; the modifier holds
    the position in bits 31..28 and the block in bits 8..0 (IBA Vol 1, 14.2.5.11)."""
    mft = MulticastForwardingTable((0x8001,) + (0,) * 30 + (0x0002,))
    raw = mft.pack()
    assert raw[:2] == bytes.fromhex("8001") and raw[62:] == bytes.fromhex("0002")
    assert MulticastForwardingTable.unpack(raw) == mft
    assert mft_modifier(3, 2) == 0x2000_0003
    assert mft_block_position(0x2000_0003) == (3, 2)
    with pytest.raises(WireError):
        mft_modifier(512, 0)
    with pytest.raises(WireError):
        MulticastForwardingTable((0x10000,) + (0,) * 31).pack()
    with pytest.raises(WireError):
        MulticastForwardingTable((0,) * 31).pack()

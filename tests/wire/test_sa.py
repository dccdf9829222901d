"""Tests for ibmig.wire.sa: the SA MAD, its records and their table layout."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ibmig.errors import WireError
from ibmig.wire.fastrecord import fast_constructor as _fast_constructor
from ibmig.wire.mad import (
    MadHeader,
    Method,
    MgmtClass,
    RmppFlags,
    RmppHeader,
    RmppType,
    peek_tid,
    with_tid,
)
from ibmig.wire.notice import GidDetails, Notice
from ibmig.wire.sa import (
    SA_DATA_SIZE,
    SA_RECORDS,
    ClassPortInfo,
    GUIDInfoRecord,
    GUIDInfoRecordComp,
    InformInfo,
    InformInfoRecord,
    LFTRecord,
    LinkRecord,
    MCMemberRecord,
    MCMemberRecordComp,
    MFTRecord,
    MultiPathRecord,
    NodeRecord,
    NodeRecordComp,
    PathRecord,
    PathRecordComp,
    PKeyTableRecord,
    PortInfoRecord,
    SaAttr,
    SaMad,
    SaRecord,
    SaStatus,
    ServiceRecord,
    SLtoVLMappingTableRecord,
    SMInfoRecord,
    SwitchInfoRecord,
    VLArbitrationTableRecord,
    decode_records,
    record_class,
    report_response,
)
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
from tests.wire.strategies import bits, gids, u8, u16, u32, u64

GID_A = bytes.fromhex("fe800000000000000002c90300001234")
GID_B = bytes.fromhex("fe80000000000000000000000000abcd")


path_records = st.builds(
    PathRecord,
    service_id=u64,
    dgid=gids,
    sgid=gids,
    dlid=u16,
    slid=u16,
    raw_traffic=st.booleans(),
    flow_label=bits(20),
    hop_limit=u8,
    tclass=u8,
    reversible=st.booleans(),
    numb_path=bits(7),
    pkey=u16,
    qos_class=bits(12),
    sl=bits(4),
    mtu_selector=bits(2),
    mtu=bits(6),
    rate_selector=bits(2),
    rate=bits(6),
    packet_life_time_selector=bits(2),
    packet_life_time=bits(6),
    preference=u8,
)
inform_infos = st.builds(
    InformInfo,
    gid=gids,
    lid_range_begin=u16,
    lid_range_end=u16,
    is_generic=u8,
    subscribe=u8,
    type=u16,
    trap_number=u16,
    qpn=bits(24),
    resp_time_value=bits(5),
    producer_type=bits(24),
)
inform_info_records = st.builds(InformInfoRecord, gids, u16, inform_infos)
class_port_infos = st.builds(
    ClassPortInfo,
    base_version=u8,
    class_version=u8,
    capability_mask=u16,
    capability_mask2=bits(27),
    resp_time_value=bits(5),
    redirect_gid=gids,
    redirect_tc=u8,
    redirect_sl=bits(4),
    redirect_flow_label=bits(20),
    redirect_lid=u16,
    redirect_pkey=u16,
    redirect_qp=bits(24),
    redirect_qkey=u32,
    trap_gid=gids,
    trap_tc=u8,
    trap_sl=bits(4),
    trap_flow_label=bits(20),
    trap_lid=u16,
    trap_pkey=u16,
    trap_hop_limit=u8,
    trap_qp=bits(24),
    trap_qkey=u32,
)
# Valid embedded SMP attributes: whatever smp_attrs decodes from bytes.
node_infos = st.binary(min_size=40, max_size=40).map(NodeInfo.unpack)
port_infos = st.binary(min_size=64, max_size=64).map(PortInfo.unpack)
node_descriptions = st.builds(
    NodeDescription,
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789 -_.", max_size=64),
)
guid_infos = st.builds(GUIDInfo, st.tuples(*[u64] * 8))
node_records = st.builds(NodeRecord, u16, node_infos, node_descriptions)
port_info_records = st.builds(PortInfoRecord, u16, u8, port_infos, u8)
guid_info_records = st.builds(GUIDInfoRecord, u16, u8, guid_infos)
notices = st.builds(
    Notice,
    trap_number=st.just(64),
    issuer_lid=u16,
    notice_count=bits(15),
    details=st.builds(GidDetails, gids),
    issuer_gid=gids,
)

link_records = st.builds(LinkRecord, u16, u8, u8, u16)
switch_info_records = st.builds(
    SwitchInfoRecord, u16, st.binary(min_size=20, max_size=20).map(SwitchInfo.unpack)
)
sm_info_records = st.builds(
    SMInfoRecord, u16, st.binary(min_size=21, max_size=21).map(SMInfo.unpack)
)
pkey_table_records = st.builds(
    PKeyTableRecord, u16, u16, u8, st.builds(PKeyTable, st.tuples(*[u16] * 32))
)
sl_to_vl_records = st.builds(SLtoVLMappingTableRecord, u16, u8, u8, st.tuples(*[bits(4)] * 16))
vl_arbitration_records = st.builds(
    VLArbitrationTableRecord, u16, u8, u8, st.tuples(*[st.tuples(bits(4), u8)] * 32)
)
lft_records = st.builds(
    LFTRecord, u16, u16, st.builds(LinearForwardingTable, st.tuples(*[u8] * 64))
)
service_records = st.builds(
    ServiceRecord,
    u64,
    gids,
    u16,
    u32,
    st.binary(min_size=16, max_size=16),
    st.binary(min_size=64, max_size=64),
    st.binary(min_size=16, max_size=16),
    st.tuples(*[u16] * 8),
    st.tuples(*[u32] * 4),
    st.tuples(*[u64] * 2),
)

mft_records = st.builds(
    MFTRecord, u16, bits(4), bits(9), st.builds(MulticastForwardingTable, st.tuples(*[u16] * 32))
)
mc_member_records = st.builds(
    MCMemberRecord,
    gids,
    gids,
    u32,
    u16,
    bits(2),
    bits(6),
    u8,
    u16,
    bits(2),
    bits(6),
    bits(2),
    bits(6),
    bits(4),
    bits(20),
    u8,
    bits(4),
    bits(4),
    st.booleans(),
)

multi_path_records = st.builds(
    MultiPathRecord,
    sgids=st.lists(gids, max_size=5).map(tuple),
    dgids=st.lists(gids, max_size=6).map(tuple),
    raw_traffic=st.booleans(),
    flow_label=bits(20),
    hop_limit=u8,
    tclass=u8,
    reversible=st.booleans(),
    numb_path=bits(7),
    pkey=u16,
    qos_class=bits(12),
    sl=bits(4),
    mtu_selector=bits(2),
    mtu=bits(6),
    rate_selector=bits(2),
    rate=bits(6),
    packet_life_time_selector=bits(2),
    packet_life_time=bits(6),
    service_id=u64,
    independence_selector=bits(2),
)

RECORD_STRATEGIES: dict[type[SaRecord], st.SearchStrategy[SaRecord]] = {
    MultiPathRecord: multi_path_records,
    MFTRecord: mft_records,
    MCMemberRecord: mc_member_records,
    LinkRecord: link_records,
    SwitchInfoRecord: switch_info_records,
    SMInfoRecord: sm_info_records,
    PKeyTableRecord: pkey_table_records,
    SLtoVLMappingTableRecord: sl_to_vl_records,
    VLArbitrationTableRecord: vl_arbitration_records,
    LFTRecord: lft_records,
    ServiceRecord: service_records,
    PathRecord: path_records,
    InformInfo: inform_infos,
    InformInfoRecord: inform_info_records,
    ClassPortInfo: class_port_infos,
    NodeRecord: node_records,
    PortInfoRecord: port_info_records,
    GUIDInfoRecord: guid_info_records,
    Notice: notices,
}
RECORD_CLASSES = list(RECORD_STRATEGIES)


# ---------------------------------------------------------------- records: round trips


@pytest.mark.parametrize("klass", RECORD_CLASSES)
@given(data=st.data())
def test_record_round_trip(klass: type[SaRecord], data: st.DataObject) -> None:
    record = data.draw(RECORD_STRATEGIES[klass])
    raw = record.pack()
    assert len(raw) == klass.SIZE
    assert klass.unpack(raw) == record


@pytest.mark.parametrize("klass", RECORD_CLASSES)
@given(data=st.data(), before=st.binary(max_size=16), after=st.binary(max_size=16))
def test_record_unpack_at_offset(
    klass: type[SaRecord], data: st.DataObject, before: bytes, after: bytes
) -> None:
    record = data.draw(RECORD_STRATEGIES[klass])
    assert klass.unpack(before + record.pack() + after, len(before)) == record


@pytest.mark.parametrize("klass", RECORD_CLASSES)
@given(data=st.binary(max_size=130), offset=st.integers(-1, 20))
def test_arbitrary_bytes_give_record_or_wire_error(
    klass: type[SaRecord], data: bytes, offset: int
) -> None:
    try:
        record = klass.unpack(data, offset)
    except WireError:
        return
    assert klass.unpack(record.pack()) == record


def test_record_sizes_and_offsets_match_opensm() -> None:
    # sizeof() of ib_path_rec_t, ib_node_record_t, ib_portinfo_record_t,
    # ib_guidinfo_record_t, ib_inform_info_t, ib_inform_info_record_t,
    # ib_class_port_info_t, ib_mad_notice_attr_t in OpenSM's ib_types.h.
    sizes: dict[type[SaRecord], int] = {
        PathRecord: 64,
        NodeRecord: 112,
        PortInfoRecord: 72,
        GUIDInfoRecord: 72,
        InformInfo: 36,
        InformInfoRecord: 64,
        ClassPortInfo: 72,
        Notice: 80,
        # ib_link_record_t, ib_switch_info_record_t, ib_sminfo_record_t,
        # ib_pkey_table_record_t, ib_slvl_table_record_t, ib_vl_arb_table_record_t,
        # ib_lft_record_t, ib_service_record_t
        LinkRecord: 8,
        SwitchInfoRecord: 24,
        SMInfoRecord: 32,
        PKeyTableRecord: 72,
        SLtoVLMappingTableRecord: 16,
        VLArbitrationTableRecord: 72,
        LFTRecord: 72,
        ServiceRecord: 176,
        MultiPathRecord: 200,  # ib_multipath_rec_t with its 11 GIDs
        MFTRecord: 72,  # ib_mft_record_t
        MCMemberRecord: 56,  # ib_member_rec_t (52 + pad[4])
    }
    for klass, size in sizes.items():
        assert size == klass.SIZE
        assert -(-size // 8) == klass.ATTRIBUTE_OFFSET
        assert SA_RECORDS[klass.ATTRIBUTE_ID] is klass
        assert record_class(klass.ATTRIBUTE_ID) is klass


def test_attribute_ids() -> None:
    assert SA_RECORDS.keys() == {
        0x01,
        0x02,
        0x03,
        0x11,
        0x12,
        0x13,
        0x14,
        0x15,
        0x17,
        0x18,
        0x20,
        0x30,
        0x31,
        0x33,
        0x35,
        0x36,
        0x38,
        0x3A,
        0xF3,
    }
    assert int(SaAttr.INFORM_INFO_RECORD) == 0xF3
    assert int(SaAttr.GUID_INFO_RECORD) == 0x30
    assert int(SaAttr.MC_MEMBER_RECORD) == 0x38
    with pytest.raises(WireError):
        record_class(0x39)  # no codec for TraceRecord


def test_status_codes() -> None:
    assert [int(s) for s in SaStatus] == [n << 8 for n in range(1, 9)]
    assert SaStatus(0x0300).name == "ERR_NO_RECORDS"
    assert SaStatus(0x0600).name == "ERR_REQ_INSUFFICIENT_COMPONENTS"


def test_component_mask_bits() -> None:
    assert int(PathRecordComp.DGID) == 0x4
    assert int(PathRecordComp.SGID) == 0x8
    assert int(PathRecordComp.DLID) == 0x10
    assert int(PathRecordComp.PKEY) == 1 << 13
    assert int(PathRecordComp.PREFERENCE) == 1 << 22
    assert int(PathRecordComp.SERVICE_ID) == 0x3
    assert int(NodeRecordComp.NODE_DESCRIPTION) == 1 << 14
    assert int(GUIDInfoRecordComp.GUID7) == 1 << 11


# ---------------------------------------------------------------- records: hand-built vectors

PATH_RECORD_BYTES = bytes.fromhex(
    "1122334455667788"  # ServiceID
    "fe800000000000000002c90300001234"  # DGID
    "fe80000000000000000000000000abcd"  # SGID
    "0012"  # DLID
    "0034"  # SLID
    "8abcde40"  # RawTraffic 1, reserved 0, FlowLabel 0xabcde, HopLimit 0x40
    "5a"  # TClass
    "91"  # Reversible 1, NumbPath 0x11
    "ffff"  # P_Key
    "1235"  # QoSClass 0x123, SL 5
    "84"  # MTUSelector 2, MTU 4 (2048)
    "6b"  # RateSelector 1, Rate 0x2b
    "d3"  # PacketLifeTimeSelector 3, PacketLifeTime 0x13
    "07"  # Preference
    "000000000000"  # reserved
)
PATH_RECORD = PathRecord(
    service_id=0x1122334455667788,
    dgid=GID_A,
    sgid=GID_B,
    dlid=0x12,
    slid=0x34,
    raw_traffic=True,
    flow_label=0xABCDE,
    hop_limit=0x40,
    tclass=0x5A,
    reversible=True,
    numb_path=0x11,
    pkey=0xFFFF,
    qos_class=0x123,
    sl=5,
    mtu_selector=2,
    mtu=4,
    rate_selector=1,
    rate=0x2B,
    packet_life_time_selector=3,
    packet_life_time=0x13,
    preference=7,
)

INFORM_INFO_BYTES = bytes.fromhex(
    "fe800000000000000002c90300001234"  # GID
    "ffff"  # LIDRangeBegin
    "0010"  # LIDRangeEnd
    "0000"  # reserved
    "01"  # IsGeneric
    "01"  # Subscribe
    "0003"  # Type
    "0045"  # TrapNumber
    "abcdef13"  # QPN 0xabcdef, reserved 3 bits, RespTimeValue 0x13
    "00000004"  # reserved, ProducerType 4
)
INFORM_INFO = InformInfo(
    gid=GID_A,
    lid_range_begin=0xFFFF,
    lid_range_end=0x10,
    is_generic=1,
    subscribe=1,
    type=3,
    trap_number=69,
    qpn=0xABCDEF,
    resp_time_value=0x13,
    producer_type=4,
)
INFORM_INFO_RECORD_BYTES = (
    bytes.fromhex(
        "fe80000000000000000000000000abcd"  # SubscriberGID
        "0003"  # Enum
        "000000000000"  # reserved
    )
    + INFORM_INFO_BYTES
    + bytes(4)  # padding
)
INFORM_INFO_RECORD = InformInfoRecord(GID_B, 3, INFORM_INFO)

CLASS_PORT_INFO_BYTES = bytes.fromhex(
    "01"  # BaseVersion
    "02"  # ClassVersion
    "2602"  # CapabilityMask
    "00024692"  # CapabilityMask2 0x1234, RespTimeValue 0x12
    "fe800000000000000002c90300001234"  # RedirectGID
    "11312345"  # RedirectTC 0x11, RedirectSL 3, RedirectFL 0x12345
    "0055"  # RedirectLID
    "ffff"  # RedirectP_Key
    "00010203"  # reserved, RedirectQP
    "80010000"  # RedirectQ_Key
    "fe80000000000000000000000000abcd"  # TrapGID
    "22454321"  # TrapTC 0x22, TrapSL 4, TrapFL 0x54321
    "0066"  # TrapLID
    "7fff"  # TrapP_Key
    "40000001"  # TrapHL 0x40, TrapQP 1
    "80010000"  # TrapQ_Key
)
CLASS_PORT_INFO = ClassPortInfo(
    base_version=1,
    class_version=2,
    capability_mask=0x2602,
    capability_mask2=0x1234,
    resp_time_value=0x12,
    redirect_gid=GID_A,
    redirect_tc=0x11,
    redirect_sl=3,
    redirect_flow_label=0x12345,
    redirect_lid=0x55,
    redirect_pkey=0xFFFF,
    redirect_qp=0x010203,
    redirect_qkey=0x80010000,
    trap_gid=GID_B,
    trap_tc=0x22,
    trap_sl=4,
    trap_flow_label=0x54321,
    trap_lid=0x66,
    trap_pkey=0x7FFF,
    trap_hop_limit=0x40,
    trap_qp=1,
    trap_qkey=0x80010000,
)

NODE_RECORD_BYTES = (
    bytes.fromhex(
        "0099"  # LID
        "0000"  # reserved
        # NodeInfo
        "01"  # BaseVersion
        "01"  # ClassVersion
        "01"  # NodeType: CA
        "02"  # NumPorts
        "000000000000cccc"  # SystemImageGUID
        "000000000000aaaa"  # NodeGUID
        "000000000000bbbb"  # PortGUID
        "0040"  # PartitionCap
        "1003"  # DeviceID
        "00000005"  # Revision
        "01"  # LocalPortNum
        "0002c9"  # VendorID
    )
    + b"host-a HCA-1".ljust(64, b"\x00")  # NodeDescription
    + bytes(4)  # padding
)
NODE_RECORD = NodeRecord(
    0x99,
    NodeInfo(
        node_type=1,
        num_ports=2,
        node_guid=0xAAAA,
        port_guid=0xBBBB,
        system_image_guid=0xCCCC,
        partition_cap=0x40,
        device_id=0x1003,
        revision=5,
        local_port_num=1,
        vendor_id=0x2C9,
    ),
    NodeDescription("host-a HCA-1"),
)

PORT_INFO_RECORD_BYTES = (
    bytes.fromhex(
        "0042"  # EndportLID
        "01"  # PortNum
        "00"  # Options
        # PortInfo
        "0102030405060708"  # M_Key
        "fe80000000000000"  # GIDPrefix
        "0042"  # LID
        "0001"  # MasterSMLID
        "02510868"  # CapabilityMask
    )
    + bytes(64 - 24)  # rest of PortInfo
    + bytes(4)  # padding
)
PORT_INFO_RECORD = PortInfoRecord(
    0x42,
    1,
    PortInfo(
        m_key=0x0102030405060708,
        gid_prefix=0xFE80000000000000,
        lid=0x42,
        master_sm_lid=1,
        capability_mask=0x02510868,
    ),
)

GUID_INFO_RECORD_BYTES = bytes.fromhex(
    "0042"  # LID
    "01"  # BlockNum
    "00"  # reserved
    "00000000"  # reserved
    "0002c90300000008"  # GUID index 8
    "0002c90300000009"
    "000000000000000a"
    "0000000000000000"
    "0000000000000000"
    "0000000000000000"
    "0000000000000000"
    "ffffffffffffffff"
)
GUID_INFO_RECORD = GUIDInfoRecord(
    0x42, 1, GUIDInfo((0x0002C90300000008, 0x0002C90300000009, 0xA, 0, 0, 0, 0, 2**64 - 1))
)

# Hand-assembled from IBA Vol 1, 15.2.5 (and OpenSM ib_types.h for the padding).
LINK_RECORD_BYTES = bytes.fromhex("00020401000b0000")
LINK_RECORD = LinkRecord(from_lid=2, from_port_num=4, to_port_num=1, to_lid=11)
SL_TO_VL_BYTES = bytes.fromhex("00020703000000000123456789abcdef")
SL_TO_VL = SLtoVLMappingTableRecord(2, 7, 3, tuple(range(16)))
VL_ARB_BYTES = bytes.fromhex("0005000300000000" + "0140" + "0f10" + "0000" * 30)
VL_ARB = VLArbitrationTableRecord(5, 0, 3, ((1, 0x40), (15, 0x10)) + ((0, 0),) * 30)
SM_INFO_RECORD_BYTES = bytes.fromhex(
    "0001000000000000001000010000000000000000000004fb0300000000000000"
)
SM_INFO_RECORD = SMInfoRecord(1, SMInfo(0x100001, 0, 1275, 0, 3))
SERVICE_RECORD = ServiceRecord(
    service_id=0x0000_0000_0000_1234,
    service_gid=GID_A,
    service_pkey=0xFFFF,
    service_lease=0xFFFF_FFFF,
    service_key=bytes(range(16)),
    service_name=b"osmtest".ljust(64, b"\0"),
    service_data8=bytes(range(16, 32)),
    service_data16=tuple(range(0x100, 0x108)),
    service_data32=(1, 2, 3, 0xFFFF_FFFF),
    service_data64=(7, 2**64 - 1),
)
SERVICE_RECORD_BYTES = (
    bytes.fromhex("0000000000001234")
    + GID_A
    + bytes.fromhex("ffff0000ffffffff")
    + bytes(range(16))
    + b"osmtest".ljust(64, b"\0")
    + bytes(range(16, 32))
    + b"".join(n.to_bytes(2, "big") for n in range(0x100, 0x108))
    + bytes.fromhex("000000010000000200000003ffffffff")
    + bytes.fromhex("0000000000000007ffffffffffffffff")
)

MULTI_PATH_BYTES = (
    bytes.fromhex("800123400782ffff00138486921240010134567890abcdef")
    + GID_A
    + GID_B
    + bytes(200 - 24 - 32)
)
MULTI_PATH = MultiPathRecord(
    sgids=(GID_A,),
    dgids=(GID_B,),
    raw_traffic=True,
    flow_label=0x123,
    hop_limit=0x40,
    tclass=7,
    reversible=True,
    numb_path=2,
    pkey=0xFFFF,
    qos_class=1,
    sl=3,
    mtu_selector=2,
    mtu=4,
    rate_selector=2,
    rate=6,
    packet_life_time_selector=2,
    packet_life_time=0x12,
    service_id=0x1234567890ABCDEF,
    independence_selector=1,
)

VECTORS: list[tuple[bytes, SaRecord]] = [
    (MULTI_PATH_BYTES, MULTI_PATH),
    (LINK_RECORD_BYTES, LINK_RECORD),
    (SL_TO_VL_BYTES, SL_TO_VL),
    (VL_ARB_BYTES, VL_ARB),
    (SM_INFO_RECORD_BYTES, SM_INFO_RECORD),
    (SERVICE_RECORD_BYTES, SERVICE_RECORD),
    (PATH_RECORD_BYTES, PATH_RECORD),
    (INFORM_INFO_BYTES, INFORM_INFO),
    (INFORM_INFO_RECORD_BYTES, INFORM_INFO_RECORD),
    (CLASS_PORT_INFO_BYTES, CLASS_PORT_INFO),
    (NODE_RECORD_BYTES, NODE_RECORD),
    (PORT_INFO_RECORD_BYTES, PORT_INFO_RECORD),
    (GUID_INFO_RECORD_BYTES, GUID_INFO_RECORD),
]


@pytest.mark.parametrize(("raw", "record"), VECTORS, ids=lambda v: type(v).__name__)
def test_record_hand_vectors_both_ways(raw: bytes, record: SaRecord) -> None:
    assert len(raw) == record.SIZE
    assert record.unpack(raw) == record
    assert record.pack() == raw


def test_reserved_bits_are_ignored_on_decode() -> None:
    raw = bytearray(PATH_RECORD_BYTES)
    raw[44] |= 0x70  # the 3 reserved bits after RawTraffic
    raw[58:64] = b"\xff" * 6
    assert PathRecord.unpack(bytes(raw)) == PATH_RECORD
    raw = bytearray(INFORM_INFO_BYTES)
    raw[20:22] = b"\xff\xff"
    raw[31] |= 0xE0  # reserved bits before RespTimeValue
    raw[32] = 0xFF  # reserved byte before ProducerType
    assert InformInfo.unpack(bytes(raw)) == INFORM_INFO


# ---------------------------------------------------------------- records: out of range


@pytest.mark.parametrize(
    "bad",
    [
        dataclasses.replace(PATH_RECORD, flow_label=1 << 20),
        dataclasses.replace(PATH_RECORD, hop_limit=256),
        dataclasses.replace(PATH_RECORD, numb_path=128),
        dataclasses.replace(PATH_RECORD, qos_class=1 << 12),
        dataclasses.replace(PATH_RECORD, sl=16),
        dataclasses.replace(PATH_RECORD, mtu_selector=4),
        dataclasses.replace(PATH_RECORD, mtu=64),
        dataclasses.replace(PATH_RECORD, rate_selector=-1),
        dataclasses.replace(PATH_RECORD, rate=64),
        dataclasses.replace(PATH_RECORD, packet_life_time_selector=4),
        dataclasses.replace(PATH_RECORD, packet_life_time=64),
        dataclasses.replace(PATH_RECORD, dlid=0x10000),
        dataclasses.replace(PATH_RECORD, pkey=-1),
        dataclasses.replace(PATH_RECORD, service_id=2**64),
        dataclasses.replace(PATH_RECORD, tclass=256),
        dataclasses.replace(PATH_RECORD, dgid=bytes(15)),
        dataclasses.replace(PATH_RECORD, sgid=bytes(17)),
        dataclasses.replace(PATH_RECORD, sl="5"),  # type: ignore[arg-type]
        dataclasses.replace(INFORM_INFO, qpn=1 << 24),
        dataclasses.replace(INFORM_INFO, resp_time_value=32),
        dataclasses.replace(INFORM_INFO, producer_type=1 << 24),
        dataclasses.replace(INFORM_INFO, is_generic=256),
        dataclasses.replace(INFORM_INFO, type=0x10000),
        dataclasses.replace(INFORM_INFO, gid=b""),
        dataclasses.replace(INFORM_INFO_RECORD, enum=0x10000),
        dataclasses.replace(INFORM_INFO_RECORD, subscriber_gid=bytes(8)),
        dataclasses.replace(
            INFORM_INFO_RECORD, inform_info=dataclasses.replace(INFORM_INFO, qpn=-1)
        ),
        dataclasses.replace(CLASS_PORT_INFO, capability_mask2=1 << 27),
        dataclasses.replace(CLASS_PORT_INFO, resp_time_value=32),
        dataclasses.replace(CLASS_PORT_INFO, redirect_sl=16),
        dataclasses.replace(CLASS_PORT_INFO, redirect_flow_label=1 << 20),
        dataclasses.replace(CLASS_PORT_INFO, redirect_qp=1 << 24),
        dataclasses.replace(CLASS_PORT_INFO, trap_tc=256),
        dataclasses.replace(CLASS_PORT_INFO, trap_hop_limit=256),
        dataclasses.replace(CLASS_PORT_INFO, trap_qp=-1),
        dataclasses.replace(CLASS_PORT_INFO, trap_qkey=1 << 32),
        dataclasses.replace(CLASS_PORT_INFO, trap_gid=bytes(16 * 2)),
        dataclasses.replace(NODE_RECORD, lid=0x10000),
        dataclasses.replace(NODE_RECORD, node_description=NodeDescription("x" * 65)),
        dataclasses.replace(PORT_INFO_RECORD, port_num=256),
        dataclasses.replace(PORT_INFO_RECORD, options=-1),
        dataclasses.replace(GUID_INFO_RECORD, block_num=256),
        dataclasses.replace(GUID_INFO_RECORD, guid_info=GUIDInfo((2**64,) * 8)),
    ],
    ids=lambda v: type(v).__name__,
)
def test_out_of_range_values_raise_wire_error(bad: SaRecord) -> None:
    with pytest.raises(WireError):
        bad.pack()


def test_embedded_attribute_of_the_wrong_type_raises_wire_error() -> None:
    with pytest.raises(WireError):
        NodeRecord(1, PortInfo()).pack()  # type: ignore[arg-type]
    with pytest.raises(WireError):
        PortInfoRecord(1, 1, GUIDInfo()).pack()  # type: ignore[arg-type]
    with pytest.raises(WireError):
        GUIDInfoRecord(1, 1, None).pack()  # type: ignore[arg-type]
    with pytest.raises(WireError):
        InformInfoRecord(GID_A, 1, None).pack()  # type: ignore[arg-type]


# ---------------------------------------------------------------- the SA MAD

sa_mads = st.builds(
    SaMad,
    header=st.builds(
        MadHeader,
        mgmt_class=st.just(0x03),
        method=u8,
        attribute_id=u16,
        tid=u64,
        attribute_modifier=u32,
        status=u16,
        class_specific=u16,
        class_version=u8,
        base_version=u8,
    ),
    rmpp=st.builds(RmppHeader, u8, u8, bits(5), bits(3), u8, u32, u32),
    sm_key=u64,
    attribute_offset=u16,
    component_mask=u64,
    data=st.binary(min_size=200, max_size=200),
)


@given(sa_mads)
def test_sa_mad_round_trip(mad: SaMad) -> None:
    raw = mad.pack()
    assert len(raw) == 256
    assert SaMad.unpack(raw) == mad


def without_reserved(mad: bytes) -> bytes:
    """The MAD with its reserved fields (bytes 18-19 and 46-47) zeroed."""
    return mad[:18] + b"\x00\x00" + mad[20:46] + b"\x00\x00" + mad[48:]


@given(st.binary(min_size=0, max_size=300))
def test_arbitrary_bytes_give_sa_mad_or_wire_error(data: bytes) -> None:
    try:
        mad = SaMad.unpack(data)
    except WireError:
        return
    assert mad.pack() == without_reserved(data)


@given(st.binary(min_size=256, max_size=256))
def test_arbitrary_sa_class_mads_decode_to_records_or_wire_error(data: bytes) -> None:
    raw = data[:1] + b"\x03" + data[2:]
    mad = SaMad.unpack(raw)
    assert mad.pack() == without_reserved(raw)
    try:
        records = mad.records()
    except WireError:
        return
    assert all(isinstance(r, SA_RECORDS[mad.attribute_id]) for r in records)


SA_GET_RESP_BYTES = (
    bytes.fromhex(
        "01"  # BaseVersion
        "03"  # MgmtClass: subnet administration
        "02"  # ClassVersion
        "81"  # Method: SubnAdmGetResp
        "0000"  # Status
        "0000"  # ClassSpecific
        "1234567890abcdef"  # TransactionID
        "0035"  # AttributeID: PathRecord
        "0000"  # reserved
        "00000000"  # AttributeModifier
        # RMPP header: not active
        "00000000"
        "00000000"
        "00000000"
        "0000000000000055"  # SM_Key
        "0000"  # AttributeOffset
        "0000"  # reserved
        "000000000000003c"  # ComponentMask: DGID | SGID | DLID | SLID
    )
    + PATH_RECORD_BYTES
    + bytes(136)
)

SA_TABLE_BYTES = (
    bytes.fromhex(
        "01"  # BaseVersion
        "03"  # MgmtClass
        "02"  # ClassVersion
        "92"  # Method: SubnAdmGetTableResp
        "0000"  # Status
        "0000"  # ClassSpecific
        "000000000000000b"  # TransactionID
        "00f3"  # AttributeID: InformInfoRecord
        "0000"  # reserved
        "00000000"  # AttributeModifier
        "01"  # RMPPVersion
        "01"  # RMPPType: DATA
        "77"  # RRespTime 14, flags Last | First | Active
        "00"  # RMPPStatus
        "00000001"  # SegmentNumber
        "00000094"  # PayloadLength: 20 + 2 * 64
        "0000000000000000"  # SM_Key
        "0008"  # AttributeOffset: 64 bytes
        "0000"  # reserved
        "0000000000000000"  # ComponentMask
    )
    + INFORM_INFO_RECORD_BYTES
    + INFORM_INFO_RECORD_BYTES[:16]
    + b"\x00\x04"
    + INFORM_INFO_RECORD_BYTES[18:]
    + bytes(200 - 128)
)
INFORM_INFO_RECORD_4 = dataclasses.replace(INFORM_INFO_RECORD, enum=4)


def test_sa_mad_hand_vector_get_resp() -> None:
    mad = SaMad.unpack(SA_GET_RESP_BYTES)
    assert mad.header == MadHeader(
        mgmt_class=3, method=0x81, attribute_id=0x35, tid=0x1234567890ABCDEF, class_version=2
    )
    assert mad.rmpp == RmppHeader.NONE
    assert (mad.sm_key, mad.attribute_offset, mad.component_mask) == (0x55, 0, 0x3C)
    assert mad.record() == PATH_RECORD
    assert mad.records() == (PATH_RECORD,)
    built = SaMad.from_record(
        PATH_RECORD,
        method=Method.GET_RESP,
        tid=0x1234567890ABCDEF,
        sm_key=0x55,
        component_mask=PathRecordComp.DGID
        | PathRecordComp.SGID
        | PathRecordComp.DLID
        | PathRecordComp.SLID,
    )
    assert built == mad
    assert built.pack() == SA_GET_RESP_BYTES
    assert (mad.method, mad.attribute_id, mad.tid, mad.status) == (0x81, 0x35, mad.header.tid, 0)


def test_sa_mad_hand_vector_get_table_resp() -> None:
    mad = SaMad.unpack(SA_TABLE_BYTES)
    assert mad.rmpp == RmppHeader(1, RmppType.DATA, 14, 7, 0, 1, 148)
    assert mad.record_count() == 2
    assert mad.records() == (INFORM_INFO_RECORD, INFORM_INFO_RECORD_4)
    built = SaMad.from_records(
        [INFORM_INFO_RECORD, INFORM_INFO_RECORD_4], method=Method.GET_TABLE_RESP, tid=11
    )
    assert built == mad
    assert built.pack() == SA_TABLE_BYTES


@pytest.mark.parametrize(
    ("klass", "count"),
    [
        (PathRecord, 3),
        (NodeRecord, 1),
        (PortInfoRecord, 2),
        (GUIDInfoRecord, 2),
        (InformInfoRecord, 3),
        (PathRecord, 0),
    ],
)
@given(data=st.data())
def test_get_table_resp_round_trip(klass: type[SaRecord], count: int, data: st.DataObject) -> None:
    records = data.draw(st.lists(RECORD_STRATEGIES[klass], min_size=count, max_size=count))
    mad = SaMad.from_records(
        records, method=Method.GET_TABLE_RESP, tid=5, attribute_id=klass.ATTRIBUTE_ID
    )
    assert mad.attribute_offset == (klass.ATTRIBUTE_OFFSET if count else 0)
    assert mad.rmpp.flags == RmppFlags.ACTIVE | RmppFlags.FIRST | RmppFlags.LAST
    assert mad.rmpp.payload_length == 20 + count * klass.ATTRIBUTE_OFFSET * 8
    again = SaMad.unpack(mad.pack())
    assert again == mad
    if count:
        assert again.records() == tuple(records)
    else:
        assert again.record_count() == 1  # AttributeOffset 0: one record slot


@pytest.mark.parametrize("klass", RECORD_CLASSES)
@given(data=st.data())
def test_single_record_mads_round_trip(klass: type[SaRecord], data: st.DataObject) -> None:
    record = data.draw(RECORD_STRATEGIES[klass])
    mad = SaMad.from_record(record, method=Method.GET_RESP, tid=data.draw(u64))
    assert mad.attribute_id == klass.ATTRIBUTE_ID
    assert mad.header.class_version == 2
    again = SaMad.unpack(mad.pack())
    assert again == mad
    assert again.record() == record
    assert again.records() == (record,)


def test_records_without_rmpp_fill_the_mad() -> None:
    mad = SaMad.from_records(
        [PATH_RECORD, PATH_RECORD], method=Method.GET_TABLE_RESP, rmpp=RmppHeader.NONE
    )
    assert mad.record_count() == 3  # no PayloadLength: every 64-byte slot that fits
    assert mad.records()[:2] == (PATH_RECORD, PATH_RECORD)
    assert mad.records()[2] == PathRecord()


def test_decode_records_of_a_reassembled_payload() -> None:
    payload = b"".join(record.pack() for record in [PATH_RECORD] * 5)
    assert decode_records(SaAttr.PATH_RECORD, payload, 8) == (PATH_RECORD,) * 5
    assert decode_records(SaAttr.PATH_RECORD, payload, 8, count=2) == (PATH_RECORD,) * 2
    assert decode_records(SaAttr.PATH_RECORD, payload, 0) == (PATH_RECORD,)
    assert decode_records(SaAttr.PATH_RECORD, payload[:63], 8) == ()
    with pytest.raises(WireError):
        decode_records(SaAttr.PATH_RECORD, payload, 8, count=6)
    with pytest.raises(WireError):
        decode_records(SaAttr.PATH_RECORD, payload, 7)  # shorter than a PathRecord
    with pytest.raises(WireError):
        decode_records(SaAttr.PATH_RECORD, payload, -1)
    with pytest.raises(WireError):
        decode_records(SaAttr.PATH_RECORD, payload, 0, count=2)
    assert decode_records(SaAttr.PATH_RECORD, payload, 0, count=0) == ()
    with pytest.raises(WireError):
        decode_records(SaAttr.TRACE_RECORD, payload, 8)


def test_report_of_a_notice() -> None:
    notice = Notice(trap_number=64, issuer_lid=1, details=GidDetails(GID_A), issuer_gid=GID_B)
    mad = SaMad.from_record(notice, method=Method.REPORT, tid=3)
    raw = mad.pack()
    assert raw[16:18] == b"\x00\x02"
    assert raw[56:136] == notice.pack()
    assert SaMad.unpack(raw).record() == notice


@pytest.mark.parametrize(
    "bad",
    [
        SaMad(MadHeader(MgmtClass.SUBN_LID_ROUTED, 1, 0x35)),
        SaMad(MadHeader(3, 1, 0x35), data=bytes(199)),
        SaMad(MadHeader(3, 1, 0x35), rmpp=RmppHeader(resp_time=32)),
        SaMad(MadHeader(3, 1, 0x35), rmpp=RmppHeader(flags=8)),
        SaMad(MadHeader(3, 1, 0x35), rmpp=RmppHeader(data1=1 << 32)),
        SaMad(MadHeader(3, 1, 0x35), sm_key=-1),
        SaMad(MadHeader(3, 1, 0x35), attribute_offset=0x10000),
        SaMad(MadHeader(3, 1, 0x35), component_mask=2**64),
        SaMad(MadHeader(3, 0x100, 0x35)),
        SaMad(MadHeader(3, 1, 0x35, tid=-1)),
    ],
)
def test_sa_mad_out_of_range_raises_wire_error(bad: SaMad) -> None:
    with pytest.raises(WireError):
        bad.pack()


def test_sa_mad_unpack_rejects_other_classes_and_sizes() -> None:
    with pytest.raises(WireError):
        SaMad.unpack(SA_GET_RESP_BYTES[:255])
    with pytest.raises(WireError):
        SaMad.unpack(SA_GET_RESP_BYTES + b"\x00")
    with pytest.raises(WireError):
        SaMad.unpack(SA_GET_RESP_BYTES[:1] + b"\x81" + SA_GET_RESP_BYTES[2:])


def test_from_records_rejects_what_does_not_fit() -> None:
    with pytest.raises(WireError):  # 4 x 64 > 200
        SaMad.from_records([PATH_RECORD] * 4, method=Method.GET_TABLE_RESP)
    with pytest.raises(WireError):
        SaMad.from_records([PATH_RECORD, INFORM_INFO], method=Method.GET_TABLE_RESP)
    with pytest.raises(WireError):
        SaMad.from_records([], method=Method.GET_TABLE_RESP)
    with pytest.raises(WireError):
        SaMad.from_records([PATH_RECORD, PATH_RECORD], method=Method.GET_RESP)
    with pytest.raises(WireError):
        SaMad.from_record(PATH_RECORD, method=Method.GET_TABLE_RESP, attribute_offset=7)
    with pytest.raises(WireError):
        SaMad.from_record(PATH_RECORD, method=Method.GET_RESP, tid=2**64).pack()


def test_record_count_rejects_payload_length_shorter_than_the_sa_header() -> None:
    mad = SaMad.from_records([PATH_RECORD], method=Method.GET_TABLE_RESP)
    bad = dataclasses.replace(mad, rmpp=dataclasses.replace(mad.rmpp, data2=19))
    with pytest.raises(WireError):
        bad.records()


def test_empty_table_response() -> None:
    mad = SaMad.from_records(
        [], method=Method.GET_TABLE_RESP, attribute_id=SaAttr.PATH_RECORD, tid=1
    )
    assert mad.attribute_offset == 0
    assert mad.rmpp.payload_length == 20
    assert mad.data == bytes(SA_DATA_SIZE)


# ---------------------------------------------------------------- the fast constructor


@given(path_records)
def test_fast_constructor_builds_ordinary_frozen_instances(record: PathRecord) -> None:
    build = _fast_constructor(PathRecord)
    assert build is not PathRecord  # the fast path is active on this interpreter
    values = [getattr(record, f.name) for f in dataclasses.fields(PathRecord)]
    built = build(*values)
    assert type(built) is PathRecord
    assert built == record and hash(built) == hash(record)
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.dlid = 1  # type: ignore[misc]


def test_fast_constructor_falls_back_for_post_init() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        value: int

        def __post_init__(self) -> None:
            if self.value < 0:
                raise ValueError("negative")

    assert _fast_constructor(Checked) is Checked


# ---------------------------------------------------------------- byte-level helpers


@given(sa_mads, u64)
def test_with_tid_is_the_same_mad_with_another_tid(mad: SaMad, tid: int) -> None:
    stamped = with_tid(mad.pack(), tid)
    expected = dataclasses.replace(mad, header=dataclasses.replace(mad.header, tid=tid))
    assert SaMad.unpack(stamped) == expected
    assert peek_tid(stamped) == tid


def test_with_tid_and_peek_tid_refuse_what_is_not_a_mad_header() -> None:
    raw = SaMad(MadHeader(0x03, Method.REPORT, SaAttr.NOTICE, tid=7)).pack()
    with pytest.raises(WireError):
        with_tid(raw, 1 << 64)
    with pytest.raises(WireError):
        with_tid(raw, -1)
    with pytest.raises(WireError):
        with_tid(raw[:23], 1)
    with pytest.raises(WireError):
        peek_tid(raw[:23])


@given(sa_mads)
def test_report_response_acknowledges_the_report_it_answers(mad: SaMad) -> None:
    report = dataclasses.replace(mad, header=dataclasses.replace(mad.header, method=Method.REPORT))
    response = SaMad.unpack(report_response(report.pack()))
    # Same transaction and attribute, the response method, status 0; RMPP and the SA
    # header cleared; the Notice echoed.
    assert response == SaMad(
        dataclasses.replace(report.header, method=Method.REPORT_RESP, status=0),
        data=report.data,
    )


def test_report_response_refuses_anything_but_an_sa_report() -> None:
    report = SaMad.from_record(
        Notice(trap_number=64, details=GidDetails(GID_A)), method=Method.REPORT, tid=5
    ).pack()
    assert report_response(report)[3] == Method.REPORT_RESP
    with pytest.raises(WireError):
        report_response(report[:255])
    with pytest.raises(WireError):
        report_response(report[:3] + bytes([Method.GET]) + report[4:])
    with pytest.raises(WireError):
        report_response(report[:1] + bytes([MgmtClass.SUBN_LID_ROUTED]) + report[2:])


# ----------------------------------------------------- multicast records: known bytes


IPOIB_BROADCAST_MGID = bytes.fromhex("ff12401bffff000000000000ffffffff")


def test_mc_member_record_bytes() -> None:
    """The IPoIB broadcast group as OpenSM holds it: fields at their IBA offsets."""
    port_gid = bytes.fromhex("fe800000000000000002c90300001234")
    record = MCMemberRecord(
        IPOIB_BROADCAST_MGID,
        port_gid,
        q_key=0x0B1B,
        mlid=0xC000,
        mtu_selector=2,
        mtu=4,
        traffic_class=0x12,
        pkey=0xFFFF,
        rate_selector=2,
        rate=3,
        packet_life_time_selector=2,
        packet_life_time=0x12,
        sl=5,
        flow_label=0xABCDE,
        hop_limit=0x40,
        scope=2,
        join_state=1,
        proxy_join=True,
    )
    raw = record.pack()
    assert raw == (
        IPOIB_BROADCAST_MGID
        + port_gid
        + bytes.fromhex("00000b1bc0008412ffff83925abcde402180")
        + bytes(6)
    )
    assert MCMemberRecord.unpack(raw) == record
    assert MCMemberRecordComp.JOIN_STATE == 1 << 16
    assert MCMemberRecordComp.PROXY_JOIN == 1 << 17


def test_mc_member_record_refuses_out_of_range() -> None:
    with pytest.raises(WireError, match="JoinState"):
        MCMemberRecord(join_state=16).pack()
    with pytest.raises(WireError, match="FlowLabel"):
        MCMemberRecord(flow_label=1 << 20).pack()
    with pytest.raises(WireError, match="MGID"):
        MCMemberRecord(mgid=b"short").pack()


def test_mft_record_bytes() -> None:
    masks = tuple(range(0x100, 0x100 + 32))
    record = MFTRecord(0x1234, 2, 0x1FF, MulticastForwardingTable(masks))
    raw = record.pack()
    assert raw[:8] == bytes.fromhex("123421ff00000000")
    assert raw[8:10] == bytes.fromhex("0100") and raw[70:72] == bytes.fromhex("011f")
    assert MFTRecord.unpack(raw) == record
    with pytest.raises(WireError, match="BlockNum"):
        MFTRecord(1, 0, 512, MulticastForwardingTable()).pack()
    with pytest.raises(WireError, match="Position"):
        MFTRecord(1, 16, 0, MulticastForwardingTable()).pack()

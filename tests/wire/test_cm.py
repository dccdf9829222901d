"""Tests of ibmig.wire.cm: CM messages (IBA Vol 1, 12.6).

The hand-built vectors set bytes at the offsets of the specification's tables
(IBA Vol 1, 12.6.5-12.6.11; Byte[Bit] notation, bit 7 = most significant), without
going through the codec, and are checked both ways.
"""

from __future__ import annotations

import contextlib
import struct
from dataclasses import replace
from typing import Any, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ibmig.errors import WireError
from ibmig.wire.cm import (
    CM_CLASS_VERSION,
    CM_DATA_SIZE,
    CM_MESSAGES,
    CmAttributeId,
    CmMad,
    CmMessage,
    CmPath,
    Drep,
    Dreq,
    Mra,
    Rej,
    RejReason,
    Rep,
    Req,
    Rtu,
    TransportServiceType,
)
from ibmig.wire.mad import MAD_HEADER_SIZE, MAD_SIZE, Method, MgmtClass
from tests.wire.strategies import bits, blob, gids

T = TypeVar("T")

# --- strategies ----------------------------------------------------------------------


paths = st.builds(
    CmPath,
    local_lid=bits(16),
    remote_lid=bits(16),
    local_gid=gids,
    remote_gid=gids,
    flow_label=bits(20),
    packet_rate=bits(6),
    traffic_class=bits(8),
    hop_limit=bits(8),
    sl=bits(4),
    subnet_local=st.booleans(),
    local_ack_timeout=bits(5),
)

reqs = st.builds(
    Req,
    local_comm_id=bits(32),
    service_id=bits(64),
    local_ca_guid=bits(64),
    local_q_key=bits(32),
    local_qpn=bits(24),
    responder_resources=bits(8),
    local_eecn=bits(24),
    initiator_depth=bits(8),
    remote_eecn=bits(24),
    remote_cm_response_timeout=bits(5),
    transport_service_type=bits(2),
    end_to_end_flow_control=st.booleans(),
    starting_psn=bits(24),
    local_cm_response_timeout=bits(5),
    retry_count=bits(3),
    partition_key=bits(16),
    path_packet_payload_mtu=bits(4),
    rdc_exists=st.booleans(),
    rnr_retry_count=bits(3),
    max_cm_retries=bits(4),
    srq=st.booleans(),
    extended_transport_type=bits(3),
    primary_path=paths,
    alternate_path=st.one_of(st.just(CmPath()), paths),
    sap_supported=st.booleans(),
    private_data=blob(92),
)

mras = st.builds(
    Mra,
    local_comm_id=bits(32),
    remote_comm_id=bits(32),
    message_mraed=bits(2),
    service_timeout=bits(5),
    private_data=blob(222),
)

rejs = st.builds(
    Rej,
    local_comm_id=bits(32),
    remote_comm_id=bits(32),
    message_rejected=bits(2),
    reason=bits(16),
    ari=st.binary(max_size=72),
    private_data=blob(148),
)

reps = st.builds(
    Rep,
    local_comm_id=bits(32),
    remote_comm_id=bits(32),
    local_q_key=bits(32),
    local_qpn=bits(24),
    local_eecn=bits(24),
    starting_psn=bits(24),
    responder_resources=bits(8),
    initiator_depth=bits(8),
    target_ack_delay=bits(5),
    failover_accepted=bits(2),
    end_to_end_flow_control=st.booleans(),
    rnr_retry_count=bits(3),
    srq=st.booleans(),
    local_ca_guid=bits(64),
    private_data=blob(196),
)

rtus = st.builds(Rtu, local_comm_id=bits(32), remote_comm_id=bits(32), private_data=blob(224))
dreqs = st.builds(
    Dreq,
    local_comm_id=bits(32),
    remote_comm_id=bits(32),
    remote_qpn_eecn=bits(24),
    private_data=blob(220),
)
dreps = st.builds(Drep, local_comm_id=bits(32), remote_comm_id=bits(32), private_data=blob(224))

messages: st.SearchStrategy[CmMessage] = st.one_of(reqs, mras, rejs, reps, rtus, dreqs, dreps)

cm_mads = st.builds(
    CmMad,
    message=messages,
    tid=bits(64),
    method=bits(8),
    attribute_modifier=bits(32),
    status=bits(16),
    class_specific=bits(16),
    class_version=bits(8),
    base_version=bits(8),
)

RECORDS: list[type[Any]] = [Req, Mra, Rej, Rep, Rtu, Dreq, Drep]

# --- round trips -----------------------------------------------------------------------


@given(paths)
def test_path_round_trip(path: CmPath) -> None:
    data = path.pack()
    assert len(data) == CmPath.SIZE == 44
    assert CmPath.unpack(data) == path


@given(messages)
def test_message_round_trip(message: CmMessage) -> None:
    data = message.pack()
    assert len(data) == CM_DATA_SIZE == 232
    assert type(message).unpack(data) == message


@given(cm_mads)
def test_cm_mad_round_trip(mad: CmMad) -> None:
    data = mad.pack()
    assert len(data) == MAD_SIZE
    assert data[1] == MgmtClass.COMM_MGT
    assert struct.unpack_from(">H", data, 16)[0] == mad.message.ATTRIBUTE_ID
    assert CmMad.unpack(data) == mad


@given(messages, st.binary(max_size=8))
def test_unpack_from_offset(message: CmMessage, prefix: bytes) -> None:
    data = prefix + message.pack() + b"trailing"
    assert type(message).unpack_from(data, len(prefix)) == message


def test_cm_messages_table() -> None:
    assert {k: v.ATTRIBUTE_ID for k, v in CM_MESSAGES.items()} == {k: k for k in CM_MESSAGES}
    assert set(CM_MESSAGES.values()) == set(RECORDS)
    for record in RECORDS:
        assert record.SIZE == CM_DATA_SIZE
        assert len(record().private_data) == record.PRIVATE_DATA_SIZE


def test_attribute_ids() -> None:
    assert [int(a) for a in CmAttributeId] == [0x0001, *range(0x0010, 0x001B)]
    assert (CmAttributeId.REQ, CmAttributeId.REP, CmAttributeId.RTU) == (0x10, 0x13, 0x14)
    assert (CmAttributeId.DREQ, CmAttributeId.DREP, CmAttributeId.APR) == (0x15, 0x16, 0x1A)


def test_defaults() -> None:
    mad = CmMad(Rtu(1, 2))
    assert mad.method == int(Method.SEND) == 0x03
    assert mad.class_version == CM_CLASS_VERSION == 2
    assert mad.mgmt_class == 0x07
    assert mad.attribute_id == 0x0014
    assert Req().pack() == bytes(232)
    assert CmPath().is_empty
    assert not CmPath(local_lid=1).is_empty


# --- arbitrary bytes ---------------------------------------------------------------------


@pytest.mark.parametrize("record", RECORDS)
@given(data=st.binary(max_size=240))
def test_arbitrary_bytes_any_length(record: type[Any], data: bytes) -> None:
    with contextlib.suppress(WireError):
        record.unpack(data)


@pytest.mark.parametrize("record", RECORDS)
@given(data=blob(232))
def test_arbitrary_232_bytes(record: type[Any], data: bytes) -> None:
    """Any 232 bytes decode (or give WireError); decoding is a projection: packing
    what was decoded and decoding again gives the same record."""
    try:
        message = record.unpack(data)
    except WireError:
        return
    assert record.unpack(message.pack()) == message


@given(data=blob(44))
def test_arbitrary_path_bytes(data: bytes) -> None:
    path = CmPath.unpack(data)
    assert CmPath.unpack(path.pack()) == path


@given(
    attribute_id=st.one_of(st.sampled_from(list(CmAttributeId)), bits(16)),
    mgmt_class=st.one_of(st.just(0x07), bits(8)),
    body=blob(255),
)
def test_arbitrary_mad_bytes(attribute_id: int, mgmt_class: int, body: bytes) -> None:
    data = bytearray(body[:1] + bytes([mgmt_class]) + body[1:])
    data[16:18] = attribute_id.to_bytes(2, "big")
    try:
        mad = CmMad.unpack(bytes(data))
    except WireError:
        assert mgmt_class != 0x07 or attribute_id not in CM_MESSAGES or attribute_id == 0x12
        return
    assert CmMad.unpack(mad.pack()) == mad


@given(st.binary(max_size=300))
def test_arbitrary_mad_any_length(data: bytes) -> None:
    with contextlib.suppress(WireError):
        CmMad.unpack(data)


@pytest.mark.parametrize("record", RECORDS)
def test_wrong_sizes(record: type[Any]) -> None:
    for size in (0, 231, 233, 256):
        with pytest.raises(WireError, match="232 bytes"):
            record.unpack(bytes(size))
    with pytest.raises(WireError, match="offset"):
        record.unpack_from(bytes(240), 9)
    with pytest.raises(WireError, match="offset"):
        record.unpack_from(bytes(240), -1)


def test_cm_mad_rejects() -> None:
    good = CmMad(Drep(1, 2)).pack()
    with pytest.raises(WireError, match="256"):
        CmMad.unpack(good[:-1])
    with pytest.raises(WireError, match="management class 0x03"):
        CmMad.unpack(good[:1] + b"\x03" + good[2:])
    for attr in (0x0001, 0x0017, 0x0018, 0x0019, 0x001A, 0x1234):
        with pytest.raises(WireError, match=f"0x{attr:04x}"):
            CmMad.unpack(good[:16] + attr.to_bytes(2, "big") + good[18:])


def test_rej_info_length_too_long() -> None:
    data = bytearray(232)
    data[9] = 73 << 1
    with pytest.raises(WireError, match="Reject Info Length 73"):
        Rej.unpack(bytes(data))
    data[9] = (72 << 1) | 1  # the reserved low bit is ignored
    assert Rej.unpack(bytes(data)).ari == bytes(72)


# --- hand-built vectors ----------------------------------------------------------------

LOCAL_GID = bytes.fromhex("fe800000000000000002c90300abcdef")
REMOTE_GID = bytes.fromhex("fe800000000000000002c90300123456")
ALT_LOCAL_GID = bytes.fromhex("fec00000000000010002c90300abcdef")
ALT_REMOTE_GID = bytes.fromhex("fec00000000000010002c90300123456")


def req_vector() -> bytes:
    """A REQ data region, byte by byte from IBA Vol 1, 12.6.5."""
    v = bytearray(232)
    v[0:4] = bytes.fromhex("11223344")  # Local Communication ID
    v[8:16] = bytes.fromhex("0102030405060708")  # Service ID
    v[16:24] = bytes.fromhex("0002c90300abcdef")  # Local CA GUID
    v[28:32] = bytes.fromhex("a1b2c3d4")  # Local Q_Key
    v[32:35] = bytes.fromhex("000abc")  # Local QPN
    v[35] = 0x04  # Responder Resources
    v[36:39] = bytes.fromhex("123456")  # Local EECN
    v[39] = 0x08  # Initiator Depth
    v[40:43] = bytes.fromhex("654321")  # Remote EECN
    # Remote CM Response Timeout 20 in 43[7:3], Transport Service Type UC (1) in
    # 43[2:1], End-to-End Flow Control in 43[0]
    v[43] = 0b10100_01_1
    v[44:47] = bytes.fromhex("fedcba")  # Starting PSN
    v[47] = 0b10011_111  # Local CM Response Timeout 19, Retry Count 7
    v[48:50] = bytes.fromhex("ffff")  # Partition Key
    v[50] = 0b0100_0_111  # Path Packet Payload MTU 4 (2048), RDC Exists 0, RNR Retry 7
    v[51] = 0b1111_1_000  # Max CM Retries 15, SRQ 1, Extended Transport Type 0
    # primary path, 52..95
    v[52:54] = bytes.fromhex("0001")  # Local Port LID
    v[54:56] = bytes.fromhex("0002")  # Remote Port LID
    v[56:72] = LOCAL_GID
    v[72:88] = REMOTE_GID
    v[88:92] = bytes.fromhex("abcde006")  # Flow Label 0xabcde in 88..90[7:4]; Packet Rate 6
    v[92] = 0x20  # Traffic Class
    v[93] = 0xFF  # Hop Limit
    v[94] = 0b0101_1_000  # SL 5, Subnet Local 1
    v[95] = 0b10010_000  # Local ACK Timeout 18
    # alternate path, 96..139
    v[96:98] = bytes.fromhex("0005")
    v[98:100] = bytes.fromhex("0006")
    v[100:116] = ALT_LOCAL_GID
    v[116:132] = ALT_REMOTE_GID
    v[132:136] = bytes.fromhex("00001003")  # Flow Label 1, Packet Rate 3
    v[136] = 0x00
    v[137] = 0x01
    v[138] = 0b1111_0_000  # SL 15, Subnet Local 0
    v[139] = 0b11111_1_00  # Local ACK Timeout 31, SAP Supported
    v[140:232] = bytes(range(92))  # Private Data
    return bytes(v)


REQ_RECORD = Req(
    local_comm_id=0x11223344,
    service_id=0x0102030405060708,
    local_ca_guid=0x0002C90300ABCDEF,
    local_q_key=0xA1B2C3D4,
    local_qpn=0x000ABC,
    responder_resources=4,
    local_eecn=0x123456,
    initiator_depth=8,
    remote_eecn=0x654321,
    remote_cm_response_timeout=20,
    transport_service_type=TransportServiceType.UC,
    end_to_end_flow_control=True,
    starting_psn=0xFEDCBA,
    local_cm_response_timeout=19,
    retry_count=7,
    partition_key=0xFFFF,
    path_packet_payload_mtu=4,
    rdc_exists=False,
    rnr_retry_count=7,
    max_cm_retries=15,
    srq=True,
    extended_transport_type=0,
    primary_path=CmPath(
        local_lid=1,
        remote_lid=2,
        local_gid=LOCAL_GID,
        remote_gid=REMOTE_GID,
        flow_label=0xABCDE,
        packet_rate=6,
        traffic_class=0x20,
        hop_limit=0xFF,
        sl=5,
        subnet_local=True,
        local_ack_timeout=18,
    ),
    alternate_path=CmPath(
        local_lid=5,
        remote_lid=6,
        local_gid=ALT_LOCAL_GID,
        remote_gid=ALT_REMOTE_GID,
        flow_label=1,
        packet_rate=3,
        traffic_class=0,
        hop_limit=1,
        sl=15,
        subnet_local=False,
        local_ack_timeout=31,
    ),
    sap_supported=True,
    private_data=bytes(range(92)),
)


def test_req_vector() -> None:
    assert Req.unpack(req_vector()) == REQ_RECORD
    assert REQ_RECORD.pack() == req_vector()


def test_path_vector() -> None:
    v = req_vector()
    assert CmPath.unpack(v[52:96]) == REQ_RECORD.primary_path
    assert REQ_RECORD.primary_path.pack() == v[52:96]
    # the alternate path's byte 139 also carries SAP Supported, not part of a path
    assert REQ_RECORD.alternate_path.pack() == v[96:139] + bytes([v[139] & 0xF8])


def test_req_without_alternate_shares_empty_path() -> None:
    req = replace(REQ_RECORD, alternate_path=CmPath(), sap_supported=False)
    data = req.pack()
    assert data[96:140] == bytes(44)
    decoded = Req.unpack(data)
    assert decoded == req
    assert decoded.alternate_path.is_empty
    # SAP Supported alone does not make an alternate path
    data = data[:139] + b"\x04" + data[140:]
    assert Req.unpack(data).alternate_path.is_empty
    assert Req.unpack(data).sap_supported


MAD_HEADER = bytes.fromhex(
    "01"  # BaseVersion
    "07"  # MgmtClass CommMgt
    "02"  # ClassVersion
    "03"  # Method Send
    "0000"  # Status
    "0000"  # ClassSpecific
    "0123456789abcdef"  # TransactionID
    "0010"  # AttributeID REQ
    "0000"  # reserved
    "00000000"  # AttributeModifier
)


def test_cm_mad_vector() -> None:
    data = MAD_HEADER + req_vector()
    assert len(data) == 256
    mad = CmMad(REQ_RECORD, tid=0x0123456789ABCDEF)
    assert mad.pack() == data
    assert CmMad.unpack(data) == mad
    assert MAD_HEADER_SIZE == 24


def test_mra_vector() -> None:
    v = bytearray(232)
    v[0:4] = bytes.fromhex("00000101")  # Local Communication ID
    v[4:8] = bytes.fromhex("00000202")  # Remote Communication ID
    v[8] = 0b01_000000  # Message MRAed: REP
    v[9] = 0b10111_000  # Service Timeout 23
    v[10:232] = b"\xaa" * 222
    record = Mra(0x101, 0x202, message_mraed=1, service_timeout=23, private_data=b"\xaa" * 222)
    assert Mra.unpack(bytes(v)) == record
    assert record.pack() == bytes(v)
    mad = CmMad(record, tid=9)
    assert mad.pack()[16:18] == b"\x00\x11"


def test_rej_vector() -> None:
    v = bytearray(232)
    v[0:4] = bytes.fromhex("cafe0001")
    v[4:8] = bytes.fromhex("00000000")
    v[8] = 0b00_000000  # Message REJected: REQ
    v[9] = 16 << 1  # Reject Info Length 16 in 9[7:1]
    v[10:12] = bytes.fromhex("000c")  # Reason: invalid primary GID (12)
    v[12:28] = REMOTE_GID  # ARI: the GID the passive side would accept
    v[84:232] = bytes(range(148))
    record = Rej(
        local_comm_id=0xCAFE0001,
        remote_comm_id=0,
        message_rejected=0,
        reason=RejReason.INVALID_PRIMARY_GID,
        ari=REMOTE_GID,
        private_data=bytes(range(148)),
    )
    assert Rej.unpack(bytes(v)) == record
    assert record.pack() == bytes(v)
    assert record.ari_length == 16


def test_rej_reason_codes() -> None:
    codes = {r.name: int(r) for r in RejReason}
    assert codes["TIMEOUT"] == 4
    assert codes["STALE_CONNECTION"] == 10
    assert codes["INVALID_PRIMARY_GID"] == 12
    assert codes["INVALID_PRIMARY_LID"] == 13
    assert codes["CONSUMER_REJECT"] == 28
    assert codes["INVALID_ALTERNATE_FLOW_LABEL"] == 33


def test_rep_vector() -> None:
    v = bytearray(232)
    v[0:4] = bytes.fromhex("00000202")  # Local Communication ID
    v[4:8] = bytes.fromhex("11223344")  # Remote Communication ID
    v[8:12] = bytes.fromhex("80010000")  # Local Q_Key
    v[12:15] = bytes.fromhex("00abcd")  # Local QPN
    v[16:19] = bytes.fromhex("000001")  # Local EE Context Number
    v[20:23] = bytes.fromhex("7fffff")  # Starting PSN
    v[24] = 0x10  # Responder Resources
    v[25] = 0x11  # Initiator Depth
    v[26] = 0b01111_10_1  # Target ACK Delay 15, Failover Accepted 2, E2E flow control
    v[27] = 0b110_1_0000  # RNR Retry Count 6, SRQ
    v[28:36] = bytes.fromhex("0002c90300123456")  # Local CA GUID
    v[36:232] = b"\x5a" * 196
    record = Rep(
        local_comm_id=0x202,
        remote_comm_id=0x11223344,
        local_q_key=0x80010000,
        local_qpn=0xABCD,
        local_eecn=1,
        starting_psn=0x7FFFFF,
        responder_resources=0x10,
        initiator_depth=0x11,
        target_ack_delay=15,
        failover_accepted=2,
        end_to_end_flow_control=True,
        rnr_retry_count=6,
        srq=True,
        local_ca_guid=0x0002C90300123456,
        private_data=b"\x5a" * 196,
    )
    assert Rep.unpack(bytes(v)) == record
    assert record.pack() == bytes(v)


def test_rtu_drep_vectors() -> None:
    v = bytes.fromhex("11223344") + bytes.fromhex("00000202") + bytes(range(224))
    assert Rtu.unpack(v) == Rtu(0x11223344, 0x202, bytes(range(224)))
    assert Rtu(0x11223344, 0x202, bytes(range(224))).pack() == v
    assert Drep.unpack(v) == Drep(0x11223344, 0x202, bytes(range(224)))
    assert Drep(0x11223344, 0x202, bytes(range(224))).pack() == v


def test_dreq_vector() -> None:
    v = bytearray(232)
    v[0:4] = bytes.fromhex("00000202")
    v[4:8] = bytes.fromhex("11223344")
    v[8:11] = bytes.fromhex("000abc")  # Remote QPN/EECN in 8..10, byte 11 reserved
    v[12:232] = b"\x01" * 220
    record = Dreq(0x202, 0x11223344, 0x000ABC, b"\x01" * 220)
    assert Dreq.unpack(bytes(v)) == record
    assert record.pack() == bytes(v)


# Where each bit field lives: (field, byte offset, mask over the bytes from the offset),
# copied from the Byte[Bit] columns of IBA Vol 1 Tables 106 (REQ) and 110 (REP). Setting
# a field to its maximum must set exactly those bits and nothing else.
REQ_FIELD_BITS = [
    ("local_qpn", 32, 0xFFFFFF),
    ("responder_resources", 35, 0xFF),
    ("local_eecn", 36, 0xFFFFFF),
    ("initiator_depth", 39, 0xFF),
    ("remote_eecn", 40, 0xFFFFFF),
    ("remote_cm_response_timeout", 43, 0xF8),
    ("transport_service_type", 43, 0x06),
    ("end_to_end_flow_control", 43, 0x01),
    ("starting_psn", 44, 0xFFFFFF),
    ("local_cm_response_timeout", 47, 0xF8),
    ("retry_count", 47, 0x07),
    ("path_packet_payload_mtu", 50, 0xF0),
    ("rdc_exists", 50, 0x08),
    ("rnr_retry_count", 50, 0x07),
    ("max_cm_retries", 51, 0xF0),
    ("srq", 51, 0x08),
    ("extended_transport_type", 51, 0x07),
    ("sap_supported", 139, 0x04),
]
PATH_FIELD_BITS = [
    ("flow_label", 36, 0xFFFFF0),
    ("packet_rate", 39, 0x3F),
    ("sl", 42, 0xF0),
    ("subnet_local", 42, 0x08),
    ("local_ack_timeout", 43, 0xF8),
]
REP_FIELD_BITS = [
    ("local_qpn", 12, 0xFFFFFF),
    ("local_eecn", 16, 0xFFFFFF),
    ("starting_psn", 20, 0xFFFFFF),
    ("target_ack_delay", 26, 0xF8),
    ("failover_accepted", 26, 0x06),
    ("end_to_end_flow_control", 26, 0x01),
    ("rnr_retry_count", 27, 0xE0),
    ("srq", 27, 0x10),
]


def with_field(record_type: type[T], name: str, value: object) -> T:
    """A default record with one field set (by name, for parametrized tests)."""
    fields: dict[str, Any] = {name: value}
    return record_type(**fields)


def expected_bits(size: int, offset: int, mask: int) -> bytes:
    width = (mask.bit_length() + 7) // 8
    v = bytearray(size)
    v[offset : offset + width] = mask.to_bytes(width, "big")
    return bytes(v)


def all_ones(mask: int) -> int:
    """The field's maximum value: as many one bits as the mask has."""
    return (1 << bin(mask).count("1")) - 1


@pytest.mark.parametrize(("name", "offset", "mask"), REQ_FIELD_BITS)
def test_req_field_positions(name: str, offset: int, mask: int) -> None:
    value: int | bool = True if mask in (0x01, 0x08, 0x04) else all_ones(mask)
    assert with_field(Req, name, value).pack() == expected_bits(232, offset, mask)


@pytest.mark.parametrize(("name", "offset", "mask"), PATH_FIELD_BITS)
def test_path_field_positions(name: str, offset: int, mask: int) -> None:
    value: int | bool = True if mask == 0x08 else all_ones(mask)
    path = with_field(CmPath, name, value)
    assert path.pack() == expected_bits(44, offset, mask)
    assert Req(primary_path=path).pack() == expected_bits(232, 52 + offset, mask)
    assert Req(alternate_path=path).pack() == expected_bits(232, 96 + offset, mask)


@pytest.mark.parametrize(("name", "offset", "mask"), REP_FIELD_BITS)
def test_rep_field_positions(name: str, offset: int, mask: int) -> None:
    value: int | bool = True if mask in (0x01, 0x10) else all_ones(mask)
    assert with_field(Rep, name, value).pack() == expected_bits(232, offset, mask)


def test_mra_rej_dreq_field_positions() -> None:
    assert Mra(message_mraed=3).pack() == expected_bits(232, 8, 0xC0)
    assert Mra(service_timeout=31).pack() == expected_bits(232, 9, 0xF8)
    assert Rej(message_rejected=3).pack() == expected_bits(232, 8, 0xC0)
    assert Rej(reason=0xFFFF).pack() == expected_bits(232, 10, 0xFFFF)
    assert Dreq(remote_qpn_eecn=0xFFFFFF).pack() == expected_bits(232, 8, 0xFFFFFF)


# --- out of range on pack ------------------------------------------------------------------

REQ_BIT_WIDTHS = {
    "local_qpn": 24,
    "responder_resources": 8,
    "local_eecn": 24,
    "initiator_depth": 8,
    "remote_eecn": 24,
    "remote_cm_response_timeout": 5,
    "transport_service_type": 2,
    "end_to_end_flow_control": 1,
    "starting_psn": 24,
    "local_cm_response_timeout": 5,
    "retry_count": 3,
    "path_packet_payload_mtu": 4,
    "rdc_exists": 1,
    "rnr_retry_count": 3,
    "max_cm_retries": 4,
    "srq": 1,
    "extended_transport_type": 3,
    "sap_supported": 1,
}
PATH_BIT_WIDTHS = {
    "flow_label": 20,
    "packet_rate": 6,
    "sl": 4,
    "subnet_local": 1,
    "local_ack_timeout": 5,
}
REP_BIT_WIDTHS = {
    "local_qpn": 24,
    "local_eecn": 24,
    "starting_psn": 24,
    "target_ack_delay": 5,
    "failover_accepted": 2,
    "end_to_end_flow_control": 1,
    "rnr_retry_count": 3,
    "srq": 1,
}


@pytest.mark.parametrize(("name", "width"), REQ_BIT_WIDTHS.items())
def test_req_bitfield_out_of_range(name: str, width: int) -> None:
    for bad in (1 << width, -1):
        with pytest.raises(WireError, match=f"Req.{name} = {bad} does not fit {width} bits"):
            with_field(Req, name, bad).pack()


@pytest.mark.parametrize(("name", "width"), PATH_BIT_WIDTHS.items())
def test_path_bitfield_out_of_range(name: str, width: int) -> None:
    bad = with_field(CmPath, name, 1 << width)
    with pytest.raises(WireError, match=f"CmPath.{name} = {1 << width}"):
        bad.pack()
    with pytest.raises(WireError, match=f"Req.primary_path.{name} = {1 << width}"):
        Req(primary_path=bad).pack()
    with pytest.raises(WireError, match=f"Req.alternate_path.{name} = {1 << width}"):
        Req(alternate_path=bad).pack()


@pytest.mark.parametrize(("name", "width"), REP_BIT_WIDTHS.items())
def test_rep_bitfield_out_of_range(name: str, width: int) -> None:
    for bad in (1 << width, -1):
        with pytest.raises(WireError, match=f"Rep.{name} = {bad} does not fit {width} bits"):
            with_field(Rep, name, bad).pack()


@pytest.mark.parametrize(
    "record",
    [
        Mra(message_mraed=4),
        Mra(service_timeout=32),
        Rej(message_rejected=4),
        Dreq(remote_qpn_eecn=1 << 24),
        Dreq(remote_qpn_eecn=-1),
    ],
)
def test_small_records_bitfield_out_of_range(record: CmMessage) -> None:
    with pytest.raises(WireError, match="does not fit"):
        record.pack()


@pytest.mark.parametrize(
    "record",
    [
        Req(local_comm_id=1 << 32),
        Req(service_id=1 << 64),
        Req(local_ca_guid=-1),
        Req(local_q_key=1 << 32),
        Req(partition_key=1 << 16),
        Req(primary_path=CmPath(local_lid=1 << 16)),
        Req(alternate_path=CmPath(remote_lid=-1)),
        Req(primary_path=CmPath(traffic_class=256)),
        Req(alternate_path=CmPath(hop_limit=256)),
        Mra(local_comm_id=1 << 32),
        Rej(remote_comm_id=-1),
        Rej(reason=1 << 16),
        Rep(responder_resources=256),
        Rep(initiator_depth=-1),
        Rep(local_ca_guid=1 << 64),
        Rep(local_q_key=1 << 32),
        Rtu(local_comm_id=1 << 32),
        Dreq(remote_comm_id=1 << 32),
        Drep(remote_comm_id=-1),
    ],
)
def test_whole_field_out_of_range(record: CmMessage) -> None:
    with pytest.raises(WireError, match="out of range"):
        record.pack()


def test_cm_mad_header_out_of_range() -> None:
    with pytest.raises(WireError, match="out of range"):
        CmMad(Rtu(), tid=1 << 64).pack()
    with pytest.raises(WireError, match="out of range"):
        CmMad(Rtu(), method=256).pack()


def test_path_out_of_range_standalone() -> None:
    with pytest.raises(WireError, match="out of range"):
        CmPath(local_lid=1 << 16).pack()


@pytest.mark.parametrize("record", RECORDS)
def test_private_data_must_be_full_size(record: type[Any]) -> None:
    size = record.PRIVATE_DATA_SIZE
    for bad in (b"", bytes(size - 1), bytes(size + 1)):
        with pytest.raises(WireError, match=f"private_data must be exactly {size} bytes"):
            record(private_data=bad).pack()


@pytest.mark.parametrize("field", ["local_gid", "remote_gid"])
@pytest.mark.parametrize("size", [0, 15, 17])
def test_gid_must_be_16_bytes(field: str, size: int) -> None:
    path = with_field(CmPath, field, bytes(size))
    with pytest.raises(WireError, match=f"CmPath.{field} must be exactly 16 bytes"):
        path.pack()
    with pytest.raises(WireError, match=f"CmPath.{field} must be exactly 16 bytes"):
        Req(primary_path=path).pack()
    with pytest.raises(WireError, match=f"CmPath.{field} must be exactly 16 bytes"):
        Req(alternate_path=path).pack()


def test_rej_ari_too_long() -> None:
    with pytest.raises(WireError, match="at most 72 bytes"):
        Rej(ari=bytes(73)).pack()
    assert Rej(ari=bytes(72)).pack()[9] == 72 << 1


def test_path_unpack_size() -> None:
    with pytest.raises(WireError, match="44 bytes"):
        CmPath.unpack(bytes(43))

"""Tests for ibmig.wire.notice: the Notice attribute and typed trap DataDetails."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ibmig.errors import WireError
from ibmig.wire.notice import (
    DATA_DETAILS_SIZE,
    NOTICE_SIZE,
    NOTICE_SMP_SIZE,
    PATH_CHANGE_TRAP,
    TRAP_DETAILS,
    GidDetails,
    LinkStateChangeDetails,
    LocalChangeFlags,
    LocalChangesDetails,
    Notice,
    NoticeDetails,
    NoticeType,
    PathChangeDetails,
    PathValues,
    PortThresholdDetails,
    ProducerType,
    SystemImageGuidChangedDetails,
    TrapNumber,
    details_class,
    path_change_notice,
    peek_path_change,
    peek_path_move,
    peek_trap_number,
)
from tests.wire.strategies import gids, u8, u16, u32, u64

GID_A = bytes.fromhex("fe800000000000000002c90300001234")
GID_B = bytes.fromhex("fe80000000000000000000000000abcd")


details_strategies: dict[type[NoticeDetails], st.SearchStrategy[NoticeDetails]] = {
    GidDetails: st.builds(GidDetails, gids),
    LinkStateChangeDetails: st.builds(LinkStateChangeDetails, u16),
    PortThresholdDetails: st.builds(PortThresholdDetails, u16, u8),
    LocalChangesDetails: st.builds(
        LocalChangesDetails, u16, st.booleans(), u32, st.integers(0, 0x3F), u16
    ),
    SystemImageGuidChangedDetails: st.builds(SystemImageGuidChangedDetails, u16, u64),
    PathChangeDetails: st.builds(
        PathChangeDetails,
        gids,
        u16,
        u16,
        u64,
        u64,
        u64,
        st.booleans(),
        st.none()
        | st.builds(
            PathValues,
            st.integers(0, 0xF),
            st.integers(0, 0x3F),
            st.integers(0, 0x3F),
            st.integers(0, 0x3F),
        ),
    ),
}


@st.composite
def notices(draw: st.DrawFn) -> Notice:
    kind = draw(st.sampled_from(["typed", "raw-generic", "vendor"]))
    if kind == "typed":
        trap = draw(st.sampled_from(sorted(TRAP_DETAILS)))
        details: NoticeDetails | bytes = draw(details_strategies[TRAP_DETAILS[trap]])
        generic = True
    elif kind == "raw-generic":
        trap = draw(u16.filter(lambda n: n not in TRAP_DETAILS))
        details = draw(st.binary(min_size=54, max_size=54))
        generic = True
    else:
        trap = draw(u16)
        details = draw(st.binary(min_size=54, max_size=54))
        generic = False
    return Notice(
        is_generic=generic,
        type=draw(st.integers(0, 0x7F)),
        producer_type=draw(st.integers(0, 0xFFFFFF)),
        trap_number=trap,
        issuer_lid=draw(u16),
        notice_toggle=draw(st.booleans()),
        notice_count=draw(st.integers(0, 0x7FFF)),
        details=details,
        issuer_gid=draw(gids),
    )


# ---------------------------------------------------------------- round trips


@given(notices())
def test_notice_round_trip(notice: Notice) -> None:
    raw = notice.pack()
    assert len(raw) == NOTICE_SIZE == Notice.SIZE
    assert Notice.unpack(raw) == notice


@given(notices())
def test_notice_smp_form_round_trip_drops_issuer_gid(notice: Notice) -> None:
    raw = notice.pack_smp()
    assert len(raw) == NOTICE_SMP_SIZE == Notice.SMP_SIZE
    assert raw == notice.pack()[:64]
    assert Notice.unpack_smp(raw) == dataclasses.replace(notice, issuer_gid=bytes(16))


@given(notices(), st.binary(max_size=20), st.binary(max_size=20))
def test_notice_unpack_at_offset_ignores_surroundings(
    notice: Notice, before: bytes, after: bytes
) -> None:
    assert Notice.unpack(before + notice.pack() + after, len(before)) == notice


@pytest.mark.parametrize("klass", list(details_strategies))
@given(data=st.data())
def test_details_round_trip(klass: type[NoticeDetails], data: st.DataObject) -> None:
    details = data.draw(details_strategies[klass])
    raw = details.pack()
    assert len(raw) == DATA_DETAILS_SIZE == klass.SIZE
    assert klass.unpack(raw) == details


# ---------------------------------------------------------------- arbitrary bytes


@given(st.binary(max_size=100), st.integers(-2, 30))
def test_arbitrary_bytes_give_notice_or_wire_error(data: bytes, offset: int) -> None:
    for decode in (Notice.unpack, Notice.unpack_smp):
        try:
            notice = decode(data, offset)
        except WireError:
            continue
        # Whatever decodes re-encodes, and decodes again to the same record.
        again = Notice.unpack(notice.pack())
        assert again == notice


@pytest.mark.parametrize("klass", list(details_strategies))
@given(data=st.binary(max_size=70))
def test_arbitrary_bytes_give_details_or_wire_error(
    klass: type[NoticeDetails], data: bytes
) -> None:
    try:
        details = klass.unpack(data)
    except WireError:
        assert len(data) < DATA_DETAILS_SIZE
        return
    assert klass.unpack(details.pack()) == details


# ---------------------------------------------------------------- vectors built by hand

PATH_CHANGE_BYTES = bytes.fromhex(
    "83"  # IsGeneric 1, Type 3 (subnet management)
    "000004"  # ProducerType: class manager
    "0045"  # TrapNumber 69
    "0001"  # IssuerLID
    "0005"  # NoticeToggle 0, NoticeCount 5
    # DataDetails (54 bytes)
    "0000000000000004"  # ComponentMask: DGID
    "00"  # WaitForRepath 0
    "00"  # reserved
    "fe800000000000000002c90300001234"  # GIDADDR: subnet prefix + vGUID
    "0021"  # NewLID
    "0022"  # OldLID
    "0002c90300001111"  # NewPortGUID
    "0002c90300002222"  # OldPortGUID
    "0000000000000000"  # reserved
    "fe80000000000000000000000000abcd"  # IssuerGID
)
PATH_CHANGE = Notice(
    is_generic=True,
    type=NoticeType.SM,
    producer_type=ProducerType.CLASS_MANAGER,
    trap_number=TrapNumber.REPATH,
    issuer_lid=1,
    notice_toggle=False,
    notice_count=5,
    details=PathChangeDetails(
        gid=GID_A,
        new_lid=0x21,
        old_lid=0x22,
        new_port_guid=0x0002C90300001111,
        old_port_guid=0x0002C90300002222,
    ),
    issuer_gid=GID_B,
)

GID_IN_SERVICE_BYTES = bytes.fromhex(
    "83"  # IsGeneric 1, Type 3
    "000004"  # ProducerType: class manager
    "0040"  # TrapNumber 64
    "0007"  # IssuerLID
    "8003"  # NoticeToggle 1, NoticeCount 3
    "000000000000"  # reserved
    "fe800000000000000002c90300001234"  # GIDADDR
    + "00" * 32  # rest of DataDetails
    + "fe80000000000000000000000000abcd"
)
GID_IN_SERVICE = Notice(
    is_generic=True,
    type=3,
    producer_type=4,
    trap_number=64,
    issuer_lid=7,
    notice_toggle=True,
    notice_count=3,
    details=GidDetails(GID_A),
    issuer_gid=GID_B,
)

LINK_STATE_BYTES = bytes.fromhex(
    "81"  # IsGeneric 1, Type 1 (urgent)
    "000002"  # ProducerType: switch
    "0080"  # TrapNumber 128
    "0009"  # IssuerLID
    "1234"  # NoticeToggle 0, NoticeCount 0x1234
    "0077"  # LIDADDR
    + "00" * 52  # rest of DataDetails
    + "00" * 16  # IssuerGID
)
LINK_STATE = Notice(
    type=NoticeType.URGENT,
    producer_type=ProducerType.SWITCH,
    trap_number=128,
    issuer_lid=9,
    notice_count=0x1234,
    details=LinkStateChangeDetails(0x77),
)

LOCAL_CHANGES_BYTES = bytes.fromhex(
    "84"  # IsGeneric 1, Type 4 (informational)
    "000001"  # ProducerType: CA
    "0090"  # TrapNumber 144
    "0011"  # IssuerLID
    "0000"  # NoticeToggle, NoticeCount
    "0000"  # reserved
    "0011"  # LIDADDR
    "00"  # reserved
    "01"  # reserved 7 bits, OtherLocalChanges 1
    "02510868"  # CapabilityMask
    "0021"  # reserved 10 bits, change flags: CapabilityMask2Change | NodeDescriptionChange
    "0040"  # CapabilityMask2
    + "00" * 40  # rest of DataDetails
    + "00" * 16  # IssuerGID
)
LOCAL_CHANGES = Notice(
    type=NoticeType.INFO,
    producer_type=ProducerType.CA,
    trap_number=144,
    issuer_lid=0x11,
    details=LocalChangesDetails(
        lid=0x11,
        other_local_changes=True,
        capability_mask=0x02510868,
        change_flags=LocalChangeFlags.CAPABILITY_MASK2_CHANGE
        | LocalChangeFlags.NODE_DESCRIPTION_CHANGE,
        capability_mask2=0x40,
    ),
)

VENDOR_BYTES = (
    bytes.fromhex(
        "04"  # IsGeneric 0, Type 4
        "0002c9"  # VendorID
        "1234"  # DeviceID
        "0003"  # IssuerLID
        "0000"  # NoticeToggle, NoticeCount
    )
    + bytes(range(54))  # vendor DataDetails
    + bytes(16)  # IssuerGID
)
VENDOR = Notice(
    is_generic=False,
    type=4,
    producer_type=0x0002C9,
    trap_number=0x1234,
    issuer_lid=3,
    details=bytes(range(54)),
)

VECTORS = [
    (PATH_CHANGE_BYTES, PATH_CHANGE),
    (GID_IN_SERVICE_BYTES, GID_IN_SERVICE),
    (LINK_STATE_BYTES, LINK_STATE),
    (LOCAL_CHANGES_BYTES, LOCAL_CHANGES),
    (VENDOR_BYTES, VENDOR),
]


@pytest.mark.parametrize(("raw", "notice"), VECTORS)
def test_hand_built_vectors_both_ways(raw: bytes, notice: Notice) -> None:
    assert len(raw) == 80
    assert Notice.unpack(raw) == notice
    assert notice.pack() == raw


def test_path_change_notice_factory_builds_the_documented_encoding() -> None:
    notice = path_change_notice(
        gid=GID_A,
        new_lid=0x21,
        old_lid=0x22,
        new_port_guid=0x0002C90300001111,
        old_port_guid=0x0002C90300002222,
        issuer_lid=1,
        issuer_gid=GID_B,
        notice_count=5,
    )
    assert notice == PATH_CHANGE
    assert notice.pack() == PATH_CHANGE_BYTES
    details = Notice.unpack(PATH_CHANGE_BYTES).details
    assert isinstance(details, PathChangeDetails)
    assert details.vguid == 0x0002C90300001234
    assert details.subnet_prefix == 0xFE80000000000000
    assert int(PATH_CHANGE_TRAP) == 69


def test_decoded_enumerations_are_enum_members() -> None:
    notice = Notice.unpack(PATH_CHANGE_BYTES)
    assert notice.type is NoticeType.SM
    assert notice.producer_type is ProducerType.CLASS_MANAGER
    assert notice.trap_number is TrapNumber.REPATH
    vendor = Notice.unpack(VENDOR_BYTES)
    assert type(vendor.producer_type) is int  # a VendorID, not a ProducerType
    assert vendor.vendor_id == 0x2C9 and vendor.device_id == 0x1234


def test_unknown_generic_trap_and_vendor_notice_keep_raw_details() -> None:
    raw = bytearray(PATH_CHANGE_BYTES)
    raw[4:6] = (0x1FF).to_bytes(2, "big")  # no typed details for trap 511
    notice = Notice.unpack(bytes(raw))
    assert notice.details == bytes(raw[10:64])
    raw[0] = 0x03  # vendor specific: DeviceID 0x45 is not trap 69
    assert isinstance(Notice.unpack(bytes(raw)).details, bytes)


def test_smp_form_hand_vector() -> None:
    notice = Notice.unpack_smp(LINK_STATE_BYTES[:64])
    assert notice == LINK_STATE
    assert LINK_STATE.pack_smp() == LINK_STATE_BYTES[:64]


# ---------------------------------------------------------------- trap table


def test_details_class_maps_trap_numbers() -> None:
    for trap in (64, 65, 66, 67):
        assert details_class(trap) is GidDetails
    assert details_class(69) is PathChangeDetails
    assert details_class(128) is LinkStateChangeDetails
    for trap in (129, 130, 131):
        assert details_class(trap) is PortThresholdDetails
    assert details_class(144) is LocalChangesDetails
    assert details_class(145) is SystemImageGuidChangedDetails
    for trap in (68, 256, 257, 258, 259, 0, 0xFFFF):
        assert details_class(trap) is None


def test_enumerations_match_the_specification() -> None:
    assert [int(t) for t in NoticeType] == [0, 1, 2, 3, 4, 0x7F]
    assert [int(p) for p in ProducerType] == [1, 2, 3, 4]
    numbers = {t.name: int(t) for t in TrapNumber}
    assert numbers["GID_IN_SERVICE"] == 64 and numbers["BAD_SWITCH_P_KEY"] == 259
    assert numbers["LINK_STATE_CHANGE"] == 128 and numbers["LOCAL_CHANGES"] == 144


# ---------------------------------------------------------------- out of range on pack


@pytest.mark.parametrize(
    "bad",
    [
        dataclasses.replace(LINK_STATE, type=0x80),
        dataclasses.replace(LINK_STATE, type=-1),
        dataclasses.replace(LINK_STATE, producer_type=1 << 24),
        dataclasses.replace(LINK_STATE, notice_count=0x8000),
        dataclasses.replace(LINK_STATE, trap_number=0x10000),
        dataclasses.replace(LINK_STATE, issuer_lid=-1),
        dataclasses.replace(LINK_STATE, issuer_gid=bytes(15)),
        dataclasses.replace(VENDOR, details=bytes(53)),
        # typed details that do not belong to the trap number
        dataclasses.replace(LINK_STATE, details=GidDetails(GID_A)),
        dataclasses.replace(LINK_STATE, is_generic=False),
        dataclasses.replace(LINK_STATE, details=LinkStateChangeDetails(0x10000)),
        dataclasses.replace(GID_IN_SERVICE, details=GidDetails(bytes(17))),
    ],
)
def test_out_of_range_values_raise_wire_error(bad: Notice) -> None:
    with pytest.raises(WireError):
        bad.pack()


@pytest.mark.parametrize(
    "bad",
    [
        PortThresholdDetails(1, 256),
        LocalChangesDetails(1, change_flags=0x40),
        LocalChangesDetails(1, capability_mask=1 << 32),
        SystemImageGuidChangedDetails(1, 2**64),
        PathChangeDetails(GID_A, 0x10000, 1, 2),
        PathChangeDetails(GID_A, 1, 1, 2**64),
        PathChangeDetails(GID_A[:8], 1, 1, 1),
        PathChangeDetails(GID_A, 1, 1, 1, component_mask=-1),
    ],
)
def test_out_of_range_details_raise_wire_error(bad: NoticeDetails) -> None:
    with pytest.raises(WireError):
        bad.pack()


def test_short_buffers_raise_wire_error() -> None:
    with pytest.raises(WireError):
        Notice.unpack(PATH_CHANGE_BYTES[:79])
    with pytest.raises(WireError):
        Notice.unpack(PATH_CHANGE_BYTES, 1)
    with pytest.raises(WireError):
        Notice.unpack_smp(PATH_CHANGE_BYTES[:63])
    with pytest.raises(WireError):
        Notice.unpack(PATH_CHANGE_BYTES, -1)


@given(notices(), st.binary(max_size=40))
def test_peeking_agrees_with_decoding(notice: Notice, before: bytes) -> None:
    raw = before + notice.pack() + b"\xee" * 7
    decoded = Notice.unpack(raw, len(before))
    trap = peek_trap_number(raw, len(before))
    assert trap == (decoded.trap_number if decoded.is_generic else None)
    details = peek_path_change(raw, len(before))
    moved = peek_path_move(raw, len(before))
    if decoded.is_generic and decoded.trap_number == PATH_CHANGE_TRAP:
        assert isinstance(decoded.details, PathChangeDetails)
        assert details == decoded.details
        assert moved == (details.gid, details.new_lid, details.path)
    else:
        assert details is None and moved is None


@pytest.mark.parametrize("flags", [0x00, 0x40, 0xBF, 0xFF])
def test_peeking_the_move_agrees_with_decoding_whatever_the_reserved_bits(flags: int) -> None:
    """Reserved bits set (in the flags byte and around the path's values) are
    dropped alike by the decoder and by `peek_path_move`; the values are read only
    when the PathValues flag (bit 6) says so."""
    raw = bytearray(
        path_change_notice(gid=GID_A, new_lid=0x1234, old_lid=7, new_port_guid=9).pack()
    )
    raw[10 + 8] = flags
    raw[10 + 46 : 10 + 50] = bytes((0xF5, 0xC4, 0xFF, 0x52))
    decoded = Notice.unpack(bytes(raw))
    assert isinstance(decoded.details, PathChangeDetails)
    path = PathValues(5, 4, 0x3F, 0x12) if flags & 0x40 else None
    assert decoded.details.path == path
    assert peek_path_move(bytes(raw)) == (GID_A, 0x1234, path)


def test_peeking_a_vendor_notice_with_device_id_69_finds_no_path_change() -> None:
    vendor = Notice(is_generic=False, producer_type=0x02C9, trap_number=PATH_CHANGE_TRAP)
    assert peek_trap_number(vendor.pack()) is None
    assert peek_path_change(vendor.pack()) is None
    assert peek_path_move(vendor.pack()) is None
    with pytest.raises(WireError):
        peek_path_change(vendor.pack()[:79])
    with pytest.raises(WireError):
        peek_path_move(vendor.pack()[:79])

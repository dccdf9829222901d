"""The ib_user_mad ABI as bytes, checked by hand against include/uapi/rdma/ib_user_mad.h."""

from __future__ import annotations

import struct
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ibmig.errors import WireError
from ibmig.umad.abi import (
    HEADER_SIZE,
    IB_USER_MAD_ENABLE_PKEY,
    IB_USER_MAD_REGISTER_AGENT,
    IB_USER_MAD_UNREGISTER_AGENT,
    OLD_HEADER_SIZE,
    RegisterRequest,
    UmadHeader,
    method_mask,
)

HOST = "<" if sys.byteorder == "little" else ">"


def test_ioctl_numbers_are_the_kernels() -> None:
    # _IOWR(0x1b, 1, 28), _IOW(0x1b, 2, u32), _IO(0x1b, 3)
    assert IB_USER_MAD_REGISTER_AGENT == 0xC01C1B01
    assert IB_USER_MAD_UNREGISTER_AGENT == 0x40041B02
    assert IB_USER_MAD_ENABLE_PKEY == 0x00001B03


def test_header_by_hand() -> None:
    gid = bytes(range(16))
    header = UmadHeader(
        agent_id=3,
        status=110,
        timeout_ms=2000,
        retries=0,
        length=320,
        qpn=1,
        qkey=0x80010000,
        lid=0x0102,
        sl=5,
        path_bits=1,
        grh_present=True,
        gid_index=2,
        hop_limit=255,
        traffic_class=7,
        gid=gid,
        flow_label=0x12345,
        pkey_index=9,
    )
    data = header.pack()
    assert len(data) == HEADER_SIZE == 64
    assert struct.unpack_from(HOST + "5I", data) == (3, 110, 2000, 0, 320)
    assert data[20:24] == b"\x00\x00\x00\x01"  # qpn, network order
    assert data[24:28] == b"\x80\x01\x00\x00"  # qkey
    assert data[28:30] == b"\x01\x02"  # lid
    assert data[30:36] == bytes([5, 1, 1, 2, 255, 7])
    assert data[36:52] == gid
    assert data[52:56] == b"\x00\x01\x23\x45"  # flow label
    assert struct.unpack_from(HOST + "H", data, 56) == (9,)  # pkey_index, host order
    assert data[58:64] == bytes(6)
    assert UmadHeader.unpack(data) == header


def test_the_56_byte_header_has_no_pkey_index() -> None:
    header = UmadHeader(agent_id=1, lid=7, pkey_index=4)
    short = header.pack_as(OLD_HEADER_SIZE)
    assert short == header.pack()[:56]
    assert UmadHeader.unpack(short + b"MAD", OLD_HEADER_SIZE) == UmadHeader(agent_id=1, lid=7)
    with pytest.raises(WireError):
        header.pack_as(60)
    with pytest.raises(WireError):
        UmadHeader.unpack(short)  # 56 bytes are not a 64-byte header


def test_register_request_by_hand() -> None:
    request = RegisterRequest(qpn=1, mgmt_class=0x03, mgmt_class_version=2, methods=(1, 2, 0x12))
    data = request.pack()
    assert len(data) == 28
    # id, then method_mask[4]: bits 1 (Get), 2 (Set), 0x12 (GetTable) of word 0.
    assert struct.unpack_from(HOST + "5I", data) == (0, 1 << 1 | 1 << 2 | 1 << 0x12, 0, 0, 0)
    assert data[20:28] == bytes([1, 0x03, 2, 0, 0, 0, 0, 0])
    answer = bytearray(data)
    answer[0:4] = struct.pack(HOST + "I", 5)
    assert RegisterRequest.agent_id(bytes(answer)) == 5


def test_method_mask_bits_and_refusals() -> None:
    assert method_mask((0x01, 0x05, 0x12, 0x7F)) == (1 << 1 | 1 << 5 | 1 << 18, 0, 0, 1 << 31)
    with pytest.raises(WireError):
        method_mask((0x81,))  # a response method is never registered
    with pytest.raises(WireError):
        RegisterRequest(0, 1, 1, oui=b"\0").pack()


@given(
    st.builds(
        UmadHeader,
        agent_id=st.integers(0, 2**32 - 1),
        status=st.integers(0, 2**32 - 1),
        timeout_ms=st.integers(0, 2**32 - 1),
        retries=st.integers(0, 2**32 - 1),
        length=st.integers(0, 2**32 - 1),
        qpn=st.integers(0, 2**32 - 1),
        qkey=st.integers(0, 2**32 - 1),
        lid=st.integers(0, 0xFFFF),
        sl=st.integers(0, 255),
        path_bits=st.integers(0, 255),
        grh_present=st.booleans(),
        gid_index=st.integers(0, 255),
        hop_limit=st.integers(0, 255),
        traffic_class=st.integers(0, 255),
        gid=st.binary(min_size=16, max_size=16),
        flow_label=st.integers(0, 2**32 - 1),
        pkey_index=st.integers(0, 0xFFFF),
    )
)
def test_header_round_trip(header: UmadHeader) -> None:
    assert UmadHeader.unpack(header.pack()) == header


def test_out_of_range_is_a_wire_error() -> None:
    with pytest.raises(WireError):
        UmadHeader(agent_id=0, lid=0x10000).pack()
    with pytest.raises(WireError):
        UmadHeader(agent_id=0, gid=b"short").pack()
    with pytest.raises(WireError):
        UmadHeader.unpack(bytes(10))

"""The IP CM header of rdma_cm (IBA Vol 1, Annex A11.4): bytes both ways for IPv4
and IPv6, round trips, any bytes give a record or a WireError, and the Service ID
range of A11.2."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ibmig.errors import WireError
from ibmig.wire.rdma_cm import (
    IP_CM_HEADER_SIZE,
    IpCmHeader,
    IpVersion,
    cma_header,
    ip_cm_service_id,
    is_ip_cm_service_id,
    parse_cma_header,
)
from tests.wire.strategies import ipv4s, ipv6s, u16

V4 = (
    bytes([0x00, 0x40, 0x12, 0x34])  # version 0.0, IPV 4, source port 0x1234
    + bytes(12) + bytes([10, 1, 2, 3])  # SrcIP: IPv4 in the last 4 bytes
    + bytes(12) + bytes([192, 168, 0, 9])  # DstIP
)  # fmt: skip
V4_RECORD = IpCmHeader(IPv4Address("10.1.2.3"), IPv4Address("192.168.0.9"), 0x1234)

V6 = (
    bytes([0x00, 0x60, 0xC0, 0x01])  # IPV 6, source port 0xC001
    + bytes.fromhex("fe800000000000000002c90300001234")
    + bytes.fromhex("20010db8000000000000000000000001")
)
V6_RECORD = IpCmHeader(IPv6Address("fe80::2:c903:0:1234"), IPv6Address("2001:db8::1"), 0xC001)


@pytest.mark.parametrize(("raw", "record"), [(V4, V4_RECORD), (V6, V6_RECORD)])
def test_ip_cm_header_vectors_both_ways(raw: bytes, record: IpCmHeader) -> None:
    assert IpCmHeader.unpack(raw) == record
    assert record.pack() == raw
    assert len(raw) == IP_CM_HEADER_SIZE


def test_ip_cm_header_reads_only_its_36_bytes() -> None:
    private_data = (V4 + b"consumer data").ljust(92, b"\0")  # a REQ's Private Data
    assert IpCmHeader.unpack(private_data) == V4_RECORD
    assert V4_RECORD.ip_version is IpVersion.IPV4 and V6_RECORD.ip_version is IpVersion.IPV6


def test_ipv4_padding_and_reserved_bits_are_ignored_on_receipt() -> None:
    raw = bytearray(V4)
    raw[1] |= 0x0F  # reserved nibble
    raw[4:16] = b"\xff" * 12  # padding before SrcIP
    assert IpCmHeader.unpack(bytes(raw)) == V4_RECORD


def test_cma_header_helpers_as_the_guest_uses_them() -> None:
    src, dst = IPv4Address("10.1.2.3"), IPv4Address("192.168.0.9")
    assert cma_header(src, dst, 0x1234) == V4
    assert parse_cma_header(V4 + bytes(56)) == (src, dst)
    assert parse_cma_header(bytes(10)) is None  # too short
    assert parse_cma_header(V6) is None  # IPv6: the guest model speaks IPv4 only
    assert parse_cma_header(b"\x10" + V4[1:]) is None  # version 1.0
    assert parse_cma_header(V4[:1] + b"\x50" + V4[2:]) is None  # IPV 5


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (V4[:35], "36 bytes"),
        (b"\x10" + V4[1:], "version 1.0"),
        (b"\x01" + V4[1:], "version 0.1"),
        (V4[:1] + b"\x00" + V4[2:], "IP version 0"),
        (V4[:1] + b"\x50" + V4[2:], "IP version 5"),
    ],
)
def test_ip_cm_header_refuses(raw: bytes, message: str) -> None:
    with pytest.raises(WireError, match=message):
        IpCmHeader.unpack(raw)


def test_ip_cm_header_out_of_range() -> None:
    with pytest.raises(WireError, match="16 bits"):
        IpCmHeader(V4_RECORD.src_ip, V4_RECORD.dst_ip, 0x10000).pack()
    with pytest.raises(WireError, match="mixes"):
        IpCmHeader(V4_RECORD.src_ip, V6_RECORD.dst_ip).pack()


headers = st.one_of(
    st.builds(IpCmHeader, ipv4s, ipv4s, u16),
    st.builds(IpCmHeader, ipv6s, ipv6s, u16),
)


@given(headers)
def test_ip_cm_header_round_trip(header: IpCmHeader) -> None:
    assert IpCmHeader.unpack(header.pack()) == header


@given(st.binary(max_size=48), st.sampled_from([0x40, 0x60, 0x00]))
def test_ip_cm_header_any_bytes_give_a_record_or_wire_error(data: bytes, ipv: int) -> None:
    # The second form carries a valid version and IPV, so both outcomes are reached.
    for raw in (data, bytes([0x00, ipv]) + data):
        try:
            header = IpCmHeader.unpack(raw)
        except WireError:
            assert len(raw) < IP_CM_HEADER_SIZE or raw[0] != 0 or raw[1] >> 4 not in (4, 6)
            continue
        again = header.pack()
        assert again[0] == 0 and again[1] == raw[1] & 0xF0 and again[2:4] == raw[2:4]
        if header.ip_version is IpVersion.IPV6:
            assert again == raw[:IP_CM_HEADER_SIZE]
        else:
            assert again[16:20] == raw[16:20] and again[32:36] == raw[32:36]


def test_service_id_range() -> None:
    # Linux rdma_cm, port space RDMA_PS_TCP (protocol 0x06), port 4791.
    assert ip_cm_service_id(0x06, 4791) == 0x00000000010612B7
    assert is_ip_cm_service_id(0x00000000010612B7)
    assert not is_ip_cm_service_id(0x0000000000010000)
    assert not is_ip_cm_service_id(0x00000001010612B7)
    with pytest.raises(WireError):
        ip_cm_service_id(0x100, 0)
    with pytest.raises(WireError):
        ip_cm_service_id(0x06, 0x10000)

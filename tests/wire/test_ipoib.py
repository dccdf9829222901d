"""The IPoIB ARP packet (RFC 4391, 6 and 9.1): bytes both ways, round trips, and
any bytes give a record or a WireError."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ibmig.errors import WireError
from ibmig.wire.ipoib import ARP_REPLY, ARP_REQUEST, ArpOp, IpoibArp
from tests.wire.strategies import gids, ipv4s, u8, u24

SENDER_GID = bytes(range(0xF0, 0x100))
TARGET_GID = bytes.fromhex("fe800000000000000002c90300001234")

GRATUITOUS = (
    bytes([0x08, 0x06, 0x00, 0x00])  # IPoIB header: ARP, reserved (RFC 4391, 6)
    + bytes([0x00, 0x20, 0x08, 0x00, 20, 4, 0x00, 0x01])  # hrd 32, IPv4, 20, 4, request
    + bytes([0x00, 0x00, 0x00, 0x48]) + SENDER_GID  # flags, QPN 0x48, GID
    + bytes([10, 0, 0, 7])  # sender IP
    + bytes(20)  # target hardware address: unknown
    + bytes([10, 0, 0, 7])  # target IP = sender IP: gratuitous
)  # fmt: skip

REPLY = (
    bytes([0x08, 0x06, 0x00, 0x00])
    + bytes([0x00, 0x20, 0x08, 0x00, 20, 4, 0x00, 0x02])  # reply
    + bytes([0x80, 0x12, 0x34, 0x56]) + SENDER_GID  # connected-mode flag, QPN 0x123456
    + bytes([192, 168, 1, 2])
    + bytes([0x00, 0xAB, 0xCD, 0xEF]) + TARGET_GID
    + bytes([192, 168, 1, 1])
)  # fmt: skip


def test_gratuitous_arp_vector_both_ways() -> None:
    arp = IpoibArp.gratuitous(IPv4Address("10.0.0.7"), 0x48, SENDER_GID)
    assert arp.pack() == GRATUITOUS
    assert IpoibArp.unpack(GRATUITOUS) == arp
    assert arp.op == ArpOp.REQUEST == ARP_REQUEST


def test_reply_vector_both_ways() -> None:
    arp = IpoibArp(
        ARP_REPLY, 0x123456, SENDER_GID, IPv4Address("192.168.1.2"), IPv4Address("192.168.1.1"),
        target_qpn=0xABCDEF, target_gid=TARGET_GID, sender_flags=0x80,
    )  # fmt: skip
    assert arp.pack() == REPLY
    assert IpoibArp.unpack(REPLY) == arp


def test_reserved_half_of_the_header_is_ignored() -> None:
    raw = GRATUITOUS[:2] + b"\xff\xff" + GRATUITOUS[4:]
    assert IpoibArp.unpack(raw).pack() == GRATUITOUS


arps = st.builds(
    IpoibArp,
    op=st.sampled_from(list(ArpOp)),
    sender_qpn=u24,
    sender_gid=gids,
    sender_ip=ipv4s,
    target_ip=ipv4s,
    target_qpn=u24,
    target_gid=gids,
    sender_flags=u8,
    target_flags=u8,
)


@given(arps)
def test_arp_round_trip(arp: IpoibArp) -> None:
    assert IpoibArp.unpack(arp.pack()) == arp


@given(st.one_of(st.binary(max_size=80), st.binary(min_size=56, max_size=56)))
def test_arp_any_bytes_give_a_record_or_wire_error(data: bytes) -> None:
    # Half the examples carry a valid ARP prefix, so both outcomes are reached.
    for raw in (data, GRATUITOUS[: 4 + 8] + data[: IpoibArp.SIZE - 12]):
        try:
            arp = IpoibArp.unpack(raw)
        except WireError:
            continue
        assert arp.pack()[4:] == raw[4:]  # all but the reserved header half


@pytest.mark.parametrize(
    "change",
    [
        {"sender_qpn": 1 << 24},
        {"target_qpn": -1},
        {"sender_gid": bytes(15)},
        {"target_gid": bytes(17)},
        {"sender_flags": 0x100},
        {"op": 0x10000},
    ],
)
def test_arp_out_of_range(change: dict[str, object]) -> None:
    fields: dict[str, object] = {
        "op": ARP_REQUEST, "sender_qpn": 1, "sender_gid": bytes(16),
        "sender_ip": IPv4Address("10.0.0.1"), "target_ip": IPv4Address("10.0.0.1"),
    }  # fmt: skip
    fields.update(change)
    with pytest.raises(WireError):
        IpoibArp(**fields).pack()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("offset", "value", "message"),
    [
        (0, bytes([0x08, 0x00]), "not ARP"),  # an IPv4 packet
        (4, bytes([0x00, 0x01]), "not an IPoIB"),  # Ethernet hardware type
        (6, bytes([0x86, 0xDD]), "not an IPoIB"),  # IPv6 protocol
        (8, bytes([6]), "not an IPoIB"),  # 6-byte hardware address
        (9, bytes([16]), "not an IPoIB"),  # 16-byte protocol address
    ],
)
def test_arp_refuses_other_packets(offset: int, value: bytes, message: str) -> None:
    raw = GRATUITOUS[:offset] + value + GRATUITOUS[offset + len(value) :]
    with pytest.raises(WireError, match=message):
        IpoibArp.unpack(raw)


@pytest.mark.parametrize("size", [0, 59, 61])
def test_arp_wrong_size(size: int) -> None:
    with pytest.raises(WireError, match="60 bytes"):
        IpoibArp.unpack((GRATUITOUS * 2)[:size])

"""ICRC and VCRC (IBA Vol 1, 7.8) against a bit-serial reference written here.

The reference follows the textbook definition of a link CRC rather than the
module's table/zlib code: bits enter a shift register least significant bit of
each byte first (the order they are sent), the register starts at all ones,
the remainder is complemented and sent highest-order coefficient first, and the
sent bits are packed back into bytes least significant bit first. The masking
of variant fields is done here field by field from the header layouts.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ibmig.errors import WireError
from ibmig.wire.crc import icrc, icrc_of_masked, vcrc
from ibmig.wire.packet import build_ud_packet

CRC32_POLY = 0x04C11DB7  # IBA Vol 1, 7.8.1: the Ethernet polynomial
CRC16_POLY = 0x100B  # IBA Vol 1, 7.8.2


def reference_crc_wire(data: bytes, poly: int, width: int) -> bytes:
    """Bit-serial CRC with all-ones preset and complemented remainder; returns
    the CRC bytes in the order they are transmitted."""
    top = 1 << (width - 1)
    mask = (1 << width) - 1
    reg = mask
    for byte in data:
        for i in range(8):  # least significant bit first
            feedback = bool(reg & top) ^ ((byte >> i) & 1)
            reg = (reg << 1) & mask
            if feedback:
                reg ^= poly
    remainder = reg ^ mask
    sent_bits = [(remainder >> (width - 1 - k)) & 1 for k in range(width)]
    out = bytearray()
    for k in range(0, width, 8):
        out.append(sum(bit << i for i, bit in enumerate(sent_bits[k : k + 8])))
    return bytes(out)


def reference_mask(packet: bytes) -> bytes:
    """Variant fields replaced by ones (IBA Vol 1, 7.8.1), from the layouts."""
    data = bytearray(packet)
    lnh = data[1] & 0b11
    if lnh == 0b10:  # local: LRH VL (byte 0, high nibble), BTH Resv8a (BTH byte 4)
        data[0] |= 0xF0
        data[8 + 4] = 0xFF
    else:  # global: whole LRH; GRH TClass+FlowLabel (bits 27..0), HopLmt (byte 7)
        assert lnh == 0b11
        data[0:8] = b"\xff" * 8
        data[8] |= 0x0F
        data[9:12] = b"\xff\xff\xff"
        data[8 + 7] = 0xFF
        data[48 + 4] = 0xFF
    return bytes(data)


def reference_icrc(packet_without_crcs: bytes) -> int:
    wire = reference_crc_wire(reference_mask(packet_without_crcs), CRC32_POLY, 32)
    return int.from_bytes(wire, "big")


def reference_vcrc(packet_through_icrc: bytes) -> int:
    return int.from_bytes(reference_crc_wire(packet_through_icrc, CRC16_POLY, 16), "big")


def test_reference_crc32_is_the_ethernet_crc() -> None:
    # The standard CRC-32 check value of "123456789" is 0xCBF43926, sent LSB first.
    assert reference_crc_wire(b"123456789", CRC32_POLY, 32) == bytes.fromhex("2639f4cb")


# A RoCEv2 CNP captured on a Mellanox ConnectX-4 Lx (from scapy's test suite,
# test/contrib/roce.uts): Ethernet, IPv4, UDP 4791, BTH opcode 0x81, 16 bytes
# of zeros, ICRC 82 fd 00 2a. RoCEv2 computes the IBA ICRC over 8 bytes of ones
# (the masked LRH), the IP header with TOS, TTL and checksum ones, the UDP
# header with checksum ones, and the BTH with Resv8a ones (IBA Annex A17).
CNP_CAPTURE = bytes.fromhex(
    "e41d2dab2bc27cfe90643b32080045c2"
    "003c718c4000401191610a0011010a00"
    "1201000012b7002800008100ffff4000"
    "01180000000000000000000000000000"
    "00000000000082fd002a"
)


def test_icrc_convention_matches_hardware_roce_capture() -> None:
    ip = bytearray(CNP_CAPTURE[14:34])
    udp = bytearray(CNP_CAPTURE[34:42])
    bth = bytearray(CNP_CAPTURE[42:54])
    rest = CNP_CAPTURE[54:-4]
    ip[1] = 0xFF  # TOS
    ip[8] = 0xFF  # TTL
    ip[10:12] = b"\xff\xff"  # header checksum
    udp[6:8] = b"\xff\xff"  # checksum
    bth[4] = 0xFF  # Resv8a
    masked = b"\xff" * 8 + ip + udp + bth + rest
    assert CNP_CAPTURE[-4:] == bytes.fromhex("82fd002a")
    assert icrc_of_masked(masked) == 0x82FD002A
    assert reference_crc_wire(masked, CRC32_POLY, 32) == CNP_CAPTURE[-4:]


def _local_packet(*, vl: int, sl: int, dlid: int, slid: int, resv8a: int, payload: bytes) -> bytes:
    words = (8 + 12 + len(payload) + 4) // 4
    lrh = struct.pack(">BBHHH", vl << 4, (sl << 4) | 0b10, dlid, words, slid)
    bth = struct.pack(">BBHII", 0x64, 0, 0xFFFF, (resv8a << 24) | 1, 0)
    return lrh + bth + payload


def _global_packet(
    *, lrh_bytes: bytes, tclass: int, flow: int, hop: int, sgid: bytes, payload: bytes
) -> bytes:
    pay_len = 12 + len(payload) + 4
    grh = struct.pack(">IHBB", (6 << 28) | (tclass << 20) | flow, pay_len, 0x1B, hop)
    lrh = bytearray(lrh_bytes)
    lrh[1] = (lrh[1] & 0xFC) | 0b11
    bth = struct.pack(">BBHII", 0x64, 0, 0xFFFF, 1, 0)
    return bytes(lrh) + grh + sgid + bytes(range(16)) + bth + payload


payloads = st.binary(min_size=0, max_size=64).map(lambda b: b + bytes(-len(b) % 4))


@given(
    vl=st.integers(0, 15),
    sl=st.integers(0, 15),
    dlid=st.integers(0, 0xFFFF),
    slid=st.integers(0, 0xFFFF),
    resv8a=st.integers(0, 0xFF),
    payload=payloads,
)
def test_icrc_local_matches_reference(
    *, vl: int, sl: int, dlid: int, slid: int, resv8a: int, payload: bytes
) -> None:
    packet = _local_packet(vl=vl, sl=sl, dlid=dlid, slid=slid, resv8a=resv8a, payload=payload)
    assert icrc(packet) == reference_icrc(packet)


@given(
    lrh=st.binary(min_size=8, max_size=8),
    tclass=st.integers(0, 0xFF),
    flow=st.integers(0, 0xFFFFF),
    hop=st.integers(0, 0xFF),
    sgid=st.binary(min_size=16, max_size=16),
    payload=payloads,
)
def test_icrc_global_matches_reference(
    *, lrh: bytes, tclass: int, flow: int, hop: int, sgid: bytes, payload: bytes
) -> None:
    packet = _global_packet(
        lrh_bytes=lrh, tclass=tclass, flow=flow, hop=hop, sgid=sgid, payload=payload
    )
    assert icrc(packet) == reference_icrc(packet)


@given(st.binary(max_size=300))
def test_vcrc_matches_reference(data: bytes) -> None:
    assert vcrc(data) == reference_vcrc(data)


def _local(**changes: int | bytes) -> int:
    fields: dict[str, Any] = {"vl": 0, "sl": 0, "dlid": 2, "slid": 1, "resv8a": 0}
    fields["payload"] = bytes(8)
    return icrc(_local_packet(**(fields | changes)))


def _global(**changes: int | bytes) -> int:
    fields: dict[str, Any] = {"lrh_bytes": bytes(8), "tclass": 0, "flow": 0, "hop": 0}
    fields |= {"sgid": bytes(16), "payload": bytes(8)}
    return icrc(_global_packet(**(fields | changes)))


def test_variant_fields_do_not_change_icrc_local() -> None:
    assert _local(vl=15, resv8a=0xAB) == _local()
    assert _local(sl=1) != _local()  # SL is covered in a local packet
    assert _local(dlid=3) != _local()
    assert _local(slid=3) != _local()
    assert _local(payload=b"\x01" + bytes(7)) != _local()


def test_variant_fields_do_not_change_icrc_global() -> None:
    # The LRH (a router rewrites it), TClass, FlowLabel and HopLmt are masked.
    assert _global(lrh_bytes=b"\x5a" * 8, tclass=0xFF, flow=0xABCDE, hop=64) == _global()
    assert _global(sgid=b"\x01" + bytes(15)) != _global()
    assert _global(payload=b"\x01" + bytes(7)) != _global()


def test_vcrc_covers_everything() -> None:
    packet = build_ud_packet(bytes(256), dlid=2, slid=1, dest_qp=1, src_qp=1)
    changed = bytes([packet[0] ^ 0x10]) + packet[1:]  # VL 0 -> 1
    assert vcrc(changed[:-2]) != vcrc(packet[:-2])
    assert int.from_bytes(packet[-2:], "big") == vcrc(packet[:-2])


def test_crc_residues_are_constant() -> None:
    # With the complemented remainder appended low byte first, running the
    # reflected register over data + CRC always leaves the same value; a
    # receiver can check a packet without locating the CRC field.
    residues_v = set()
    for n in range(0, 40, 4):
        packet = build_ud_packet(bytes(range(n)), dlid=2, slid=1, dest_qp=1, src_qp=1)
        residues_v.add(vcrc(packet))
    assert len(residues_v) == 1


def test_icrc_rejects_raw_and_short_packets() -> None:
    with pytest.raises(WireError, match="raw"):
        icrc(bytes([0, 0b00]) + bytes(30))
    with pytest.raises(WireError, match="raw"):
        icrc(bytes([0, 0b01]) + bytes(30))
    with pytest.raises(WireError, match="BTH"):
        icrc(bytes([0, 0b10]) + bytes(10))
    with pytest.raises(WireError, match="BTH"):
        icrc(bytes([0, 0b11]) + bytes(40))
    with pytest.raises(WireError, match="LRH"):
        icrc(b"\x00")


@given(st.binary(max_size=80))
def test_icrc_any_bytes_int_or_wire_error(data: bytes) -> None:
    try:
        value = icrc(data)
    except WireError:
        return
    assert 0 <= value < 1 << 32

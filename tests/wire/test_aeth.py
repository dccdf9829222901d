"""AETH, the ACK Extended Transport Header (IBA Vol 1, 9.3.5): bytes both ways,
round trips, and any 4 bytes decode."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ibmig.errors import WireError
from ibmig.wire.packet import AETH_SIZE, Aeth, AethSyndrome, Packet, pack_aeth
from tests.wire.strategies import u8, u24
from tests.wire.tshark_util import rc_ack_packet

# (bytes, record): Syndrome in byte 0, MSN in bytes 1..3, big-endian.
VECTORS = [
    (bytes([0x1F, 0x00, 0x01, 0x02]), Aeth(AethSyndrome.ACK_NO_CREDIT, 0x000102)),
    (bytes([0x00, 0x00, 0x00, 0x00]), Aeth(AethSyndrome.ACK, 0)),
    (bytes([0x60, 0xAB, 0xCD, 0xEF]), Aeth(AethSyndrome.NAK_PSN_SEQUENCE_ERROR, 0xABCDEF)),
    (bytes([0x62, 0xFF, 0xFF, 0xFF]), Aeth(AethSyndrome.NAK_REMOTE_ACCESS_ERROR, 0xFFFFFF)),
    (bytes([0x2E, 0x00, 0x00, 0x07]), Aeth(AethSyndrome.RNR_NAK | 0x0E, 7)),  # RNR timer 14
]


@pytest.mark.parametrize(("raw", "record"), VECTORS)
def test_aeth_vectors_both_ways(raw: bytes, record: Aeth) -> None:
    assert Aeth.unpack(raw) == record
    assert record.pack() == raw
    assert pack_aeth(record.syndrome, record.msn) == raw


def test_aeth_kind() -> None:
    ack, rnr, nak = Aeth(0x1F, 1), Aeth(0x2E, 1), Aeth(0x60, 1)
    assert (ack.is_ack, ack.is_rnr_nak, ack.is_nak) == (True, False, False)
    assert (rnr.is_ack, rnr.is_rnr_nak, rnr.is_nak) == (False, True, False)
    assert (nak.is_ack, nak.is_rnr_nak, nak.is_nak) == (False, False, True)
    # 0b10 in bits 6..5 is reserved: neither an ACK nor a NAK of either kind.
    reserved = Aeth(0x40, 1)
    assert not (reserved.is_ack or reserved.is_rnr_nak or reserved.is_nak)


def test_aeth_rides_in_an_rc_ack_payload() -> None:
    # The packet codec leaves the AETH in the payload of an RC Acknowledge.
    packet = Packet.unpack(rc_ack_packet(bytes([0x1F, 0x00, 0x01, 0x02]), psn=0x00ABCD))
    assert packet.deth is None and packet.bth.psn == 0x00ABCD
    assert Aeth.unpack(packet.payload) == Aeth(0x1F, 0x000102)


@given(u8, u24)
def test_aeth_round_trip(syndrome: int, msn: int) -> None:
    record = Aeth(syndrome, msn)
    assert Aeth.unpack(record.pack()) == record


@given(st.binary(max_size=8))
def test_aeth_any_bytes_give_a_record_or_wire_error(data: bytes) -> None:
    try:
        record = Aeth.unpack(data)
    except WireError:
        assert len(data) != AETH_SIZE
    else:
        assert record.pack() == data  # no reserved bits: every 4 bytes are canonical


@pytest.mark.parametrize(("syndrome", "msn"), [(0x100, 0), (-1, 0), (0, 1 << 24), (0, -1)])
def test_aeth_out_of_range(syndrome: int, msn: int) -> None:
    with pytest.raises(WireError):
        Aeth(syndrome, msn).pack()
    with pytest.raises(WireError):
        pack_aeth(syndrome, msn)

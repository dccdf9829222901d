"""LRH, GRH, BTH, DETH and whole-packet framing (IBA Vol 1, 7.7, 8.3, 9.2, 9.3.2)."""

from __future__ import annotations

import contextlib
import ipaddress
import struct
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ibmig.errors import WireError
from ibmig.wire.packet import (
    QP1_QKEY,
    Bth,
    Deth,
    Grh,
    Lnh,
    Lrh,
    OpCode,
    Packet,
    build_ud_packet,
)
from tests.wire.strategies import gids, u4, u8, u16, u24, u32
from tests.wire.test_crc import reference_icrc, reference_vcrc
from tests.wire.tshark_util import tshark_fields

# --- hand-built vectors --------------------------------------------------------

NODEINFO_GET = struct.pack(
    ">BBBBHHQHHI", 0x01, 0x01, 0x01, 0x01, 0, 0, 0x1234, 0x0011, 0, 0
) + bytes(232)
PATHRECORD_GET = struct.pack(
    ">BBBBHHQHHI", 0x01, 0x03, 0x02, 0x01, 0, 0, 0xABCD, 0x0035, 0, 0
) + bytes(232)
SGID = bytes.fromhex("fe800000000000000002c90300001234")
DGID = bytes.fromhex("fe800000000000000002c90300005678")


def _with_crcs(body: bytes) -> bytes:
    """Append ICRC and VCRC computed by the reference implementation."""
    with_icrc = body + reference_icrc(body).to_bytes(4, "big")
    return with_icrc + reference_vcrc(with_icrc).to_bytes(2, "big")


# SubnGet(NodeInfo) from LID 1 to LID 2, QP0 -> QP0, laid out byte by byte.
SMP_PACKET = _with_crcs(
    bytes.fromhex("f0")  # VL 15 | LVer 0
    + bytes.fromhex("02")  # SL 0 | reserved | LNH 0b10 (IBA local)
    + bytes.fromhex("0002")  # DLID 2
    + bytes.fromhex("0048")  # reserved | PktLen 72 words = 8 + 12 + 8 + 256 + 4 bytes
    + bytes.fromhex("0001")  # SLID 1
    + bytes.fromhex("64")  # OpCode: UD SEND only
    + bytes.fromhex("00")  # SE 0 | M 0 | PadCnt 0 | TVer 0
    + bytes.fromhex("ffff")  # P_Key
    + bytes.fromhex("00000000")  # Resv8a | DestQP 0
    + bytes.fromhex("00000007")  # AckReq 0 | reserved | PSN 7
    + bytes.fromhex("00000000")  # Q_Key 0
    + bytes.fromhex("00000000")  # reserved | SrcQP 0
    + NODEINFO_GET
)

# SubnAdmGet(PathRecord) with a GRH, QP1 -> QP1, SL 3 on VL 2, SE and AckReq set.
GRH_PAYLOAD = PATHRECORD_GET
GRH_PACKET = _with_crcs(
    bytes([0x20, 0x33, 0x00, 0x05])  # VL 2 | LVer 0; SL 3 | LNH 0b11; DLID 5
    + struct.pack(">HH", (8 + 40 + 12 + 8 + 256 + 4) // 4, 0x0009)  # PktLen; SLID 9
    + struct.pack(">I", (6 << 28) | (0x12 << 20) | 0x34567)  # IPVer 6, TClass, FlowLabel
    + struct.pack(">HBB", 12 + 8 + 256 + 4, 0x1B, 0x40)  # PayLen, NxtHdr, HopLmt 64
    + SGID
    + DGID
    + bytes([0x64, 0x80, 0x80, 0x01])  # OpCode; SE 1 | M 0 | PadCnt 0 | TVer 0; P_Key
    + bytes([0x00, 0x00, 0x00, 0x01])  # DestQP 1
    + bytes([0x80, 0x12, 0x34, 0x56])  # AckReq 1 | PSN 0x123456
    + struct.pack(">II", QP1_QKEY, 1)  # Q_Key, SrcQP 1
    + GRH_PAYLOAD
)

# A 5-byte payload on QP 0x1234: PadCnt 3, three zero pad bytes.
PADDED_PACKET = _with_crcs(
    bytes.fromhex("00 02 0007 000a 0008")  # VL 0, SL 0, LNH 0b10, DLID 7, PktLen 10, SLID 8
    + bytes.fromhex("64 30 ffff 00001234 00000000")  # OpCode, PadCnt 3, P_Key, DestQP, PSN
    + bytes.fromhex("11223344 00abcdef")  # Q_Key, SrcQP
    + b"\x01\x02\x03\x04\x05"
    + b"\x00\x00\x00"
)


def test_smp_vector_both_ways() -> None:
    built = build_ud_packet(NODEINFO_GET, dlid=2, slid=1, dest_qp=0, src_qp=0, psn=7)
    assert built == SMP_PACKET
    p = Packet.unpack(SMP_PACKET)
    assert p.lrh == Lrh(vl=15, lver=0, sl=0, lnh=Lnh.IBA_LOCAL, dlid=2, pkt_len=72, slid=1)
    assert p.grh is None
    assert p.bth == Bth(opcode=OpCode.UD_SEND_ONLY, dest_qp=0, psn=7, pkey=0xFFFF)
    assert p.deth == Deth(qkey=0, src_qp=0)
    assert p.payload == NODEINFO_GET
    assert p.icrc_ok and p.vcrc_ok
    assert p.pack() == SMP_PACKET


def test_grh_vector_both_ways() -> None:
    grh = Grh(sgid=SGID, dgid=DGID, tclass=0x12, flow_label=0x34567, hop_lmt=0x40)
    p = Packet.build(
        Lrh(vl=2, lver=0, sl=3, lnh=0, dlid=5, pkt_len=0, slid=9),
        grh,
        Bth(OpCode.UD_SEND_ONLY, dest_qp=1, psn=0x123456, pkey=0x8001, se=True, ack_req=True),
        Deth(QP1_QKEY, 1),
        GRH_PAYLOAD,
    )
    assert p.pack() == GRH_PACKET
    q = Packet.unpack(GRH_PACKET)
    assert q == p
    assert q.grh == replace(grh, pay_len=280)
    assert q.bth.pad_cnt == 0
    assert q.payload == GRH_PAYLOAD
    assert q.icrc_ok and q.vcrc_ok
    built = build_ud_packet(
        GRH_PAYLOAD, dlid=5, slid=9, dest_qp=1, src_qp=1, sl=3, vl=2, pkey=0x8001,
        grh=grh, psn=0x123456,
    )  # fmt: skip
    u = Packet.unpack(built)
    assert (u.lrh, u.grh, u.deth, u.payload) == (p.lrh, p.grh, p.deth, p.payload)
    assert u.bth == replace(p.bth, se=False, ack_req=False)  # build_ud_packet sets neither
    assert u.icrc_ok and u.vcrc_ok


def test_padded_vector_both_ways() -> None:
    built = build_ud_packet(
        b"\x01\x02\x03\x04\x05", dlid=7, slid=8, dest_qp=0x1234, src_qp=0xABCDEF,
        qkey=0x11223344,
    )  # fmt: skip
    assert built == PADDED_PACKET
    p = Packet.unpack(PADDED_PACKET)
    assert p.bth.pad_cnt == 3 and p.payload == b"\x01\x02\x03\x04\x05"
    assert p.deth == Deth(0x11223344, 0xABCDEF)
    assert p.icrc_ok and p.vcrc_ok
    assert p.pack() == PADDED_PACKET


def test_header_vectors() -> None:
    assert Lrh.unpack(bytes.fromhex("f2370005f8480009")) == Lrh(15, 2, 3, 3, 5, 0x048, 9)
    assert Lrh(15, 2, 3, 3, 5, 0x048, 9).pack() == bytes.fromhex("f2330005 00480009")
    assert Bth.unpack(bytes.fromhex("64ff8001ab000001ff123456")) == Bth(
        0x64, 1, 0x123456, 0x8001, True, True, 3, 0xF, True
    )
    assert Bth(0x64, 1, 0x123456, 0x8001, True, True, 3, 0xF, True).pack() == bytes.fromhex(
        "64ff800100000001 80123456"
    )
    assert Deth.unpack(bytes.fromhex("80010000ff000001")) == Deth(QP1_QKEY, 1)
    assert Deth(QP1_QKEY, 1).pack() == bytes.fromhex("8001000000000001")
    grh_bytes = bytes.fromhex("61234567 0120 1b 40") + SGID + DGID
    grh = Grh(SGID, DGID, pay_len=0x120, tclass=0x12, flow_label=0x34567, hop_lmt=0x40)
    assert Grh.unpack(grh_bytes) == grh
    assert grh.pack() == grh_bytes


# --- strategies and round trips ---------------------------------------------------


lrhs = st.builds(
    Lrh, vl=u4, lver=u4, sl=u4, lnh=st.integers(0, 3), dlid=u16,
    pkt_len=st.integers(0, 0x7FF), slid=u16,
)  # fmt: skip
grhs = st.builds(
    Grh, sgid=gids, dgid=gids, pay_len=u16, tclass=u8, flow_label=st.integers(0, 0xFFFFF),
    hop_lmt=u8, nxt_hdr=u8, ip_ver=u4,
)  # fmt: skip
bths = st.builds(
    Bth, opcode=u8, dest_qp=u24, psn=u24, pkey=u16, se=st.booleans(), mig_req=st.booleans(),
    pad_cnt=st.integers(0, 3), tver=u4, ack_req=st.booleans(),
)  # fmt: skip
deths = st.builds(Deth, qkey=u32, src_qp=u24)


@given(lrhs)
def test_lrh_round_trip(x: Lrh) -> None:
    assert Lrh.unpack(x.pack()) == x


@given(grhs)
def test_grh_round_trip(x: Grh) -> None:
    assert Grh.unpack(x.pack()) == x


@given(bths)
def test_bth_round_trip(x: Bth) -> None:
    assert Bth.unpack(x.pack()) == x


@given(deths)
def test_deth_round_trip(x: Deth) -> None:
    assert Deth.unpack(x.pack()) == x


@st.composite
def packets(draw: st.DrawFn, wrong_crcs: bool = True) -> Packet:
    grh = draw(st.none() | grhs.map(lambda g: replace(g, nxt_hdr=0x1B)))
    bth = draw(bths)
    deth = draw(deths) if bth.opcode & 0xE0 == 0x60 else None
    payload = draw(st.binary(max_size=64))
    packet = Packet.build(draw(lrhs), grh, bth, deth, payload)
    if wrong_crcs and draw(st.booleans()):  # arbitrary (probably wrong) CRCs round trip
        packet = replace(packet, icrc=draw(u32), vcrc=draw(u16))
    return packet


@given(packets())
def test_packet_round_trip(p: Packet) -> None:
    data = p.pack()
    assert Packet.unpack(data) == p
    assert len(data) == p.lrh.pkt_len * 4 + 2


@given(packets(wrong_crcs=False))
def test_built_packets_check_against_reference(p: Packet) -> None:
    data = p.pack()
    body = data[:-6]
    assert p.icrc == reference_icrc(body)
    assert p.vcrc == reference_vcrc(data[:-2])
    assert p.icrc_ok and p.vcrc_ok


@given(
    payload=st.binary(max_size=300),
    dlid=u16,
    slid=u16,
    qp=st.integers(0, 1),
    sl=u4,
    vl=u4,
    pkey=u16,
    psn=u24,
)
def test_build_ud_packet_fast_path_equals_general_path(
    *, payload: bytes, dlid: int, slid: int, qp: int, sl: int, vl: int, pkey: int, psn: int
) -> None:
    fast = build_ud_packet(
        payload, dlid=dlid, slid=slid, dest_qp=qp, src_qp=qp, sl=sl, vl=vl, pkey=pkey, psn=psn
    )
    general = Packet.build(
        Lrh(vl, 0, sl, 0, dlid, 0, slid),
        None,
        Bth(OpCode.UD_SEND_ONLY, qp, psn, pkey),
        Deth(QP1_QKEY if qp else 0, qp),
        payload,
    )
    assert fast == general.pack()


@given(st.binary(max_size=400))
def test_arbitrary_bytes_give_packet_or_wire_error(data: bytes) -> None:
    try:
        p = Packet.unpack(data)
    except WireError:
        return
    assert isinstance(p.icrc_ok, bool) and isinstance(p.vcrc_ok, bool)


@given(st.binary(max_size=48))
def test_arbitrary_bytes_give_header_or_wire_error(data: bytes) -> None:
    for record in (Lrh, Grh, Bth, Deth):
        with contextlib.suppress(WireError):
            record.unpack(data)


@given(packets(), st.integers(0, 2000), u8)
def test_corrupted_packets_give_packet_or_wire_error(p: Packet, index: int, value: int) -> None:
    data = bytearray(p.pack())
    data[index % len(data)] = value
    with contextlib.suppress(WireError):
        Packet.unpack(bytes(data))


# --- defaults --------------------------------------------------------------------


def test_build_ud_packet_defaults() -> None:
    smp = Packet.unpack(build_ud_packet(bytes(256), dlid=1, slid=2, dest_qp=0, src_qp=0))
    assert smp.lrh.vl == 15 and smp.deth == Deth(0, 0)
    gmp = Packet.unpack(build_ud_packet(bytes(256), dlid=1, slid=2, dest_qp=1, src_qp=1))
    assert gmp.lrh.vl == 0 and gmp.deth == Deth(QP1_QKEY, 1)
    assert gmp.bth.pkey == 0xFFFF and gmp.bth.opcode == OpCode.UD_SEND_ONLY
    odd = Packet.unpack(build_ud_packet(b"abcde", dlid=1, slid=2, dest_qp=5, src_qp=6, qkey=7))
    assert odd.payload == b"abcde" and odd.bth.pad_cnt == 3 and odd.deth == Deth(7, 6)
    with pytest.raises(WireError, match="Q_Key"):
        build_ud_packet(b"", dlid=1, slid=2, dest_qp=5, src_qp=6)


# --- malformed packets and out-of-range values --------------------------------------------


def _resize(data: bytes, words: int) -> bytes:
    return data[:4] + struct.pack(">H", words) + data[6:]


def test_malformed_packets() -> None:
    with pytest.raises(WireError, match="at least"):
        Packet.unpack(SMP_PACKET[:20])
    with pytest.raises(WireError, match="PktLen"):
        Packet.unpack(SMP_PACKET[:-4])
    with pytest.raises(WireError, match="PktLen"):
        Packet.unpack(_resize(SMP_PACKET, 73))
    with pytest.raises(WireError, match="PktLen"):
        Packet.unpack(SMP_PACKET + b"\0\0\0\0")
    for lnh in (0, 1):
        raw = SMP_PACKET[:1] + bytes([lnh]) + SMP_PACKET[2:]
        with pytest.raises(WireError, match="raw"):
            Packet.unpack(raw)
    local_as_global = SMP_PACKET[:1] + b"\x03" + SMP_PACKET[2:]
    with pytest.raises(WireError):
        Packet.unpack(local_as_global)
    bad_nxthdr = GRH_PACKET[:14] + b"\x1c" + GRH_PACKET[15:]
    with pytest.raises(WireError, match="NxtHdr"):
        Packet.unpack(bad_nxthdr)
    bad_paylen = GRH_PACKET[:12] + b"\x00\x10" + GRH_PACKET[14:]
    with pytest.raises(WireError, match="PayLen"):
        Packet.unpack(bad_paylen)
    # a UD packet with no room for the DETH
    short_ud = build_ud_packet(b"", dlid=1, slid=2, dest_qp=1, src_qp=1)
    header_only = _resize(short_ud[:20] + short_ud[-6:], 6)
    with pytest.raises(WireError, match="DETH"):
        Packet.unpack(header_only)
    # PadCnt larger than the payload
    empty = bytearray(short_ud)
    empty[9] |= 0x30
    with pytest.raises(WireError, match="PadCnt"):
        Packet.unpack(bytes(empty))


def test_inconsistent_records_refuse_to_pack() -> None:
    p = Packet.unpack(SMP_PACKET)
    with pytest.raises(WireError, match="GRH"):
        replace(p, lrh=replace(p.lrh, lnh=Lnh.IBA_GLOBAL)).pack()
    with pytest.raises(WireError, match="raw"):
        replace(p, lrh=replace(p.lrh, lnh=Lnh.RAW)).pack()
    with pytest.raises(WireError, match="DETH"):
        replace(p, deth=None).pack()
    with pytest.raises(WireError, match="DETH"):
        replace(p, bth=replace(p.bth, opcode=0x04)).pack()
    with pytest.raises(WireError, match="ICRC"):
        replace(p, icrc=1 << 32).pack()
    with pytest.raises(WireError, match="PktLen"):
        build_ud_packet(bytes(8192), dlid=1, slid=2, dest_qp=1, src_qp=1)
    with pytest.raises(WireError, match="PktLen"):
        Packet.build(p.lrh, None, p.bth, p.deth, bytes(8192))


@pytest.mark.parametrize(
    ("record", "field", "value"),
    [
        (Lrh(0, 0, 0, 2, 0, 0, 0), "vl", 16),
        (Lrh(0, 0, 0, 2, 0, 0, 0), "lver", 16),
        (Lrh(0, 0, 0, 2, 0, 0, 0), "sl", -1),
        (Lrh(0, 0, 0, 2, 0, 0, 0), "lnh", 4),
        (Lrh(0, 0, 0, 2, 0, 0, 0), "dlid", 0x10000),
        (Lrh(0, 0, 0, 2, 0, 0, 0), "pkt_len", 0x800),
        (Lrh(0, 0, 0, 2, 0, 0, 0), "slid", -1),
        (Grh(SGID, DGID), "ip_ver", 16),
        (Grh(SGID, DGID), "tclass", 256),
        (Grh(SGID, DGID), "flow_label", 1 << 20),
        (Grh(SGID, DGID), "pay_len", 1 << 16),
        (Grh(SGID, DGID), "nxt_hdr", 256),
        (Grh(SGID, DGID), "hop_lmt", 256),
        (Grh(SGID, DGID), "sgid", bytes(15)),
        (Grh(SGID, DGID), "dgid", bytes(17)),
        (Bth(0x64, 0), "opcode", 256),
        (Bth(0x64, 0), "dest_qp", 1 << 24),
        (Bth(0x64, 0), "psn", 1 << 24),
        (Bth(0x64, 0), "pkey", 1 << 16),
        (Bth(0x64, 0), "pad_cnt", 4),
        (Bth(0x64, 0), "tver", 16),
        (Deth(0, 0), "qkey", 1 << 32),
        (Deth(0, 0), "src_qp", 1 << 24),
    ],
)
def test_out_of_range_values_raise_wire_error(record: Any, field: str, value: object) -> None:
    bad = replace(record, **{field: value})
    with pytest.raises(WireError):
        bad.pack()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"vl": 16},
        {"sl": 16},
        {"dlid": 0x10000},
        {"slid": -1},
        {"dest_qp": 1 << 24},
        {"src_qp": 1 << 24},
        {"pkey": 1 << 16},
        {"qkey": 1 << 32},
        {"psn": 1 << 24},
    ],
)
def test_build_ud_packet_out_of_range(kwargs: dict[str, int]) -> None:
    args: dict[str, Any] = {"dlid": 1, "slid": 2, "dest_qp": 1, "src_qp": 1} | kwargs
    with pytest.raises(WireError):
        build_ud_packet(bytes(256), **args)


def test_crc_checks_report_instead_of_refusing() -> None:
    bad_payload = bytearray(SMP_PACKET)
    bad_payload[40] ^= 1
    p = Packet.unpack(bytes(bad_payload))
    assert not p.icrc_ok and not p.vcrc_ok
    other_vl = bytes([0x70]) + SMP_PACKET[1:]  # VL 7: ICRC masks it, VCRC does not
    q = Packet.unpack(other_vl)
    assert q.icrc_ok and not q.vcrc_ok
    bad_vcrc = SMP_PACKET[:-1] + bytes([SMP_PACKET[-1] ^ 0xFF])
    r = Packet.unpack(bad_vcrc)
    assert r.icrc_ok and not r.vcrc_ok


# --- tshark ----------------------------------------------------------------------


def _deth(p: Packet) -> Deth:
    assert p.deth is not None
    return p.deth


LRH_BTH_FIELDS: dict[str, Callable[[Packet], int]] = {
    "infiniband.lrh.vl": lambda p: p.lrh.vl,
    "infiniband.lrh.lver": lambda p: p.lrh.lver,
    "infiniband.lrh.sl": lambda p: p.lrh.sl,
    "infiniband.lrh.lnh": lambda p: p.lrh.lnh,
    "infiniband.lrh.dlid": lambda p: p.lrh.dlid,
    "infiniband.lrh.pktlen": lambda p: p.lrh.pkt_len,
    "infiniband.lrh.slid": lambda p: p.lrh.slid,
    "infiniband.bth.opcode": lambda p: p.bth.opcode,
    "infiniband.bth.se": lambda p: int(p.bth.se),
    "infiniband.bth.m": lambda p: int(p.bth.mig_req),
    "infiniband.bth.padcnt": lambda p: p.bth.pad_cnt,
    "infiniband.bth.tver": lambda p: p.bth.tver,
    "infiniband.bth.p_key": lambda p: p.bth.pkey,
    "infiniband.bth.destqp": lambda p: p.bth.dest_qp,
    "infiniband.bth.a": lambda p: int(p.bth.ack_req),
    "infiniband.bth.psn": lambda p: p.bth.psn,
    "infiniband.deth.q_key": lambda p: _deth(p).qkey,
    "infiniband.deth.srcqp": lambda p: _deth(p).src_qp,
    "infiniband.invariant.crc": lambda p: p.icrc,
    "infiniband.variant.crc": lambda p: p.vcrc,
}
GRH_FIELDS: dict[str, Callable[[Grh], int]] = {
    "infiniband.grh.ipver": lambda g: g.ip_ver,
    "infiniband.grh.tclass": lambda g: g.tclass,
    "infiniband.grh.flowlabel": lambda g: g.flow_label,
    "infiniband.grh.paylen": lambda g: g.pay_len,
    "infiniband.grh.nxthdr": lambda g: g.nxt_hdr,
    "infiniband.grh.hoplmt": lambda g: g.hop_lmt,
}


@pytest.mark.interop
def test_tshark_agrees_on_headers_and_crcs(tshark: str, tmp_path: Path) -> None:
    packets = [
        SMP_PACKET,
        GRH_PACKET,
        build_ud_packet(
            PATHRECORD_GET, dlid=0xC001, slid=0x0BAD, dest_qp=1, src_qp=1, sl=9, vl=6,
            pkey=0x7FFF, psn=0xFEDCBA,
        ),
        PADDED_PACKET,
    ]  # fmt: skip
    fields = [*LRH_BTH_FIELDS, *GRH_FIELDS, "infiniband.grh.sgid", "infiniband.grh.dgid"]
    fields += ["infiniband.mad.mgmtclass", "infiniband.mad.attributeid"]
    rows = tshark_fields(tmp_path, packets, fields)
    for data, row in zip(packets, rows, strict=True):
        p = Packet.unpack(data)
        assert p.icrc_ok and p.vcrc_ok
        for field, get in LRH_BTH_FIELDS.items():
            assert [int(v, 0) for v in row[field]] == [get(p)], field
        if p.grh is None:
            assert row["infiniband.grh.sgid"] == []
        else:
            for field, get_g in GRH_FIELDS.items():
                assert [int(v, 0) for v in row[field]] == [get_g(p.grh)], field
            assert row["infiniband.grh.sgid"] == [str(ipaddress.IPv6Address(p.grh.sgid))]
            assert row["infiniband.grh.dgid"] == [str(ipaddress.IPv6Address(p.grh.dgid))]
    assert rows[0]["infiniband.mad.mgmtclass"] == ["0x01"]
    assert rows[0]["infiniband.mad.attributeid"] == ["0x0011"]
    assert rows[1]["infiniband.mad.mgmtclass"] == ["0x03"]
    assert rows[1]["infiniband.mad.attributeid"] == ["0x0035"]

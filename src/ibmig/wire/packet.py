"""InfiniBand packet framing: LRH, GRH, BTH, DETH, ICRC and VCRC.

A packet as it crosses a link (IBA Vol 1, chapter 5 "Data Packet Format"):

    LRH (8) | GRH (40, if LNH = 0b11) | BTH (12) | DETH (8, UD) | payload | pad
    | ICRC (4) | VCRC (2)

Local Route Header, IBA Vol 1, 7.7 "Local Route Header (LRH) - 8 Bytes":

    byte 0  VL (bits 7..4) | LVer (3..0)
    byte 1  SL (7..4) | reserved (3..2) | LNH (1..0)
    byte 2  DLID (16)
    byte 4  reserved (15..11) | PktLen (10..0): packet length in 4-byte words from
            the first byte of the LRH to the last byte of the ICRC (VCRC excluded)
    byte 6  SLID (16)

Global Route Header, IBA Vol 1, 8.3 "Global Route Header (GRH) - 40 Bytes":

    byte 0  IPVer (31..28) | TClass (27..20) | FlowLabel (19..0)
    byte 4  PayLen (16): bytes after the GRH through the ICRC
    byte 6  NxtHdr (0x1B: IBA transport)
    byte 7  HopLmt
    byte 8  SGID (128)
    byte 24 DGID (128)

Base Transport Header, IBA Vol 1, 9.2 "Base Transport Header (BTH) - 12 Bytes":

    byte 0  OpCode
    byte 1  SE (7) | M (6) | PadCnt (5..4) | TVer (3..0)
    byte 2  P_Key (16)
    byte 4  reserved Resv8a (8) | DestQP (24)
    byte 8  AckReq (31) | reserved (30..24) | PSN (23..0)

Datagram Extended Transport Header, IBA Vol 1, 9.3.2 "DETH - 8 Bytes":

    byte 0  Q_Key (32)
    byte 4  reserved (8) | SrcQP (24)

ACK Extended Transport Header, IBA Vol 1, 9.3.5 "AETH - 4 Bytes" (RC ACK and NAK,
OpCode 0x11, and the read/atomic responses):

    byte 0  Syndrome: reserved (7) | opcode (6..5: 00 ACK, 01 RNR NAK, 11 NAK) |
            credit count, RNR timer or NAK code (4..0)
    byte 1  MSN (24): Message Sequence Number

Scope: LNH 0b10 (IBA local) and 0b11 (IBA global) packets. The DETH is decoded
for the Unreliable Datagram opcodes (OpCode bits 7..5 = 0b011, 9.2.1);
any other extended transport header (RDETH, RETH, ImmDt, AETH...) stays in
`payload` (`Aeth.unpack(packet.payload)` reads an ACK's). Raw packets (LNH 0b00,
0b01) raise WireError. Reserved fields are sent as zero and ignored on receipt;
pad bytes are sent as zero and stripped on receipt, so CRCs are checked over the
re-encoded packet.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import ClassVar

from ibmig.errors import WireError
from ibmig.wire.crc import ICRC_SIZE, VCRC_SIZE, icrc, vcrc

LRH_SIZE = 8
GRH_SIZE = 40
BTH_SIZE = 12
DETH_SIZE = 8
AETH_SIZE = 4
GID_SIZE = 16

PERMISSIVE_LID = 0xFFFF
DEFAULT_PKEY = 0xFFFF
QP1_QKEY = 0x80010000  # the well-known Q_Key of QP1, the GSI (IBA Vol 1, 13.5)
VL15 = 15  # the management VL: SMPs (QP0) travel on it (IBA Vol 1, 7.6)
MAX_PKT_LEN_WORDS = 0x7FF


class Lnh(IntEnum):
    """Link Next Header (IBA Vol 1, 7.7)."""

    RAW = 0x0
    IP_NON_IBA = 0x1
    IBA_LOCAL = 0x2
    IBA_GLOBAL = 0x3


class NxtHdr(IntEnum):
    """GRH Next Header values (IBA Vol 1, 8.3.1)."""

    IBA_TRANSPORT = 0x1B


class OpCode(IntEnum):
    """BTH opcodes used here (IBA Vol 1, 9.2.1). Bits 7..5 are the
    transport (0b000 = Reliable Connection, 0b011 = Unreliable Datagram), bits
    4..0 the operation."""

    RC_SEND_ONLY = 0x04
    RC_ACKNOWLEDGE = 0x11
    UD_SEND_ONLY = 0x64
    UD_SEND_ONLY_WITH_IMMEDIATE = 0x65


TRANSPORT_MASK = 0xE0
TRANSPORT_UD = 0x60


def is_ud_opcode(opcode: int) -> bool:
    """True for Unreliable Datagram opcodes, whose BTH is followed by a DETH."""
    return opcode & TRANSPORT_MASK == TRANSPORT_UD


_LRH = struct.Struct(">BBHHH")
_GRH = struct.Struct(">IHBB16s16s")
_BTH = struct.Struct(">BBHII")
_DETH = struct.Struct(">II")
_AETH = struct.Struct(">I")
_ICRC_VCRC = struct.Struct(">IH")
# LRH + BTH + DETH in one call for the common case (local UD packet).
_UD_LOCAL = struct.Struct(">BBHHHBBHIIII")


def _check_bits(name: str, value: int, bits: int) -> None:
    if not 0 <= value < (1 << bits):
        raise WireError(f"{name} {value} does not fit {bits} bits")


@dataclass(frozen=True, slots=True)
class Lrh:
    """Local Route Header (IBA Vol 1, 7.7). `pkt_len` is in 4-byte words."""

    vl: int
    lver: int
    sl: int
    lnh: int
    dlid: int
    pkt_len: int
    slid: int

    SIZE: ClassVar[int] = LRH_SIZE

    def pack(self) -> bytes:
        _check_bits("LRH VL", self.vl, 4)
        _check_bits("LRH LVer", self.lver, 4)
        _check_bits("LRH SL", self.sl, 4)
        _check_bits("LRH LNH", self.lnh, 2)
        _check_bits("LRH PktLen", self.pkt_len, 11)
        _check_bits("LRH DLID", self.dlid, 16)
        _check_bits("LRH SLID", self.slid, 16)
        return _LRH.pack(
            (self.vl << 4) | self.lver,
            (self.sl << 4) | self.lnh,
            self.dlid,
            self.pkt_len,
            self.slid,
        )

    @classmethod
    def unpack(cls, data: bytes) -> Lrh:
        if len(data) < LRH_SIZE:
            raise WireError(f"LRH needs {LRH_SIZE} bytes, got {len(data)}")
        b0, b1, dlid, w2, slid = _LRH.unpack_from(data)
        return cls(b0 >> 4, b0 & 0xF, b1 >> 4, b1 & 0x3, dlid, w2 & 0x7FF, slid)


@dataclass(frozen=True, slots=True)
class Grh:
    """Global Route Header (IBA Vol 1, 8.3). `pay_len` is in bytes, from the
    first byte after the GRH through the ICRC."""

    sgid: bytes
    dgid: bytes
    pay_len: int = 0
    tclass: int = 0
    flow_label: int = 0
    hop_lmt: int = 0xFF
    nxt_hdr: int = NxtHdr.IBA_TRANSPORT
    ip_ver: int = 6

    SIZE: ClassVar[int] = GRH_SIZE

    def pack(self) -> bytes:
        _check_bits("GRH IPVer", self.ip_ver, 4)
        _check_bits("GRH TClass", self.tclass, 8)
        _check_bits("GRH FlowLabel", self.flow_label, 20)
        _check_bits("GRH PayLen", self.pay_len, 16)
        _check_bits("GRH NxtHdr", self.nxt_hdr, 8)
        _check_bits("GRH HopLmt", self.hop_lmt, 8)
        if len(self.sgid) != GID_SIZE or len(self.dgid) != GID_SIZE:
            raise WireError(
                f"GRH GIDs must be {GID_SIZE} bytes, got {len(self.sgid)} and {len(self.dgid)}"
            )
        return _GRH.pack(
            (self.ip_ver << 28) | (self.tclass << 20) | self.flow_label,
            self.pay_len,
            self.nxt_hdr,
            self.hop_lmt,
            self.sgid,
            self.dgid,
        )

    @classmethod
    def unpack(cls, data: bytes) -> Grh:
        if len(data) < GRH_SIZE:
            raise WireError(f"GRH needs {GRH_SIZE} bytes, got {len(data)}")
        w0, pay_len, nxt_hdr, hop_lmt, sgid, dgid = _GRH.unpack_from(data)
        return cls(
            sgid=sgid,
            dgid=dgid,
            pay_len=pay_len,
            tclass=(w0 >> 20) & 0xFF,
            flow_label=w0 & 0xFFFFF,
            hop_lmt=hop_lmt,
            nxt_hdr=nxt_hdr,
            ip_ver=w0 >> 28,
        )


@dataclass(frozen=True, slots=True)
class Bth:
    """Base Transport Header (IBA Vol 1, 9.2). `mig_req` is the M bit."""

    opcode: int
    dest_qp: int
    psn: int = 0
    pkey: int = DEFAULT_PKEY
    se: bool = False
    mig_req: bool = False
    pad_cnt: int = 0
    tver: int = 0
    ack_req: bool = False

    SIZE: ClassVar[int] = BTH_SIZE

    def pack(self) -> bytes:
        _check_bits("BTH OpCode", self.opcode, 8)
        _check_bits("BTH PadCnt", self.pad_cnt, 2)
        _check_bits("BTH TVer", self.tver, 4)
        _check_bits("BTH P_Key", self.pkey, 16)
        _check_bits("BTH DestQP", self.dest_qp, 24)
        _check_bits("BTH PSN", self.psn, 24)
        return _BTH.pack(
            self.opcode,
            (self.se << 7) | (self.mig_req << 6) | (self.pad_cnt << 4) | self.tver,
            self.pkey,
            self.dest_qp,
            (self.ack_req << 31) | self.psn,
        )

    @classmethod
    def unpack(cls, data: bytes) -> Bth:
        if len(data) < BTH_SIZE:
            raise WireError(f"BTH needs {BTH_SIZE} bytes, got {len(data)}")
        opcode, b1, pkey, w1, w2 = _BTH.unpack_from(data)
        return cls(
            opcode=opcode,
            dest_qp=w1 & 0xFFFFFF,
            psn=w2 & 0xFFFFFF,
            pkey=pkey,
            se=bool(b1 & 0x80),
            mig_req=bool(b1 & 0x40),
            pad_cnt=(b1 >> 4) & 0x3,
            tver=b1 & 0xF,
            ack_req=bool(w2 >> 31),
        )


@dataclass(frozen=True, slots=True)
class Deth:
    """Datagram Extended Transport Header (IBA Vol 1, 9.3.2)."""

    qkey: int
    src_qp: int

    SIZE: ClassVar[int] = DETH_SIZE

    def pack(self) -> bytes:
        _check_bits("DETH Q_Key", self.qkey, 32)
        _check_bits("DETH SrcQP", self.src_qp, 24)
        return _DETH.pack(self.qkey, self.src_qp)

    @classmethod
    def unpack(cls, data: bytes) -> Deth:
        if len(data) < DETH_SIZE:
            raise WireError(f"DETH needs {DETH_SIZE} bytes, got {len(data)}")
        qkey, w1 = _DETH.unpack_from(data)
        return cls(qkey, w1 & 0xFFFFFF)


class AethSyndrome(IntEnum):
    """AETH Syndrome values (IBA Vol 1, 9.3.5, Tables "AETH Syndrome" and "NAK codes").

    An ACK's low 5 bits are its credit count and an RNR NAK's its RNR timer, so
    only the values this project sends or tests for are named.
    """

    ACK = 0x00  # | credit count
    ACK_NO_CREDIT = 0x1F  # credit count 31: invalid, no end-to-end credits advertised
    RNR_NAK = 0x20  # | RNR timer
    NAK_PSN_SEQUENCE_ERROR = 0x60
    NAK_INVALID_REQUEST = 0x61
    NAK_REMOTE_ACCESS_ERROR = 0x62
    NAK_REMOTE_OPERATIONAL_ERROR = 0x63
    NAK_INVALID_RD_REQUEST = 0x64


AETH_KIND_MASK = 0x60  # Syndrome bits 6..5: ACK, RNR NAK or NAK


def pack_aeth(syndrome: int, msn: int) -> bytes:
    """The 4 AETH bytes without building a record: the RC responder sends one per
    message, so this sits on the simulator's hot path."""
    if syndrome >> 8 or msn >> 24:  # a negative value shifts to -1, caught too
        raise WireError(f"AETH Syndrome {syndrome!r} / MSN {msn!r} do not fit 8 / 24 bits")
    return _AETH.pack((syndrome << 24) | msn)


@dataclass(frozen=True, slots=True)
class Aeth:
    """ACK Extended Transport Header (IBA Vol 1, 9.3.5): Syndrome (8) | MSN (24)."""

    syndrome: int
    msn: int

    SIZE: ClassVar[int] = AETH_SIZE

    @property
    def is_ack(self) -> bool:
        return self.syndrome & AETH_KIND_MASK == 0x00

    @property
    def is_rnr_nak(self) -> bool:
        return self.syndrome & AETH_KIND_MASK == 0x20

    @property
    def is_nak(self) -> bool:
        return self.syndrome & AETH_KIND_MASK == 0x60

    def pack(self) -> bytes:
        return pack_aeth(self.syndrome, self.msn)

    @classmethod
    def unpack(cls, data: bytes) -> Aeth:
        if len(data) != AETH_SIZE:
            raise WireError(f"an AETH is {AETH_SIZE} bytes, got {len(data)}")
        (word,) = _AETH.unpack(data)
        return cls(word >> 24, word & 0xFFFFFF)


@dataclass(frozen=True, slots=True)
class Packet:
    """One IBA packet from the first LRH byte through the VCRC.

    `payload` excludes the pad bytes (their number is `bth.pad_cnt`). `icrc` and
    `vcrc` are the transmitted CRC bytes read big-endian, as received; pack()
    writes every field as given, so use `Packet.build` (or `build_ud_packet`)
    to get consistent lengths and CRCs, and `icrc_ok`/`vcrc_ok` to check them.
    """

    lrh: Lrh
    grh: Grh | None
    bth: Bth
    deth: Deth | None
    payload: bytes
    icrc: int
    vcrc: int

    MIN_SIZE: ClassVar[int] = LRH_SIZE + BTH_SIZE + ICRC_SIZE + VCRC_SIZE

    @classmethod
    def build(
        cls, lrh: Lrh, grh: Grh | None, bth: Bth, deth: Deth | None, payload: bytes
    ) -> Packet:
        """The packet with LNH, PktLen, PayLen, PadCnt, ICRC and VCRC computed."""
        pad_cnt = -len(payload) % 4
        after_grh = BTH_SIZE + (DETH_SIZE if deth else 0) + len(payload) + pad_cnt + ICRC_SIZE
        pkt_len_bytes = LRH_SIZE + (GRH_SIZE if grh else 0) + after_grh
        if pkt_len_bytes // 4 > MAX_PKT_LEN_WORDS:
            raise WireError(f"packet of {pkt_len_bytes} bytes exceeds PktLen's 11 bits")
        lrh = replace(
            lrh,
            lnh=Lnh.IBA_GLOBAL if grh else Lnh.IBA_LOCAL,
            pkt_len=pkt_len_bytes // 4,
        )
        if grh is not None:
            grh = replace(grh, pay_len=after_grh)
        bth = replace(bth, pad_cnt=pad_cnt)
        body = cls._body(lrh, grh, bth, deth, payload)
        crc_i = icrc(body)
        crc_v = vcrc(body + crc_i.to_bytes(ICRC_SIZE, "big"))
        return cls(lrh, grh, bth, deth, bytes(payload), crc_i, crc_v)

    @staticmethod
    def _body(lrh: Lrh, grh: Grh | None, bth: Bth, deth: Deth | None, payload: bytes) -> bytes:
        """Headers, payload and pad: the bytes the ICRC covers."""
        if (lrh.lnh == Lnh.IBA_GLOBAL) != (grh is not None):
            raise WireError(f"LRH LNH {lrh.lnh:#x} disagrees with GRH presence")
        if lrh.lnh not in (Lnh.IBA_LOCAL, Lnh.IBA_GLOBAL):
            raise WireError(f"LRH LNH {lrh.lnh:#x}: raw packets are not supported")
        if is_ud_opcode(bth.opcode) != (deth is not None):
            raise WireError(f"BTH OpCode {bth.opcode:#04x} disagrees with DETH presence")
        parts = [lrh.pack()]
        if grh is not None:
            parts.append(grh.pack())
        parts.append(bth.pack())
        if deth is not None:
            parts.append(deth.pack())
        parts.append(payload)
        parts.append(bytes(bth.pad_cnt))
        return b"".join(parts)

    def pack(self) -> bytes:
        _check_bits("ICRC", self.icrc, 32)
        _check_bits("VCRC", self.vcrc, 16)
        body = self._body(self.lrh, self.grh, self.bth, self.deth, self.payload)
        return body + _ICRC_VCRC.pack(self.icrc, self.vcrc)

    @classmethod
    def unpack(cls, data: bytes) -> Packet:
        """Decode a whole packet (LRH through VCRC, nothing after). Lengths must
        agree; CRCs are not checked here (see `icrc_ok`, `vcrc_ok`)."""
        size = len(data)
        if size < cls.MIN_SIZE:
            raise WireError(f"IBA packet needs at least {cls.MIN_SIZE} bytes, got {size}")
        lrh = Lrh.unpack(data)
        if lrh.lnh not in (Lnh.IBA_LOCAL, Lnh.IBA_GLOBAL):
            raise WireError(f"LRH LNH {lrh.lnh:#x}: raw packets are not supported")
        if lrh.pkt_len * 4 + VCRC_SIZE != size:
            raise WireError(
                f"LRH PktLen {lrh.pkt_len} words ({lrh.pkt_len * 4} bytes + VCRC) "
                f"disagrees with the {size}-byte packet"
            )
        offset = LRH_SIZE
        grh: Grh | None = None
        if lrh.lnh == Lnh.IBA_GLOBAL:
            if size < offset + GRH_SIZE + BTH_SIZE + ICRC_SIZE + VCRC_SIZE:
                raise WireError(f"global packet of {size} bytes too short for GRH and BTH")
            grh = Grh.unpack(data[offset:])
            offset += GRH_SIZE
            if grh.nxt_hdr != NxtHdr.IBA_TRANSPORT:
                raise WireError(f"GRH NxtHdr {grh.nxt_hdr:#04x} is not IBA transport (0x1b)")
            if grh.pay_len != size - offset - VCRC_SIZE:
                raise WireError(
                    f"GRH PayLen {grh.pay_len} disagrees with the "
                    f"{size - offset - VCRC_SIZE} bytes after the GRH"
                )
        bth = Bth.unpack(data[offset:])
        offset += BTH_SIZE
        deth: Deth | None = None
        end = size - ICRC_SIZE - VCRC_SIZE
        if is_ud_opcode(bth.opcode):
            if end - offset < DETH_SIZE:
                raise WireError(f"UD packet of {size} bytes has no room for its DETH")
            deth = Deth.unpack(data[offset:])
            offset += DETH_SIZE
        if end - offset < bth.pad_cnt:
            raise WireError(f"BTH PadCnt {bth.pad_cnt} exceeds the {end - offset} payload bytes")
        payload = bytes(data[offset : end - bth.pad_cnt])
        crc_i, crc_v = _ICRC_VCRC.unpack_from(data, end)
        return cls(lrh, grh, bth, deth, payload, crc_i, crc_v)

    @property
    def computed_icrc(self) -> int:
        return icrc(self._body(self.lrh, self.grh, self.bth, self.deth, self.payload))

    @property
    def computed_vcrc(self) -> int:
        body = self._body(self.lrh, self.grh, self.bth, self.deth, self.payload)
        return vcrc(body + self.icrc.to_bytes(ICRC_SIZE, "big"))

    @property
    def icrc_ok(self) -> bool:
        return self.computed_icrc == self.icrc

    @property
    def vcrc_ok(self) -> bool:
        """The VCRC covers the received ICRC, right or wrong."""
        return self.computed_vcrc == self.vcrc


def build_ud_packet(
    payload: bytes,
    *,
    dlid: int,
    slid: int,
    dest_qp: int,
    src_qp: int,
    sl: int = 0,
    vl: int | None = None,
    pkey: int = DEFAULT_PKEY,
    qkey: int | None = None,
    grh: Grh | None = None,
    psn: int = 0,
) -> bytes:
    """Frame `payload` (a MAD or any UD payload) as a UD SEND-only packet.

    LNH follows `grh`; PktLen, PayLen, PadCnt, ICRC and VCRC are computed. `vl`
    defaults to VL15 for QP0 (SMPs) and VL0 otherwise; `qkey` to 0 for QP0 and
    0x80010000 for QP1; other QPs need a `qkey`.
    """
    if vl is None:
        vl = VL15 if dest_qp == 0 else 0
    if qkey is None:
        if dest_qp == 0:
            qkey = 0
        elif dest_qp == 1:
            qkey = QP1_QKEY
        else:
            raise WireError(f"no default Q_Key for QP {dest_qp}: pass qkey")
    if grh is not None:
        return Packet.build(
            Lrh(vl, 0, sl, Lnh.IBA_GLOBAL, dlid, 0, slid),
            grh,
            Bth(OpCode.UD_SEND_ONLY, dest_qp, psn, pkey),
            Deth(qkey, src_qp),
            payload,
        ).pack()
    # Fast path for the common local case: one struct call for the headers.
    pad_cnt = -len(payload) % 4
    total = LRH_SIZE + BTH_SIZE + DETH_SIZE + len(payload) + pad_cnt + ICRC_SIZE
    if total // 4 > MAX_PKT_LEN_WORDS:
        raise WireError(f"packet of {total} bytes exceeds PktLen's 11 bits")
    _check_bits("LRH VL", vl, 4)
    _check_bits("LRH SL", sl, 4)
    _check_bits("BTH DestQP", dest_qp, 24)
    _check_bits("DETH SrcQP", src_qp, 24)
    _check_bits("BTH PSN", psn, 24)
    try:
        headers = _UD_LOCAL.pack(
            (vl << 4),
            (sl << 4) | Lnh.IBA_LOCAL,
            dlid,
            total // 4,
            slid,
            OpCode.UD_SEND_ONLY,
            pad_cnt << 4,
            pkey,
            dest_qp,
            psn,
            qkey,
            src_qp,
        )
    except struct.error as exc:
        raise WireError(f"UD packet field out of range: {exc}") from None
    body = headers + payload + bytes(pad_cnt)
    crc_i = icrc(body).to_bytes(ICRC_SIZE, "big")
    body += crc_i
    return body + vcrc(body).to_bytes(VCRC_SIZE, "big")

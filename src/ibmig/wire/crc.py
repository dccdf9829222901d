"""The two packet CRCs of an InfiniBand packet: ICRC and VCRC.

IBA Vol 1, 7.8 "CRCs". Every IBA (non-raw) packet ends with the 32-bit
Invariant CRC (7.8.1) followed by the 16-bit Variant CRC (7.8.2):

    LRH | [GRH] | BTH | [ETHs] | payload | pad | ICRC (4) | VCRC (2)

ICRC: the CRC-32 of Ethernet (polynomial 0x04C11DB7, register preset to all
ones, bits taken least significant first, i.e. the reflected form, result
complemented) over every byte from the first byte of the LRH to the last pad
byte, with the fields a switch or router may change replaced by ones:

- local packet (LNH = 0b10, BTH follows the LRH): the LRH VL nibble and the BTH
  reserved byte Resv8a (byte 4 of the BTH, in front of DestQP);
- global packet (LNH = 0b11, GRH follows the LRH): the whole LRH (a router
  rewrites it), the GRH TClass, FlowLabel and HopLmt, and BTH Resv8a.

RoCE computes the same CRC with "8 bytes of ones" standing for the masked LRH
(Linux rxe, rxe_icrc.c, seeds the register with 0xDEBB20E3, the CRC state
after those 8 bytes), which is the global-packet rule above. Raw packets
(LNH 0b00, 0b01) carry no ICRC.

VCRC: CRC-16 with polynomial 0x100B (x^16 + x^12 + x^3 + x + 1), register
preset to all ones, reflected like the ICRC (reversed polynomial 0xD008),
result complemented, over every byte from the first byte of the LRH to the
last byte of the ICRC; nothing is masked (it is recomputed on every link).

Both are transmitted least significant byte of the complemented register
first, which is how the Ethernet FCS goes out: rxe stores the complemented
crc32_le value in host (little-endian) order into the ICRC slot. The functions
below return the value of the transmitted bytes read big-endian, i.e. the
integer Wireshark displays (`infiniband.invariant.crc`, `infiniband.variant.crc`)
and the integer `ibmig.wire.packet.Packet` stores: `value.to_bytes(n, "big")`
are the bytes on the wire.
"""

from __future__ import annotations

import sys
import zlib
from array import array

from ibmig.errors import WireError

ICRC_SIZE = 4
VCRC_SIZE = 2

_LRH_SIZE = 8
_GRH_SIZE = 40
_BTH_SIZE = 12
_LNH_LOCAL = 0x2
_LNH_GLOBAL = 0x3
_RESV8A = 4  # offset of BTH Resv8a inside the BTH


def _vcrc_table8() -> tuple[int, ...]:
    """Register after shifting out 8 bits: one byte at a time."""
    table = []
    for byte in range(256):
        reg = byte
        for _ in range(8):
            reg = (reg >> 1) ^ 0xD008 if reg & 1 else reg >> 1
        table.append(reg)
    return tuple(table)


_VCRC_TABLE8 = _vcrc_table8()


def _vcrc_table16() -> array[int]:
    """Register after shifting out 16 bits: two bytes at a time (the VCRC runs
    over every packet the simulator frames, so halve the Python loop)."""
    t8 = _VCRC_TABLE8
    table = array("H", bytes(2 << 16))
    for reg in range(1 << 16):
        half = t8[reg & 0xFF] ^ (reg >> 8)
        table[reg] = t8[half & 0xFF] ^ (half >> 8)
    return table


_VCRC_TABLE16 = _vcrc_table16()
_ONES_LRH = b"\xff" * _LRH_SIZE


def icrc(data: bytes) -> int:
    """ICRC of a packet given from its first LRH byte up to, not including, the ICRC.

    Returns the transmitted 4 bytes read big-endian (see the module docstring).
    Raises WireError for raw packets (no ICRC) or when the headers the mask
    needs are missing.
    """
    if len(data) < 2:
        raise WireError(f"ICRC: packet of {len(data)} bytes has no complete LRH")
    lnh = data[1] & 0x3
    if lnh == _LNH_LOCAL:
        bth = _LRH_SIZE
        if len(data) < bth + _BTH_SIZE:
            raise WireError(f"ICRC: local packet of {len(data)} bytes has no complete BTH")
        # LRH with VL (bits 7..4 of byte 0) set to ones.
        crc = zlib.crc32(bytes((data[0] | 0xF0,)))
        crc = zlib.crc32(data[1 : bth + _RESV8A], crc)
    elif lnh == _LNH_GLOBAL:
        bth = _LRH_SIZE + _GRH_SIZE
        if len(data) < bth + _BTH_SIZE:
            raise WireError(f"ICRC: global packet of {len(data)} bytes has no complete BTH")
        # Whole LRH ones; GRH IPVer kept, TClass and FlowLabel ones; PayLen and
        # NxtHdr kept; HopLmt ones; SGID, DGID kept.
        grh = _LRH_SIZE
        crc = zlib.crc32(_ONES_LRH)
        crc = zlib.crc32(bytes((data[grh] | 0x0F, 0xFF, 0xFF, 0xFF)), crc)
        crc = zlib.crc32(data[grh + 4 : grh + 7], crc)
        crc = zlib.crc32(b"\xff", crc)
        crc = zlib.crc32(data[grh + 8 : bth + _RESV8A], crc)
    else:
        raise WireError(f"ICRC: LNH {lnh:#x} is a raw packet, which carries no ICRC")
    crc = zlib.crc32(b"\xff", crc)  # BTH Resv8a
    crc = zlib.crc32(data[bth + _RESV8A + 1 :], crc)
    return _wire32(crc)


def icrc_of_masked(masked: bytes) -> int:
    """The ICRC's CRC-32 over bytes whose variant fields are already ones (for
    example RoCE's pseudo-LRH, IP and UDP headers). Returns the transmitted 4
    bytes read big-endian."""
    return _wire32(zlib.crc32(masked))


def _wire32(crc: int) -> int:
    # zlib returns the complemented register; its low byte goes out first.
    return int.from_bytes(crc.to_bytes(4, "little"), "big")


def vcrc(data: bytes) -> int:
    """VCRC of a packet given from its first LRH byte through the ICRC (raw packets:
    through the payload). Returns the transmitted 2 bytes read big-endian."""
    even = len(data) & ~1
    words = array("H", data[:even])  # little-endian pairs: first byte is the low half
    if sys.byteorder == "big":
        words.byteswap()
    reg = 0xFFFF
    table = _VCRC_TABLE16
    for word in words:
        reg = table[reg ^ word]
    if even != len(data):
        reg = _VCRC_TABLE8[(reg ^ data[-1]) & 0xFF] ^ (reg >> 8)
    reg ^= 0xFFFF
    return ((reg & 0xFF) << 8) | (reg >> 8)

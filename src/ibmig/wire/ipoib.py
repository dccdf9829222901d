"""IP over InfiniBand: the encapsulation header and the ARP packet (RFC 4391).

An IPoIB packet is the payload of a UD SEND (or of a connected-mode RC message):
a 4-byte encapsulation header, then the upper-layer packet (RFC 4391, 6 "IPoIB
encapsulation header"):

    byte 0   Type (16): an EtherType, 0x0806 for ARP, 0x0800 for IPv4
    byte 2   reserved (16), sent as zero

ARP over IPoIB (RFC 4391, 9.1 "Address Resolution", with the RFC 826 ARP header)
uses a 20-byte hardware address, the IPoIB link-layer address of 9.1.1: one
reserved flags byte (RFC 4755 gives its bit 7 to connected mode), a 24-bit QPN
and the 16-byte port GID. As one 60-byte record, counting from the encapsulation header:

    byte 0   Type = 0x0806 (ARP)           byte 2  reserved (16)
    byte 4   ar$hrd = 32 (InfiniBand)      byte 6  ar$pro = 0x0800 (IPv4)
    byte 8   ar$hln = 20                   byte 9  ar$pln = 4
    byte 10  ar$op (1 request, 2 reply)
    byte 12  sender hardware address: flags (8) | QPN (24), GID (16 bytes)
    byte 32  sender IP address
    byte 36  target hardware address (zeros in a gratuitous request)
    byte 56  target IP address

Wireshark's InfiniBand dissector recognises the encapsulation header in a UD
payload heuristically ("IBA Payload - appears to be EtherType encapsulated") and
hands the rest to its ARP dissector, which knows hardware type 32.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv4Address
from typing import ClassVar, Final

from ibmig.errors import WireError


class EtherType(IntEnum):
    """IPoIB encapsulation header Type values used here (IEEE EtherTypes)."""

    IPV4 = 0x0800
    ARP = 0x0806


class ArpOp(IntEnum):
    """ARP operation codes (RFC 826; IANA "ARP Operation Codes")."""

    REQUEST = 0x1
    REPLY = 0x2


ETHERTYPE_ARP: Final = int(EtherType.ARP)
ARP_HRD_INFINIBAND: Final = 32  # IANA hardware type "InfiniBand" (RFC 4391, 9.1)
ARP_PRO_IPV4: Final = int(EtherType.IPV4)
ARP_REQUEST: Final = int(ArpOp.REQUEST)
ARP_REPLY: Final = int(ArpOp.REPLY)
IPOIB_HEADER_SIZE: Final = 4
IPOIB_HW_ADDR_SIZE: Final = 20

_ARP = struct.Struct(">HHHHBBHI16s4sI16s4s")
assert _ARP.size == 60


@dataclass(frozen=True, slots=True)
class IpoibArp:
    """An ARP packet in IPoIB encapsulation (layout in the module docstring).

    `op` is kept as the integer received, not an `ArpOp`: a receiver decides what
    an unknown operation means, the codec does not refuse it.
    """

    op: int
    sender_qpn: int
    sender_gid: bytes
    sender_ip: IPv4Address
    target_ip: IPv4Address
    target_qpn: int = 0
    target_gid: bytes = bytes(16)
    sender_flags: int = 0
    target_flags: int = 0

    SIZE: ClassVar[int] = 60

    @classmethod
    def gratuitous(cls, ip: IPv4Address, qpn: int, gid: bytes) -> IpoibArp:
        """A gratuitous ARP request announcing `ip` at (`qpn`, `gid`): sender and
        target protocol addresses are both `ip`, as Linux's `arp_send_garp` sends."""
        return cls(ARP_REQUEST, qpn, gid, ip, ip)

    def pack(self) -> bytes:
        for name in ("sender_qpn", "target_qpn"):
            value = getattr(self, name)
            if not 0 <= value <= 0xFFFFFF:
                raise WireError(f"IpoibArp.{name} {value!r} does not fit 24 bits")
        for name in ("sender_flags", "target_flags"):
            value = getattr(self, name)
            if not 0 <= value <= 0xFF:
                raise WireError(f"IpoibArp.{name} {value!r} does not fit 8 bits")
        for name in ("sender_gid", "target_gid"):
            if len(getattr(self, name)) != 16:
                raise WireError(f"IpoibArp.{name} must be 16 bytes")
        try:
            return _ARP.pack(
                ETHERTYPE_ARP,
                0,
                ARP_HRD_INFINIBAND,
                ARP_PRO_IPV4,
                IPOIB_HW_ADDR_SIZE,
                4,
                self.op,
                (self.sender_flags << 24) | self.sender_qpn,
                self.sender_gid,
                self.sender_ip.packed,
                (self.target_flags << 24) | self.target_qpn,
                self.target_gid,
                self.target_ip.packed,
            )
        except struct.error as exc:
            raise WireError(f"IpoibArp field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes) -> IpoibArp:
        """Decode exactly 60 bytes; the reserved half of the encapsulation header
        is ignored, anything but an InfiniBand/IPv4 ARP raises WireError."""
        if len(data) != cls.SIZE:
            raise WireError(f"an IPoIB ARP packet is {cls.SIZE} bytes, got {len(data)}")
        (etype, _rsv, hrd, pro, hln, pln, op, sha, sgid, spa, tha, tgid, tpa) = _ARP.unpack(data)
        if etype != ETHERTYPE_ARP:
            raise WireError(f"IPoIB type {etype:#06x} is not ARP")
        if (
            hrd != ARP_HRD_INFINIBAND
            or pro != ARP_PRO_IPV4
            or hln != IPOIB_HW_ADDR_SIZE
            or pln != 4
        ):
            raise WireError(
                f"not an IPoIB/IPv4 ARP packet (hrd {hrd}, pro {pro:#06x}, hln {hln}, pln {pln})"
            )
        return cls(
            op,
            sha & 0xFFFFFF,
            sgid,
            IPv4Address(spa),
            IPv4Address(tpa),
            tha & 0xFFFFFF,
            tgid,
            sha >> 24,
            tha >> 24,
        )


__all__ = [
    "ARP_HRD_INFINIBAND",
    "ARP_PRO_IPV4",
    "ARP_REPLY",
    "ARP_REQUEST",
    "ETHERTYPE_ARP",
    "IPOIB_HEADER_SIZE",
    "IPOIB_HW_ADDR_SIZE",
    "ArpOp",
    "EtherType",
    "IpoibArp",
]

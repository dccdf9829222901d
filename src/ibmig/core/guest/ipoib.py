"""The IPoIB neighbour model: IP address -> (QPN, GID), and gratuitous ARP.

Applications name their peers by IP address (rdma_cm resolves an address to a
GID through the IPoIB neighbour table). A neighbour entry holds the IPoIB
hardware address (RFC 4391, 9.1.1: one flags byte, a 24-bit QPN, a 16-byte GID)
and, for sending, the LID last known for that GID (what IPoIB's own path cache
holds: taken from the last PathRecord or REQ that named it).

With *dynamic* address assignment a migrated VM takes the destination VF's GUID,
so its GID changes. It then announces itself with a gratuitous ARP: an ARP
request whose sender and target protocol addresses are its own IP (what Linux
sends on NETDEV_NOTIFY_PEERS, `arp_send_garp`). On the fabric that is one UD
broadcast on the IPoIB broadcast group; here it is modelled as one UD datagram to
each neighbour (DQP `IPOIB_QPN`, Q_Key `IPOIB_QKEY`). A receiver updates the entry
of an IP it already knows (Linux's default arp_accept=0 creates none) and, if the
GID changed, its clients of that IP reconnect to the new GID.

The datagram payload (60 bytes) is an IPoIB packet (RFC 4391, 6 "IPoIB
encapsulation header" and 9.1 "Address Resolution"):

    byte 0   Type = 0x0806 (ARP)           byte 2  reserved (16)
    byte 4   ar$hrd = 32 (InfiniBand)      byte 6  ar$pro = 0x0800 (IPv4)
    byte 8   ar$hln = 20                   byte 9  ar$pln = 4
    byte 10  ar$op (1 request, 2 reply)
    byte 12  sender hardware address: flags (8) | QPN (24), GID (16 bytes)
    byte 32  sender IP address
    byte 36  target hardware address (zeros in a gratuitous request)
    byte 56  target IP address
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import ClassVar, Final

from ibmig.errors import WireError

IPOIB_QPN: Final = 0x000048
"""The UD QP every guest's IPoIB interface uses. ASSUMPTION: real IPoIB QPNs are
allocated per interface; one fixed number keeps the model simple."""
IPOIB_QKEY: Final = 0x00000B1B
"""The IPoIB broadcast group's Q_Key (OpenSM OSM_IPOIB_BROADCAST_MGRP_QKEY)."""

ETHERTYPE_ARP: Final = 0x0806
ARP_HRD_INFINIBAND: Final = 32
ARP_PRO_IPV4: Final = 0x0800
ARP_REQUEST: Final = 1
ARP_REPLY: Final = 2
_HW_ADDR_SIZE: Final = 20

_ARP = struct.Struct(">HHHHBBHI16s4sI16s4s")
assert _ARP.size == 60


@dataclass(frozen=True, slots=True)
class IpoibArp:
    """An ARP packet in IPoIB encapsulation (layout in the module docstring)."""

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
        """A gratuitous ARP request announcing `ip` at (`qpn`, `gid`)."""
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
                _HW_ADDR_SIZE,
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
        if len(data) != cls.SIZE:
            raise WireError(f"an IPoIB ARP packet is {cls.SIZE} bytes, got {len(data)}")
        (etype, _rsv, hrd, pro, hln, pln, op, sha, sgid, spa, tha, tgid, tpa) = _ARP.unpack(data)
        if etype != ETHERTYPE_ARP:
            raise WireError(f"IPoIB type {etype:#06x} is not ARP")
        if hrd != ARP_HRD_INFINIBAND or pro != ARP_PRO_IPV4 or hln != _HW_ADDR_SIZE or pln != 4:
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


class Neighbour:
    """One neighbour entry: IPoIB hardware address and the LID last known for it."""

    __slots__ = ("gid", "lid", "qpn")

    def __init__(self, qpn: int, gid: bytes, lid: int = 0) -> None:
        self.qpn = qpn
        self.gid = gid
        self.lid = lid

    def __repr__(self) -> str:
        return f"Neighbour(qpn={self.qpn:#x}, gid={self.gid.hex()}, lid={self.lid})"


class NeighbourTable:
    """IP address -> `Neighbour`, in insertion order (deterministic announcements)."""

    def __init__(self) -> None:
        self._entries: dict[IPv4Address, Neighbour] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, ip: object) -> bool:
        return ip in self._entries

    def get(self, ip: IPv4Address) -> Neighbour | None:
        return self._entries.get(ip)

    def learn(self, ip: IPv4Address, gid: bytes, lid: int = 0, qpn: int = IPOIB_QPN) -> None:
        """Add or refresh `ip` (a LID of 0 keeps the one already known)."""
        entry = self._entries.get(ip)
        if entry is None:
            self._entries[ip] = Neighbour(qpn, gid, lid)
            return
        if entry.gid != gid:
            entry.lid = 0
        entry.gid = gid
        entry.qpn = qpn
        if lid:
            entry.lid = lid

    def note_lid(self, gid: bytes, lid: int) -> None:
        """Remember `lid` for every entry whose GID is `gid`."""
        for entry in self._entries.values():
            if entry.gid == gid:
                entry.lid = lid

    def update(self, ip: IPv4Address, qpn: int, gid: bytes, lid: int) -> bytes | None:
        """Apply an ARP from `ip` (at `lid`): returns the entry's previous GID, or
        None when `ip` is not in the table (nothing is created)."""
        entry = self._entries.get(ip)
        if entry is None:
            return None
        old = entry.gid
        entry.qpn, entry.gid, entry.lid = qpn, gid, lid
        return old

    def remove(self, ip: IPv4Address) -> None:
        self._entries.pop(ip, None)

    def items(self) -> list[tuple[IPv4Address, Neighbour]]:
        return list(self._entries.items())

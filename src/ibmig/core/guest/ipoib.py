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

The datagram payload (60 bytes) is an IPoIB ARP packet (RFC 4391, 6 and 9.1),
`ibmig.wire.ipoib.IpoibArp`.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Final

from ibmig.wire.ipoib import IpoibArp

IPOIB_QPN: Final = 0x000048
"""The UD QP every guest's IPoIB interface uses. ASSUMPTION: real IPoIB QPNs are
allocated per interface; one fixed number keeps the model simple."""
IPOIB_QKEY: Final = 0x00000B1B
"""The IPoIB broadcast group's Q_Key (OpenSM OSM_IPOIB_BROADCAST_MGRP_QKEY)."""


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


__all__ = ["IPOIB_QKEY", "IPOIB_QPN", "IpoibArp", "Neighbour", "NeighbourTable"]

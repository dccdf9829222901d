"""The IPoIB neighbour model: IP address -> (QPN, GID), ARP and its state machine.

Applications name their peers by IP address (rdma_cm resolves an address to a
GID through the IPoIB neighbour table). A neighbour entry holds the IPoIB
hardware address (RFC 4391, 9.1.1: one flags byte, a 24-bit QPN, a 16-byte GID)
and, for sending, the LID last known for that GID (what IPoIB's own path cache
holds: taken from the last PathRecord or REQ that named it).

Neighbour states (`NudState`) follow Linux's net/core/neighbour.c; the timings are
the ARP table's defaults (net/ipv4/arp.c `arp_tbl`), `GuestConfig.arp_*`:

- a resolution from scratch (no entry, or FAILED) makes the entry INCOMPLETE and
  broadcasts an ARP request for the address, `arp_mcast_probes` (3) of them
  `arp_retrans_ns` (1 s) apart; then FAILED (`neigh_timer_handler`);
- an ARP reply to us makes the entry REACHABLE, any other ARP that names the
  address (a gratuitous one, a request from it) STALE with the new hardware address
  (net/ipv4/arp.c `arp_process`); Linux's default arp_accept=0 creates no entry for
  an unsolicited ARP, but a request addressed to us does create the sender's;
- REACHABLE turns STALE `arp_reachable_ns` (30 s) after its last confirmation
  (Linux draws the time from [base/2, 3·base/2), `neigh_rand_reach_time`; the model
  takes the base, so guests draw nothing more from their generators);
- a STALE entry used for sending goes to DELAY and, unless confirmed within
  `arp_delay_first_probe_ns` (5 s), to PROBE: `arp_ucast_probes` (3) unicast ARP
  requests to the hardware address it holds, `arp_retrans_ns` apart; then FAILED
  (`__neigh_event_send`, `neigh_timer_handler`).

rdma_cm reads the table (drivers/infiniband/core/addr.c `dst_fetch_ha`): a valid
entry (REACHABLE, STALE, DELAY, PROBE) is used as it is; any other starts a
resolution (`neigh_event_send`) and the request waits until the entry becomes
valid (addr.c `netevent_callback` re-runs it at once) or its time-out passes.

The table belongs to the IPoIB interface: when the VF goes, the interface goes
and its entries with it (net/ipv4/fib_frontend.c `fib_disable_ip` ->
`arp_ifdown` -> `neigh_ifdown`), so a migrated VM resolves every peer afresh.

With *dynamic* address assignment a migrated VM takes the destination VF's GUID,
so its GID changes. It then announces itself with a gratuitous ARP: an ARP
request whose sender and target protocol addresses are its own IP (what Linux
sends on NETDEV_NOTIFY_PEERS, `arp_send_garp`). On the fabric that is one UD
broadcast on the IPoIB broadcast group; a guest that is not a member
(`GuestConfig.join_ipoib_broadcast` off) sends instead one UD datagram to each
neighbour whose LID it knows (DQP `IPOIB_QPN`, Q_Key `IPOIB_QKEY`), and keeps its
table across a migration, since it could not rebuild it by broadcast.

The datagram payload (60 bytes) is an IPoIB ARP packet (RFC 4391, 6 and 9.1),
`ibmig.wire.ipoib.IpoibArp`.
"""

from __future__ import annotations

from enum import IntEnum
from ipaddress import IPv4Address
from typing import Any, Final

from ibmig.wire.ipoib import IpoibArp

IPOIB_QPN: Final = 0x000048
"""The UD QP every guest's IPoIB interface uses. ASSUMPTION: real IPoIB QPNs are
allocated per interface; one fixed number keeps the model simple."""
IPOIB_QKEY: Final = 0x00000B1B
"""The IPoIB broadcast group's Q_Key (OpenSM OSM_IPOIB_BROADCAST_MGRP_QKEY)."""
MULTICAST_QPN: Final = 0xFFFFFF
"""The DQP of every multicast packet (IBA Vol 1, 10.5.2.4)."""


class NudState(IntEnum):
    """Neighbour states (Linux include/uapi/linux/neighbour.h NUD_*)."""

    INCOMPLETE = 0x01
    REACHABLE = 0x02
    STALE = 0x04
    DELAY = 0x08
    PROBE = 0x10
    FAILED = 0x20


VALID_STATES: Final = frozenset(
    {NudState.REACHABLE, NudState.STALE, NudState.DELAY, NudState.PROBE}
)
"""Linux's NUD_VALID (less PERMANENT and NOARP, which IPoIB entries are not)."""


class Neighbour:
    """One neighbour entry: IPoIB hardware address, the LID last known for it, and
    its state (module docstring). `deadline`: when its timer fires (DELAY, PROBE,
    INCOMPLETE), `probes`: ARP requests sent in the current state."""

    __slots__ = ("confirmed_ns", "deadline", "gid", "ip", "lid", "probes", "qpn", "state")

    def __init__(
        self,
        ip: IPv4Address,
        qpn: int,
        gid: bytes,
        lid: int = 0,
        state: NudState = NudState.REACHABLE,
        confirmed_ns: int = 0,
    ) -> None:
        self.ip = ip
        self.qpn = qpn
        self.gid = gid
        self.lid = lid
        self.state = state
        self.confirmed_ns = confirmed_ns
        self.deadline: int | None = None
        self.probes = 0

    @property
    def valid(self) -> bool:
        return self.state in VALID_STATES

    def __repr__(self) -> str:
        return (
            f"Neighbour({self.ip}, {self.state.name}, qpn={self.qpn:#x}, "
            f"gid={self.gid.hex()}, lid={self.lid})"
        )


class NeighbourTable:
    """IP address -> `Neighbour`, in insertion order (deterministic announcements)."""

    def __init__(self) -> None:
        self._entries: dict[IPv4Address, Neighbour] = {}
        self.mlid = 0
        """The IPoIB broadcast group's MLID, once joined (0: no broadcast)."""
        self.waiting: dict[IPv4Address, list[tuple[Any, int]]] = {}
        """Connection attempts (client stream, its token) waiting for an address."""

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, ip: object) -> bool:
        return ip in self._entries

    def get(self, ip: IPv4Address) -> Neighbour | None:
        return self._entries.get(ip)

    def learn(
        self, ip: IPv4Address, gid: bytes, lid: int = 0, qpn: int = IPOIB_QPN, now_ns: int = 0
    ) -> Neighbour:
        """Add or refresh `ip` as REACHABLE (a LID of 0 keeps the one already known)."""
        entry = self._entries.get(ip)
        if entry is None:
            entry = self._entries[ip] = Neighbour(ip, qpn, gid, lid, confirmed_ns=now_ns)
            return entry
        if entry.gid != gid:
            entry.lid = 0
        entry.gid = gid
        entry.qpn = qpn
        if lid:
            entry.lid = lid
        entry.state = NudState.REACHABLE
        entry.confirmed_ns = now_ns
        entry.deadline = None
        entry.probes = 0
        return entry

    def incomplete(self, ip: IPv4Address) -> Neighbour:
        """The entry of `ip` for a resolution from scratch (created if need be)."""
        entry = self._entries.get(ip)
        if entry is None:
            entry = self._entries[ip] = Neighbour(ip, 0, bytes(16), state=NudState.INCOMPLETE)
        entry.state = NudState.INCOMPLETE
        entry.probes = 0
        return entry

    def note_lid(self, gid: bytes, lid: int) -> None:
        """Remember `lid` for every entry whose GID is `gid`."""
        for entry in self._entries.values():
            if entry.gid == gid:
                entry.lid = lid

    def update(
        self,
        ip: IPv4Address,
        qpn: int,
        gid: bytes,
        lid: int,
        state: NudState = NudState.STALE,
        now_ns: int = 0,
    ) -> bytes | None:
        """Apply an ARP from `ip` (at `lid`) that makes the entry `state`: returns the
        entry's previous GID, or None when `ip` is not in the table (nothing is
        created)."""
        entry = self._entries.get(ip)
        if entry is None:
            return None
        old = entry.gid
        entry.qpn, entry.gid, entry.lid = qpn, gid, lid
        entry.state = state
        entry.probes = 0
        entry.deadline = None
        if state is NudState.REACHABLE:
            entry.confirmed_ns = now_ns
        return old

    def remove(self, ip: IPv4Address) -> None:
        self._entries.pop(ip, None)

    def flush(self) -> None:
        """Forget every entry (the interface went down: Linux `neigh_ifdown`)."""
        for entry in self._entries.values():
            entry.deadline = None
        self._entries.clear()
        self.waiting.clear()

    def items(self) -> list[tuple[IPv4Address, Neighbour]]:
        return list(self._entries.items())


__all__ = [
    "IPOIB_QKEY",
    "IPOIB_QPN",
    "MULTICAST_QPN",
    "VALID_STATES",
    "IpoibArp",
    "Neighbour",
    "NeighbourTable",
    "NudState",
]

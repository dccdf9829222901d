"""IPoIB: the neighbour table, and the gratuitous ARP after a migration with dynamic
address assignment (the ARP codec is tested in tests/wire/test_ipoib.py)."""

from __future__ import annotations

from ipaddress import IPv4Address

from ibmig.core.guest import (
    IPOIB_QKEY,
    IPOIB_QPN,
    ConnectionBroken,
    GratuitousArpSent,
    IpoibArp,
    MessageDelivered,
    NeighbourTable,
    NeighbourUpdated,
    PathRegistered,
    PathUnregistered,
    Reconnected,
)
from tests.core.guest.guest_util import Wire, gid

S_GUID, S_LID, S_IP = 0x100, 10, "10.0.0.1"
C_GUID, C_LID, C_IP = 0x200, 20, "10.0.0.2"


def test_neighbour_table() -> None:
    table = NeighbourTable()
    ip = IPv4Address("10.0.0.1")
    assert table.update(ip, IPOIB_QPN, gid(1), 5) is None  # ARP creates nothing
    table.learn(ip, gid(1))
    table.note_lid(gid(1), 7)
    entry = table.get(ip)
    assert entry is not None and (entry.gid, entry.lid) == (gid(1), 7)
    assert table.update(ip, IPOIB_QPN, gid(2), 9) == gid(1)
    assert (entry.gid, entry.lid) == (gid(2), 9)
    table.learn(ip, gid(3))  # a new GID forgets the old LID
    assert entry.lid == 0
    table.remove(ip)
    assert ip not in table and len(table) == 0


def test_dynamic_assignment_gratuitous_arp_moves_the_clients() -> None:
    wire = Wire()
    wire.add("s", S_GUID, S_LID, ip=S_IP)
    wire.add("c", C_GUID, C_LID, ip=C_IP, peers=[(S_IP, S_GUID)])
    wire.run_for(100_000)
    c, s = wire.guests["c"], wire.guests["s"]
    # The server migrates and takes the destination VF's GUID: a new GID.
    wire.migrate("s", 30, new_guid=0x999)
    moved_at = wire.now
    arps = [d for d in wire.sent_by("s", moved_at) if d.dqp == IPOIB_QPN]
    assert len(arps) == 1  # its one neighbour: the client, learned from the REQ
    arp = arps[0]
    assert (arp.slid, arp.dlid, arp.sqp, arp.qkey, arp.opcode) == (30, C_LID, IPOIB_QPN,
                                                                   IPOIB_QKEY, 0x64)  # fmt: skip
    assert (arp.sgid, arp.dgid) == (gid(0x999), gid(C_GUID))
    assert IpoibArp.unpack(arp.payload) == IpoibArp.gratuitous(
        IPv4Address(S_IP), IPOIB_QPN, gid(0x999)
    )
    assert wire.events_of(GratuitousArpSent) == [
        GratuitousArpSent(moved_at, IPv4Address(S_IP), gid(0x999), 1)
    ]
    wire.run_for(200_000)
    assert wire.events_of(NeighbourUpdated) == [
        NeighbourUpdated(moved_at + 1_000, IPv4Address(S_IP), gid(S_GUID), gid(0x999))
    ]
    entry = c.neighbours.get(IPv4Address(S_IP))
    assert entry is not None and (entry.gid, entry.lid) == (gid(0x999), 30)
    assert [e.reason for e in wire.events_of(ConnectionBroken, "c")] == ["neighbour_changed"]
    assert wire.events_of(Reconnected)[0].server_gid == gid(0x999)
    assert c.paths.lookup(gid(S_GUID)) is None
    assert c.paths.lookup(gid(0x999)).dlid == 30  # type: ignore[union-attr]
    intra = [m for _, n, m in wire.intra if n == "c"]
    assert intra[-2:] == [PathUnregistered(gid(S_GUID)), PathRegistered(gid(0x999))]
    after = [e for e in wire.events_of(MessageDelivered) if e.time_ns > moved_at]
    assert after and {e.server_gid for e in after} == {gid(0x999)}
    assert s.sent["arp"] == 1


def test_static_assignment_sends_no_arp() -> None:
    wire = Wire()
    wire.add("s", S_GUID, S_LID, ip=S_IP)
    wire.add("c", C_GUID, C_LID, ip=C_IP, peers=[(S_IP, S_GUID)])
    wire.run_for(100_000)
    wire.migrate("s", 30)
    assert wire.guests["s"].sent["arp"] == 0
    assert not wire.events_of(GratuitousArpSent)


def test_server_drops_connections_from_a_clients_old_gid() -> None:
    wire = Wire()
    wire.add("s", S_GUID, S_LID, ip=S_IP)
    wire.add("c", C_GUID, C_LID, ip=C_IP, peers=[(S_IP, S_GUID)])
    wire.run_for(100_000)
    wire.migrate("c", 50, new_guid=0x777)  # the client gets a new GID and announces it
    wire.run_for(100_000)
    s = wire.guests["s"]
    broken = wire.events_of(ConnectionBroken, "s")
    assert [e.reason for e in broken] == ["neighbour_changed"]
    assert list(s.server_connections()) == [(gid(0x777), s.config.service_id)]

"""IPoIB: the neighbour table, and the gratuitous ARP after a migration with dynamic
address assignment (the ARP codec is tested in tests/wire/test_ipoib.py)."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address

from ibmig.core.guest import (
    IPOIB_QKEY,
    IPOIB_QPN,
    ConnectFailed,
    ConnectionBroken,
    GratuitousArpSent,
    IpoibArp,
    MessageDelivered,
    NeighbourStateChanged,
    NeighbourTable,
    NeighbourUpdated,
    PathRegistered,
    PathUnregistered,
    Reconnected,
)
from ibmig.core.guest.agent import IPOIB_BROADCAST_MGID
from ibmig.core.guest.ipoib import MULTICAST_QPN
from ibmig.core.guest.workload import StreamState
from tests.core.guest.guest_util import FAST, Wire, gid

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


MLID = 0xC001
ARP_CONFIG = replace(FAST, join_ipoib_broadcast=True, arp_use_on_connect=True,
                     arp_reachable_ns=1_000_000, message_interval_ns=1_000_000)  # fmt: skip
"""Linux's ARP timings (5 s DELAY, 3 unicast and 3 broadcast probes 1 s apart); the
entries turn STALE 1 ms after their last confirmation, so the test need not wait 30 s."""


def arp_wire() -> Wire:
    wire = Wire()
    for name, guid, lid, ip, peers in (("s", S_GUID, S_LID, S_IP, []),
                                       ("c", C_GUID, C_LID, C_IP, [(S_IP, S_GUID)])):  # fmt: skip
        wire.add(name, guid, lid, ip=ip, peers=peers, config=ARP_CONFIG)
        wire.guests[name].neighbours.mlid = MLID  # as if the join were answered
    wire.run_for(100_000)
    return wire


def states(wire: Wire, name: str) -> list[tuple[int, str]]:
    return [(e.time_ns, e.state) for e in wire.events_of(NeighbourStateChanged, name)]


def test_a_stale_neighbour_is_probed_by_unicast_then_resolved_by_broadcast() -> None:
    wire = arp_wire()
    c = wire.guests["c"]
    assert c.streams[IPv4Address(S_IP)].state is StreamState.CONNECTED
    # The server moves to a new GID while its gratuitous ARP is lost: the client's
    # entry still names the old GID.
    wire.drop_lids.add(MLID)
    wire.migrate("s", 30, new_guid=0x999)
    wire.drop_lids.clear()
    moved = wire.now
    wire.run_for(9_500_000_000)
    seen = states(wire, "c")
    # The first attempt after the move reads the entry, STALE by now: DELAY; 5 s
    # later (delay_first_probe_time) PROBE; 3 unicast probes 1 s apart, then FAILED.
    (delay, state), *rest = seen
    assert state == "DELAY" and delay > moved
    assert rest[:2] == [(delay + 5_000_000_000, "PROBE"), (delay + 8_000_000_000, "FAILED")]
    arps = [(t, d) for t, n, d in wire.sent if n == "c" and d.sqp == IPOIB_QPN]
    assert [(t - delay, d.dlid, d.dgid) for t, d in arps[:3]] == [
        (5_000_000_000 + i * 1_000_000_000, S_LID, gid(S_GUID)) for i in range(3)
    ]
    # The next attempt resolves from scratch: one broadcast, answered by the server.
    (incomplete, state), (reachable, state2) = rest[2:4]
    assert (state, state2) == ("INCOMPLETE", "REACHABLE")
    assert delay + 8_000_000_000 <= incomplete < delay + 9_000_000_000  # RDS back-off
    t, broadcast = arps[3]
    assert (t, broadcast.dlid, broadcast.dqp, broadcast.dgid) == (
        incomplete, MLID, MULTICAST_QPN, IPOIB_BROADCAST_MGID,
    )  # fmt: skip
    assert IpoibArp.unpack(broadcast.payload).target_ip == IPv4Address(S_IP)
    assert reachable == incomplete + 2_000  # request and reply, 1 us each way
    entry = c.neighbours.get(IPv4Address(S_IP))
    assert entry is not None and (entry.gid, entry.lid) == (gid(0x999), 30)
    assert wire.events_of(Reconnected, "c")[-1].server_gid == gid(0x999)
    assert c.streams[IPv4Address(S_IP)].state is StreamState.CONNECTED


def test_a_resolution_from_scratch_broadcasts_three_times_then_fails() -> None:
    wire = arp_wire()
    wire.guests["s"].detach(wire.now)  # nobody answers
    c = wire.migrate("c", 50, new_guid=0x777)  # its table goes with its VF
    start = wire.now
    assert len(c.neighbours) == 1  # the entry being resolved
    wire.run_for(5_000_000_000)
    assert states(wire, "c") == [(start, "INCOMPLETE"), (start + 3_000_000_000, "FAILED")]
    broadcasts = [t - start for t, n, d in wire.sent
                  if n == "c" and d.dlid == MLID and IpoibArp.unpack(d.payload).op == 1
                  and IpoibArp.unpack(d.payload).target_ip == IPv4Address(S_IP)]  # fmt: skip
    assert broadcasts == [0, 1_000_000_000, 2_000_000_000]
    # rdma_resolve_addr gives up after RDS's 5 s.
    [failed] = [e for e in wire.events_of(ConnectFailed, "c") if e.time_ns > start]
    assert (failed.time_ns - start, failed.reason) == (5_000_000_000, "addr_timeout")


def test_a_gratuitous_arp_completes_a_resolution_under_way() -> None:
    wire = arp_wire()
    s = wire.guests["s"]
    s.detach(wire.now)
    c = wire.migrate("c", 50, new_guid=0x777)
    wire.run_for(1_500_000_000)  # two broadcasts unanswered
    s.resume(wire.now, port_num=1, lid=30, gid=gid(0x999), sa_lid=wire.sa.lid)
    wire.sa.paths[gid(0x999)] = 30
    back = wire.now
    wire.pump("s")  # its gratuitous ARP, broadcast
    wire.run_for(100_000)
    assert states(wire, "c")[-1] == (back + 1_000, "STALE")
    assert c.streams[IPv4Address(S_IP)].state is StreamState.CONNECTED
    assert wire.events_of(Reconnected, "c")[-1].server_gid == gid(0x999)

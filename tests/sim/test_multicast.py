"""Multicast on the simulated fabric: joins through the SA, the SM's MFT Sets, the
switches' MFTs (ibmig.core.sa.multicast, ibmig.core.sm.multicast, the SMA's
MulticastForwardingTable)."""

from __future__ import annotations

import random
from collections.abc import Container

import pytest

from ibmig.core.engine import QP1, Datagram
from ibmig.fabric import load_topology
from ibmig.sim.subnet import SubnetSim
from ibmig.wire.mad import MadHeader, Method, MgmtClass, RmppHeader
from ibmig.wire.packet import QP1_QKEY
from ibmig.wire.sa import SA_DATA_SIZE, MCMemberRecord, SaAttr, SaMad
from ibmig.wire.sa import MCMemberRecordComp as C

BROADCAST = bytes.fromhex("ff12401bffff000000000000ffffffff")
PREFIX = (0xFE80 << 48).to_bytes(8, "big")


def brought_up(topology: str) -> SubnetSim:
    sim = SubnetSim(load_topology(topology))
    sim.start()
    assert sim.run_until_up() is not None
    return sim


def sa_request(sim: SubnetSim, node: int, method: int) -> None:
    """The CA at `node` joins (or leaves) the broadcast group with its port 1's GUID."""
    port_guid = sim.fabric.port(node, 1).port_guid
    record = MCMemberRecord(BROADCAST, PREFIX + port_guid.to_bytes(8, "big"), join_state=1)
    mad = SaMad(
        MadHeader(
            MgmtClass.SUBN_ADM, method, SaAttr.MC_MEMBER_RECORD, 0x100 + node, 0, class_version=2
        ),
        RmppHeader.NONE,
        0,
        0,
        C.MGID | C.PORT_GID | C.JOIN_STATE,
        record.pack().ljust(SA_DATA_SIZE, b"\0"),
    )
    slid = sim.agents[node].port_lid(1)
    sim.sa.receive(
        Datagram(mad.pack(), 1, slid, sim.sm.db.sm_lid, 1, QP1, qkey=QP1_QKEY), sim.kernel.now_ns
    )
    sim.pump(sim.sm_node, sim.sm_engine)


def flood(sim: SubnetSim, source: int, mlid: int) -> list[int]:
    """Follow a packet to `mlid` from CA `source` through the switches' MFTs (a switch
    never sends it back where it came from): every CA it reaches, with repeats."""
    reached = []
    first = sim.peer[source][1]
    assert first is not None
    todo = [first]
    visits = 0
    while todo:
        node, in_port = todo.pop()
        if not sim.is_switch[node]:
            reached.append(node)
            continue
        visits += 1
        assert visits <= 10 * len(sim.agents), "the MFTs loop"
        mask = sim.agents[node].multicast_ports(mlid)
        for port in range(1, len(sim.peer[node])):
            if mask >> port & 1 and port != in_port:
                far = sim.peer[node][port]
                assert far is not None, f"MFT names port {port} without a cable"
                todo.append(far)
    return reached


@pytest.mark.parametrize("topology", ["ft2-36", "ft3-32"])
def test_joined_members_and_only_they_get_each_packet_once(topology: str) -> None:
    sim = brought_up(topology)
    cas = [i for i, switch in enumerate(sim.is_switch) if not switch and i != sim.sm_node]
    members = sorted(random.Random(7).sample(cas, 6))
    sent = sim.sm.smps_sent
    for node in members:
        sa_request(sim, node, Method.SET)
    sim.run(until_ns=sim.kernel.now_ns + 50_000_000)
    assert sim.sm.smps_sent > sent  # the MFT Sets
    for source in members:
        reached = flood(sim, source, 0xC000)
        # every other member once (a switch does not send a packet back where it
        # came from, so the sender gets none), no CA that did not join
        assert sorted(reached) == [m for m in members if m != source], (source, reached)
    # the last member leaves: no switch forwards the MLID any more
    for node in members:
        sa_request(sim, node, Method.DELETE)
    sim.run(until_ns=sim.kernel.now_ns + 50_000_000)
    assert all(agent.multicast_ports(0xC000) == 0 for agent in sim.agents if agent.is_switch)


class Listener:
    """An engine that keeps what reaches it."""

    def __init__(self) -> None:
        self.event_filter: Container[type] | None = None
        self.received: list[Datagram] = []

    def receive(self, datagram: Datagram, now_ns: int) -> None:
        self.received.append(datagram)

    def handle_timer(self, now_ns: int) -> None:
        pass

    def packets_to_send(self) -> list[Datagram]:
        return []

    def get_timer(self) -> int | None:
        return None

    def next_event(self) -> None:
        return None


def test_transport_delivers_a_multicast_packet_to_each_other_member_once() -> None:
    sim = brought_up("ft3-32")
    cas = [i for i, switch in enumerate(sim.is_switch) if not switch and i != sim.sm_node]
    members = sorted(random.Random(3).sample(cas, 5))
    listeners = {}
    for node in cas:
        listeners[node] = Listener()
        sim.attach(node, listeners[node], 0, gsi_classes=(0x30,))
    for node in members:
        sa_request(sim, node, Method.SET)
    sim.run(until_ns=sim.kernel.now_ns + 50_000_000)
    source = members[0]
    payload = bytes((1, 0x30, 1, 1)) + bytes(252)
    slid = sim.agents[source].port_lid(1)
    sim.send(source, Datagram(payload, 1, slid, 0xC000, QP1, QP1, qkey=QP1_QKEY))
    sim.run(until_ns=sim.kernel.now_ns + 1_000_000)
    got = {node: len(listener.received) for node, listener in listeners.items()}
    assert got == {node: int(node in members and node != source) for node in cas}
    arrived = listeners[members[1]].received[0]
    assert arrived.dlid == 0xC000 and arrived.payload == payload
    # an MLID no switch forwards: dropped, delivered nowhere
    drops = sim.stats.drops["no_route"]
    sim.send(source, Datagram(payload, 1, slid, 0xC005, QP1, QP1, qkey=QP1_QKEY))
    sim.run(until_ns=sim.kernel.now_ns + 1_000_000)
    assert sim.stats.drops["no_route"] == drops + 1
    assert sum(len(listener.received) for listener in listeners.values()) == len(members) - 1

"""Multicast on the simulated fabric: joins through the SA, the SM's MFT Sets, the
switches' MFTs (ibmig.core.sa.multicast, ibmig.core.sm.multicast, the SMA's
MulticastForwardingTable)."""

from __future__ import annotations

import random

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

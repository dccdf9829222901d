"""Two ibmig SMs in one simulated subnet (IBA Vol 1, 14.4): the higher one is MASTER,
the other goes STANDBY and programs nothing; when the master's link goes down the
standby's polls go unanswered and it takes over, and the subnet stays up."""

from __future__ import annotations

from ibmig.core.sm.manager import SmConfig, SubnetManager, SubnetUp
from ibmig.core.sm.node import SMP_CLASSES, SmNode
from ibmig.core.sm.roles import SmStateChanged
from ibmig.fabric import Fabric, read_net
from ibmig.sim.subnet import SubnetSim
from ibmig.wire.mad import Method
from ibmig.wire.smp_attrs import PortCapability, PortState, SmState
from tests.shared_files import TOPOLOGIES

POLL_NS = 50_000_000  # 50 ms between polls (OpenSM: 10 s), so takeover is quick


def config(priority: int) -> SmConfig:
    return SmConfig(priority=priority, sminfo_polling_timeout_ns=POLL_NS, polling_retry_number=2)


def two_sms(
    fabric: Fabric, first: int, second: int, *, start_second_ns: int = 0
) -> tuple[SubnetSim, SubnetManager, int, list[tuple[int, SmStateChanged]]]:
    """SM A (priority `first`) at the default SM node; SM B (priority `second`) at the
    last CA; both start their first sweep (B `start_second_ns` later)."""
    sim = SubnetSim(fabric, sm_config=config(first))
    node_b = [n for n in fabric.cas if fabric.peer(n.index, 1) is not None][-1].index
    assert node_b != sim.sm_node
    sm_b = SubnetManager(port_num=1, config=config(second))
    sm_b.record_events = True
    engine_b = SmNode(sm_b)
    sim.attach(node_b, engine_b, dict.fromkeys(SMP_CLASSES, sim.latency.sm_ns), smi=True, sm_port=1)
    changes: list[tuple[int, SmStateChanged]] = []
    sim.add_event_hook(lambda node, event: changes.append((node, event)), SmStateChanged)
    sim.start()
    if start_second_ns:
        sim.run(until_ns=start_second_ns)
    engine_b.start_sweep(sim.kernel.now_ns)
    sim.pump(node_b, engine_b)
    return sim, sm_b, node_b, changes


def sets_sent(sm: SubnetManager) -> int:
    return sum(n for (_attr, method), n in sm.smp_counts.items() if method == Method.SET)


def end_ports(sim: SubnetSim, skip: int) -> dict[int, tuple[int, int, int]]:
    """(LID, MasterSMLID, state) of every cabled CA port but node `skip`'s."""
    out = {}
    for node in sim.fabric.cas:
        if node.index == skip or sim.fabric.peer(node.index, 1) is None:
            continue
        info = sim.agents[node.index].port_info(1)
        out[node.index] = (info.lid, info.master_sm_lid, info.port_state)
    return out


def small() -> Fabric:
    return read_net(TOPOLOGIES / "ft2-36.net")


def test_sm_ports_have_is_sm_and_the_higher_sm_is_master() -> None:
    sim, sm_b, node_b, changes = two_sms(small(), 5, 1)
    sim.run(until_ns=2 * POLL_NS)
    sm_a = sim.sm
    assert sm_a.sm_state == SmState.MASTER and sm_a.subnet_up
    assert sm_b.sm_state == SmState.STANDBY and not sm_b.subnet_up
    assert sm_b.master_guid == sm_a.db.sm_port_guid
    for node in (sim.sm_node, node_b):
        assert sim.agents[node].port_info(1).capability_mask & PortCapability.IS_SM
    # Each read the other's SMInfo; the standby programmed nothing.
    assert sm_b.remote_sms[sm_a.db.sm_port_guid].priority == 5
    assert sm_a.remote_sms[sm_b.db.sm_port_guid].priority == 1
    assert sets_sent(sm_b) == 0 and sets_sent(sm_a) > 0
    assert [(n, e.new) for n, e in changes] == [
        (node_b, SmState.STANDBY),
        (sim.sm_node, SmState.MASTER),
    ] or [(n, e.new) for n, e in changes] == [
        (sim.sm_node, SmState.MASTER),
        (node_b, SmState.STANDBY),
    ]
    # The master keeps its standby; every port points at the master.
    sm_lid = sm_a.db.sm_lid
    ports = end_ports(sim, -1)
    assert all(m == sm_lid and s == PortState.ACTIVE for _, m, s in ports.values())
    # The standby keeps polling the master (SMInfo Gets only).
    polls = sm_b.smp_counts[(0x0020, Method.GET)]
    sim.run(until_ns=sim.kernel.now_ns + 4 * POLL_NS)
    assert sm_b.smp_counts[(0x0020, Method.GET)] >= polls + 3
    assert sm_b.sm_state == SmState.STANDBY and sets_sent(sm_b) == 0


def test_lower_sm_found_master_running_goes_standby_and_equal_priority_lower_guid_wins() -> None:
    # B has the higher priority but finds A already MASTER: it goes STANDBY (14.4.1.1;
    # OpenSM: a master found while discovering always means standby).
    sim, sm_b, _node_b, _ = two_sms(small(), 0, 7, start_second_ns=500_000_000)
    sim.run(until_ns=sim.kernel.now_ns + 2 * POLL_NS)
    assert sim.sm.sm_state == SmState.MASTER
    # A master that finds a higher standby hands the subnet over (HANDOVER) on its next
    # sweep; without a resweep it keeps it.
    assert sm_b.sm_state == SmState.STANDBY and sets_sent(sm_b) == 0


def test_equal_priority_lower_guid_is_master() -> None:
    sim, sm_b, _node_b, _ = two_sms(small(), 3, 3)
    sim.run(until_ns=2 * POLL_NS)
    a_lower = sim.sm.db.sm_port_guid < sm_b.db.sm_port_guid
    master, standby = (sim.sm, sm_b) if a_lower else (sm_b, sim.sm)
    assert master.sm_state == SmState.MASTER
    assert standby.sm_state == SmState.STANDBY and sets_sent(standby) == 0


def test_standby_takes_over_when_the_master_goes_silent() -> None:
    sim, sm_b, node_b, changes = two_sms(small(), 5, 1)
    sim.run(until_ns=2 * POLL_NS)
    assert sm_b.sm_state == SmState.STANDBY
    before = end_ports(sim, sim.sm_node)
    ups = len(sim.subnet_up_events)
    sim.set_link(sim.sm_node, 1, False)  # the master's only link
    sim.run(until_ns=sim.kernel.now_ns + 20 * POLL_NS)
    assert sm_b.sm_info().sm_state == SmState.MASTER and sm_b.subnet_up
    took = [e for n, e in changes if n == node_b]
    assert [(e.old, e.new) for e in took] == [
        (SmState.DISCOVERING, SmState.STANDBY),
        (SmState.STANDBY, SmState.DISCOVERING),
        (SmState.DISCOVERING, SmState.MASTER),
    ]
    # Not before polling_retry_number + 1 unanswered polls.
    assert took[1].time_ns >= took[0].time_ns + 3 * POLL_NS
    new_up = [e for e in sim.subnet_up_events[ups:] if isinstance(e, SubnetUp)]
    assert new_up and new_up[-1].nodes == len(sim.fabric.nodes) - 1
    # The subnet stays up: every other port keeps its LID, is Active, and now
    # points at the new master.
    after = end_ports(sim, sim.sm_node)
    new_lid = sm_b.db.sm_lid
    assert new_lid == before[node_b][0]
    assert {n: lid for n, (lid, _, _) in after.items()} == {
        n: lid for n, (lid, _, _) in before.items()
    }
    assert all(m == new_lid and s == PortState.ACTIVE for _, m, s in after.values())

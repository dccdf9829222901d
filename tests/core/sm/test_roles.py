"""SM roles (IBA Vol 1, 14.4) under a hand-driven clock: the transition table, SMInfo
answers, and two SMs on the four-node fabric of test_manager (SM A on CA 0x100, SM B
on CA 0x300) over a directed-route-only hand transport."""

from __future__ import annotations

from collections import deque

import pytest

from ibmig.core.engine import Datagram
from ibmig.core.sm.manager import SmConfig, SubnetManager
from ibmig.core.sm.roles import (
    TRANSITIONS,
    IllegalTransition,
    SmInfoControl,
    SmRole,
    SmSignal,
    SmStateChanged,
    is_higher,
)
from ibmig.core.sma import SubnetManagementAgent
from ibmig.wire.mad import Method
from ibmig.wire.smp import DrAction, Smp, dr_originate, dr_receive, make_get, make_set
from ibmig.wire.smp_attrs import PortCapability, SMInfo, SmpAttr, SmState
from tests.core.sm.test_manager import CABLES, SWITCH, make_nodes

POLL_NS = 1_000_000


def test_table_follows_opensm_and_illegal_transitions_raise() -> None:
    role = SmRole()
    assert role.state == SmState.DISCOVERING
    assert role.signal(SmSignal.MASTER_OR_HIGHER_SM_DETECTED) == SmState.STANDBY
    assert role.signal(SmSignal.POLLING_TIMEOUT) == SmState.DISCOVERING
    assert role.signal(SmSignal.DISCOVERY_COMPLETED) == SmState.MASTER
    assert not role.allows(SmSignal.POLLING_TIMEOUT)
    with pytest.raises(IllegalTransition, match="MASTER does not accept polling timeout"):
        role.signal(SmSignal.POLLING_TIMEOUT)
    assert role.allows(SmSignal.HANDOVER_SENT)  # still MASTER
    assert role.signal(SmSignal.HANDOVER_SENT) == SmState.STANDBY
    assert role.signal(SmSignal.DISABLE) == SmState.NOT_ACTIVE
    # NOTACTIVE leaves only when a master tells it to stand by.
    assert [s for (state, s) in TRANSITIONS if state == SmState.NOT_ACTIVE] == [SmSignal.STANDBY]


def test_higher_means_priority_then_lower_guid() -> None:
    assert is_higher(5, 0x900, 4, 0x100)
    assert not is_higher(4, 0x100, 5, 0x900)
    assert is_higher(3, 0x100, 3, 0x200)
    assert not is_higher(3, 0x200, 3, 0x100)


def sm_info_request(sm: SubnetManager, smp: Smp, now: int = 0) -> Smp:
    sm.receive(Datagram(smp.pack(), 1, 5, 7, 0, 0), now)
    answer = sm.packets_to_send()[0]  # the answer leaves first
    assert (answer.slid, answer.dlid) == (7, 5)  # back where it came from
    return Smp.unpack(answer.payload)


def test_sm_answers_sminfo_get_with_priority_key_and_state() -> None:
    sm = SubnetManager(config=SmConfig(priority=9, sm_key=0x42))
    reply = sm_info_request(sm, make_get(SmpAttr.SM_INFO, tid=3))
    info = SMInfo.unpack(reply.data)
    assert reply.tid == 3 and reply.status == 0
    assert (info.priority, info.sm_key, info.sm_state) == (9, 0x42, SmState.DISCOVERING)


def test_sminfo_set_is_refused_from_the_wrong_sender_and_in_the_wrong_state() -> None:
    sm = SubnetManager()
    standby_sender = SMInfo(guid=0x9, sm_key=1, priority=1, sm_state=SmState.STANDBY)
    # HANDOVER may come only from a master: status 0x001C, no state change.
    refused = sm_info_request(sm, make_set(standby_sender, tid=4, attribute_modifier=1))
    assert refused.status == 0x001C and sm.sm_state == SmState.DISCOVERING
    # DISABLE from a master, but a DISCOVERING SM does not accept it.
    master = SMInfo(guid=0x9, sm_key=1, priority=1, sm_state=SmState.MASTER)
    refused = sm_info_request(sm, make_set(master, tid=5, attribute_modifier=3))
    assert refused.status == 0x001C and sm.sm_state == SmState.DISCOVERING


class TwoSms:
    """SMs at nodes 1 (A) and 2 (B); requests go to the SMAs, except SMInfo at an SM
    node, which its SM answers; responses go to the SM of the node. Packets crossing
    a cable in `down` are lost. The clock advances 1 us per delivery and jumps to
    the next timer when nothing is in flight."""

    def __init__(self, priority_a: int, priority_b: int) -> None:
        self.agents: list[SubnetManagementAgent] = make_nodes()
        self.sms: dict[int, SubnetManager] = {}
        for node, priority in ((1, priority_a), (2, priority_b)):
            config = SmConfig(
                priority=priority, sminfo_polling_timeout_ns=POLL_NS, polling_retry_number=2,
                transaction_timeout_ns=100_000,
            )  # fmt: skip
            self.sms[node] = SubnetManager(config=config)
            agent = self.agents[node]
            agent.set_capability_mask(1, agent.port_info(1).capability_mask | PortCapability.IS_SM)
        self.down: set[tuple[int, int]] = set()
        self.queue: deque[tuple[int, int, Smp]] = deque()
        self.now = 0
        self.changes: list[tuple[int, SmStateChanged]] = []

    def cut(self, *ends: tuple[int, int]) -> None:
        """Fail a cable: packets across it are lost and its ports go down, as on a
        real link (the SMAs see the physical state; a sweep does not probe past it)."""
        self.down |= set(ends)
        for node, port in ends:
            self.agents[node].set_link(port, False, self.now)
            self.agents[node].packets_to_send()  # traps are not carried here

    def send(self, node: int, smp: Smp) -> None:
        if smp.mgmt_class != 0x81:
            return  # traps are LID routed: not carried here
        step = dr_originate(smp, num_ports=self.agents[node].spec.num_ports)
        action, smp, port, node_in = step.action, step.smp, step.port, 1
        while action == DrAction.SEND:
            if (node, port) in self.down:
                return
            node, in_port = CABLES[(node, port)]
            step = dr_receive(smp, in_port, is_switch=node == SWITCH,
                              num_ports=self.agents[node].spec.num_ports)  # fmt: skip
            action, smp, port, node_in = step.action, step.smp, step.port, in_port
        if action == DrAction.DELIVER:
            self.queue.append((node, node_in, smp))

    def drain(self, node: int, engine: SubnetManager | SubnetManagementAgent) -> None:
        for datagram in engine.packets_to_send():
            self.send(node, Smp.unpack(datagram.payload))
        if isinstance(engine, SubnetManager):
            while (event := engine.next_event()) is not None:
                if isinstance(event, SmStateChanged):
                    self.changes.append((node, event))

    def start(self) -> None:
        for node, sm in self.sms.items():
            sm.start_sweep(self.now)
            self.drain(node, sm)

    def run(self, until_ns: int) -> None:
        engines: list[tuple[int, SubnetManager | SubnetManagementAgent]] = [
            *self.sms.items(), *enumerate(self.agents)]  # fmt: skip
        while True:
            while self.queue:
                node, in_port, smp = self.queue.popleft()
                self.now += 1_000
                datagram = Datagram(smp.pack(), in_port, 0xFFFF, 0xFFFF, 0, 0)
                to_sm = smp.is_response or smp.attribute_id == SmpAttr.SM_INFO
                engine = self.sms[node] if to_sm else self.agents[node]
                engine.receive(datagram, self.now)
                self.drain(node, engine)
            timers = [
                (t, i) for i, (_, e) in enumerate(engines) if (t := e.get_timer()) is not None
            ]
            if not timers or min(timers)[0] > until_ns:
                self.now = until_ns
                return
            self.now, i = max(self.now, min(timers)[0]), min(timers)[1]
            node, engine = engines[i]
            engine.handle_timer(self.now)
            self.drain(node, engine)


def sets(sm: SubnetManager) -> int:
    return sum(n for (_attr, method), n in sm.smp_counts.items() if method == Method.SET)


def test_two_sms_one_master_one_standby_then_takeover() -> None:
    wire = TwoSms(priority_a=1, priority_b=2)
    wire.start()
    wire.run(POLL_NS // 2)
    a, b = wire.sms[1], wire.sms[2]
    assert b.sm_state == SmState.MASTER and b.subnet_up
    assert a.sm_state == SmState.STANDBY and sets(a) == 0
    assert a.master_guid == b.db.sm_port_guid
    assert wire.agents[SWITCH].port_info(0).master_sm_lid == b.db.sm_lid
    # A poll answered by the master keeps the standby standing by.
    wire.run(10 * POLL_NS)
    assert a.sm_state == SmState.STANDBY and sets(a) == 0
    assert a.smp_counts[(SmpAttr.SM_INFO, Method.GET)] >= 10
    # B's cable goes dark: after polling_retry_number + 1 missed polls A takes over.
    wire.cut((2, 1), (0, 2))
    silent = wire.now
    wire.run(silent + 20 * POLL_NS)
    assert a.sm_info().sm_state == SmState.MASTER and a.subnet_up
    took = [e for node, e in wire.changes if node == 1][-2:]
    assert [(e.old, e.new, e.signal) for e in took] == [
        (SmState.STANDBY, SmState.DISCOVERING, SmSignal.POLLING_TIMEOUT),
        (SmState.DISCOVERING, SmState.MASTER, SmSignal.DISCOVERY_COMPLETED),
    ]
    assert took[0].time_ns >= silent + 3 * POLL_NS
    for node in (0, 1, 3):
        port = 0 if node == SWITCH else 1
        assert wire.agents[node].port_info(port).master_sm_lid == a.db.sm_lid


def test_master_hands_over_to_a_higher_sm_on_request() -> None:
    wire = TwoSms(priority_a=1, priority_b=2)
    wire.start()
    wire.run(POLL_NS // 2)
    a, b = wire.sms[1], wire.sms[2]
    # B (master) is told HANDOVER by a "master" A: legal per 14.4.1 only from a master.
    reply = sm_info_request(
        a, make_set(b.sm_info(), tid=9, attribute_modifier=SmInfoControl.HANDOVER), wire.now
    )
    assert reply.status == 0 and a.sm_state == SmState.MASTER
    assert a.phase.value == "discover"  # the first sweep out of standby has begun

"""The SM engine under a hand-driven clock, with the SMAs it configures and a
minimal transport written here from the wire module's directed-route rules (not the
simulator's)."""

from __future__ import annotations

import dataclasses
from collections import deque
from typing import Any

from ibmig.core.engine import Datagram
from ibmig.core.sm.manager import (
    Phase,
    SmConfig,
    SmpAnswer,
    SmpFailed,
    SubnetManager,
    SubnetUp,
    _LftBatch,
)
from ibmig.core.sma import NodeSpec, SubnetManagementAgent
from ibmig.wire.mad import Method
from ibmig.wire.smp import DrAction, Smp, dr_originate, dr_receive, make_get_resp, make_set
from ibmig.wire.smp_attrs import LinearForwardingTable, NodeInfo, NodeType, PortState, SmpAttr

# SM host (CA 0x100) port 1 -- switch 0x200 port 1; CAs 0x300, 0x400 on switch ports 2, 3.
SWITCH = 0
CABLES = {(1, 1): (0, 1), (0, 1): (1, 1), (0, 2): (2, 1), (2, 1): (0, 2), (0, 3): (3, 1),
          (3, 1): (0, 3)}  # fmt: skip


def make_nodes() -> list[SubnetManagementAgent]:
    agents = [SubnetManagementAgent(NodeSpec(NodeType.SWITCH, 0x200, 4, description="sw"))]
    for guid in (0x100, 0x300, 0x400):
        agents.append(SubnetManagementAgent(NodeSpec(NodeType.CA, guid, 1, description=hex(guid))))
    for node, port in CABLES:
        agents[node].set_link(port, True, 0)
    return agents


class HandWire:
    """Delivers SMPs one at a time, advancing the clock by 1 us per hop."""

    def __init__(self) -> None:
        self.agents = make_nodes()
        self.sm = SubnetManager(port_num=1, config=SmConfig(max_outstanding=2))
        self.now = 0
        self.queue: deque[tuple[int, int, Smp]] = deque()  # (node, in_port, smp) to deliver
        self.hops = 0

    def send(self, node: int, smp: Smp) -> None:
        step = dr_originate(smp, num_ports=self.agents[node].spec.num_ports)
        self._follow(node, step.action, step.smp, step.port, node_in=1)

    def _follow(self, node: int, action: DrAction, smp: Smp, port: int, node_in: int) -> None:
        while action == DrAction.SEND:
            node, in_port = CABLES[(node, port)]
            self.hops += 1
            step = dr_receive(smp, in_port, is_switch=node == SWITCH,
                              num_ports=self.agents[node].spec.num_ports)  # fmt: skip
            action, smp, port, node_in = step.action, step.smp, step.port, in_port
        assert action == DrAction.DELIVER, action
        self.queue.append((node, node_in, smp))

    def drain(self, engine: SubnetManager | SubnetManagementAgent, node: int) -> None:
        for datagram in engine.packets_to_send():
            self.send(node, Smp.unpack(datagram.payload))

    def run(self) -> None:
        self.sm.start_sweep(self.now)
        self.drain(self.sm, 1)
        while self.queue:
            node, in_port, smp = self.queue.popleft()
            self.now += 1_000
            datagram = Datagram(smp.pack(), in_port, 0xFFFF, 0xFFFF, 0, 0)
            if smp.is_response:
                self.sm.receive(datagram, self.now)
                self.drain(self.sm, 1)
            else:
                self.agents[node].receive(datagram, self.now)
                self.drain(self.agents[node], node)
            deadline = self.sm.get_timer()
            assert deadline is None or deadline > self.now


def test_sm_discovers_assigns_lids_routes_and_activates() -> None:
    wire = HandWire()
    wire.run()
    sm = wire.sm
    assert sm.phase == Phase.IDLE and sm.subnet_up
    events = []
    while (event := sm.next_event()) is not None:
        events.append(event)
    up = [e for e in events if isinstance(e, SubnetUp)]
    assert len(up) == 1 and up[0].nodes == 4 and up[0].end_ports == 4
    lids = {a.spec.node_guid: a.port_lid(0 if a.spec.node_type == NodeType.SWITCH else 1)
            for a in wire.agents}  # fmt: skip
    assert sorted(lids.values()) == [1, 2, 3, 4]  # lowest free LIDs, all distinct
    assert lids[0x100] == sm.db.sm_lid
    switch = wire.agents[SWITCH]
    for guid, port in ((0x100, 1), (0x300, 2), (0x400, 3)):
        assert switch.lft[lids[guid]] == port
    assert switch.lft[lids[0x200]] == 0
    for agent in wire.agents[1:]:
        assert agent.port_state(1) == PortState.ACTIVE
        assert agent.port_info(1).master_sm_lid == sm.db.sm_lid
    for port in (1, 2, 3):
        assert switch.port_state(port) == PortState.ACTIVE
    # One NodeInfo per node reached; nothing retransmitted under a clean clock.
    assert sm.smp_counts[(0x0011, 0x01)] == 4
    assert sm.retransmissions == 0


def test_window_bounds_outstanding_smps() -> None:
    wire = HandWire()
    wire.sm.start_sweep(0)
    first = wire.sm.packets_to_send()
    assert len(first) == 1  # NodeInfo of the SM's own node
    wire.send(1, Smp.unpack(first[0].payload))
    node, in_port, smp = wire.queue.popleft()
    wire.agents[node].receive(Datagram(smp.pack(), in_port, 0xFFFF, 0xFFFF, 0, 0), 1)
    reply = wire.agents[node].packets_to_send()[0]
    wire.send(node, Smp.unpack(reply.payload))
    node, in_port, smp = wire.queue.popleft()
    wire.sm.receive(Datagram(smp.pack(), in_port, 0xFFFF, 0xFFFF, 0, 0), 2)
    # The SM now wants NodeDescription and PortInfo; the window lets two out.
    assert len(wire.sm.packets_to_send()) == 2


def test_unanswered_smp_is_retried_then_given_up() -> None:
    sm = SubnetManager(config=SmConfig(transaction_timeout_ns=1_000, max_retries=2))
    sm.start_sweep(0)
    assert len(sm.packets_to_send()) == 1
    assert sm.get_timer() == 1_000
    sm.handle_timer(1_000)
    assert len(sm.packets_to_send()) == 1 and sm.retransmissions == 1
    sm.handle_timer(2_000)
    sm.handle_timer(3_000)
    assert sm.retransmissions == 2
    assert sm.get_timer() is None
    events = []
    while (event := sm.next_event()) is not None:
        events.append(type(event).__name__)
    assert events[-2:] == ["SmpFailed", "SweepFailed"]
    assert sm.phase == Phase.IDLE and not sm.subnet_up


class RefusingWire(HandWire):
    """HandWire whose switch's answers to the first `refuse` LFT block Sets carry
    status 0x001C (invalid field) instead of 0."""

    def __init__(self, refuse: int) -> None:
        super().__init__()
        self.refuse = refuse
        self.lft_sets = 0

    def send(self, node: int, smp: Smp) -> None:
        if smp.attribute_id == SmpAttr.LINEAR_FORWARDING_TABLE and smp.method == Method.SET:
            self.lft_sets += 1
        if (
            smp.is_response
            and smp.attribute_id == SmpAttr.LINEAR_FORWARDING_TABLE
            and self.refuse > 0
        ):
            self.refuse -= 1
            smp = dataclasses.replace(smp, status=0x001C)
        super().send(node, smp)


def test_lft_blocks_answered_well_are_not_rewritten_but_refused_ones_are() -> None:
    # Answers with status 0 take the SM's short path (matched by TID, not decoded);
    # a refused block takes the full one: the sweep is in error, and the repair
    # sweep writes that block again (and only it).
    clean = RefusingWire(refuse=0)
    clean.run()
    assert (clean.lft_sets, clean.sm.sweep, clean.sm.subnet_up) == (1, 1, True)  # LIDs 1..4
    refused = RefusingWire(refuse=1)
    refused.run()
    assert (refused.lft_sets, refused.sm.sweep, refused.sm.subnet_up) == (2, 2, True)
    failed = []
    while (event := refused.sm.next_event()) is not None:
        if isinstance(event, SmpFailed):
            failed.append(event)
    assert [(e.attribute_id, e.status) for e in failed] == [
        (SmpAttr.LINEAR_FORWARDING_TABLE, 0x001C)
    ]
    for wire in (clean, refused):
        before = wire.lft_sets
        wire.run()  # a heavy sweep of the same subnet: nothing left to write
        assert wire.lft_sets == before and wire.sm.retransmissions == 0


def test_lft_batch_fills_the_window_then_builds_each_set_as_room_opens() -> None:
    # A switch's LFT block Sets are built only as the window opens (`_LftBatch`),
    # yet must go out as if all had been built and queued at once: TIDs reserved
    # up front in block order (an SMP issued meanwhile takes the next TID and goes
    # after them), bytes those of `make_set`, every block counted once.
    sm = SubnetManager(config=SmConfig(max_outstanding=3))
    sm.start_sweep(0)  # one NodeInfo Get outstanding: room for two more
    assert len(sm.packets_to_send()) == 1
    raw = bytes(range(256)) + bytes([0xFF]) * 64  # five blocks
    path = (1, 4)
    first = sm._tid + 1
    sm._tid += 3
    batch = _LftBatch(0x200, path, raw, [0, 2, 4], first, sm._stale_lft_blocks, 0)
    sm._submit_batch(batch, 0)
    sm._issue_get(SmpAttr.NODE_INFO, (), lambda *a: None, None, 0)  # queued behind
    sent = [Smp.unpack(d.payload) for d in sm.packets_to_send()]
    assert [(s.tid, s.attribute_modifier) for s in sent] == [(first, 0), (first + 1, 2)]
    assert sm.smp_counts[(0x0019, 0x02)] == 3
    assert len(sm._queue) == 2  # the batch (one Set to build) and the Get
    for smp in [*sent]:
        sm.receive(Datagram(make_get_resp(smp).pack(), 1, 0xFFFF, 0xFFFF, 0, 0), 1)
        sent += [Smp.unpack(d.payload) for d in sm.packets_to_send()]
    assert [(s.tid, s.attribute_id) for s in sent[2:]] == [
        (first + 2, SmpAttr.LINEAR_FORWARDING_TABLE),
        (first + 3, SmpAttr.NODE_INFO),
    ]
    assert not sm._queue
    for smp, block in zip(sent[:3], (0, 2, 4), strict=True):
        table = LinearForwardingTable(tuple(raw[block * 64 : block * 64 + 64]))
        expected = make_set(table, tid=smp.tid, attribute_modifier=block, path=path)
        assert smp == expected
    # A Set that fails marks its block stale: the next sweep writes it again.
    sm._outstanding[first + 2].on_error(0x001C, 2)  # type: ignore[misc]
    assert sm._stale_lft_blocks == {(0x200, 4)}
    sm._cancel_poll()  # filters the queue by TID: a batch stays
    assert not sm._queue


def test_changed_lft_blocks_compares_whole_blocks() -> None:
    blocks = 4
    raw = bytes(range(blocks * 64))
    changed = SubnetManager._changed_lft_blocks
    assert changed(raw, None, blocks).tolist() == [True] * 4
    assert changed(raw, bytearray(raw), blocks).tolist() == [False] * 4
    old = bytearray(raw)
    old[64 * 2 + 5] ^= 1
    assert changed(raw, old, blocks).tolist() == [False, False, True, False]
    # Held in part (the LID space grew): a block the old table lacks, even partly.
    assert changed(raw, bytearray(raw[: 64 * 2 + 10]), blocks).tolist() == [
        False, False, True, True,
    ]  # fmt: skip
    # Held beyond (it shrank): only the blocks written now are compared.
    assert changed(raw, bytearray(raw) + bytes(64), blocks).tolist() == [False] * 4


def test_good_directed_answer_reaches_its_handler_as_the_decoded_smp_would() -> None:
    # Good directed-route answers are sliced, not decoded: the handler must see the
    # data and route `Smp.unpack` gives; an error status still goes the full way.
    sm = SubnetManager(config=SmConfig(max_outstanding=8))
    seen: list[tuple[bytes, tuple[int, ...], Any]] = []
    errors: list[int] = []

    def handler(answer: SmpAnswer, ctx: Any, _now: int) -> None:
        seen.append((answer.data, answer.initial_ports, ctx))

    for ctx, path in (("far", (1, 3, 7)), ("local", ())):
        sm._issue_get(SmpAttr.NODE_INFO, path, handler, ctx, 0)
    failing = (1, 2)
    sm._issue_directed(Method.GET, SmpAttr.NODE_INFO, b"", failing, handler, "bad", 0)
    sm._outstanding[max(sm._outstanding)].on_error = lambda status, _now: errors.append(status)
    requests = [Smp.unpack(d.payload) for d in sm.packets_to_send()]
    info = NodeInfo(NodeType.SWITCH, 36, 0x200, 0x200, local_port_num=5)
    for request in requests[:2]:
        answer = make_get_resp(request, info)
        sm.receive(Datagram(answer.pack(), 1, 0xFFFF, 0xFFFF, 0, 0), 1)
        decoded = Smp.unpack(answer.pack())
        assert seen[-1][:2] == (decoded.data, decoded.initial_ports)
    assert [s[1:] for s in seen] == [((1, 3, 7), "far"), ((), "local")]
    refused = make_get_resp(requests[2], status=0x001C)
    sm.receive(Datagram(refused.pack(), 1, 0xFFFF, 0xFFFF, 0, 0), 2)
    assert len(seen) == 2 and errors == [0x001C]
    assert not sm._outstanding


def test_transaction_deadlines_fire_in_deadline_order_even_if_the_clock_went_back() -> None:
    # Deadlines that come in order queue in `_in_order`; one earlier than the last
    # (a clock that went back) goes to the timers. Either way they expire earliest
    # first and an answer removes its deadline.
    sm = SubnetManager(config=SmConfig(max_outstanding=8, transaction_timeout_ns=1_000))
    handler: Any = lambda *a: None  # noqa: E731
    for now in (500, 100, 600, 700):
        sm._issue_get(SmpAttr.NODE_INFO, (), handler, now, now)
    sent = [Smp.unpack(d.payload) for d in sm.packets_to_send()]
    tids = [s.tid for s in sent]
    assert sm.get_timer() == 1_100
    answer = make_get_resp(sent[3], NodeInfo(NodeType.CA, 1, 0x300, 0x300))
    sm.receive(Datagram(answer.pack(), 1, 0xFFFF, 0xFFFF, 0, 0), 800)
    sm.handle_timer(1_500)
    again = [Smp.unpack(d.payload).tid for d in sm.packets_to_send()]
    assert again == [tids[1], tids[0]] and sm.retransmissions == 2
    assert sm.get_timer() == 1_600
    sm.handle_timer(2_500)  # the third, then the two resent at 1_500
    assert [Smp.unpack(d.payload).tid for d in sm.packets_to_send()] == [
        tids[2], tids[1], tids[0],
    ]  # fmt: skip
    assert sm.get_timer() == 3_500


def test_requests_leave_from_the_sm_lid_as_it_changes() -> None:
    # The request Datagram is built from a cached tail: it must follow the SM's LID.
    sm = SubnetManager(port_num=2, config=SmConfig(max_outstanding=8))
    handler: Any = lambda *a: None  # noqa: E731
    sm._issue_get(SmpAttr.NODE_INFO, (), handler, None, 0)
    sm.db.sm_lid = 7
    sm._issue_get(SmpAttr.NODE_INFO, (3,), handler, None, 0)
    sent = sm.packets_to_send()
    assert [(d.port, d.slid, d.dlid) for d in sent] == [(2, 0, 0xFFFF), (2, 7, 0xFFFF)]
    for datagram in sent:
        assert datagram == Datagram(datagram.payload, 2, datagram.slid, 0xFFFF, 0, 0)
        assert len(datagram) == len(Datagram._fields)

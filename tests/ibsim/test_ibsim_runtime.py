"""The ibsim runtime under a fake client and a hand-driven clock (no ibsim needed):
framing of what the engines send, status-110 drops, a full send queue, timers."""

from __future__ import annotations

from collections import deque
from typing import cast

from ibmig.core.engine import Datagram
from ibmig.core.sm.manager import SmConfig, SubnetManager
from ibmig.ibsim.client import REQUEST_STRUCT, STATUS_DROPPED, IbsimClient, SimRequest
from ibmig.ibsim.runtime import IbsimRuntime
from ibmig.wire.mad import Method, MgmtClass
from ibmig.wire.smp import Smp, make_get_resp
from ibmig.wire.smp_attrs import NodeInfo, NodeType, SmpAttr

MS = 1_000_000


class FakeClient:
    """Stands in for `IbsimClient`: frames sent are kept, frames to receive queued."""

    def __init__(self) -> None:
        self.sent: list[SimRequest] = []
        self.incoming: deque[bytes] = deque()
        self.accept = True  # False: ibsim's queue is full
        self.alive_checks = 0

    def send_frame(self, frame: bytes) -> bool:
        if not self.accept:
            return False
        self.sent.append(SimRequest.unpack(frame))
        return True

    def recv_frame(self) -> bytes | None:
        return self.incoming.popleft() if self.incoming else None

    def wait(self, timeout_s: float | None) -> bool:
        return bool(self.incoming)

    def check_alive(self) -> None:
        self.alive_checks += 1


class Clock:
    def __init__(self) -> None:
        self.now_ns = 1_000 * MS

    def __call__(self) -> int:
        return self.now_ns


def make(window: int = 4) -> tuple[IbsimRuntime, FakeClient, Clock, SubnetManager]:
    client = FakeClient()
    clock = Clock()
    sm = SubnetManager(port_num=1, config=SmConfig(max_outstanding=window))
    runtime = IbsimRuntime(cast(IbsimClient, client), sm, clock=clock)
    return runtime, client, clock, sm


def answer(request: SimRequest, data: NodeInfo) -> bytes:
    """ibsim's answer to a DR request: addresses swapped, D bit, same TID."""
    reply = make_get_resp(Smp.unpack(request.mad), data)
    return SimRequest(request.slid, request.dlid, request.sqp, request.dqp, reply.pack()).pack()


def test_directed_route_smps_leave_with_the_permissive_lid_both_ways() -> None:
    runtime, client, _clock, _sm = make()
    runtime.start()
    runtime.step(0)
    [first] = client.sent
    assert (first.dlid, first.slid, first.dqp, first.sqp, first.length) == (
        0xFFFF,
        0xFFFF,
        0,
        0,
        256,
    )
    smp = Smp.unpack(first.mad)
    assert smp.mgmt_class == MgmtClass.SUBN_DIRECTED_ROUTE and smp.attribute_id == SmpAttr.NODE_INFO


def test_an_answer_moves_the_sm_on() -> None:
    runtime, client, _clock, sm = make()
    runtime.start()
    runtime.step(0)
    own = NodeInfo(NodeType.CA, 1, 0x10, 0x11, local_port_num=1)
    client.incoming.append(answer(client.sent[0], own))
    runtime.step(0)
    assert runtime.frames_in == 1
    asked = {Smp.unpack(f.mad).attribute_id for f in client.sent[1:]}
    assert asked == {SmpAttr.NODE_DESCRIPTION, SmpAttr.PORT_INFO}
    assert sm.db.sm_port_guid == 0x11


def test_a_dropped_smp_is_retried_at_once_not_after_its_timeout() -> None:
    runtime, client, _clock, sm = make()
    runtime.start()
    runtime.step(0)
    first = client.sent[0]
    client.incoming.append(
        SimRequest(first.dlid, first.slid, first.dqp, first.sqp, first.mad, STATUS_DROPPED).pack()
    )
    runtime.step(0)
    assert runtime.dropped[MgmtClass.SUBN_DIRECTED_ROUTE] == 1
    assert sm.retransmissions == 1
    assert len(client.sent) == 2 and client.sent[1].mad == first.mad


def test_frames_wait_while_ibsims_queue_is_full() -> None:
    runtime, client, _clock, _sm = make()
    client.accept = False
    runtime.start()
    runtime.step(0)
    assert client.sent == [] and runtime.frames_out == 0
    client.accept = True
    runtime.step(0)
    assert len(client.sent) == 1 and runtime.frames_out == 1


def test_timers_wait_for_a_quiet_moment_or_a_long_overdue() -> None:
    runtime, client, clock, sm = make()
    runtime.start()
    runtime.step(0)  # the first SMP leaves now: its timeout is 200 ms
    clock.now_ns += 210 * MS
    runtime.step(0)
    assert sm.retransmissions == 1  # nothing was sent for 210 ms: it fires
    clock.now_ns += 201 * MS
    runtime._last_send_ns = clock.now_ns - 10 * MS  # something just left
    runtime.step(0)
    assert sm.retransmissions == 1  # not quiet: it waits
    clock.now_ns += runtime.timer_overdue_ns
    runtime._last_send_ns = clock.now_ns
    runtime.step(0)
    assert sm.retransmissions == 2  # overdue by a second: it fires anyway
    assert len(client.sent) == 3


def test_frames_of_no_engine_are_counted_and_ignored() -> None:
    runtime, client, _clock, _sm = make()
    perf = bytes([1, MgmtClass.PERF, 1, Method.GET]).ljust(256, b"\0")
    client.incoming.append(SimRequest(3, 4, 1, 1, perf).pack())
    client.incoming.append(b"short")
    runtime.step(0)
    assert runtime.unclaimed[MgmtClass.PERF] == 1
    assert runtime.frames_in == 1 and client.sent == []


def test_outgoing_lid_routed_mads_keep_their_addresses() -> None:
    runtime, client, _clock, sm = make()
    reply = Datagram(bytes([1, 3, 2, 0x81]).ljust(256, b"\0"), 1, 5, 9, 1, 7)

    class Once:
        def __init__(self) -> None:
            self.out = [reply]

        def packets_to_send(self) -> list[Datagram]:
            out, self.out = self.out, []
            return out

        def next_event(self) -> None:
            return None

        def get_timer(self) -> None:
            return None

    runtime.engine.sa = Once()  # type: ignore[assignment]  # an SA that sends one MAD
    runtime._collect()
    runtime.step(0)
    frame = REQUEST_STRUCT.pack(9, 5, 7, 1, 0, 256, reply.payload)
    assert [f.pack() for f in client.sent] == [frame]
    assert sm.smps_sent == 0


def test_a_quiet_ibsim_is_checked_for_life_once_a_second() -> None:
    runtime, client, clock, _sm = make()
    runtime.step(0)
    assert client.alive_checks == 0
    clock.now_ns += 1_000_000_000
    runtime.step(0)
    assert client.alive_checks == 1
    runtime.step(0)
    assert client.alive_checks == 1  # not again until another quiet second

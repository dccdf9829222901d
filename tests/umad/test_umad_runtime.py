"""The umad runtime and device without a fabric: a fake device under a hand-driven
clock (addressing, agents, TIDs the MAD layer rewrote, bounced MADs, timers), and
`UmadPort` reading and writing the ib_user_mad framing over a pipe."""

from __future__ import annotations

import os
import select
import struct
from collections import deque
from collections.abc import Iterator
from typing import Any

import pytest

from ibmig.core.engine import Datagram
from ibmig.core.sm.manager import SmConfig, SubnetManager
from ibmig.umad.abi import OLD_HEADER_SIZE, UmadHeader
from ibmig.umad.device import UmadPort, UmadPortInfo
from ibmig.umad.runtime import (
    SA_METHODS,
    SMI_METHODS,
    UmadRuntime,
    is_request,
    register_sm_agents,
)
from ibmig.wire.mad import MgmtClass
from ibmig.wire.packet import QP1_QKEY
from ibmig.wire.smp import Smp, make_get_resp
from ibmig.wire.smp_attrs import NodeInfo, NodeType, SmpAttr

MS = 1_000_000
DR = MgmtClass.SUBN_DIRECTED_ROUTE.value
LR = MgmtClass.SUBN_LID_ROUTED.value
SA = MgmtClass.SUBN_ADM.value
AGENTS = {LR: 0, DR: 1, SA: 2}


class FakePort:
    """Stands in for `UmadPort`: MADs written are kept, MADs to read queued."""

    def __init__(self) -> None:
        self.agents = dict(AGENTS)
        self.sent: list[tuple[UmadHeader, bytes]] = []
        self.incoming: deque[tuple[UmadHeader, bytes]] = deque()
        self.accept = True
        self.registered: list[tuple[int, int, int, tuple[int, ...]]] = []

    def send(self, header: UmadHeader, mad: bytes) -> bool:
        if not self.accept:
            return False
        self.sent.append((header, mad))
        return True

    def wait(self, timeout_s: float) -> bool:
        return bool(self.incoming)

    def recv(self) -> tuple[UmadHeader, bytes] | None:
        return self.incoming.popleft() if self.incoming else None

    def register(
        self, qpn: int, mgmt_class: int, version: int, methods: tuple[int, ...] = ()
    ) -> int:
        self.registered.append((qpn, mgmt_class, version, methods))
        return len(self.registered) - 1


class Clock:
    def __init__(self) -> None:
        self.now_ns = 1_000 * MS

    def __call__(self) -> int:
        return self.now_ns


def make() -> tuple[UmadRuntime, FakePort, Clock, SubnetManager]:
    port = FakePort()
    clock = Clock()
    sm = SubnetManager(port_num=1, config=SmConfig(max_outstanding=4))
    return UmadRuntime(port, sm, clock=clock, request_timeout_ms=1500), port, clock, sm


def rewrite_tid(mad: bytes, high: int) -> bytes:
    """What the MAD layer does to a request's TID: its own bits above bit 32."""
    tid = int.from_bytes(mad[8:16], "big") & 0xFFFF_FFFF | high << 32
    return mad[:8] + tid.to_bytes(8, "big") + mad[16:]


def test_the_sm_registers_smi_on_qp0_and_the_sa_on_qp1() -> None:
    port = FakePort()
    register_sm_agents(port, with_sa=True)
    assert port.registered == [
        (0, LR, 1, SMI_METHODS),
        (0, DR, 1, SMI_METHODS),
        (1, SA, 2, SA_METHODS),
    ]
    alone = FakePort()
    register_sm_agents(alone, with_sa=False)
    assert [r[1] for r in alone.registered] == [LR, DR]


def test_requests_are_told_from_responses_as_the_kernel_does() -> None:
    assert is_request(0x01) and is_request(0x06) and is_request(0x12)
    assert not is_request(0x81) and not is_request(0x86) and not is_request(0x07)  # TrapRepress


def test_a_directed_route_smp_leaves_through_the_dr_agent() -> None:
    runtime, port, _clock, _sm = make()
    runtime.start()
    runtime.step(0)
    [(header, mad)] = port.sent
    assert header == UmadHeader(agent_id=AGENTS[DR], timeout_ms=1500, qpn=0, qkey=0, lid=0xFFFF)
    smp = Smp.unpack(mad)
    assert smp.mgmt_class == DR and smp.attribute_id == SmpAttr.NODE_INFO
    assert len(mad) == 256


def test_an_answer_with_a_rewritten_tid_moves_the_sm_on() -> None:
    runtime, port, _clock, sm = make()
    runtime.start()
    runtime.step(0)
    _header, request = port.sent[0]
    own = NodeInfo(NodeType.CA, 1, 0x10, 0x11, local_port_num=1)
    reply = make_get_resp(Smp.unpack(rewrite_tid(request, 0x0001_0001)), own).pack()
    assert reply[8:16] != request[8:16]
    port.incoming.append((UmadHeader(AGENTS[DR], lid=0xFFFF, length=64 + 256), reply))
    runtime.step(0)
    assert runtime.mads_in == 1
    assert sm.db.sm_port_guid == 0x11  # the SM matched it: the TID was put back
    asked = {Smp.unpack(mad).attribute_id for _h, mad in port.sent[1:]}
    assert asked == {SmpAttr.NODE_DESCRIPTION, SmpAttr.PORT_INFO}


def test_without_the_tid_put_back_the_answer_would_not_match() -> None:
    runtime, port, _clock, sm = make()
    runtime.start()
    runtime.step(0)
    _header, request = port.sent[0]
    runtime._tids.clear()  # forget what was sent
    own = NodeInfo(NodeType.CA, 1, 0x10, 0x11, local_port_num=1)
    reply = make_get_resp(Smp.unpack(rewrite_tid(request, 0x0001_0001)), own).pack()
    port.incoming.append((UmadHeader(AGENTS[DR], lid=0xFFFF), reply))
    runtime.step(0)
    assert sm.db.sm_port_guid != 0x11


def test_a_bounced_request_is_retried_at_once() -> None:
    runtime, port, _clock, sm = make()
    runtime.start()
    runtime.step(0)
    header, request = port.sent[0]
    port.incoming.append((UmadHeader(header.agent_id, status=110), rewrite_tid(request, 0x5)))
    runtime.step(0)
    assert runtime.failed[DR] == 1
    assert sm.retransmissions == 1
    assert len(port.sent) == 2 and port.sent[1][1] == request


def test_mads_wait_while_the_device_takes_none() -> None:
    runtime, port, _clock, _sm = make()
    port.accept = False
    runtime.start()
    runtime.step(0)
    assert port.sent == [] and runtime.mads_out == 0
    port.accept = True
    runtime.step(0)
    assert len(port.sent) == 1 and runtime.mads_out == 1


def test_timers_wait_for_a_quiet_moment_or_a_long_overdue() -> None:
    runtime, port, clock, sm = make()
    runtime.start()
    runtime.step(0)
    clock.now_ns += 210 * MS
    runtime.step(0)
    assert sm.retransmissions == 1
    clock.now_ns += 201 * MS
    runtime._last_send_ns = clock.now_ns - 10 * MS
    runtime.step(0)
    assert sm.retransmissions == 1
    clock.now_ns += runtime.timer_overdue_ns
    runtime._last_send_ns = clock.now_ns
    runtime.step(0)
    assert sm.retransmissions == 2
    assert len(port.sent) == 3


class Once:
    """An SA that sends the datagrams it is given, once, and records what it gets."""

    def __init__(self, *out: Datagram) -> None:
        self.out = list(out)
        self.got: list[Datagram] = []
        self.event_filter: Any = None

    def receive(self, datagram: Datagram, now_ns: int) -> None:
        self.got.append(datagram)

    def handle_timer(self, now_ns: int) -> None:
        return None

    def packets_to_send(self) -> list[Datagram]:
        out, self.out = self.out, []
        return out

    def next_event(self) -> None:
        return None

    def get_timer(self) -> None:
        return None


def sa_mad(method: int, tid: int = 0x1234, length: int = 256) -> bytes:
    head = bytes([1, SA, 2, method]) + bytes(4) + tid.to_bytes(8, "big")
    return head.ljust(length, b"\0")


def test_sa_responses_and_reports_are_addressed_and_timed_as_the_kernel_needs() -> None:
    port = FakePort()
    sm = SubnetManager(port_num=1)
    dgid = bytes(range(16))
    response = Datagram(sa_mad(0x81), 1, 1, 9, 1, 7, sl=3, qkey=QP1_QKEY, dgid=dgid)
    report = Datagram(sa_mad(0x06, tid=0x42), 1, 1, 12, 1, 5)  # qkey left 0
    sa = Once(response, report)
    runtime = UmadRuntime(port, sm, sa, clock=Clock(), request_timeout_ms=1500)
    runtime._collect()
    runtime.step(0)
    [(first, _), (second, _)] = port.sent
    assert first == UmadHeader(
        AGENTS[SA],
        timeout_ms=0,  # a response waits for nothing
        qpn=7,
        qkey=QP1_QKEY,
        lid=9,
        sl=3,
        grh_present=True,
        hop_limit=255,
        gid=dgid,
    )
    assert second == UmadHeader(AGENTS[SA], timeout_ms=1500, qpn=5, qkey=QP1_QKEY, lid=12)
    assert runtime._tids == {(SA, 0x42): 0x42}
    # The ReportResp comes back with the MAD layer's bits in its TID; the SA sees its own.
    answer = sa_mad(0x86, tid=0x0002_0000_0000_0042)
    port.incoming.append((UmadHeader(AGENTS[SA], qpn=5, lid=12, sl=1, qkey=QP1_QKEY), answer))
    # A request from a requester with a GRH: the source GID is kept.
    port.incoming.append(
        (UmadHeader(AGENTS[SA], qpn=1, lid=4, grh_present=True, gid=dgid), sa_mad(0x01))
    )
    runtime.step(0)
    resp, query = sa.got
    assert int.from_bytes(resp.payload[8:16], "big") == 0x42
    assert (resp.slid, resp.sqp, resp.dqp, resp.sl, resp.qkey, resp.sgid) == (
        12,
        5,
        1,
        1,
        QP1_QKEY,
        None,
    )
    assert query.sgid == dgid and query.slid == 4
    assert runtime._tids == {}


def test_a_get_table_resp_leaves_as_header_plus_records() -> None:
    port = FakePort()
    payload = bytearray(sa_mad(0x92))
    payload[32:36] = (20 + 2 * 8).to_bytes(4, "big")  # RMPP PayloadLength: SA header + 2 x 8
    sa = Once(Datagram(bytes(payload), 1, 1, 9, 1, 7, qkey=QP1_QKEY))
    runtime = UmadRuntime(port, SubnetManager(port_num=1), sa, clock=Clock())
    runtime._collect()
    runtime.step(0)
    [(_header, mad)] = port.sent
    assert len(mad) == 36 + 20 + 16


def test_a_mad_of_no_registered_class_is_counted_not_sent() -> None:
    port = FakePort()
    del port.agents[SA]
    sa = Once(Datagram(sa_mad(0x81), 1, 1, 9, 1, 7))
    runtime = UmadRuntime(port, SubnetManager(port_num=1), sa, clock=Clock())
    runtime._collect()
    runtime.step(0)
    assert port.sent == [] and runtime.no_agent[SA] == 1


@pytest.fixture
def piped() -> Iterator[tuple[UmadPort, int, int]]:
    """A UmadPort whose device is one end of a pipe: what it writes is read from
    `out_r`, what is written to `in_w` it reads."""
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    port = UmadPort(UmadPortInfo(0, "mlx5_0", 1))
    port._fd = in_r
    poller = select.poll()
    poller.register(in_r, select.POLLIN)
    port._poll = poller
    yield port, in_w, out_r
    for fd in (in_r, in_w, out_r, out_w):
        os.close(fd)
    port._fd = -1


def test_a_read_is_header_then_the_mad_and_the_untrusted_tail_is_zeroed(
    piped: tuple[UmadPort, int, int],
) -> None:
    port, in_w, _out_r = piped
    assert port.recv() is None  # nothing waiting: no read at all
    mad = bytes(range(256))
    header = UmadHeader(3, lid=5, qpn=1, length=64 + 256)
    os.write(in_w, header.pack() + mad + b"garbage beyond the MAD")
    got = port.recv()
    assert got == (header, mad)
    # umad2sim's framing: the 56-byte header, 288 - 56 bytes of the MAD to be trusted.
    port.header_size = OLD_HEADER_SIZE
    port.mad_bytes_valid = 288 - OLD_HEADER_SIZE
    os.write(
        in_w, header.pack_as(56)[:16] + struct.pack("=I", 56 + 256) + header.pack_as(56)[20:] + mad
    )
    got = port.recv()
    assert got is not None
    assert got[1] == mad[:232] + bytes(24)
    assert got[0].lid == 5 and got[0].length == 56 + 256


def test_a_write_is_the_header_in_the_devices_layout_then_the_mad(
    piped: tuple[UmadPort, int, int],
) -> None:
    port, _in_w, _out_r = piped
    out_r, out_w = os.pipe()
    port._fd = out_w
    try:
        header = UmadHeader(2, timeout_ms=1500, lid=0xFFFF)
        assert port.send(header, b"\x01\x81\x01\x01")
        assert os.read(out_r, 1024) == header.pack() + b"\x01\x81\x01\x01"
        port.header_size = OLD_HEADER_SIZE
        assert port.send(header, b"MAD")
        assert os.read(out_r, 1024) == header.pack()[:56] + b"MAD"
    finally:
        os.close(out_r)
        os.close(out_w)

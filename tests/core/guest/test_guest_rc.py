"""RC queue pairs: the state table, PSNs, ACK/NAK and retries (the AETH codec is
tested in tests/wire/test_aeth.py)."""

from __future__ import annotations

import itertools

import pytest

from ibmig.core.engine import Datagram
from ibmig.core.guest.rc import (
    OP_RC_ACKNOWLEDGE,
    OP_RC_SEND_ONLY,
    PSN_MASK,
    QP_TRANSITIONS,
    QpState,
    QpTransitionError,
    RcQp,
    psn_add,
    psn_diff,
)
from ibmig.wire.packet import Aeth, AethSyndrome

GID_A = bytes.fromhex("fe800000000000000000000000000a0a")
GID_B = bytes.fromhex("fe800000000000000000000000000b0b")


def qp_in(state: QpState, *, qpn: int = 0x100) -> RcQp:
    """A QP brought to `state` by legal transitions only."""
    qp = RcQp(qpn)
    if state is QpState.RESET:
        return qp
    if state is QpState.ERROR:
        qp.modify(QpState.ERROR)
        return qp
    qp.init(1)
    if state is QpState.INIT:
        return qp
    qp.ready_to_receive(
        remote_qpn=0x200,
        remote_lid=7,
        remote_gid=GID_B,
        local_lid=5,
        local_gid=GID_A,
        sl=3,
        rq_psn=0,
    )
    if state is QpState.RTR:
        return qp
    qp.ready_to_send(sq_psn=0, timeout=10, retry_count=3)
    if state is QpState.SQD:
        qp.modify(QpState.SQD)
    return qp


def pair(
    *, psn_ab: int = 0, psn_ba: int = 0, timeout: int = 10, retry_count: int = 3, depth: int = 128
) -> tuple[RcQp, RcQp]:
    """Two connected QPs: a (requester, QPN 0x100) and b (responder, QPN 0x200)."""
    a, b = RcQp(0x100, depth), RcQp(0x200, depth)
    a.init(1)
    b.init(1)
    a.ready_to_receive(remote_qpn=0x200, remote_lid=7, remote_gid=GID_B, local_lid=5,
                       local_gid=GID_A, sl=3, rq_psn=psn_ba)  # fmt: skip
    b.ready_to_receive(remote_qpn=0x100, remote_lid=5, remote_gid=GID_A, local_lid=7,
                       local_gid=GID_B, sl=3, rq_psn=psn_ab)  # fmt: skip
    a.ready_to_send(sq_psn=psn_ab, timeout=timeout, retry_count=retry_count)
    b.ready_to_send(sq_psn=psn_ba, timeout=timeout, retry_count=retry_count)
    return a, b


# --- state table ----------------------------------------------------------------------


@pytest.mark.parametrize(("start", "target"), list(itertools.product(list(QpState), list(QpState))))
def test_every_transition_follows_the_table(start: QpState, target: QpState) -> None:
    qp = qp_in(start)
    if target in QP_TRANSITIONS[start]:
        qp.modify(target)
        assert qp.state is target
    else:
        with pytest.raises(QpTransitionError):
            qp.modify(target)
        assert qp.state is start


def test_table_is_the_iba_diagram() -> None:
    # Up the ladder one step at a time; SQD only from and back to RTS; RESET and
    # ERROR from anywhere; no way out of ERROR but RESET.
    assert QP_TRANSITIONS[QpState.RESET] == {QpState.RESET, QpState.INIT, QpState.ERROR}
    assert QpState.RTS not in QP_TRANSITIONS[QpState.INIT]
    assert QpState.RTS in QP_TRANSITIONS[QpState.SQD]
    assert QpState.SQD not in QP_TRANSITIONS[QpState.RTR]
    for state, targets in QP_TRANSITIONS.items():
        assert {QpState.RESET, QpState.ERROR} <= targets, state
    assert QP_TRANSITIONS[QpState.ERROR] == {QpState.RESET, QpState.ERROR}


def test_rts_needs_rtr_first() -> None:
    qp = qp_in(QpState.INIT)
    with pytest.raises(QpTransitionError, match="INIT -> RTS"):
        qp.ready_to_send(sq_psn=0, timeout=10, retry_count=3)


def test_error_flushes_and_reset_forgets() -> None:
    a, _ = pair(psn_ab=77)
    assert a.post_send(b"x" * 8, 0) is not None
    a.modify(QpState.ERROR)
    assert not a.outstanding and a.deadline is None
    assert a.post_send(b"x" * 8, 0) is None
    a.modify(QpState.RESET)
    assert a.sq_psn == 0


def test_data_qp_numbers_only() -> None:
    with pytest.raises(ValueError, match="data QP"):
        RcQp(1)
    with pytest.raises(ValueError, match="data QP"):
        RcQp(1 << 24)


# --- PSNs -----------------------------------------------------------------------------


def test_psn_arithmetic_wraps() -> None:
    assert psn_add(PSN_MASK, 1) == 0
    assert psn_add(PSN_MASK - 1, 5) == 3
    assert psn_diff(2, PSN_MASK) == 3
    assert psn_diff(PSN_MASK, 2) == -3
    assert psn_diff(0x800000, 0) == -0x800000


def test_messages_flow_in_order_across_the_psn_wrap() -> None:
    a, b = pair(psn_ab=0xFFFFFE)
    sent: list[Datagram] = []
    for seq in range(4):
        packet = a.post_send(seq.to_bytes(8, "big"), 100)
        assert packet is not None
        sent.append(packet)
    assert [p.psn for p in sent] == [0xFFFFFE, 0xFFFFFF, 0, 1]
    first = sent[0]
    assert first.opcode == OP_RC_SEND_ONLY
    assert (first.slid, first.dlid, first.sqp, first.dqp, first.sl) == (5, 7, 0x100, 0x200, 3)
    assert (first.sgid, first.dgid) == (GID_A, GID_B)
    assert a.deadline == 100 + (4096 << 10)
    delivered = []
    for packet in sent:
        message, ack = b.on_send(packet.psn, packet.payload)
        assert message is not None and ack is not None
        delivered.append(int.from_bytes(message, "big"))
        assert ack.opcode == OP_RC_ACKNOWLEDGE
        assert ack.psn == packet.psn
        assert (ack.sqp, ack.dqp, ack.dlid) == (0x200, 0x100, 5)
        assert a.on_ack(ack.psn, ack.payload, 200) == ()
    assert delivered == [0, 1, 2, 3]
    assert not a.outstanding and a.deadline is None
    assert b.rq_psn == 2 and b.msn == 4
    assert Aeth.unpack(ack.payload) == Aeth(AethSyndrome.ACK_NO_CREDIT, 4)


def test_acks_are_cumulative() -> None:
    a, b = pair()
    packets = [a.post_send(bytes(8), 0) for _ in range(3)]
    acks = [b.on_send(p.psn, p.payload)[1] for p in packets if p is not None]
    last = acks[-1]
    assert last is not None
    a.on_ack(last.psn, last.payload, 10)
    assert not a.outstanding
    first = acks[0]
    assert first is not None
    assert a.on_ack(first.psn, first.payload, 20) == ()  # stale: nothing outstanding


def test_duplicate_is_acknowledged_not_delivered() -> None:
    a, b = pair(psn_ab=5)
    p0, p1 = a.post_send(b"m0______", 0), a.post_send(b"m1______", 0)
    assert p0 is not None and p1 is not None
    b.on_send(p0.psn, p0.payload)
    b.on_send(p1.psn, p1.payload)
    message, ack = b.on_send(p0.psn, p0.payload)
    assert message is None and ack is not None
    assert ack.psn == 6  # the last PSN received in order covers the duplicate
    assert Aeth.unpack(ack.payload).is_ack
    assert b.msn == 2


def test_gap_gets_one_nak_then_go_back_n() -> None:
    a, b = pair(psn_ab=10, retry_count=3)
    packets = [a.post_send(bytes([i]) * 8, 0) for i in range(4)]
    assert all(p is not None for p in packets)
    p = [x for x in packets if x is not None]
    b.on_send(p[0].psn, p[0].payload)
    # p[1] is lost: p[2] draws a NAK with the expected PSN, p[3] nothing.
    message, nak = b.on_send(p[2].psn, p[2].payload)
    assert message is None and nak is not None
    assert nak.psn == 11
    assert Aeth.unpack(nak.payload).syndrome == AethSyndrome.NAK_PSN_SEQUENCE_ERROR
    assert b.on_send(p[3].psn, p[3].payload) == (None, None)
    resent = a.on_ack(nak.psn, nak.payload, 50)
    assert [r.psn for r in resent] == [11, 12, 13]  # PSN 10 is implicitly acknowledged
    assert a.retries_left == 2
    delivered = [b.on_send(r.psn, r.payload)[0] for r in resent]
    assert delivered == [bytes([1]) * 8, bytes([2]) * 8, bytes([3]) * 8]


def test_retry_exhaustion_moves_to_error() -> None:
    a, _ = pair(timeout=8, retry_count=2)
    packet = a.post_send(bytes(8), 1_000)
    assert packet is not None
    period = 4096 << 8
    assert a.deadline == 1_000 + period
    now = a.deadline
    for left in (1, 0):
        resent = a.on_timeout(now)
        assert resent is not None and [r.psn for r in resent] == [packet.psn]
        assert a.retries_left == left
        assert a.deadline == now + period
        now = a.deadline
    assert a.on_timeout(now) is None
    assert a.state is QpState.ERROR and not a.outstanding


def test_progress_refills_the_retries() -> None:
    a, b = pair(timeout=8, retry_count=2)
    p0 = a.post_send(bytes(8), 0)
    p1 = a.post_send(bytes(8), 0)
    assert p0 is not None and p1 is not None
    a.on_timeout(4096 << 8)
    assert a.retries_left == 1
    _, ack = b.on_send(p0.psn, p0.payload)
    assert ack is not None
    a.on_ack(ack.psn, ack.payload, 5_000_000)
    assert a.retries_left == 2 and len(a.outstanding) == 1
    assert a.deadline == 5_000_000 + (4096 << 8)


def test_timeout_zero_disables_the_timer() -> None:
    a, _ = pair(timeout=0)
    assert a.post_send(bytes(8), 0) is not None
    assert a.deadline is None


def test_send_queue_depth_bounds_outstanding() -> None:
    a, _ = pair(depth=2)
    assert a.post_send(bytes(8), 0) is not None
    assert a.post_send(bytes(8), 0) is not None
    assert a.post_send(bytes(8), 0) is None
    assert a.sq_psn == 2


def test_fatal_nak_moves_to_error() -> None:
    a, _ = pair()
    packet = a.post_send(bytes(8), 0)
    assert packet is not None
    nak = Aeth(AethSyndrome.NAK_REMOTE_ACCESS_ERROR, 0).pack()
    assert a.on_ack(packet.psn, nak, 1) == ()
    assert a.state is QpState.ERROR


def test_nothing_is_accepted_before_rtr() -> None:
    qp = qp_in(QpState.INIT)
    assert qp.on_send(0, bytes(8)) == (None, None)

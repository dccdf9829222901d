"""Reliable Connected (RC) queue pairs: the state machine and the transport rules.

State machine (IBA Vol 1, 10.3.1 "QP State Transitions", and 11.2.5.2 Modify QP):
one transition table, `QP_TRANSITIONS`; `RcQp.modify` raises `QpTransitionError`
for any pair it does not list. RESET -> INIT -> RTR -> RTS is the way up; RTS <->
SQD drains the send queue; any state may go to RESET or ERROR. The Send Queue
Error state (SQE) exists only for UD and UC QPs: an RC QP goes straight to ERROR
(10.3.1), so it is left out.

Transport (IBA Vol 1, 9.7 "Reliable Service"), for the one operation the workload
uses, RC SEND Only (BTH OpCode 0x04; one packet per message, as the messages are
smaller than any path MTU):

- PSNs are 24 bits and wrap. The requester numbers its packets from the Starting
  PSN the CM exchanged; the responder expects the same sequence.
- Responder (9.7.5.1): a SEND with the expected PSN is delivered, the Message
  Sequence Number (MSN) is incremented and an ACK is returned (BTH OpCode 0x11,
  PSN = the request's, AETH in the payload). A PSN in the 2**23 PSNs behind the
  expected one is a duplicate: not delivered again, but acknowledged again (with
  the last PSN received in order, which also covers it). A PSN ahead of the
  expected one means packets were lost: the first such packet gets a NAK "PSN
  sequence error" carrying the expected PSN (9.7.5.2.2); later ones are dropped
  until the expected PSN arrives.
- Requester (9.7.5.2, 9.7.6): ACKs are cumulative; an ACK for PSN n retires every
  outstanding packet up to n. The transport timer (Local ACK Timeout, 4.096 us *
  2**timeout; 0 disables it) runs while packets are outstanding and restarts on
  every ACK that retires something. When it expires, or when a NAK "PSN sequence
  error" arrives, the requester resends every outstanding packet from the oldest
  (go-back-N) and spends one of its `retry_count` retries; progress refills them.
  With no retry left the QP goes to ERROR (the work request completes with "retry
  exceeded" and the application sees its connection die). Any other NAK is fatal
  (ERROR at once).

ACKs are not coalesced: the responder acknowledges every SEND (the simplest
conforming choice, 9.7.5.1.1 lets a responder coalesce). RNR NAKs are never sent
(receive buffers are unlimited here) and are ignored if received.

AETH (9.3.5 "ACK Extended Transport Header"): 4 bytes, Syndrome (8 bits) then
MSN (24 bits). Syndrome bits 6..5 say ACK (00), RNR NAK (01) or NAK (11); bits
4..0 are the credit count of an ACK (31 = "invalid", no end-to-end credits
advertised, what is sent here), the RNR timer, or the NAK code (0 PSN sequence
error, 1 invalid request, 2 remote access error, 3 remote operational error, 4
invalid RD request). Its codec is `ibmig.wire.packet.Aeth`.

The outstanding queue is bounded by `send_queue_depth` (a full send queue
refuses new messages, as ibv_post_send does).
"""

from __future__ import annotations

from collections import deque
from enum import IntEnum
from typing import Final

from ibmig.core.engine import Datagram
from ibmig.wire.packet import Aeth, AethSyndrome, OpCode, pack_aeth

OP_RC_SEND_ONLY: Final = int(OpCode.RC_SEND_ONLY)
OP_RC_ACKNOWLEDGE: Final = int(OpCode.RC_ACKNOWLEDGE)
OP_UD_SEND_ONLY: Final = int(OpCode.UD_SEND_ONLY)

PSN_MASK: Final = 0xFFFFFF
PSN_HALF: Final = 0x800000
QPN_MASK: Final = 0xFFFFFF


def psn_add(psn: int, n: int) -> int:
    """`psn` + n modulo 2**24."""
    return (psn + n) & PSN_MASK


def psn_diff(a: int, b: int) -> int:
    """a - b as a signed distance in the 24-bit PSN space (-2**23 .. 2**23 - 1)."""
    d = (a - b) & PSN_MASK
    return d - 0x1000000 if d >= PSN_HALF else d


class QpState(IntEnum):
    """QP states (IBA Vol 1, 10.3.1; the numbering of ibv_qp_state)."""

    RESET = 0x0
    INIT = 0x1
    RTR = 0x2
    RTS = 0x3
    SQD = 0x4
    ERROR = 0x6


_R, _I, _RTR, _RTS, _SQD, _E = (
    QpState.RESET,
    QpState.INIT,
    QpState.RTR,
    QpState.RTS,
    QpState.SQD,
    QpState.ERROR,
)

QP_TRANSITIONS: Final[dict[QpState, frozenset[QpState]]] = {
    _R: frozenset({_R, _I, _E}),
    _I: frozenset({_I, _RTR, _R, _E}),
    _RTR: frozenset({_RTS, _R, _E}),
    _RTS: frozenset({_RTS, _SQD, _R, _E}),
    _SQD: frozenset({_SQD, _RTS, _R, _E}),
    _E: frozenset({_R, _E}),
}
"""current state -> states Modify QP may move it to (IBA Vol 1, 10.3.1, Figure
"QP State Diagram"); anything else is illegal."""


class QpTransitionError(Exception):
    """An illegal QP state transition (a bug in the caller, never a wire event)."""


_NAK_SEQ: Final = int(AethSyndrome.NAK_PSN_SEQUENCE_ERROR)
_ACK: Final = int(AethSyndrome.ACK_NO_CREDIT)


_NO_PACKETS: Final[tuple[Datagram, ...]] = ()


class RcQp:
    """One RC queue pair: state, addressing, requester and responder PSN state.

    The QP never sends by itself: `post_send`, `on_ack`, `on_send` and `on_timeout`
    return the datagrams to send. `deadline` is when the transport timer expires
    (None: not running).
    """

    __slots__ = (
        "deadline",
        "msn",
        "nak_sent",
        "outstanding",
        "pkey",
        "port",
        "local_gid",
        "local_lid",
        "qpn",
        "remote_gid",
        "remote_lid",
        "remote_qpn",
        "retries_left",
        "retry_count",
        "rq_psn",
        "send_queue_depth",
        "sl",
        "sq_psn",
        "state",
        "timeout_ns",
    )

    def __init__(self, qpn: int, send_queue_depth: int = 128) -> None:
        if not 2 <= qpn <= QPN_MASK:
            raise ValueError(f"QPN {qpn:#x} is not a data QP number (2..0xFFFFFF)")
        self.qpn = qpn
        self.state = QpState.RESET
        self.send_queue_depth = send_queue_depth
        self.port = 0
        self.pkey = 0xFFFF
        self.local_lid = 0
        self.local_gid = bytes(16)
        self.remote_qpn = 0
        self.remote_lid = 0
        self.remote_gid = bytes(16)
        self.sl = 0
        # Requester.
        self.sq_psn = 0
        self.outstanding: deque[tuple[int, bytes]] = deque()
        self.retry_count = 7
        self.retries_left = 7
        self.timeout_ns = 0
        self.deadline: int | None = None
        # Responder.
        self.rq_psn = 0
        self.msn = 0
        self.nak_sent = False

    def __repr__(self) -> str:
        return f"RcQp(qpn={self.qpn:#x}, state={self.state.name}, remote_qpn={self.remote_qpn:#x})"

    # --- state machine -----------------------------------------------------------------

    def modify(self, to: QpState) -> None:
        """Move to `to`; `QpTransitionError` if `QP_TRANSITIONS` does not allow it.

        Entering ERROR flushes the send queue and stops the timer; RESET also
        forgets the PSN state.
        """
        if to not in QP_TRANSITIONS[self.state]:
            raise QpTransitionError(
                f"QP {self.qpn:#x}: {self.state.name} -> {QpState(to).name} is not a legal "
                "transition (IBA Vol 1, 10.3.1)"
            )
        self.state = to
        if to is _E or to is _R:
            self.outstanding.clear()
            self.deadline = None
            if to is _R:
                self.sq_psn = self.rq_psn = self.msn = 0
                self.nak_sent = False

    def init(self, port: int, pkey: int = 0xFFFF) -> None:
        """RESET -> INIT: port and partition."""
        self.modify(_I)
        self.port = port
        self.pkey = pkey

    def ready_to_receive(
        self,
        *,
        remote_qpn: int,
        remote_lid: int,
        remote_gid: bytes,
        local_lid: int,
        local_gid: bytes,
        sl: int,
        rq_psn: int,
    ) -> None:
        """INIT -> RTR: the destination (primary path) and the expected PSN."""
        self.modify(_RTR)
        self.remote_qpn = remote_qpn
        self.remote_lid = remote_lid
        self.remote_gid = remote_gid
        self.local_lid = local_lid
        self.local_gid = local_gid
        self.sl = sl
        self.rq_psn = rq_psn & PSN_MASK
        self.msn = 0
        self.nak_sent = False

    def ready_to_send(self, *, sq_psn: int, timeout: int, retry_count: int) -> None:
        """RTR -> RTS: the first PSN to send, Local ACK Timeout exponent, retry count."""
        self.modify(_RTS)
        self.sq_psn = sq_psn & PSN_MASK
        self.timeout_ns = 0 if timeout == 0 else 4096 << timeout
        self.retry_count = self.retries_left = retry_count

    # --- requester -----------------------------------------------------------------------

    def post_send(self, payload: bytes, now_ns: int) -> Datagram | None:
        """Send one message (RC SEND Only); None if the QP is not in RTS or its send
        queue is full."""
        out = self.outstanding
        if self.state is not _RTS or len(out) >= self.send_queue_depth:
            return None
        psn = self.sq_psn
        self.sq_psn = (psn + 1) & PSN_MASK
        out.append((psn, payload))
        if self.deadline is None and self.timeout_ns:
            self.deadline = now_ns + self.timeout_ns
        return Datagram(
            payload,
            self.port,
            self.local_lid,
            self.remote_lid,
            self.qpn,
            self.remote_qpn,
            self.sl,
            self.pkey,
            0,
            self.local_gid,
            self.remote_gid,
            OP_RC_SEND_ONLY,
            psn,
        )

    def on_ack(self, psn: int, aeth: bytes, now_ns: int) -> tuple[Datagram, ...]:
        """An ACK or NAK (BTH OpCode 0x11) for this QP: retire what it acknowledges;
        return what must be resent (after a NAK "PSN sequence error"). A fatal NAK,
        or a sequence-error NAK with no retry left, moves the QP to ERROR."""
        out = self.outstanding
        if not out or (self.state is not _RTS and self.state is not _SQD) or len(aeth) < 4:
            return _NO_PACKETS
        syndrome = aeth[0]
        kind = syndrome & 0x60
        oldest = out[0][0]
        if kind == 0x00:
            n = ((psn - oldest) & PSN_MASK) + 1
            if n > len(out):
                return _NO_PACKETS  # a duplicate or stale ACK: nothing of ours
            if n == 1:
                out.popleft()
            else:
                for _ in range(n):
                    out.popleft()
            self.retries_left = self.retry_count
            self.deadline = now_ns + self.timeout_ns if out and self.timeout_ns else None
            return _NO_PACKETS
        if syndrome == _NAK_SEQ:
            n = (psn - oldest) & PSN_MASK  # everything before the NAK's PSN arrived
            if n > len(out):
                return _NO_PACKETS
            for _ in range(n):
                out.popleft()
            if not out:
                self.deadline = None
                return _NO_PACKETS
            if self.retries_left == 0:
                self.modify(_E)
                return _NO_PACKETS
            self.retries_left -= 1
            self.deadline = now_ns + self.timeout_ns if self.timeout_ns else None
            return self._resend()
        if kind == 0x60:
            self.modify(_E)  # invalid request, access or operational error: fatal
        return _NO_PACKETS  # RNR NAK: not modelled

    def on_timeout(self, now_ns: int) -> tuple[Datagram, ...] | None:
        """The transport timer expired: resend everything outstanding and spend a
        retry, or, with none left, go to ERROR and return None ("retry exceeded")."""
        self.deadline = None
        if not self.outstanding or (self.state is not _RTS and self.state is not _SQD):
            return _NO_PACKETS
        if self.retries_left == 0:
            self.modify(_E)
            return None
        self.retries_left -= 1
        self.deadline = now_ns + self.timeout_ns
        return self._resend()

    def _resend(self) -> tuple[Datagram, ...]:
        port, llid, rlid, qpn, rqpn = (
            self.port,
            self.local_lid,
            self.remote_lid,
            self.qpn,
            self.remote_qpn,
        )
        sl, pkey, lgid, rgid = self.sl, self.pkey, self.local_gid, self.remote_gid
        op = OP_RC_SEND_ONLY
        return tuple(
            Datagram(payload, port, llid, rlid, qpn, rqpn, sl, pkey, 0, lgid, rgid, op, psn)
            for psn, payload in self.outstanding
        )

    # --- responder -----------------------------------------------------------------------

    def on_send(self, psn: int, payload: bytes) -> tuple[bytes | None, Datagram | None]:
        """An RC SEND Only for this QP: (the message if it is delivered now, the ACK or
        NAK to return). Nothing is accepted before RTR or after an error."""
        state = self.state
        if state is not _RTR and state is not _RTS and state is not _SQD:
            return None, None
        d = (psn - self.rq_psn) & PSN_MASK
        if d == 0:
            self.rq_psn = (psn + 1) & PSN_MASK
            self.msn = msn = (self.msn + 1) & PSN_MASK
            self.nak_sent = False
            return payload, self._ack_packet(psn, _ACK, msn)
        if d < PSN_HALF:
            if self.nak_sent:
                return None, None
            self.nak_sent = True
            return None, self._ack_packet(self.rq_psn, _NAK_SEQ, self.msn)
        return None, self._ack_packet((self.rq_psn - 1) & PSN_MASK, _ACK, self.msn)

    def _ack_packet(self, psn: int, syndrome: int, msn: int) -> Datagram:
        return Datagram(
            pack_aeth(syndrome, msn),
            self.port,
            self.local_lid,
            self.remote_lid,
            self.qpn,
            self.remote_qpn,
            self.sl,
            self.pkey,
            0,
            self.local_gid,
            self.remote_gid,
            OP_RC_ACKNOWLEDGE,
            psn,
        )


__all__ = [
    "OP_RC_ACKNOWLEDGE",
    "OP_RC_SEND_ONLY",
    "OP_UD_SEND_ONLY",
    "PSN_MASK",
    "QP_TRANSITIONS",
    "Aeth",
    "AethSyndrome",
    "QpState",
    "QpTransitionError",
    "RcQp",
    "psn_add",
    "psn_diff",
]

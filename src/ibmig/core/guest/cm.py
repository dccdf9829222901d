"""The communication manager's connection state (IBA Vol 1, chapter 12).

One `Connection` per connection attempt, on either side. Its states are a reduced
form of the CM state diagrams of IBA Vol 1, 12.9.6 ("Communication Establishment
- Active" / "- Passive") and 12.9.7 ("Connection Release"), kept in one transition
table, `CM_TRANSITIONS`; `Connection.transition` raises `CmTransitionError` for
any other move:

    active:   IDLE --REQ sent--> REQ_SENT --REP received, RTU sent--> ESTABLISHED
    passive:  IDLE --REQ received, REP sent--> REP_SENT --RTU (or first SEND)-->
              ESTABLISHED
    release:  ESTABLISHED --DREQ sent--> DREQ_SENT --DREP or time-out--> CLOSED
              ESTABLISHED --DREQ received, DREP sent--> CLOSED
    failure:  REQ_SENT / REP_SENT --REJ, time-out, abort--> CLOSED;
              ESTABLISHED --QP error torn down without DREQ--> CLOSED

MRA is not sent and is ignored when received; LAP/APR (path migration) and the
TimeWait delay are not modelled (a closed connection's comm ID is never reused,
so nothing can be confused with it).

Time-outs, as Linux's ib_cm computes them (drivers/infiniband/core/cm.c,
`ib_send_cm_req` and `cm_req_handler`), in exact IBA units (4.096 us * 2**x):
the active side waits 2 * PacketLifeTime + the Remote CM Response Timeout for a
REP and resends the REQ up to Max CM Retries times; the passive side waits the
REQ's Local CM Response Timeout for the RTU, resending the REP up to the REQ's
Max CM Retries times, then sends a REJ (Timeout); a DREQ is resent with the
side's time-out the same way, after which the connection is closed anyway.

TIDs: a REP and the RTU reuse the REQ's TID, a DREP the DREQ's, a REJ the TID of
what it rejects; a REQ and a DREQ take a new one (as ib_cm does).

The private data of a REQ starts with rdma_cm's IP addressing header (IBA Vol 1,
Annex A11 "RDMA IP CM Service", A11.4; codec `ibmig.wire.rdma_cm.IpCmHeader`): the
IP version, source port, source and destination addresses. That is how a server
learns a client's IP address for its IPoIB neighbour table.
"""

from __future__ import annotations

from enum import IntEnum
from ipaddress import IPv4Address
from typing import Final

from ibmig.core.engine import Datagram
from ibmig.core.guest.rc import RcQp
from ibmig.wire.rdma_cm import cma_header, parse_cma_header


class CmState(IntEnum):
    IDLE = 0
    REQ_SENT = 1
    REP_SENT = 2
    ESTABLISHED = 3
    DREQ_SENT = 4
    CLOSED = 5


CM_TRANSITIONS: Final[dict[CmState, frozenset[CmState]]] = {
    CmState.IDLE: frozenset({CmState.REQ_SENT, CmState.REP_SENT, CmState.CLOSED}),
    CmState.REQ_SENT: frozenset({CmState.ESTABLISHED, CmState.CLOSED}),
    CmState.REP_SENT: frozenset({CmState.ESTABLISHED, CmState.CLOSED}),
    CmState.ESTABLISHED: frozenset({CmState.DREQ_SENT, CmState.CLOSED}),
    CmState.DREQ_SENT: frozenset({CmState.CLOSED}),
    CmState.CLOSED: frozenset(),
}
"""current CM state -> the states it may move to (module docstring)."""


class CmTransitionError(Exception):
    """An illegal CM state transition (a bug in the caller, never a wire event)."""


class Connection:
    """One connection (attempt) as the CM and the application see it.

    `qp` is the RC QP the connection set up; `stream` is the client stream it
    serves (None on the server side). `deadline` is when the engine's timer
    should fire (CM resends); `resend` is the MAD to resend when it expires and
    `resend_kind` how it is counted.
    """

    __slots__ = (
        "cm_timeout_ns",
        "client_ip",
        "deadline",
        "local_ack_timeout",
        "local_comm_id",
        "packet_life_time",
        "qp",
        "remote_comm_id",
        "remote_gid",
        "remote_lid",
        "resend",
        "resend_kind",
        "retries_left",
        "retry_count",
        "role",
        "service_id",
        "sl",
        "starting_psn",
        "state",
        "stream",
        "tid",
    )

    def __init__(
        self,
        role: str,
        local_comm_id: int,
        service_id: int,
        remote_gid: bytes,
        remote_lid: int,
        sl: int,
        qp: RcQp,
    ) -> None:
        self.role = role
        self.state = CmState.IDLE
        self.local_comm_id = local_comm_id
        self.remote_comm_id = 0
        self.service_id = service_id
        self.remote_gid = remote_gid
        self.remote_lid = remote_lid
        self.sl = sl
        self.qp = qp
        self.stream: object | None = None
        self.client_ip: IPv4Address | None = None
        self.tid = 0
        self.starting_psn = 0  # our first send PSN (REQ or REP Starting PSN)
        self.local_ack_timeout = 0  # exponent for our QP's transport timer
        self.packet_life_time = 0  # the path's, as the active side resolved it
        self.retry_count = 7
        self.cm_timeout_ns = 0
        self.retries_left = 0
        self.resend: Datagram | None = None
        self.resend_kind = ""
        self.deadline: int | None = None

    def __repr__(self) -> str:
        return (
            f"Connection({self.role}, {self.state.name}, comm_id={self.local_comm_id:#x}, "
            f"remote_lid={self.remote_lid})"
        )

    def transition(self, to: CmState) -> None:
        """Move to `to`; `CmTransitionError` if `CM_TRANSITIONS` does not allow it."""
        if to not in CM_TRANSITIONS[self.state]:
            raise CmTransitionError(
                f"CM {self.role} connection {self.local_comm_id:#x}: "
                f"{self.state.name} -> {CmState(to).name} is not a legal transition"
            )
        self.state = to
        if to is CmState.CLOSED or to is CmState.ESTABLISHED:
            self.deadline = None
            self.resend = None


__all__ = [
    "CM_TRANSITIONS",
    "CmState",
    "CmTransitionError",
    "Connection",
    "cma_header",
    "parse_cma_header",
]

"""The guest's communication manager: its CM MAD handlers (IBA Vol 1, chapter 12).

`GuestCm` is the CM half of `ibmig.core.guest.agent.GuestAgent`, which inherits
it: the active side sends REQs for client streams (`_send_req`), both sides
answer REQ/REP/RTU/REJ/DREQ/DREP (`_receive_cm`), resend what is unanswered
(`_on_conn_timer`) and close or disconnect connections. A connection's states and
their transition table are `ibmig.core.guest.cm`'s; a client stream's are
`ibmig.core.guest.workload`'s. The agent owns the state these handlers share
(connections by comm ID, by QPN and by (client GID, Service ID)) and the client
streams, whose reactions (`_stream_up`, `_attempt_failed`, `_break_stream`,
`_start_attempt`) it implements.

The passive side accepts any REQ for its Service ID. A REQ from a (client GID,
Service ID) pair that already has a connection replaces it (the client came back
after a migration or an error); a resent REQ (same comm ID) gets the REP again.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import TYPE_CHECKING, Any, Final

from ibmig.core.engine import Datagram, EventLog
from ibmig.core.guest.cm import CmState, Connection, cma_header, parse_cma_header
from ibmig.core.guest.config import GuestConfig, cm_ack_timeout, cm_timeout_ns
from ibmig.core.guest.events import ConnectionBroken, ConnectionUp
from ibmig.core.guest.ipoib import NeighbourTable
from ibmig.core.guest.rc import QPN_MASK, QpState, RcQp
from ibmig.core.guest.workload import ClientStream, StreamState
from ibmig.errors import WireError
from ibmig.wire.cm import (
    CmMad,
    CmPath,
    Drep,
    Dreq,
    Rej,
    RejectedMessage,
    RejReason,
    Rep,
    Req,
    Rtu,
    TransportServiceType,
)

DEFAULT_PKEY: Final = 0xFFFF
FIRST_QPN: Final = 0x000100
"""Data QPs are numbered from here (below it: QP0, QP1 and the IPoIB QP)."""

_REQ_SENT, _REP_SENT, _ESTABLISHED, _DREQ_SENT, _CLOSED = (
    CmState.REQ_SENT,
    CmState.REP_SENT,
    CmState.ESTABLISHED,
    CmState.DREQ_SENT,
    CmState.CLOSED,
)


@dataclass(slots=True)
class GuestIds:
    """The next data QPN, CM comm ID and SA TID a guest hands out; one object, so
    that a guest keeps few attributes (`GuestAgent._interval` says why)."""

    qpn: int
    comm_id: int
    tid: int


class GuestCm(EventLog[Any]):
    """The CM MAD handlers of a guest (module docstring); a mixin of `GuestAgent`."""

    # The agent's state these handlers read and write.
    config: GuestConfig
    port_num: int
    lid: int
    gid: bytes
    ip: IPv4Address
    counters: Counter[str]
    neighbours: NeighbourTable
    _conns: dict[int, Connection]
    _by_qpn: dict[int, Connection]
    _server_conns: dict[tuple[bytes, int], Connection]
    _ids: GuestIds

    if TYPE_CHECKING:
        # The agent's side: MADs out, TIDs, timers and the client streams.

        def _mad(self, payload: bytes, dlid: int, dgid: bytes | None, sl: int = 0) -> Datagram:
            raise NotImplementedError

        def _new_tid(self) -> int:
            raise NotImplementedError

        def _send_cm(self, datagram: Datagram, kind: str) -> None: ...

        def _sync(self, owner: Any) -> None: ...

        def _start_attempt(self, stream: ClientStream, now_ns: int) -> None: ...

        def _stream_up(self, stream: ClientStream, conn: Connection, now_ns: int) -> None: ...

        def _attempt_failed(self, stream: ClientStream, reason: str, now_ns: int) -> None: ...

        def _break_stream(
            self, stream: ClientStream, reason: str, now_ns: int, *, send_dreq: bool | None = None
        ) -> None: ...

    # --- active side ---------------------------------------------------------------------

    def _send_req(self, stream: ClientStream, record: Any, now_ns: int) -> None:
        cfg = self.config
        qp = self._new_qp()
        conn = Connection(
            "client", self._new_comm_id(), cfg.service_id, stream.gid, record.dlid, record.sl, qp
        )
        conn.stream = stream
        ack_timeout = (
            cfg.local_ack_timeout
            if cfg.local_ack_timeout is not None
            else cm_ack_timeout(cfg.ca_ack_delay, record.packet_life_time)
        )
        conn.local_ack_timeout = ack_timeout
        conn.packet_life_time = record.packet_life_time
        conn.retry_count = cfg.retry_count
        conn.starting_psn = self.rng.getrandbits(24)
        tid = self._new_tid()
        conn.tid = tid
        req = Req(
            local_comm_id=conn.local_comm_id,
            service_id=cfg.service_id,
            local_ca_guid=int.from_bytes(self.gid[8:], "big"),
            local_qpn=qp.qpn,
            remote_cm_response_timeout=cfg.cm_response_timeout,
            transport_service_type=TransportServiceType.RC,
            starting_psn=conn.starting_psn,
            local_cm_response_timeout=cfg.cm_response_timeout,
            retry_count=cfg.retry_count,
            partition_key=record.pkey or DEFAULT_PKEY,
            path_packet_payload_mtu=record.mtu,
            rnr_retry_count=cfg.rnr_retry_count,
            max_cm_retries=cfg.max_cm_retries,
            primary_path=CmPath(
                local_lid=self.lid,
                remote_lid=record.dlid,
                local_gid=self.gid,
                remote_gid=stream.gid,
                flow_label=record.flow_label,
                packet_rate=record.rate,
                traffic_class=record.tclass,
                hop_limit=record.hop_limit,
                sl=record.sl,
                subnet_local=record.hop_limit <= 1,
                local_ack_timeout=ack_timeout,
            ),
            private_data=cma_header(self.ip, stream.ip).ljust(Req.PRIVATE_DATA_SIZE, b"\0"),
        )
        datagram = self._mad(CmMad(req, tid=tid).pack(), record.dlid, stream.gid, record.sl)
        conn.transition(_REQ_SENT)
        # ib_send_cm_req's timeout_ms: 2 * PacketLifeTime + the remote's response time.
        conn.cm_timeout_ns = 2 * cm_timeout_ns(record.packet_life_time) + cm_timeout_ns(
            cfg.cm_response_timeout
        )
        self._expect_answer(conn, datagram, "cm_req", cfg.max_cm_retries, now_ns)
        self._conns[conn.local_comm_id] = conn
        self._by_qpn[qp.qpn] = conn
        stream.conn = conn
        stream.transition(StreamState.CONNECTING)
        self._send_cm(datagram, "cm_req")

    def _expect_answer(
        self, conn: Connection, datagram: Datagram, kind: str, retries: int, now_ns: int
    ) -> None:
        conn.resend = datagram
        conn.resend_kind = kind
        conn.retries_left = retries
        conn.deadline = now_ns + conn.cm_timeout_ns
        self._sync(conn)

    # --- CM MADs -------------------------------------------------------------------------

    def _receive_cm(self, datagram: Datagram, now_ns: int) -> None:
        try:
            mad = CmMad.unpack(datagram.payload)
        except WireError:
            self.counters["cm_malformed"] += 1
            return
        message = mad.message
        if isinstance(message, Req):
            self._on_req(mad.tid, message, datagram, now_ns)
        elif isinstance(message, Rep):
            self._on_rep(mad.tid, message, datagram, now_ns)
        elif isinstance(message, Rtu):
            self._on_rtu(message, now_ns)
        elif isinstance(message, Rej):
            self._on_rej(message, now_ns)
        elif isinstance(message, Dreq):
            self._on_dreq(mad.tid, message, datagram, now_ns)
        elif isinstance(message, Drep):
            self._on_drep(message)
        else:
            self.counters["cm_mra_ignored"] += 1

    def _reject(
        self,
        datagram: Datagram,
        tid: int,
        remote_comm_id: int,
        rejected: int,
        reason: int,
        local_comm_id: int = 0,
    ) -> None:
        rej = Rej(local_comm_id, remote_comm_id, rejected, reason)
        self._send_cm(
            self._mad(CmMad(rej, tid=tid).pack(), datagram.slid, datagram.sgid, datagram.sl),
            "cm_rej",
        )

    def _on_req(self, tid: int, req: Req, datagram: Datagram, now_ns: int) -> None:
        path = req.primary_path
        reason = 0
        if req.service_id != self.config.service_id:
            reason = RejReason.INVALID_SERVICE_ID
        elif req.transport_service_type != TransportServiceType.RC:
            reason = RejReason.INVALID_TRANSPORT_SERVICE_TYPE
        elif path.remote_gid != self.gid:
            reason = RejReason.INVALID_PRIMARY_GID
        elif path.remote_lid != self.lid:
            reason = RejReason.INVALID_PRIMARY_LID
        if reason:
            self.counters["req_rejected"] += 1
            self._reject(datagram, tid, req.local_comm_id, RejectedMessage.REQ, reason)
            return
        client_gid = path.local_gid
        key = (client_gid, req.service_id)
        old = self._server_conns.get(key)
        if old is not None:
            if old.remote_comm_id == req.local_comm_id:
                # A resent REQ: our REP was lost (or is late). Resend it.
                if old.state is _REP_SENT and old.resend is not None:
                    self._send_cm(old.resend, "cm_rep")
                else:
                    self.counters["req_duplicate"] += 1
                return
            if old.state is _ESTABLISHED:
                self._emit(ConnectionBroken(now_ns, self.gid, old.remote_gid, "server", "replaced"))
            self._close(old)
        qp = self._new_qp()
        conn = Connection(
            "server", self._new_comm_id(), req.service_id, client_gid, path.local_lid, path.sl, qp
        )
        conn.remote_comm_id = req.local_comm_id
        conn.tid = tid
        conn.starting_psn = self.rng.getrandbits(24)
        conn.local_ack_timeout = path.local_ack_timeout
        conn.retry_count = req.retry_count
        addresses = parse_cma_header(req.private_data)
        if addresses is not None:
            conn.client_ip = addresses[0]
            self.neighbours.learn(addresses[0], client_gid, path.local_lid, now_ns=now_ns)
        qp.ready_to_receive(
            remote_qpn=req.local_qpn,
            remote_lid=path.local_lid,
            remote_gid=client_gid,
            local_lid=self.lid,
            local_gid=self.gid,
            sl=path.sl,
            rq_psn=req.starting_psn,
        )
        rep = Rep(
            local_comm_id=conn.local_comm_id,
            remote_comm_id=req.local_comm_id,
            local_qpn=qp.qpn,
            starting_psn=conn.starting_psn,
            target_ack_delay=self.config.ca_ack_delay,
            rnr_retry_count=self.config.rnr_retry_count,
            local_ca_guid=int.from_bytes(self.gid[8:], "big"),
        )
        reply = self._mad(CmMad(rep, tid=tid).pack(), datagram.slid, client_gid, path.sl)
        conn.transition(_REP_SENT)
        conn.cm_timeout_ns = cm_timeout_ns(req.local_cm_response_timeout)  # cm_req_handler
        self._expect_answer(conn, reply, "cm_rep", req.max_cm_retries, now_ns)
        self._conns[conn.local_comm_id] = conn
        self._by_qpn[qp.qpn] = conn
        self._server_conns[key] = conn
        self._send_cm(reply, "cm_rep")

    def _on_rep(self, tid: int, rep: Rep, datagram: Datagram, now_ns: int) -> None:
        conn = self._conns.get(rep.remote_comm_id)
        if conn is None or conn.role != "client":
            self.counters["rep_unknown"] += 1
            self._reject(
                datagram, tid, rep.local_comm_id, RejectedMessage.REP, RejReason.INVALID_COMM_ID
            )
            return
        rtu_for = self._mad(
            CmMad(Rtu(conn.local_comm_id, rep.local_comm_id), tid=conn.tid).pack(),
            conn.remote_lid,
            conn.remote_gid,
            conn.sl,
        )
        if conn.state is _ESTABLISHED:
            if conn.remote_comm_id == rep.local_comm_id:
                self._send_cm(rtu_for, "cm_rtu")  # our RTU was lost: send it again
            return
        if conn.state is not _REQ_SENT:
            self.counters["rep_unexpected"] += 1
            return
        conn.remote_comm_id = rep.local_comm_id
        if self.config.local_ack_timeout is None:
            # Linux cm_rep_handler: the QP's timeout takes the REP's Target ACK Delay.
            conn.local_ack_timeout = cm_ack_timeout(rep.target_ack_delay, conn.packet_life_time)
        qp = conn.qp
        qp.ready_to_receive(
            remote_qpn=rep.local_qpn,
            remote_lid=conn.remote_lid,
            remote_gid=conn.remote_gid,
            local_lid=self.lid,
            local_gid=self.gid,
            sl=conn.sl,
            rq_psn=rep.starting_psn,
        )
        qp.ready_to_send(
            sq_psn=conn.starting_psn, timeout=conn.local_ack_timeout, retry_count=conn.retry_count
        )
        conn.transition(_ESTABLISHED)
        self._send_cm(rtu_for, "cm_rtu")
        stream = conn.stream
        if isinstance(stream, ClientStream) and stream.conn is conn:
            self._stream_up(stream, conn, now_ns)

    def _establish_passive(self, conn: Connection, now_ns: int) -> None:
        conn.qp.ready_to_send(
            sq_psn=conn.starting_psn, timeout=conn.local_ack_timeout, retry_count=conn.retry_count
        )
        conn.transition(_ESTABLISHED)
        self._emit(
            ConnectionUp(now_ns, self.gid, conn.remote_gid, "server", conn.remote_lid,
                         conn.local_comm_id)
        )  # fmt: skip

    def _on_rtu(self, rtu: Rtu, now_ns: int) -> None:
        conn = self._conns.get(rtu.remote_comm_id)
        if conn is None or conn.state is not _REP_SENT or conn.remote_comm_id != rtu.local_comm_id:
            self.counters["rtu_ignored"] += 1
            return
        self._establish_passive(conn, now_ns)

    def _on_rej(self, rej: Rej, now_ns: int) -> None:
        conn = self._conns.get(rej.remote_comm_id)
        if conn is None:
            self.counters["rej_unknown"] += 1
            return
        state = conn.state
        stream = conn.stream
        if state is _REQ_SENT:
            self._close(conn)
            if isinstance(stream, ClientStream) and stream.conn is conn:
                self._attempt_failed(stream, f"rejected_{int(rej.reason):#04x}", now_ns)
        elif state is _REP_SENT:
            self.counters["rep_rejected"] += 1
            self._close(conn)
        elif state is _ESTABLISHED:
            if isinstance(stream, ClientStream) and stream.conn is conn:
                self._break_stream(stream, "rejected", now_ns)
                self._start_attempt(stream, now_ns)
            else:
                self._emit(
                    ConnectionBroken(now_ns, self.gid, conn.remote_gid, conn.role, "rejected")
                )
                self._close(conn)
        else:
            self.counters["rej_ignored"] += 1

    def _on_dreq(self, tid: int, dreq: Dreq, datagram: Datagram, now_ns: int) -> None:
        conn = self._conns.get(dreq.remote_comm_id)
        drep = Drep(dreq.remote_comm_id, dreq.local_comm_id)
        reply = self._mad(CmMad(drep, tid=tid).pack(), datagram.slid, datagram.sgid, datagram.sl)
        if conn is None or conn.remote_comm_id != dreq.local_comm_id:
            self.counters["dreq_unknown"] += 1
            self._send_cm(reply, "cm_drep")  # already gone: answer so the peer stops
            return
        self._send_cm(reply, "cm_drep")
        if conn.state is _ESTABLISHED:
            stream = conn.stream
            if isinstance(stream, ClientStream) and stream.conn is conn:
                self._break_stream(stream, "disconnect_request", now_ns, send_dreq=False)
                self._start_attempt(stream, now_ns)
                return
            self._emit(
                ConnectionBroken(now_ns, self.gid, conn.remote_gid, conn.role,
                                 "disconnect_request")
            )  # fmt: skip
        self._close(conn)

    def _on_drep(self, drep: Drep) -> None:
        conn = self._conns.get(drep.remote_comm_id)
        if conn is None or conn.state is not _DREQ_SENT:
            self.counters["drep_ignored"] += 1
            return
        self._close(conn)

    def _on_conn_timer(self, conn: Connection, now_ns: int) -> None:
        conn.deadline = None
        if conn.state is _CLOSED or self._conns.get(conn.local_comm_id) is not conn:
            return
        resend = conn.resend
        if conn.retries_left > 0 and resend is not None:
            conn.retries_left -= 1
            self._send_cm(resend, conn.resend_kind)
            conn.deadline = now_ns + conn.cm_timeout_ns
            self._sync(conn)
            return
        state = conn.state
        self._close(conn)
        if state is _REQ_SENT:
            stream = conn.stream
            if isinstance(stream, ClientStream) and stream.conn is conn:
                self._attempt_failed(stream, "cm_timeout", now_ns)
        elif state is _REP_SENT:
            self.counters["rep_timeout"] += 1
            rej = Rej(conn.local_comm_id, conn.remote_comm_id, RejectedMessage.OTHER,
                      RejReason.TIMEOUT)  # fmt: skip
            self._send_cm(
                self._mad(CmMad(rej, tid=conn.tid).pack(), conn.remote_lid, conn.remote_gid,
                          conn.sl),
                "cm_rej",
            )  # fmt: skip
        else:
            self.counters["dreq_timeout"] += 1

    # --- connections and QPs -------------------------------------------------------------

    def _close(self, conn: Connection) -> None:
        """Close without a word on the wire: QP to ERROR and forgotten."""
        if conn.state is not _CLOSED:
            conn.transition(_CLOSED)
        qp = conn.qp
        if qp.state is not QpState.ERROR:
            qp.modify(QpState.ERROR)
        if self._by_qpn.get(qp.qpn) is conn:
            del self._by_qpn[qp.qpn]
        if self._conns.get(conn.local_comm_id) is conn:
            del self._conns[conn.local_comm_id]
        key = (conn.remote_gid, conn.service_id)
        if self._server_conns.get(key) is conn:
            del self._server_conns[key]

    def _disconnect(self, conn: Connection, now_ns: int) -> None:
        """ESTABLISHED -> DREQ_SENT: QP to ERROR, DREQ sent and resent until a DREP."""
        conn.transition(_DREQ_SENT)
        qp = conn.qp
        qp.modify(QpState.ERROR)
        if self._by_qpn.get(qp.qpn) is conn:
            del self._by_qpn[qp.qpn]
        key = (conn.remote_gid, conn.service_id)
        if self._server_conns.get(key) is conn:
            del self._server_conns[key]
        tid = self._new_tid()
        conn.tid = tid
        dreq = Dreq(conn.local_comm_id, conn.remote_comm_id, qp.remote_qpn)
        datagram = self._mad(CmMad(dreq, tid=tid).pack(), conn.remote_lid, conn.remote_gid,
                             conn.sl)  # fmt: skip
        self._expect_answer(conn, datagram, "cm_dreq", self.config.max_cm_retries, now_ns)
        self._send_cm(datagram, "cm_dreq")

    @property
    def rng(self) -> random.Random:
        raise NotImplementedError  # GuestAgent's

    def _new_comm_id(self) -> int:
        self.rng  # noqa: B018 (a lazily made rng draws the comm IDs' start first)
        ids = self._ids
        comm_id = ids.comm_id
        while comm_id in self._conns or comm_id == 0:
            comm_id = (comm_id + 1) & 0xFFFFFFFF
        ids.comm_id = (comm_id + 1) & 0xFFFFFFFF
        return comm_id

    def _new_qp(self) -> RcQp:
        ids = self._ids
        qpn = ids.qpn
        while qpn in self._by_qpn or qpn < FIRST_QPN:
            qpn = (qpn + 1) & QPN_MASK
        ids.qpn = (qpn + 1) & QPN_MASK
        qp = RcQp(qpn, self.config.send_queue_depth)
        qp.init(self.port_num, DEFAULT_PKEY)
        return qp


__all__ = ["DEFAULT_PKEY", "FIRST_QPN", "GuestCm"]

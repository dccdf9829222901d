"""Run ibmig's SM (and SA) engines as the subnet manager of an ibsim fabric.

The engines are the same sans-I/O objects the simulator pumps (`ibmig.sim.subnet`);
only the transport differs. One `IbsimClient` attached with issm=1 at a channel
adapter is the SM's port: ibsim answers our SMPs itself, and forwards to us what
arrives at that port for QP0 and QP1 (traps, SMInfo, SA queries from other clients,
ReportResps). Each frame from ibsim becomes a `Datagram` given to the engine of its
management class; each `Datagram` an engine emits becomes a `sim_request` frame.

Time is the host's monotonic clock in nanoseconds, handed to the engines as `now`;
this module (a runtime, like `ibmig.sim`) is where the clock is read.

ibsim specifics handled here:

- a MAD ibsim could not deliver comes straight back with status 110; an SMP of the
  SM's is then expired at once (`SubnetManager.transaction_dropped`) instead of
  waiting out its timeout;
- ibsim has no RMPP: a response leaves as one MAD whose sim_request `length` is the
  meaningful part (SA header plus records), as OpenSM's responses through umad2sim
  do;
- a sim_request has no GRH: a Datagram's GIDs do not travel (requests from
  ibsim never carry any, so the SA never needs to answer with one);
- sends never block (see `client`): frames wait in a local queue while ibsim's
  socket is full, and input is drained meanwhile;
- timers fire with the grace rule of `ibmig.realtime` (a long engine call's SMPs
  leave after their deadlines were computed);
- ibsim dying leaves nothing to notice on a datagram socket that only receives (a
  subnet that is up is quiet): after `liveness_interval_ns` (1 s) without a frame
  from ibsim, a control round trip checks that it is still there, and its failure
  (`IbsimError`, a one-line error) ends the run.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable

from ibmig.core.engine import PERMISSIVE_LID, QP0, Datagram, Engine
from ibmig.core.sm.manager import SubnetManager
from ibmig.errors import WireError
from ibmig.ibsim.client import (
    REQUEST_STRUCT,
    STATUS_DROPPED,
    IbsimClient,
    IbsimError,
    SimRequest,
)
from ibmig.realtime import RealTimeLoop
from ibmig.wire.mad import MAD_SIZE, MgmtClass
from ibmig.wire.smp import MAX_HOP_COUNT, Smp, make_get
from ibmig.wire.smp_attrs import NodeDescription, NodeInfo, NodeType, SmpAttr

_SUBN_LR = MgmtClass.SUBN_LID_ROUTED.value
_SUBN_DR = MgmtClass.SUBN_DIRECTED_ROUTE.value
_SUBN_ADM = MgmtClass.SUBN_ADM.value
_SMP_CLASSES = frozenset((_SUBN_LR, _SUBN_DR))
_SA_HEADER_END = 56  # MAD header, RMPP header, SA header (IBA Vol 1, 15.2.1.1)
_GET_TABLE_RESP = 0x92
_PROBE_TIMEOUT_S = 2.0
_TID_MASK = (1 << 48) - 1  # ibsim writes the client's slot into the top 16 bits


def response_length(payload: bytes) -> int:
    """The bytes of `payload` worth sending as one MAD through ibsim.

    An SA GetTableResp holds `n` records of AttributeOffset * 8 bytes after the SA
    header; OpenSM's answer through umad2sim carries exactly header plus records,
    and saquery counts records from that length. Everything else is a whole MAD.
    """
    if len(payload) >= _SA_HEADER_END and payload[1] == _SUBN_ADM and payload[3] == _GET_TABLE_RESP:
        # RMPP PayloadLength (bytes 32..35) counts SA header + records on the first
        # (only) segment; without RMPP it is 0 and every slot after the header counts.
        paylen = int.from_bytes(payload[32:36], "big")
        if paylen:
            return min(MAD_SIZE, 36 + paylen)
    return len(payload)


class IbsimRuntime(RealTimeLoop):
    """Pumps the SM (and optionally the SA) over an issm client, as one engine: the
    `SmNode` of the client's port."""

    def __init__(
        self,
        client: IbsimClient,
        sm: SubnetManager,
        sa: Engine | None = None,
        *,
        clock: Callable[[], int] = time.monotonic_ns,
        timer_grace_ns: int = 50_000_000,
        timer_overdue_ns: int = 1_000_000_000,
        liveness_interval_ns: int = 1_000_000_000,
    ) -> None:
        self.client = client
        self._init_loop(sm, sa, clock, timer_grace_ns, timer_overdue_ns)
        self.frames_in = 0
        self.frames_out = 0
        self.dropped: Counter[int] = Counter()  # by management class
        self.unclaimed: Counter[int] = Counter()  # frames no engine takes, by class
        self._pending: deque[bytes] = deque()  # packed sim_request frames
        self.liveness_interval_ns = liveness_interval_ns
        self._last_heard_ns = clock()  # a frame from ibsim, or a liveness check

    # --- running --------------------------------------------------------------------

    def _wait_input(self, timeout_s: float) -> bool:
        return self.client.wait(timeout_s)

    def _check_peer(self, now_ns: int) -> None:
        if now_ns - self._last_heard_ns >= self.liveness_interval_ns:
            self.client.check_alive()  # IbsimError once ibsim has gone
            self._last_heard_ns = now_ns

    # --- input ----------------------------------------------------------------------

    def _drain(self) -> None:
        recv = self.client.recv_frame
        unpack = REQUEST_STRUCT.unpack
        size = REQUEST_STRUCT.size
        engine = self.engine
        classes = frozenset(engine.management_classes)
        port = self.port_num
        clock = self.clock
        while True:
            raw = recv()
            if raw is None:
                return
            if len(raw) != size:
                continue  # not a frame of ibsim's
            self.frames_in += 1
            self._last_heard_ns = clock()
            dlid, slid, dqp, sqp, status, _length, mad = unpack(raw)
            mgmt_class = mad[1]
            now = clock()
            self._smps_before = self.sm.smps_sent
            if status == STATUS_DROPPED:
                self.dropped[mgmt_class] += 1
                engine.undeliverable(mad, now)
            elif mgmt_class in classes:
                engine.receive(Datagram(mad, port, slid, dlid, sqp, dqp), now)
            else:
                self.unclaimed[mgmt_class] += 1
            self._collect()
            # Keep ibsim's input moving while we read: it waits for us otherwise.
            if self._pending:
                self._flush()

    # --- output ---------------------------------------------------------------------

    def _collect(self) -> None:
        engine = self.engine
        pending = self._pending
        pack = REQUEST_STRUCT.pack
        for datagram in engine.packets_to_send():
            payload = datagram.payload
            dlid = datagram.dlid
            pending.append(
                pack(
                    dlid,
                    # ibsim routes the answer by the swapped SLID: a DR SMP must carry
                    # the permissive LID there too (as umad2sim does).
                    PERMISSIVE_LID if dlid == PERMISSIVE_LID else datagram.slid,
                    datagram.dqp,
                    datagram.sqp,
                    0,
                    response_length(payload),
                    payload,  # struct pads a short payload with zeros
                )
            )
        self._take_events()

    def _flush(self) -> None:
        pending = self._pending
        if not pending:
            return
        send = self.client.send_frame
        while pending:
            if not send(pending[0]):
                break
            pending.popleft()
            self.frames_out += 1
        self._last_send_ns = self.clock()

    def _next_deadline(self) -> int | None:
        return self.engine.get_timer()


# --- finding where to attach -----------------------------------------------------------


def _dr_get(client: IbsimClient, attribute_id: int, path: tuple[int, ...], tid: int) -> Smp | None:
    """One directed-route SubnGet, answered synchronously (None: dropped/no answer)."""
    smp = make_get(attribute_id, tid=tid, path=path)
    client.send_blocking(SimRequest(PERMISSIVE_LID, PERMISSIVE_LID, QP0, QP0, smp.pack()))
    deadline = time.monotonic() + _PROBE_TIMEOUT_S
    while time.monotonic() < deadline:
        if not client.wait(max(0.0, deadline - time.monotonic())):
            break
        frame = client.recv()
        if frame is None or frame.mad[1] != _SUBN_DR:
            continue
        try:
            answer = Smp.unpack(frame.mad)
        except WireError:
            continue
        if answer.tid & _TID_MASK != tid & _TID_MASK:
            continue
        if frame.dropped or answer.status:
            return None
        return answer
    return None


def find_first_ca(sockname: str | None = None) -> str:
    """The node where ibmig's SM attaches by default: ibsim's default node (the
    first node of the net file) when it is a channel adapter, else the first CA a
    directed-route breadth-first walk from it meets (lowest port first), named by
    its NodeDescription (ibsim attaches clients by node id or NodeDescription).

    The probe is a separate, non-SM client; its few SMPs are not the SM's."""
    with IbsimClient(sockname=sockname) as probe:
        if probe.get_node_info().node_type != NodeType.SWITCH:
            return probe.node
        tid = 1
        seen: set[int] = set()
        frontier: deque[tuple[int, ...]] = deque([()])
        while frontier:
            path = frontier.popleft()
            tid += 1
            reply = _dr_get(probe, SmpAttr.NODE_INFO, path, tid)
            if reply is None:
                continue
            info = NodeInfo.unpack(reply.data)
            if info.node_guid in seen:
                continue
            seen.add(info.node_guid)
            if info.node_type != NodeType.SWITCH:
                tid += 1
                desc = _dr_get(probe, SmpAttr.NODE_DESCRIPTION, path, tid)
                if desc is None:
                    continue
                return NodeDescription.unpack(desc.data).description
            if len(path) < MAX_HOP_COUNT:
                frontier.extend((*path, port) for port in range(1, info.num_ports + 1))
    raise IbsimError("ibsim's fabric has no channel adapter reachable from its default node")

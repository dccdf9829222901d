"""Run ibmig's SM (and SA) engines over a port's umad device.

The engines are the same sans-I/O objects the simulator and the ibsim runtime pump:
one `SmNode` (the SM and SA of the port). This loop reads the host's monotonic clock
and nothing else of the world but the device (`device.UmadPort`, or anything with
its `send`/`wait`/`recv`/`agents`):

- each MAD read becomes a `Datagram` (source LID, QP, SL, Q_Key from the address
  handle; the source GID when a GRH came with it; the destination LID is our port's,
  `local_lid()`) given to the engine; a MAD that comes back with a nonzero status
  (ibsim could not deliver it; a kernel timed it out) goes to `undeliverable()`;
- each `Datagram` the engine emits leaves through the agent registered for its
  management class, addressed by its DLID, QP and Q_Key, with a GRH when it has a
  destination GID; a request with `request_timeout_ms` (see `device`: a kernel
  delivers a response only to a request still waiting for one), a response with 0,
  retries always 0: the engines time out and retry;
- transaction IDs: the MAD layer owns the top of a request's TID (a kernel writes
  its agent's 32-bit hi_tid there, umad2sim the agent id in bits 32-47 and ibsim
  the client slot in bits 48-63) and the answer comes back with it. Engines match
  answers on the TID they sent, so the runtime remembers each request's TID by
  (class, low 32 bits) and puts it back into the answer (or the bounced request);
- without RMPP a response leaves as one MAD of `response_length` bytes (SA header
  plus the records that fit), as OpenSM's do through umad2sim; a kernel pads it to
  256 bytes;
- timers, as in the ibsim runtime (`ibmig.ibsim.runtime`): a call can run longer
  than an SMP timeout and its SMPs leave only when it returns, so a due timer fires
  once nothing was sent for `timer_grace_ns`, or when overdue by
  `timer_overdue_ns` whatever the traffic.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Protocol

from ibmig.core.engine import QP0, QP1, Datagram, Engine
from ibmig.core.sm.manager import SubnetManager
from ibmig.core.sm.node import SA_CLASS, SMP_CLASSES
from ibmig.ibsim.runtime import response_length
from ibmig.realtime import RealTimeLoop
from ibmig.umad.abi import UmadHeader
from ibmig.wire.mad import RESPONSE_BIT, Method
from ibmig.wire.packet import QP1_QKEY

_TRAP_REPRESS = Method.TRAP_REPRESS.value
_LOW32 = 0xFFFF_FFFF
_MAX_REMEMBERED_TIDS = 1 << 16
GRH_HOP_LIMIT = 255

# What the SM and SA receive unsolicited (OpenSM's SM binds SMI as responder and
# trap processor, its SA as responder of the SA methods).
SMI_METHODS = (Method.GET.value, Method.SET.value, Method.TRAP.value)
SA_METHODS = (
    Method.GET.value,
    Method.SET.value,
    Method.GET_TABLE.value,
    Method.GET_TRACE_TABLE.value,
    Method.GET_MULTI.value,
    Method.DELETE.value,
)
SMI_CLASS_VERSION = 1
SA_CLASS_VERSION = 2


class MadTransport(Protocol):
    """What the runtime needs of a umad device (`device.UmadPort`)."""

    agents: dict[int, int]

    def send(self, header: UmadHeader, mad: bytes) -> bool: ...

    def wait(self, timeout_s: float) -> bool: ...

    def recv(self) -> tuple[UmadHeader, bytes] | None: ...


class AgentRegistrar(Protocol):
    def register(
        self, qpn: int, mgmt_class: int, version: int, methods: tuple[int, ...] = ()
    ) -> int: ...


def register_sm_agents(port: AgentRegistrar, with_sa: bool) -> None:
    """Register the SM's SMI agents on QP0 and, with the SA, the SA agent on QP1."""
    for mgmt_class in sorted(SMP_CLASSES):
        port.register(QP0, mgmt_class, SMI_CLASS_VERSION, SMI_METHODS)
    if with_sa:
        port.register(QP1, SA_CLASS, SA_CLASS_VERSION, SA_METHODS)


def is_request(method: int) -> bool:
    """A method that expects an answer routed back by TID (the kernel's
    `ib_response_mad` counts TrapRepress as a response)."""
    return not method & RESPONSE_BIT and method != _TRAP_REPRESS


class UmadRuntime(RealTimeLoop):
    """Pumps the SM (and optionally the SA) over a umad device, as one engine: the
    `SmNode` of the device's port (module docstring)."""

    def __init__(
        self,
        port: MadTransport,
        sm: SubnetManager,
        sa: Engine | None = None,
        *,
        clock: Callable[[], int] = time.monotonic_ns,
        request_timeout_ms: int = 2000,
        timer_grace_ns: int = 50_000_000,
        timer_overdue_ns: int = 1_000_000_000,
        peer_check: Callable[[], None] | None = None,
        peer_check_interval_ns: int = 1_000_000_000,
    ) -> None:
        self.port = port
        # Raises when what is behind the device has gone: a real HCA's port cannot,
        # but ibsim behind libumad2sim can exit, and umad2sim then blocks or retries
        # for ever instead of failing (`ibmig sm --umad` checks ibsim's socket).
        self.peer_check = peer_check
        self.peer_check_interval_ns = peer_check_interval_ns
        self._peer_checked_ns = clock()
        self._init_loop(sm, sa, clock, timer_grace_ns, timer_overdue_ns)
        self.request_timeout_ms = request_timeout_ms
        self.mads_in = 0
        self.mads_out = 0
        self.failed: Counter[int] = Counter()  # MADs back with a nonzero status, by class
        self.no_agent: Counter[int] = Counter()  # outgoing MADs of no registered class
        self._pending: deque[tuple[UmadHeader, bytes]] = deque()
        self._tids: dict[tuple[int, int], int] = {}

    def local_lid(self) -> int:
        """Our port's LID as the SM assigned it (0 before it has)."""
        return self.sm.db.sm_lid

    # --- running --------------------------------------------------------------------

    def _wait_input(self, timeout_s: float) -> bool:
        return self.port.wait(timeout_s)

    def _check_peer(self, now_ns: int) -> None:
        if self.peer_check is not None and (
            now_ns - self._peer_checked_ns >= self.peer_check_interval_ns
        ):
            self._peer_checked_ns = now_ns
            self.peer_check()

    # --- input ----------------------------------------------------------------------

    def _drain(self) -> None:
        engine = self.engine
        recv = self.port.recv
        while (received := recv()) is not None:
            header, mad = received
            self.mads_in += 1
            mgmt_class = mad[1]
            if header.status or not is_request(mad[3]):
                mad = self._restore_tid(mgmt_class, mad)
            now = self.clock()
            self._smps_before = self.sm.smps_sent
            if header.status:
                self.failed[mgmt_class] += 1
                engine.undeliverable(mad, now)
            else:
                engine.receive(
                    Datagram(
                        mad,
                        self.port_num,
                        header.lid,
                        self.local_lid(),
                        header.qpn,
                        QP0 if mgmt_class in SMP_CLASSES else QP1,
                        sl=header.sl,
                        qkey=header.qkey,
                        sgid=header.gid if header.grh_present else None,
                    ),
                    now,
                )
            self._collect()
            if self._pending:
                self._flush()

    def _restore_tid(self, mgmt_class: int, mad: bytes) -> bytes:
        tid = int.from_bytes(mad[8:16], "big")
        sent = self._tids.pop((mgmt_class, tid & _LOW32), None)
        if sent is None or sent == tid:
            return mad
        return mad[:8] + sent.to_bytes(8, "big") + mad[16:]

    # --- output ---------------------------------------------------------------------

    def _collect(self) -> None:
        engine = self.engine
        for datagram in engine.packets_to_send():
            header = self._header(datagram)
            if header is not None:
                self._pending.append(
                    (header, datagram.payload[: response_length(datagram.payload)])
                )
        self._take_events()

    def _header(self, datagram: Datagram) -> UmadHeader | None:
        payload = datagram.payload
        mgmt_class = payload[1]
        agent = self.port.agents.get(mgmt_class)
        if agent is None:
            self.no_agent[mgmt_class] += 1
            return None
        request = is_request(payload[3])
        if request:
            tids = self._tids
            tid = int.from_bytes(payload[8:16], "big")
            tids[(mgmt_class, tid & _LOW32)] = tid
            if len(tids) > _MAX_REMEMBERED_TIDS:  # requests never answered
                del tids[next(iter(tids))]
        qkey = datagram.qkey or (QP1_QKEY if datagram.dqp != QP0 else 0)
        dgid = datagram.dgid
        return UmadHeader(
            agent,
            timeout_ms=self.request_timeout_ms if request else 0,
            qpn=datagram.dqp,
            qkey=qkey,
            lid=datagram.dlid,
            sl=datagram.sl,
            grh_present=dgid is not None,
            hop_limit=GRH_HOP_LIMIT if dgid is not None else 0,
            gid=dgid if dgid is not None else bytes(16),
        )

    def _flush(self) -> None:
        pending = self._pending
        if not pending:
            return
        send = self.port.send
        while pending:
            header, mad = pending[0]
            if not send(header, mad):
                break
            pending.popleft()
            self.mads_out += 1
        self._last_send_ns = self.clock()

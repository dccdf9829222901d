"""What every protocol engine in `ibmig.core` looks like from the outside.

An engine is sans-I/O (`../shared/design.md`, "The engine contract"): its inputs are
API calls, `receive(datagram, now_ns)` and `handle_timer(now_ns)`; its outputs are
`packets_to_send()`, `get_timer()` and `next_event()`. Time only arrives as an
argument and randomness as a `random.Random` given to the constructor, so the same
engine runs in the simulator, against ibsim, and under a hand-driven clock in tests.

A `Datagram` is a MAD (or any UD payload) together with the addressing that the
LRH, BTH and DETH would carry; the runtimes frame it into a full packet when they
need one (captures, ibsim).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Container
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

PERMISSIVE_LID = 0xFFFF
QP0 = 0
QP1 = 1


class Datagram(NamedTuple):
    """One UD datagram in flight between two ports.

    `port` is the local port number: the one it leaves by in `packets_to_send()`, the
    one it arrived on in `receive()`. Directed-route SMPs carry `dlid` 0xFFFF (the
    permissive LID) and find their way by the SMP's own path. `qkey` is the DETH
    Q_Key (0 for QP0, 0x80010000 for QP1 when left 0).
    """

    payload: bytes
    port: int
    slid: int
    dlid: int
    sqp: int
    dqp: int
    sl: int = 0
    pkey: int = 0xFFFF
    qkey: int = 0
    # GRH addresses, when the datagram carries one. In the shared-port SR-IOV model
    # all VFs of a port share its LID, so MADs to and from a VM carry its GID (prefix
    # || vGUID) and the HCA demultiplexes them by DGID.
    sgid: bytes | None = None
    dgid: bytes | None = None
    # BTH fields of the data plane (RC and UD traffic between guests): OpCode (IBA Vol 1,
    # 9.2: 0x64 UD SEND only, 0x04 RC SEND only, 0x11 RC Acknowledge) and PSN.
    opcode: int = 0x64
    psn: int = 0


class Engine(Protocol):
    # Which event types to record (None: all): observers that want a few kinds spare
    # the engine building the rest. `EventLog` provides it.
    event_filter: Container[type] | None

    def receive(self, datagram: Datagram, now_ns: int) -> None: ...

    def handle_timer(self, now_ns: int) -> None: ...

    def packets_to_send(self) -> list[Datagram]: ...

    def get_timer(self) -> int | None: ...

    def next_event(self) -> Any | None: ...


class MadAgent(Protocol):
    """What an engine that keeps request timeouts the way the kernel MAD layer does
    takes from a runtime that queues MADs (optional: an engine without these
    methods is pumped all the same).

    Linux's MAD layer (drivers/infiniband/core/mad.c) starts a request's response
    timeout when its send completes, not when the client hands it over, and matches
    a response to its request by TID as it is received, in kernel context, before
    the client reads it. A runtime in which an engine is a server with a queue of
    work (the simulator with contention) knows both moments and the engine does
    not: it calls `mad_departed` with when each request the engine emitted leaves
    the port (when it computes it: no event per MAD), and `response_arrived` when a
    response to one of the engine's requests reaches the port, before the engine's
    turn to `receive` it. A runtime that sends at once and delivers at once need
    not call either: departure is the emitting step, arrival is `receive`.
    """

    def mad_departed(self, datagram: Datagram, departure_ns: int) -> None: ...

    def response_arrived(self, datagram: Datagram, now_ns: int) -> None: ...


EventT = TypeVar("EventT")


class EventLog(Generic[EventT]):
    """The `next_event()` side of the contract, for engines that queue typed events.

    `record_events` False records nothing. `event_filter`, when set, records only
    events of those types: an observer that wants a few kinds spares the engine
    building the rest (at data-centre scale the SA and every dom0 make several per
    Report). Hot paths ask `_wants(type)` before building an event at all.
    """

    record_events: bool
    event_filter: Container[type] | None
    _events: deque[EventT] | None
    # None while no event waits: an empty deque is 600 bytes, and a large run's
    # engines (hundreds of thousands of guests) hold none most of the time.

    def _init_event_log(self, record_events: bool) -> None:
        self.record_events = record_events
        self.event_filter = None
        self._events = None

    def next_event(self) -> EventT | None:
        events = self._events
        if not events:
            return None
        event = events.popleft()
        if not events:
            self._events = None
        return event

    def _wants(self, event_type: type) -> bool:
        wanted = self.event_filter
        return self.record_events and (wanted is None or event_type in wanted)

    def _emit(self, event: EventT) -> None:
        if self._wants(event.__class__):
            self._record(event)

    def _record(self, event: EventT) -> None:
        """Queue `event` (a hot path that asked `_wants` itself)."""
        if self._events is None:
            self._events = deque()
        self._events.append(event)

"""The SM and SA of one port, seen from outside as one engine.

OpenSM's subnet manager and subnet administrator live in one process behind one
port, and each calls the other directly: the SM tells the SA of ports, traps and
sweeps (`SmListener`); the SA has the SM write GUIDInfo blocks. Whatever one call
makes either of them send has to leave together, so a runtime must not pump them as
two engines (it would have to know which of its engines are the SM and the SA).
`SmNode` is the one engine it attaches instead:

- `receive()` dispatches by management class: SMPs (0x01, 0x81) to the SM, SA MADs
  (0x03) to the SA; anything else is counted in `unclaimed`;
- `packets_to_send()` collects both engines' output, starting with the engine that
  was just called and alternating until neither has anything (an SA Set can make the
  SM send a GUIDInfo SMP whose answer the SA waits on, and so on);
- `get_timer()` is the earlier of the two deadlines and `handle_timer()` runs
  whichever is due, as aioquic's `QuicConnection.get_timer()` merges its subsystems';
- `next_event()` gives both engines' events in the order their outputs were taken.

Runtimes that charge a processing time per datagram tell SMPs from SA MADs by their
management class (`processing_classes`).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Container
from typing import Any

from ibmig.core.engine import Datagram, Engine
from ibmig.core.sm.manager import SubnetManager
from ibmig.wire.mad import MgmtClass

SMP_CLASSES = frozenset((MgmtClass.SUBN_LID_ROUTED.value, MgmtClass.SUBN_DIRECTED_ROUTE.value))
SA_CLASS = MgmtClass.SUBN_ADM.value


class SmNode:
    """The SM and (optionally) the SA of one port as one engine (module docstring)."""

    def __init__(self, sm: SubnetManager, sa: Engine | None = None) -> None:
        self.sm = sm
        self.port_num = sm.port_num
        self.unclaimed: Counter[int] = Counter()  # MADs of no class of ours, by class
        self._events: deque[Any] = deque()
        self._sm_first = True  # whose output is taken first: the engine last called
        # A Report round trip makes a dozen calls through here (`packets_to_send`,
        # `next_event`, `get_timer` per MAD): the engines' methods are bound once,
        # here and when the SA is replaced (`sa`).
        self._sm_packets = sm.packets_to_send
        self._sm_next_event = sm.next_event
        self._sm_timer = sm.get_timer
        self.sa = sa

    @property
    def sa(self) -> Engine | None:
        return self._sa

    @sa.setter
    def sa(self, sa: Engine | None) -> None:
        """A runtime may replace the SA (`VirtualizedSubnet.restart_sa`)."""
        self._sa = sa
        self._sa_packets: Callable[[], list[Datagram]] | None = None
        self._sa_next_event: Callable[[], Any] | None = None
        self._sa_timer: Callable[[], int | None] | None = None
        self._event_sources: tuple[Callable[[], Any], ...] = (self._sm_next_event,)
        if sa is not None:
            self._sa_packets = sa.packets_to_send
            self._sa_next_event = sa.next_event
            self._sa_timer = sa.get_timer
            self._event_sources = (self._sm_next_event, sa.next_event)
        # The SA's `MadAgent` side, if it has one (an SA stand-in in a test may not):
        # the new SA's, so that its Reports' timeouts count from their departures.
        self._sa_departed: Callable[[Datagram, int], None] | None = getattr(
            sa, "mad_departed", None
        )
        self._sa_arrived: Callable[[Datagram, int], None] | None = getattr(
            sa, "response_arrived", None
        )

    @property
    def event_filter(self) -> Container[type] | None:
        return self.sm.event_filter

    @event_filter.setter
    def event_filter(self, wanted: Container[type] | None) -> None:
        self.sm.event_filter = wanted
        if self.sa is not None:
            self.sa.event_filter = wanted

    @property
    def management_classes(self) -> tuple[int, ...]:
        """The classes this node answers on QP0 and QP1."""
        smp = tuple(sorted(SMP_CLASSES))
        return smp if self.sa is None else (*smp, SA_CLASS)

    # --- inputs -----------------------------------------------------------------------

    def start_sweep(self, now_ns: int) -> None:
        self._sm_first = True
        self.sm.start_sweep(now_ns)

    def local_port_changed(self, now_ns: int) -> None:
        """The port this node's SM sits on changed state (a port event of its HCA)."""
        self._sm_first = True
        self.sm.local_port_changed(now_ns)

    def receive(self, datagram: Datagram, now_ns: int) -> None:
        mgmt_class = datagram.payload[1]
        if mgmt_class in SMP_CLASSES:
            self._sm_first = True
            self.sm.receive(datagram, now_ns)
        elif mgmt_class == SA_CLASS and self._sa is not None:
            self._sm_first = False
            self._sa.receive(datagram, now_ns)
        else:
            self.unclaimed[mgmt_class] += 1

    def mad_departed(self, datagram: Datagram, departure_ns: int) -> None:
        """`ibmig.core.engine.MadAgent`: the SA keeps its Reports' timeouts as the
        kernel does (`ibmig.core.sa.admin`); the SM's SMP transactions are its own."""
        departed = self._sa_departed
        if departed is not None and datagram.payload[1] == SA_CLASS:
            departed(datagram, departure_ns)

    def response_arrived(self, datagram: Datagram, now_ns: int) -> None:
        """`ibmig.core.engine.MadAgent`, as `mad_departed`."""
        arrived = self._sa_arrived
        if arrived is not None and datagram.payload[1] == SA_CLASS:
            arrived(datagram, now_ns)

    def undeliverable(self, payload: bytes, now_ns: int) -> None:
        """The transport says a MAD we sent cannot be delivered (ibsim returns it at
        once with status 110): an SMP request of the SM's is expired now rather than
        at its deadline. Anything else waits for its own timeout."""
        if payload[1] in SMP_CLASSES and not payload[3] & 0x80:
            self._sm_first = True
            self.sm.transaction_dropped(int.from_bytes(payload[8:16], "big"), now_ns)

    def handle_timer(self, now_ns: int) -> None:
        sm_due = (deadline := self.sm.get_timer()) is not None and deadline <= now_ns
        sa = self._sa
        sa_due = sa is not None and (deadline := sa.get_timer()) is not None and deadline <= now_ns
        self._sm_first = sm_due or not sa_due
        if sm_due:
            self.sm.handle_timer(now_ns)
        if sa is not None and sa_due:
            sa.handle_timer(now_ns)

    # --- outputs ----------------------------------------------------------------------

    def packets_to_send(self) -> list[Datagram]:
        take = self._take
        sm_packets, sm_events = self._sm_packets, self._sm_next_event
        sa_packets, sa_events = self._sa_packets, self._sa_next_event
        out: list[Datagram] = []
        if sa_packets is None or sa_events is None:
            take(sm_packets, sm_events, out)
            return out
        sm_first = self._sm_first
        if sm_first:
            take(sm_packets, sm_events, out)
        sa_sent = take(sa_packets, sa_events, out)
        # What the SA asked of the SM (a GUIDInfo write) goes out now, and what that
        # made the SA send, until neither has more. The SM taken just before with
        # nothing from the SA since has nothing more: taking the SA's output calls
        # nothing of the SM's (every answer to an SMP of a bring-up, the common case,
        # is spared a second take of the SM's).
        if sm_first and not sa_sent:
            return out
        while take(sm_packets, sm_events, out):
            take(sa_packets, sa_events, out)
        return out

    def get_timer(self) -> int | None:
        deadline = self._sm_timer()
        sa_timer = self._sa_timer
        if sa_timer is not None:
            other = sa_timer()
            if other is not None and (deadline is None or other < deadline):
                return other
        return deadline

    def next_event(self) -> Any | None:
        events = self._events
        if not events:
            # Events made outside `packets_to_send` (an API call's) are taken here.
            # A runtime asks once more after the last event of every MAD's step.
            for next_event in self._event_sources:
                while (event := next_event()) is not None:
                    events.append(event)
        return events.popleft() if events else None

    def _take(
        self,
        packets_to_send: Callable[[], list[Datagram]],
        next_event: Callable[[], Any],
        out: list[Datagram],
    ) -> bool:
        batch = packets_to_send()
        out += batch
        events = self._events
        while (event := next_event()) is not None:
            events.append(event)
        return bool(batch)

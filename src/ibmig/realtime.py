"""The loop the real-clock runtimes share (`ibmig.ibsim`, `ibmig.umad`).

Both pump one `SmNode` (the SM and SA of a port) over a transport that someone else
delivers MADs through, on the host's monotonic clock: send what is queued, wait for
input or the engine's next deadline, hand it what arrived, run its due timer. What
differs is the transport: how to wait for input (`_wait_input`), take it
(`_drain`), turn the engine's output into frames (`_collect`) and send them
(`_flush`), and whether the peer must be checked for life (`_check_peer`).

Engines compute a request's deadline from the `now` of the call that issued it, but
on a real clock a call can run long (the SM's ARM phase on ft3-1296 builds thousands
of PortInfo Sets in one call, for longer than the 200 ms SMP timeout), and its first
SMPs leave only when it returns: their deadlines have passed before they are sent. So
a timer fires only once nothing has been sent for `timer_grace_ns` (50 ms: answers to
what just left have had time to arrive), or when it is overdue by `timer_overdue_ns`
(1 s) whatever the traffic, so that a lost MAD is retried even while others flow.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sized
from typing import Any

from ibmig.core.engine import Engine
from ibmig.core.sm.manager import SubnetManager, SubnetUp, SweepStarted
from ibmig.core.sm.node import SmNode

EventHook = Callable[[Any], None]
"""Called with every event of the engine a runtime pumps."""

IDLE_WAIT_S = 0.1
"""How long one step waits for input when no timer is due sooner."""


class RealTimeLoop:
    """`start`, `step` and the `run_until*` calls of a real-clock runtime (module
    docstring); subclasses provide the transport hooks."""

    _pending: Sized

    def _init_loop(
        self,
        sm: SubnetManager,
        sa: Engine | None,
        clock: Callable[[], int],
        timer_grace_ns: int,
        timer_overdue_ns: int,
    ) -> None:
        self.sm = sm
        self.engine = SmNode(sm, sa)
        self.clock = clock
        self.port_num = sm.port_num
        self.timer_grace_ns = timer_grace_ns
        self.timer_overdue_ns = timer_overdue_ns
        self.event_hooks: list[EventHook] = []
        self.subnet_up_events: list[SubnetUp] = []
        self.sweep_start_smps = 0
        """`sm.smps_sent` when the current (or last) sweep started: SubnetUp.smps_sent
        minus this is what that sweep cost."""
        self._smps_before = 0
        """`sm.smps_sent` before the engine call being collected (a sweep's first SMPs
        leave before its SweepStarted event is seen)."""
        self._last_send_ns = 0

    def now(self) -> int:
        return self.clock()

    def start(self) -> None:
        """Start the SM's first (heavy) sweep."""
        self._smps_before = self.sm.smps_sent
        self.engine.start_sweep(self.now())
        self._collect()

    def run_until(self, done: Callable[[], bool], timeout_s: float | None = None) -> bool:
        """Pump until `done()` is true (True) or `timeout_s` passes (False)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not done():
            wait = IDLE_WAIT_S
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                wait = min(wait, left)
            self.step(wait)
        return True

    def run_until_up(self, timeout_s: float | None = None) -> SubnetUp | None:
        """Pump until the next SUBNET UP (returned) or the timeout (None)."""
        return self.run_until_up_or(lambda: False, timeout_s)

    def run_until_up_or(
        self, stop: Callable[[], bool], timeout_s: float | None = None
    ) -> SubnetUp | None:
        """Pump until the next SUBNET UP (returned), `stop()`, or the timeout (None)."""
        count = len(self.subnet_up_events)
        self.run_until(lambda: len(self.subnet_up_events) > count or stop(), timeout_s)
        return self.subnet_up_events[-1] if len(self.subnet_up_events) > count else None

    def step(self, max_wait_s: float) -> None:
        """Send what is queued, wait for input or the next timer (at most
        `max_wait_s`), hand what arrived and a due timer to the engine."""
        self._flush()
        wait = max_wait_s
        deadline = self.engine.get_timer()
        if deadline is not None:
            due = max(deadline, self._last_send_ns + self.timer_grace_ns)
            wait = max(0.0, min(wait, (due - self.now()) / 1e9))
        if self._pending:
            wait = min(wait, 0.001)
        if self._wait_input(wait):
            self._drain()
        now = self.now()
        self._check_peer(now)
        quiet = now - self._last_send_ns >= self.timer_grace_ns
        timer = self.engine.get_timer()
        if timer is not None and timer <= now and (quiet or now - timer >= self.timer_overdue_ns):
            self._smps_before = self.sm.smps_sent
            self.engine.handle_timer(now)
        self._collect()
        self._flush()

    def _take_events(self) -> None:
        """Hand the engine's events to the hooks, keeping SUBNET UPs and where the
        current sweep's SMP count began."""
        engine = self.engine
        while (event := engine.next_event()) is not None:
            if isinstance(event, SubnetUp):
                self.subnet_up_events.append(event)
            elif isinstance(event, SweepStarted):
                # An SM call that starts a sweep sends its first SMPs before we
                # see the event: count from the moment the call began.
                self.sweep_start_smps = self._smps_before
            for hook in self.event_hooks:
                hook(event)

    # --- the transport ----------------------------------------------------------------

    def _wait_input(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for input; whether some is there."""
        raise NotImplementedError

    def _drain(self) -> None:
        """Hand every waiting MAD to the engine."""
        raise NotImplementedError

    def _collect(self) -> None:
        """Turn the engine's output into frames waiting to be sent, and its events
        into hooks' calls."""
        raise NotImplementedError

    def _flush(self) -> None:
        """Send what waits, as far as the transport takes it."""
        raise NotImplementedError

    def _check_peer(self, now_ns: int) -> None:
        """Raise when the other side has gone (nothing to check by default)."""

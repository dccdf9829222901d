"""The discrete-event kernel: a heap of timed callbacks.

Time is an integer number of nanoseconds, so that no floating-point rounding can
reorder events between runs. The heap key is (time, priority, sequence): events at
the same instant run by priority (lower first) and then in the order they were
scheduled, which makes every run with the same inputs replay the same order.

Heap entries are plain tuples, the cheapest thing to build and compare; the unique
sequence number ends every comparison before it reaches the callback. Most events
(packet deliveries) are never cancelled, so `schedule` returns nothing; timers that
may be cancelled go through `start_timer`, whose handle blanks itself and is skipped
when it fires (lazy deletion: cancelling is O(1)).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

Callback = Callable[[Any], None]


class Timer:
    """A cancellable event; `cancel()` before it fires and it never runs."""

    __slots__ = ("callback", "arg", "time_ns")

    def __init__(self, time_ns: int, callback: Callback | None, arg: Any) -> None:
        self.time_ns = time_ns
        self.callback = callback
        self.arg = arg

    @property
    def cancelled(self) -> bool:
        return self.callback is None

    def cancel(self) -> None:
        self.callback = None
        self.arg = None

    def _fire(self, _: object) -> None:
        callback = self.callback
        if callback is not None:
            self.callback = None
            callback(self.arg)


class EventKernel:
    """Runs callbacks in (time, priority, sequence) order."""

    __slots__ = ("_heap", "_seq", "now_ns", "events_run")

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, int, Callback, Any]] = []
        self._seq = 0
        self.now_ns = 0
        self.events_run = 0

    def schedule(
        self, delay_ns: int, callback: Callback, arg: Any = None, priority: int = 0
    ) -> None:
        """Run `callback(arg)` `delay_ns` from now."""
        if delay_ns < 0:
            raise ValueError(f"cannot schedule into the past (delay {delay_ns} ns)")
        self._seq = seq = self._seq + 1
        heapq.heappush(self._heap, (self.now_ns + delay_ns, priority, seq, callback, arg))

    def start_timer(
        self, delay_ns: int, callback: Callback, arg: Any = None, priority: int = 0
    ) -> Timer:
        """Like `schedule`, but returns a `Timer` that can be cancelled."""
        timer = Timer(self.now_ns + delay_ns, callback, arg)
        self.schedule(delay_ns, timer._fire, None, priority)
        return timer

    @property
    def pending(self) -> int:
        """Events in the heap, cancelled timers included."""
        return len(self._heap)

    def peek_ns(self) -> int | None:
        """Time of the next event (possibly a cancelled timer), or None when idle."""
        return self._heap[0][0] if self._heap else None

    def run(self, until_ns: int | None = None, max_events: int | None = None) -> int:
        """Run events until the heap is empty, time passes `until_ns`, or `max_events` ran.

        Returns the number of events run (cancelled timers included). When stopped by
        `until_ns`, `now_ns` becomes `until_ns` so that a later `schedule` counts from there.
        """
        heap = self._heap
        pop = heapq.heappop
        ran = 0
        if until_ns is None and max_events is None:
            while heap:
                time_ns, _, _, callback, arg = pop(heap)
                self.now_ns = time_ns
                callback(arg)
                ran += 1
        else:
            limit = -1 if max_events is None else max_events
            horizon = until_ns
            while heap and ran != limit:
                if horizon is not None and heap[0][0] > horizon:
                    break
                time_ns, _, _, callback, arg = pop(heap)
                self.now_ns = time_ns
                callback(arg)
                ran += 1
            if horizon is not None and ran != limit and self.now_ns < horizon:
                self.now_ns = horizon
        self.events_run += ran
        return ran

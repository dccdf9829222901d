"""The discrete-event kernel: a heap of timed callbacks.

Time is an integer number of nanoseconds, so that no floating-point rounding can
reorder events between runs. The heap key is (time, priority, sequence): events at
the same instant run by priority (lower first) and then in the order they were
scheduled, which makes every run with the same inputs replay the same order.

Heap entries are plain tuples (key, callback, arg), the cheapest thing to build and
compare. The key packs (time, priority, sequence) into one integer, time in the
high bits: unique, so every comparison ends at it, and one integer comparison
instead of up to three. It matters when thousands of packets arrive at the same
instant (an SA's Reports to every host), where tuple keys compared time, then
priority, then sequence: heap operations took 1.6 times as long. Most events
(packet deliveries) are never cancelled, so `schedule` returns nothing; timers that
may be cancelled go through `start_timer`, whose handle blanks itself and is skipped
when it fires (lazy deletion: cancelling is O(1)).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

Callback = Callable[[Any], None]

_SEQ_BITS = 64  # sequence numbers: far more events than any run schedules
_MAX_PRIORITY = 0xFF
_TIME_SHIFT = _SEQ_BITS + 8  # time above the priority byte
_COMPACT_AT_LEAST = 4096  # cancelled timers below this are not worth a heap rebuild


class Timer:
    """A cancellable event; `cancel()` before it fires and it never runs."""

    __slots__ = ("callback", "arg", "time_ns", "_kernel", "_key", "_moved")

    def __init__(
        self,
        time_ns: int,
        callback: Callback | None,
        arg: Any,
        kernel: EventKernel | None = None,
    ) -> None:
        self.time_ns = time_ns
        self.callback = callback
        self.arg = arg
        self._kernel = kernel
        self._key = 0  # its heap key, once started
        self._moved = False  # its heap entry is earlier than `_key` (`move_later`)

    @property
    def cancelled(self) -> bool:
        return self.callback is None

    def cancel(self) -> None:
        if self.callback is None:
            return  # fired or cancelled already
        self.callback = None
        self.arg = None
        if self._kernel is not None:
            self._kernel._timer_cancelled()


def _fire_timer(timer: Timer) -> None:
    callback = timer.callback
    if callback is None:
        if timer._kernel is not None:
            timer._kernel._cancelled -= 1  # a cancelled entry leaves the heap
        return
    if timer._moved:
        # Its entry was left in the heap when it moved later: it goes back in under
        # the key it was given then, so it runs where a new timer would have.
        timer._moved = False
        kernel = timer._kernel
        assert kernel is not None  # only a started timer moves
        heapq.heappush(kernel._heap, (timer._key, _fire_timer, timer))
        return
    timer.callback = None
    callback(timer.arg)


class EventKernel:
    """Runs callbacks in (time, priority, sequence) order."""

    __slots__ = ("_heap", "_seq", "_cancelled", "_stop", "_beyond", "now_ns", "events_run")

    def __init__(self) -> None:
        self._heap: list[tuple[int, Callback, Any]] = []
        self._seq = 0
        self._cancelled = 0  # cancelled timers still in the heap
        self.now_ns = 0
        self.events_run = 0
        self._stop = False
        self._beyond: int | None = None  # the running `run`'s bound, as a key

    def schedule(
        self, delay_ns: int, callback: Callback, arg: Any = None, priority: int = 0
    ) -> None:
        """Run `callback(arg)` `delay_ns` from now; among events at the same time,
        lower `priority` (0..255) first, then in the order scheduled."""
        if delay_ns < 0:
            raise ValueError(f"cannot schedule into the past (delay {delay_ns} ns)")
        self._seq = seq = self._seq + 1
        key = ((self.now_ns + delay_ns) << _TIME_SHIFT) | seq
        if priority:
            if not 0 <= priority <= _MAX_PRIORITY:
                raise ValueError(f"priority {priority} is not in 0..{_MAX_PRIORITY}")
            key |= priority << _SEQ_BITS
        heapq.heappush(self._heap, (key, callback, arg))

    def schedule_all(
        self, delays_ns: Sequence[int], callback: Callback, args: Sequence[Any]
    ) -> None:
        """`schedule(delays_ns[i], callback, args[i])` for each i in order, with
        the keys those calls would give; the events wait in a sorted run of their
        own, which stands in the heap by its first only. An SA's Reports to every
        subscriber are delivered so: with tens of thousands in the heap at once,
        every other event's push and pop went some fifteen levels deep."""
        if not delays_ns:
            return
        if min(delays_ns) < 0:
            raise ValueError(f"cannot schedule into the past (delay {min(delays_ns)} ns)")
        now, seq = self.now_ns, self._seq
        run = deque(
            sorted(
                zip(
                    [
                        ((now + delay) << _TIME_SHIFT) | (seq + i)
                        for i, delay in enumerate(delays_ns, 1)
                    ],
                    args,
                    strict=True,
                )
            )
        )
        self._seq = seq + len(delays_ns)
        heapq.heappush(self._heap, (run[0][0], self._next_of_run, (run, callback)))

    def _next_of_run(self, arg: tuple[deque[tuple[int, Any]], Callback]) -> None:
        """The event of a run (`schedule_all`) whose key came up: its successor
        stands in the heap in its place before it runs."""
        run, callback = arg
        _, event_arg = run.popleft()
        if run:
            heapq.heappush(self._heap, (run[0][0], self._next_of_run, arg))
        callback(event_arg)

    def start_timer(
        self, delay_ns: int, callback: Callback, arg: Any = None, priority: int = 0
    ) -> Timer:
        """Like `schedule`, but returns a `Timer` that can be cancelled."""
        timer = Timer(self.now_ns + delay_ns, callback, arg, self)
        self.schedule(delay_ns, _fire_timer, timer, priority)
        # The key `schedule` gave it (`move_later` keeps its priority).
        timer._key = ((self.now_ns + delay_ns) << _TIME_SHIFT) | (priority << _SEQ_BITS) | self._seq
        return timer

    def move_later(self, timer: Timer, time_ns: int) -> None:
        """Make started `timer` fire at `time_ns`, later than it would, exactly as
        if it were cancelled and a new one started now (same key, same order among
        events at that instant), without a second heap entry: its entry stays and
        is put back under the new key when its old time comes. An engine whose
        earliest deadline moves later with every answer (an SM's oldest SMP, an
        SA's oldest Report) would otherwise leave a dead entry per answer."""
        if timer.callback is None or time_ns < timer.time_ns:
            raise ValueError(f"a timer can only move later (from {timer.time_ns} to {time_ns})")
        self._seq = seq = self._seq + 1
        priority = timer._key & (_MAX_PRIORITY << _SEQ_BITS)
        timer._key = (time_ns << _TIME_SHIFT) | priority | seq
        timer.time_ns = time_ns
        timer._moved = True

    def _timer_cancelled(self) -> None:
        """Lazy deletion leaves cancelled timers in the heap until their time. An
        engine re-arming its timer on every answer it gets leaves one behind each
        time: after 51,840 VMs registered their GUIDs (3,240 hosts), 67,719 dead
        entries were still in the heap when the migrations began, deepening every
        push and pop. When they are the majority, they are dropped at once (the
        order of the others is untouched: their keys are unique)."""
        self._cancelled += 1
        heap = self._heap
        if self._cancelled > _COMPACT_AT_LEAST and self._cancelled * 2 > len(heap):
            heap[:] = [
                entry
                for entry in heap
                if entry[1] is not _fire_timer or entry[2].callback is not None
            ]
            heapq.heapify(heap)
            self._cancelled = 0

    @property
    def pending(self) -> int:
        """Events in the heap, cancelled timers not yet dropped included."""
        return len(self._heap)

    def stop(self) -> None:
        """End a `run` bounded by `until_ns` or `max_events` after the current event
        (an observer saw what it waited for)."""
        self._stop = True

    def advance_to(self, time_ns: int) -> bool:
        """Move the clock to `time_ns` from within a callback, if that is what the
        heap would do next anyway: no event is due at or before `time_ns` (nor
        past the running `run`'s `until_ns`), and nobody asked to stop. Then work
        the caller would have scheduled for `time_ns` can be done now instead of
        through the heap, in the same order and at the same simulated time (an
        engine's queue serving MADs back to back: `ibmig.sim.subnet`). False:
        schedule it."""
        if self._stop or time_ns < self.now_ns:
            return False
        key = (time_ns + 1) << _TIME_SHIFT
        heap = self._heap
        if heap and heap[0][0] < key:
            return False
        beyond = self._beyond
        if beyond is not None and key > beyond:
            return False
        self.now_ns = time_ns
        return True

    def peek_ns(self) -> int | None:
        """Time of the next event (possibly a cancelled timer), or None when idle."""
        return self._heap[0][0] >> _TIME_SHIFT if self._heap else None

    def run(self, until_ns: int | None = None, max_events: int | None = None) -> int:
        """Run events until the heap is empty, time passes `until_ns`, or `max_events` ran.

        Returns the number of events run (cancelled timers included). When stopped by
        `until_ns`, `now_ns` becomes `until_ns` so that a later `schedule` counts from there.
        """
        heap = self._heap
        pop = heapq.heappop
        ran = 0
        shift = _TIME_SHIFT
        if until_ns is None and max_events is None:
            self._beyond = None
            while heap:
                key, callback, arg = pop(heap)
                self.now_ns = key >> shift
                callback(arg)
                ran += 1
        else:
            limit = -1 if max_events is None else max_events
            # Keys of events at until_ns or earlier are below this one.
            beyond = None if until_ns is None else (until_ns + 1) << shift
            self._beyond = beyond
            self._stop = False
            while heap and ran != limit:
                if beyond is not None and heap[0][0] >= beyond:
                    break
                if self._stop:
                    break
                key, callback, arg = pop(heap)
                self.now_ns = key >> shift
                callback(arg)
                ran += 1
            if until_ns is not None and ran != limit and not self._stop and self.now_ns < until_ns:
                self.now_ns = until_ns
        self.events_run += ran
        return ran

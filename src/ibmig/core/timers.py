"""One timer primitive for every engine: keyed deadlines with lazy deletion.

An engine arms a deadline per key (a transaction ID, a connection, a trap), re-arms
it to move it, cancels it when the work is done, asks for the earliest live deadline
(`next_deadline()`, which is its `get_timer()`), and in `handle_timer(now)` takes the
due keys one at a time with `pop_due(now)`. Keys come out in deadline order, ties in
the order they were armed, so an engine's timer behaviour is deterministic.

Moving or cancelling a deadline leaves the old heap entry behind (lazy deletion: a
heap cannot remove from its middle cheaply); `next_deadline()` and `pop_due()` skip
such entries. At data-centre scale thousands of timers are cancelled for each one
that fires (every answered transaction), so when dead entries outnumber live ones
the heap is rebuilt from the live ones.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

_COMPACT_MIN = 64  # below this many heap entries, rebuilding is not worth it


class Timers(Generic[K]):
    """Deadlines in nanoseconds, at most one per key (module docstring)."""

    __slots__ = ("_heap", "_live", "_seq")

    def __init__(self) -> None:
        # (deadline_ns, sequence, key): the sequence orders ties and makes every
        # entry unique, so keys themselves are never compared.
        self._heap: list[tuple[int, int, K]] = []
        self._live: dict[K, tuple[int, int]] = {}
        self._seq = 0

    def arm(self, key: K, deadline_ns: int) -> None:
        """Set (or move) the deadline of `key`."""
        self._seq += 1
        entry = (deadline_ns, self._seq)
        self._live[key] = entry
        heapq.heappush(self._heap, (deadline_ns, self._seq, key))
        if len(self._heap) > _COMPACT_MIN and len(self._heap) > 2 * len(self._live):
            self._compact()

    def cancel(self, key: K) -> bool:
        """Forget the deadline of `key`; whether it had one."""
        return self._live.pop(key, None) is not None

    def clear(self) -> None:
        self._heap.clear()
        self._live.clear()

    def deadline(self, key: K) -> int | None:
        entry = self._live.get(key)
        return None if entry is None else entry[0]

    def next_deadline(self) -> int | None:
        """The earliest live deadline, or None when nothing is armed."""
        heap = self._heap
        live = self._live
        while heap:
            deadline, seq, key = heap[0]
            if live.get(key) == (deadline, seq):
                return deadline
            heapq.heappop(heap)
        return None

    def peek(self) -> tuple[int, K] | None:
        """The earliest live (deadline, key), left armed; None when nothing is armed.
        For an engine that must look at the key before deciding to fire it (the
        guest moves deadlines later lazily: `ibmig.core.guest.agent`)."""
        heap = self._heap
        live = self._live
        while heap:
            deadline, seq, key = heap[0]
            if live.get(key) == (deadline, seq):
                return deadline, key
            heapq.heappop(heap)
        return None

    def pop_due(self, now_ns: int) -> K | None:
        """The key with the earliest deadline at or before `now_ns`, disarmed; None
        when no deadline is due. Keys armed while handling a due one are seen by
        the next call, so a loop over `pop_due` also runs what became due meanwhile."""
        heap = self._heap
        live = self._live
        while heap:
            deadline, seq, key = heap[0]
            if live.get(key) != (deadline, seq):
                heapq.heappop(heap)
                continue
            if deadline > now_ns:
                return None
            heapq.heappop(heap)
            del live[key]
            return key
        return None

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, key: object) -> bool:
        return key in self._live

    def __iter__(self) -> Iterator[K]:
        return iter(list(self._live))

    def _compact(self) -> None:
        self._heap = [(d, s, k) for k, (d, s) in self._live.items()]
        heapq.heapify(self._heap)

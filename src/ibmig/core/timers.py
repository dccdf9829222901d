"""One timer primitive for every engine: keyed deadlines with lazy deletion.

An engine arms a deadline per key (a transaction ID, a connection, a trap), re-arms
it to move it, cancels it when the work is done, asks for the earliest live deadline
(`next_deadline()`, which is its `get_timer()`), and in `handle_timer(now)` takes the
due keys one at a time with `pop_due(now)`. Keys come out in deadline order, ties in
the order they were armed, so an engine's timer behaviour is deterministic.

Each arming is one entry (deadline, sequence, key); the key's live entry is kept by
identity, so an entry is dead once its key is cancelled or armed again. Moving or
cancelling a deadline leaves the old entry behind (lazy deletion: neither structure
below can remove from its middle cheaply); `next_deadline()` and `pop_due()` skip
such entries.

Entries live in one of two places. Most engines arm deadlines in increasing order
(a timeout from now, then another from a later now): such an entry goes to the end
of a deque that stays sorted, where arming and skipping a dead entry cost O(1). An
entry earlier than the deque's last goes to a heap. The earliest live entry is the
earlier of the two heads. At data-centre scale thousands of timers are cancelled for
each one that fires (every answered transaction: the SA's Reports, one per host), so
when dead entries outnumber live ones two to one, both are rebuilt from the live
ones.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

_COMPACT_MIN = 64  # below this many entries, rebuilding is not worth it


class Timers(Generic[K]):
    """Deadlines in nanoseconds, at most one per key (module docstring)."""

    __slots__ = ("_heap", "_lane", "_live", "_seq")

    def __init__(self) -> None:
        # (deadline_ns, sequence, key): the sequence orders ties and makes every
        # entry unique, so keys themselves are never compared.
        self._lane: deque[tuple[int, int, K]] = deque()  # sorted: armed in order
        self._heap: list[tuple[int, int, K]] = []  # the rest
        self._live: dict[K, tuple[int, int, K]] = {}  # key -> its one live entry
        self._seq = 0

    def arm(self, key: K, deadline_ns: int) -> None:
        """Set (or move) the deadline of `key`."""
        self._seq += 1
        entry = (deadline_ns, self._seq, key)
        self._live[key] = entry
        lane = self._lane
        # Sequences only grow, so a deadline no earlier than the lane's last keeps
        # the lane sorted by (deadline, sequence).
        if not lane or lane[-1][0] <= deadline_ns:
            lane.append(entry)
        else:
            heapq.heappush(self._heap, entry)
        entries = len(lane) + len(self._heap)
        if entries > _COMPACT_MIN and entries > 2 * len(self._live):
            self._compact()

    def cancel(self, key: K) -> bool:
        """Forget the deadline of `key`; whether it had one."""
        return self._live.pop(key, None) is not None

    def clear(self) -> None:
        self._lane.clear()
        self._heap.clear()
        self._live.clear()

    def deadline(self, key: K) -> int | None:
        entry = self._live.get(key)
        return None if entry is None else entry[0]

    def next_deadline(self) -> int | None:
        """The earliest live deadline, or None when nothing is armed."""
        if not self._live:
            return None  # most engines, most of the time: asked after every packet
        entry = self._first()
        return None if entry is None else entry[0]

    def peek(self) -> tuple[int, K] | None:
        """The earliest live (deadline, key), left armed; None when nothing is armed.
        For an engine that must look at the key before deciding to fire it (the
        guest moves deadlines later lazily: `ibmig.core.guest.agent`)."""
        entry = self._first()
        return None if entry is None else (entry[0], entry[2])

    def peek_entry(self) -> tuple[int, int, K] | None:
        """The earliest live (deadline, sequence, key), left armed; None when nothing
        is armed. With `take_sequence`, for an engine that keeps some deadlines in a
        structure of its own and must merge them with these in the same order."""
        return self._first()

    def take_sequence(self) -> int:
        """The sequence number the next `arm` would give its entry, used up: for a
        deadline the caller keeps itself (the SM's transactions, `ibmig.core.sm.
        manager`), so that (deadline, sequence) orders it among these entries as if
        it had been armed here now."""
        self._seq += 1
        return self._seq

    def pop_due(self, now_ns: int) -> K | None:
        """The key with the earliest deadline at or before `now_ns`, disarmed; None
        when no deadline is due. Keys armed while handling a due one are seen by
        the next call, so a loop over `pop_due` also runs what became due meanwhile."""
        entry = self._first()
        if entry is None or entry[0] > now_ns:
            return None
        # `_first` left the entry at the head of the lane or the heap.
        lane = self._lane
        if lane and lane[0] is entry:
            lane.popleft()
        else:
            heapq.heappop(self._heap)
        key = entry[2]
        del self._live[key]
        return key

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, key: object) -> bool:
        return key in self._live

    def __iter__(self) -> Iterator[K]:
        return iter(list(self._live))

    def _first(self) -> tuple[int, int, K] | None:
        """The earliest live entry, left in place; dead entries before it dropped."""
        live = self._live
        lane = self._lane
        while lane and live.get((head := lane[0])[2]) is not head:
            lane.popleft()
        heap = self._heap
        while heap and live.get((top := heap[0])[2]) is not top:
            heapq.heappop(heap)
        if not heap:
            return lane[0] if lane else None
        if not lane:
            return heap[0]
        return min(lane[0], heap[0])  # sequences differ: keys are never compared

    def _compact(self) -> None:
        # Nearly sorted already (the lane's order, with the heap's few mixed in).
        self._lane = deque(sorted(self._live.values()))
        self._heap = []

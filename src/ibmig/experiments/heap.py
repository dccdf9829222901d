"""Pausing Python's automatic garbage collector around a simulation.

A run makes almost no reference cycles (a full run of the migrations benchmark
leaves under a thousand cyclic objects), yet the automatic collector rescans live
objects every few hundred allocations: the subnet, hosts and VMs of the set-up
(millions of objects at data-centre scale) and the thousands of Reports in flight
after every migration. On the 11,664-host tree with 186,608 VMs that took over a
quarter of the migrations' wall time; in `ibmig sm` up to a tenth of a heavy sweep.

So a run pauses the automatic collector (`paused_gc`), freezes the set-up's
objects once they are built (`GcPause.settle`: they live as long as the run and no
later collection needs to look at them again), collects its own young
garbage every `GC_EVERY_EVENTS` events (`GcPause.collect_if_due`), and hands everything back
at the end exactly as it found it: enabled or not, the same thresholds, nothing
left frozen that the caller had not frozen.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

GC_EVERY_EVENTS = 1_000_000
"""Events between two collections of a run's own garbage."""


class GcPause:
    """What a run may do while automatic collection is paused."""

    def __init__(self, may_freeze: bool) -> None:
        # gc can only unfreeze everything at once: if the caller has frozen objects
        # of its own, freezing more could not be undone without thawing theirs.
        self.may_freeze = may_freeze

    def settle(self) -> None:
        """Freeze every object tracked now (unless the caller froze objects of its
        own, which `unfreeze` at the end would thaw too).

        Without collecting first: the set-up makes no cyclic garbage to speak of
        (a full collection found none after bring-up nor after placement on the
        3,240-host tree), yet it walked every object the set-up had made: 1.4 s of
        the 11,664-host placement's 11.3 s of CPU. A cycle that died during the
        set-up stays frozen until the run ends, when `paused_gc` unfreezes it and
        the collector has it."""
        if self.may_freeze:
            gc.freeze()

    def collect_if_due(self, events_before: int, events_now: int) -> None:
        """Collect the objects made since the last collection when a multiple of
        `GC_EVERY_EVENTS` lies in (before, now]."""
        if events_before // GC_EVERY_EVENTS != events_now // GC_EVERY_EVENTS:
            # The young generations only: with automatic collection paused, every
            # object made since the last collection is in generation 0 and what
            # survived one is in 1 (now promoted to 2), so each object is scanned
            # about once. A full collection rescans everything not frozen: while VMs
            # are being placed that is the whole growing set-up (millions of objects
            # before `settle` freezes them), and on the 11,664-host tree those
            # rescans were an eighth of the placement's time. A cycle that dies after
            # reaching generation 2 waits for `settle` or the end of the run.
            gc.collect(1)


@contextmanager
def paused_gc() -> Iterator[GcPause]:
    """Pause automatic collection; on exit (exception or not) restore whether it was
    enabled, its thresholds, and unfreeze what `settle` froze."""
    was_enabled = gc.isenabled()
    thresholds = gc.get_threshold()
    may_freeze = gc.get_freeze_count() == 0
    gc.disable()
    try:
        yield GcPause(may_freeze)
    finally:
        if may_freeze:
            gc.unfreeze()
        gc.set_threshold(*thresholds)
        if was_enabled:
            gc.enable()

"""Advancing a run's simulator in chunks: between chunks the run reports progress
and collects its own garbage when due (`ibmig.experiments.heap`)."""

from __future__ import annotations

from collections.abc import Callable

from ibmig.core.sm.manager import SubnetUp
from ibmig.experiments.heap import GcPause
from ibmig.sim.hosting import VirtualizedSubnet

Progress = Callable[[int], None]
"""Called with the number of events run so far."""

UNTIL_CHUNK_EVENTS = 50_000
"""Events between two checks when running to a time."""
IDLE_CHUNK_EVENTS = 5_000
"""Events between two checks of a condition (the condition is cheap but not free)."""


class Stepper:
    """Runs `sim` in chunks for one run."""

    def __init__(self, sim: VirtualizedSubnet, heap: GcPause, progress: Progress | None) -> None:
        self.sim = sim
        self.heap = heap
        self.progress = progress

    def until_up(self) -> SubnetUp | None:
        """Run until SUBNET UP (None if the SM stops before)."""
        sim = self.sim
        last = sim.kernel.events_run

        def tick(value: int) -> None:
            nonlocal last
            self.heap.collect_if_due(last, sim.kernel.events_run)
            last = sim.kernel.events_run
            if self.progress is not None:
                self.progress(value)

        return sim.run_until_up(tick)

    def until(self, until_ns: int) -> None:
        """Run until simulated time `until_ns`, or until nothing is left to run."""
        sim = self.sim
        while sim.kernel.now_ns < until_ns:
            ran = self._chunk(until_ns, UNTIL_CHUNK_EVENTS)
            if self.progress is not None:
                self.progress(sim.kernel.events_run)
            if ran == 0:
                break

    def until_idle_or(self, done: Callable[[], bool], limit_ns: int | None = None) -> None:
        """Run until `done()`, until nothing is left to run, or (with `limit_ns`) until
        that much simulated time has passed: engines that retry without end (dom0's
        alias GUID requests, as mlx4's) never leave the simulator idle."""
        end = None if limit_ns is None else self.sim.kernel.now_ns + limit_ns
        while not done():
            if end is not None and self.sim.kernel.now_ns >= end:
                break
            # No time bound on the chunk: the kernel would move its clock to the bound
            # once idle, and every later stage would start that late.
            if self._chunk(None, IDLE_CHUNK_EVENTS) == 0:
                break
            if self.progress is not None:
                self.progress(self.sim.kernel.events_run)

    def _chunk(self, until_ns: int | None, max_events: int) -> int:
        before = self.sim.kernel.events_run
        ran = self.sim.run(until_ns=until_ns, max_events=max_events)
        self.heap.collect_if_due(before, self.sim.kernel.events_run)
        return ran

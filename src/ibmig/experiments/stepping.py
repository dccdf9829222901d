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
"""Events between two progress reports (and garbage checks) when running to a time."""
CHECK_EVERY_NS = 1_000_000
"""How often `until_idle_or` asks its condition: on every whole millisecond of
simulated time. A stage that ends when a condition holds then ends at the same
simulated time however many events ran before (a count of events, as this was
before, moved every later time whenever a change to the runtime saved or added an
event). Milliseconds without an event are skipped when the caller says when the
condition can change by time alone (`Stepper.until_idle_or`)."""


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

    def until_idle_or(
        self,
        done: Callable[[], bool],
        limit_ns: int | None = None,
        changes_at: Callable[[], int | None] | None = None,
    ) -> None:
        """Run until `done()`, asked on each whole millisecond of simulated time
        (`CHECK_EVERY_NS`); until nothing is left to run; or (with `limit_ns`) until
        that much simulated time has passed: engines that retry without end (dom0's
        alias GUID requests, as mlx4's) never leave the simulator idle.

        `changes_at`: when `done()` may next change by time passing alone, with no
        event run (None: only an event can change it). Given, the milliseconds up
        to the one at or after the next such time or event are skipped: `done()`
        would be false at each of them, as it was. Without it `done()` may change at
        any moment and every millisecond is asked: a stage whose engines retry every
        few seconds (a set-up that fails) was stepped through 600 s one
        millisecond at a time."""
        kernel = self.sim.kernel
        end = None if limit_ns is None else kernel.now_ns + limit_ns
        while not done():
            if end is not None and kernel.now_ns >= end:
                break
            next_ns = kernel.peek_ns()
            if next_ns is None:
                break  # idle: nothing would ever change `done()`
            check = (kernel.now_ns // CHECK_EVERY_NS + 1) * CHECK_EVERY_NS
            if changes_at is not None and next_ns > check:
                quiet_until = next_ns
                change = changes_at()
                if change is not None:
                    quiet_until = min(quiet_until, change)
                if end is not None:
                    quiet_until = min(quiet_until, end)
                check = max(check, -(-quiet_until // CHECK_EVERY_NS) * CHECK_EVERY_NS)
            while kernel.now_ns < check:
                self._chunk(check, UNTIL_CHUNK_EVENTS)
                if self.progress is not None:
                    self.progress(kernel.events_run)

    def _chunk(self, until_ns: int | None, max_events: int) -> int:
        before = self.sim.kernel.events_run
        ran = self.sim.run(until_ns=until_ns, max_events=max_events)
        self.heap.collect_if_due(before, self.sim.kernel.events_run)
        return ran

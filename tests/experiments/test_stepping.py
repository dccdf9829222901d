"""Stage ends: where the set-up's stages end must follow from the simulated subnet,
not from how many events the runtime needed to simulate it. Bring-up ends at SUBNET
UP itself; placement on the first whole millisecond at which every VM is up
(`ibmig.experiments.stepping`). Before, both ended where a chunk of 20,000 or 5,000
events did, so a change to the runtime that saved an event moved every later time."""

from __future__ import annotations

import io
from typing import Any

import pytest

from ibmig.errors import ConfigError
from ibmig.experiments.heap import GcPause
from ibmig.experiments.runner import run_scenario
from ibmig.experiments.scenario import scenario_from_dict
from ibmig.experiments.stepping import CHECK_EVERY_NS, Stepper
from ibmig.sim.kernel import EventKernel
from ibmig.sim.subnet import TraceWriter
from tests.experiments.test_placement import BASE, variant


def _noop(_: object) -> None:
    pass


def traced_run(data: dict[str, Any]) -> tuple[str, dict[str, int], int]:
    """The run's trace, when each stage began, and the events the kernel ran."""
    trace, starts, _, events, _ = _run_to_the_end(data)
    return trace, starts, events


@pytest.mark.parametrize(
    "data",
    [
        BASE,
        variant(signalling={"strategy": "per-vm"}),
        variant(latency={"contention": False}),
        # A standby SM polls the master without end, so the simulator is never idle:
        # placement used to end where a chunk of events did (36.5 s or 55.2 s after
        # SUBNET UP here, with and without the padding below).
        variant(faults={"standby_sm": {"polling_timeout_ms": 50, "polling_retry_number": 2}}),
    ],
    ids=["per-host", "per-vm", "no-contention", "standby"],
)
def test_stage_ends_do_not_depend_on_the_number_of_events(
    data: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = traced_run(data)
    # Every timer started now brings an event that does nothing: the kernel runs
    # many more events, in the same order otherwise.
    start_timer = EventKernel.start_timer

    def padded(self: EventKernel, *args: Any, **kwargs: Any) -> Any:
        self.schedule(0, _noop)
        return start_timer(self, *args, **kwargs)

    monkeypatch.setattr(EventKernel, "start_timer", padded)
    trace, starts, events = traced_run(data)
    assert events > plain[2]
    assert starts == plain[1]
    assert trace == plain[0]
    # Bring-up ends at SUBNET UP; placement on a whole millisecond.
    up = [line for line in trace.splitlines() if '"SubnetUp"' in line]
    assert len(up) == 1 and f'"t_ns": {starts["placement"]},' in up[0]
    assert starts["workload"] % CHECK_EVERY_NS == 0
    assert starts["workload"] > starts["placement"]


def _run_to_the_end(data: dict[str, Any]) -> tuple[str, dict[str, int], int, int, str]:
    """The run's trace, when each stage began, the simulated time it ended at, the
    events the kernel ran and the error the run ended with ("" when none)."""
    trace = io.StringIO()
    starts: dict[str, int] = {}
    kernels: list[EventKernel] = []

    def on_stage(stage: str, sim: Any) -> None:
        starts[stage] = sim.kernel.now_ns

    # The kernel is made with the simulator, before any stage begins.
    made = EventKernel.__init__

    def keep(self: EventKernel) -> None:
        made(self)
        kernels.append(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(EventKernel, "__init__", keep)
        error = ""
        try:
            run_scenario(
                scenario_from_dict(data, "stages"), trace=TraceWriter(trace), on_stage=on_stage
            )
        except ConfigError as failed:
            error = str(failed)
    kernel = kernels[-1]
    return trace.getvalue(), starts, kernel.now_ns, kernel.events_run, error


@pytest.mark.parametrize(
    "data",
    [
        BASE,
        variant(faults={"standby_sm": {"polling_timeout_ms": 50, "polling_retry_number": 2}}),
        # An SA that takes 100 s per query: the VMs never come up within the 600 s
        # placement is given, while dom0 asks again every few seconds.
        variant(latency={"sa_ns": 100_000_000_000}),
    ],
    ids=["per-host", "standby", "set-up-fails"],
)
def test_skipping_quiet_milliseconds_ends_placement_where_asking_each_would(
    data: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    skipping = _run_to_the_end(data)
    asks = []
    until_idle_or = Stepper.until_idle_or

    def asking_each(self: Stepper, done: Any, limit_ns: Any = None, changes_at: Any = None) -> None:
        asks.append(changes_at)
        until_idle_or(self, done, limit_ns)

    monkeypatch.setattr(Stepper, "until_idle_or", asking_each)
    assert _run_to_the_end(data) == skipping
    assert asks and all(ask is not None for ask in asks)  # placement skips
    if "sa_ns" in data.get("latency", {}):
        assert "VMs never came up" in skipping[4]


class _Kernel:
    """What `Stepper` drives: a kernel, run as the simulator runs it."""

    def __init__(self, event_ms: list[float]) -> None:
        self.kernel = EventKernel()
        self.ran: list[int] = []
        for ms in event_ms:
            self.kernel.schedule(int(ms * 1_000_000), self._record)

    def _record(self, _: object) -> None:
        self.ran.append(self.kernel.now_ns)

    def run(self, until_ns: int | None = None, max_events: int | None = None) -> int:
        return self.kernel.run(until_ns=until_ns, max_events=max_events)


def _step(
    event_ms: list[float], flip_ms: float | None, limit_ms: float | None, skip: bool
) -> tuple[int, list[int]]:
    """Where `until_idle_or` ends, and the events run, for a `done()` that turns true
    by time alone at `flip_ms` (never when None)."""
    sim = _Kernel(event_ms)
    kernel = sim.kernel
    flip = None if flip_ms is None else int(flip_ms * 1_000_000)

    def done() -> bool:
        return flip is not None and kernel.now_ns >= flip

    def changes_at() -> int | None:
        return flip if flip is not None and kernel.now_ns < flip else None

    stepper = Stepper(sim, GcPause(may_freeze=False), None)  # type: ignore[arg-type]
    limit = None if limit_ms is None else int(limit_ms * 1_000_000)
    stepper.until_idle_or(done, limit, changes_at if skip else None)
    return kernel.now_ns, sim.ran


@pytest.mark.parametrize(
    ("event_ms", "flip_ms", "limit_ms", "ends_ms"),
    [
        # `done()` turns true by time alone at 4.2 ms, between events: asked at 5 ms.
        ([0.5, 7.3, 20.0], 4.2, None, 5),
        # Never true: the limit ends it on the first millisecond at or past it.
        ([0.5, 900.0], None, 10.4, 11),
        # Events in every millisecond: nothing to skip.
        ([0.1 * k for k in range(1, 60)], 3.05, None, 4),
    ],
)
def test_quiet_milliseconds_are_skipped_to_where_done_could_change(
    event_ms: list[float], flip_ms: float | None, limit_ms: float | None, ends_ms: int
) -> None:
    asking_each = _step(event_ms, flip_ms, limit_ms, skip=False)
    assert _step(event_ms, flip_ms, limit_ms, skip=True) == asking_each
    assert asking_each[0] == ends_ms * 1_000_000

"""Stage ends: where the set-up's stages end must follow from the simulated subnet,
not from how many events the runtime needed to simulate it. Bring-up ends at SUBNET
UP itself; placement on the first whole millisecond at which every VM is up
(`ibmig.experiments.stepping`). Before, both ended where a chunk of 20,000 or 5,000
events did, so a change to the runtime that saved an event moved every later time."""

from __future__ import annotations

import io
from typing import Any

import pytest

from ibmig.experiments.runner import run_scenario
from ibmig.experiments.scenario import scenario_from_dict
from ibmig.experiments.stepping import CHECK_EVERY_NS
from ibmig.sim.kernel import EventKernel
from ibmig.sim.subnet import TraceWriter
from tests.experiments.test_placement import BASE, variant


def _noop(_: object) -> None:
    pass


def traced_run(data: dict[str, Any]) -> tuple[str, dict[str, int], int]:
    """The run's trace, when each stage began, and the events the kernel ran."""
    trace = io.StringIO()
    starts: dict[str, int] = {}
    kernels: list[EventKernel] = []

    def on_stage(stage: str, sim: Any) -> None:
        starts[stage] = sim.kernel.now_ns
        kernels.append(sim.kernel)

    run_scenario(scenario_from_dict(data, "stages"), trace=TraceWriter(trace), on_stage=on_stage)
    return trace.getvalue(), starts, kernels[-1].events_run


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

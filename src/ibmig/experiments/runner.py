"""Run one scenario, stage by stage:

    building    the fabric, the engines' settings, the subnet brought up  (building)
    placement   dom0s on n servers, m VMs on each, all up                 (placement)
    workload    p peers per migrating VM, each with a busy RC connection  (workload)
    migrations  each migration and fault at its time, then on to the end   (migrations, faults)
    measure     the result and its summaries                              (metrics)

The first two stages are the set-up (`set_up`), the rest its use (`finish`):
`run_scenario` is one after the other. Scenarios that differ only in what comes after
the set-up (`ibmig.experiments.reuse.setup_key`) can share one set-up: it is built
once and every run continues from its own copy of it (`ibmig.experiments.reuse`).

The automatic garbage collector is paused for the whole run (`ibmig.experiments.heap`
says why); the set-up's objects are collected and frozen after bring-up and again
once the VMs are up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ibmig.core.sa_client import NOTICES
from ibmig.experiments.building import Settings, bring_up, build_fabric, build_subnet
from ibmig.experiments.faults import check_faults, start_standby_sm
from ibmig.experiments.heap import GcPause, paused_gc
from ibmig.experiments.metrics import Collector, ConnectionResult, RunResult, measure
from ibmig.experiments.migrations import run_migrations
from ibmig.experiments.placement import place
from ibmig.experiments.scenario import Scenario
from ibmig.experiments.stepping import Progress, Stepper
from ibmig.experiments.workload import start_workload
from ibmig.fabric import Fabric
from ibmig.sim.hosting import VirtualizedSubnet
from ibmig.sim.subnet import TraceWriter
from ibmig.wire.capture import CaptureWriter

StageHook = Callable[[str, VirtualizedSubnet], None]
"""Called with a stage's name ("placement", "workload", "migrations", "measure") and
the simulator as the stage begins (benchmarks time the stages with it)."""


@dataclass(slots=True)
class SetUp:
    """A subnet brought up with its VMs placed and up: what `finish` continues from."""

    fabric: Fabric
    sim: VirtualizedSubnet
    collector: Collector
    host_names: list[str]
    heap: GcPause
    started: float
    """`time.perf_counter()` when the set-up began (a run's wall time counts from it)."""


def set_up(
    scenario: Scenario,
    heap: GcPause,
    *,
    capture: CaptureWriter | None = None,
    trace: TraceWriter | None = None,
    progress: Progress | None = None,
    on_stage: StageHook | None = None,
    fabric: Fabric | None = None,
) -> SetUp:
    """Build `scenario`'s subnet (on `fabric` when the caller built and checked it
    already), bring it up and place its VMs; inside `paused_gc`, whose `heap` the
    set-up keeps for the rest of the run."""
    started = time.perf_counter()
    if fabric is None:
        fabric = build_fabric(scenario)
    settings = Settings.of(scenario)
    sim = build_subnet(scenario, fabric, settings.latency, capture=capture, trace=trace)
    check_faults(scenario, sim)
    collector = Collector(sim, NOTICES[scenario.signalling.notice])
    stepper = Stepper(sim, heap, progress)
    bring_up(scenario, sim, stepper)
    start_standby_sm(scenario, sim)
    heap.settle(set_up_done=False)

    if on_stage is not None:
        on_stage("placement", sim)
    host_names = place(scenario, fabric, sim, settings.guest, stepper)
    heap.settle()
    sim.narrow_engine_events()
    return SetUp(fabric, sim, collector, host_names, heap, started)


def finish(
    state: SetUp,
    scenario: Scenario,
    *,
    progress: Progress | None = None,
    traffic: bool = True,
    on_stage: StageHook | None = None,
) -> RunResult:
    """Run `scenario` on from `state`: its workload, migrations and faults, then its
    result. `state` is used up (the simulator runs on); `scenario` must have the
    set-up's key (`ibmig.experiments.reuse.setup_key`)."""
    sim = state.sim

    def stage(name: str) -> None:
        if on_stage is not None:
            on_stage(name, sim)

    check_faults(scenario, sim)
    stepper = Stepper(sim, state.heap, progress)
    stage("workload")
    connections: list[ConnectionResult] = []
    if traffic:
        connections = start_workload(scenario, sim)

    stage("migrations")
    timing = Settings.of(scenario).migration  # not part of the set-up's key
    launched = run_migrations(scenario, sim, state.host_names, timing, stepper)

    stage("measure")
    return measure(
        scenario, sim, state.collector, connections, launched, time.perf_counter() - state.started
    )


def run_scenario(
    scenario: Scenario,
    *,
    capture: CaptureWriter | None = None,
    trace: TraceWriter | None = None,
    progress: Progress | None = None,
    traffic: bool = True,
    on_stage: StageHook | None = None,
    fabric: Fabric | None = None,
) -> RunResult:
    """Run `scenario`; `traffic=False` skips the workload (message-count sweeps).
    `fabric`: the scenario's, already built and checked (`build_fabric`)."""
    with paused_gc() as heap:
        state = set_up(
            scenario,
            heap,
            capture=capture,
            trace=trace,
            progress=progress,
            on_stage=on_stage,
            fabric=fabric,
        )
        return finish(state, scenario, progress=progress, traffic=traffic, on_stage=on_stage)

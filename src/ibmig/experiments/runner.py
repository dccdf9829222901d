"""Run one scenario, stage by stage:

    building    the fabric, the engines' settings, the subnet brought up  (building)
    placement   dom0s on n servers, m VMs on each, all up                 (placement)
    workload    p peers per migrating VM, each with a busy RC connection  (workload)
    migrations  each migration and fault at its time, then on to the end   (migrations, faults)
    measure     the result and its summaries                              (metrics)

The automatic garbage collector is paused for the whole run (`ibmig.experiments.heap`
says why); the set-up's objects are collected and frozen after bring-up and again
once the VMs are up.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ibmig.core.sa_client import NOTICES
from ibmig.experiments.building import Settings, bring_up, build_fabric, build_subnet
from ibmig.experiments.faults import check_faults, start_standby_sm
from ibmig.experiments.heap import paused_gc
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

    def stage(name: str) -> None:
        if on_stage is not None:
            on_stage(name, sim)

    with paused_gc() as heap:
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
        heap.settle()

        stage("placement")
        host_names = place(scenario, fabric, sim, settings.guest, stepper)
        heap.settle()
        sim.narrow_engine_events()

        stage("workload")
        connections: list[ConnectionResult] = []
        if traffic:
            connections = start_workload(scenario, sim)

        stage("migrations")
        launched = run_migrations(scenario, sim, host_names, settings.migration, stepper)

        stage("measure")
        return measure(
            scenario, sim, collector, connections, launched, time.perf_counter() - started
        )

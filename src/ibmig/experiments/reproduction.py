"""The paper's evaluation on a built-in testbed (`ibmig reproduce`): service downtime
of a migrated VM's peer connections under each assignment, strategy and path-cache
policy on a lab fat tree, and management messages per migration event against n
and m; written out as an HTML report with plots, CSV and JSON.

Each lab cell runs once per seed (1..K): the seed draws the migrated VM's peers, each
peer's send phase within the workload interval (where the migration falls between two
messages), PSNs, comm IDs and back-off jitter, as repeated runs on a testbed would
differ. The tables show each cell's median over the seeds with an interval by order
statistics (`ibmig.experiments.metrics.summarize_seeds`). Message counts do not depend
on the seed (a test checks it), so each sweep point runs once."""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from ibmig.core.guest.config import PATH_CACHE_POLICIES
from ibmig.errors import ConfigError
from ibmig.experiments import sensitivity as sens
from ibmig.experiments.metrics import (
    median_interval_ranks,
    summarize_downtime,
    summarize_event_costs,
    summarize_messages,
    summarize_seeds,
)
from ibmig.experiments.orchestration import orchestration_row, orchestration_scenarios
from ibmig.experiments.report import write_report
from ibmig.experiments.runner import run_scenario
from ibmig.experiments.scenario import ASSIGNMENTS, Scenario, scenario_from_dict
from ibmig.experiments.strategies import PAPER_STRATEGIES
from ibmig.experiments.sweep import Backend, Done, default_backend

# The lab testbed: a 2-level fat tree (ft2-36: 4 leaves, 3 spines, 36 hosts), six
# hypervisors with two VMs each, one VM migrated while three RC clients on other
# hosts keep it busy. VM memory is smaller than MigrationTiming's default so that a
# migration takes seconds of simulated time, not tens.
LAB: dict[str, Any] = {
    "topology": {"file": "ft2-36"},
    "hosts": {"n": 6, "m": 2, "vfs": 4},
    "workload": {"peers": 3, "interval_us": 2000, "message_bytes": 64},
    "migrations": [{"vm": 0, "at_ms": 50}],
    "run": {"duration_ms": 12000, "seed": 1},
    "timing": {"migration": {"memory_bytes": 256 * 1024 * 1024}},
}
# Message-count sweeps: a fat tree large enough for 648 hypervisors plus the SM's
# node; no workload traffic (it does not change the count of management messages).
SWEEP_TOPOLOGY = {
    "generator": "fat_tree_2level",
    "leaves": 37,
    "hosts_per_leaf": 18,
    "spines": 18,
    "switch_ports": 40,
}
SWEEP_N = (8, 32, 128, 648)
SWEEP_N_M = 4
SWEEP_M = (1, 4, 16, 32)
SWEEP_M_N = 64
SWEEP_STRATEGIES = ("per-vm", "per-host")
"""The strategies that signal (without signalling there is nothing to count)."""

TIMELINE_WINDOW_US = 14_000_000

DEFAULT_SEEDS = 10
"""Runs per lab cell (`--seeds`): with 10 the median's interval is the 2nd to 9th of
the sorted runs, exact coverage 97.9%."""
MAX_SEEDS = 1000

TITLE = "ibmig: signalling for VM migration with SR-IOV over InfiniBand"

NOTES = (
    "Service downtime: for each peer connection of the migrated VM, the gap between the "
    "last message delivered before the migration started and the first one after. "
    "'Peer downtime' is each run's median peer, 'last peer' its slowest (never, when any "
    "peer did not come back before the run ended); both as the median over the seeds "
    "with an interval by order statistics (distribution-free; its coverage is stated "
    "above), shown to the digits the interval resolves. "
    "'VM pause' is the VM's own downtime: stop-and-copy and resume, when it runs nowhere. "
    "'VM RDMA down' is the migration's cost to RDMA: from the VF's detach at the source to "
    "its vport coming up at the destination (Xen-style: VF hot-unplug, pre-copy, "
    "stop-and-copy, resume, VF hot-plug, driver re-initialisation, alias GUID set). "
    "The seed draws the peers, their send phases within the workload interval, PSNs, "
    "comm IDs and back-off jitter; the message counts do not depend on it.",
    "Static assignment without signalling: peers keep the cached LID of the old port and "
    "their connections stay broken; with 'query' paths they ask the SA again after RC "
    "retry exhaustion and come back late. With per-VM or per-host signalling the SA's "
    "path-change notice (trap 69) makes peers flush, re-resolve and reconnect as soon as "
    "the VM is reachable. Dynamic assignment gives the VM a new GID; peers recover through "
    "the gratuitous ARP, a PathRecord query and a new connection.",
    "Timing defaults marked ASSUMPTION in ibmig.core.migration.timing, "
    "ibmig.core.guest.config and ibmig.sim.latency are not measurements from the paper.",
)


def check_seeds(value: object, where: str = "--seeds") -> int:
    """The number of seeds per lab cell: 1 to MAX_SEEDS."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SEEDS:
        raise ConfigError(f"must be a whole number from 1 to {MAX_SEEDS}, got {value!r}", where)
    return value


def lab_scenarios(seeds: int = 1) -> list[Scenario]:
    """Every lab cell, then within it seeds 1..`seeds` (seed 1 is the lab's own)."""
    out = []
    for assignment, strategy, cache in itertools.product(
        ASSIGNMENTS, PAPER_STRATEGIES, PATH_CACHE_POLICIES
    ):
        data = json.loads(json.dumps(LAB))
        data["signalling"] = {"assignment": assignment, "strategy": strategy}
        data["workload"]["path_cache"] = cache
        cell = scenario_from_dict(data, f"lab[{assignment},{strategy},{cache}]")
        for seed in range(1, seeds + 1):
            source = f"lab[{assignment},{strategy},{cache},seed={seed}]"
            out.append(replace(cell, run=replace(cell.run, seed=seed), source=source))
    return out


def sweep_scenarios() -> list[Scenario]:
    points = sorted({(n, SWEEP_N_M) for n in SWEEP_N} | {(SWEEP_M_N, m) for m in SWEEP_M})
    out = []
    for strategy in SWEEP_STRATEGIES:
        for n, m in points:
            data = sens.sweep_point_data(SWEEP_TOPOLOGY, strategy, n, m)
            out.append(scenario_from_dict(data, f"sweep[{strategy},n={n},m={m}]"))
    return out


Kind = Literal["lab", "messages", "orchestration", "sensitivity-lab", "sensitivity-cost"]


@dataclass(frozen=True, slots=True)
class PointResult:
    """A lab run's downtime row, delivery timelines, migration end and VM pause
    (stop-and-copy start to resume end, relative to the migration's start); or a
    message-count run's row."""

    kind: Kind
    row: dict[str, Any]
    timeline_us: list[list[float]]
    done_us: float
    pause_us: tuple[float, float] | None = None


def run_point(point: tuple[Kind, Scenario]) -> PointResult:
    """The job of both kinds of point, so that one pool runs them all at once."""
    kind, scenario = point
    if kind == "messages":
        result = run_scenario(scenario, traffic=False)
        row = {**summarize_messages(result), **summarize_event_costs(result)}
        return PointResult(kind, row, [], -1.0)
    if kind == "sensitivity-cost":
        row = sens.cost_row(run_scenario(scenario, traffic=False))
        return PointResult(kind, row, [], -1.0)
    result = run_scenario(scenario)
    if kind == "orchestration":
        return PointResult(kind, orchestration_row(result), [], -1.0)
    if kind == "sensitivity-lab":
        return PointResult(kind, sens.lab_row(result), [], -1.0)
    migration = result.migrations[0]
    start = migration.start_ns
    lines = [[(t - start) / 1e3 for t in c.deliveries_ns] for c in result.connections]
    done = -1.0 if migration.done_ns is None else (migration.done_ns - start) / 1e3
    row = {"seed": scenario.run.seed, **summarize_downtime(result)}
    # Each peer connection's downtime, None when it never delivered again: the
    # statistics over seeds need the broken ones too.
    row["peer_downtime_us"] = [
        None if c.downtime_ns is None else c.downtime_ns / 1e3 for c in result.connections
    ]
    return PointResult(kind, row, lines, done, _pause_us(migration.phases, start))


def _pause_us(
    phases: list[tuple[str, int, int | None]], start_ns: int
) -> tuple[float, float] | None:
    """The VM's pause on the migration's clock: stop-and-copy start to resume end."""
    paused = [s for phase, s, _ in phases if phase == "stop_and_copy"]
    resumed = [e for phase, _, e in phases if phase == "resuming" and e is not None]
    if not paused or not resumed:
        return None
    return ((paused[0] - start_ns) / 1e3, (resumed[-1] - start_ns) / 1e3)


def cell_label(row: dict[str, Any]) -> str:
    return f"{row['assignment']}, {row['strategy']}, {row['path_cache']} paths"


def interval_note(seeds: int) -> str:
    """How the tables' intervals are made, with their coverage, for `seeds` runs."""
    if seeds == 1:
        return "one seed per cell: each figure is a single run, with no interval"
    low, high, coverage = median_interval_ranks(seeds)
    return (
        f"median [interval] over {seeds} seed{'s' if seeds != 1 else ''} per cell; the "
        f"interval is the {_ordinal(low)} to {_ordinal(high)} of the sorted runs, "
        f"distribution-free, covering the median with probability {coverage:.1%} "
        "(at least, with ties); 'never': not back when the run ended"
    )


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


@dataclass(slots=True)
class Reproduction:
    downtime: list[dict[str, Any]]
    """One row per lab cell: `summarize_seeds` over its runs."""
    messages: list[dict[str, Any]]
    report: Path
    runs: int
    wall_s: float
    downtime_runs: list[dict[str, Any]]
    """One row per lab run (cell and seed)."""
    seeds: int
    orchestration: list[dict[str, Any]] = field(default_factory=list)
    """`ibmig.experiments.orchestration` rows, in its scenarios' order."""
    sensitivity: list[dict[str, Any]] = field(default_factory=list)
    """`ibmig.experiments.sensitivity.summarize` rows (empty: the section not run)."""
    sensitivity_cost_n: int = sens.COST_N


def sensitivity_plan(
    *, quick: bool = False, seeds: int = sens.DEFAULT_SEEDS
) -> list[sens.SensitivityPoint]:
    """The sensitivity section's runs (`ibmig.experiments.sensitivity`) on this
    module's lab and sweep fabric; `quick` (tests): two knobs, the smallest sweep
    point. None with `seeds` 0."""
    if seeds == 0:
        return []
    if quick:
        return sens.plan(
            LAB, SWEEP_TOPOLOGY, seeds=seeds, knobs=sens.quick_knobs(),
            cost_n=sens.QUICK_COST_N,
        )  # fmt: skip
    return sens.plan(LAB, SWEEP_TOPOLOGY, seeds=seeds)


def points(
    *,
    quick: bool = False,
    seeds: int = DEFAULT_SEEDS,
    sensitivity_seeds: int = sens.DEFAULT_SEEDS,
) -> list[tuple[Kind, Scenario]]:
    """Every run of the evaluation: each lab cell `seeds` times, each sweep point
    once, the orchestration runs, then the sensitivity section's (`sensitivity_plan`);
    `quick` (for tests): the smallest sweep points only."""
    sweeps = sweep_scenarios()
    if quick:
        sweeps = [s for s in sweeps if s.hosts.n * s.hosts.m <= 128]
    labs: list[tuple[Kind, Scenario]] = [("lab", s) for s in lab_scenarios(seeds)]
    orchestration: list[tuple[Kind, Scenario]] = [
        ("orchestration", s) for s in orchestration_scenarios(LAB)
    ]
    tail: list[tuple[Kind, Scenario]] = [
        ("sensitivity-lab" if p.role == "lab" else "sensitivity-cost", p.scenario)
        for p in sensitivity_plan(quick=quick, seeds=sensitivity_seeds)
    ]
    return labs + [("messages", s) for s in sweeps] + orchestration + tail


def reproduce(
    out_dir: Path,
    *,
    quick: bool = False,
    seeds: int = DEFAULT_SEEDS,
    backend: Backend | None = None,
    done: Done | None = None,
    sensitivity_seeds: int = sens.DEFAULT_SEEDS,
) -> Reproduction:
    """Run the evaluation and write the report into `out_dir`."""
    check_seeds(seeds)
    sens.check_seeds(sensitivity_seeds)
    started = time.perf_counter()
    todo = points(quick=quick, seeds=seeds, sensitivity_seeds=sensitivity_seeds)
    results = (backend or default_backend()).map(run_point, todo, done)
    runs: list[dict[str, Any]] = []
    cells: dict[str, list[dict[str, Any]]] = {}
    timelines: dict[str, list[list[float]]] = {}
    migration_done: dict[str, float] = {}
    pauses: dict[str, tuple[float, float]] = {}
    messages: list[dict[str, Any]] = []
    orchestration: list[dict[str, Any]] = []
    sensitivity_rows: list[dict[str, Any]] = []
    for result in results:
        row = result.row
        if result.kind == "orchestration":
            orchestration.append(row)
            continue
        if result.kind in ("sensitivity-lab", "sensitivity-cost"):
            sensitivity_rows.append(row)
            continue
        if result.kind == "messages":
            messages.append(row)
            continue
        runs.append(row)
        label = cell_label(row)
        cells.setdefault(label, []).append(row)
        if label not in timelines:  # the plot shows each cell's first seed
            timelines[label] = result.timeline_us
            migration_done[label] = result.done_us
            if result.pause_us is not None:
                pauses[label] = result.pause_us
    downtime = [summarize_seeds(cell) for cell in cells.values()]
    sens_points = sensitivity_plan(quick=quick, seeds=sensitivity_seeds)
    sensitivity = sens.summarize(sens_points, sensitivity_rows) if sens_points else []
    cost_n = sens.QUICK_COST_N if quick else sens.COST_N
    messages.sort(key=lambda r: (r["strategy"], r["n"], r["m"]))
    wall = time.perf_counter() - started
    target = write_report(
        out_dir,
        title=TITLE,
        intro=(
            "Reproduces Guay et al., ICPADS 2012: service downtime of a migrated VM's peer "
            "connections under each signalling strategy, and management messages per "
            f"migration event against n and m. {len(todo)} simulations in {wall:.0f} s; "
            f"{interval_note(seeds)}."
        ),
        downtime=downtime,
        messages=messages,
        timelines=timelines,
        window_us=TIMELINE_WINDOW_US,
        migration_done_us=migration_done,
        notes=NOTES,
        downtime_runs=runs,
        pauses_us=pauses,
        sensitivity=sensitivity,
        sensitivity_note=sens.sensitivity_note(sensitivity, cost_n) if sensitivity else "",
    )
    (out_dir / "orchestration.json").write_text(json.dumps(orchestration, indent=1) + "\n")
    return Reproduction(
        downtime, messages, target, len(todo), wall, runs, seeds, orchestration, sensitivity, cost_n
    )

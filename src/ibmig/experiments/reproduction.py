"""The paper's evaluation on a built-in testbed (`ibmig reproduce`): service downtime
of a migrated VM's peer connections under each assignment, strategy and path-cache
policy on a lab fat tree, and management messages per migration event against n
and m; written out as an HTML report with plots, CSV and JSON."""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ibmig.core.guest.config import PATH_CACHE_POLICIES
from ibmig.experiments.metrics import summarize_downtime, summarize_messages
from ibmig.experiments.orchestration import orchestration_row, orchestration_scenarios
from ibmig.experiments.report import write_report
from ibmig.experiments.runner import run_scenario
from ibmig.experiments.scenario import ASSIGNMENTS, Scenario, scenario_from_dict
from ibmig.experiments.strategies import STRATEGIES
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

TITLE = "ibmig: signalling for VM migration with SR-IOV over InfiniBand"

NOTES = (
    "Service downtime: for each peer connection of the migrated VM, the gap between the "
    "last message delivered before the migration started and the first one after. "
    "'VM RDMA downtime' is the migration's own cost: from the VF's detach at the source to "
    "its vport coming up at the destination (Xen-style: VF hot-unplug, pre-copy, "
    "stop-and-copy, resume, VF hot-plug, driver re-initialisation, alias GUID set).",
    "Static assignment without signalling: peers keep the cached LID of the old port and "
    "their connections stay broken; with 'query' paths they ask the SA again after RC "
    "retry exhaustion and come back late. With per-VM or per-host signalling the SA's "
    "path-change notice (trap 69) makes peers flush, re-resolve and reconnect as soon as "
    "the VM is reachable. Dynamic assignment gives the VM a new GID; peers recover through "
    "the gratuitous ARP, a PathRecord query and a new connection.",
    "Timing defaults marked ASSUMPTION in ibmig.core.migration.timing, "
    "ibmig.core.guest.config and ibmig.sim.latency are not measurements from the paper.",
)


def lab_scenarios() -> list[Scenario]:
    out = []
    for assignment, strategy, cache in itertools.product(
        ASSIGNMENTS, STRATEGIES, PATH_CACHE_POLICIES
    ):
        data = json.loads(json.dumps(LAB))
        data["signalling"] = {"assignment": assignment, "strategy": strategy}
        data["workload"]["path_cache"] = cache
        out.append(scenario_from_dict(data, f"lab[{assignment},{strategy},{cache}]"))
    return out


def sweep_scenarios() -> list[Scenario]:
    points = sorted({(n, SWEEP_N_M) for n in SWEEP_N} | {(SWEEP_M_N, m) for m in SWEEP_M})
    out = []
    for strategy in SWEEP_STRATEGIES:
        for n, m in points:
            data = {
                "topology": dict(SWEEP_TOPOLOGY),
                "hosts": {"n": n, "m": m, "vfs": m + 1, "placement": "spread"},
                "workload": {"peers": 0},
                "signalling": {"assignment": "static", "strategy": strategy},
                "migrations": [{"vm": 0, "at_ms": 1}],
                "run": {"duration_ms": 8000, "seed": 1},
                "timing": {"migration": {"memory_bytes": 64 * 1024 * 1024}},
            }
            out.append(scenario_from_dict(data, f"sweep[{strategy},n={n},m={m}]"))
    return out


Kind = Literal["lab", "messages", "orchestration"]


@dataclass(frozen=True, slots=True)
class PointResult:
    """A lab run's downtime row, delivery timelines and migration end; or a
    message-count run's row."""

    kind: Kind
    row: dict[str, Any]
    timeline_us: list[list[float]]
    done_us: float


def run_point(point: tuple[Kind, Scenario]) -> PointResult:
    """The job of both kinds of point, so that one pool runs them all at once."""
    kind, scenario = point
    if kind == "messages":
        result = run_scenario(scenario, traffic=False)
        return PointResult(kind, summarize_messages(result), [], -1.0)
    result = run_scenario(scenario)
    if kind == "orchestration":
        return PointResult(kind, orchestration_row(result), [], -1.0)
    migration = result.migrations[0]
    start = migration.start_ns
    lines = [[(t - start) / 1e3 for t in c.deliveries_ns] for c in result.connections]
    done = -1.0 if migration.done_ns is None else (migration.done_ns - start) / 1e3
    return PointResult(kind, summarize_downtime(result), lines, done)


def _plotted(row: dict[str, Any]) -> bool:
    """The lab runs whose timelines the report plots."""
    key = (row["assignment"], row["strategy"], row["path_cache"])
    static_shown = row["assignment"] == "static" and (
        row["path_cache"] == "cached" or row["strategy"] == "none"
    )
    return static_shown or key == ("dynamic", "per-host", "cached")


@dataclass(slots=True)
class Reproduction:
    downtime: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    report: Path
    runs: int
    wall_s: float
    orchestration: list[dict[str, Any]] = field(default_factory=list)
    """`ibmig.experiments.orchestration` rows, in its scenarios' order."""


def points(*, quick: bool = False) -> list[tuple[Kind, Scenario]]:
    """Every run of the evaluation; `quick` (for tests): the lab runs and the
    smallest sweep points only."""
    sweeps = sweep_scenarios()
    if quick:
        sweeps = [s for s in sweeps if s.hosts.n * s.hosts.m <= 128]
    labs: list[tuple[Kind, Scenario]] = [("lab", s) for s in lab_scenarios()]
    orchestration: list[tuple[Kind, Scenario]] = [
        ("orchestration", s) for s in orchestration_scenarios(LAB)
    ]
    return labs + [("messages", s) for s in sweeps] + orchestration


def reproduce(
    out_dir: Path,
    *,
    quick: bool = False,
    backend: Backend | None = None,
    done: Done | None = None,
) -> Reproduction:
    """Run the evaluation and write the report into `out_dir`."""
    started = time.perf_counter()
    todo = points(quick=quick)
    results = (backend or default_backend()).map(run_point, todo, done)
    downtime: list[dict[str, Any]] = []
    timelines: dict[str, list[list[float]]] = {}
    migration_done: dict[str, float] = {}
    messages: list[dict[str, Any]] = []
    orchestration: list[dict[str, Any]] = []
    for result in results:
        row = result.row
        if result.kind == "orchestration":
            orchestration.append(row)
            continue
        if result.kind == "messages":
            messages.append(row)
            continue
        downtime.append(row)
        if _plotted(row):
            label = f"{row['assignment']}, {row['strategy']}, {row['path_cache']} paths"
            timelines[label] = result.timeline_us
            migration_done[label] = result.done_us
    messages.sort(key=lambda r: (r["strategy"], r["n"], r["m"]))
    wall = time.perf_counter() - started
    target = write_report(
        out_dir,
        title=TITLE,
        intro=(
            "Reproduces Guay et al., ICPADS 2012: service downtime of a migrated VM's peer "
            "connections under each signalling strategy, and management messages per "
            f"migration event against n and m. {len(todo)} simulations in {wall:.0f} s."
        ),
        downtime=downtime,
        messages=messages,
        timelines=timelines,
        window_us=TIMELINE_WINDOW_US,
        migration_done_us=migration_done,
        notes=NOTES,
    )
    (out_dir / "orchestration.json").write_text(json.dumps(orchestration, indent=1) + "\n")
    return Reproduction(downtime, messages, target, len(todo), wall, orchestration)

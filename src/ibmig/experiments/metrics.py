"""What a run measures, and the summaries the tables, reports and sweeps print.

Per run:

- for every peer connection of a migrated VM (a client on another host that keeps
  an RC connection to it busy), the delivery times of its messages at the VM. The
  service downtime is the gap from the last delivery before the migration started
  to the first one after it; a connection with no delivery after is broken. The
  reconnect time is the time from the migrated VM's stack being usable again
  (migration done) to that first delivery.
- the migration's own figures: total time, the VM's downtime (paused -> resumed)
  and its RDMA service downtime (VF detached -> driver re-initialised), which is
  what the paper compares peers' downtime with;
- MADs on the fabric by class, method and attribute, sent from the start of the
  first migration to the end of the run (Reports, ReportResps, InformInfo,
  PathRecord, CM...), intra-host messages, data packets and drops;
- the SA's load: MADs it received, in 1 ms bins.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ibmig.core.guest.events import MessageDelivered
from ibmig.core.host.events import AliasFailed
from ibmig.core.migration.machine import LiveMigration
from ibmig.core.sa import PathChangeDetected, ReportSent
from ibmig.core.sm.vswitch import VfLidMoved
from ibmig.experiments.migrations import Launched
from ibmig.experiments.scenario import Scenario
from ibmig.sim.hosting import VirtualizedSubnet
from ibmig.wire.notice import PATH_CHANGE_TRAP

SA_CLASS = 0x03
CM_CLASS = 0x07
REPORT = 0x06
REPORT_RESP = 0x86
SET = 0x02
ATTR_PATH_RECORD = 0x0035
ATTR_INFORM_INFO = 0x0003
ATTR_GUID_INFO_RECORD = 0x0030


@dataclass(slots=True)
class ConnectionResult:
    client: str
    server: str
    deliveries_ns: list[int] = field(default_factory=list)
    downtime_ns: int | None = None
    reconnect_ns: int | None = None


@dataclass(slots=True)
class MigrationResult:
    vm: str
    src: str
    dst: str
    start_ns: int
    done_ns: int | None
    total_ns: int | None
    vm_downtime_ns: int | None
    rc_downtime_ns: int | None
    phases: list[tuple[str, int, int | None]]
    outcome: str = "completed"
    """"completed"; "failed in PHASE: CAUSE" when something it waits on failed and
    it never finished (an alias GUID request the SA did not carry out); "aborted in
    PHASE (REASON): ..." when it was aborted (`abort_ms`); or
    "unfinished: in PHASE when the run ended" when the run cut it off."""


@dataclass(slots=True)
class RunResult:
    scenario: Scenario
    n: int
    m: int
    connections: list[ConnectionResult]
    migrations: list[MigrationResult]
    mads: Counter[tuple[int, int, int]]
    intra_host: Counter[str]
    drops: Counter[str]
    data_packets: int
    sa_load_per_ms: list[int]
    subscriptions: int
    path_change_events: int
    path_change_reports: int
    path_change_resends: int
    wall_s: float
    events: int
    sim_end_ns: int
    unreached: tuple[list[str], list[str]] = field(default_factory=lambda: ([], []))
    """Topology nodes the SM did not hold at the end of the run: (beyond the 63-hop
    directed-route limit, cut off from the SM or lost to faults)."""
    lid_moves: list[VfLidMoved] = field(default_factory=list)
    """vSwitch model: each VF LID the SM moved, with its LFT SMPs and what a full
    re-route would have sent (`ibmig.core.sm.vswitch`)."""

    @property
    def reports(self) -> int:
        return sum(v for (c, m, _), v in self.mads.items() if c == SA_CLASS and m == REPORT)

    def count(self, mgmt_class: int, method: int | None = None, attr: int | None = None) -> int:
        return sum(
            v
            for (c, m, a), v in self.mads.items()
            if c == mgmt_class and (method is None or m == method) and (attr is None or a == attr)
        )


class Collector:
    """Listens to engine events for the metrics; hooked before the subnet starts."""

    def __init__(self, sim: VirtualizedSubnet) -> None:
        self.sim = sim
        # Client GID -> delivery times at its server. Only the peers of migrated VMs
        # carry traffic, and clients never move, so the client GID names a connection
        # even when the server's GID changes (dynamic assignment).
        self.deliveries: dict[bytes, list[int]] = {}
        self.path_changes = 0  # PathChangeDetected: migration events the SA saw
        self.reports_69 = 0  # first sends of trap 69 Reports
        self.reports_69_resent = 0
        # Per VM, the last alias GUID request of its dom0 that failed (time, what).
        self.alias_failures: dict[str, tuple[int, str]] = {}
        self.lid_moves: list[VfLidMoved] = []
        sim.add_event_hook(
            self.on_event, MessageDelivered, ReportSent, PathChangeDetected, AliasFailed
        )
        sim.add_event_hook(lambda node, event: self.lid_moves.append(event), VfLidMoved)

    def on_event(self, node: int, event: Any) -> None:
        if isinstance(event, MessageDelivered):
            self.deliveries.setdefault(event.client_gid, []).append(event.time_ns)
        elif isinstance(event, ReportSent) and event.trap_number == PATH_CHANGE_TRAP:
            if event.attempt == 0:
                self.reports_69 += 1
            else:
                self.reports_69_resent += 1
        elif isinstance(event, PathChangeDetected):
            self.path_changes += 1
        elif isinstance(event, AliasFailed) and event.vm is not None:
            self.alias_failures[event.vm] = (
                event.time_ns,
                f"alias GUID {event.operation} 0x{event.guid:016x} failed ({event.reason})",
            )


def migration_outcome(migration: LiveMigration, collector: Collector) -> str:
    """What became of a migration by the end of the run (`MigrationResult.outcome`)."""
    if migration.done_ns is not None:
        return "completed"
    if migration.aborted:
        cut = migration.timeline[-1].phase.value
        return f"aborted in {cut} ({migration.abort_reason}): the VM runs at its source"
    phase = migration.phase.value
    failure = collector.alias_failures.get(migration.vm)
    if failure is not None and failure[0] >= (migration.started_ns or 0):
        return f"failed in {phase}: {failure[1]}"
    return f"unfinished: in {phase} when the run ended"


def measure(
    scenario: Scenario,
    sim: VirtualizedSubnet,
    collector: Collector,
    connections: list[ConnectionResult],
    launched: Launched,
    wall_s: float,
) -> RunResult:
    """The run's result, once the simulator has run to the scenario's end."""
    migrations = launched.migrations
    first_start = (
        min((m.started_ns or 0) for m, _, _ in migrations) if migrations else launched.end_ns
    )
    for conn in connections:
        client_gid = sim.vms[conn.client].guest.gid
        times = collector.deliveries.get(client_gid, [])
        conn.deliveries_ns = times
        migration = next(m for m, _, _ in migrations if m.vm == conn.server)
        start = migration.started_ns or first_start
        before = [t for t in times if t < start]
        after = [t for t in times if t >= start]
        if before and after:
            conn.downtime_ns = after[0] - before[-1]
        if after and migration.done_ns is not None:
            conn.reconnect_ns = after[0] - migration.done_ns
    mads = Counter(sim.mad_counts)
    mads.subtract(launched.mads_before)
    results = [
        MigrationResult(
            m.vm,
            src,
            dst,
            m.started_ns or 0,
            m.done_ns,
            m.total_time_ns,
            m.vm_downtime_ns,
            m.rc_downtime_ns,
            [(r.phase.value, r.start_ns, r.end_ns) for r in m.timeline],
            migration_outcome(m, collector),
        )
        for m, src, dst in migrations
    ]
    bins = sim.sa_received_bins
    return RunResult(
        scenario=scenario,
        n=scenario.hosts.n,
        m=scenario.hosts.m,
        connections=connections,
        migrations=results,
        mads=+mads,
        intra_host=Counter(sim.intra_host),
        drops=Counter(sim.stats.drops),
        data_packets=sim.data_packets,
        sa_load_per_ms=[bins.get(i, 0) for i in range(max(bins, default=-1) + 1)],
        subscriptions=len(sim.sa.subscriptions),
        path_change_events=collector.path_changes,
        path_change_reports=collector.reports_69,
        path_change_resends=collector.reports_69_resent,
        wall_s=wall_s,
        events=sim.kernel.events_run,
        sim_end_ns=sim.kernel.now_ns,
        unreached=sim.unreached(),
        lid_moves=list(collector.lid_moves),
    )


def summarize_downtime(result: RunResult) -> dict[str, Any]:
    """One row of the downtime table (the JSON shape `ibmig reproduce --json` prints)."""
    s = result.scenario
    downs = [c.downtime_ns for c in result.connections if c.downtime_ns is not None]
    recon = [c.reconnect_ns for c in result.connections if c.reconnect_ns is not None]
    migration = result.migrations[0] if result.migrations else None

    def us(values: list[int]) -> dict[str, float | None]:
        if not values:
            return {"median": None, "max": None}
        return {"median": statistics.median(values) / 1e3, "max": max(values) / 1e3}

    return {
        "assignment": s.signalling.assignment.value,
        "strategy": s.signalling.strategy.name,
        "path_cache": s.workload.path_cache,
        "peers": len(result.connections),
        "connected_after": len(downs),
        "service_downtime_us": us(downs),
        "reconnect_us": us(recon),
        "migration_downtime_us": (
            migration.rc_downtime_ns / 1e3 if migration and migration.rc_downtime_ns else None
        ),
        "vm_downtime_us": (
            migration.vm_downtime_ns / 1e3 if migration and migration.vm_downtime_ns else None
        ),
        "migration_time_ms": (
            migration.total_ns / 1e6 if migration and migration.total_ns else None
        ),
        "fabric_mads": sum(result.mads.values()),
        "reports": result.reports,
        "path_records": result.count(SA_CLASS, 0x01, ATTR_PATH_RECORD),
        "cm_mads": result.count(CM_CLASS),
        "intra_host_forwards": result.intra_host.get("dom0_to_guest", 0),
        "drops": dict(result.drops),
    }


def summarize_messages(result: RunResult) -> dict[str, Any]:
    """Management messages of the migration event(s), per event."""
    events = max(1, len(result.migrations))
    fabric = sum(result.mads.values())
    return {
        "strategy": result.scenario.signalling.strategy.name,
        "n": result.n,
        "m": result.m,
        "reports_per_event": result.path_change_reports // events,
        "report_resends_per_event": result.path_change_resends // events,
        "fabric_mads_per_event": fabric // events,
        "intra_host_forwards_per_event": result.intra_host.get("dom0_to_guest", 0) // events,
        "subscriptions": result.subscriptions,
        "path_change_events": result.path_change_events,
        "sa_mads_per_event": result.count(SA_CLASS) // events,
    }

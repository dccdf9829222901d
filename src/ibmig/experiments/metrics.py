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
- the SA's load: MADs it received, in 1 ms bins;
- per migration event (`MigrationEventMetrics`, aggregated in `RunResult`): from
  the alias move (the SA's `PathChangeDetected`; without detection, strategy
  "none", the migration's end, when dom0 registers the alias) to the last
  subscriber's ReportResp (notification makespan) and to the last peer's first
  delivery (recovery makespan); the SA's busy time and largest queue in between
  (contention only: the SM node's single server, which the SM's SMPs share);
  the event's Reports and their resends (a ReportResp late because the SA or a
  port was busy, or lost); PathRecord Gets and CM MADs sent from this event's
  alias move to the next one's.
"""

from __future__ import annotations

import statistics
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ibmig.core.guest.events import MessageDelivered
from ibmig.core.host.events import AliasFailed
from ibmig.core.migration.machine import LiveMigration
from ibmig.core.sa import PathChangeDetected, ReportAcked, ReportGaveUp, ReportSent
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


@dataclass(frozen=True, slots=True)
class MigrationEventMetrics:
    """One migration as the SA and the peers saw it (module docstring)."""

    vm: str
    peers: int
    """Peer connections of the VM (clients with a busy RC connection to it)."""
    alias_moved_ns: int | None
    notification_makespan_ns: int | None
    """Alias move -> the last ReportResp the SA handled for this event's Reports;
    None when no Report was acknowledged (none sent, or all given up)."""
    recovery_makespan_ns: int | None
    """Alias move -> the last peer's first delivery after the migration began;
    None without peers or when a peer never came back."""
    reports: int
    reports_resent: int
    sa_busy_ns: int
    """SA (SM node) processing done between the alias move and the last
    ReportResp handled (or Report given up)."""
    sa_max_queue: int
    """The most MADs waiting at the SA's node at once in that window."""
    path_records: int
    cm_mads: int


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
    event_metrics: tuple[MigrationEventMetrics, ...] = ()
    """Per migration, in the order they started."""
    notification_makespan_ns: int | None = None
    """The longest of the events' (None: no event had a ReportResp)."""
    recovery_makespan_ns: int | None = None
    """The longest of the events', None when no event had peers or a peer of some
    event never came back."""
    sa_busy_ns: int = 0
    """SA processing from the first event's alias move to the last event's end
    (overlapping events counted once)."""
    sa_max_queue: int = 0
    reports_resent: int = 0

    @property
    def reports(self) -> int:
        return sum(v for (c, m, _), v in self.mads.items() if c == SA_CLASS and m == REPORT)

    def count(self, mgmt_class: int, method: int | None = None, attr: int | None = None) -> int:
        return sum(
            v
            for (c, m, a), v in self.mads.items()
            if c == mgmt_class and (method is None or m == method) and (attr is None or a == attr)
        )


@dataclass(slots=True, eq=False)
class _Detection:
    """A PathChangeDetected and what followed it, while the run goes on."""

    vguid: int
    time_ns: int
    sa_done_start_ns: int
    first_sample: int
    path_records_before: int
    cm_mads_before: int
    sa_done_end_ns: int = 0
    last_sample: int = -1
    last_ack_ns: int | None = None
    reports: int = 0
    resent: int = 0
    outstanding: int = 0


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
        self.detections: list[_Detection] = []
        self._report_event: dict[int, _Detection] = {}  # TID of a trap 69 Report
        # The SA's largest queue between consecutive samples (at each alias move and
        # each ReportResp); an event's largest is the max over its samples.
        self.queue_samples = array("q")
        sim.add_event_hook(
            self.on_event, MessageDelivered, ReportSent, PathChangeDetected, AliasFailed
        )
        sim.add_event_hook(self.on_report_done, ReportAcked, ReportGaveUp)

    def _sa_done_ns(self) -> int:
        """SA (SM node) processing completed by now."""
        server = self.sim.servers.get(id(self.sim.sm_engine))
        if server is None:
            return 0
        return server.busy_ns - max(0, server.busy_until_ns - self.sim.kernel.now_ns)

    def _sample_queue(self) -> int:
        server = self.sim.servers.get(id(self.sim.sm_engine))
        self.queue_samples.append(0 if server is None else server.take_peak(self.sim.kernel.now_ns))
        return len(self.queue_samples) - 1

    def counts(self) -> tuple[int, int]:
        mads = self.sim.mad_counts
        path_records = mads.get((SA_CLASS, 0x01, ATTR_PATH_RECORD), 0)
        cm = sum(v for (c, _, _), v in mads.items() if c == CM_CLASS)
        return path_records, cm

    def on_report_done(self, node: int, event: Any) -> None:
        detection = self._report_event.pop(event.tid, None)
        if detection is None:
            return
        detection.outstanding -= 1
        if isinstance(event, ReportAcked):
            detection.last_ack_ns = event.time_ns
        detection.last_sample = self._sample_queue()
        detection.sa_done_end_ns = self._sa_done_ns()

    def on_event(self, node: int, event: Any) -> None:
        if isinstance(event, MessageDelivered):
            self.deliveries.setdefault(event.client_gid, []).append(event.time_ns)
        elif isinstance(event, ReportSent) and event.trap_number == PATH_CHANGE_TRAP:
            if event.attempt == 0:
                self.reports_69 += 1
                if self.detections:
                    # Sent in the step that detected the move: the latest event's.
                    detection = self.detections[-1]
                    self._report_event[event.tid] = detection
                    detection.reports += 1
                    detection.outstanding += 1
            else:
                self.reports_69_resent += 1
                owner = self._report_event.get(event.tid)
                if owner is not None:
                    owner.resent += 1
        elif isinstance(event, PathChangeDetected):
            self.path_changes += 1
            sample = self._sample_queue()
            path_records, cm = self.counts()
            done = self._sa_done_ns()
            self.detections.append(
                _Detection(event.vguid, event.time_ns, done, sample, path_records, cm, done, sample)
            )
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
    events = event_metrics(sim, collector, launched, connections)
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
        event_metrics=tuple(e for e, _ in events),
        **aggregate(events, collector),
    )


def event_metrics(
    sim: VirtualizedSubnet,
    collector: Collector,
    launched: Launched,
    connections: list[ConnectionResult],
) -> list[tuple[MigrationEventMetrics, _Detection | None]]:
    """Each migration with the alias move the SA detected for its VM (the first of
    its vGUID after it started), and the figures of `MigrationEventMetrics`."""
    detections = collector.detections
    samples = collector.queue_samples
    end_counts = collector.counts()
    taken: set[int] = set()
    out: list[tuple[MigrationEventMetrics, _Detection | None]] = []
    for migration, _, _ in launched.migrations:
        started = migration.started_ns or 0
        slot = sim.vms.get(migration.vm)
        vguid = slot.vguid if slot is not None else None
        index = next(
            (
                i
                for i, d in enumerate(detections)
                if i not in taken and d.vguid == vguid and d.time_ns >= started
            ),
            None,
        )
        detection = None if index is None else detections[index]
        if index is not None:
            taken.add(index)
        moved = detection.time_ns if detection is not None else migration.done_ns
        peers = [c for c in connections if c.server == migration.vm]
        firsts = [next((t for t in c.deliveries_ns if t >= started), None) for c in peers]
        recovery = None
        if moved is not None and peers and all(t is not None for t in firsts):
            recovery = max(t for t in firsts if t is not None) - moved
        if detection is None or index is None:
            out.append(
                (
                    MigrationEventMetrics(
                        migration.vm, len(peers), moved, None, recovery, 0, 0, 0, 0, 0, 0
                    ),
                    None,
                )
            )
            continue
        following = detections[index + 1] if index + 1 < len(detections) else None
        path_records_after, cm_after = (
            (following.path_records_before, following.cm_mads_before)
            if following is not None
            else end_counts
        )
        window = samples[detection.first_sample : detection.last_sample + 1]
        out.append(
            (
                MigrationEventMetrics(
                    vm=migration.vm,
                    peers=len(peers),
                    alias_moved_ns=moved,
                    notification_makespan_ns=(
                        None
                        if detection.last_ack_ns is None
                        else detection.last_ack_ns - detection.time_ns
                    ),
                    recovery_makespan_ns=recovery,
                    reports=detection.reports,
                    reports_resent=detection.resent,
                    sa_busy_ns=detection.sa_done_end_ns - detection.sa_done_start_ns,
                    sa_max_queue=max(window, default=0),
                    path_records=path_records_after - detection.path_records_before,
                    cm_mads=cm_after - detection.cm_mads_before,
                ),
                detection,
            )
        )
    return out


def aggregate(
    events: list[tuple[MigrationEventMetrics, _Detection | None]], collector: Collector
) -> dict[str, Any]:
    """The run's figures over its migration events (`RunResult` fields)."""
    notified = [e.notification_makespan_ns for e, _ in events]
    known = [n for n in notified if n is not None]
    with_peers = [e for e, _ in events if e.recovery_makespan_ns is not None]
    unrecovered = any(e.peers and e.recovery_makespan_ns is None for e, _ in events)
    detections = [d for _, d in events if d is not None]
    busy = 0
    if detections:
        busy = max(d.sa_done_end_ns for d in detections) - min(
            d.sa_done_start_ns for d in detections
        )
    return {
        "notification_makespan_ns": max(known) if known else None,
        "recovery_makespan_ns": (
            max(e.recovery_makespan_ns for e in with_peers)  # type: ignore[type-var]
            if with_peers and not unrecovered
            else None
        ),
        "sa_busy_ns": busy,
        "sa_max_queue": max((e.sa_max_queue for e, _ in events), default=0),
        "reports_resent": sum(e.reports_resent for e, _ in events),
    }


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

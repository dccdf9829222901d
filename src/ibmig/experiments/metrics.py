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
- per path-change event (an alias GUID the SA saw move), the Reports it sent for
  it, their resends, and the subscriptions the SA held then, with how many of them
  are left at a LID their subscriber no longer sits behind (`NoticeEvent`). Under
  per-VM signalling a migrated VM subscribes again from its new LID and its old
  subscription stays: OpenSM keeps a subscription until it is withdrawn or the
  subscriber's port leaves the subnet (osm_sa_informinfo.c; the port stays: the
  host is still there), and a VM whose VF is gone withdraws nothing. ibmig does
  the same and shows the debris: each later event sends a Report to every stale
  subscription, to a port where the VM's GID is no longer, and resends it until
  the SA's retries are spent.
- per migration event (`MigrationEventMetrics`, aggregated in `RunResult`): from
  the alias move (the SA's `PathChangeDetected`; without detection, strategy
  "none", the migration's end, when dom0 registers the alias) to the last
  subscriber's ReportResp (notification makespan) and to the last peer's first
  delivery (recovery makespan); the SA's busy time and largest queue in between
  (contention only: the SM node's single server, which the SM's SMPs share);
  the event's Reports and their resends (a ReportResp late because the SA or a
  port was busy, or lost); PathRecord Gets and CM MADs sent from this event's
  alias move to the next one's.

The `Collector` keeps one record per path-change event (`_Detection`): its Reports,
resends and subscriptions, and the SA's work and queue around it. `NoticeEvent` and
`MigrationEventMetrics` are both derived from it.
"""

from __future__ import annotations

import math
import statistics
from array import array
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ibmig.core.engine import Engine
from ibmig.core.guest.events import Attached, MessageDelivered
from ibmig.core.host.events import AliasFailed
from ibmig.core.migration.machine import LiveMigration
from ibmig.core.sa import PathChangeDetected, ReportAcked, ReportGaveUp, ReportSent
from ibmig.core.sm.vswitch import VfLidMoved
from ibmig.experiments.migrations import Launched
from ibmig.experiments.scenario import Scenario
from ibmig.sim.hosting import Failover, VirtualizedSubnet
from ibmig.sim.subnet import EngineServer
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
    cause: str | None = None
    """For a peer that is not back (no delivery after the migration completed, or
    after it began when it did not complete): why, from the end state
    (`connection_cause`): what the client still holds ("stale cached path: ..."),
    why the server cannot answer, or, when nothing explains it, what the client is
    doing. None for a peer that is back."""
    vm: str = ""
    """The migrating VM whose migration this connection measures: "" for the server,
    or the client's name when the migrated VM is the active side
    (`workload.direction`)."""

    @property
    def migrating(self) -> str:
        """The VM whose migration this connection measures."""
        return self.vm or self.server


def connection_cause(
    sim: VirtualizedSubnet,
    conn: ConnectionResult,
    reports_given_up: Mapping[bytes, int] | None = None,
) -> str:
    """Why a peer delivers nothing any more, from the end state, most telling first:
    a VM without a VF; the client's cached PathRecord naming another LID than the
    one the server answers at (a path change it never learnt of; `reports_given_up`,
    subscriber GID -> path-change Reports the SA gave up on, says whether its
    Report was lost on every send); the SA naming no path, or another LID, for the
    server's GID; the server's port not holding its alias GUID, so the HCA drops
    what comes for it (`ibmig.core.host.demux`); else what the client is doing."""
    client, server = sim.vms[conn.client].guest, sim.vms[conn.server].guest
    if not server.attached:
        return f"{conn.server} has no VF attached"
    if not client.attached:
        return f"{conn.client} has no VF attached"
    record = client.paths.lookup(server.gid)
    if record is not None and record.dlid != server.lid:
        cause = f"stale cached path: LID {record.dlid}, {conn.server} is behind LID {server.lid}"
        host = sim.hosts[sim.vms[conn.client].host].agent
        lost = reports_given_up or {}
        if lost.get(client.gid) or lost.get(host.port_gid):
            cause += " (the SA gave up its path-change Report to it: lost on every send)"
        return cause
    guid = sim.vms[conn.server].vguid
    sa_lid = sim.sa.path_lid(guid)
    if sa_lid is None:
        return f"the SA has no path to {conn.server} (alias GUID 0x{guid:016x} in no port's table)"
    if sa_lid != server.lid:
        return f"the SA names LID {sa_lid} for {conn.server}, it is behind LID {server.lid}"
    slot = sim.hosts[sim.vms[conn.server].host]
    if sim.agents[slot.node].guid_index(slot.port, guid) is None:
        return (
            f"{conn.server}'s port does not hold its alias GUID 0x{guid:016x}"
            " (the SM's GUIDInfo write was lost; the SA had accepted it)"
        )
    stream = next((s for s in client.streams.values() if s.gid == server.gid), None)
    if stream is None:
        return f"{conn.client} no longer keeps a stream to {conn.server}"
    return (
        f"no cause in the end state: {conn.client} is {stream.state.name.lower()}"
        f" after {stream.failures} failed attempts"
    )


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
    """"completed"; "failed in PHASE: CAUSE; rolled back: ..." when something it waits
    on failed for good (an alias GUID request dom0 gave up) and it was rolled back to
    its source; "aborted in PHASE (REASON): ..." when it was aborted (`abort_ms`); or
    "unfinished: in PHASE when the run ended" when the run cut it off."""


@dataclass(frozen=True, slots=True)
class NoticeEvent:
    """One path-change event and what it cost the SA (module docstring)."""

    vguid: int
    time_ns: int
    reports: int
    """Reports sent for it (first sends)."""
    resends: int
    """Those Reports sent again (no ReportResp in time), by the end of the run."""
    subscriptions: int
    """Path-change subscriptions the SA held when it saw the move."""
    stale_subscriptions: int
    """Of those, left at a LID their subscriber's GID is no longer behind."""


def stale_subscriptions(sim: VirtualizedSubnet) -> tuple[int, int]:
    """(subscriptions, of which stale) the SA holds now: stale if the subscriber's
    GID no longer resolves to the LID the subscription sends Reports to."""
    sa = sim.sa
    db = sa.db
    held = sa.subscriptions
    stale = sum(
        1
        for sub in held
        if db.lid_of_guid(int.from_bytes(sub.subscriber_gid[8:], "big")) != sub.lid
    )
    return len(held), stale


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
    failover: Failover | None = None
    """What the master SM's failure cost (`[[faults.sm_fail]]`), else None."""
    unreached: tuple[list[str], list[str]] = field(default_factory=lambda: ([], []))
    """Topology nodes the SM did not hold at the end of the run: (beyond the 63-hop
    directed-route limit, cut off from the SM or lost to faults)."""
    notice_events: list[NoticeEvent] = field(default_factory=list)
    """Per path-change event, in order: Reports, resends, subscriptions (stale)."""
    stale_subscriptions: int = 0
    """Subscriptions left at a LID their subscriber is no longer behind, at the end."""
    lid_moves: list[VfLidMoved] = field(default_factory=list)
    """vSwitch model: each VF LID the SM moved, with its LFT SMPs and what a full
    re-route would have sent (`ibmig.core.sm.vswitch`)."""
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
    """A path-change event (the SA's PathChangeDetected) and what followed it, while
    the run goes on: the one record of the event, from which both `NoticeEvent`
    (what it cost the SA) and `MigrationEventMetrics` (the migration it belongs to)
    are derived."""

    vguid: int
    time_ns: int
    subscriptions: int
    """Path-change subscriptions the SA held when it saw the move."""
    stale_subscriptions: int
    sa_done_start_ns: int
    first_sample: int
    path_records_before: int
    cm_mads_before: int
    sa_done_end_ns: int = 0
    last_sample: int = -1
    """The last of `Collector.queue_samples` its window takes in."""
    open_peak: int | None = None
    """The SA's largest queue since `last_sample`, as it stood at the event's last
    Report done, when no sample was taken then (`Collector.on_report_done`)."""
    last_ack_ns: int | None = None
    reports: int = 0
    """Its Reports (first sends: those the SA sent in the step that saw the move)."""
    resent: int = 0
    """Those Reports sent again, by the end of the run."""
    outstanding: int = 0

    def max_queue(self, samples: Sequence[int]) -> int:
        """The SA's largest queue from the alias move to the last Report done. The
        sample taken at the move closes the window before it (its peak is the queue
        before the move, e.g. the set-up's subscriptions): the event's is over the
        samples after it, and the peak since the last of them (`open_peak`)."""
        window = samples[self.first_sample + 1 : self.last_sample + 1]
        largest = max(window, default=0)
        return largest if self.open_peak is None else max(largest, self.open_peak)

    def notice_event(self) -> NoticeEvent:
        return NoticeEvent(
            self.vguid,
            self.time_ns,
            self.reports,
            self.resent,
            self.subscriptions,
            self.stale_subscriptions,
        )


class Collector:
    """Listens to engine events for the metrics; hooked before the subnet starts."""

    def __init__(
        self, sim: VirtualizedSubnet, traps: tuple[int, ...] = (PATH_CHANGE_TRAP,)
    ) -> None:
        self.sim = sim
        self.traps = frozenset(traps)
        """The traps that tell a move (`ibmig.core.sa_client.NOTICES`): their Reports count."""
        # (client VM, server VM) -> delivery times at the server. A client may have
        # several servers, and in a storm clients move too (under dynamic assignment
        # with a new GID), so the GIDs of each delivery are named when it happens;
        # the GID -> VM map is rebuilt after a guest attaches somewhere.
        self.deliveries: dict[tuple[str, str], list[int]] = {}
        self._vm_of_gid: dict[bytes, str] | None = None
        self.path_changes = 0  # PathChangeDetected: migration events the SA saw
        self.reports_69 = 0  # first sends of path-change Reports (trap 69, or 64 and 65)
        self.reports_69_resent = 0
        # Per VM, the last alias GUID request of its dom0 that failed (time, what).
        self.alias_failures: dict[str, tuple[int, str]] = {}
        self.lid_moves: list[VfLidMoved] = []
        # One record per path-change event, in order; the event of each of its
        # Reports not yet answered or given up, by TID.
        self.detections: list[_Detection] = []
        self._event_of_tid: dict[int, _Detection] = {}
        # The SA's largest queue between consecutive samples (at each alias move, and
        # at a Report done when the SA's server changed since the last sample); an
        # event's largest is the max over its samples and its `open_peak`.
        self.queue_samples = array("q")
        self._sa_server: EngineServer | None = None  # `_sample_sa`
        self._sa_engine: Engine | None = None
        self._sampled_server: EngineServer | None = None  # whose peak the last sample took
        # The peak of `_sampled_server` at the last Report done since that sample, if
        # any (`on_report_done`): a sample of its own once the server changes.
        self._unsampled_peak: int | None = None
        # Subscriber GID -> path-change Reports the SA gave up on (`connection_cause`).
        self.reports_given_up: Counter[bytes] = Counter()
        # Reports come by the hundred thousand: theirs are hooks of their own, spared
        # the type tests of `on_event`.
        sim.add_event_hook(
            self.on_event, MessageDelivered, ReportGaveUp, PathChangeDetected, AliasFailed, Attached
        )
        sim.add_event_hook(self.on_report_sent, ReportSent)
        sim.add_event_hook(lambda node, event: self.lid_moves.append(event), VfLidMoved)
        sim.add_event_hook(self.on_report_done, ReportAcked, ReportGaveUp)

    def _sample_sa(self) -> tuple[int, int]:
        """Sample the SA's queue (the largest since the last sample) into
        `queue_samples`; (the sample's index, SA (SM node) processing completed by
        now). At each alias move, and at a Report done on a server not sampled yet
        (`on_report_done`)."""
        sim = self.sim
        samples = self.queue_samples
        engine = sim.sm_engine
        server = self._sa_server
        if server is None or self._sa_engine is not engine:
            # Kept across samples: a server, once made, is its engine's for the run;
            # the SM node's engine changes only when a standby takes over.
            server = self._sa_server = sim.servers.get(id(engine))
            self._sa_engine = engine
        if self._unsampled_peak is not None:
            # Reports done on the server sampled last, unsampled: on the same server
            # this sample covers them; on another, their peak is the sample taken at
            # the last of them (that server is not sampled again: a standby that
            # takes over is another engine).
            if server is not self._sampled_server:
                samples.append(self._unsampled_peak)
            self._unsampled_peak = None
        if server is None:
            samples.append(0)
            return len(samples) - 1, 0
        now = sim.kernel.now_ns
        samples.append(server.take_peak(now))
        self._sampled_server = server
        return len(samples) - 1, server.busy_ns - max(0, server.busy_until_ns - now)

    def counts(self) -> tuple[int, int]:
        mads = self.sim.mad_counts
        path_records = mads.get((SA_CLASS, 0x01, ATTR_PATH_RECORD), 0)
        cm = sum(v for (c, _, _), v in mads.items() if c == CM_CLASS)
        return path_records, cm

    def on_report_done(self, node: int, event: Any) -> None:
        # A Report is resent only until it is answered or given up: its TID is done.
        detection = self._event_of_tid.pop(event.tid, None)
        if detection is None:
            return
        detection.outstanding -= 1
        if isinstance(event, ReportAcked):
            detection.last_ack_ns = event.time_ns
        server = self._sa_server
        if (
            server is None
            or server is not self._sampled_server
            or self._sa_engine is not self.sim.sm_engine
        ):
            detection.last_sample, detection.sa_done_end_ns = self._sample_sa()
            detection.open_peak = None
            return
        # Once per ReportResp, the server's peak is read rather than taken: samples
        # only cut the run into pieces whose peaks are maxed over a window, and the
        # peak since the last sample (the server notes every rise of its queue) is
        # the max of the pieces a sample here would have cut it into.
        now = self.sim.kernel.now_ns
        detection.last_sample = len(self.queue_samples) - 1
        detection.open_peak = self._unsampled_peak = server.peak
        detection.sa_done_end_ns = server.busy_ns - max(0, server.busy_until_ns - now)

    def on_report_sent(self, node: int, event: ReportSent) -> None:
        if event.trap_number not in self.traps:
            return
        # The SA Reports a move in the step it detects it: a Report sent then is the
        # latest event's. Traps 64/65 also tell of ports in and out of service: only
        # those of a move are counted.
        detections = self.detections
        if event.attempt == 0:
            if detections and detections[-1].time_ns == event.time_ns:
                detection = detections[-1]
                self._event_of_tid[event.tid] = detection
                detection.reports += 1
                detection.outstanding += 1
            elif event.trap_number != PATH_CHANGE_TRAP:
                return
            self.reports_69 += 1
        else:
            owner = self._event_of_tid.get(event.tid)
            if owner is not None:
                owner.resent += 1
            elif event.trap_number != PATH_CHANGE_TRAP:
                return
            self.reports_69_resent += 1

    def on_event(self, node: int, event: Any) -> None:
        if isinstance(event, MessageDelivered):
            names = self._vm_of_gid
            if names is None:
                names = self._vm_of_gid = {v.guest.gid: v.name for v in self.sim.vms.values()}
            client = names.get(event.client_gid)
            server = names.get(event.server_gid)
            if client is not None and server is not None:
                self.deliveries.setdefault((client, server), []).append(event.time_ns)
        elif isinstance(event, Attached):
            self._vm_of_gid = None
        elif isinstance(event, ReportGaveUp):
            if event.trap_number in self.traps:
                self.reports_given_up[event.subscriber.subscriber_gid] += 1
        elif isinstance(event, PathChangeDetected):
            self.path_changes += 1
            held, stale = stale_subscriptions(self.sim)
            sample, done = self._sample_sa()
            path_records, cm = self.counts()
            self.detections.append(
                _Detection(
                    event.vguid, event.time_ns, held, stale, done, sample, path_records, cm,
                    done, sample,
                )
            )  # fmt: skip
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
        source = collector.sim.hosts.get(migration.src_host)
        if source is not None and source.agent.is_up(migration.vm):
            where = "the VM runs at its source"
        else:
            where = "the VM was not up at its source again when the run ended"
        if migration.failure is not None:
            return f"failed in {cut}: {migration.failure}; rolled back: {where}"
        return f"aborted in {cut} ({migration.abort_reason}): {where}"
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
        times = collector.deliveries.get((conn.client, conn.server), [])
        conn.deliveries_ns = times
        migration = next(m for m, _, _ in migrations if m.vm == conn.migrating)
        start = migration.started_ns or first_start
        before = [t for t in times if t < start]
        after = [t for t in times if t >= start]
        if before and after:
            conn.downtime_ns = after[0] - before[-1]
        if after and migration.done_ns is not None:
            conn.reconnect_ns = after[0] - migration.done_ns
        # Back means a delivery after the migration completed (after it began, for
        # one that did not complete); a peer that is not back is given its cause.
        back = after if migration.done_ns is None else [t for t in after if t > migration.done_ns]
        if not back:
            conn.cause = connection_cause(sim, conn, collector.reports_given_up)
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
        failover=sim.failover,
        unreached=sim.unreached(),
        notice_events=[d.notice_event() for d in collector.detections],
        stale_subscriptions=stale_subscriptions(sim)[1],
        lid_moves=list(collector.lid_moves),
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
        peers = [c for c in connections if c.migrating == migration.vm]
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
                    sa_max_queue=detection.max_queue(samples),
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


def summarize_event_costs(result: RunResult) -> dict[str, Any]:
    """What the migration event(s) cost in time at the SA (`ibmig reproduce`'s sweep,
    beside `summarize_messages`' counts): the notification makespan (ms, the longest
    event's; None when no Report was acknowledged), the SA's busy time per event (ms),
    its largest queue, and Reports resent per event."""
    events = max(1, len(result.migrations))
    makespan = result.notification_makespan_ns
    return {
        "notification_makespan_ms": None if makespan is None else makespan / 1e6,
        "sa_busy_ms_per_event": result.sa_busy_ns / events / 1e6,
        "sa_max_queue": result.sa_max_queue,
        "reports_resent_per_event": result.reports_resent // events,
    }


# --- statistics over seeds -------------------------------------------------------------
#
# A lab cell of `ibmig reproduce` runs once per seed; the seed draws which VMs are the
# migrated VM's peers, each peer's send phase within the workload interval (so where
# the migration falls between two messages), PSNs, comm IDs and reconnect back-off
# jitter. The runs of one cell are independent and identically distributed, nothing
# more is known of their distribution (it is lumpy: a handful of timers and
# intervals), so the median's interval is the distribution-free one from order
# statistics: P(x(r) <= median <= x(k+1-r)) = 1 - 2 P(B <= r-1), B ~ Binomial(k, 1/2),
# exact for continuous outcomes and a lower bound with ties. A bootstrap percentile
# interval would need far more than 10 runs to be calibrated and is no better than
# these order statistics at k = 10 (it resamples the same 10 values).

MEDIAN_INTERVAL_LEVEL = 0.95
"""The coverage the median's interval aims for (it gets the smallest exact coverage
at or above this that k runs allow; below it only when k < 6)."""


def median_interval_ranks(k: int, level: float = MEDIAN_INTERVAL_LEVEL) -> tuple[int, int, float]:
    """1-based ranks (r, k+1-r) of the order statistics that bound the median of k
    independent runs, and the interval's exact coverage. The narrowest interval with
    coverage >= `level`; [min, max] (r = 1) with its lower coverage when k is too
    small for `level` (k = 2: 50%)."""
    if k < 1:
        raise ValueError(f"need at least one run, got {k}")
    tail = 0  # P(B <= r-1) * 2**k, summed as r grows
    best = (1, k, 1.0 - 2.0 * math.comb(k, 0) / 2**k)
    for r in range(1, k // 2 + 1):
        tail += math.comb(k, r - 1)
        coverage = 1.0 - 2.0 * tail / 2**k
        if coverage < level:
            break
        best = (r, k + 1 - r, coverage)
    return best


def _order_key(value: float | None) -> float:
    return math.inf if value is None else value


def median_with_interval(values: Sequence[float | None]) -> dict[str, Any]:
    """The median of per-run values and its interval by order statistics
    (`median_interval_ranks`). None is "never" (a connection that did not come back
    before the run ended): it sorts above every number, and a median or bound that
    falls on it is None."""
    k = len(values)
    ordered = sorted(values, key=_order_key)
    low_rank, high_rank, coverage = median_interval_ranks(k)
    mid = (ordered[(k - 1) // 2], ordered[k // 2])
    median = None if mid[0] is None or mid[1] is None else (mid[0] + mid[1]) / 2
    return {
        "median": median,
        "low": ordered[low_rank - 1],
        "high": ordered[high_rank - 1],
        "ranks": [low_rank, high_rank],
        "coverage": round(coverage, 6),
        "runs": k,
    }


def _run_median(values: Sequence[float | None]) -> float | None:
    ordered = sorted(values, key=_order_key)
    if not ordered:
        return None
    mid = (ordered[(len(ordered) - 1) // 2], ordered[len(ordered) // 2])
    return None if mid[0] is None or mid[1] is None else (mid[0] + mid[1]) / 2


def last_peer_after_vport_ms(run: dict[str, Any]) -> float | None:
    """How long after the migrated VM's vport came up (the end of its own RDMA outage)
    the last peer was back, in ms, from a lab run's row; None when a peer never came
    back. The peers' recovery cost, apart from the migration's."""
    downs = run["peer_downtime_us"]
    rdma = run["migration_downtime_us"]
    if not downs or rdma is None or any(d is None for d in downs):
        return None
    return float(max(downs) - rdma) / 1e3


def summarize_seeds(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One lab cell over its seeds, from the per-seed rows of `summarize_downtime`
    with `seed` and `peer_downtime_us` (each peer connection's downtime, None when it
    never delivered again). Per run: the median peer's downtime and the last peer's
    (None when any peer never came back), and how long after the VM's vport was up
    the last peer was back; over the runs, each one's median with its interval, in
    ms. The VM's own figures likewise; the MAD counts: the median run's (the per-seed
    rows carry each)."""
    if not runs:
        raise ValueError("no runs to summarize")
    first = runs[0]

    def ms(value: float | None) -> float | None:
        return None if value is None else value / 1e3

    peer = [_run_median(r["peer_downtime_us"]) for r in runs]
    last = [
        None if any(v is None for v in r["peer_downtime_us"]) or not r["peer_downtime_us"]
        else max(r["peer_downtime_us"])
        for r in runs
    ]  # fmt: skip

    def median_of(key: str) -> Any:
        values = [r[key] for r in runs if r[key] is not None]
        return statistics.median_low(values) if values else None

    return {
        "assignment": first["assignment"],
        "strategy": first["strategy"],
        "path_cache": first["path_cache"],
        "seeds": [r["seed"] for r in runs],
        "peers": sum(r["peers"] for r in runs),
        "connected_after": sum(r["connected_after"] for r in runs),
        "peer_downtime_ms": median_with_interval([ms(v) for v in peer]),
        "last_peer_downtime_ms": median_with_interval([ms(v) for v in last]),
        "vm_pause_ms": median_with_interval([ms(r["vm_downtime_us"]) for r in runs]),
        "vm_rdma_down_ms": median_with_interval([ms(r["migration_downtime_us"]) for r in runs]),
        "last_peer_after_vport_ms": median_with_interval(
            [last_peer_after_vport_ms(r) for r in runs]
        ),
        "path_records": median_of("path_records"),
        "cm_mads": median_of("cm_mads"),
        "fabric_mads": median_of("fabric_mads"),
    }

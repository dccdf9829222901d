"""Run one scenario: bring the subnet up, place hosts and VMs, start the workload,
migrate, and measure.

What is measured, per run:

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

import gc
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

from ibmig.core.guest import GuestAgent
from ibmig.core.guest.config import GuestConfig
from ibmig.core.guest.events import MessageDelivered
from ibmig.core.host import HostAgent, HostConfig
from ibmig.core.migration.machine import LiveMigration
from ibmig.core.migration.timing import MigrationTiming
from ibmig.core.sa import PathChangeDetected, ReportSent, SaConfig
from ibmig.core.sm.manager import SmConfig
from ibmig.errors import ConfigError
from ibmig.experiments.scenario import Scenario
from ibmig.experiments.topology import load_topology
from ibmig.fabric import Fabric, fat_tree_2level, fat_tree_3level, kary_ntree, random_topology
from ibmig.sim.hosting import VirtualizedSubnet, make_rng
from ibmig.sim.latency import LatencyModel
from ibmig.sim.subnet import TraceWriter
from ibmig.wire.capture import CaptureWriter
from ibmig.wire.notice import PATH_CHANGE_TRAP

VGUID_BASE = 0x0002_C9FE_0000_0000  # locally chosen OUI-style block for VM vGUIDs
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

    @property
    def reports(self) -> int:
        return sum(v for (c, m, _), v in self.mads.items() if c == SA_CLASS and m == REPORT)

    def count(self, mgmt_class: int, method: int | None = None, attr: int | None = None) -> int:
        return sum(
            v
            for (c, m, a), v in self.mads.items()
            if c == mgmt_class and (method is None or m == method) and (attr is None or a == attr)
        )


def build_fabric(scenario: Scenario) -> Fabric:
    topo = scenario.topology
    if topo.generator is None:
        assert topo.file is not None
        return load_topology(topo.file)
    params = dict(topo.params)
    makers: dict[str, Callable[..., Fabric]] = {
        "fat_tree_2level": fat_tree_2level,
        "fat_tree_3level": fat_tree_3level,
        "kary_ntree": kary_ntree,
        "random_topology": random_topology,
    }
    try:
        return makers[topo.generator](**params)
    except TypeError as exc:
        raise ConfigError(
            f"bad generator parameters: {exc}", f"{scenario.source}: topology"
        ) from None


def pick_hosts(fabric: Fabric, sm_node: int, n: int, placement: str, seed: int) -> list[int]:
    """n CA nodes (not the SM's) to act as physical servers."""
    candidates = [
        node.index
        for node in fabric.cas
        if node.index != sm_node and fabric.peer(node.index, 1) is not None
    ]
    if len(candidates) < n:
        raise ConfigError(
            f"the topology has {len(candidates)} cabled CAs besides the SM's, fewer than n = {n}",
            "hosts.n",
        )
    if placement == "packed":
        return candidates[:n]
    if placement == "random":
        return sorted(random.Random(f"{seed}:placement").sample(candidates, n))
    # spread: round-robin over the switches the CAs hang off, so VMs and peers sit
    # behind different leaves and paths cross the fabric.
    by_switch: dict[int, list[int]] = {}
    for node in candidates:
        peer = fabric.peer(node, 1)
        assert peer is not None
        by_switch.setdefault(peer.node_index, []).append(node)
    queues = list(by_switch.values())
    chosen: list[int] = []
    while len(chosen) < n:
        for queue in queues:
            if queue and len(chosen) < n:
                chosen.append(queue.pop(0))
    return chosen


def _vm_ip(index: int) -> IPv4Address:
    return IPv4Address(0x0A00_0000 + index + 1)  # 10.0.0.1, ...


class _Collector:
    """Listens to engine events for the metrics."""

    def __init__(self, sim: VirtualizedSubnet) -> None:
        self.sim = sim
        # Client GID -> delivery times at its server. Only the peers of migrated VMs
        # carry traffic, and clients never move, so the client GID names a connection
        # even when the server's GID changes (dynamic assignment).
        self.deliveries: dict[bytes, list[int]] = {}
        self.path_changes = 0  # PathChangeDetected: migration events the SA saw
        self.reports_69 = 0  # first sends of trap 69 Reports
        self.reports_69_resent = 0

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


def run_scenario(
    scenario: Scenario,
    *,
    capture: CaptureWriter | None = None,
    trace: TraceWriter | None = None,
    progress: Callable[[int], None] | None = None,
    traffic: bool = True,
) -> RunResult:
    """Run `scenario`; `traffic=False` skips the workload (message-count sweeps).

    Garbage collection. A run makes almost no reference cycles (a full run of the
    benchmark leaves under a thousand cyclic objects), yet Python's automatic
    collector rescans live objects every few hundred allocations: the subnet,
    hosts and VMs of the set-up (millions of objects at data-centre scale) and the
    thousands of Reports in flight after every migration. On the 11,664-host tree
    with 186,608 VMs that took over a quarter of the migrations' wall time. So the
    automatic collector is paused for the run; the set-up's objects are collected
    once and frozen (`gc.freeze`) when built, the run's own garbage is collected
    every `GC_EVERY_EVENTS` events, and everything is handed back at the end.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _run_scenario(scenario, capture, trace, progress, traffic)
    finally:
        gc.unfreeze()
        if was_enabled:
            gc.enable()


def _run_scenario(
    scenario: Scenario,
    capture: CaptureWriter | None,
    trace: TraceWriter | None,
    progress: Callable[[int], None] | None,
    traffic: bool,
) -> RunResult:
    started = time.perf_counter()
    fabric = build_fabric(scenario)
    seed = scenario.run.seed
    strategy = scenario.signalling.strategy
    latency = LatencyModel().with_overrides(dict(scenario.latency), f"{scenario.source}: latency")
    timing = MigrationTiming().with_overrides(
        dict(scenario.migration_timing), f"{scenario.source}: timing.migration"
    )
    guest_config = GuestConfig(
        path_cache=scenario.workload.path_cache,
        message_interval_ns=int(scenario.workload.interval_us * 1000),
        message_bytes=scenario.workload.message_bytes,
    ).with_overrides(scenario.guest_timing, f"{scenario.source}: timing.guest")
    sim = VirtualizedSubnet(
        fabric,
        latency=latency,
        sm_config=SmConfig(routing=scenario.run.routing),
        sa_config=SaConfig(detect_alias_moves=strategy != "none"),
        seed=seed,
        capture=capture,
        trace=trace,
    )
    for sma in sim.agents:
        sma.record_events = trace is not None
    collector = _Collector(sim)
    sim.add_event_hook(collector.on_event, MessageDelivered, ReportSent, PathChangeDetected)
    sim.start()
    if sim.run_until_up(_collecting(sim, progress)) is None:
        raise ConfigError("the subnet did not come up", scenario.source)
    _settle_heap()

    hosts_cfg = scenario.hosts
    host_nodes = pick_hosts(fabric, sim.sm_node, hosts_cfg.n, hosts_cfg.placement, seed)
    host_config = HostConfig(
        num_vfs=hosts_cfg.vfs,
        assignment=scenario.signalling.assignment,  # type: ignore[arg-type]
        subscribe_path_changes=strategy == "per-host",
    )
    prefix = sim.sm.config.subnet_prefix
    host_names = [f"host{i}" for i in range(hosts_cfg.n)]
    for name, node in zip(host_names, host_nodes, strict=True):
        port_guid = fabric.ports[fabric.nodes[node].port_index(1)].port_guid
        agent = HostAgent(
            name, port_guid, rng=make_rng(seed, "host", name), config=host_config,
            subnet_prefix=prefix, record_events=True,
        )  # fmt: skip
        sim.add_host(name, node, agent)
    static = scenario.signalling.assignment == "static"
    total_vms = hosts_cfg.n * hosts_cfg.m
    for i in range(total_vms):
        name = f"vm{i}"
        guest = GuestAgent(
            ip=_vm_ip(i), rng=make_rng(seed, "vm", i), config=guest_config,
            subscribe=strategy == "per-vm", record_events=True, name=name,
        )  # fmt: skip
        vguid = VGUID_BASE + i + 1 if static else 0
        sim.add_vm(name, guest, host_names[i // hosts_cfg.m], vguid)
    _run_until_idle_or(sim, lambda: all(v.up for v in sim.vms.values()), progress)
    not_up = [v.name for v in sim.vms.values() if not v.up]
    if not_up:
        raise ConfigError(f"VMs never came up: {', '.join(not_up[:5])}", scenario.source)
    _settle_heap()
    sim.narrow_engine_events()

    # Workload: p clients, on other hosts, for each VM that will migrate.
    rng = random.Random(f"{seed}:peers")
    connections: list[ConnectionResult] = []
    now = sim.kernel.now_ns
    if traffic:
        for event in scenario.migrations:
            server = sim.vms[f"vm{event.vm}"]
            others = [v for v in sim.vms.values() if v.host != server.host]
            for client in rng.sample(others, min(scenario.workload.peers, len(others))):
                client.guest.add_peer(server.guest.ip, server.guest.gid, now)
                sim._pump(sim.hosts[client.host].node, client.guest, 0)
                connections.append(ConnectionResult(client.name, server.name))

    # Migrations at their times (relative to the end of the set-up).
    base_ns = sim.kernel.now_ns
    baseline: Counter[tuple[int, int, int]] | None = None
    migrations: list[tuple[LiveMigration, str, str]] = []
    for event in sorted(scenario.migrations, key=lambda e: e.at_ms):
        at_ns = base_ns + int(event.at_ms * 1e6)
        _run_until(sim, at_ns, progress)
        if baseline is None:
            baseline = Counter(sim.mad_counts)
        vm = sim.vms[f"vm{event.vm}"]
        src = vm.host
        dst = _destination(sim, host_names, src, event.to_host)
        migration = LiveMigration(
            vm.name, src, dst, timing=timing,
            assignment=scenario.signalling.assignment,  # type: ignore[arg-type]
            vguid=vm.vguid if static else None,
        )  # fmt: skip
        migrations.append((migration, src, dst))
        sim.migrate(migration)
    end_ns = base_ns + int(scenario.run.duration_ms * 1e6)
    _run_until(sim, end_ns, progress)
    if baseline is None:
        baseline = Counter()

    # Gather.
    first_start = min((m.started_ns or 0) for m, _, _ in migrations) if migrations else end_ns
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
    mads.subtract(baseline)
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
        )
        for m, src, dst in migrations
    ]
    bins = sim.sa_received_bins
    return RunResult(
        scenario=scenario,
        n=hosts_cfg.n,
        m=hosts_cfg.m,
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
        wall_s=time.perf_counter() - started,
        events=sim.kernel.events_run,
        sim_end_ns=sim.kernel.now_ns,
    )


def _destination(sim: VirtualizedSubnet, names: list[str], src: str, wanted: int | None) -> str:
    if wanted is not None:
        dst = names[wanted]
        if dst == src:
            raise ConfigError(f"migration destination {dst} is the VM's own host", "migrations")
        if not sim.hosts[dst].agent.free_vfs():
            raise ConfigError(f"{dst} has no free VF", "migrations")
        return dst
    start = names.index(src)
    for step in range(1, len(names)):
        candidate = names[(start + step) % len(names)]
        if sim.hosts[candidate].agent.free_vfs():
            return candidate
    raise ConfigError("no host has a free VF for the migration (raise hosts.vfs)", "hosts.vfs")


GC_EVERY_EVENTS = 1_000_000
"""Events between two collections of a run's own garbage (see `run_scenario`)."""


def _settle_heap() -> None:
    """Collect the set-up's garbage and freeze what survives: it lives as long as
    the run and no later collection needs to look at it again."""
    gc.collect()
    gc.freeze()


def _collect_if_due(sim: VirtualizedSubnet, events_before: int) -> None:
    if events_before // GC_EVERY_EVENTS != sim.kernel.events_run // GC_EVERY_EVENTS:
        gc.collect()


def _collecting(
    sim: VirtualizedSubnet, progress: Callable[[int], None] | None
) -> Callable[[int], None]:
    """A progress callback for `run_until_up` that also collects when due."""
    last = sim.kernel.events_run

    def tick(value: int) -> None:
        nonlocal last
        _collect_if_due(sim, last)
        last = sim.kernel.events_run
        if progress is not None:
            progress(value)

    return tick


def _run_chunk(sim: VirtualizedSubnet, until_ns: int | None, max_events: int) -> int:
    before = sim.kernel.events_run
    ran = sim.run(until_ns=until_ns, max_events=max_events)
    _collect_if_due(sim, before)
    return ran


def _run_until(
    sim: VirtualizedSubnet, until_ns: int, progress: Callable[[int], None] | None
) -> None:
    while sim.kernel.now_ns < until_ns:
        ran = _run_chunk(sim, until_ns, 50_000)
        if progress is not None:
            progress(sim.kernel.events_run)
        if ran == 0:
            break


def _run_until_idle_or(
    sim: VirtualizedSubnet, done: Callable[[], bool], progress: Callable[[int], None] | None
) -> None:
    while not done():
        if _run_chunk(sim, None, 5_000) == 0:
            break
        if progress is not None:
            progress(sim.kernel.events_run)


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
        "assignment": s.signalling.assignment,
        "strategy": s.signalling.strategy,
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

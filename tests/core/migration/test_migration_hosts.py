"""The migration engine driving host agents (dom0s) through a fake SA, with the
glue a runtime provides: actions become host calls, host events become the
migration's confirmations. One hand-driven clock; the SA answers at once (a
host's datagrams can be held back to delay its answers).

As in the simulator runtime, SetAlias is carried out with `HostAgent.attach_vf`
on the destination (it sets the alias and brings the vport up on the SA's
answer) and AttachVf does nothing on the fabric. Every host event about the
migrating VM is handed to the migration whatever its phase, so an event the
machine does not allow at that moment fails the test."""

from __future__ import annotations

import random

from ibmig.core.host import (
    AddressAssignment,
    AliasAcknowledged,
    AliasReleased,
    ForwardPathChange,
    HostAgent,
    HostConfig,
    PathRegistered,
    VfUp,
)
from ibmig.core.migration import (
    AttachVf,
    DetachVf,
    LiveMigration,
    MigrationDone,
    MigrationTiming,
    PauseVm,
    Phase,
    PhaseRecord,
    ReinitDriver,
    ReleaseAlias,
    ResumeVm,
    SetAlias,
)
from ibmig.wire.mad import Method
from tests.core.host.fake_sa import SA_LID, FakeSa, exchange, gid

V1, VA = 0x0002_C903_00AA_0001, 0x0002_C903_00AA_00A0
LIDS = {"h1": 3, "h2": 5, "h3": 7}
TIMING = MigrationTiming(
    memory_bytes=1_000_000,
    dirty_rate_bytes_per_s=250_000,
    device_state_bytes=10_000,
    bandwidth_bytes_per_s=1_000_000,
    stop_threshold_bytes=20_000,
    vf_detach_ns=100_000_000,
    resume_ns=50_000_000,
    vf_attach_ns=200_000_000,
    driver_reinit_ns=300_000_000,
)


class Runtime:
    """Just enough of a runtime to run one migration between host agents."""

    def __init__(self, assignment: AddressAssignment) -> None:
        config = HostConfig(assignment=assignment)
        self.sa = FakeSa()
        self.hosts = {
            name: HostAgent(name, 0x0002_C903_0000_0B01 + i, rng=random.Random(i), config=config)
            for i, name in enumerate(LIDS)
        }
        self.by_lid = {LIDS[name]: agent for name, agent in self.hosts.items()}
        for name, agent in self.hosts.items():
            agent.port_active(LIDS[name], SA_LID, 0)
        self.held: set[str] = set()
        """Hosts whose datagrams stay queued (their SA answers are late)."""
        self.log: list[tuple[int, object]] = []
        self.done: list[MigrationDone] = []

    def drain(self) -> None:
        """Drop the hosts' events so far (those from before the migration)."""
        for agent in self.hosts.values():
            while agent.next_event() is not None:
                pass

    def settle(self, m: LiveMigration, now_ns: int) -> None:
        """Apply the migration's actions, let the SA answer, feed confirmations back."""
        while True:
            progressed = False
            while (action := m.next_action()) is not None:
                progressed = True
                self.log.append((now_ns, action))
                self.apply(action, now_ns)
            moving = {LIDS[name]: self.hosts[name] for name in LIDS if name not in self.held}
            exchange(self.sa, moving, now_ns)
            for agent in self.hosts.values():
                while (event := agent.next_event()) is not None:
                    if isinstance(event, AliasReleased) and event.guid == m.vguid:
                        progressed = True
                        self.log.append((now_ns, event))
                        m.alias_released(now_ns)
                    elif isinstance(event, AliasAcknowledged) and event.vm == m.vm:
                        progressed = True
                        self.log.append((now_ns, event))
                        m.alias_set_acknowledged(now_ns)
                    elif isinstance(event, VfUp) and event.vm == m.vm:
                        progressed = True
                        self.log.append((now_ns, event))
                        m.vf_attached(now_ns)
            if not progressed:
                return

    def apply(self, action: object, now_ns: int) -> None:
        if isinstance(action, DetachVf):
            self.hosts[action.src_host].detach_vf(action.vm, now_ns)
        elif isinstance(action, ReleaseAlias):
            self.hosts[action.src_host].release_alias(action.vguid, now_ns)
        elif isinstance(action, SetAlias):
            self.hosts[action.dst_host].attach_vf(action.vm, now_ns, vguid=action.vguid)
        elif isinstance(action, MigrationDone):
            self.done.append(action)
        # AttachVf, PauseVm, ResumeVm, ReinitDriver: nothing on the fabric.

    def run(self, m: LiveMigration, start_ns: int) -> None:
        """Start `m` and fire its timers until it has none (done, or in SETTING_ALIAS
        waiting for a confirmation)."""
        m.migrate(start_ns)
        self.settle(m, start_ns)
        while (deadline := m.get_timer()) is not None:
            m.handle_timer(deadline)
            self.settle(m, deadline)


def static_runtime() -> Runtime:
    """h1 holds vm1 (vGUID V1), h3 holds vmA (VA), which has a path to vm1."""
    rt = Runtime(AddressAssignment.STATIC)
    rt.hosts["h1"].attach_vf("vm1", 0, vguid=V1)
    rt.hosts["h3"].attach_vf("vmA", 0, vguid=VA)
    exchange(rt.sa, rt.by_lid, 0)
    rt.hosts["h3"].receive_intra_host("vmA", PathRegistered(gid(V1)), 0)
    rt.drain()
    return rt


def test_static_migration_through_the_hosts() -> None:
    rt = static_runtime()
    h3 = rt.hosts["h3"]
    first = len(rt.sa.requests)
    m = LiveMigration("vm1", "h1", "h2", timing=TIMING, vguid=V1)
    rt.run(m, 1_000)
    assert m.done and rt.done == [MigrationDone("vm1", "h2")]
    # Detach 0.1 s (the Delete answered at once), pre-copy 1.328125 s,
    # stop-and-copy 13.906 ms, resume 50 ms, hot-plug 0.2 s, driver 0.3 s; then
    # the alias, acknowledged at once, and the vport up with it.
    end = 1_992_032_000
    assert rt.log == [
        (1_000, DetachVf("h1", "vm1")),
        (100_001_000, ReleaseAlias("h1", V1)),
        (100_001_000, AliasReleased(V1, 1, 100_001_000)),
        (1_428_126_000, PauseVm("vm1")),
        (1_492_032_000, ResumeVm("vm1", "h2")),
        (1_492_032_000, AttachVf("h2", "vm1")),
        (1_692_032_000, ReinitDriver("vm1", "h2")),
        (end, SetAlias("h2", "vm1", V1)),
        (end, AliasAcknowledged("vm1", 1, V1, end)),
        (end, VfUp("vm1", 1, gid(V1), 5, end)),
        (end, MigrationDone("vm1", "h2")),
    ]
    # The SA saw the source's Delete before the destination's Set.
    sequence = [(d.slid, mad.header.method) for d, mad in rt.sa.requests[first:]]
    assert sequence == [(3, Method.DELETE), (5, Method.SET)]
    assert rt.sa.refused == 0
    # One Report per subscribed host; only vmA (on h3) is told.
    assert len(rt.sa.report_resps) == 3
    assert h3.intra_host_to_send() == [ForwardPathChange("vmA", gid(V1), 5)]
    # With an SA that answers at once, setting the alias takes no time.
    assert m.timeline[-2:] == (
        PhaseRecord(Phase.REINIT_DRIVER, None, 1_692_032_000, end),
        PhaseRecord(Phase.SETTING_ALIAS, None, end, end),
    )
    assert m.alias_released_ns == 100_001_000
    assert m.alias_requested_ns == m.alias_acknowledged_ns == m.vf_attached_ns == end
    assert m.total_time_ns == 1_992_031_000
    assert m.vm_downtime_ns == 63_906_000
    assert rt.hosts["h2"].is_up("vm1") and rt.hosts["h2"].entry(1) == V1
    assert rt.hosts["h1"].entry(1) == 0


def test_static_migration_waits_for_a_late_release() -> None:
    """The source's Delete is answered only after the destination is ready: the
    Set goes to the SA after the DeleteResp, never before, and is not refused."""
    rt = static_runtime()
    first = len(rt.sa.requests)
    rt.held.add("h1")  # h1's Delete stays queued
    m = LiveMigration("vm1", "h1", "h2", timing=TIMING, vguid=V1)
    rt.run(m, 1_000)
    assert m.phase is Phase.SETTING_ALIAS and m.get_timer() is None
    assert m.alias_requested_ns is None
    assert not any(isinstance(a, SetAlias) for _, a in rt.log)
    assert rt.sa.requests[first:] == []
    assert not rt.hosts["h2"].is_up("vm1")
    late = 2_500_000_000
    rt.held.clear()
    rt.settle(m, late)
    assert m.done and rt.done == [MigrationDone("vm1", "h2")]
    assert rt.log[-5:] == [
        (late, AliasReleased(V1, 1, late)),
        (late, SetAlias("h2", "vm1", V1)),
        (late, AliasAcknowledged("vm1", 1, V1, late)),
        (late, VfUp("vm1", 1, gid(V1), 5, late)),
        (late, MigrationDone("vm1", "h2")),
    ]
    sequence = [(d.slid, mad.header.method) for d, mad in rt.sa.requests[first:]]
    assert sequence == [(3, Method.DELETE), (5, Method.SET)]
    assert rt.sa.refused == 0
    assert m.timeline[-1] == PhaseRecord(Phase.SETTING_ALIAS, None, 1_992_032_000, late)
    assert m.alias_released_ns == m.alias_requested_ns == late
    assert m.total_time_ns == late - 1_000
    assert rt.hosts["h3"].intra_host_to_send() == [ForwardPathChange("vmA", gid(V1), 5)]


def test_dynamic_migration_takes_the_destination_vf_guid() -> None:
    rt = Runtime(AddressAssignment.DYNAMIC)
    h1, h2 = rt.hosts["h1"], rt.hosts["h2"]
    h1.attach_vf("vm1", 0)
    exchange(rt.sa, rt.by_lid, 0)
    rt.drain()
    m = LiveMigration("vm1", "h1", "h2", timing=TIMING, assignment=AddressAssignment.DYNAMIC)
    rt.run(m, 0)
    assert m.done
    end = 1_992_031_000
    guid = h2.vf_guid(1)
    assert rt.log == [
        (0, DetachVf("h1", "vm1")),
        (1_428_125_000, PauseVm("vm1")),
        (1_492_031_000, ResumeVm("vm1", "h2")),
        (1_492_031_000, AttachVf("h2", "vm1")),
        (1_692_031_000, ReinitDriver("vm1", "h2")),
        (end, SetAlias("h2", "vm1", None)),
        (end, AliasAcknowledged("vm1", 1, guid, end)),
        (end, VfUp("vm1", 1, gid(guid), 5, end)),
        (end, MigrationDone("vm1", "h2")),
    ]
    assert m.total_time_ns == end
    # No Delete anywhere; the source VF keeps its own GUID; no path change.
    assert Method.DELETE not in [mad.header.method for _, mad in rt.sa.requests]
    assert h1.entry(1) == h1.vf_guid(1)
    assert h2.entry(1) == guid
    assert rt.sa.report_resps == []

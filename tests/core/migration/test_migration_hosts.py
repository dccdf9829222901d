"""The migration engine driving host agents (dom0s) through a fake SA, with the
glue a runtime provides: actions become host calls, host events become the
migration's confirmations. One hand-driven clock; the SA answers at once."""

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
    Phase,
    ReleaseAlias,
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
        self.log: list[tuple[int, object]] = []
        self.done: list[MigrationDone] = []

    def settle(self, m: LiveMigration, now_ns: int) -> None:
        """Apply the migration's actions, let the SA answer, feed confirmations back."""
        while True:
            progressed = False
            while (action := m.next_action()) is not None:
                progressed = True
                self.log.append((now_ns, action))
                self.apply(action, now_ns)
            exchange(self.sa, self.by_lid, now_ns)
            for agent in self.hosts.values():
                while (event := agent.next_event()) is not None:
                    if isinstance(event, AliasReleased) and m.phase is not Phase.IDLE:
                        progressed = True
                        m.alias_released(now_ns)
                    elif isinstance(event, AliasAcknowledged) and m.phase is Phase.SETTING_ALIAS:
                        progressed = True
                        m.alias_set_acknowledged(now_ns)
                    elif isinstance(event, VfUp) and m.phase is Phase.ATTACHING_VF:
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
            self.hosts[action.dst_host].set_alias(action.vm, now_ns, vguid=action.vguid)
        elif isinstance(action, AttachVf):
            self.hosts[action.dst_host].attach_vf(action.vm, now_ns)
        elif isinstance(action, MigrationDone):
            self.done.append(action)

    def run(self, m: LiveMigration, start_ns: int) -> None:
        m.migrate(start_ns)
        self.settle(m, start_ns)
        while (deadline := m.get_timer()) is not None:
            m.handle_timer(deadline)
            self.settle(m, deadline)


def test_static_migration_through_the_hosts() -> None:
    rt = Runtime(AddressAssignment.STATIC)
    h1, h3 = rt.hosts["h1"], rt.hosts["h3"]
    h1.attach_vf("vm1", 0, vguid=V1)
    h3.attach_vf("vmA", 0, vguid=VA)
    exchange(rt.sa, rt.by_lid, 0)
    h3.receive_intra_host("vmA", PathRegistered(gid(V1)), 0)
    for agent in rt.hosts.values():
        while agent.next_event() is not None:
            pass
    first = len(rt.sa.requests)
    m = LiveMigration("vm1", "h1", "h2", timing=TIMING, vguid=V1)
    rt.run(m, 1_000)
    assert m.done and rt.done == [MigrationDone("vm1", "h2")]
    # The SA saw the source's Delete before the destination's Set.
    sequence = [(d.slid, mad.header.method) for d, mad in rt.sa.requests[first:]]
    assert sequence == [(3, Method.DELETE), (5, Method.SET)]
    assert rt.sa.refused == 0
    # The destination VF came up behind h2's LID with the same GID.
    ups = [e for _, e in rt.log if isinstance(e, VfUp)]
    assert ups == [VfUp("vm1", 1, gid(V1), 5, 1_492_032_000)]
    # One Report per subscribed host; only vmA (on h3) is told.
    assert len(rt.sa.report_resps) == 3
    assert h3.intra_host_to_send() == [ForwardPathChange("vmA", gid(V1), 5)]
    # With an SA that answers at once, setting the alias takes no time.
    setting = next(r for r in m.timeline if r.phase is Phase.SETTING_ALIAS)
    assert setting.duration_ns == 0
    # Detach 0.1 s, pre-copy 1.328125 s, stop-and-copy 13.906 ms, resume 50 ms,
    # alias 0, attach 0.2 s, driver 0.3 s.
    assert m.total_time_ns == 1_992_031_000
    assert m.vm_downtime_ns == 63_906_000


def test_dynamic_migration_takes_the_destination_vf_guid() -> None:
    rt = Runtime(AddressAssignment.DYNAMIC)
    h1, h2 = rt.hosts["h1"], rt.hosts["h2"]
    h1.attach_vf("vm1", 0)
    exchange(rt.sa, rt.by_lid, 0)
    m = LiveMigration("vm1", "h1", "h2", timing=TIMING, assignment=AddressAssignment.DYNAMIC)
    rt.run(m, 0)
    assert m.done
    ups = [e for _, e in rt.log if isinstance(e, VfUp)]
    assert ups == [VfUp("vm1", 1, gid(h2.vf_guid(1)), 5, ups[0].time_ns)]
    # No Delete anywhere; the source VF keeps its own GUID; no path change.
    assert Method.DELETE not in [mad.header.method for _, mad in rt.sa.requests]
    assert h1.entry(1) == h1.vf_guid(1)
    assert rt.sa.report_resps == []

"""The migration coordinator (the toolstack engine) driving host agents (dom0s)
through a fake SA, under one hand-driven clock; the SA answers at once (a host's
datagrams can be held back to delay its answers).

The runtime here is the smallest one possible: it carries out the coordinator's
commands on the hosts and on recording stand-ins for the guests, carries datagrams
to the SA, and hands every dom0 event of the types the coordinator asks for back
to it. The glue between actions and host calls is the coordinator's, the same the
simulator uses, so this test cannot drift from it."""

from __future__ import annotations

import dataclasses
import random

import pytest

from ibmig.core.host import (
    AddressAssignment,
    ForwardPathChange,
    HostAgent,
    HostConfig,
    PathRegistered,
)
from ibmig.core.migration import LiveMigration, MigrationTiming, Phase, PhaseEntered, PhaseRecord
from ibmig.core.migration.coordinator import (
    CoordinatorError,
    GuestCall,
    GuestMoved,
    HostCall,
    MigrationCoordinator,
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


class FakeGuest:
    """Records the life-cycle calls a guest engine gets."""

    def __init__(self, log: list[tuple[int, str, object]], vm: str) -> None:
        self.log, self.vm = log, vm

    def attach(self, port_num: int, lid: int, gid: bytes, sa_lid: int, now_ns: int) -> None:
        self.log.append((now_ns, f"{self.vm}.attach", (port_num, lid, gid, sa_lid)))

    def detach(self, now_ns: int) -> None:
        self.log.append((now_ns, f"{self.vm}.detach", None))

    def resume(self, now_ns: int, *, port_num: int, lid: int, gid: bytes, sa_lid: int) -> None:
        self.log.append((now_ns, f"{self.vm}.resume", (port_num, lid, gid, sa_lid)))


class Runtime:
    """Just enough of a runtime to run the coordinator between host agents."""

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
        self.coordinator = MigrationCoordinator(self.hosts)
        self.held: set[str] = set()
        """Hosts whose datagrams stay queued (their SA answers are late)."""
        self.log: list[tuple[int, str, object]] = []
        self.guests: dict[str, FakeGuest] = {}
        self.where: dict[str, str] = {}

    def settle(self, now_ns: int) -> None:
        """Carry out the coordinator's commands, let the SA answer, hand the hosts'
        confirmations back, until nothing moves."""
        coordinator = self.coordinator
        wanted = MigrationCoordinator.CONFIRMATIONS
        while True:
            progressed = False
            while (command := coordinator.next_command()) is not None:
                progressed = True
                if isinstance(command, HostCall):
                    command.call(self.hosts[command.host], now_ns)
                elif isinstance(command, GuestCall):
                    guest = self.guests.setdefault(command.vm, FakeGuest(self.log, command.vm))
                    command.call(guest, now_ns)  # type: ignore[arg-type]
                elif isinstance(command, GuestMoved):
                    self.where[command.vm] = command.host
            while (phase := coordinator.next_event()) is not None:
                assert isinstance(phase, PhaseEntered)
                self.log.append((now_ns, "phase", phase.phase))
            moving = {LIDS[name]: self.hosts[name] for name in LIDS if name not in self.held}
            progressed |= exchange(self.sa, moving, now_ns) > 0
            for agent in self.hosts.values():
                while (event := agent.next_event()) is not None:
                    if isinstance(event, wanted):
                        progressed = True
                        self.log.append((now_ns, type(event).__name__, agent.host_id))
                        coordinator.confirm(event, now_ns)
            if not progressed:
                return

    def run(self, m: LiveMigration, start_ns: int) -> None:
        """Start `m` and fire the coordinator's timers until it has none (done, or
        waiting in SETTING_ALIAS for a confirmation)."""
        self.coordinator.migrate(m, start_ns)
        self.settle(start_ns)
        while (deadline := self.coordinator.get_timer()) is not None:
            self.coordinator.handle_timer(deadline)
            self.settle(deadline)

    def since(self, mark: int) -> list[tuple[int, str, object]]:
        return self.log[mark:]


def static_runtime() -> Runtime:
    """h1 runs vm1 (vGUID V1), h3 runs vmA (VA), which has a path to vm1."""
    rt = Runtime(AddressAssignment.STATIC)
    rt.coordinator.start_vm("vm1", "h1", V1, 0)
    rt.coordinator.start_vm("vmA", "h3", VA, 0)
    rt.settle(0)
    rt.hosts["h3"].receive_intra_host("vmA", PathRegistered(gid(V1)), 0)
    return rt


def test_starting_vms_attaches_their_guests_when_the_vport_is_up() -> None:
    rt = static_runtime()
    assert rt.where == {"vm1": "h1", "vmA": "h3"}
    assert [(t, what, arg) for t, what, arg in rt.log if what.endswith("attach")] == [
        (0, "vm1.attach", (1, 3, gid(V1), SA_LID)),
        (0, "vmA.attach", (1, 7, gid(VA), SA_LID)),
    ]


def test_static_migration_through_the_hosts() -> None:
    rt = static_runtime()
    h3 = rt.hosts["h3"]
    first, mark = len(rt.sa.requests), len(rt.log)
    m = LiveMigration("vm1", "h1", "h2", timing=TIMING, vguid=V1)
    rt.run(m, 1_000)
    assert m.done
    # Detach 0.1 s (the Delete answered at once), pre-copy 1.328125 s,
    # stop-and-copy 13.906 ms, resume 50 ms, hot-plug 0.2 s, driver 0.3 s; then
    # the alias, acknowledged at once, and the vport up with it.
    end = 1_992_032_000
    precopy = [e for e in rt.since(mark) if e[1] == "phase" and e[2] is Phase.PRE_COPY]
    assert rt.since(mark) == [
        (1_000, "vm1.detach", None),
        (1_000, "phase", Phase.DETACHING_VF),
        (100_001_000, "phase", Phase.PRE_COPY),
        (100_001_000, "AliasReleased", "h1"),
        *precopy[1:],
        (1_428_126_000, "phase", Phase.STOP_AND_COPY),
        (1_442_032_000, "phase", Phase.RESUMING),
        (1_492_032_000, "phase", Phase.ATTACHING_VF),
        (1_692_032_000, "phase", Phase.REINIT_DRIVER),
        (end, "phase", Phase.SETTING_ALIAS),
        (end, "AliasAcknowledged", "h2"),
        (end, "VfUp", "h2"),
        (end, "vm1.resume", (1, 5, gid(V1), SA_LID)),
        (end, "phase", Phase.DONE),
    ]
    assert rt.where["vm1"] == "h2" and rt.coordinator.host_of("vm1") == "h2"
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
    assert rt.hosts["h1"].vm_behind(1) is None and rt.hosts["h2"].vm_behind(1) == "vm1"
    assert rt.coordinator.get_timer() is None


def test_static_migration_waits_for_a_late_release() -> None:
    """The source's Delete is answered only after the destination is ready: the
    Set goes to the SA after the DeleteResp, never before, and is not refused."""
    rt = static_runtime()
    first = len(rt.sa.requests)
    rt.held.add("h1")  # h1's Delete stays queued
    m = LiveMigration("vm1", "h1", "h2", timing=TIMING, vguid=V1)
    rt.run(m, 1_000)
    assert m.phase is Phase.SETTING_ALIAS and rt.coordinator.get_timer() is None
    assert m.alias_requested_ns is None
    assert rt.sa.requests[first:] == []
    assert not rt.hosts["h2"].is_up("vm1")
    assert rt.where["vm1"] == "h1"  # the guest has not moved: no SetAlias yet
    late = 2_500_000_000
    mark = len(rt.log)
    rt.held.clear()
    rt.settle(late)
    assert m.done
    assert rt.since(mark) == [
        (late, "AliasReleased", "h1"),
        (late, "AliasAcknowledged", "h2"),
        (late, "VfUp", "h2"),
        (late, "vm1.resume", (1, 5, gid(V1), SA_LID)),
        (late, "phase", Phase.DONE),
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
    rt.coordinator.start_vm("vm1", "h1", None, 0)
    rt.settle(0)
    mark = len(rt.log)
    m = LiveMigration("vm1", "h1", "h2", timing=TIMING, assignment=AddressAssignment.DYNAMIC)
    rt.run(m, 0)
    assert m.done
    end = 1_992_031_000
    guid = h2.vf_guid(1)
    assert [e for e in rt.since(mark) if e[1] != "phase"] == [
        (0, "vm1.detach", None),
        (end, "AliasAcknowledged", "h2"),
        (end, "VfUp", "h2"),
        (end, "vm1.resume", (1, 5, gid(guid), SA_LID)),
    ]
    assert m.total_time_ns == end
    # No Delete anywhere; the source VF keeps its own GUID; no path change.
    assert Method.DELETE not in [mad.header.method for _, mad in rt.sa.requests]
    assert h1.entry(1) == h1.vf_guid(1)
    assert h2.entry(1) == guid
    assert rt.sa.report_resps == []


def test_two_migrations_share_one_timer() -> None:
    """The coordinator's deadline is the earliest of its migrations'; each runs to
    the end at its own times."""
    rt = static_runtime()
    slow = dataclasses.replace(TIMING, vf_detach_ns=400_000_000)
    a = LiveMigration("vm1", "h1", "h2", timing=TIMING, vguid=V1)
    b = LiveMigration("vmA", "h3", "h1", timing=slow, vguid=VA)
    rt.coordinator.migrate(a, 0)
    rt.coordinator.migrate(b, 0)
    rt.settle(0)
    assert rt.coordinator.get_timer() == 100_000_000
    while (deadline := rt.coordinator.get_timer()) is not None:
        rt.coordinator.handle_timer(deadline)
        rt.settle(deadline)
    assert a.done and b.done
    assert a.started_ns == b.started_ns == 0
    assert b.timeline[0].duration_ns == 400_000_000
    assert rt.where == {"vm1": "h2", "vmA": "h1"}


def test_a_migration_from_the_wrong_host_is_refused() -> None:
    rt = static_runtime()
    with pytest.raises(CoordinatorError, match="does not run on h2"):
        rt.coordinator.migrate(LiveMigration("vm1", "h2", "h3", timing=TIMING, vguid=V1), 0)
    with pytest.raises(CoordinatorError, match="no host named 'h9'"):
        rt.coordinator.migrate(LiveMigration("vm1", "h1", "h9", timing=TIMING, vguid=V1), 0)

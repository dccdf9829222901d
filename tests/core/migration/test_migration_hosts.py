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
from collections.abc import Callable

import pytest

from ibmig.core.host import (
    AddressAssignment,
    ForwardPathChange,
    HostAgent,
    HostConfig,
    PathRegistered,
)
from ibmig.core.migration import (
    LiveMigration,
    MigrationStateError,
    MigrationTiming,
    Phase,
    PhaseEntered,
    PhaseRecord,
    Stimulus,
    next_phase,
)
from ibmig.core.migration.coordinator import (
    CoordinatorError,
    GuestCall,
    GuestMoved,
    HostCall,
    MigrationCoordinator,
)
from ibmig.wire.mad import Method
from ibmig.wire.sa import SaAttr
from tests.core.host.fake_sa import SA_LID, FakeSa, exchange, gid

V1, VA = 0x0002_C903_00AA_0001, 0x0002_C903_00AA_00A0
SECOND = 1_000_000_000
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

    def __init__(self, assignment: AddressAssignment, **config_fields: object) -> None:
        config = HostConfig(assignment=assignment, **config_fields)  # type: ignore[arg-type]
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
        self.after_confirm: Callable[[object, int], None] | None = None
        """Called after each confirmation handed to the coordinator."""
        self.answers: list[tuple[str, str, bool]] = []
        """(event type, host, what `confirm` returned), each checked: False only
        when the coordinator has nothing for the runtime (no pump needed)."""

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
                        timer = coordinator.get_timer()
                        answer = coordinator.confirm(event, now_ns)
                        self.answers.append((type(event).__name__, agent.host_id, answer))
                        if not answer:
                            assert coordinator.get_timer() == timer
                            assert coordinator.next_command() is None
                            assert coordinator.next_event() is None
                        if self.after_confirm is not None:
                            self.after_confirm(event, now_ns)
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


def static_runtime(**config_fields: object) -> Runtime:
    """h1 runs vm1 (vGUID V1), h3 runs vmA (VA), which has a path to vm1."""
    rt = Runtime(AddressAssignment.STATIC, **config_fields)
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


def test_a_host_s_vms_started_together_are_one_dom0_call_in_order() -> None:
    rt = Runtime(AddressAssignment.STATIC)
    rt.coordinator.start_vms("h2", [("vm1", V1), ("vmA", VA)], 0)
    commands = [rt.coordinator.next_command() for _ in range(4)]
    assert commands[:2] == [GuestMoved("vm1", "h2"), GuestMoved("vmA", "h2")]
    assert isinstance(commands[2], HostCall) and commands[2].host == "h2"
    assert commands[3] is None
    h2 = rt.hosts["h2"]
    commands[2].call(h2, 0)
    assert (h2.vf_of("vm1"), h2.vf_of("vmA")) == (1, 2)
    assert rt.coordinator.host_of("vm1") == rt.coordinator.host_of("vmA") == "h2"
    rt.settle(0)
    assert [(what, arg) for _, what, arg in rt.log if what.endswith("attach")] == [
        ("vm1.attach", (1, 5, gid(V1), SA_LID)),
        ("vmA.attach", (1, 5, gid(VA), SA_LID)),
    ]
    writes = [
        (d.slid, mad.header.method)
        for d, mad in rt.sa.requests
        if mad.header.attribute_id == SaAttr.GUID_INFO_RECORD
    ]
    assert writes == [(5, Method.SET)]  # both entries in one record


def test_confirm_says_when_the_coordinator_need_not_be_pumped() -> None:
    """A placed VM's AliasAcknowledged waits for nothing: the runtime may skip the
    pump; its VfUp starts the guest (a command), and during a migration the
    destination's acknowledgement drives the migration."""
    rt = static_runtime()
    assert rt.answers == [
        ("AliasAcknowledged", "h1", False),
        ("VfUp", "h1", True),
        # The command h1's VfUp gave still waits: this runtime carries commands
        # out between rounds, so the coordinator has output.
        ("AliasAcknowledged", "h3", True),
        ("VfUp", "h3", True),
    ]
    del rt.answers[:]
    rt.run(LiveMigration("vm1", "h1", "h2", timing=TIMING, vguid=V1), 1_000)
    assert rt.answers == [
        ("AliasReleased", "h1", True),
        ("AliasAcknowledged", "h2", True),
        ("VfUp", "h2", True),
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


# --- aborts -----------------------------------------------------------------------------


def run_to(rt: Runtime, m: LiveMigration, target: Phase, start_ns: int) -> int:
    """Start `m` and fire the timers until it is in `target`; the time it got there."""
    rt.coordinator.migrate(m, start_ns)
    rt.settle(start_ns)
    now = start_ns
    while m.phase is not target:
        deadline = rt.coordinator.get_timer()
        assert deadline is not None, m.phase
        rt.coordinator.handle_timer(deadline)
        rt.settle(deadline)
        now = deadline
    return now


def assert_back_at_the_source(rt: Runtime, m: LiveMigration) -> list[ForwardPathChange]:
    """Check the VM is back at h1 in every way; what vmA's dom0 told it."""
    h1, h2, h3 = rt.hosts["h1"], rt.hosts["h2"], rt.hosts["h3"]
    assert m.aborted and m.phase is Phase.ABORTED
    for stimulus in Stimulus:
        with pytest.raises(MigrationStateError):
            next_phase(m.phase, stimulus)
    # The guest resumed behind h1 on its old port, LID and GID.
    guest_calls = [(what, arg) for _, what, arg in rt.log if what.startswith("vm1.")]
    assert guest_calls[-2:] == [("vm1.detach", None), ("vm1.resume", (1, 3, gid(V1), SA_LID))]
    assert rt.where["vm1"] == "h1" and rt.coordinator.host_of("vm1") == "h1"
    # h1 runs it with its vGUID in an entry; h2 holds neither the VM nor the vGUID.
    vf = h1.vf_of("vm1")
    assert vf is not None and h1.is_up("vm1") and h1.entry(vf) == V1
    assert h1.vm_behind(vf) == "vm1"
    assert h2.vf_of("vm1") is None and h2.alias_index(V1) is None
    assert not any(v == "vm1" for v in (h2.vm_behind(i) for i in range(1, 9)))
    # The SA has the vGUID only behind h1's LID.
    assert [key for key, guid in rt.sa.entries.items() if guid == V1] == [(3, vf)]
    # The peer's dom0 maps the vGUID to h1 (or has not learnt of it: no Report came);
    # whatever vmA was told, it was told h1 last.
    assert h3.lookup(gid(V1)) in (None, 3)
    told = [msg for msg in h3.intra_host_to_send() if isinstance(msg, ForwardPathChange)]
    assert told == [] or told[-1] == ForwardPathChange("vmA", gid(V1), 3)
    assert rt.coordinator.get_timer() is None
    return told


ABORT_PHASES = [
    Phase.DETACHING_VF,
    Phase.PRE_COPY,
    Phase.STOP_AND_COPY,
    Phase.RESUMING,
    Phase.ATTACHING_VF,
    Phase.REINIT_DRIVER,
]


@pytest.mark.parametrize("where", ABORT_PHASES)
@pytest.mark.parametrize("late_release", [False, True], ids=["released", "delete-in-flight"])
def test_abort_in_a_timed_phase(where: Phase, late_release: bool) -> None:
    """Aborted halfway through `where`; with `late_release` the source's Delete is
    still unanswered then (and is answered afterwards)."""
    rt = static_runtime()
    if late_release:
        rt.held.add("h1")
    first = len(rt.sa.requests)
    m = LiveMigration("vm1", "h1", "h2", timing=TIMING, vguid=V1)
    entered = run_to(rt, m, where, 1_000)
    deadline = rt.coordinator.get_timer()
    assert deadline is not None
    at = (entered + deadline) // 2
    rt.coordinator.abort("vm1", at, "operator")
    rt.settle(at)
    rt.held.clear()
    rt.settle(at + 1)
    assert m.timeline[-1].phase is where and m.timeline[-1].aborted
    assert m.timeline[-1].end_ns == m.aborted_ns == at
    assert assert_back_at_the_source(rt, m) == []
    # Nothing reached h2 or the SA from h2; the SA never saw the vGUID move.
    assert rt.sa.refused == 0 and rt.sa.report_resps == []
    sequence = [(d.slid, mad.header.method) for d, mad in rt.sa.requests[first:]]
    released = where is not Phase.DETACHING_VF  # its exit asks for the Delete
    assert sequence == ([(3, Method.DELETE), (3, Method.SET)] if released else [])


def test_abort_in_setting_alias_before_the_release() -> None:
    """Waiting for the source's DeleteResp: no SetAlias yet; the source sets the
    vGUID again behind its own Delete, on the same entry."""
    rt = static_runtime()
    rt.held.add("h1")
    first = len(rt.sa.requests)
    m = LiveMigration("vm1", "h1", "h2", timing=TIMING, vguid=V1)
    at = run_to(rt, m, Phase.SETTING_ALIAS, 1_000) + 5
    assert m.alias_requested_ns is None
    rt.coordinator.abort("vm1", at, "operator")
    rt.settle(at)
    assert not rt.hosts["h1"].is_up("vm1")  # its Set waits behind the Delete
    rt.held.clear()
    rt.settle(at + 1)
    assert assert_back_at_the_source(rt, m) == []
    sequence = [(d.slid, mad.header.method) for d, mad in rt.sa.requests[first:]]
    assert sequence == [(3, Method.DELETE), (3, Method.SET)]
    assert rt.sa.refused == 0 and rt.sa.report_resps == []


def test_abort_in_setting_alias_with_the_set_in_flight() -> None:
    """The destination's Set is on its way: it lands (peers are told h2), then the
    destination deletes it, and only then does the source set it again (peers are
    told h1): never refused."""
    rt = static_runtime()
    rt.held.add("h2")
    first = len(rt.sa.requests)
    m = LiveMigration("vm1", "h1", "h2", timing=TIMING, vguid=V1)
    at = run_to(rt, m, Phase.SETTING_ALIAS, 1_000) + 5
    assert m.alias_requested_ns is not None and m.alias_acknowledged_ns is None
    rt.coordinator.abort("vm1", at, "operator")
    rt.settle(at)
    assert not rt.hosts["h1"].is_up("vm1")  # waits for h2's Delete
    rt.held.clear()
    rt.settle(at + 1)
    told = assert_back_at_the_source(rt, m)
    sequence = [(d.slid, mad.header.method) for d, mad in rt.sa.requests[first:]]
    assert sequence == [(3, Method.DELETE), (5, Method.SET), (5, Method.DELETE), (3, Method.SET)]
    assert rt.sa.refused == 0
    assert told == [
        ForwardPathChange("vmA", gid(V1), 5),
        ForwardPathChange("vmA", gid(V1), 3),
    ]


def test_abort_in_setting_alias_after_the_acknowledgement() -> None:
    """Aborted between the destination's AliasAcknowledged and its VfUp: the VfUp
    that follows is the destination's and does not start the guest there."""
    rt = static_runtime()
    m = LiveMigration("vm1", "h1", "h2", timing=TIMING, vguid=V1)

    def abort_on_ack(event: object, now_ns: int) -> None:
        if type(event).__name__ == "AliasAcknowledged" and m.phase is Phase.SETTING_ALIAS:
            rt.coordinator.abort("vm1", now_ns, "operator")

    rt.after_confirm = abort_on_ack
    rt.run(m, 1_000)
    assert m.alias_acknowledged_ns is not None and m.vf_attached_ns is None
    assert [what for _, what, _ in rt.log if what.startswith("vm1.")].count("vm1.resume") == 1
    told = assert_back_at_the_source(rt, m)
    assert rt.sa.refused == 0
    assert told == [
        ForwardPathChange("vmA", gid(V1), 5),
        ForwardPathChange("vmA", gid(V1), 3),
    ]


def test_abort_in_idle_or_after_the_end_is_refused() -> None:
    rt = static_runtime()
    with pytest.raises(CoordinatorError, match="vm1 is not migrating"):
        rt.coordinator.abort("vm1", 0, "operator")
    with pytest.raises(MigrationStateError):
        LiveMigration("vm1", "h1", "h2", timing=TIMING, vguid=V1).abort(0, "operator")
    m = LiveMigration("vm1", "h1", "h2", timing=TIMING, vguid=V1)
    rt.run(m, 0)
    assert m.done
    with pytest.raises(CoordinatorError, match="vm1 is not migrating"):
        rt.coordinator.abort("vm1", 3_000_000_000, "operator")
    assert rt.hosts["h2"].is_up("vm1")


def test_dynamic_abort_with_the_set_in_flight() -> None:
    """Dynamic assignment: the VM gets its own VF at the source back (its GUID is
    that VF's), nothing is deleted anywhere."""
    rt = Runtime(AddressAssignment.DYNAMIC)
    h1, h2 = rt.hosts["h1"], rt.hosts["h2"]
    rt.coordinator.start_vm("vm1", "h1", None, 0)
    rt.settle(0)
    rt.held.add("h2")
    m = LiveMigration("vm1", "h1", "h2", timing=TIMING, assignment=AddressAssignment.DYNAMIC)
    at = run_to(rt, m, Phase.SETTING_ALIAS, 0) + 5
    rt.coordinator.abort("vm1", at, "operator")
    rt.held.clear()
    rt.settle(at)
    assert m.aborted
    guid = h1.vf_guid(1)
    assert h1.vf_of("vm1") == 1 and h1.is_up("vm1") and h2.vf_of("vm1") is None
    assert [(what, arg) for _, what, arg in rt.log if what.startswith("vm1.")][-2:] == [
        ("vm1.detach", None),
        ("vm1.resume", (1, 3, gid(guid), SA_LID)),
    ]
    assert Method.DELETE not in [mad.header.method for _, mad in rt.sa.requests]
    assert rt.where["vm1"] == "h1"


# --- failures: rolled back ----------------------------------------------------------------


def lose_answers(rt: Runtime, name: str, now_ns: int) -> None:
    """What held host `name` sends reaches the SA, which carries it out; the answers
    to `name` are lost (Reports to other hosts arrive)."""
    lid = LIDS[name]
    for datagram in rt.hosts[name].packets_to_send():
        for answer in rt.sa.handle(datagram):
            if answer.dlid != lid:
                rt.by_lid[answer.dlid].receive(answer, now_ns)


def test_a_destination_set_given_up_fails_the_migration_and_rolls_it_back() -> None:
    """The destination's Set reaches the SA, which carries it out, but no answer comes
    back; dom0 gives it up (alias_retry_limit=0). The migration fails in SETTING_ALIAS
    with that cause and is rolled back: the destination deletes the alias it could not
    be sure of, the source sets it again, the VM resumes there and the peer is told
    of both moves (so it follows it back at once)."""
    rt = static_runtime(alias_retry_limit=0)
    h2 = rt.hosts["h2"]
    m = LiveMigration("vm1", "h1", "h2", timing=TIMING, vguid=V1)
    rt.held.add("h2")
    at = run_to(rt, m, Phase.SETTING_ALIAS, 1_000)
    now = at
    while not m.aborted:
        lose_answers(rt, "h2", now)
        deadline = h2.get_timer()
        assert deadline is not None
        now = deadline
        h2.handle_timer(now)
        rt.settle(now)
    assert m.failure == f"alias GUID set 0x{V1:016x} failed (timeout)"
    assert m.abort_reason == m.failure and m.aborted_ns == now == at + 3 * SECOND
    assert m.timeline[-1].phase is Phase.SETTING_ALIAS and m.timeline[-1].aborted
    assert rt.sa.entries[(5, 1)] == V1  # the SA did carry the Set out
    rt.held.clear()
    rt.settle(now)
    told = assert_back_at_the_source(rt, m)
    assert told == [
        ForwardPathChange("vmA", gid(V1), 5),
        ForwardPathChange("vmA", gid(V1), 3),
    ]
    assert h2.free_vfs() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]


def test_a_refused_destination_set_given_up_rolls_back_without_a_delete() -> None:
    """The source's Delete is late, so the SA refuses the destination's Set until dom0
    gives up: nothing is left at the destination to delete, and the source, whose
    Delete then lands, sets the vGUID again."""
    rt = static_runtime(alias_retry_limit=0)
    h2 = rt.hosts["h2"]
    m = LiveMigration("vm1", "h1", "h2", timing=TIMING, vguid=V1, await_alias_release=False)
    rt.held.add("h1")
    first = len(rt.sa.requests)
    now = run_to(rt, m, Phase.SETTING_ALIAS, 1_000)
    while not m.aborted:
        deadline = h2.get_timer()
        assert deadline is not None
        now = deadline
        h2.handle_timer(now)
        rt.settle(now)
    assert m.failure == f"alias GUID set 0x{V1:016x} failed (refused)"
    rt.held.clear()
    rt.settle(now)
    assert_back_at_the_source(rt, m)
    methods = [(d.slid, mad.header.method) for d, mad in rt.sa.requests[first:]]
    assert methods == [(5, Method.SET)] * 3 + [(3, Method.DELETE), (3, Method.SET)]


def test_a_source_delete_given_up_fails_the_migration_and_the_vm_stays() -> None:
    """The source's Delete goes unanswered until dom0 gives it up, while pre-copy
    runs: the migration fails there, and the source sets the vGUID again (the SA may
    have deleted it) -- no SetAlias was ever issued, nothing happens at h2."""
    rt = static_runtime(alias_retry_limit=0)
    h1 = rt.hosts["h1"]
    m = LiveMigration("vm1", "h1", "h2", timing=TIMING, vguid=V1)
    rt.held.add("h1")
    now = run_to(rt, m, Phase.PRE_COPY, 1_000)
    while not m.aborted:
        lose_answers(rt, "h1", now)
        deadlines = [t for t in (h1.get_timer(), rt.coordinator.get_timer()) if t is not None]
        now = min(deadlines)
        h1.handle_timer(now)
        rt.coordinator.handle_timer(now)
        rt.settle(now)
    assert m.failure == f"alias GUID delete 0x{V1:016x} failed (timeout)"
    assert m.alias_requested_ns is None and not m.awaits_alias_release
    rt.held.clear()
    rt.settle(now)
    assert_back_at_the_source(rt, m)
    guid_requests = [d for d, mad in rt.sa.requests if mad.attribute_id == SaAttr.GUID_INFO_RECORD]
    assert not any(d.slid == 5 for d in guid_requests)

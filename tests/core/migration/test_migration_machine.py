"""The live-migration state machine under a hand-driven clock: the exact timeline,
the actions and their order, the one transition table and its illegal moves."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ibmig.core.host import AddressAssignment
from ibmig.core.migration import (
    TRANSITIONS,
    AliasRegistration,
    AttachVf,
    DetachVf,
    LiveMigration,
    MigrationAction,
    MigrationDone,
    MigrationStateError,
    MigrationTiming,
    PauseVm,
    Phase,
    PhaseEntered,
    PhaseRecord,
    ReinitDriver,
    ReleaseAlias,
    RestoreVf,
    ResumeAtSource,
    ResumeVm,
    SetAlias,
    Stimulus,
    UndoAlias,
    next_phase,
    plan_precopy,
)

V1 = 0x0002_C903_00AA_0001
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


def migration(**kw: object) -> LiveMigration:
    args: dict[str, object] = {"timing": TIMING, "vguid": V1}
    args.update(kw)
    return LiveMigration("vm1", "h1", "h2", **args)  # type: ignore[arg-type]


def phase(m: LiveMigration) -> Phase:
    """The current phase (a call, so that mypy does not narrow it for good)."""
    return m.phase


def actions(m: LiveMigration) -> list[MigrationAction]:
    found: list[MigrationAction] = []
    while (action := m.next_action()) is not None:
        found.append(action)
    return found


def run_timers(m: LiveMigration, until_ns: int) -> list[tuple[int, MigrationAction]]:
    """Fire each deadline up to `until_ns` at its time, collecting the actions."""
    out: list[tuple[int, MigrationAction]] = []
    while (deadline := m.get_timer()) is not None and deadline <= until_ns:
        m.handle_timer(deadline)
        out.extend((deadline, a) for a in actions(m))
    return out


def drive_to(target: Phase, **kw: object) -> LiveMigration:
    """A migration started at 0 (release awaited unless `kw` says otherwise) and
    driven to `target`; DONE is reached with both SETTING_ALIAS confirmations at
    its entry time. Pending actions and events are discarded."""
    m = migration(**kw)
    if target is not Phase.IDLE:
        m.migrate(0)
    if target is Phase.ABORTED:
        m.abort(0, "test")
    while phase(m) is not target:
        if phase(m) is Phase.SETTING_ALIAS:
            now = m.timeline[-1].start_ns
            if m.alias_requested_ns is None:
                m.alias_released(now)
            m.alias_set_acknowledged(now)
            m.vf_attached(now)
            continue
        deadline = m.get_timer()
        assert deadline is not None
        m.handle_timer(deadline)
    actions(m)
    while m.next_event() is not None:
        pass
    return m


def test_static_migration_timeline_exactly() -> None:
    m = migration()
    m.migrate(1_000)
    assert actions(m) == [DetachVf("h1", "vm1")]
    assert m.get_timer() == 100_001_000
    log = run_timers(m, 10**12)
    # Detach done: the vGUID is released; then 4 pre-copy rounds (1 s, 250 ms,
    # 62.5 ms, 15.625 ms), stop-and-copy of 13 906 bytes, 50 ms resume, the VF
    # hot-plug (200 ms) and the driver (300 ms).
    assert log == [
        (100_001_000, ReleaseAlias("h1", V1)),
        (1_428_126_000, PauseVm("vm1")),
        (1_492_032_000, ResumeVm("vm1", "h2")),
        (1_492_032_000, AttachVf("h2", "vm1")),
        (1_692_032_000, ReinitDriver("vm1", "h2")),
    ]
    assert phase(m) is Phase.SETTING_ALIAS and m.get_timer() is None
    assert m.timeline[-1] == PhaseRecord(Phase.SETTING_ALIAS, None, 1_992_032_000, None)
    # The release was not confirmed yet: no SetAlias. It comes with the confirmation.
    assert m.alias_requested_ns is None
    m.alias_released(2_000_000_000)
    assert actions(m) == [SetAlias("h2", "vm1", V1)]
    m.alias_set_acknowledged(2_000_400_000)  # the SA's GetResp reached dom0
    assert actions(m) == [] and phase(m) is Phase.SETTING_ALIAS
    assert m.done_ns is None and m.total_time_ns is None
    m.vf_attached(2_000_400_000)  # the host's VfUp, at once
    assert actions(m) == [MigrationDone("vm1", "h2")]
    assert m.done and m.get_timer() is None
    expected = [
        (Phase.DETACHING_VF, None, 1_000, 100_001_000, 0),
        (Phase.PRE_COPY, 0, 100_001_000, 1_100_001_000, 1_000_000),
        (Phase.PRE_COPY, 1, 1_100_001_000, 1_350_001_000, 250_000),
        (Phase.PRE_COPY, 2, 1_350_001_000, 1_412_501_000, 62_500),
        (Phase.PRE_COPY, 3, 1_412_501_000, 1_428_126_000, 15_625),
        (Phase.STOP_AND_COPY, None, 1_428_126_000, 1_442_032_000, 13_906),
        (Phase.RESUMING, None, 1_442_032_000, 1_492_032_000, 0),
        (Phase.ATTACHING_VF, None, 1_492_032_000, 1_692_032_000, 0),
        (Phase.REINIT_DRIVER, None, 1_692_032_000, 1_992_032_000, 0),
        (Phase.SETTING_ALIAS, None, 1_992_032_000, 2_000_400_000, 0),
    ]
    assert m.timeline == tuple(PhaseRecord(*row) for row in expected)
    assert m.precopy_rounds == 4
    assert m.started_ns == 1_000
    assert m.paused_ns == 1_428_126_000
    assert m.resumed_ns == 1_492_032_000
    assert m.total_time_ns == 2_000_399_000
    assert m.vm_downtime_ns == 13_906_000 + 50_000_000  # stop-and-copy + resume
    assert m.rc_downtime_ns == 2_000_400_000 - 1_000  # detach to the vport up
    assert m.alias_released_ns == 2_000_000_000
    assert m.alias_requested_ns == 2_000_000_000
    assert m.alias_acknowledged_ns == 2_000_400_000
    assert m.vf_attached_ns == 2_000_400_000
    assert m.done_ns == 2_000_400_000


def test_release_confirmed_early_lets_set_alias_go_at_once() -> None:
    m = migration()
    m.migrate(0)
    actions(m)
    run_timers(m, 100_000_000)
    m.alias_released(100_000_500)
    assert actions(m) == []  # nothing to set yet: the alias is set last
    log = run_timers(m, 10**12)
    assert log[-4:] == [
        (1_492_031_000, ResumeVm("vm1", "h2")),
        (1_492_031_000, AttachVf("h2", "vm1")),
        (1_692_031_000, ReinitDriver("vm1", "h2")),
        (1_992_031_000, SetAlias("h2", "vm1", V1)),
    ]
    assert phase(m) is Phase.SETTING_ALIAS
    assert m.alias_released_ns == 100_000_500
    assert m.alias_requested_ns == 1_992_031_000


def test_set_alias_comes_after_the_release_whenever_that_is() -> None:
    """Release-before-set: SetAlias is never handed out before `alias_released`,
    however long the release takes; it follows the confirmation at once."""
    m = migration()
    m.migrate(0)
    log = [a for _, a in run_timers(m, 10**12)]
    assert [a for a in log if isinstance(a, ReleaseAlias | SetAlias)] == [ReleaseAlias("h1", V1)]
    assert phase(m) is Phase.SETTING_ALIAS
    with pytest.raises(MigrationStateError):
        m.alias_set_acknowledged(5_000_000_000)  # nothing was asked of the SA yet
    assert actions(m) == []
    m.alias_released(7_000_000_000)
    assert actions(m) == [SetAlias("h2", "vm1", V1)]
    assert m.alias_requested_ns == 7_000_000_000
    m.vf_attached(7_000_000_100)
    m.alias_set_acknowledged(7_000_000_200)
    assert actions(m) == [MigrationDone("vm1", "h2")]
    assert m.timeline[-1] == PhaseRecord(Phase.SETTING_ALIAS, None, 1_992_031_000, 7_000_000_200)
    assert m.total_time_ns == 7_000_000_200


def test_without_awaiting_the_release() -> None:
    m = migration(await_alias_release=False)
    m.migrate(0)
    log = run_timers(m, 10**12)
    assert log[-1] == (1_992_031_000, SetAlias("h2", "vm1", V1))
    assert [a for _, a in log].count(SetAlias("h2", "vm1", V1)) == 1
    assert m.alias_requested_ns == 1_992_031_000
    m.alias_released(1_992_031_001)  # still accepted later
    assert actions(m) == []  # and no second SetAlias
    assert m.alias_released_ns == 1_992_031_001


def test_dynamic_assignment_releases_nothing_and_lets_the_vf_choose() -> None:
    m = migration(assignment=AddressAssignment.DYNAMIC, vguid=None)
    m.migrate(0)
    log = run_timers(m, 10**12)
    assert not any(isinstance(a, ReleaseAlias) for _, a in log)
    assert log[-1] == (1_992_031_000, SetAlias("h2", "vm1", None))
    with pytest.raises(MigrationStateError):
        m.alias_released(5)
    m.alias_set_acknowledged(1_992_031_000)
    m.vf_attached(1_992_031_000)
    assert actions(m) == [MigrationDone("vm1", "h2")]
    assert m.total_time_ns == 1_992_031_000


def test_attaching_vf_ends_on_its_timer_alone() -> None:
    """The hot-plug is a PCI event of the hypervisor: it ends when `vf_attach_ns` is
    over, and no confirmation is taken (VfUp belongs to SETTING_ALIAS)."""
    m = migration(await_alias_release=False)
    m.migrate(0)
    run_timers(m, 1_492_031_000)
    assert phase(m) is Phase.ATTACHING_VF
    assert m.get_timer() == 1_692_031_000
    with pytest.raises(MigrationStateError):
        m.vf_attached(1_500_000_000)
    with pytest.raises(MigrationStateError):
        m.alias_set_acknowledged(1_500_000_000)
    assert m.vf_attached_ns is None and m.alias_acknowledged_ns is None
    m.handle_timer(1_692_030_999)
    assert phase(m) is Phase.ATTACHING_VF and actions(m) == []
    m.handle_timer(1_692_031_000)
    assert phase(m) is Phase.REINIT_DRIVER
    assert actions(m) == [ReinitDriver("vm1", "h2")]
    assert m.timeline[-2] == PhaseRecord(Phase.ATTACHING_VF, None, 1_492_031_000, 1_692_031_000)
    assert m.get_timer() == 1_992_031_000


@pytest.mark.parametrize("vf_first", [False, True])
def test_setting_alias_ends_on_both_confirmations_in_either_order(vf_first: bool) -> None:
    m = drive_to(Phase.SETTING_ALIAS, await_alias_release=False)
    assert m.timeline[-1].start_ns == 1_992_031_000
    assert m.alias_requested_ns == 1_992_031_000

    def first(now_ns: int) -> None:
        (m.vf_attached if vf_first else m.alias_set_acknowledged)(now_ns)

    def second(now_ns: int) -> None:
        (m.alias_set_acknowledged if vf_first else m.vf_attached)(now_ns)

    first(2_100_000_000)
    # One of two: nothing moves, no timer, nothing to do.
    assert phase(m) is Phase.SETTING_ALIAS
    assert m.get_timer() is None and actions(m) == [] and m.next_event() is None
    assert m.done_ns is None and m.total_time_ns is None and m.rc_downtime_ns is None
    assert m.timeline[-1] == PhaseRecord(Phase.SETTING_ALIAS, None, 1_992_031_000, None)
    with pytest.raises(MigrationStateError):
        first(2_150_000_000)  # the same confirmation twice
    assert phase(m) is Phase.SETTING_ALIAS
    second(2_300_000_000)
    assert actions(m) == [MigrationDone("vm1", "h2")]
    assert m.next_event() == PhaseEntered("vm1", Phase.DONE, None, 2_300_000_000)
    assert m.done and m.get_timer() is None
    assert m.timeline[-1] == PhaseRecord(Phase.SETTING_ALIAS, None, 1_992_031_000, 2_300_000_000)
    assert m.done_ns == 2_300_000_000 and m.total_time_ns == 2_300_000_000
    assert m.rc_downtime_ns == 2_300_000_000
    acked, attached = (2_300_000_000, 2_100_000_000) if vf_first else (2_100_000_000, 2_300_000_000)
    assert m.alias_acknowledged_ns == acked
    assert m.vf_attached_ns == attached


def test_a_late_timer_call_keeps_every_deadline() -> None:
    m = migration()
    m.migrate(0)
    m.handle_timer(10**12)
    assert phase(m) is Phase.SETTING_ALIAS
    ends = [r.end_ns for r in m.timeline[:-1]]
    assert ends == [
        100_000_000,
        1_100_000_000,
        1_350_000_000,
        1_412_500_000,
        1_428_125_000,
        1_442_031_000,
        1_492_031_000,
        1_692_031_000,
        1_992_031_000,
    ]
    assert m.timeline[-1] == PhaseRecord(Phase.SETTING_ALIAS, None, 1_992_031_000, None)


def test_phase_events() -> None:
    m = migration(await_alias_release=False)
    m.migrate(0)
    run_timers(m, 200_000_000)
    found = []
    while (event := m.next_event()) is not None:
        found.append(event)
    assert found == [
        PhaseEntered("vm1", Phase.DETACHING_VF, None, 0),
        PhaseEntered("vm1", Phase.PRE_COPY, 0, 100_000_000),
    ]
    run_timers(m, 10**12)
    m.alias_set_acknowledged(2_000_000_000)
    m.vf_attached(2_000_000_000)
    while (event := m.next_event()) is not None:
        found.append(event)
    assert found[2:] == [
        PhaseEntered("vm1", Phase.PRE_COPY, 1, 1_100_000_000),
        PhaseEntered("vm1", Phase.PRE_COPY, 2, 1_350_000_000),
        PhaseEntered("vm1", Phase.PRE_COPY, 3, 1_412_500_000),
        PhaseEntered("vm1", Phase.STOP_AND_COPY, None, 1_428_125_000),
        PhaseEntered("vm1", Phase.RESUMING, None, 1_442_031_000),
        PhaseEntered("vm1", Phase.ATTACHING_VF, None, 1_492_031_000),
        PhaseEntered("vm1", Phase.REINIT_DRIVER, None, 1_692_031_000),
        PhaseEntered("vm1", Phase.SETTING_ALIAS, None, 1_992_031_000),
        PhaseEntered("vm1", Phase.DONE, None, 2_000_000_000),
    ]


# --- the transition table -------------------------------------------------------------


def test_table_is_one_path_from_idle_to_done() -> None:
    phase, seen = Phase.IDLE, [Phase.IDLE]
    path = [
        Stimulus.START,
        Stimulus.VF_DETACHED,
        Stimulus.ROUND_DONE,
        Stimulus.PRECOPY_DONE,
        Stimulus.STATE_COPIED,
        Stimulus.RESUMED,
        Stimulus.VF_ATTACHED,
        Stimulus.DRIVER_READY,
        Stimulus.ALIAS_ACKNOWLEDGED,
    ]
    for stimulus in path:
        phase = next_phase(phase, stimulus)
        seen.append(phase)
    assert seen == [
        Phase.IDLE,
        Phase.DETACHING_VF,
        Phase.PRE_COPY,
        Phase.PRE_COPY,
        Phase.STOP_AND_COPY,
        Phase.RESUMING,
        Phase.ATTACHING_VF,
        Phase.REINIT_DRIVER,
        Phase.SETTING_ALIAS,
        Phase.DONE,
    ]
    assert set(seen) == set(Phase) - {Phase.ABORTED}
    # The path uses every entry of the table but the aborts, and the table has no
    # other: an abort leads from every phase of the path between its ends.
    aborts = {(p, Stimulus.ABORT) for p in seen[1:-1]}
    assert set(zip(seen, path, strict=False)) | aborts == set(TRANSITIONS)
    assert len(TRANSITIONS) == len(path) + len(set(seen[1:-1]))
    assert {TRANSITIONS[key] for key in aborts} == {Phase.ABORTED}
    assert not [key for key in TRANSITIONS if key[0] in (Phase.DONE, Phase.ABORTED)]


@pytest.mark.parametrize(
    ("phase", "stimulus"),
    [pair for pair in itertools.product(Phase, Stimulus) if pair not in TRANSITIONS],
)
def test_every_other_transition_raises(phase: Phase, stimulus: Stimulus) -> None:
    with pytest.raises(MigrationStateError):
        next_phase(phase, stimulus)


@pytest.mark.parametrize("where", [p for p in Phase if p is not Phase.SETTING_ALIAS])
def test_vf_attached_outside_setting_alias_raises(where: Phase) -> None:
    m = drive_to(where)
    before = m.timeline
    with pytest.raises(MigrationStateError):
        m.vf_attached(3_000_000_000)
    assert phase(m) is where and m.timeline == before
    assert actions(m) == [] and m.next_event() is None
    if where is not Phase.DONE:
        assert m.vf_attached_ns is None


@pytest.mark.parametrize("where", [p for p in Phase if p is not Phase.SETTING_ALIAS])
def test_alias_acknowledged_outside_setting_alias_raises(where: Phase) -> None:
    m = drive_to(where)
    before = m.timeline
    with pytest.raises(MigrationStateError):
        m.alias_set_acknowledged(3_000_000_000)
    assert phase(m) is where and m.timeline == before
    assert actions(m) == [] and m.next_event() is None
    if where is not Phase.DONE:
        assert m.alias_acknowledged_ns is None


def test_confirmations_at_the_wrong_time_raise() -> None:
    m = migration()
    with pytest.raises(MigrationStateError):
        m.vf_attached(0)
    with pytest.raises(MigrationStateError):
        m.alias_set_acknowledged(0)
    with pytest.raises(MigrationStateError):
        m.alias_released(0)  # nothing released yet
    m.migrate(0)
    with pytest.raises(MigrationStateError):
        m.migrate(1)
    with pytest.raises(MigrationStateError):
        m.alias_set_acknowledged(1)  # still detaching
    with pytest.raises(MigrationStateError):
        m.vf_attached(1)  # still detaching
    run_timers(m, 10**12)
    assert phase(m) is Phase.SETTING_ALIAS
    # In SETTING_ALIAS but the SetAlias waits for the release: no ack possible yet.
    with pytest.raises(MigrationStateError):
        m.alias_set_acknowledged(2)
    m.alias_released(3)
    with pytest.raises(MigrationStateError):
        m.alias_released(4)  # twice
    m.alias_set_acknowledged(5)
    with pytest.raises(MigrationStateError):
        m.alias_set_acknowledged(6)  # twice
    assert phase(m) is Phase.SETTING_ALIAS and m.alias_acknowledged_ns == 5
    m.vf_attached(6)
    assert m.done
    with pytest.raises(MigrationStateError):
        m.vf_attached(7)  # twice, and after the end
    with pytest.raises(MigrationStateError):
        m.alias_set_acknowledged(10**13)
    with pytest.raises(MigrationStateError):
        m.migrate(10**13)
    assert m.done_ns == 6


def test_constructor_checks_the_assignment() -> None:
    with pytest.raises(ValueError, match="static"):
        LiveMigration("vm", "a", "b")
    with pytest.raises(ValueError, match="dynamic"):
        LiveMigration("vm", "a", "b", assignment=AddressAssignment.DYNAMIC, vguid=V1)


# --- the whole run, for any timing --------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(
    memory=st.integers(1, 1 << 34),
    dirty=st.integers(0, 1 << 30),
    bandwidth=st.integers(1, 1 << 32),
    durations=st.lists(st.integers(0, 10**10), min_size=4, max_size=4),
    ack_delay=st.integers(0, 10**9),
    up_delay=st.integers(0, 10**9),
    vf_first_on_tie=st.booleans(),
    start=st.integers(0, 10**12),
)
def test_total_time_is_the_sum_of_the_phases(
    memory: int,
    dirty: int,
    bandwidth: int,
    durations: list[int],
    ack_delay: int,
    up_delay: int,
    vf_first_on_tie: bool,
    start: int,
) -> None:
    timing = dataclasses.replace(
        TIMING,
        memory_bytes=memory,
        dirty_rate_bytes_per_s=dirty,
        bandwidth_bytes_per_s=bandwidth,
        vf_detach_ns=durations[0],
        resume_ns=durations[1],
        vf_attach_ns=durations[2],
        driver_reinit_ns=durations[3],
    )
    m = LiveMigration("vm", "a", "b", timing=timing, vguid=V1, await_alias_release=False)
    m.migrate(start)
    run_timers(m, 1 << 100)
    assert phase(m) is Phase.SETTING_ALIAS and m.get_timer() is None
    entered = m.timeline[-1].start_ns
    # The two confirmations, in the order of their times (either may come first).
    confirmations = [
        (entered + ack_delay, 1 if vf_first_on_tie else 0, m.alias_set_acknowledged),
        (entered + up_delay, 0 if vf_first_on_tie else 1, m.vf_attached),
    ]
    confirmations.sort(key=lambda c: (c[0], c[1]))
    (t1, _, call1), (t2, _, call2) = confirmations
    call1(t1)
    assert phase(m) is Phase.SETTING_ALIAS
    call2(t2)
    assert m.done and m.get_timer() is None
    plan = plan_precopy(timing)
    assert m.total_time_ns == (
        sum(durations) + plan.precopy_ns + plan.stop_copy_ns + max(ack_delay, up_delay)
    )
    assert m.vm_downtime_ns == plan.stop_copy_ns + timing.resume_ns
    assert m.rc_downtime_ns == m.total_time_ns
    assert sum(r.duration_ns or 0 for r in m.timeline) == m.total_time_ns
    assert [r.round for r in m.timeline if r.phase is Phase.PRE_COPY] == list(
        range(len(plan.rounds))
    )
    order = [r.phase for r in m.timeline if r.phase is not Phase.PRE_COPY]
    assert order == [
        Phase.DETACHING_VF,
        Phase.STOP_AND_COPY,
        Phase.RESUMING,
        Phase.ATTACHING_VF,
        Phase.REINIT_DRIVER,
        Phase.SETTING_ALIAS,
    ]
    setting = m.timeline[-1]
    assert (setting.start_ns, setting.end_ns) == (entered, entered + max(ack_delay, up_delay))
    assert setting.start_ns == start + sum(durations) + plan.precopy_ns + plan.stop_copy_ns


# --- aborts ---------------------------------------------------------------------------

RESTORE = [ResumeAtSource("vm1", "h1"), RestoreVf("h1", "vm1", V1)]


@pytest.mark.parametrize(
    "where",
    [
        Phase.DETACHING_VF,
        Phase.PRE_COPY,
        Phase.STOP_AND_COPY,
        Phase.RESUMING,
        Phase.ATTACHING_VF,
        Phase.REINIT_DRIVER,
        Phase.SETTING_ALIAS,
    ],
)
def test_abort_before_set_alias_restores_the_source_at_once(where: Phase) -> None:
    m = drive_to(where)
    start = m.timeline[-1].start_ns
    at = start + 1_000
    m.abort(at, "operator")
    assert phase(m) is Phase.ABORTED and m.aborted and not m.done
    # No ReleaseAlias (DETACHING_VF's exit), no ResumeVm, no MigrationDone.
    assert actions(m) == RESTORE
    assert m.next_event() == PhaseEntered("vm1", Phase.ABORTED, None, at)
    assert m.get_timer() is None
    assert m.timeline[-1] == PhaseRecord(where, m.timeline[-1].round, start, at, 0, True)
    assert not any(r.aborted for r in m.timeline[:-1])
    assert m.aborted_ns == at and m.abort_reason == "operator"
    assert m.done_ns is None and m.total_time_ns is None
    # A release still outstanding (the source's Delete) is taken without effect.
    assert m.awaits_alias_release is (where is not Phase.DETACHING_VF)
    if m.awaits_alias_release:
        m.alias_released(at + 5)
        assert m.alias_released_ns == at + 5 and actions(m) == []
    assert not m.awaits_alias_release
    with pytest.raises(MigrationStateError):
        m.alias_released(at + 6)


def test_abort_after_set_alias_waits_for_the_destination_delete() -> None:
    m = drive_to(Phase.SETTING_ALIAS)
    m.alias_released(2_000_000_000)
    assert actions(m) == [SetAlias("h2", "vm1", V1)]
    m.alias_set_acknowledged(2_000_000_001)
    m.abort(2_000_000_002, "late")
    assert actions(m) == [UndoAlias("h2", "vm1", V1)]
    assert m.awaits_alias_release
    # Stale confirmations of the cut SETTING_ALIAS are refused.
    with pytest.raises(MigrationStateError):
        m.vf_attached(2_000_000_003)
    m.alias_released(2_000_000_004)  # the destination's Delete answered
    assert actions(m) == RESTORE
    assert not m.awaits_alias_release


def test_abort_with_both_deletes_outstanding_waits_for_both() -> None:
    """Without awaiting the release, SetAlias goes out while the source's Delete is
    in flight; the two answers look alike, so RestoreVf waits for both."""
    m = drive_to(Phase.SETTING_ALIAS, await_alias_release=False)
    m.abort(2_000_000_000, "x")
    assert actions(m) == [UndoAlias("h2", "vm1", V1)]
    m.alias_released(2_000_000_001)
    assert actions(m) == [] and m.awaits_alias_release
    m.alias_released(2_000_000_002)
    assert actions(m) == RESTORE


def test_dynamic_abort_after_set_alias_restores_at_once() -> None:
    m = drive_to(Phase.SETTING_ALIAS, assignment=AddressAssignment.DYNAMIC, vguid=None)
    assert actions(m) == []
    m.abort(2_000_000_000, "x")
    assert actions(m) == [
        UndoAlias("h2", "vm1", None),
        ResumeAtSource("vm1", "h1"),
        RestoreVf("h1", "vm1", None),
    ]
    assert not m.awaits_alias_release


@pytest.mark.parametrize("where", [Phase.IDLE, Phase.DONE, Phase.ABORTED])
def test_abort_at_the_ends_raises(where: Phase) -> None:
    m = drive_to(where)
    before = m.timeline
    with pytest.raises(MigrationStateError):
        m.abort(3_000_000_000, "late")
    assert phase(m) is where and m.timeline == before and actions(m) == []
    assert m.abort_reason == (None if where is not Phase.ABORTED else "test")


@pytest.mark.parametrize("stimulus", list(Stimulus))
def test_nothing_leaves_aborted(stimulus: Stimulus) -> None:
    with pytest.raises(MigrationStateError):
        next_phase(Phase.ABORTED, stimulus)


# --- when the destination registers the alias (AliasRegistration) -------------------


@pytest.mark.parametrize(
    ("registration", "at_ns"),
    [
        # The default: after the driver re-init, as mlx4's SLAVE_INIT event does.
        (AliasRegistration.AFTER_REINIT, 1_992_032_000),
        # On the VF hot-plug: ResumeVm and AttachVf at 1.492032 s.
        (AliasRegistration.AT_ATTACH, 1_492_032_000),
        # Pre-registered when stop-and-copy begins (PauseVm at 1.428126 s).
        (AliasRegistration.BEFORE_STOP_COPY, 1_428_126_000),
    ],
)
def test_set_alias_is_issued_at_the_registration_point(
    registration: AliasRegistration, at_ns: int
) -> None:
    m = migration(alias_registration=registration)
    m.migrate(1_000)
    actions(m)
    log = run_timers(m, 100_001_000)  # the detach: ReleaseAlias
    m.alias_released(200_000_000)  # the source's Delete answered long before
    log += run_timers(m, 10**12)
    assert [t for t, a in log if isinstance(a, SetAlias)] == [at_ns]
    assert m.alias_requested_ns == at_ns
    # The guest's stack comes up only after the driver re-init, whatever the choice.
    assert phase(m) is Phase.SETTING_ALIAS
    assert m.timeline[-1].start_ns == 1_992_032_000


def test_early_confirmations_end_the_migration_at_the_driver_re_init() -> None:
    # Registered at attach, acknowledged and the vport up while the driver still
    # initialises: SETTING_ALIAS lasts no time, MigrationDone at the re-init's end.
    m = migration(alias_registration="at_attach")
    m.migrate(0)
    actions(m)
    log = run_timers(m, 100_000_000)
    m.alias_released(100_000_000)
    log += run_timers(m, 1_500_000_000)
    assert [a for _, a in log if isinstance(a, SetAlias)] == [SetAlias("h2", "vm1", V1)]
    assert m.awaits_alias_ack
    m.alias_set_acknowledged(1_500_000_000)
    m.vf_attached(1_500_000_001)
    assert not m.awaits_alias_ack
    assert phase(m) is Phase.ATTACHING_VF
    log = run_timers(m, 10**12)
    assert log[-1] == (1_992_031_000, MigrationDone("vm1", "h2"))
    assert m.done and m.done_ns == 1_992_031_000
    setting = [r for r in m.timeline if r.phase is Phase.SETTING_ALIAS]
    assert [r.duration_ns for r in setting] == [0]
    with pytest.raises(MigrationStateError):
        m.vf_attached(2_000_000_000)


def test_pre_registration_waits_for_the_source_release() -> None:
    # Static assignment: the SA refuses the vGUID while the source holds it, so a
    # registration point reached before the release waits for it.
    m = migration(alias_registration="before_stop_copy")
    m.migrate(0)
    actions(m)
    log = run_timers(m, 1_428_125_000)
    assert (1_428_125_000, PauseVm("vm1")) in log
    assert not [a for _, a in log if isinstance(a, SetAlias)]
    assert m.alias_requested_ns is None  # paused at 1.428125 s, release still pending
    m.alias_released(1_450_000_000)
    assert actions(m) == [SetAlias("h2", "vm1", V1)]
    assert m.alias_requested_ns == 1_450_000_000


def test_an_abort_after_pre_registration_undoes_the_alias() -> None:
    m = migration(alias_registration="before_stop_copy")
    m.migrate(0)
    actions(m)
    run_timers(m, 100_000_000)
    m.alias_released(100_000_000)
    run_timers(m, 1_430_000_000)
    assert m.alias_requested_ns is not None and phase(m) is Phase.STOP_AND_COPY
    m.abort(1_430_000_000, "test")
    assert actions(m) == [UndoAlias("h2", "vm1", V1)]
    m.alias_released(1_431_000_000)  # the destination's Delete
    assert actions(m) == [ResumeAtSource("vm1", "h1"), RestoreVf("h1", "vm1", V1)]


def test_unknown_registration_point_is_refused() -> None:
    with pytest.raises(ValueError):
        migration(alias_registration="whenever")

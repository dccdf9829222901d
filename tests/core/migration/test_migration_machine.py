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
    ResumeVm,
    SetAlias,
    Stimulus,
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


def test_static_migration_timeline_exactly() -> None:
    m = migration()
    m.migrate(1_000)
    assert actions(m) == [DetachVf("h1", "vm1")]
    assert m.get_timer() == 100_001_000
    log = run_timers(m, 10**12)
    # Detach done: the vGUID is released; then 4 pre-copy rounds (1 s, 250 ms,
    # 62.5 ms, 15.625 ms), stop-and-copy of 13 906 bytes, 50 ms resume.
    assert log == [
        (100_001_000, ReleaseAlias("h1", V1)),
        (1_428_126_000, PauseVm("vm1")),
        (1_492_032_000, ResumeVm("vm1", "h2")),
    ]
    assert phase(m) is Phase.SETTING_ALIAS and m.get_timer() is None
    # The release was not confirmed yet: no SetAlias. It comes with the confirmation.
    m.alias_released(1_500_000_000)
    assert actions(m) == [SetAlias("h2", "vm1", V1)]
    m.alias_set_acknowledged(1_500_400_000)  # the SA's GetResp reached dom0
    assert actions(m) == [AttachVf("h2", "vm1")]
    m.vf_attached(1_500_400_000)  # the host's VfUp, at once
    assert phase(m) is Phase.ATTACHING_VF
    assert run_timers(m, 10**12) == [
        (1_700_400_000, ReinitDriver("vm1", "h2")),
        (2_000_400_000, MigrationDone("vm1", "h2")),
    ]
    assert m.done and m.get_timer() is None
    expected = [
        (Phase.DETACHING_VF, None, 1_000, 100_001_000, 0),
        (Phase.PRE_COPY, 0, 100_001_000, 1_100_001_000, 1_000_000),
        (Phase.PRE_COPY, 1, 1_100_001_000, 1_350_001_000, 250_000),
        (Phase.PRE_COPY, 2, 1_350_001_000, 1_412_501_000, 62_500),
        (Phase.PRE_COPY, 3, 1_412_501_000, 1_428_126_000, 15_625),
        (Phase.STOP_AND_COPY, None, 1_428_126_000, 1_442_032_000, 13_906),
        (Phase.RESUMING, None, 1_442_032_000, 1_492_032_000, 0),
        (Phase.SETTING_ALIAS, None, 1_492_032_000, 1_500_400_000, 0),
        (Phase.ATTACHING_VF, None, 1_500_400_000, 1_700_400_000, 0),
        (Phase.REINIT_DRIVER, None, 1_700_400_000, 2_000_400_000, 0),
    ]
    assert m.timeline == tuple(PhaseRecord(*row) for row in expected)
    assert m.precopy_rounds == 4
    assert m.total_time_ns == 2_000_399_000
    assert m.vm_downtime_ns == 13_906_000 + 50_000_000  # stop-and-copy + resume
    assert m.rc_downtime_ns == 2_000_400_000 - 1_000  # detach to driver ready
    assert m.alias_requested_ns == 1_500_000_000
    assert m.alias_acknowledged_ns == 1_500_400_000


def test_release_confirmed_early_lets_set_alias_go_at_once() -> None:
    m = migration()
    m.migrate(0)
    actions(m)
    run_timers(m, 100_000_000)
    m.alias_released(100_000_500)
    log = run_timers(m, 10**12)
    assert log[-2:] == [
        (1_492_031_000, ResumeVm("vm1", "h2")),
        (1_492_031_000, SetAlias("h2", "vm1", V1)),
    ]


def test_without_awaiting_the_release() -> None:
    m = migration(await_alias_release=False)
    m.migrate(0)
    log = run_timers(m, 10**12)
    assert log[-1] == (1_492_031_000, SetAlias("h2", "vm1", V1))
    m.alias_released(1_492_031_001)  # still accepted later
    assert actions(m) == []


def test_dynamic_assignment_releases_nothing_and_lets_the_vf_choose() -> None:
    m = migration(assignment=AddressAssignment.DYNAMIC, vguid=None)
    m.migrate(0)
    log = [a for _, a in run_timers(m, 10**12)]
    assert not any(isinstance(a, ReleaseAlias) for a in log)
    assert log[-1] == SetAlias("h2", "vm1", None)
    with pytest.raises(MigrationStateError):
        m.alias_released(5)


def test_attach_ends_at_the_later_of_timer_and_confirmation() -> None:
    m = migration(await_alias_release=False)
    m.migrate(0)
    run_timers(m, 10**12)
    m.alias_set_acknowledged(2_000_000_000)
    assert actions(m) == [AttachVf("h2", "vm1")]
    m.handle_timer(2_200_000_000)  # hot-plug time is over; VfUp not yet
    assert phase(m) is Phase.ATTACHING_VF and m.get_timer() is None
    m.vf_attached(2_250_000_000)
    assert phase(m) is Phase.REINIT_DRIVER
    assert m.timeline[-2].end_ns == 2_250_000_000
    assert m.vf_attached_ns == 2_250_000_000


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
    ]


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
        Stimulus.ALIAS_ACKNOWLEDGED,
        Stimulus.VF_ATTACHED,
        Stimulus.DRIVER_READY,
    ]
    for stimulus in path:
        phase = next_phase(phase, stimulus)
        seen.append(phase)
    assert phase is Phase.DONE
    assert set(seen) == set(Phase)
    assert not [key for key in TRANSITIONS if key[0] is Phase.DONE]


@pytest.mark.parametrize(
    ("phase", "stimulus"),
    [pair for pair in itertools.product(Phase, Stimulus) if pair not in TRANSITIONS],
)
def test_every_other_transition_raises(phase: Phase, stimulus: Stimulus) -> None:
    with pytest.raises(MigrationStateError):
        next_phase(phase, stimulus)


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
    run_timers(m, 10**12)
    # In SETTING_ALIAS but the SetAlias waits for the release: no ack possible yet.
    with pytest.raises(MigrationStateError):
        m.alias_set_acknowledged(2)
    m.alias_released(3)
    with pytest.raises(MigrationStateError):
        m.alias_released(4)  # twice
    m.alias_set_acknowledged(5)
    m.vf_attached(6)
    with pytest.raises(MigrationStateError):
        m.vf_attached(7)  # twice
    run_timers(m, 10**12)
    assert m.done
    with pytest.raises(MigrationStateError):
        m.alias_set_acknowledged(10**13)


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
    start=st.integers(0, 10**12),
)
def test_total_time_is_the_sum_of_the_phases(
    memory: int, dirty: int, bandwidth: int, durations: list[int], ack_delay: int, start: int
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
    assert phase(m) is Phase.SETTING_ALIAS
    m.alias_set_acknowledged(m.timeline[-1].start_ns + ack_delay)
    m.vf_attached(m.timeline[-1].start_ns)
    run_timers(m, 1 << 100)
    assert m.done
    plan = plan_precopy(timing)
    assert m.total_time_ns == (sum(durations) + plan.precopy_ns + plan.stop_copy_ns + ack_delay)
    assert m.vm_downtime_ns == plan.stop_copy_ns + timing.resume_ns
    assert sum(r.duration_ns or 0 for r in m.timeline) == m.total_time_ns
    assert [r.round for r in m.timeline if r.phase is Phase.PRE_COPY] == list(
        range(len(plan.rounds))
    )

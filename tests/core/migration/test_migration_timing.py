"""MigrationTiming defaults and overrides, and the pre-copy plan computed exactly."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ibmig.core.migration import (
    CopyRound,
    MigrationTiming,
    plan_precopy,
    transfer_ns,
)
from ibmig.errors import ConfigError

SMALL = MigrationTiming(
    memory_bytes=1_000_000,
    dirty_rate_bytes_per_s=250_000,
    device_state_bytes=10_000,
    bandwidth_bytes_per_s=1_000_000,
    stop_threshold_bytes=20_000,
)


# --- the plan -------------------------------------------------------------------------


def test_plan_rounds_by_hand() -> None:
    """1 MB at 1 MB/s while 250 kB/s are dirtied: each round a quarter of the last,
    until one sends less than 20 kB."""
    plan = plan_precopy(SMALL)
    assert plan.rounds == (
        CopyRound(0, 1_000_000, 1_000_000_000, 250_000),
        CopyRound(1, 250_000, 250_000_000, 62_500),
        CopyRound(2, 62_500, 62_500_000, 15_625),
        CopyRound(3, 15_625, 15_625_000, 3_906),  # 3906.25 bytes, floored
    )
    assert plan.stop_reason == "threshold"
    assert plan.stop_copy_bytes == 3_906 + 10_000
    assert plan.stop_copy_ns == 13_906_000
    assert plan.precopy_ns == 1_328_125_000
    assert plan.total_sent_bytes == 1_000_000 + 250_000 + 62_500 + 15_625 + 13_906


def test_plan_stops_at_max_rounds_when_not_converging() -> None:
    timing = dataclasses.replace(
        SMALL, dirty_rate_bytes_per_s=1_000_000, max_copy_factor=100, max_precopy_rounds=5
    )
    plan = plan_precopy(timing)
    assert [r.sent_bytes for r in plan.rounds] == [1_000_000] * 5
    assert plan.stop_reason == "max_rounds"
    assert plan.stop_copy_bytes == 1_000_000 + 10_000


def test_plan_stops_at_three_times_the_memory() -> None:
    timing = dataclasses.replace(SMALL, dirty_rate_bytes_per_s=1_000_000)
    plan = plan_precopy(timing)
    # 1, 2, 3 MB sent: not more than 3x; after the 4th round 4 MB > 3 MB.
    assert len(plan.rounds) == 4 and plan.stop_reason == "max_factor"


def test_dirtying_is_capped_at_the_memory_size() -> None:
    timing = dataclasses.replace(SMALL, dirty_rate_bytes_per_s=50_000_000, max_precopy_rounds=2)
    plan = plan_precopy(timing)
    assert [r.dirtied_bytes for r in plan.rounds] == [1_000_000, 1_000_000]


def test_idle_guest_takes_two_rounds_as_xen_does() -> None:
    """Xen checks the round just sent: round 1 sends nothing, then it stops."""
    plan = plan_precopy(dataclasses.replace(SMALL, dirty_rate_bytes_per_s=0))
    assert [r.sent_bytes for r in plan.rounds] == [1_000_000, 0]
    assert plan.rounds[1].duration_ns == 0
    assert plan.stop_copy_bytes == 10_000


def test_a_round_just_under_the_threshold_is_the_last() -> None:
    timing = dataclasses.replace(SMALL, stop_threshold_bytes=62_501)
    assert len(plan_precopy(timing).rounds) == 3
    timing = dataclasses.replace(SMALL, stop_threshold_bytes=62_500)  # strictly less
    assert len(plan_precopy(timing).rounds) == 4


def test_transfer_time_rounds_up() -> None:
    assert transfer_ns(1, 3) == 333_333_334
    assert transfer_ns(3, 3) == 1_000_000_000
    assert transfer_ns(0, 7) == 0


@settings(max_examples=300, deadline=None)
@given(
    memory=st.integers(1, 1 << 36),
    dirty=st.integers(0, 1 << 32),
    bandwidth=st.integers(1, 1 << 34),
    threshold=st.integers(0, 1 << 24),
    rounds=st.integers(1, 40),
    factor=st.integers(1, 5),
    device=st.integers(0, 1 << 24),
)
def test_plan_follows_the_recurrence(
    memory: int, dirty: int, bandwidth: int, threshold: int, rounds: int, factor: int, device: int
) -> None:
    timing = MigrationTiming(
        memory_bytes=memory,
        dirty_rate_bytes_per_s=dirty,
        bandwidth_bytes_per_s=bandwidth,
        stop_threshold_bytes=threshold,
        max_precopy_rounds=rounds,
        max_copy_factor=factor,
        device_state_bytes=device,
    )
    plan = plan_precopy(timing)
    assert 1 <= len(plan.rounds) <= rounds
    assert plan.rounds[0].sent_bytes == memory
    for before, after in zip(plan.rounds, plan.rounds[1:], strict=False):
        assert after.sent_bytes == before.dirtied_bytes
        # Every round but the last one went on: none of the stop tests held.
        assert before.sent_bytes >= threshold
    for r in plan.rounds:
        assert r.duration_ns == -(-r.sent_bytes * 10**9 // bandwidth)
        assert r.dirtied_bytes == min(memory, dirty * r.duration_ns // 10**9)
    assert plan.stop_copy_bytes == plan.rounds[-1].dirtied_bytes + device


# --- the configuration ----------------------------------------------------------------


def test_defaults_carry_xens_constants() -> None:
    timing = MigrationTiming()
    assert timing.stop_threshold_bytes == 50 * 4096
    assert timing.max_precopy_rounds == 29
    assert timing.max_copy_factor == 3
    for field in dataclasses.fields(timing):
        assert isinstance(getattr(timing, field.name), int)


def test_overrides_by_name() -> None:
    base = MigrationTiming()
    changed = base.with_overrides(
        {"bandwidth_bytes_per_s": 1_250_000_000, "memory_bytes": 4e9}, "run.toml:migration"
    )
    assert changed.bandwidth_bytes_per_s == 1_250_000_000
    assert changed.memory_bytes == 4_000_000_000 and isinstance(changed.memory_bytes, int)
    assert changed.vf_detach_ns == base.vf_detach_ns
    assert base.bandwidth_bytes_per_s == 125_000_000  # the original is untouched


def test_override_of_an_unknown_key() -> None:
    with pytest.raises(ConfigError) as info:
        MigrationTiming().with_overrides({"bandwith_bytes_per_s": 1}, "run.toml:migration")
    assert info.value.where == "run.toml:migration.bandwith_bytes_per_s"
    assert "bandwidth_bytes_per_s" in info.value.message  # the known names are listed


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("memory_bytes", "2GiB"),
        ("memory_bytes", None),
        ("vf_detach_ns", True),
        ("resume_ns", 1.5),
        ("resume_ns", [1]),
        ("resume_ns", -1),
        ("bandwidth_bytes_per_s", 0),
        ("memory_bytes", 0),
        ("max_precopy_rounds", 0),
        ("max_copy_factor", 0),
    ],
)
def test_override_errors(key: str, value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        MigrationTiming().with_overrides({key: value}, "scenario.migration")
    assert info.value.where == f"scenario.migration.{key}"


def test_zero_durations_are_allowed() -> None:
    timing = MigrationTiming().with_overrides(
        {"vf_detach_ns": 0, "resume_ns": 0, "dirty_rate_bytes_per_s": 0}, "x"
    )
    assert timing.vf_detach_ns == 0


def test_construction_is_validated() -> None:
    with pytest.raises(ConfigError) as info:
        MigrationTiming(bandwidth_bytes_per_s=0)
    assert info.value.where == "migration.bandwidth_bytes_per_s"
    with pytest.raises(ConfigError):
        MigrationTiming(driver_reinit_ns=-5)

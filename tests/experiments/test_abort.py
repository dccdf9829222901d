"""`[[migrations]] abort_ms` end to end: the migration is aborted, the VM goes on
at its source, and the peers get their connections back."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ibmig.core.sa import PathChangeDetected
from ibmig.errors import ConfigError
from ibmig.experiments.runner import run_scenario
from ibmig.experiments.scenario import scenario_from_dict
from tests.experiments.test_signalling import LAB


def lab(abort_ms: Any, duration_ms: float = 6000) -> Any:
    data: dict[str, Any] = json.loads(json.dumps(LAB))
    data["signalling"] = {"assignment": "static", "strategy": "per-host"}
    if abort_ms is not None:
        data["migrations"][0]["abort_ms"] = abort_ms
    data["run"]["duration_ms"] = duration_ms
    return scenario_from_dict(data, "lab.toml")


@pytest.mark.parametrize("abort_ms", [-1, float("nan"), 5971, "soon"])
def test_bad_abort_ms_names_file_and_key(abort_ms: Any) -> None:
    with pytest.raises(ConfigError, match=r"^lab.toml: migrations\[0\].abort_ms: "):
        lab(abort_ms)


@pytest.mark.parametrize(
    ("abort_ms", "duration_ms", "phase"),
    [(50, 8000, "detaching_vf"), (1000, 10000, "pre_copy")],
)
def test_aborted_migration_keeps_the_vm_at_its_source_and_the_peers_come_back(
    abort_ms: float, duration_ms: float, phase: str
) -> None:
    """Aborted while the VF is being detached, or in pre-copy after the source
    released the vGUID (and set it again on the abort): the VM's GID stays behind
    the source's LID, so no path change is reported; the peers' connections, broken
    by the detach, come back once their CM REQs reach the VM again."""
    result = run_scenario(lab(abort_ms, duration_ms))
    [migration] = result.migrations
    assert migration.outcome == f"aborted in {phase} (abort_ms): the VM runs at its source"
    assert migration.done_ns is None
    abort_ns = migration.start_ns + int(abort_ms * 1e6)
    assert migration.phases[-1] == (phase, migration.phases[-1][1], abort_ns)
    assert result.reports == 0 and result.path_change_events == 0
    assert len(result.connections) == 3
    for conn in result.connections:
        assert any(t < migration.start_ns for t in conn.deliveries_ns), conn.client
        assert any(t > abort_ns for t in conn.deliveries_ns), conn.client
        assert conn.downtime_ns is not None


def test_a_late_abort_signals_the_move_back_and_peers_follow_at_once() -> None:
    """Aborted in SETTING_ALIAS with the destination's Set on its way: the Set lands
    (the SM sees the vGUID behind the destination's LID and reports it), the
    destination deletes it and the source sets it again, which the SM sees as one
    more move and reports too. The peers, told of both moves, resolve the path again
    and reconnect within one notification and one CM exchange of the abort -- not
    after a CM time-out (seconds)."""
    clean = run_scenario(lab(None, 8000))
    [done] = clean.migrations
    setting_alias_at = done.phases[-1][1]
    assert done.phases[-1][0] == "setting_alias"
    abort_ms = (setting_alias_at + 5_000 - done.start_ns) / 1e6  # the Set in flight
    seen: list[tuple[int, Any]] = []
    sa_busy: list[int] = []  # the SA's processing charged so far, at each detection

    def hook(stage: str, sim: Any) -> None:
        def detected(node: int, event: Any) -> None:
            seen.append((sim.kernel.now_ns, event))
            sa_busy.append(sim.server(sim.sm_engine).busy_ns)

        if stage == "workload":
            sim.add_event_hook(detected, PathChangeDetected)

    result = run_scenario(lab(abort_ms, 10000), on_stage=hook)
    [migration] = result.migrations
    assert migration.outcome == "aborted in setting_alias (abort_ms): the VM runs at its source"
    abort_ns = migration.start_ns + int(abort_ms * 1e6)
    moves = [(e.old_lid, e.new_lid) for _, e in seen if isinstance(e, PathChangeDetected)]
    assert len(moves) == 2 and moves[1] == (moves[0][1], moves[0][0])
    back_at = [t for t, e in seen if isinstance(e, PathChangeDetected)][1]
    # 100 us of wire and engine delays, plus the SA's queue: the source's Set waits
    # while the SA serves what came before it (the first move's Reports and their
    # ReportResps, the destination's Delete, the peers' PathRecord queries), 18
    # MADs of `sa_ns` (11.5 us) here -- far from a CM time-out.
    queued = sa_busy[1] - sa_busy[0]
    assert queued == 18 * 11_500
    assert 0 < back_at - abort_ns < 100_000 + queued
    # The first message of each peer after the abort arrives within one message
    # interval (5 ms, the workload's) of the reconnection.
    for conn in result.connections:
        first = min(t for t in conn.deliveries_ns if t > abort_ns)
        assert first - back_at < 5_000_000 + 100_000, conn.client

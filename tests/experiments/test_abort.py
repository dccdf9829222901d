"""`[[migrations]] abort_ms` end to end: the migration is aborted, the VM goes on
at its source, and the peers get their connections back."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ibmig.errors import ConfigError
from ibmig.experiments.runner import run_scenario
from ibmig.experiments.scenario import scenario_from_dict
from tests.experiments.test_signalling import LAB


def lab(abort_ms: Any, duration_ms: float = 6000) -> Any:
    data: dict[str, Any] = json.loads(json.dumps(LAB))
    data["signalling"] = {"assignment": "static", "strategy": "per-host"}
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

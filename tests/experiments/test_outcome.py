"""A migration that did not finish says so (issue 13), in the run result."""

from __future__ import annotations

import json
import re
from typing import Any

from ibmig.cli.run import migration_json
from ibmig.core.host.events import AliasFailed
from ibmig.experiments.metrics import Collector
from ibmig.experiments.runner import run_scenario
from ibmig.experiments.scenario import scenario_from_dict
from tests.experiments.test_signalling import LAB


def test_migration_cut_off_by_the_run_end_says_so() -> None:
    data: dict[str, Any] = json.loads(json.dumps(LAB))
    data["signalling"] = {"assignment": "static", "strategy": "per-host"}
    data["run"]["duration_ms"] = 500  # the migration takes about 3 s
    result = run_scenario(scenario_from_dict(data, "lab"))
    migration = result.migrations[0]
    assert migration.done_ns is None
    assert migration.outcome.startswith("unfinished: in ")
    assert migration.outcome.endswith(" when the run ended")
    assert migration_json(migration)["outcome"] == migration.outcome


def test_completed_migration_outcome() -> None:
    data: dict[str, Any] = json.loads(json.dumps(LAB))
    data["signalling"] = {"assignment": "static", "strategy": "per-host"}
    result = run_scenario(scenario_from_dict(data, "lab"))
    assert result.migrations[0].outcome == "completed"


def test_failed_alias_request_names_phase_and_cause() -> None:
    from ibmig.core.migration.machine import LiveMigration, Phase
    from ibmig.experiments import metrics

    class FakeSim:
        def add_event_hook(self, *args: object) -> None:
            pass

    collector = Collector(FakeSim())  # type: ignore[arg-type]
    collector.on_event(0, AliasFailed("vm0", 1, 0xAB, "set", "timeout", 2_000))
    migration = LiveMigration("vm0", "host0", "host1", vguid=0xAB)
    migration.phase = Phase.SETTING_ALIAS
    outcome = metrics.migration_outcome(migration, collector)
    assert outcome == (
        "failed in setting_alias: alias GUID set 0x00000000000000ab failed (timeout)"
    )


def test_a_peer_left_on_a_stale_cached_path_is_named_with_the_cause() -> None:
    """Static assignment, no signalling, cached paths: every peer stays broken, and the
    run says why -- its cached path names the source's LID, the VM answers at the
    destination's."""
    data: dict[str, Any] = json.loads(json.dumps(LAB))
    data["signalling"] = {"assignment": "static", "strategy": "none"}
    data["workload"]["path_cache"] = "cached"
    result = run_scenario(scenario_from_dict(data, "lab"))
    [migration] = result.migrations
    assert migration.outcome == "completed"
    assert len(result.connections) == 3
    causes = {conn.cause for conn in result.connections}
    assert len(causes) == 1
    [cause] = causes
    assert cause is not None
    assert re.fullmatch(r"stale cached path: LID (\d+), vm0 is behind LID (\d+)", cause)
    old, new = map(int, re.findall(r"LID (\d+)", cause))
    assert old != new


def test_a_peer_that_came_back_has_no_cause() -> None:
    data: dict[str, Any] = json.loads(json.dumps(LAB))
    data["signalling"] = {"assignment": "static", "strategy": "per-host"}
    result = run_scenario(scenario_from_dict(data, "lab"))
    assert [conn.cause for conn in result.connections] == [None] * 3

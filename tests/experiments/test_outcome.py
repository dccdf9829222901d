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


def _end_state() -> tuple[Any, Any]:
    """A clean per-host run of the test lab (every peer back) and its simulator."""
    data: dict[str, Any] = json.loads(json.dumps(LAB))
    data["signalling"] = {"assignment": "static", "strategy": "per-host"}
    sims: list[Any] = []
    result = run_scenario(
        scenario_from_dict(data, "lab"), on_stage=lambda _name, sim: sims.append(sim)
    )
    assert [conn.cause for conn in result.connections] == [None] * 3
    return result, sims[-1]


def test_every_peer_that_is_not_back_gets_a_cause(monkeypatch: Any) -> None:
    """`connection_cause` names something for every peer, from the end state: the SA
    naming no path or the wrong LID, the VM's port not holding its alias GUID (the
    HCA drops what comes for it), else what the client is doing."""
    from ibmig.experiments.metrics import connection_cause

    result, sim = _end_state()
    conn = result.connections[0]
    vguid = sim.vms["vm0"].vguid
    lid = sim.vms["vm0"].guest.lid
    # the end state as it is: nothing explains a missing delivery
    assert re.fullmatch(
        rf"no cause in the end state: {conn.client} is connected after 0 failed attempts",
        connection_cause(sim, conn),
    )
    # the VM's port lost the alias GUID (a GUIDInfo write the SA accepted never landed)
    slot = sim.hosts[sim.vms["vm0"].host]
    table = sim.agents[slot.node]._guids[slot.port]
    index = table.index(vguid)
    table[index] = 0
    assert connection_cause(sim, conn) == (
        f"vm0's port does not hold its alias GUID 0x{vguid:016x}"
        " (the SM's GUIDInfo write was lost; the SA had accepted it)"
    )
    table[index] = vguid
    monkeypatch.setattr(sim.sa, "path_lid", lambda guid: lid + 1 if guid == vguid else None)
    assert (
        connection_cause(sim, conn) == f"the SA names LID {lid + 1} for vm0, it is behind LID {lid}"
    )
    monkeypatch.setattr(sim.sa, "path_lid", lambda guid: None)
    assert connection_cause(sim, conn) == (
        f"the SA has no path to vm0 (alias GUID 0x{vguid:016x} in no port's table)"
    )

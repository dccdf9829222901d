"""Orchestration choices end to end (`[orchestration]`), each with an outcome that
can be checked by hand from the timers, and the `ibmig reproduce` section built on
them (`ibmig.experiments.orchestration`).

The lab (`test_signalling.LAB`): a VM with three RC clients migrates under per-host
signalling with cached paths; its VF is hot-plugged 0.5 s after the VM resumes and
its driver takes 2 s to re-initialise (`MigrationTiming`). A peer's CM REQ that
nobody answers is resent after 2 x 1.024 s + 4.096 s = 6.144 s (Linux ib_cm's
`cm_convert_to_ms` of OpenSM's PacketLifeTime 18 and rdma_cm's response time-out
20); for a peer on the destination host itself the path is a loopback one,
PacketLifeTime 0, and the resend comes after 2 x 1 ms + 4.096 s = 4.098 s."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ibmig.experiments.metrics import RunResult, summarize_downtime
from ibmig.experiments.orchestration import (
    orchestration_row,
    orchestration_scenarios,
    orchestration_table,
    slack_ms,
)
from ibmig.experiments.runner import run_scenario
from ibmig.experiments.scenario import scenario_from_dict
from tests.experiments.test_signalling import LAB

REQ_RESEND_NS = 2 * 1_024_000_000 + 4_096_000_000
LOOPBACK_REQ_RESEND_NS = 2 * 1_000_000 + 4_096_000_000
INTERVAL_NS = 5_000_000  # LAB's workload interval
RECONNECT_NS = 10_000_000  # a PathRecord query and a REQ/REP/RTU, with room to spare


def run(strategy: str = "per-host", duration_ms: float = 12000, **orchestration: Any) -> RunResult:
    data: dict[str, Any] = json.loads(json.dumps(LAB))
    data["signalling"] = {"assignment": "static", "strategy": strategy}
    data["workload"]["path_cache"] = "cached"
    data["run"]["duration_ms"] = duration_ms
    data["orchestration"] = orchestration
    return run_scenario(scenario_from_dict(data, "lab"))


def req_resend_ns(result: RunResult, client: str) -> int:
    """A REQ's resend time for `client` (VM i runs on host i // m)."""
    [migration] = result.migrations
    host = f"host{int(client.removeprefix('vm')) // LAB['hosts']['m']}"
    return LOOPBACK_REQ_RESEND_NS if host == migration.dst else REQ_RESEND_NS


def phase_start(result: RunResult, name: str) -> int:
    [migration] = result.migrations
    return next(start for phase, start, _ in migration.phases if phase == name)


def test_alias_after_driver_reinit_peers_reconnect_as_soon_as_the_vm_answers() -> None:
    # The default (mlx4's order): the peers are told when the VM can answer, so each
    # is back within one message interval and one reconnection of its vport.
    result = run()
    [migration] = result.migrations
    assert migration.done_ns is not None
    for conn in result.connections:
        assert conn.reconnect_ns is not None
        assert conn.reconnect_ns <= INTERVAL_NS + RECONNECT_NS


@pytest.mark.parametrize(
    ("registration", "registered_in"),
    [("at_attach", "attaching_vf"), ("before_stop_copy", "stop_and_copy")],
)
def test_alias_registered_before_the_vm_answers_costs_a_cm_timeout(
    registration: str, registered_in: str
) -> None:
    # The alias moves when SetAlias is issued (at the VF's hot-plug, or when
    # stop-and-copy begins); the peers are told at once, resolve the new LID and send
    # a REQ that reaches a VF with no guest stack behind it: dropped. Their next try
    # is the REQ's resend 6.144 s later, long after the VM's stack came up.
    result = run(alias_registration=registration)
    [migration] = result.migrations
    assert migration.done_ns is not None
    registered_ns = phase_start(result, registered_in)
    assert migration.done_ns - registered_ns < LOOPBACK_REQ_RESEND_NS  # up before
    assert result.drops["no_vf"] >= 3  # the three first REQs, at the destination
    for conn in result.connections:
        # after the vport is up
        expected = registered_ns + req_resend_ns(result, conn.client) - migration.done_ns
        assert conn.reconnect_ns is not None
        assert expected <= conn.reconnect_ns <= expected + INTERVAL_NS + RECONNECT_NS


def test_alias_at_attach_adds_the_resend_minus_attach_and_reinit() -> None:
    # By hand: 6.144 s - (0.5 s hot-plug + 2 s driver) = 3.644 s after the vport;
    # for the peer on the destination host 4.098 s - 2.5 s = 1.598 s.
    result = run(alias_registration="at_attach")
    added = sorted(c.reconnect_ns or 0 for c in result.connections)
    assert 1_598_000_000 <= added[0] <= 1_598_000_000 + INTERVAL_NS + RECONNECT_NS
    for value in added[1:]:
        assert 3_644_000_000 <= value <= 3_644_000_000 + INTERVAL_NS + RECONNECT_NS


@pytest.mark.parametrize("dreq", [True, False])
def test_dreq_on_detach_or_not_the_notice_brings_the_peers_back(
    dreq: bool,
) -> None:
    # With DREQs the peers learn of the detach at once and retry at once, toward the
    # old LID (dropped); the path-change notice then restarts them toward the new
    # one. Without, they learn nothing until the notice. Either way they are back
    # when the VM answers: the notice, not the DREQ, decides.
    # (The DREQ itself, one per established connection at the detach, and the peer
    # torn down one wire delay later: tests/core/guest/test_guest_agent.py. Without
    # signalling the DREQ decides, for the worse: test_signalling.py.)
    result = run(dreq_on_detach=dreq)
    row = summarize_downtime(result)
    assert row["connected_after"] == 3
    for conn in result.connections:
        assert conn.reconnect_ns is not None
        assert conn.reconnect_ns <= INTERVAL_NS + RECONNECT_NS


def test_orchestration_section_rows_and_table() -> None:
    lab = json.loads(json.dumps(LAB))
    lab["run"]["duration_ms"] = 12000
    scenarios = orchestration_scenarios(lab)
    assert len(scenarios) == 2 + 2 * 3 * 2  # no signalling: the default point only
    assert len({s.source for s in scenarios}) == len(scenarios)
    by_source = {s.source: s for s in scenarios}
    default = by_source["orchestration[per-host,after_reinit,dreq=yes]"]
    early = by_source["orchestration[per-host,at_attach,dreq=yes]"]
    rows = [orchestration_row(run_scenario(s)) for s in (default, early)]
    assert [r["claim"] for r in rows] == ["holds", "fails"]
    assert rows[0]["added_over_rdma_ms"] <= slack_ms(LAB["workload"]["interval_us"])
    assert rows[1]["added_over_rdma_ms"] >= 3_644
    for row in rows:
        assert row["connected_after"] == row["peers"] == 3
        # The VM's own pause is stop-and-copy and resume (0.1 s); the VF swap is
        # seconds longer, whatever the signalling.
        assert 100 <= row["vm_pause_ms"] < 200
        assert row["rdma_downtime_ms"] > 2_500
        assert row["added_over_pause_ms"] == pytest.approx(
            row["worst_downtime_ms"] - row["vm_pause_ms"]
        )
    lines = orchestration_table(rows)
    assert lines[0].split()[:3] == ["strategy", "alias", "set"]
    assert lines[2].startswith("per-host  after_reinit     yes   3/3")
    assert lines[2].endswith("holds") and lines[3].endswith("fails")

"""Storms: many migrations at once, where both ends of a connection move together.

The lab of `examples/lab.toml` (6 hosts x 2 VMs, 3 clients per migrated VM). When a
VM and its client migrate at the same time, the server's path-change notice reaches
the client while the client has no VF (it is migrating too), so it is lost. What
brings the client back: under per-host signalling the client's new dom0 took the
Report in and answers the client's path registration with the LID its table holds;
under per-VM signalling the client, once its new subscription is confirmed, asks
the SA again for each cached path."""

from __future__ import annotations

import io
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from ibmig.cli import main
from ibmig.errors import ConfigError
from ibmig.experiments.metrics import RunResult, summarize_downtime
from ibmig.experiments.runner import run_scenario
from ibmig.experiments.scenario import scenario_from_dict
from ibmig.sim.subnet import TraceWriter

LAB_TOML = Path(__file__).resolve().parents[2] / "examples" / "lab.toml"


def lab(
    strategy: str,
    migrations: list[dict[str, Any]],
    notice: str = "trap69",
    assignment: str = "static",
    **run: Any,
) -> RunResult:
    data = tomllib.loads(LAB_TOML.read_text())
    data["signalling"]["assignment"] = assignment
    data["signalling"]["strategy"] = strategy
    data["signalling"]["notice"] = notice
    data["migrations"] = migrations
    data["run"].update(run)
    return run_scenario(scenario_from_dict(data, "lab"))


@pytest.mark.parametrize("notice", ["trap69", "trap64-65"])
@pytest.mark.parametrize("strategy", ["per-host", "per-vm"])
def test_every_vm_of_the_lab_migrates_at_once_and_every_connection_comes_back(
    strategy: str, notice: str
) -> None:
    result = lab(strategy, [{"hosts": [0, 1, 2, 3, 4, 5], "at_ms": 50}], notice)
    assert [m.vm for m in result.migrations] == [f"vm{i}" for i in range(12)]
    assert all(m.outcome == "completed" for m in result.migrations)
    assert len(result.connections) == 36  # 12 servers x 3 clients, all of them moving
    row = summarize_downtime(result)
    assert row["connected_after"] == 36
    last_done = max(m.done_ns or 0 for m in result.migrations)
    for conn in result.connections:
        # Back within 10 ms of the last migration's end, and still delivering.
        first_after = next(t for t in conn.deliveries_ns if t >= last_done - 10_000_000)
        assert first_after - last_done < 10_000_000
        assert conn.deliveries_ns[-1] > result.sim_end_ns - 10_000_000
    assert result.path_change_events == 12


@pytest.mark.parametrize("strategy", ["per-host", "per-vm", "none"])
def test_under_dynamic_assignment_every_connection_comes_back_too(strategy: str) -> None:
    """Every VM takes a new GID. A VM's gratuitous ARP misses the peers that are away
    too; but each migrated VM lost its neighbour table with its VF and resolves its
    servers by broadcast ARP when it is back: the server answers, or, if it is still
    away, its own gratuitous ARP (broadcast) completes the resolution."""
    result = lab(strategy, [{"hosts": [0, 1, 2, 3, 4, 5], "at_ms": 50}], assignment="dynamic")
    assert all(m.outcome == "completed" for m in result.migrations)
    assert len(result.connections) == 36
    assert summarize_downtime(result)["connected_after"] == 36
    for conn in result.connections:
        assert conn.deliveries_ns[-1] > result.sim_end_ns - 10_000_000


@pytest.mark.parametrize("strategy", ["per-host", "per-vm"])
def test_a_vm_and_its_clients_migrate_together(strategy: str) -> None:
    result = lab(strategy, [{"vm": 0, "at_ms": 50, "with_clients": True}])
    # vm0's clients (vm3, vm6, vm10 with seed 1) follow it, each to the next host.
    assert [(m.vm, m.src, m.dst) for m in result.migrations] == [
        ("vm0", "host0", "host1"),
        ("vm3", "host1", "host2"),
        ("vm6", "host3", "host4"),
        ("vm10", "host5", "host0"),
    ]
    assert sorted(c.client for c in result.connections) == ["vm10", "vm3", "vm6"]
    assert summarize_downtime(result)["connected_after"] == 3


def test_host_evacuation_moves_every_vm_of_the_host() -> None:
    result = lab("per-host", [{"host": 2, "at_ms": 50}], duration_ms=3000)
    assert [(m.vm, m.src) for m in result.migrations] == [("vm4", "host2"), ("vm5", "host2")]
    assert result.scenario.migrations[0].at_ms == result.scenario.migrations[1].at_ms == 50


@pytest.mark.parametrize(
    ("entry", "key", "message"),
    [
        ({"vm": 0, "host": 1}, "migrations[0]", "give one of vm, host, hosts"),
        ({"hosts": []}, "migrations[0].hosts", "non-empty list"),
        ({"hosts": [0, 6]}, "migrations[0].hosts", "host indices 0..5"),
        ({"host": 1, "to_host": 1}, "migrations[0].to_host", "own host"),
        ({"hosts": [1, 1]}, "migrations[0].hosts", "names a host twice"),
        ({"vm": 0, "with_clients": 1}, "migrations[0].with_clients", "true or false"),
    ],
)
def test_storm_entries_are_checked(entry: dict[str, Any], key: str, message: str) -> None:
    data = tomllib.loads(LAB_TOML.read_text())
    data["migrations"] = [entry]
    with pytest.raises(ConfigError) as error:
        scenario_from_dict(data, "lab")
    assert key in str(error.value) and message in str(error.value)


def test_a_vm_in_an_evacuated_host_cannot_migrate_twice() -> None:
    data = tomllib.loads(LAB_TOML.read_text())
    data["migrations"] = [{"vm": 3}, {"host": 1}]
    with pytest.raises(ConfigError, match=r"migrations\[1\]\.host.*vm3 already migrates"):
        scenario_from_dict(data, "lab")


THREE = [{"vm": 0, "at_ms": 50}, {"vm": 2, "at_ms": 8000}, {"vm": 4, "at_ms": 16000}]
"""Three successive migrations, 8 s apart (each is over in about 6 s)."""


def test_per_vm_subscriptions_left_at_old_lids_pile_up_across_migrations() -> None:
    """Each migrated VM subscribes again from its new LID; its old subscription
    stays (as in OpenSM) and costs every later event one Report and 3 resends
    (OpenSM's transaction_retries), to a port the VM's GID has left."""
    result = lab("per-vm", THREE, duration_ms=30000)
    assert summarize_downtime(result)["connected_after"] == 9
    figures = [
        (e.reports, e.resends, e.subscriptions, e.stale_subscriptions) for e in result.notice_events
    ]
    # At each event the moving VM's own subscription is already stale (it has not
    # subscribed again yet), plus one per earlier migration.
    assert figures == [(12, 3, 12, 1), (13, 6, 13, 2), (14, 9, 14, 3)]
    assert result.stale_subscriptions == 3
    assert result.subscriptions == 15
    assert [e.vguid for e in result.notice_events] == [0x0002C9FE00000001, 0x0002C9FE00000003,
                                                       0x0002C9FE00000005]  # fmt: skip


def test_per_host_subscriptions_leave_no_debris() -> None:
    result = lab("per-host", THREE, duration_ms=30000)
    assert [
        (e.reports, e.resends, e.subscriptions, e.stale_subscriptions) for e in result.notice_events
    ] == [(6, 0, 6, 0)] * 3
    assert result.stale_subscriptions == 0


@pytest.mark.parametrize(
    ("strategy", "notice", "reports", "resends", "path_records"),
    [
        # n = 6 hosts, m = 2 VMs. Per-host: one subscription per host; per-VM: one per
        # VM, the moving VM's own at its old LID (no ReportResp: 3 resends each).
        ("per-host", "trap69", 6, 0, 3),
        ("per-vm", "trap69", 12, 3, 3),
        # Two notices per move, two subscriptions per subscriber: twice the Reports.
        # Trap 64 names no LID: every dom0 (6) or every guest that got it (11: not
        # the moving VM) asks for the PathRecord; the peers then use that answer.
        ("per-host", "trap64-65", 12, 0, 6 + 3),
        ("per-vm", "trap64-65", 24, 6, 11),
    ],
)
def test_reports_per_event_under_each_notice(
    strategy: str, notice: str, reports: int, resends: int, path_records: int
) -> None:
    result = lab(strategy, [{"vm": 0, "at_ms": 50}], notice)
    [event] = result.notice_events
    assert (event.reports, event.resends) == (reports, resends)
    row = summarize_downtime(result)
    assert row["connected_after"] == 3
    assert row["path_records"] == path_records
    assert row["reports"] == reports + resends


def test_ibmig_run_shows_the_cost_of_each_event(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = LAB_TOML.read_text()
    text = text.replace('strategy = "per-host"', 'strategy = "per-vm"\nnotice = "trap64-65"')
    text = text.replace("duration_ms = 12000", "duration_ms = 7000")
    path = tmp_path / "lab.toml"
    path.write_text(text)
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    assert "path-change events (Reports, resent, subscriptions at the SA):" in out
    # The move counts from when the SA accepts the destination's Set (OpenSM's
    # answer order, the default), not from the port's GUIDInfo write 1.62 us later
    # (6,096,783,776 ns: the SM's SMPs do not wait behind the SA's MADs); what it
    # costs is the same.
    assert (
        "  0x0002c9fe00000001 at    6,096.782 ms: 24 Reports, 6 resent; "
        "24 subscriptions, 2 at an old LID" in out
    )
    # The event's cost under contention (the SA one MAD at a time, `sa_ns` each): its
    # 24 Reports, 6 resends and what the peers asked are 0.817 ms of SA work.
    assert (
        "  notification makespan 0.817 ms, recovery makespan 2.539 ms; SA busy 0.817 ms, "
        "largest SA queue 36; Reports 24 (6 resent), PathRecord 11, CM 9" in out
    )
    assert "  subscriptions at an old LID at the end: 2" in out
    assert main(["run", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["notice_events"] == [
        {
            "vguid": "0x0002c9fe00000001",
            "time_ns": 6_096_782_156,  # set-up ends on a whole ms; the Set's acceptance
            "reports": 24,
            "resends": 6,
            "subscriptions": 24,
            "stale_subscriptions": 2,
        }
    ]
    assert data["stale_subscriptions"] == 2


def test_k_hosts_evacuate_together() -> None:
    data = tomllib.loads(LAB_TOML.read_text())
    data["migrations"] = [{"hosts": [1, 3], "at_ms": 20, "to_host": 5}, {"vm": 0, "at_ms": 9}]
    scenario = scenario_from_dict(data, "lab")
    assert [(e.vm, e.at_ms, e.to_host) for e in scenario.migrations] == [
        (2, 20, 5), (3, 20, 5), (6, 20, 5), (7, 20, 5), (0, 9, None),
    ]  # fmt: skip


def test_a_dynamic_storm_with_address_resolution_is_deterministic() -> None:
    data = tomllib.loads(LAB_TOML.read_text())
    data["signalling"]["assignment"] = "dynamic"
    data["migrations"] = [{"vm": 0, "at_ms": 50, "with_clients": True}]
    data["run"]["duration_ms"] = 7000
    traces = []
    for _ in range(2):
        out = io.StringIO()
        result = run_scenario(scenario_from_dict(data, "lab"), trace=TraceWriter(out))
        traces.append(out.getvalue())
    assert traces[0] == traces[1]
    # The migrated clients resolved their server's new address by broadcast ARP.
    assert "NeighbourStateChanged" in traces[0] and '"INCOMPLETE"' in traces[0]
    assert summarize_downtime(result)["connected_after"] == 3

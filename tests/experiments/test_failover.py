"""SM failover during a migration storm (issue 12, Deliver 2): a standby SM and SA
take over from a master that dies while three VMs are between their alias GUID's
Delete at the source and its Set at the destination. With the master's SA database
handed over (OpenSM's sa_db_file) no path-change event is lost and every peer comes
back; without it the moves in flight are lost. The run reports what the failover
cost."""

from __future__ import annotations

import contextlib
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
from ibmig.sim.hosting import VirtualizedSubnet
from ibmig.sim.subnet import TraceWriter

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "failover.toml"
POLL_MS = 50
RETRIES = 2
FAIL_MS = 1000  # every VM of the storm is in its pre-copy: alias deleted, not yet set
HOSTS = 4
VMS = 8
MIGRATING = 3


def storm(
    strategy: str = "per-host",
    *,
    fail_ms: float | None = FAIL_MS,
    handover: bool = True,
    duration_ms: float = 6000,
) -> Any:
    """examples/failover.toml with these changes."""
    data: dict[str, Any] = tomllib.loads(EXAMPLE.read_text())
    data["signalling"]["strategy"] = strategy
    data["run"]["duration_ms"] = duration_ms
    faults = data["faults"]
    faults["standby_sm"]["sa_db_handover"] = handover
    if fail_ms is None:
        del faults["sm_fail"]
    else:
        faults["sm_fail"][0]["at_ms"] = fail_ms
    return scenario_from_dict(data, "failover.toml")


def every_peer_back(result: RunResult) -> None:
    done = {m.vm: m.done_ns for m in result.migrations}
    assert len(result.connections) == MIGRATING * 3
    for conn in result.connections:
        finished = done[conn.server]
        assert finished is not None
        assert conn.downtime_ns is not None, conn.client
        assert any(t > finished for t in conn.deliveries_ns), (conn.client, conn.server)


def set_up_end_ns(result: RunResult) -> int:
    """The end of the set-up: the first migration starts 30 ms after it."""
    return min(m.start_ns for m in result.migrations) - 30_000_000


@pytest.mark.parametrize(
    ("strategy", "subscribers", "resubscribing"),
    [
        # per-host: the 4 dom0s subscribe; each sends one InformInfo on ClientReregister,
        # and its 2 guests, which do not subscribe, revalidate their paths at once (as
        # IPoIB flushes its path cache on the event): one PathRecord query each.
        ("per-host", HOSTS, HOSTS + VMS),
        # per-VM: 8 guests subscribe; the 5 attached when the port is re-registered
        # subscribe again (the 3 migrating ones do when they resume).
        ("per-vm", VMS, VMS - MIGRATING),
    ],
)
def test_a_failover_mid_storm_loses_no_path_change_event(
    strategy: str, subscribers: int, resubscribing: int
) -> None:
    clean = run_scenario(storm(strategy, fail_ms=None))
    assert clean.failover is None
    result = run_scenario(storm(strategy))
    assert [m.outcome for m in result.migrations] == ["completed"] * MIGRATING
    every_peer_back(result)
    # Every move signalled once, and to as many subscribers as without the failure.
    assert result.path_change_events == clean.path_change_events == MIGRATING
    assert result.path_change_reports == clean.path_change_reports
    assert result.subscriptions == clean.subscriptions
    f = result.failover
    assert f is not None
    assert f.old_master != f.new_master
    assert f.failed_ns == set_up_end_ns(result) + FAIL_MS * 1_000_000
    # The standby gives up after more than polling_retry_number unanswered polls.
    assert f.takeover_ns is not None
    waited = f.takeover_ns - f.failed_ns
    assert RETRIES * POLL_MS * 1_000_000 <= waited <= (RETRIES + 2) * POLL_MS * 1_000_000
    assert f.master_ns is not None and f.subnet_up_ns is not None
    assert f.takeover_ns < f.master_ns < f.subnet_up_ns
    assert f.without_master_ns == f.master_ns - f.failed_ns
    assert f.without_sa_ns == f.subnet_up_ns - f.failed_ns
    # Handed over: the alias GUIDs of the 5 VMs that stay put, where all 8 were last
    # seen, and every subscription.
    assert f.sa_db_restored == (VMS - MIGRATING) + VMS + subscribers
    assert f.client_reregisters == HOSTS
    # Beside those, each dom0 sets its VMs' aliases again, as mlx4 does: the 5 that
    # are not migrating (the 3 others' are deleted at their sources by then), a
    # GUIDInfo record at a time: every host keeps one or two VMs, on VFs 1 and 2 of
    # block 0, so one Set each.
    assert f.reregistration_mads == resubscribing + HOSTS
    assert f.reports_unacknowledged == 0  # no Report was in flight at 1 s
    assert f.takeover_smps > 0
    # Every migration set its alias after the takeover, with the new SA.
    assert all(m.done_ns is not None and m.done_ns > f.subnet_up_ns for m in result.migrations)


@pytest.mark.parametrize(("strategy", "subscribers"), [("per-host", HOSTS), ("per-vm", VMS)])
def test_without_the_sa_database_the_moves_in_flight_are_lost(
    strategy: str, subscribers: int
) -> None:
    """OpenSM without sa_db_file: the new master never saw the aliases deleted at the
    sources, so their Sets at the destinations look like first registrations: no
    path-change event. The clients' re-registration still rebuilds every
    subscription (a guest's InformInfo answered busy while the new master sweeps is
    asked again), and every dom0 sets its VMs' aliases again (as mlx4): the peers
    that stayed put, their cached paths dropped on the ClientReregister, resolve the
    moved VMs afresh once their connections fail and come back. Not vm0's
    connection to vm4: vm0 was migrating itself at the failover, missed the
    ClientReregister, and keeps a cached path no notice corrects."""
    handed = run_scenario(storm(strategy))
    lost = run_scenario(storm(strategy, handover=False))
    assert [m.outcome for m in lost.migrations] == ["completed"] * MIGRATING
    assert lost.path_change_events == 0 and lost.path_change_reports == 0
    assert lost.subscriptions == subscribers
    done = {m.vm: m.done_ns for m in lost.migrations}
    assert len(lost.connections) == MIGRATING * 3
    broken = [c for c in lost.connections if c.downtime_ns is None]
    assert [(c.client, c.server) for c in broken] == [("vm0", "vm4")]
    assert broken[0].cause == "stale cached path: LID 26, vm4 is behind LID 35"
    finished = done["vm4"]
    assert finished is not None
    assert not any(t > finished for t in broken[0].deliveries_ns)
    f, g = lost.failover, handed.failover
    assert f is not None and g is not None
    assert f.sa_db_restored == 0
    # The same takeover either way.
    assert (f.takeover_ns, f.master_ns, f.subnet_up_ns, f.takeover_smps) == (
        g.takeover_ns, g.master_ns, g.subnet_up_ns, g.takeover_smps,
    )  # fmt: skip


def test_a_failover_while_the_aliases_are_set_delays_the_migrations_only() -> None:
    """The master dies just before the three Sets: they go to a dead SA (dropped),
    dom0 asks again (3 sends 1 s apart, then mlx4's 1 s retry) at the new master's SA,
    which detects every move; every peer comes back."""
    result = run_scenario(storm(fail_ms=3850, duration_ms=12000))
    f = result.failover
    assert f is not None and f.subnet_up_ns is not None
    assert [m.outcome for m in result.migrations] == ["completed"] * MIGRATING
    every_peer_back(result)
    assert result.path_change_events == MIGRATING
    assert result.drops["no_listener"] > 0  # SA requests that reached the dead master
    for m in result.migrations:
        assert m.done_ns is not None and m.done_ns > f.subnet_up_ns


def test_a_failover_run_is_deterministic() -> None:
    traces = []
    for _ in range(2):
        out = io.StringIO()
        run_scenario(storm(), trace=TraceWriter(out))
        traces.append(out.getvalue())
    assert traces[0] == traces[1] and "SmStateChanged" in traces[0]


def test_ibmig_run_prints_the_failover_cost() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(["run", str(EXAMPLE)]) == 0
    text = out.getvalue()
    assert "SM failover: master on " in text
    assert "SA database handed over: 17 items" in text
    # 4 dom0 InformInfo, 8 guests' path revalidations, 5 aliases set again with one
    # GUIDInfoRecord Set per host.
    assert "ClientReregister reached 4 hosts, 16 re-registration MADs" in text
    assert "broken" not in text
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(["run", str(EXAMPLE), "--json"]) == 0
    failover = json.loads(out.getvalue())["failover"]
    assert failover["sa_db_restored"] == 17
    assert failover["without_master_ns"] == failover["master_ns"] - failover["failed_ns"]


@pytest.mark.parametrize(
    ("faults", "key"),
    [
        ({"sm_fail": [{"at_ms": 5}]}, "faults.sm_fail[0]"),
        (
            {"standby_sm": {}, "sm_fail": [{"at_ms": 5}, {"at_ms": 6}]},
            "faults.sm_fail[1]",
        ),
        ({"standby_sm": {"sa_db_handover": 1}}, "faults.standby_sm.sa_db_handover"),
        ({"standby_sm": {"polling_timeout_ms": 0}}, "faults.standby_sm.polling_timeout_ms"),
        ({"standby_sm": {"polling_retry_number": -1}}, "faults.standby_sm.polling_retry_number"),
        ({"standby_sm": {"priority": 3}}, "faults.standby_sm.priority"),
        ({"standby_sm": {}, "sm_fail": [{"at_ms": 1e9}]}, "faults.sm_fail[0].at_ms"),
    ],
)
def test_bad_failover_entries_name_file_and_key(faults: dict[str, Any], key: str) -> None:
    data: dict[str, Any] = tomllib.loads(EXAMPLE.read_text())
    data["faults"] = faults
    with pytest.raises(ConfigError) as caught:
        scenario_from_dict(data, "failover.toml")
    assert f"failover.toml: {key}" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_an_unknown_standby_node_is_refused_before_the_run() -> None:
    data: dict[str, Any] = tomllib.loads(EXAMPLE.read_text())
    data["faults"]["standby_sm"]["node"] = "nosuch"
    with pytest.raises(ConfigError, match=r"faults.standby_sm.node: no cabled CA named"):
        run_scenario(scenario_from_dict(data, "failover.toml"))


def test_without_the_sa_database_every_dom0_registers_its_aliases_again() -> None:
    """A new master without the old one's database knows no alias GUID; on the
    ClientReregister it sets on every port, each dom0 sets all its VMs' aliases again
    (as mlx4's alias GUID service does). Afterwards every vGUID resolves at the new
    master, and a migration is signalled as before the failure."""
    data: dict[str, Any] = tomllib.loads(EXAMPLE.read_text())
    data["faults"]["standby_sm"]["sa_db_handover"] = False
    data["migrations"] = [{"vm": 0, "at_ms": 2000}]  # after the takeover
    box: dict[str, VirtualizedSubnet] = {}

    def keep(_stage: str, sim: VirtualizedSubnet) -> None:
        box["sim"] = sim

    result = run_scenario(scenario_from_dict(data, "failover.toml"), on_stage=keep)
    sim = box["sim"]
    f = result.failover
    assert f is not None and f.sa_db_restored == 0 and f.subnet_up_ns is not None
    # 2 aliases per host, one GUIDInfoRecord Set each, beside the subscription.
    reregistered = [h.agent.counters["aliases_reregistered"] for h in sim.hosts.values()]
    assert reregistered == [2] * HOSTS
    assert sim.sa is not None
    for vm in sim.vms.values():
        vguid = int.from_bytes(vm.guest.gid[8:], "big")
        assert sim.sa.path_lid(vguid) == sim.hosts[vm.host].agent.port_lid, vm.name
    [migration] = result.migrations
    assert migration.outcome == "completed" and migration.start_ns > f.subnet_up_ns
    assert result.path_change_events == 1
    assert summarize_downtime(result)["connected_after"] == 3

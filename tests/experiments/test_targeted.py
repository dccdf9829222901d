"""Targeted signalling, path-carrying notices and client-side PathRecord caching, end
to end on the lab testbed: exact counts of Reports and PathRecord queries."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from ibmig.core.guest import PathResolved
from ibmig.errors import ConfigError
from ibmig.experiments.metrics import RunResult
from ibmig.experiments.reproduction import LAB
from ibmig.experiments.runner import run_scenario
from ibmig.experiments.scenario import scenario_from_dict
from ibmig.sim.hosting import VirtualizedSubnet
from ibmig.wire.mad import Method, MgmtClass
from ibmig.wire.sa import SaAttr


def lab(
    strategy: str, notice: str = "trap69", peers: int = 3, peer_hosts: int = 0, seed: int = 1
) -> tuple[RunResult, VirtualizedSubnet, list[PathResolved]]:
    data: dict[str, Any] = json.loads(json.dumps(LAB))
    data["signalling"] = {"strategy": strategy, "notice": notice}
    data["workload"].update(peers=peers, peer_hosts=peer_hosts, path_cache="cached")
    data["run"]["seed"] = seed
    sims: list[VirtualizedSubnet] = []
    resolved: list[PathResolved] = []

    def hook(stage: str, sim: VirtualizedSubnet) -> None:
        if stage == "placement":
            sims.append(sim)
            sim.add_event_hook(lambda node, e: resolved.append(e), PathResolved)

    result = run_scenario(scenario_from_dict(data, "lab"), on_stage=hook)
    return result, sims[0], resolved


def path_queries(result: RunResult) -> int:
    """PathRecord queries after set-up (the run counts MADs from the workload on)."""
    return result.count(MgmtClass.SUBN_ADM, Method.GET, SaAttr.PATH_RECORD)


@pytest.mark.parametrize(("peers", "peer_hosts", "seed"), [(3, 0, 1), (5, 0, 2), (4, 2, 1)])
def test_targeted_reports_equal_the_hosts_that_resolved_a_path(
    peers: int, peer_hosts: int, seed: int
) -> None:
    result, sim, _ = lab("targeted", peers=peers, peer_hosts=peer_hosts, seed=seed)
    [migration] = result.migrations
    assert migration.outcome == "completed"
    vm = sim.vms["vm0"]
    vguid = int.from_bytes(vm.guest.gid[8:], "big")
    # The hosts of the peers, from the placement the workload drew...
    peer_hosts_seen = {sim.vms[c.client].host for c in result.connections}
    assert len(result.connections) == peers
    if peer_hosts:
        assert len(peer_hosts_seen) <= peer_hosts
    # ...are the ports the SA saw resolve a path to the VM's GID.
    port_of_host = {name: slot.agent.port_guid for name, slot in sim.hosts.items()}
    assert sim.sa.path_requesters[vguid] == {port_of_host[h] for h in peer_hosts_seen}
    assert result.path_change_events == 1
    assert result.path_change_reports == len(peer_hosts_seen)
    [event] = result.notice_events
    assert event.reports == len(peer_hosts_seen)
    assert result.intra_host.get("dom0_to_guest", 0) == peers
    assert all(c.downtime_ns is not None for c in result.connections)


def test_per_host_reports_reach_every_host_where_targeted_reaches_the_peers_hosts() -> None:
    per_host, sim, _ = lab("per-host", peers=4, peer_hosts=2)
    targeted, _, _ = lab("targeted", peers=4, peer_hosts=2)
    n = len(sim.hosts)
    assert per_host.path_change_reports == n
    assert targeted.path_change_reports == 2
    # The same peers came back the same way...
    assert [(c.client, c.server) for c in per_host.connections] == [
        (c.client, c.server) for c in targeted.connections
    ]
    # ...later by the SA's queue only: under per-host signalling the peers' Reports
    # wait behind the Reports to the 4 hosts without peers and the ReportResps that
    # come back meanwhile, 6 or 7 MADs of `sa_ns` (11.5 us; with `contention = false`
    # the downtimes are equal).
    assert [
        p.downtime_ns - t.downtime_ns  # type: ignore[operator]
        for p, t in zip(per_host.connections, targeted.connections, strict=True)
    ] == [6 * 11_500, 7 * 11_500, 6 * 11_500, 7 * 11_500]


@pytest.mark.parametrize("strategy", ["per-host", "targeted"])
def test_path_carrying_notice_and_cache_mean_no_pathrecord_query_after_the_move(
    strategy: str,
) -> None:
    result, sim, resolved = lab(strategy, notice="trap69-path")
    [migration] = result.migrations
    assert path_queries(result) == 0
    vm_gid = sim.vms["vm0"].guest.gid
    vm_lid = sim.hosts[sim.vms["vm0"].host].agent.port_lid
    during = [e for e in resolved if e.gid == vm_gid and e.time_ns > migration.start_ns]
    assert {e.via for e in during} == {"cache"}  # never the SA
    # After the notice each peer reconnected once, from its cache, to the new LID.
    [event] = result.notice_events
    after = [e for e in during if e.time_ns >= event.time_ns]
    assert len(after) == len(result.connections) == 3
    assert {e.lid for e in after} == {vm_lid}
    for conn in result.connections:
        guest = sim.vms[conn.client].guest
        assert guest.counters["paths_updated_from_notice"] == 1
        record = guest.paths.lookup(vm_gid)
        assert record is not None and record.dlid == vm_lid
        assert conn.downtime_ns is not None


def test_plain_trap69_makes_every_peer_ask_again() -> None:
    result, _, _ = lab("targeted", notice="trap69")
    assert path_queries(result) == len(result.connections) == 3


def test_peer_hosts_beyond_the_other_hosts_is_a_config_error() -> None:
    data: dict[str, Any] = json.loads(json.dumps(LAB))
    data["workload"]["peer_hosts"] = 6
    with pytest.raises(ConfigError, match="n - 1 = 5") as info:
        scenario_from_dict(data, "lab")
    assert info.value.where == "lab: workload.peer_hosts"
    data["workload"].update(peer_hosts=1, peers=3)
    with pytest.raises(ConfigError, match="do not fit the VMs of 1 hosts"):
        scenario_from_dict(data, "lab")


def test_the_targeted_example_runs_as_its_comment_says() -> None:
    path = Path(__file__).resolve().parents[2] / "examples" / "targeted.toml"
    data = tomllib.loads(path.read_text())
    result = run_scenario(scenario_from_dict(data, str(path)))
    assert result.path_change_reports == 2  # h_p = 2 of n = 6
    assert path_queries(result) == 0
    assert all(c.downtime_ns is not None for c in result.connections)

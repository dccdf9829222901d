"""Multicast memberships follow a migrating VM (issue 12, item 1): with
`join_ipoib_broadcast` every guest joins the IPoIB broadcast group with its vGUID
when its VF comes up; the migrating VM leaves it as its VF goes (so its dom0's
GUIDInfoRecord Delete, which the SA refuses for an alias in a group as OpenSM
does, goes through at once) and joins again at the destination, where the SM
reprograms the MFTs toward the new port."""

from __future__ import annotations

import json
from typing import Any

from ibmig.core.sa.multicast import IPOIB_BROADCAST_MGID
from ibmig.experiments.placement import VGUID_BASE
from ibmig.experiments.runner import run_scenario
from ibmig.experiments.scenario import scenario_from_dict
from ibmig.sim.hosting import VirtualizedSubnet

LAB: dict[str, Any] = {
    "topology": {"file": "ft2-36"},
    "hosts": {"n": 4, "m": 2, "vfs": 3},
    "workload": {"peers": 3, "interval_us": 5000},
    "migrations": [{"vm": 0, "at_ms": 30}],
    "run": {"duration_ms": 6000, "seed": 3},
    "timing": {"migration": {"memory_bytes": 64 * 1024 * 1024}},
    "signalling": {"assignment": "static", "strategy": "per-host"},
}


def run(join: bool) -> VirtualizedSubnet:
    data = json.loads(json.dumps(LAB))
    data["timing"]["guest"] = {"join_ipoib_broadcast": join}
    box: dict[str, VirtualizedSubnet] = {}

    def keep(_stage: str, sim: VirtualizedSubnet) -> None:
        box["sim"] = sim

    result = run_scenario(scenario_from_dict(data, "lab"), on_stage=keep)
    assert result.migrations[0].outcome == "completed"
    assert all(c.downtime_ns is not None for c in result.connections)
    return box["sim"]


def port_guid_of(sim: VirtualizedSubnet, host: str) -> int:
    node = sim.fabric.nodes[sim.hosts[host].node]
    return sim.fabric.ports[node.port_index(1)].port_guid


def test_membership_moves_with_the_vm() -> None:
    sim = run(join=True)
    group = sim.sa.multicast.groups[IPOIB_BROADCAST_MGID]
    where = {vm.name: vm.host for vm in sim.vms.values()}
    assert where["vm0"] == "host1" and where["vm1"] == "host0"
    # Every VM is a member with its vGUID, behind the port it runs on now.
    assert {guid: m.port_guid for guid, m in group.members.items()} == {
        VGUID_BASE + i + 1: port_guid_of(sim, where[f"vm{i}"]) for i in range(8)
    }
    vm0 = sim.vms["vm0"].guest
    assert (vm0.sent["sa_mc_join"], vm0.sent["sa_mc_leave"]) == (2, 1)
    assert vm0.multicast_joined and vm0.counters["mc_join_refused"] == 0
    # The source's alias went at once: no Delete was refused (and retried later).
    assert not any(h.agent.counters["sa_gave_up"] for h in sim.hosts.values())
    assert sim.sa.counters["path_changes"] == 1
    # MFTs: one port per host with a member (host0 keeps vm1).
    ports = {port_guid_of(sim, h) for h in ("host0", "host1", "host2", "host3")}
    assert sim.sm.multicast.members[group.mlid] == frozenset(ports)


def test_no_join_no_member() -> None:
    sim = run(join=False)
    group = sim.sa.multicast.groups[IPOIB_BROADCAST_MGID]
    assert group.members == {}
    assert all(vm.guest.sent["sa_mc_join"] == 0 for vm in sim.vms.values())

"""Partitions in scenarios (`[partitions]`, issue 12 item 3): VMs placed in
partitions by name, a peer outside the migrating VM's partition never connects,
and the path-change Report skips the host whose VMs share no partition with it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ibmig.errors import ConfigError
from ibmig.experiments.metrics import RunResult
from ibmig.experiments.runner import run_scenario
from ibmig.experiments.scenario import load_scenario, scenario_from_dict

# 4 hypervisors x 2 VMs (vm6, vm7 on host3); vm0 migrates; peers vm6, vm3, vm5
# (seed 3).
LAB: dict[str, Any] = {
    "topology": {"file": "ft2-36"},
    "hosts": {"n": 4, "m": 2, "vfs": 3},
    "workload": {"peers": 3, "interval_us": 5000},
    "migrations": [{"vm": 0, "at_ms": 30}],
    "run": {"duration_ms": 6000, "seed": 3},
    "timing": {"migration": {"memory_bytes": 64 * 1024 * 1024}},
    "signalling": {"assignment": "static", "strategy": "per-host"},
}
TENANTS = """
Default=0x7fff : ALL_SWITCHES=full, SELF=full, ALL_CAS=limited ;
Red=0x0101, defmember=full : vm0, vm1, vm2, vm3, vm4, vm5 ;
Blue=0x0102, defmember=full :
    vm6, vm7 ;   # host3's VMs
"""


def lab(**extra: Any) -> RunResult:
    data = json.loads(json.dumps(LAB))
    data.update(extra)
    return run_scenario(scenario_from_dict(data, "lab"))


def test_tenants_isolate_connections_and_reports() -> None:
    open_fabric = lab()
    assert open_fabric.path_change_reports == 4  # every hypervisor
    assert all(c.downtime_ns is not None for c in open_fabric.connections)
    tenants = lab(partitions={"text": TENANTS})
    assert tenants.path_change_events == 1
    assert tenants.path_change_reports == 3  # not host3: it holds Blue VMs only
    by_client = {c.client: c for c in tenants.connections}
    assert sorted(by_client) == ["vm3", "vm5", "vm6"]
    assert by_client["vm6"].deliveries_ns == []  # no PathRecord across partitions
    for name in ("vm3", "vm5"):
        assert by_client[name].downtime_ns is not None  # reconnected after the move


def test_partitions_file_relative_to_the_scenario(tmp_path: Path) -> None:
    (tmp_path / "tenants.conf").write_text(TENANTS)
    data = dict(LAB, partitions={"file": "tenants.conf"})
    lines = [
        f"[{k}]\n" + "".join(f"{kk} = {json.dumps(vv)}\n" for kk, vv in v.items())
        for k, v in data.items()
        if isinstance(v, dict) and k != "timing"
    ]
    lines.append("[[migrations]]\nvm = 0\nat_ms = 30\n")
    (tmp_path / "lab.toml").write_text("\n".join(lines))
    scenario = load_scenario(str(tmp_path / "lab.toml"))
    assert scenario.partitions is not None
    assert scenario.partitions.source == str(tmp_path / "tenants.conf")
    assert scenario.partitions.text == TENANTS


@pytest.mark.parametrize(
    ("partitions", "signalling", "where", "message"),
    [
        ({"text": "A=0x1 : vm8 ;"}, None, "lab: partitions.text:1", "bad PortGUID 'vm8'"),
        ({"text": "A=0x1 :\n host4 ;"}, None, "lab: partitions.text:1", "bad PortGUID 'host4'"),
        ({"text": "A=0x1 : ALL"}, None, "lab: partitions.text:1", "closing ';'"),
        ({}, None, "lab: partitions", "give file or text"),
        ({"text": "x", "file": "y"}, None, "lab: partitions", "give file or text"),
        ({"file": "/nonexistent/p.conf"}, None, "lab: partitions.file", "cannot read"),
        ({"texts": "A : ALL ;"}, None, "lab: partitions.texts", "unknown key"),
        (
            {"text": "A=0x1 : vm1 ;"},
            {"assignment": "dynamic", "strategy": "per-host"},
            "lab: partitions",
            "static",
        ),
    ],
)
def test_partition_errors(
    partitions: dict[str, str], signalling: dict[str, str] | None, where: str, message: str
) -> None:
    data = json.loads(json.dumps(LAB))
    data["partitions"] = partitions
    if signalling is not None:
        data["signalling"] = signalling
    with pytest.raises(ConfigError) as caught:
        scenario_from_dict(data, "lab")
    assert caught.value.where == where
    assert message in caught.value.message

"""The placement stage: what it costs must not change what it does.

Placement starts a host's VMs together (`VirtualizedSubnet.add_vms`, one toolstack
pump per host). These tests run the same scenarios with the VMs added one at a
time, as `add_vm` did before, and ask for byte-identical traces and captures."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from typing import Any

import pytest

from ibmig.cli.run import migration_json
from ibmig.core.guest import GuestAgent
from ibmig.experiments.metrics import summarize_downtime, summarize_messages
from ibmig.experiments.runner import run_scenario
from ibmig.experiments.scenario import scenario_from_dict
from ibmig.sim.hosting import VirtualizedSubnet, VmSlot
from ibmig.sim.subnet import TraceWriter
from ibmig.wire.capture import CaptureWriter
from ibmig.wire.mad import Method
from ibmig.wire.sa import SaAttr

BASE: dict[str, Any] = {
    "topology": {"file": "ft2-36"},
    "hosts": {"n": 5, "m": 3, "vfs": 9},
    "workload": {"peers": 2, "interval_us": 50000, "message_bytes": 64},
    "signalling": {"assignment": "static", "strategy": "per-host"},
    "migrations": [{"vm": 0, "at_ms": 1}, {"vm": 4, "at_ms": 1, "to_host": 0}],
    "run": {"duration_ms": 6000, "seed": 3},
    "timing": {"migration": {"memory_bytes": 16 * 1024 * 1024}},
}


def variant(**changes: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(BASE))
    for section, fields in changes.items():
        data.setdefault(section, {}).update(fields)
    return data


def traced(data: dict[str, Any]) -> tuple[str, bytes, str]:
    """The run's trace, capture and results (as `ibmig run --json` has them)."""
    trace, capture = io.StringIO(), io.BytesIO()
    result = run_scenario(
        scenario_from_dict(data, "placement"),
        trace=TraceWriter(trace),
        capture=CaptureWriter(capture),
    )
    results = {
        "downtime": summarize_downtime(result),
        "messages": summarize_messages(result),
        "migrations": [migration_json(m) for m in result.migrations],
    }
    return trace.getvalue(), capture.getvalue(), json.dumps(results, sort_keys=True, default=str)


@pytest.mark.parametrize(
    "data",
    [
        variant(),
        variant(signalling={"strategy": "per-vm"}),
        variant(signalling={"assignment": "dynamic"}),
        variant(hosts={"model": "vswitch", "vswitch_lids": "dynamic"}, workload={"peers": 0}),
        variant(hosts={"model": "vswitch", "vswitch_lids": "prepopulated"}),
        variant(latency={"contention": True}),
    ],
    ids=["per-host", "per-vm", "dynamic", "vswitch-dynamic", "vswitch-prepopulated", "contention"],
)
def test_a_host_s_vms_started_together_run_as_when_started_one_by_one(
    data: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    together = traced(data)
    add_vms = VirtualizedSubnet.add_vms

    def one_by_one(
        self: VirtualizedSubnet, host: str, vms: Iterable[tuple[str, GuestAgent, int]]
    ) -> list[VmSlot]:
        return [slot for vm in vms for slot in add_vms(self, host, [vm])]

    monkeypatch.setattr(VirtualizedSubnet, "add_vms", one_by_one)
    alone = traced(data)
    assert together[0] == alone[0]
    assert together[1] == alone[1]
    assert together[2] == alone[2]
    trace = [json.loads(line) for line in together[0].splitlines()]
    assert sum(e["event"] == "VfUp" for e in trace) >= 15  # every VM came up
    assert [m["total_ms"] is not None for m in json.loads(together[2])["migrations"]] == [True] * 2


def test_a_per_vm_placement_ends_once_every_guest_s_subscription_is_answered() -> None:
    """35 hosts of 16 VMs each subscribing themselves: the SM's alias GUID writes
    queue up, so many guests' first InformInfo answers reach their HCA before their
    vGUID is in the port's table and are dropped ("no_vf"); each guest asks again a
    second later. The placement waits for those answers, so the migrations that
    follow see no InformInfo Set of the set-up's."""
    data = variant(
        hosts={"n": 35, "m": 16, "vfs": 18, "placement": "packed"},
        workload={"peers": 0},
        signalling={"strategy": "per-vm"},
        run={"duration_ms": 6000, "seed": 1},
        latency={"contention": False},  # the benchmarks' set-up (benchmarks/largest.py)
    )
    data["migrations"] = [{"vm": 5, "at_ms": 1}]
    at_stage: dict[str, tuple[int, int, int]] = {}

    def keep(stage: str, sim: VirtualizedSubnet) -> None:
        in_flight = sum(slot.guest.subscribing for slot in sim.vms.values())
        answered = sim.sa.mad_counts[(SaAttr.INFORM_INFO, Method.GET_RESP)]
        at_stage[stage] = (sim.stats.drops["no_vf"], in_flight, answered)

    run_scenario(scenario_from_dict(data, "placement"), traffic=False, on_stage=keep)
    dropped, in_flight, _ = at_stage["workload"]
    assert dropped > 100  # the race this is about happened
    assert in_flight == 0
    # After the set-up only the migrated guest subscribes again (at its destination).
    assert at_stage["measure"][2] - at_stage["workload"][2] == 1
    assert at_stage["workload"][2] > 560  # every guest answered, the resends too

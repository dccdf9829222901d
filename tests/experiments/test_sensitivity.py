"""`ibmig reproduce`'s sensitivity section (`ibmig.experiments.sensitivity`): each
knob's value reaches the scenario, its defaults are the model's, and its effect is
what a reader can check by hand; a finding that changes with a knob is flagged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ibmig.cli import main
from ibmig.core.migration.timing import MigrationTiming
from ibmig.errors import ConfigError
from ibmig.experiments import sensitivity as sens
from ibmig.experiments.building import Settings, build_fabric
from ibmig.experiments.orchestration import slack_ms
from ibmig.experiments.reproduction import LAB, SWEEP_TOPOLOGY, run_point, sensitivity_plan
from ibmig.experiments.runner import run_scenario
from ibmig.experiments.scenario import Scenario, scenario_from_dict


def _effective(scenario: Scenario, key: str) -> Any:
    """What the simulation runs with for a knob's scenario key (read from the
    place each value ends up, not from the scenario data)."""
    section, _, name = key.rpartition(".")
    settings = Settings.of(scenario)
    if section == "latency":
        return getattr(settings.latency, name)
    if section == "timing.migration":
        return getattr(settings.migration, name)
    if section == "timing.guest":
        return getattr(settings.guest, name)
    if key == "workload.interval_us":
        return settings.guest.message_interval_ns / 1e3
    if key == "workload.path_cache":
        return settings.guest.path_cache
    if key == "sa.packet_life_time":
        return "hops" if scenario.sa.packet_life_time is None else scenario.sa.packet_life_time
    if key == "sa.guid_info_answer":
        return scenario.sa.guid_info_answer
    links = {(link.width.label, link.speed.name) for link in build_fabric(scenario).links}
    assert len(links) == 1, links
    width, speed = links.pop()
    return width if name == "link_width" else speed


SMALL_TREE = {"generator": "fat_tree_2level", "leaves": 2, "hosts_per_leaf": 5, "spines": 2}
"""The sweep point's shape on a small tree (8 servers and the SM's node): as fast."""


def _points(knob: sens.Knob) -> list[sens.SensitivityPoint]:
    return sens.plan(LAB, SWEEP_TOPOLOGY, seeds=1, knobs=[knob], cost_n=8)


@pytest.mark.parametrize("knob", sens.KNOBS, ids=lambda k: k.name)
def test_each_knob_value_reaches_the_scenario_and_its_default_is_the_models(
    knob: sens.Knob,
) -> None:
    points = _points(knob)
    # The default is the lab's (the sweep point's VM is smaller); a knob that re-runs
    # the sweep point has the same default there.
    defaults = [p.scenario for p in points if p.knob is None and (p.role == "lab" or knob.costs)]
    for key in knob.keys:
        default = knob.settings(knob.default)[key] if knob.default is not None else None
        for scenario in defaults:
            shown = _effective(scenario, key)
            if default is None:  # the model's own rule: QP ACK timeout derived
                assert shown is None, (knob.name, key, shown)
            else:
                assert shown == default, (knob.name, key, shown, default)
    for i, value in enumerate(knob.values):
        varied = [p.scenario for p in points if p.knob is knob and p.value == i]
        assert len(varied) == 3 + (2 if knob.costs else 0)  # 3 strategies, cost point
        for key, wanted in knob.settings(value).items():
            for scenario in varied:
                assert _effective(scenario, key) == wanted, (knob.name, key)


def test_each_run_of_a_value_differs_from_the_defaults_only_by_the_knob() -> None:
    knob = next(k for k in sens.KNOBS if k.name == "sa_ns")
    points = _points(knob)
    base = {(p.role, p.strategy): p.scenario for p in points if p.knob is None}
    for p in points:
        if p.knob is None:
            continue
        other = base[(p.role, p.strategy)]
        assert dict(p.scenario.latency) == {"sa_ns": knob.values[p.value]}
        assert p.scenario.hosts == other.hosts and p.scenario.workload == other.workload
        assert p.scenario.migration_timing == other.migration_timing
        assert p.scenario.run == other.run


def test_each_lab_run_ends_the_same_time_after_its_vf_swap() -> None:
    # The peers have as long after the migration whatever its timing: as in the lab.
    knob = next(k for k in sens.KNOBS if k.name == "VM memory")
    spans = {
        None: sens._span_ns(MigrationTiming(memory_bytes=256 * 2**20)),
        0: sens._span_ns(MigrationTiming(memory_bytes=64 * 2**20)),
        1: sens._span_ns(MigrationTiming(memory_bytes=2**30)),
    }
    assert spans[None] == 6_043_776_536  # the VM RDMA outage, 6,044 ms; begun at 50 ms
    for p in _points(knob):
        if p.role != "lab":
            continue
        span = spans[None if p.knob is None else p.value]
        expected = 50 + -(-span // 10**6) + 5906
        assert p.scenario.run.duration_ms == expected, p.scenario.source
    assert sens.horizon_ms(LAB) == 5906
    # The defaults' runs are the lab's.
    assert 50 + -(-spans[None] // 10**6) + 5906 == LAB["run"]["duration_ms"]


def test_the_defaults_runs_are_the_lab_tables() -> None:
    from dataclasses import replace

    from ibmig.experiments.reproduction import lab_scenarios

    lab = {s.source: s for s in lab_scenarios(3)}
    for p in sensitivity_plan(seeds=3)[:9]:
        assert p.knob is None and p.role == "lab"
        twin = lab[f"lab[static,{p.strategy},cached,seed={p.seed}]"]
        assert p.scenario == replace(twin, source=p.scenario.source)


def test_the_plan_is_the_defaults_then_each_value_and_each_source_is_unique() -> None:
    points = sensitivity_plan(seeds=3)
    values = sum(len(k.values) for k in sens.KNOBS)
    costs = 1 + sum(len(k.values) for k in sens.KNOBS if k.costs)
    assert len(points) == (1 + values) * 3 * 3 + costs * 2
    assert [p.strategy for p in points[:9]] == ["none"] * 3 + ["per-vm"] * 3 + ["per-host"] * 3
    assert [p.seed for p in points[:4]] == [1, 2, 3, 1]
    assert len({p.scenario.source for p in points}) == len(points)
    again = sensitivity_plan(seeds=3)
    assert [p.scenario for p in again] == [p.scenario for p in points]
    assert sensitivity_plan(seeds=0) == []


def _lab(knob: sens.Knob, strategy: str) -> dict[str, Any]:
    """The lab run of `knob`'s first value and the defaults' (seed 1)."""
    rows = {}
    for p in _points(knob):
        if p.role == "lab" and p.strategy == strategy:
            rows[p.knob is None] = sens.lab_row(run_scenario(p.scenario))
    return {"default": rows[True], "varied": rows[False]}


def test_vf_detach_one_second_longer_moves_the_rdma_outage_by_exactly_one_second() -> None:
    knob = sens.Knob("VF detach", ("timing.migration.vf_detach_ns",), 500_000_000,
                  (1_500_000_000,), "ASSUMPTION", "")  # fmt: skip
    runs = _lab(knob, "per-host")
    down = [runs[k]["migration_downtime_us"] for k in ("default", "varied")]
    assert down[1] - down[0] == 1_000_000  # us
    # The VM's own pause does not move: the detach is before the copy.
    assert runs["varied"]["vm_downtime_us"] == runs["default"]["vm_downtime_us"]
    # Every peer still comes back, one reconnection after the vport.
    for run in runs.values():
        assert run["connected_after"] == run["peers"] == 3
        assert 0 < run["after_vport_ms"] < slack_ms(run["interval_us"])


def test_doubling_sa_ns_doubles_the_sweep_points_sa_busy_time_exactly() -> None:
    knob = sens.Knob("sa_ns", ("latency.sa_ns",), 11_500, (23_000,), "measured", "", costs=True)
    rows: dict[tuple[bool, str], dict[str, Any]] = {}
    for p in sens.plan(LAB, SMALL_TREE, seeds=1, knobs=[knob], cost_n=8):
        if p.role == "cost":
            rows[(p.knob is None, p.strategy)] = sens.cost_row(
                run_scenario(p.scenario, traffic=False)
            )
    for strategy in ("per-vm", "per-host"):
        default, doubled = rows[(True, strategy)], rows[(False, strategy)]
        assert round(doubled["sa_busy_ms"] * 1e6) == 2 * round(default["sa_busy_ms"] * 1e6)
        assert doubled["reports"] == default["reports"]
    # Per-host at n = 8: 8 Reports, 8 ReportResps and the alias GUID's Set, 11.5 us each.
    assert round(rows[(True, "per-host")]["sa_busy_ms"] * 1e6) == 17 * 11_500


def _section(knobs: list[sens.Knob]) -> list[dict[str, Any]]:
    points = sens.plan(LAB, SMALL_TREE, seeds=1, knobs=knobs, cost_n=8)
    kinds = {"lab": "sensitivity-lab", "cost": "sensitivity-cost"}
    rows = [run_point((kinds[p.role], p.scenario)).row for p in points]  # type: ignore[arg-type]
    return sens.summarize(points, rows)


def test_a_knob_that_breaks_a_finding_is_flagged_flipped() -> None:
    # Registering the alias GUID at VF attach (before the guest's stack is up) tells
    # the peers too soon: their REQs are dropped and they wait a CM resend, seconds
    # past the vport (F3 fails). Without queueing, per-VM's n*m Reports cost no more
    # time than per-host's n (F4 fails).
    early = sens.Knob("alias registration", ("orchestration.alias_registration",),
                   "after_reinit", ("at_attach",), "choice", "")  # fmt: skip
    flat = next(k for k in sens.KNOBS if k.name == "contention")
    rows = _section([early, flat])
    base, registered, no_queue = rows
    assert base["knob"] == "defaults" and base["flipped"] == []
    assert [base[f] for f in sens.FINDINGS] == [True, True, True, True]
    assert base["back"] == {"none": [0, 3], "per-vm": [3, 3], "per-host": [3, 3]}
    assert base["reports"] == {"per-vm": 12, "per-host": 6}  # n*m and n, n = 6, m = 2
    assert base["threshold_ms"] == 9.0  # two 2 ms intervals and 5 ms
    assert 0 < base["makespan_ratio"] < 1
    # Registered early: every peer still comes back, seconds too late.
    assert registered["back"] == base["back"]
    assert registered["F3"] is False and registered["flipped"] == ["F3"]
    assert registered["after_vport_ms"]["per-host"] > 1000
    assert registered["F4"] is None  # its sweep point is not re-run
    # No queueing: F4 flips, and only F4.
    assert no_queue["F4"] is False and no_queue["flipped"] == ["F4"]
    assert no_queue["makespan_ratio"] >= 1
    table = sens.sensitivity_table(rows)
    assert "FLIPPED F3" in table[3] and "FLIPPED F4" in table[4]
    assert "FLIPPED" not in table[2]


def test_sensitivity_seeds_out_of_range_are_one_line_before_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for bad in ("-1", "101"):
        assert main(["reproduce", "--out", str(tmp_path / "r"), "--sensitivity-seeds", bad]) == 2
        [line] = capsys.readouterr().err.strip().splitlines()
        assert "--sensitivity-seeds" in line and "from 0 to 100" in line
    assert not (tmp_path / "r").exists()
    with pytest.raises(ConfigError):
        sens.check_seeds(True)


def test_link_keys_set_every_cable_and_bad_names_are_refused() -> None:
    data: dict[str, Any] = {"topology": {"file": "ft2-36", "link_width": "1x",
                                         "link_speed": "EDR"}}  # fmt: skip
    fabric = build_fabric(scenario_from_dict(data, "s"))
    assert {(link.width.lanes, link.speed.name) for link in fabric.links} == {(1, "EDR")}
    generated = {"topology": dict(SWEEP_TOPOLOGY, link_speed="FDR")}
    fabric = build_fabric(scenario_from_dict(generated, "s"))
    assert {(link.width.lanes, link.speed.name) for link in fabric.links} == {(4, "FDR")}
    with pytest.raises(ConfigError, match="link_speed"):
        scenario_from_dict({"topology": {"link_speed": "XDR"}}, "s")
    with pytest.raises(ConfigError, match="link_width"):
        scenario_from_dict({"topology": {"generator": "fat_tree_2level", "leaves": 2,
                                         "hosts_per_leaf": 2, "spines": 1,
                                         "link_width": "3x"}}, "s")  # fmt: skip


@pytest.mark.slow
def test_reproduce_json_carries_the_section_and_the_report_its_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["reproduce", "--out", str(tmp_path), "--json", "--quick", "--seeds", "1",
            "--sensitivity-seeds", "1"]  # fmt: skip
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    rows = data["sensitivity"]
    assert [r["knob"] for r in rows] == ["defaults", "VF detach", "VF detach", "sa_ns", "sa_ns"]
    assert json.loads((tmp_path / "sensitivity.json").read_text()) == rows
    assert (tmp_path / "sensitivity.csv").read_text().count("\n") == 6
    assert "Sensitivity" in (tmp_path / "report.html").read_text()


def test_no_sensitivity_seeds_leave_the_section_out() -> None:
    from ibmig.experiments.reproduction import points

    kinds = {kind for kind, _ in points(quick=True, seeds=1, sensitivity_seeds=0)}
    assert kinds == {"lab", "messages", "orchestration"}
    kinds = {kind for kind, _ in points(quick=True, seeds=1, sensitivity_seeds=1)}
    assert {"sensitivity-lab", "sensitivity-cost"} <= kinds


def test_a_knob_that_does_not_act_on_the_sa_leaves_the_sweep_point_as_it_is() -> None:
    # Why the sweep point is not re-run for the migration's, guests' and workload's
    # knobs: the Reports start at the alias move, whatever came before it.
    from dataclasses import replace

    detach = next(k for k in sens.KNOBS if k.name == "VF detach")
    assert not detach.costs
    rows: dict[tuple[bool, str], dict[str, Any]] = {}
    for p in sens.plan(LAB, SMALL_TREE, seeds=1, knobs=[replace(detach, costs=True)], cost_n=8):
        if p.role == "cost" and (p.knob is None or p.value == 1):
            rows[(p.knob is None, p.strategy)] = sens.cost_row(
                run_scenario(p.scenario, traffic=False)
            )
    for strategy in ("per-vm", "per-host"):
        assert rows[(False, strategy)] == rows[(True, strategy)]

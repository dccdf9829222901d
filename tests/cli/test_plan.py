"""`ibmig plan`: LIDs and signalling cost on a fabric, measured by simulation; the
Report counts checked against a separate run of the same scenario."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from ibmig.cli import main
from ibmig.experiments.building import MAX_UNICAST_LIDS
from ibmig.experiments.metrics import summarize_messages
from ibmig.experiments.planning import lid_rows
from ibmig.experiments.runner import run_scenario
from ibmig.experiments.scenario import MAX_VFS, scenario_from_dict
from ibmig.fabric import Fabric, load_topology
from ibmig.fabric.generators import random_topology
from ibmig.fabric.netfile import write_net
from ibmig.sim.latency import LatencyModel

RATE = "--migrations-per-hour"
TOPOLOGIES = Path(__file__).resolve().parents[1] / "data" / "topologies"


def plan_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["plan", *args, "--json"]) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


def reference_reports(topology: str, n: int, m: int, strategy: str) -> int:
    """Reports per event of a scenario written here, not by the planner: same fabric,
    hosts, VMs and strategy, another VM migrated (vm 0), a larger VM."""
    data = {
        "topology": {"file": topology},
        "hosts": {"n": n, "m": m, "vfs": m + 1, "placement": "packed"},
        "workload": {"peers": 0},
        "signalling": {"assignment": "static", "strategy": strategy},
        "migrations": [{"vm": 0, "at_ms": 1}],
        "run": {"duration_ms": 8000, "seed": 1},
        "timing": {"migration": {"memory_bytes": 64 * 1024 * 1024}},
    }
    result = run_scenario(scenario_from_dict(data, "reference"), traffic=False)
    reports: int = summarize_messages(result)["reports_per_event"]
    return reports


def check_plan(data: dict[str, Any], fabric: Fabric, topology: str, m: int) -> None:
    n = fabric.num_cas - 1  # every CA is cabled in these fabrics
    assert (data["hosts"], data["vms_per_host"]) == (n, m)
    base = fabric.num_switches + fabric.num_cas
    needed = [row["needed"] for row in data["lids"]]
    assert needed == [base, base + n * m, base + n * (m + 1)]
    rows = {row["strategy"]: row for row in data["strategies"]}
    assert rows["per-host"]["reports_per_migration"] == n
    assert rows["per-vm"]["reports_per_migration"] == n * m
    for name in ("per-host", "per-vm"):
        assert rows[name]["reports_per_migration"] == reference_reports(topology, n, m, name)
        row = rows[name]
        # Every Report is answered: fabric MADs at least Reports and ReportResps.
        assert row["fabric_mads_per_migration"] >= 2 * row["reports_per_migration"]
        sa_ns = LatencyModel().sa_ns
        sent = row["reports_per_migration"] + row["report_resends_per_migration"]
        busy = (sent + row["sa_mads_received_per_migration"]) * sa_ns / 1e3
        assert row["sa_busy_us_per_migration"] == pytest.approx(busy)
        rate = data["migrations_per_hour"]
        assert row["reports_per_hour"] == pytest.approx(row["reports_per_migration"] * rate)


def test_plan_on_ft2_36_matches_a_run_and_counts_every_strategy(
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = plan_json(capsys, "ft2-36", "--vms-per-host", "4", "--migrations-per-hour", "30")
    check_plan(data, load_topology("ft2-36"), "ft2-36", 4)
    rows = {row["strategy"]: row for row in data["strategies"]}
    assert list(rows) == ["none", "per-vm", "per-host"]
    assert rows["none"]["reports_per_migration"] == 0
    assert rows["none"]["fabric_mads_per_migration"] > 0  # the alias GUID still moves
    assert data["assumptions"]["sa_ns"] == LatencyModel().sa_ns
    assert "ASSUMPTION" in data["assumptions"]["sa_ns_note"]


def test_plan_on_ft2_324_file(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(TOPOLOGIES / "ft2-324.net")
    data = plan_json(
        capsys, path, "--vms-per-host", "2", "--strategy", "per-host", "--strategy", "per-vm"
    )
    check_plan(data, load_topology(path), path, 2)


def test_plan_on_a_generated_irregular_fabric(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    net = tmp_path / "irregular.net"
    write_net(random_topology(7, 24, seed=5), net)
    data = plan_json(capsys, str(net), "--vms-per-host", "3", "--strategy", "per-vm,per-host")
    check_plan(data, load_topology(str(net)), str(net), 3)


def test_plan_averages_several_migrations_and_prints_a_table(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stderr = Terminal()
    monkeypatch.setattr("sys.stderr", stderr)
    args = ["plan", "ft2-36", "--vms-per-host", "2", "--strategy", "per-host"]
    assert main([*args, "--migrations", "3", "--migrations-per-hour", "10"]) == 0
    out = capsys.readouterr().out
    assert "plan per-host (1/1)" in stderr.getvalue()  # progress on a terminal
    assert "3 migrations simulated per strategy" in out
    row = next(line for line in out.splitlines() if line.startswith("per-host"))
    assert row.split()[1:5] == ["35", "n", "=", "35"]  # measured, then the formula
    assert "measured on ibsim" in out and "49,151" in out


def test_lid_rows_at_the_scale_of_the_issue() -> None:
    # 40,960 hosts on a 64-port three-level fat tree: 44,544 LIDs shared-port.
    n, m = 40_959, 16
    shared, per_vm, per_vf = lid_rows(44_544, n, m)
    assert shared.fits and shared.vms_fit == n * MAX_VFS
    assert not per_vm.fits and per_vm.needed == 44_544 + n * m
    assert per_vm.vms_fit == MAX_UNICAST_LIDS - 44_544
    assert not per_vf.fits and per_vf.vms_fit == 0  # not one VF per host fits


@pytest.mark.parametrize(
    ("args", "where"),
    [
        (["ft2-36", "--vms-per-host", "0"], "--vms-per-host"),
        (["ft2-36", "--vms-per-host", "128"], "--vms-per-host"),
        (["ft2-36", "--vms-per-host", "127"], "--vms-per-host"),
        (["ft2-36", "--vms-per-host", "four"], "--vms-per-host"),
        (["ft2-36", "--vms-per-host", "4", RATE, "-1"], RATE),
        (["ft2-36", "--vms-per-host", "4", RATE, "nan"], RATE),
        (["ft2-36", "--vms-per-host", "4", "--strategy", "per-rack"], "--strategy"),
        (["ft2-36", "--vms-per-host", "4", "--migrations", "0"], "--migrations"),
        (["no/such.net", "--vms-per-host", "4"], "no/such.net"),
        (["ft9-1", "--vms-per-host", "4"], "ft9-1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str], where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ibmig: error: {where}: ")


def test_a_fabric_with_too_few_cas_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    net = tmp_path / "two.net"
    write_net(random_topology(1, 2, seed=1), net)
    assert main(["plan", str(net), "--vms-per-host", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "at least 3 cabled CAs" in err

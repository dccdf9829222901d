"""`ibmig compare`: every mechanism on the same lab, seeds and clock; what each
table row must show."""

from __future__ import annotations

from pathlib import Path

import pytest

from ibmig.cli import main
from ibmig.experiments.compare import (
    MECHANISMS,
    PLACEMENTS,
    compare,
    lab_scenarios,
    sweep_scenarios,
)
from ibmig.experiments.compare_report import lab_table, sweep_table
from ibmig.experiments.reproduction import LAB, SWEEP_M, SWEEP_N
from ibmig.experiments.sweep import InProcess
from ibmig.sim.latency import LatencyModel


def test_the_lab_and_sweep_cover_every_mechanism_with_the_same_seeds() -> None:
    labs = lab_scenarios(2)
    assert len(labs) == len(MECHANISMS) * len(PLACEMENTS) * 2
    assert {s.run.seed for s in labs} == {1, 2}
    assert len({s.source for s in labs}) == len(labs)
    vswitch = [s for s in labs if s.hosts.vswitch is not None]
    assert len(vswitch) == 2 * len(PLACEMENTS) * 2
    assert all(s.workload.path_cache == "cached" for s in labs)
    sweeps = sweep_scenarios()
    points = len(set(SWEEP_N) | {64}) + len(set(SWEEP_M) - {4})
    assert len(sweeps) == len(MECHANISMS) * points
    assert {s.run.seed for s in sweeps} == {1}


def test_one_seed_of_the_lab(tmp_path: Path) -> None:
    result = compare(tmp_path / "out", seeds=1, sweep=False, backend=InProcess())
    rows = {(r["mechanism"], r["placement"]): r for r in result.lab}
    assert len(rows) == len(MECHANISMS) * len(PLACEMENTS)
    n = LAB["hosts"]["n"]
    for placement, workload in PLACEMENTS.items():
        h_p = rows["targeted", placement]["peer_hosts"]
        if workload["peer_hosts"]:
            assert h_p == workload["peer_hosts"]
        else:
            assert h_p == n - 1  # 10 peers: every VM of every other host
        # First sends: n*m for per-vm (resends, to the migrated VM's stale
        # subscription, counted apart), n for per-host, h_p for targeted.
        assert rows["per-vm", placement]["reports"] == n * LAB["hosts"]["m"]
        assert rows["per-host", placement]["reports"] == n
        assert rows["targeted", placement]["reports"] == h_p
        assert rows["targeted+path+cache", placement]["reports"] == h_p
        peers = workload["peers"]
        # One PathRecord query per peer after the move, none with the path carried.
        assert rows["per-host", placement]["path_queries"] == peers
        assert rows["per-host+path", placement]["path_queries"] == 0
        assert rows["targeted+path+cache", placement]["path_queries"] == 0
        for name in ("vswitch-prepop", "vswitch-dynamic"):
            row = rows[name, placement]
            assert row["reports"] == 0 and row["path_queries"] == 0
            # ft2-36 is small: one LFT block per switch, so a full re-route sends as many.
            assert 0 < row["lft_smps"] <= row["full_reroute_smps"]
            assert row["connected_after"] == peers
        assert rows["none", placement]["connected_after"] == 0
        # The SA's side, a FIFO serving `sa_ns` per MAD: more Reports, more busy time.
        busy = {name: rows[name, placement]["sa_busy_ms"]["median"] for name, _ in rows}
        notify = {
            name: rows[name, placement]["notification_makespan_ms"]["median"] for name, _ in rows
        }
        assert busy["per-vm"] > busy["per-host"] >= busy["targeted"] > 0
        assert busy["per-host+path"] < busy["per-host"]  # no PathRecord query in between
        assert busy["targeted+path+cache"] < busy["targeted"]
        for name in ("per-host+path", "targeted+path+cache"):
            # Nothing else reaches the SA: it answers the alias Set, then serves each
            # Report and its ReportResp, back to back (the Reports leave as one burst).
            reports = rows[name, placement]["reports"]
            assert busy[name] * 1e6 == pytest.approx((2 * reports + 1) * LatencyModel().sa_ns)
            assert notify[name] == busy[name]
        # Every Report acknowledged ends the makespan; per-vm's resends to the
        # migrated VM's stale subscription keep the SA busy after it.
        assert notify["per-vm"] < busy["per-vm"]
        for name in ("none", "vswitch-prepop", "vswitch-dynamic"):
            # No Report, so nothing notified ("-") and no SA work in the event.
            assert busy[name] == 0 and notify[name] is None
            assert rows[name, placement]["sa_max_queue"] == 0
        assert (
            rows["per-vm", placement]["sa_max_queue"] > rows["targeted", placement]["sa_max_queue"]
        )
    assert (tmp_path / "out" / "report.html").exists()
    assert (tmp_path / "out" / "compare.png").stat().st_size > 0
    lines = lab_table(result.lab)
    assert len(lines) == 2 + len(result.lab)
    assert lines[2].split()[:2] == ["none", "few-hosts"]
    assert lines[0].split()[-7:] == ["SA", "busy", "ms", "notify", "ms", "SA", "queue"]
    vswitch = next(line for line in lines if line.startswith("vswitch-prepop"))
    assert vswitch.split()[-3:] == ["0", "-", "0"]  # SA busy, makespan, queue
    per_host = next(line for line in lines if line.startswith("per-host+path "))
    assert per_host.split()[-3:-1] == ["0.149", "0.149"]  # 13 MADs x 11.5 us
    assert sweep_table([])[0].split()[:3] == ["mechanism", "n", "m"]


def test_bad_seeds_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "--seeds", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--seeds" in err[0], err


def test_the_sweep_table_shows_no_makespan_without_reports() -> None:
    row = {
        "mechanism": "vswitch-prepop", "n": 648, "m": 4, "reports": 0, "smps": 114,
        "lft_smps": 55, "full_reroute_smps": 3410, "path_queries": 0, "cm_mads": 18,
        "fabric_mads": 136, "sa_busy_us": 0.0, "notification_makespan_us": None,
        "sa_max_queue": 0,
    }  # fmt: skip
    timed = {**row, "mechanism": "per-vm", "sa_busy_us": 61_236.0,
             "notification_makespan_us": 59_800.0, "sa_max_queue": 2_600}  # fmt: skip
    lines = sweep_table([row, timed])
    assert lines[0].split()[-7:] == ["SA", "busy", "ms", "notify", "ms", "SA", "queue"]
    assert lines[2].split()[-3:] == ["0.000", "-", "0"]
    assert lines[3].split()[-3:] == ["61.236", "59.800", "2,600"]

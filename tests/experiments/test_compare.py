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
    assert (tmp_path / "out" / "report.html").exists()
    assert (tmp_path / "out" / "compare.png").stat().st_size > 0
    lines = lab_table(result.lab)
    assert len(lines) == 2 + len(result.lab)
    assert lines[2].split()[:2] == ["none", "few-hosts"]
    assert sweep_table([])[0].split()[:3] == ["mechanism", "n", "m"]


def test_bad_seeds_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "--seeds", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--seeds" in err[0], err

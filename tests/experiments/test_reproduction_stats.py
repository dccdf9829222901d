"""`ibmig reproduce` over seeds: the median and its interval by order statistics, the
tables' precision, what the seed varies, and the command with `--seeds`."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ibmig.cli import main
from ibmig.errors import ConfigError
from ibmig.experiments.metrics import (
    last_peer_after_vport_ms,
    median_interval_ranks,
    median_with_interval,
    summarize_messages,
    summarize_seeds,
)
from ibmig.experiments.report import format_interval, format_median, seeds_table
from ibmig.experiments.reproduction import (
    check_seeds,
    interval_note,
    lab_scenarios,
    points,
    run_point,
    sweep_scenarios,
)
from ibmig.experiments.runner import run_scenario

# --- the median's interval ---------------------------------------------------------


@pytest.mark.parametrize(
    ("k", "expected"),
    [
        (1, (1, 1, 0.0)),
        (2, (1, 2, 0.5)),  # [min, max] of 2 runs covers the median half the time
        (5, (1, 5, 1 - 2 / 32)),  # too few runs for 95%: the widest, 93.75%
        (6, (1, 6, 1 - 2 / 64)),
        (9, (2, 8, 1 - 2 * 10 / 512)),
        (10, (2, 9, 1 - 2 * 11 / 1024)),  # 97.85...%
        (20, (6, 15, 1 - 2 * 21700 / 2**20)),  # sum of C(20, 0..5) = 21,700
    ],
)
def test_the_interval_is_the_narrowest_order_statistics_with_95_percent(
    k: int, expected: tuple[int, int, float]
) -> None:
    low, high, coverage = median_interval_ranks(k)
    assert (low, high) == expected[:2]
    assert coverage == pytest.approx(expected[2], abs=1e-12)


def test_no_runs_is_an_error() -> None:
    with pytest.raises(ValueError):
        median_interval_ranks(0)


def test_median_and_interval_of_ten_runs() -> None:
    stat = median_with_interval([5.0, 1.0, 3.0, 2.0, 4.0, 7.0, 6.0, 9.0, 8.0, 10.0])
    assert stat == {
        "median": 5.5,
        "low": 2.0,
        "high": 9.0,
        "ranks": [2, 9],
        "coverage": 0.978516,
        "runs": 10,
    }


def test_runs_that_never_recovered_sort_last() -> None:
    # 4 of 10 runs never recovered: the median (mean of the 5th and 6th) is still a
    # number; with 5 of them it is "never", and so is the upper bound.
    four = median_with_interval([None, 4.0, None, 1.0, 3.0, None, 2.0, 6.0, 5.0, None])
    assert (four["median"], four["low"], four["high"]) == (5.5, 2.0, None)
    five = median_with_interval([None, 4.0, None, 1.0, 3.0, None, 2.0, None, 5.0, None])
    assert (five["median"], five["low"], five["high"]) == (None, 2.0, None)


def _run(seed: int, downs: list[float | None], **over: Any) -> dict[str, Any]:
    row = {
        "seed": seed,
        "assignment": "static",
        "strategy": "per-host",
        "path_cache": "cached",
        "peers": len(downs),
        "connected_after": sum(d is not None for d in downs),
        "peer_downtime_us": downs,
        "vm_downtime_us": 108_604.28,
        "migration_downtime_us": 6_043_791.256,
        "path_records": 3,
        "cm_mads": 18,
        "fabric_mads": 44,
    }
    return {**row, **over}


def test_the_last_peer_is_measured_from_the_vport_up() -> None:
    run = _run(1, [6_046_000.0, 6_047_000.0, 6_045_500.0])
    assert last_peer_after_vport_ms(run) == pytest.approx(6_047.0 - 6_043.791256)
    assert last_peer_after_vport_ms(_run(1, [6_046_000.0, None])) is None
    assert last_peer_after_vport_ms(_run(1, [])) is None
    assert last_peer_after_vport_ms(_run(1, [1.0], migration_downtime_us=None)) is None


def test_a_cell_over_its_seeds() -> None:
    runs = [
        _run(1, [3000.0, 1000.0, 2000.0]),  # median peer 2 ms, last 3 ms
        _run(2, [4000.0, None, 1000.0], path_records=5),  # one peer never back
        _run(3, [2000.0, 2000.0, 6000.0], fabric_mads=50),
    ]
    row = summarize_seeds(runs)
    assert row["seeds"] == [1, 2, 3]
    assert (row["connected_after"], row["peers"]) == (8, 9)
    # Per-run medians 2, 4, 2 ms; last peers 3, never, 6 ms. k = 3: [min, max], 75%.
    assert row["peer_downtime_ms"] == {
        "median": 2.0, "low": 2.0, "high": 4.0, "ranks": [1, 3], "coverage": 0.75, "runs": 3,
    }  # fmt: skip
    last = row["last_peer_downtime_ms"]
    assert (last["median"], last["low"], last["high"]) == (6.0, 3.0, None)
    after = row["last_peer_after_vport_ms"]  # 3 and 6 ms minus the 6,043.791256 ms outage
    assert after["median"] == pytest.approx(6.0 - 6043.791256)
    assert after["low"] == pytest.approx(3.0 - 6043.791256) and after["high"] is None
    assert row["vm_pause_ms"]["median"] == pytest.approx(108.60428)
    assert row["vm_rdma_down_ms"]["median"] == pytest.approx(6043.791256)
    # MAD counts: the median run's (the lower middle one for an even count).
    assert (row["path_records"], row["cm_mads"], row["fabric_mads"]) == (3, 18, 44)


# --- honest precision --------------------------------------------------------------


def test_digits_follow_the_interval() -> None:
    # Spread 0.67 ms: two significant digits of it are hundredths.
    stat = {"median": 6046.31, "low": 6045.97, "high": 6046.64}
    assert format_interval(stat) == "6,046.31 [6,045.97, 6,046.64]"
    # Spread 32 ms: whole ms (never coarser than that).
    assert format_interval({"median": 6114.2, "low": 6098.4, "high": 6130.9}) == (
        "6,114 [6,098, 6,131]"
    )
    # No spread (the model's VM pause): three significant digits.
    exact = {"median": 108.60428, "low": 108.60428, "high": 108.60428}
    assert format_median(exact) == "109"
    # Small values: three significant digits, or the spread's two, at most 1 us.
    assert format_interval({"median": 1.654157, "low": 1.2971, "high": 2.0125}) == (
        "1.65 [1.30, 2.01]"
    )
    assert format_median({"median": 0.0123456, "low": 0.0123, "high": 0.0124}) == "0.012"


def test_a_single_run_shows_no_interval() -> None:
    one = median_with_interval([6046.650621])
    assert format_interval(one) == "6,047"


def test_never_is_printed_as_such() -> None:
    assert format_interval({"median": None, "low": None, "high": None}) == "never"
    assert format_interval({"median": 5.5, "low": 2.0, "high": None}) == "5.50 [2.00, never]"
    assert format_median({"median": None, "low": 1.0, "high": None}) == "never"


def test_the_table_has_the_counts_and_intervals() -> None:
    out = 6_043_791.256  # us: the VM's RDMA outage in `_run`
    rows = [
        summarize_seeds(
            [_run(s, [out + 1000.0 * s, out + 2000.0, out + 3000.0 * s]) for s in (1, 2)]
        )
    ]
    head, rule, line = seeds_table(rows)
    for title in ("back", "peer downtime ms", "last peer ms", "after vport up ms",
                  "VM pause ms", "VM RDMA down ms"):  # fmt: skip
        assert title in head
    assert len(rule) == len(head)
    assert line.split()[:4] == ["static", "per-host", "cached", "6/6"]
    # Per-run median peers both 6,045.791 ms: no spread, whole ms. Last peers 6,046.791
    # and 6,049.791 ms (k = 2: [min, max]), 3 and 6 ms after the vport is up: a spread
    # of 3 ms gives tenths on 6,048.291, three significant digits on 4.5.
    assert "6,046 [6,046, 6,046]" in line
    assert "6,048.3 [6,046.8, 6,049.8]" in line
    assert "4.50 [3.00, 6.00]" in line
    assert line.split()[-5:] == ["109", "6,044", "3", "18", "44"]


def test_the_note_states_the_coverage() -> None:
    assert "2nd to 9th of the sorted runs" in interval_note(10)
    assert "97.9%" in interval_note(10)
    assert "1st to 2nd" in interval_note(2) and "50.0%" in interval_note(2)
    assert "no interval" in interval_note(1)


@pytest.mark.parametrize("bad", [0, -1, 1001, True, "3"])
def test_seeds_out_of_range_are_refused(bad: object) -> None:
    with pytest.raises(ConfigError):
        check_seeds(bad)


def test_a_bad_seeds_option_is_one_line_before_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reproduce", "--out", str(tmp_path / "r"), "--seeds", "0"]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "--seeds" in line and "from 1 to 1000" in line
    assert not (tmp_path / "r").exists()


# --- what the seed varies ----------------------------------------------------------


def test_each_cell_runs_once_per_seed_and_each_sweep_point_once() -> None:
    todo = points(quick=False, seeds=3)
    labs = [s for kind, s in todo if kind == "lab"]
    assert len(labs) == 12 * 3
    assert [s.run.seed for s in labs[:4]] == [1, 2, 3, 1]
    assert labs[1].source == "lab[static,none,cached,seed=2]"
    assert len([s for kind, s in todo if kind == "messages"]) == len(sweep_scenarios())


def test_seeds_give_different_runs_of_one_cell() -> None:
    cell = [s for s in lab_scenarios(2) if s.source.startswith("lab[static,per-host,cached,")]
    one, two = (run_scenario(s) for s in cell)
    # The peers the seed draws, and when each sends relative to the migration.
    assert [c.client for c in one.connections] != [c.client for c in two.connections]
    assert [c.downtime_ns for c in one.connections] != [c.downtime_ns for c in two.connections]
    # The migration itself does not depend on the seed.
    assert one.migrations[0].vm_downtime_ns == two.migrations[0].vm_downtime_ns


def test_message_counts_do_not_depend_on_the_seed() -> None:
    for scenario in sweep_scenarios()[:1] + sweep_scenarios()[-8:-7]:
        rows = [
            summarize_messages(run_scenario(replace(scenario, run=replace(scenario.run, seed=s)),
                                            traffic=False))
            for s in (1, 2)
        ]  # fmt: skip
        assert rows[0] == rows[1], scenario.source


def test_a_lab_run_carries_its_seed_peers_and_pause() -> None:
    scenario = lab_scenarios(2)[1]  # static, none, cached, seed 2: peers never back
    result = run_point(("lab", scenario))
    assert result.row["seed"] == 2
    assert result.row["peer_downtime_us"] == [None, None, None]
    assert result.pause_us is not None
    paused, resumed = result.pause_us
    assert resumed - paused == pytest.approx(result.row["vm_downtime_us"])
    assert 0 < paused < resumed < result.done_us


# --- the command -------------------------------------------------------------------


@pytest.mark.slow
def test_reproduce_with_two_seeds_prints_the_columns_and_writes_every_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reproduce", "--out", str(tmp_path), "--quick", "--seeds", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    head = out[1]
    for title in ("back", "peer downtime ms", "last peer ms", "VM pause ms", "VM RDMA down ms"):
        assert title in head
    rows = out[3:15]
    # Without signalling no peer comes back within the run: with cached paths they
    # keep the old LID; with per-query paths the VM's DREQ (dreq_on_detach) makes them
    # re-query at once, while the SA still resolves the old LID, and their REQs then
    # wait out the CM's retries (16 x 6.144 s) there.
    for line in rows[:2]:
        assert line.split()[:2] == ["static", "none"]
        assert line.split()[3:6] == ["0/6", "never", "never"], line
    for line in rows[2:]:
        assert line.split()[3] == "6/6", line
        assert " 109 " in line  # the VM's pause, about 108.6 ms
    assert "over 2 seeds" in out[15] and "50.0%" in out[15]
    data = json.loads((tmp_path / "results.json").read_text())
    assert len(data["downtime"]) == 12
    assert len(data["downtime_runs"]) == 24
    assert [r["seed"] for r in data["downtime_runs"][:4]] == [1, 2, 1, 2]
    assert all(r["seeds"] == [1, 2] and r["peers"] == 6 for r in data["downtime"])
    assert len(data["timelines"]) == 12  # every configuration is plotted
    assert set(data["pauses_us"]) == set(data["migration_done_us"]) == set(data["timelines"])
    with (tmp_path / "downtime_runs.csv").open() as stream:
        assert len(list(csv.DictReader(stream))) == 24
    with (tmp_path / "downtime.csv").open() as stream:
        cells = list(csv.DictReader(stream))
    assert len(cells) == 12 and "peer_downtime_ms.median" in cells[0]
    for name in ("timeline.png", "recovery.png"):
        assert (tmp_path / name).stat().st_size > 0

"""`ibmig reproduce`'s sweep in time, not only in counts: per event the notification
makespan, the SA's busy time and largest queue and the Reports resent, in the
messages table, its CSV/JSON and the makespan plot (issue 10, item 6)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from ibmig.experiments.report import messages_table, write_report
from ibmig.experiments.reproduction import points, run_point

COSTS = ("notification_makespan_ms", "sa_busy_ms_per_event", "sa_max_queue",
         "reports_resent_per_event")  # fmt: skip


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    """The `--quick` sweep: n = 8, 32 with m = 4 and n = 64 with m = 1."""
    out = [run_point(p).row for p in points(quick=True, seeds=1) if p[0] == "messages"]
    return sorted(out, key=lambda r: (r["strategy"], r["n"], r["m"]))


def _at(rows: list[dict[str, Any]], strategy: str, n: int, m: int) -> dict[str, Any]:
    (row,) = [r for r in rows if (r["strategy"], r["n"], r["m"]) == (strategy, n, m)]
    return row


def test_every_sweep_point_carries_what_its_event_cost(rows: list[dict[str, Any]]) -> None:
    assert [(r["strategy"], r["n"], r["m"]) for r in rows] == [
        ("per-host", 8, 4), ("per-host", 32, 4), ("per-host", 64, 1),
        ("per-vm", 8, 4), ("per-vm", 32, 4), ("per-vm", 64, 1),
    ]  # fmt: skip
    for r in rows:
        assert set(COSTS) <= set(r)
        # The counts are as before.
        expected = r["n"] if r["strategy"] == "per-host" else r["n"] * r["m"]
        assert r["reports_per_event"] == expected


def test_at_the_largest_n_per_vm_takes_m_times_longer_than_per_host(
    rows: list[dict[str, Any]],
) -> None:
    per_vm, per_host = _at(rows, "per-vm", 32, 4), _at(rows, "per-host", 32, 4)
    # The SA emits the Reports one service time (sa_ns 11.5 us, plus handling each
    # ReportResp) after the other: 128 Reports take 2.967 ms to the last ReportResp,
    # 32 take 0.7475 ms, about m = 4 times less.
    assert per_vm["notification_makespan_ms"] == pytest.approx(2.967, abs=1e-9)
    assert per_host["notification_makespan_ms"] == pytest.approx(0.7475, abs=1e-9)
    assert per_vm["notification_makespan_ms"] > 3.9 * per_host["notification_makespan_ms"]
    # Per-VM's SA is busy a little past the last ReportResp: the migrated VM's own
    # stale subscription (its old LID) gets its Report resent 3 times.
    assert per_vm["sa_busy_ms_per_event"] == pytest.approx(3.013, abs=1e-9)
    assert per_host["sa_busy_ms_per_event"] == pytest.approx(0.7475, abs=1e-9)
    assert (per_vm["reports_resent_per_event"], per_host["reports_resent_per_event"]) == (3, 0)
    # The queue is the event's own burst, the Reports and one MAD more: not the
    # set-up's subscriptions waiting before the alias moved (per-host showed 158,
    # n·(m+1) - 2, when the window took in the sample at the move).
    assert (per_vm["sa_max_queue"], per_host["sa_max_queue"]) == (129, 33)


def test_the_queue_follows_n_m_per_vm_and_n_per_host(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        reports = r["n"] * r["m"] if r["strategy"] == "per-vm" else r["n"]
        assert r["sa_max_queue"] == reports + 1, r


def test_the_table_shows_the_costs_after_the_unchanged_counts(
    rows: list[dict[str, Any]],
) -> None:
    head, rule, *lines = messages_table(rows)
    assert head.split()[:6] == ["strategy", "n", "m", "n*m", "Reports/event", "fabric"]
    assert head.endswith("makespan ms SA busy ms SA queue resent")
    assert len(rule) == len(head)
    assert lines[1].split() == ["per-host", "32", "4", "128", "32", "72", "0",
                                "0.748", "0.748", "33", "0"]  # fmt: skip
    assert lines[4].split() == ["per-vm", "32", "4", "128", "128", "268", "0",
                                "2.967", "3.013", "129", "3"]  # fmt: skip
    # Rows without the costs (`ibmig run`) keep the counts-only table.
    counts = [{k: v for k, v in r.items() if k not in COSTS} for r in rows]
    plain = messages_table(counts)[0]
    assert plain.endswith("intra-host fwd/event") and "makespan" not in plain


def test_the_report_has_the_costs_and_the_makespan_plot(
    rows: list[dict[str, Any]], tmp_path: Path
) -> None:
    target = write_report(
        tmp_path, title="t", intro="i", downtime=[], messages=rows, timelines={}, window_us=1.0
    )
    page = target.read_text()
    assert "<img src='makespan.png'" in page
    assert "<td>2.967</td><td>3.013</td><td>129</td><td>3</td>" in page
    assert (tmp_path / "makespan.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with (tmp_path / "messages.csv").open() as stream:
        table = list(csv.DictReader(stream))
    assert set(COSTS) <= set(table[0])
    assert [r["sa_max_queue"] for r in table] == ["9", "33", "65", "33", "129", "65"]
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["messages"] == rows


def test_no_costs_no_makespan_plot(rows: list[dict[str, Any]], tmp_path: Path) -> None:
    counts = [{k: v for k, v in r.items() if k not in COSTS} for r in rows]
    write_report(
        tmp_path, title="t", intro="i", downtime=[], messages=counts, timelines={}, window_us=1.0
    )
    assert not (tmp_path / "makespan.png").exists()
    assert (tmp_path / "messages.png").exists()

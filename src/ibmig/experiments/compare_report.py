"""The tables and the report of `ibmig compare` (`ibmig.experiments.compare`)."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ibmig.experiments.report import _fmt, format_interval, format_median, write_csv

if TYPE_CHECKING:
    from ibmig.experiments.compare import Comparison

Row = dict[str, Any]

LAB_COLUMNS = (
    ("mechanism", "<"), ("placement", "<"), ("h_p", ">"), ("back", ">"),
    ("peer downtime ms", "<"), ("last peer ms", "<"), ("VM pause ms", ">"),
    ("Reports", ">"), ("resent", ">"), ("SMPs", ">"), ("LFT SMPs", ">"), ("PathRec", ">"),
    ("CM", ">"), ("SA busy ms", "<"), ("notify ms", "<"), ("SA queue", ">"),
)  # fmt: skip

SWEEP_COLUMNS = (
    ("mechanism", "<"), ("n", ">"), ("m", ">"), ("Reports", ">"), ("SMPs", ">"),
    ("LFT SMPs", ">"), ("full re-route", ">"), ("PathRec", ">"), ("CM", ">"), ("MADs", ">"),
    ("SA busy ms", ">"), ("notify ms", ">"), ("SA queue", ">"),
)  # fmt: skip


def format_makespan(stat: Row) -> str:
    """A notification makespan over seeds: "-" when no run had a Report acknowledged
    (no notice sent: none, vSwitch), else as `format_interval`."""
    if all(stat[k] is None for k in ("median", "low", "high")):
        return "-"
    return format_interval(stat)


def _us_as_ms(value: float | None) -> str:
    """One run's time in ms to the us, "-" for None (nothing to measure)."""
    return "-" if value is None else f"{value / 1e3:,.3f}"


def _table(columns: Sequence[tuple[str, str]], cells: Sequence[Sequence[str]]) -> list[str]:
    widths = [
        max([len(title)] + [len(c[i]) for c in cells]) for i, (title, _) in enumerate(columns)
    ]

    def joined(values: Sequence[str]) -> str:
        return " ".join(
            f"{v:{a}{w}}" for v, (_, a), w in zip(values, columns, widths, strict=True)
        ).rstrip()

    head = joined([title for title, _ in columns])
    return [head, "-" * len(head), *(joined(c) for c in cells)]


def lab_cells(rows: Sequence[Row]) -> list[list[str]]:
    return [
        [
            r["mechanism"], r["placement"], _fmt(r["peer_hosts"]),
            f"{r['connected_after']}/{r['peers']}",
            format_interval(r["peer_downtime_ms"]), format_interval(r["last_peer_downtime_ms"]),
            format_median(r["vm_pause_ms"]), _fmt(r["reports"]), _fmt(r["report_resends"]),
            _fmt(r["smps"]),
            _fmt(r["lft_smps"]), _fmt(r["path_queries"]), _fmt(r["cm_mads"]),
            format_interval(r["sa_busy_ms"]), format_makespan(r["notification_makespan_ms"]),
            _fmt(r["sa_max_queue"]),
        ]
        for r in rows
    ]  # fmt: skip


def sweep_cells(rows: Sequence[Row]) -> list[list[str]]:
    return [
        [
            r["mechanism"], _fmt(r["n"]), _fmt(r["m"]), _fmt(r["reports"]), _fmt(r["smps"]),
            _fmt(r["lft_smps"]), _fmt(r["full_reroute_smps"]), _fmt(r["path_queries"]),
            _fmt(r["cm_mads"]), _fmt(r["fabric_mads"]), _us_as_ms(r["sa_busy_us"]),
            _us_as_ms(r["notification_makespan_us"]), _fmt(r["sa_max_queue"]),
        ]
        for r in rows
    ]  # fmt: skip


def lab_table(rows: Sequence[Row]) -> list[str]:
    """The lab cells: peers' hosts (h_p, the median run's), connections back over all
    runs, peer and last-peer downtime as median [interval], the VM's pause, the
    median run's management messages after set-up, the SA's busy time and the
    notification makespan as median [interval] ("-": no Report), and the median
    run's longest SA queue."""
    return _table(LAB_COLUMNS, lab_cells(rows))


def sweep_table(rows: Sequence[Row]) -> list[str]:
    """The sweep points: management messages per migration event, the SA's busy
    time, the notification makespan ("-": no Report) and the longest SA queue."""
    return _table(SWEEP_COLUMNS, sweep_cells(rows))


def plot_compare(path: Path, lab: Sequence[Row], sweep: Sequence[Row]) -> None:
    """Four panels: Reports per event, all management MADs per event, and the
    notification makespan with the SA's busy time against n (the sweep at its
    commonest m), and the lab's Reports and PathRecord queries per mechanism under
    each placement."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mechanisms = list(dict.fromkeys(r["mechanism"] for r in (*lab, *sweep)))
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    (reports, mads), (times, bars) = axes
    if sweep:
        counts: dict[int, int] = {}
        for r in sweep:
            counts[r["m"]] = counts.get(r["m"], 0) + 1
        m_fixed = max(counts, key=lambda m: (counts[m], m))
        markers = "osv^D<>px*"
        for i, name in enumerate(mechanisms):
            pts = sorted(
                (
                    r["n"], r["reports"], r["fabric_mads"],
                    r["notification_makespan_us"], r["sa_busy_us"],
                )
                for r in sweep
                if r["mechanism"] == name and r["m"] == m_fixed
            )  # fmt: skip
            if not pts:
                continue
            ns = [p[0] for p in pts]
            marker = markers[i % len(markers)]
            style = "--" if "path" in name else "-"  # drawn over their plain variant
            if any(p[1] for p in pts):
                reports.plot(ns, [p[1] for p in pts], style, marker=marker, label=name)
            mads.plot(ns, [p[2] for p in pts], style, marker=marker, label=name)
            timed = [(p[0], p[3] / 1e3, p[4] / 1e3) for p in pts if p[3] is not None]
            if timed:
                (line,) = times.plot(
                    [t[0] for t in timed], [t[1] for t in timed], style, marker=marker,
                    label=name,
                )  # fmt: skip
                times.plot(
                    [t[0] for t in timed], [t[2] for t in timed], ":", color=line.get_color()
                )
        for ax, ylabel in (
            (reports, "Reports per event"),
            (mads, "management MADs per event"),
            (times, "ms per event"),
        ):
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel(f"n (physical servers), m = {m_fixed}")
            ax.set_ylabel(ylabel)
            ax.grid(True, which="both", linewidth=0.3)
            ax.legend(fontsize=7)
        reports.set_title("Reports (3 peers drawn anywhere)", fontsize=9)
        mads.set_title("SMPs (incl. LFT updates), SA and CM MADs", fontsize=9)
        times.set_title(
            "notification makespan (lines), SA busy (dotted); no Report: not drawn",
            fontsize=9,
        )
    placements = list(dict.fromkeys(r["placement"] for r in lab))
    names = [n for n in mechanisms if any(r["mechanism"] == n for r in lab)]
    width = 0.8 / max(1, 2 * len(placements))
    for j, placement in enumerate(placements):
        by_name = {r["mechanism"]: r for r in lab if r["placement"] == placement}
        for k, (key, label) in enumerate((("reports", "Reports"), ("path_queries", "PathRec"))):
            offset = (2 * j + k) * width - 0.4 + width / 2
            bars.bar(
                [i + offset for i in range(len(names))],
                [by_name[n][key] if n in by_name else 0 for n in names],
                width,
                label=f"{label}, peers {placement}",
            )
    bars.set_xticks(range(len(names)))
    bars.set_xticklabels(names, rotation=35, ha="right", fontsize=7)
    bars.set_ylabel("messages per migration (lab, median run)")
    bars.set_title("lab testbed: n = 6, m = 2", fontsize=9)
    bars.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _html_rows(columns: Sequence[tuple[str, str]], cells: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(title)}</th>" for title, _ in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in cells
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def write_compare_report(out: Path, result: Comparison) -> Path:
    """report.html, compare.png, lab.csv, lab_runs.csv, sweep.csv, results.json."""
    from ibmig.experiments.compare import MECHANISMS, READING
    from ibmig.experiments.compare import __doc__ as about

    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "lab.csv", result.lab)
    write_csv(out / "lab_runs.csv", result.lab_runs)
    write_csv(out / "sweep.csv", result.sweep)
    (out / "results.json").write_text(
        json.dumps(
            {"lab": result.lab, "lab_runs": result.lab_runs, "sweep": result.sweep}, indent=1
        )
        + "\n"
    )
    plot_compare(out / "compare.png", result.lab, result.sweep)
    mechanisms = "".join(
        f"<li><b>{html.escape(m.name)}</b>: {html.escape(m.summary)}</li>" for m in MECHANISMS
    )
    parts = [
        "<!doctype html><meta charset='utf-8'>",
        "<title>ibmig compare</title>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
        "padding:3px 7px;text-align:right}</style>",
        "<h1>Migration signalling mechanisms side by side</h1>",
        f"<ul>{mechanisms}</ul>",
        "<h2>Lab testbed</h2>",
        f"<p>{result.seeds} seeds per cell; downtime in ms as median [interval].</p>",
        _html_rows(LAB_COLUMNS, lab_cells(result.lab)),
        "<h2>Sweep of n and m (seed 1)</h2>",
        _html_rows(SWEEP_COLUMNS, sweep_cells(result.sweep)),
        "<img src='compare.png' width='100%'>",
        f"<p>{html.escape(READING)}</p>",
        f"<pre>{html.escape(about or '')}</pre>",
        "<p>Raw data: <a href='results.json'>results.json</a>, <a href='lab.csv'>lab.csv</a>, "
        "<a href='lab_runs.csv'>lab_runs.csv</a>, <a href='sweep.csv'>sweep.csv</a>.</p>",
    ]
    target = out / "report.html"
    target.write_text("\n".join(parts) + "\n")
    return target

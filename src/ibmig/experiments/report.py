"""Tables, plots and files for `ibmig reproduce` (and `ibmig run --out`).

Inputs are plain JSON-ready rows, so the report can be rebuilt from `results.json`:

- downtime rows: one per (assignment, strategy, path_cache) run of the lab testbed;
- message rows: one per (strategy, n, m) point of the message-count sweep;
- timelines: per run label, per peer connection, the delivery times (us, relative to
  the migration's start) of the migrated VM's messages from that peer.

Plots are PNG files written with matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import csv
import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Row = dict[str, Any]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if value is None:
        return "-"
    return str(value)


def downtime_table(rows: Sequence[Row]) -> list[str]:
    head = (
        f"{'assignment':<10} {'strategy':<9} {'paths':<6} {'peers':>5} {'back':>4} "
        f"{'downtime median us':>19} {'max us':>12} {'VM RDMA down us':>15} "
        f"{'PathRec':>7} {'CM':>4} {'MADs':>5}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        sd = r["service_downtime_us"]
        lines.append(
            f"{r['assignment']:<10} {r['strategy']:<9} {r['path_cache']:<6} {r['peers']:>5} "
            f"{r['connected_after']:>4} {_fmt(sd['median']):>19} {_fmt(sd['max']):>12} "
            f"{_fmt(r['migration_downtime_us']):>15} {r['path_records']:>7} "
            f"{r['cm_mads']:>4} {r['fabric_mads']:>5}"
        )
    return lines


def messages_table(rows: Sequence[Row]) -> list[str]:
    head = (
        f"{'strategy':<9} {'n':>5} {'m':>4} {'n*m':>7} {'Reports/event':>14} "
        f"{'fabric MADs/event':>18} {'intra-host fwd/event':>21}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['strategy']:<9} {r['n']:>5} {r['m']:>4} {r['n'] * r['m']:>7,} "
            f"{r['reports_per_event']:>14,} {r['fabric_mads_per_event']:>18,} "
            f"{r['intra_host_forwards_per_event']:>21,}"
        )
    return lines


def write_csv(path: Path, rows: Sequence[Row]) -> None:
    """Nested tables become dotted columns (`service_downtime_us.median`), lists
    JSON; the columns are every row's, in order of first appearance."""
    if not rows:
        path.write_text("")
        return
    flat = [_flatten(r) for r in rows]
    keys = list(dict.fromkeys(k for r in flat for k in r))
    with path.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=keys)
        writer.writeheader()
        writer.writerows(flat)


def _flatten(row: Row, prefix: str = "") -> Row:
    out: Row = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        elif isinstance(value, list):
            out[name] = json.dumps(value)
        else:
            out[name] = value
    return out


def plot_timelines(
    path: Path,
    timelines: dict[str, list[list[float]]],
    window_us: float,
    migration_done_us: dict[str, float] | None = None,
) -> None:
    """One panel per run: a tick per delivered message, one row per peer connection;
    the migration (start to the VM's vport being up) is shaded."""
    migration_done_us = migration_done_us or {}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(timelines)
    fig, axes = plt.subplots(
        len(labels), 1, figsize=(9, 1.4 + 1.1 * len(labels)), sharex=True, squeeze=False
    )
    for ax, label in zip(axes[:, 0], labels, strict=True):
        for row, times in enumerate(timelines[label]):
            shown = [t for t in times if -window_us * 0.2 <= t <= window_us]
            ax.plot(shown, [row] * len(shown), "|", markersize=6)
        ax.axvline(0, color="grey", linewidth=0.8, linestyle="--")
        done = migration_done_us.get(label)
        if done is not None:
            ax.axvspan(0, done, color="grey", alpha=0.12, linewidth=0)
        ax.set_ylabel("peer", fontsize=8)
        ax.set_title(label, fontsize=9, loc="left")
        ax.set_ylim(-0.8, max(1, len(timelines[label])) - 0.2)
    axes[-1, 0].set_xlabel("time since the migration started (us)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_messages(path: Path, rows: Sequence[Row]) -> None:
    """Reports per event against n (and against m) on log-log axes, with n*m and n lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_n, by_m) = plt.subplots(1, 2, figsize=(11, 4.2))

    # The n sweep is the m value seen with the most n values, and vice versa.
    def commonest(key: str, other: str) -> int:
        seen: dict[int, set[int]] = {}
        for r in rows:
            seen.setdefault(r[key], set()).add(r[other])
        return max(seen, key=lambda k: (len(seen[k]), k))

    m_fixed = commonest("m", "n")
    n_fixed = commonest("n", "m")
    ns = sorted({r["n"] for r in rows if r["m"] == m_fixed})
    ms = sorted({r["m"] for r in rows if r["n"] == n_fixed})
    for strategy, marker in (("per-vm", "o"), ("per-host", "s")):
        pts = sorted((r["n"], r["reports_per_event"]) for r in rows
                     if r["strategy"] == strategy and r["m"] == m_fixed)  # fmt: skip
        if pts:
            by_n.plot(*zip(*pts, strict=True), marker=marker, label=f"{strategy} (m={m_fixed})")
        pts = sorted((r["m"], r["reports_per_event"]) for r in rows
                     if r["strategy"] == strategy and r["n"] == n_fixed)  # fmt: skip
        if pts:
            by_m.plot(*zip(*pts, strict=True), marker=marker, label=f"{strategy} (n={n_fixed})")
    by_n.plot(ns, [n * m_fixed for n in ns], "k--", linewidth=0.8, label="n·m")
    by_n.plot(ns, ns, "k:", linewidth=0.8, label="n")
    by_m.plot(ms, [n_fixed * m for m in ms], "k--", linewidth=0.8, label="n·m")
    by_m.plot(ms, [n_fixed] * len(ms), "k:", linewidth=0.8, label="n")
    for ax, xlabel in ((by_n, "n (physical servers)"), (by_m, "m (VMs per server)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("Reports per migration event")
        ax.grid(True, which="both", linewidth=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _html_table(rows: Sequence[Row], columns: Sequence[tuple[str, str]]) -> str:
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title in columns)
    body = []
    for r in rows:
        flat = _flatten(r)
        cells = "".join(f"<td>{html.escape(_fmt(flat.get(key)))}</td>" for key, _ in columns)
        body.append(f"<tr>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


DOWNTIME_COLUMNS = [
    ("assignment", "assignment"),
    ("strategy", "strategy"),
    ("path_cache", "path cache"),
    ("peers", "peers"),
    ("connected_after", "reconnected"),
    ("service_downtime_us.median", "service downtime median (us)"),
    ("service_downtime_us.max", "max (us)"),
    ("reconnect_us.median", "reconnect after resume, median (us)"),
    ("migration_downtime_us", "VM RDMA downtime (us)"),
    ("migration_time_ms", "migration time (ms)"),
    ("fabric_mads", "fabric MADs"),
    ("path_records", "PathRecord queries"),
    ("cm_mads", "CM MADs"),
]
MESSAGE_COLUMNS = [
    ("strategy", "strategy"),
    ("n", "n"),
    ("m", "m"),
    ("reports_per_event", "Reports / event"),
    ("fabric_mads_per_event", "fabric MADs / event"),
    ("intra_host_forwards_per_event", "intra-host forwards / event"),
    ("subscriptions", "InformInfo Sets"),
]


def write_report(
    out: Path,
    *,
    title: str,
    intro: str,
    downtime: Sequence[Row],
    messages: Sequence[Row],
    timelines: dict[str, list[list[float]]],
    window_us: float,
    notes: Sequence[str] = (),
    migration_done_us: dict[str, float] | None = None,
) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "downtime.csv", downtime)
    write_csv(out / "messages.csv", messages)
    (out / "results.json").write_text(
        json.dumps(
            {"downtime": list(downtime), "messages": list(messages), "timelines": timelines},
            indent=1,
        )
        + "\n"
    )
    parts = [
        "<!doctype html><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
        "padding:3px 7px;text-align:right}</style>",
        f"<h1>{html.escape(title)}</h1><p>{html.escape(intro)}</p>",
    ]
    if downtime:
        parts.append("<h2>Service downtime around one migration</h2>")
        parts.append(_html_table(downtime, DOWNTIME_COLUMNS))
    if timelines:
        plot_timelines(out / "timeline.png", timelines, window_us, migration_done_us)
        parts.append("<h3>Per-peer delivery timeline</h3><img src='timeline.png' width='100%'>")
    if messages:
        parts.append("<h2>Management messages per migration event</h2>")
        parts.append(_html_table(messages, MESSAGE_COLUMNS))
        plot_messages(out / "messages.png", messages)
        parts.append("<img src='messages.png' width='100%'>")
    for note in notes:
        parts.append(f"<p>{html.escape(note)}</p>")
    parts.append(
        "<p>Raw data: <a href='results.json'>results.json</a>, "
        "<a href='downtime.csv'>downtime.csv</a>, <a href='messages.csv'>messages.csv</a>.</p>"
    )
    target = out / "report.html"
    target.write_text("\n".join(parts) + "\n")
    return target

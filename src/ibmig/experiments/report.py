"""Tables, plots and files for `ibmig reproduce` (and `ibmig run --out`).

Inputs are plain JSON-ready rows, so the report can be rebuilt from `results.json`:

- downtime rows: one per (assignment, strategy, path_cache) cell of the lab testbed,
  its statistics over seeds (`ibmig.experiments.metrics.summarize_seeds`);
- downtime run rows: one per lab run (cell and seed), `summarize_downtime`'s shape;
- message rows: one per (strategy, n, m) point of the message-count sweep, with what
  the event cost at the SA when the rows carry it (`summarize_event_costs`: the
  table's last columns and the makespan plot);
- timelines: per cell label, per peer connection, the delivery times (us, relative to
  the migration's start) of the migrated VM's messages from that peer, in the cell's
  first seed; with that run's migration end and VM pause (start, end) on the same
  clock (`migration_done_us`, `pauses_us`), the timeline plot's shaded bands.

Plots are PNG files written with matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import csv
import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ibmig.experiments.metrics import (
    last_peer_after_vport_ms,
    median_interval_ranks,
    median_with_interval,
)
from ibmig.experiments.sensitivity import row_cells

Row = dict[str, Any]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if value is None:
        return "-"
    return str(value)


def _decimals(value: float, spread: float) -> int:
    """Decimals that show what the runs resolve: three significant digits of the value,
    or two of the spread between the interval's bounds when that is finer; whole ms at
    least (a spread-free value is exact in the model), 1 us at most."""
    digits = 2 - math.floor(math.log10(abs(value))) if value else 0
    if spread > 0:
        digits = max(digits, 1 - math.floor(math.log10(spread)))
    return min(3, max(0, digits))


def _spread(stat: Row) -> float:
    low, high = stat.get("low"), stat.get("high")
    return high - low if low is not None and high is not None else 0.0


def _ms(value: float | None, decimals: int) -> str:
    return "never" if value is None else f"{value:,.{decimals}f}"


def format_median(stat: Row) -> str:
    """A `median_with_interval` figure's median alone, at the precision its runs show."""
    median = stat["median"]
    if median is None:
        return "never"
    return _ms(median, _decimals(median, _spread(stat)))


def format_interval(stat: Row) -> str:
    """`median [low, high]` of a `median_with_interval` figure, in one precision (the
    value alone for a single run)."""
    anchor = next((v for v in (stat["median"], stat["low"], stat["high"]) if v is not None), None)
    if anchor is None:
        return "never"
    decimals = _decimals(anchor, _spread(stat))
    if stat.get("runs") == 1:  # one run has no interval to show
        return _ms(stat["median"], decimals)
    low, high = _ms(stat["low"], decimals), _ms(stat["high"], decimals)
    return f"{_ms(stat['median'], decimals)} [{low}, {high}]"


SEEDS_TABLE_COLUMNS = (
    "back", "peer downtime ms", "last peer ms", "after vport up ms", "VM pause ms",
    "VM RDMA down ms",
)  # fmt: skip


def seeds_table(rows: Sequence[Row]) -> list[str]:
    """The lab cells over their seeds (`summarize_seeds` rows): connections back over
    all runs; peer downtime (the median peer of each run), the last peer's downtime
    and how long after the VM's vport was up the last peer was back, as median
    [interval] in ms; the VM's own pause and RDMA outage; MAD counts."""
    cells = [
        (
            f"{r['connected_after']}/{r['peers']}",
            format_interval(r["peer_downtime_ms"]),
            format_interval(r["last_peer_downtime_ms"]),
            format_interval(r["last_peer_after_vport_ms"]),
            format_median(r["vm_pause_ms"]),
            format_median(r["vm_rdma_down_ms"]),
        )
        for r in rows
    ]
    widths = [
        max([len(title)] + [len(c[i]) for c in cells])
        for i, title in enumerate(SEEDS_TABLE_COLUMNS)
    ]
    # The counts and the single figures right-aligned, the intervals left-aligned.
    align = (">", "<", "<", "<", ">", ">")

    def joined(values: Sequence[str]) -> str:
        return " ".join(f"{v:{a}{w}}" for v, a, w in zip(values, align, widths, strict=True))

    head = (
        f"{'assignment':<10} {'strategy':<9} {'paths':<6} {joined(SEEDS_TABLE_COLUMNS)} "
        f"{'PathRec':>7} {'CM':>4} {'MADs':>5}"
    )
    lines = [head, "-" * len(head)]
    for r, c in zip(rows, cells, strict=True):
        lines.append(
            f"{r['assignment']:<10} {r['strategy']:<9} {r['path_cache']:<6} {joined(c)} "
            f"{_fmt(r['path_records']):>7} {_fmt(r['cm_mads']):>4} {_fmt(r['fabric_mads']):>5}"
        )
    return lines


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


COST_COLUMNS = (
    ("notification_makespan_ms", "makespan ms"),
    ("sa_busy_ms_per_event", "SA busy ms"),
    ("sa_max_queue", "SA queue"),
    ("reports_resent_per_event", "resent"),
)
"""What an event cost at the SA (`summarize_event_costs`), after the counts when the
rows carry it (`ibmig reproduce`'s sweep)."""


def _cost(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key.endswith("_ms") or key.endswith("_ms_per_event"):
        return f"{value:,.3f}"
    return f"{value:,}"


_COST_KEYS = frozenset(key for key, _ in COST_COLUMNS)


def messages_table(rows: Sequence[Row]) -> list[str]:
    costs = [c for c in COST_COLUMNS if rows and all(c[0] in r for r in rows)]
    widths = [max([len(title)] + [len(_cost(key, r[key])) for r in rows]) for key, title in costs]
    head = (
        f"{'strategy':<9} {'n':>5} {'m':>4} {'n*m':>7} {'Reports/event':>14} "
        f"{'fabric MADs/event':>18} {'intra-host fwd/event':>21}"
    )
    head += "".join(f" {title:>{w}}" for (_, title), w in zip(costs, widths, strict=True))
    lines = [head, "-" * len(head)]
    for r in rows:
        line = (
            f"{r['strategy']:<9} {r['n']:>5} {r['m']:>4} {r['n'] * r['m']:>7,} "
            f"{r['reports_per_event']:>14,} {r['fabric_mads_per_event']:>18,} "
            f"{r['intra_host_forwards_per_event']:>21,}"
        )
        line += "".join(
            f" {_cost(key, r[key]):>{w}}" for (key, _), w in zip(costs, widths, strict=True)
        )
        lines.append(line)
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
    *,
    pauses_us: dict[str, tuple[float, float]] | None = None,
    captions: dict[str, str] | None = None,
) -> None:
    """Small multiples, one panel per run label in a grid of two columns (labels in
    pairs: a cell's cached and query runs side by side), in seconds: a tick per
    delivered message, one row per peer connection. Shaded: the migration, from its
    start to the VM's vport up at the destination (the VM has no RDMA); darker: the
    VM paused (stop-and-copy and resume). `captions`: a line per panel (what the
    seeds say), so that differences below the axis' resolution stay readable."""
    migration_done_us = migration_done_us or {}
    pauses_us = pauses_us or {}
    captions = captions or {}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.artist import Artist
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    labels = list(timelines)
    columns = 2 if len(labels) > 1 else 1
    rows = -(-len(labels) // columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(6.2 * columns, 1.2 + 1.85 * rows),
        sharex=True, sharey=True, squeeze=False,
    )  # fmt: skip
    window_s = window_us / 1e6
    for ax, label in zip(axes.flat, labels, strict=False):
        for row, times in enumerate(timelines[label]):
            shown = [t / 1e6 for t in times if -window_us * 0.2 <= t <= window_us]
            ax.plot(shown, [row] * len(shown), "|", markersize=5, color=f"C{row % 10}")
        done = migration_done_us.get(label)
        if done is not None and done >= 0:
            ax.axvspan(0, done / 1e6, color="tab:orange", alpha=0.18, linewidth=0)
        pause = pauses_us.get(label)
        if pause is not None:
            ax.axvspan(pause[0] / 1e6, pause[1] / 1e6, color="tab:red", alpha=0.55, linewidth=0)
        ax.axvline(0, color="grey", linewidth=0.8, linestyle="--")
        caption = captions.get(label)
        ax.set_title(f"{label}\n{caption}" if caption else label, fontsize=8, loc="left")
        ax.set_ylim(-0.8, max(1, len(timelines[label])) - 0.2)
        ax.set_xlim(-window_s * 0.2, window_s)
        ax.tick_params(labelsize=8)
    for ax in axes.flat[len(labels) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("peer", fontsize=8)
    for ax in axes[-1, :]:
        ax.set_xlabel("time since the migration started (s)", fontsize=8)
    handles: list[Artist] = [
        Patch(color="tab:orange", alpha=0.18,
              label="migration: VF detached at the source to vport up at the destination"),
        Patch(color="tab:red", alpha=0.55, label="VM paused: stop-and-copy and resume"),
        Line2D([], [], color="C0", marker="|", linestyle="none",
               label="a message from that peer delivered at the VM"),
    ]  # fmt: skip
    fig.legend(handles=handles, loc="upper center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / (1.2 + 1.85 * rows)))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_added_downtime(path: Path, runs: Sequence[Row]) -> None:
    """What the peers' recovery adds to the VM's own RDMA outage, per configuration:
    each seed's last peer back minus that run's VF-detach-to-vport-up time (ms, log
    axis), its median with the interval by order statistics; runs where a peer never
    came back at the right edge. The timeline's scale hides these milliseconds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    cells: dict[str, list[float | None]] = {}
    for r in runs:
        label = f"{r['assignment']}, {r['strategy']}, {r['path_cache']} paths"
        cells.setdefault(label, []).append(last_peer_after_vport_ms(r))
    labels = list(cells)
    numbers = [v for values in cells.values() for v in values if v is not None and v > 0]
    low = min(numbers, default=1.0) / 1.5
    high = max(numbers, default=10.0) * 1.5
    never_x = high * 1.6
    fig, ax = plt.subplots(figsize=(9, 1.0 + 0.38 * len(labels)))
    for y, label in enumerate(labels):
        values = cells[label]
        xs = [never_x if v is None else max(v, low) for v in values]
        offsets = [((i % 5) - 2) * 0.06 for i in range(len(xs))]
        ax.plot(xs, [y + o for o in offsets], "o", color="tab:blue", alpha=0.45, markersize=4)
        stat = median_with_interval(values)
        lo = never_x if stat["low"] is None else max(stat["low"], low)
        hi = never_x if stat["high"] is None else max(stat["high"], low)
        ax.plot([lo, hi], [y, y], color="black", linewidth=1.6)
        mid = never_x if stat["median"] is None else max(stat["median"], low)
        ax.plot([mid], [y], "|", color="black", markersize=14, markeredgewidth=2)
    ax.axvline(high * 1.25, color="grey", linewidth=0.6, linestyle=":")
    ax.text(never_x, -0.9, "never", ha="center", va="bottom", fontsize=8)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.set_xlim(low, never_x * 1.3)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylim(len(labels) - 0.5, -1.0)
    ax.set_xlabel(
        "last peer back, after the VM's vport is up (ms, log); dotted line: right of it, never",
        fontsize=8,
    )
    k = max((len(v) for v in cells.values()), default=0)
    if k:
        lo_rank, hi_rank, coverage = median_interval_ranks(k)
        ax.set_title(
            f"dots: the {k} seeds; bar: median (tick) and the {lo_rank}..{hi_rank} order "
            f"statistics ({coverage:.1%} interval)",
            fontsize=8, loc="left",
        )  # fmt: skip
    ax.grid(True, axis="x", which="both", linewidth=0.3)
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


def _label_2_and_5(x: float, _: object) -> str:
    """Minor ticks of a log axis: 2 and 5 of each decade labelled, the rest not."""
    if x <= 0:
        return ""
    lead = round(x / 10 ** math.floor(math.log10(x)), 6)
    return f"{x:g}" if lead in (2.0, 5.0) else ""


def plot_makespan(path: Path, rows: Sequence[Row]) -> None:
    """What the Reports cost in time against n (m fixed, the sweep's commonest m), on
    log-log axes, per strategy: the notification makespan (alias move to the last
    ReportResp) and the SA's largest queue. The reference lines are the SA's work per
    Report (per-host's cost per Report at its smallest n, n Reports) times n·m and n,
    the slopes of per-VM's and per-host's Report counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seen: dict[int, set[int]] = {}
    for r in rows:
        seen.setdefault(r["m"], set()).add(r["n"])
    m_fixed = max(seen, key=lambda k: (len(seen[k]), k))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    from matplotlib.ticker import FuncFormatter

    panels = (
        ("notification_makespan_ms", "notification makespan (ms)",
         "alias move to the last ReportResp the SA handled"),
        ("sa_max_queue", "largest SA queue (MADs)", "most MADs waiting at the SA at once"),
    )  # fmt: skip
    for ax, (key, ylabel, title) in zip(axes, panels, strict=True):
        series: dict[str, list[tuple[int, float]]] = {}
        for strategy, marker in (("per-vm", "o"), ("per-host", "s")):
            pts = sorted((r["n"], r[key]) for r in rows
                         if r["strategy"] == strategy and r["m"] == m_fixed
                         and r.get(key) is not None)  # fmt: skip
            series[strategy] = pts
            if pts:
                ax.plot(*zip(*pts, strict=True), marker=marker, label=f"{strategy} (m={m_fixed})")
        anchor = series.get("per-host") or series.get("per-vm") or []
        if anchor and anchor[0][1] > 0:
            ns = sorted({n for pts in series.values() for n, _ in pts})
            per_report = anchor[0][1] / anchor[0][0]
            ax.plot(ns, [per_report * n * m_fixed for n in ns], "k--", linewidth=0.8,
                    label="O(n·m)")  # fmt: skip
            ax.plot(ns, [per_report * n for n in ns], "k:", linewidth=0.8, label="O(n)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("n (physical servers)")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=9, loc="left")
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
            axis.set_minor_formatter(FuncFormatter(_label_2_and_5))
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
        shown = (
            _cost(key, flat.get(key)) if key in _COST_KEYS else _fmt(flat.get(key))
            for key, _ in columns
        )
        cells = "".join(f"<td>{html.escape(v)}</td>" for v in shown)
        body.append(f"<tr>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _seeds_html(rows: Sequence[Row]) -> str:
    """The lab cells over their seeds, as `seeds_table` shows them."""
    head = (
        "assignment", "strategy", "path cache", "back", "peer downtime (ms)",
        "last peer (ms)", "last peer after the VM's vport is up (ms)", "VM pause (ms)",
        "VM RDMA down (ms)", "PathRecord queries", "CM MADs", "fabric MADs",
    )  # fmt: skip
    body = []
    for r in rows:
        cells = (
            r["assignment"], r["strategy"], r["path_cache"],
            f"{r['connected_after']}/{r['peers']}", format_interval(r["peer_downtime_ms"]),
            format_interval(r["last_peer_downtime_ms"]),
            format_interval(r["last_peer_after_vport_ms"]), format_median(r["vm_pause_ms"]),
            format_median(r["vm_rdma_down_ms"]), _fmt(r["path_records"]), _fmt(r["cm_mads"]),
            _fmt(r["fabric_mads"]),
        )  # fmt: skip
        body.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    heads = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    return f"<table><tr>{heads}</tr>{''.join(body)}</table>"


def _sensitivity_html(rows: Sequence[Row]) -> str:
    """The sensitivity rows as `ibmig.experiments.sensitivity.sensitivity_table`
    shows them, a flipped finding in bold."""
    head = (
        "knob", "value", "default", "basis", "why these values",
        "back (none / per-VM / per-host)", "Reports / event (per-VM / per-host)",
        "VM RDMA down (ms)", "last peer after vport, worst seed (ms, per-VM / per-host)",
        "F3 threshold (ms)", "makespan (ms, per-VM / per-host)", "ratio", "F1", "F2", "F3",
        "F4",
    )  # fmt: skip

    body = []
    for r in rows:
        shown_cells = row_cells(r, " / ")
        cells = [
            r["knob"], r["value"], r["default"], r["basis"], r["why"], shown_cells["back"],
            shown_cells["reports"], shown_cells["rdma_down"], shown_cells["after"],
            f"{r['threshold_ms']:g}", shown_cells["makespan"], shown_cells["ratio"],
        ]  # fmt: skip
        shown = "".join(f"<td>{html.escape(str(c))}</td>" for c in cells)
        for finding in ("F1", "F2", "F3", "F4"):
            verdict = r[finding]
            text = "-" if verdict is None else ("holds" if verdict else "fails")
            if finding in r["flipped"]:
                text = f"<b>{text} (flipped)</b>"
            shown += f"<td>{text}</td>"
        body.append(f"<tr>{shown}</tr>")
    heads = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    return f"<table><tr>{heads}</tr>{''.join(body)}</table>"


def _caption(row: Row) -> str:
    """What a cell's seeds say, above its timeline panel: the milliseconds the
    seconds axis cannot show."""
    last = row["last_peer_downtime_ms"]
    after = row["last_peer_after_vport_ms"]
    seeds = len(row["seeds"])
    back = f"back {row['connected_after']}/{row['peers']} ({seeds} seed{'s' * (seeds != 1)})"
    if last["median"] is None:
        return f"{back}; last peer (median): never\n"
    return (
        f"{back}; last peer down {format_interval(last)} ms\n"
        f"last peer back {format_interval(after)} ms after the VM's vport is up"
    )


MESSAGE_COLUMNS = [
    ("strategy", "strategy"),
    ("n", "n"),
    ("m", "m"),
    ("reports_per_event", "Reports / event"),
    ("fabric_mads_per_event", "fabric MADs / event"),
    ("intra_host_forwards_per_event", "intra-host forwards / event"),
    ("subscriptions", "InformInfo Sets"),
]

MESSAGE_COST_COLUMNS = [
    ("notification_makespan_ms", "notification makespan (ms)"),
    ("sa_busy_ms_per_event", "SA busy / event (ms)"),
    ("sa_max_queue", "largest SA queue"),
    ("reports_resent_per_event", "Reports resent / event"),
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
    downtime_runs: Sequence[Row] = (),
    pauses_us: dict[str, tuple[float, float]] | None = None,
    sensitivity: Sequence[Row] = (),
    sensitivity_note: str = "",
) -> Path:
    """`downtime`: the lab cells over their seeds (`summarize_seeds` rows);
    `downtime_runs`: every lab run's row; `sensitivity`: the sensitivity section's
    rows (`ibmig.experiments.sensitivity.summarize`), written to sensitivity.json and
    sensitivity.csv and shown as a table when given."""
    out.mkdir(parents=True, exist_ok=True)
    if sensitivity:
        (out / "sensitivity.json").write_text(json.dumps(list(sensitivity), indent=1) + "\n")
        write_csv(out / "sensitivity.csv", sensitivity)
    write_csv(out / "downtime.csv", downtime)
    write_csv(out / "downtime_runs.csv", downtime_runs)
    write_csv(out / "messages.csv", messages)
    (out / "results.json").write_text(
        json.dumps(
            {
                "downtime": list(downtime),
                "downtime_runs": list(downtime_runs),
                "messages": list(messages),
                "timelines": timelines,
                "migration_done_us": migration_done_us or {},
                "pauses_us": pauses_us or {},
            },
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
        parts.append(_seeds_html(downtime))
    if downtime_runs:
        plot_added_downtime(out / "recovery.png", downtime_runs)
        parts.append(
            "<h3>Recovery after the VM's vport is up</h3><img src='recovery.png' width='100%'>"
        )
    if timelines:
        captions = {
            f"{r['assignment']}, {r['strategy']}, {r['path_cache']} paths": _caption(r)
            for r in downtime
        }
        plot_timelines(
            out / "timeline.png", timelines, window_us, migration_done_us,
            pauses_us=pauses_us, captions=captions,
        )  # fmt: skip
        parts.append(
            "<h3>Per-peer delivery timeline (each configuration's first seed)</h3>"
            "<img src='timeline.png' width='100%'>"
        )
    if messages:
        parts.append("<h2>Management messages per migration event</h2>")
        costs = [c for c in MESSAGE_COST_COLUMNS if all(c[0] in r for r in messages)]
        parts.append(_html_table(messages, MESSAGE_COLUMNS + costs))
        plot_messages(out / "messages.png", messages)
        parts.append("<img src='messages.png' width='100%'>")
        if costs:
            plot_makespan(out / "makespan.png", messages)
            parts.append(
                "<h3>What the Reports cost in time: notification makespan and the SA's "
                "largest queue against n</h3><img src='makespan.png' width='100%'>"
            )
    if sensitivity:
        parts.append("<h2>Sensitivity: which findings depend on which number</h2>")
        parts.append(_sensitivity_html(sensitivity))
        parts.append(f"<p>{html.escape(sensitivity_note)}</p>")
    for note in notes:
        parts.append(f"<p>{html.escape(note)}</p>")
    if sensitivity:
        parts.append(
            "<p>Sensitivity: <a href='sensitivity.json'>sensitivity.json</a>, "
            "<a href='sensitivity.csv'>sensitivity.csv</a>.</p>"
        )
    parts.append(
        "<p>Raw data: <a href='results.json'>results.json</a>, "
        "<a href='downtime.csv'>downtime.csv</a> (per configuration), "
        "<a href='downtime_runs.csv'>downtime_runs.csv</a> (per seed), "
        "<a href='messages.csv'>messages.csv</a>.</p>"
    )
    target = out / "report.html"
    target.write_text("\n".join(parts) + "\n")
    return target

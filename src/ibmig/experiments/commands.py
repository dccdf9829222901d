"""`ibmig run`, `ibmig reproduce` and `ibmig sweep`."""

from __future__ import annotations

import csv
import itertools
import json
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from ibmig.errors import ConfigError
from ibmig.experiments.progress import Progress
from ibmig.experiments.report import downtime_table, messages_table, write_report
from ibmig.experiments.runner import (
    SA_CLASS,
    RunResult,
    run_scenario,
    summarize_downtime,
)
from ibmig.experiments.scenario import Scenario, load_scenario, scenario_from_dict
from ibmig.sim.subnet import TraceWriter
from ibmig.wire.capture import CaptureWriter

# --- one scenario ------------------------------------------------------------------


def summarize_messages(result: RunResult) -> dict[str, Any]:
    """Management messages of the migration event(s), per event."""
    events = max(1, len(result.migrations))
    fabric = sum(result.mads.values())
    return {
        "strategy": result.scenario.signalling.strategy,
        "n": result.n,
        "m": result.m,
        "reports_per_event": result.path_change_reports // events,
        "report_resends_per_event": result.path_change_resends // events,
        "fabric_mads_per_event": fabric // events,
        "intra_host_forwards_per_event": result.intra_host.get("dom0_to_guest", 0) // events,
        "subscriptions": result.subscriptions,
        "path_change_events": result.path_change_events,
        "sa_mads_per_event": result.count(SA_CLASS) // events,
    }


def run_command(
    path: str,
    *,
    seed: int | None,
    capture: str | None,
    trace: str | None,
    as_json: bool,
    out: IO[str],
) -> int:
    scenario = load_scenario(path)
    if seed is not None:
        scenario = replace(scenario, run=replace(scenario.run, seed=seed))
    streams: list[IO[Any]] = []
    try:
        capture_writer = None
        trace_writer = None
        if capture:
            binary = _open(capture, "wb")
            streams.append(binary)
            capture_writer = CaptureWriter(binary)  # type: ignore[arg-type]
        if trace:
            text = _open(trace, "w")
            streams.append(text)
            trace_writer = TraceWriter(text)
        with Progress("simulating", unit="events", stream=sys.stderr) as progress:
            result = run_scenario(
                scenario, capture=capture_writer, trace=trace_writer, progress=progress.update
            )
    finally:
        for stream in streams:
            stream.close()
    downtime = summarize_downtime(result)
    messages = summarize_messages(result)
    if as_json:
        print(json.dumps({"downtime": [downtime], "messages": [messages],
                          "migrations": [_migration_json(m) for m in result.migrations]},
                         indent=1), file=out)  # fmt: skip
        return 0
    s = scenario
    print(
        f"{path}: {result.n} hosts x {result.m} VMs, {s.workload.peers} peers, "
        f"{s.signalling.assignment} assignment, {s.signalling.strategy} signalling, "
        f"{s.workload.path_cache} paths, seed {s.run.seed}",
        file=out,
    )
    for line in downtime_table([downtime]):
        print(line, file=out)
    print(file=out)
    for line in messages_table([messages]):
        print(line, file=out)
    for m in result.migrations:
        print(f"\nmigration of {m.vm}: {m.src} -> {m.dst}", file=out)
        for phase, start, end in m.phases:
            took = "-" if end is None else f"{(end - start) / 1e6:,.3f} ms"
            print(f"  {phase:<15} at {start / 1e6:12,.3f} ms  {took}", file=out)
    per_conn = ", ".join(
        f"{c.client}: {'broken' if c.downtime_ns is None else f'{c.downtime_ns / 1e3:,.0f} us'}"
        for c in result.connections
    )
    print(f"\npeer connections: {per_conn or 'none'}", file=out)
    drops = ", ".join(f"{k} {v:,}" for k, v in sorted(result.drops.items())) or "none"
    print(
        f"drops: {drops}; data packets {result.data_packets:,}; "
        f"{result.events:,} events in {result.wall_s:.2f} s",
        file=out,
    )
    return 0


def _migration_json(m: Any) -> dict[str, Any]:
    return {
        "vm": m.vm,
        "src": m.src,
        "dst": m.dst,
        "total_ms": None if m.total_ns is None else m.total_ns / 1e6,
        "vm_downtime_us": None if m.vm_downtime_ns is None else m.vm_downtime_ns / 1e3,
        "rc_downtime_us": None if m.rc_downtime_ns is None else m.rc_downtime_ns / 1e3,
        "phases": [{"phase": p, "start_ns": s, "end_ns": e} for p, s, e in m.phases],
    }


def _open(path: str, mode: str) -> IO[Any]:
    try:
        return open(path, mode)
    except OSError as exc:
        raise ConfigError(exc.strerror or str(exc), path) from None


# --- reproduce ---------------------------------------------------------------------

# The lab testbed: a 2-level fat tree (ft2-36: 4 leaves, 3 spines, 36 hosts), six
# hypervisors with two VMs each, one VM migrated while three RC clients on other
# hosts keep it busy. VM memory is smaller than MigrationTiming's default so that a
# migration takes seconds of simulated time, not tens.
LAB: dict[str, Any] = {
    "topology": {"file": "ft2-36"},
    "hosts": {"n": 6, "m": 2, "vfs": 4},
    "workload": {"peers": 3, "interval_us": 2000, "message_bytes": 64},
    "migrations": [{"vm": 0, "at_ms": 50}],
    "run": {"duration_ms": 12000, "seed": 1},
    "timing": {"migration": {"memory_bytes": 256 * 1024 * 1024}},
}
# Message-count sweeps: a fat tree large enough for 648 hypervisors plus the SM's
# node; no workload traffic (it does not change the count of management messages).
SWEEP_TOPOLOGY = {
    "generator": "fat_tree_2level",
    "leaves": 37,
    "hosts_per_leaf": 18,
    "spines": 18,
    "switch_ports": 40,
}
SWEEP_N = (8, 32, 128, 648)
SWEEP_N_M = 4
SWEEP_M = (1, 4, 16, 32)
SWEEP_M_N = 64


NOTES = (
    "Service downtime: for each peer connection of the migrated VM, the gap between the "
    "last message delivered before the migration started and the first one after. "
    "'VM RDMA downtime' is the migration's own cost: from the VF's detach at the source to "
    "its vport coming up at the destination (Xen-style: VF hot-unplug, pre-copy, "
    "stop-and-copy, resume, VF hot-plug, driver re-initialisation, alias GUID set).",
    "Static assignment without signalling: peers keep the cached LID of the old port and "
    "their connections stay broken; with 'query' paths they ask the SA again after RC "
    "retry exhaustion and come back late. With per-VM or per-host signalling the SA's "
    "path-change notice (trap 69) makes peers flush, re-resolve and reconnect as soon as "
    "the VM is reachable. Dynamic assignment gives the VM a new GID; peers recover through "
    "the gratuitous ARP, a PathRecord query and a new connection.",
    "Timing defaults marked ASSUMPTION in ibmig.core.migration.timing, "
    "ibmig.core.guest.config and ibmig.sim.latency are not measurements from the paper.",
)


def lab_scenarios() -> list[Scenario]:
    out = []
    for assignment, strategy, cache in itertools.product(
        ("static", "dynamic"), ("none", "per-vm", "per-host"), ("cached", "query")
    ):
        data = json.loads(json.dumps(LAB))
        data["signalling"] = {"assignment": assignment, "strategy": strategy}
        data["workload"]["path_cache"] = cache
        out.append(scenario_from_dict(data, f"lab[{assignment},{strategy},{cache}]"))
    return out


def sweep_scenarios() -> list[Scenario]:
    points = sorted({(n, SWEEP_N_M) for n in SWEEP_N} | {(SWEEP_M_N, m) for m in SWEEP_M})
    out = []
    for strategy in ("per-vm", "per-host"):
        for n, m in points:
            data = {
                "topology": dict(SWEEP_TOPOLOGY),
                "hosts": {"n": n, "m": m, "vfs": m + 1, "placement": "spread"},
                "workload": {"peers": 0},
                "signalling": {"assignment": "static", "strategy": strategy},
                "migrations": [{"vm": 0, "at_ms": 1}],
                "run": {"duration_ms": 8000, "seed": 1},
                "timing": {"migration": {"memory_bytes": 64 * 1024 * 1024}},
            }
            out.append(scenario_from_dict(data, f"sweep[{strategy},n={n},m={m}]"))
    return out


def _lab_job(scenario: Scenario) -> tuple[dict[str, Any], list[list[float]], float]:
    result = run_scenario(scenario)
    migration = result.migrations[0]
    start = migration.start_ns
    lines = [[(t - start) / 1e3 for t in c.deliveries_ns] for c in result.connections]
    done = None if migration.done_ns is None else (migration.done_ns - start) / 1e3
    return summarize_downtime(result), lines, done if done is not None else -1.0


def _sweep_job(scenario: Scenario) -> tuple[dict[str, Any], float]:
    result = run_scenario(scenario, traffic=False)
    return summarize_messages(result), result.wall_s


def _workers() -> int:
    return max(1, min(len(os.sched_getaffinity(0)), 4))


def reproduce(out_dir: str, *, as_json: bool, out: IO[str], quick: bool = False) -> int:
    started = time.perf_counter()
    labs = lab_scenarios()
    sweeps = sweep_scenarios()
    if quick:  # for tests: the lab runs and the smallest sweep points only
        sweeps = [s for s in sweeps if s.hosts.n * s.hosts.m <= 128]
    downtime: list[dict[str, Any]] = []
    timelines: dict[str, list[list[float]]] = {}
    migration_done: dict[str, float] = {}
    messages: list[dict[str, Any]] = []
    total = len(labs) + len(sweeps)
    with (
        ProcessPoolExecutor(max_workers=_workers()) as pool,
        Progress("reproduce", unit="runs", stream=sys.stderr, total=total) as progress,
    ):
        lab_futures = [pool.submit(_lab_job, s) for s in labs]
        sweep_futures = [pool.submit(_sweep_job, s) for s in sweeps]
        done = 0
        for future in lab_futures:
            row, lines, done_us = future.result()
            downtime.append(row)
            label = f"{row['assignment']}, {row['strategy']}, {row['path_cache']} paths"
            if row["assignment"] == "static" and (
                row["path_cache"] == "cached" or row["strategy"] == "none"
            ):
                timelines[label] = lines
                migration_done[label] = done_us
            if (row["assignment"], row["strategy"], row["path_cache"]) == (
                "dynamic",
                "per-host",
                "cached",
            ):
                timelines[label] = lines
                migration_done[label] = done_us
            done += 1
            progress.update(done)
        for sweep_future in sweep_futures:
            messages.append(sweep_future.result()[0])
            done += 1
            progress.update(done)
    messages.sort(key=lambda r: (r["strategy"], r["n"], r["m"]))
    wall = time.perf_counter() - started
    target = write_report(
        Path(out_dir),
        title="ibmig: signalling for VM migration with SR-IOV over InfiniBand",
        intro=(
            "Reproduces Guay et al., ICPADS 2012: service downtime of a migrated VM's peer "
            "connections under each signalling strategy, and management messages per "
            f"migration event against n and m. {total} simulations in {wall:.0f} s."
        ),
        downtime=downtime,
        messages=messages,
        timelines=timelines,
        window_us=14_000_000,
        migration_done_us=migration_done,
        notes=NOTES,
    )
    if as_json:
        print(json.dumps({"downtime": downtime, "messages": messages}, indent=1), file=out)
        return 0
    print("Service downtime of the migrated VM's peer connections (lab testbed)", file=out)
    for line in downtime_table(downtime):
        print(line, file=out)
    print("\nManagement messages per migration event", file=out)
    for line in messages_table(messages):
        print(line, file=out)
    print(f"\nreport: {target}  ({total} simulations, {wall:.1f} s)", file=out)
    return 0


# --- sweep -------------------------------------------------------------------------


def parse_params(texts: Sequence[str]) -> list[tuple[str, list[Any]]]:
    params: list[tuple[str, list[Any]]] = []
    for text in texts:
        name, sep, values = text.partition("=")
        if not sep or not values:
            raise ConfigError(f"expected NAME=V1,V2,..., got {text!r}", "--param")
        parsed: list[Any] = []
        for value in values.split(","):
            try:
                parsed.append(json.loads(value))
            except json.JSONDecodeError:
                parsed.append(value)
        params.append((name, parsed))
    return params


_SHORT = {
    "n": ("hosts", "n"),
    "m": ("hosts", "m"),
    "p": ("workload", "peers"),
    "peers": ("workload", "peers"),
    "strategy": ("signalling", "strategy"),
    "assignment": ("signalling", "assignment"),
    "path_cache": ("workload", "path_cache"),
    "seed": ("run", "seed"),
}


def _set(data: dict[str, Any], name: str, value: Any) -> None:
    path = _SHORT.get(name) or tuple(name.split("."))
    node = data
    for key in path[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{key} is not a table", f"--param {name}")
    node[path[-1]] = value


def _sweep_point(data: dict[str, Any], source: str) -> dict[str, Any]:
    scenario = scenario_from_dict(data, source)
    result = run_scenario(scenario, traffic=scenario.workload.peers > 0)
    row = summarize_downtime(result)
    row.update(summarize_messages(result))
    return row


def sweep_command(path: str, params: Sequence[str], out_csv: str, out: IO[str]) -> int:
    import tomllib

    try:
        base = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(exc.strerror or str(exc), path) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path) from None
    grid = parse_params(params)
    points: list[tuple[dict[str, Any], str, dict[str, Any]]] = []
    for combo in itertools.product(*(values for _, values in grid)):
        data = json.loads(json.dumps(base))
        labels = {}
        for (name, _), value in zip(grid, combo, strict=True):
            _set(data, name, value)
            labels[name] = value
        source = f"{path}[{','.join(f'{k}={v}' for k, v in labels.items())}]"
        scenario_from_dict(data, source)  # validate every point before running any
        points.append((data, source, labels))
    rows: list[dict[str, Any]] = []
    with (
        ProcessPoolExecutor(max_workers=_workers()) as pool,
        Progress("sweep", unit="runs", stream=sys.stderr, total=len(points)) as progress,
    ):
        futures = [pool.submit(_sweep_point, data, source) for data, source, _ in points]
        for i, ((_, _, labels), future) in enumerate(zip(points, futures, strict=True)):
            row = {**{f"param.{k}": v for k, v in labels.items()}, **future.result()}
            rows.append(row)
            progress.update(i + 1)
    flat = [_flat(r) for r in rows]
    keys = list(dict.fromkeys(k for r in flat for k in r))
    with open(out_csv, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=keys)
        writer.writeheader()
        writer.writerows(flat)
    print(f"{len(rows)} runs written to {out_csv}", file=out)
    return 0


def _flat(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out

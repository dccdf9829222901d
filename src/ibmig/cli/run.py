"""`ibmig run SCENARIO`: one migration scenario, its summary tables and timeline."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from contextlib import ExitStack
from dataclasses import replace
from typing import IO, TYPE_CHECKING, Any

from ibmig.cli.common import Subparsers, check_output_file, open_binary, open_text
from ibmig.cli.progress import Progress

if TYPE_CHECKING:
    from ibmig.experiments.metrics import (
        ConnectionResult,
        MigrationEventMetrics,
        MigrationResult,
    )


def add_parser(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "run",
        help="run one migration scenario (TOML) and print a summary",
        description="Run one scenario file: subnet, hosts, VMs, workload, migrations.",
    )
    parser.add_argument("scenario", help="scenario TOML file")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--capture", metavar="F", help="write every packet to an ERF pcap")
    parser.add_argument("--trace", metavar="F", help="write a JSON Lines event trace")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    return run_command(
        args.scenario, seed=args.seed, capture=args.capture, trace=args.trace,
        as_json=args.json, out=sys.stdout,
    )  # fmt: skip


def run_command(
    path: str,
    *,
    seed: int | None,
    capture: str | None,
    trace: str | None,
    as_json: bool,
    out: IO[str],
) -> int:
    # Imported here: the simulator is half a second of imports `ibmig decode` needs not.
    from ibmig.experiments.metrics import summarize_downtime, summarize_messages
    from ibmig.experiments.report import downtime_table, messages_table
    from ibmig.experiments.runner import run_scenario
    from ibmig.experiments.scenario import check_seed, load_scenario
    from ibmig.sim.subnet import TraceWriter
    from ibmig.wire.capture import CaptureWriter

    if seed is not None:
        check_seed(seed, "--seed")
    if capture:
        check_output_file(capture, "--capture")
    if trace:
        check_output_file(trace, "--trace")
    scenario = load_scenario(path)
    if seed is not None:
        scenario = replace(scenario, run=replace(scenario.run, seed=seed))
    with ExitStack() as files:
        capture_writer = (
            CaptureWriter(files.enter_context(open_binary(capture))) if capture else None
        )
        trace_writer = TraceWriter(files.enter_context(open_text(trace))) if trace else None
        with Progress("simulating", unit="events", stream=sys.stderr) as progress:
            result = run_scenario(
                scenario, capture=capture_writer, trace=trace_writer, progress=progress.update
            )
    downtime = summarize_downtime(result)
    messages = summarize_messages(result)
    beyond, cut_off = result.unreached
    if as_json:
        document: dict[str, object] = {
            "downtime": [downtime],
            "messages": [messages],
            "migrations": [migration_json(m) for m in result.migrations],
            "events": [dataclasses.asdict(e) for e in result.event_metrics],
            "contention": {
                "notification_makespan_ns": result.notification_makespan_ns,
                "recovery_makespan_ns": result.recovery_makespan_ns,
                "sa_busy_ns": result.sa_busy_ns,
                "sa_max_queue": result.sa_max_queue,
                "reports_resent": result.reports_resent,
            },
        }
        if beyond or cut_off:
            document["unreached"] = {"beyond_hop_limit": beyond, "cut_off": cut_off}
        print(json.dumps(document, indent=1), file=out)
        return 0
    s = scenario
    print(
        f"{path}: {result.n} hosts x {result.m} VMs, {s.workload.peers} peers, "
        f"{s.signalling.assignment.value} assignment, {s.signalling.strategy.name} signalling, "
        f"{s.workload.path_cache} paths, seed {s.run.seed}",
        file=out,
    )
    for line in downtime_table([downtime]):
        print(line, file=out)
    print(file=out)
    for line in messages_table([messages]):
        print(line, file=out)
    for m, e in zip(result.migrations, result.event_metrics, strict=True):
        print(f"\nmigration of {m.vm}: {m.src} -> {m.dst}: {m.outcome}", file=out)
        for phase, start, end in m.phases:
            took = "-" if end is None else f"{(end - start) / 1e6:,.3f} ms"
            print(f"  {phase:<15} at {start / 1e6:12,.3f} ms  {took}", file=out)
        print(f"  {event_line(e)}", file=out)
    unfinished = {m.vm for m in result.migrations if m.done_ns is None}

    def peer(c: ConnectionResult) -> str:
        if c.downtime_ns is not None:
            return f"{c.client}: {c.downtime_ns / 1e3:,.0f} us"
        # No delivery after the migration began: broken, unless the migration
        # itself never finished (then nothing could have come back yet).
        if c.server in unfinished:
            return f"{c.client}: no delivery, migration unfinished"
        return f"{c.client}: broken"

    per_conn = ", ".join(peer(c) for c in result.connections)
    print(f"\npeer connections: {per_conn or 'none'}", file=out)
    for nodes, why in ((beyond, "beyond the 63-hop directed-route limit"), (cut_off, "cut off")):
        if nodes:
            names = ", ".join(nodes[:10]) + (", ..." if len(nodes) > 10 else "")
            print(f"not reached by the SM ({why}): {len(nodes)} nodes: {names}", file=out)
    drops = ", ".join(f"{k} {v:,}" for k, v in sorted(result.drops.items())) or "none"
    print(
        f"drops: {drops}; data packets {result.data_packets:,}; "
        f"{result.events:,} events in {result.wall_s:.2f} s",
        file=out,
    )
    return 0


def _ms(ns: int | None, what: str) -> str:
    return f"{what} -" if ns is None else f"{what} {ns / 1e6:,.3f} ms"


def event_line(e: MigrationEventMetrics) -> str:
    """A migration event's figures on one line (`MigrationEventMetrics`)."""
    return (
        f"{_ms(e.notification_makespan_ns, 'notification makespan')}, "
        f"{_ms(e.recovery_makespan_ns, 'recovery makespan')}; "
        f"SA busy {e.sa_busy_ns / 1e6:,.3f} ms, largest SA queue {e.sa_max_queue:,}; "
        f"Reports {e.reports:,} ({e.reports_resent:,} resent), "
        f"PathRecord {e.path_records:,}, CM {e.cm_mads:,}"
    )


def migration_json(m: MigrationResult) -> dict[str, Any]:
    """One migration's figures as `ibmig run --json` prints them."""
    return {
        "vm": m.vm,
        "src": m.src,
        "dst": m.dst,
        "total_ms": None if m.total_ns is None else m.total_ns / 1e6,
        "vm_downtime_us": None if m.vm_downtime_ns is None else m.vm_downtime_ns / 1e3,
        "rc_downtime_us": None if m.rc_downtime_ns is None else m.rc_downtime_ns / 1e3,
        "phases": [{"phase": p, "start_ns": s, "end_ns": e} for p, s, e in m.phases],
        "outcome": m.outcome,
    }

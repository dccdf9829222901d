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
    from ibmig.core.sm.vswitch import VfLidMoved
    from ibmig.experiments.metrics import (
        ConnectionResult,
        MigrationEventMetrics,
        MigrationResult,
    )
    from ibmig.sim.hosting import Failover


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
    from ibmig.experiments.building import build_fabric
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
    # The fabric and its LIDs are checked before any output file is opened: a
    # refused scenario leaves nothing half-written.
    fabric = build_fabric(scenario)
    with ExitStack() as files:
        capture_writer = (
            CaptureWriter(files.enter_context(open_binary(capture))) if capture else None
        )
        trace_writer = TraceWriter(files.enter_context(open_text(trace))) if trace else None
        with Progress("simulating", unit="events", stream=sys.stderr) as progress:
            result = run_scenario(
                scenario,
                capture=capture_writer,
                trace=trace_writer,
                progress=progress.update,
                fabric=fabric,
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
        if result.notice_events:
            document["notice_events"] = [
                {
                    "vguid": f"0x{e.vguid:016x}",
                    "time_ns": e.time_ns,
                    "reports": e.reports,
                    "resends": e.resends,
                    "subscriptions": e.subscriptions,
                    "stale_subscriptions": e.stale_subscriptions,
                }
                for e in result.notice_events
            ]
            document["stale_subscriptions"] = result.stale_subscriptions
        if beyond or cut_off:
            document["unreached"] = {"beyond_hop_limit": beyond, "cut_off": cut_off}
        if result.failover is not None:
            document["failover"] = failover_json(result.failover)
        if result.lid_moves:
            document["vswitch_lid_moves"] = [lid_move_json(move) for move in result.lid_moves]
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
    if result.notice_events:
        # Per event, so that subscriptions left behind by earlier migrations show.
        print("\npath-change events (Reports, resent, subscriptions at the SA):", file=out)
        for n in result.notice_events:
            print(
                f"  0x{n.vguid:016x} at {n.time_ns / 1e6:12,.3f} ms: {n.reports} Reports, "
                f"{n.resends} resent; {n.subscriptions} subscriptions, "
                f"{n.stale_subscriptions} at an old LID",
                file=out,
            )
        print(f"  subscriptions at an old LID at the end: {result.stale_subscriptions}", file=out)
    for move in result.lid_moves:
        swap = f", LID {move.swapped_lid} swapped back" if move.swapped_lid else ""
        sent = (
            "written by the sweep under way"
            if move.deferred
            else f"{move.lft_smps} LinearForwardingTable SMPs on {move.switches_changed} switches"
        )
        print(
            f"vSwitch: LID {move.lid} moved{swap}: {sent} "
            f"(a full re-route: {move.full_reroute_smps:,})",
            file=out,
        )
    unfinished = {m.vm for m in result.migrations if m.done_ns is None}

    def peer(c: ConnectionResult) -> str:
        # A connection the migrated VM is the client of names both ends.
        name = f"{c.client}->{c.server}" if c.vm else c.client
        if c.downtime_ns is not None:
            return f"{name}: {c.downtime_ns / 1e3:,.0f} us"
        # No delivery after the migration began: broken, unless the migration
        # itself never finished (then nothing could have come back yet).
        if c.migrating in unfinished:
            return f"{name}: no delivery, migration unfinished"
        return f"{name}: broken" + (f" ({c.cause})" if c.cause else "")

    per_conn = ", ".join(peer(c) for c in result.connections)
    print(f"\npeer connections: {per_conn or 'none'}", file=out)
    for nodes, why in ((beyond, "beyond the 63-hop directed-route limit"), (cut_off, "cut off")):
        if nodes:
            names = ", ".join(nodes[:10]) + (", ..." if len(nodes) > 10 else "")
            print(f"not reached by the SM ({why}): {len(nodes)} nodes: {names}", file=out)
    if result.failover is not None:
        for line in failover_lines(result.failover):
            print(line, file=out)
    drops = ", ".join(f"{k} {v:,}" for k, v in sorted(result.drops.items())) or "none"
    print(
        f"drops: {drops}; data packets {result.data_packets:,}; "
        f"{result.events:,} events in {result.wall_s:.2f} s",
        file=out,
    )
    return 0


def lid_move_json(move: VfLidMoved) -> dict[str, int | bool]:
    """One vSwitch LID move as `ibmig run --json` prints it."""
    return {
        "lid": move.lid,
        "swapped_lid": move.swapped_lid,
        "time_ns": move.time_ns,
        "switches_changed": move.switches_changed,
        "lft_smps": move.lft_smps,
        "full_reroute_smps": move.full_reroute_smps,
        "deferred_to_sweep": move.deferred,
    }


def _labelled_ms(ns: int | None, what: str) -> str:
    return f"{what} -" if ns is None else f"{what} {ns / 1e6:,.3f} ms"


def event_line(e: MigrationEventMetrics) -> str:
    """A migration event's figures on one line (`MigrationEventMetrics`)."""
    return (
        f"{_labelled_ms(e.notification_makespan_ns, 'notification makespan')}, "
        f"{_labelled_ms(e.recovery_makespan_ns, 'recovery makespan')}; "
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


def _ms(ns: int | None) -> str:
    return "never" if ns is None else f"{ns / 1e6:,.3f} ms"


def failover_lines(f: Failover) -> list[str]:
    """What the master SM's failure cost, for `ibmig run`."""
    handed = f"{f.sa_db_restored} items" if f.sa_db_restored else "nothing"
    return [
        f"SM failover: master on {f.old_master} died at {_ms(f.failed_ns)}; "
        f"standby on {f.new_master} took over after {_ms(_since(f.takeover_ns, f.failed_ns))}",
        f"  without a master {_ms(f.without_master_ns)}, without an SA "
        f"{_ms(f.without_sa_ns)}; takeover sweep {f.takeover_smps:,} SMPs; "
        f"SA database handed over: {handed}",
        f"  ClientReregister reached {f.client_reregisters} hosts, "
        f"{f.reregistration_mads} re-registration MADs; Reports unacknowledged when "
        f"the master died {f.reports_unacknowledged}, re-sent by the new master "
        f"{f.reports_resent}",
    ]


def _since(ns: int | None, start_ns: int) -> int | None:
    return None if ns is None else ns - start_ns


def failover_json(f: Failover) -> dict[str, object]:
    return {
        "old_master": f.old_master,
        "new_master": f.new_master,
        "failed_ns": f.failed_ns,
        "takeover_ns": f.takeover_ns,
        "master_ns": f.master_ns,
        "subnet_up_ns": f.subnet_up_ns,
        "without_master_ns": f.without_master_ns,
        "without_sa_ns": f.without_sa_ns,
        "takeover_smps": f.takeover_smps,
        "sa_db_restored": f.sa_db_restored,
        "client_reregisters": f.client_reregisters,
        "reregistration_mads": f.reregistration_mads,
        "reports_unacknowledged": f.reports_unacknowledged,
        "reports_resent": f.reports_resent,
    }

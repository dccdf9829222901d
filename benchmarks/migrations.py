"""Migrations at data-centre scale: the 11,664-host fat tree with m VMs per host.

For each strategy, in a fresh process: bring the subnet up, place n x m VMs (each
alias GUID registered through the SA, each subscription made), then run K
migrations (one every `--spacing-ms`, no workload traffic: the management messages
are what scales) and report wall and CPU time and events per second for the
migration phase, with the set-up timed apart, and what the migrations cost the SA
with contention on (the default; `--no-contention` for the fixed-delay model): the
notification makespan (alias move to the last ReportResp, the longest of the
events'), the SA's busy time and largest queue, and the Reports resent. The per-VM
strategy is the reference the per-host one is compared with, in the same run; the
last lines give per-VM / per-host ratios. The run lasts until 40 s after the last
migration begins (`--tail-ms`): 100 per-host events 5 ms apart are about 27 s of
SA work at 23 us per Report and ReportResp, and without that tail most migrations
would not reach their alias GUID Set, queued behind the Reports. Per-VM: 30 s
(`--per-vm-tail-ms`). However long the SA's queue grows, a Report is not resent for
waiting in it: its 200 ms timeout counts from when it leaves the SA's port and stops
when its ReportResp reaches that port, as in the kernel MAD layer that OpenSM's
requests go through (`ibmig.core.sa.admin`), so "resent" counts only answers that
came back late (a busy dom0 or link), and the queue is the storm's whole cost. An
event the SA has not finished by then shows no makespan ("-").

The set-up runs without contention and contention is switched on when the
migrations begin: placing 186,608 VMs at once is itself a storm at the SA (every
alias GUID Set and subscription queued behind the others, past dom0's 1 s SA
timeout, so resent), which would make the set-up, not the migrations, the
measurement.

    python benchmarks/migrations.py [--topology ft3-11664] [--m 16] [--migrations 100]
        [--strategies per-host,per-vm,none] [--per-vm-migrations 3] [--no-contention]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Any


def measure(
    topology: str,
    m: int,
    migrations: int,
    strategy: str,
    spacing_ms: float,
    contention: bool = True,
    tail_ms: float = 4000.0,
) -> dict[str, Any]:
    """One strategy's run in this process (module docstring)."""
    from ibmig.experiments.runner import run_scenario
    from ibmig.experiments.scenario import scenario_from_dict
    from ibmig.fabric import preset

    fabric = preset(topology) if not topology.endswith(".net") else None
    n = (fabric.num_cas - 1) if fabric is not None else 0
    vms = n * m
    step = max(1, vms // max(1, migrations))
    data = {
        "topology": {"file": topology},
        "hosts": {"n": n, "m": m, "vfs": m + 2, "placement": "packed"},
        "workload": {"peers": 0},
        "signalling": {"assignment": "static", "strategy": strategy},
        "migrations": [
            {"vm": (i * step) % vms, "at_ms": 1 + i * spacing_ms} for i in range(migrations)
        ],
        "run": {"duration_ms": 1 + migrations * spacing_ms + tail_ms, "seed": 1},
        "timing": {"migration": {"memory_bytes": 16 * 1024 * 1024}},
        "latency": {"contention": False},
    }
    scenario = scenario_from_dict(data, f"bench[{strategy}]")
    marks: dict[str, float] = {}
    events_at: dict[str, int] = {}

    def on_stage(stage: str, sim: Any) -> None:
        if stage == "migrations":
            sim.contention = contention  # from here on (module docstring)
            marks["migrations"] = time.perf_counter()
            marks["migrations_cpu"] = time.process_time()
            events_at["migrations"] = sim.kernel.events_run

    started = time.perf_counter()
    result = run_scenario(scenario, traffic=False, on_stage=on_stage)
    ended = time.perf_counter()
    ended_cpu = time.process_time()
    migration_events = result.events - events_at.get("migrations", 0)
    migration_wall = ended - marks.get("migrations", ended)
    done = sum(1 for mig in result.migrations if mig.done_ns is not None)
    return {
        "strategy": strategy,
        "n": n,
        "m": m,
        "vms": vms,
        "migrations": migrations,
        "completed": done,
        "setup_s": marks.get("migrations", ended) - started,
        "migrations_s": migration_wall,
        "migrations_cpu_s": ended_cpu - marks.get("migrations_cpu", ended_cpu),
        "events": migration_events,
        "events_per_s": migration_events / migration_wall if migration_wall else 0.0,
        "reports": result.path_change_reports,
        "resent": result.reports_resent,
        "makespan_ms": (
            None
            if result.notification_makespan_ns is None
            else result.notification_makespan_ns / 1e6
        ),
        "unnotified": sum(
            1 for e in result.event_metrics if e.reports and e.notification_makespan_ns is None
        ),
        "sa_busy_ms": result.sa_busy_ns / 1e6,
        "sa_max_queue": result.sa_max_queue,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topology", default="ft3-11664")
    parser.add_argument("--m", type=int, default=16)
    parser.add_argument("--migrations", type=int, default=100)
    parser.add_argument(
        "--per-vm-migrations",
        type=int,
        default=1,
        help="per-VM signalling sends n*m Reports per migration: run fewer",
    )
    parser.add_argument("--strategies", default="per-host,per-vm,none")
    parser.add_argument("--spacing-ms", type=float, default=5.0)
    parser.add_argument("--tail-ms", type=float, default=40000.0)
    parser.add_argument("--per-vm-tail-ms", type=float, default=30000.0)
    parser.add_argument("--no-contention", action="store_true")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        count = args.per_vm_migrations if args.one == "per-vm" else args.migrations
        tail = args.per_vm_tail_ms if args.one == "per-vm" else args.tail_ms
        figures = measure(
            args.topology, args.m, count, args.one, args.spacing_ms,
            not args.no_contention, tail,
        )  # fmt: skip
        print(json.dumps(figures))
        return
    print(f"contention {'off' if args.no_contention else 'on'}")
    print(
        f"{'strategy':<9} {'hosts':>6} {'VMs':>8} {'migr.':>6} {'set-up s':>9} {'migr. s':>8} "
        f"{'CPU s':>6} {'events':>10} {'events/s':>9} {'Reports':>9} {'resent':>8} "
        f"{'makespan ms':>11} {'SA busy ms':>10} {'SA queue':>8} {'RSS MB':>7}"
    )
    rows: dict[str, dict[str, Any]] = {}
    for strategy in args.strategies.split(","):
        cmd = [sys.executable, __file__, "--one", strategy, "--topology", args.topology,
               "--m", str(args.m), "--migrations", str(args.migrations),
               "--per-vm-migrations", str(args.per_vm_migrations),
               "--spacing-ms", str(args.spacing_ms), "--tail-ms", str(args.tail_ms),
               "--per-vm-tail-ms", str(args.per_vm_tail_ms),
               *(["--no-contention"] if args.no_contention else [])]  # fmt: skip
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        r = rows[strategy] = json.loads(done.stdout.strip().splitlines()[-1])
        makespan = "-" if r["makespan_ms"] is None else f"{r['makespan_ms']:,.1f}"
        if r["unnotified"]:
            makespan += f" ({r['unnotified']} -)"
        print(
            f"{r['strategy']:<9} {r['n']:>6,} {r['vms']:>8,} {r['completed']:>6} "
            f"{r['setup_s']:>9.1f} {r['migrations_s']:>8.1f} {r['migrations_cpu_s']:>6.1f} "
            f"{r['events']:>10,} {r['events_per_s']:>9,.0f} {r['reports']:>9,} "
            f"{r['resent']:>8,} {makespan:>11} {r['sa_busy_ms']:>10,.1f} "
            f"{r['sa_max_queue']:>8,} {r['peak_rss_mb']:>7,.0f}",
            flush=True,
        )
    host, vm = rows.get("per-host"), rows.get("per-vm")
    if host and vm:
        per_event = [
            ("Reports per migration", vm["reports"] / vm["migrations"],
             host["reports"] / host["migrations"]),
            ("SA busy per migration", vm["sa_busy_ms"] / vm["migrations"],
             host["sa_busy_ms"] / host["migrations"]),
            ("migration-phase wall per migration", vm["migrations_s"] / vm["migrations"],
             host["migrations_s"] / host["migrations"]),
        ]  # fmt: skip
        if vm["makespan_ms"] is not None and host["makespan_ms"]:
            per_event.append(
                ("notification makespan (longest)", vm["makespan_ms"], host["makespan_ms"])
            )
        for what, a, b in per_event:
            print(f"per-VM / per-host, {what}: {a / b if b else float('nan'):,.1f}")


if __name__ == "__main__":
    main()

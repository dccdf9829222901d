"""Migrations at data-centre scale: the 11,664-host fat tree with m VMs per host.

For each strategy, in a fresh process: bring the subnet up, place n x m VMs (each
alias GUID registered through the SA, each subscription made), then run K
migrations (one every `--spacing-ms`, no workload traffic: the management messages
are what scales) and report wall time and events per second for the migration
phase, with the set-up timed apart. The per-VM strategy is the reference the
per-host one is compared with, in the same run.

    python benchmarks/migrations.py [--topology ft3-11664] [--m 16] [--migrations 100]
        [--strategies per-host,per-vm,none] [--per-vm-migrations 3]
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
    topology: str, m: int, migrations: int, strategy: str, spacing_ms: float
) -> dict[str, Any]:
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
        "run": {"duration_ms": 1 + migrations * spacing_ms + 4000, "seed": 1},
        "timing": {"migration": {"memory_bytes": 16 * 1024 * 1024}},
    }
    scenario = scenario_from_dict(data, f"bench[{strategy}]")
    marks: dict[str, float] = {}
    events_at: dict[str, int] = {}

    def on_stage(stage: str, sim: Any) -> None:
        if stage == "migrations":
            marks["migrations"] = time.perf_counter()
            events_at["migrations"] = sim.kernel.events_run

    started = time.perf_counter()
    result = run_scenario(scenario, traffic=False, on_stage=on_stage)
    ended = time.perf_counter()
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
        "events": migration_events,
        "events_per_s": migration_events / migration_wall if migration_wall else 0.0,
        "reports": result.path_change_reports,
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
        default=3,
        help="per-VM signalling sends n*m Reports per migration: run fewer",
    )
    parser.add_argument("--strategies", default="per-host,per-vm,none")
    parser.add_argument("--spacing-ms", type=float, default=5.0)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        count = args.per_vm_migrations if args.one == "per-vm" else args.migrations
        print(json.dumps(measure(args.topology, args.m, count, args.one, args.spacing_ms)))
        return
    print(
        f"{'strategy':<9} {'hosts':>6} {'VMs':>8} {'migr.':>6} {'set-up s':>9} {'migr. s':>8} "
        f"{'events':>10} {'events/s':>9} {'Reports':>9} {'RSS MB':>7}"
    )
    for strategy in args.strategies.split(","):
        cmd = [sys.executable, __file__, "--one", strategy, "--topology", args.topology,
               "--m", str(args.m), "--migrations", str(args.migrations),
               "--per-vm-migrations", str(args.per_vm_migrations),
               "--spacing-ms", str(args.spacing_ms)]  # fmt: skip
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"{r['strategy']:<9} {r['n']:>6,} {r['vms']:>8,} {r['completed']:>6} "
            f"{r['setup_s']:>9.1f} {r['migrations_s']:>8.1f} {r['events']:>10,} "
            f"{r['events_per_s']:>9,.0f} {r['reports']:>9,} {r['peak_rss_mb']:>7,.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()

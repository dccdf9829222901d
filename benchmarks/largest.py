"""The largest subnet: the 40,960-host, 64-port three-level fat tree (preset
"ft3-40960": 3,584 switches, 44,544 of the 49,151 unicast LIDs) with m = 16 VMs per
hypervisor and per-host signalling, beside the 11,664-host tree in the same run.

Each topology runs in a fresh process: bring the subnet up (ibmig's SM, every SMP
real), place n x m VMs (every vGUID registered through the SA with a GUIDInfo Set,
every dom0 subscribed), then K migrations one `--spacing-ms` apart (each one's trap 69
Reports sent to every subscribed dom0, walked hop by hop and answered). Reported:
set-up wall time (bring-up and placement apart) and CPU time, wall and CPU time per
migration event and per Report, peak RSS (`ru_maxrss`), and the counts that show the MADs were
real (GUIDInfo Sets the SA answered, Reports sent). Each stage's start is printed on
stderr as it comes.

The set-up runs without contention and contention is switched on when the
migrations begin, as in benchmarks/migrations.py: 40,959 hypervisors placing 655,344
VMs at the same instant are a storm at the SA of their own (every GUIDInfo Set queued
behind the others, past dom0's SA timeout, so resent), which would make the set-up,
not the migrations, the measurement; a real cloud boots its VMs over time.

    python benchmarks/largest.py [--cases ft3-40960,ft3-11664] [--m 16] [--migrations 5]
        [--jobs 1]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Any

SA_CLASS = 0x03
SET = 0x02
GET_RESP = 0x81
ATTR_GUID_INFO_RECORD = 0x0030


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(topology: str, m: int, migrations: int, spacing_ms: float) -> dict[str, Any]:
    from ibmig.experiments.building import check_lid_space, check_vswitch_lid_space
    from ibmig.experiments.runner import run_scenario
    from ibmig.experiments.scenario import scenario_from_dict
    from ibmig.fabric import preset

    started = time.perf_counter()
    fabric = preset(topology)  # built once: the run is handed it (below)
    lids = fabric.num_switches + fabric.num_cas
    n = fabric.num_cas - 1  # the SM has the remaining CA
    vms = n * m
    step = max(1, vms // max(1, migrations))
    data = {
        "topology": {"file": topology},
        "hosts": {"n": n, "m": m, "vfs": m + 2, "placement": "packed"},
        "workload": {"peers": 0},
        "signalling": {"assignment": "static", "strategy": "per-host"},
        "migrations": [
            {"vm": (i * step) % vms, "at_ms": 1 + i * spacing_ms} for i in range(migrations)
        ],
        "run": {"duration_ms": 1 + migrations * spacing_ms + 4000, "seed": 1},
        "timing": {"migration": {"memory_bytes": 16 * 1024 * 1024}},
        "latency": {"contention": False},
    }
    scenario = scenario_from_dict(data, f"largest[{topology}]")
    marks: dict[str, float] = {}
    counts: dict[str, int] = {}

    def on_stage(stage: str, sim: Any) -> None:
        marks[stage] = time.perf_counter()
        marks[f"{stage}.cpu"] = cpu_s()
        print(f"{topology}: {stage} at {marks[stage] - started:.1f} s", file=sys.stderr, flush=True)
        if stage == "migrations":
            sim.contention = True  # from here on (module docstring)
        if stage == "workload":
            counts["guid_info_sets"] = sim.mad_counts[(SA_CLASS, SET, ATTR_GUID_INFO_RECORD)]
            counts["guid_info_answers"] = sim.mad_counts[
                (SA_CLASS, GET_RESP, ATTR_GUID_INFO_RECORD)
            ]

    # What `build_fabric` checks of a fabric it builds; the run takes this one rather
    # than building the preset again (1.5 s on the largest, not part of a set-up).
    check_lid_space(fabric, topology)
    check_vswitch_lid_space(scenario, fabric)
    result = run_scenario(scenario, traffic=False, on_stage=on_stage, fabric=fabric)
    ended = time.perf_counter()
    migrations_s = ended - marks["migrations"]
    migrations_cpu_s = cpu_s() - marks["migrations.cpu"]
    reports = result.path_change_reports
    return {
        "topology": topology,
        "switches": fabric.num_switches,
        "hosts": fabric.num_cas,
        "lids": lids,
        "vms": vms,
        "bringup_s": marks["placement"] - started,
        "placement_s": marks["workload"] - marks["placement"],
        "setup_s": marks["workload"] - started,
        "setup_cpu_s": marks["workload.cpu"],
        "migrations": migrations,
        "completed": sum(1 for mig in result.migrations if mig.done_ns is not None),
        "per_migration_s": migrations_s / migrations,
        "per_migration_cpu_s": migrations_cpu_s / migrations,
        "reports": reports,
        "per_report_us": migrations_s / reports * 1e6 if reports else 0.0,
        "per_report_cpu_us": migrations_cpu_s / reports * 1e6 if reports else 0.0,
        "guid_info_sets": counts["guid_info_sets"],
        "guid_info_answers": counts["guid_info_answers"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cases", default="ft3-40960,ft3-11664")
    parser.add_argument("--m", type=int, default=16)
    parser.add_argument("--migrations", type=int, default=5)
    parser.add_argument(
        "--spacing-ms", type=float, default=1000.0,
        help="one per-host event on the 40,960-host tree is 40,959 Reports and as many "
        "ReportResps at the SA, 0.94 s at sa_ns 11.5 us: spaced less, the events queue "
        "behind each other and the last ones do not finish within the run",
    )  # fmt: skip
    parser.add_argument(
        "--jobs", type=int, default=1,
        help="cases run at once (each in its own process; a loaded machine's wall "
        "times are then no longer comparable, its CPU times still are)",
    )  # fmt: skip
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.m, args.migrations, args.spacing_ms)))
        return
    print(
        f"{'topology':<10} {'switches':>8} {'hosts':>6} {'LIDs':>6} {'VMs':>8} "
        f"{'bring-up s':>10} {'place s':>8} {'set-up s':>8} {'CPU s':>6} "
        f"{'migr.':>5} {'s/migr.':>7} {'CPU s/migr.':>11} {'Reports':>8} {'us/Report':>9} "
        f"{'CPU us/Report':>13} "
        f"{'GUIDInfo Sets':>13} {'RSS MB':>7}"
    )
    cases = args.cases.split(",")
    running: list[subprocess.Popen[str]] = []
    for index, case in enumerate(cases):
        cmd = [sys.executable, __file__, "--one", case, "--m", str(args.m),
               "--migrations", str(args.migrations),
               "--spacing-ms", str(args.spacing_ms)]  # fmt: skip
        running.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True))
        if index + 1 < len(cases) and len(running) >= args.jobs:
            running[-args.jobs].wait()
    for process in running:
        stdout, _ = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"{process.args!r} failed with status {process.returncode}")
        r = json.loads(stdout.strip().splitlines()[-1])
        print(
            f"{r['topology']:<10} {r['switches']:>8,} {r['hosts']:>6,} {r['lids']:>6,} "
            f"{r['vms']:>8,} {r['bringup_s']:>10.1f} {r['placement_s']:>8.1f} "
            f"{r['setup_s']:>8.1f} {r['setup_cpu_s']:>6.0f} "
            f"{r['completed']:>2}/{r['migrations']:<2} {r['per_migration_s']:>7.2f} "
            f"{r['per_migration_cpu_s']:>11.2f} {r['reports']:>8,} {r['per_report_us']:>9.1f} "
            f"{r['per_report_cpu_us']:>13.1f} {r['guid_info_sets']:>13,} "
            f"{r['peak_rss_mb']:>7,.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()

"""`ibmig compare`: every migration signalling mechanism side by side, with a report
(`ibmig.experiments.compare`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import IO

from ibmig.cli.backends import add_backend_arguments, backend_from_args, report_failures
from ibmig.cli.common import Subparsers, check_output_dir
from ibmig.cli.progress import Progress
from ibmig.experiments.sweep import Backend


def add_parser(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "compare",
        help="every signalling mechanism (shared port, targeted, path-carrying, vSwitch) "
        "side by side, with a report",
        description=(
            "Shared-port none/per-vm/per-host/targeted, per-host and targeted with the "
            "path-carrying notice, and vSwitch (prepopulated, dynamic) on the lab testbed "
            "under two peer placements and on the sweep of n and m, same seeds; prints the "
            "tables and writes DIR/report.html with a plot, CSV and JSON."
        ),
    )
    parser.add_argument("--out", default="ibmig-compare", metavar="DIR")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--seeds", type=int, default=None, metavar="K",
        help="runs per lab cell, seeds 1..K (default 5)",
    )  # fmt: skip
    parser.add_argument(
        "--no-sweep", action="store_true", help="the lab testbed only (no sweep of n and m)"
    )
    add_backend_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ibmig.experiments.compare import DEFAULT_SEEDS
    from ibmig.experiments.reproduction import check_seeds

    seeds = check_seeds(DEFAULT_SEEDS if args.seeds is None else args.seeds)
    backend = backend_from_args(args)
    return compare_command(
        args.out, as_json=args.json, out=sys.stdout, seeds=seeds, sweep=not args.no_sweep,
        backend=backend,
    )  # fmt: skip


def compare_command(
    out_dir: str,
    *,
    as_json: bool,
    out: IO[str],
    seeds: int,
    sweep: bool = True,
    backend: Backend | None = None,
) -> int:
    from ibmig.experiments.compare import READING, compare, points
    from ibmig.experiments.compare_report import lab_table, sweep_table
    from ibmig.experiments.reproduction import interval_note
    from ibmig.experiments.sweep import PointsFailed

    check_output_dir(out_dir, "--out")
    todo = points(seeds, sweep)
    with Progress("compare", unit="runs", stream=sys.stderr, total=len(todo)) as progress:
        try:
            result = compare(
                Path(out_dir), seeds=seeds, sweep=sweep, backend=backend, done=progress.update
            )
        except PointsFailed as exc:
            report_failures("compare", [s.source for _, s in todo], exc.failures, sys.stderr)
            return 1
    if as_json:
        print(json.dumps({"lab": result.lab, "sweep": result.sweep}, indent=1), file=out)
        return 0
    print("Lab testbed (ft2-36, n = 6, m = 2): one migration, messages after set-up", file=out)
    for line in lab_table(result.lab):
        print(line, file=out)
    print(f"({interval_note(result.seeds)})", file=out)
    if result.sweep:
        print("\nManagement messages per migration event (sweep of n and m, seed 1)", file=out)
        for line in sweep_table(result.sweep):
            print(line, file=out)
    print(f"\n{READING}", file=out)
    print(
        f"\nreport: {result.report}  ({result.runs} simulations, {result.wall_s:.1f} s)", file=out
    )
    return 0

"""`ibmig reproduce`: the paper's evaluation on a built-in testbed, with a report."""

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
        "reproduce",
        help="reproduce the paper's evaluation on a built-in testbed, with a report",
        description=(
            "Static and dynamic address assignment under each signalling strategy on a "
            "lab testbed, and a sweep of n and m for management messages per migration; "
            "prints the tables and writes DIR/report.html with plots, CSV and JSON."
        ),
    )
    parser.add_argument("--out", default="ibmig-report", metavar="DIR")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--seeds", type=int, default=None, metavar="K",
        help="runs per lab configuration, seeds 1..K (default 10); tables show the median "
        "and an interval by order statistics",
    )  # fmt: skip
    parser.add_argument(
        "--sensitivity-seeds", type=int, default=None, metavar="K",
        help="runs per strategy and knob value in the sensitivity section, seeds 1..K "
        "(default 3; 0 leaves the section out)",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help=argparse.SUPPRESS)
    add_backend_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ibmig.experiments import sensitivity
    from ibmig.experiments.reproduction import DEFAULT_SEEDS, check_seeds

    seeds = check_seeds(DEFAULT_SEEDS if args.seeds is None else args.seeds)
    given = args.sensitivity_seeds
    sensitivity_seeds = sensitivity.check_seeds(
        sensitivity.DEFAULT_SEEDS if given is None else given
    )
    backend = backend_from_args(args)
    return reproduce_command(
        args.out, as_json=args.json, out=sys.stdout, quick=args.quick, backend=backend,
        seeds=seeds, sensitivity_seeds=sensitivity_seeds,
    )  # fmt: skip


def reproduce_command(
    out_dir: str,
    *,
    as_json: bool,
    out: IO[str],
    quick: bool = False,
    backend: Backend | None = None,
    seeds: int | None = None,
    sensitivity_seeds: int | None = None,
) -> int:
    from ibmig.experiments import sensitivity
    from ibmig.experiments.report import messages_table, seeds_table
    from ibmig.experiments.reproduction import DEFAULT_SEEDS, interval_note, points, reproduce
    from ibmig.experiments.sweep import PointsFailed

    seeds = DEFAULT_SEEDS if seeds is None else seeds
    if sensitivity_seeds is None:
        sensitivity_seeds = sensitivity.DEFAULT_SEEDS
    check_output_dir(out_dir, "--out")
    todo = points(quick=quick, seeds=seeds, sensitivity_seeds=sensitivity_seeds)
    with Progress("reproduce", unit="runs", stream=sys.stderr, total=len(todo)) as progress:
        try:
            result = reproduce(
                Path(out_dir), quick=quick, seeds=seeds, backend=backend, done=progress.update,
                sensitivity_seeds=sensitivity_seeds,
            )  # fmt: skip
        except PointsFailed as exc:
            # The report needs every run: none is written, the failed runs are named.
            report_failures("reproduce", [s.source for _, s in todo], exc.failures, sys.stderr)
            return 1
    if as_json:
        data = {
            "downtime": result.downtime,
            "downtime_runs": result.downtime_runs,
            "messages": result.messages,
            "orchestration": result.orchestration,
            "sensitivity": result.sensitivity,
        }
        print(json.dumps(data, indent=1), file=out)
        return 0
    print("Service downtime of the migrated VM's peer connections (lab testbed)", file=out)
    for line in seeds_table(result.downtime):
        print(line, file=out)
    print(f"({interval_note(result.seeds)})", file=out)
    print("\nManagement messages per migration event", file=out)
    for line in messages_table(result.messages):
        print(line, file=out)
    from ibmig.experiments.orchestration import ORCHESTRATION_NOTE, orchestration_table

    print("\nOrchestration: when signalling does not add downtime (lab testbed)", file=out)
    for line in orchestration_table(result.orchestration):
        print(line, file=out)
    print(ORCHESTRATION_NOTE, file=out)
    if result.sensitivity:
        print("\nSensitivity: which findings depend on which number (lab testbed)", file=out)
        for line in sensitivity.sensitivity_table(result.sensitivity):
            print(line, file=out)
        note = sensitivity.sensitivity_note(result.sensitivity, result.sensitivity_cost_n)
        print(note, file=out)
    print(
        f"\nreport: {result.report}  ({result.runs} simulations, {result.wall_s:.1f} s)", file=out
    )
    return 0

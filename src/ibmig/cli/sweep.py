"""`ibmig sweep SCENARIO --param NAME=V1,V2 ...`: a scenario over a grid of
parameters, in parallel, one CSV row per point.

A point that fails does not stop the sweep: the other points run, their rows are
written, each failed point is named on stderr with its parameters and its error, and
the exit status is 1."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import IO, Any, cast

from ibmig.cli.backends import add_backend_arguments, backend_from_args, report_failures
from ibmig.cli.common import Subparsers, check_output_file, file_errors
from ibmig.cli.progress import Progress
from ibmig.errors import ConfigError
from ibmig.experiments.sweep import Backend


def add_parser(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "sweep",
        help="run a scenario over a grid of parameters in parallel, one CSV",
        description="Example: ibmig sweep lab.toml --param n=4,16,64 --param m=1,4,16",
    )
    parser.add_argument("scenario")
    parser.add_argument(
        "--param", action="append", default=[], metavar="NAME=V1,V2",
        help="n, m, p, strategy, assignment, path_cache, seed, or a dotted key",
    )  # fmt: skip
    parser.add_argument("--out", default="sweep.csv", metavar="CSV")
    parser.add_argument(
        "--reuse-set-up", action="store_true",
        help="build each set-up (bring-up and VM placement) once and run every point "
        "that shares it from a fork of it: same rows, less time when the grid varies "
        "only migrations, their timing, peers, faults or the duration",
    )  # fmt: skip
    add_backend_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not args.param:
        raise ConfigError("give at least one --param NAME=V1,V2,...", "sweep")
    backend = backend_from_args(args)
    return sweep_command(
        args.scenario, args.param, args.out, sys.stdout, backend=backend,
        reuse_set_up=args.reuse_set_up,
    )  # fmt: skip


def sweep_command(
    path: str,
    params: list[str],
    out_csv: str,
    out: IO[str],
    *,
    backend: Backend | None = None,
    reuse_set_up: bool = False,
) -> int:
    from ibmig.experiments.grid import grid_points, run_grid
    from ibmig.experiments.report import write_csv
    from ibmig.experiments.sweep import PointFailure, PointsFailed

    check_output_file(out_csv, "--out")
    points = grid_points(path, params)  # every point validated before any runs
    failures: list[PointFailure] = []
    with Progress("sweep", unit="runs", stream=sys.stderr, total=len(points)) as progress:
        try:
            rows = run_grid(
                points, backend=backend, done=progress.update, reuse_set_up=reuse_set_up
            )
        except PointsFailed as exc:
            rows = [cast(dict[str, Any], r) for r in exc.results if r is not None]
            failures = exc.failures
    with file_errors(out_csv):  # checked before the runs, but the disk may have changed
        write_csv(Path(out_csv), rows)
    print(f"{len(rows)} runs written to {out_csv}", file=out)
    if failures:
        names = [",".join(f"{k}={v}" for k, v in p.labels.items()) for p in points]
        report_failures("sweep", names, failures, sys.stderr)
        return 1
    return 0

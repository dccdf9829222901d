"""Where `ibmig sweep` and `ibmig reproduce` run their points: the local process pool
(the default), a running Dask scheduler (`--scheduler ADDRESS`) or a Dask
`LocalCluster` (`--cluster local`); and how both commands report failed points."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import IO

from ibmig.errors import ConfigError, shown
from ibmig.experiments.sweep import Backend, PointFailure

ADDRESS = re.compile(r"([a-z]+://)?(\[[0-9a-fA-F:]+\]|[^\s:/\[\]]+):[0-9]{1,5}")
"""A scheduler address: `[PROTOCOL://]HOST:PORT` (an IPv6 host in brackets)."""


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--scheduler", metavar="ADDRESS",
        help="run the points on the Dask cluster of a running `dask scheduler` "
        "(e.g. tcp://10.0.0.1:8786); needs ibmig[dask]",
    )  # fmt: skip
    group.add_argument(
        "--cluster", choices=["local"],
        help="run the points on a Dask LocalCluster on this machine; needs ibmig[dask]",
    )  # fmt: skip


def backend_from_args(args: argparse.Namespace) -> Backend | None:
    """The backend the arguments ask for; None for the default (local processes).
    Fails here, before any work, when dask is not installed."""
    scheduler: str | None = args.scheduler
    if scheduler is not None:
        scheduler = scheduler.strip()
        if not ADDRESS.fullmatch(scheduler):
            raise ConfigError(
                f"expected the scheduler's address as [tcp://]HOST:PORT, got {shown(scheduler)}",
                "--scheduler",
            )
        from ibmig.experiments.dask_backend import DaskBackend

        return DaskBackend(scheduler)
    if args.cluster == "local":
        from ibmig.experiments.dask_backend import DaskBackend

        return DaskBackend()
    return None


def report_failures(
    command: str, names: Sequence[str], failures: Sequence[PointFailure], err: IO[str]
) -> None:
    """One line per failed point (its parameters, its error), then a summary line
    naming them all. `names[i]` names point i."""
    for failure in failures:
        print(f"ibmig: {command}: point {names[failure.index]} failed: {failure.error}", file=err)
    failed = "; ".join(names[f.index] for f in failures)
    print(f"ibmig: error: {len(failures)} of {len(names)} points failed: {failed}", file=err)

"""Sweeps on Dask: the points of a sweep as tasks on a Dask cluster.

`DaskBackend(scheduler="tcp://host:8786")` connects to a running `dask scheduler`
(its workers started with `dask worker tcp://host:8786`, or by dask-jobqueue on a
SLURM or PBS cluster); `DaskBackend()` starts a `LocalCluster` on this machine for the
duration of one `map`. Workers need the same ibmig installed: the job travels by
reference (module and name), the points by value.

The results are the local pool's: each point is one deterministic simulation, its
result comes back pickled and lands at its index, whatever the order in which the
points finish. Progress counts points as Dask's futures complete (`as_completed`).
dask and distributed are imported here only, when a Dask backend is used.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, TypeVar

from ibmig.errors import ConfigError
from ibmig.experiments.sweep import (
    MAX_LOCAL_WORKERS,
    Done,
    Raised,
    collect,
    describe_error,
    guarded,
)

P = TypeVar("P")
R = TypeVar("R")

INSTALL_HINT = "pip install 'dask[distributed]' (or ibmig[dask])"

CONNECT_TIMEOUT_S = 20
"""How long to try reaching the scheduler before giving up with a clear error."""


def import_distributed(where: str) -> ModuleType:
    """`distributed`, or a one-line `ConfigError` naming what to install."""
    try:
        import distributed
    except ImportError:
        raise ConfigError(f"needs Dask's distributed package: {INSTALL_HINT}", where) from None
    return distributed


class DaskBackend:
    """The points as Dask tasks, on the cluster of `scheduler` (an address such as
    `tcp://10.0.0.1:8786`), or on a `LocalCluster` of `workers` processes when
    `scheduler` is None."""

    def __init__(self, scheduler: str | None = None, *, workers: int | None = None) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.scheduler = scheduler
        self.workers = workers
        self.where = "--scheduler" if scheduler is not None else "--cluster local"
        import_distributed(self.where)  # fail before any work when dask is missing

    def map(self, job: Callable[[P], R], points: Sequence[P], done: Done | None = None) -> list[R]:
        distributed = import_distributed(self.where)
        cluster: Any = None
        try:
            if self.scheduler is None:
                cluster = self._local_cluster(distributed)
            client = self._connect(distributed, cluster)
            try:
                return self._run(distributed, client, job, points, done)
            finally:
                client.close()
        finally:
            if cluster is not None:
                cluster.close()

    def _local_cluster(self, distributed: ModuleType) -> Any:
        import os

        workers = self.workers
        if workers is None:
            workers = max(1, min(len(os.sched_getaffinity(0)), MAX_LOCAL_WORKERS))
        # One single-threaded process per worker: a simulation holds the GIL.
        return distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )

    def _connect(self, distributed: ModuleType, cluster: Any) -> Any:
        address = cluster if cluster is not None else self.scheduler
        try:
            return distributed.Client(
                address, timeout=f"{CONNECT_TIMEOUT_S}s", set_as_default=False
            )
        except (OSError, TimeoutError, ValueError) as exc:
            raise ConfigError(
                f"cannot reach the Dask scheduler at {self.scheduler}: {describe_error(exc)}",
                self.where,
            ) from None

    @staticmethod
    def _run(
        distributed: ModuleType,
        client: Any,
        job: Callable[[P], R],
        points: Sequence[P],
        done: Done | None,
    ) -> list[R]:
        if not points:
            return []
        # Keys of our own: unique (two points may be equal; another client may share
        # the scheduler) and readable on the dashboard.
        run = guarded(job)
        tag = f"ibmig-{getattr(job, '__name__', 'job')}-{uuid.uuid4().hex[:8]}"
        keys = [f"{tag}-{i}" for i in range(len(points))]
        futures = client.map(run, list(points), key=keys, pure=False)
        index = {future.key: i for i, future in enumerate(futures)}
        outcomes: dict[int, R | Raised] = {}
        for finished, future in enumerate(
            distributed.as_completed(futures, loop=client.loop), start=1
        ):
            i = index[future.key]
            try:
                outcomes[i] = future.result()
            except Exception as exc:  # the task itself failed: a worker died, a lost key
                outcomes[i] = Raised(describe_error(exc))
            future.release()
            if done is not None:
                done(finished)
        return collect([outcomes.get(i, Raised("no result")) for i in range(len(points))])

"""Running many independent simulations: the one seam `reproduce` and `sweep` use.

A sweep is a job function and a list of points; a `Backend` runs the job on every
point and returns the results in point order, calling `done(count)` as results come
in so the caller can show progress. The job and the points cross a process (or
machine) boundary, so both must pickle: a module-level function, and points made of
plain data and frozen dataclasses.

`LocalProcesses` runs them in a pool of worker processes on this machine; `InProcess`
runs them one after the other in this process (tests, profiling, debugging). A
distributed backend (Dask, Ray, a batch queue) is one more class with a `map`
method of the same shape: submit every point, gather in order.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Protocol, TypeVar

P = TypeVar("P")
R = TypeVar("R")

Done = Callable[[int], None]
"""Called with the number of points finished so far."""

MAX_LOCAL_WORKERS = 4
"""Workers `LocalProcesses` starts at most by default: a run is memory-heavy."""


class Backend(Protocol):
    """Runs a job over points; results in point order."""

    def map(self, job: Callable[[P], R], points: Sequence[P], done: Done | None = None) -> list[R]:
        """`[job(p) for p in points]`, however computed; `done(k)` after k results.
        An exception raised by a job propagates (the remaining results are lost)."""
        ...


class InProcess:
    """Every point in this process, in order."""

    def map(self, job: Callable[[P], R], points: Sequence[P], done: Done | None = None) -> list[R]:
        results: list[R] = []
        for point in points:
            results.append(job(point))
            if done is not None:
                done(len(results))
        return results


class LocalProcesses:
    """A pool of worker processes on this machine."""

    def __init__(self, workers: int | None = None) -> None:
        if workers is None:
            workers = max(1, min(len(os.sched_getaffinity(0)), MAX_LOCAL_WORKERS))
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = workers

    def map(self, job: Callable[[P], R], points: Sequence[P], done: Done | None = None) -> list[R]:
        results: list[R] = []
        with ProcessPoolExecutor(max_workers=self.workers) as pool:
            futures = [pool.submit(job, point) for point in points]
            # In submission order: the results come back ordered, and progress counts
            # a prefix of the points (a later point finishing first waits its turn).
            for future in futures:
                results.append(future.result())
                if done is not None:
                    done(len(results))
        return results


def default_backend() -> Backend:
    return LocalProcesses()

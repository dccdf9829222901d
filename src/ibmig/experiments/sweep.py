"""Running many independent simulations: the one seam `reproduce` and `sweep` use.

A sweep is a job function and a list of points; a `Backend` runs the job on every
point and returns the results in point order, calling `done(count)` as results come
in so the caller can show progress. The job and the points cross a process (or
machine) boundary, so both must pickle: a module-level function, and points made of
plain data and frozen dataclasses.

`LocalProcesses` runs them in a pool of worker processes on this machine; `InProcess`
runs them one after the other in this process (tests, profiling, debugging);
`ibmig.experiments.dask_backend.DaskBackend` on a Dask cluster. A distributed backend
(Dask, Ray, a batch queue) is one more class with a `map` method of the same shape:
submit every point, gather in order.

A point that fails does not stop the others: every backend runs every point, then
raises `PointsFailed` with the results of the points that finished and, for each
failed point, its index and its error as one line. The job runs wrapped in `guarded`,
so the error line is made where the job failed, the same text whatever the backend.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Protocol, TypeVar

P = TypeVar("P")
R = TypeVar("R")

Done = Callable[[int], None]
"""Called with the number of points finished so far."""

MAX_LOCAL_WORKERS = 4
"""Workers `LocalProcesses` starts at most by default: a run is memory-heavy."""


@dataclass(frozen=True, slots=True)
class PointFailure:
    """A point whose job raised (or whose worker died): its index among the points
    and the error as one line, `Type: message (file.py:line)`."""

    index: int
    error: str


class PointsFailed(Exception):
    """Some points failed; every other point ran. `results[i]` is point i's result,
    None for a failed point; `failures` in point order."""

    def __init__(self, results: list[object], failures: list[PointFailure]) -> None:
        super().__init__(
            f"{len(failures)} of {len(results)} points failed: "
            + "; ".join(f"point {f.index}: {f.error}" for f in failures)
        )
        self.results = results
        self.failures = failures


def describe_error(exc: BaseException) -> str:
    """One line: the exception's type and first line, and where it was raised."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        text += f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})"
    return text


@dataclass(frozen=True, slots=True)
class Raised:
    """What `guarded` returns for a job that raised."""

    error: str


@dataclass(frozen=True, slots=True)
class guarded(Generic[P, R]):  # noqa: N801 (used as a function)
    """`job`, returning `Raised` instead of raising: a failed point comes back as a
    value, so the backend goes on with the others. Pickles when `job` does."""

    job: Callable[[P], R]

    def __call__(self, point: P) -> R | Raised:
        try:
            return self.job(point)
        except Exception as exc:
            return Raised(describe_error(exc))


def collect(outcomes: Sequence[R | Raised]) -> list[R]:
    """The results in point order, or `PointsFailed` if any point failed."""
    failures = [
        PointFailure(i, outcome.error)
        for i, outcome in enumerate(outcomes)
        if isinstance(outcome, Raised)
    ]
    if failures:
        results: list[object] = [None if isinstance(o, Raised) else o for o in outcomes]
        raise PointsFailed(results, failures)
    return [o for o in outcomes if not isinstance(o, Raised)]


class Backend(Protocol):
    """Runs a job over points; results in point order."""

    def map(self, job: Callable[[P], R], points: Sequence[P], done: Done | None = None) -> list[R]:
        """`[job(p) for p in points]`, however computed; `done(k)` after k points
        finished (failed ones included). Every point runs even if some fail; then
        `PointsFailed` carries the others' results and the failed points' errors."""
        ...


class InProcess:
    """Every point in this process, in order."""

    def map(self, job: Callable[[P], R], points: Sequence[P], done: Done | None = None) -> list[R]:
        run = guarded(job)
        outcomes: list[R | Raised] = []
        for point in points:
            outcomes.append(run(point))
            if done is not None:
                done(len(outcomes))
        return collect(outcomes)


class LocalProcesses:
    """A pool of worker processes on this machine."""

    def __init__(self, workers: int | None = None) -> None:
        if workers is None:
            workers = max(1, min(len(os.sched_getaffinity(0)), MAX_LOCAL_WORKERS))
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = workers

    def map(self, job: Callable[[P], R], points: Sequence[P], done: Done | None = None) -> list[R]:
        outcomes: list[R | Raised] = []
        with ProcessPoolExecutor(max_workers=self.workers) as pool:
            run = guarded(job)
            futures = [pool.submit(run, point) for point in points]
            # In submission order: the results come back ordered, and progress counts
            # a prefix of the points (a later point finishing first waits its turn).
            for future in futures:
                try:
                    outcomes.append(future.result())
                except Exception as exc:  # the pool itself failed: a worker died
                    outcomes.append(Raised(describe_error(exc)))
                if done is not None:
                    done(len(outcomes))
        return collect(outcomes)


def default_backend() -> Backend:
    return LocalProcesses()

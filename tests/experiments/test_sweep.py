"""The sweep seam: every backend returns results in point order, counting progress."""

from __future__ import annotations

import pytest

from ibmig.experiments.sweep import Backend, InProcess, LocalProcesses


def _square_after_a_while(x: int) -> int:
    # Later points finish first in a pool: the order must still be the points'.
    import time

    time.sleep(0.01 * (5 - x % 5))
    return x * x


@pytest.mark.parametrize("backend", [InProcess(), LocalProcesses(workers=3)])
def test_results_come_back_in_point_order_with_progress(backend: Backend) -> None:
    done: list[int] = []
    points = list(range(12))
    assert backend.map(_square_after_a_while, points, done.append) == [x * x for x in points]
    assert done == list(range(1, 13))


def _fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("point 3")
    return x


@pytest.mark.parametrize("backend", [InProcess(), LocalProcesses(workers=2)])
def test_a_failing_job_propagates(backend: Backend) -> None:
    with pytest.raises(ValueError, match="point 3"):
        backend.map(_fail_on_three, list(range(6)))


def test_local_processes_refuses_no_workers() -> None:
    with pytest.raises(ValueError):
        LocalProcesses(workers=0)

"""The sweep seam: every backend returns results in point order, counting progress;
a failing point does not stop the others, and is reported with its index and error."""

from __future__ import annotations

import pytest

from ibmig.experiments.sweep import (
    Backend,
    InProcess,
    LocalProcesses,
    PointFailure,
    PointsFailed,
    describe_error,
)


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
def test_a_failing_point_is_reported_and_the_others_complete(backend: Backend) -> None:
    done: list[int] = []
    with pytest.raises(PointsFailed) as caught:
        backend.map(_fail_on_three, list(range(6)), done.append)
    assert caught.value.results == [0, 1, 2, None, 4, 5]
    [failure] = caught.value.failures
    assert failure.index == 3
    assert failure.error.startswith("ValueError: point 3 (test_sweep.py:")
    assert done == list(range(1, 7))  # the failed point counts as finished
    assert "point 3: ValueError: point 3" in str(caught.value)


def test_both_local_backends_report_a_failure_in_the_same_words() -> None:
    errors = []
    for backend in (InProcess(), LocalProcesses(workers=2)):
        with pytest.raises(PointsFailed) as caught:
            backend.map(_fail_on_three, [3, 1, 3])
        errors.append(caught.value.failures)
    assert errors[0] == errors[1]
    assert [f.index for f in errors[0]] == [0, 2]
    assert isinstance(errors[0][0], PointFailure)


def test_describe_error_is_one_line() -> None:
    try:
        raise RuntimeError("first line\nsecond line")
    except RuntimeError as exc:
        text = describe_error(exc)
    assert text.startswith("RuntimeError: first line (test_sweep.py:")
    assert "\n" not in text
    assert describe_error(KeyError()) == "KeyError"


def test_local_processes_refuses_no_workers() -> None:
    with pytest.raises(ValueError):
        LocalProcesses(workers=0)

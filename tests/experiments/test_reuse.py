"""Set-up once, migrate many (issue 14, item 4): a run continued from a shared set-up
gives the fresh run's trace byte for byte and its result; a sweep that shares its
set-ups writes the same rows and builds each set-up once."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ibmig.cli import main
from ibmig.experiments.grid import RUN_POINT_STAGED, GridPoint, grid_points, run_grid
from ibmig.experiments.heap import paused_gc
from ibmig.experiments.metrics import RunResult
from ibmig.experiments.reuse import Staged, group_by_key, map_sharing, run_forked, setup_key
from ibmig.experiments.runner import SetUp, finish, run_scenario, set_up
from ibmig.experiments.scenario import Scenario, scenario_from_dict
from ibmig.experiments.sweep import InProcess, LocalProcesses, PointsFailed, Raised
from ibmig.sim.subnet import TraceWriter

BASE: dict[str, Any] = {
    "topology": {"file": "ft2-36"},
    "hosts": {"n": 6, "m": 2, "vfs": 4},
    "workload": {"peers": 2, "interval_us": 1000},
    "signalling": {"assignment": "static", "strategy": "per-host"},
    "migrations": [{"vm": 0, "at_ms": 1}],
    "run": {"duration_ms": 5000, "seed": 7},
    "timing": {"migration": {"memory_bytes": 8 * 1024 * 1024}},
}


def scenario(**changes: Any) -> Scenario:
    data = json.loads(json.dumps(BASE))
    data.update(changes)
    return scenario_from_dict(data, "reuse")


# Same set-up, different use: other migrations, timing, peers and duration.
SAME_SET_UP = [
    scenario(),
    scenario(
        migrations=[{"vm": 3, "at_ms": 2}, {"vm": 8, "at_ms": 2.5, "to_host": 0}],
        workload={"peers": 1, "interval_us": 1000},
        run={"duration_ms": 5500, "seed": 7},
        timing={"migration": {"memory_bytes": 4 * 1024 * 1024}},
    ),
]


def comparable(result: RunResult) -> RunResult:
    return replace(result, wall_s=0.0)


def test_the_key_keeps_what_the_set_up_reads_and_drops_the_rest() -> None:
    assert setup_key(SAME_SET_UP[0]) == setup_key(SAME_SET_UP[1])
    assert hash(setup_key(SAME_SET_UP[0])) == hash(setup_key(SAME_SET_UP[1]))
    for other in (
        scenario(hosts={"n": 5, "m": 2, "vfs": 4}),
        scenario(run={"duration_ms": 5000, "seed": 8}),
        scenario(signalling={"assignment": "static", "strategy": "per-vm"}),
        scenario(latency={"sa_ns": 6000}),
        scenario(topology={"file": "ft3-32"}),
    ):
        assert setup_key(other) != setup_key(SAME_SET_UP[0])


def test_runs_continued_from_one_set_up_give_the_fresh_traces_byte_for_byte() -> None:
    expected = []
    for s in SAME_SET_UP:
        stream = io.StringIO()
        result = run_scenario(s, trace=TraceWriter(stream))
        expected.append((stream.getvalue(), comparable(result)))
    assert expected[0][0] != expected[1][0]

    stream = io.StringIO()
    with paused_gc() as heap:
        state = set_up(SAME_SET_UP[0], heap, trace=TraceWriter(stream))
        built = stream.getvalue()
        for s, (trace, result) in zip(SAME_SET_UP, expected, strict=True):

            def run(s: Scenario = s) -> tuple[str, RunResult]:
                result = comparable(finish(state, s))
                return stream.getvalue(), result

            outcome = run_forked(run)
            assert not isinstance(outcome, Raised), outcome
            assert outcome[0] == trace
            assert outcome[1] == result
            assert outcome[1].path_change_reports > 0
            assert all(m.outcome == "completed" for m in outcome[1].migrations)
        # The forks ran on copies: the set-up here is as it was built.
        assert stream.getvalue() == built
        assert state.sim.coordinator.migrations == []


def _points(tmp_path: Path, grid: list[str]) -> list[GridPoint]:
    path = tmp_path / "s.toml"
    path.write_text(
        '[topology]\nfile = "ft2-36"\n[hosts]\nn = 3\nm = 1\nvfs = 2\n[workload]\npeers = 0\n'
        '[signalling]\nassignment = "static"\n[[migrations]]\nvm = 0\nat_ms = 1\n'
        "[run]\nduration_ms = 2000\n[timing.migration]\nmemory_bytes = 8388608\n"
    )
    return grid_points(str(path), grid)


SHARED_GRID = ["n=2,3", "timing.migration.memory_bytes=4194304,8388608,16777216"]


@pytest.mark.parametrize("backend", [InProcess(), LocalProcesses(2)], ids=["in-process", "pool"])
def test_a_sweep_sharing_set_ups_writes_the_same_rows(
    backend: InProcess | LocalProcesses, tmp_path: Path
) -> None:
    points = _points(tmp_path, SHARED_GRID)
    expected = run_grid(points, backend=InProcess())
    progress: list[int] = []
    rows = run_grid(points, backend=backend, done=progress.append, reuse_set_up=True)
    assert rows == expected
    assert progress == [1, 2, 3, 4, 5, 6]
    # The migration's memory size shows in its time: the rows differ by point.
    assert len({json.dumps(r, sort_keys=True) for r in rows}) == 6


def test_each_set_up_is_built_once(tmp_path: Path) -> None:
    points = _points(tmp_path, SHARED_GRID)
    built: list[int] = []

    def counting_set_up(point: GridPoint) -> SetUp:
        built.append(point.labels["n"])
        return RUN_POINT_STAGED.set_up(point)

    staged = Staged(RUN_POINT_STAGED.key, counting_set_up, RUN_POINT_STAGED.finish)
    rows = map_sharing(staged, points, workers=2)
    assert built == [2, 3]
    assert [r["param.n"] for r in rows] == [2, 2, 2, 3, 3, 3]
    assert group_by_key([staged.key(p) for p in points]) == [[0, 1, 2], [3, 4, 5]]


def test_a_failing_point_fails_alone_with_the_fresh_runs_error(tmp_path: Path) -> None:
    points = _points(tmp_path, ["n=2,3"])
    # Host 1 has one spare VF (vfs = 2, m = 1): the second migration there fails in
    # the migrations stage, after the set-up the point shares with point 1.
    bad = json.loads(json.dumps(points[1].data))
    bad["migrations"] = [{"vm": 0, "at_ms": 1, "to_host": 1}, {"vm": 2, "at_ms": 1, "to_host": 1}]
    points.append(GridPoint(bad, points[1].source + "[bad]", {"n": 3}))
    errors = []
    for reuse in (False, True):
        with pytest.raises(PointsFailed) as caught:
            run_grid(points, backend=InProcess(), reuse_set_up=reuse)
        assert [f.index for f in caught.value.failures] == [2]
        assert None not in caught.value.results[:2]
        errors.append(caught.value.failures[0].error)
    assert errors[0] == errors[1]
    assert "host1 has no free VF then" in errors[0]


def test_sweep_reuse_set_up_option_writes_the_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _points(tmp_path, SHARED_GRID)
    argv = ["sweep", str(tmp_path / "s.toml")]
    for param in SHARED_GRID:
        argv += ["--param", param]
    assert main([*argv, "--out", str(tmp_path / "a.csv")]) == 0
    assert main([*argv, "--out", str(tmp_path / "b.csv"), "--reuse-set-up"]) == 0
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert "6 runs written" in capsys.readouterr().out


def test_a_set_up_that_fails_fails_each_of_its_points_in_its_own_words(tmp_path: Path) -> None:
    # An SA that takes 100 s per query: the VMs never come up, the set-up fails.
    grid = ["latency.sa_ns=100000000000", "timing.migration.memory_bytes=4194304,8388608"]
    points = _points(tmp_path, grid)
    errors = []
    for reuse in (False, True):
        with pytest.raises(PointsFailed) as caught:
            run_grid(points, backend=InProcess(), reuse_set_up=reuse)
        errors.append([f.error for f in caught.value.failures])
    assert errors[0] == errors[1]
    assert len(errors[0]) == 2 and "VMs never came up" in errors[0][0]
    assert "memory_bytes=4194304]" in errors[0][0] and "memory_bytes=8388608]" in errors[0][1]

"""A scenario over a grid of parameters (`ibmig sweep`): the points, every one
validated before any runs, and one summary row per point."""

from __future__ import annotations

import itertools
import json
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from ibmig.errors import ConfigError
from ibmig.experiments.building import build_fabric
from ibmig.experiments.metrics import RunResult, summarize_downtime, summarize_messages
from ibmig.experiments.reuse import (
    ReusingJob,
    Staged,
    keys_of,
    map_sharing,
    scenario_set_up,
    setup_key,
    sorted_by_key,
)
from ibmig.experiments.runner import SetUp, finish, run_scenario
from ibmig.experiments.scenario import Scenario, scenario_from_dict
from ibmig.experiments.sweep import (
    Backend,
    Done,
    InProcess,
    LocalProcesses,
    PointFailure,
    PointsFailed,
    default_backend,
)

# Short names for the keys a sweep varies most; any other dotted key works too.
SHORT_NAMES: dict[str, tuple[str, str]] = {
    "n": ("hosts", "n"),
    "m": ("hosts", "m"),
    "p": ("workload", "peers"),
    "peers": ("workload", "peers"),
    "strategy": ("signalling", "strategy"),
    "assignment": ("signalling", "assignment"),
    "notice": ("signalling", "notice"),
    "path_cache": ("workload", "path_cache"),
    "seed": ("run", "seed"),
}


@dataclass(frozen=True, slots=True)
class GridPoint:
    """One point: the scenario as data (it pickles to a worker as it is), where it
    came from, and the parameter values that make it."""

    data: dict[str, Any]
    source: str
    labels: dict[str, Any]


def parse_params(texts: Sequence[str]) -> list[tuple[str, list[Any]]]:
    """`NAME=V1,V2,...` each; values are JSON where they parse as JSON, else strings."""
    params: list[tuple[str, list[Any]]] = []
    for text in texts:
        name, sep, values = text.partition("=")
        if not sep or not values:
            raise ConfigError(f"expected NAME=V1,V2,..., got {text!r}", "--param")
        parsed: list[Any] = []
        for value in values.split(","):
            try:
                parsed.append(json.loads(value))
            except json.JSONDecodeError:
                parsed.append(value)
        params.append((name, parsed))
    return params


def _set(data: dict[str, Any], name: str, value: Any) -> None:
    path = SHORT_NAMES.get(name) or tuple(name.split("."))
    node = data
    for key in path[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{key} is not a table", f"--param {name}")
    node[path[-1]] = value


def grid_points(path: str, params: Sequence[str]) -> list[GridPoint]:
    """Every combination of the parameters over the scenario file at `path`; each
    is validated here, so a bad value stops the sweep before anything runs."""
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(exc.strerror or str(exc), path) from None
    try:
        # Decoded here, not by read_text: the locale's encoding is not TOML's (UTF-8),
        # and a file that is not text is bad input, not a crash.
        base = tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"not valid TOML: {exc}", path) from None
    grid = parse_params(params)
    points: list[GridPoint] = []
    for combo in itertools.product(*(values for _, values in grid)):
        data = json.loads(json.dumps(base))
        labels = {}
        for (name, _), value in zip(grid, combo, strict=True):
            _set(data, name, value)
            labels[name] = value
        source = f"{path}[{','.join(f'{k}={v}' for k, v in labels.items())}]"
        scenario = scenario_from_dict(data, source)
        if scenario.hosts.vswitch is not None:
            build_fabric(scenario)  # its VF LIDs must fit (checked with the fabric)
        points.append(GridPoint(data, source, labels))
    return points


def _scenario(point: GridPoint) -> Scenario:
    return scenario_from_dict(point.data, point.source)


def _row(point: GridPoint, result: RunResult) -> dict[str, Any]:
    row = {f"param.{k}": v for k, v in point.labels.items()}
    row.update(summarize_downtime(result))
    row.update(summarize_messages(result))
    return row


def run_point(point: GridPoint) -> dict[str, Any]:
    """The sweep's job: one run, its parameters then its downtime and message rows."""
    scenario = _scenario(point)
    return _row(point, run_scenario(scenario, traffic=scenario.workload.peers > 0))


def point_key(point: GridPoint) -> Scenario:
    return setup_key(_scenario(point))


def point_set_up(point: GridPoint) -> SetUp:
    return scenario_set_up(_scenario(point))


def point_finish(state: SetUp, point: GridPoint) -> dict[str, Any]:
    scenario = _scenario(point)
    return _row(point, finish(state, scenario, traffic=scenario.workload.peers > 0))


RUN_POINT_STAGED: Staged[GridPoint, dict[str, Any]] = Staged(point_key, point_set_up, point_finish)
"""`run_point` split at the set-up (`ibmig.experiments.reuse`)."""


def run_grid(
    points: Sequence[GridPoint],
    *,
    backend: Backend | None = None,
    done: Done | None = None,
    reuse_set_up: bool = False,
) -> list[dict[str, Any]]:
    """One row per point, in point order. With `reuse_set_up`, points whose set-ups
    are equal share one (`ibmig.experiments.reuse`): on this machine each set-up is
    built once and its points forked from it; on another backend each worker builds
    a set-up once and forks its points from it. The rows are the same either way."""
    backend = backend or default_backend()
    if not reuse_set_up:
        return backend.map(run_point, points, done)
    if isinstance(backend, (LocalProcesses, InProcess)):
        workers = backend.workers if isinstance(backend, LocalProcesses) else 1
        return map_sharing(RUN_POINT_STAGED, points, workers=workers, done=done)
    order = sorted_by_key(keys_of(RUN_POINT_STAGED, points))
    try:
        # A forked run that failed comes back as `Raised`, which `map` counts as failed.
        rows = cast(
            list[dict[str, Any]],
            backend.map(ReusingJob(RUN_POINT_STAGED), [points[i] for i in order], done),
        )
    except PointsFailed as exc:
        results: list[object] = [None] * len(points)
        for position, result in enumerate(exc.results):
            results[order[position]] = result
        failures = sorted(
            (PointFailure(order[f.index], f.error) for f in exc.failures), key=lambda f: f.index
        )
        raise PointsFailed(results, failures) from None
    ordered: list[dict[str, Any]] = [{}] * len(points)
    for position, row in enumerate(rows):
        ordered[order[position]] = row
    return ordered

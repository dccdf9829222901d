"""A scenario over a grid of parameters (`ibmig sweep`): the points, every one
validated before any runs, and one summary row per point."""

from __future__ import annotations

import itertools
import json
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ibmig.errors import ConfigError
from ibmig.experiments.building import build_fabric
from ibmig.experiments.metrics import summarize_downtime, summarize_messages
from ibmig.experiments.runner import run_scenario
from ibmig.experiments.scenario import scenario_from_dict
from ibmig.experiments.sweep import Backend, Done, default_backend

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


def run_point(point: GridPoint) -> dict[str, Any]:
    """The sweep's job: one run, its parameters then its downtime and message rows."""
    scenario = scenario_from_dict(point.data, point.source)
    result = run_scenario(scenario, traffic=scenario.workload.peers > 0)
    row = {f"param.{k}": v for k, v in point.labels.items()}
    row.update(summarize_downtime(result))
    row.update(summarize_messages(result))
    return row


def run_grid(
    points: Sequence[GridPoint], *, backend: Backend | None = None, done: Done | None = None
) -> list[dict[str, Any]]:
    """One row per point, in point order."""
    return (backend or default_backend()).map(run_point, points, done)

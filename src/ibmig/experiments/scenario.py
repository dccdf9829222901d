"""Scenarios: a TOML file (or a dict) turned into a frozen, validated configuration.

Every key is checked: an unknown key, a wrong type or an out-of-range value raises
`ConfigError` naming the file and the dotted key, which the CLI prints as one line
with exit status 2. Timing overrides go to the one place each default lives:
`[latency]` to `ibmig.sim.latency.LatencyModel`, `[timing.migration]` to
`ibmig.core.migration` and `[timing.guest]` to the guest stack's config; they are
validated there.

    [topology]
    file = "ft2-36"                 # a net file, or a built-in name (ft2-36 ... ft3-11664)
    # or: generator = "fat_tree_2level", with leaves = 4, hosts_per_leaf = 9, spines = 3

    [hosts]
    n = 8                           # physical servers hosting VMs
    m = 2                           # VMs per server
    vfs = 4                         # VFs per HCA (must leave room for incoming VMs)
    placement = "spread"            # "spread" (over leaf switches) or "packed" or "random"

    [workload]
    peers = 3                       # p: clients of each migrated VM
    interval_us = 20
    message_bytes = 64
    path_cache = "cached"           # or "query"

    [signalling]
    assignment = "static"           # or "dynamic"
    strategy = "per-host"           # "none", "per-vm" or "per-host"

    [[migrations]]
    vm = 0                          # VM index
    to_host = 5                     # host index (default: the next host with a free VF)
    at_ms = 2.0

    [run]
    seed = 0
    duration_ms = 40.0
    routing = "minhop"
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ibmig.core.guest.config import PATH_CACHE_POLICIES
from ibmig.core.host import AddressAssignment
from ibmig.core.sm.routing import ROUTING_ENGINES, RoutingEngine
from ibmig.errors import ConfigError
from ibmig.experiments.strategies import STRATEGIES, Strategy
from ibmig.fabric import GENERATORS, TopologyGenerator

# The closed vocabularies a scenario names are registries defined next to what they
# select (strategies, routing engines, generators, address assignment); the parser
# turns names into their entries. Placement is the runner's own.
ASSIGNMENTS: Mapping[str, AddressAssignment] = {a.value: a for a in AddressAssignment}
PLACEMENTS = ("spread", "packed", "random")

_Entry = TypeVar("_Entry")


@dataclass(frozen=True, slots=True)
class TopologyConfig:
    file: str | None = "ft2-36"
    generator: TopologyGenerator | None = None
    params: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class HostsConfig:
    n: int = 8
    m: int = 2
    vfs: int = 4
    placement: str = "spread"


@dataclass(frozen=True, slots=True)
class WorkloadConfig:
    peers: int = 3
    interval_us: float = 20.0
    message_bytes: int = 64
    path_cache: str = "cached"


@dataclass(frozen=True, slots=True)
class SignallingConfig:
    assignment: AddressAssignment = AddressAssignment.STATIC
    strategy: Strategy = STRATEGIES["per-host"]


@dataclass(frozen=True, slots=True)
class MigrationEvent:
    vm: int
    to_host: int | None
    at_ms: float


@dataclass(frozen=True, slots=True)
class RunConfig:
    seed: int = 0
    duration_ms: float = 40.0
    routing: RoutingEngine = ROUTING_ENGINES["minhop"]


@dataclass(frozen=True, slots=True)
class Scenario:
    topology: TopologyConfig = field(default_factory=TopologyConfig)
    hosts: HostsConfig = field(default_factory=HostsConfig)
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    signalling: SignallingConfig = field(default_factory=SignallingConfig)
    migrations: tuple[MigrationEvent, ...] = (MigrationEvent(0, None, 2.0),)
    run: RunConfig = field(default_factory=RunConfig)
    latency: tuple[tuple[str, int], ...] = ()
    migration_timing: tuple[tuple[str, Any], ...] = ()
    guest_timing: tuple[tuple[str, Any], ...] = ()
    source: str = "<scenario>"


class _Section:
    """Reads one table, remembering which keys were used so the rest can be refused."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError("must be a table", where)
        self.data: dict[str, Any] = data
        self.where = where
        self.used: set[str] = set()

    def _get(self, key: str, default: Any) -> Any:
        self.used.add(key)
        return self.data.get(key, default)

    def _where(self, key: str) -> str:
        if self.where.endswith(":"):
            return f"{self.where} {key}"
        return f"{self.where}.{key}"

    def int(self, key: str, default: int, low: int, high: int | None = None) -> int:
        value = self._get(key, default)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"must be an integer, got {value!r}", self._where(key))
        if value < low or (high is not None and value > high):
            bound = f"{low}..{high}" if high is not None else f">= {low}"
            raise ConfigError(f"must be {bound}, got {value}", self._where(key))
        return value

    def float(self, key: str, default: float, low: float) -> float:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"must be a number, got {value!r}", self._where(key))
        if value < low:
            raise ConfigError(f"must be >= {low}, got {value}", self._where(key))
        return float(value)

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self._get(key, default)
        if value not in choices:
            raise ConfigError(
                f"must be one of {', '.join(choices)}, got {value!r}", self._where(key)
            )
        return str(value)

    def entry(self, key: str, default: str, registry: Mapping[str, _Entry]) -> _Entry:
        """The registry entry named by `key` (a string in the file)."""
        return registry[self.choice(key, default, tuple(registry))]

    def optional_str(self, key: str) -> str | None:
        value = self._get(key, None)
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"must be a string, got {value!r}", self._where(key))
        return value

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise ConfigError(
                f"unknown key (known: {', '.join(sorted(self.used))})",
                self._where(unknown[0]),
            )


def _scalars(data: Any, where: str) -> tuple[tuple[str, Any], ...]:
    if data is None:
        return ()
    if not isinstance(data, dict):
        raise ConfigError("must be a table", where)
    for key, value in data.items():
        if isinstance(value, dict | list):
            raise ConfigError("must be a number or string", f"{where}.{key}")
    return tuple(sorted(data.items()))


def scenario_from_dict(data: dict[str, Any], source: str = "<scenario>") -> Scenario:
    root = _Section(data, f"{source}:")

    topo = _Section(root._get("topology", {}), f"{source}: topology")
    file = topo.optional_str("file")
    generator_name = topo.optional_str("generator")
    generator: TopologyGenerator | None = None
    params: list[tuple[str, int]] = []
    if generator_name is not None:
        generator = GENERATORS.get(generator_name)
        if generator is None:
            raise ConfigError(
                f"must be one of {', '.join(GENERATORS)}, got {generator_name!r}",
                f"{source}: topology.generator",
            )
        if file is not None:
            raise ConfigError("give file or generator, not both", f"{source}: topology")
        for key, value in topo.data.items():
            if key in ("file", "generator"):
                continue
            topo.used.add(key)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"must be an integer, got {value!r}", f"{source}: topology.{key}")
            params.append((key, value))
    elif file is None:
        file = "ft2-36"
    topo.finish()

    hosts_s = _Section(root._get("hosts", {}), f"{source}: hosts")
    hosts = HostsConfig(
        n=hosts_s.int("n", 8, 2),
        m=hosts_s.int("m", 2, 1, 255),
        vfs=hosts_s.int("vfs", 0, 0, 255),
        placement=hosts_s.choice("placement", "spread", PLACEMENTS),
    )
    hosts_s.finish()
    if hosts.vfs == 0:
        hosts = HostsConfig(hosts.n, hosts.m, hosts.m + 2, hosts.placement)
    if hosts.vfs < hosts.m:
        raise ConfigError(f"must be at least m = {hosts.m}", f"{source}: hosts.vfs")

    work_s = _Section(root._get("workload", {}), f"{source}: workload")
    workload = WorkloadConfig(
        peers=work_s.int("peers", 3, 0),
        interval_us=work_s.float("interval_us", 20.0, 0.01),
        message_bytes=work_s.int("message_bytes", 64, 8, 4096),
        path_cache=work_s.choice("path_cache", "cached", PATH_CACHE_POLICIES),
    )
    work_s.finish()

    sig_s = _Section(root._get("signalling", {}), f"{source}: signalling")
    signalling = SignallingConfig(
        assignment=sig_s.entry("assignment", "static", ASSIGNMENTS),
        strategy=sig_s.entry("strategy", "per-host", STRATEGIES),
    )
    sig_s.finish()

    run_s = _Section(root._get("run", {}), f"{source}: run")
    run = RunConfig(
        seed=run_s.int("seed", 0, 0),
        duration_ms=run_s.float("duration_ms", 40.0, 0.001),
        routing=run_s.entry("routing", "minhop", ROUTING_ENGINES),
    )
    run_s.finish()

    raw_migrations = root._get("migrations", [{"vm": 0, "at_ms": 2.0}])
    if not isinstance(raw_migrations, list):
        raise ConfigError("must be an array of tables ([[migrations]])", f"{source}: migrations")
    migrations: list[MigrationEvent] = []
    for i, entry in enumerate(raw_migrations):
        sec = _Section(entry, f"{source}: migrations[{i}]")
        vm = sec.int("vm", 0, 0, hosts.n * hosts.m - 1)
        to = sec._get("to_host", None)
        if to is not None and (
            not isinstance(to, int) or isinstance(to, bool) or not 0 <= to < hosts.n
        ):
            raise ConfigError(
                f"must be a host index 0..{hosts.n - 1}", f"{source}: migrations[{i}].to_host"
            )
        at = sec.float("at_ms", 2.0, 0.0)
        if at >= run.duration_ms:
            raise ConfigError(
                f"must be before run.duration_ms ({run.duration_ms})",
                f"{source}: migrations[{i}].at_ms",
            )
        sec.finish()
        migrations.append(MigrationEvent(vm, to, at))

    if workload.peers > hosts.n * hosts.m - 1:
        raise ConfigError(
            f"must be below the number of VMs ({hosts.n * hosts.m})", f"{source}: workload.peers"
        )

    timing = root._get("timing", {})
    if not isinstance(timing, dict):
        raise ConfigError("must be a table", f"{source}: timing")
    for key in timing:
        if key not in ("migration", "guest"):
            raise ConfigError("unknown key (known: guest, migration)", f"{source}: timing.{key}")
    scenario = Scenario(
        topology=TopologyConfig(file, generator, tuple(params)),
        hosts=hosts,
        workload=workload,
        signalling=signalling,
        migrations=tuple(migrations),
        run=run,
        latency=_scalars(root._get("latency", None), f"{source}: latency"),
        migration_timing=_scalars(timing.get("migration"), f"{source}: timing.migration"),
        guest_timing=_scalars(timing.get("guest"), f"{source}: timing.guest"),
        source=source,
    )
    root.finish()
    return scenario


def load_scenario(path: str) -> Scenario:
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(exc.strerror or str(exc), path) from None
    try:
        data = tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"not valid TOML: {exc}", path) from None
    return scenario_from_dict(data, path)

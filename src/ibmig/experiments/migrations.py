"""The migrations stage: start each of the scenario's migrations at its time
(relative to the end of the set-up) and run to the end of the scenario."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ibmig.core.host import AddressAssignment
from ibmig.core.migration.machine import LiveMigration
from ibmig.core.migration.timing import MigrationTiming
from ibmig.errors import ConfigError
from ibmig.experiments.scenario import Scenario
from ibmig.experiments.stepping import Stepper
from ibmig.sim.hosting import VirtualizedSubnet


@dataclass(slots=True)
class Launched:
    """The migrations started, with their source and destination hosts."""

    migrations: list[tuple[LiveMigration, str, str]]
    end_ns: int
    """Simulated time the run ends at."""
    mads_before: Counter[tuple[int, int, int]] = field(default_factory=Counter)
    """MADs sent before the first migration started (not counted as its cost)."""


def pick_destination(sim: VirtualizedSubnet, names: list[str], src: str, wanted: int | None) -> str:
    """Host `wanted` (an index into `names`), or the next host after `src` with a free VF."""
    if wanted is not None:
        dst = names[wanted]
        if dst == src:
            raise ConfigError(f"migration destination {dst} is the VM's own host", "migrations")
        if not sim.hosts[dst].agent.free_vfs():
            raise ConfigError(f"{dst} has no free VF", "migrations")
        return dst
    start = names.index(src)
    for step in range(1, len(names)):
        candidate = names[(start + step) % len(names)]
        if sim.hosts[candidate].agent.free_vfs():
            return candidate
    raise ConfigError("no host has a free VF for the migration (raise hosts.vfs)", "hosts.vfs")


def run_migrations(
    scenario: Scenario,
    sim: VirtualizedSubnet,
    host_names: list[str],
    timing: MigrationTiming,
    stepper: Stepper,
) -> Launched:
    base_ns = sim.kernel.now_ns
    assignment = scenario.signalling.assignment
    static = assignment is AddressAssignment.STATIC
    baseline: Counter[tuple[int, int, int]] | None = None
    migrations: list[tuple[LiveMigration, str, str]] = []
    for event in sorted(scenario.migrations, key=lambda e: e.at_ms):
        stepper.until(base_ns + int(event.at_ms * 1e6))
        if baseline is None:
            baseline = Counter(sim.mad_counts)
        vm = sim.vms[f"vm{event.vm}"]
        src = vm.host
        dst = pick_destination(sim, host_names, src, event.to_host)
        migration = LiveMigration(
            vm.name, src, dst, timing=timing, assignment=assignment,
            vguid=vm.vguid if static else None,
        )  # fmt: skip
        migrations.append((migration, src, dst))
        sim.migrate(migration)
    end_ns = base_ns + int(scenario.run.duration_ms * 1e6)
    stepper.until(end_ns)
    return Launched(migrations, end_ns, baseline if baseline is not None else Counter())

"""The migrations stage: start each of the scenario's migrations at its time
(relative to the end of the set-up), with its faults (`ibmig.experiments.faults`),
and run to the end of the scenario.

Storms are migrations that start at the same time: a host evacuation (the
scenario expands `host`/`hosts` into one entry per VM), and `with_clients`, which
moves a VM's clients together with it, so that both ends of each connection go
stale at once. The clients' migrations are in `Launched.migrations` after the
scenario's own (their connections are not measured: they are the VM's)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ibmig.core.host import AddressAssignment
from ibmig.core.migration.machine import LiveMigration
from ibmig.core.migration.timing import MigrationTiming
from ibmig.errors import ConfigError
from ibmig.experiments.faults import schedule_faults
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


def pick_destination(
    sim: VirtualizedSubnet,
    names: list[str],
    src: str,
    wanted: int | None,
    *,
    claimed: Counter[str] | None = None,
    where: str = "migrations",
) -> str:
    """Host `wanted` (an index into `names`), or the next host after `src` with a free
    VF. A VF counts as free only if no migration still running has it in view:
    `claimed` counts, per host, the migrations heading there that have not taken
    their VF yet (a destination VF is taken at the end, when the alias is set).
    `where` names the scenario entry in errors."""
    claimed = claimed if claimed is not None else Counter()

    def spare(host: str) -> int:
        return len(sim.hosts[host].agent.free_vfs()) - claimed[host]

    if wanted is not None:
        dst = names[wanted]
        if dst == src:
            raise ConfigError(
                f"migration destination {dst} is the VM's own host", f"{where}.to_host"
            )
        if spare(dst) <= 0:
            raise ConfigError(
                f"{dst} has no free VF then (VMs on it or migrating to it fill hosts.vfs)",
                f"{where}.to_host",
            )
        return dst
    start = names.index(src)
    for step in range(1, len(names)):
        candidate = names[(start + step) % len(names)]
        if spare(candidate) > 0:
            return candidate
    raise ConfigError(
        "no host has a free VF for the migration then (raise hosts.vfs)", f"{where}.vm"
    )


def run_migrations(
    scenario: Scenario,
    sim: VirtualizedSubnet,
    host_names: list[str],
    timing: MigrationTiming,
    stepper: Stepper,
) -> Launched:
    base_ns = sim.kernel.now_ns
    schedule_faults(scenario, sim, base_ns)
    assignment = scenario.signalling.assignment
    static = assignment is AddressAssignment.STATIC
    baseline: Counter[tuple[int, int, int]] | None = None
    migrations: list[tuple[LiveMigration, str, str]] = []
    order = sorted(range(len(scenario.migrations)), key=lambda i: scenario.migrations[i].at_ms)
    for index in order:
        event = scenario.migrations[index]
        stepper.until(base_ns + int(event.at_ms * 1e6))
        if baseline is None:
            baseline = Counter(sim.mad_counts)
        vm = sim.vms[f"vm{event.vm}"]
        src = vm.host
        # Destinations of migrations that have not yet reached SetAlias, when they
        # take a VF there.
        claimed = Counter(dst for m, _, dst in migrations if m.alias_requested_ns is None)
        dst = pick_destination(
            sim, host_names, src, event.to_host, claimed=claimed,
            where=f"{scenario.source}: migrations[{index}]",
        )  # fmt: skip
        migration = LiveMigration(
            vm.name, src, dst, timing=timing, assignment=assignment,
            vguid=vm.vguid if static else None,
            alias_registration=scenario.orchestration.alias_registration,
        )  # fmt: skip
        migrations.append((migration, src, dst))
        sim.migrate(migration)
        if event.abort_ms is not None:
            sim.kernel.schedule(int(event.abort_ms * 1e6), _abort, (sim, migration))
        if event.with_clients:
            own = {f"vm{e.vm}" for e in scenario.migrations}
            moving = {m.vm for m, _, _ in migrations}
            for client in _clients_of(sim, vm.name):
                if client in own or client in moving:
                    continue  # the scenario moves it itself, or it is moving already
                csrc = sim.vms[client].host
                claimed = Counter(d for m, _, d in migrations if m.alias_requested_ns is None)
                cdst = pick_destination(
                    sim, host_names, csrc, None, claimed=claimed,
                    where=f"{scenario.source}: migrations[{index}].with_clients",
                )  # fmt: skip
                follower = LiveMigration(
                    client, csrc, cdst, timing=timing, assignment=assignment,
                    vguid=sim.vms[client].vguid if static else None,
                )  # fmt: skip
                migrations.append((follower, csrc, cdst))
                moving.add(client)
                sim.migrate(follower)
    end_ns = base_ns + int(scenario.run.duration_ms * 1e6)
    stepper.until(end_ns)
    return Launched(migrations, end_ns, baseline if baseline is not None else Counter())


def _clients_of(sim: VirtualizedSubnet, vm_name: str) -> list[str]:
    """The VMs with a client stream to `vm_name`'s IP, in VM order."""
    ip = sim.vms[vm_name].guest.ip
    return [v.name for v in sim.vms.values() if ip in v.guest.streams]


def _abort(arg: tuple[VirtualizedSubnet, LiveMigration]) -> None:
    """The scenario's `abort_ms`: abort the migration unless it is over by then."""
    sim, migration = arg
    if not migration.done and not migration.aborted:
        sim.abort_migration(migration.vm, "abort_ms")

"""Capacity planning for an operator's fabric (`ibmig plan`): LIDs and the cost of
migration signalling, measured by simulation on that fabric.

Given a fabric (an ibnetdiscover/ibsim net file or a built-in name) and M VMs per
hypervisor, with every CA port but the SM's a hypervisor (n = cabled CAs - 1):

- LIDs. The simulated SM brings the subnet up and the LIDs it assigned are counted
  (one per switch, one per CA port). In the *shared-port* SR-IOV model the VMs use
  their port's LID, so that count is all the subnet needs; how many VMs fit is set by
  the GUIDInfo table (127 VFs per port), not by LIDs. In the *vSwitch* model every VF
  is a port of its own with its own LID: n x M more LIDs when a LID follows each
  running VM (`vswitch_lids = "dynamic"`), n x VFs more when every VF has one from
  the start ("prepopulated"). Either must fit in the 49,151 unicast LIDs of a
  subnet. The vSwitch rows add to the measured base what the vSwitch model's SM
  hands out (`ibmig.core.sm.vswitch.vf_lids_needed`, the arithmetic its scenarios
  are checked with; a test runs that SM and finds exactly these counts).
- Signalling cost, for each strategy: one scenario per strategy is run on the fabric
  (no workload traffic, a few migrations) and its Reports (first sends of trap 69),
  fabric MADs and the MADs the SA received are counted during the migrations, as
  `ibmig sweep` and `ibmig reproduce` count them. The SA's busy time is (Reports it
  sent + SA MADs it received) x the SA's per-MAD processing time, `LatencyModel.sa_ns`,
  which is an ASSUMPTION of the latency model, not a measurement. Per hour at R
  migrations per hour is R times the per-migration figure: migrations taken as
  independent, none overlapping another.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Final

from ibmig.core.sm.vswitch import VfLids, vf_lids_needed
from ibmig.errors import ConfigError
from ibmig.experiments.building import MAX_UNICAST_LIDS
from ibmig.experiments.scenario import MAX_VFS, scenario_from_dict
from ibmig.experiments.strategies import PAPER_STRATEGIES
from ibmig.fabric import Fabric
from ibmig.sim.hosting import VirtualizedSubnet
from ibmig.sim.latency import LatencyModel

MAX_MIGRATIONS: Final = 100
"""Migrations simulated per strategy at most (`--migrations`): each per-VM one costs
n x m Reports."""
SPACING_MS: Final = 5.0
"""Simulated time between two migrations' starts."""
TAIL_MS: Final = 4000.0
"""Simulated time after the last migration starts: it finishes, and the Reports it
raised are answered or resent."""
MEMORY_BYTES: Final = 16 * 1024 * 1024
"""VM memory in the simulated migrations: small, so that a migration takes little
simulated time; the memory copied does not change the management messages."""
FORMULAS: Final = {"none": "0", "per-vm": "n*m", "per-host": "n"}
"""The Report count the paper predicts per migration, printed beside the measured one."""

Progress = Callable[[int], None]
"""Called with the number of simulated events run so far."""


def check_vms_per_host(m: int, where: str = "--vms-per-host") -> int:
    if not 1 <= m <= MAX_VFS:
        raise ConfigError(
            f"must be 1..{MAX_VFS} (an HCA port's GUIDInfo table holds the PF's GUID and "
            f"{MAX_VFS} VFs, a VF per VM), got {m}",
            where,
        )
    if m == MAX_VFS:
        raise ConfigError(
            f"{MAX_VFS} VMs fill all {MAX_VFS} VFs of every host, so no host could receive "
            f"a migrating VM: at most {MAX_VFS - 1} to plan migrations",
            where,
        )
    return m


def check_rate(rate: float, where: str = "--migrations-per-hour") -> float:
    if not rate >= 0 or rate == float("inf"):  # also refuses NaN
        raise ConfigError(f"must be a finite number >= 0, got {rate:g}", where)
    return rate


def check_migrations(count: int, where: str = "--migrations") -> int:
    if not 1 <= count <= MAX_MIGRATIONS:
        raise ConfigError(f"must be 1..{MAX_MIGRATIONS}, got {count}", where)
    return count


def check_strategies(names: list[str], where: str = "--strategy") -> list[str]:
    """Names in `PAPER_STRATEGIES` (those with a Reports formula), each once, in
    that order; all when empty."""
    for name in names:
        if name not in PAPER_STRATEGIES:
            known = ", ".join(PAPER_STRATEGIES)
            raise ConfigError(f"unknown strategy {name!r} (known: {known})", where)
    return [name for name in PAPER_STRATEGIES if not names or name in names]


def cabled_cas(fabric: Fabric) -> int:
    """CAs whose port 1 is cabled: the SM's and the candidate hypervisors."""
    return sum(1 for node in fabric.cas if fabric.peer(node.index, 1) is not None)


def hosts_of(fabric: Fabric, where: str) -> int:
    """n: every cabled CA but the SM's."""
    n = cabled_cas(fabric) - 1
    if n < 2:
        raise ConfigError(
            f"needs at least 3 cabled CAs (the SM's and two hypervisors), has {n + 1}", where
        )
    return n


def vfs_for(m: int) -> int:
    """VFs per host in the simulation: m, and one free for an incoming VM."""
    return min(m + 1, MAX_VFS)


def plan_scenario_data(
    topology: str, n: int, m: int, strategy: str, migrations: int
) -> dict[str, Any]:
    """The scenario one strategy is measured with, as `scenario_from_dict` takes it:
    n hypervisors packed on the CAs, m VMs each, no workload, `migrations` VMs spread
    over the hosts migrated one after another."""
    vms = n * m
    step = max(1, vms // migrations)
    return {
        "topology": {"file": topology},
        "hosts": {"n": n, "m": m, "vfs": vfs_for(m), "placement": "packed"},
        "workload": {"peers": 0},
        "signalling": {"assignment": "static", "strategy": strategy},
        "migrations": [
            {"vm": (i * step) % vms, "at_ms": 1 + i * SPACING_MS} for i in range(migrations)
        ],
        "run": {"duration_ms": 1 + migrations * SPACING_MS + TAIL_MS, "seed": 1},
        "timing": {"migration": {"memory_bytes": MEMORY_BYTES}},
    }


@dataclass(frozen=True, slots=True)
class StrategyCost:
    """What `migrations` migrations under one strategy cost, as counted in the run."""

    strategy: str
    migrations: int
    completed: int
    reports: int
    """Trap 69 Reports, first sends (the tables' "Reports")."""
    report_resends: int
    fabric_mads: int
    """Every MAD sent on the fabric from the first migration's start to the run's end."""
    sa_received: int
    """SA-class MADs the SA received in that time (queries, Sets, ReportResps...)."""
    base_lids: int
    """LIDs the SM assigned at bring-up (switches and CA ports)."""
    events: int
    wall_s: float

    def per_migration(self, count: int) -> Fraction:
        return Fraction(count, self.migrations)

    def sa_busy_ns(self, sa_ns: int) -> int:
        """(Reports sent, resends included, + SA MADs received) x `sa_ns`."""
        return (self.reports + self.report_resends + self.sa_received) * sa_ns


def assigned_lids(sim: VirtualizedSubnet) -> int:
    """LIDs the SM gave out: a switch's (port 0) and each CA or router port's."""
    count = 0
    for node in sim.fabric.nodes:
        agent = sim.agents[node.index]
        ports = (0,) if node.is_switch else tuple(node.port_nums)
        count += sum(1 for port in ports if agent.port_lid(port) != 0)
    return count


def measure_strategy(
    topology: str,
    n: int,
    m: int,
    strategy: str,
    migrations: int,
    *,
    progress: Progress | None = None,
) -> StrategyCost:
    """Run the plan's scenario for `strategy` and count its messages."""
    from ibmig.experiments.runner import run_scenario

    scenario = scenario_from_dict(
        plan_scenario_data(topology, n, m, strategy, migrations), f"plan[{strategy}]"
    )
    marks: dict[str, int] = {}

    def sa_received(sim: VirtualizedSubnet) -> int:
        return sum(sim.sa_received_bins.values())

    def on_stage(stage: str, sim: VirtualizedSubnet) -> None:
        if stage == "placement":
            marks["lids"] = assigned_lids(sim)
        elif stage == "migrations":
            marks["sa_before"] = sa_received(sim)
        elif stage == "measure":
            marks["sa_after"] = sa_received(sim)

    result = run_scenario(scenario, traffic=False, progress=progress, on_stage=on_stage)
    unfinished = [mig for mig in result.migrations if mig.done_ns is None]
    if unfinished:
        first = unfinished[0]
        raise ConfigError(
            f"{len(unfinished)} of {migrations} simulated migrations did not complete "
            f"({first.vm}: {first.outcome})",
            f"plan[{strategy}]",
        )
    return StrategyCost(
        strategy=strategy,
        migrations=migrations,
        completed=len(result.migrations),
        reports=result.path_change_reports,
        report_resends=result.path_change_resends,
        fabric_mads=sum(result.mads.values()),
        sa_received=marks["sa_after"] - marks["sa_before"],
        base_lids=marks["lids"],
        events=result.events,
        wall_s=result.wall_s,
    )


@dataclass(frozen=True, slots=True)
class LidRow:
    model: str
    needed: int
    vms_fit: int
    how: str

    @property
    def fits(self) -> bool:
        return self.needed <= MAX_UNICAST_LIDS


def lid_rows(base: int, n: int, m: int) -> list[LidRow]:
    """LIDs needed and VMs that fit: shared port, vSwitch with a LID per VM, and
    vSwitch with a LID per VF (`vfs_for(m)` VFs per host)."""
    vfs = vfs_for(m)
    spare = max(0, MAX_UNICAST_LIDS - base)
    per_host_vfs = min(MAX_VFS, spare // n)
    return [
        LidRow("shared port", base, n * MAX_VFS, f"{MAX_VFS} VFs x {n:,} hosts; LIDs no limit"),
        LidRow(
            "vSwitch, a LID per VM",
            base + vf_lids_needed(VfLids.DYNAMIC, n, m, vfs),
            min(n * MAX_VFS, spare),
            f"one LID each, {spare:,} LIDs free",
        ),
        LidRow(
            f"vSwitch, a LID per VF ({vfs} VFs)",
            base + vf_lids_needed(VfLids.PREPOPULATED, n, m, vfs),
            n * per_host_vfs,
            f"{per_host_vfs} VFs x {n:,} hosts",
        ),
    ]


@dataclass(frozen=True, slots=True)
class Plan:
    topology: str
    switches: int
    cas: int
    n: int
    m: int
    rate_per_hour: float
    sa_ns: int
    costs: list[StrategyCost]

    @property
    def base_lids(self) -> int:
        return self.costs[0].base_lids if self.costs else 0

    @property
    def lids(self) -> list[LidRow]:
        return lid_rows(self.base_lids, self.n, self.m)

    def formula(self, strategy: str) -> int:
        return {"none": 0, "per-vm": self.n * self.m, "per-host": self.n}[strategy]

    def as_dict(self) -> dict[str, Any]:
        rate = self.rate_per_hour
        rows = []
        for cost in self.costs:
            per = cost.per_migration
            busy = Fraction(cost.sa_busy_ns(self.sa_ns), cost.migrations)
            rows.append(
                {
                    "strategy": cost.strategy,
                    "migrations_simulated": cost.migrations,
                    "reports_per_migration": float(per(cost.reports)),
                    "reports_formula": FORMULAS[cost.strategy],
                    "reports_formula_value": self.formula(cost.strategy),
                    "report_resends_per_migration": float(per(cost.report_resends)),
                    "fabric_mads_per_migration": float(per(cost.fabric_mads)),
                    "sa_mads_received_per_migration": float(per(cost.sa_received)),
                    "sa_busy_us_per_migration": float(busy) / 1e3,
                    "reports_per_hour": float(per(cost.reports)) * rate,
                    "fabric_mads_per_hour": float(per(cost.fabric_mads)) * rate,
                    "sa_busy_s_per_hour": float(busy) * rate / 1e9,
                    "sa_busy_fraction": float(busy) * rate / 3.6e12,
                    "events": cost.events,
                    "wall_s": round(cost.wall_s, 1),
                }
            )
        return {
            "topology": self.topology,
            "switches": self.switches,
            "cas": self.cas,
            "hosts": self.n,
            "vms_per_host": self.m,
            "vfs_per_host_simulated": vfs_for(self.m),
            "migrations_per_hour": rate,
            "unicast_lids": MAX_UNICAST_LIDS,
            "lids": [
                {"model": r.model, "needed": r.needed, "fits": r.fits, "vms_fit": r.vms_fit}
                for r in self.lids
            ],
            "strategies": rows,
            "assumptions": {
                "sa_ns": self.sa_ns,
                "sa_ns_note": "ASSUMPTION: the SA's processing time per MAD "
                "(ibmig.sim.latency.LatencyModel.sa_ns), not a measurement",
                "per_hour_note": "per-migration figures x rate: migrations independent, "
                "none overlapping another",
            },
        }


def default_sa_ns() -> int:
    """The SA's per-MAD processing time the simulation charges (an ASSUMPTION)."""
    return LatencyModel().sa_ns

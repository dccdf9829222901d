"""`ibmig plan FABRIC --vms-per-host M`: LIDs and signalling cost on an operator's
fabric, the cost measured by simulating migrations on it (`ibmig.experiments.planning`)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from fractions import Fraction
from typing import IO, TYPE_CHECKING

from ibmig.cli.common import Subparsers
from ibmig.cli.progress import Progress
from ibmig.errors import ConfigError, shown

if TYPE_CHECKING:
    from ibmig.experiments.planning import Plan

DEFAULT_RATE = 60.0


def add_parser(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "plan",
        help="LIDs and migration signalling cost on your fabric, measured by simulation",
        description=(
            "FABRIC is an ibnetdiscover/ibsim net file or a built-in name (ft2-36 ...). "
            "Every cabled CA but the SM's hosts M VMs. Example: "
            "ibmig plan fabric.net --vms-per-host 16 --migrations-per-hour 120"
        ),
    )
    parser.add_argument("fabric", help="net file (ibnetdiscover output) or built-in name")
    parser.add_argument("--vms-per-host", required=True, metavar="M", help="1..126")
    parser.add_argument(
        "--migrations-per-hour", default=str(DEFAULT_RATE), metavar="R",
        help=f"rate for the per-hour figures (default {DEFAULT_RATE:g})",
    )  # fmt: skip
    parser.add_argument(
        "--strategy", action="append", default=[], metavar="NAME",
        help="none, per-vm, per-host (repeat or comma-separate; default: all)",
    )  # fmt: skip
    parser.add_argument(
        "--migrations", default="1", metavar="K",
        help="migrations simulated per strategy (default 1); figures are per migration",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.set_defaults(handler=run)


def _int(text: str, where: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"must be an integer, got {shown(text)}", where) from None


def _float(text: str, where: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"must be a number, got {shown(text)}", where) from None


def run(args: argparse.Namespace) -> int:
    names = [name.strip() for arg in args.strategy for name in arg.split(",")]
    return plan_command(
        args.fabric,
        vms_per_host=args.vms_per_host,
        rate=args.migrations_per_hour,
        strategies=names,
        migrations=args.migrations,
        as_json=args.json,
        out=sys.stdout,
    )


def plan_command(
    fabric_spec: str,
    *,
    vms_per_host: str,
    rate: str,
    strategies: list[str],
    migrations: str,
    as_json: bool,
    out: IO[str],
) -> int:
    from ibmig.experiments import planning
    from ibmig.fabric import load_topology

    m = planning.check_vms_per_host(_int(vms_per_host, "--vms-per-host"))
    per_hour = planning.check_rate(_float(rate, "--migrations-per-hour"))
    count = planning.check_migrations(_int(migrations, "--migrations"))
    names = planning.check_strategies(strategies)
    fabric = load_topology(fabric_spec)
    n = planning.hosts_of(fabric, fabric_spec)
    costs = []
    for i, name in enumerate(names, 1):
        label = f"plan {name} ({i}/{len(names)})"
        with Progress(label, unit="events", stream=sys.stderr) as progress:
            costs.append(
                planning.measure_strategy(fabric_spec, n, m, name, count, progress=progress.update)
            )
    plan = planning.Plan(
        topology=fabric_spec,
        switches=fabric.num_switches,
        cas=fabric.num_cas,
        n=n,
        m=m,
        rate_per_hour=per_hour,
        sa_ns=planning.default_sa_ns(),
        costs=costs,
    )
    if as_json:
        json.dump(plan.as_dict(), out, indent=2)
        out.write("\n")
    else:
        out.write("\n".join(plan_lines(plan)) + "\n")
    return 0


def _count(value: Fraction) -> str:
    """A per-migration count: exact when whole, else one decimal (a mean)."""
    if value.denominator == 1:
        return f"{value.numerator:,}"
    return f"{float(value):,.1f}"


def _per_hour(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == 0 else f"{value:,.2f}"


def plan_lines(plan: Plan) -> list[str]:
    from ibmig.experiments.building import MAX_UNICAST_LIDS
    from ibmig.experiments.planning import FORMULAS, vfs_for

    rate = plan.rate_per_hour
    lines = [
        f"{plan.topology}: {plan.switches:,} switches, {plan.cas:,} CAs; "
        f"n = {plan.n:,} hypervisors (every cabled CA but the SM's), "
        f"m = {plan.m} VMs each ({plan.n * plan.m:,} VMs)",
        "",
        f"LIDs (a subnet has {MAX_UNICAST_LIDS:,} unicast LIDs; base = "
        f"{plan.base_lids:,} assigned by the simulated SM, a LID per switch and CA port)",
    ]
    width = max(len(row.model) for row in plan.lids)
    lines.append(f"{'model':<{width}}  {'LIDs needed':>11}  {'fits':<4}  VMs that fit")
    lines.append("-" * (width + 50))
    for row in plan.lids:
        lines.append(
            f"{row.model:<{width}}  {row.needed:>11,}  {'yes' if row.fits else 'NO':<4}  "
            f"{row.vms_fit:,} ({row.how})"
        )
    sims = plan.costs[0].migrations if plan.costs else 0
    lines += [
        "",
        f"Signalling, measured: {sims} migration{'s' if sims != 1 else ''} simulated per "
        f"strategy on this fabric (static assignment, {vfs_for(plan.m)} VFs per host, "
        "no workload traffic)",
        f"{'':<9} {'per migration':-^62}  {f'per hour at {rate:g} migrations/h':-^42}",
        f"{'strategy':<9} {'Reports':>9} {'formula':>15} {'fabric MADs':>12} "
        f"{'SA MADs in':>11} {'SA busy ms':>11}  {'Reports':>10} {'fabric MADs':>12} "
        f"{'SA busy':>9} {'% of h':>8}",
        "-" * 117,
    ]
    for cost in plan.costs:
        per = cost.per_migration
        busy_ns = Fraction(cost.sa_busy_ns(plan.sa_ns), cost.migrations)
        busy_s_h = float(busy_ns) * rate / 1e9
        formula = f"{FORMULAS[cost.strategy]} = {plan.formula(cost.strategy):,}"
        lines.append(
            f"{cost.strategy:<9} {_count(per(cost.reports)):>9} {formula:>15} "
            f"{_count(per(cost.fabric_mads)):>12} {_count(per(cost.sa_received)):>11} "
            f"{float(busy_ns) / 1e6:>11,.2f}  {_per_hour(float(per(cost.reports)) * rate):>10} "
            f"{_per_hour(float(per(cost.fabric_mads)) * rate):>12} "
            f"{_duration(busy_s_h):>9} {_percent(busy_s_h / 3600):>8}"
        )
    lines += [
        "",
        "Reports: first sends of the path-change Report (trap 69); fabric MADs: every MAD "
        "sent from the migration's start to the run's end (ReportResps, resends, the SA "
        "traffic of the moving alias GUID).",
        f"SA busy = (Reports sent + SA MADs received) x {plan.sa_ns / 1e3:g} us per MAD: "
        "LatencyModel.sa_ns in ibmig/sim/latency.py, OpenSM's CPU per MAD measured on "
        "ibsim (benchmarks/sa_service.py). "
        f"Per hour = per migration x {rate:g}, migrations not overlapping.",
    ]
    return lines


def _percent(fraction: float) -> str:
    """A share of the hour to two significant digits (0.0006%), 0% when none."""
    percent = fraction * 100
    if percent == 0:
        return "0%"
    decimals = max(2, 1 - math.floor(math.log10(percent)))
    return f"{percent:,.{decimals}f}%"


def _duration(seconds: float) -> str:
    if seconds >= 1 or seconds == 0:
        return f"{seconds:,.1f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} us"

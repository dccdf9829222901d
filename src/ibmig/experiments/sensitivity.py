"""Which of the paper's findings depend on which number of the model (`ibmig
reproduce`, section "Sensitivity").

Every number the model runs with is either cited (a real stack's default, a
product figure), measured here (the SA's service time on ibsim) or an ASSUMPTION.
A conclusion drawn from the tables is only as good as the numbers it rests on, so
this section varies each of them, one at a time, around the defaults of the lab
testbed (`reproduction.LAB`): a low and a high value, each stated with why it is
plausible (for a cited value, another real stack's value; for a choice, the other
choice). For each knob and value it runs

- the lab testbed with static assignment and cached paths (the paper's case)
  under the strategies none, per-VM and per-host, seeds 1..K each (K =
  `DEFAULT_SEEDS`, `ibmig reproduce --sensitivity-seeds`);
- for the knobs that act on what a migration event costs the SA (`Knob.costs`:
  the agents' service times, the links, the queueing model, the per-VM
  subscription's Report time-out), one sweep point, n = 648 servers with m = 4
  VMs each (`reproduction.SWEEP_TOPOLOGY`), under per-VM and per-host. For the
  other knobs the sweep point is not re-run: they change the migration, the
  guests' timers or the workload, and the sweep point has no workload and
  measures the Reports, which start at the alias move whatever came before it
  (`tests/experiments/test_sensitivity.py` checks it for the VF detach);

and says whether each of the paper's findings holds:

- F1, counts: per-host sends n Reports per migration event, per-VM n*m (the lab:
  6 and 12 in every run; the sweep point, when run: 648 and 2,592);
- F2, signalling is needed and enough: every peer comes back under per-VM and
  per-host, none under no signalling (static assignment, cached paths);
- F3, signalling adds no downtime: under per-VM and per-host the last peer is
  back within `orchestration.slack_ms` (two message intervals and one
  reconnection) of the VM's vport coming up at the destination, in every seed;
- F4, per-host is cheaper in time: its notification makespan (alias move to the
  last ReportResp) at the sweep point is below per-VM's; the ratio is shown.

A finding whose verdict differs from the defaults' is flagged "flipped". The knobs'
defaults are the model's own (a test checks each against its home), the runs
deterministic (seeds 1..K, as the lab's).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from ibmig.core.migration.timing import MigrationTiming, plan_precopy
from ibmig.experiments.metrics import RunResult, last_peer_after_vport_ms, summarize_downtime
from ibmig.experiments.orchestration import slack_ms
from ibmig.experiments.scenario import Scenario, scenario_from_dict

DEFAULT_SEEDS: Final = 3
"""Lab runs per strategy and knob value (`--sensitivity-seeds`)."""
MAX_SEEDS: Final = 100
STRATEGIES: Final = ("none", "per-vm", "per-host")
COST_STRATEGIES: Final = ("per-vm", "per-host")
COST_N: Final = 648
COST_M: Final = 4
"""The sweep point the costs are measured at (the largest n of `ibmig reproduce`'s
sweep, at its m)."""
QUICK_COST_N: Final = 8
"""`--quick` (tests): the smallest sweep point instead."""


@dataclass(frozen=True, slots=True)
class Knob:
    """One number (or choice) of the model, varied one at a time.

    `keys` are the scenario keys it sets (dotted: "timing.migration.vf_detach_ns");
    a value sets them all (a tuple of one value per key when there are several).
    `default` is what the lab runs with (None: the key left unset, the model's own
    rule), `values` the alternatives, low then high."""

    name: str
    keys: tuple[str, ...]
    default: Any
    values: tuple[Any, ...]
    basis: str
    """Where the default comes from: "cited", "measured", "ASSUMPTION" or "choice"."""
    why: str
    """Where the default comes from and why the alternatives are plausible."""
    costs: bool = False
    """Re-run the sweep point: the knob acts on the SA's work per event."""
    shown_default: str = ""
    """How the default is printed, when `label` cannot say it (a derived value)."""

    def settings(self, value: Any) -> dict[str, Any]:
        """The scenario keys `value` sets."""
        if len(self.keys) == 1:
            return {self.keys[0]: value}
        return dict(zip(self.keys, value, strict=True))

    def label(self, value: Any) -> str:
        if value is None or (value == self.default and self.shown_default):
            return self.shown_default
        if len(self.keys) == 1:
            return _label(self.keys[0], value)
        if all(isinstance(v, str) for v in value):  # a link: "4x" "EDR" is "4xEDR"
            return "".join(value)
        return " / ".join(_label(k, v) for k, v in zip(self.keys, value, strict=True))


def _label(key: str, value: Any) -> str:
    """A value as a reader reads it: durations in s/ms/us/ns, sizes in MiB."""
    if isinstance(value, tuple):
        raise TypeError("a value of several keys is labelled by Knob.label")
    if isinstance(value, bool):
        return "on" if value else "off"
    if key.endswith("_ns") and isinstance(value, int):
        for unit, scale in (("s", 10**9), ("ms", 10**6), ("us", 10**3)):
            if value >= scale:
                return f"{value / scale:g} {unit}"
        return f"{value} ns"
    if key.endswith("_bytes") and isinstance(value, int):
        return f"{value / 2**20:g} MiB"
    if key.endswith("_bytes_per_s") and isinstance(value, int):
        return f"{value / 2**20:g} MiB/s"
    if key.endswith("_us") and isinstance(value, int | float):
        return f"{value / 1e3:g} ms"
    return str(value)


MS: Final = 10**6
US: Final = 10**3
MIB: Final = 2**20

KNOBS: Final[tuple[Knob, ...]] = (
    # --- the migration (ibmig.core.migration.timing) ------------------------------------
    Knob("VF detach", ("timing.migration.vf_detach_ns",), 500 * MS, (100 * MS, 1500 * MS),
         "ASSUMPTION", "placeholder for Guay et al.'s measured VF hot-unplug; 0.1 s and "
         "1.5 s: a fast PCI hot-unplug, and 1 s more"),
    Knob("VF attach", ("timing.migration.vf_attach_ns",), 500 * MS, (100 * MS, 1500 * MS),
         "ASSUMPTION", "placeholder for the VF hot-plug; 0.1 s and 1.5 s as the detach"),
    Knob("driver re-init", ("timing.migration.driver_reinit_ns",), 2000 * MS,
         (500 * MS, 5000 * MS), "ASSUMPTION",
         "placeholder for mlx4's VF probe to port active; 0.5 s and 5 s"),
    Knob("resume", ("timing.migration.resume_ns",), 100 * MS, (20 * MS, 500 * MS),
         "ASSUMPTION", "the order of Clark et al.'s downtimes; 20 ms and 0.5 s"),
    Knob("VM memory", ("timing.migration.memory_bytes",), 256 * MIB, (64 * MIB, 1024 * MIB),
         "ASSUMPTION", "the lab's VM (pre-copy time); 64 MiB and 1 GiB"),
    Knob("dirty rate", ("timing.migration.dirty_rate_bytes_per_s",), 32 * MIB,
         (8 * MIB, 128 * MIB), "ASSUMPTION",
         "what stop-and-copy sends (the VM's pause); a quarter and 4x"),
    # --- the guests (ibmig.core.guest.config) and the workload ---------------------------
    Knob("QP local ACK timeout", ("timing.guest.local_ack_timeout",), None, (14,), "cited",
         "derived as Linux ib_cm does (19 with PacketLifeTime 18); perftest's fixed 14",
         shown_default="derived (19)"),
    Knob("reconnect policy", ("timing.guest.reconnect_policy",), "rds", ("doubling",),
         "cited", "Linux RDS's back-off; ibmig's earlier doubling with jitter"),
    Knob("reconnect back-off bounds",
         ("timing.guest.reconnect_backoff_ns", "timing.guest.reconnect_backoff_max_ns"),
         (1 * MS, 1000 * MS), ((100 * US, 100 * MS), (10 * MS, 10_000 * MS)), "cited",
         "RDS reconnect_min_delay_ms 1 and reconnect_max_delay_ms 1000; a tenth (the max "
         "then ibmig's former 100 ms cap) and 10x"),
    Knob("CM response timeout", ("timing.guest.cm_response_timeout",), 20, (18, 22), "cited",
         "rdma_cm CMA_CM_RESPONSE_TIMEOUT 20 (REQ resent after 6.1 s); the "
         "cma_cm_response_timeout parameter set to 18 (3.1 s) and 22 (12.3 s)"),
    Knob("message interval", ("workload.interval_us",), 2000.0, (1000.0, 20_000.0),
         "ASSUMPTION", "the lab's workload; half, and 10x (F3's threshold follows it)"),
    Knob("path cache", ("workload.path_cache",), "cached", ("query",), "choice",
         "cached PathRecords (SA caching) or a query per connection attempt"),
    Knob("per-VM Report timeout", ("timing.guest.inform_resp_time_value",), 16, (12, 20),
         "ASSUMPTION", "the per-VM InformInfo RespTimeValue 16 (268 ms); 12 (16.8 ms, below "
         "the SA's floor, OpenSM's 200 ms transaction timeout, which then applies) and 20 "
         "(4.3 s)", costs=True),
    # --- the agents, the links (ibmig.sim.latency) ---------------------------------------
    Knob("sa_ns", ("latency.sa_ns",), 11_500, (5_750, 23_000), "measured",
         "OpenSM's SA on ibsim here, 11.5 us per MAD (rounds of 4.3 to 22 us on the loaded "
         "machine); half and double", costs=True),
    Knob("sm_ns", ("latency.sm_ns",), 1_000, (250, 25_000), "ASSUMPTION",
         "the SM per MAD; a quarter, and ibsim's ~25 us per SMP", costs=True),
    Knob("dom0_ns", ("latency.dom0_ns",), 5_000, (1_000, 50_000), "ASSUMPTION",
         "dom0's host agent per MAD; 1 us and 50 us", costs=True),
    Knob("guest_ns, intra_host_ns", ("latency.guest_ns", "latency.intra_host_ns"),
         (1_000, 10_000), ((250, 1_000), (10_000, 100_000)), "ASSUMPTION",
         "a guest's stack per packet or MAD, and dom0 to guest (Xen event channel and "
         "ring); a quarter and a tenth, and 10x"),
    Knob("sma_ns", ("latency.sma_ns",), 2_000, (500, 20_000), "ASSUMPTION",
         "an SMA's firmware per SMP; a quarter and 10x"),
    Knob("cable_ns, switch_ns", ("latency.cable_ns", "latency.switch_ns"), (15, 90),
         ((5, 45), (150, 180)), "cited",
         "a 3 m copper cable (ASSUMPTION) and SB7800 port to port; 1 m and half, and "
         "30 m of fibre and double"),
    Knob("link rate", ("topology.link_width", "topology.link_speed"), ("4x", "SDR"),
         (("1x", "SDR"), ("4x", "EDR")), "cited",
         "a net file without speeds, as ibsim: 4x SDR, 8 Gb/s; 1x SDR (2 Gb/s) and "
         "4x EDR (100 Gb/s)", costs=True),
    Knob("contention", ("latency.contention",), True, (False,), "choice",
         "agents and ports as FIFO queues, or fixed delays (no queue anywhere)", costs=True),
    # --- the SA (ibmig.core.sa.admin) ------------------------------------------------------
    Knob("PathRecord PacketLifeTime", ("sa.packet_life_time",), 18, ("hops",), "cited",
         "OpenSM's fixed subnet_timeout 18; or hop based"),
    Knob("GUIDInfoRecord answer", ("sa.guid_info_answer",), "before_write", ("after_write",),
         "cited", "OpenSM answers before the port is written; or after"),
)  # fmt: skip
"""Every knob the section varies, in the order the table lists them."""

NOT_VARIED: Final = (
    "migration bandwidth (1 Gb/s): the pre-copy time is memory / bandwidth and the "
    "pause's copy dirty rate x round / bandwidth, both varied through VM memory and "
    "dirty rate",
    "the guest's and dom0's SA request time-outs and retries (libibmad's 1 s): only a "
    "lost MAD waits for them, and nothing is lost here",
    "the CA ACK delay (16): the derived ACK time-out is 19 for any delay up to 18, and "
    "the time-out itself is varied",
    "alias GUID registration point and DREQ on detach: the orchestration table",
)
"""What is not varied here, and why."""

Role = Literal["lab", "cost"]


@dataclass(frozen=True, slots=True)
class SensitivityPoint:
    """One run of the section: a knob's value (knob None: the defaults), a strategy
    and, in the lab, a seed."""

    role: Role
    knob: Knob | None
    value: int
    strategy: str
    seed: int
    scenario: Scenario


def _set(data: dict[str, Any], key: str, value: Any) -> None:
    *path, last = key.split(".")
    table = data
    for part in path:
        table = table.setdefault(part, {})
    table[last] = value


def _span_ns(timing: MigrationTiming) -> int:
    """VF detach to driver re-init of a migration under `timing` (its phases)."""
    plan = plan_precopy(timing)
    return (
        timing.vf_detach_ns
        + plan.precopy_ns
        + plan.stop_copy_ns
        + timing.resume_ns
        + timing.vf_attach_ns
        + timing.driver_reinit_ns
    )


def _with(knob: Knob | None, value: Any, data: dict[str, Any]) -> dict[str, Any]:
    """`data` with the knob's value set; a migration made longer gets as much more run,
    so that its peers have as long after it as the defaults' have."""
    if knob is None:
        return data
    before = MigrationTiming().with_overrides(data["timing"]["migration"], "timing.migration")
    for key, v in knob.settings(value).items():
        _set(data, key, v)
    after = MigrationTiming().with_overrides(data["timing"]["migration"], "timing.migration")
    longer_ns = _span_ns(after) - _span_ns(before)
    if longer_ns > 0:
        data["run"]["duration_ms"] += math.ceil(longer_ns / 1e6)
    return data


def _timing(data: dict[str, Any]) -> MigrationTiming:
    return MigrationTiming().with_overrides(data["timing"]["migration"], "timing.migration")


def horizon_ms(lab: dict[str, Any]) -> float:
    """How long the lab's runs go on after the VF swap would end under the lab's
    timing (12 s runs, the swap over at 6.09 s: 5,906 ms). Long enough for a peer
    whose REQ was dropped to try once more (a CM resend, 6.144 s after its REQ)."""
    at_ms = float(lab["migrations"][0]["at_ms"])
    return float(lab["run"]["duration_ms"]) - at_ms - math.ceil(_span_ns(_timing(lab)) / 1e6)


def lab_duration_ms(data: dict[str, Any], horizon: float) -> float:
    """How long a lab run of the section lasts: until `horizon` ms after its
    migration's VF swap would end under its own timing, as the lab's runs do (the
    defaults' runs are the lab's)."""
    at_ms = float(data["migrations"][0]["at_ms"])
    return at_ms + math.ceil(_span_ns(_timing(data)) / 1e6) + horizon


def _lab_data(lab: dict[str, Any], strategy: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(lab))
    data["signalling"] = {"assignment": "static", "strategy": strategy}
    data["workload"]["path_cache"] = "cached"
    return data


def sweep_point_data(topology: dict[str, Any], strategy: str, n: int, m: int) -> dict[str, Any]:
    """One point of `ibmig reproduce`'s n/m sweep (`reproduction.sweep_scenarios`),
    which the knobs that act on the SA's work per event re-run."""
    return {
        "topology": dict(topology),
        "hosts": {"n": n, "m": m, "vfs": m + 1, "placement": "spread"},
        "workload": {"peers": 0},
        "signalling": {"assignment": "static", "strategy": strategy},
        "migrations": [{"vm": 0, "at_ms": 1}],
        "run": {"duration_ms": 8000, "seed": 1},
        "timing": {"migration": {"memory_bytes": 64 * 1024 * 1024}},
    }


def _value_name(knob: Knob | None, value: Any) -> str:
    return "defaults" if knob is None else f"{knob.name}={knob.label(value)}"


def plan(
    lab: dict[str, Any],
    sweep_topology: dict[str, Any],
    *,
    seeds: int = DEFAULT_SEEDS,
    knobs: Sequence[Knob] = KNOBS,
    cost_n: int = COST_N,
) -> list[SensitivityPoint]:
    """Every run of the section: the defaults, then each knob's values; per value
    the lab runs (strategy, then seed) and, for a knob with `costs` (and the
    defaults), the sweep point under per-VM and per-host."""
    cases: list[tuple[int, Knob | None, Any]] = [(0, None, None)]
    for each in knobs:
        cases += [(i, each, v) for i, v in enumerate(each.values)]
    out: list[SensitivityPoint] = []
    horizon = horizon_ms(lab)
    for i, knob, value in cases:
        name = _value_name(knob, value)
        for strategy in STRATEGIES:
            data = _with(knob, value, _lab_data(lab, strategy))
            data["run"]["duration_ms"] = lab_duration_ms(data, horizon)
            for seed in range(1, seeds + 1):
                data["run"]["seed"] = seed
                source = f"sensitivity[{name},{strategy},seed={seed}]"
                scenario = scenario_from_dict(json.loads(json.dumps(data)), source)
                out.append(SensitivityPoint("lab", knob, i, strategy, seed, scenario))
        if knob is not None and not knob.costs:
            continue
        for strategy in COST_STRATEGIES:
            data = _with(knob, value, sweep_point_data(sweep_topology, strategy, cost_n, COST_M))
            source = f"sensitivity-cost[{name},{strategy},n={cost_n},m={COST_M}]"
            scenario = scenario_from_dict(data, source)
            out.append(SensitivityPoint("cost", knob, i, strategy, 1, scenario))
    return out


def lab_row(result: RunResult) -> dict[str, Any]:
    """What the findings need of a lab run."""
    down = summarize_downtime(result)
    row = {
        "seed": result.scenario.run.seed,
        "strategy": down["strategy"],
        "peers": down["peers"],
        "connected_after": down["connected_after"],
        "reports": result.path_change_reports // max(1, len(result.migrations)),
        "n": result.n,
        "m": result.m,
        "interval_us": result.scenario.workload.interval_us,
        "vm_downtime_us": down["vm_downtime_us"],
        "migration_downtime_us": down["migration_downtime_us"],
        "peer_downtime_us": [
            None if c.downtime_ns is None else c.downtime_ns / 1e3 for c in result.connections
        ],
    }
    row["after_vport_ms"] = last_peer_after_vport_ms(row)
    return row


def cost_row(result: RunResult) -> dict[str, Any]:
    """What the findings need of a sweep-point run."""
    events = max(1, len(result.migrations))
    makespan = result.notification_makespan_ns
    return {
        "strategy": result.scenario.signalling.strategy.name,
        "n": result.n,
        "m": result.m,
        "reports": result.path_change_reports // events,
        "notification_makespan_ms": None if makespan is None else makespan / 1e6,
        "sa_busy_ms": result.sa_busy_ns / events / 1e6,
        "sa_max_queue": result.sa_max_queue,
        "reports_resent": result.reports_resent // events,
    }


@dataclass(slots=True)
class _Case:
    knob: Knob | None
    value: Any
    lab: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    cost: dict[str, dict[str, Any]] = field(default_factory=dict)


def _median(values: Sequence[float]) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    k = len(ordered)
    return (ordered[(k - 1) // 2] + ordered[k // 2]) / 2


def _findings(case: _Case) -> dict[str, Any]:
    """One row of the table: the case's figures and the verdict on F1..F4."""
    lab = case.lab
    back = {s: [sum(r["connected_after"] for r in lab[s]), sum(r["peers"] for r in lab[s])]
            for s in STRATEGIES}  # fmt: skip
    first = lab[STRATEGIES[0]][0]
    n, m = first["n"], first["m"]
    expected = {"per-host": n, "per-vm": n * m}
    counts_ok = all(r["reports"] == expected[s] for s in COST_STRATEGIES for r in lab[s])
    for s, row in case.cost.items():
        counts_ok = counts_ok and row["reports"] == (
            row["n"] if s == "per-host" else row["n"] * row["m"]
        )
    signalled = all(back[s][0] == back[s][1] for s in COST_STRATEGIES)
    threshold = slack_ms(first["interval_us"])
    after: dict[str, float | None] = {}
    for s in COST_STRATEGIES:
        values = [r["after_vport_ms"] for r in lab[s]]
        after[s] = None if any(v is None for v in values) else max(values)
    no_downtime = all(v is not None and v <= threshold for v in after.values())
    makespan = {s: case.cost[s]["notification_makespan_ms"] for s in case.cost}
    ratio = None
    cheaper = None
    if len(makespan) == 2 and None not in makespan.values():
        ratio = makespan["per-host"] / makespan["per-vm"]
        cheaper = makespan["per-host"] < makespan["per-vm"]
    host = lab["per-host"]
    knob = case.knob
    return {
        "knob": "defaults" if knob is None else knob.name,
        "keys": [] if knob is None else list(knob.keys),
        "value": "" if knob is None else knob.label(case.value),
        "default": "" if knob is None else knob.label(knob.default),
        "basis": "" if knob is None else knob.basis,
        "why": "" if knob is None else knob.why,
        "seeds": len(host),
        "back": back,
        "reports": {s: lab[s][0]["reports"] for s in COST_STRATEGIES},
        "vm_pause_ms": _ms(_median([r["vm_downtime_us"] for r in host if r["vm_downtime_us"]])),
        "vm_rdma_down_ms": _ms(
            _median([r["migration_downtime_us"] for r in host if r["migration_downtime_us"]])
        ),
        "after_vport_ms": after,
        "threshold_ms": threshold,
        "cost": case.cost,
        "makespan_ratio": ratio,
        "F1": counts_ok,
        "F2": signalled and back["none"][0] == 0,
        "F3": no_downtime,
        "F4": cheaper,
    }


def _ms(us: float | None) -> float | None:
    return None if us is None else us / 1e3


FINDINGS: Final = ("F1", "F2", "F3", "F4")


def summarize(
    points: Sequence[SensitivityPoint], rows: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The table's rows, the defaults first, from each point's row (`lab_row` or
    `cost_row`, in `points`' order). A finding is "flipped" where its verdict
    differs from the defaults'; F4 is None where the sweep point was not re-run
    (and not compared)."""
    cases: dict[tuple[str | None, int], _Case] = {}
    for point, row in zip(points, rows, strict=True):
        knob = point.knob
        case = cases.setdefault(
            (None if knob is None else knob.name, point.value),
            _Case(knob, None if knob is None else knob.values[point.value]),
        )
        if point.role == "lab":
            case.lab.setdefault(point.strategy, []).append(row)
        else:
            case.cost[point.strategy] = row
    out = [_findings(case) for case in cases.values()]
    base = out[0]
    for row in out:
        row["flipped"] = [
            f for f in FINDINGS if row[f] is not None and base[f] is not None and row[f] != base[f]
        ]
    return out


def _verdict(value: bool | None) -> str:
    return "-" if value is None else ("holds" if value else "FAILS")


def _num(value: float | None, digits: int = 1) -> str:
    return "never" if value is None else f"{value:,.{digits}f}"


def row_cells(r: dict[str, Any], sep: str = "/") -> dict[str, str]:
    """A row's figures as shown in the text table and in report.html (`sep` between
    the strategies' values): peers back, Reports per event, VM RDMA down, the last
    peer after the vport, the sweep point's makespans and their ratio."""
    back = r["back"]
    after = r["after_vport_ms"]
    cost = r["cost"]
    return {
        "back": sep.join(str(b) for b, _ in back.values()) + f" of {back['none'][1]}",
        "reports": f"{r['reports']['per-vm']}{sep}{r['reports']['per-host']}",
        "rdma_down": _num(r["vm_rdma_down_ms"], 0),
        "after": f"{_num(after['per-vm'])}{sep}{_num(after['per-host'])}",
        "makespan": (
            f"{_num(cost['per-vm']['notification_makespan_ms'], 2)}{sep}"
            f"{_num(cost['per-host']['notification_makespan_ms'], 2)}"
            if cost
            else "not re-run"
        ),
        "ratio": "-" if r["makespan_ratio"] is None else f"{r['makespan_ratio']:.2f}",
    }


def sensitivity_table(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The rows as text: per knob value, the peers back (none, per-VM, per-host over
    the seeds), the Reports per event, the last peer after the vport (worst seed,
    ms) against F3's threshold, the sweep point's notification makespans and their
    ratio, each finding's verdict and what flipped."""
    head = (
        f"{'knob':<26} {'value':<16} {'basis':<10} {'back none/vm/host':<17} "
        f"{'Reports vm/host':<15} {'RDMA down ms':>12} {'after vport ms vm/host (<= thr)':<31} "
        f"{'makespan ms vm/host':<19} {'ratio':>5}  F1    F2    F3    F4    flipped"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        cells = row_cells(r)
        shown_after = f"{cells['after']} (<= {r['threshold_ms']:g})"
        value = r["value"] if r["knob"] != "defaults" else ""
        flipped = ", ".join(r["flipped"]) if r["flipped"] else ""
        lines.append(
            f"{r['knob']:<26} {value:<16} {r['basis']:<10} {cells['back']:<17} "
            f"{cells['reports']:<15} {cells['rdma_down']:>12} {shown_after:<31} "
            f"{cells['makespan']:<19} {cells['ratio']:>5}  "
            + "".join(f"{_verdict(r[f]):<6}" for f in FINDINGS)
            + ("FLIPPED " + flipped if flipped else "")
        )
    return lines


def sensitivity_note(rows: Sequence[dict[str, Any]], cost_n: int = COST_N) -> str:
    seeds = rows[0]["seeds"] if rows else DEFAULT_SEEDS
    return (
        "One knob varied at a time around the defaults (the first row); static assignment, "
        f"cached paths, seeds 1..{seeds} per strategy. 'back': peer connections back over "
        "the seeds without signalling, per-VM, per-host. 'Reports': per migration event in "
        "the lab (n = 6, m = 2). 'RDMA down': VF detach to vport up (per-host, median). "
        "'after vport': the last peer back after the VM's vport came up, worst seed, "
        "against F3's threshold (two message intervals and one reconnection). 'makespan': "
        f"alias move to the last ReportResp at n = {cost_n}, m = {COST_M} ('not re-run' for "
        "knobs that do not act on the SA's work per event); 'ratio': per-host's over "
        "per-VM's. F1: per-host n and per-VM n*m Reports; F2: every peer back with "
        "signalling, none without; F3: no downtime beyond the vport plus one reconnection; "
        "F4: per-host's makespan below per-VM's. FLIPPED: the verdict differs from the "
        "defaults'. Not varied: " + "; ".join(NOT_VARIED) + "."
    )


def check_seeds(value: object, where: str = "--sensitivity-seeds") -> int:
    """Seeds per strategy and knob value: 0 (no section) to MAX_SEEDS."""
    from ibmig.errors import ConfigError

    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEEDS:
        raise ConfigError(f"must be a whole number from 0 to {MAX_SEEDS}, got {value!r}", where)
    return value


def quick_knobs() -> tuple[Knob, ...]:
    """`--quick` (tests): the VF detach (lab only) and the SA's service time (costs)."""
    return tuple(k for k in KNOBS if k.name in ("VF detach", "sa_ns"))


__all__ = [
    "COST_M",
    "COST_N",
    "DEFAULT_SEEDS",
    "KNOBS",
    "Knob",
    "SensitivityPoint",
    "cost_row",
    "lab_row",
    "plan",
    "sensitivity_note",
    "sensitivity_table",
    "summarize",
]

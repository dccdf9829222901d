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
    link_width = "4x"               # optional: every cable at this width ("1x" ... "12x")
    link_speed = "EDR"              # and/or speed ("SDR" ... "NDR"); default: as the
                                    # topology says (a net file without them, and the
                                    # generators: 4x SDR, ibsim's default)

    [hosts]
    n = 8                           # physical servers hosting VMs
    m = 2                           # VMs per server
    vfs = 4                         # VFs per HCA (must leave room for incoming VMs)
    placement = "spread"            # "spread" (over leaf switches) or "packed" or "random"
    model = "shared-port"           # SR-IOV model, or "vswitch": a LID per VF (needs
                                    # static assignment; see ibmig.core.sm.vswitch)
    vswitch_lids = "prepopulated"   # used by vswitch only: every VF a LID at bring-up,
                                    # or "dynamic": a LID when a VM starts

    [workload]
    peers = 3                       # p: clients of each migrated VM
    interval_us = 20
    message_bytes = 64
    path_cache = "cached"           # or "query"; cached: the client keeps its
                                    # PathRecord across reconnects (SA caching)
    peer_hosts = 0                  # 0: peers drawn among every other host's VMs;
                                    # k: among the VMs of k hosts (h_p <= k)
    direction = "to-vm"             # peers are clients of the migrated VM; "from-vm":
                                    # it is their client; "both": one stream each way

    [signalling]
    assignment = "static"           # or "dynamic"
    strategy = "per-host"           # "none", "per-vm", "per-host" or "targeted"
    notice = "trap69"               # or "trap64-65": GID out of / in service; or
                                    # "trap69-path": trap 69 carrying the new path's
                                    # SL, MTU, rate, PacketLifeTime (no PathRecord query)

    [[migrations]]
    vm = 0                          # VM index
    to_host = 5                     # host index (default: the next host with a free VF)
    at_ms = 2.0
    abort_ms = 500.0                # optional: abort it this long after its start
                                    # (the VM goes on at its source)
    with_clients = false            # optional: the VM's clients migrate at the same
                                    # time (both ends of each connection move)

    [[migrations]]                  # storms: instead of vm, evacuate hosts
    host = 2                        # every VM of host 2 at once (its m VMs)
    # hosts = [0, 1]                # or k hosts evacuating together
    at_ms = 3.0

    [orchestration]                 # how the toolstack and the guest's stack behave
    alias_registration = "after_reinit"   # or "at_attach", "before_stop_copy"
    dreq_on_detach = true           # the guest's connections send a DREQ as the VF goes

    [sa]
    packet_life_time = 18           # PathRecord PacketLifeTime (OpenSM's); or "hops"
    guid_info_answer = "before_write"     # OpenSM's order; or "after_write"

    [run]
    seed = 0
    duration_ms = 40.0
    routing = "minhop"

    [partitions]                    # optional: OpenSM partitions.conf, as a file or
    file = "partitions.conf"        # (relative to the scenario file) or inline text;
    # text = "Red=0x0101 : vm0=full, vm1=full, host2=full ;"
                                    # hostN (its port) and vmN (its vGUID; static
                                    # assignment) may stand in for GUIDs

    [[faults.loss]]                 # packets lost at random on a cable, from a time
    link = "leaf0:3"                # a cable end, "node:port"; or all = true (every cable)
    rate = 0.1
    from_ms = 2.0                   # until_ms: optional end
    [[faults.link_down]]
    link = "leaf0:4"
    at_ms = 3.0                     # up_ms: optional, the cable back up
    [[faults.dom0_restart]]
    host = "host3"                  # dom0 dies and comes back with no state
    at_ms = 4.0
    [[faults.sa_restart]]
    at_ms = 5.0                     # the SA loses its state (subscriptions)
    [faults.standby_sm]             # a second SM and SA (priority 0; the master's is 1)
    node = "H-0035"                 # optional: a CA hosting no VM (default: the last one)
    polling_timeout_ms = 10000      # OpenSM sminfo_polling_timeout
    polling_retry_number = 4        # OpenSM polling_retry_number
    sa_db_handover = true           # the new master loads the master's SA database
    [[faults.sm_fail]]
    at_ms = 6.0                     # the master SM's process dies; the standby takes over

Fault times, like migration times, count from the end of the set-up (every VM up).
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

from ibmig.core.guest.config import PATH_CACHE_POLICIES
from ibmig.core.host import AddressAssignment
from ibmig.core.migration.machine import AliasRegistration
from ibmig.core.sa.admin import GUID_INFO_ANSWERS, OPENSM_SUBNET_TIMEOUT
from ibmig.core.sa_client import NOTICES
from ibmig.core.sm.manager import SmConfig
from ibmig.core.sm.routing import ROUTING_ENGINES, RoutingEngine
from ibmig.core.sm.vswitch import VfLids
from ibmig.errors import ConfigError, shown
from ibmig.experiments.strategies import STRATEGIES, Strategy
from ibmig.fabric import GENERATORS, TopologyGenerator
from ibmig.fabric.model import LinkSpeed, LinkWidth
from ibmig.fabric.partitions import PartitionConfig, parse_partitions
from ibmig.sim.latency import LatencyModel
from ibmig.wire.smp import MAX_HOP_COUNT

DIRECTIONS: Final = ("to-vm", "from-vm", "both")
"""`workload.direction`: who is the client of each connection (`WorkloadConfig`)."""

# The closed vocabularies a scenario names are registries defined next to what they
# select (strategies, routing engines, generators, address assignment); the parser
# turns names into their entries. Placement is the runner's own.
ASSIGNMENTS: Mapping[str, AddressAssignment] = {a.value: a for a in AddressAssignment}
PLACEMENTS = ("spread", "packed", "random")
SRIOV_MODELS = ("shared-port", "vswitch")
VF_LID_SCHEMES: Mapping[str, VfLids] = {s.value: s for s in VfLids}

# Bounds that keep a run finite, each with its reason in the error line.
MAX_DURATION_MS: Final = 86_400_000
"""run.duration_ms at most one day of simulated time: a migration takes seconds;
past a day, broken connections retrying every 100 ms and the workload's messages
make a run's events grow without telling anyone anything new."""
MIN_INTERVAL_US: Final = 1.0
"""workload.interval_us at least 1 us: each message is a few simulated events."""
MAX_WORKLOAD_MESSAGES: Final = 10_000_000
"""The workload's messages in a run at most (peers x migrations x duration /
interval): each costs a few events, and the simulator runs on the order of 10^5
events a second, so this is minutes of work."""
HCA_GUID_CAP: Final = 128
"""GUIDInfo entries per HCA port, as the simulator's HCAs answer
(`ibmig.sim.subnet.node_spec`, ConnectX-3 and later in SR-IOV mode): index 0 is the
PF's own GUID and each VF takes one, so at most 127 VFs."""
MAX_VFS: Final = HCA_GUID_CAP - 1
SEED_RULE: Final = "must be an integer >= 0"


def check_seed(value: object, where: str) -> int:
    """The one rule for a run's seed, in a file or on the command line."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{SEED_RULE}, got {shown(value)}", where)
    return value


_Entry = TypeVar("_Entry")


@dataclass(frozen=True, slots=True)
class TopologyConfig:
    file: str | None = "ft2-36"
    generator: TopologyGenerator | None = None
    params: tuple[tuple[str, int], ...] = ()
    link_width: LinkWidth | None = None
    """Every cable at this width (None: as the topology says)."""
    link_speed: LinkSpeed | None = None
    """Every cable at this lane speed (None: as the topology says)."""


LINK_WIDTHS: Mapping[str, LinkWidth] = {w.label: w for w in LinkWidth}
LINK_SPEEDS: Mapping[str, LinkSpeed] = {s.name: s for s in LinkSpeed}


@dataclass(frozen=True, slots=True)
class HostsConfig:
    n: int = 8
    m: int = 2
    vfs: int = 4
    placement: str = "spread"
    vswitch: VfLids | None = None
    """The SR-IOV model: None for shared port, else vSwitch with this VF LID scheme."""


@dataclass(frozen=True, slots=True)
class WorkloadConfig:
    peers: int = 3
    interval_us: float = 20.0
    message_bytes: int = 64
    path_cache: str = "cached"
    peer_hosts: int = 0
    """0: a VM's peers are drawn among the VMs of every other host; k: among those of
    k other hosts drawn first (`ibmig.experiments.workload`)."""
    direction: str = "to-vm"
    """Who connects to whom (`ibmig.experiments.workload`): "to-vm", each peer is a
    client of the migrated VM (its CM is the active side); "from-vm", the migrated
    VM is a client of each peer; "both", one connection each way per peer."""


@dataclass(frozen=True, slots=True)
class SignallingConfig:
    assignment: AddressAssignment = AddressAssignment.STATIC
    strategy: Strategy = STRATEGIES["per-host"]
    notice: str = "trap69"
    """How the SA tells a move: "trap69" (ibmig's own DataDetails with the new LID),
    "trap69-path" (those and the new path's values, `ibmig.wire.notice`) or
    "trap64-65" (trap 65 then 64 with only the GID; subscribers ask for the
    PathRecord, as OFED's local SA cache does)."""


@dataclass(frozen=True, slots=True)
class MigrationEvent:
    vm: int
    to_host: int | None
    at_ms: float
    abort_ms: float | None = None
    """Abort the migration this long after its start (None: never)."""
    with_clients: bool = False
    """The VM's clients (the workload's peers of it) migrate at the same time, each
    to the next host with a free VF (those the scenario migrates itself excepted)."""


@dataclass(frozen=True, slots=True)
class RunConfig:
    seed: int = 0
    duration_ms: float = 40.0
    routing: RoutingEngine = ROUTING_ENGINES["minhop"]


@dataclass(frozen=True, slots=True)
class LinkLoss:
    """Loss on one cable (`link`, "node:port"), or on every cable (`link` None)."""

    link: str | None
    rate: float
    from_ms: float
    until_ms: float | None
    where: str
    """The scenario entry, for errors found once the fabric is known."""


@dataclass(frozen=True, slots=True)
class LinkDown:
    link: str
    at_ms: float
    up_ms: float | None
    where: str


@dataclass(frozen=True, slots=True)
class Dom0Restart:
    host: int
    """Host index (the host named "host<index>")."""
    at_ms: float


@dataclass(frozen=True, slots=True)
class SaRestart:
    at_ms: float


@dataclass(frozen=True, slots=True)
class StandbySm:
    """A standby SM and SA (`ibmig.sim.hosting.VirtualizedSubnet.add_standby_sm`)."""

    node: str | None
    """A CA's name or description; None: the last cabled CA hosting no VM."""
    polling_timeout_ms: float
    polling_retry_number: int
    sa_db_handover: bool
    where: str


@dataclass(frozen=True, slots=True)
class SmFail:
    at_ms: float


@dataclass(frozen=True, slots=True)
class FaultsConfig:
    """The `[faults]` table (module docstring); empty: a run without faults."""

    loss: tuple[LinkLoss, ...] = ()
    link_down: tuple[LinkDown, ...] = ()
    dom0_restart: tuple[Dom0Restart, ...] = ()
    sa_restart: tuple[SaRestart, ...] = ()
    standby_sm: StandbySm | None = None
    sm_fail: tuple[SmFail, ...] = ()

    def __bool__(self) -> bool:
        return bool(
            self.loss or self.link_down or self.dom0_restart or self.sa_restart or self.sm_fail
        )


@dataclass(frozen=True, slots=True)
class PartitionsSource:
    """A scenario's partitions.conf: its text and where it came from (file or key)."""

    text: str
    source: str

    def parse(self, names: Mapping[str, int]) -> PartitionConfig:
        return parse_partitions(self.text, self.source, names)


ALIAS_REGISTRATIONS: Final = tuple(a.value for a in AliasRegistration)


@dataclass(frozen=True, slots=True)
class OrchestrationConfig:
    """The `[orchestration]` table: when the destination registers the alias GUID
    (`ibmig.core.migration.machine.AliasRegistration`; default after the driver
    re-init, as mlx4) and whether the guest's connections send a DREQ when the VF
    goes (`GuestConfig.dreq_on_detach`; default yes, as Linux ib_cm)."""

    alias_registration: AliasRegistration = AliasRegistration.AFTER_REINIT
    dreq_on_detach: bool = True


@dataclass(frozen=True, slots=True)
class SaSettings:
    """The `[sa]` table: PathRecord PacketLifeTime (None: hop based) and when a
    GUIDInfoRecord Set/Delete is answered (`ibmig.core.sa.admin.SaConfig`)."""

    packet_life_time: int | None = OPENSM_SUBNET_TIMEOUT
    guid_info_answer: str = "before_write"


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
    faults: FaultsConfig = field(default_factory=FaultsConfig)
    orchestration: OrchestrationConfig = field(default_factory=OrchestrationConfig)
    sa: SaSettings = field(default_factory=SaSettings)
    source: str = "<scenario>"
    partitions: PartitionsSource | None = None


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
            raise ConfigError(f"must be an integer, got {shown(value)}", self._where(key))
        if value < low or (high is not None and value > high):
            bound = f"{low}..{high}" if high is not None else f">= {low}"
            raise ConfigError(f"must be {bound}, got {value}", self._where(key))
        return value

    def float(
        self, key: str, default: float, low: float, high: float | None = None, why: str = ""
    ) -> float:
        """A finite number in low..high (`why` says where `high` comes from)."""
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"must be a number, got {shown(value)}", self._where(key))
        if not math.isfinite(value):
            raise ConfigError(f"must be a finite number, got {value}", self._where(key))
        if value < low:
            raise ConfigError(f"must be >= {low:g}, got {value:g}", self._where(key))
        if high is not None and value > high:
            bound = f"{int(high):,}" if float(high).is_integer() else f"{high:g}"
            raise ConfigError(f"must be <= {bound}{why}, got {value:g}", self._where(key))
        return float(value)

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self._get(key, default)
        if value not in choices:
            raise ConfigError(
                f"must be one of {', '.join(choices)}, got {shown(value)}", self._where(key)
            )
        return str(value)

    def entry(self, key: str, default: str, registry: Mapping[str, _Entry]) -> _Entry:
        """The registry entry named by `key` (a string in the file)."""
        return registry[self.choice(key, default, tuple(registry))]

    def optional_str(self, key: str) -> str | None:
        value = self._get(key, None)
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"must be a string, got {shown(value)}", self._where(key))
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
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"must be a finite number, got {value}", f"{where}.{key}")
    return tuple(sorted(data.items()))


def scenario_from_dict(data: dict[str, Any], source: str = "<scenario>") -> Scenario:
    root = _Section(data, f"{source}:")

    topo = _Section(root._get("topology", {}), f"{source}: topology")
    file = topo.optional_str("file")
    generator_name = topo.optional_str("generator")
    link_width = None
    if topo.data.get("link_width") is not None:
        link_width = topo.entry("link_width", "4x", LINK_WIDTHS)
    link_speed = None
    if topo.data.get("link_speed") is not None:
        link_speed = topo.entry("link_speed", "SDR", LINK_SPEEDS)
    generator: TopologyGenerator | None = None
    params: list[tuple[str, int]] = []
    if generator_name is not None:
        generator = GENERATORS.get(generator_name)
        if generator is None:
            raise ConfigError(
                f"must be one of {', '.join(GENERATORS)}, got {shown(generator_name)}",
                f"{source}: topology.generator",
            )
        if file is not None:
            raise ConfigError("give file or generator, not both", f"{source}: topology")
        for key, value in topo.data.items():
            if key in ("file", "generator", "link_width", "link_speed"):
                continue
            topo.used.add(key)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(
                    f"must be an integer, got {shown(value)}", f"{source}: topology.{key}"
                )
            params.append((key, value))
    elif file is None:
        file = "ft2-36"
    topo.finish()

    hosts_s = _Section(root._get("hosts", {}), f"{source}: hosts")
    # vswitch_lids is checked under either model (and used by vswitch only), so that
    # one file can be swept over hosts.model.
    vf_lids = hosts_s.entry("vswitch_lids", "prepopulated", VF_LID_SCHEMES)
    model = hosts_s.choice("model", "shared-port", SRIOV_MODELS)
    vswitch = vf_lids if model == "vswitch" else None
    hosts = HostsConfig(
        n=hosts_s.int("n", 8, 2),
        m=hosts_s.int("m", 2, 1),
        vfs=hosts_s.int("vfs", 0, 0),
        placement=hosts_s.choice("placement", "spread", PLACEMENTS),
        vswitch=vswitch,
    )
    hosts_s.finish()
    for key in ("vfs", "m"):
        value = getattr(hosts, key)
        if value > MAX_VFS:
            raise ConfigError(
                f"must be at most {MAX_VFS}: an HCA port's GUIDInfo table holds "
                f"{HCA_GUID_CAP} GUIDs, the PF's own and one per VF (a VF per VM), got {value}",
                f"{source}: hosts.{key}",
            )
    if hosts.vfs == 0:
        # Room for two incoming VMs, within the port's GUIDInfo table.
        hosts = HostsConfig(
            hosts.n, hosts.m, min(hosts.m + 2, MAX_VFS), hosts.placement, hosts.vswitch
        )
    if hosts.vfs < hosts.m:
        raise ConfigError(f"must be at least m = {hosts.m}", f"{source}: hosts.vfs")

    work_s = _Section(root._get("workload", {}), f"{source}: workload")
    workload = WorkloadConfig(
        peers=work_s.int("peers", 3, 0),
        interval_us=work_s.float("interval_us", 20.0, MIN_INTERVAL_US),
        message_bytes=work_s.int("message_bytes", 64, 8, 4096),
        path_cache=work_s.choice("path_cache", "cached", PATH_CACHE_POLICIES),
        peer_hosts=work_s.int("peer_hosts", 0, 0),
        direction=work_s.choice("direction", "to-vm", DIRECTIONS),
    )
    work_s.finish()

    sig_s = _Section(root._get("signalling", {}), f"{source}: signalling")
    signalling = SignallingConfig(
        assignment=sig_s.entry("assignment", "static", ASSIGNMENTS),
        strategy=sig_s.entry("strategy", "per-host", STRATEGIES),
        notice=sig_s.choice("notice", "trap69", tuple(NOTICES)),
    )
    sig_s.finish()
    if hosts.vswitch is not None and signalling.assignment is not AddressAssignment.STATIC:
        raise ConfigError(
            'the vSwitch model moves a VM\'s LID with its vGUID: needs assignment = "static"',
            f"{source}: signalling.assignment",
        )

    run_s = _Section(root._get("run", {}), f"{source}: run")
    run = RunConfig(
        seed=check_seed(run_s._get("seed", 0), f"{source}: run.seed"),
        duration_ms=run_s.float(
            "duration_ms", 40.0, 0.001, MAX_DURATION_MS, " (one day of simulated time)"
        ),
        routing=run_s.entry("routing", "minhop", ROUTING_ENGINES),
    )
    run_s.finish()

    raw_migrations = root._get("migrations", [{"vm": 0, "at_ms": 2.0}])
    if not isinstance(raw_migrations, list):
        raise ConfigError("must be an array of tables ([[migrations]])", f"{source}: migrations")
    migrations: list[MigrationEvent] = []
    first_of: dict[int, int] = {}  # VM -> the entry that migrates it
    for i, entry in enumerate(raw_migrations):
        sec = _Section(entry, f"{source}: migrations[{i}]")
        where = f"{source}: migrations[{i}]"
        for vm in _migrating_vms(sec, hosts, where):
            if vm in first_of:
                # Its source would be wherever the first one left it, which the file
                # cannot know; and its peers are the first one's.
                raise ConfigError(
                    f"vm{vm} already migrates in migrations[{first_of[vm]}] "
                    "(a VM migrates at most once per run)",
                    f"{where}.{_vm_key(sec)}",
                )
            first_of[vm] = i
            to = sec._get("to_host", None)
            if to is not None and (
                not isinstance(to, int) or isinstance(to, bool) or not 0 <= to < hosts.n
            ):
                raise ConfigError(
                    f"must be a host index 0..{hosts.n - 1}", f"{source}: migrations[{i}].to_host"
                )
            if to is not None and to == vm // hosts.m:
                raise ConfigError(
                    f"host{to} is vm{vm}'s own host (VM i starts on host i // m)",
                    f"{source}: migrations[{i}].to_host",
                )
            at = sec.float("at_ms", 2.0, 0.0)
            if at >= run.duration_ms:
                raise ConfigError(
                    f"must be before run.duration_ms ({run.duration_ms})",
                    f"{source}: migrations[{i}].at_ms",
                )
            abort: float | None = None
            if sec._get("abort_ms", None) is not None:
                abort = sec.float(
                    "abort_ms", 0.0, 0.0, run.duration_ms - at,
                    " (run.duration_ms - at_ms: before the run ends)",
                )  # fmt: skip
            with_clients = sec._get("with_clients", False)
            if not isinstance(with_clients, bool):
                raise ConfigError(
                    f"must be true or false, got {shown(with_clients)}", f"{where}.with_clients"
                )
            sec.finish()
            migrations.append(MigrationEvent(vm, to, at, abort, with_clients))

    if workload.peers > hosts.n * hosts.m - 1:
        raise ConfigError(
            f"must be below the number of VMs ({hosts.n * hosts.m})", f"{source}: workload.peers"
        )
    if workload.peer_hosts > hosts.n - 1:
        raise ConfigError(
            f"must be at most the other hosts (n - 1 = {hosts.n - 1}), got {workload.peer_hosts}",
            f"{source}: workload.peer_hosts",
        )
    if workload.peer_hosts and workload.peers > workload.peer_hosts * hosts.m:
        raise ConfigError(
            f"{workload.peers} peers do not fit the VMs of {workload.peer_hosts} hosts "
            f"({workload.peer_hosts} x m = {workload.peer_hosts * hosts.m})",
            f"{source}: workload.peers",
        )

    orch_s = _Section(root._get("orchestration", {}), f"{source}: orchestration")
    registration = orch_s.choice("alias_registration", "after_reinit", ALIAS_REGISTRATIONS)
    dreq = orch_s._get("dreq_on_detach", True)
    if not isinstance(dreq, bool):
        raise ConfigError(
            f"must be true or false, got {shown(dreq)}", f"{source}: orchestration.dreq_on_detach"
        )
    orch_s.finish()
    orchestration = OrchestrationConfig(AliasRegistration(registration), dreq)

    sa_s = _Section(root._get("sa", {}), f"{source}: sa")
    plt = sa_s._get("packet_life_time", OPENSM_SUBNET_TIMEOUT)
    if plt == "hops":
        life: int | None = None
    elif isinstance(plt, str):
        raise ConfigError(
            f'must be an integer 0..63 or "hops", got {shown(plt)}',
            f"{source}: sa.packet_life_time",
        )
    else:
        life = sa_s.int("packet_life_time", OPENSM_SUBNET_TIMEOUT, 0, 0x3F)
    sa = SaSettings(life, sa_s.choice("guid_info_answer", "before_write", GUID_INFO_ANSWERS))
    sa_s.finish()

    latency = _scalars(root._get("latency", None), f"{source}: latency")
    _check_latency(latency, f"{source}: latency")

    timing = root._get("timing", {})
    if not isinstance(timing, dict):
        raise ConfigError("must be a table", f"{source}: timing")
    for key in timing:
        if key not in ("migration", "guest"):
            raise ConfigError("unknown key (known: guest, migration)", f"{source}: timing.{key}")
    scenario = Scenario(
        topology=TopologyConfig(file, generator, tuple(params), link_width, link_speed),
        hosts=hosts,
        workload=workload,
        signalling=signalling,
        migrations=tuple(migrations),
        run=run,
        latency=latency,
        migration_timing=_scalars(timing.get("migration"), f"{source}: timing.migration"),
        guest_timing=_scalars(timing.get("guest"), f"{source}: timing.guest"),
        faults=_faults(root._get("faults", None), f"{source}: faults", hosts, run),
        orchestration=orchestration,
        sa=sa,
        source=source,
        partitions=_partitions(root._get("partitions", None), source, hosts, signalling),
    )
    root.finish()
    _check_workload_budget(scenario)
    return scenario


def partition_names(hosts: HostsConfig) -> dict[str, int]:
    """The names a scenario's partitions.conf may use, with stand-in GUIDs (the
    runner gives the real ones once hosts are placed)."""
    names = {f"host{i}": 1 + i for i in range(hosts.n)}
    names.update({f"vm{i}": 1 + hosts.n + i for i in range(hosts.n * hosts.m)})
    return names


def _partitions(
    data: Any, source: str, hosts: HostsConfig, signalling: SignallingConfig
) -> PartitionsSource | None:
    if data is None:
        return None
    sec = _Section(data, f"{source}: partitions")
    file = sec.optional_str("file")
    text = sec.optional_str("text")
    sec.finish()
    if (file is None) == (text is None):
        raise ConfigError("give file or text (one of them)", f"{source}: partitions")
    if file is not None:
        path = Path(file)
        if not path.is_absolute() and Path(source).is_file():
            path = Path(source).parent / path
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read: {exc}", f"{source}: partitions.file") from None
        where = str(path)
    else:
        where = f"{source}: partitions.text"
    assert text is not None
    partitions = PartitionsSource(text, where)
    partitions.parse(partition_names(hosts))  # syntax and names, checked now
    if signalling.assignment is not AddressAssignment.STATIC and re.search(
        r"(?<!\w)vm\d+(?!\w)", text
    ):
        raise ConfigError(
            "names a VM, whose vGUID only static assignment fixes "
            '(signalling.assignment = "static")',
            f"{source}: partitions",
        )
    return partitions


def _vm_key(sec: _Section) -> str:
    """The key of a migration entry that names what migrates."""
    return next((k for k in ("host", "hosts") if k in sec.data), "vm")


def _migrating_vms(sec: _Section, hosts: HostsConfig, where: str) -> list[int]:
    """The VMs a [[migrations]] entry moves at once: `vm`, or every VM of `host`
    (a host evacuation), or of each of `hosts` (k hosts evacuating together). VM i
    starts on host i // m."""
    named = [k for k in ("vm", "host", "hosts") if k in sec.data]
    if len(named) > 1:
        raise ConfigError(f"give one of vm, host, hosts (got {', '.join(named)})", where)
    key = _vm_key(sec)
    if key == "vm":
        return [sec.int("vm", 0, 0, hosts.n * hosts.m - 1)]
    value = sec._get(key, None)
    chosen = value if key == "hosts" else [value]
    if key == "hosts" and (not isinstance(value, list) or not value):
        raise ConfigError(f"must be a non-empty list of host indices, got {shown(value)}",
                          f"{where}.hosts")  # fmt: skip
    for h in chosen:
        if not isinstance(h, int) or isinstance(h, bool) or not 0 <= h < hosts.n:
            raise ConfigError(
                f"must be host indices 0..{hosts.n - 1}, got {shown(value)}", f"{where}.{key}"
            )
    if len(set(chosen)) != len(chosen):
        raise ConfigError(f"names a host twice: {shown(value)}", f"{where}.{key}")
    return [h * hosts.m + j for h in chosen for j in range(hosts.m)]


def _entries(data: Any, where: str) -> list[_Section]:
    if data is None:
        return []
    if not isinstance(data, list):
        name = where.rsplit(".", 1)[-1]
        raise ConfigError(f"must be an array of tables ([[faults.{name}]])", where)
    return [_Section(entry, f"{where}[{i}]") for i, entry in enumerate(data)]


def _link_name(sec: _Section, required: bool = True) -> str | None:
    """A cable end "node:port" (the node's name in the topology); the node itself is
    looked up once the fabric is built (`ibmig.experiments.faults`)."""
    value = sec.optional_str("link")
    if value is None:
        if required:
            raise ConfigError('missing: a cable end, "node:port"', sec._where("link"))
        return None
    node, sep, port = value.rpartition(":")
    if not sep or not node or not port.isdigit() or not 0 < int(port) < 256:
        raise ConfigError(
            f'must be a cable end "node:port" (port 1..255), got {shown(value)}',
            sec._where("link"),
        )
    return value


def _fault_time(sec: _Section, key: str, run: RunConfig, after: float = 0.0) -> float:
    value = sec.float(key, after, after)
    if value >= run.duration_ms:
        raise ConfigError(f"must be before run.duration_ms ({run.duration_ms})", sec._where(key))
    return value


def _optional_time(sec: _Section, key: str, run: RunConfig, after: float) -> float | None:
    if sec.data.get(key) is None:
        sec.used.add(key)
        return None
    value = sec.float(key, after, after)
    if value <= after:
        raise ConfigError(f"must be after {after:g}, got {value:g}", sec._where(key))
    return value


def _faults(data: Any, where: str, hosts: HostsConfig, run: RunConfig) -> FaultsConfig:
    """The `[faults]` table (module docstring)."""
    if data is None:
        return FaultsConfig()
    table = _Section(data, where)
    loss: list[LinkLoss] = []
    for sec in _entries(table._get("loss", None), f"{where}.loss"):
        every = sec._get("all", False)
        if not isinstance(every, bool):
            raise ConfigError(f"must be true or false, got {shown(every)}", sec._where("all"))
        link = _link_name(sec, required=not every)
        if every and link is not None:
            raise ConfigError("give link or all = true, not both", sec._where("all"))
        rate = sec.float("rate", 0.0, 0.0, 1.0)
        start = _fault_time(sec, "from_ms", run)
        until = _optional_time(sec, "until_ms", run, start)
        sec.finish()
        loss.append(LinkLoss(link, rate, start, until, sec.where))
    downs: list[LinkDown] = []
    for sec in _entries(table._get("link_down", None), f"{where}.link_down"):
        link = _link_name(sec)
        assert link is not None
        at = _fault_time(sec, "at_ms", run)
        up = _optional_time(sec, "up_ms", run, at)
        sec.finish()
        downs.append(LinkDown(link, at, up, sec.where))
    restarts: list[Dom0Restart] = []
    names = [f"host{i}" for i in range(hosts.n)]
    for sec in _entries(table._get("dom0_restart", None), f"{where}.dom0_restart"):
        host = sec.optional_str("host")
        if host not in names:
            raise ConfigError(
                f"must be a host name host0..host{hosts.n - 1}, got {shown(host)}",
                sec._where("host"),
            )
        at = _fault_time(sec, "at_ms", run)
        sec.finish()
        restarts.append(Dom0Restart(names.index(host), at))
    sa: list[SaRestart] = []
    for sec in _entries(table._get("sa_restart", None), f"{where}.sa_restart"):
        at = _fault_time(sec, "at_ms", run)
        sec.finish()
        sa.append(SaRestart(at))
    standby = _standby_sm(table._get("standby_sm", None), f"{where}.standby_sm")
    fails: list[SmFail] = []
    for sec in _entries(table._get("sm_fail", None), f"{where}.sm_fail"):
        if standby is None:
            raise ConfigError("needs [faults.standby_sm] to take over", sec.where)
        if fails:
            raise ConfigError("at most one: one standby takes over once", sec.where)
        at = _fault_time(sec, "at_ms", run)
        sec.finish()
        fails.append(SmFail(at))
    table.finish()
    return FaultsConfig(
        tuple(loss), tuple(downs), tuple(restarts), tuple(sa), standby, tuple(fails)
    )


def _standby_sm(data: Any, where: str) -> StandbySm | None:
    if data is None:
        return None
    sec = _Section(data, where)
    node = sec.optional_str("node")
    timeout = sec.float("polling_timeout_ms", 10_000.0, 0.001)
    retries = sec.int("polling_retry_number", 4, 0, 255)
    handover = sec._get("sa_db_handover", True)
    if not isinstance(handover, bool):
        raise ConfigError(
            f"must be true or false, got {shown(handover)}", sec._where("sa_db_handover")
        )
    sec.finish()
    return StandbySm(node, timeout, retries, handover, where)


def _check_latency(latency: tuple[tuple[str, Any], ...], where: str) -> None:
    """The overrides make a `LatencyModel` (its own checks), and one under which the
    SM hears back from every node: a directed-route SMP over the longest path
    (`MAX_HOP_COUNT` hops, IBA Vol 1, 14.2.2) and back, with the SMA's and the SM's processing,
    must fit in the SM's transaction timeout, or every SMP is declared lost."""
    model = LatencyModel().with_overrides(dict(latency), where)
    timeout_ns = SmConfig().transaction_timeout_ns
    round_trip_ns = (
        2 * MAX_HOP_COUNT * (model.link_ns + model.switch_ns) + model.sma_ns + model.sm_ns
    )
    if round_trip_ns <= timeout_ns:
        return
    given = [key for key, _ in latency if key in ("link_ns", "switch_ns", "sma_ns", "sm_ns")]
    key = max(given, key=lambda k: getattr(model, k)) if given else "link_ns"
    raise ConfigError(
        f"an SMP {MAX_HOP_COUNT} hops away would take {round_trip_ns / 1e6:,.1f} ms there "
        f"and back, longer than the SM's {timeout_ns / 1e6:,.0f} ms transaction timeout "
        f"(OpenSM's transaction_timeout): keep 2 x {MAX_HOP_COUNT} x (link_ns + switch_ns) "
        "+ sma_ns + sm_ns within it",
        f"{where}.{key}",
    )


def _check_workload_budget(scenario: Scenario) -> None:
    """The workload's messages within `MAX_WORKLOAD_MESSAGES`, with the interval the
    guests will use (a `[timing.guest]` message_interval_ns overrides the workload's)."""
    source = scenario.source
    connections = scenario.workload.peers * len(scenario.migrations)
    if connections == 0:
        return
    interval_ns = scenario.workload.interval_us * 1000
    key = f"{source}: workload.interval_us"
    override = dict(scenario.guest_timing).get("message_interval_ns")
    if isinstance(override, int) and not isinstance(override, bool) and override > 0:
        interval_ns = override
        key = f"{source}: timing.guest.message_interval_ns"
    messages = connections * scenario.run.duration_ms * 1e6 / interval_ns
    if messages > MAX_WORKLOAD_MESSAGES:
        raise ConfigError(
            f"the workload would send {messages:,.0f} messages ({scenario.workload.peers} "
            f"peers x {len(scenario.migrations)} migrations x run.duration_ms / interval), "
            f"more than the {MAX_WORKLOAD_MESSAGES:,} a run simulates in minutes: raise the "
            "interval, or lower the peers or run.duration_ms",
            key,
        )


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

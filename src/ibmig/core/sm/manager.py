"""The subnet manager engine: discovery, LID assignment, routing, bring-up, resweeps.

Theory of operation
-------------------
A sweep is a pipeline of phases. Each phase issues SMPs; the phase ends when no SMP
is queued or outstanding, and the next one starts:

    DISCOVER   directed-route BFS from the SM's own port: NodeInfo Get along a
               path; a new node is then read (NodeDescription, SwitchInfo, PortInfo
               of every port) and every switch port whose physical link is up and
               whose far end is not known yet is probed with NodeInfo one hop
               further. A node reached a second time only adds a link.
    LIDS       every end port (switch port 0, CA ports) keeps the LID it had (ours
               from an earlier sweep, or a valid, unclaimed one it reports), the
               rest take the lowest free LIDs; PortInfo Set where LID or
               MasterSMLID differ.
    ROUTE      the routing engine computes every switch's LFT; SwitchInfo Set when
               LinearFDBTop or LifeTimeValue differ or PortStateChange is set
               (written back as 1, which clears it); LinearForwardingTable Set
               only for 64-entry blocks that differ from what was last programmed.
               With a partition configuration (`SmConfig.partitions`), P_KeyTable
               Set for every 32-entry block that differs from what was last
               written: end ports (their partitions and their VMs'), and switch
               ports toward a CA (the CA port's table; the ARM phase's PortInfo
               Set then turns on PartitionEnforcementInbound/Outbound), as OpenSM's
               osm_pkey_mgr.c. A GUIDInfo write that brings or takes a VM rewrites
               its port's table and the switch port's in front of it.
    ARM        PortInfo Set PortState=Armed on every port in Init; on a switch's
               external port the same Set writes VLStallCount and HOQLife (a
               switch port with a settled link and other values gets a Set of
               its own, PortState unchanged).
    ACTIVATE   PortInfo Set PortState=Active on every Armed port; then SUBNET UP.

A trap 128 (link state change) from a switch starts a light resweep: the DISCOVER
phase is seeded with SwitchInfo and PortInfo Gets of the trapping switch only
(SwitchInfo for its PortStateChange, cleared in ROUTE); links that went
down are removed (with what is no longer reachable), links that came up are probed
as in a full sweep, and the later phases only touch what changed. A port of the
trapping switch read in Init on a link the database already holds (a flap: down and
back up between two reads) gets its far port read again, so that ARM and ACTIVATE
bring that end back to Active as well (`_reread_far_port`).

SM roles (`ibmig.core.sm.roles`, IBA Vol 1, 14.4): DISCOVER also reads SMInfo of
every other end port with IsSM in its CapabilityMask. When it ends, a master (or a
higher SM) found makes this SM STANDBY: it stops there, sends no Set, and polls
that SM's SMInfo every `sminfo_polling_timeout_ns`; after more than
`polling_retry_number` unanswered polls it takes over with a heavy sweep that
rewrites every port (MasterSMLID; ClientReregister where supported). Otherwise the
SM becomes MASTER and the later phases run. In that first sweep as master, when
discovery has ended and before LIDS, `restore_sa_db` (when set) loads the SA
database of the master it replaces (`ibmig.core.sa.database`), where OpenSM's
do_sweep loads its sa_db_file.

SMPs go out directed-route (pure DR, DrSLID = DrDLID = 0xFFFF), as OpenSM does
during sweeps, so they work before any LFT exists. At most `max_outstanding` SMPs
are on the wire at once (OpenSM's max_wire_smps): an unbounded window overruns the
agents, and ibsim deadlocks. Lost SMPs are resent after `transaction_timeout_ns`
up to `max_retries` times; then the node is treated as unreachable.

Faults (issue 13), as OpenSM handles them:

- A sweep in which an SMP got no answer after every retry, or an agent refused a
  Set, is not complete: OpenSM sets `subnet_initialization_error` and does not
  declare SUBNET UP until a sweep is clean. Here the SM then starts a *repair*
  sweep at once: a light sweep that issues again, as Gets, the SMPs that failed
  (so discovery goes on past a node it lost, and a port whose Set failed is read
  afresh) and reads the ports of the switches whose traps came meanwhile (they
  would otherwise wait for a SUBNET UP that loss may keep away), and whose LIDS,
  ROUTE, ARM and ACTIVATE phases touch only what is still not as wanted (LFT
  blocks whose Set failed are written again).
  A failed SMP is issued again along its old directed route only while that route
  still looks usable: a lost SMP on a lossy link is worth resending the same way.
  When the database now knows the route is broken (a port on it was read down in
  this or the last sweep, often because a trap made the SM read it, or a node on
  it was dropped as unreachable), resending cannot succeed: it would fail again at
  every repair sweep until the SM gave up. The SM runs a *rediscovery* sweep
  instead, as OpenSM does: its do_sweep (osm_state_mgr.c) turns every sweep after
  `subnet_initialization_error` into a heavy sweep, whose discovery walks every
  link up from the SM's port afresh, and its drop manager (osm_drop_mgr.c) drops
  what that walk did not find. Here the rediscovery re-reads every node it
  reaches, probes every link up even where the database already has one (so each
  node's path is one that works now), and at the end of DISCOVER forgets the links
  it did not confirm; whatever is still cut off is pruned. A plain heavy sweep
  (`start_sweep`) does not re-probe known links. The rediscovery counts as one of
  the repair sweeps below.
  Without OpenSM's periodic sweep (sweep_interval) nothing would ever retry a
  permanent failure, so after `max_error_sweeps` such sweeps in a row the SM gives
  up with `SweepFailed` and waits (for a trap, or its port) instead of looping.
- The SM's own port going down (a local port event, `local_port_changed`): a heavy
  sweep reads the port at hop 0, finds it down, and, as OpenSM's do_sweep does
  ("SM port is down"), drops its ports from service, leaves MASTER for DISCOVERING
  and stops with `SweepFailed`; the port coming back starts a heavy sweep.
- More end ports than unicast LIDs (0x0001-0xBFFF): the LIDS phase refuses with
  `LidSpaceExhausted` rather than assigning multicast or out-of-range LIDs.
- A node more than 63 hops away cannot be reached by a directed-route SMP: each
  such port skipped is reported (`HopLimitReached`), once per sweep.

The vSwitch SR-IOV model (`ibmig.core.sm.vswitch`, off unless a hypervisor reports
its VFs): VF LIDs are kept out of the LIDS phase's choice and recorded as extra LIDs
of their physical port; ROUTE gives each the PF's egress on every switch; moving a
VM's LID (`vswitch_place`) sends, outside any sweep, only the LFT blocks it changes.
"""

from __future__ import annotations

import random
import struct
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, Protocol

import numpy as np

from ibmig.core.engine import PERMISSIVE_LID, QP0, Datagram, EventLog
from ibmig.core.sm.db import DrPath, NodeRecordData, PortRecordData, SubnetDb
from ibmig.core.sm.multicast import MulticastRoutes
from ibmig.core.sm.roles import (
    SmInfoControl,
    SmRole,
    SmSignal,
    SmStateChanged,
    control_signal,
    is_higher,
)
from ibmig.core.sm.routing import (
    RoutingError,
    RoutingInput,
    RoutingResult,
    roots_from_guids,
    route,
)
from ibmig.core.sm.vswitch import (
    VfLidAssigned,
    VfLidMoved,
    VfLids,
    VfLidsExhausted,
    VfLidsExhaustedError,
    VSwitchTable,
    full_reroute_smps,
)
from ibmig.core.timers import Timers
from ibmig.errors import ConfigError, WireError
from ibmig.fabric.partitions import (
    FULL_MEMBER,
    EndPortKind,
    PartitionConfig,
    resolve_keys,
)
from ibmig.wire.mad import MAD_SIZE, RESPONSE_BIT, MadStatus, Method
from ibmig.wire.notice import Notice, TrapNumber
from ibmig.wire.smp import (
    MAX_HOP_COUNT,
    DirectedRequests,
    Smp,
    make_get_resp,
    make_set,
    pack_directed_request,
    path_bytes,
    peek_directed,
)
from ibmig.wire.smp_attrs import (
    LFT_BLOCK_SIZE,
    PKEY_BLOCK_SIZE,
    GUIDInfo,
    LinearForwardingTable,
    NodeDescription,
    NodeInfo,
    NodeType,
    PhysPortState,
    PKeyTable,
    PortCapability,
    PortState,
    SMInfo,
    SmpAttr,
    SmState,
    SwitchInfo,
)

UNREACHABLE_PORT = 0xFF
MAX_UNICAST_LID = 0xBFFF
_TID_MATCH_MASK = (1 << 48) - 1  # ibsim rewrites the top 16 bits of request TIDs
_POLL_KEY = -1  # the polling deadline among the TID deadlines (TIDs are >= 0)
_VF_ROUTES_KEY = -2  # new VF LIDs to route, once for all given at the same instant
_CLIENT_REREGISTER = 0x80  # PortInfo byte 51, bit 7 (IBA Vol 1, 14.2.5.6)
_PI_STALL_HOQ = 42  # PortInfo byte 42: VLStallCount (bits 7..5) | HOQLife (4..0)
_PI_ENFORCEMENT = 43  # PortInfo byte 43: OperationalVLs | PartitionEnforcement In/Out | ...
_ENFORCE_BOTH = 0x0C  # PartitionEnforcementInbound (bit 3) | Outbound (bit 2)
_DEFAULT_PARTITION_ONLY = frozenset({0xFFFF})
_INVALID_FIELD = 0x001C
_LFT_ATTRIBUTE = int(SmpAttr.LINEAR_FORWARDING_TABLE)
# Per SMP class (SubnLIDRouted, SubnDirectedRoute), the bits of MAD byte 4 that hold
# status: a DR SMP's bit 15 is the D bit, not status (IBA Vol 1, 14.2.1.2).
_SMP_STATUS_HIGH = {0x01: 0xFF, 0x81: 0x7F}
_TID_PEEK = struct.Struct(">Q")  # TransactionID, MAD bytes 8..15 (IBA Vol 1, 13.4.2)
_LFT_SET = (_LFT_ATTRIBUTE, int(Method.SET))  # its key in `smp_counts`
_new_tuple = tuple.__new__  # a NamedTuple from all its fields (`_transmit`)


class Phase(Enum):
    IDLE = "idle"
    DISCOVER = "discover"
    LIDS = "lids"
    ROUTE = "route"
    ARM = "arm"
    ACTIVATE = "activate"


@dataclass(frozen=True, slots=True)
class SmConfig:
    """Subnet manager settings; defaults follow OpenSM 3.3's opensm.conf."""

    routing: str = "minhop"
    root_guids: tuple[int, ...] = ()
    max_outstanding: int = 4  # OpenSM max_wire_smps
    transaction_timeout_ns: int = 200_000_000  # OpenSM transaction_timeout 200 ms
    max_retries: int = 3  # OpenSM transaction_retries
    max_error_sweeps: int = 32
    """Repair sweeps in a row (each after a sweep that lost SMPs) before the SM gives
    up and waits; OpenSM would retry at every sweep_interval (module docstring)."""
    subnet_timeout: int = 18  # OpenSM subnet_timeout: 4.096 us * 2^18 ~ 1 s
    subnet_prefix: int = 0xFE80_0000_0000_0000
    m_key: int = 0
    sm_sl: int = 0
    priority: int = 0  # OpenSM sm_priority (0..15)
    sm_key: int = 1  # OpenSM sm_key (its default is 1; SMs ignore SMs with another key)
    sminfo_polling_timeout_ns: int = 10_000_000_000  # OpenSM sminfo_polling_timeout 10 s
    polling_retry_number: int = 4  # OpenSM polling_retry_number
    keep_refused_alias_guids: bool = False
    """When a port refuses SubnSet(GUIDInfo) as unsupported (MAD status 0x0008, as
    every port of ibsim does), keep the alias GUIDs in the SM's database anyway and
    report the block as written: the SA's alias table and path-change notices then
    work although the port itself cannot hold them. Off: the write fails."""
    # Switch timeouts, in OpenSM's option names and with its defaults (osm_base.h;
    # OpenSM writes them in osm_link_mgr.c and osm_ucast_mgr.c). Exponents of
    # 4.096 us; 20 or more means infinite (IBA Vol 1, 14.2.5.4 and 14.2.5.6).
    packet_life_time: int = 0x12  # OpenSM packet_life_time: SwitchInfo LifeTimeValue
    head_of_queue_lifetime: int = 0x12  # OpenSM head_of_queue_lifetime: HOQLife, switch-switch
    leaf_head_of_queue_lifetime: int = 0x10  # OpenSM leaf_head_of_queue_lifetime: toward a CA
    vl_stall_count: int = 7  # OpenSM vl_stall_count: VLStallCount, switch-switch
    leaf_vl_stall_count: int = 7  # OpenSM leaf_vl_stall_count: VLStallCount toward a CA
    partitions: PartitionConfig | None = None
    """OpenSM's partitions.conf (`ibmig.fabric.partitions`): None, no P_Key table is
    written and every port is taken to be a full member of the default partition
    (OpenSM without a file: `Default=0x7fff : ALL=full ;`, tables left as found)."""
    partition_enforcement: bool = True
    """OpenSM part_enforce both (no_partition_enforcement off): a switch port toward
    a CA gets the CA port's P_Key table and PartitionEnforcementInbound/Outbound."""

    def __post_init__(self) -> None:
        for name, bits in (
            ("packet_life_time", 5),
            ("head_of_queue_lifetime", 5),
            ("leaf_head_of_queue_lifetime", 5),
            ("vl_stall_count", 3),
            ("leaf_vl_stall_count", 3),
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value < 1 << bits:
                raise ConfigError(f"{name} must fit {bits} bits", f"sm.{name}")


# --- events ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SweepStarted:
    sweep: int
    light: bool
    time_ns: int


@dataclass(frozen=True, slots=True)
class SubnetUp:
    sweep: int
    time_ns: int
    smps_sent: int
    nodes: int
    end_ports: int


@dataclass(frozen=True, slots=True)
class SweepFailed:
    sweep: int
    time_ns: int
    reason: str


@dataclass(frozen=True, slots=True)
class SweepIncomplete:
    """A sweep ended with SMPs that got no answer after every retry, or Sets the
    agents refused: no SUBNET UP; a repair sweep follows (module docstring)."""

    sweep: int
    time_ns: int
    failed_smps: int


@dataclass(frozen=True, slots=True)
class SmPortDown:
    """The SM's own port is down: nothing can be configured until it comes back."""

    sweep: int
    time_ns: int


@dataclass(frozen=True, slots=True)
class LidSpaceExhausted:
    """The fabric has more end ports than there are unicast LIDs."""

    sweep: int
    time_ns: int
    needed: int
    available: int


@dataclass(frozen=True, slots=True)
class HopLimitReached:
    """A link up at (node_guid, port) leads further than a directed-route SMP can
    go (63 hops, IBA Vol 1, 14.2.2): what lies beyond is not discovered."""

    time_ns: int
    node_guid: int
    port: int
    hops: int


@dataclass(frozen=True, slots=True)
class PortsChanged:
    """End ports that came into service (got a LID and went Active) or left it."""

    time_ns: int
    in_service: tuple[int, ...]
    out_of_service: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class TrapReceived:
    time_ns: int
    trap_number: int
    issuer_lid: int


@dataclass(frozen=True, slots=True)
class SmpFailed:
    """An SMP that got no answer after every retry, or an error status."""

    time_ns: int
    attribute_id: int
    path: DrPath
    status: int


@dataclass(frozen=True, slots=True)
class RoutingFallback:
    """The configured engine refused the topology; minhop routed it instead."""

    time_ns: int
    engine: str
    reason: str


class SmListener(Protocol):
    """What the SA (or anything co-located with the SM) hears from it directly."""

    def ports_changed(self, change: PortsChanged, now_ns: int) -> None: ...

    def subnet_up(self, event: SubnetUp, now_ns: int) -> None: ...

    def trap_received(self, notice: Notice, now_ns: int) -> None: ...


class SmpAnswer:
    """What a request's handler reads of its good answer: the SMP data and the
    directed route the request took (InitialPath[1..HopCount], as the answer carries
    it back). Taken straight from the bytes: decoding every answer into a 17-field
    frozen `Smp` was 3 % of a bring-up's CPU."""

    __slots__ = ("data", "initial_ports")

    def __init__(self, data: bytes, initial_ports: DrPath) -> None:
        self.data = data
        self.initial_ports = initial_ports


Handler = Callable[[SmpAnswer, Any, int], None]
ErrorHandler = Callable[[int, int], None]  # (MAD status, or -1 for no answer; now_ns)


class _LftBlockFailed:
    """An LFT block Set that failed or got no answer: written again next sweep. A
    slotted object, not a closure: a bring-up has millions of them outstanding or
    queued at once."""

    __slots__ = ("block", "guid", "stale")

    def __init__(self, stale: set[tuple[int, int]], guid: int, block: int) -> None:
        self.stale = stale
        self.guid = guid
        self.block = block

    def __call__(self, _status: int, _now_ns: int) -> None:
        self.stale.add((self.guid, self.block))


class _LftBatch:
    """The LinearForwardingTable Sets of one switch not yet on the wire, each built
    (`take`) only when the window of outstanding SMPs has room for it. A bring-up
    programs every block of every switch (2.5 M on the 40,960-host tree): built all
    at once and queued they held 1.2 GB. Their TIDs are reserved when the batch is
    made, so every SMP goes out with the TID and in the order it would have had."""

    __slots__ = (
        "blocks",
        "count",
        "first_tid",
        "guid",
        "next",
        "path",
        "raw",
        "sets",
        "stale",
    )

    def __init__(
        self,
        guid: int,
        path: DrPath,
        raw: bytes,
        blocks: Sequence[int],
        first_tid: int,
        stale: set[tuple[int, int]],
        m_key: int,
    ) -> None:
        self.guid = guid
        self.path = path
        self.sets = DirectedRequests(
            Method.SET, _LFT_ATTRIBUTE, path_slot=path_bytes(path), hop_count=len(path),
            m_key=m_key,
        )  # fmt: skip
        self.raw = raw  # the whole new table, immutable while the batch drains
        self.blocks = blocks
        self.count = len(blocks)
        self.first_tid = first_tid
        self.stale = stale
        self.next = 0  # index in `blocks` of the next Set to build

    def take(self) -> _Request:
        """The next block's Set (the batch is done when `next == count`)."""
        index = self.next
        self.next = index + 1
        block = self.blocks[index]
        tid = (self.first_tid + index) & _TID_MATCH_MASK
        start = block * LFT_BLOCK_SIZE
        payload = self.sets.pack(tid, block, self.raw[start : start + LFT_BLOCK_SIZE])
        request = _Request(tid, payload, self.path, _LFT_ATTRIBUTE, _ignore, None)
        request.on_error = _LftBlockFailed(self.stale, self.guid, block)
        return request


class _Request:
    __slots__ = (
        "attr",
        "ctx",
        "deadline_ns",
        "handler",
        "in_sweep",
        "on_error",
        "path",
        "payload",
        "retries",
        "sequence",
        "tid",
    )

    def __init__(
        self, tid: int, payload: bytes, path: DrPath, attr: int, handler: Handler, ctx: Any
    ) -> None:
        self.tid = tid
        self.payload = payload
        self.path = path
        self.attr = attr
        self.handler = handler
        self.ctx = ctx
        self.retries = 0
        self.deadline_ns = 0
        self.sequence = 0  # its deadline's place among equal ones (`_transmit`)
        self.on_error: ErrorHandler | None = None
        self.in_sweep = True  # part of a sweep (not an alias GUID write for the SA)


class SubnetManager(EventLog[Any]):
    """The SM engine (see the module docstring)."""

    def __init__(
        self,
        *,
        port_num: int = 1,
        config: SmConfig | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config or SmConfig()
        self.port_num = port_num
        self.rng = rng or random.Random(0)
        self.db = SubnetDb(subnet_prefix=self.config.subnet_prefix)
        self.listeners: list[SmListener] = []
        self.phase = Phase.IDLE
        self.sweep = 0
        self.light = False
        self.smps_sent = 0
        self.smp_counts: Counter[tuple[int, int]] = Counter()
        self.retransmissions = 0
        self._init_event_log(True)
        self._tid = self.rng.getrandbits(24) << 24
        self._outbox: list[Datagram] = []
        self._queue: deque[_Request | _LftBatch] = deque()
        self._outstanding: dict[int, _Request] = {}
        # Deadlines: of the polls and VF routes (negative keys), and of TIDs (match
        # bits) in `_timeouts`, or in `_in_order` when they came in order (`_transmit`).
        self._timeouts: Timers[int] = Timers()
        self._in_order: dict[int, _Request] = {}
        self._in_order_last_ns = 0
        self._path_slots: dict[DrPath, bytes] = {}  # `_path_slot`
        self._request_tail = Datagram(b"", port_num, 0, PERMISSIVE_LID, QP0, QP0)[1:]
        self._guid_to_lid: dict[int, int] = {}  # stable LIDs across sweeps
        self._active_ports: set[int] = set()  # end-port GUIDs in service
        self._resweep_lids: set[int] = set()
        self._up_since_sweep: bool = False
        self.ever_up = False
        """The SM has reached SUBNET UP at least once: its database describes the
        subnet. An SA started later (a restarted one) answers from then on, as the
        SA that saw that SUBNET UP does, not only after the next one."""
        self._sweep_start_ns = 0
        self._sm_node_guid = 0
        # Path to each CA port (a CA answers for the port an SMP arrives on).
        self._port_paths: dict[tuple[int, int], DrPath] = {}
        # Faults (module docstring): sweep SMPs that got no answer (or Sets refused)
        # in this sweep,
        # the Gets among them to issue again, LFT blocks whose Set got no answer,
        # sweeps in a row that lost SMPs, a heavy sweep owed to a local port event,
        # endpoints already reported beyond the hop limit in this sweep.
        self._sweep_errors = 0
        self._failed_gets: list[_Request] = []
        self._stale_lft_blocks: set[tuple[int, int]] = set()
        self.multicast = MulticastRoutes()
        """Multicast members and MFTs (`ibmig.core.sm.multicast`)."""
        self._multicast_pending = False
        self._error_sweeps = 0
        self._heavy_pending = False
        # A rediscovery sweep (module docstring, faults) and the links it confirmed.
        self._rediscover = False
        self._links_seen: set[tuple[int, int]] = set()
        # Far ports a light sweep re-reads after a flap (_reread_far_port).
        self._far_reread: set[tuple[int, int]] = set()
        self._hop_limited: set[tuple[int, int]] = set()
        self.hop_limited_ports: set[tuple[int, int]] = set()
        """(node GUID, port) of links the last sweep could not follow: too far."""
        self.routing_input: RoutingInput | None = None
        self.routing_result: RoutingResult | None = None
        self.switch_order: list[int] = []
        # SM roles (module docstring; `ibmig.core.sm.roles`).
        self.role = SmRole()
        self.master_guid = 0  # the SM a standby polls
        self.remote_sms: dict[int, SMInfo] = {}  # other SMs by port GUID, as last read
        self._remote_sm_paths: dict[int, DrPath] = {}
        self._master_found = False
        self._poll_retries = 0
        self._poll_tid: int | None = None  # the poll on the wire (match bits)
        self._coming_out_of_standby = False
        self._first_master_sweep = False
        self.restore_sa_db: Callable[[int], None] | None = None
        """Called with `now_ns` once, in the first sweep after taking over from a
        master, when discovery has ended and before LIDs are assigned: where OpenSM's
        do_sweep loads its SA database file (`ibmig.core.sa.database`)."""
        self._partitions = (
            None
            if self.config.partitions is None
            else self.config.partitions.with_implicit_default()
        )
        # P_Key tables as last written: (node GUID, port) -> entries (no trailing zeros).
        self.pkey_tables: dict[tuple[int, int], tuple[int, ...]] = {}
        self.vswitch = VSwitchTable()
        """VF LIDs of the vSwitch model (`ibmig.core.sm.vswitch`); empty: shared port."""
        self.db.vf_lid = self.vswitch.lid_of_vm
        self._vf_pending: list[int] = []  # new VF LIDs not routed yet (_VF_ROUTES_KEY)

    # --- engine contract ------------------------------------------------------------

    def packets_to_send(self) -> list[Datagram]:
        out, self._outbox = self._outbox, []
        return out

    def get_timer(self) -> int | None:
        deadline = self._timeouts.next_deadline()
        if self._in_order:
            first = next(iter(self._in_order.values())).deadline_ns
            if deadline is None or first < deadline:
                return first
        return deadline

    def handle_timer(self, now_ns: int) -> None:
        timeouts = self._timeouts
        in_order = self._in_order
        while True:
            if in_order:
                # The earlier of the first in-order TID and the first other entry,
                # ties to the one armed first, as if all were in `_timeouts`.
                request = next(iter(in_order.values()))
                entry = timeouts.peek_entry() if timeouts else None
                if request.deadline_ns <= now_ns and (
                    entry is None or (request.deadline_ns, request.sequence) < entry[:2]
                ):
                    tid = request.tid & _TID_MATCH_MASK
                    del in_order[tid]
                    self._expire(self._outstanding.pop(tid), now_ns)
                    continue
            key = timeouts.pop_due(now_ns)
            if key is None:
                return
            if key == _POLL_KEY:
                self._poll(now_ns)
            elif key == _VF_ROUTES_KEY:
                pending, self._vf_pending = self._vf_pending, []
                self._write_vf_routes(now_ns, pending)
            else:
                self._expire(self._outstanding.pop(key), now_ns)

    def transaction_dropped(self, tid: int, now_ns: int) -> None:
        """The transport says the SMP with `tid` cannot be delivered (ibsim returns
        such a MAD at once with status 110): treat it as timed out now instead of at
        its deadline. Unknown TIDs (already answered or expired) are ignored."""
        request = self._answered(tid)
        if request is not None:
            self._expire(request, now_ns)

    def _expire(self, request: _Request, now_ns: int) -> None:
        if request.retries < self.config.max_retries:
            request.retries += 1
            self.retransmissions += 1
            self._transmit(request, now_ns)
        else:
            self._emit(SmpFailed(now_ns, request.attr, request.path, -1))
            if request.in_sweep:
                self._sweep_failed(request)
            if request.on_error is not None:
                request.on_error(-1, now_ns)
            self._request_done(now_ns)

    def receive(self, datagram: Datagram, now_ns: int) -> None:
        payload = datagram.payload
        if (
            len(payload) == MAD_SIZE
            and payload[3] & RESPONSE_BIT
            and payload[1] in _SMP_STATUS_HIGH
            and not (payload[4] & _SMP_STATUS_HIGH[payload[1]] or payload[5])
        ):
            # A good answer (status 0) to a request whose handler keeps nothing of it
            # (the millions of LFT block Sets of a bring-up): matched by TID without
            # decoding the SMP. Everything else not handled next takes the full path.
            request = self._outstanding.get(_TID_PEEK.unpack_from(payload, 8)[0] & _TID_MATCH_MASK)
            if request is not None and request.handler is _ignore:
                self._answered(request.tid)
                self._request_done(now_ns)
                return
            directed = None if request is None else peek_directed(payload)
            if request is not None and directed is not None:
                # A good directed-route answer to anything else (PortInfo, NodeInfo):
                # its handler reads the data and the route, sliced from the bytes as
                # `Smp.unpack` would give them (`SmpAnswer`).
                self._answered(request.tid)
                request.handler(SmpAnswer(*directed), request.ctx, now_ns)
                self._request_done(now_ns)
                return
        try:
            smp = Smp.unpack(payload)
        except WireError:
            return
        if smp.is_response:
            request = self._answered(smp.tid)
            if request is None:
                return  # late answer to a retransmitted request
            status = smp.status
            if status != 0:
                self._emit(SmpFailed(now_ns, smp.attribute_id, request.path, status))
                if request.in_sweep and request.payload[3] == Method.SET:
                    # OpenSM's "Set method failed" (ERR 3119): the sweep is not clean.
                    self._sweep_failed(request)
                if request.on_error is not None:
                    request.on_error(status, now_ns)
            else:
                request.handler(SmpAnswer(smp.data, smp.initial_ports), request.ctx, now_ns)
            self._request_done(now_ns)
        elif smp.method == Method.TRAP and smp.attribute_id == SmpAttr.NOTICE:
            self._on_trap(smp, datagram, now_ns)
        else:
            # An SM answers SMInfo Get and Set (IBA Vol 1, 14.4.1; `sminfo` reads
            # ActCount); everything else addressed to it is not supported.
            if smp.method == Method.GET and smp.attribute_id == SmpAttr.SM_INFO:
                answer = make_get_resp(smp, self.sm_info())
            elif smp.method == Method.SET and smp.attribute_id == SmpAttr.SM_INFO:
                self._on_sm_info_set(smp, datagram, now_ns)
                return
            else:
                answer = make_get_resp(smp, status=0x000C)
            self._outbox.append(
                datagram._replace(payload=answer.pack(), slid=datagram.dlid, dlid=datagram.slid)
            )

    # --- API ------------------------------------------------------------------------

    def start_sweep(self, now_ns: int) -> None:
        """Start a full (heavy) sweep from the SM's own port. A STANDBY or NOTACTIVE
        SM does not sweep (as OpenSM's do_sweep)."""
        if self.role.state not in (SmState.DISCOVERING, SmState.MASTER):
            return
        self._master_found = False
        self._heavy_pending = False
        self._new_sweep(False, now_ns)
        self._issue_get(SmpAttr.NODE_INFO, (), self._on_node_info, None, now_ns)

    def reregister_clients(self, now_ns: int) -> None:
        """The SA lost its state (restarted): sweep and set PortInfo:ClientReregister
        on every port that supports it, so that clients subscribe again (as OpenSM's
        first master sweep does)."""
        self._coming_out_of_standby = True
        if self.phase == Phase.IDLE:
            self.start_sweep(now_ns)
        else:
            self._heavy_pending = True

    def local_port_changed(self, now_ns: int) -> None:
        """The SM's own port changed state (its HCA's port event, which reaches the
        SM's process without an SMP: no trap can, its cable being the one that
        failed). A heavy sweep then reads the port and finds it down or back up;
        a sweep under way finishes first."""
        if self.phase == Phase.IDLE:
            self.start_sweep(now_ns)
        else:
            self._heavy_pending = True

    def _new_sweep(self, light: bool, now_ns: int) -> None:
        self.sweep += 1
        self.light = light
        self._sweep_start_ns = now_ns
        self._sweep_errors = 0
        self._failed_gets = []
        self._rediscover = False
        self._links_seen = set()
        self._far_reread = set()
        self._hop_limited = set()
        self._emit(SweepStarted(self.sweep, light, now_ns))
        self.phase = Phase.DISCOVER

    def sm_info(self) -> SMInfo:
        """This SM's SMInfo: its role's state and priority, with ActCount the number
        of SMPs sent (as OpenSM counts it)."""
        return SMInfo(
            guid=self.db.sm_port_guid,
            sm_key=self.config.sm_key,
            act_count=self.smps_sent & 0xFFFF_FFFF,
            priority=self.config.priority,
            sm_state=self.role.state,
        )

    @property
    def sm_state(self) -> SmState:
        return self.role.state

    @property
    def subnet_up(self) -> bool:
        return (
            self._up_since_sweep and self.phase == Phase.IDLE and self.role.state == SmState.MASTER
        )

    # --- transactions ---------------------------------------------------------------

    def _next_tid(self) -> int:
        self._tid = (self._tid + 1) & _TID_MATCH_MASK
        return self._tid

    def _issue(
        self,
        smp: Smp,
        path: DrPath,
        handler: Handler,
        ctx: Any,
        now_ns: int,
        on_error: ErrorHandler | None = None,
        in_sweep: bool = True,
    ) -> None:
        request = _Request(smp.tid, smp.pack(), path, smp.attribute_id, handler, ctx)
        request.on_error = on_error
        request.in_sweep = in_sweep
        self._submit(request, (smp.attribute_id, smp.method), now_ns)

    def _issue_directed(
        self,
        method: Method,
        attribute_id: int,
        data: bytes,
        path: DrPath,
        handler: Handler,
        ctx: Any,
        now_ns: int,
        modifier: int = 0,
        in_sweep: bool = True,
    ) -> None:
        """`_issue` of the pure directed-route SMP `make_request` would build, its
        bytes packed straight (`pack_directed_request`): the PortInfo Gets and Sets
        of a bring-up, several per port, skip building an `Smp` only to pack it."""
        tid = self._next_tid()
        payload = pack_directed_request(
            method, attribute_id, data, tid=tid, path_slot=self._path_slot(path),
            hop_count=len(path), attribute_modifier=modifier, m_key=self.config.m_key,
        )  # fmt: skip
        request = _Request(tid, payload, path, attribute_id, handler, ctx)
        request.in_sweep = in_sweep
        self._submit(request, (attribute_id, method), now_ns)

    def _path_slot(self, path: DrPath) -> bytes:
        """`path_bytes(path)`, kept: a bring-up sends several PortInfo SMPs along
        each node's path, and a lookup costs a fifth of building the bytes."""
        slot = self._path_slots.get(path)
        if slot is None:
            slot = self._path_slots[path] = path_bytes(path)
        return slot

    def _submit(self, request: _Request, counted: tuple[int, int], now_ns: int) -> None:
        """Send `request` now if the window of outstanding SMPs has room, else queue it."""
        self.smp_counts[counted] += 1
        if len(self._outstanding) < self.config.max_outstanding:
            self._transmit(request, now_ns)
        else:
            self._queue.append(request)

    def _submit_batch(self, batch: _LftBatch, now_ns: int) -> None:
        """`_submit` of each of a switch's LFT block Sets in turn, counted at once:
        those the window has room for go out now, the batch queues for the rest."""
        count = batch.count
        self.smp_counts[_LFT_SET] += count
        room = self.config.max_outstanding - len(self._outstanding)
        while room > 0 and batch.next < count:
            self._transmit(batch.take(), now_ns)
            room -= 1
        if batch.next < count:
            self._queue.append(batch)

    def _issue_get(
        self,
        attribute_id: int,
        path: DrPath,
        handler: Handler,
        ctx: Any,
        now_ns: int,
        modifier: int = 0,
    ) -> None:
        self._issue_directed(Method.GET, attribute_id, b"", path, handler, ctx, now_ns, modifier)

    def _issue_set(
        self,
        attribute: Any,
        path: DrPath,
        handler: Handler,
        ctx: Any,
        now_ns: int,
        modifier: int = 0,
        on_error: ErrorHandler | None = None,
        in_sweep: bool = True,
    ) -> None:
        smp = make_set(
            attribute,
            tid=self._next_tid(),
            attribute_modifier=modifier,
            path=path,
            m_key=self.config.m_key,
        )
        self._issue(smp, path, handler, ctx, now_ns, on_error, in_sweep)

    def _answered(self, tid: int) -> _Request | None:
        """The outstanding request with `tid`, no longer outstanding; None if unknown."""
        key = tid & _TID_MATCH_MASK
        request = self._outstanding.pop(key, None)
        if request is not None and self._in_order.pop(key, None) is None:
            self._timeouts.cancel(key)
        return request

    def _transmit(self, request: _Request, now_ns: int) -> None:
        # Transactions time out in the order they went out whenever the clock only
        # moves forward: their deadlines then queue in an insertion-ordered dict,
        # whose head is the earliest and from which an answer removes its TID at
        # once; a `Timers` entry per SMP (a tuple, lazily deleted and skipped) cost
        # more than a tenth of the SM's time per SMP. A deadline earlier than the
        # last in order (a clock that went back) goes to `_timeouts`.
        deadline = now_ns + self.config.transaction_timeout_ns
        request.deadline_ns = deadline
        key = request.tid & _TID_MATCH_MASK
        self._outstanding[key] = request
        in_order = self._in_order
        if not in_order or self._in_order_last_ns <= deadline:
            request.sequence = self._timeouts.take_sequence()
            in_order[key] = request
            self._in_order_last_ns = deadline
        else:
            self._timeouts.arm(key, deadline)
        self.smps_sent += 1
        # Every request leaves the same way: the Datagram is the payload and a tail
        # built once by the constructor (a tuple concatenation costs half as much
        # as the NamedTuple's Python-level __new__, twice per SMP of a bring-up).
        tail = self._request_tail
        sm_lid = self.db.sm_lid or 0
        if tail[0] != self.port_num or tail[1] != sm_lid:
            tail = Datagram(b"", self.port_num, sm_lid, PERMISSIVE_LID, QP0, QP0)[1:]
            self._request_tail = tail
        self._outbox.append(_new_tuple(Datagram, (request.payload, *tail)))

    def _request_done(self, now_ns: int) -> None:
        queue = self._queue
        while queue and len(self._outstanding) < self.config.max_outstanding:
            head = queue[0]
            if isinstance(head, _LftBatch):
                request = head.take()
                if head.next == head.count:
                    queue.popleft()
            else:
                queue.popleft()
                request = head
            self._transmit(request, now_ns)
        if not self._queue and not self._outstanding:
            self._phase_done(now_ns)

    # --- DISCOVER -------------------------------------------------------------------

    def _on_node_info(self, smp: SmpAnswer, ctx: Any, now_ns: int) -> None:
        path: DrPath = smp.initial_ports
        info = NodeInfo.unpack(smp.data)
        arrival = info.local_port_num
        new_link = False
        if ctx is not None:  # (node_guid, port) we probed from
            new_link = self.db.links.get(ctx) != (info.node_guid, arrival)
            self._add_link(ctx, (info.node_guid, arrival))
            if self._rediscover:
                self._links_seen.add(ctx)
                self._links_seen.add((info.node_guid, arrival))
        db = self.db
        node = db.nodes.get(info.node_guid)
        fresh = node is None or node.seen_in_sweep != self.sweep
        if node is None:
            node = NodeRecordData(info, "", path, seen_in_sweep=self.sweep)
            db.nodes[info.node_guid] = node
            self._issue_get(SmpAttr.NODE_DESCRIPTION, path, self._on_node_desc, node, now_ns)
        elif fresh:
            node.info = info
            node.path = path
            node.seen_in_sweep = self.sweep
        if not path:
            self._sm_node_guid = info.node_guid
            db.sm_port_guid = info.port_guid
        if node.is_switch:
            if fresh:
                self._issue_get(SmpAttr.SWITCH_INFO, path, self._on_switch_info, node, now_ns)
                for port in range(info.num_ports + 1):
                    self._issue_get(
                        SmpAttr.PORT_INFO, path, self._on_port_info, (node, port), now_ns, port
                    )
            elif new_link and self.light:
                # A link came (back) up and a light sweep reads only the trapping
                # switch: the far port's state on record is stale (Active from before
                # it went down). Read it, so that ARM and ACTIVATE set both ends: ibsim
                # refuses Active (status 0x001C) while the neighbour is still Init.
                self._issue_get(
                    SmpAttr.PORT_INFO, path, self._on_port_info, (node, arrival), now_ns, arrival
                )
        elif fresh or arrival not in node.ports:
            # A CA answers for the port the SMP arrived on; each port has its own path.
            record = node.ports.get(arrival)
            if record is None:
                node.ports[arrival] = PortRecordData(info.node_guid, arrival, info.port_guid)
            self._port_paths[(info.node_guid, arrival)] = path
            self._issue_get(
                SmpAttr.PORT_INFO, path, self._on_port_info, (node, arrival), now_ns, arrival
            )

    def _on_node_desc(self, smp: SmpAnswer, node: NodeRecordData, now_ns: int) -> None:
        node.description = NodeDescription.unpack(smp.data).description

    def _on_switch_info(self, smp: SmpAnswer, node: NodeRecordData, now_ns: int) -> None:
        info = SwitchInfo.unpack(smp.data)
        node.switch_info = info  # kept whole for the SA's SwitchInfoRecord
        node.lft_cap = info.linear_fdb_cap
        node.lft_top = info.linear_fdb_top

    def _on_port_info(self, smp: SmpAnswer, ctx: tuple[NodeRecordData, int], now_ns: int) -> None:
        node, port = ctx
        guid = node.node_guid
        record = node.ports.get(port)
        if record is None:
            port_guid = guid if node.is_switch else node.info.port_guid
            record = node.ports[port] = PortRecordData(guid, port, port_guid)
        record.set_raw(smp.data)
        if (port == 0) == node.is_switch and record.port_guid != self.db.sm_port_guid:
            self._check_sm_port(node, port, record, now_ns)
        if port == 0:
            return
        endpoint = (guid, port)
        link_up = record.physical_state == PhysPortState.LINK_UP
        known = endpoint in self.db.links
        if link_up and (not known or (self._rediscover and endpoint not in self._links_seen)):
            path = self._path_to_port(node, port)
            if node.is_switch or not path:  # CAs forward nothing, except the SM's own
                probe = (*path, port) if node.is_switch else (port,)
                if len(probe) <= MAX_HOP_COUNT:
                    self._issue_get(SmpAttr.NODE_INFO, probe, self._on_node_info, endpoint, now_ns)
                elif endpoint not in self._hop_limited:
                    self._hop_limited.add(endpoint)
                    self._emit(HopLimitReached(now_ns, guid, port, len(probe)))
        elif link_up and known and self.light and node.is_switch:
            if record.port_state == PortState.INIT:
                self._reread_far_port(node, port, now_ns)
        elif not link_up and known:
            self._remove_link(endpoint)

    def _reread_far_port(self, node: NodeRecordData, port: int, now_ns: int) -> None:
        """A light sweep read a switch port in Init on a link the database already
        holds, to the same far end: the link went down and came back up between two
        reads (a flap), so the far port went through Down to Init as well, and its
        record (Active from before) is stale. Without a fresh read ARM and ACTIVATE
        would skip it and leave it in Init under a SUBNET UP. Read it along this
        switch port, so those phases take both ends through Armed to Active again.

        OpenSM does the same in its own terms: a SwitchInfo with PortStateChange
        set, read in a light sweep, turns it into a heavy sweep (osm_sw_info_rcv.c,
        osm_state_mgr.c), whose PortInfo reads (osm_port_info_rcv.c) find the far
        port in Init, and osm_link_mgr.c brings it to Armed and Active."""
        far = self.db.links[(node.node_guid, port)]
        far_node = self.db.nodes.get(far[0])
        if far_node is None or far in self._far_reread:
            return
        probe = (*node.path, port)
        if len(probe) > MAX_HOP_COUNT:
            return  # out of directed-route reach: HopLimitReached already said so
        self._far_reread.add(far)
        self._issue_get(
            SmpAttr.PORT_INFO, probe, self._on_port_info, (far_node, far[1]), now_ns, far[1]
        )

    def _path_to_port(self, node: NodeRecordData, port: int) -> DrPath:
        if node.is_switch:
            return node.path
        return self._port_paths.get((node.node_guid, port), node.path)

    def _add_link(self, a: tuple[int, int], b: tuple[int, int]) -> None:
        links = self.db.links
        for end in (a, b):
            old = links.get(end)
            if old is not None and old not in (a, b):
                links.pop(old, None)  # recabled: forget the stale far end
        links[a] = b
        links[b] = a

    def _remove_link(self, endpoint: tuple[int, int]) -> None:
        other = self.db.links.pop(endpoint, None)
        if other is not None:
            self.db.links.pop(other, None)

    # --- phase machine --------------------------------------------------------------

    def _phase_done(self, now_ns: int) -> None:
        if self.phase == Phase.DISCOVER:
            if self._sm_node_guid not in self.db.nodes:
                # Not even the SM's own port answered: nothing to configure.
                self.phase = Phase.IDLE
                self._emit(SweepFailed(self.sweep, now_ns, "the SM's own port did not answer"))
                return
            if not self.light and self._sm_port_is_down():
                self._sm_port_lost(now_ns)
                return
            if self.light:
                self.hop_limited_ports |= self._hop_limited
            else:
                self.hop_limited_ports = set(self._hop_limited)
            if self._rediscover:
                # OpenSM's drop manager: what this walk did not reach is gone.
                seen = self._links_seen
                for endpoint in [end for end in self.db.links if end not in seen]:
                    self._remove_link(endpoint)
            self._prune_unreachable(now_ns)
            if self._discovery_decides_role(now_ns):
                return
            if self._first_master_sweep:
                self._first_master_sweep = False
                if self.restore_sa_db is not None:
                    self.restore_sa_db(now_ns)
            self.phase = Phase.LIDS
            if not self._assign_lids(now_ns):
                self.phase = Phase.IDLE
                return
        elif self.phase == Phase.LIDS:
            self.phase = Phase.ROUTE
            self._program_routes(now_ns)
            self._program_pkeys(now_ns)
        elif self.phase == Phase.ROUTE:
            self.phase = Phase.ARM
            self._set_port_states(PortState.INIT, PortState.ARMED, now_ns)
        elif self.phase == Phase.ARM:
            self.phase = Phase.ACTIVATE
            self._set_port_states(PortState.ARMED, PortState.ACTIVE, now_ns)
        elif self.phase == Phase.ACTIVATE:
            self.phase = Phase.IDLE
            if self._heavy_pending:  # the SM's port changed meanwhile: look again
                self.start_sweep(now_ns)
                return
            if self._sweep_errors:
                self._sweep_incomplete(now_ns)
                return
            self._error_sweeps = 0
            self._subnet_up(now_ns)
            return
        else:
            return
        if not self._queue and not self._outstanding:
            self._phase_done(now_ns)  # the phase had nothing to do

    # --- faults (module docstring) --------------------------------------------------

    def _sm_port_is_down(self) -> bool:
        """Whether the SM's own port, read at hop 0 in this heavy sweep, has no link."""
        node = self.db.nodes[self._sm_node_guid]
        record = node.ports.get(self.port_num)
        if record is None or not record.known:
            return False  # its PortInfo got no answer: a lost SMP, repaired as such
        return record.physical_state != PhysPortState.LINK_UP

    def _sm_port_lost(self, now_ns: int) -> None:
        """OpenSM's "SM port is down": the drop manager clears every record (all
        that lies beyond the SM's own port is unreachable now), the SM leaves MASTER
        for DISCOVERING, and nothing more happens until the port comes back."""
        self.phase = Phase.IDLE
        self._up_since_sweep = False
        self._error_sweeps = 0
        self._prune_unreachable(now_ns)
        db = self.db
        db.lid_owner = {lid: owner for lid, owner in db.lid_owner.items() if owner[0] in db.nodes}
        kept = {record.port_guid for node in db.nodes.values() for record in node.ports.values()}
        kept.add(self._sm_node_guid)
        db.port_lid = {guid: lid for guid, lid in db.port_lid.items() if guid in kept}
        went = tuple(sorted(self._active_ports))
        self._active_ports = set()
        self._emit(SmPortDown(self.sweep, now_ns))
        self._emit(SweepFailed(self.sweep, now_ns, "the SM's port is down"))
        if went:
            change = PortsChanged(now_ns, (), went)
            self._emit(change)
            for listener in self.listeners:
                listener.ports_changed(change, now_ns)

    def _sweep_incomplete(self, now_ns: int) -> None:
        """A sweep lost SMPs: no SUBNET UP. Repair, or give up after
        `max_error_sweeps` sweeps in a row (module docstring)."""
        self._error_sweeps += 1
        self._emit(SweepIncomplete(self.sweep, now_ns, self._sweep_errors))
        if self._error_sweeps > self.config.max_error_sweeps:
            self._error_sweeps = 0
            self._emit(
                SweepFailed(
                    self.sweep,
                    now_ns,
                    f"{self.config.max_error_sweeps + 1} sweeps in a row had SMPs fail "
                    f"({self._sweep_errors} in the last)",
                )
            )
            return
        failed = self._failed_gets
        if any(self._route_is_broken(request.path) for request in failed):
            self._start_rediscovery(now_ns)
            return
        self._new_sweep(True, now_ns)
        for node in self.db.nodes.values():
            node.seen_in_sweep = self.sweep  # known nodes are not read again
        for request in failed:
            modifier = int.from_bytes(request.payload[20:24], "big")
            self._issue_get(
                request.attr, request.path, request.handler, request.ctx, now_ns, modifier
            )
        # Traps that came during the failed sweep wait for SUBNET UP otherwise, which
        # lost SMPs may keep away for good: a port that came back up (a cable
        # reconnected) would never be found.
        self._read_trap_issuers(now_ns)
        if not self._queue and not self._outstanding:
            self._phase_done(now_ns)

    def _route_is_broken(self, path: DrPath) -> bool:
        """Whether the database says a directed route can no longer be followed: a
        node on it was dropped, a port it leaves by was read down, or a link it
        crosses (all but the last, which a NodeInfo probe may be the first to
        cross) is gone."""
        db = self.db
        guid = self._sm_node_guid
        last = len(path) - 1
        for hop, port in enumerate(path):
            node = db.nodes.get(guid)
            if node is None:
                return True
            record = node.ports.get(port)
            if (
                record is not None
                and record.known
                and record.physical_state != PhysPortState.LINK_UP
            ):
                return True
            if hop == last:
                break
            far = db.links.get((guid, port))
            if far is None:
                return True
            guid = far[0]
        return False

    def _start_rediscovery(self, now_ns: int) -> None:
        """A heavy sweep that walks every link up afresh (module docstring, faults):
        the repair sweep for SMPs whose directed routes are broken."""
        self._new_sweep(False, now_ns)
        self._rediscover = True
        self._master_found = False
        self._resweep_lids = set()  # every switch is read anyway
        self._issue_get(SmpAttr.NODE_INFO, (), self._on_node_info, None, now_ns)

    def _sweep_failed(self, request: _Request) -> None:
        """A sweep SMP failed. The repair sweep issues it again as a Get: what a
        failed Get asked for, and what a failed Set left unknown (the port may have
        taken a Set whose answer was lost, so the record is read afresh rather than
        trusted). LFT blocks are written again instead (`_lft_block_failed`)."""
        self._sweep_errors += 1
        if request.attr != SmpAttr.LINEAR_FORWARDING_TABLE:
            self._failed_gets.append(request)

    def _lft_block_failed(self, guid: int, block: int) -> ErrorHandler:
        return _LftBlockFailed(self._stale_lft_blocks, guid, block)

    def _prune_unreachable(self, now_ns: int) -> None:
        """Drop nodes no longer reachable from the SM and recompute every DR path as a
        shortest path over the known links (paths through a failed link are stale)."""
        db = self.db
        start = self._sm_node_guid
        if start not in db.nodes:
            return
        paths: dict[int, DrPath] = {start: ()}
        port_paths: dict[tuple[int, int], DrPath] = {}
        frontier = [start]
        sm_node = db.nodes[start]
        while frontier:
            following: list[int] = []
            for guid in frontier:
                node = db.nodes[guid]
                base = paths[guid]
                if node.is_switch:
                    ports = range(1, node.info.num_ports + 1)
                elif node is sm_node:
                    ports = range(self.port_num, self.port_num + 1)
                else:
                    continue
                for port in ports:
                    far = db.links.get((guid, port))
                    if far is None:
                        continue
                    far_guid, far_port = far
                    step = (*base, port)
                    if far_guid not in paths:
                        paths[far_guid] = step
                        following.append(far_guid)
                    if (far_guid, far_port) not in port_paths:
                        port_paths[(far_guid, far_port)] = step
            frontier = following
        port_paths[(start, self.port_num)] = ()
        gone = [guid for guid in db.nodes if guid not in paths]
        for guid in gone:
            node = db.nodes.pop(guid)
            for port in node.ports:
                self._remove_link((guid, port))
        for guid, path in paths.items():
            db.nodes[guid].path = path
        self._port_paths = port_paths
        # CA ports cut off from a still-reachable CA (multi-port hosts) leave too.
        for node in db.nodes.values():
            if not node.is_switch and node is not sm_node:
                for port in list(node.ports):
                    if (node.node_guid, port) not in db.links:
                        del node.ports[port]

    # --- LIDS -----------------------------------------------------------------------

    def _assign_lids(self, now_ns: int) -> bool:
        """Assign LIDs and write them; False (and `LidSpaceExhausted`) when the end
        ports outnumber the unicast LIDs."""
        db = self.db
        wanted: dict[int, int] = {}
        taken: set[int] = set()
        end_ports: list[PortRecordData] = []
        for node in db.nodes.values():
            for port in node.end_ports:
                record = node.ports.get(port)
                if record is None or not record.known:
                    continue
                end_ports.append(record)
        vf_lids = self.vswitch.port_of_lid
        if len(end_ports) + len(vf_lids) > MAX_UNICAST_LID:
            # One LID per end port (LMC 0); unicast LIDs are 0x0001-0xBFFF (IBA Vol 1,
            # 4.1.3). Refuse rather than hand out multicast or out-of-range LIDs.
            needed = len(end_ports) + len(vf_lids)
            self._emit(LidSpaceExhausted(self.sweep, now_ns, needed, MAX_UNICAST_LID))
            self._emit(
                SweepFailed(
                    self.sweep,
                    now_ns,
                    f"the fabric needs {needed:,} unicast LIDs; only {MAX_UNICAST_LID:,} "
                    "exist (0x0001-0xBFFF)",
                )
            )
            return False
        taken.update(vf_lids)  # the vSwitch's VF LIDs stay where they are
        # Ours first (stable across sweeps), then valid LIDs the ports already hold.
        for record in end_ports:
            lid = self._guid_to_lid.get(record.port_guid)
            if lid is not None and lid not in taken:
                wanted[record.port_guid] = lid
                taken.add(lid)
        for record in end_ports:
            if record.port_guid in wanted:
                continue
            lid = record.lid
            if 0 < lid <= MAX_UNICAST_LID and lid not in taken:
                wanted[record.port_guid] = lid
                taken.add(lid)
        next_lid = 1
        for record in end_ports:
            if record.port_guid in wanted:
                continue
            while next_lid in taken:
                next_lid += 1
            wanted[record.port_guid] = next_lid
            taken.add(next_lid)
        self._guid_to_lid.update(wanted)
        # The ports the last assignment held: one not among them was just found (new,
        # or back after it was dropped) and may have missed Reports meanwhile.
        held_before = set(db.port_lid)
        db.lid_owner = {}
        db.port_lid = {}
        for record in end_ports:
            lid = wanted[record.port_guid]
            db.lid_owner[lid] = (record.node_guid, record.port_num)
            db.port_lid[record.port_guid] = lid
        self._own_vf_lids()
        db.max_lid = max(db.lid_owner, default=0)
        sm_record = db.nodes[self._sm_node_guid].ports.get(self.port_num)
        db.sm_lid = wanted.get(sm_record.port_guid, 0) if sm_record else 0
        for record in end_ports:
            lid = wanted[record.port_guid]
            # Coming out of STANDBY, clients re-register with the new SM's SA (as
            # OpenSM does on its first master sweep); so does a port found again after
            # the subnet was up, whose subscriptions the SA may have dropped or whose
            # Reports were lost (OpenSM osm_lid_mgr.c: a port whose is_new is set).
            found_again = bool(held_before) and record.port_guid not in held_before
            rereg = (self._coming_out_of_standby or found_again) and bool(
                record.capability_mask & PortCapability.IS_CLIENT_REREGISTRATION_SUPPORTED
            )
            if record.lid == lid and record.master_sm_lid == db.sm_lid and not rereg:
                continue
            node = db.nodes[record.node_guid]
            self._issue_port_info_set(
                node, record, now_ns, lid=lid, master_sm_lid=db.sm_lid, client_reregister=rereg
            )
        return True

    def _issue_port_info_set(
        self,
        node: NodeRecordData,
        record: PortRecordData,
        now_ns: int,
        *,
        lid: int | None = None,
        master_sm_lid: int | None = None,
        port_state: int = PortState.NO_CHANGE,
        client_reregister: bool = False,
        timeouts: int | None = None,
        enforcement: int | None = None,
        in_sweep: bool = True,
    ) -> None:
        """SubnSet(PortInfo) built from the bytes the port last answered with, every
        writable "enable" field set to its no-change value (IBA Vol 1, 14.2.5.6:
        PortState, PortPhysicalState and LinkDownDefaultState 0, LinkWidthEnabled,
        LinkSpeedEnabled and LinkSpeedExtEnabled 0), and the fields being written
        patched in place: a sweep sends tens of thousands of these, and patching 64
        bytes is far cheaper than rebuilding a 51-field record."""
        raw = record.raw
        assert raw is not None
        data = bytearray(raw)
        if lid is not None:
            config = self.config
            data[0:8] = config.m_key.to_bytes(8, "big")
            data[8:16] = config.subnet_prefix.to_bytes(8, "big")
            data[16:18] = lid.to_bytes(2, "big")
            data[18:20] = (master_sm_lid or 0).to_bytes(2, "big")
            data[36] = (data[36] & 0xF0) | (config.sm_sl & 0x0F)  # NeighborMTU | MasterSMSL
            data[51] = (data[51] & 0x60) | (config.subnet_timeout & 0x1F)
            if client_reregister:
                data[51] |= _CLIENT_REREGISTER
        data[29] = 0  # LinkWidthEnabled: no change
        data[32] = (data[32] & 0xF0) | (port_state & 0x0F)  # LinkSpeedSupported | PortState
        data[33] = 0  # PortPhysicalState, LinkDownDefaultState: no change
        data[35] &= 0xF0  # LinkSpeedActive | LinkSpeedEnabled: no change
        data[63] &= 0xE0  # LinkSpeedExtEnabled: no change
        if timeouts is not None:
            data[_PI_STALL_HOQ] = timeouts
        if enforcement is not None:
            data[_PI_ENFORCEMENT] = (data[_PI_ENFORCEMENT] & ~_ENFORCE_BOTH) | enforcement
        port = record.port_num
        self._issue_directed(
            Method.SET, SmpAttr.PORT_INFO, bytes(data), self._path_to_port(node, port),
            self._on_port_info, (node, port), now_ns, port, in_sweep,
        )  # fmt: skip

    # --- ROUTE ----------------------------------------------------------------------

    def _build_routing_input(self) -> RoutingInput:
        db = self.db
        switches = [node for node in db.nodes.values() if node.is_switch]
        index = {node.node_guid: i for i, node in enumerate(switches)}
        self.switch_order = [node.node_guid for node in switches]
        links: list[tuple[int, int, int, int]] = []
        ca_ports: list[tuple[int, int, int]] = []
        for (guid, port), (far_guid, far_port) in db.links.items():
            if guid not in index:
                continue
            if far_guid in index:
                if (guid, port) < (far_guid, far_port):
                    links.append((index[guid], port, index[far_guid], far_port))
            else:
                far = db.nodes.get(far_guid)
                if far is None:
                    continue
                record = far.ports.get(far_port)
                lid = db.port_lid.get(record.port_guid) if record else None
                if lid is not None:
                    ca_ports.append((lid, index[guid], port))
        switch_lids = np.array(
            [db.port_lid.get(node.node_guid, 0) for node in switches], dtype=np.int64
        )
        return RoutingInput(
            num_switches=len(switches),
            switch_lids=switch_lids,
            switch_num_ports=np.array([n.info.num_ports for n in switches], dtype=np.int64),
            links=np.array(links, dtype=np.int64).reshape(-1, 4),
            ca_ports=np.array(sorted(ca_ports), dtype=np.int64).reshape(-1, 3),
            max_lid=db.max_lid,
            switch_guids=np.array(self.switch_order, dtype=np.uint64),
        )

    def _previous_lfts(self, routing_input: RoutingInput) -> np.ndarray | None:
        """What the switches hold now, in routing order, so that the engines keep the
        entries that are still valid (as OpenSM does after its first sweep) and a
        resweep rewrites as few LFT blocks as it can. None on the first sweep."""
        width = routing_input.max_lid + 1
        rows = []
        for guid in self.switch_order:
            lft = self.db.nodes[guid].lft
            if lft is None:
                return None
            row = np.full(width, UNREACHABLE_PORT, dtype=np.uint8)
            held = np.frombuffer(bytes(lft[:width]), dtype=np.uint8)
            row[: held.size] = held
            rows.append(row)
        return np.stack(rows) if rows else None

    @staticmethod
    def _changed_lft_blocks(raw: bytes, old: bytearray | None, blocks: int) -> np.ndarray:
        """Per 64-entry block of the new table `raw`, whether it differs from what
        the switch was last given (`old`; None: nothing yet, every block). Compared
        as arrays: a Python loop over 696 blocks of 3,584 switches was a second of a
        bring-up. A block `old` does not hold whole differs."""
        if old is None:
            return np.ones(blocks, dtype=bool)
        held = min(len(old) // LFT_BLOCK_SIZE, blocks)
        changed = np.ones(blocks, dtype=bool)
        if held:
            size = held * LFT_BLOCK_SIZE
            now = np.frombuffer(raw, dtype=np.uint8, count=size).reshape(held, LFT_BLOCK_SIZE)
            before = np.frombuffer(old, dtype=np.uint8, count=size).reshape(held, LFT_BLOCK_SIZE)
            changed[:held] = (now != before).any(axis=1)
        return changed

    def _program_routes(self, now_ns: int) -> None:
        routing_input = self._build_routing_input()
        self.routing_input = routing_input
        if routing_input.num_switches == 0:
            return
        roots = (
            roots_from_guids(routing_input, self.config.root_guids)
            if self.config.root_guids
            else None
        )
        previous = self._previous_lfts(routing_input)
        try:
            result = route(routing_input, self.config.routing, roots or None, previous)
        except RoutingError as exc:
            # OpenSM falls back to its default engine when the chosen one fails.
            self._emit(RoutingFallback(now_ns, self.config.routing, str(exc)))
            result = route(routing_input, "minhop")
        self.routing_result = result
        lfts = result.lft
        if self.vswitch:
            lfts = self._route_vf_lids(lfts)
        top = self.db.max_lid
        blocks = top // LFT_BLOCK_SIZE + 1
        stale = self._stale_lft_blocks
        # Blocks whose last Set failed, by switch: written again even if unchanged.
        stale_of: dict[int, list[int]] = {}
        for guid, block in stale:
            stale_of.setdefault(guid, []).append(block)
        m_key = self.config.m_key
        for i, guid in enumerate(self.switch_order):
            node = self.db.nodes[guid]
            new = bytearray([UNREACHABLE_PORT]) * (blocks * LFT_BLOCK_SIZE)
            row = lfts[i]
            new[: len(row)] = row.tobytes()
            raw = bytes(new)
            self._set_switch_info(node, top, now_ns)
            changed = self._changed_lft_blocks(raw, node.lft, blocks)
            for block in stale_of.get(guid, ()):
                if block < blocks:
                    changed[block] = True
                    stale.discard((guid, block))
            # A block's Set is built from the table's bytes only when the window has
            # room for it (`_LftBatch`); a first sweep writes every block.
            numbers: Sequence[int] = (
                range(blocks) if changed.all() else np.flatnonzero(changed).tolist()
            )
            count = len(numbers)
            if count:
                first_tid = (self._tid + 1) & _TID_MATCH_MASK
                self._tid = (self._tid + count) & _TID_MATCH_MASK
                batch = _LftBatch(guid, node.path, raw, numbers, first_tid, stale, m_key)
                self._submit_batch(batch, now_ns)
            node.lft = new
        self._program_multicast(now_ns, in_sweep=True)

    # --- multicast (`ibmig.core.sm.multicast`) ----------------------------------------

    def set_multicast_members(self, mlid: int, port_guids: frozenset[int], now_ns: int) -> None:
        """The physical end ports with a member in the groups of `mlid` (from the SA).
        Outside a sweep the MFTs are reprogrammed at once; otherwise when the sweep
        under way ends (a light sweep does not route)."""
        self.multicast.set_members(mlid, port_guids)
        if self.subnet_up:
            self._program_multicast(now_ns, in_sweep=False)
        else:
            self._multicast_pending = True  # programmed when the sweep under way ends

    def _program_multicast(self, now_ns: int, in_sweep: bool) -> None:
        self._multicast_pending = False
        routes = self.multicast
        if not routes.members and not routes.written:
            return

        def issue(node: NodeRecordData, modifier: int, mft: Any, key: Any) -> None:
            def failed(status: int, when_ns: int) -> None:
                routes.mark_stale(key)

            self._issue_set(mft, node.path, _ignore, None, now_ns, modifier, failed, in_sweep)

        routes.program(self.db, issue)

    def _set_switch_info(self, node: NodeRecordData, top: int, now_ns: int) -> None:
        """SubnSet(SwitchInfo) when LinearFDBTop or LifeTimeValue differ or
        PortStateChange is set. As OpenSM (osm_ucast_mgr.c), the SwitchInfo the
        switch last answered with is written back with those two fields changed;
        PortStateChange goes back as read, and writing 1 clears it (14.2.5.4)."""
        life = self.config.packet_life_time
        info = node.switch_info
        if info is None:
            info = SwitchInfo(linear_fdb_top=node.lft_top)
        unchanged = info.linear_fdb_top == top and info.life_time_value == life
        if unchanged and not info.port_state_change:
            return
        new = replace(info, linear_fdb_top=top, life_time_value=life)
        self._issue_set(new, node.path, self._on_switch_info, node, now_ns)

    # --- ARM / ACTIVATE -------------------------------------------------------------

    def _switch_port_timeouts(self, node: NodeRecordData, port: int) -> int | None:
        """PortInfo byte 42 (VLStallCount | HOQLife) OpenSM writes on a switch's
        external port (osm_link_mgr.c): the leaf values toward a CA or router,
        the others toward a switch. None for ports it leaves alone."""
        if not node.is_switch or port == 0:
            return None
        far = self.db.links.get((node.node_guid, port))
        if far is None:
            return None
        far_node = self.db.nodes.get(far[0])
        if far_node is None:
            return None
        config = self.config
        if far_node.is_switch:
            return (config.vl_stall_count << 5) | config.head_of_queue_lifetime
        return (config.leaf_vl_stall_count << 5) | config.leaf_head_of_queue_lifetime

    def _switch_port_enforcement(self, node: NodeRecordData, port: int) -> int | None:
        """PartitionEnforcement bits for a switch's external port when partitions are
        configured: both toward a CA whose table the port holds, none otherwise
        (OpenSM osm_pkey_mgr.c pkey_mgr_update_peer_port); None: left alone."""
        if self._partitions is None or not node.is_switch or port == 0:
            return None
        if (node.node_guid, port) not in self.db.links:
            return None
        return _ENFORCE_BOTH if self._peer_pkey_table(node, port) is not None else 0

    def _set_port_states(self, current: PortState, target: PortState, now_ns: int) -> None:
        for node in self.db.nodes.values():
            for port, record in node.ports.items():
                if not record.known:
                    continue
                if port != 0 and (node.node_guid, port) not in self.db.links:
                    continue
                timeouts = self._switch_port_timeouts(node, port)
                enforcement = self._switch_port_enforcement(node, port)
                if record.port_state != current:
                    # A link that is already up (a resweep, or a fabric another SM
                    # brought up) still gets the switch timeouts, PortState unchanged.
                    raw = record.raw
                    if (
                        target == PortState.ARMED
                        and timeouts is not None
                        and raw is not None
                        and (
                            raw[_PI_STALL_HOQ] != timeouts
                            or (
                                enforcement is not None
                                and raw[_PI_ENFORCEMENT] & _ENFORCE_BOTH != enforcement
                            )
                        )
                        and record.port_state in (PortState.ARMED, PortState.ACTIVE)
                    ):
                        self._issue_port_info_set(
                            node, record, now_ns, timeouts=timeouts, enforcement=enforcement
                        )
                    continue
                self._issue_port_info_set(
                    node, record, now_ns, port_state=target, timeouts=timeouts,
                    enforcement=enforcement,
                )  # fmt: skip

    def _subnet_up(self, now_ns: int) -> None:
        db = self.db
        in_service: set[int] = set()
        for guid, port in db.lid_owner.values():
            node = db.nodes[guid]
            record = node.ports.get(port)
            if record is None or not record.known:
                continue
            if node.is_switch or record.port_state == PortState.ACTIVE:
                in_service.add(record.port_guid)
        came = tuple(sorted(in_service - self._active_ports))
        went = tuple(sorted(self._active_ports - in_service))
        self._active_ports = in_service
        self._up_since_sweep = True
        self.ever_up = True
        self._coming_out_of_standby = False
        if self._multicast_pending:
            self._program_multicast(now_ns, in_sweep=False)
        if self.vswitch:
            self._write_vf_routes(now_ns)  # VF LIDs placed while the sweep ran
        event = SubnetUp(self.sweep, now_ns, self.smps_sent, len(db.nodes), len(db.lid_owner))
        self._emit(event)
        change = PortsChanged(now_ns, came, went)
        if came or went:
            self._emit(change)
        for listener in self.listeners:
            if came or went:
                listener.ports_changed(change, now_ns)
            listener.subnet_up(event, now_ns)
        if self._resweep_lids:
            self._start_light_sweep(now_ns)

    # --- traps and light resweeps ---------------------------------------------------

    def _on_trap(self, smp: Smp, datagram: Datagram, now_ns: int) -> None:
        repress = Smp(
            smp.mgmt_class,
            Method.TRAP_REPRESS,
            smp.attribute_id,
            smp.attribute_modifier,
            smp.tid,
            m_key=smp.m_key,
            data=smp.data,
        )
        self._outbox.append(
            Datagram(repress.pack(), datagram.port, datagram.dlid, datagram.slid, QP0, QP0)
        )
        try:
            notice = Notice.unpack_smp(smp.data)
        except WireError:
            return
        self._emit(TrapReceived(now_ns, notice.trap_number, notice.issuer_lid))
        for listener in self.listeners:
            listener.trap_received(notice, now_ns)
        if notice.is_generic and notice.trap_number == TrapNumber.LINK_STATE_CHANGE:
            self._resweep_lids.add(notice.issuer_lid or datagram.slid)
            if self.phase == Phase.IDLE and self.subnet_up:
                self._start_light_sweep(now_ns)

    def _start_light_sweep(self, now_ns: int) -> None:
        self._new_sweep(True, now_ns)
        for node in self.db.nodes.values():
            node.seen_in_sweep = self.sweep  # known nodes are not read again
        self._read_trap_issuers(now_ns)
        if not self._queue and not self._outstanding:
            self._phase_done(now_ns)

    def _read_trap_issuers(self, now_ns: int) -> None:
        """Read every port of the switches whose traps asked for a light sweep."""
        lids, self._resweep_lids = self._resweep_lids, set()
        for lid in sorted(lids):
            owner = self.db.lid_owner.get(lid)
            if owner is None:
                continue
            node = self.db.nodes[owner[0]]
            if not node.is_switch:
                continue
            # Its PortStateChange is set now; ROUTE writes it back to clear it.
            self._issue_get(SmpAttr.SWITCH_INFO, node.path, self._on_switch_info, node, now_ns)
            for port in range(1, node.info.num_ports + 1):
                self._issue_get(
                    SmpAttr.PORT_INFO, node.path, self._on_port_info, (node, port), now_ns, port
                )

    # --- SM roles (IBA Vol 1, 14.4; `ibmig.core.sm.roles`) ---------------------------

    def _change_state(self, signal: SmSignal, now_ns: int) -> None:
        old = self.role.state
        new = self.role.signal(signal)
        if new != old:
            master = self.master_guid if new == SmState.STANDBY else 0
            self._emit(SmStateChanged(now_ns, old, new, signal, master))

    def _check_sm_port(
        self, node: NodeRecordData, port: int, record: PortRecordData, now_ns: int
    ) -> None:
        """An end port with IsSM: read its SMInfo (OpenSM's pi_rcv_process_endport)."""
        if not record.capability_mask & PortCapability.IS_SM:
            return
        path = self._path_to_port(node, port)
        self._remote_sm_paths[record.port_guid] = path
        self._issue_get(SmpAttr.SM_INFO, path, self._on_sm_info, record.port_guid, now_ns)

    def _on_sm_info(self, smp: SmpAnswer, port_guid: int, now_ns: int) -> None:
        """SubnGetResp(SMInfo) from another SM, read during a sweep or a poll (what
        it means depends on our state: OpenSM's smi_rcv_process_get_sm)."""
        try:
            info = SMInfo.unpack(smp.data)
        except WireError:
            return
        if info.guid != port_guid or port_guid == self.db.sm_port_guid:
            return  # not the SM we asked (a port moved), or ourselves
        if self.config.sm_key and info.sm_key != self.config.sm_key:
            return  # another subnet's SM (OpenSM ignores it too)
        self.remote_sms[port_guid] = info
        state = self.role.state
        remote_state = info.sm_state
        higher = is_higher(info.priority, info.guid, self.config.priority, self.db.sm_port_guid)
        if state == SmState.DISCOVERING:
            if remote_state == SmState.MASTER or (
                remote_state in (SmState.DISCOVERING, SmState.STANDBY) and higher
            ):
                self._master_found = True
                self.master_guid = port_guid
        elif (
            state == SmState.STANDBY
            and port_guid == self.master_guid
            and (remote_state == SmState.MASTER or (remote_state == SmState.STANDBY and higher))
        ):
            self._poll_retries = 0  # the master is alive

    def _discovery_decides_role(self, now_ns: int) -> bool:
        """At the end of DISCOVER: go STANDBY when a master or a higher SM was found
        (True: the sweep stops, nothing is programmed); hand the subnet over when we
        are master and a higher SM is waiting; else become (or stay) MASTER."""
        state = self.role.state
        if state == SmState.DISCOVERING and self._master_found:
            self.phase = Phase.IDLE
            self._change_state(SmSignal.MASTER_OR_HIGHER_SM_DETECTED, now_ns)
            self._start_polling(now_ns)
            return True
        if state == SmState.MASTER:
            highest = self._highest_remote_sm()
            if highest is not None:
                self.phase = Phase.IDLE
                self._send_handover(highest, now_ns)
                return True
        if state == SmState.DISCOVERING:
            self._change_state(SmSignal.DISCOVERY_COMPLETED, now_ns)
        return False

    def _highest_remote_sm(self) -> int | None:
        """The port GUID of an active SM higher than this one (the highest), or None."""
        best_priority, best_guid = self.config.priority, self.db.sm_port_guid
        found = None
        for guid, info in self.remote_sms.items():
            if info.sm_state == SmState.NOT_ACTIVE:
                continue
            if is_higher(info.priority, guid, best_priority, best_guid):
                best_priority, best_guid, found = info.priority, guid, guid
        return found

    def _send_handover(self, guid: int, now_ns: int) -> None:
        """SubnSet(SMInfo) HANDOVER to the higher SM `guid`; then STANDBY, polling it."""
        self.master_guid = guid
        self._issue_set(
            self.sm_info(),
            self._remote_sm_paths[guid],
            _ignore,
            None,
            now_ns,
            SmInfoControl.HANDOVER,
        )
        self._change_state(SmSignal.HANDOVER_SENT, now_ns)
        self._start_polling(now_ns)

    def _start_polling(self, now_ns: int) -> None:
        self._poll_retries = 0
        self._send_poll(now_ns)
        self._timeouts.arm(_POLL_KEY, now_ns + self.config.sminfo_polling_timeout_ns)

    def _send_poll(self, now_ns: int) -> None:
        """One SubnGet(SMInfo) to the polled SM, unless the last one is still on the
        wire (retried by the transaction layer): polls do not pile up."""
        if self._poll_tid is not None and self._poll_tid in self._outstanding:
            return
        path = self._remote_sm_paths.get(self.master_guid)
        if path is not None:
            self._poll_tid = (self._tid + 1) & _TID_MATCH_MASK  # the TID it gets
            self._issue_get(SmpAttr.SM_INFO, path, self._on_sm_info, self.master_guid, now_ns)

    def _cancel_poll(self) -> None:
        self._timeouts.cancel(_POLL_KEY)
        tid, self._poll_tid = self._poll_tid, None
        if tid is not None:
            self._answered(tid)
        self._queue = deque(
            r for r in self._queue if isinstance(r, _LftBatch) or r.tid & _TID_MATCH_MASK != tid
        )

    def _poll(self, now_ns: int) -> None:
        """The polling timer of a STANDBY SM (OpenSM's polling callback): take over
        after more than `polling_retry_number` polls without a master's answer."""
        if self.role.state != SmState.STANDBY:
            return
        if self._poll_retries > self.config.polling_retry_number:
            self._take_over(SmSignal.POLLING_TIMEOUT, now_ns)
            return
        self._send_poll(now_ns)
        self._poll_retries += 1
        self._timeouts.arm(_POLL_KEY, now_ns + self.config.sminfo_polling_timeout_ns)

    def _take_over(self, signal: SmSignal, now_ns: int) -> None:
        """STANDBY -> DISCOVERING (polling timeout) or MASTER (handover), then a heavy
        sweep that rewrites every port, as OpenSM's first sweep out of standby."""
        self._cancel_poll()
        self._change_state(signal, now_ns)
        self._coming_out_of_standby = True
        self._first_master_sweep = True
        # What a standby read is stale and DISCOVER only probes links it does not
        # know: forget it all, so that this sweep reads the subnet as a first one.
        db = self.db
        db.nodes.clear()
        db.links.clear()
        db.lid_owner.clear()
        db.port_lid.clear()
        self._port_paths.clear()
        self._guid_to_lid.clear()
        self.remote_sms.pop(self.master_guid, None)
        self.master_guid = 0
        self.start_sweep(now_ns)

    def _on_sm_info_set(self, smp: Smp, datagram: Datagram, now_ns: int) -> None:
        """SubnSet(SMInfo) from another SM (IBA Vol 1, 14.4.1): answered with our
        SMInfo, then acted on; a control code its sender may not send, or one our
        state does not accept, gets status 0x001C and changes nothing."""
        try:
            sender: SMInfo | None = SMInfo.unpack(smp.data)
        except WireError:
            sender = None
        signal = None if sender is None else control_signal(smp.attribute_modifier, sender.sm_state)
        legal = signal is not None and self.role.allows(signal)
        answer = make_get_resp(smp, self.sm_info(), status=0 if legal else _INVALID_FIELD)
        self._outbox.append(
            datagram._replace(payload=answer.pack(), slid=datagram.dlid, dlid=datagram.slid)
        )
        if not legal or sender is None or signal is None:
            return
        state = self.role.state
        if signal == SmSignal.HANDOVER:
            if state == SmState.STANDBY:
                self._take_over(signal, now_ns)
            else:  # MASTER or DISCOVERING: sweep again and decide at its end
                self._change_state(signal, now_ns)
                if self.phase == Phase.IDLE:
                    self.start_sweep(now_ns)
        elif signal == SmSignal.STANDBY:
            self.master_guid = sender.guid
            self._change_state(signal, now_ns)
            if sender.guid in self._remote_sm_paths:
                self._start_polling(now_ns)
        elif signal == SmSignal.DISCOVER:
            self._take_over(signal, now_ns)
        else:  # DISABLE, ACKNOWLEDGE
            if signal == SmSignal.DISABLE:
                self._cancel_poll()
            self._change_state(signal, now_ns)

    # --- alias GUIDs (pushed on behalf of the SA) -----------------------------------

    def set_guid_info(
        self,
        port_guid: int,
        block: int,
        guids: tuple[int, ...],
        now_ns: int,
        done: Callable[[GUIDInfo | None, int], None],
    ) -> bool:
        """Write one GUIDInfo block of an end port with a SubnSet(GUIDInfo) and call
        `done(block_as_written, now_ns)` when the port answers, or `done(None, now_ns)`
        when the write fails (error status, no answer after every retry; see
        `SmConfig.keep_refused_alias_guids` for ports that cannot hold alias GUIDs).
        Returns False when the port is unknown."""
        found = self.db.node_of_port(port_guid)
        if found is None:
            return False
        node, port = found

        def record_block(written: GUIDInfo, when_ns: int) -> None:
            record = node.ports.get(port)
            if record is None:  # the port left the subnet meanwhile
                done(None, when_ns)
                return
            base = block * 8
            for i, guid in enumerate(written.guids):
                old = record.alias_guids.pop(base + i, None)
                if old is not None and self.db.alias_owner.get(old) == port_guid:
                    del self.db.alias_owner[old]
                if guid and base + i != 0:
                    record.alias_guids[base + i] = guid
                    self.db.alias_owner[guid] = port_guid
            self._refresh_pkeys(port_guid, when_ns)
            done(written, when_ns)

        def on_reply(smp: SmpAnswer, _ctx: Any, when_ns: int) -> None:
            try:
                written = GUIDInfo.unpack(smp.data)
            except WireError:
                done(None, when_ns)
                return
            record_block(written, when_ns)

        def on_error(status: int, when_ns: int) -> None:
            if status == MadStatus.METHOD_NOT_SUPPORTED and self.config.keep_refused_alias_guids:
                # ibsim's SMA implements GUIDInfo Get only; keep the block as asked.
                record_block(requested, when_ns)
            else:
                done(None, when_ns)

        requested = GUIDInfo(guids)
        self._issue_set(
            requested, self._path_to_port(node, port), on_reply, None, now_ns, block, on_error,
            in_sweep=False,  # the SA's write: a lost one is the SA client's to retry
        )  # fmt: skip
        return True

    # --- partitions (`ibmig.fabric.partitions`) ------------------------------------------

    @property
    def partitions(self) -> PartitionConfig | None:
        """The partition configuration in force (the implicit default partition
        added), None without one."""
        return self._partitions

    def partition_keys(
        self, guid: int, alias_guids: Mapping[int, int] | None = None
    ) -> frozenset[int]:
        """The P_Keys (membership in bit 15) the SA checks partitions with for a port
        GUID (its table as the SM wants it) or a VM's alias GUID (the partitions the
        configuration gives its vGUID; `ibmig.fabric.partitions` module docstring).
        `alias_guids` (index -> GUID) stands for a port's alias GUIDs as the SA's
        table holds them when that is ahead of the port (writes in flight).
        Without a configuration: the default partition, full member."""
        config = self._partitions
        if config is None:
            return _DEFAULT_PARTITION_ONLY
        db = self.db
        if guid not in db.port_lid:
            # A VM, or a port or VM the subnet no longer has (the subject of a trap
            # 65): what the configuration gives that GUID.
            alias = guid in db.alias_owner or guid in db.alias_last_seen
            return frozenset(resolve_keys(config, EndPortKind(guid, is_alias=alias)))
        found = db.node_of_port(guid)
        if found is None:
            return frozenset()
        node, port = found
        return frozenset(self._end_port_pkeys(node, port, alias_guids))

    def _end_port_pkeys(
        self, node: NodeRecordData, port: int, alias_guids: Mapping[int, int] | None = None
    ) -> tuple[int, ...]:
        """An end port's P_Key table: its own partitions, then those of the alias
        GUIDs (VMs) it holds, a full membership winning; cut at PartitionCap (OpenSM
        drops what does not fit)."""
        config = self._partitions
        assert config is not None
        record = node.ports.get(port)
        if record is None:
            return ()
        kind = EndPortKind(
            record.port_guid,
            is_switch=node.is_switch,
            is_router=node.info.node_type == NodeType.ROUTER,
            is_sm=record.port_guid == self.db.sm_port_guid,
        )
        keys = list(resolve_keys(config, kind))
        aliases = record.alias_guids if alias_guids is None else alias_guids
        for index in sorted(aliases):
            alias = EndPortKind(aliases[index], is_alias=True)
            for key in resolve_keys(config, alias):
                base = key & 0x7FFF
                at = next((i for i, k in enumerate(keys) if k & 0x7FFF == base), None)
                if at is None:
                    keys.append(key)
                elif key & FULL_MEMBER:
                    keys[at] = key
        cap = node.info.partition_cap
        return tuple(keys[:cap] if cap else keys)  # 0: not read (hand-built databases)

    def _peer_pkey_table(self, node: NodeRecordData, port: int) -> tuple[int, ...] | None:
        """The table a switch's external port enforces: its CA neighbour's, if the
        switch enforces partitions and it fits PartitionEnforcementCap; else None."""
        if not self.config.partition_enforcement:
            return None
        far = self.db.links.get((node.node_guid, port))
        if far is None:
            return None
        peer = self.db.nodes.get(far[0])
        if peer is None or peer.is_switch:
            return None
        cap = node.switch_info.partition_enforcement_cap if node.switch_info else 0
        table = self._end_port_pkeys(peer, far[1])
        if not cap or len(table) > cap:
            return None
        return table

    def set_partitions(self, config: PartitionConfig | None, now_ns: int) -> None:
        """A new partition configuration (OpenSM re-reading partitions.conf): once the
        subnet is up, the P_Key tables and switch partition enforcement that differ
        are written at once; otherwise by the sweep under way. None: tables are
        left as they are and every port counts as a full default-partition member."""
        self._partitions = None if config is None else config.with_implicit_default()
        if config is None or not self.subnet_up:
            return
        self._program_pkeys(now_ns, in_sweep=False)
        for node in list(self.db.nodes.values()):
            if not node.is_switch:
                continue
            for port, record in node.ports.items():
                enforcement = self._switch_port_enforcement(node, port)
                raw = record.raw
                if (
                    enforcement is not None
                    and raw is not None
                    and raw[_PI_ENFORCEMENT] & _ENFORCE_BOTH != enforcement
                ):
                    self._issue_port_info_set(
                        node, record, now_ns, enforcement=enforcement, in_sweep=False
                    )

    def _program_pkeys(
        self, now_ns: int, only: set[int] | None = None, in_sweep: bool = True
    ) -> None:
        """SubnSet(P_KeyTable) for every block that differs from what was last
        written (IBA Vol 1, 14.2.5.7; OpenSM osm_pkey_mgr.c): end ports, and switch
        ports toward CAs (partition enforcement). `only`: the nodes to look at."""
        if self._partitions is None:
            return
        for node in list(self.db.nodes.values()):
            if only is not None and node.node_guid not in only:
                continue
            if node.is_switch:
                ports = [0, *[p for p in node.ports if p != 0]]
            else:
                ports = sorted(node.ports)
            for port in ports:
                record = node.ports.get(port)
                if record is None or not record.known:
                    continue
                if port and (node.node_guid, port) not in self.db.links:
                    continue
                if node.is_switch and port:
                    table = self._peer_pkey_table(node, port)
                    if table is None:
                        continue
                else:
                    table = self._end_port_pkeys(node, port)
                self._write_pkey_table(node, port, table, now_ns, in_sweep)

    def _write_pkey_table(
        self, node: NodeRecordData, port: int, table: tuple[int, ...], now_ns: int, in_sweep: bool
    ) -> None:
        key = (node.node_guid, port)
        old = self.pkey_tables.get(key)
        if old == table:
            return
        blocks = max(1, -(-len(table) // PKEY_BLOCK_SIZE))
        if old is not None:
            blocks = max(blocks, -(-len(old) // PKEY_BLOCK_SIZE))
        padded = table + (0,) * (blocks * PKEY_BLOCK_SIZE - len(table))
        before = (old or ()) + (0,) * (blocks * PKEY_BLOCK_SIZE - len(old or ()))
        path = node.path if node.is_switch else self._path_to_port(node, port)
        for block in range(blocks):
            chunk = padded[block * PKEY_BLOCK_SIZE : (block + 1) * PKEY_BLOCK_SIZE]
            if (
                old is not None
                and chunk == before[block * PKEY_BLOCK_SIZE : (block + 1) * PKEY_BLOCK_SIZE]
            ):
                continue
            modifier = (port << 16 | block) if node.is_switch else block
            self._issue_set(
                PKeyTable(chunk), path, _ignore, None, now_ns, modifier,
                self._pkey_block_failed(key), in_sweep,
            )  # fmt: skip
        self.pkey_tables[key] = table

    def _pkey_block_failed(self, key: tuple[int, int]) -> ErrorHandler:
        def failed(_status: int, _now_ns: int) -> None:
            self.pkey_tables.pop(key, None)  # unknown now: written again next time

        return failed

    def _refresh_pkeys(self, port_guid: int, now_ns: int) -> None:
        """An end port's alias GUIDs changed (a VM came or went): its P_Key table,
        and the enforcing switch port's in front of it, follow the VM's partitions."""
        found = self.db.node_of_port(port_guid)
        if found is None or self._partitions is None:
            return
        node, port = found
        nodes = {node.node_guid}
        far = self.db.links.get((node.node_guid, port))
        if far is not None:
            nodes.add(far[0])
        self._program_pkeys(now_ns, only=nodes, in_sweep=False)

    # --- the vSwitch model (`ibmig.core.sm.vswitch`) -----------------------------------

    def _own_vf_lids(self) -> None:
        """Record each VF LID as one more LID of its physical port (LMC-like)."""
        db = self.db
        for lid, port_guid in self.vswitch.port_of_lid.items():
            pf_lid = db.port_lid.get(port_guid)
            if pf_lid is not None:
                db.lid_owner[lid] = db.lid_owner[pf_lid]

    def _route_vf_lids(self, lfts: np.ndarray) -> np.ndarray:
        """The engine's LFTs with every VF LID routed as its PF's LID."""
        pairs = [
            (lid, self.db.port_lid[guid])
            for lid, guid in self.vswitch.port_of_lid.items()
            if guid in self.db.port_lid and lid < lfts.shape[1]
        ]
        if not pairs:
            return lfts
        lfts = lfts.copy()
        vf, pf = zip(*pairs, strict=True)
        lfts[:, list(vf)] = lfts[:, list(pf)]
        return lfts

    def vswitch_add_port(self, port_guid: int, num_vfs: int, now_ns: int) -> list[int]:
        """A hypervisor reports the VFs of its port (the module docstring of
        `ibmig.core.sm.vswitch` says what this models). Prepopulated: each VF gets a
        LID now, routed as the port's LID. Dynamic: nothing until a VM starts.
        `VfLidsExhaustedError` (and a `VfLidsExhausted` event) when the LIDs run out."""
        table = self.vswitch
        if table.scheme is not VfLids.PREPOPULATED or num_vfs <= 0:
            table.free.setdefault(port_guid, [])
            return []
        lids = self._new_vf_lids(num_vfs, now_ns)
        for lid in lids:
            table.port_of_lid[lid] = port_guid
            self._emit(VfLidAssigned(now_ns, port_guid, lid, 0))
        table.free.setdefault(port_guid, []).extend(lids)
        self._route_new_vf_lids(lids, now_ns)
        return lids

    def vswitch_place(self, vguid: int, port_guid: int, now_ns: int) -> int:
        """VM `vguid` now runs behind `port_guid`: its VF LID (given now if it has
        none: a free prepopulated VF's, or a new one when dynamic). When the LID led
        elsewhere, the SM rewrites only the LFT blocks of the switches whose egress
        for it changes (`VfLidMoved`). Returns the VM's LID."""
        table = self.vswitch
        lid = table.lid_of_vm.get(vguid)
        if lid is None:
            if table.scheme is VfLids.PREPOPULATED:
                free = table.free.get(port_guid)
                if not free:
                    raise VfLidsExhaustedError(len(table.port_of_lid) + 1, MAX_UNICAST_LID)
                lid = free.pop(0)
            else:
                lid = self._new_vf_lids(1, now_ns)[0]
                table.port_of_lid[lid] = port_guid
            table.lid_of_vm[vguid] = lid
            self._emit(VfLidAssigned(now_ns, port_guid, lid, vguid))
            if table.scheme is VfLids.DYNAMIC:
                self._route_new_vf_lids([lid], now_ns)
            return lid
        src = table.port_of_lid[lid]
        if src == port_guid:
            return lid
        swapped = 0
        table.port_of_lid[lid] = port_guid
        if table.scheme is VfLids.PREPOPULATED:
            # Swap: the destination's free VF hands its LID back to the VF left behind.
            free = table.free.get(port_guid)
            if free:
                swapped = free.pop(0)
                table.port_of_lid[swapped] = src
                table.free.setdefault(src, []).append(swapped)
                table.free[src].sort()
        smps, switches = self._write_vf_routes(now_ns, [lid, swapped] if swapped else [lid])
        full = full_reroute_smps(len(self.switch_order), self.db.max_lid)
        deferred = not self.subnet_up
        self._emit(
            VfLidMoved(now_ns, vguid, lid, swapped, src, port_guid, switches, smps, full,
                       deferred)
        )  # fmt: skip
        return lid

    def _route_new_vf_lids(self, lids: list[int], now_ns: int) -> None:
        """New VF LIDs are the port's from now on; their routes are written once for
        all the LIDs given at this instant (hypervisors and VMs come up together: one
        LFT block then carries many of them), at a timer due now."""
        self._own_lids(lids)
        if not self._vf_pending:
            self._timeouts.arm(_VF_ROUTES_KEY, now_ns)
        self._vf_pending.extend(lids)

    def _own_lids(self, lids: Iterable[int]) -> list[tuple[int, int]]:
        """Record VF LIDs as extra LIDs of their physical ports; (VF LID, PF LID)."""
        db = self.db
        pairs: list[tuple[int, int]] = []
        for lid in lids:
            pf_lid = db.port_lid.get(self.vswitch.port_of_lid[lid])
            if pf_lid is not None:
                db.lid_owner[lid] = db.lid_owner[pf_lid]  # one more LID of that port
                pairs.append((lid, pf_lid))
        db.max_lid = max(db.max_lid, max((lid for lid, _ in pairs), default=0))
        return pairs

    def _new_vf_lids(self, count: int, now_ns: int) -> list[int]:
        taken = set(self.db.lid_owner) | set(self._guid_to_lid.values())
        try:
            return self.vswitch.lowest_free(taken, count)
        except VfLidsExhaustedError as exc:
            self._emit(VfLidsExhausted(now_ns, exc.needed, exc.available))
            raise

    def _write_vf_routes(self, now_ns: int, lids: Iterable[int] | None = None) -> tuple[int, int]:
        """Route VF LIDs `lids` (default: all) as their PF's LID on every switch the
        SM has programmed, with a SubnSet(LinearForwardingTable) per 64-entry block
        that changes (and SwitchInfo when LinearFDBTop must grow). Returns (LFT SMPs,
        switches changed). Within a sweep nothing is sent: its ROUTE phase routes
        the VF LIDs. Only the given LIDs are looked at, so placing each of many VMs
        costs O(switches), not O(switches x VF LIDs)."""
        db = self.db
        pairs = self._own_lids(self.vswitch.port_of_lid if lids is None else lids)
        if not self.subnet_up or not pairs:
            return 0, 0
        top = db.max_lid
        size = (top // LFT_BLOCK_SIZE + 1) * LFT_BLOCK_SIZE
        smps = switches = 0
        for guid in self.switch_order:
            node = db.nodes.get(guid)
            if node is None or node.lft is None:
                continue
            lft = node.lft
            if len(lft) < size:
                lft.extend(bytes([UNREACHABLE_PORT]) * (size - len(lft)))
            blocks: set[int] = set()
            for lid, pf_lid in pairs:
                if lft[lid] != lft[pf_lid]:
                    lft[lid] = lft[pf_lid]
                    blocks.add(lid // LFT_BLOCK_SIZE)
            if top > node.lft_top:
                info = node.switch_info or SwitchInfo(linear_fdb_top=node.lft_top)
                self._issue_set(
                    replace(info, linear_fdb_top=top), node.path, self._on_switch_info, node,
                    now_ns, in_sweep=False,
                )  # fmt: skip
                node.lft_top = top  # asked for; the answer confirms it
            for block in sorted(blocks):
                start = block * LFT_BLOCK_SIZE
                self._issue_set(
                    LinearForwardingTable(tuple(lft[start : start + LFT_BLOCK_SIZE])),
                    node.path, _ignore, None, now_ns, block,
                    self._lft_block_failed(guid, block), in_sweep=False,
                )  # fmt: skip
            smps += len(blocks)
            switches += bool(blocks)
        return smps, switches


def _ignore(smp: SmpAnswer, ctx: Any, now_ns: int) -> None:
    """Handler for SMPs whose answer carries nothing the SM keeps (LFT blocks)."""

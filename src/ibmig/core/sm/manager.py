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
               LinearFDBTop changes; LinearForwardingTable Set only for 64-entry
               blocks that differ from what was last programmed.
    ARM        PortInfo Set PortState=Armed on every port in Init.
    ACTIVATE   PortInfo Set PortState=Active on every Armed port; then SUBNET UP.

A trap 128 (link state change) from a switch starts a light resweep: the DISCOVER
phase is seeded with PortInfo Gets of the trapping switch only; links that went
down are removed (with what is no longer reachable), links that came up are probed
as in a full sweep, and the later phases only touch what changed.

SMPs go out directed-route (pure DR, DrSLID = DrDLID = 0xFFFF), as OpenSM does
during sweeps, so they work before any LFT exists. At most `max_outstanding` SMPs
are on the wire at once (OpenSM's max_wire_smps): an unbounded window overruns the
agents, and ibsim deadlocks. Lost SMPs are resent after `transaction_timeout_ns`
up to `max_retries` times; then the node is treated as unreachable.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

import numpy as np

from ibmig.core.engine import PERMISSIVE_LID, QP0, Datagram, EventLog
from ibmig.core.sm.db import DrPath, NodeRecordData, PortRecordData, SubnetDb
from ibmig.core.sm.routing import (
    RoutingError,
    RoutingInput,
    RoutingResult,
    roots_from_guids,
    route,
)
from ibmig.core.timers import Timers
from ibmig.errors import WireError
from ibmig.wire.mad import MadStatus, Method
from ibmig.wire.notice import Notice, TrapNumber
from ibmig.wire.smp import MAX_HOP_COUNT, Smp, make_get, make_get_resp, make_request, make_set
from ibmig.wire.smp_attrs import (
    LFT_BLOCK_SIZE,
    GUIDInfo,
    LinearForwardingTable,
    NodeDescription,
    NodeInfo,
    PhysPortState,
    PortState,
    SMInfo,
    SmpAttr,
    SmState,
    SwitchInfo,
)

UNREACHABLE_PORT = 0xFF
MAX_UNICAST_LID = 0xBFFF
_TID_MATCH_MASK = (1 << 48) - 1  # ibsim rewrites the top 16 bits of request TIDs


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
    subnet_timeout: int = 18  # OpenSM subnet_timeout: 4.096 us * 2^18 ~ 1 s
    subnet_prefix: int = 0xFE80_0000_0000_0000
    m_key: int = 0
    sm_sl: int = 0
    keep_refused_alias_guids: bool = False
    """When a port refuses SubnSet(GUIDInfo) as unsupported (MAD status 0x0008, as
    every port of ibsim does), keep the alias GUIDs in the SM's database anyway and
    report the block as written: the SA's alias table and path-change notices then
    work although the port itself cannot hold them. Off: the write fails."""


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


Handler = Callable[[Smp, Any, int], None]
ErrorHandler = Callable[[int, int], None]  # (MAD status, or -1 for no answer; now_ns)


class _Request:
    __slots__ = (
        "attr",
        "ctx",
        "deadline_ns",
        "handler",
        "on_error",
        "path",
        "payload",
        "retries",
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
        self.on_error: ErrorHandler | None = None


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
        self._queue: deque[_Request] = deque()
        self._outstanding: dict[int, _Request] = {}
        self._timeouts: Timers[int] = Timers()  # outstanding TIDs (match bits) by deadline
        self._guid_to_lid: dict[int, int] = {}  # stable LIDs across sweeps
        self._active_ports: set[int] = set()  # end-port GUIDs in service
        self._resweep_lids: set[int] = set()
        self._up_since_sweep: bool = False
        self._sweep_start_ns = 0
        self._sm_node_guid = 0
        # Path to each CA port (a CA answers for the port an SMP arrives on).
        self._port_paths: dict[tuple[int, int], DrPath] = {}
        self.routing_input: RoutingInput | None = None
        self.routing_result: RoutingResult | None = None
        self.switch_order: list[int] = []

    # --- engine contract ------------------------------------------------------------

    def packets_to_send(self) -> list[Datagram]:
        out, self._outbox = self._outbox, []
        return out

    def get_timer(self) -> int | None:
        return self._timeouts.next_deadline()

    def handle_timer(self, now_ns: int) -> None:
        while (key := self._timeouts.pop_due(now_ns)) is not None:
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
            if request.on_error is not None:
                request.on_error(-1, now_ns)
            self._request_done(now_ns)

    def receive(self, datagram: Datagram, now_ns: int) -> None:
        try:
            smp = Smp.unpack(datagram.payload)
        except WireError:
            return
        if smp.is_response:
            request = self._answered(smp.tid)
            if request is None:
                return  # late answer to a retransmitted request
            status = smp.status
            if status != 0:
                self._emit(SmpFailed(now_ns, smp.attribute_id, request.path, status))
                if request.on_error is not None:
                    request.on_error(status, now_ns)
            else:
                request.handler(smp, request.ctx, now_ns)
            self._request_done(now_ns)
        elif smp.method == Method.TRAP and smp.attribute_id == SmpAttr.NOTICE:
            self._on_trap(smp, datagram, now_ns)
        else:
            # An SM answers SMInfo Get (IBA Vol 1, 14.4.1; `sminfo` reads ActCount);
            # everything else addressed to it is not supported.
            if smp.method == Method.GET and smp.attribute_id == SmpAttr.SM_INFO:
                answer = make_get_resp(smp, self.sm_info())
            else:
                answer = make_get_resp(smp, status=0x000C)
            self._outbox.append(
                datagram._replace(payload=answer.pack(), slid=datagram.dlid, dlid=datagram.slid)
            )

    # --- API ------------------------------------------------------------------------

    def start_sweep(self, now_ns: int) -> None:
        """Start a full (heavy) sweep from the SM's own port."""
        self.sweep += 1
        self.light = False
        self._sweep_start_ns = now_ns
        self._emit(SweepStarted(self.sweep, False, now_ns))
        self.phase = Phase.DISCOVER
        self._issue_get(SmpAttr.NODE_INFO, (), self._on_node_info, None, now_ns)

    def sm_info(self) -> SMInfo:
        """This SM's SMInfo: master once a sweep has brought the subnet up, with
        ActCount the number of SMPs sent (as OpenSM counts it)."""
        state = SmState.MASTER if self._up_since_sweep else SmState.DISCOVERING
        return SMInfo(
            guid=self.db.sm_port_guid,
            sm_key=0,
            act_count=self.smps_sent & 0xFFFF_FFFF,
            priority=0,
            sm_state=state,
        )

    @property
    def subnet_up(self) -> bool:
        return self._up_since_sweep and self.phase == Phase.IDLE

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
    ) -> None:
        request = _Request(smp.tid, smp.pack(), path, smp.attribute_id, handler, ctx)
        request.on_error = on_error
        self.smp_counts[(smp.attribute_id, smp.method)] += 1
        if len(self._outstanding) < self.config.max_outstanding:
            self._transmit(request, now_ns)
        else:
            self._queue.append(request)

    def _issue_get(
        self,
        attribute_id: int,
        path: DrPath,
        handler: Handler,
        ctx: Any,
        now_ns: int,
        modifier: int = 0,
    ) -> None:
        smp = make_get(
            attribute_id,
            tid=self._next_tid(),
            attribute_modifier=modifier,
            path=path,
            m_key=self.config.m_key,
        )
        self._issue(smp, path, handler, ctx, now_ns)

    def _issue_set(
        self,
        attribute: Any,
        path: DrPath,
        handler: Handler,
        ctx: Any,
        now_ns: int,
        modifier: int = 0,
        on_error: ErrorHandler | None = None,
    ) -> None:
        smp = make_set(
            attribute,
            tid=self._next_tid(),
            attribute_modifier=modifier,
            path=path,
            m_key=self.config.m_key,
        )
        self._issue(smp, path, handler, ctx, now_ns, on_error)

    def _answered(self, tid: int) -> _Request | None:
        """The outstanding request with `tid`, no longer outstanding; None if unknown."""
        key = tid & _TID_MATCH_MASK
        request = self._outstanding.pop(key, None)
        if request is not None:
            self._timeouts.cancel(key)
        return request

    def _transmit(self, request: _Request, now_ns: int) -> None:
        request.deadline_ns = now_ns + self.config.transaction_timeout_ns
        key = request.tid & _TID_MATCH_MASK
        self._outstanding[key] = request
        self._timeouts.arm(key, request.deadline_ns)
        self.smps_sent += 1
        self._outbox.append(
            Datagram(request.payload, self.port_num, self.db.sm_lid or 0, PERMISSIVE_LID, QP0, QP0)
        )

    def _request_done(self, now_ns: int) -> None:
        while self._queue and len(self._outstanding) < self.config.max_outstanding:
            self._transmit(self._queue.popleft(), now_ns)
        if not self._queue and not self._outstanding:
            self._phase_done(now_ns)

    # --- DISCOVER -------------------------------------------------------------------

    def _on_node_info(self, smp: Smp, ctx: Any, now_ns: int) -> None:
        path: DrPath = smp.initial_ports
        info = NodeInfo.unpack(smp.data)
        arrival = info.local_port_num
        new_link = False
        if ctx is not None:  # (node_guid, port) we probed from
            new_link = self.db.links.get(ctx) != (info.node_guid, arrival)
            self._add_link(ctx, (info.node_guid, arrival))
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

    def _on_node_desc(self, smp: Smp, node: NodeRecordData, now_ns: int) -> None:
        node.description = NodeDescription.unpack(smp.data).description

    def _on_switch_info(self, smp: Smp, node: NodeRecordData, now_ns: int) -> None:
        info = SwitchInfo.unpack(smp.data)
        node.switch_info = info  # kept whole for the SA's SwitchInfoRecord
        node.lft_cap = info.linear_fdb_cap
        node.lft_top = info.linear_fdb_top

    def _on_port_info(self, smp: Smp, ctx: tuple[NodeRecordData, int], now_ns: int) -> None:
        node, port = ctx
        guid = node.node_guid
        record = node.ports.get(port)
        if record is None:
            port_guid = guid if node.is_switch else node.info.port_guid
            record = node.ports[port] = PortRecordData(guid, port, port_guid)
        record.set_raw(smp.data)
        if port == 0:
            return
        endpoint = (guid, port)
        link_up = record.physical_state == PhysPortState.LINK_UP
        known = endpoint in self.db.links
        if link_up and not known:
            path = self._path_to_port(node, port)
            if node.is_switch or not path:  # CAs forward nothing, except the SM's own
                probe = (*path, port) if node.is_switch else (port,)
                if len(probe) <= MAX_HOP_COUNT:
                    self._issue_get(SmpAttr.NODE_INFO, probe, self._on_node_info, endpoint, now_ns)
        elif not link_up and known:
            self._remove_link(endpoint)

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
            self._prune_unreachable(now_ns)
            self.phase = Phase.LIDS
            self._assign_lids(now_ns)
        elif self.phase == Phase.LIDS:
            self.phase = Phase.ROUTE
            self._program_routes(now_ns)
        elif self.phase == Phase.ROUTE:
            self.phase = Phase.ARM
            self._set_port_states(PortState.INIT, PortState.ARMED, now_ns)
        elif self.phase == Phase.ARM:
            self.phase = Phase.ACTIVATE
            self._set_port_states(PortState.ARMED, PortState.ACTIVE, now_ns)
        elif self.phase == Phase.ACTIVATE:
            self.phase = Phase.IDLE
            self._subnet_up(now_ns)
            return
        else:
            return
        if not self._queue and not self._outstanding:
            self._phase_done(now_ns)  # the phase had nothing to do

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

    def _assign_lids(self, now_ns: int) -> None:
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
        db.lid_owner = {}
        db.port_lid = {}
        for record in end_ports:
            lid = wanted[record.port_guid]
            db.lid_owner[lid] = (record.node_guid, record.port_num)
            db.port_lid[record.port_guid] = lid
        db.max_lid = max(db.lid_owner, default=0)
        sm_record = db.nodes[self._sm_node_guid].ports.get(self.port_num)
        db.sm_lid = wanted.get(sm_record.port_guid, 0) if sm_record else 0
        for record in end_ports:
            lid = wanted[record.port_guid]
            if record.lid == lid and record.master_sm_lid == db.sm_lid:
                continue
            node = db.nodes[record.node_guid]
            self._issue_port_info_set(node, record, now_ns, lid=lid, master_sm_lid=db.sm_lid)

    def _issue_port_info_set(
        self,
        node: NodeRecordData,
        record: PortRecordData,
        now_ns: int,
        *,
        lid: int | None = None,
        master_sm_lid: int | None = None,
        port_state: int = PortState.NO_CHANGE,
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
            data[51] = (data[51] & 0xE0) | (config.subnet_timeout & 0x1F)
        data[29] = 0  # LinkWidthEnabled: no change
        data[32] = (data[32] & 0xF0) | (port_state & 0x0F)  # LinkSpeedSupported | PortState
        data[33] = 0  # PortPhysicalState, LinkDownDefaultState: no change
        data[35] &= 0xF0  # LinkSpeedActive | LinkSpeedEnabled: no change
        data[63] &= 0xE0  # LinkSpeedExtEnabled: no change
        smp = make_request(
            Method.SET,
            SmpAttr.PORT_INFO,
            tid=self._next_tid(),
            attribute_modifier=record.port_num,
            data=bytes(data),
            path=self._path_to_port(node, record.port_num),
            m_key=self.config.m_key,
        )
        self._issue(
            smp, self._path_to_port(node, record.port_num), self._on_port_info,
            (node, record.port_num), now_ns,
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
        top = self.db.max_lid
        blocks = top // LFT_BLOCK_SIZE + 1
        for i, guid in enumerate(self.switch_order):
            node = self.db.nodes[guid]
            new = bytearray(blocks * LFT_BLOCK_SIZE)
            new[:] = bytes([UNREACHABLE_PORT]) * len(new)
            row = lfts[i]
            new[: len(row)] = row.tobytes()
            old = node.lft
            if node.lft_top != top:
                info = SwitchInfo(linear_fdb_top=top)
                self._issue_set(info, node.path, self._on_switch_info, node, now_ns)
            for block in range(blocks):
                start = block * LFT_BLOCK_SIZE
                chunk = new[start : start + LFT_BLOCK_SIZE]
                if old is not None and old[start : start + LFT_BLOCK_SIZE] == chunk:
                    continue
                self._issue_set(
                    LinearForwardingTable(tuple(chunk)),
                    node.path,
                    _ignore,
                    None,
                    now_ns,
                    block,
                )
            node.lft = new

    # --- ARM / ACTIVATE -------------------------------------------------------------

    def _set_port_states(self, current: PortState, target: PortState, now_ns: int) -> None:
        for node in self.db.nodes.values():
            for port, record in node.ports.items():
                if not record.known or record.port_state != current:
                    continue
                if port != 0 and (node.node_guid, port) not in self.db.links:
                    continue
                self._issue_port_info_set(node, record, now_ns, port_state=target)

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
            if self.phase == Phase.IDLE and self._up_since_sweep:
                self._start_light_sweep(now_ns)

    def _start_light_sweep(self, now_ns: int) -> None:
        lids, self._resweep_lids = self._resweep_lids, set()
        self.sweep += 1
        self.light = True
        self._sweep_start_ns = now_ns
        self._emit(SweepStarted(self.sweep, True, now_ns))
        self.phase = Phase.DISCOVER
        for node in self.db.nodes.values():
            node.seen_in_sweep = self.sweep  # known nodes are not read again
        for lid in sorted(lids):
            owner = self.db.lid_owner.get(lid)
            if owner is None:
                continue
            node = self.db.nodes[owner[0]]
            if not node.is_switch:
                continue
            for port in range(1, node.info.num_ports + 1):
                self._issue_get(
                    SmpAttr.PORT_INFO, node.path, self._on_port_info, (node, port), now_ns, port
                )
        if not self._queue and not self._outstanding:
            self._phase_done(now_ns)

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
            done(written, when_ns)

        def on_reply(smp: Smp, _ctx: Any, when_ns: int) -> None:
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
            requested, self._path_to_port(node, port), on_reply, None, now_ns, block, on_error
        )
        return True


def _ignore(smp: Smp, ctx: Any, now_ns: int) -> None:
    """Handler for SMPs whose answer carries nothing the SM keeps (LFT blocks)."""

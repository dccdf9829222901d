"""A simulated subnet: every node's SMA, the SM and SA, and the fabric between them.

Transport. Engines hand out `Datagram`s; the transport carries their encoded
bytes port to port:

- directed-route SMPs (class 0x81) follow their own path, with the hop pointer and
  return path updated in the packet's bytes at every node exactly as IBA Vol 1,
  14.2.2 prescribes (pure DR: DrSLID = DrDLID = 0xFFFF);
- everything else is LID routed: out of the sending port, then at each switch
  through the LFT its SMA holds (the LFTs the SM programmed), to the end port whose
  LID is the DLID.

A packet is dropped, and the drop counted by reason, where a cable is missing or
its link is down, where an LFT has no entry (port 255), where a loop exceeds 64
hops, or where a non-management packet (not VL15) meets a port that is not Active.

One event per packet: the walk through the switches happens in a loop within the
event that sends the packet, and the packet is delivered by one event at its
arrival time; walking in a loop is what lets an 11,664-host bring-up (hundreds of
thousands of SMPs) run in seconds.

Contention (`LatencyModel.contention`, on by default). Every port serialises
packets at its link's data rate (`ibmig.sim.latency.data_rate_gbps`, width x
speed less the line code) and keeps a calendar of the intervals it is busy
sending. A packet leaves its first port at the first free interval long enough
from the time its engine lets it go (below), each switch forwards it `switch_ns`
after its head arrived (cut-through) or at the output port's first free interval
from then, each cable adds `cable_ns`, and it is delivered when its tail arrives.
The ports of the whole path are reserved in the step that emits the packet, not
hop by hop, with the times it will pass them: no event per packet and hop, and no
event per packet leaving an engine's queue. A burst emitted in one step (an SA's
Reports to every subscriber) is booked a hop at a time for all its packets, in
arrays, with the bookings one packet after another would make (`_book_burst`).
The approximation this makes: a port serves packets in the order their
reservations were made where they collide, not the order they reach it, and a
packet reserved later can use a gap before one reserved earlier (it never moves
it). Both differ from hop-by-hop service only for packets in flight at once through
the same port, within one path's latency (a few microseconds on a fat tree), far
below the engines' service times that make the queues this model is for. Without
contention a cable costs `link_ns` and nothing queues. Multicast packets (IPoIB
broadcast, rare here) are charged the first port's serialisation but reserve no
port.

A LID-routed walk depends only on cables, link states, LFTs, port LIDs and port
states, so its outcome is memoised per (node, port, DLID, VL15 or not). Every SMA
says when one of its own LFT blocks, LIDs or port states changes (its
`ForwardingChanged` event), and link changes go through the transport: either
clears the memo. A directed-route walk depends on cables and link states alone
(a bring-up sends each path's SMPs again and again: a switch's LFT blocks, 696 of
them on the largest preset, all go one way), so it is memoised per (node,
direction, the path's port numbers) and forgotten on a link change. A lossy
fabric draws its losses per crossing and walks every packet.

Engines. The runtime only pumps engines: each is attached to a node with its
processing time (`attach`), given per management class where one engine answers
several (the SM's SMPs and the SA's MADs of an `SmNode`). Without contention it is
the delay with which the outputs of a step leave. With contention each engine is a
single server with a FIFO of work (`EngineServer`); an engine attached as a node's SM
with a time per class has two, one for its SMPs (`smp_servers`) and one for the rest,
as OpenSM's SM and SA work in threads of their own: an SMP's answer frees the SM's
window of SMPs on the wire as it arrives, not behind the SA's Reports. A MAD it
receives costs one processing time of its class and waits while the engine is busy
(the engine sees it when its turn comes), and the outputs of a step leave one after
another, one processing time of their class each: N Reports emitted at once leave
at start + s, start + 2s, ..., start + N*s, and what arrives meanwhile waits behind
them. A timer that expires while the engine is busy waits its turn in the FIFO too
(the engine sees it when it gets to it): a ReportResp that arrived before a Report's
timeout is handled before the timeout is. API calls made on an engine from
outside the fabric (the toolstack's commands, a link change at the SM's port) act
at once and their outputs join the queue at once. The engines know nothing of any
of it. Output sent with an explicit delay (`pump(..., delay_ns)`) leaves then,
outside the queue. A packet's path is walked (and its loss on lossy cables drawn)
when it is emitted, as without contention: a link that goes down while it waits in
its engine's queue does not stop it.

Kernel MAD layer. A GSI client hands its requests to the kernel with a timeout
and retries (libibumad's umad_send; OpenSM's osm_vendor_send in
libvendor/osm_vendor_ibumad.c), and Linux's MAD layer
(drivers/infiniband/core/mad.c) starts that timeout when the send completes
(ib_mad_complete_send_wr -> wait_for_response) and matches the response by TID as
it is received (ib_mad_complete_recv -> ib_find_send_mad), in kernel context,
whatever the client is busy with. An engine's queue is the client's thread, not
the kernel: so for an engine with the optional `ibmig.core.engine.MadAgent`
methods (the SA) the runtime says when each request it emitted leaves the port
(`mad_departed`, called when the departure is computed, in the emitting step: no
event per MAD) and when a response to one of its requests reaches the port
(`response_arrived`, at delivery, before the response waits its turn in the
queue). The engine keeps its timers and decides what a late answer is; the
runtime only tells it what the kernel would know. (Putting the timeouts
themselves in the runtime, as the kernel does, would move the SA's resends and
their counts out of the engine that the ibsim and umad runtimes drive too.)

Delivery. QP0 requests go to the node's SMA, QP0 responses and traps to the engine
attached there as the SM, QP1 MADs to the engine that sent the request they answer
(by TID) or else to the engine attached for their class. A migration's
thousands of Reports and ReportResps then cost a dictionary lookup each instead of
a walk. Lossy links (loss drawn per crossing) are walked every time.
"""

from __future__ import annotations

import json
import random
from array import array
from bisect import bisect_right
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import chain
from typing import IO, Any

import numpy as np

from ibmig.core.engine import PERMISSIVE_LID, QP0, QP1, Datagram, Engine
from ibmig.core.sa import SaConfig, SubnetAdministrator
from ibmig.core.sm.manager import SmConfig, SubnetManager, SubnetUp, SweepFailed
from ibmig.core.sm.node import SA_CLASS, SMP_CLASSES, SmNode
from ibmig.core.sma import ForwardingChanged, NodeSpec, SubnetManagementAgent
from ibmig.errors import ConfigError
from ibmig.fabric.model import Fabric, Node
from ibmig.sim.kernel import EventKernel, Timer
from ibmig.sim.latency import LatencyModel, data_rate_gbps
from ibmig.wire.capture import CaptureWriter
from ibmig.wire.jsonify import to_json
from ibmig.wire.mad import Method, MgmtClass
from ibmig.wire.packet import QP1_QKEY, Bth, Grh, Lrh, OpCode, Packet, build_ud_packet
from ibmig.wire.smp import MAX_HOP_COUNT
from ibmig.wire.smp_attrs import (
    MULTICAST_LID_BASE,
    NodeType,
    PortCapability,
    PortState,
    SmpAttr,
)

_DR_CLASS = MgmtClass.SUBN_DIRECTED_ROUTE.value
_SM_INFO = SmpAttr.SM_INFO.to_bytes(2, "big")
# GSI methods answered by a response with the R bit set (IBA Vol 1, 13.4.5): only
# these leave a requester to route the answer back to. Send (CM) and TrapRepress
# are never answered that way, so remembering them would only grow the table.
_ANSWERED = frozenset(
    int(m)
    for m in (
        Method.GET,
        Method.SET,
        Method.REPORT,
        Method.GET_TABLE,
        Method.GET_TRACE_TABLE,
        Method.GET_MULTI,
        Method.DELETE,
    )
)
_UNREACHABLE = 0xFF
# A datagram rebuilt with its arrival port and payload: tuple.__new__ directly, as
# namedtuple's `_make` does, minus the Python frame `_make` costs (two per SMP
# round trip in a bring-up).
_new_tuple = tuple.__new__
_BYTE = [bytes((value,)) for value in range(256)]
# An engine's processing time: one delay for all it sends, or one per management class.
Processing = int | Mapping[int, int]
# What a runtime does with an engine's outputs other than datagrams (an intra-host
# channel, a toolstack's commands), called with (node, engine) after each pump.
OutputHandler = Callable[[int, Engine], None]
TOOLSTACK = -1
"""The node of engines attached off the fabric (the migration toolstack)."""
# The ports a packet leaves by, one per cable it crosses, as their calendar indices
# (`SubnetSim._calendar`).
_Hops = tuple[int, ...]
# Where a LID-routed walk ends: (node, arrival port, cables crossed, the port it
# leaves by at every hop), or the reason the packet is dropped. Every cable but the
# last ends at a switch that forwards.
_Route = tuple[int, int, int, _Hops] | str
# A directed-route walk: the ports the SMP is sent out of (their calendars, as it
# books them: up to where it is dropped, if it is) and where it ends, as (node,
# arrival port, the return path it wrote: outbound only) or why it was dropped.
_DrWalk = tuple[_Hops, tuple[int, int, bytes] | str, int]
# Directed-route walks memoised at most (about 300 bytes each). A discovery walks
# every link from both ends once, which on the largest preset would keep some
# 200,000 walks nobody asks for again; what is asked again comes in runs (a
# switch's LFT blocks, a host's GUIDInfo writes), which a memo of this size keeps.
_DR_WALKS_KEPT = 1 << 16
# Bytes a packet adds to its payload on the wire (IBA Vol 1, 5.4 and 7.7-7.8): LRH 8,
# BTH 12, ICRC 4, VCRC 2; DETH 8 for UD; GRH 40 when it carries GIDs.
_FRAMING_BYTES = 8 + 12 + 4 + 2
_DETH_BYTES = 8
_UD_SEND_ONLY = int(OpCode.UD_SEND_ONLY)  # an int compares faster than the enum member
_GRH_BYTES = 40
_MAX_HOPS = 64
# Packets emitted in one engine step, at least this many, have their ports booked
# together (`SubnetSim._book_burst`): an SA's Reports to every subscriber. Fewer
# are booked one by one, which costs less than setting up the arrays.
_BURST_AT_LEAST = 256
_INITIAL_PATH = 128
_RETURN_PATH = 192


def _forget_past(starts: list[int], ends: list[int], now_ns: int) -> None:
    """Drop a port's busy intervals that ended by `now_ns` (nothing can be booked
    before now), all but the last: a calendar is never empty (`_reserve`)."""
    done = min(bisect_right(ends, now_ns), len(ends) - 1)
    del starts[:done]
    del ends[:done]


# A port's calendar is pruned of past intervals once it holds more than this many
# (they cost nothing but memory: lookups start after them), and only when at least
# half of it is past: deleting from the front of a list moves what remains, and
# the SA's port holds a whole burst of Reports booked ahead (11,663 on ft3-11664),
# so pruning one interval per packet cost O(burst) each.
_PRUNE_AT = 16


def _book(starts: list[int], ends: list[int], ready_ns: int, ser_ns: int, now_ns: int) -> int:
    """Book the port for `ser_ns` at the first free interval from `ready_ns`
    (intervals booked before keep their place); returns when sending starts.
    Intervals that touch are merged, so a queue of packets back to back is one
    interval to step over, not one per packet."""
    if len(ends) > _PRUNE_AT and ends[len(ends) >> 1] <= now_ns:
        _forget_past(starts, ends, now_ns)
    t = ready_ns
    i = bisect_right(ends, t)  # the intervals before i end by t
    count = len(starts)
    while i < count and starts[i] < t + ser_ns:
        t = ends[i]  # intervals are disjoint and sorted: each ends after t
        i += 1
    end = t + ser_ns
    if i and ends[i - 1] == t:
        if i < count and starts[i] == end:
            ends[i - 1] = ends[i]
            del starts[i]
            del ends[i]
        else:
            ends[i - 1] = end
    elif i < count and starts[i] == end:
        starts[i] = t
    else:
        starts.insert(i, t)
        ends.insert(i, end)
    return t


def node_spec(node: Node, fabric: Fabric) -> NodeSpec:
    """What a node's SMA answers with, from the topology file."""
    port_guids = (
        ()
        if node.is_switch
        else tuple(fabric.ports[node.port_index(p)].port_guid for p in node.port_nums)
    )
    return NodeSpec(
        node_type=NodeType(int(node.node_type)),
        node_guid=node.node_guid,
        system_image_guid=node.system_image_guid,
        num_ports=node.num_ports,
        port_guids=port_guids,
        description=node.description,
        vendor_id=node.vendor_id,
        device_id=node.device_id,
        # ConnectX-3 and later hold 128 GIDs per port in SR-IOV mode (mlx4 driver,
        # MLX4_ROCE_MAX_GIDS / the GUIDInfo table of 16 blocks): room for a PF and
        # 127 VFs.
        guid_cap=128,
    )


class TraceWriter:
    """JSON Lines trace: one object per engine event or drop, in simulation order."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, time_ns: int, node: str, event: Any) -> None:
        record = {"t_ns": time_ns, "node": node, "event": type(event).__name__}
        body = to_json(event)
        if isinstance(body, dict):
            record.update(body)
        self.stream.write(json.dumps(record, sort_keys=True) + "\n")


@dataclass(slots=True, eq=False)
class EngineServer:
    """An engine as a single server with a FIFO of work (module docstring)."""

    busy_until_ns: int = 0
    """When the work in hand (MADs received and emitted) is done."""
    inbox: deque[tuple[int, Datagram | None]] = field(default_factory=deque)
    """MADs received while busy (None: the engine's timer fired), with the node
    they arrived at, in arrival order."""
    waking: bool = False
    leaving: deque[int] = field(default_factory=deque)
    """When the MADs emitted leave, in order; those past are dropped lazily."""
    busy_ns: int = 0
    """Processing time charged so far (received and emitted MADs)."""
    max_queue: int = 0
    """The most MADs waiting at once (received not yet handled + emitted not yet
    left)."""
    peak: int = 0
    """The most MADs waiting at once since the last `take_peak`."""

    def queue(self, now_ns: int) -> int:
        """MADs waiting at `now_ns`: received not yet handled, emitted not yet left."""
        leaving = self.leaving
        while leaving and leaving[0] <= now_ns:
            leaving.popleft()
        return len(self.inbox) + len(leaving)

    def note_queue(self, now_ns: int) -> None:
        queue = self.queue(now_ns)
        if queue > self.peak:
            self.peak = queue
            self.max_queue = max(self.max_queue, queue)

    def take_peak(self, now_ns: int) -> int:
        """The most MADs waiting since the last call; starts the next window."""
        peak = self.peak
        self.peak = self.queue(now_ns)
        return peak


@dataclass(slots=True)
class _Attachment:
    """What the runtime keeps of an attached engine, by id(engine): one lookup per
    pump or delivery. (Seven dictionaries keyed alike, each as big as the number of
    engines, cost a cache miss each per MAD at 655,344 VMs.)"""

    processing: Processing
    """Its processing time (`SubnetSim.attach`)."""
    engine: Engine
    """The engine: what `gsi` and the GSI requesters hand a MAD to, with this."""
    departed: Callable[[Datagram, int], None] | None = None
    arrived: Callable[[Datagram, int], None] | None = None
    """Its `MadAgent` methods, if it has them (module docstring, "Kernel MAD layer")."""
    outputs: OutputHandler | None = None
    server: EngineServer | None = None
    """Its queue (contention), made on first use; for an SM node its SA's."""
    smp_server: EngineServer | None = None
    """An SM node's SMPs' queue (`SubnetSim.smp_servers`)."""
    timer: Timer | None = None
    """The kernel timer standing for the engine's deadline."""


@dataclass(slots=True)
class TransportStats:
    sent: int = 0
    delivered: int = 0
    drops: Counter[str] = field(default_factory=Counter)


class SubnetSim:
    """A fabric with an SMA in every node and an SM on one CA port."""

    def __init__(
        self,
        fabric: Fabric,
        *,
        latency: LatencyModel | None = None,
        sm_node: str | int | None = None,
        sm_port: int = 1,
        sm_config: SmConfig | None = None,
        sa_config: SaConfig | None = None,
        seed: int = 0,
        capture: CaptureWriter | None = None,
        trace: TraceWriter | None = None,
    ) -> None:
        self.fabric = fabric
        self.latency = latency or LatencyModel()
        self.kernel = EventKernel()
        self.capture = capture
        self.trace = trace
        self.stats = TransportStats()
        # Memoised LID-routed walks (module docstring).
        self._routes: dict[tuple[int, int, int, bool], _Route] = {}
        self._dr_walks: dict[tuple[int, bool, bytes], _DrWalk] = {}
        self.vf_lids: dict[int, tuple[int, int]] = {}
        """vSwitch model: VF LID -> (CA node, port) whose HCA accepts it besides the
        port's own LID (kept by `ibmig.sim.hosting`)."""
        self.rng = random.Random(seed)
        self.agents = [SubnetManagementAgent(node_spec(n, fabric)) for n in fabric.nodes]
        self._attached: dict[int, _Attachment] = {}
        self.contention = self.latency.contention
        self.servers: dict[int, EngineServer] = {}
        """Each engine's queue, by id(engine), when contention is on (for an SM node:
        its SA's, the MADs of the SA class)."""
        self.smp_servers: dict[int, EngineServer] = {}
        """An SM node's SMPs' queue, by id(engine): OpenSM's SM (state manager, VL15
        poller) and SA (its MAD dispatcher) work in threads of their own, and an
        SMP's answer is taken off the wire window as it arrives (osm_sm_mad_ctrl.c
        retires the transaction in the receive path), not behind the SA's Reports."""
        for agent in self.agents:
            agent.record_events = trace is not None
            self._attached[id(agent)] = _Attachment(self.latency.sma_ns, agent)
        self.is_switch = [n.is_switch for n in fabric.nodes]
        self.names = [n.name for n in fabric.nodes]
        # peer[node][port] = (node, port) across the cable, or None.
        self.peer: list[list[tuple[int, int] | None]] = [
            [None] * (n.num_ports + 1) for n in fabric.nodes
        ]
        # Per port: its link's data rate as (numerator, denominator) of Gb/s, one
        # tuple per distinct rate (`_reserve` tells a change of rate by identity).
        self._port_rate: list[list[tuple[int, int]]] = [
            [(1, 1)] * (n.num_ports + 1) for n in fabric.nodes
        ]
        rates: dict[tuple[int, int], tuple[int, int]] = {}
        for link in fabric.links:
            self.peer[link.node_a][link.port_a] = (link.node_b, link.port_b)
            self.peer[link.node_b][link.port_b] = (link.node_a, link.port_a)
            rate = data_rate_gbps(link.width, link.speed)
            pair = (rate.numerator, rate.denominator)
            pair = rates.setdefault(pair, pair)
            self._port_rate[link.node_a][link.port_a] = pair
            self._port_rate[link.node_b][link.port_b] = pair
        # Port calendars: the intervals [start, end) each port is busy sending. A
        # port gets an index when a walk first crosses it (`_calendar`; most ports
        # of a big fabric carry no packet that reserves them). What `_reserve` reads
        # at every hop lies in flat arrays by index: the port's last interval
        # (`_busy_start`, `_busy_end`: an empty one at time 0 to begin with) and its
        # rate. Only a port with more than one interval that may still matter (booked
        # ahead with a gap, as the SA's port is through a burst of Reports) has them
        # all in sorted lists (`_ahead`: the lists `_book` keeps, ending with the
        # last interval); an idle port has none. A calendar per port of two lists
        # and a tuple cost some 250 bytes and, at every hop, four objects scattered
        # in memory to read.
        self._calendar_of: list[list[int]] = [[-1] * (n.num_ports + 1) for n in fabric.nodes]
        self._busy_start = array("q")
        self._busy_end = array("q")
        self._ahead: list[tuple[list[int], list[int]] | None] = []
        self._calendar_rate: list[tuple[int, int]] = []
        self._rates_as_arrays: tuple[np.ndarray, np.ndarray] | None = None
        self.link_up: set[tuple[int, int]] = set()
        # Cable ends whose outgoing packets are lost at random, and the stream that
        # decides it (seeded apart from the SM's, so adding loss changes nothing else).
        self.loss_rate: dict[tuple[int, int], float] = {}
        self.loss_rng = random.Random(self.rng.getrandbits(64))
        self.sm_node = self._pick_sm_node(sm_node)
        self.sm_port = sm_port
        self.sm = SubnetManager(
            port_num=sm_port, config=sm_config, rng=random.Random(self.rng.getrandbits(64))
        )
        self.sm.record_events = True
        self.sa = SubnetAdministrator(
            self.sm, rng=random.Random(self.rng.getrandbits(64)), config=sa_config
        )
        self.sm_engine = SmNode(self.sm, self.sa)
        """The SM and SA as the one engine attached at `sm_node`."""
        self.qp0_managers: dict[int, Engine] = {}
        # The engine (its attachment) that QP1 MADs of a class arriving at a node go to.
        self.gsi: dict[tuple[int, int], _Attachment] = {}
        # MADs sent, by class, method and attribute packed in one integer
        # (`mad_counts`: every MAD sent is counted, and a tuple key cost a tuple
        # per MAD); data-plane packets; SA MADs received per millisecond of
        # simulated time.
        self._mad_tally: defaultdict[int, int] = defaultdict(int)
        self.data_packets = 0
        self.sa_received_bins: Counter[int] = Counter()
        self._gsi_requesters: dict[tuple[int, bytes], _Attachment] = {}
        self.subnet_up_events: list[SubnetUp] = []
        self.sweep_failures: list[SweepFailed] = []
        self._started = False
        self._awaiting_up = False
        """Sweeps that ended without SUBNET UP and with nothing more to do (the SM's
        port down, too few LIDs, SMPs lost sweep after sweep)."""
        self.event_hooks: list[Callable[[int, Any], None]] = []
        """Called with (node, event) for every engine event."""
        self._typed_hooks: dict[type, list[Callable[[int, Any], None]]] = {}
        latency = self.latency
        sm_processing = dict.fromkeys(SMP_CLASSES, latency.sm_ns)
        sm_processing[SA_CLASS] = latency.sa_ns
        self.attach(
            self.sm_node,
            self.sm_engine,
            sm_processing,
            gsi_classes=(SA_CLASS,),
            smi=True,
            sm_port=sm_port,
        )
        self.add_event_hook(self._on_subnet_up, SubnetUp)
        self.add_event_hook(self._on_sweep_failed, SweepFailed)
        self.add_event_hook(self._forget_routes, ForwardingChanged)
        # Every cable comes up before anything runs. With no trace to record their
        # events cable by cable, each SMA is pumped once afterwards rather than once
        # per cable end (245,760 pumps on the largest preset).
        per_cable = trace is not None
        for link in fabric.links:
            self._set_link_state(
                link.node_a, link.port_a, link.node_b, link.port_b, True, pump=per_cable
            )
        if not per_cable:
            for node, agent in enumerate(self.agents):
                self._pump(node, agent)

    @property
    def mad_counts(self) -> Counter[tuple[int, int, int]]:
        """MADs sent so far, by (class, method, attribute ID): a snapshot."""
        return Counter(
            {
                (key >> 24, (key >> 16) & 0xFF, key & 0xFFFF): count
                for key, count in self._mad_tally.items()
            }
        )

    def _pick_sm_node(self, sm_node: str | int | None) -> int:
        nodes = self.fabric.nodes
        if sm_node is None:
            for node in nodes:
                if not node.is_switch and self.peer[node.index][1] is not None:
                    return node.index
            raise ConfigError("the fabric has no cabled channel adapter to host the SM")
        if isinstance(sm_node, int):
            if not 0 <= sm_node < len(nodes) or nodes[sm_node].is_switch:
                raise ConfigError(f"SM node {sm_node} is not a channel adapter")
            return sm_node
        for node in nodes:
            if sm_node in (node.name, node.description) and not node.is_switch:
                return node.index
        raise ConfigError(f"no channel adapter named {sm_node!r} to host the SM")

    # --- engines ----------------------------------------------------------------------

    def attach(
        self,
        node: int,
        engine: Engine,
        processing_ns: Processing,
        *,
        gsi_classes: Iterable[int] = (),
        smi: bool = False,
        sm_port: int | None = None,
        outputs: OutputHandler | None = None,
    ) -> None:
        """Attach `engine` at `node` (`TOOLSTACK`: off the fabric): what it sends
        leaves `processing_ns` after the step that made it (a mapping gives the delay
        per management class); QP1 MADs of `gsi_classes` arriving at `node` are
        delivered to it, and with `smi` so are the node's QP0 responses and traps (it
        is the node's SM: it also gets the SMInfo requests arriving there, and
        `sm_port` has IsSM set in its CapabilityMask, as a host's umad layer sets it
        when an SM opens the port). `outputs` takes its other outputs after every pump.
        Attaching again (a guest that migrated) replaces the processing time and
        output handler."""
        key = id(engine)
        attached = self._attached.get(key)
        if attached is None:
            attached = self._attached[key] = _Attachment(processing_ns, engine)
            attached.server = self.servers.get(key)
        attached.processing = processing_ns
        # Its `MadAgent` side, if any (looked up once: it is called per MAD).
        departed = getattr(engine, "mad_departed", None)
        arrived = getattr(engine, "response_arrived", None)
        if departed is not None:
            attached.departed = departed
        if arrived is not None:
            attached.arrived = arrived
        if smi and not isinstance(processing_ns, int):
            attached.smp_server = self.smp_servers.setdefault(key, EngineServer())
        if outputs is not None:
            attached.outputs = outputs
        for mgmt_class in gsi_classes:
            self.gsi[(node, mgmt_class)] = attached
        if smi:
            self.qp0_managers[node] = engine
            if sm_port is not None:
                agent = self.agents[node]
                mask = agent.port_info(sm_port).capability_mask
                agent.set_capability_mask(sm_port, mask | PortCapability.IS_SM)

    def add_event_hook(self, hook: Callable[[int, Any], None], *types: type) -> None:
        """Call `hook(node, event)` for the engine events of exactly these types. At
        scale most events interest nobody (four per Report); dispatching by type
        spares each of them a call to every hook."""
        for event_type in types:
            self._typed_hooks.setdefault(event_type, []).append(hook)

    def wanted_event_types(self) -> frozenset[type] | None:
        """The engine event types some observer uses: those typed hooks asked for,
        or None (all of them) when there is a trace or a hook for every event."""
        if self.trace is not None or self.event_hooks:
            return None
        return frozenset(self._typed_hooks)

    def narrow_engine_events(self) -> None:
        """Have the SA and the other QP1 engines record only the events somebody
        uses (`wanted_event_types`). Hooks added later are not seen: call again."""
        wanted = self.wanted_event_types()
        for attached in self.gsi.values():
            attached.engine.event_filter = wanted

    def sa_idle(self) -> bool:
        """Nothing waits at the SA's server (contention model; always true without)."""
        server = self.servers.get(id(self.sm_engine))
        now = self.kernel.now_ns
        return server is None or (server.busy_until_ns <= now and not server.inbox)

    def sa_idle_from(self) -> int | None:
        """When `sa_idle` turns true by time passing alone: the end of the work the
        SA's server has in hand, if nothing waits behind it; None if it is idle
        already or only an event can make it so."""
        server = self.servers.get(id(self.sm_engine))
        if server is None or server.inbox or server.busy_until_ns <= self.kernel.now_ns:
            return None
        return server.busy_until_ns

    def start(self) -> None:
        """Start the SM's first sweep at the current time."""
        self._started = True
        self.sm_engine.start_sweep(self.kernel.now_ns)
        self._pump(self.sm_node, self.sm_engine)

    def pump(self, node: int, engine: Engine, delay_ns: int | None = None) -> None:
        """`engine`, attached at `node`, has output now (after an API call made on
        it from outside the simulator): send it, `delay_ns` from now (its processing
        time when None), and keep its events and timer."""
        self._pump(node, engine, delay_ns)

    def _pump(
        self,
        node: int,
        engine: Engine,
        delay_ns: int | None = None,
        attached: _Attachment | None = None,
    ) -> None:
        """Send what `engine` has to send, `delay_ns` from now (its processing time
        when None), hand its events to the observers and keep its timer. `attached`:
        the engine's `_Attachment`, when the caller has it at hand."""
        if attached is None:
            attached = self._attached.get(id(engine))
            if attached is None:  # never attached: pumped with a delay of its own
                if delay_ns is None:
                    raise KeyError(f"{engine!r} is not attached")
                attached = self._attached[id(engine)] = _Attachment(delay_ns, engine)
        processing: Processing = attached.processing if delay_ns is None else delay_ns
        if self.contention:
            self._queue_outputs(node, engine, attached, processing, delay_ns is not None)
        else:
            outputs = engine.packets_to_send()
            if outputs:
                requesters = self._gsi_requesters
                by_class = None if isinstance(processing, int) else processing
                departed = attached.departed
                now = self.kernel.now_ns
                for datagram in outputs:
                    payload = datagram.payload
                    delay = processing if by_class is None else by_class[payload[1]]
                    if datagram.dqp == QP1 and len(payload) >= 16 and payload[3] in _ANSWERED:
                        # A GSI request: its response comes back to this engine by TID
                        # (the way a node's GSI agent hands responses to the client
                        # that asked).
                        requesters[(node, payload[8:16])] = attached
                        if departed is not None:
                            departed(datagram, now + delay)  # type: ignore[operator]
                    self.send(node, datagram, delay)  # type: ignore[arg-type]
        event = engine.next_event()
        if event is not None:
            typed_hooks = self._typed_hooks
            event_hooks = self.event_hooks
            trace = self.trace
            while event is not None:
                typed = typed_hooks.get(event.__class__)
                if typed is not None:
                    for hook in typed:
                        hook(node, event)
                for hook in event_hooks:
                    hook(node, event)
                if trace is not None:
                    name = self.names[node] if node != TOOLSTACK else "toolstack"
                    trace.write(self.kernel.now_ns, name, event)
                event = engine.next_event()
        deadline = engine.get_timer()
        timer = attached.timer
        if timer is not None and timer.time_ns != deadline:
            if deadline is not None and deadline > timer.time_ns:
                # Mostly this: the oldest outstanding request was answered.
                self.kernel.move_later(timer, deadline)
            else:
                timer.cancel()
                timer = attached.timer = None
        if deadline is not None and timer is None:
            delay = max(0, deadline - self.kernel.now_ns)
            attached.timer = self.kernel.start_timer(
                delay, self._on_timer, (node, engine, attached)
            )
        handler = attached.outputs
        if handler is not None:
            handler(node, engine)

    def _cancel_timer(self, engine: Engine) -> None:
        """Forget `engine`'s kernel timer (its process died)."""
        attached = self._attached.get(id(engine))
        if attached is not None and attached.timer is not None:
            attached.timer.cancel()
            attached.timer = None

    # --- engines as servers (contention) --------------------------------------------

    def server(self, engine: Engine) -> EngineServer:
        """`engine`'s queue (created idle on first use); an SM node's SA's."""
        key = id(engine)
        server = self.servers.get(key)
        if server is None:
            server = self.servers[key] = EngineServer()
        attached = self._attached.get(key)
        if attached is not None:
            attached.server = server
        return server

    def _queue_outputs(
        self,
        node: int,
        engine: Engine,
        attached: _Attachment,
        processing: Processing,
        fixed: bool,
    ) -> None:
        """Each output leaves one processing time of its class after the one before,
        once the work in hand is done; `fixed`: all leave `processing` from now."""
        outputs = engine.packets_to_send()
        now = self.kernel.now_ns
        main = attached.server
        if not outputs:
            # An engine without a queue yet is idle: nothing to make one for.
            if not fixed and main is not None and main.busy_until_ns < now:
                main.busy_until_ns = now
            return
        if main is None:
            main = self.server(engine)
        requesters = self._gsi_requesters
        departed = attached.departed
        by_class = None if isinstance(processing, int) else processing
        # An SM node has two queues (`smp_servers`); when each one's last output
        # leaves (-1: none yet).
        smp = attached.smp_server
        main_leave = smp_leave = -1
        send = self.send
        # A burst is sent once every output's leave time is known (`_send_burst`):
        # what happens here per output (its queue, its requester, `departed`) does
        # not depend on the sending, which schedules in the same order either way.
        delays: list[int] | None = [] if len(outputs) >= _BURST_AT_LEAST else None
        for datagram in outputs:
            payload = datagram.payload
            to_smp = smp is not None and payload[1] in SMP_CLASSES
            if fixed:
                leave = now + processing  # type: ignore[operator]
            else:
                server = smp if to_smp else main
                leave = smp_leave if to_smp else main_leave
                if leave < 0:
                    leave = max(now, server.busy_until_ns)  # type: ignore[union-attr]
                service = processing if by_class is None else by_class[payload[1]]
                leave += service  # type: ignore[operator]
                server.busy_ns += service  # type: ignore[union-attr, operator]
                if leave > now:
                    server.leaving.append(leave)  # type: ignore[union-attr]
                if to_smp:
                    smp_leave = leave
                else:
                    main_leave = leave
            if datagram.dqp == QP1 and len(payload) >= 16 and payload[3] in _ANSWERED:
                requesters[(node, payload[8:16])] = attached  # as without contention
                if departed is not None:
                    departed(datagram, leave)
            if delays is None:
                send(node, datagram, leave - now)
            else:
                delays.append(leave - now)
        if delays is not None:
            self._send_burst(node, outputs, delays)
        if fixed:
            return
        if main_leave < 0:
            main.busy_until_ns = max(main.busy_until_ns, now)
        else:
            main.busy_until_ns = main_leave
            if main_leave > now:
                main.note_queue(now)
        if smp is not None and smp_leave >= 0:
            smp.busy_until_ns = smp_leave
            if smp_leave > now:
                smp.note_queue(now)

    def _handle(
        self,
        node: int,
        engine: Engine,
        datagram: Datagram | None,
        attached: _Attachment | None = None,
    ) -> None:
        """`engine` at `node` receives `datagram` (None: its timer fired): now, or
        with contention when the engine is free (it waits in the engine's FIFO
        meanwhile). `attached`: as for `_pump`."""
        now = self.kernel.now_ns
        if attached is None:
            attached = self._attached[id(engine)]
        if not self.contention:
            assert datagram is not None
            engine.receive(datagram, now)
            self._pump(node, engine, None, attached)
            return
        # The queue it waits in: an SM node's SMPs in their own (`smp_servers`), the
        # rest (and timers) in the engine's.
        server = attached.smp_server
        if server is None or datagram is None or datagram.payload[1] not in SMP_CLASSES:
            server = attached.server or self.server(engine)
        if server.inbox or server.busy_until_ns > now:
            server.inbox.append((node, datagram))
            server.note_queue(now)
            if not server.waking:
                server.waking = True
                self.kernel.schedule(
                    server.busy_until_ns - now, self._wake, (engine, server, attached)
                )
            return
        self._serve(node, engine, datagram, server, now, attached)

    def _serve(
        self,
        node: int,
        engine: Engine,
        datagram: Datagram | None,
        server: EngineServer,
        now: int,
        attached: _Attachment,
    ) -> None:
        if datagram is None:  # a timer: no MAD to handle, its outputs cost their time
            engine.handle_timer(now)
            self._pump(node, engine, None, attached)
            return
        processing = attached.processing
        service = processing if isinstance(processing, int) else processing[datagram.payload[1]]
        server.busy_until_ns = now + service
        server.busy_ns += service
        engine.receive(datagram, now)
        self._pump(node, engine, None, attached)

    def _wake(self, arg: tuple[Engine, EngineServer, _Attachment]) -> None:
        """Serve the head of the engine's queue; and the next, and so on, for as
        long as the kernel would run nothing else before its turn comes
        (`EventKernel.advance_to`): a burst of ReportResps waiting at the SA is
        served in one event instead of one heap entry each, at the same times."""
        engine, server, attached = arg
        kernel = self.kernel
        now = kernel.now_ns
        if server.busy_until_ns > now:  # a timer's outputs joined the work in hand
            kernel.schedule(server.busy_until_ns - now, self._wake, arg)
            return
        server.waking = False
        inbox = server.inbox
        serve = self._serve
        while True:
            node, datagram = inbox.popleft()
            serve(node, engine, datagram, server, now, attached)
            if not inbox or server.waking:
                return
            if not kernel.advance_to(max(now, server.busy_until_ns)):
                break
            now = kernel.now_ns
        server.waking = True
        kernel.schedule(server.busy_until_ns - now, self._wake, arg)

    def _on_subnet_up(self, node: int, event: SubnetUp) -> None:
        self.subnet_up_events.append(event)
        if self._awaiting_up:
            # `run_until_up` returns at SUBNET UP itself, not where its chunk of
            # events happens to end: what runs next starts at the same simulated
            # time however many events the bring-up took.
            self.kernel.stop()

    def _on_sweep_failed(self, node: int, event: SweepFailed) -> None:
        self.sweep_failures.append(event)
        if self._awaiting_up:
            self.kernel.stop()  # `run_until_up` returns here, not a chunk later

    def _on_timer(self, arg: tuple[int, Engine, _Attachment]) -> None:
        node, engine, attached = arg
        attached.timer = None
        if self.contention:
            self._handle(node, engine, None, attached)
            return
        engine.handle_timer(self.kernel.now_ns)
        self._pump(node, engine, None, attached)

    # --- transport --------------------------------------------------------------------

    def send(self, node: int, datagram: Datagram, delay_ns: int = 0) -> None:
        """Carry `datagram` from `node`, leaving `delay_ns` from now."""
        self.stats.sent += 1
        payload = datagram.payload
        dqp = datagram.dqp
        if dqp <= QP1:
            self._mad_tally[
                (payload[1] << 24) | (payload[3] << 16) | (payload[16] << 8) | payload[17]
            ] += 1
        else:
            self.data_packets += 1
        if self.capture is not None:
            self._capture(datagram, delay_ns)
        if dqp == QP0 and len(payload) > 7 and payload[1] == _DR_CLASS:
            self._send_directed(node, datagram, delay_ns)
            return
        if MULTICAST_LID_BASE <= datagram.dlid < PERMISSIVE_LID:
            self._send_multicast(node, datagram, delay_ns)
            return
        # LID routed. Every Report, ReportResp and data packet comes this way, so
        # the memoised walk is looked up here rather than in a helper.
        management = dqp == QP0
        route: _Route | None
        if self.loss_rate:
            # Loss is drawn per crossing, so a lossy fabric walks every packet.
            route = self._walk(node, datagram.port, datagram.dlid, management)
        else:
            key = (node, datagram.port, datagram.dlid, management)
            route = self._routes.get(key)
            if route is None:
                route = self._routes[key] = self._walk(
                    node, datagram.port, datagram.dlid, management
                )
        if isinstance(route, str):
            self.stats.drops[route] += 1
            return
        far_node, in_port, links, hops = route
        if links:
            if self.contention:
                delay_ns = self._reserve(hops, self._wire_bytes(datagram), delay_ns)
            else:
                latency = self.latency
                delay_ns += links * latency.link_ns + (links - 1) * latency.switch_ns
        if datagram.port != in_port:  # it arrives on its own port number
            datagram = _new_tuple(Datagram, (payload, in_port, *datagram[2:]))
        self.kernel.schedule(delay_ns, self._deliver, (far_node, datagram))

    def _send_burst(self, node: int, datagrams: list[Datagram], delays: list[int]) -> None:
        """`send` each datagram, leaving its delay from now, in order; a run of at
        least `_BURST_AT_LEAST` of them LID routed over walks that arrive has its
        ports booked together (`_book_burst`). An SM's step can emit SMPs among its
        SA's Reports: they are sent one by one in their place."""
        batchable = self.contention and not self.loss_rate and self.capture is None
        memo = self._routes
        run: list[int] = []  # indices of the run of datagrams that may be booked together
        routes: list[tuple[int, int, int, _Hops]] = []
        for index, datagram in enumerate(datagrams):
            management = datagram.dqp == QP0
            if batchable and not (
                (management and datagram.payload[1] == _DR_CLASS)
                or datagram.dlid >= MULTICAST_LID_BASE
            ):
                key = (node, datagram.port, datagram.dlid, management)
                route = memo.get(key)
                if route is None:
                    route = memo[key] = self._walk(node, datagram.port, datagram.dlid, management)
                # Dropped, or delivered at the node itself: `send` says so, below.
                if not isinstance(route, str) and route[2]:
                    run.append(index)
                    routes.append(route)
                    continue
            self._send_run(node, datagrams, delays, run, routes)
            run, routes = [], []
            self.send(node, datagram, delays[index])
        self._send_run(node, datagrams, delays, run, routes)

    def _send_run(
        self,
        node: int,
        datagrams: list[Datagram],
        delays: list[int],
        run: list[int],
        routes: list[tuple[int, int, int, _Hops]],
    ) -> None:
        """Send `datagrams[i]` for each i of `run` (LID routed by `routes`)."""
        if len(run) >= _BURST_AT_LEAST:
            now = self.kernel.now_ns
            wire_bytes = self._wire_bytes
            arrivals = self._book_burst(
                [route[3] for route in routes],
                [wire_bytes(datagrams[index]) * 8 for index in run],
                [now + delays[index] for index in run],
            )
            if arrivals is not None:
                # Counted as `send` counts each (a call per packet there is a call
                # per SMP of a bring-up).
                self.stats.sent += len(run)
                tally = self._mad_tally
                delivered: list[tuple[int, Datagram]] = []
                for index, (far_node, in_port, _, _) in zip(run, routes, strict=True):
                    datagram = datagrams[index]
                    payload = datagram.payload
                    if datagram.dqp > QP1:
                        self.data_packets += 1
                    else:
                        tally[
                            (payload[1] << 24)
                            | (payload[3] << 16)
                            | (payload[16] << 8)
                            | payload[17]
                        ] += 1
                    if datagram.port != in_port:  # as `send`
                        datagram = _new_tuple(Datagram, (datagram.payload, in_port, *datagram[2:]))
                    delivered.append((far_node, datagram))
                self.kernel.schedule_all(arrivals, self._deliver, delivered)
                return
        send = self.send
        for index in run:
            send(node, datagrams[index], delays[index])

    def _book_burst(
        self, paths: list[_Hops], bits: list[int], ready_ns: list[int]
    ) -> list[int] | None:
        """Book the ports of packets emitted together exactly as `_reserve` would,
        one packet after another in order (the k-th has `bits[k]` bits, is ready at
        `ready_ns[k]` and leaves by `paths[k]`), but a hop at a time for all of them;
        returns each one's delay from now to its delivery, as `_reserve` does. That
        holds when what each port on the paths holds ends by the time the first of
        them gets there, each port is the same hop of every path through it, and the
        packets reach each port in the order they were emitted: then at every port a
        packet starts when it arrives or when the one before it there is done,
        whichever is later (nothing booked earlier can leave it a gap to use).
        Subtracting from each start the serialisation of the packets before it at
        that port turns that into a running maximum, one array operation per hop.
        None (nothing booked) when a condition fails."""
        now = self.kernel.now_ns
        count = len(paths)
        lengths = np.fromiter(map(len, paths), dtype=np.int64, count=count)
        depth = int(lengths.max())
        on_path = np.arange(depth) < lengths[:, None]
        flat = np.fromiter(chain.from_iterable(paths), dtype=np.int64, count=int(on_path.sum()))
        ports = np.full((count, depth), -1, dtype=np.int64)
        ports[on_path] = flat  # row by row: each path's ports in order
        # One hop per port: with a port's hop written for each of its crossings
        # (the last write stays), every crossing reads its own back.
        hops = np.broadcast_to(np.arange(depth), (count, depth))[on_path]
        num, den = self._rate_arrays()
        hop_of = np.empty(len(num), dtype=np.int64)
        hop_of[flat] = hops
        if (hop_of[flat] != hops).any():
            return None
        size = np.asarray(bits, dtype=np.int64)
        t = np.asarray(ready_ns, dtype=np.int64)
        ser = np.zeros(count, dtype=np.int64)
        latency = self.latency
        step = latency.cable_ns + latency.switch_ns
        # Per hop, per port: the port, its packets' starts and their serialisations.
        booked: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        busy_end = np.frombuffer(self._busy_end, dtype=np.int64)
        for hop in range(depth):
            packets = np.nonzero(lengths > hop)[0]
            at = ports[packets, hop]
            grouped = np.argsort(at, kind="stable")  # by port, in emission order
            packets, at = packets[grouped], at[grouped]
            arrive = t[packets]
            takes = -(-size[packets] * den[at] // num[at])
            first = np.empty(len(at), dtype=bool)
            first[0] = True
            np.not_equal(at[1:], at[:-1], out=first[1:])
            if (np.diff(arrive)[~first[1:]] < 0).any():
                return None  # a port reached out of emission order
            if (busy_end[at] > arrive).any():
                return None  # booked by then (a port's first packet there is enough)
            group = np.cumsum(first) - 1
            before = np.cumsum(takes) - takes  # serialisations before, in the port's group
            before -= before[first][group]
            relative = arrive - before
            low = int(relative.min())
            span = int(relative.max()) - low + 1
            if int(group[-1]) * span >= 1 << 62:
                return None
            # A running maximum within each group: every group lifted above the last.
            lift = group * span
            start = np.maximum.accumulate(relative - low + lift) - lift + low + before
            booked.append((at, start, takes, first))
            t[packets] = start + step
            ser[packets] = takes
        del busy_end
        self._commit_bursts(booked)
        return (t - latency.switch_ns + ser - now).tolist()  # type: ignore[no-any-return]

    def _rate_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Every calendar's rate as arrays (numerators, denominators), made again
        only when a calendar was added since."""
        rates = self._calendar_rate
        if self._rates_as_arrays is None or len(self._rates_as_arrays[0]) != len(rates):
            pairs = np.array(rates, dtype=np.int64).reshape(len(rates), 2)
            self._rates_as_arrays = (pairs[:, 0].copy(), pairs[:, 1].copy())
        return self._rates_as_arrays

    def _commit_bursts(
        self, booked: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
    ) -> None:
        """Write what `_book_burst` booked into the calendars, after what each port
        held: the last interval in the arrays, and all that may still matter in
        lists when there is more than one (most ports of a burst, a subscriber's
        own among them, carry one packet of it: their arrays are written at once)."""
        now = self.kernel.now_ns
        ahead = self._ahead
        busy_start = np.frombuffer(self._busy_start, dtype=np.int64)
        busy_end = np.frombuffer(self._busy_end, dtype=np.int64)
        for at, start, takes, first in booked:
            begins = np.nonzero(first)[0]
            ends_at = np.append(begins[1:], len(at))  # one past each port's last
            ports = at[begins]
            held_start, held_end = busy_start[ports], busy_end[ports]
            busy_start[ports] = start[ends_at - 1]
            busy_end[ports] = start[ends_at - 1] + takes[ends_at - 1]
            listed = (ends_at - begins > 1) | (held_end > now)
            for port in ports[~listed].tolist():
                if ahead[port] is not None:
                    ahead[port] = None
            if not listed.any():
                continue
            starts = start.tolist()
            ends = (start + takes).tolist()
            for i in np.nonzero(listed)[0].tolist():
                port, begin, end = int(ports[i]), int(begins[i]), int(ends_at[i])
                if held_end[i] > now:  # booked ahead before: kept
                    held = ahead[port]
                    if held is None:
                        held = ahead[port] = ([int(held_start[i])], [int(held_end[i])])
                    held[0].extend(starts[begin:end])
                    held[1].extend(ends[begin:end])
                else:
                    ahead[port] = (starts[begin:end], ends[begin:end])

    @staticmethod
    def _wire_bytes(datagram: Datagram) -> int:
        """The packet's size on the wire (`_FRAMING_BYTES`)."""
        size = len(datagram.payload) + _FRAMING_BYTES
        if datagram.opcode == _UD_SEND_ONLY:
            size += _DETH_BYTES
        if datagram.dgid is not None:
            size += _GRH_BYTES
        return size

    def _reserve(self, hops: _Hops, size_bytes: int, delay_ns: int) -> int:
        """Reserve the ports of `hops` for a packet of `size_bytes` ready `delay_ns`
        from now; returns the delay at which its tail reaches the end (module
        docstring)."""
        now = self.kernel.now_ns
        latency = self.latency
        switch_ns = latency.switch_ns
        step = latency.cable_ns + switch_ns  # a cable, then the next switch
        bits = size_bytes * 8
        ser = 0
        # The rate ser was computed at: a path's links mostly share one, so the
        # division is done once per path rather than once per hop.
        last_rate: tuple[int, int] | None = None
        rates = self._calendar_rate
        busy_start = self._busy_start
        busy_end = self._busy_end
        ahead = self._ahead
        t = now + delay_ns
        for port in hops:
            rate = rates[port]
            if rate is not last_rate:
                ser = -(-bits * rate[1] // rate[0])
                last_rate = rate
            last = busy_end[port]
            if last <= now:
                # Idle since before now, the common case: every interval is past
                # and none can matter again.
                if ahead[port] is not None:
                    ahead[port] = None
            else:
                intervals = ahead[port]
                if intervals is None:
                    intervals = ahead[port] = ([busy_start[port]], [last])
                starts, ends = intervals
                if last >= t:
                    t = _book(starts, ends, t, ser, now)
                    busy_start[port] = starts[-1]
                    busy_end[port] = ends[-1]
                    t += step
                    continue
                # Booked ahead, free from t on.
                if len(ends) > _PRUNE_AT and ends[len(ends) >> 1] <= now:
                    _forget_past(starts, ends, now)
                starts.append(t)
                ends.append(t + ser)
            busy_start[port] = t
            busy_end[port] = t + ser
            t += step
        return t - switch_ns + ser - now  # no switch after the last cable

    def _capture(self, datagram: Datagram, delay_ns: int) -> None:
        """Frame the datagram as the packet it would be on the wire: LRH, a GRH when
        it carries GIDs (guests behind a shared port always do), BTH, and a DETH for
        UD; RC packets (opcode != UD SEND only) have none. ICRC and VCRC computed."""
        assert self.capture is not None
        slid = PERMISSIVE_LID if datagram.dlid == PERMISSIVE_LID else datagram.slid
        qkey = datagram.qkey or (QP1_QKEY if datagram.dqp == QP1 else 0)
        grh = None
        if datagram.dgid is not None:
            grh = Grh(datagram.sgid or bytes(16), datagram.dgid)
        if datagram.opcode != OpCode.UD_SEND_ONLY:
            vl = 0
            frame = Packet.build(
                Lrh(vl, 0, datagram.sl, 0, datagram.dlid, 0, slid),
                grh,
                Bth(datagram.opcode, datagram.dqp, datagram.psn & 0xFFFFFF, datagram.pkey),
                None,
                datagram.payload,
            ).pack()
        else:
            frame = build_ud_packet(
                datagram.payload,
                dlid=datagram.dlid,
                slid=slid,
                dest_qp=datagram.dqp,
                src_qp=datagram.sqp,
                sl=datagram.sl,
                pkey=datagram.pkey,
                qkey=qkey,
                grh=grh,
                psn=datagram.psn & 0xFFFFFF,
            )
        self.capture.write(frame, self.kernel.now_ns + delay_ns)

    def _cross(self, node: int, port: int) -> tuple[int, int] | None:
        """The (node, port) across the cable, or None (drop counted) when the packet
        does not make it."""
        far = self._cross_or_reason(node, port)
        if isinstance(far, str):
            self.stats.drops[far] += 1
            return None
        return far

    def _cross_or_reason(self, node: int, port: int) -> tuple[int, int] | str:
        """The (node, port) across the cable, or why the packet does not make it: no
        cable or link down ("link_down"), or lost on a lossy link ("lost")."""
        peers = self.peer[node]
        far = peers[port] if port < len(peers) else None
        if far is None or (node, port) not in self.link_up:
            return "link_down"
        if self.loss_rate:
            rate = self.loss_rate.get((node, port))
            if rate is not None and self.loss_rng.random() < rate:
                return "lost"
        return far

    def _drop(self, reason: str) -> None:
        self.stats.drops[reason] += 1

    def _send_directed(self, node: int, datagram: Datagram, delay_ns: int) -> None:
        payload = datagram.payload
        hop_count = payload[7]
        if hop_count > 63:
            self._drop("dr_bad_hop_count")
            return
        outbound = not payload[4] & 0x80
        if hop_count == 0:
            # To the local SMA, whose hop pointer becomes 1 (14.2.2), or its response
            # back to the local SM (0).
            packet = bytearray(payload)
            packet[6] = 1 if outbound else 0
            self._deliver_at(delay_ns, node, datagram.port, datagram, bytes(packet))
            return
        if outbound:
            path = payload[_INITIAL_PATH + 1 : _INITIAL_PATH + hop_count + 1]
        else:
            hop_pointer = payload[6] - 1
            if hop_pointer < 1 or hop_pointer > hop_count:
                self._drop("dr_bad_hop_pointer")
                return
            path = payload[_RETURN_PATH + 1 : _RETURN_PATH + hop_pointer + 1]
        walk: _DrWalk | None = None
        if not self.loss_rate:
            key = (node, outbound, path)
            walk = self._dr_walks.get(key)
            if walk is None:
                if len(self._dr_walks) >= _DR_WALKS_KEPT:
                    self._dr_walks.clear()
                walk = self._dr_walks[key] = self._walk_directed(node, outbound, path)
        else:
            walk = self._walk_directed(node, outbound, path)
        hops, end, fixed_ns = walk
        if self.contention:
            # A dropped SMP held the ports it crossed before it was dropped.
            delay_ns = self._reserve(hops, self._wire_bytes(datagram), delay_ns)
        else:
            delay_ns += fixed_ns
        if isinstance(end, str):
            self._drop(end)
            return
        far_node, in_port, return_path = end
        # The SMP as it arrives, joined from slices (a bytearray copied in and out
        # again cost twice as much; every SMP of a bring-up comes this way).
        if outbound:
            arriving = b"".join(
                (
                    payload[:6],
                    _BYTE[hop_count + 1],
                    payload[7 : _RETURN_PATH + 1],
                    return_path,
                    payload[_RETURN_PATH + hop_count + 1 :],
                )
            )
        else:
            arriving = payload[:6] + b"\x00" + payload[7:]
        self._deliver_at(delay_ns, far_node, in_port, datagram, arriving)

    def _calendar(self, node: int, port: int) -> int:
        """The calendar index of `node`'s `port`, given on first use."""
        index = self._calendar_of[node][port]
        if index < 0:
            index = self._calendar_of[node][port] = len(self._ahead)
            self._busy_start.append(0)
            self._busy_end.append(0)
            self._ahead.append(None)
            self._calendar_rate.append(self._port_rate[node][port])
        return index

    def _walk_directed(self, node: int, outbound: bool, path: bytes) -> _DrWalk:
        """Walk a directed route from `node` (IBA Vol 1, 14.2.2): outbound through
        the initial path's ports in order, writing the port each hop arrives by into
        the return path; returning through the return path's ports, last first.
        Only switches forward: a CA on the way drops the SMP. The walk's delay
        without contention comes with it."""
        calendar = self._calendar
        latency = self.latency

        def fixed(links: int) -> int:
            return links * latency.link_ns + (links - 1) * latency.switch_ns

        ports = path if outbound else path[::-1]
        hops: list[int] = []
        arrivals = bytearray()
        last = len(ports) - 1
        for i, out in enumerate(ports):
            far = self._cross_or_reason(node, out)
            if isinstance(far, str):
                return tuple(hops), far, fixed(len(hops))
            hops.append(calendar(node, out))
            node, in_port = far
            arrivals.append(in_port)
            if i == last:
                return (
                    tuple(hops),
                    (node, in_port, bytes(arrivals) if outbound else b""),
                    fixed(len(hops)),
                )
            if not self.is_switch[node]:
                return tuple(hops), "dr_through_ca", fixed(len(hops))
        raise AssertionError("a directed route of no hops is delivered locally")

    def _send_multicast(self, node: int, datagram: Datagram, delay_ns: int) -> None:
        """A packet to a multicast LID: every switch forwards it to the ports its MFT
        gives for the MLID but the one it came in by (IBA Vol 1, 18.2.4.3.2), so it
        reaches each member CA once over the group's spanning tree (`_flood`)."""
        destinations = self._flood(node, datagram.port, datagram.dlid)
        if not destinations:
            self.stats.drops["no_route"] += 1
            return
        latency = self.latency
        payload = datagram.payload
        link_ns = latency.link_ns
        ser = 0
        if self.contention:
            link_ns = latency.cable_ns
            if not self.is_switch[node]:
                num, den = self._port_rate[node][datagram.port]
                ser = -(-self._wire_bytes(datagram) * 8 * den // num)
        for far_node, in_port, links in destinations:
            delay = delay_ns + ser + links * link_ns + (links - 1) * latency.switch_ns
            self._deliver_at(delay, far_node, in_port, datagram, payload)

    def _flood(self, node: int, port: int, mlid: int) -> list[tuple[int, int, int]]:
        """(CA node, arrival port, cables crossed) of every CA a packet to `mlid`
        from `node` (a CA sends out of `port`) reaches through the switches' MFTs;
        Active ports only. A switch never sends a packet back where it came from, and
        never twice through the same switch (an MFT with a loop delivers once)."""
        agents = self.agents
        reached: list[tuple[int, int, int]] = []
        seen: set[int] = set()
        if self.is_switch[node]:
            todo = [(node, 0, 0)]
        else:
            if agents[node].port_state(port) != PortState.ACTIVE:
                return []
            far = self._cross(node, port)
            if far is None:
                return []
            todo = [(far[0], far[1], 1)]
        while todo:
            here, in_port, links = todo.pop()
            agent = agents[here]
            if agent.port_state(in_port) != PortState.ACTIVE and in_port:
                continue
            if not self.is_switch[here]:
                reached.append((here, in_port, links))
                continue
            if here in seen or links > _MAX_HOPS:
                continue
            seen.add(here)
            mask = agent.multicast_ports(mlid)
            for out in range(1, len(self.peer[here])):
                if not mask >> out & 1 or out == in_port:
                    continue
                if agent.port_state(out) != PortState.ACTIVE:
                    continue
                far = self._cross(here, out)
                if far is not None:
                    todo.append((far[0], far[1], links + 1))
        reached.sort()
        return reached

    def _forget_routes(self, node: int, event: ForwardingChanged) -> None:
        self._routes.clear()

    def _walk(self, node: int, port: int, dlid: int, management: bool) -> _Route:
        """Where a LID-routed packet from `node` (a CA sends out of `port`) ends up:
        (node, arrival port, cables crossed) or the reason it is dropped. Only
        management packets (VL15) may cross ports that are not Active."""
        agents = self.agents
        if self.is_switch[node]:
            if agents[node].port_lid(0) == dlid:
                return (node, 0, 0, ())
            first = self._lft_port(node, dlid)
            if isinstance(first, str):
                return first
            out = first
        else:
            out = port
            if agents[node].port_lid(out) == dlid:  # loopback
                return (node, out, 0, ())
        hops: list[int] = []
        calendar = self._calendar
        for links in range(1, _MAX_HOPS + 1):
            hops.append(calendar(node, out))
            if not management and agents[node].port_state(out) != PortState.ACTIVE:
                return "port_not_active"
            far = self._cross_or_reason(node, out)
            if isinstance(far, str):
                return far
            node, in_port = far
            agent = agents[node]
            if not management and agent.port_state(in_port) != PortState.ACTIVE:
                return "port_not_active"
            if not self.is_switch[node]:
                if agent.port_lid(in_port) != dlid and self.vf_lids.get(dlid) != (node, in_port):
                    return "wrong_lid"
                return (node, in_port, links, tuple(hops))
            if agent.port_lid(0) == dlid:
                return (node, 0, links, tuple(hops))
            next_port = self._lft_port(node, dlid)
            if isinstance(next_port, str):
                return next_port
            out = next_port
        return "loop"

    def _lft_port(self, node: int, dlid: int) -> int | str:
        lft = self.agents[node].lft
        port = lft[dlid] if dlid < len(lft) else _UNREACHABLE
        if port in (_UNREACHABLE, 0):
            return "no_route"
        return port

    def _deliver_at(
        self, delay_ns: int, node: int, in_port: int, datagram: Datagram, payload: bytes
    ) -> None:
        # The same datagram as it arrives: its (possibly rewritten) payload, the port.
        arrived = _new_tuple(Datagram, (payload, in_port, *datagram[2:]))
        self.kernel.schedule(delay_ns, self._deliver, (node, arrived))

    def _demultiplexed(self, node: int, datagram: Datagram) -> bool:
        """Whether an HCA at `node` took a packet with a GRH or for a data QP itself
        (`ibmig.sim.hosting`: its VFs, by DGID); the fabric alone has none."""
        return False

    def _deliver(self, arg: tuple[int, Datagram]) -> None:
        node, datagram = arg
        # Management packets without a GRH (every SMP, every Report to a dom0) skip
        # the HCA's demultiplexing without a call.
        if (datagram.dgid is not None or datagram.dqp > QP1) and self._demultiplexed(
            node, datagram
        ):
            return
        now = self.kernel.now_ns
        payload = datagram.payload
        if datagram.dqp == QP0:
            # Responses and traps go to the SM; requests (and TrapRepress) to the SMA,
            # except SMInfo, which the node's SM answers (IBA Vol 1, 14.4.1).
            method = payload[3]
            target: Engine | None
            if (
                method & 0x80
                or method == 0x05
                or (node in self.qp0_managers and payload[16:18] == _SM_INFO)
            ):
                target = self.qp0_managers.get(node)
                if target is None:
                    self._drop("no_sm")
                    return
            else:
                target = self.agents[node]
            self.stats.delivered += 1
            self._handle(node, target, datagram)
            return
        attached: _Attachment | None = None
        if payload[3] & 0x80:
            attached = self._gsi_requesters.pop((node, payload[8:16]), None)
            if attached is not None:
                # The kernel MAD layer matches it to its request now, however long
                # it then waits in the engine's queue ("Kernel MAD layer").
                arrived = attached.arrived
                if arrived is not None:
                    arrived(datagram, now)
        if attached is None:
            attached = self.gsi.get((node, payload[1]))
            if attached is None:
                self._drop("no_listener")
                return
        engine = attached.engine
        self.stats.delivered += 1
        if node == self.sm_node and payload[1] == SA_CLASS:
            self.sa_received_bins[now // 1_000_000] += 1
        self._handle(node, engine, datagram, attached)

    # --- links ------------------------------------------------------------------------

    def _set_link_state(
        self, node_a: int, port_a: int, node_b: int, port_b: int, up: bool, *, pump: bool = True
    ) -> None:
        """Both ends' SMAs see the link go up or down; `pump`: and say what that
        made them do now (else the caller pumps them)."""
        now = self.kernel.now_ns
        self._routes.clear()
        self._dr_walks.clear()
        for node, port in ((node_a, port_a), (node_b, port_b)):
            if up:
                self.link_up.add((node, port))
            else:
                self.link_up.discard((node, port))
            agent = self.agents[node]
            agent.set_link(port, up, now)
            if pump:
                self._pump(node, agent)
        if self._started and (self.sm_node, self.sm_port) in ((node_a, port_a), (node_b, port_b)):
            # The SM's own port: its HCA tells the SM directly (no trap can reach it).
            self.sm_engine.local_port_changed(now)
            self._pump(self.sm_node, self.sm_engine)

    def set_link(self, node: int, port: int, up: bool) -> None:
        """Take the cable at (node, port) down or bring it back up, both ends."""
        far = self.peer[node][port] if port < len(self.peer[node]) else None
        if far is None:
            raise ConfigError(f"{self.names[node]} port {port} has no cable")
        self._set_link_state(node, port, far[0], far[1], up)

    def set_link_loss(self, node: int, port: int, rate: float) -> None:
        """Lose each packet crossing the cable at (node, port), either way, with
        probability `rate` (0 restores a clean link)."""
        far = self.peer[node][port] if port < len(self.peer[node]) else None
        if far is None:
            raise ConfigError(f"{self.names[node]} port {port} has no cable")
        if not 0.0 <= rate <= 1.0:
            raise ConfigError(f"loss rate {rate} is not a probability")
        for end in ((node, port), far):
            if rate:
                self.loss_rate[end] = rate
            else:
                self.loss_rate.pop(end, None)

    # --- what the SM did not reach ------------------------------------------------------

    def unreached(self) -> tuple[list[str], list[str]]:
        """Nodes of the topology the SM's database does not hold: (those cabled to
        the SM over links that are up but more than 63 hops away, beyond any
        directed route; the rest, cut off from the SM or lost to faults). Names in
        the topology's order. Hops count as directed routes do: switches forward,
        channel adapters other than the SM's do not."""
        known = self.sm.db.nodes
        hops = {self.sm_node: 0}
        frontier = [self.sm_node]
        while frontier:
            following = []
            for node in frontier:
                if node != self.sm_node and not self.is_switch[node]:
                    continue
                ports = (self.sm_port,) if node == self.sm_node else range(len(self.peer[node]))
                for port in ports:
                    far = self.peer[node][port]
                    if far is None or (node, port) not in self.link_up or far[0] in hops:
                        continue
                    hops[far[0]] = hops[node] + 1
                    following.append(far[0])
            frontier = following
        beyond: list[str] = []
        cut_off: list[str] = []
        for record in self.fabric.nodes:
            if record.node_guid in known:
                continue
            if hops.get(record.index, 0) > MAX_HOP_COUNT:
                beyond.append(record.name)
            else:
                cut_off.append(record.name)
        return beyond, cut_off

    # --- running ----------------------------------------------------------------------

    def run(self, until_ns: int | None = None, max_events: int | None = None) -> int:
        return self.kernel.run(until_ns=until_ns, max_events=max_events)

    def run_until_up(
        self, progress: Callable[[int], None] | None = None, chunk: int = 20_000
    ) -> SubnetUp | None:
        """Run until the SM reports SUBNET UP (returned), or a sweep fails with
        nothing left to try (`sweep_failures`), or nothing is left to do (None)."""
        count = len(self.subnet_up_events)
        failures = len(self.sweep_failures)
        self._awaiting_up = True
        try:
            while len(self.subnet_up_events) == count:
                if len(self.sweep_failures) > failures:
                    return None
                if self.kernel.run(max_events=chunk) == 0:
                    return None
                if progress is not None:
                    progress(self.sm.smps_sent)
        finally:
            self._awaiting_up = False
        return self.subnet_up_events[-1]

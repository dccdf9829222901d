"""The guest agent: one VM's RDMA stack and workload, as a sans-I/O engine.

`GuestAgent` is an engine in the shape of `ibmig.core.engine.Engine`. It owns a
path cache (`path_cache`), a connection manager (`cm`), RC queue pairs (`rc`), an
IPoIB neighbour table (`ipoib`) and the workload (`workload`): the VM is a server
for anyone, and a client of the peers it was given.

Addressing. Everything the guest sends leaves by its port (`port_num`) with SLID =
the port's LID and SGID = the VM's GID: in the shared-port SR-IOV model every VF
uses the port's LID and the HCA tells VMs apart by GID. MADs (SA and CM) go from
QP1 to QP1 (UD SEND Only, Q_Key 0x80010000); SA requests go to the SA's LID with
no DGID, CM MADs to the peer's LID and GID. Data packets carry the QP's addressing.

Life cycle (driven by the host and migration engines):

- `attach(...)`: the VF is up. The guest subscribes to path-change notices if it
  was built with `subscribe=True` (the per-VM strategy), tells dom0 which GIDs it
  holds paths to, and every client stream starts connecting.
- `detach(now)`: the VF is gone (the VM is paused for migration). Every QP is
  destroyed (each established connection reports `ConnectionBroken("detached")`),
  timers stop, queued packets are dropped and nothing more is sent or received.
  The path cache survives (it is guest memory, which migration copies).
- `resume(...)`: attached again, at the destination. Subscriptions and dom0
  registrations are renewed (a new dom0 and a new LID), every client stream
  reconnects, and if the GID changed (dynamic address assignment) the guest
  announces it with a gratuitous ARP to every neighbour whose LID it knows. A
  cached PathRecord stays usable: a REQ always takes the local end (LID, GID) from
  the current port, and only the remote end from the record. But the notices sent
  while the VM was away went to its old port: if a peer moved meanwhile (a storm),
  the cached path is stale. So each registration with the new dom0 carries the LID
  the cached path names (dom0 answers from its mapping table when it knows better),
  and a guest with its own subscription asks the SA again for every cached path
  once the new subscription is confirmed (OFED's local SA cache refreshes likewise
  on a port event, local_sa.c `handle_event`); an answer with another LID is a path
  change (`via="refresh"`).

Path-change events arrive as the SA's Report(Notice trap 69) (per-VM strategy;
answered and de-duplicated by the SA client, `ibmig.core.sa_client`) or as a
`ForwardPathChange` from dom0 (per-host strategy), or through `path_changed()`.
With `notice="trap69-path"` the notice also carries the new path's values (SL,
MTU, rate, PacketLifeTime, `ibmig.wire.notice`): a cached path to the GID takes
them and DLID = NewLID instead of being flushed, so the reconnection uses the
cache and asks the SA nothing (with the `cached` policy: client-side PathRecord
caching). With `notice="trap64-65"` the guest subscribes to traps 65 and 64 instead: trap 65
(GID out of service) drops the cached path, trap 64 (GID in service, no LID) asks
the SA for the GID's PathRecord, and an answer naming another LID than the cache or
a connection holds is the path change (OFED local_sa.c `notice_handler`).
Each flushes the cached path (unless it already names the new LID), and every
client stream to that GID that is not already using the new LID tears its
connection down (a DREQ if `disconnect_on_error`), resolves the path again and
sends a new REQ at once. A QP error (retry exceeded) reconnects too, but flushes
nothing: under the `cached` policy the stale path is used again, so the stream
stays broken until an event flushes it.

Missed path changes. Notices sent while a subscription was down never arrive. So
when a subscription is made again after a gap, every cached path is dropped and
resolved again before use (`revalidate_paths`), as Linux's IPoIB marks its paths
invalid on IB_EVENT_CLIENT_REREGISTER (ipoib_ib.c, light flush): on a
`RevalidatePaths` from dom0 once its subscription is back (per-host), once the
guest's own subscription is back after a ClientReregister (per-VM), and at once on
a ClientReregister when the guest does not subscribe. A stream that is not
connected starts over at once, through the SA.

IPoIB. Each client stream names its server by IP address; the neighbour table
starts with the peers' GIDs and learns clients' addresses from the rdma_cm header
of their REQs. A gratuitous ARP that moves an IP to a new GID (dynamic address
assignment) makes the stream to that IP flush the old GID's path, re-register with
dom0 and reconnect to the new GID; server-side connections from the old GID are
closed. Under static assignment the GID does not change and no ARP is sent.
Each connection attempt first resolves the server's IP in the neighbour table, as
rdma_resolve_addr does (`ibmig.core.guest.ipoib`: a valid entry is used as it is,
any other is resolved by broadcast ARP, the attempt waiting up to
`addr_resolve_timeout_ns`); a member of the IPoIB broadcast group loses its table
with its VF, so a migrated VM resolves every server afresh and finds it wherever
it now is.

The CM MAD handlers (REQ/REP/RTU/REJ/DREQ/DREP, resends, the passive side's
rules) are in `ibmig.core.guest.cm_handlers`, which this class inherits.

Timers live in one `ibmig.core.timers.Timers`, keyed by their owner (stream,
connection, QP, query, subscription), each owner type with its handler. An owner's
`deadline` is when it wants to fire; the timer holds when it is armed to. Moving
a deadline later costs nothing (the owner is re-armed when its old time comes
up); earlier re-arms it at once. So a QP's ACK timer, restarted on every ACK,
costs one heap operation per time-out period, not per packet.

Counters: `sent` counts what the guest sends by kind: "sa_path_query",
"sa_inform_info", "sa_report_resp", "cm_req", "cm_rep", "cm_rtu", "cm_rej",
"cm_dreq", "cm_drep" (first sends and resends alike), "data" (first
transmissions), "data_retransmit", "ack", "nak", "arp". `counters` counts what it
received and dropped, and the rest. `record_events=False` suppresses every event
(for very large runs); `delivered` still counts messages per client GID.
"""

from __future__ import annotations

import functools
import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import replace
from ipaddress import IPv4Address
from typing import TYPE_CHECKING, Any, Final, Protocol

from ibmig.core.engine import QP1, Datagram
from ibmig.core.guest.cm import CmState, Connection
from ibmig.core.guest.cm_handlers import DEFAULT_PKEY, FIRST_QPN, GuestCm, GuestIds
from ibmig.core.guest.config import GuestConfig
from ibmig.core.guest.events import (
    Attached,
    ConnectFailed,
    ConnectionBroken,
    ConnectionUp,
    Detached,
    GratuitousArpSent,
    MessageDelivered,
    NeighbourStateChanged,
    NeighbourUpdated,
    PathChangeReceived,
    PathFlushed,
    PathQueryFailed,
    PathResolved,
    Reconnected,
    ReportReceived,
    SubscriptionConfirmed,
    SubscriptionFailed,
)
from ibmig.core.guest.intra_host import (
    ForwardPathChange,
    GuestToHost,
    HostToGuest,
    PathRegistered,
    PathUnregistered,
    RevalidatePaths,
)
from ibmig.core.guest.ipoib import (
    IPOIB_QKEY,
    IPOIB_QPN,
    MULTICAST_QPN,
    IpoibArp,
    Neighbour,
    NeighbourTable,
    NudState,
)
from ibmig.core.guest.path_cache import (
    TID_MASK,
    PathCache,
    PathQuery,
    parse_path_response,
    path_query,
)
from ibmig.core.guest.rc import (
    OP_RC_ACKNOWLEDGE,
    OP_RC_SEND_ONLY,
    OP_UD_SEND_ONLY,
    AethSyndrome,
    QpState,
    RcQp,
)
from ibmig.core.guest.workload import (
    ClientStream,
    Peer,
    StreamState,
    backoff_ns,
    message_seq,
)
from ibmig.core.sa_client import NOTICES, SaClient, SaRequest, report_resp
from ibmig.core.timers import Timers
from ibmig.errors import ConfigError, WireError
from ibmig.wire.cm import CmMad, Dreq
from ibmig.wire.fastrecord import fast_constructor
from ibmig.wire.ipoib import ARP_REPLY, ARP_REQUEST
from ibmig.wire.mad import MAD_SIZE, MadStatus, Method, MgmtClass
from ibmig.wire.notice import PathValues, TrapNumber, peek_gid_service, peek_path_move
from ibmig.wire.packet import QP1_QKEY
from ibmig.wire.sa import (
    SA_HEADER_SIZE,
    JoinState,
    MCMemberRecord,
    MCMemberRecordComp,
    SaAttr,
    SaMad,
)

_CM_CLASS: Final = int(MgmtClass.COMM_MGT)
_SA_CLASS: Final = int(MgmtClass.SUBN_ADM)
_REPORT: Final = int(Method.REPORT)
_GET_RESP: Final = int(Method.GET_RESP)
_ATTR_NOTICE: Final = int(SaAttr.NOTICE)
_ATTR_PATH_RECORD: Final = int(SaAttr.PATH_RECORD)
_ATTR_INFORM_INFO: Final = int(SaAttr.INFORM_INFO)
_ATTR_MC_MEMBER_RECORD: Final = int(SaAttr.MC_MEMBER_RECORD)
_NOTICE_TRAP: Final = SA_HEADER_SIZE + 4  # the Notice's TrapNumber in an SA MAD
IPOIB_BROADCAST_MGID: Final = bytes.fromhex("ff12401bffff000000000000ffffffff")
"""The IPoIB broadcast group of P_Key 0xFFFF, link-local scope (RFC 4391, 4)."""
# What Linux IPoIB puts in the broadcast group's join (ipoib_mcast_join: MGID,
# PortGID, P_Key, JoinState; the group exists, the SM created it).
_JOIN_MASK: Final = int(
    MCMemberRecordComp.MGID
    | MCMemberRecordComp.PORT_GID
    | MCMemberRecordComp.PKEY
    | MCMemberRecordComp.JOIN_STATE
)

_IDLE, _RESOLVING, _CONNECTING, _CONNECTED, _BACKOFF = (
    StreamState.IDLE,
    StreamState.RESOLVING,
    StreamState.CONNECTING,
    StreamState.CONNECTED,
    StreamState.BACKOFF,
)
_REQ_SENT, _REP_SENT, _ESTABLISHED, _DREQ_SENT, _CLOSED = (
    CmState.REQ_SENT,
    CmState.REP_SENT,
    CmState.ESTABLISHED,
    CmState.DREQ_SENT,
    CmState.CLOSED,
)


class _TimerOwner(Protocol):
    deadline: int | None


_new_attached = fast_constructor(Attached)  # one per VM placed, and per migration

_NO_TIMERS: Final[Timers[Any]] = Timers()
"""The timers of every guest that has no deadline yet, never armed: only `_sync`
arms, and it gives the guest timers of its own first. Most guests of a large
placement never arm one (no workload of their own), and an empty `Timers` with its
deque is 850 bytes and three objects the collector scans, per VM."""


class _SaRequest(SaRequest):
    """An SA request other than a path query (the InformInfo subscription, the
    IPoIB broadcast group join)."""

    __slots__ = ("deadline", "payload", "trap_number")

    def __init__(self, tid: int, payload: bytes, trap_number: int) -> None:
        super().__init__(tid)
        self.payload = payload
        self.trap_number = trap_number
        self.deadline: int | None = None


_Handler = Callable[["GuestAgent", Any, int], None]


@functools.cache
def _padding(size: int) -> bytes:
    """The zero bytes after a message's sequence number (one object per size)."""
    return bytes(size)


def _empty_counter() -> Counter[Any]:
    """`Counter()` without Counter's __init__, Python code that only fills a new dict
    from no arguments: three per guest, a tenth of a placed guest's construction."""
    return Counter.__new__(Counter)


def _ip(value: IPv4Address | str) -> IPv4Address:
    return value if isinstance(value, IPv4Address) else IPv4Address(value)


class _Subscription:
    """The guest's own notice subscription, its broadcast group state and the paths
    it registered with dom0, in one object so that the guest keeps few enough
    attributes to share its instance dictionary's keys (see `GuestAgent._interval`)."""

    __slots__ = ("subscribe", "notice", "refresh_pending", "revalidate", "join", "multicast_joined",
                 "requests", "interest")  # fmt: skip

    def __init__(self, subscribe: bool) -> None:
        self.subscribe = subscribe
        self.notice = "trap69"
        """What the guest's SaClient subscribes to (`ibmig.core.sa_client.NOTICES`)."""
        self.refresh_pending = False
        """Resumed with its own subscription: refresh the cache once it is confirmed."""
        self.revalidate = False  # re-subscribing after a gap
        self.join: _SaRequest | None = None
        self.multicast_joined = False
        """Member of the IPoIB broadcast group (`GuestConfig.join_ipoib_broadcast`)."""
        self.requests: dict[int, _SaRequest] = {}  # TID -> InformInfo Set in flight
        self.interest: dict[bytes, None] = {}
        """The GIDs the guest holds paths to, as registered with dom0 (which forwards
        their path changes under the per-host strategy)."""


class GuestAgent(GuestCm):
    """One VM's RDMA stack and workload (module docstring).

    `ip` is the VM's IPoIB address, `peers` the servers it is a client of (IP and
    GID each). `subscribe=True` makes it subscribe to path-change notices itself
    (the per-VM strategy). `rng` drives PSNs, comm IDs, backoff jitter and the
    first-message offsets, so a seeded rng gives identical runs. `rng` may be a
    function making it, called on first use: the same draws, but a guest that never
    needs one (most of a large placement's) does not hold a generator's 2.5 kB state.
    """

    def __init__(
        self,
        *,
        ip: IPv4Address | str,
        rng: random.Random | Callable[[], random.Random],
        peers: Iterable[Peer | tuple[IPv4Address | str, bytes]] = (),
        config: GuestConfig | None = None,
        subscribe: bool = False,
        notice: str = "trap69",
        record_events: bool = True,
        name: str = "",
    ) -> None:
        self.config = config if config is not None else GuestConfig()
        # The generator, or the function making it until first used (`rng`).
        self._rng: random.Random | Callable[[], random.Random] = rng
        self.ip = _ip(ip)
        self.name = name
        self._sub = _Subscription(subscribe)
        self._init_event_log(record_events)

        self.attached = False
        self.port_num = 0
        self.lid = 0
        self.gid = bytes(16)
        self.sa_lid = 0

        if notice not in NOTICES:  # checked now, though its SaClient is made on first use
            raise ConfigError(f"must be one of {', '.join(NOTICES)}, got {notice!r}", "notice")
        self._sub.notice = notice
        # `sent`, `counters`, `delivered`, `sa`, `paths`, `neighbours` and the
        # connection tables are made on first use (`_LAZY`).

        self._streams: dict[IPv4Address, ClientStream] = {}

        # The comm IDs start at the rng's first draw, made with the rng (`rng`).
        self._ids = GuestIds(
            FIRST_QPN, rng.getrandbits(32) or 1 if isinstance(rng, random.Random) else 0, 1
        )

        self._outbox: list[Datagram] = []
        self._intra: list[GuestToHost] = []
        self._timers: Timers[Any] = _NO_TIMERS  # its own from its first deadline (`_sync`)

        for peer in peers:
            if isinstance(peer, Peer):
                self.add_peer(peer.ip, peer.gid)
            else:
                self.add_peer(peer[0], peer[1])

    # Made on first use, by `__getattr__` from `_LAZY`: a guest of a large placement
    # with no workload of its own (most of them) never touches one, and made in
    # `__init__` they were half of its construction and 1.5 kB of its memory. Made
    # later they still share the instance dictionary's keys (`_share_lazy_keys`;
    # `_interval`).
    sent: Counter[str]
    """What the guest sent, by kind (module docstring)."""
    counters: Counter[str]
    """What it received and dropped, and the rest (module docstring)."""
    delivered: Counter[bytes]
    """Messages delivered to this server, by client GID."""
    sa: SaClient
    paths: PathCache
    neighbours: NeighbourTable
    _conns: dict[int, Connection]
    _by_qpn: dict[int, Connection]
    _server_conns: dict[tuple[bytes, int], Connection]

    # No `MadAgent` (`ibmig.core.engine`): its SA requests time out from when it
    # sends them. Said here so that a runtime asking `getattr(engine,
    # "mad_departed", None)` as it attaches a guest finds the answer in the class,
    # not through `__getattr__`, whose miss raises an exception (0.5 us, twice per
    # VM placed).
    mad_departed: None = None
    response_arrived: None = None

    if not TYPE_CHECKING:  # mypy keeps checking every other attribute

        def __getattr__(self, name: str) -> Any:
            # Python asks this only for an attribute the instance does not hold.
            make = _LAZY.get(name)
            if make is None:
                raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
            value = make(self)
            setattr(self, name, value)
            return value

    @property
    def rng(self) -> random.Random:
        """The guest's generator; made on first use when a maker was given, its
        first draw the comm IDs' start, as with a generator given made."""
        rng = self._rng
        if not isinstance(rng, random.Random):
            rng = self._rng = rng()
            self._ids.comm_id = rng.getrandbits(32) or 1
        return rng

    # Derived from the configuration, not kept (and the subscription state in one
    # object, `_Subscription`): with 29 attribute names or fewer in all, those made
    # on first use included (27 now), a guest's instance dictionary shares its
    # keys with every other guest's (CPython), 300 bytes instead of 1.6 kB, which
    # hundreds of thousands of guests feel.

    @property
    def subscribe(self) -> bool:
        """Whether the guest subscribes to path-change notices itself (per-VM)."""
        return self._sub.subscribe

    @property
    def subscribing(self) -> bool:
        """An InformInfo Set of its own is in flight (unanswered, not given up)."""
        return bool(self._sub.requests)

    @property
    def multicast_joined(self) -> bool:
        """Member of the IPoIB broadcast group (`GuestConfig.join_ipoib_broadcast`)."""
        return self._sub.multicast_joined

    @property
    def _interval(self) -> int:
        return self.config.message_interval_ns

    @property
    def _pad(self) -> bytes:
        return _padding(self.config.message_bytes - 8)

    def __repr__(self) -> str:
        return f"GuestAgent({self.name or self.ip}, lid={self.lid}, attached={self.attached})"

    # --- engine contract ---------------------------------------------------------------

    def packets_to_send(self) -> list[Datagram]:
        out, self._outbox = self._outbox, []
        return out

    def intra_host_to_send(self) -> list[GuestToHost]:
        """Messages for dom0 over the intra-host channel."""
        out, self._intra = self._intra, []
        return out

    def get_timer(self) -> int | None:
        timers = self._timers
        while (first := timers.peek()) is not None:
            armed, owner = first
            wanted = owner.deadline
            if wanted == armed:
                return armed
            # Moved (later, or off) since it was armed: re-arm it where it is wanted.
            timers.cancel(owner)
            if wanted is not None:
                timers.arm(owner, wanted)
        return None

    def handle_timer(self, now_ns: int) -> None:
        timers = self._timers
        handlers = _TIMER_HANDLERS
        while (owner := timers.pop_due(now_ns)) is not None:
            wanted = owner.deadline
            if wanted is None:
                continue
            if wanted > now_ns:
                timers.arm(owner, wanted)
                continue
            handlers[type(owner)](self, owner, now_ns)

    def receive(self, datagram: Datagram, now_ns: int) -> None:
        if not self.attached:
            self.counters["dropped_detached"] += 1
            return
        opcode = datagram.opcode
        if opcode == OP_RC_SEND_ONLY:
            conn = self._by_qpn.get(datagram.dqp)
            if conn is None:
                self.counters["no_qp"] += 1
                return
            payload, reply = conn.qp.on_send(datagram.psn, datagram.payload)
            if reply is not None:
                self._outbox.append(reply)
                self.sent["nak" if reply.payload[0] & 0x60 == 0x60 else "ack"] += 1
            if payload is not None:
                if conn.state is _REP_SENT:
                    self._establish_passive(conn, now_ns)  # the first SEND stands for the RTU
                self.delivered[conn.remote_gid] += 1
                if self._wants(MessageDelivered):
                    self._record(
                        MessageDelivered(now_ns, self.gid, conn.remote_gid, message_seq(payload))
                    )
            else:
                self.counters["data_not_delivered"] += 1
            return
        if opcode == OP_RC_ACKNOWLEDGE:
            conn = self._by_qpn.get(datagram.dqp)
            if conn is None:
                self.counters["no_qp"] += 1
                return
            qp = conn.qp
            resend = qp.on_ack(datagram.psn, datagram.payload, now_ns)
            if resend:
                self._outbox.extend(resend)
                self.sent["data_retransmit"] += len(resend)
            if qp.state is QpState.ERROR:
                fatal = datagram.payload[0] != AethSyndrome.NAK_PSN_SEQUENCE_ERROR
                self._qp_failed(conn, "remote_nak" if fatal else "retry_exceeded", now_ns)
            else:
                self._sync(qp)
            return
        if opcode == OP_UD_SEND_ONLY:
            if datagram.dqp == QP1:
                self._receive_mad(datagram, now_ns)
            elif datagram.dqp == IPOIB_QPN:
                self._receive_ipoib(datagram, now_ns)
            elif datagram.dqp == MULTICAST_QPN and self.config.join_ipoib_broadcast:
                self._receive_ipoib(datagram, now_ns)  # the IPoIB QP is attached to the group
            else:
                self.counters["no_qp"] += 1
            return
        self.counters["unknown_opcode"] += 1

    # --- life cycle ----------------------------------------------------------------------

    def attach(self, port_num: int, lid: int, gid: bytes, sa_lid: int, now_ns: int) -> None:
        """The VF is up (first time): start subscribing and connecting."""
        self._come_up(port_num, lid, gid, sa_lid, now_ns, resumed=False, announce=False)

    def resume(
        self,
        now_ns: int,
        *,
        port_num: int,
        lid: int,
        gid: bytes,
        sa_lid: int,
        announce: bool | None = None,
    ) -> None:
        """Attached again after a migration. `announce`: send a gratuitous ARP
        (default: only if the GID changed)."""
        if announce is None:
            announce = gid != self.gid
        self._come_up(port_num, lid, gid, sa_lid, now_ns, resumed=True, announce=announce)

    def _come_up(
        self,
        port_num: int,
        lid: int,
        gid: bytes,
        sa_lid: int,
        now_ns: int,
        *,
        resumed: bool,
        announce: bool,
    ) -> None:
        if self.attached:
            raise RuntimeError(f"{self!r}: attach/resume while attached (detach first)")
        if len(gid) != 16:
            raise ValueError(f"a GID is 16 bytes, got {len(gid)}")
        self.attached = True
        self.port_num, self.lid, self.gid, self.sa_lid = port_num, lid, gid, sa_lid
        self._emit(_new_attached(now_ns, gid, lid, resumed))
        if self.subscribe:
            self._send_subscription(now_ns)
        if self.config.join_ipoib_broadcast:
            self._send_join(now_ns)
        if resumed:
            # A new dom0 (and perhaps a new GID): register every path held again,
            # with the LID it names, so dom0 can tell what this guest missed.
            self._sub.refresh_pending = self.subscribe
            for target in self._sub.interest:
                self._intra.append(PathRegistered(target, self._cached_lid(target)))
        if announce:
            self.announce(now_ns)
        for stream in self._streams.values():
            if stream.state is _BACKOFF and self.config.retry_while_detached:
                continue  # RDS: the wait drawn while detached runs out first
            stream.failures = 0
            self._start_attempt(stream, now_ns)

    def dom0_restarted(self, now_ns: int) -> None:
        """Its dom0 came back without state (the intra-host channel reopened):
        register every path held again, so that path changes reach this guest."""
        if self.attached:
            for target in self._sub.interest:
                self._intra.append(PathRegistered(target, self._cached_lid(target)))

    def client_reregister(self, now_ns: int, sa_lid: int | None = None) -> None:
        """The SM set PortInfo:ClientReregister on the port (IBA Vol 1, 14.2.5.6):
        the SA may have lost the subscription, so subscribe again; path changes may
        have been missed meanwhile (module docstring, Missed path changes). `sa_lid`:
        the port's MasterSMLID now (another SM took over), where SA requests go from
        now on, as Linux's ib_sa re-reads it on the port's SM-change event."""
        if sa_lid:
            self.sa_lid = sa_lid
        if not self.attached:
            return
        if self.config.join_ipoib_broadcast:
            self._send_join(now_ns)  # the SA may have lost the membership too
        if self.subscribe:
            self._sub.revalidate = True
            self._send_subscription(now_ns)
        else:
            self.revalidate_paths(now_ns)

    def revalidate_paths(self, now_ns: int) -> None:
        """Path changes may have been missed: drop every cached path, and start
        every stream that is not connected over at once (module docstring)."""
        if not self.attached:
            self.counters["revalidate_while_detached"] += 1
            return
        self.counters["paths_revalidated"] += 1
        for gid in list(self.paths.records()):
            if self.paths.flush(gid):
                self._emit(PathFlushed(now_ns, gid))
        for stream in self._streams.values():
            if stream.state is _BACKOFF or stream.state is _CONNECTING:
                stream.failures = 0
                self._break_stream(stream, "revalidate", now_ns)
                self._start_attempt(stream, now_ns)

    def detach(self, now_ns: int) -> None:
        """The VF is going: destroy every QP, stop every timer. With `dreq_on_detach`
        each established connection sends one DREQ on its way out (Linux ib_cm's
        `cm_destroy_id`); nothing else is sent, and nothing is resent."""
        if not self.attached:
            return
        farewells: list[Datagram] = []
        for conn in list(self._conns.values()):
            if conn.state is _ESTABLISHED:
                self._emit(
                    ConnectionBroken(now_ns, self.gid, conn.remote_gid, conn.role, "detached")
                )
                if self.config.dreq_on_detach:
                    dreq = Dreq(conn.local_comm_id, conn.remote_comm_id, conn.qp.remote_qpn)
                    payload = CmMad(dreq, tid=self._new_tid()).pack()
                    farewells.append(self._mad(payload, conn.remote_lid, conn.remote_gid, conn.sl))
            self._close(conn)
        retrying: list[ClientStream] = []
        for stream in self._streams.values():
            if stream.state is _CONNECTED and stream.broken_ns is None:
                stream.broken_ns = now_ns
            if stream.state is not _IDLE:
                stream.transition(_IDLE)
                retrying.append(stream)
            stream.conn = None
            stream.token += 1
            stream.deadline = None
        self._conns.clear()
        self._by_qpn.clear()
        self._server_conns.clear()
        self.paths.cancel_queries()
        self._sub.requests.clear()
        self._sub.join = None
        self._sub.revalidate = False
        self._timers.clear()
        self._outbox.clear()
        for datagram in farewells:
            self._send_cm(datagram, "cm_dreq")
        self._intra.clear()
        if self.config.join_ipoib_broadcast:
            # The IPoIB interface goes with the VF, and its neighbours with it
            # (net/ipv4/fib_frontend.c `fib_disable_ip` -> `arp_ifdown`).
            self.neighbours.flush()
        if self.multicast_joined:
            # The last thing the VF sends: IPoIB leaves its groups as the interface
            # goes down, so the alias GUID is in no group when dom0 deletes it (the
            # SA refuses that Delete otherwise, as OpenSM).
            self._send_cm(self._mad(self._member_record(Method.DELETE), self.sa_lid, None),
                          "sa_mc_leave")  # fmt: skip
            self._sub.multicast_joined = False
        self.attached = False
        self._emit(Detached(now_ns, self.gid))
        if self.config.retry_while_detached:
            for stream in retrying:
                stream.failures = 0
                self._start_attempt(stream, now_ns)  # fails at once: no device

    # --- peers, path changes, intra-host channel --------------------------------------

    def add_peer(self, ip: IPv4Address | str, gid: bytes, now_ns: int | None = None) -> None:
        """Become a client of the server at `ip` (GID `gid`); it starts connecting at
        once when attached (`now_ns` is then required)."""
        address = _ip(ip)
        if address in self._streams:
            raise ValueError(f"{address} is already a peer")
        if len(gid) != 16:
            raise ValueError(f"a GID is 16 bytes, got {len(gid)}")
        self.neighbours.learn(address, gid)
        stream = ClientStream(address, gid)
        self._streams[address] = stream
        if self.attached:
            if now_ns is None:
                raise ValueError("add_peer on an attached guest needs now_ns")
            self._start_attempt(stream, now_ns)

    def remove_peer(self, ip: IPv4Address | str, now_ns: int) -> None:
        """Stop being a client of `ip`: disconnect (DREQ) and forget the stream."""
        stream = self._streams.pop(_ip(ip))
        stream.token += 1
        stream.deadline = None
        conn = stream.conn
        if conn is not None and self.attached:
            if conn.state is _ESTABLISHED:
                self._emit(
                    ConnectionBroken(now_ns, self.gid, conn.remote_gid, "client", "disconnected")
                )
                self._disconnect(conn, now_ns)
            else:
                self._close(conn)
        stream.conn = None
        self._drop_interest(stream.gid)

    def path_changed(
        self,
        gid: bytes,
        new_lid: int,
        now_ns: int,
        via: str = "dom0",
        path: PathValues | None = None,
    ) -> None:
        """The VM with GID `gid` now sits behind `new_lid` (module docstring); `path`:
        the new path's values, when the notice carried them."""
        if not self.attached:
            self.counters["path_change_while_detached"] += 1
            return
        if self._wants(PathChangeReceived):
            self._record(PathChangeReceived(now_ns, gid, new_lid, via))
        record = self.paths.lookup(gid)
        if record is not None and path is not None:
            # A path-carrying notice: the cached record takes the new values, so the
            # reconnection below needs no PathRecord query (Tasoulas et al., CCGrid
            # 2015: the client keeps its PathRecord; the SA tells it what changed).
            self.paths.store(
                gid,
                replace(
                    record, dlid=new_lid, sl=path.sl, mtu=path.mtu, rate=path.rate,
                    packet_life_time=path.packet_life_time,
                ),
            )  # fmt: skip
            self.counters["paths_updated_from_notice"] += 1
        elif (record is None or record.dlid != new_lid) and self.paths.flush(gid):
            self._emit(PathFlushed(now_ns, gid))
        self.neighbours.note_lid(gid, new_lid)
        for stream in self._streams.values():
            if stream.gid != gid or stream.state is _IDLE:
                continue
            conn = stream.conn
            if conn is not None and conn.remote_lid == new_lid:
                continue  # already on the new path
            stream.failures = 0
            self._break_stream(stream, "path_changed", now_ns)
            self._start_attempt(stream, now_ns)

    def receive_intra_host(self, message: HostToGuest, now_ns: int) -> None:
        """A message from dom0 (a forwarded path-change event)."""
        if isinstance(message, ForwardPathChange):
            self.path_changed(message.gid, message.new_lid, now_ns, "dom0", message.path)
        elif isinstance(message, RevalidatePaths):
            self.revalidate_paths(now_ns)
        else:
            self.counters["intra_host_ignored"] += 1

    def announce(self, now_ns: int) -> int:
        """Send a gratuitous ARP for this VM's IP and GID to every neighbour whose LID
        is known; returns how many were sent."""
        if not self.attached:
            return 0
        payload = IpoibArp.gratuitous(self.ip, IPOIB_QPN, self.gid).pack()
        if self._can_broadcast():
            # One broadcast on the IPoIB broadcast group reaches every member.
            self._broadcast(payload)
            self.sent["arp"] += 1
            self._emit(GratuitousArpSent(now_ns, self.ip, self.gid, 1))
            return 1
        sent = 0
        for _, entry in self.neighbours.items():
            if not entry.lid:
                self.counters["arp_no_lid"] += 1
                continue
            self._outbox.append(
                Datagram(payload, self.port_num, self.lid, entry.lid, IPOIB_QPN, entry.qpn, 0,
                         DEFAULT_PKEY, IPOIB_QKEY, self.gid, entry.gid, OP_UD_SEND_ONLY, 0)
            )  # fmt: skip
            sent += 1
        self.sent["arp"] += sent
        self._emit(GratuitousArpSent(now_ns, self.ip, self.gid, sent))
        return sent

    # --- introspection -------------------------------------------------------------------

    @property
    def streams(self) -> dict[IPv4Address, ClientStream]:
        """The client streams by server IP (live objects: read, do not modify)."""
        return self._streams

    def connections(self) -> list[Connection]:
        """Every connection not yet closed, in creation order."""
        return list(self._conns.values())

    def server_connections(self) -> dict[tuple[bytes, int], Connection]:
        """Passive-side connections by (client GID, Service ID)."""
        return dict(self._server_conns)

    def qp(self, qpn: int) -> RcQp | None:
        conn = self._by_qpn.get(qpn)
        return None if conn is None else conn.qp

    # --- timers --------------------------------------------------------------------------

    def _sync(self, owner: _TimerOwner) -> None:
        """Arm `owner`'s timer if its deadline is earlier than the one armed (a later
        one is re-armed when the armed one comes up: module docstring)."""
        deadline = owner.deadline
        if deadline is not None:
            timers = self._timers
            armed = timers.deadline(owner)
            if armed is None or deadline < armed:
                if timers is _NO_TIMERS:
                    timers = self._timers = Timers()
                timers.arm(owner, deadline)

    # --- helpers -------------------------------------------------------------------------

    def _new_tid(self) -> int:
        ids = self._ids
        tid = ids.tid
        ids.tid = (tid + 1) & TID_MASK or 1
        return tid

    def _mad(self, payload: bytes, dlid: int, dgid: bytes | None, sl: int = 0) -> Datagram:
        return Datagram(payload, self.port_num, self.lid, dlid, QP1, QP1, sl, DEFAULT_PKEY,
                        QP1_QKEY, self.gid, dgid, OP_UD_SEND_ONLY, 0)  # fmt: skip

    def _send_cm(self, datagram: Datagram, kind: str) -> None:
        self._outbox.append(datagram)
        self.sent[kind] += 1

    def _cached_lid(self, gid: bytes) -> int:
        record = self.paths.lookup(gid)
        return 0 if record is None else record.dlid

    def _note_interest(self, gid: bytes) -> None:
        if gid not in self._sub.interest:
            self._sub.interest[gid] = None
            self._intra.append(PathRegistered(gid, self._cached_lid(gid)))

    def _refresh_paths(self, now_ns: int) -> None:
        """Ask the SA again for every cached path (after a resumed guest's
        subscription is confirmed): the notices sent while it was migrating went to
        its old port and are lost, and the subscription covers only what happens
        from now on. A fresh answer that names another LID is a path change."""
        for gid in list(self._sub.interest):
            if self.paths.lookup(gid) is not None:
                self._query_path(gid, now_ns, "refresh")

    def _query_path(self, gid: bytes, now_ns: int, via: str) -> None:
        """Ask the SA for `gid`'s path outside a connection attempt (a refresh, or a
        trap 64); the answer is a path change `via` this if it names another LID
        than the cache or a connection holds."""
        if self.paths.pending(gid) is not None:
            return  # a query is out already; its answer will do
        tid = self._new_tid()
        payload = path_query(self.gid, gid, tid)
        query = self.paths.start_query(gid, tid, payload, now_ns)
        query.refresh_via = via
        self._send_cm(self._mad(payload, self.sa_lid, None), "sa_path_query")
        self.counters[f"path_query_{via}"] += 1
        self._sync(query)

    def _drop_interest(self, gid: bytes) -> None:
        if gid in self._sub.interest and not any(s.gid == gid for s in self._streams.values()):
            del self._sub.interest[gid]
            if self.attached:
                self._intra.append(PathUnregistered(gid))

    # --- client streams ------------------------------------------------------------------

    def _start_attempt(self, stream: ClientStream, now_ns: int) -> None:
        """Resolve the stream's server's address, then its path, and send a REQ."""
        stream.token += 1
        stream.attempts += 1
        stream.deadline = None
        stream.conn = None
        if not self.attached:
            # No device (`GuestConfig.retry_while_detached`): address resolution
            # fails at once, and the stream waits its backoff.
            stream.transition(_RESOLVING)
            self._attempt_failed(stream, "no_device", now_ns)
            return
        entry = self.neighbours.get(stream.ip)
        if entry is None or not entry.valid:
            self._await_neighbour(stream, entry, now_ns)
            return
        self._use_neighbour(entry, now_ns)
        if entry.gid != stream.gid:
            self._stream_to_gid(stream, entry.gid, now_ns)
        self._resolve_route(stream, now_ns)

    def _resolve_route(self, stream: ClientStream, now_ns: int) -> None:
        """The address is resolved: find the path (cache or SA) and send a REQ."""
        gid = stream.gid
        self._note_interest(gid)
        record = self.paths.lookup(gid)
        if record is not None:
            self._emit(PathResolved(now_ns, gid, record.dlid, "cache"))
            self._send_req(stream, record, now_ns)
            return
        if stream.state is not _RESOLVING:
            stream.transition(_RESOLVING)
        query = self.paths.pending(gid)
        if query is None:
            tid = self._new_tid()
            payload = path_query(self.gid, gid, tid)
            query = self.paths.start_query(gid, tid, payload, now_ns)
            self._send_cm(self._mad(payload, self.sa_lid, None), "sa_path_query")
            self._sync(query)
        query.waiters.append((stream, stream.token))

    def _attempt_failed(self, stream: ClientStream, reason: str, now_ns: int) -> None:
        stream.conn = None
        stream.failures += 1
        delay = backoff_ns(self.config, stream.failures, self.rng)
        stream.transition(_BACKOFF)
        stream.token += 1
        stream.deadline = now_ns + delay
        self._sync(stream)
        self._emit(ConnectFailed(now_ns, self.gid, stream.gid, reason, stream.attempts, delay))

    def _break_stream(
        self, stream: ClientStream, reason: str, now_ns: int, *, send_dreq: bool | None = None
    ) -> None:
        """End the stream's current connection or attempt (before a new attempt). An
        established connection reports `ConnectionBroken(reason)` and is released
        with a DREQ if `send_dreq` (default: `disconnect_on_error`)."""
        conn = stream.conn
        stream.conn = None
        stream.deadline = None
        stream.token += 1
        if conn is not None:
            if conn.state is _ESTABLISHED:
                self._emit(ConnectionBroken(now_ns, self.gid, conn.remote_gid, "client", reason))
                if stream.broken_ns is None:
                    stream.broken_ns = now_ns
                if send_dreq is None:
                    send_dreq = self.config.disconnect_on_error
                if send_dreq:
                    self._disconnect(conn, now_ns)
                else:
                    self._close(conn)
            else:
                self._close(conn)
        stream.transition(_IDLE)

    def _stream_up(self, stream: ClientStream, conn: Connection, now_ns: int) -> None:
        stream.transition(_CONNECTED)
        self._emit(
            ConnectionUp(now_ns, self.gid, conn.remote_gid, "client", conn.remote_lid,
                         conn.local_comm_id)
        )  # fmt: skip
        if stream.broken_ns is not None:
            self._emit(
                Reconnected(now_ns, self.gid, stream.gid, now_ns - stream.broken_ns,
                            stream.attempts)
            )  # fmt: skip
            stream.broken_ns = None
        stream.failures = 0
        stream.attempts = 0
        stream.deadline = now_ns + self.rng.randrange(self._interval)
        self._sync(stream)

    def _on_stream_timer(self, stream: ClientStream, now_ns: int) -> None:
        stream.deadline = None
        state = stream.state
        conn = stream.conn
        if state is _CONNECTED and conn is not None:
            qp = conn.qp
            datagram = qp.post_send(stream.next_seq.to_bytes(8, "big") + self._pad, now_ns)
            if datagram is None:
                self.counters["send_queue_full"] += 1
            else:
                stream.next_seq += 1
                self._outbox.append(datagram)
                self.sent["data"] += 1
                self._sync(qp)
            stream.deadline = now_ns + self._interval
            self._sync(stream)
        elif state is _BACKOFF:
            self._start_attempt(stream, now_ns)
        elif state is _RESOLVING:
            # rdma_resolve_addr gave up (the address is still not resolved).
            waiting = self.neighbours.waiting.get(stream.ip)
            if waiting is not None:
                waiting[:] = [(s, t) for s, t in waiting if s is not stream]
            self._attempt_failed(stream, "addr_timeout", now_ns)

    # --- QPs -----------------------------------------------------------------------------

    def _on_qp_timer(self, qp: RcQp, now_ns: int) -> None:
        conn = self._by_qpn.get(qp.qpn)
        if conn is None or conn.qp is not qp:
            qp.deadline = None
            return
        resend = qp.on_timeout(now_ns)
        if resend is None:
            self._qp_failed(conn, "retry_exceeded", now_ns)
            return
        if resend:
            self._outbox.extend(resend)
            self.sent["data_retransmit"] += len(resend)
        self._sync(qp)

    def _qp_failed(self, conn: Connection, reason: str, now_ns: int) -> None:
        """The QP went to ERROR by itself: the application sees the connection die."""
        self.counters[f"qp_{reason}"] += 1
        stream = conn.stream
        if isinstance(stream, ClientStream) and stream.conn is conn:
            self._break_stream(stream, reason, now_ns)
            self._start_attempt(stream, now_ns)
            return
        if conn.state is _ESTABLISHED:
            self._emit(ConnectionBroken(now_ns, self.gid, conn.remote_gid, conn.role, reason))
        self._close(conn)

    # --- CM --------------------------------------------------------------------------------

    def _receive_mad(self, datagram: Datagram, now_ns: int) -> None:
        payload = datagram.payload
        if len(payload) != MAD_SIZE:
            self.counters["mad_malformed"] += 1
            return
        mgmt_class = payload[1]
        if mgmt_class == _CM_CLASS:
            self._receive_cm(datagram, now_ns)
        elif mgmt_class == _SA_CLASS:
            self._receive_sa(datagram, now_ns)
        else:
            self.counters["mad_unknown_class"] += 1

    # --- SA ------------------------------------------------------------------------------

    def _receive_sa(self, datagram: Datagram, now_ns: int) -> None:
        payload = datagram.payload
        method = payload[3]
        attribute = (payload[16] << 8) | payload[17]
        if method == _REPORT and attribute == _ATTR_NOTICE:
            self._on_report(datagram, now_ns)
        elif method == _GET_RESP and attribute == _ATTR_PATH_RECORD:
            self._on_path_response(payload, now_ns)
        elif method == _GET_RESP and attribute == _ATTR_INFORM_INFO:
            self._on_subscription_response(payload, now_ns)
        elif method == _GET_RESP and attribute == _ATTR_MC_MEMBER_RECORD:
            self._on_join_response(payload)
        else:
            self.counters["sa_ignored"] += 1

    def _on_path_response(self, payload: bytes, now_ns: int) -> None:
        try:
            tid, status, record = parse_path_response(payload)
        except WireError:
            self.counters["sa_malformed"] += 1
            return
        held = self.paths.lookup(self.paths.dgid_of(tid) or b"")
        query = self.paths.answer(tid, record)
        if query is None:
            self.counters["sa_unmatched"] += 1
            return
        if record is not None and query.refresh_via is not None:
            dlid = record.dlid
            if (held is not None and held.dlid != dlid) or any(
                stream.gid == query.dgid and stream.conn is not None
                and stream.conn.remote_lid != dlid
                for stream in self._streams.values()
            ):  # fmt: skip
                self.path_changed(query.dgid, dlid, now_ns, via=query.refresh_via)
        if record is None:
            reason = f"status_{status:#06x}"
            self._emit(PathQueryFailed(now_ns, query.dgid, reason))
            self._fail_waiters(query, f"sa_{reason}", now_ns)
            return
        self._emit(PathResolved(now_ns, query.dgid, record.dlid, "sa"))
        self.neighbours.note_lid(query.dgid, record.dlid)
        for stream, token in query.waiters:
            if (
                isinstance(stream, ClientStream)
                and stream.token == token
                and stream.state is _RESOLVING
            ):
                self._send_req(stream, record, now_ns)

    def _fail_waiters(self, query: PathQuery, reason: str, now_ns: int) -> None:
        for stream, token in query.waiters:
            if (
                isinstance(stream, ClientStream)
                and stream.token == token
                and stream.state is _RESOLVING
            ):
                self._attempt_failed(stream, reason, now_ns)

    def _on_query_timer(self, query: PathQuery, now_ns: int) -> None:
        query.deadline = None
        if self.paths.expire(query, now_ns):
            self._send_cm(self._mad(query.payload, self.sa_lid, None), "sa_path_query")
            self._sync(query)
            return
        self._emit(PathQueryFailed(now_ns, query.dgid, "timeout"))
        self._fail_waiters(query, "sa_timeout", now_ns)

    def _send_subscription(self, now_ns: int) -> None:
        """One InformInfo Set per trap of the notice variant (`SaClient.traps`)."""
        self._sub.requests.clear()
        for trap in self.sa.traps:
            tid = self._new_tid()
            request = _SaRequest(tid, self.sa.subscription(tid, trap_number=trap), trap)
            self._sub.requests[tid] = request
            self._send_cm(self._mad(request.payload, self.sa_lid, None), "sa_inform_info")
            request.deadline = now_ns + self.sa.timeout_ns
            self._sync(request)

    def _on_sa_request_timer(self, request: _SaRequest, now_ns: int) -> None:
        if request is self._sub.join:
            self._on_join_timer(request, now_ns)
        else:
            self._on_subscription_timer(request, now_ns)

    def _member_record(self, method: int, tid: int = 0) -> bytes:
        """The broadcast group's MCMemberRecord Set (join) or Delete (leave)."""
        record = MCMemberRecord(
            mgid=IPOIB_BROADCAST_MGID,
            port_gid=self.gid,
            pkey=DEFAULT_PKEY,
            join_state=JoinState.FULL_MEMBER,
        )
        return SaMad.from_record(record, method=method, tid=tid, component_mask=_JOIN_MASK).pack()

    def _send_join(self, now_ns: int) -> None:
        request = _SaRequest(self._new_tid(), b"", 0)
        request.payload = self._member_record(Method.SET, request.tid)
        self._sub.join = request
        self._send_cm(self._mad(request.payload, self.sa_lid, None), "sa_mc_join")
        request.deadline = now_ns + self.sa.timeout_ns
        self._sync(request)

    def _on_join_timer(self, request: _SaRequest, now_ns: int) -> None:
        request.deadline = None
        if self.sa.resend(request):
            self._send_cm(self._mad(request.payload, self.sa_lid, None), "sa_mc_join")
            request.deadline = now_ns + self.sa.timeout_ns
            self._sync(request)
            return
        self._sub.join = None
        self.counters["mc_join_failed"] += 1

    def _on_join_response(self, payload: bytes) -> None:
        request = self._sub.join
        tid = int.from_bytes(payload[8:16], "big") & TID_MASK
        if request is None or request.tid != tid:
            self.counters["sa_unmatched"] += 1
            return
        self._sub.join = None
        request.deadline = None
        if (payload[4] << 8) | payload[5]:
            self.counters["mc_join_refused"] += 1
        else:
            self._sub.multicast_joined = True
            try:
                self.neighbours.mlid = MCMemberRecord.unpack(payload, SA_HEADER_SIZE).mlid
            except WireError:
                self.counters["sa_malformed"] += 1

    def _on_subscription_timer(self, request: _SaRequest, now_ns: int) -> None:
        request.deadline = None
        if self._sub.requests.get(request.tid) is not request:
            return
        if self.sa.resend(request):
            self._send_cm(self._mad(request.payload, self.sa_lid, None), "sa_inform_info")
            request.deadline = now_ns + self.sa.timeout_ns
            self._sync(request)
            return
        del self._sub.requests[request.tid]
        self._emit(SubscriptionFailed(now_ns, self.gid, "timeout"))
        self._subscribed_all(now_ns)

    def _on_subscription_response(self, payload: bytes, now_ns: int) -> None:
        tid = int.from_bytes(payload[8:16], "big") & TID_MASK
        request = self._sub.requests.get(tid)
        if request is None:
            self.counters["sa_unmatched"] += 1
            return
        status = (payload[4] << 8) | payload[5]
        if status == MadStatus.BUSY:
            # The SA is not ready (a master's first sweep, after a failover): ask
            # again when the timer runs out, as dom0 does (IBA Vol 1, 13.4.7).
            self.counters["sa_busy"] += 1
            return
        del self._sub.requests[tid]
        request.deadline = None
        if status:
            self._emit(SubscriptionFailed(now_ns, self.gid, f"status_{status:#06x}"))
        else:
            self._emit(SubscriptionConfirmed(now_ns, self.gid, self.lid))
        self._subscribed_all(now_ns)

    def _subscribed_all(self, now_ns: int) -> None:
        """Every InformInfo Set is answered (or given up): a resumed guest catches up
        on what it missed, as every notice from now on reaches this port."""
        if self._sub.requests:
            return
        if self._sub.revalidate:
            # Subscribed again after a gap: every cached path is resolved afresh,
            # which covers the refresh a resumed guest would make.
            self._sub.revalidate = False
            self._sub.refresh_pending = False
            self.revalidate_paths(now_ns)
        elif self._sub.refresh_pending:
            self._sub.refresh_pending = False
            self._refresh_paths(now_ns)

    def _on_report(self, datagram: Datagram, now_ns: int) -> None:
        # Per-VM signalling sends every guest one per migration in the subnet: the
        # Notice (a whole MAD, `_receive_mad`) is read from the bytes, only what is
        # acted on, and events are built only when wanted.
        payload = datagram.payload
        self._outbox.append(report_resp(datagram, lid=self.lid, gid=self.gid))
        self.sent["sa_report_resp"] += 1
        tid = int.from_bytes(payload[8:16], "big") & TID_MASK
        duplicate = self.sa.reports.duplicate(datagram.slid, tid)
        if self._wants(ReportReceived):
            # TrapNumber, or the DeviceID of a vendor-specific notice (same bytes).
            trap = (payload[_NOTICE_TRAP] << 8) | payload[_NOTICE_TRAP + 1]
            self._record(ReportReceived(now_ns, trap, tid, duplicate))
        if duplicate:
            return
        moved = peek_path_move(payload, SA_HEADER_SIZE)
        if moved is not None:
            gid, new_lid, path = moved
            self.path_changed(gid, new_lid, now_ns, "report", path)
            return
        service = peek_gid_service(payload, SA_HEADER_SIZE)
        if service is not None and service[0] in self.sa.traps:
            # Traps 65/64 name only the GID (OFED local_sa.c `notice_handler`): out
            # of service drops the cached path; in service asks the SA for it, and
            # an answer naming another LID is the path change.
            trap, gid = service
            if trap == TrapNumber.GID_OUT_OF_SERVICE:
                if self.paths.flush(gid):
                    self._emit(PathFlushed(now_ns, gid))
            else:
                self._query_path(gid, now_ns, "report")

    # --- IPoIB ---------------------------------------------------------------------------

    def _can_broadcast(self) -> bool:
        return self.config.join_ipoib_broadcast and self.neighbours.mlid != 0

    def _broadcast(self, payload: bytes) -> None:
        """One UD datagram on the IPoIB broadcast group (RFC 4391, 5)."""
        self._outbox.append(
            Datagram(payload, self.port_num, self.lid, self.neighbours.mlid, IPOIB_QPN,
                     MULTICAST_QPN, 0, DEFAULT_PKEY, IPOIB_QKEY, self.gid,
                     IPOIB_BROADCAST_MGID, OP_UD_SEND_ONLY, 0)
        )  # fmt: skip

    def _neighbour_state(self, entry: Neighbour, state: NudState, now_ns: int) -> None:
        entry.state = state
        self._emit(NeighbourStateChanged(now_ns, entry.ip, state.name))

    def _send_arp_request(self, entry: Neighbour, now_ns: int) -> None:
        """One probe for `entry`'s address: unicast to the hardware address it holds
        in PROBE, broadcast otherwise (net/ipv4/arp.c `arp_solicit`)."""
        entry.probes += 1
        payload = IpoibArp(ARP_REQUEST, IPOIB_QPN, self.gid, self.ip, entry.ip).pack()
        self.sent["arp_request"] += 1
        if entry.state is NudState.PROBE:
            if entry.lid:
                self._outbox.append(
                    Datagram(payload, self.port_num, self.lid, entry.lid, IPOIB_QPN, entry.qpn,
                             0, DEFAULT_PKEY, IPOIB_QKEY, self.gid, entry.gid,
                             OP_UD_SEND_ONLY, 0)
                )  # fmt: skip
            else:
                self.counters["arp_no_lid"] += 1
        elif self._can_broadcast():
            self._broadcast(payload)
        else:
            self.counters["arp_no_broadcast"] += 1
        entry.deadline = now_ns + self.config.arp_retrans_ns
        self._sync(entry)

    def _use_neighbour(self, entry: Neighbour, now_ns: int) -> None:
        """A connection attempt reads a valid entry (module docstring of `ipoib`)."""
        cfg = self.config
        if (
            entry.state is NudState.REACHABLE
            and now_ns >= entry.confirmed_ns + cfg.arp_reachable_ns
        ):
            entry.state = NudState.STALE  # its reachable time ran out (lazily)
        if entry.state is NudState.STALE and cfg.arp_use_on_connect:
            self._neighbour_state(entry, NudState.DELAY, now_ns)
            entry.deadline = now_ns + cfg.arp_delay_first_probe_ns
            self._sync(entry)

    def _await_neighbour(self, stream: ClientStream, entry: Neighbour | None, now_ns: int) -> None:
        """No valid entry for the server's address: resolve it by broadcast (unless
        a resolution is under way) and let the attempt wait (addr.c
        `rdma_resolve_ip`, -ENODATA)."""
        if entry is None or entry.state is NudState.FAILED:
            entry = self.neighbours.incomplete(stream.ip)
            self._neighbour_state(entry, NudState.INCOMPLETE, now_ns)
            self._send_arp_request(entry, now_ns)
        if stream.state is not _RESOLVING:
            stream.transition(_RESOLVING)
        self.neighbours.waiting.setdefault(stream.ip, []).append((stream, stream.token))
        stream.deadline = now_ns + self.config.addr_resolve_timeout_ns
        self._sync(stream)

    def _on_neighbour_timer(self, entry: Neighbour, now_ns: int) -> None:
        entry.deadline = None
        if self.neighbours.get(entry.ip) is not entry:
            return  # flushed
        cfg = self.config
        state = entry.state
        if state is NudState.DELAY:
            if now_ns < entry.confirmed_ns + cfg.arp_reachable_ns:
                self._neighbour_state(entry, NudState.REACHABLE, now_ns)
                return
            self._neighbour_state(entry, NudState.PROBE, now_ns)
            entry.probes = 0
            self._send_arp_request(entry, now_ns)
            return
        limit = cfg.arp_ucast_probes if state is NudState.PROBE else cfg.arp_mcast_probes
        if state is NudState.PROBE or state is NudState.INCOMPLETE:
            if entry.probes < limit:
                self._send_arp_request(entry, now_ns)
            else:
                self._neighbour_state(entry, NudState.FAILED, now_ns)

    def _stream_to_gid(self, stream: ClientStream, new_gid: bytes, now_ns: int) -> None:
        """The stream's server's address now resolves to `new_gid`: forget the old
        GID's path and interest."""
        old_gid = stream.gid
        stream.gid = new_gid
        self._drop_interest(old_gid)
        if self.paths.flush(old_gid):
            self._emit(PathFlushed(now_ns, old_gid))

    def _neighbour_resolved(self, ip: IPv4Address, now_ns: int) -> None:
        """`ip`'s entry became valid: the attempts waiting for it go on at once
        (addr.c `netevent_callback`)."""
        waiting = self.neighbours.waiting.pop(ip, None)
        entry = self.neighbours.get(ip)
        if not waiting or entry is None:
            return
        for stream, token in waiting:
            if stream.token != token or stream.state is not _RESOLVING:
                continue
            stream.deadline = None
            if entry.gid != stream.gid:
                self._stream_to_gid(stream, entry.gid, now_ns)
            self._resolve_route(stream, now_ns)

    def _receive_ipoib(self, datagram: Datagram, now_ns: int) -> None:
        try:
            arp = IpoibArp.unpack(datagram.payload)
        except WireError:
            self.counters["ipoib_malformed"] += 1
            return
        ip, new_gid = arp.sender_ip, arp.sender_gid
        if ip == self.ip:
            return  # our own broadcast, or an address conflict (not modelled)
        neighbours = self.neighbours
        to_us = arp.target_ip == self.ip
        if arp.op == ARP_REQUEST and to_us:
            # Answer with our hardware address, unicast (arp.c `arp_process`); the
            # request names its sender, whose entry is made or refreshed.
            reply = IpoibArp(ARP_REPLY, IPOIB_QPN, self.gid, self.ip, ip, arp.sender_qpn,
                             new_gid).pack()  # fmt: skip
            self._outbox.append(
                Datagram(reply, self.port_num, self.lid, datagram.slid, IPOIB_QPN,
                         arp.sender_qpn, 0, DEFAULT_PKEY, IPOIB_QKEY, self.gid, new_gid,
                         OP_UD_SEND_ONLY, 0)
            )  # fmt: skip
            self.sent["arp_reply"] += 1
            if ip not in neighbours:
                neighbours.learn(
                    ip, new_gid, datagram.slid, arp.sender_qpn, now_ns
                ).state = NudState.STALE
                return
        entry = neighbours.get(ip)
        was_valid = entry is not None and entry.valid
        state = NudState.REACHABLE if arp.op == ARP_REPLY and to_us else NudState.STALE
        old_gid = neighbours.update(ip, arp.sender_qpn, new_gid, datagram.slid, state, now_ns)
        if old_gid is None:
            self.counters["arp_unknown_ip"] += 1
            return
        if not was_valid:
            self._emit(NeighbourStateChanged(now_ns, ip, state.name))
            self._neighbour_resolved(ip, now_ns)
        if old_gid == new_gid or not was_valid:
            return
        self._emit(NeighbourUpdated(now_ns, ip, old_gid, new_gid))
        stream = self._streams.get(ip)
        if stream is not None and stream.gid == old_gid:
            self._stream_to_gid(stream, new_gid, now_ns)
            if stream.state is not _IDLE:
                stream.failures = 0
                self._break_stream(stream, "neighbour_changed", now_ns)
                self._start_attempt(stream, now_ns)
        for conn in list(self._server_conns.values()):
            if conn.remote_gid == old_gid:
                if conn.state is _ESTABLISHED:
                    self._emit(
                        ConnectionBroken(now_ns, self.gid, old_gid, "server", "neighbour_changed")
                    )
                self._close(conn)


__all__ = ["DEFAULT_PKEY", "FIRST_QPN", "QP1_QKEY", "GuestAgent"]


def _make_sa_client(guest: GuestAgent) -> SaClient:
    cfg = guest.config
    return SaClient(
        timeout_ns=cfg.sa_timeout_ns,
        retries=cfg.sa_retries,
        report_memory=cfg.report_memory,
        inform_resp_time_value=cfg.inform_resp_time_value,
        notice=guest._sub.notice,
    )


def _new_dict(guest: GuestAgent) -> dict[Any, Any]:
    return {}


_LAZY: Final[dict[str, Callable[[GuestAgent], object]]] = {
    "sent": lambda guest: _empty_counter(),
    "counters": lambda guest: _empty_counter(),
    "delivered": lambda guest: _empty_counter(),
    "sa": _make_sa_client,
    "paths": lambda guest: PathCache(guest.config.path_cache, guest.sa.retry),
    "neighbours": lambda guest: NeighbourTable(),
    "_conns": _new_dict,
    "_by_qpn": _new_dict,
    "_server_conns": _new_dict,
}
"""The attributes a guest makes on first use (`GuestAgent.sent`), and how."""


def _share_lazy_keys() -> None:
    """Put the names of `_LAZY` in the guests' shared key table before any guest is
    made. CPython (3.11) gives each new instance room for the keys its class's
    table holds then plus a margin that shrinks with every instance made, down to
    one key: a guest made among thousands that later makes two of its lazy
    attributes, unknown to the table when it was made, would lose the shared table
    for a dictionary of its own (832 bytes instead of 296)."""
    prototype = GuestAgent.__new__(GuestAgent)
    for name in _LAZY:
        setattr(prototype, name, None)


_share_lazy_keys()

_TIMER_HANDLERS: dict[type, _Handler] = {
    ClientStream: GuestAgent._on_stream_timer,
    Connection: GuestAgent._on_conn_timer,
    RcQp: GuestAgent._on_qp_timer,
    PathQuery: GuestAgent._on_query_timer,
    _SaRequest: GuestAgent._on_sa_request_timer,
    Neighbour: GuestAgent._on_neighbour_timer,
}
"""Every owner of a guest's timer, by type, and what its timer does."""

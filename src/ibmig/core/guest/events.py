"""Events a guest agent reports through `next_event()`.

Frozen records for observers (metrics, the JSONL trace, tests); the agent never
needs them back. Every one carries the simulation time it happened at (`time_ns`)
and the GIDs involved as 16-byte `bytes`. `role` is "client" (the active side,
which sends the workload's messages) or "server" (the passive side).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address


@dataclass(frozen=True, slots=True)
class MessageDelivered:
    """The server received message `seq` of `client_gid`'s stream (in order, once)."""

    time_ns: int
    server_gid: bytes
    client_gid: bytes
    seq: int


@dataclass(frozen=True, slots=True)
class ConnectionUp:
    """A connection reached Established: the client got the REP (and sent the RTU),
    the server got the RTU or the first SEND."""

    time_ns: int
    local_gid: bytes
    peer_gid: bytes
    role: str
    peer_lid: int
    local_comm_id: int


@dataclass(frozen=True, slots=True)
class ConnectionBroken:
    """A connection ended. Reasons: "retry_exceeded" (the RC requester gave up),
    "remote_nak", "path_changed", "neighbour_changed", "disconnect_request" (DREQ
    received), "disconnected" (our own disconnect), "replaced" (a new REQ from the
    same client and service), "rep_timeout", "rejected", "detached"."""

    time_ns: int
    local_gid: bytes
    peer_gid: bytes
    role: str
    reason: str


@dataclass(frozen=True, slots=True)
class Reconnected:
    """A client's connection is up again `down_ns` after the previous one broke,
    after `attempts` connection attempts."""

    time_ns: int
    client_gid: bytes
    server_gid: bytes
    down_ns: int
    attempts: int


@dataclass(frozen=True, slots=True)
class ConnectFailed:
    """One connection attempt failed; the next starts after `backoff_ns`.
    Reasons: "sa_timeout", "sa_status_0x....", "cm_timeout", "rejected_<code>",
    "no_device" (tried while the VF is away: `GuestConfig.retry_while_detached`)."""

    time_ns: int
    client_gid: bytes
    server_gid: bytes
    reason: str
    attempt: int
    backoff_ns: int


@dataclass(frozen=True, slots=True)
class PathResolved:
    """A path to `gid` was chosen for a connection attempt: from the cache or from a
    PathRecord answer of the SA (`via` "cache" or "sa")."""

    time_ns: int
    gid: bytes
    lid: int
    via: str


@dataclass(frozen=True, slots=True)
class PathQueryFailed:
    """A PathRecord query gave no record: `reason` "timeout" or "status_0x...."."""

    time_ns: int
    gid: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class PathFlushed:
    """The cached path to `gid` was dropped (a path-change event or a new neighbour)."""

    time_ns: int
    gid: bytes


@dataclass(frozen=True, slots=True)
class PathChangeReceived:
    """A path-change event for `gid` reached the guest: `via` "report" (its own
    SA subscription), "dom0" (forwarded over the intra-host channel) or "refresh"
    (a resumed guest asked the SA again and the path had moved)."""

    time_ns: int
    gid: bytes
    new_lid: int
    via: str


@dataclass(frozen=True, slots=True)
class ReportReceived:
    """An SA Report(Notice) arrived (answered with a ReportResp); `duplicate` when
    its TID was seen already (the SA resent it)."""

    time_ns: int
    trap_number: int
    tid: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class SubscriptionConfirmed:
    """The SA accepted the per-VM InformInfo (trap 69) subscription."""

    time_ns: int
    gid: bytes
    lid: int


@dataclass(frozen=True, slots=True)
class SubscriptionFailed:
    """The subscription got an error status, or no answer after every retry."""

    time_ns: int
    gid: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class NeighbourUpdated:
    """An IPoIB (gratuitous) ARP moved `ip` from `old_gid` to `new_gid`."""

    time_ns: int
    ip: IPv4Address
    old_gid: bytes
    new_gid: bytes


@dataclass(frozen=True, slots=True)
class NeighbourStateChanged:
    """`ip`'s neighbour entry went to `state` (a `NudState` name: INCOMPLETE, DELAY,
    PROBE, FAILED, or REACHABLE/STALE when an ARP resolved it)."""

    time_ns: int
    ip: IPv4Address
    state: str


@dataclass(frozen=True, slots=True)
class GratuitousArpSent:
    """The guest announced its (new) GID for `ip` to `neighbours` peers."""

    time_ns: int
    ip: IPv4Address
    gid: bytes
    neighbours: int


@dataclass(frozen=True, slots=True)
class Attached:
    """The VF is up: the guest has a port LID and a GID and starts (again)."""

    time_ns: int
    gid: bytes
    lid: int
    resumed: bool


@dataclass(frozen=True, slots=True)
class Detached:
    """The VF is gone (VM paused or migrating): every QP was destroyed."""

    time_ns: int
    gid: bytes

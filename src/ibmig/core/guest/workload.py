"""The workload: every VM is a server, and a client of its peers.

A client keeps one `ClientStream` per server it talks to (named by IP address;
the GID comes from the IPoIB neighbour table). The stream's life, kept in one
transition table, `STREAM_TRANSITIONS`; `ClientStream.transition` raises
`StreamTransitionError` for any other move:

    IDLE -> RESOLVING (PathRecord query to the SA) -> CONNECTING (REQ sent) ->
    CONNECTED (one message every `message_interval_ns`); IDLE -> CONNECTING
    directly when the path is cached. On a QP error, a path-change event for the
    server's GID, a neighbour update, a DREQ or a REJ the connection is torn down
    (-> IDLE) and the stream starts again at once; detaching the VF also stops it
    (-> IDLE). A failed attempt (SA time-out or error, REJ, CM time-out) waits in
    BACKOFF, then tries again (-> RESOLVING or CONNECTING), forever.

Backoff after the n-th consecutive failed attempt (`backoff_ns`): the ceiling
`reconnect_backoff_ns` * 2**(n-1), capped at `reconnect_backoff_max_ns`; under
`reconnect_policy` "rds" (default, Linux RDS's rule) a wait drawn uniformly below
the ceiling, under "doubling" the ceiling lengthened by a random fraction below
`backoff_jitter` of itself (both from the agent's seeded rng).

Messages carry a per-stream sequence number (8 bytes, big-endian, then zero
padding up to `message_bytes`) that keeps counting across reconnections;
messages lost with a broken QP are not resent, so a server sees the gap. The
first message on a new connection leaves after a random offset within one
interval, so that many clients do not send in lockstep.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv4Address
from typing import Final

from ibmig.core.guest.cm import Connection
from ibmig.core.guest.config import GuestConfig


@dataclass(frozen=True, slots=True)
class Peer:
    """A server this guest is a client of: its IP address and (initial) GID."""

    ip: IPv4Address
    gid: bytes


class StreamState(IntEnum):
    IDLE = 0
    RESOLVING = 1
    CONNECTING = 2
    CONNECTED = 3
    BACKOFF = 4


STREAM_TRANSITIONS: Final[dict[StreamState, frozenset[StreamState]]] = {
    StreamState.IDLE: frozenset({StreamState.RESOLVING, StreamState.CONNECTING}),
    StreamState.RESOLVING: frozenset(
        {StreamState.CONNECTING, StreamState.BACKOFF, StreamState.IDLE}
    ),
    StreamState.CONNECTING: frozenset(
        {StreamState.CONNECTED, StreamState.BACKOFF, StreamState.IDLE}
    ),
    StreamState.CONNECTED: frozenset({StreamState.IDLE}),
    StreamState.BACKOFF: frozenset(
        {StreamState.RESOLVING, StreamState.CONNECTING, StreamState.IDLE}
    ),
}
"""current stream state -> the states it may move to (module docstring)."""


class StreamTransitionError(Exception):
    """An illegal client-stream transition (a bug in the engine, never a wire event)."""


class ClientStream:
    """A client's stream of messages to one server, across reconnections.

    `token` changes at every new attempt, so that a late answer to an abandoned
    attempt (an SA response, a REP) is recognised and ignored. `deadline` is when
    the engine's timer should fire: the next message while CONNECTED, the end of
    the backoff while in BACKOFF.
    """

    __slots__ = (
        "attempts",
        "broken_ns",
        "conn",
        "deadline",
        "failures",
        "gid",
        "ip",
        "next_seq",
        "state",
        "token",
    )

    def __init__(self, ip: IPv4Address, gid: bytes) -> None:
        self.ip = ip
        self.gid = gid
        self.state = StreamState.IDLE
        self.conn: Connection | None = None
        self.next_seq = 0
        self.failures = 0
        self.attempts = 0
        self.broken_ns: int | None = None
        self.token = 0
        self.deadline: int | None = None

    def __repr__(self) -> str:
        return f"ClientStream({self.ip}, {self.state.name}, next_seq={self.next_seq})"

    def transition(self, to: StreamState) -> None:
        """Move to `to`; `StreamTransitionError` if `STREAM_TRANSITIONS` does not
        allow it."""
        if to not in STREAM_TRANSITIONS[self.state]:
            raise StreamTransitionError(
                f"stream to {self.ip}: {self.state.name} -> {StreamState(to).name} "
                "is not a legal transition"
            )
        self.state = to


def backoff_ns(config: GuestConfig, failures: int, rng: random.Random) -> int:
    """The wait before the next attempt after `failures` consecutive failures."""
    if failures <= 0:
        return 0
    base = min(
        config.reconnect_backoff_max_ns,
        config.reconnect_backoff_ns << min(failures - 1, 62),
    )
    if config.reconnect_policy == "rds":
        # net/rds/threads.c rds_queue_reconnect: rand % cp_reconnect_jiffies.
        return rng.randrange(base) if base > 0 else 0
    jitter = int(base * config.backoff_jitter)
    return base + (rng.randrange(jitter) if jitter > 0 else 0)


def message_payload(seq: int, pad: bytes) -> bytes:
    """The SEND payload of message `seq` (8-byte big-endian sequence number + pad)."""
    return seq.to_bytes(8, "big") + pad


def message_seq(payload: bytes) -> int:
    """The sequence number a SEND payload carries."""
    return int.from_bytes(payload[:8], "big")

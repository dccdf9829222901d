"""A client stream's states are one transition table; an illegal move raises."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from ibmig.core.guest import STREAM_TRANSITIONS, ClientStream, StreamState, StreamTransitionError
from tests.core.guest.guest_util import gid


def stream() -> ClientStream:
    return ClientStream(IPv4Address("10.0.0.1"), gid(0x100))


def test_every_state_has_a_row() -> None:
    assert set(STREAM_TRANSITIONS) == set(StreamState)


def test_a_connection_and_a_reconnection_are_legal() -> None:
    s = stream()
    for to in (
        StreamState.RESOLVING,
        StreamState.CONNECTING,
        StreamState.CONNECTED,
        StreamState.IDLE,  # torn down (path change, QP error)
        StreamState.CONNECTING,  # cached path
        StreamState.BACKOFF,  # REJ or CM time-out
        StreamState.RESOLVING,
    ):
        s.transition(to)
        assert s.state is to


@pytest.mark.parametrize(
    ("start", "to"),
    [
        ((), StreamState.CONNECTED),  # IDLE -> CONNECTED: never connected
        ((), StreamState.BACKOFF),  # IDLE -> BACKOFF: no attempt failed
        ((), StreamState.IDLE),
        ((StreamState.RESOLVING,), StreamState.CONNECTED),  # no REQ sent
        ((StreamState.RESOLVING, StreamState.CONNECTING, StreamState.CONNECTED),
         StreamState.RESOLVING),  # an established stream is torn down first
        ((StreamState.RESOLVING, StreamState.BACKOFF), StreamState.BACKOFF),
    ],
)  # fmt: skip
def test_illegal_transitions_raise(start: tuple[StreamState, ...], to: StreamState) -> None:
    s = stream()
    for state in start:
        s.transition(state)
    before = s.state
    with pytest.raises(StreamTransitionError, match="not a legal transition"):
        s.transition(to)
    assert s.state is before

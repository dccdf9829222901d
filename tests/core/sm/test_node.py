"""`SmNode`: the SM and SA of one port as one engine: whose output and events come
first, the earlier deadline, and an SA replaced under a running node."""

from __future__ import annotations

from collections.abc import Container
from typing import Any

from ibmig.core.engine import Datagram
from ibmig.core.sm.node import SA_CLASS, SmNode
from tests.core.sa.sa_util import build_subnet


def sa_mad(tag: int) -> Datagram:
    payload = bytearray(256)
    payload[0], payload[1], payload[2] = 1, SA_CLASS, 2
    payload[16] = tag
    return Datagram(bytes(payload), 1, 3, 1, 1, 1)


class FakeSa:
    """An SA stand-in: each MAD it receives makes an answer and an event; it keeps a
    deadline and hears of departures and arrivals."""

    def __init__(self, name: str, deadline_ns: int | None) -> None:
        self.name = name
        self.deadline_ns = deadline_ns
        self.event_filter: Container[type] | None = None
        self.outbox: list[Datagram] = []
        self.events: list[Any] = []
        self.told: list[tuple[str, int]] = []

    def receive(self, datagram: Datagram, now_ns: int) -> None:
        self.outbox.append(datagram)
        self.events.append((self.name, datagram.payload[16], now_ns))

    def packets_to_send(self) -> list[Datagram]:
        out, self.outbox = self.outbox, []
        return out

    def next_event(self) -> Any | None:
        return self.events.pop(0) if self.events else None

    def get_timer(self) -> int | None:
        return self.deadline_ns

    def handle_timer(self, now_ns: int) -> None:
        self.deadline_ns = None

    def mad_departed(self, datagram: Datagram, departure_ns: int) -> None:
        self.told.append(("departed", departure_ns))

    def response_arrived(self, datagram: Datagram, now_ns: int) -> None:
        self.told.append(("arrived", now_ns))


def test_outputs_events_and_deadline_are_the_sas() -> None:
    sm = build_subnet()
    sa = FakeSa("first", 500)
    node = SmNode(sm, sa)
    assert node.get_timer() == 500  # the SM has nothing armed before its sweep
    node.receive(sa_mad(7), 100)
    assert [d.payload[16] for d in node.packets_to_send()] == [7]
    assert node.next_event() == ("first", 7, 100)
    assert node.next_event() is None
    sa.events.append("made by an API call")  # taken when asked for
    assert node.next_event() == "made by an API call"
    assert node.packets_to_send() == [] and node.next_event() is None


def test_a_replaced_sa_is_the_one_pumped() -> None:
    # `VirtualizedSubnet.restart_sa` swaps the SA under a running node: its
    # output, events and deadline are the new SA's from then on.
    sm = build_subnet()
    old, new = FakeSa("old", 500), FakeSa("new", 900)
    node = SmNode(sm, old)
    node.sa = new
    assert node.sa is new
    old.outbox.append(sa_mad(1))
    old.events.append("old event")
    node.receive(sa_mad(2), 100)
    assert [d.payload[16] for d in node.packets_to_send()] == [2]
    assert node.next_event() == ("new", 2, 100) and node.next_event() is None
    assert node.get_timer() == 900
    # The kernel's view of its MADs too (`MadAgent`): a Report the new SA sent
    # times out from its departure, not from the step that emitted it.
    node.mad_departed(sa_mad(3), 150)
    node.response_arrived(sa_mad(3), 170)
    assert new.told == [("departed", 150), ("arrived", 170)] and old.told == []
    node.handle_timer(900)
    assert new.deadline_ns is None and old.deadline_ns == 500
    assert node.get_timer() is None
    node.sa = None
    assert node.packets_to_send() == [] and node.get_timer() is None
    assert node.management_classes == (0x01, 0x81)

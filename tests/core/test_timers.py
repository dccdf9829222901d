"""The shared timer primitive: order, moves, cancels, and the heap kept small."""

from __future__ import annotations

from typing import TypeVar

from hypothesis import given
from hypothesis import strategies as st

from ibmig.core.timers import Timers

K = TypeVar("K", int, str)


def drain(timers: Timers[K], now_ns: int) -> list[K]:
    due: list[K] = []
    while (key := timers.pop_due(now_ns)) is not None:
        due.append(key)
    return due


def test_due_keys_come_out_by_deadline_then_arming_order() -> None:
    timers: Timers[str] = Timers()
    timers.arm("late", 30)
    timers.arm("tie-first", 20)
    timers.arm("tie-second", 20)
    timers.arm("early", 10)
    assert timers.next_deadline() == 10
    assert drain(timers, 25) == ["early", "tie-first", "tie-second"]
    assert timers.next_deadline() == 30
    assert drain(timers, 29) == []
    assert drain(timers, 30) == ["late"]
    assert timers.next_deadline() is None
    assert len(timers) == 0


def test_rearming_moves_and_cancel_forgets() -> None:
    timers: Timers[int] = Timers()
    timers.arm(1, 10)
    timers.arm(2, 15)
    timers.arm(1, 50)  # moved later: the entry at 10 is dead
    assert timers.next_deadline() == 15
    assert timers.deadline(1) == 50
    assert timers.cancel(2) is True
    assert timers.cancel(2) is False
    assert timers.next_deadline() == 50
    assert timers.pop_due(49) is None
    assert timers.pop_due(50) == 1
    assert 1 not in timers


def test_keys_armed_while_handling_are_seen_in_the_same_drain() -> None:
    timers: Timers[str] = Timers()
    timers.arm("a", 5)
    handled = []
    while (key := timers.pop_due(10)) is not None:
        handled.append(key)
        if key == "a":
            timers.arm("b", 7)  # already due: handled in this round
            timers.arm("c", 11)  # not yet
    assert handled == ["a", "b"]
    assert timers.next_deadline() == 11


def test_dead_entries_do_not_pile_up() -> None:
    timers: Timers[int] = Timers()
    for i in range(10_000):
        timers.arm(i % 3, i)  # three live keys, moved 10,000 times
    assert len(timers) == 3
    assert len(timers._heap) <= 2 * 3 + 64 + 1


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 1000), st.booleans()), max_size=60))
def test_matches_a_plain_dictionary(ops: list[tuple[int, int, bool]]) -> None:
    timers: Timers[int] = Timers()
    model: dict[int, tuple[int, int]] = {}
    for seq, (key, deadline, cancel) in enumerate(ops):
        if cancel:
            timers.cancel(key)
            model.pop(key, None)
        else:
            timers.arm(key, deadline)
            model[key] = (deadline, seq)
    expected = sorted(model, key=lambda k: model[k])
    assert timers.next_deadline() == (model[expected[0]][0] if expected else None)
    assert drain(timers, 10_000) == expected


def test_peek_leaves_the_earliest_armed() -> None:
    timers: Timers[str] = Timers()
    assert timers.peek() is None
    timers.arm("a", 5)
    timers.arm("b", 5)
    timers.arm("a", 9)  # moved: "b" is now first, "a"'s old entry is dead
    assert timers.peek() == (5, "b")
    assert timers.peek() == (5, "b") and "b" in timers
    timers.cancel("b")
    assert timers.peek() == (9, "a")

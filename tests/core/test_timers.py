"""The shared timer primitive: order, moves, cancels, and the heap kept small."""

from __future__ import annotations

import random
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
    assert len(timers._lane) + len(timers._heap) <= 2 * 3 + 64 + 1


def test_deadlines_armed_in_order_skip_the_heap() -> None:
    # The SA's Reports: timeouts from successive departures, nearly all answered.
    timers: Timers[int] = Timers()
    for tid in range(1000):
        timers.arm(tid, 1_000 + tid // 2)  # ties too: still in order
    assert timers._heap == [] and len(timers._lane) == 1000
    for tid in range(0, 1000, 2):
        timers.cancel(tid)
    timers.arm(5000, 999)  # earlier than the lane's last: kept apart, comes out first
    assert len(timers._heap) == 1
    assert timers.next_deadline() == 999
    assert drain(timers, 1_001) == [5000, 1, 3]
    assert timers.peek() == (1_002, 5)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["arm", "cancel", "pop"]), st.integers(0, 12), st.integers(0, 200)
        ),
        max_size=120,
    )
)
def test_interleaved_operations_match_a_plain_dictionary(
    ops: list[tuple[str, int, int]],
) -> None:
    # Arms in and out of order (lane and heap), moves, cancels and pops, with the
    # rebuild kicking in: the due order is (deadline, arming order) throughout.
    timers: Timers[int] = Timers()
    model: dict[int, tuple[int, int]] = {}
    for seq, (op, key, when) in enumerate(ops):
        if op == "arm":
            timers.arm(key, when)
            model[key] = (when, seq)
        elif op == "cancel":
            assert timers.cancel(key) is (model.pop(key, None) is not None)
        else:
            due = sorted((k for k in model if model[k][0] <= when), key=lambda k: model[k])
            got = timers.pop_due(when)
            assert got == (due[0] if due else None)
            if due:
                del model[due[0]]
        first = min(model, key=lambda k: model[k], default=None)
        assert timers.peek() == (None if first is None else (model[first][0], first))
        assert timers.deadline(key) == (model[key][0] if key in model else None)
    assert len(timers) == len(model)


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


def test_rebuilds_keep_the_order() -> None:
    # Many moves and cancels of a few hundred keys, in and out of order: the
    # structures are rebuilt many times over and the due order holds.
    rng = random.Random(7)
    timers: Timers[int] = Timers()
    model: dict[int, tuple[int, int]] = {}
    for seq in range(20_000):
        key = rng.randrange(300)
        if rng.random() < 0.3:
            timers.cancel(key)
            model.pop(key, None)
        else:
            deadline = seq + rng.choice((0, 0, 0, -500, 1000))
            timers.arm(key, deadline)
            model[key] = (deadline, seq)
        assert len(timers._lane) + len(timers._heap) <= 2 * len(model) + 64 + 1
    assert drain(timers, 10**9) == sorted(model, key=lambda k: model[k])


def test_a_sequence_taken_orders_a_callers_deadline_among_the_entries() -> None:
    # An engine keeping some deadlines itself (the SM's transactions) merges them
    # by (deadline, sequence): a sequence taken between two arms lies between theirs.
    timers: Timers[str] = Timers()
    assert timers.peek_entry() is None
    timers.arm("a", 10)
    taken = timers.take_sequence()
    timers.arm("b", 10)
    first = timers.peek_entry()
    assert first is not None and first[0] == 10 and first[2] == "a"
    assert first[1] < taken
    assert drain(timers, 10) == ["a", "b"]
    timers.arm("c", 10)
    later = timers.peek_entry()
    assert later is not None and later[1] > taken

from __future__ import annotations

import random

import pytest

from ibmig.sim.kernel import EventKernel, Timer


def test_events_run_in_time_then_priority_then_schedule_order() -> None:
    kernel = EventKernel()
    order: list[str] = []
    kernel.schedule(20, order.append, "t20")
    kernel.schedule(10, order.append, "t10-p1", priority=1)
    kernel.schedule(10, order.append, "t10-p0-first")
    kernel.schedule(10, order.append, "t10-p0-second")
    kernel.schedule(0, order.append, "t0")
    assert kernel.run() == 5
    assert order == ["t0", "t10-p0-first", "t10-p0-second", "t10-p1", "t20"]
    assert kernel.now_ns == 20


def test_cancelled_event_does_not_run_and_clock_follows_events() -> None:
    kernel = EventKernel()
    seen: list[int] = []
    timer = kernel.start_timer(5, lambda _: seen.append(kernel.now_ns))
    kernel.start_timer(7, lambda _: seen.append(kernel.now_ns))
    assert timer.time_ns == 5
    timer.cancel()
    assert timer.cancelled
    kernel.run()
    assert seen == [7]


def test_run_until_stops_before_later_events_and_advances_clock() -> None:
    kernel = EventKernel()
    seen: list[int] = []
    kernel.schedule(100, seen.append, 100)
    kernel.schedule(300, seen.append, 300)
    kernel.run(until_ns=200)
    assert seen == [100]
    assert kernel.now_ns == 200
    kernel.schedule(50, seen.append, 250)
    kernel.run()
    assert seen == [100, 250, 300]


def test_callbacks_may_schedule_more_events_at_the_same_instant() -> None:
    kernel = EventKernel()
    seen: list[str] = []

    def first(_: object) -> None:
        seen.append("first")
        kernel.schedule(0, seen.append, "soon")

    kernel.schedule(1, first)
    kernel.schedule(1, seen.append, "second")
    kernel.run()
    assert seen == ["first", "second", "soon"]


def test_negative_delay_is_refused() -> None:
    with pytest.raises(ValueError, match="past"):
        EventKernel().schedule(-1, print)


def _replay(seed: int) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    kernel = EventKernel()
    log: list[tuple[int, int]] = []

    def deliver(entity: int) -> None:
        log.append((kernel.now_ns, entity))
        if len(log) < 2000:
            kernel.schedule(rng.randrange(0, 50), deliver, rng.randrange(100))

    for entity in range(20):
        kernel.schedule(rng.randrange(0, 50), deliver, entity)
    kernel.run()
    return log


def test_same_seed_same_order_including_ties() -> None:
    assert _replay(7) == _replay(7)
    assert _replay(7) != _replay(8)


def test_run_until_includes_events_at_the_horizon_and_peek_gives_times() -> None:
    kernel = EventKernel()
    seen: list[str] = []
    kernel.schedule(200, seen.append, "at", priority=255)
    kernel.schedule(201, seen.append, "after")
    assert kernel.peek_ns() == 200
    kernel.run(until_ns=200)
    assert seen == ["at"]
    assert kernel.peek_ns() == 201


def test_priority_outside_a_byte_is_refused() -> None:
    kernel = EventKernel()
    for bad in (-1, 256):
        with pytest.raises(ValueError, match="priority"):
            kernel.schedule(0, print, priority=bad)
    assert kernel.pending == 0


@pytest.mark.parametrize("time_ns", [0, 1, 2**40, 2**62])
def test_late_low_priority_events_never_overtake_earlier_times(time_ns: int) -> None:
    kernel = EventKernel()
    seen: list[str] = []
    kernel.schedule(time_ns + 1, seen.append, "later", priority=0)
    kernel.schedule(time_ns, seen.append, "earlier", priority=255)
    for _ in range(3):
        kernel.schedule(time_ns, seen.append, "earlier-p0")
    kernel.run()
    assert seen == ["earlier-p0"] * 3 + ["earlier", "later"]


def test_cancelled_timers_are_dropped_when_they_fill_the_heap_and_order_holds() -> None:
    kernel = EventKernel()
    fired: list[int] = []
    timers = [kernel.start_timer(10_000 + i, fired.append, i) for i in range(20_000)]
    for i in range(0, 20_000, 3):
        kernel.schedule(10_000 + i, fired.append, -i)  # plain events among them
    kept = set(range(0, 20_000, 97))
    for i, timer in enumerate(timers):
        if i not in kept:
            timer.cancel()
            timer.cancel()  # a second cancel changes nothing
    # The dead timers outnumbered the live entries at some point and were dropped.
    assert kernel.pending < 20_000
    kernel.run()
    # Same time: the timer was scheduled first, so it runs first.
    expected = sorted(
        [(10_000 + i, 0, i) for i in kept] + [(10_000 + i, 1, -i) for i in range(0, 20_000, 3)]
    )
    assert fired == [value for _, _, value in expected]
    assert kernel._cancelled == 0


def test_advance_to_moves_the_clock_only_when_nothing_else_would_run_first() -> None:
    kernel = EventKernel()
    seen: list[tuple[str, int, bool]] = []

    def work(_: object) -> None:
        # Nothing is due until 50: the clock may go to 40, not to 50 (an event is
        # due then) nor past it.
        seen.append(("40", kernel.now_ns, kernel.advance_to(40)))
        seen.append(("50", kernel.now_ns, kernel.advance_to(50)))
        seen.append(("back", kernel.now_ns, kernel.advance_to(30)))

    kernel.schedule(10, work)
    kernel.schedule(50, lambda _: seen.append(("event", kernel.now_ns, True)))
    kernel.run()
    assert seen == [("40", 10, True), ("50", 40, False), ("back", 40, False), ("event", 50, True)]


def test_advance_to_stays_within_the_running_bound() -> None:
    kernel = EventKernel()
    moved: list[bool] = []
    kernel.schedule(10, lambda _: moved.extend((kernel.advance_to(20), kernel.advance_to(21))))
    kernel.run(until_ns=20)
    assert moved == [True, False]
    assert kernel.now_ns == 20


Plan = list[tuple[str, str, int]]


def _replay_moves(
    kernel: EventKernel, rounds: list[tuple[Plan, int]], move: bool
) -> list[tuple[int, str]]:
    """Run `rounds` (each: operations, then how far to run) on `kernel`, moving
    timers later with `move_later` (`move`) or by cancelling and starting anew."""
    seen: list[tuple[int, str]] = []
    timers: dict[str, Timer] = {}

    def fire(name: str) -> None:
        seen.append((kernel.now_ns, name))

    for plan, run_for in rounds:
        for op, name, delay in plan:
            if op == "event":
                kernel.schedule(delay, fire, name)
            elif op == "start":
                if name in timers:
                    timers[name].cancel()
                timers[name] = kernel.start_timer(delay, fire, name)
            elif name in timers and not timers[name].cancelled:  # "later"
                at = timers[name].time_ns + delay
                if move:
                    kernel.move_later(timers[name], at)
                else:
                    timers[name].cancel()
                    timers[name] = kernel.start_timer(at - kernel.now_ns, fire, name)
        kernel.run(until_ns=kernel.now_ns + run_for)
    kernel.run()
    return seen


@pytest.mark.parametrize("seed", range(20))
def test_a_timer_moved_later_runs_exactly_where_a_restarted_one_would(seed: int) -> None:
    """`move_later` against cancel-and-start-again on the same random plan of plain
    events, timers and moves (times on a coarse grid, so that many fall on one
    instant): the same callbacks at the same times in the same order; the moved
    timers leave no dead entry behind."""
    rng = random.Random(seed)
    rounds = [
        (
            [
                (
                    rng.choice(["event", "start", "later", "later"]),
                    rng.choice(["a", "b", "c", "d"]),
                    10 * rng.randrange(0, 8),
                )
                for _ in range(rng.randrange(1, 6))
            ],
            10 * rng.randrange(0, 4),
        )
        for _ in range(60)
    ]
    moved = EventKernel()
    restarted = EventKernel()
    assert _replay_moves(moved, rounds, move=True) == _replay_moves(restarted, rounds, move=False)
    assert moved.events_run < restarted.events_run  # fewer heap entries popped


def test_a_timer_moves_only_later_and_only_while_pending() -> None:
    kernel = EventKernel()
    timer = kernel.start_timer(100, print)
    with pytest.raises(ValueError, match="only move later"):
        kernel.move_later(timer, 99)
    timer.cancel()
    with pytest.raises(ValueError, match="only move later"):
        kernel.move_later(timer, 200)


def _replay_bursts(
    kernel: EventKernel, rounds: list[tuple[list[list[int]], int]], together: bool
) -> list[tuple[int, str]]:
    """Run `rounds` (each: bursts of delays, then how far to run) on `kernel`, each
    burst scheduled with `schedule_all` (`together`) or one `schedule` at a time;
    every event schedules a follow-up at its own instant or later, as a delivered
    Report's answer is."""
    seen: list[tuple[int, str]] = []

    def fire(name: str) -> None:
        seen.append((kernel.now_ns, name))
        if not name.endswith("'"):
            kernel.schedule(len(seen) % 3 * 10, fire, name + "'")

    for number, (bursts, run_for) in enumerate(rounds):
        for size, delays in enumerate(bursts):
            names = [f"{number}.{size}.{i}" for i in range(len(delays))]
            if together:
                kernel.schedule_all(delays, fire, names)
            else:
                for delay, name in zip(delays, names, strict=True):
                    kernel.schedule(delay, fire, name)
        kernel.run(until_ns=kernel.now_ns + run_for)
    kernel.run()
    return seen


@pytest.mark.parametrize("seed", range(20))
def test_a_run_of_events_scheduled_together_runs_as_if_scheduled_one_by_one(
    seed: int,
) -> None:
    """`schedule_all` against a `schedule` per event on the same random plan (times
    on a coarse grid and out of order, so that many fall on one instant): the same
    callbacks at the same times in the same order, as many events run."""
    rng = random.Random(seed)
    rounds = [
        (
            [
                [10 * rng.randrange(0, 12) for _ in range(rng.randrange(0, 9))]
                for _ in range(rng.randrange(1, 4))
            ],
            10 * rng.randrange(0, 5),
        )
        for _ in range(40)
    ]
    together, one_by_one = EventKernel(), EventKernel()
    assert _replay_bursts(together, rounds, True) == _replay_bursts(one_by_one, rounds, False)
    assert together.events_run == one_by_one.events_run


def test_a_run_of_events_is_refused_a_delay_into_the_past() -> None:
    kernel = EventKernel()
    with pytest.raises(ValueError, match="into the past"):
        kernel.schedule_all([5, -1], print, [None, None])
    assert kernel.pending == 0

"""Set-up once, migrate many: grid points that share a set-up share one build of it.

Bringing a subnet up and placing its VMs (`ibmig.experiments.runner.set_up`) is most
of a large run; what a sweep varies is often only what comes after (the migrations,
their timing, the workload's peers, the faults, the duration). `setup_key` is what
determines the set-up: the scenario with everything after it cleared. Points with the
same key are built once and each point runs on from its own copy of the set-up: a
child process forked from the process that holds it (`run_forked`). The copy is
exact (the child is the builder, memory and all, from the fork on), so a point's
result and trace are byte-identical to a fresh run's; a test checks both.

Two ways to share, by where the points run:

- `map_sharing`, this machine's processes: the set-up of each key is built once in
  this process, then one child per point is forked from it, `workers` at a time.
- `ReusingJob`, any `Backend` (Dask workers, the local pool): the job keeps the last
  set-up it built in its process, keyed, and forks a child per point from it. A key's
  set-up is built at most once per worker process; points are submitted grouped by
  key so that a worker's consecutive points tend to share it. The recipe (the point)
  travels, not the set-up: a simulator of a large subnet is gigabytes of live objects
  (closures, bound methods) that would not pickle, and rebuilding it once per worker
  costs less than shipping it.

A child's result comes back pickled through a pipe; a child that dies (killed,
out of memory) is a failed point like any other.
"""

from __future__ import annotations

import gc
import os
import pickle
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Generic, TypeVar

from ibmig.experiments.heap import paused_gc
from ibmig.experiments.runner import SetUp, set_up
from ibmig.experiments.scenario import FaultsConfig, Scenario
from ibmig.experiments.sweep import Done, Raised, collect, describe_error

P = TypeVar("P")
R = TypeVar("R")


def setup_key(scenario: Scenario) -> Scenario:
    """What determines `scenario`'s set-up (topology, hosts, signalling, routing,
    seed, latencies, the guests' settings): the scenario with what `finish` alone
    reads cleared (workload peers, migrations, run duration, migration timing,
    faults but a standby SM, source). Equal keys give equal set-ups."""
    return replace(
        scenario,
        workload=replace(scenario.workload, peers=0),
        migrations=(),
        run=replace(scenario.run, duration_ms=0.0),
        migration_timing=(),
        # A standby SM is started with the set-up; the other faults come later.
        faults=FaultsConfig(standby_sm=scenario.faults.standby_sm),
        source="",
    )


@dataclass(frozen=True, slots=True)
class Staged(Generic[P, R]):
    """A job split at the set-up: `finish(set_up(point), point)` is the job's result
    for `point`, and points with equal `key(point)` may share one `set_up`. All three
    module-level functions, so that the job pickles to a worker."""

    key: Callable[[P], Hashable]
    set_up: Callable[[P], SetUp]
    finish: Callable[[SetUp, P], R]


def scenario_set_up(scenario: Scenario) -> SetUp:
    """`runner.set_up` with its own garbage-collector pause. The pause ends here;
    `_child` pauses again in each forked run (the set-up is then frozen there)."""
    with paused_gc() as heap:
        return set_up(scenario, heap)


def _child(run: Callable[[], object], write_fd: int) -> None:
    """In the forked child: `run()`, its outcome pickled to `write_fd`, then exit
    without running the parent's exit handlers."""
    status = 0
    try:
        # The set-up's objects live as long as the child: freeze them so that the
        # run's own collections (`GcPause.collect_if_due`) do not rescan them.
        gc.disable()
        gc.freeze()
        try:
            outcome: object = run()
        except Exception as exc:
            outcome = Raised(describe_error(exc))
        try:
            data = pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            data = pickle.dumps(Raised(f"result does not pickle: {describe_error(exc)}"))
        with os.fdopen(write_fd, "wb") as pipe:
            pipe.write(data)
    except BaseException:
        status = 1
    finally:
        os._exit(status)


@dataclass(slots=True)
class _Forked:
    pid: int
    read_fd: int


def _fork(run: Callable[[], object]) -> _Forked:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child leaves through os._exit)
        os.close(read_fd)
        _child(run, write_fd)
    os.close(write_fd)
    return _Forked(pid, read_fd)


def _reap(child: _Forked) -> object:
    with os.fdopen(child.read_fd, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(child.pid, 0)
    if not data:
        code = os.waitstatus_to_exitcode(status)
        how = f"killed by signal {-code}" if code < 0 else f"exited with status {code}"
        return Raised(f"the forked run {how} without a result")
    return pickle.loads(data)


def run_forked(run: Callable[[], R]) -> R | Raised:
    """`run()` in a child forked from this process, its result pickled back: the
    child works on a copy of everything this process holds, which stays untouched."""
    return _reap(_fork(run))  # type: ignore[return-value]


def keys_of(staged: Staged[P, R], points: Sequence[P]) -> list[Hashable]:
    """Each point's key; a point whose key cannot be made gets one of its own, and
    fails in its set-up (which meets the same error) as it would in a fresh run."""
    keys: list[Hashable] = []
    for index, point in enumerate(points):
        try:
            keys.append(staged.key(point))
        except Exception:
            keys.append(("no key", index))
    return keys


def group_by_key(keys: Sequence[Hashable]) -> list[list[int]]:
    """The indices of equal keys, groups in the order their first member appears."""
    groups: dict[Hashable, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def map_sharing(
    staged: Staged[P, R], points: Sequence[P], *, workers: int = 1, done: Done | None = None
) -> list[R]:
    """`[job(p) for p in points]` (the job `staged` splits), each key's set-up built
    once in this process and each point run in a child forked from it, at most
    `workers` children at a time. Failures as `Backend.map`'s."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    outcomes: list[object] = [None] * len(points)
    finished = 0

    def record(index: int, outcome: object) -> None:
        nonlocal finished
        outcomes[index] = outcome
        finished += 1
        if done is not None:
            done(finished)

    groups = deque(group_by_key(keys_of(staged, points)))
    while groups:
        group = groups.popleft()
        try:
            state = staged.set_up(points[group[0]])
        except Exception as exc:
            # Each other point of the group then tries its own set-up, so that its
            # error names it (its source), as in a fresh run.
            record(group[0], Raised(describe_error(exc)))
            groups.extendleft([index] for index in reversed(group[1:]))
            continue
        running: deque[tuple[int, _Forked]] = deque()
        for index in group:
            if len(running) == workers:
                first, child = running.popleft()
                record(first, _reap(child))
            running.append((index, _fork(partial(staged.finish, state, points[index]))))
        while running:
            first, child = running.popleft()
            record(first, _reap(child))
        del state
        gc.collect()
    return collect(outcomes)  # type: ignore[arg-type]


_held: dict[str, tuple[Hashable, SetUp]] = {}
"""`ReusingJob`'s set-up in this process: the last one built, with its key."""


@dataclass(frozen=True, slots=True)
class ReusingJob(Generic[P, R]):
    """The job `staged` splits, for any backend: the last set-up built in this process
    is kept with its key, and a point with that key runs in a child forked from it.
    Pickles when `staged` does."""

    staged: Staged[P, R]

    def __call__(self, point: P) -> R | Raised:
        """The point's result; a failed forked run comes back as the `Raised` its
        child made (where the job raised), which backends count as a failed point."""
        key = self.staged.key(point)
        held = _held.get("set-up")
        if held is None or held[0] != key:
            _held.clear()  # one set-up at a time: they are large
            gc.collect()
            held = (key, self.staged.set_up(point))
            _held["set-up"] = held
        state = held[1]
        return run_forked(partial(self.staged.finish, state, point))


def sorted_by_key(keys: Sequence[Hashable]) -> list[int]:
    """Point indices with equal keys next to each other (groups in first-appearance
    order): the order to submit points in for `ReusingJob`."""
    return [index for group in group_by_key(keys) for index in group]

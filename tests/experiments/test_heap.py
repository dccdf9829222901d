"""The automatic-GC pause hands the collector back exactly as the caller had it."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import pytest

from ibmig.experiments.heap import GC_EVERY_EVENTS, paused_gc


@pytest.fixture(autouse=True)
def _restore_gc() -> Iterator[None]:
    enabled, thresholds = gc.isenabled(), gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    (gc.enable if enabled else gc.disable)()


@pytest.mark.parametrize("enabled", [True, False])
@pytest.mark.parametrize("fail", [False, True])
def test_enabled_thresholds_and_freezing_are_restored(enabled: bool, fail: bool) -> None:
    (gc.enable if enabled else gc.disable)()
    gc.set_threshold(1234, 7, 3)
    expected: AbstractContextManager[Any] = pytest.raises(RuntimeError) if fail else nullcontext()
    with expected, paused_gc() as heap:
        assert not gc.isenabled()
        gc.set_threshold(1, 1, 1)  # whatever happens inside
        heap.settle()
        assert gc.get_freeze_count() > 0
        if fail:
            raise RuntimeError("a run stopped half-way")
    assert gc.isenabled() is enabled
    assert gc.get_threshold() == (1234, 7, 3)
    assert gc.get_freeze_count() == 0


def test_a_callers_frozen_objects_stay_frozen_and_nothing_more_is() -> None:
    gc.freeze()
    frozen = gc.get_freeze_count()
    kept: list[list[int]] = [[] for _ in range(1000)]  # new objects the pause must not freeze
    with paused_gc() as heap:
        heap.settle()
        assert gc.get_freeze_count() == frozen
    assert gc.get_freeze_count() == frozen
    assert len(kept) == 1000


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_collect_if_due_frees_new_cycles_scanning_only_the_young_generations() -> None:
    generations: list[int] = []

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            generations.append(info["generation"])

    with paused_gc() as heap:
        a, b = _Node(), _Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        del a, b
        heap.collect_if_due(1, GC_EVERY_EVENTS - 1)  # no multiple crossed: nothing
        assert gone() is not None
        gc.callbacks.append(seen)
        try:
            heap.collect_if_due(GC_EVERY_EVENTS - 1, GC_EVERY_EVENTS)
        finally:
            gc.callbacks.remove(seen)
        assert gone() is None  # the run's own cycle is collected
        assert generations == [1]  # without rescanning the old generation


def test_settle_freezes_without_a_collection() -> None:
    """A full collection would walk the whole set-up for garbage it does not make."""
    started: list[int] = []

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append(info["generation"])

    with paused_gc() as heap:
        kept: list[list[int]] = [[] for _ in range(1000)]  # the set-up's objects
        gc.callbacks.append(seen)
        try:
            heap.settle()
        finally:
            gc.callbacks.remove(seen)
        assert started == []
        assert gc.get_freeze_count() >= len(kept)
    assert gc.get_freeze_count() == 0

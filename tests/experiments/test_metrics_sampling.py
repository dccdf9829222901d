"""The collector's SA queue samples: per Report done it reads the queue's peak
instead of taking a sample; each event's largest queue and SA busy time must be
those a sample at every Report done gives, whatever the order of alias moves,
Reports done, queue rises and falls, and SA servers (a standby taking over)."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import pytest

from ibmig.core.sa import PathChangeDetected, ReportAcked, ReportGaveUp, ReportSent, Subscription
from ibmig.experiments.metrics import Collector
from ibmig.sim.subnet import EngineServer
from ibmig.wire.sa import InformInfo

SUBSCRIBER = Subscription(bytes(16), 0, 1, 1, None, InformInfo())


class _Sim:
    """What `Collector` reads of the simulator, driven by hand."""

    def __init__(self) -> None:
        self.sm_engine = object()
        self.engines = [self.sm_engine]  # kept: an id is never reused for another
        self.servers: dict[int, EngineServer] = {}
        self.kernel = SimpleNamespace(now_ns=0)
        self.sa = SimpleNamespace(db=SimpleNamespace(lid_of_guid=lambda guid: None))
        self.sa.subscriptions = ()
        self.mad_counts: dict[Any, int] = {}

    def add_event_hook(self, hook: Any, *types: type) -> None:
        pass

    def server(self) -> EngineServer:
        return self.servers.setdefault(id(self.sm_engine), EngineServer())


class SampleEveryDone(Collector):
    """The reference: a sample of the SA's queue at every Report done, as if each
    were on a server not sampled yet."""

    def on_report_done(self, node: int, event: Any) -> None:
        self._sampled_server = None
        super().on_report_done(node, event)


def _drive(collector_class: type[Collector], seed: int) -> list[tuple[int, int]]:
    """A random run of alias moves, Reports and queue changes; (largest queue, SA
    busy time) of each event."""
    rng = random.Random(seed)
    sim = _Sim()
    collector = collector_class(sim)  # type: ignore[arg-type]
    outstanding: list[int] = []
    next_tid = 0
    now = 0
    for _ in range(300):
        now += rng.choice((0, 1, 5, 100))
        sim.kernel.now_ns = now
        step = rng.random()
        if step < 0.05 and sim.servers:
            sim.sm_engine = object()  # a standby takes over: a new server
            sim.engines.append(sim.sm_engine)
        elif step < 0.12:
            collector.on_event(0, PathChangeDetected(len(collector.detections), 1, 2, 3, 4, now))
            for _ in range(rng.randint(1, 6)):
                next_tid += 1
                outstanding.append(next_tid)
                collector.on_report_sent(0, ReportSent(SUBSCRIBER, 69, next_tid, now, 0))
        elif step < 0.5:
            server = sim.server()
            server.inbox.append((0, None))
            server.note_queue(now)
            server.busy_ns += 7
            server.busy_until_ns = now + rng.randint(0, 20)
        elif step < 0.7:
            server = sim.server()
            if server.inbox:
                server.inbox.popleft()
        elif outstanding:
            tid = outstanding.pop(rng.randrange(len(outstanding)))
            done = ReportAcked if rng.random() < 0.9 else ReportGaveUp
            collector.on_report_done(0, done(SUBSCRIBER, 69, tid, now))
    samples = collector.queue_samples
    return [(d.max_queue(samples), d.sa_done_end_ns) for d in collector.detections]


@pytest.mark.parametrize("seed", range(40))
def test_reading_the_peak_per_report_done_equals_a_sample_at_each(seed: int) -> None:
    folded = _drive(Collector, seed)
    assert folded == _drive(SampleEveryDone, seed)
    assert folded  # some events


def test_the_reference_tells_a_window_cut_short() -> None:
    """The comparison can fail: a window that ignores what the queue did between the
    alias move and the Report done is told apart."""
    sim = _Sim()
    collector = Collector(sim)  # type: ignore[arg-type]
    server = sim.server()
    collector.on_event(0, PathChangeDetected(0, 1, 2, 3, 4, 0))
    collector.on_report_sent(0, ReportSent(SUBSCRIBER, 69, 1, 0, 0))
    for _ in range(3):
        server.inbox.append((0, None))
        server.note_queue(5)
    server.inbox.clear()
    sim.kernel.now_ns = 10
    collector.on_report_done(0, ReportAcked(SUBSCRIBER, 69, 1, 10))
    [detection] = collector.detections
    assert detection.max_queue(collector.queue_samples) == 3

"""Per-migration-event metrics with contention on: the notification and recovery
makespans, the SA's busy time and queue, the Reports and their resends; and the
same scenario and seed giving a byte-identical trace with queueing in it."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from ibmig.experiments import runner
from ibmig.experiments.metrics import RunResult
from ibmig.experiments.runner import run_scenario
from ibmig.experiments.scenario import scenario_from_dict
from ibmig.sim.latency import LatencyModel
from ibmig.sim.subnet import TraceWriter
from tests.experiments.test_metrics_sampling import SampleEveryDone

SA_NS = LatencyModel().sa_ns
N, M = 6, 2


def _run(strategy: str, trace: TraceWriter | None = None, **latency: Any) -> RunResult:
    data: dict[str, Any] = {
        "topology": {"file": "ft2-36"},
        "hosts": {"n": N, "m": M, "vfs": M + 1},
        "workload": {"peers": 3, "interval_us": 5000, "path_cache": "cached"},
        "signalling": {"assignment": "static", "strategy": strategy},
        "migrations": [{"vm": 0, "at_ms": 30}],
        "run": {"duration_ms": 6000, "seed": 3},
        "timing": {"migration": {"memory_bytes": 64 * 1024 * 1024}},
        "latency": latency,
    }
    return run_scenario(scenario_from_dict(json.loads(json.dumps(data)), "lab"), trace=trace)


def test_per_host_event_the_sa_sends_n_reports_back_to_back() -> None:
    result = _run("per-host")
    (event,) = result.event_metrics
    assert event.vm == result.migrations[0].vm
    assert event.reports == N and event.reports_resent == 0
    assert event.alias_moved_ns is not None
    # The n Reports leave one service time apart, so the last ReportResp cannot be
    # handled before n service times; in the window the SA emits the n Reports and
    # handles n - 1 ReportResps at least, and it cannot be busier than the window.
    assert event.notification_makespan_ns is not None
    assert event.notification_makespan_ns >= N * SA_NS
    assert (2 * N - 1) * SA_NS <= event.sa_busy_ns <= event.notification_makespan_ns
    assert event.sa_max_queue >= N
    # Every peer came back: the recovery makespan is the last one's first delivery.
    assert event.peers == 3
    starts = result.migrations[0].start_ns
    firsts = [min(t for t in c.deliveries_ns if t >= starts) for c in result.connections]
    assert event.recovery_makespan_ns == max(firsts) - event.alias_moved_ns
    # Each peer flushes its stale path and asks the SA for the new one once.
    assert event.path_records == event.peers
    assert event.cm_mads > 0  # the peers reconnect
    # One event: the run's aggregates are its figures.
    assert result.notification_makespan_ns == event.notification_makespan_ns
    assert result.recovery_makespan_ns == event.recovery_makespan_ns
    assert result.sa_busy_ns == event.sa_busy_ns
    assert result.sa_max_queue == event.sa_max_queue
    assert result.reports_resent == 0


def test_per_vm_event_sends_n_times_m_reports_and_takes_longer() -> None:
    per_vm = _run("per-vm")
    per_host = _run("per-host")
    (event,) = per_vm.event_metrics
    assert event.reports == N * M
    # The migrated VM's own subscription still names its old LID: that Report is
    # never answered and is resent per the SA's timeout.
    assert event.reports_resent >= 1
    assert per_vm.reports_resent == event.reports_resent == per_vm.path_change_resends
    assert event.sa_max_queue >= N * M
    assert event.notification_makespan_ns is not None
    assert event.notification_makespan_ns >= N * M * SA_NS
    assert per_host.notification_makespan_ns is not None
    assert event.notification_makespan_ns > per_host.notification_makespan_ns


def test_without_contention_nothing_queues_and_nothing_is_charged() -> None:
    result = _run("per-host", contention=False)
    (event,) = result.event_metrics
    assert event.reports == N
    assert event.sa_busy_ns == 0 and event.sa_max_queue == 0
    # Every Report leaves sa_ns after the step that detected the move.
    assert event.notification_makespan_ns is not None
    assert event.notification_makespan_ns < 2 * SA_NS + 100_000


def test_strategy_none_has_no_notification_and_no_event_figures() -> None:
    result = _run("none")
    (event,) = result.event_metrics
    assert event.reports == 0 and event.notification_makespan_ns is None
    assert result.notification_makespan_ns is None
    # Cached paths and no signal: the peers never come back.
    assert event.recovery_makespan_ns is None and result.recovery_makespan_ns is None
    assert event.alias_moved_ns == result.migrations[0].done_ns


def _traced() -> tuple[str, RunResult]:
    stream = io.StringIO()
    result = _run("per-vm", TraceWriter(stream))
    return stream.getvalue(), result


def test_same_scenario_and_seed_give_a_byte_identical_trace_with_queueing() -> None:
    first, result = _traced()
    assert result.sa_max_queue >= N * M  # the SA did queue
    assert first.count("\n") > 500
    assert first == _traced()[0]


def test_reading_the_queue_peak_per_report_done_equals_a_sample_at_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Per ReportResp the collector reads the SA's queue peak instead of sampling it:
    in a whole run, each event's largest queue and busy time are those a sample at
    every Report done gives, with events whose windows overlap, after a standby SM
    has taken over (another server). Every order of things, servers changing while
    Reports are out included, is tried in `test_metrics_sampling`."""
    data: dict[str, Any] = {
        "topology": {"file": "ft2-36"},
        "hosts": {"n": N, "m": M, "vfs": M + 3},
        "workload": {"peers": 3, "interval_us": 5000, "path_cache": "cached"},
        "signalling": {"assignment": "static", "strategy": "per-vm"},
        "migrations": [
            {"vm": vm, "at_ms": at} for vm, at in ((0, 30), (2, 30.5), (4, 31), (1, 999), (3, 1000))
        ],
        "run": {"duration_ms": 8000, "seed": 3},
        "timing": {"migration": {"memory_bytes": 1 << 20}},
        "faults": {
            "standby_sm": {"polling_timeout_ms": 50, "polling_retry_number": 2},
            "sm_fail": [{"at_ms": 1000}],
        },
    }
    scenario = scenario_from_dict(json.loads(json.dumps(data)), "windows")
    folded = run_scenario(scenario)
    monkeypatch.setattr(runner, "Collector", SampleEveryDone)
    sampled = run_scenario(scenario)
    assert [(e.sa_max_queue, e.sa_busy_ns) for e in folded.event_metrics] == [
        (e.sa_max_queue, e.sa_busy_ns) for e in sampled.event_metrics
    ]
    assert len(folded.event_metrics) == 5
    assert all(e.reports > 0 and e.sa_max_queue > 0 for e in folded.event_metrics)

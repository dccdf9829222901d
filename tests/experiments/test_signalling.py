"""The mission, end to end on the simulator: a VM with an SR-IOV VF migrates while
peers keep RC connections to it busy; what happens to those connections under each
address assignment, signalling strategy and path-cache policy, and what it costs in
management messages."""

from __future__ import annotations

import gc
import io
import json
from pathlib import Path
from typing import Any

import pytest

from ibmig.cli import main
from ibmig.errors import ConfigError
from ibmig.experiments import heap
from ibmig.experiments.metrics import RunResult, summarize_downtime
from ibmig.experiments.runner import run_scenario
from ibmig.experiments.scenario import scenario_from_dict
from ibmig.sim.subnet import TraceWriter
from ibmig.wire.capture import CaptureWriter, read_capture
from ibmig.wire.notice import Notice
from ibmig.wire.packet import Packet
from ibmig.wire.sa import SaMad
from tests.wire.tshark_util import tshark_fields

# A small lab: ft2-36, 4 hypervisors x 2 VMs, 3 peers on other hosts. The VM is small
# so that a migration lasts about 3 s of simulated time.
LAB: dict[str, Any] = {
    "topology": {"file": "ft2-36"},
    "hosts": {"n": 4, "m": 2, "vfs": 3},
    "workload": {"peers": 3, "interval_us": 5000},
    "migrations": [{"vm": 0, "at_ms": 30}],
    "run": {"duration_ms": 6000, "seed": 3},
    "timing": {"migration": {"memory_bytes": 64 * 1024 * 1024}},
}


def lab(assignment: str, strategy: str, path_cache: str, **extra: Any) -> RunResult:
    data = json.loads(json.dumps(LAB))
    data["signalling"] = {"assignment": assignment, "strategy": strategy}
    data["workload"]["path_cache"] = path_cache
    data.update(extra)
    return run_scenario(scenario_from_dict(data, "lab"))


def test_static_none_cached_breaks_every_peer_connection_for_good() -> None:
    result = lab("static", "none", "cached")
    assert len(result.connections) == 3
    assert result.path_change_events == 0 and result.reports == 0
    migration = result.migrations[0]
    for conn in result.connections:
        assert conn.deliveries_ns, "the connection worked before the migration"
        assert max(conn.deliveries_ns) < migration.start_ns  # nothing after, ever
        assert conn.downtime_ns is None
    # The stale LID still leads to the old port, where no VF holds the GID any more.
    assert result.drops["no_vf"] > 0


def test_static_none_query_recovers_only_after_retry_exhaustion_and_a_fresh_query() -> None:
    """A VF that goes silently (no DREQ): each peer notices only when its RC retries
    run out -- QP timeout 19 (derived from OpenSM's PacketLifeTime 18 as ib_cm does:
    2.147 s) x 8 sends = 17.2 s after its first unanswered SEND -- then asks the SA
    again, which by then knows the new LID."""
    result = lab(
        "static", "none", "query",
        orchestration={"dreq_on_detach": False},
        run={"duration_ms": 25000, "seed": 3},
    )  # fmt: skip
    row = summarize_downtime(result)
    assert row["connected_after"] == 3
    migration = result.migrations[0]
    assert migration.done_ns is not None
    qp_timeout_ns = 4096 << 19
    for conn in result.connections:
        assert conn.reconnect_ns is not None and conn.reconnect_ns > 0
        assert conn.downtime_ns is not None
        assert 8 * qp_timeout_ns <= conn.downtime_ns <= 8 * qp_timeout_ns + 20_000_000
    # No notice at all: the peers found the new LID by asking the SA again.
    assert result.path_change_events == 0 and result.reports == 0
    assert row["path_records"] >= 3


def test_static_none_query_with_dreq_goes_back_to_the_old_lid() -> None:
    """The default: the VF's going sends a DREQ (Linux cm_destroy_id), so each peer
    learns at once -- and asks the SA at once, while the source still holds the vGUID
    (it is released when the detach ends). Its REQ goes to the old port and is
    dropped there; rdma_cm resends it every 2 x 1.024 s + 4.096 s = 6.144 s (15
    times) to the same LID, so within the run nobody comes back."""
    result = lab("static", "none", "query")
    row = summarize_downtime(result)
    assert row["connected_after"] == 0
    migration = result.migrations[0]
    assert migration.done_ns is not None
    assert row["path_records"] == 3  # one each, answered with the old LID
    assert result.drops["no_vf"] > 0


@pytest.mark.parametrize("strategy", ["per-vm", "per-host"])
@pytest.mark.parametrize("path_cache", ["cached", "query"])
def test_signalling_restores_every_connection(strategy: str, path_cache: str) -> None:
    result = lab("static", strategy, path_cache)
    row = summarize_downtime(result)
    assert row["connected_after"] == row["peers"] == 3
    assert result.path_change_events == 1  # exactly one event for one move
    migration = result.migrations[0]
    assert migration.rc_downtime_ns is not None
    interval_ns = 5_000_000
    for conn in result.connections:
        assert conn.downtime_ns is not None and conn.reconnect_ns is not None
        last_before = max(t for t in conn.deliveries_ns if t < migration.start_ns)
        # The downtime is what the migration itself costs plus one reconnection: the
        # peer's last message went out at most one interval before the migration
        # began, and after the VM's vport came up the peer needed one PathRecord
        # query and one CM REQ/REP/RTU (well under 2 ms here) before its next
        # message (at most one interval later).
        assert migration.start_ns - last_before <= interval_ns
        assert conn.reconnect_ns <= 2_000_000 + interval_ns
        assert conn.downtime_ns == (
            migration.start_ns - last_before + migration.rc_downtime_ns + conn.reconnect_ns
        )
        assert conn.downtime_ns <= migration.rc_downtime_ns + 2 * interval_ns + 2_000_000


def test_per_host_forwards_over_the_intra_host_channel() -> None:
    result = lab("static", "per-host", "cached")
    # One Report per hypervisor; dom0 forwards to the local VMs holding a path.
    assert result.path_change_reports == 4
    assert result.intra_host["dom0_to_guest"] == 3  # each of the 3 peers, once
    assert result.intra_host["guest_to_dom0"] >= 3  # their path registrations


def test_dynamic_assignment_recovers_by_address_and_path_resolution() -> None:
    result = lab("dynamic", "none", "cached")
    row = summarize_downtime(result)
    assert row["connected_after"] == 3
    # The VM got a new GID: peers learned it from the gratuitous ARP, then resolved a
    # path to it and connected again; the cost is in PathRecord and CM MADs.
    assert result.path_change_events == 0
    assert row["path_records"] >= 3 and row["cm_mads"] >= 9


@pytest.mark.parametrize(("n", "m"), [(2, 1), (2, 3), (5, 2), (6, 4)])
def test_reports_per_event_are_n_times_m_per_vm_and_n_per_host(n: int, m: int) -> None:
    def sweep(strategy: str) -> RunResult:
        data = {
            "topology": {"file": "ft2-36"},
            "hosts": {"n": n, "m": m, "vfs": m + 1},
            "workload": {"peers": 0},
            "signalling": {"assignment": "static", "strategy": strategy},
            "migrations": [{"vm": 0, "at_ms": 1}],
            "run": {"duration_ms": 4000},
            "timing": {"migration": {"memory_bytes": 16 * 1024 * 1024}},
        }
        return run_scenario(scenario_from_dict(data, "sweep"), traffic=False)

    per_vm = sweep("per-vm")
    per_host = sweep("per-host")
    # per-vm: every VM's subscription matches, the migrated VM's own (still naming its
    # old LID) included: n*m first sends; that one is lost and resent until the VM,
    # back up, subscribes again.
    assert per_vm.path_change_reports == n * m
    assert per_vm.path_change_events == per_host.path_change_events == 1
    # per-host: one Report per hypervisor, source and destination included.
    assert per_host.path_change_reports == n
    assert per_host.path_change_resends == 0
    # Re-subscriptions are counted apart: the migrated VM subscribes again.
    assert per_vm.count(0x03, 0x02, 0x0003) == 1
    assert per_host.count(0x03, 0x02, 0x0003) == 0


def _traced(seed: int) -> tuple[str, bytes]:
    trace = io.StringIO()
    capture = io.BytesIO()
    data = json.loads(json.dumps(LAB))
    data["signalling"] = {"assignment": "static", "strategy": "per-host"}
    data["run"]["seed"] = seed
    data["run"]["duration_ms"] = 4000
    run_scenario(
        scenario_from_dict(data, "lab"), trace=TraceWriter(trace), capture=CaptureWriter(capture)
    )
    return trace.getvalue(), capture.getvalue()


def test_same_scenario_and_seed_give_a_byte_identical_trace() -> None:
    first = _traced(7)
    assert first[0].count("\n") > 500
    assert first == _traced(7)


def test_the_trace_holds_every_phase_of_the_migration() -> None:
    """The toolstack's PhaseEntered events reach the trace (they once piled up
    inside the migration, unread), in order, at the times the phases began."""
    trace, _ = _traced(7)
    phases = [r for r in map(json.loads, trace.splitlines()) if r["event"] == "PhaseEntered"]
    assert {(r["node"], r["vm"]) for r in phases} == {("toolstack", "vm0")}
    names = [r["phase"] for r in phases]
    rounds = names.count("pre_copy")
    assert rounds >= 1
    assert names == [
        "detaching_vf",
        *["pre_copy"] * rounds,
        "stop_and_copy",
        "resuming",
        "attaching_vf",
        "reinit_driver",
        "setting_alias",
        "done",
    ]
    assert [r["round"] for r in phases if r["phase"] == "pre_copy"] == list(range(rounds))
    assert all(r["t_ns"] == r["time_ns"] for r in phases)
    times = [r["t_ns"] for r in phases]
    assert times == sorted(times) and times[0] >= 30_000_000


@pytest.mark.interop
def test_tshark_decodes_a_migration_capture_with_the_path_change_notices(
    tshark: str, tmp_path: Path
) -> None:
    _, capture = _traced(7)
    path = tmp_path / "migration.pcap"
    path.write_bytes(capture)
    packets = [Packet.unpack(p.data) for p in read_capture(path)]
    assert all(p.icrc_ok and p.vcrc_ok for p in packets)
    reports = []
    for index, packet in enumerate(packets):
        payload = packet.payload
        if packet.bth.dest_qp == 1 and len(payload) == 256 and payload[1] == 3 and payload[3] == 6:
            notice = SaMad.unpack(payload).record()
            if isinstance(notice, Notice) and notice.trap_number == 69:
                reports.append(index)
    assert len(reports) == 4  # one per hypervisor
    raw = [p.data for p in read_capture(path)]
    fields = tshark_fields(
        tmp_path,
        [raw[i] for i in reports],
        ["infiniband.notice.trapnumberdeviceid", "infiniband.mad.method", "infiniband.lrh.dlid"],
    )
    for index, decoded in zip(reports, fields, strict=True):
        assert int(decoded["infiniband.notice.trapnumberdeviceid"][0], 0) == 69
        assert int(decoded["infiniband.mad.method"][0], 0) == 0x06
        assert int(decoded["infiniband.lrh.dlid"][0], 0) == packets[index].lrh.dlid


def test_a_bad_scenario_is_one_line_and_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = {
        "unknown.toml": "[hosts]\nn = 4\nvms = 3\n",
        "type.toml": "[hosts]\nn = 'four'\n",
        "value.toml": "[signalling]\nstrategy = 'broadcast'\n",
        "syntax.toml": "[hosts\n",
    }
    expected = {
        "unknown.toml": "hosts.vms: unknown key",
        "type.toml": "hosts.n: must be an integer",
        "value.toml": "signalling.strategy: must be one of",
        "syntax.toml": "not valid TOML",
    }
    for name, text in cases.items():
        path = tmp_path / name
        path.write_text(text)
        assert main(["run", str(path)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        assert str(path) in err[0] and expected[name] in err[0]


@pytest.mark.parametrize("enabled", [True, False])
def test_a_run_hands_the_garbage_collector_back_as_it_found_it(
    enabled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The runner pauses automatic collection and freezes the set-up's objects; a
    # bad scenario stopping the run half-way must not leave either behind.
    monkeypatch.setattr(heap, "GC_EVERY_EVENTS", 500)  # collect during the run too
    collections: list[tuple[object, ...]] = []

    def collect(*args: object) -> int:
        collections.append(args)
        return 0

    monkeypatch.setattr(gc, "collect", collect)
    (gc.enable if enabled else gc.disable)()
    try:
        result = lab("static", "per-host", "cached")
        assert result.events > 4 * 500
        # The set-up is frozen without a collection; the run's young garbage is
        # collected every 500 events from then on (at the end of the chunks the
        # runner runs between checks, up to 5,000 events long).
        assert collections and all(args == (1,) for args in collections)
        assert gc.isenabled() is enabled
        assert gc.get_freeze_count() == 0
        data = json.loads(json.dumps(LAB))
        data["hosts"]["n"] = 99  # more hypervisors than the tree has CAs
        with pytest.raises(ConfigError):
            run_scenario(scenario_from_dict(data, "lab"))
        assert gc.isenabled() is enabled
        assert gc.get_freeze_count() == 0
    finally:
        gc.enable()

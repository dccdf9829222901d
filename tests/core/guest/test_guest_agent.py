"""The guest agent under migration: the workload, stale paths under both cache
policies, path-change events (dom0 forward and the per-VM Report), intra-host
registrations, detach/resume, and determinism."""

from __future__ import annotations

import itertools
from dataclasses import replace
from ipaddress import IPv4Address

from ibmig.core.engine import QP1
from ibmig.core.guest import (
    Attached,
    ConnectFailed,
    ConnectionBroken,
    ConnectionUp,
    Detached,
    ForwardPathChange,
    MessageDelivered,
    PathChangeReceived,
    PathFlushed,
    PathRegistered,
    PathResolved,
    Reconnected,
    ReportReceived,
    RevalidatePaths,
    StreamState,
    SubscriptionConfirmed,
    SubscriptionFailed,
)
from ibmig.wire.cm import CmMad, Dreq
from ibmig.wire.mad import Method
from ibmig.wire.notice import (
    PATH_CHANGE_TRAP,
    Notice,
    PathValues,
    gid_service_notice,
    with_path_values,
)
from ibmig.wire.sa import InformInfo, SaAttr, SaMad, report_response
from tests.core.guest.guest_util import FAST, SA_LID, Wire, gid
from tests.core.sa_fakes import move_notice, report

S_GUID, S_LID, S_IP = 0x100, 10, "10.0.0.1"
C_GUID, C_LID, C_IP = 0x200, 20, "10.0.0.2"
D_GUID, D_LID, D_IP = 0x300, 40, "10.0.0.3"
NEW_LID = 30


def two(config: object = FAST, *, subscribe: bool = False, seed: int = 0) -> Wire:
    wire = Wire()
    wire.add("s", S_GUID, S_LID, ip=S_IP, config=config, seed=seed)  # type: ignore[arg-type]
    wire.add(
        "c", C_GUID, C_LID, ip=C_IP, peers=[(S_IP, S_GUID)], config=config,  # type: ignore[arg-type]
        subscribe=subscribe, seed=seed,
    )  # fmt: skip
    return wire


def delivered(wire: Wire, since_ns: int = 0) -> list[MessageDelivered]:
    return [e for e in wire.events_of(MessageDelivered) if e.time_ns >= since_ns]


def test_messages_are_delivered_in_order() -> None:
    wire = two()
    wire.run_for(1_000_000)
    events = delivered(wire)
    assert len(events) >= 95
    assert [e.seq for e in events] == list(range(len(events)))
    assert {(e.server_gid, e.client_gid) for e in events} == {(gid(S_GUID), gid(C_GUID))}
    gaps = {b.time_ns - a.time_ns for a, b in itertools.pairwise(events)}
    assert gaps == {FAST.message_interval_ns}
    c, s = wire.guests["c"], wire.guests["s"]
    assert s.delivered[gid(C_GUID)] == len(events)
    assert c.sent["data"] - len(events) <= 1  # at most one still in flight
    assert s.sent["ack"] == len(events)
    assert c.sent["data_retransmit"] == 0
    # Every data packet is an RC SEND from the client's port LID and GID.
    data = [d for d in wire.sent_by("c") if d.opcode == 0x04]
    assert {(d.slid, d.dlid, d.sgid, d.dgid) for d in data} == {
        (C_LID, S_LID, gid(C_GUID), gid(S_GUID))
    }
    assert {len(d.payload) for d in data} == {FAST.message_bytes}
    acks = [d for d in wire.sent_by("s") if d.opcode == 0x11]
    assert {(d.slid, d.dlid, d.sgid, d.dgid, len(d.payload)) for d in acks} == {
        (S_LID, C_LID, gid(S_GUID), gid(C_GUID), 4)
    }


def test_cached_policy_stays_broken_after_a_silent_migration() -> None:
    wire = two()
    wire.run_for(100_000)
    moved_at = wire.now
    wire.migrate("s", NEW_LID)
    wire.run_for(80_000_000)
    assert not delivered(wire, moved_at + 10_000)
    broken = wire.events_of(ConnectionBroken, "c")
    assert [e.reason for e in broken] == ["retry_exceeded"]
    # 4 sends of each SEND (retry_count 3), 1.05 ms apart, then the QP gave up.
    assert broken[0].time_ns - moved_at < 5_000_000
    failures = wire.events_of(ConnectFailed, "c")
    assert len(failures) >= 3 and {f.reason for f in failures} == {"cm_timeout"}
    assert {e.via for e in wire.events_of(PathResolved, "c")[1:]} == {"cache"}
    record = wire.guests["c"].paths.lookup(gid(S_GUID))
    assert record is not None and record.dlid == S_LID  # the stale entry is still there
    assert wire.drops["no_vf"] > 0
    assert not wire.events_of(Reconnected)


def test_query_policy_recovers_after_retry_exhaustion() -> None:
    wire = two(replace(FAST, path_cache="query"))
    wire.run_for(100_000)
    moved_at = wire.now
    wire.migrate("s", NEW_LID)
    wire.run_for(20_000_000)
    broken = wire.events_of(ConnectionBroken, "c")[0]
    assert broken.reason == "retry_exceeded"
    reconnected = wire.events_of(Reconnected)
    assert len(reconnected) == 1
    assert reconnected[0].down_ns < 100_000  # an SA query and a REQ after the error
    up = wire.events_of(ConnectionUp, "c")[-1]
    assert up.peer_lid == NEW_LID
    after = delivered(wire, moved_at + 10_000)
    assert after
    seqs = [e.seq for e in delivered(wire)]
    assert seqs == sorted(seqs)  # in order, with a gap for the messages lost
    assert seqs[-1] + 1 > len(seqs)


def test_path_change_from_dom0_reconnects_promptly() -> None:
    wire = two()
    wire.run_for(100_000)
    wire.migrate("s", NEW_LID)
    c = wire.guests["c"]
    c.receive_intra_host(ForwardPathChange("c", gid(S_GUID), NEW_LID), wire.now)
    wire.pump("c")
    changed_at = wire.now
    wire.run_for(1_000_000)
    assert wire.events_of(PathChangeReceived) == [
        PathChangeReceived(changed_at, gid(S_GUID), NEW_LID, "dom0")
    ]
    assert wire.events_of(PathFlushed) == [PathFlushed(changed_at, gid(S_GUID))]
    assert [e.reason for e in wire.events_of(ConnectionBroken, "c")] == ["path_changed"]
    resolved = wire.events_of(PathResolved, "c")[-1]
    assert (resolved.via, resolved.lid) == ("sa", NEW_LID)
    reconnected = wire.events_of(Reconnected)
    assert len(reconnected) == 1 and reconnected[0].time_ns - changed_at == 4_000
    assert c.paths.lookup(gid(S_GUID)).dlid == NEW_LID  # type: ignore[union-attr]
    assert delivered(wire, changed_at + 4_000)
    assert c.sent["cm_dreq"] == 1  # the old connection was released (into the void)


def test_path_change_naming_the_current_lid_changes_nothing() -> None:
    wire = two()
    wire.run_for(100_000)
    c = wire.guests["c"]
    c.path_changed(gid(S_GUID), S_LID, wire.now)
    wire.pump("c")
    wire.run_for(100_000)
    assert not wire.events_of(PathFlushed)
    assert not wire.events_of(ConnectionBroken)
    assert c.streams[IPv4Address(S_IP)].state is StreamState.CONNECTED


def test_per_vm_subscription_and_report() -> None:
    wire = two(subscribe=True)
    wire.run_for(100_000)
    c = wire.guests["c"]
    sets = [(t, m, d) for t, m, d in wire.sa.requests if m.attribute_id == SaAttr.INFORM_INFO]
    assert len(sets) == 1
    _, mad, datagram = sets[0]
    assert mad.method == Method.SET
    info = InformInfo.unpack(mad.data)
    assert (info.subscribe, info.is_generic, info.trap_number) == (1, 1, PATH_CHANGE_TRAP)
    assert info.gid == bytes(16) and info.lid_range_begin == 0xFFFF
    assert (datagram.slid, datagram.sgid, datagram.sqp) == (C_LID, gid(C_GUID), QP1)
    assert wire.events_of(SubscriptionConfirmed) == [
        SubscriptionConfirmed(2_000, gid(C_GUID), C_LID)
    ]
    assert wire.sa.subscribers == [(C_LID, QP1, gid(C_GUID))]
    # The server migrates; the SA reports the path change to the subscriber.
    wire.migrate("s", NEW_LID)
    reports = wire.sa.reports(gid(S_GUID), NEW_LID, S_LID)
    wire.inject(reports)
    wire.run_for(1_000_000)
    assert len(wire.sa.report_resps) == 1
    _, resp, resp_datagram = wire.sa.report_resps[0]
    report = SaMad.unpack(reports[0].payload)
    assert resp.method == Method.REPORT_RESP and resp.tid == report.tid
    assert resp.data == report.data
    assert (resp_datagram.dlid, resp_datagram.sgid, resp_datagram.slid) == (
        SA_LID,
        gid(C_GUID),
        C_LID,
    )
    assert c.sent["sa_report_resp"] == 1
    assert wire.events_of(ReportReceived) == [
        ReportReceived(101_000, PATH_CHANGE_TRAP, report.tid, False)
    ]
    assert [e.via for e in wire.events_of(PathChangeReceived)] == ["report"]
    assert len(wire.events_of(Reconnected)) == 1
    # A resent Report (our ReportResp was lost) is answered again, acted on once.
    wire.inject(reports)
    wire.run_for(1_000_000)
    assert c.sent["sa_report_resp"] == 2
    assert wire.events_of(ReportReceived)[-1].duplicate
    assert len(wire.events_of(PathChangeReceived)) == 1
    assert len(wire.events_of(Reconnected)) == 1


def test_a_vendor_notice_with_device_id_69_is_answered_and_not_acted_on() -> None:
    """Only a generic trap 69 moves a path: a vendor-specific notice whose DeviceID
    reads 69 is answered and recorded as what its bytes say, nothing more."""
    wire = two(subscribe=True)
    wire.run_for(100_000)
    c = wire.guests["c"]
    vendor = Notice(is_generic=False, producer_type=0x02C9, trap_number=PATH_CHANGE_TRAP)
    wire.inject([report(vendor, 0x9100, C_LID, dgid=gid(C_GUID))])
    wire.run_for(100_000)
    assert c.sent["sa_report_resp"] == 1
    assert wire.events_of(ReportReceived) == [ReportReceived(101_000, 69, 0x9100, False)]
    assert not wire.events_of(PathChangeReceived) and not wire.events_of(ConnectionBroken)


def test_a_path_carrying_report_updates_the_cached_path_without_a_query() -> None:
    wire = two(subscribe=True)
    wire.run_for(100_000)
    c = wire.guests["c"]
    queries = c.sent["sa_path_query"]
    path = PathValues(sl=2, mtu=4, rate=7, packet_life_time=9)
    notice = with_path_values(move_notice(gid(S_GUID), NEW_LID, S_LID), path)
    wire.migrate("s", NEW_LID)
    wire.inject([report(notice, 0x9200, C_LID, dgid=gid(C_GUID))])
    wire.run_for(1_000_000)
    record = c.paths.lookup(gid(S_GUID))
    assert record is not None
    assert (record.dlid, record.sl, record.mtu, record.rate, record.packet_life_time) == (
        NEW_LID, 2, 4, 7, 9,
    )  # fmt: skip
    assert c.counters["paths_updated_from_notice"] == 1
    assert c.sent["sa_path_query"] == queries
    assert len(wire.events_of(Reconnected, "c")) == 1


def test_reports_do_the_same_whichever_events_are_recorded() -> None:
    """The Report path builds its events only when wanted: with none wanted the
    guest sends the same datagrams at the same times."""

    def run(event_filter: frozenset[type] | None) -> list[tuple[int, str, bytes]]:
        wire = two(subscribe=True)
        wire.guests["c"].event_filter = event_filter
        wire.run_for(100_000)
        wire.migrate("s", NEW_LID)
        reports = wire.sa.reports(gid(S_GUID), NEW_LID, S_LID)
        wire.inject(reports + reports)  # and a resend
        wire.run_for(1_000_000)
        return [(t, n, d.payload) for t, n, d in wire.sent]

    everything = run(None)
    assert run(frozenset()) == everything
    assert run(frozenset({MessageDelivered})) == everything


def test_subscriber_subscribes_again_after_it_moves() -> None:
    wire = two(subscribe=True)
    wire.run_for(100_000)
    wire.migrate("c", 50)
    wire.run_for(100_000)
    sets = [d for _, m, d in wire.sa.requests if m.attribute_id == SaAttr.INFORM_INFO]
    assert [(d.slid, d.sgid) for d in sets] == [(C_LID, gid(C_GUID)), (50, gid(C_GUID))]
    assert len(wire.events_of(SubscriptionConfirmed)) == 2


def test_registrations_with_dom0() -> None:
    wire = two()
    wire.run_for(100_000)
    assert [(n, m) for _, n, m in wire.intra] == [("c", PathRegistered(gid(S_GUID)))]
    wire.migrate("c", 50)
    # At the new host the guest registers its paths again, with the LID it holds.
    assert [(n, m) for _, n, m in wire.intra][1:] == [("c", PathRegistered(gid(S_GUID), S_LID))]


def test_resumed_subscriber_refreshes_its_paths_and_finds_a_peer_that_moved_meanwhile() -> None:
    """Both ends move at once: the server's Report goes to the client's old port
    while the client is away. Once its new subscription is confirmed the client
    asks the SA again for each cached path; the answer names the new LID."""
    wire = two(subscribe=True)
    wire.run_for(100_000)
    c = wire.guests["c"]
    c.detach(wire.now)
    wire.pump("c")
    wire.migrate("s", NEW_LID)
    wire.inject(wire.sa.reports(gid(S_GUID), NEW_LID, S_LID))
    wire.run_for(10_000)
    assert not wire.events_of(PathChangeReceived, "c")  # the Report is lost
    c.resume(wire.now, port_num=1, lid=50, gid=gid(C_GUID), sa_lid=SA_LID)
    wire.pump("c")
    wire.run_for(1_000_000)
    assert c.counters["path_query_refresh"] == 1
    [change] = wire.events_of(PathChangeReceived, "c")
    assert (change.gid, change.new_lid, change.via) == (gid(S_GUID), NEW_LID, "refresh")
    [stream] = c.streams.values()
    assert stream.conn is not None and stream.conn.remote_lid == NEW_LID
    assert wire.events_of(Reconnected, "c")


def test_resumed_guest_without_subscription_does_not_refresh() -> None:
    wire = two()
    wire.run_for(100_000)
    c = wire.guests["c"]
    wire.migrate("c", 50)
    wire.run_for(1_000_000)
    assert c.counters["path_query_refresh"] == 0
    queries = [m for _, m, _ in wire.sa.requests if m.attribute_id == SaAttr.PATH_RECORD]
    assert len(queries) == 1  # the first resolution only: the cache is used after


def test_detach_stops_everything_and_resume_reconnects() -> None:
    wire = two()
    wire.run_for(100_000)
    c = wire.guests["c"]
    c.detach(wire.now)
    wire.pump("c")
    detached_at = wire.now
    assert c.get_timer() is None and not c.packets_to_send() and not c.connections()
    assert wire.events_of(Detached) == [Detached(detached_at, gid(C_GUID))]
    assert [e.reason for e in wire.events_of(ConnectionBroken, "c")] == ["detached"]
    wire.run_for(10_000_000)
    assert not wire.sent_by("c", detached_at + 1)
    ack = next(d for d in wire.sent_by("s") if d.opcode == 0x11)
    c.receive(ack, wire.now)  # whatever still arrives is dropped
    assert c.counters["dropped_detached"] == 1 and not c.packets_to_send()
    c.resume(wire.now, port_num=1, lid=C_LID, gid=gid(C_GUID), sa_lid=SA_LID)
    wire.pump("c")
    resumed_at = wire.now
    wire.run_for(100_000)
    assert wire.events_of(Attached, "c")[-1] == Attached(resumed_at, gid(C_GUID), C_LID, True)
    # The path cache survived the pause: no SA query to reconnect.
    assert wire.events_of(PathResolved, "c")[-1].via == "cache"
    reconnected = wire.events_of(Reconnected)
    assert len(reconnected) == 1 and reconnected[0].down_ns == resumed_at + 2_000 - detached_at
    assert delivered(wire, resumed_at)


def test_a_client_of_several_peers() -> None:
    wire = Wire()
    wire.add("s", S_GUID, S_LID, ip=S_IP)
    wire.add("d", D_GUID, D_LID, ip=D_IP)
    wire.add("c", C_GUID, C_LID, ip=C_IP, peers=[(S_IP, S_GUID), (D_IP, D_GUID)])
    wire.run_for(500_000)
    by_server: dict[bytes, list[int]] = {}
    for e in delivered(wire):
        assert e.client_gid == gid(C_GUID)
        by_server.setdefault(e.server_gid, []).append(e.seq)
    assert set(by_server) == {gid(S_GUID), gid(D_GUID)}
    for seqs in by_server.values():
        assert seqs == list(range(len(seqs))) and len(seqs) >= 45


def test_detached_guest_ignores_path_changes() -> None:
    wire = two()
    c = wire.guests["c"]
    c.detach(0)
    c.path_changed(gid(S_GUID), NEW_LID, 0)
    assert c.counters["path_change_while_detached"] == 1


def _run(seed: int) -> tuple[list[tuple[int, str, bytes, int, int]], list[tuple[int, str, str]]]:
    wire = two(replace(FAST, backoff_jitter=0.25), seed=seed)
    wire.run_for(100_000)
    wire.migrate("s", NEW_LID)
    wire.run_for(20_000_000)
    wire.guests["c"].path_changed(gid(S_GUID), NEW_LID, wire.now)
    wire.pump("c")
    wire.run_for(1_000_000)
    packets = [(t, n, d.payload, d.dlid, d.psn) for t, n, d in wire.sent]
    events = [(t, n, repr(e)) for t, n, e in wire.events]
    return packets, events


def test_same_seed_same_run() -> None:
    first, second = _run(7), _run(7)
    assert first == second
    other = _run(8)
    assert other[0] != first[0]  # PSNs, comm IDs and offsets come from the rng


def test_everything_sent_carries_the_current_port_lid_and_gid() -> None:
    wire = two(subscribe=True)
    wire.run_for(100_000)
    moved_at = wire.now
    wire.migrate("s", NEW_LID, new_guid=0x999)
    wire.inject(wire.sa.reports(gid(0x999), NEW_LID, S_LID))
    wire.run_for(2_000_000)
    identity = {
        "c": lambda t: (C_LID, gid(C_GUID)),
        "s": lambda t: (S_LID, gid(S_GUID)) if t < moved_at else (NEW_LID, gid(0x999)),
    }
    kinds = set()
    for t, name, d in wire.sent:
        if name == "sa":
            continue
        assert (d.slid, d.sgid) == identity[name](t), (t, name, d)
        kinds.add((name, d.opcode, d.dqp == QP1))
    assert {("c", 0x04, False), ("s", 0x11, False), ("c", 0x64, True), ("s", 0x64, True),
            ("s", 0x64, False)} <= kinds  # fmt: skip
    assert wire.guests["c"].sent["sa_report_resp"] == 1


def test_subscription_goes_out_one_plus_sa_retries_times() -> None:
    wire = two(subscribe=True)
    wire.sa.silent = True
    wire.run_for(100 * FAST.sa_timeout_ns)
    sets = [d for _, m, d in wire.sa.requests if m.attribute_id == SaAttr.INFORM_INFO]
    assert len(sets) == 1 + FAST.sa_retries
    assert len({d.payload for d in sets}) == 1  # the same TID every time
    [failed] = wire.events_of(SubscriptionFailed)
    assert failed.reason == "timeout"


def test_report_resp_bytes_are_report_response_and_resends_are_told_by_sa_lid() -> None:
    wire = two(subscribe=True)
    wire.run_for(100_000)
    c = wire.guests["c"]
    wire.migrate("s", NEW_LID)
    [received] = wire.sa.reports(gid(S_GUID), NEW_LID, S_LID)
    wire.inject([received])
    wire.run_for(1_000_000)
    [(_, _, resp)] = wire.sa.report_resps
    assert resp.payload == report_response(received.payload)
    # The same TID from another SA LID is another SA's Report, not a resend.
    tid = SaMad.unpack(received.payload).tid
    notice = move_notice(gid(S_GUID), NEW_LID + 1, NEW_LID)
    wire.inject([report(notice, tid, C_LID, sa_lid=SA_LID + 1, dgid=gid(C_GUID))])
    wire.run_for(1_000_000)
    assert c.sent["sa_report_resp"] == 2
    assert [e.duplicate for e in wire.events_of(ReportReceived)] == [False, False]
    assert len(wire.events_of(PathChangeReceived)) == 2


def _stuck_on_a_stale_path(subscribe: bool = False) -> Wire:
    """The server moved while no notice reached the client: with a cached path the
    client keeps sending REQs to the old LID."""
    wire = two(subscribe=subscribe)
    wire.run_for(100_000)
    wire.migrate("s", NEW_LID)
    wire.run_for(20_000_000)
    assert not wire.events_of(Reconnected)
    record = wire.guests["c"].paths.lookup(gid(S_GUID))
    assert record is not None and record.dlid == S_LID
    return wire


def test_revalidate_paths_from_dom0_flushes_the_stale_path_and_reconnects() -> None:
    """dom0 subscribed again after a gap and may have missed the move: the guest drops
    every cached path and a stream that is not connected starts over at once, through
    the SA (one query, one REQ), instead of waiting out its back-off."""
    wire = _stuck_on_a_stale_path()
    c = wire.guests["c"]
    stream = c.streams[IPv4Address(S_IP)]
    assert stream.state in (StreamState.BACKOFF, StreamState.CONNECTING)
    c.receive_intra_host(RevalidatePaths("c"), wire.now)
    wire.pump("c")
    told_at = wire.now
    wire.run_for(1_000_000)
    assert wire.events_of(PathFlushed) == [PathFlushed(told_at, gid(S_GUID))]
    resolved = wire.events_of(PathResolved, "c")[-1]
    assert (resolved.via, resolved.lid, resolved.time_ns) == ("sa", NEW_LID, told_at + 2_000)
    [reconnected] = wire.events_of(Reconnected)
    assert reconnected.time_ns - told_at == 4_000
    assert c.counters["paths_revalidated"] == 1


def test_client_reregister_revalidates_at_once_without_a_subscription() -> None:
    """A guest that does not subscribe (per-host, none) treats ClientReregister as
    IPoIB does: its cached paths are marked invalid at once."""
    wire = _stuck_on_a_stale_path()
    c = wire.guests["c"]
    c.client_reregister(wire.now)
    wire.pump("c")
    told_at = wire.now
    wire.run_for(1_000_000)
    [reconnected] = wire.events_of(Reconnected)
    assert reconnected.time_ns - told_at == 4_000


def test_client_reregister_revalidates_once_the_subscription_is_back() -> None:
    """Per-VM: the guest subscribes again and drops its cached paths only when the SA
    has confirmed, so that no Report can fall between the two."""
    wire = _stuck_on_a_stale_path(subscribe=True)
    c = wire.guests["c"]
    c.client_reregister(wire.now)
    wire.pump("c")
    told_at = wire.now
    assert c.paths.lookup(gid(S_GUID)) is not None  # still there until confirmed
    wire.run_for(1_000_000)
    confirmed = wire.events_of(SubscriptionConfirmed)[-1]
    assert confirmed.time_ns == told_at + 2_000
    assert wire.events_of(PathFlushed) == [PathFlushed(told_at + 2_000, gid(S_GUID))]
    [reconnected] = wire.events_of(Reconnected)
    assert reconnected.time_ns - told_at == 6_000


def test_trap_65_flushes_and_trap_64_queries_then_reconnects() -> None:
    """The "trap64-65" variant as OFED's local SA cache reads it: the client
    subscribes to 65 and 64; 65 drops the cached path, 64 (only the GID) asks the
    SA, and the answer's new LID breaks the stream to the old one and reconnects."""
    wire = Wire()
    wire.add("s", S_GUID, S_LID, ip=S_IP, config=FAST)
    c = wire.add("c", C_GUID, C_LID, ip=C_IP, peers=[(S_IP, S_GUID)], config=FAST,
                 subscribe=True, notice="trap64-65")  # fmt: skip
    wire.run_for(100_000)
    sets = [InformInfo.unpack(m.data) for _, m, _ in wire.sa.requests
            if m.attribute_id == SaAttr.INFORM_INFO]  # fmt: skip
    assert [i.trap_number for i in sets] == [65, 64]
    assert len(wire.events_of(SubscriptionConfirmed, "c")) == 2
    wire.migrate("s", NEW_LID)
    wire.inject([report(gid_service_notice(65, gid=gid(S_GUID)), 0x9001, C_LID, dgid=gid(C_GUID))])
    wire.run_for(10_000)
    [flushed] = wire.events_of(PathFlushed, "c")
    assert flushed.gid == gid(S_GUID)
    assert gid(S_GUID) not in c.paths
    queries_before = c.sent["sa_path_query"]
    wire.inject([report(gid_service_notice(64, gid=gid(S_GUID)), 0x9002, C_LID, dgid=gid(C_GUID))])
    wire.run_for(1_000_000)
    assert c.sent["sa_path_query"] == queries_before + 1
    assert c.counters["path_query_report"] == 1
    [change] = wire.events_of(PathChangeReceived, "c")
    assert (change.gid, change.new_lid, change.via) == (gid(S_GUID), NEW_LID, "report")
    [stream] = c.streams.values()
    assert stream.conn is not None and stream.conn.remote_lid == NEW_LID
    assert wire.events_of(Reconnected, "c")
    assert c.sent["sa_report_resp"] == 2


def test_detach_sends_one_dreq_per_established_connection_and_the_peer_learns_at_once() -> None:
    # dreq_on_detach (Linux cm_destroy_id on an ESTABLISHED id): the server's VF goes,
    # its connection's DREQ reaches the client one wire delay later, and the client
    # tears down and tries again at once instead of waiting out its RC retries.
    server = replace(FAST, dreq_on_detach=True)
    wire = Wire()
    wire.add("s", S_GUID, S_LID, ip=S_IP, config=server)
    wire.add("c", C_GUID, C_LID, ip=C_IP, peers=[(S_IP, S_GUID)], config=FAST)
    wire.run_for(100_000)
    s = wire.guests["s"]
    (conn,) = s.server_connections().values()
    detached_at = wire.now
    s.detach(detached_at)
    wire.pump("s")
    dreqs = [(t, d) for t, n, d in wire.sent
             if n == "s" and d.payload[1] == 0x07
             and isinstance(CmMad.unpack(d.payload).message, Dreq)]  # fmt: skip
    assert [t for t, _ in dreqs] == [detached_at]
    assert s.sent["cm_dreq"] == 1
    (_, datagram) = dreqs[0]
    assert (datagram.slid, datagram.dlid) == (S_LID, C_LID)
    wire.run_for(50_000_000)
    broken = wire.events_of(ConnectionBroken, "c")
    assert [(e.time_ns, e.reason) for e in broken] == [
        (detached_at + wire.delay_ns, "disconnect_request")
    ]
    assert s.sent["cm_dreq"] == 1  # nobody left to resend it
    assert conn.remote_comm_id  # it named the client's connection


def test_a_silent_detach_leaves_the_peer_to_its_rc_retries() -> None:
    wire = two()  # FAST: dreq_on_detach False
    wire.run_for(100_000)
    detached_at = wire.now
    wire.guests["s"].detach(detached_at)
    wire.pump("s")
    wire.run_for(10_000_000)
    assert wire.guests["s"].sent["cm_dreq"] == 0
    broken = wire.events_of(ConnectionBroken, "c")
    assert [e.reason for e in broken] == ["retry_exceeded"]
    # 4 sends (retry_count 3) 1.05 ms apart (local_ack_timeout 8): about 4.2 ms later.
    assert 4 * 1_048_576 <= broken[0].time_ns - detached_at < 5_000_000


def test_retry_while_detached_keeps_backing_off_and_resume_waits_for_the_pending_wait() -> None:
    """RDS's reconnect worker (`GuestConfig.retry_while_detached`): the stream tries
    at once as the VF goes, every attempt fails at once without a device, the
    backoff grows meanwhile, and the first REQ after resume leaves when the pending
    wait ends, not at the resume."""
    wire = two(replace(FAST, retry_while_detached=True))
    wire.run_for(100_000)
    c = wire.guests["c"]
    c.detach(wire.now)
    wire.pump("c")
    detached_at = wire.now
    wire.run_for(10_000_000)
    assert not wire.sent_by("c", detached_at + 1)  # nothing leaves without a VF
    failed = wire.events_of(ConnectFailed, "c")
    # FAST: exact doubling from 0.5 ms, capped at 4 ms: attempts at +0, 0.5, 1.5,
    # 3.5 and 7.5 ms, the last one waiting 4 ms.
    assert [e.time_ns - detached_at for e in failed] == [0, 500_000, 1_500_000, 3_500_000,
                                                          7_500_000]  # fmt: skip
    assert {e.reason for e in failed} == {"no_device"}
    assert [e.backoff_ns for e in failed] == [500_000, 1_000_000, 2_000_000, 4_000_000,
                                              4_000_000]  # fmt: skip
    c.resume(wire.now, port_num=1, lid=C_LID, gid=gid(C_GUID), sa_lid=SA_LID)
    wire.pump("c")
    resumed_at = wire.now
    assert not wire.sent_by("c", resumed_at)  # no attempt at the resume itself
    reqs_before = c.sent["cm_req"]
    wire.run_for(5_000_000)
    pending_end = failed[-1].time_ns + failed[-1].backoff_ns
    first = next(t for t, n, _ in wire.sent if n == "c" and t >= resumed_at)
    assert first == pending_end
    assert c.sent["cm_req"] - reqs_before == 1  # one REQ, answered at once
    [reconnected] = wire.events_of(Reconnected)
    assert reconnected.down_ns == pending_end + 2_000 - detached_at
    assert reconnected.attempts == len(failed) + 1

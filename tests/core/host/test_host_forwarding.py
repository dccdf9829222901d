"""HostAgent, the per-host strategy: one InformInfo subscription per host, Report ->
ReportResp -> mapping table -> forwards to the registered local VMs only."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ibmig.core.engine import Datagram
from ibmig.core.host import (
    ForwardPathChange,
    HostAgent,
    HostConfig,
    HostEvent,
    MappingResynced,
    MappingUpdated,
    PathChangeForwarded,
    PathRegistered,
    PathUnregistered,
    ReportReceived,
    RevalidatePaths,
    Subscribed,
    SubscriptionFailed,
    Unsubscribed,
    VfUp,
)
from ibmig.wire.mad import MAD_SIZE, Method
from ibmig.wire.notice import (
    GidDetails,
    Notice,
    PathValues,
    TrapNumber,
    gid_service_notice,
    path_change_notice,
    with_path_values,
)
from ibmig.wire.packet import QP1_QKEY
from ibmig.wire.sa import (
    GUIDInfoRecord,
    InformInfo,
    PathRecord,
    SaAttr,
    SaMad,
    report_response,
)
from tests.core.host.fake_sa import SA_LID, SA_PORT_GUID, FakeSa, exchange, gid, run_due

H1_GUID, H1_LID = 0x0002_C903_0000_0B01, 3
H2_GUID, H2_LID = 0x0002_C903_0000_0C01, 5
H3_GUID, H3_LID = 0x0002_C903_0000_0D01, 7
V1 = 0x0002_C903_00AA_0001
V2 = 0x0002_C903_00AA_0002
SECOND = 1_000_000_000


def host(name: str, guid: int, lid: int, **kw: Any) -> HostAgent:
    agent = HostAgent(name, guid, rng=random.Random(3), config=HostConfig(**kw))
    agent.port_active(lid, SA_LID, 0)
    return agent


def events(agent: HostAgent) -> list[HostEvent]:
    found: list[HostEvent] = []
    while (event := agent.next_event()) is not None:
        found.append(event)
    return found


def move_notice(guid: int, new_lid: int, old_lid: int) -> Notice:
    return path_change_notice(
        gid=gid(guid),
        new_lid=new_lid,
        old_lid=old_lid,
        new_port_guid=H2_GUID,
        old_port_guid=H1_GUID,
        issuer_lid=SA_LID,
        issuer_gid=gid(SA_PORT_GUID),
    )


def test_subscribes_once_with_inform_info_from_the_port() -> None:
    h3 = host("h3", H3_GUID, H3_LID)
    [datagram] = h3.packets_to_send()
    assert (datagram.slid, datagram.dlid, datagram.sqp, datagram.dqp) == (H3_LID, SA_LID, 1, 1)
    assert datagram.sgid is None  # from the physical port: its LID, no GRH
    mad = SaMad.unpack(datagram.payload)
    assert (mad.header.method, mad.attribute_id) == (Method.SET, SaAttr.INFORM_INFO)
    info = mad.record()
    assert info == InformInfo(
        gid=bytes(16),
        lid_range_begin=0xFFFF,
        lid_range_end=0,
        is_generic=1,
        subscribe=1,
        type=0xFFFF,
        trap_number=69,
        qpn=1,
        resp_time_value=18,
        producer_type=0xFFFFFF,
    )
    sa = FakeSa()
    for answer in sa.handle(datagram):
        h3.receive(answer, 5)
    assert h3.subscribed and events(h3) == [Subscribed(69, 5)]
    # The same port activation again changes nothing: still one subscription.
    h3.port_active(H3_LID, SA_LID, 6)
    assert h3.packets_to_send() == []
    assert sa.subscribers == [(H3_LID, 1)]


def test_no_subscription_without_the_per_host_strategy() -> None:
    h3 = host("h3", H3_GUID, H3_LID, subscribe_path_changes=False)
    assert h3.packets_to_send() == [] and not h3.subscribed


def test_resubscribes_on_client_reregister_and_unsubscribes() -> None:
    sa = FakeSa()
    h3 = host("h3", H3_GUID, H3_LID)
    exchange(sa, {H3_LID: h3}, 0)
    h3.client_reregister(10)
    exchange(sa, {H3_LID: h3}, 10)
    assert [m.attribute_id for _, m in sa.requests] == [SaAttr.INFORM_INFO] * 2
    h3.unsubscribe(20)
    exchange(sa, {H3_LID: h3}, 20)
    assert sa.subscribers == [] and not h3.subscribed
    assert events(h3) == [
        Subscribed(69, 0),
        Subscribed(69, 10),
        MappingResynced("client_reregister", 0, (), 10),
        Unsubscribed(69, 20),
    ]
    info = sa.requests[-1][1].record()
    assert isinstance(info, InformInfo) and info.subscribe == 0


@pytest.mark.parametrize("gap", ["client_reregister", "restart", "port"])
def test_a_subscription_after_a_gap_drops_learnt_entries_and_revalidates_guests(gap: str) -> None:
    """Reports sent while dom0 was not subscribed never reached it (a host whose cable
    was down when a VM moved): once subscribed again, the entries Reports taught it
    are dropped (its own VMs' stay) and every local VM is told to resolve its cached
    paths again -- only then, so that nothing sent before the new subscription is
    trusted. The first subscription tells nobody."""
    sa = FakeSa()
    h3 = host("h3", H3_GUID, H3_LID)
    h3.attach_vf("vmA", 0, vguid=V2)
    exchange(sa, {H3_LID: h3}, 0)
    assert h3.is_up("vmA") and h3.intra_host_to_send() == []
    h3.receive(sa.report(move_notice(V1, H2_LID, H1_LID), H3_LID, tid=5), 5)
    h3.packets_to_send()
    assert h3.mapping == {V2: H3_LID, V1: H2_LID}
    events(h3)
    if gap == "client_reregister":
        h3.client_reregister(10)
    elif gap == "restart":
        h3.restart(10)
        h3.port_active(H3_LID, SA_LID, 10)
    else:
        h3.port_active(H3_LID + 1, SA_LID, 10)
    assert h3.intra_host_to_send() == []  # not before the subscription is back
    exchange(sa, {H3_LID: h3, H3_LID + 1: h3}, 10)
    assert h3.subscribed
    assert h3.intra_host_to_send() == [RevalidatePaths("vmA")]
    assert V1 not in h3.mapping and h3.mapping[V2] in (H3_LID, H3_LID + 1)
    dropped = 0 if gap == "restart" else 1  # a restart lost the table already
    assert [e for e in events(h3) if isinstance(e, MappingResynced)] == [
        MappingResynced(gap, dropped, ("vmA",), 10)
    ]
    # The next subscription after that is no gap.
    h3.port_active(h3.port_lid or 0, SA_LID, 20)
    assert h3.intra_host_to_send() == []


def test_a_failed_resubscription_still_revalidates_guests() -> None:
    """No subscription at all after a ClientReregister: the guests cannot count on
    notices, so they are told to revalidate when dom0 gives up."""
    sa = FakeSa()
    h3 = host("h3", H3_GUID, H3_LID)
    h3.attach_vf("vmA", 0, vguid=V2)
    exchange(sa, {H3_LID: h3}, 0)
    h3.client_reregister(10)
    h3.packets_to_send()  # lost
    for t in (1, 2, 3):
        h3.handle_timer(10 + t * SECOND)
        h3.packets_to_send()
    assert h3.intra_host_to_send() == [RevalidatePaths("vmA")]
    # (vmA's alias, set again on the ClientReregister, times out alongside.)
    assert [e for e in events(h3) if isinstance(e, SubscriptionFailed | MappingResynced)][-2:] == [
        SubscriptionFailed(69, True, "timeout", 10 + 3 * SECOND),
        MappingResynced("client_reregister", 0, ("vmA",), 10 + 3 * SECOND),
    ]


def test_client_reregister_sets_every_running_vms_alias_again() -> None:
    """As mlx4 on the port's CLIENT_REREGISTER event (alias_GUID.c,
    mlx4_ib_invalidate_all_guid_record): a new master may not know the aliases, so
    every VM's is set again at once; the VM stays up meanwhile."""
    sa = FakeSa()
    h3 = host("h3", H3_GUID, H3_LID)
    h3.attach_vf("vmA", 0, vguid=V2)
    exchange(sa, {H3_LID: h3}, 0)
    assert h3.is_up("vmA")
    before = len(sa.requests)
    events(h3)
    h3.client_reregister(10)
    exchange(sa, {H3_LID: h3}, 10)
    asked = [(m.header.method, m.attribute_id) for _, m in sa.requests[before:]]
    assert sorted(asked) == [
        (Method.SET, SaAttr.INFORM_INFO),
        (Method.SET, SaAttr.GUID_INFO_RECORD),
    ]
    [record] = [
        m.record() for _, m in sa.requests[before:] if m.attribute_id == SaAttr.GUID_INFO_RECORD
    ]
    vf = h3.vf_of("vmA")
    assert isinstance(record, GUIDInfoRecord) and vf is not None
    assert record.guid_info.guids[vf % 8] == V2
    assert h3.is_up("vmA") and h3.counters["aliases_reregistered"] == 1
    assert not any(isinstance(e, VfUp) for e in events(h3))  # it never went down


def test_subscription_retries_then_fails() -> None:
    h3 = host("h3", H3_GUID, H3_LID)
    first = h3.packets_to_send()
    for t in (1, 2, 3):
        h3.handle_timer(t * SECOND)
        resent = h3.packets_to_send()
        assert [d.payload for d in resent] == ([] if t == 3 else [d.payload for d in first])
    assert events(h3)[-1] == SubscriptionFailed(69, True, "timeout", 3 * SECOND)
    assert not h3.subscribed


def test_report_resp_mapping_update_and_forwarding_to_registered_vms_only() -> None:
    h3 = host("h3", H3_GUID, H3_LID)
    sa = FakeSa()
    exchange(sa, {H3_LID: h3}, 0)
    events(h3)
    # Local VMs tell dom0 which GIDs they hold paths to.
    h3.receive_intra_host("vmA", PathRegistered(gid(V1)), 1)
    h3.receive_intra_host("vmB", PathRegistered(gid(V2)), 1)
    h3.receive_intra_host("vmC", PathRegistered(gid(V1)), 1)
    assert h3.registered_vms(gid(V1)) == ("vmA", "vmC")
    report = sa.report(move_notice(V1, H2_LID, H1_LID), H3_LID, tid=0x4242)
    h3.receive(report, 100)
    # ReportResp: same TID, the Notice echoed, back to the SA's LID and QP.
    [resp] = h3.packets_to_send()
    assert (resp.slid, resp.dlid, resp.sqp, resp.dqp) == (H3_LID, SA_LID, 1, 1)
    assert resp.qkey == QP1_QKEY and resp.sgid is None and resp.dgid is None
    resp_mad = SaMad.unpack(resp.payload)
    request_mad = SaMad.unpack(report.payload)
    assert resp_mad.header.method == Method.REPORT_RESP
    assert resp_mad.tid == 0x4242 and resp_mad.attribute_id == SaAttr.NOTICE
    assert resp_mad.data == request_mad.data
    # Mapping table and forwards: vmA and vmC, not vmB.
    assert h3.mapping == {V1: H2_LID} and h3.lookup(gid(V1)) == H2_LID
    assert h3.intra_host_to_send() == [
        ForwardPathChange("vmA", gid(V1), H2_LID),
        ForwardPathChange("vmC", gid(V1), H2_LID),
    ]
    assert events(h3) == [
        ReportReceived(69, 0x4242, False, 100),
        MappingUpdated(V1, None, H2_LID, "report", 100),
        PathChangeForwarded("vmA", gid(V1), H2_LID, 100),
        PathChangeForwarded("vmC", gid(V1), H2_LID, 100),
    ]
    # Forwards are counted apart from fabric traffic.
    assert h3.counters["intra_host_sent"] == 2
    assert h3.counters["mads_sent"] == 2  # the subscription and the ReportResp
    assert h3.counters["report_resps_sent"] == 1


def test_registration_after_the_report_gets_what_the_guest_missed() -> None:
    """A guest that arrives after a Report (it was migrating itself) registers the
    LID its cached path names; dom0's table knows better and forwards at once."""
    h3 = host("h3", H3_GUID, H3_LID)
    sa = FakeSa()
    exchange(sa, {H3_LID: h3}, 0)
    h3.receive(sa.report(move_notice(V1, H2_LID, H1_LID), H3_LID, tid=5), 100)
    h3.packets_to_send()
    events(h3)
    h3.receive_intra_host("vmA", PathRegistered(gid(V1), H1_LID), 200)  # stale
    h3.receive_intra_host("vmB", PathRegistered(gid(V1), H2_LID), 200)  # current
    h3.receive_intra_host("vmC", PathRegistered(gid(V1)), 200)  # nothing cached
    h3.receive_intra_host("vmD", PathRegistered(gid(V2), H1_LID), 200)  # no news of V2
    assert h3.intra_host_to_send() == [ForwardPathChange("vmA", gid(V1), H2_LID)]
    assert events(h3) == [PathChangeForwarded("vmA", gid(V1), H2_LID, 200)]
    assert h3.counters["intra_host_sent"] == 1


def test_a_dom0_that_does_not_subscribe_forwards_nothing_on_registration() -> None:
    h3 = host("h3", H3_GUID, H3_LID, subscribe_path_changes=False)
    h3.receive(FakeSa().report(move_notice(V1, H2_LID, H1_LID), H3_LID), 1)
    h3.receive_intra_host("vmA", PathRegistered(gid(V1), H1_LID), 2)
    assert h3.intra_host_to_send() == []


def test_resent_report_is_answered_but_processed_once() -> None:
    h3 = host("h3", H3_GUID, H3_LID, subscribe_path_changes=False)
    h3.receive_intra_host("vmA", PathRegistered(gid(V1)), 0)
    report = FakeSa().report(move_notice(V1, H2_LID, H1_LID), H3_LID, tid=7)
    h3.receive(report, 10)
    h3.receive(report, 20)
    assert len(h3.packets_to_send()) == 2  # two ReportResps
    assert len(h3.intra_host_to_send()) == 1  # one forward
    assert h3.counters["reports_duplicate"] == 1
    assert ReportReceived(69, 7, True, 20) in events(h3)


def test_counters_are_exact_whenever_read() -> None:
    """The Report path counts apart and `counters` adds it in: read between any two
    MADs, every counter is what counting each MAD at once would give, and reading
    twice counts nothing twice."""
    h3 = host("h3", H3_GUID, H3_LID, subscribe_path_changes=False)
    sa = FakeSa()
    first = sa.report(move_notice(V1, H2_LID, H1_LID), H3_LID, tid=7)
    not_a_notice = first._replace(payload=first.payload[:16] + b"\x00\x03" + first.payload[18:])
    cm = Datagram(bytes([1, 7, 2, 3]) + bytes(MAD_SIZE - 4), 1, SA_LID, H3_LID, 1, 1)
    steps: list[tuple[Datagram, dict[str, int]]] = [
        (first, {"mads_received": 1, "mads_sent": 1, "report_resps_sent": 1,
                 "reports_received": 1}),
        (first, {"mads_received": 1, "mads_sent": 1, "report_resps_sent": 1,
                 "reports_duplicate": 1}),
        (not_a_notice, {"mads_received": 1, "unexpected_report": 1}),
        (cm, {"mads_received": 1, "not_sa": 1}),
        (sa.report(move_notice(V2, H2_LID, H1_LID), H3_LID, tid=8),
         {"mads_received": 1, "mads_sent": 1, "report_resps_sent": 1, "reports_received": 1}),
    ]  # fmt: skip
    expected = Counter(h3.counters)
    for datagram, delta in steps:
        h3.receive(datagram, 1)
        expected.update(delta)
        assert h3.counters == expected
        assert h3.counters == expected  # read again: nothing added twice
    # Counted apart or not, the same totals come out when read only at the end.
    late = host("h3", H3_GUID, H3_LID, subscribe_path_changes=False)
    for datagram, _ in steps:
        late.receive(datagram, 1)
    assert late.counters == expected


def test_a_path_carrying_notice_forwards_the_new_paths_values() -> None:
    h3 = host("h3", H3_GUID, H3_LID, subscribe_path_changes=False)
    h3.receive_intra_host("vmA", PathRegistered(gid(V1)), 0)
    path = PathValues(sl=3, mtu=5, rate=16, packet_life_time=18)
    notice = with_path_values(move_notice(V1, H2_LID, H1_LID), path)
    h3.receive(FakeSa().report(notice, H3_LID), 1)
    assert h3.intra_host_to_send() == [ForwardPathChange("vmA", gid(V1), H2_LID, path)]
    assert h3.mapping == {V1: H2_LID}


def test_unregistered_and_removed_vms_get_nothing() -> None:
    h3 = host("h3", H3_GUID, H3_LID, subscribe_path_changes=False)
    h3.receive_intra_host("vmA", PathRegistered(gid(V1)), 0)
    h3.receive_intra_host("vmB", PathRegistered(gid(V1)), 0)
    h3.receive_intra_host("vmA", PathUnregistered(gid(V1)), 0)
    h3.remove_vm("vmB")
    assert h3.registered_vms(gid(V1)) == ()
    h3.receive(FakeSa().report(move_notice(V1, H2_LID, H1_LID), H3_LID), 1)
    assert h3.intra_host_to_send() == []
    assert h3.mapping == {V1: H2_LID}  # the table is updated all the same


def test_other_notices_are_answered_not_forwarded() -> None:
    h3 = host("h3", H3_GUID, H3_LID, subscribe_path_changes=False)
    h3.receive_intra_host("vmA", PathRegistered(gid(V1)), 0)
    notice = Notice(
        trap_number=TrapNumber.GID_IN_SERVICE,
        issuer_lid=SA_LID,
        details=GidDetails(gid(V1)),
        issuer_gid=gid(SA_PORT_GUID),
    )
    h3.receive(FakeSa().report(notice, H3_LID), 1)
    assert len(h3.packets_to_send()) == 1
    assert h3.intra_host_to_send() == [] and h3.mapping == {}


def test_report_with_grh_is_answered_with_the_gids_swapped() -> None:
    h3 = host("h3", H3_GUID, H3_LID, subscribe_path_changes=False)
    report = FakeSa().report(move_notice(V1, H2_LID, H1_LID), H3_LID)
    report = report._replace(sgid=gid(SA_PORT_GUID), dgid=gid(H3_GUID))
    h3.receive(report, 1)
    [resp] = h3.packets_to_send()
    assert resp.sgid == gid(H3_GUID) and resp.dgid == gid(SA_PORT_GUID)


def test_static_migration_end_to_end_with_the_fake_sa() -> None:
    """h1 -> h2 migration of vm1; h3 holds vmA with a path to vm1: one Report per
    host, and the forward reaches vmA only."""
    sa = FakeSa()
    h1 = host("h1", H1_GUID, H1_LID)
    h2 = host("h2", H2_GUID, H2_LID)
    h3 = host("h3", H3_GUID, H3_LID)
    hosts = {H1_LID: h1, H2_LID: h2, H3_LID: h3}
    exchange(sa, hosts, 0)
    h1.attach_vf("vm1", 0, vguid=V1)
    h3.attach_vf("vmA", 0, vguid=V2)
    exchange(sa, hosts, 0)
    h3.receive_intra_host("vmA", PathRegistered(gid(V1)), 0)
    h1.detach_vf("vm1", 10)
    h1.release_alias(V1, 10)
    exchange(sa, hosts, 10)
    h2.attach_vf("vm1", 20, vguid=V1)
    exchange(sa, hosts, 30)
    assert len(sa.report_resps) == 3  # n Reports, one per subscribed host
    assert {d.slid for d, _ in sa.report_resps} == {H1_LID, H2_LID, H3_LID}
    assert h3.intra_host_to_send() == [ForwardPathChange("vmA", gid(V1), H2_LID)]
    assert h1.intra_host_to_send() == [] and h2.intra_host_to_send() == []
    for agent in (h1, h2, h3):
        assert agent.mapping[V1] == H2_LID


def test_other_classes_and_methods_are_counted_and_dropped() -> None:
    h3 = host("h3", H3_GUID, H3_LID, subscribe_path_changes=False)
    cm = bytes([1, 7, 2, 3]) + bytes(MAD_SIZE - 4)  # a CM Send on QP1
    h3.receive(Datagram(cm, 1, SA_LID, H3_LID, 1, 1), 0)
    get = FakeSa().report(move_notice(V1, H2_LID, H1_LID), H3_LID)
    mad = SaMad.unpack(get.payload)
    wrong = dataclasses.replace(mad, header=dataclasses.replace(mad.header, method=Method.GET))
    h3.receive(get._replace(payload=wrong.pack()), 0)
    assert h3.counters["not_sa"] == 1 and h3.counters["unexpected_method"] == 1
    assert h3.packets_to_send() == [] and h3.intra_host_to_send() == []


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=300))
def test_arbitrary_bytes_never_raise(payload: bytes) -> None:
    h3 = host("h3", H3_GUID, H3_LID)
    h3.receive(Datagram(payload, 1, SA_LID, H3_LID, 1, 1), 0)


@settings(max_examples=200, deadline=None)
@given(
    st.binary(min_size=MAD_SIZE - 24, max_size=MAD_SIZE - 24),
    st.sampled_from([0x06, 0x81, 0x95]),
    st.sampled_from([0x0002, 0x0003, 0x0030]),
    st.integers(0, 0xFFFF),
)
def test_arbitrary_sa_mads_never_raise(body: bytes, method: int, attr: int, status: int) -> None:
    """Answers and Reports with the right TID and arbitrary contents."""
    h3 = host("h3", H3_GUID, H3_LID)
    h3.attach_vf("vm", 0, vguid=V1)
    run_due(h3, 0)
    [request] = [d for d in h3.packets_to_send() if SaMad.unpack(d.payload).attribute_id == 0x30]
    tid = SaMad.unpack(request.payload).tid
    header = (
        bytes([1, 3, 2, method])
        + status.to_bytes(2, "big")
        + bytes(2)
        + tid.to_bytes(8, "big")
        + attr.to_bytes(2, "big")
        + bytes(6)
    )
    h3.receive(Datagram(header + body, 1, SA_LID, H3_LID, 1, 1), 0)
    h3.handle_timer(10 * SECOND)


def test_event_filter_keeps_only_the_wanted_events_and_changes_nothing_else() -> None:
    def run(event_filter: frozenset[type] | None) -> tuple[Sequence[object], list[bytes]]:
        h3 = host("h3", H3_GUID, H3_LID, subscribe_path_changes=False)
        h3.event_filter = event_filter
        h3.receive_intra_host("vmA", PathRegistered(gid(V1)), 0)
        h3.receive(FakeSa().report(move_notice(V1, H2_LID, H1_LID), H3_LID, tid=9), 10)
        sent = [d.payload for d in h3.packets_to_send()]
        assert h3.mapping == {V1: H2_LID}
        assert h3.intra_host_to_send() == [ForwardPathChange("vmA", gid(V1), H2_LID)]
        return events(h3), sent

    everything, sent = run(None)
    assert [type(e) for e in everything] == [
        ReportReceived,
        MappingUpdated,
        PathChangeForwarded,
    ]
    only_forwards, sent_filtered = run(frozenset({PathChangeForwarded}))
    assert only_forwards == everything[2:]
    assert sent_filtered == sent  # the same ReportResp either way
    assert run(frozenset())[0] == []


def test_sa_retries_counts_resends_after_the_first_send() -> None:
    for retries in (0, 1, 4):
        h3 = host("h3", H3_GUID, H3_LID, sa_retries=retries)
        sends = len(h3.packets_to_send())
        t = 0
        while (deadline := h3.get_timer()) is not None:
            t = deadline
            h3.handle_timer(t)
            sends += len(h3.packets_to_send())
        assert sends == 1 + retries
        assert t == (1 + retries) * SECOND
        assert events(h3)[-1] == SubscriptionFailed(69, True, "timeout", t)


def test_report_resp_bytes_are_report_response() -> None:
    h3 = host("h3", H3_GUID, H3_LID, subscribe_path_changes=False)
    received = FakeSa().report(move_notice(V1, H2_LID, H1_LID), H3_LID, tid=0x51)
    h3.receive(received, 1)
    [resp] = h3.packets_to_send()
    assert resp.payload == report_response(received.payload)


def test_same_tid_from_another_sa_is_a_new_report() -> None:
    h3 = host("h3", H3_GUID, H3_LID, subscribe_path_changes=False)
    h3.receive_intra_host("vmA", PathRegistered(gid(V1)), 0)
    first = FakeSa().report(move_notice(V1, H2_LID, H1_LID), H3_LID, tid=7)
    other_sa = FakeSa(lid=SA_LID + 1).report(move_notice(V1, H1_LID, H2_LID), H3_LID, tid=7)
    h3.receive(first, 10)
    h3.receive(other_sa, 20)
    assert h3.counters["reports_duplicate"] == 0
    assert len(h3.intra_host_to_send()) == 2


def test_trap_64_65_variant_subscribes_twice_and_asks_for_the_path_on_trap_64() -> None:
    """OFED's local SA cache style: InformInfo for trap 65 then 64; trap 65 changes
    nothing; trap 64 carries only the GID, so dom0 asks for its PathRecord and the
    answer does what a trap 69 would (mapping table, forwards)."""
    h3 = host("h3", H3_GUID, H3_LID, path_change_notice="trap64-65")
    sets = h3.packets_to_send()
    infos = [SaMad.unpack(d.payload).record() for d in sets]
    assert [i.trap_number for i in infos if isinstance(i, InformInfo)] == [65, 64]
    sa = FakeSa()
    for datagram in sets:
        for answer in sa.handle(datagram):
            h3.receive(answer, 5)
    assert h3.subscribed
    assert events(h3) == [Subscribed(65, 5), Subscribed(64, 5)]
    h3.receive_intra_host("vmA", PathRegistered(gid(V1), H1_LID), 6)
    out_of_service = gid_service_notice(TrapNumber.GID_OUT_OF_SERVICE, gid=gid(V1))
    h3.receive(sa.report(out_of_service, H3_LID), 10)
    assert len(h3.packets_to_send()) == 1  # the ReportResp
    assert h3.intra_host_to_send() == [] and h3.mapping == {}
    in_service = gid_service_notice(TrapNumber.GID_IN_SERVICE, gid=gid(V1))
    h3.receive(sa.report(in_service, H3_LID), 20)
    resp, query = h3.packets_to_send()
    assert SaMad.unpack(resp.payload).header.method == Method.REPORT_RESP
    mad = SaMad.unpack(query.payload)
    assert (mad.header.method, mad.attribute_id) == (Method.GET, SaAttr.PATH_RECORD)
    asked = PathRecord.unpack(mad.data)
    assert (asked.dgid, asked.sgid, asked.numb_path) == (gid(V1), gid(H3_GUID), 1)
    assert (query.slid, query.dlid) == (H3_LID, SA_LID)
    assert h3.intra_host_to_send() == []  # nothing until the SA answers
    record = PathRecord(dgid=gid(V1), sgid=gid(H3_GUID), dlid=H2_LID, slid=H3_LID, numb_path=1)
    path_answer = SaMad.from_record(record, method=Method.GET_RESP, tid=mad.tid)
    h3.receive(Datagram(path_answer.pack(), 1, SA_LID, H3_LID, 1, 1, qkey=QP1_QKEY), 30)
    assert h3.mapping == {V1: H2_LID}
    assert h3.intra_host_to_send() == [ForwardPathChange("vmA", gid(V1), H2_LID)]
    assert h3.counters["path_queries"] == 1

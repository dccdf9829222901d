"""HostAgent: VFs, alias GUIDs through the SA (static and dynamic assignment), SA
transactions with TIDs, timeouts and retries. A hand-driven clock and a fake SA."""

from __future__ import annotations

import random
from typing import Any

import pytest

from ibmig.core.engine import Datagram
from ibmig.core.host import (
    AddressAssignment,
    AliasAcknowledged,
    AliasFailed,
    AliasReleased,
    AliasRetryScheduled,
    HostAgent,
    HostConfig,
    HostError,
    HostEvent,
    MappingUpdated,
    PathRegistered,
    SaRequestRetried,
    VfDown,
    VfUp,
    derived_vf_guid,
)
from ibmig.core.host.demux import NO_VF, TO_DOM0, demultiplex
from ibmig.errors import ConfigError
from ibmig.wire.mad import MadStatus, Method
from ibmig.wire.packet import QP1_QKEY
from ibmig.wire.sa import GUIDInfoRecord, GUIDInfoRecordComp, SaAttr, SaMad, SaStatus
from tests.core.host.fake_sa import SA_LID, FakeSa, exchange, gid, run_due, sa_mad

H1_GUID, H1_LID = 0x0002_C903_0000_0B01, 3
H2_GUID, H2_LID = 0x0002_C903_0000_0C01, 5
V1 = 0x0002_C903_00AA_0001
V2 = 0x0002_C903_00AA_0002
SECOND = 1_000_000_000
GIVE_UP = HostConfig(subscribe_path_changes=False, alias_retry_limit=0)
NO_SUB = HostConfig(subscribe_path_changes=False)
DYNAMIC = HostConfig(subscribe_path_changes=False, assignment=AddressAssignment.DYNAMIC)
GIR_KEY = GUIDInfoRecordComp.LID | GUIDInfoRecordComp.BLOCK_NUM


def host(
    name: str = "h1",
    guid: int = H1_GUID,
    lid: int | None = H1_LID,
    config: HostConfig = NO_SUB,
    **kw: Any,
) -> HostAgent:
    agent = HostAgent(name, guid, rng=random.Random(7), config=config, **kw)
    if lid is not None:
        agent.port_active(lid, SA_LID, 0)
    return agent


def events(agent: HostAgent) -> list[HostEvent]:
    found: list[HostEvent] = []
    while (event := agent.next_event()) is not None:
        found.append(event)
    return found


def sent(agent: HostAgent, now_ns: int | None = None) -> list[tuple[Datagram, SaMad]]:
    """What `agent` sends; with `now_ns`, once its alias GUID work due then has run."""
    if now_ns is not None:
        run_due(agent, now_ns)
    return [(d, SaMad.unpack(d.payload)) for d in agent.packets_to_send()]


def answer(request: Datagram, response: SaMad) -> Datagram:
    """A hand-made SA answer to `request`."""
    return Datagram(response.pack(), 1, SA_LID, request.slid, 1, request.sqp, qkey=QP1_QKEY)


# --- static assignment ----------------------------------------------------------------


def test_static_set_wire_fields_and_vf_up_only_after_getresp() -> None:
    h1 = host()
    assert h1.attach_vf("vm1", 10, vguid=V1) == 1
    [(datagram, mad)] = sent(h1, 10)
    # dom0 addressing: port LID to the SA's LID, QP1 to QP1, no GRH.
    assert datagram.port == 1
    assert (datagram.slid, datagram.dlid, datagram.sqp, datagram.dqp) == (H1_LID, SA_LID, 1, 1)
    assert datagram.qkey == QP1_QKEY and datagram.pkey == 0xFFFF
    assert datagram.sgid is None and datagram.dgid is None
    # SubnAdmSet(GUIDInfoRecord): LID, block 0, entry 1 of the mask only.
    assert mad.header.method == Method.SET
    assert mad.attribute_id == SaAttr.GUID_INFO_RECORD
    assert mad.component_mask == GIR_KEY | GUIDInfoRecordComp.GUID1
    record = mad.record()
    assert isinstance(record, GUIDInfoRecord)
    assert (record.lid, record.block_num) == (H1_LID, 0)
    assert record.guid_info.guids == (0, V1, 0, 0, 0, 0, 0, 0)
    # Attached, but not up: the SA has not acknowledged the alias.
    assert not h1.is_up("vm1")
    assert not [e for e in events(h1) if isinstance(e, VfUp)]
    # The GetResp with the block as written.
    block = GUIDInfoRecord(H1_LID, 0, record.guid_info)
    h1.receive(answer(datagram, sa_mad(Method.GET_RESP, 0x30, block.pack(), tid=mad.tid)), 20)
    assert events(h1) == [
        AliasAcknowledged("vm1", 1, V1, 20),
        MappingUpdated(V1, None, H1_LID, "local", 20),
        VfUp("vm1", 1, gid(V1), H1_LID, 20),
    ]
    assert h1.is_up("vm1") and h1.entry(1) == V1 and h1.lookup(gid(V1)) == H1_LID
    assert h1.get_timer() is None


def test_vf_index_selects_block_and_component() -> None:
    h1 = host(config=HostConfig(subscribe_path_changes=False, num_vfs=12))
    h1.set_alias("vm9", 0, vguid=V1, vf=9)
    [(_, mad)] = sent(h1, 0)
    record = mad.record()
    assert isinstance(record, GUIDInfoRecord)
    assert record.block_num == 1
    assert record.guid_info.guids == (0, V1, 0, 0, 0, 0, 0, 0)
    assert mad.component_mask == GIR_KEY | GUIDInfoRecordComp.GUID1


def test_static_migration_delete_at_source_then_set_at_destination() -> None:
    sa = FakeSa()
    h1, h2 = host(), host("h2", H2_GUID, H2_LID)
    hosts = {H1_LID: h1, H2_LID: h2}
    h1.attach_vf("vm1", 0, vguid=V1)
    exchange(sa, hosts, 0)
    assert h1.is_up("vm1") and sa.entries == {(H1_LID, 1): V1}
    events(h1)
    # Source: the VF goes, then the vGUID is released with a Delete.
    assert h1.detach_vf("vm1", 100) == 1
    assert h1.release_alias(V1, 100) == 1
    exchange(sa, hosts, 150)
    # Destination: the Set, after the Delete.
    h2.attach_vf("vm1", 200, vguid=V1)
    exchange(sa, hosts, 250)
    methods = [(d.slid, m.header.method) for d, m in sa.requests]
    assert methods == [
        (H1_LID, Method.SET),
        (H1_LID, Method.DELETE),
        (H2_LID, Method.SET),
    ]
    _, delete = sa.requests[1]
    assert delete.component_mask == GIR_KEY | GUIDInfoRecordComp.GUID1
    record = delete.record()
    assert isinstance(record, GUIDInfoRecord)
    assert record.guid_info.guids[1] == V1  # the Delete names the GUID it removes
    assert events(h1) == [VfDown("vm1", 1, 100), AliasReleased(V1, 1, 150)]
    assert h1.entry(1) == 0
    assert VfUp("vm1", 1, gid(V1), H2_LID, 250) in events(h2)
    assert sa.entries == {(H2_LID, 1): V1}
    assert sa.refused == 0


def test_a_detached_vfs_alias_keeps_the_vf_until_it_is_released() -> None:
    """Static assignment: vm1 leaves h1 (its alias still registered), vm2 arrives
    before the source's Delete. vm2 must not take vm1's VF, whose entry the release
    will delete (it used to, and the release then raised HostError)."""
    sa = FakeSa()
    h1 = host(config=HostConfig(subscribe_path_changes=False, num_vfs=2))
    hosts = {H1_LID: h1}
    h1.attach_vf("vm1", 0, vguid=V1)
    exchange(sa, hosts, 0)
    h1.detach_vf("vm1", 100)
    assert h1.free_vfs() == [2]
    assert h1.attach_vf("vm2", 200, vguid=V2) == 2
    exchange(sa, hosts, 200)
    assert h1.free_vfs() == []
    assert h1.release_alias(V1, 300) == 1
    assert h1.free_vfs() == []  # the Delete is under way
    exchange(sa, hosts, 300)
    assert h1.free_vfs() == [1]
    assert sa.entries == {(H1_LID, 2): V2}
    assert AliasReleased(V1, 1, 300) in events(h1)


def test_set_before_release_is_refused_then_retried() -> None:
    """The destination asks first: the SA refuses the GUID the source still holds;
    dom0 tries again when its timer fires, after the source's Delete."""
    sa = FakeSa()
    h1, h2 = host(), host("h2", H2_GUID, H2_LID)
    hosts = {H1_LID: h1, H2_LID: h2}
    h1.attach_vf("vm1", 0, vguid=V1)
    exchange(sa, hosts, 0)
    h1.detach_vf("vm1", 0)
    h2.attach_vf("vm1", 0, vguid=V1)
    exchange(sa, hosts, 0)
    assert sa.refused == 1 and not h2.is_up("vm1")
    assert h2.get_timer() == SECOND
    h1.release_alias(V1, 10)
    exchange(sa, hosts, 10)
    h2.handle_timer(SECOND)
    exchange(sa, hosts, SECOND)
    assert h2.is_up("vm1")
    found = events(h2)
    retry_tid = sa.requests[-1][1].tid
    assert SaRequestRetried(SaAttr.GUID_INFO_RECORD, Method.SET, retry_tid, 1, SECOND) in found
    assert found[-1] == VfUp("vm1", 1, gid(V1), H2_LID, SECOND)
    # The retry kept the TID.
    assert sa.requests[-1][1].tid == sa.requests[-3][1].tid


def test_refused_until_retries_run_out() -> None:
    sa = FakeSa()
    sa.entries[(9, 1)] = V1  # some other port holds it for good
    h2 = host("h2", H2_GUID, H2_LID, config=GIVE_UP)
    h2.attach_vf("vm1", 0, vguid=V1)
    for attempt in range(3):
        exchange(sa, {H2_LID: h2}, attempt * SECOND)
        h2.handle_timer((attempt + 1) * SECOND)
    assert len(sa.requests) == 3  # libibmad: three sends in all
    assert events(h2)[-1] == AliasFailed("vm1", 1, V1, "set", "refused", 3 * SECOND)
    assert not h2.is_up("vm1") and h2.get_timer() is None


def test_release_of_a_vguid_still_in_use_or_unknown_raises() -> None:
    sa = FakeSa()
    h1 = host()
    h1.attach_vf("vm1", 0, vguid=V1)
    exchange(sa, {H1_LID: h1}, 0)
    with pytest.raises(HostError, match="still belongs"):
        h1.release_alias(V1, 0)
    with pytest.raises(HostError, match="not an alias"):
        h1.release_alias(V2, 0)


def test_operations_on_one_entry_run_in_order() -> None:
    """Set, Delete and Set again of one entry: one at a time, in the order asked; a
    Delete whose GUID was replaced meanwhile needs no SA."""
    sa = FakeSa()
    h1 = host()
    h1.set_alias("vm1", 0, vguid=V1, vf=1)
    h1.detach_vf("vm1", 0)
    h1.release_alias(V1, 0)
    h1.set_alias("vm2", 0, vguid=V2, vf=1)
    exchange(sa, {H1_LID: h1}, 5)
    assert [m.header.method for _, m in sa.requests] == [Method.SET, Method.DELETE, Method.SET]
    assert sa.entries == {(H1_LID, 1): V2}
    assert AliasAcknowledged("vm2", 1, V2, 5) in events(h1)


def test_delete_skipped_when_entry_was_overwritten() -> None:
    sa = FakeSa()
    h1 = host()
    h1.set_alias("vm1", 0, vguid=V1, vf=1)
    exchange(sa, {H1_LID: h1}, 0)
    h1.detach_vf("vm1", 0)
    h1.set_alias("vm2", 0, vguid=V2, vf=1)
    h1.release_alias(V1, 0)  # queued behind the Set of V2
    exchange(sa, {H1_LID: h1}, 7)
    assert [m.header.method for _, m in sa.requests] == [Method.SET, Method.SET]
    assert AliasReleased(V1, 1, 7) in events(h1)


def test_alias_waits_for_the_port() -> None:
    h1 = host(lid=None)
    h1.attach_vf("vm1", 0, vguid=V1)
    assert h1.packets_to_send() == [] and h1.get_timer() is None
    h1.port_active(H1_LID, SA_LID, 50)
    [(datagram, mad)] = sent(h1, 50)
    assert datagram.slid == H1_LID and mad.header.method == Method.SET


def test_grh_when_asked_and_the_sa_gid_is_known() -> None:
    config = HostConfig(subscribe_path_changes=False, send_grh=True)
    h1 = host(config=config, lid=None)
    h1.port_active(H1_LID, SA_LID, 0, sa_gid=gid(0xA1))
    h1.attach_vf("vm1", 0, vguid=V1)
    [(datagram, _)] = sent(h1, 0)
    assert datagram.sgid == gid(H1_GUID) and datagram.dgid == gid(0xA1)


def test_the_port_gid_follows_a_new_subnet_prefix() -> None:
    """The port GID is kept, not built per read: a prefix the SM gives later
    (PortInfo:GIDPrefix through `port_active`) is in it, in the SGID of requests
    with a GRH and in the HCA's demultiplexing."""
    config = HostConfig(subscribe_path_changes=False, send_grh=True)
    h1 = host(config=config, lid=None)
    assert h1.port_gid == gid(H1_GUID)
    site = 0xFEC0_0000_0000_0001
    h1.port_active(H1_LID, SA_LID, 0, sa_gid=gid(0xA1), subnet_prefix=site)
    site_gid = site.to_bytes(8, "big") + H1_GUID.to_bytes(8, "big")
    assert h1.subnet_prefix == site and h1.port_gid == site_gid
    h1.attach_vf("vm1", 0, vguid=V1)
    [(datagram, _)] = sent(h1, 0)
    assert datagram.sgid == site_gid
    to_port = Datagram(bytes(256), 1, SA_LID, H1_LID, 1, 1, sgid=gid(0xA1), dgid=site_gid)
    assert demultiplex(to_port, h1, lambda guid: None) == TO_DOM0
    old_gid = to_port._replace(dgid=gid(H1_GUID))  # the link-local GID is no longer the port's
    assert demultiplex(old_gid, h1, lambda guid: None) == NO_VF


# --- dynamic assignment ---------------------------------------------------------------


def test_dynamic_vm_takes_the_vf_guid_still_registered() -> None:
    sa = FakeSa()
    h1 = host(config=DYNAMIC)
    own = derived_vf_guid(H1_GUID, 1)
    assert h1.vf_guid(1) == own == 0x0201_C903_0000_0B01
    assert h1.attach_vf("vm1", 0) == 1
    exchange(sa, {H1_LID: h1}, 3)
    assert sa.entries == {(H1_LID, 1): own}
    assert events(h1)[-1] == VfUp("vm1", 1, gid(own), H1_LID, 3)
    # The VM leaves: the VF's GUID stays with the VF.
    h1.detach_vf("vm1", 4)
    assert sa.entries == {(H1_LID, 1): own} and h1.entry(1) == own
    # The next VM on that VF is up at once: the SA has the GUID already.
    h1.attach_vf("vm2", 5)
    assert h1.packets_to_send() == []
    assert events(h1)[-1] == VfUp("vm2", 1, gid(own), H1_LID, 5)


def test_dynamic_refuses_a_foreign_guid_and_static_needs_one() -> None:
    with pytest.raises(HostError, match="dynamic"):
        host(config=DYNAMIC).attach_vf("vm1", 0, vguid=V1)
    with pytest.raises(HostError, match="static"):
        host().attach_vf("vm1", 0)


def test_explicit_vf_guids() -> None:
    guids = [0x1000 + i for i in range(16)]
    h1 = host(config=DYNAMIC, vf_guids=guids)
    assert h1.vf_guid(3) == 0x1002
    with pytest.raises(ConfigError):
        host(config=DYNAMIC, vf_guids=guids[:3])
    with pytest.raises(ConfigError):
        host(config=DYNAMIC, vf_guids=[5] * 16)


# --- VF bookkeeping -------------------------------------------------------------------


def test_vf_allocation_and_misuse() -> None:
    h1 = host(config=HostConfig(subscribe_path_changes=False, num_vfs=2))
    assert h1.attach_vf("a", 0, vguid=V1) == 1
    assert h1.attach_vf("b", 0, vguid=V2) == 2
    assert h1.free_vfs() == [] and h1.vf_of("b") == 2
    with pytest.raises(HostError, match="no free VF"):
        h1.attach_vf("c", 0, vguid=0x77)
    with pytest.raises(HostError, match="already attached"):
        h1.attach_vf("a", 0)
    with pytest.raises(HostError, match="holds no VF"):
        h1.detach_vf("c", 0)
    with pytest.raises(HostError, match=r"VFs 1\.\.2"):
        h1.vf_guid(3)
    h1.detach_vf("a", 0)
    assert h1.free_vfs() == [1] and h1.vf_of("a") is None


# --- SA transactions --------------------------------------------------------------------


def test_lost_request_is_resent_with_the_same_tid_then_given_up() -> None:
    h1 = host(config=GIVE_UP)
    h1.attach_vf("vm1", 0, vguid=V1)
    [(_, first)] = sent(h1, 0)
    assert h1.get_timer() == SECOND
    h1.handle_timer(SECOND - 1)
    assert h1.packets_to_send() == []
    h1.handle_timer(SECOND)
    [(_, second)] = sent(h1)
    assert second.tid == first.tid and second.pack() == first.pack()
    h1.handle_timer(2 * SECOND)
    [(_, third)] = sent(h1)
    assert third.tid == first.tid
    assert h1.get_timer() == 3 * SECOND
    h1.handle_timer(3 * SECOND)
    assert h1.packets_to_send() == [] and h1.get_timer() is None
    found = events(h1)
    assert [e.attempt for e in found if isinstance(e, SaRequestRetried)] == [1, 2]
    assert found[-1] == AliasFailed("vm1", 1, V1, "set", "timeout", 3 * SECOND)
    assert h1.counters["sa_retries"] == 2 and h1.counters["sa_gave_up"] == 1


def test_answer_to_a_resent_request_completes_it() -> None:
    sa = FakeSa(drop=1)
    h1 = host()
    h1.attach_vf("vm1", 0, vguid=V1)
    exchange(sa, {H1_LID: h1}, 0)
    assert not h1.is_up("vm1")
    h1.handle_timer(SECOND)
    exchange(sa, {H1_LID: h1}, SECOND + 5)
    assert h1.is_up("vm1") and h1.get_timer() is None


def test_busy_waits_for_the_timer_other_errors_fail_at_once() -> None:
    sa = FakeSa(force_status=MadStatus.BUSY)
    h1 = host()
    h1.attach_vf("vm1", 0, vguid=V1)
    exchange(sa, {H1_LID: h1}, 0)
    assert h1.get_timer() == SECOND and h1.counters["sa_retryable_errors"] == 1
    sa.force_status = 0
    h1.handle_timer(SECOND)
    exchange(sa, {H1_LID: h1}, SECOND)
    assert h1.is_up("vm1")

    sa = FakeSa(force_status=SaStatus.ERR_REQ_INVALID)
    h2 = host("h2", H2_GUID, H2_LID)
    h2.attach_vf("vm2", 0, vguid=V2)
    exchange(sa, {H2_LID: h2}, 4)
    assert events(h2)[-1] == AliasFailed("vm2", 1, V2, "set", "status 0x0200", 4)
    assert h2.get_timer() is None


def test_stray_and_duplicate_answers_are_ignored() -> None:
    sa = FakeSa()
    h1 = host()
    h1.attach_vf("vm1", 0, vguid=V1)
    [request] = [d for d, _ in sent(h1, 0)]
    [reply] = sa.handle(request)
    h1.receive(reply, 1)
    h1.receive(reply, 2)  # a second answer with the same TID
    stray = SaMad.unpack(reply.payload)
    h1.receive(answer(request, sa_mad(Method.GET_RESP, 0x30, stray.data, tid=stray.tid + 9)), 3)
    assert h1.counters["responses_unmatched"] == 2
    assert [e for e in events(h1) if isinstance(e, VfUp)] == [VfUp("vm1", 1, gid(V1), H1_LID, 1)]


def test_tids_are_32_bit_and_matched_on_the_low_bits() -> None:
    h1 = host()
    h1.attach_vf("vm1", 0, vguid=V1)
    [(request, mad)] = sent(h1, 0)
    assert 0 < mad.tid < 1 << 32
    # A layer below rewrote the upper 32 bits of the TID on the way back.
    block = GUIDInfoRecord(H1_LID, 0, mad.record().guid_info)  # type: ignore[union-attr]
    h1.receive(
        answer(request, sa_mad(Method.GET_RESP, 0x30, block.pack(), tid=mad.tid | 0xAB << 40)), 1
    )
    assert h1.is_up("vm1")


def test_port_lid_change_reannounces_up_vfs() -> None:
    sa = FakeSa()
    h1 = host()
    h1.attach_vf("vm1", 0, vguid=V1)
    exchange(sa, {H1_LID: h1}, 0)
    events(h1)
    h1.port_active(9, SA_LID, 10)
    assert events(h1) == [
        MappingUpdated(V1, H1_LID, 9, "local", 10),
        VfUp("vm1", 1, gid(V1), 9, 10),
    ]
    with pytest.raises(HostError):
        h1.port_active(0, SA_LID, 11)


# --- configuration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "where"),
    [
        ({"num_vfs": 0}, "host.num_vfs"),
        ({"num_vfs": 255}, "host.num_vfs"),
        ({"sa_timeout_ns": 0}, "host.sa_timeout_ns"),
        ({"sa_retries": -1}, "host.sa_retries"),
        ({"sa_retries": True}, "host.sa_retries"),
        ({"inform_resp_time_value": 32}, "host.inform_resp_time_value"),
        ({"assignment": "sticky"}, "host.assignment"),
        ({"send_grh": 1}, "host.send_grh"),
    ],
)
def test_config_errors(kwargs: dict[str, Any], where: str) -> None:
    with pytest.raises(ConfigError) as info:
        HostConfig(**kwargs)
    assert info.value.where == where


def test_config_accepts_assignment_by_name() -> None:
    assert HostConfig(assignment="dynamic").assignment is AddressAssignment.DYNAMIC  # type: ignore[arg-type]


def test_derived_vf_guid_is_locally_administered() -> None:
    guid = derived_vf_guid(0x0002_C903_1234_5678, 7)
    assert guid >> 56 == 0x02  # U/L bit of the first octet set
    assert (guid >> 48) & 0xFF == 7
    assert guid & 0xFFFF_FFFF_FFFF == 0xC903_1234_5678
    with pytest.raises(ValueError):
        derived_vf_guid(1, 0)


# --- alias GUID requests asked again, as mlx4's alias GUID service -----------------------


def _retries(agent: HostAgent) -> list[AliasRetryScheduled]:
    return [e for e in events(agent) if isinstance(e, AliasRetryScheduled)]


def test_lost_alias_request_is_asked_again_every_second_without_end() -> None:
    h1 = host()
    h1.attach_vf("vm1", 0, vguid=V1)
    sends: list[int] = []
    tids: set[int] = set()
    now = 0
    for _ in range(40):  # nothing ever answers
        for _, mad in sent(h1):
            sends.append(now)
            tids.add(mad.header.tid)
        deadline = h1.get_timer()
        assert deadline is not None, "a lost alias request is never given up"
        now = deadline
        h1.handle_timer(now)
    # Three sends of one request (1 s apart), then a new request 1 s after the give-up.
    assert sends[:7] == [0, SECOND, 2 * SECOND, 4 * SECOND, 5 * SECOND, 6 * SECOND, 8 * SECOND]
    assert len(tids) > 5
    assert not any(isinstance(e, AliasFailed) for e in events(h1))


def test_declined_alias_request_backs_off_doubling_to_a_minute_then_succeeds() -> None:
    sa = FakeSa()
    sa.entries[(9, 1)] = V1  # another port holds it
    h2 = host("h2", H2_GUID, H2_LID)
    h2.attach_vf("vm1", 0, vguid=V1)
    waits: list[int] = []
    now = 0
    for _ in range(60):
        exchange(sa, {H2_LID: h2}, now)
        for event in _retries(h2):
            assert event.reason == "refused"
            waits.append(event.retry_ns - event.time_ns)
        deadline = h2.get_timer()
        assert deadline is not None
        now = deadline
        h2.handle_timer(now)
    assert waits[:8] == [s * SECOND for s in (1, 2, 4, 8, 16, 32, 60, 60)]
    del sa.entries[(9, 1)]  # the other port lets it go: the next attempt succeeds
    for _ in range(8):
        exchange(sa, {H2_LID: h2}, now)
        deadline = h2.get_timer()
        if deadline is None:
            break
        now = deadline
        h2.handle_timer(now)
    assert h2.is_up("vm1")


def test_alias_retry_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="alias_retry_max_ns"):
        HostConfig(alias_retry_ns=10, alias_retry_max_ns=5)
    with pytest.raises(ConfigError, match="alias_retry_limit"):
        HostConfig(alias_retry_limit=-1)


def test_in_the_vswitch_model_dom0_maps_no_local_vm_to_the_ports_lid() -> None:
    """`HostConfig.vf_lids`: a VF's LID is its own, so the alias acknowledged puts no
    entry in the table (it would name the port's LID), and a guest registering a
    path to a local VM with its VF LID is not told otherwise."""
    h1 = host(config=HostConfig(vf_lids=True))
    h1.attach_vf("vm1", 10, vguid=V1)
    # Its subscription (per-host: the registration check below needs it) and the Set.
    [(datagram, mad)] = [
        (d, m) for d, m in sent(h1, 10) if m.attribute_id == SaAttr.GUID_INFO_RECORD
    ]
    record = mad.record()
    assert isinstance(record, GUIDInfoRecord)
    block = GUIDInfoRecord(H1_LID, 0, record.guid_info)
    h1.receive(answer(datagram, sa_mad(Method.GET_RESP, 0x30, block.pack(), tid=mad.tid)), 20)
    assert [type(e) for e in events(h1)] == [AliasAcknowledged, VfUp]
    assert h1.is_up("vm1") and h1.mapping == {} and h1.lookup(gid(V1)) is None
    h1.receive_intra_host("vm2", PathRegistered(gid(V1), 44), 30)  # vm1's VF LID
    assert h1.intra_host_to_send() == []


# --- a GUIDInfo record at a time (mlx4's alias GUID service) ---------------------------

G = [int(GUIDInfoRecordComp.GUID0) << i for i in range(8)]
V3 = 0x0002_C903_00AA_0003


def guid_records(sa: FakeSa) -> list[tuple[int, int, int, tuple[int, ...]]]:
    """(method, ComponentMask, block, GUIDs) of every GUIDInfoRecord request."""
    found = []
    for _, mad in sa.requests:
        record = mad.record()
        assert isinstance(record, GUIDInfoRecord)
        found.append(
            (mad.header.method, mad.component_mask, record.block_num, record.guid_info.guids)
        )
    return found


def test_a_host_placing_16_vms_sends_one_set_per_guidinfo_block() -> None:
    """VFs 1..16 are GUIDInfo indices 1..16: block 0 holds 1-7 (index 0 is the port
    GUID), block 1 holds 8-15, block 2 holds 16. Sixteen VMs attached together go
    out as three Sets, not sixteen, and every VM comes up from its block's answer."""
    sa = FakeSa()
    h1 = host(config=HostConfig(subscribe_path_changes=False, num_vfs=16))
    vguids = [0x0002_C903_00BB_0000 + i for i in range(17)]  # vguids[i] for VF i
    for i in range(1, 17):
        assert h1.attach_vf(f"vm{i}", 0, vguid=vguids[i]) == i
    # The work runs once the calls are done (a timer due now), not per call.
    assert h1.packets_to_send() == [] and h1.get_timer() == 0
    exchange(sa, {H1_LID: h1}, 0)
    assert guid_records(sa) == [
        (Method.SET, GIR_KEY | sum(G[1:]), 0, (0, *vguids[1:8])),
        (Method.SET, GIR_KEY | sum(G), 1, tuple(vguids[8:16])),
        (Method.SET, GIR_KEY | G[0], 2, (vguids[16], 0, 0, 0, 0, 0, 0, 0)),
    ]
    assert len({mad.tid for _, mad in sa.requests}) == 3
    assert all(h1.is_up(f"vm{i}") for i in range(1, 17))
    assert [e.vm for e in events(h1) if isinstance(e, VfUp)] == [f"vm{i}" for i in range(1, 17)]
    assert h1.counters["sa_requests"] == 3 and h1.get_timer() is None


def test_an_entry_refused_inside_a_batch_is_retried_alone_while_the_others_come_up() -> None:
    """One Set names entries 1-3; another port still holds entry 2's GUID (its VM has
    not left yet). Entries 1 and 3 come up from the answer; the resend, with the same
    TID, names entry 2 only, so it leaves the others -- and the Delete of entry 1
    asked meanwhile -- alone."""
    sa = FakeSa()
    sa.entries[(H2_LID, 1)] = V2
    h1 = host()
    hosts = {H1_LID: h1}
    for vm, vguid, vf in (("vm1", V1, 1), ("vm2", V2, 2), ("vm3", V3, 3)):
        h1.attach_vf(vm, 0, vguid=vguid, vf=vf)
    exchange(sa, hosts, 0)
    [(_, first)] = sa.requests
    assert first.component_mask == GIR_KEY | G[1] | G[2] | G[3]
    assert h1.is_up("vm1") and h1.is_up("vm3") and not h1.is_up("vm2")
    assert h1.counters["alias_refused"] == 1 and h1.get_timer() == SECOND
    # vm1 leaves: its Delete goes out while entry 2 waits for its resend.
    h1.detach_vf("vm1", 500)
    h1.release_alias(V1, 500)
    exchange(sa, hosts, 500)
    assert guid_records(sa)[1] == (Method.DELETE, GIR_KEY | G[1], 0, (0, V1, 0, 0, 0, 0, 0, 0))
    del sa.entries[(H2_LID, 1)]  # the other port released V2
    h1.handle_timer(SECOND)
    exchange(sa, hosts, SECOND)
    _, resend = sa.requests[2]
    assert resend.tid == first.tid
    assert guid_records(sa)[2] == (Method.SET, GIR_KEY | G[2], 0, (0, 0, V2, 0, 0, 0, 0, 0))
    assert h1.is_up("vm2")
    assert sa.entries == {(H1_LID, 2): V2, (H1_LID, 3): V3}
    ups = [(e.vm, e.time_ns) for e in events(h1) if isinstance(e, VfUp)]
    assert ups == [("vm1", 0), ("vm3", 0), ("vm2", SECOND)]


def test_a_batch_given_up_reports_each_entry_and_retries_each_on_its_own_count() -> None:
    """No answer to a two-entry Set: each entry gets its own AliasRetryScheduled, and
    entries whose waits end together are asked again together."""
    h1 = host()
    h1.attach_vf("vm1", 0, vguid=V1, vf=1)
    h1.attach_vf("vm2", 0, vguid=V2, vf=2)
    [(_, first)] = sent(h1, 0)
    assert first.component_mask == GIR_KEY | G[1] | G[2]
    for t in (SECOND, 2 * SECOND):  # the resends, lost too
        h1.handle_timer(t)
        assert len(sent(h1)) == 1
    h1.handle_timer(3 * SECOND)  # given up
    retries = [e for e in events(h1) if isinstance(e, AliasRetryScheduled)]
    assert [(e.vm, e.vf, e.reason, e.retry_ns) for e in retries] == [
        ("vm1", 1, "timeout", 4 * SECOND),
        ("vm2", 2, "timeout", 4 * SECOND),
    ]
    h1.handle_timer(4 * SECOND)
    [(_, again)] = sent(h1)
    assert again.component_mask == GIR_KEY | G[1] | G[2]


def test_deletes_and_sets_of_one_block_go_as_two_requests_deletes_first() -> None:
    """mlx4 names one method per request. A GUID moving from entry 1 to entry 2 of
    the same port is free only once the Delete is done, so Deletes go first."""
    sa = FakeSa()
    h1 = host()
    h1.attach_vf("vm1", 0, vguid=V1, vf=1)
    exchange(sa, {H1_LID: h1}, 0)
    h1.detach_vf("vm1", 10)
    h1.release_alias(V1, 10)
    h1.attach_vf("vm1b", 10, vguid=V1, vf=2)
    h1.attach_vf("vm3", 10, vguid=V3, vf=3)
    exchange(sa, {H1_LID: h1}, 10)
    assert guid_records(sa)[1:] == [
        (Method.DELETE, GIR_KEY | G[1], 0, (0, V1, 0, 0, 0, 0, 0, 0)),
        (Method.SET, GIR_KEY | G[2] | G[3], 0, (0, 0, V1, V3, 0, 0, 0, 0)),
    ]
    assert sa.refused == 0 and h1.is_up("vm1b") and h1.is_up("vm3")


def test_vms_leaving_together_are_deleted_before_they_are_set_at_the_destination() -> None:
    """Two VMs migrate from h1 to h2 at once: the source's one Delete (both entries)
    reaches the SA before the destination's one Set, as the migration engine
    orders them, so nothing is refused."""
    sa = FakeSa()
    h1, h2 = host(), host("h2", H2_GUID, H2_LID)
    hosts = {H1_LID: h1, H2_LID: h2}
    h1.attach_vf("vm1", 0, vguid=V1)
    h1.attach_vf("vm2", 0, vguid=V2)
    exchange(sa, hosts, 0)
    for vm, vguid in (("vm1", V1), ("vm2", V2)):
        h1.detach_vf(vm, 100)
        h1.release_alias(vguid, 100)
    for vm, vguid in (("vm1", V1), ("vm2", V2)):
        h2.attach_vf(vm, 100, vguid=vguid)
    exchange(sa, hosts, 100)
    assert [(d.slid, m.header.method, m.component_mask) for d, m in sa.requests] == [
        (H1_LID, Method.SET, GIR_KEY | G[1] | G[2]),
        (H1_LID, Method.DELETE, GIR_KEY | G[1] | G[2]),
        (H2_LID, Method.SET, GIR_KEY | G[1] | G[2]),
    ]
    assert sa.refused == 0 and h2.is_up("vm1") and h2.is_up("vm2")
    assert sa.entries == {(H2_LID, 1): V1, (H2_LID, 2): V2}

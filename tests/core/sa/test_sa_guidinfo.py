"""GUIDInfoRecord Get/Set/Delete, alias GUIDs written through the SM, and the single
path-change event (trap 69) when an alias GUID moves to another port.

Most tests here take the SA's answer after the port's write (`guid_info_answer`
"after_write"), which lets them see the write and the answer apart; OpenSM's order,
the default (answer first, write behind it), has its own tests at the end."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ibmig.core.engine import Datagram
from ibmig.core.sa import PathChangeDetected, QueryAnswered, SaConfig, SubnetAdministrator
from ibmig.core.sm.manager import SmConfig, SmpFailed, SubnetManager
from ibmig.errors import ConfigError
from ibmig.fabric.generators import fat_tree_2level
from ibmig.wire.mad import Method
from ibmig.wire.notice import (
    GidDetails,
    Notice,
    NoticeType,
    PathChangeDetails,
    PathValues,
    TrapNumber,
)
from ibmig.wire.sa import (
    GUIDInfoRecord,
    GUIDInfoRecordComp,
    InformInfo,
    PathRecord,
    PathRecordComp,
    SaAttr,
    SaMad,
    SaStatus,
)
from ibmig.wire.smp import Smp
from ibmig.wire.smp_attrs import GUIDInfo, SmpAttr
from tests.core.sa.sa_util import (
    H1_GUID,
    H1_LID,
    H1_NODE,
    H2_GUID,
    H2_LID,
    H3_GUID,
    H3_LID,
    PREFIX,
    SM_LID,
    SM_PORT_GUID,
    SW1,
    SW1_LID,
    SaClient,
    SaSim,
    answer_smps,
    ask,
    build_subnet,
    drain,
    events,
    one,
    request,
)
from tests.core.sa.sa_util import make_sa as make_opensm_sa
from tests.helpers import gid

GIR = SaAttr.GUID_INFO_RECORD
LID, BLOCK = GUIDInfoRecordComp.LID, GUIDInfoRecordComp.BLOCK_NUM
G = [int(GUIDInfoRecordComp.GUID0) << i for i in range(8)]
V1, V2 = 0x0002_C903_0000_1001, 0x0002_C903_0000_1002


def make_sa(
    config: SaConfig | None = None, *, up: bool = True, sm: SubnetManager | None = None
) -> SubnetAdministrator:
    """An SA that answers a write once the port confirms it (module docstring)."""
    after = replace(config or SaConfig(), guid_info_answer="after_write")
    return make_opensm_sa(after, up=up, sm=sm)


def block(*guids: int) -> GUIDInfo:
    return GUIDInfo(tuple(guids) + (0,) * (8 - len(guids)))


def write(
    sa: SubnetAdministrator,
    method: int,
    lid: int,
    guids: GUIDInfo,
    entries: tuple[int, ...],
    *,
    block_num: int = 0,
    tid: int = 0x50,
    now_ns: int = 1_000,
    slid: int | None = None,
) -> list[tuple[Datagram, SaMad]]:
    """A GUIDInfoRecord write, by default from the port it writes (its hypervisor)."""
    mask = LID | BLOCK
    for i in entries:
        mask |= G[i]
    return ask(
        sa,
        request(
            GIR,
            method,
            GUIDInfoRecord(lid, block_num, guids),
            mask=mask,
            tid=tid,
            slid=lid if slid is None else slid,
        ),
        now_ns,
    )


def guid_record(answer: SaMad) -> GUIDInfoRecord:
    assert answer.status == 0, hex(answer.status)
    record = answer.record()
    assert isinstance(record, GUIDInfoRecord)
    return record


def smp_blocks(smps: list[Smp]) -> list[tuple[int, tuple[int, ...]]]:
    assert all(smp.attribute_id == SmpAttr.GUID_INFO for smp in smps)
    return [(smp.attribute_modifier, GUIDInfo.unpack(smp.data).guids) for smp in smps]


def subscribe_path_changes(
    sa: SubnetAdministrator, lid: int, trap: int = TrapNumber.REPATH
) -> None:
    info = InformInfo(trap_number=trap, resp_time_value=18)
    answer = one(sa, request(SaAttr.INFORM_INFO, Method.SET, info, slid=lid))
    assert answer.status == 0


# --- Get / GetTable ----------------------------------------------------------------


def test_get_by_lid_and_block() -> None:
    sm = build_subnet()
    sm.db.nodes[H1_NODE].ports[1].alias_guids[3] = V1
    sa = make_sa(sm=sm)
    query = GUIDInfoRecord(H1_LID, 0, GUIDInfo())
    answer = one(sa, request(GIR, Method.GET, query, mask=LID | BLOCK))
    assert answer.attribute_offset == 9
    assert guid_record(answer) == GUIDInfoRecord(H1_LID, 0, block(H1_GUID, 0, 0, V1))


def test_get_table_by_lid_gives_every_block() -> None:
    sa = make_sa(SaConfig(rmpp=False))
    query = GUIDInfoRecord(H1_LID, 0, GUIDInfo())
    answer = one(sa, request(GIR, Method.GET_TABLE, query, mask=LID))
    # GUIDCap 32: four blocks; rmpp=False cuts the table to two 72-byte records
    assert [r.block_num for r in answer.records() if isinstance(r, GUIDInfoRecord)] == [0, 1]
    assert sa.counters["records_trimmed"] == 2


def test_switch_has_one_block_and_blocks_beyond_guid_cap_none() -> None:
    sa = make_sa()
    switch = one(sa, request(GIR, Method.GET, GUIDInfoRecord(SW1_LID, 0, GUIDInfo()), mask=LID))
    assert guid_record(switch) == GUIDInfoRecord(SW1_LID, 0, block(SW1))
    beyond = one(
        sa, request(GIR, Method.GET, GUIDInfoRecord(H1_LID, 4, GUIDInfo()), mask=LID | BLOCK)
    )
    assert beyond.status == SaStatus.ERR_NO_RECORDS


def test_get_guid0_rule_of_opensm() -> None:
    """GUID0 of block 0 in the mask matches the requester's own port GUID."""
    sa = make_sa()
    mine = GUIDInfoRecord(0, 0, block(H1_GUID))
    answer = one(sa, request(GIR, Method.GET, mine, mask=BLOCK | G[0], slid=H1_LID))
    assert guid_record(answer).lid == H1_LID
    theirs = GUIDInfoRecord(0, 0, block(H2_GUID))
    answer = one(sa, request(GIR, Method.GET, theirs, mask=BLOCK | G[0], slid=H1_LID))
    assert answer.status == SaStatus.ERR_NO_RECORDS


# --- Set / Delete: errors ----------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "mask", "status"),
    [
        (
            GUIDInfoRecord(H1_LID, 0, block(0, V1)),
            LID | G[1],
            SaStatus.ERR_REQ_INSUFFICIENT_COMPONENTS,
        ),
        (GUIDInfoRecord(40, 0, block(0, V1)), LID | BLOCK | G[1], SaStatus.ERR_NO_RECORDS),
        (GUIDInfoRecord(H1_LID, 4, block(V1)), LID | BLOCK | G[0], SaStatus.ERR_NO_RECORDS),
        (GUIDInfoRecord(SW1_LID, 1, block(V1)), LID | BLOCK | G[0], SaStatus.ERR_NO_RECORDS),
        (GUIDInfoRecord(H1_LID, 0, block(V1)), LID | BLOCK | G[0], SaStatus.ERR_REQ_INVALID),
    ],
)
@pytest.mark.parametrize("method", [Method.SET, Method.DELETE])
def test_write_errors(record: GUIDInfoRecord, mask: int, status: int, method: int) -> None:
    sa = make_sa()
    own = record.lid if sa.db.port_record(record.lid) is not None else H1_LID
    answer = one(sa, request(GIR, method, record, mask=mask, slid=own))
    assert answer.status == status
    assert answer.header.method == (Method.GET_RESP if method == Method.SET else 0x95)
    assert sa.sm.packets_to_send() == []


# --- Set / Delete: writes through the SM ---------------------------------------------


def test_set_writes_the_merged_block_and_answers_when_the_port_does() -> None:
    sa = make_sa()
    sm = sa.sm
    assert write(sa, Method.SET, H1_LID, block(0, V1, 0, V2, 7), (1, 3), tid=0x51) == []
    smps = answer_smps(sm, 2_000)
    # index 0 is the port GUID; entry 4 was not in the mask
    assert smp_blocks(smps) == [(0, (H1_GUID, V1, 0, V2, 0, 0, 0, 0))]
    [(datagram, answer)] = drain(sa)
    assert answer.header.method == Method.GET_RESP and answer.tid == 0x51
    assert guid_record(answer) == GUIDInfoRecord(H1_LID, 0, block(H1_GUID, V1, 0, V2))
    assert datagram.dlid == H1_LID  # back to the requester: the port itself
    assert sm.db.alias_owner == {V1: H1_GUID, V2: H1_GUID}
    assert sm.db.lid_of_guid(V1) == H1_LID
    assert [e for e in events(sa) if isinstance(e, PathChangeDetected)] == []
    # the same Set again changes nothing: answered at once, no SMP
    [(_, again)] = write(sa, Method.SET, H1_LID, block(0, V1), (1,))
    assert guid_record(again).guid_info == block(H1_GUID, V1, 0, V2)
    assert sm.packets_to_send() == []


def test_delete_zeroes_entries() -> None:
    sa = make_sa()
    write(sa, Method.SET, H1_LID, block(0, V1, V2), (1, 2))
    answer_smps(sa.sm, 2_000)
    drain(sa)
    assert write(sa, Method.DELETE, H1_LID, GUIDInfo(), (1,), tid=0x60) == []
    assert smp_blocks(answer_smps(sa.sm, 3_000)) == [(0, (H1_GUID, 0, V2, 0, 0, 0, 0, 0))]
    [(_, answer)] = drain(sa)
    assert answer.header.method == Method.DELETE_RESP
    assert guid_record(answer).guid_info == block(H1_GUID, 0, V2)
    assert sa.db.alias_owner == {V2: H1_GUID}
    assert sa.last_lid_of(V1) == H1_LID  # remembered after the delete
    # deleting what is not there: answered at once
    [(_, nothing)] = write(sa, Method.DELETE, H1_LID, GUIDInfo(), (1, 5))
    assert guid_record(nothing).guid_info == block(H1_GUID, 0, V2)


def test_other_blocks() -> None:
    sa = make_sa()
    write(sa, Method.SET, H1_LID, block(V1), (0,), block_num=2)
    assert smp_blocks(answer_smps(sa.sm, 2_000)) == [(2, (V1, 0, 0, 0, 0, 0, 0, 0))]
    [(_, answer)] = drain(sa)
    assert guid_record(answer) == GUIDInfoRecord(H1_LID, 2, block(V1))
    assert sa.sm.db.nodes[H1_NODE].ports[1].alias_guids == {16: V1}


def test_duplicate_alias_is_refused() -> None:
    sa = make_sa()
    write(sa, Method.SET, H1_LID, block(0, V1), (1,))
    answer_smps(sa.sm, 2_000)
    drain(sa)
    # h2 asks for V1 while h1 holds it: refused, nothing to write
    [(_, answer)] = write(sa, Method.SET, H2_LID, block(0, V1), (1,))
    assert guid_record(answer).guid_info == block(H2_GUID)
    assert sa.counters["duplicate_alias_refused"] == 1
    # and at another index of the same port
    [(_, answer)] = write(sa, Method.SET, H1_LID, block(0, 0, V1), (2,))
    assert guid_record(answer).guid_info == block(H1_GUID, V1)
    # a physical port GUID cannot become an alias either
    [(_, answer)] = write(sa, Method.SET, H1_LID, block(0, 0, H2_GUID), (2,))
    assert guid_record(answer).guid_info == block(H1_GUID, V1)


def test_a_set_of_several_entries_writes_those_it_can_in_one_smp() -> None:
    """dom0 writes a GUIDInfo record at a time (mlx4's alias GUID service). OpenSM's
    set_guidinfo takes each entry of the mask on its own: a GUID another port holds
    is left out (the entry keeps what it had), the others are written with one
    SubnSet(GUIDInfo), and the answer carries the block as the table now holds it,
    which is how the requester tells the refused entry apart."""
    sa = make_sa()
    write(sa, Method.SET, H2_LID, block(0, V2), (1,))
    answer_smps(sa.sm, 2_000)
    drain(sa)
    v3 = 0x0002_C903_0000_1003
    assert write(sa, Method.SET, H1_LID, block(0, V1, V2, v3), (1, 2, 3), tid=0x52) == []
    assert smp_blocks(answer_smps(sa.sm, 3_000)) == [(0, (H1_GUID, V1, 0, v3, 0, 0, 0, 0))]
    [(_, answer)] = drain(sa)
    assert answer.tid == 0x52
    assert guid_record(answer).guid_info == block(H1_GUID, V1, 0, v3)
    assert sa.counters["duplicate_alias_refused"] == 1
    assert sa.db.alias_owner == {V1: H1_GUID, V2: H2_GUID, v3: H1_GUID}
    # A Delete of several entries clears them all with one SMP.
    assert write(sa, Method.DELETE, H1_LID, block(0, V1, 0, v3), (1, 3), tid=0x53) == []
    assert smp_blocks(answer_smps(sa.sm, 4_000)) == [(0, (H1_GUID, 0, 0, 0, 0, 0, 0, 0))]
    [(_, deleted)] = drain(sa)
    assert guid_record(deleted).guid_info == block(H1_GUID)
    assert sa.db.alias_owner == {V2: H2_GUID}


def test_one_set_naming_a_guid_twice_writes_it_once() -> None:
    """Found by the stateful test: a Set naming the same GUID for two entries of a
    block wrote both, so the port held one alias GUID at two indices. The later
    entry is refused as a duplicate (OpenSM finds the earlier entry in its alias
    table)."""
    sa = make_sa()
    write(sa, Method.SET, H1_LID, block(0, V1, V1, V2), (1, 2, 3))
    assert smp_blocks(answer_smps(sa.sm, 2_000)) == [(0, (H1_GUID, V1, 0, V2, 0, 0, 0, 0))]
    [(_, answer)] = drain(sa)
    assert guid_record(answer).guid_info == block(H1_GUID, V1, 0, V2)
    assert sa.counters["duplicate_alias_refused"] == 1
    assert sa.db.nodes[H1_NODE].ports[1].alias_guids == {1: V1, 3: V2}


def test_sm_assigned_guid_for_zero() -> None:
    sa = make_sa(SaConfig(sm_assigned_guid=0x42))
    write(sa, Method.SET, H1_LID, block(), (1, 2))
    [(_, guids)] = smp_blocks(answer_smps(sa.sm, 2_000))
    assigned = 0x001405_42_00000001, 0x001405_42_00000002
    assert guids[1:3] == assigned
    drain(sa)
    # a zero where a GUID is already set keeps it
    [(_, answer)] = write(sa, Method.SET, H1_LID, block(), (1,))
    assert guid_record(answer).guid_info.guids[1] == assigned[0]


def test_writes_in_flight_merge() -> None:
    sa = make_sa()
    write(sa, Method.SET, H1_LID, block(0, V1), (1,), tid=1)
    write(sa, Method.SET, H1_LID, block(0, 0, V2), (2,), tid=2)
    blocks = smp_blocks(answer_smps(sa.sm, 2_000))
    assert blocks == [(0, (H1_GUID, V1, 0, 0, 0, 0, 0, 0)), (0, (H1_GUID, V1, V2, 0, 0, 0, 0, 0))]
    answers = {mad.tid: guid_record(mad).guid_info for _, mad in drain(sa)}
    assert answers == {1: block(H1_GUID, V1), 2: block(H1_GUID, V1, V2)}
    assert sa.db.alias_owner == {V1: H1_GUID, V2: H1_GUID}


def test_refused_write_is_answered_with_an_error() -> None:
    sa = make_sa()
    write(sa, Method.SET, H1_LID, block(0, V1), (1,), now_ns=1_000)
    answer_smps(sa.sm, 1_050, status=0x001C)  # the port refuses
    assert isinstance(events(sa.sm)[0], SmpFailed)
    [(_, answer)] = drain(sa)
    assert answer.status == SaStatus.ERR_NO_RESOURCES
    assert answer.header.method == Method.GET_RESP
    assert sa.db.alias_owner == {}
    assert sa.get_timer() is None
    # a later write starts from the port's real table again
    write(sa, Method.SET, H1_LID, block(0, 0, V2), (2,))
    assert smp_blocks(answer_smps(sa.sm, 5_000)) == [(0, (H1_GUID, 0, V2, 0, 0, 0, 0, 0))]


def test_unconfirmed_write_times_out() -> None:
    sm = build_subnet(SmConfig(max_retries=0, transaction_timeout_ns=100))
    sa = make_sa(SaConfig(guid_info_timeout_ns=50), sm=sm)
    write(sa, Method.SET, H1_LID, block(0, V1), (1,), now_ns=1_000)
    sm.packets_to_send()  # the SMP is lost
    assert sa.get_timer() == 1_050
    sa.handle_timer(1_050)
    [(_, answer)] = drain(sa)
    assert answer.status == SaStatus.ERR_NO_RESOURCES
    assert sa.counters["guid_info_write_timeouts"] == 1
    sm.handle_timer(1_100)  # the SM gives up too, later: nothing more to answer
    assert drain(sa) == []
    assert sa.get_timer() is None


def test_default_write_timeout_outlasts_the_sm() -> None:
    sm = build_subnet(SmConfig(max_retries=1, transaction_timeout_ns=100))
    sa = make_sa(sm=sm)
    write(sa, Method.SET, H1_LID, block(0, V1), (1,), now_ns=1_000)
    assert sa.get_timer() == 1_000 + 3 * 100  # (retries + 2) x transaction timeout


def test_guid_info_timeout_config() -> None:
    sa = make_sa(SaConfig(guid_info_timeout_ns=77))
    write(sa, Method.SET, H1_LID, block(0, V1), (1,), now_ns=10)
    assert sa.get_timer() == 87


# --- path changes -------------------------------------------------------------------


def move_v1_from_h1_to_h2(sa: SubnetAdministrator) -> list[object]:
    write(sa, Method.SET, H1_LID, block(0, V1), (1,), now_ns=1_000)
    answer_smps(sa.sm, 1_500)
    write(sa, Method.DELETE, H1_LID, GUIDInfo(), (1,), now_ns=2_000)
    answer_smps(sa.sm, 2_500)
    write(sa, Method.SET, H2_LID, block(0, 0, 0, V1), (3,), now_ns=3_000)
    answer_smps(sa.sm, 3_500)
    return events(sa)


def test_alias_move_raises_one_path_change_and_trap_69() -> None:
    sa = make_sa()
    subscribe_path_changes(sa, H3_LID)
    found = move_v1_from_h1_to_h2(sa)
    changes = [e for e in found if isinstance(e, PathChangeDetected)]
    assert changes == [PathChangeDetected(V1, H1_LID, H2_LID, H1_GUID, H2_GUID, 3_500)]
    reports = [(d, m) for d, m in drain(sa) if m.header.method == Method.REPORT]
    assert len(reports) == 1
    datagram, report = reports[0]
    assert datagram.dlid == H3_LID and datagram.dqp == 1
    notice = report.record()
    assert isinstance(notice, Notice)
    assert notice.trap_number == TrapNumber.REPATH
    assert notice.issuer_lid == SM_LID
    assert notice.issuer_gid == gid(SM_PORT_GUID)
    assert notice.details == PathChangeDetails(gid(V1, PREFIX), H2_LID, H1_LID, H2_GUID, H1_GUID)
    # once only: writing it again where it is changes nothing
    write(sa, Method.SET, H2_LID, block(0, 0, 0, V1), (3,), now_ns=4_000)
    answer_smps(sa.sm, 4_500)
    assert not [e for e in events(sa) if isinstance(e, PathChangeDetected)]
    assert sa.counters["path_changes"] == 1


def test_alias_move_as_traps_65_then_64_with_only_the_gid() -> None:
    """The "trap64-65" variant: GID out of service for the old location, then in
    service for the new; both carry the vGUID's GID and no LID. A subscriber of
    trap 69 gets nothing; subscribers of 64 and 65 one Report each."""
    sa = make_sa(SaConfig(path_change_notice="trap64-65"))
    subscribe_path_changes(sa, H3_LID, TrapNumber.GID_OUT_OF_SERVICE)
    subscribe_path_changes(sa, H3_LID, TrapNumber.GID_IN_SERVICE)
    subscribe_path_changes(sa, H2_LID)  # trap 69
    found = move_v1_from_h1_to_h2(sa)
    changes = [e for e in found if isinstance(e, PathChangeDetected)]
    assert changes == [PathChangeDetected(V1, H1_LID, H2_LID, H1_GUID, H2_GUID, 3_500)]
    reports = [(d, m) for d, m in drain(sa) if m.header.method == Method.REPORT]
    assert [d.dlid for d, _ in reports] == [H3_LID, H3_LID]
    notices = [m.record() for _, m in reports]
    assert [n.trap_number for n in notices if isinstance(n, Notice)] == [65, 64]
    for notice in notices:
        assert isinstance(notice, Notice)
        assert notice.details == GidDetails(gid(V1, PREFIX))
        assert (notice.issuer_lid, notice.issuer_gid) == (SM_LID, gid(SM_PORT_GUID))
        assert notice.is_generic and notice.type == NoticeType.SM


def test_unknown_notice_variant_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="trap69, trap69-path, trap64-65"):
        SaConfig(path_change_notice="trap70")


def test_alias_moving_back_is_another_change() -> None:
    sa = make_sa()
    move_v1_from_h1_to_h2(sa)
    write(sa, Method.DELETE, H2_LID, GUIDInfo(), (3,), now_ns=5_000)
    answer_smps(sa.sm, 5_500)
    write(sa, Method.SET, H1_LID, block(0, 0, V1), (2,), now_ns=6_000)
    answer_smps(sa.sm, 6_500)
    changes = [e for e in events(sa) if isinstance(e, PathChangeDetected)]
    assert changes == [PathChangeDetected(V1, H2_LID, H1_LID, H2_GUID, H1_GUID, 6_500)]


def test_no_path_change_without_detection() -> None:
    sa = make_sa(SaConfig(detect_alias_moves=False))
    subscribe_path_changes(sa, H3_LID)
    found = move_v1_from_h1_to_h2(sa)
    assert not [e for e in found if isinstance(e, PathChangeDetected)]
    assert [m for _, m in drain(sa) if m.header.method == Method.REPORT] == []
    assert sa.db.lid_of_guid(V1) == H2_LID  # the move itself happened


def test_aliases_present_at_subnet_up_are_remembered() -> None:
    sm = build_subnet()
    sm.db.nodes[H1_NODE].ports[1].alias_guids[1] = V1
    sm.db.alias_owner[V1] = H1_GUID
    sa = make_sa(sm=sm)
    assert sa.last_lid_of(V1) == H1_LID
    write(sa, Method.DELETE, H1_LID, GUIDInfo(), (1,))
    answer_smps(sm, 2_000)
    write(sa, Method.SET, H2_LID, block(0, V1), (1,))
    answer_smps(sm, 3_000)
    changes = [e for e in events(sa) if isinstance(e, PathChangeDetected)]
    assert [(c.old_lid, c.new_lid) for c in changes] == [(H1_LID, H2_LID)]


def test_alias_of_a_port_that_left_is_free() -> None:
    """The host died: its aliases may be set elsewhere, and that is a path change."""
    sm = build_subnet()
    sa = make_sa(sm=sm)
    write(sa, Method.SET, H1_LID, block(0, V1), (1,))
    answer_smps(sm, 2_000)
    del sm.db.port_lid[H1_GUID]
    del sm.db.lid_owner[H1_LID]
    write(sa, Method.SET, H2_LID, block(0, V1), (1,))
    assert smp_blocks(answer_smps(sm, 3_000)) == [(0, (H2_GUID, V1, 0, 0, 0, 0, 0, 0))]
    changes = [e for e in events(sa) if isinstance(e, PathChangeDetected)]
    assert [(c.old_lid, c.new_lid) for c in changes] == [(H1_LID, H2_LID)]


def test_query_answered_events_of_writes() -> None:
    sa = make_sa()
    write(sa, Method.SET, H1_LID, block(0, V1), (1,), now_ns=10)
    answer_smps(sa.sm, 20)
    assert events(sa) == [QueryAnswered(GIR, Method.SET, 0, 1, 20)]


# --- end to end on a simulated subnet ----------------------------------------------


def test_vguid_migration_end_to_end() -> None:
    """Real SM and SMAs: a hypervisor sets a vGUID through the SA, the SMA's GUIDInfo
    holds it, it moves to another host, a subscriber gets trap 69 and answers it."""
    sim = SaSim(fat_tree_2level(leaves=2, hosts_per_leaf=2, spines=1))
    sim.start()
    assert sim.run_until_up() is not None
    source = SaClient(sim, sim.node_index("h0_1"))
    target = SaClient(sim, sim.node_index("h1_0"))
    watcher = SaClient(sim, sim.node_index("h1_1"))
    watcher.send(request(SaAttr.INFORM_INFO, Method.SET, InformInfo(trap_number=69), tid=1))
    sim.run()
    assert watcher.answers(1)[0].status == 0

    def set_or_delete(client: SaClient, method: int, tid: int) -> SaMad:
        record = GUIDInfoRecord(client.lid, 0, block(0, V1))
        client.send(request(GIR, method, record, mask=LID | BLOCK | G[1], tid=tid))
        sim.run()
        [answer] = client.answers(tid)
        return answer

    first = set_or_delete(source, Method.SET, 10)
    assert guid_record(first).guid_info.guids[1] == V1
    assert sim.agents[source.node].guid_table(1)[1] == V1
    set_or_delete(source, Method.DELETE, 11)
    assert sim.agents[source.node].guid_table(1)[1] == 0
    moved = set_or_delete(target, Method.SET, 12)
    assert guid_record(moved).guid_info.guids[1] == V1
    assert sim.agents[target.node].guid_table(1)[1] == V1
    [report] = watcher.reports
    notice = report.record()
    assert isinstance(notice, Notice)
    details = notice.details
    assert isinstance(details, PathChangeDetails)
    assert (details.old_lid, details.new_lid) == (source.lid, target.lid)
    assert details.vguid == V1
    assert sim.sa.outstanding_reports == 0  # the watcher's ReportResp retired it
    assert sim.sa.counters["reports_acked"] == 1


def test_set_before_delete_on_a_simulated_subnet_is_refused() -> None:
    sim = SaSim(fat_tree_2level(leaves=1, hosts_per_leaf=3, spines=1))
    sim.start()
    assert sim.run_until_up() is not None
    a = SaClient(sim, sim.node_index("h0_1"))
    b = SaClient(sim, sim.node_index("h0_2"))
    for tid, client in ((1, a), (2, b)):
        record = GUIDInfoRecord(client.lid, 0, block(0, V1))
        client.send(request(GIR, Method.SET, record, mask=LID | BLOCK | G[1], tid=tid))
        sim.run()
    assert guid_record(a.answers(1)[0]).guid_info.guids[1] == V1
    assert guid_record(b.answers(2)[0]).guid_info.guids[1] == 0
    assert sim.sm.db.lid_of_guid(V1) == a.lid


# --- OpenSM's order (the default): answer first, the port written behind it ----------


def test_opensm_answers_a_set_before_the_port_is_written() -> None:
    sa = make_opensm_sa()
    sm = sa.sm
    subscribe_path_changes(sa, H3_LID)
    [(datagram, answer)] = write(sa, Method.SET, H1_LID, block(0, V1), (1,), tid=0x71)
    # Answered at once from the SA's table, before the SMP has even left the SM.
    assert answer.header.method == Method.GET_RESP and answer.tid == 0x71
    assert guid_record(answer).guid_info == block(H1_GUID, V1)
    # Back to the requester: `write` asks from the port itself (only the port may
    # write its GUIDs, h-parts), no longer from h3 as when this test was written.
    assert datagram.dlid == H1_LID
    assert sm.db.alias_owner == {}  # the port does not hold it yet
    smps = answer_smps(sm, 2_000)
    assert smp_blocks(smps) == [(0, (H1_GUID, V1, 0, 0, 0, 0, 0, 0))]
    assert drain(sa) == []  # nothing more to answer when the port confirms
    assert sm.db.alias_owner == {V1: H1_GUID}
    # A Delete is answered at once too. The move is seen when the destination's Set
    # is accepted: the SA's table, which PathRecords answer from, changes then, in
    # the order of the requests, whatever order the two ports' writes land in.
    [(_, deleted)] = write(sa, Method.DELETE, H1_LID, GUIDInfo(), (1,), now_ns=3_000)
    assert deleted.header.method == Method.DELETE_RESP
    assert guid_record(deleted).guid_info == block(H1_GUID)
    answers = write(sa, Method.SET, H2_LID, block(0, 0, V1), (2,), now_ns=3_200)
    [moved] = [m for _, m in answers if m.header.method == Method.GET_RESP]
    assert guid_record(moved).guid_info == block(H2_GUID, 0, V1)
    [(report_to, _)] = [(d, m) for d, m in answers if m.header.method == Method.REPORT]
    assert report_to.dlid == H3_LID
    changes = [e for e in events(sa) if isinstance(e, PathChangeDetected)]
    assert changes == [PathChangeDetected(V1, H1_LID, H2_LID, H1_GUID, H2_GUID, 3_200)]
    answer_smps(sm, 3_500)  # both ports' writes land: nothing more
    assert not [e for e in events(sa) if isinstance(e, PathChangeDetected)]
    assert sm.db.alias_owner == {V1: H2_GUID}


def path_to(sa: SubnetAdministrator, guid: int) -> int | None:
    """The DLID of the PathRecord from h2's port to `guid`; None without a record."""
    query = PathRecord(sgid=gid(H2_GUID, PREFIX), dgid=gid(guid, PREFIX))
    mask = int(PathRecordComp.SGID | PathRecordComp.DGID)
    answer = one(sa, request(SaAttr.PATH_RECORD, Method.GET, query, mask=mask, slid=H2_LID))
    if answer.status:
        assert answer.status == SaStatus.ERR_NO_RECORDS
        return None
    record = answer.record()
    assert isinstance(record, PathRecord)
    return record.dlid


@pytest.mark.parametrize("order", ["before_write", "after_write"])
def test_path_records_answer_from_what_the_order_makes_the_truth(order: str) -> None:
    """Under OpenSM's order PathRecords answer from the SA's table, which changes when
    a Set or Delete is accepted (a trap 64 is followed by PathRecord queries that
    must find the vGUID at its new port while its write is still on the wire);
    under "after_write" from the ports as written."""
    sa = make_opensm_sa(SaConfig(guid_info_answer=order))
    write(sa, Method.SET, H1_LID, block(0, V1), (1,), now_ns=1_000)
    assert sa.db.alias_owner == {}  # the port does not hold it yet
    assert path_to(sa, V1) == (H1_LID if order == "before_write" else None)
    answer_smps(sa.sm, 2_000)
    drain(sa)
    assert path_to(sa, V1) == H1_LID
    write(sa, Method.DELETE, H1_LID, GUIDInfo(), (1,), now_ns=3_000)
    assert path_to(sa, V1) == (None if order == "before_write" else H1_LID)
    answer_smps(sa.sm, 3_500)
    drain(sa)
    assert path_to(sa, V1) is None
    write(sa, Method.SET, H2_LID, block(0, 0, V1), (2,), now_ns=4_000)
    assert path_to(sa, V1) == (H2_LID if order == "before_write" else None)
    answer_smps(sa.sm, 4_500)
    drain(sa)
    assert path_to(sa, V1) == H2_LID


def test_opensm_order_answers_even_a_write_the_port_never_confirms() -> None:
    sm = build_subnet(SmConfig(max_retries=0, transaction_timeout_ns=100))
    sa = make_opensm_sa(SaConfig(guid_info_timeout_ns=50), sm=sm)
    [(_, answer)] = write(sa, Method.SET, H1_LID, block(0, V1), (1,), now_ns=1_000)
    assert guid_record(answer).guid_info == block(H1_GUID, V1)
    sm.packets_to_send()  # the SMP is lost
    assert sa.get_timer() is None  # nobody waits for the write
    sm.handle_timer(1_100)  # the SM gives up: no second answer, no error
    assert drain(sa) == []
    assert sa.counters["guid_info_write_timeouts"] == 0
    assert sm.db.alias_owner == {}
    # As OpenSM's, the SA's table keeps what it accepted: PathRecords still find the
    # alias at the port (which may not hold it), and the failed write is on record.
    assert sa.counters["guid_info_writes_failed"] == 1
    assert sa.unconfirmed_guid_writes == {(H1_GUID, 0): (H1_GUID, V1, 0, 0, 0, 0, 0, 0)}
    assert path_to(sa, V1) == H1_LID
    # the next write of the block replaces it and, confirmed, clears the record
    write(sa, Method.SET, H1_LID, block(0, 0, V2), (2,), now_ns=2_000)
    assert smp_blocks(answer_smps(sa.sm, 2_050)) == [(0, (H1_GUID, V1, V2, 0, 0, 0, 0, 0))]
    assert sa.unconfirmed_guid_writes == {}
    assert sm.db.alias_owner == {V1: H1_GUID, V2: H1_GUID}


def test_opensm_order_write_lost_once_is_resent_by_the_sm() -> None:
    """The SM resends a lost SubnSet(GUIDInfo) after its transaction timeout, as
    OpenSM's MAD layer does (transaction_retries 3, transaction_timeout 200 ms): a
    single loss costs the port one timeout, not the alias."""
    sm = build_subnet(SmConfig(max_retries=3, transaction_timeout_ns=100))
    sa = make_opensm_sa(sm=sm)
    write(sa, Method.SET, H1_LID, block(0, V1), (1,), now_ns=1_000)
    assert len(sm.packets_to_send()) == 1  # the SMP is lost
    sm.handle_timer(1_100)
    assert smp_blocks(answer_smps(sm, 1_150)) == [(0, (H1_GUID, V1, 0, 0, 0, 0, 0, 0))]
    assert sm.db.alias_owner == {V1: H1_GUID}
    assert sa.counters["guid_info_writes_failed"] == 0
    assert sa.unconfirmed_guid_writes == {}


def test_guid_info_answer_is_checked() -> None:
    with pytest.raises(ConfigError, match="before_write, after_write") as info:
        SaConfig(guid_info_answer="never")
    assert info.value.where == "sa.guid_info_answer"


def path_record_get(sa: SubnetAdministrator, slid: int, sguid: int, dguid: int) -> PathRecord:
    query = PathRecord(dgid=gid(dguid, PREFIX), sgid=gid(sguid, PREFIX), numb_path=1)
    mask = PathRecordComp.DGID | PathRecordComp.SGID | PathRecordComp.NUMB_PATH
    answer = one(sa, request(SaAttr.PATH_RECORD, Method.GET, query, mask=mask, slid=slid))
    assert answer.status == 0
    record = answer.record()
    assert isinstance(record, PathRecord)
    return record


def test_targeted_path_carrying_notice_reaches_only_the_ports_that_asked() -> None:
    """Targeted Reports: H2 and H3 subscribe, only H3 resolves a path to V1, so only
    H3 hears of V1's move; "trap69-path": the Report carries the values of H3's path
    to V1's new port, those a PathRecord query would now answer."""
    sa = make_sa(SaConfig(targeted_reports=True, path_change_notice="trap69-path"))
    subscribe_path_changes(sa, H2_LID)
    subscribe_path_changes(sa, H3_LID)
    write(sa, Method.SET, H1_LID, block(0, V1), (1,), now_ns=1_000)
    answer_smps(sa.sm, 1_500)
    drain(sa)  # the Set's answer
    before = path_record_get(sa, H3_LID, H3_GUID, V1)
    assert before.dlid == H1_LID
    assert sa.path_requesters == {V1: {H3_GUID}}
    write(sa, Method.DELETE, H1_LID, GUIDInfo(), (1,), now_ns=2_000)
    answer_smps(sa.sm, 2_500)
    write(sa, Method.SET, H2_LID, block(0, 0, 0, V1), (3,), now_ns=3_000)
    answer_smps(sa.sm, 3_500)
    reports = [(d, m) for d, m in drain(sa) if m.header.method == Method.REPORT]
    assert [d.dlid for d, _ in reports] == [H3_LID]
    notice = reports[0][1].record()
    assert isinstance(notice, Notice) and isinstance(notice.details, PathChangeDetails)
    after = path_record_get(sa, H3_LID, H3_GUID, V1)
    assert after.dlid == H2_LID == notice.details.new_lid
    assert notice.details.path == PathValues(
        after.sl, after.mtu, after.rate, after.packet_life_time
    )


def test_untargeted_notice_carries_no_path_values_and_reaches_every_subscriber() -> None:
    sa = make_sa()
    subscribe_path_changes(sa, H2_LID)
    subscribe_path_changes(sa, H3_LID)
    move_v1_from_h1_to_h2(sa)
    reports = [(d, m) for d, m in drain(sa) if m.header.method == Method.REPORT]
    assert sorted(d.dlid for d, _ in reports) == [H2_LID, H3_LID]
    for _, report in reports:
        notice = report.record()
        assert isinstance(notice, Notice) and isinstance(notice.details, PathChangeDetails)
        assert notice.details.path is None
    assert sa.path_requesters == {}

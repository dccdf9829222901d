"""MCMemberRecord join/leave/query, the IPoIB broadcast group, MFT programming and
MFTRecord under a hand-driven clock (ibmig.core.sa.multicast, ibmig.core.sm.multicast;
OpenSM osm_sa_mcmember_record.c, osm_multicast.c, osm_mcast_mgr.c)."""

from __future__ import annotations

from ibmig.core.sa import SaConfig, SubnetAdministrator
from ibmig.wire.mad import Method
from ibmig.wire.sa import (
    GUIDInfoRecord,
    GUIDInfoRecordComp,
    JoinState,
    MCMemberRecord,
    MFTRecord,
    SaAttr,
    SaMad,
    SaStatus,
)
from ibmig.wire.sa import MCMemberRecordComp as C
from ibmig.wire.smp import Smp
from ibmig.wire.smp_attrs import (
    GUIDInfo,
    MulticastForwardingTable,
    SmpAttr,
    SmState,
    SwitchInfo,
    mft_block_position,
)
from tests.core.sa.sa_util import (
    H1_GUID,
    H1_LID,
    H2_GUID,
    H2_LID,
    H3_GUID,
    H3_LID,
    SW1,
    SW1_LID,
    SW2,
    answer_smps,
    ask,
    drain,
    make_sa,
    one,
    request,
    table_records,
)
from tests.helpers import gid

MCR = SaAttr.MC_MEMBER_RECORD
BROADCAST = bytes.fromhex("ff12401bffff000000000000ffffffff")
JOIN = C.MGID | C.PORT_GID | C.JOIN_STATE
CREATE = JOIN | C.QKEY | C.TCLASS | C.PKEY | C.FLOW_LABEL | C.SL
V1 = 0x0002_C903_0000_1001
SA_KEY = 1


def up_sa() -> SubnetAdministrator:
    """The hand-built subnet with the SM master and up, switches able to hold MFTs."""
    sa = make_sa()
    sm = sa.sm
    sm._up_since_sweep = True
    sm.role.state = SmState.MASTER
    for guid in (SW1, SW2):
        sm.db.nodes[guid].switch_info = SwitchInfo(multicast_fdb_cap=1024)
    return sa


def mcr(answer: SaMad) -> MCMemberRecord:
    assert answer.status == 0, hex(answer.status)
    record = answer.record()
    assert isinstance(record, MCMemberRecord)
    return record


def join(
    sa: SubnetAdministrator,
    port_guid: int,
    mgid: bytes = BROADCAST,
    *,
    state: int = JoinState.FULL_MEMBER,
    mask: int = JOIN,
    slid: int | None = None,
    method: int = Method.SET,
    **fields: object,
) -> SaMad:
    record = MCMemberRecord(mgid, gid(port_guid), join_state=state, **fields)  # type: ignore[arg-type]
    lid = slid if slid is not None else sa.db.lid_of_guid(port_guid)
    assert lid is not None
    return one(sa, request(MCR, method, record, mask=mask, slid=lid))


def table(
    sa: SubnetAdministrator, mask: int = 0, *, sm_key: int = 0, **fields: object
) -> list[MCMemberRecord]:
    record = MCMemberRecord(**fields)  # type: ignore[arg-type]
    answers = [
        m for _, m in ask(sa, request(MCR, Method.GET_TABLE, record, mask=mask, sm_key=sm_key))
    ]
    found = table_records(answers)
    assert all(isinstance(r, MCMemberRecord) for r in found)
    return list(found)  # type: ignore[arg-type]


def mft_sets(smps: list[Smp]) -> list[tuple[int, int, int, tuple[int, ...]]]:
    """(hops of the DR path to the switch, block, position, masks) of MFT Sets."""
    out = []
    for smp in smps:
        assert smp.attribute_id == SmpAttr.MULTICAST_FORWARDING_TABLE
        block, position = mft_block_position(smp.attribute_modifier)
        out.append(
            (
                smp.hop_count,
                block,
                position,
                MulticastForwardingTable.unpack(smp.data).port_masks,
            )
        )
    return out


# --- the broadcast group ---------------------------------------------------------------


def test_broadcast_group_exists_at_start_as_opensm_creates_it() -> None:
    sa = make_sa()
    [group] = table(sa)
    assert group == MCMemberRecord(
        BROADCAST,
        bytes(16),  # untrusted: PortGID, JoinState, ProxyJoin zero
        q_key=0x0B1B,
        mlid=0xC000,
        mtu_selector=2,
        mtu=4,
        pkey=0xFFFF,
        rate_selector=2,
        rate=3,
        packet_life_time_selector=2,
        packet_life_time=0x12,
        scope=2,
        join_state=0,
    )
    # a trusted requester sees the members: none yet
    assert table(sa, sm_key=SA_KEY) == []
    # a Get by MGID finds it; by another MGID nothing
    assert (
        mcr(one(sa, request(MCR, Method.GET, MCMemberRecord(BROADCAST), mask=C.MGID))).mlid
        == 0xC000
    )
    other = one(sa, request(MCR, Method.GET, MCMemberRecord(bytes(16)), mask=C.MGID))
    assert other.status == SaStatus.ERR_NO_RECORDS


def test_no_mft_smp_without_members() -> None:
    sa = up_sa()
    sa.sm._program_multicast(0, in_sweep=False)
    assert sa.sm.packets_to_send() == []


# --- join -------------------------------------------------------------------------------


def test_join_answers_group_values_and_programs_the_mft() -> None:
    sa = up_sa()
    answer = join(sa, H1_GUID)
    assert answer.header.method == Method.GET_RESP
    record = mcr(answer)
    assert (record.mlid, record.q_key, record.pkey, record.join_state) == (
        0xC000,
        0x0B1B,
        0xFFFF,
        1,
    )
    assert record.port_gid == gid(H1_GUID) and record.mtu == 4 and record.rate == 3
    # one member port: no MFT entry (OpenSM: "MLID has 1 members - nothing to do")
    assert sa.sm.packets_to_send() == []
    # trusted GetTable lists the member
    [member] = table(sa, sm_key=SA_KEY)
    assert member.port_gid == gid(H1_GUID) and member.join_state == 1
    # joining again with another bit ORs the JoinState, no MFT change
    again = mcr(join(sa, H1_GUID, state=JoinState.NON_MEMBER))
    assert again.join_state == 3
    assert sa.sm.packets_to_send() == []


def test_second_member_builds_a_tree_across_both_switches() -> None:
    sa = up_sa()
    join(sa, H1_GUID)
    answer_smps(sa.sm, 2_000)
    join(sa, H2_GUID)
    smps = mft_sets(answer_smps(sa.sm, 3_000))
    # root sw1 (equal max hops, first in OpenSM's map order): sw1 -> ports 2 (h1)
    # and 3 (sw2); sw2 -> 1 (up), 2 (h2)
    assert sorted(smps) == [
        (1, 0, 0, (0x000C,) + (0,) * 31),
        (2, 0, 0, (0x0006,) + (0,) * 31),
    ]
    records = table(sa, C.MGID, sm_key=SA_KEY, mgid=BROADCAST)
    assert {r.port_gid for r in records} == {gid(H1_GUID), gid(H2_GUID)}
    # MFTRecord: what the switches were sent, positions 0 only (3 ports + port 0)
    mfts = [
        m for _, m in ask(sa, request(SaAttr.MULTICAST_FORWARDING_TABLE_RECORD, Method.GET_TABLE))
    ]
    found = table_records(mfts)
    assert [
        (r.lid, r.position, r.block_num, r.mft.port_masks[0])
        for r in found
        if isinstance(r, MFTRecord)
    ] == [
        (SW1_LID, 0, 0, 0x000C),
        (4, 0, 0, 0x0006),
    ]


def test_join_errors() -> None:
    sa = make_sa()
    # MGID, PortGID and JoinState are required
    assert (
        join(sa, H1_GUID, mask=C.MGID | C.PORT_GID).status
        == SaStatus.ERR_REQ_INSUFFICIENT_COMPONENTS
    )
    # an unknown port GUID
    assert join(sa, 0xDEAD, slid=H1_LID).status == SaStatus.ERR_REQ_INVALID
    # another subnet prefix
    record = MCMemberRecord(BROADCAST, (0xFEC0 << 112 | H1_GUID).to_bytes(16, "big"), join_state=1)
    answer = one(sa, request(MCR, Method.SET, record, mask=JOIN, slid=H1_LID))
    assert answer.status == SaStatus.ERR_REQ_INVALID_GID
    # a component that does not match the group
    assert join(sa, H1_GUID, mask=JOIN | C.QKEY, q_key=5).status == SaStatus.ERR_REQ_INVALID
    # JoinState zero
    assert join(sa, H1_GUID, state=0).status == SaStatus.ERR_REQ_INVALID
    # an invalid rate with its selector
    answer = join(sa, H1_GUID, mask=JOIN | C.RATE | C.RATE_SELECTOR, rate=1, rate_selector=2)
    assert answer.status == SaStatus.ERR_REQ_INVALID


def test_only_its_own_port_changes_a_member_that_did_not_join_by_proxy() -> None:
    sa = make_sa()
    assert join(sa, H1_GUID).status == 0
    assert (
        join(sa, H1_GUID, state=JoinState.NON_MEMBER, slid=H2_LID).status
        == SaStatus.ERR_REQ_INVALID
    )
    # a proxy join (from h2 for h1's GUID) of a new member is allowed
    assert join(sa, H2_GUID, slid=H3_LID).status == 0
    [proxy] = [r for r in table(sa, sm_key=SA_KEY) if r.port_gid == gid(H2_GUID)]
    assert proxy.proxy_join


# --- create -----------------------------------------------------------------------------


def test_create_with_mgid_zero_allocates_mgid_and_mlid() -> None:
    sa = make_sa()
    fields = {"q_key": 0x1234, "pkey": 0xFFFF}
    assert join(sa, H1_GUID, bytes(16), mask=JOIN, **fields).status == (
        SaStatus.ERR_REQ_INSUFFICIENT_COMPONENTS
    )
    assert join(
        sa, H1_GUID, bytes(16), mask=CREATE, state=JoinState.NON_MEMBER, **fields
    ).status == (SaStatus.ERR_REQ_INVALID)
    created = mcr(join(sa, H1_GUID, bytes(16), mask=CREATE, **fields))
    # ff12:a01b, the subnet prefix's first 6 bytes, counter 0 (little endian), 0000
    assert created.mgid == bytes.fromhex("ff12a01bfe8000000000000000000000")
    assert created.mlid == 0xC001 and created.q_key == 0x1234
    # MTU and rate from h1's port (4096 bytes, 40 Gb/s)
    assert (created.mtu, created.rate) == (5, 7)
    second = mcr(join(sa, H2_GUID, bytes(16), mask=CREATE, **fields))
    assert second.mgid[10:14] == (1).to_bytes(4, "little") and second.mlid == 0xC002
    # a requested MGID and MLID
    mgid = bytes.fromhex("ff15123400000000000000000000000aa"[:32])
    named = mcr(join(sa, H3_GUID, mgid, mask=CREATE | C.MLID, mlid=0xC010, **fields))
    assert (named.mgid, named.mlid) == (mgid, 0xC010)
    # the SA's own signature with link-local scope is not to be asked for
    bad = bytes.fromhex("ff12a01b0000000000000000000000bb")
    assert join(sa, H1_GUID, bad, mask=CREATE, **fields).status == SaStatus.ERR_REQ_INVALID
    # flags other than T (osmtest's "invalid flags value 0x2")
    bad = bytes.fromhex("ff22123400000000000000000000000b")
    assert join(sa, H1_GUID, bad, mask=CREATE, **fields).status == SaStatus.ERR_REQ_INVALID
    # an IPoIB MGID of a partition without a broadcast group; of one with: it must match
    ipoib = bytes.fromhex("ff15401b8001000000000000000000cc")
    assert join(sa, H1_GUID, ipoib, mask=CREATE, **fields).status == SaStatus.ERR_REQ_INVALID
    ipoib = bytes.fromhex("ff12401bffff000000000000000000cc")
    assert join(sa, H1_GUID, ipoib, mask=CREATE, **fields).status == SaStatus.ERR_REQ_INVALID
    ipoib_fields = {"q_key": 0x0B1B, "pkey": 0xFFFF}
    assert mcr(join(sa, H1_GUID, ipoib, mask=CREATE, **ipoib_fields)).mgid == ipoib


# --- leave -------------------------------------------------------------------------------


def test_leave_deletes_a_group_with_its_last_full_member_and_frees_the_mlid() -> None:
    sa = up_sa()
    fields = {"q_key": 0x1234, "pkey": 0xFFFF}
    created = mcr(join(sa, H1_GUID, bytes(16), mask=CREATE, **fields))
    assert created.mlid == 0xC001
    assert join(sa, H3_GUID, created.mgid).status == 0
    assert len(mft_sets(answer_smps(sa.sm, 2_000))) == 2  # sw1 and sw2
    assert mcr(join(sa, H3_GUID, created.mgid, method=Method.DELETE)).join_state == 0
    # one member port left: both switches' entries are cleared
    assert mft_sets(answer_smps(sa.sm, 3_000)) == [(h, 0, 0, (0,) * 32) for h in (1, 2)]
    left = join(sa, H1_GUID, created.mgid, method=Method.DELETE)
    assert left.header.method == Method.DELETE_RESP
    assert mcr(left).join_state == 0
    assert sa.sm.packets_to_send() == []
    assert [r.mgid for r in table(sa)] == [BROADCAST]
    again = mcr(join(sa, H2_GUID, bytes(16), mask=CREATE, **fields))
    assert again.mlid == 0xC001


def test_leave_rules() -> None:
    sa = make_sa()
    assert (
        join(sa, H1_GUID, method=Method.DELETE).status == SaStatus.ERR_REQ_INVALID
    )  # not a member
    join(sa, H1_GUID, state=JoinState.FULL_MEMBER | JoinState.NON_MEMBER)
    join(sa, H2_GUID)
    # bits the member lacks
    assert join(sa, H1_GUID, state=0x4, method=Method.DELETE).status == SaStatus.ERR_REQ_INVALID
    # dropping FullMember keeps NonMember while another full member remains
    kept = mcr(join(sa, H1_GUID, state=JoinState.FULL_MEMBER, method=Method.DELETE))
    assert kept.join_state == JoinState.NON_MEMBER
    # the broadcast group is well known: it stays when its last full member leaves,
    # and every member goes with that last full member
    assert mcr(join(sa, H2_GUID, method=Method.DELETE)).join_state == 0
    assert table(sa, sm_key=SA_KEY) == []
    assert [r.mgid for r in table(sa)] == [BROADCAST]


# --- the GUIDInfoRecord Delete rule ----------------------------------------------------


def test_alias_in_a_group_cannot_be_deleted_until_it_leaves() -> None:
    sa = make_sa(SaConfig(guid_info_answer="after_write"))
    mask = GUIDInfoRecordComp.LID | GUIDInfoRecordComp.BLOCK_NUM | GUIDInfoRecordComp.GUID1
    write = GUIDInfoRecord(H1_LID, 0, GUIDInfo((0, V1) + (0,) * 6))
    ask(sa, request(SaAttr.GUID_INFO_RECORD, Method.SET, write, mask=mask))
    answer_smps(sa.sm, 2_000)
    drain(sa)
    assert sa.db.alias_owner == {V1: H1_GUID}
    # the VM joins by its vGUID (from its physical port)
    assert join(sa, V1, slid=H1_LID).status == 0
    delete = request(SaAttr.GUID_INFO_RECORD, Method.DELETE, write, mask=mask)
    refused = one(sa, delete)
    assert refused.status == SaStatus.ERR_REQ_DENIED
    assert sa.sm.packets_to_send() == []
    # after leaving, the Delete goes through
    assert join(sa, V1, slid=H1_LID, method=Method.DELETE).status == 0
    assert ask(sa, delete) == []
    answer_smps(sa.sm, 3_000)
    assert sa.db.alias_owner == {}


def test_a_vm_joins_once_its_set_is_answered_before_the_port_is_written() -> None:
    """Under OpenSM's answer order (the default) the alias is the SA's as soon as
    the Set is answered (OpenSM's alias table), so the VM may join before the
    port's GUIDInfo write lands; its membership is behind that port."""
    sa = up_sa()
    mask = GUIDInfoRecordComp.LID | GUIDInfoRecordComp.BLOCK_NUM | GUIDInfoRecordComp.GUID1
    write = GUIDInfoRecord(H1_LID, 0, GUIDInfo((0, V1) + (0,) * 6))
    answered = ask(sa, request(SaAttr.GUID_INFO_RECORD, Method.SET, write, mask=mask, slid=H1_LID))
    assert [m.status for _, m in answered] == [0]
    assert sa.db.alias_owner == {}  # the port does not hold it yet
    assert mcr(join(sa, V1, slid=H1_LID)).port_gid == gid(V1)
    assert {guid: m.port_guid for guid, m in sa.multicast.groups[BROADCAST].members.items()} == {
        V1: H1_GUID
    }
    # An alias nobody's table holds still cannot join.
    assert join(sa, V1 + 1, slid=H1_LID).status == SaStatus.ERR_REQ_INVALID

"""Partitions in the SA (issue 12, item 3): PathRecords only within a shared
partition, Reports only to subscribers that share one with the notice's subject
(IBA Vol 1, o13-17.1.1), InformInfo naming a GID outside the requester's
partitions refused (OpenSM validate_infr), GUIDInfoRecord Set/Delete only from the
port itself; and the P_Key tables the SM writes for it, VMs' partitions following
them to their host.

On the hand-built subnet of `sa_util`: tenant A is h1 and the VM V1, tenant B h2
and h3; the default partition is implicit (everyone limited, the SM full)."""

from __future__ import annotations

from ibmig.core.sa import SubnetAdministrator
from ibmig.core.sm.manager import SmConfig, SubnetManager
from ibmig.fabric.partitions import parse_partitions
from ibmig.wire.mad import Method
from ibmig.wire.notice import Notice, TrapNumber
from ibmig.wire.sa import (
    GUIDInfoRecord,
    GUIDInfoRecordComp,
    InformInfo,
    PathRecord,
    PathRecordComp,
    PKeyTableRecord,
    PKeyTableRecordComp,
    SaAttr,
    SaStatus,
)
from ibmig.wire.smp import Smp
from ibmig.wire.smp_attrs import GUIDInfo, PKeyTable, SmpAttr, SwitchInfo
from tests.core.sa.sa_util import (
    H1_GUID,
    H1_LID,
    H1_NODE,
    H2_GUID,
    H2_LID,
    H2_NODE,
    H3_GUID,
    H3_LID,
    PREFIX,
    SM_LID,
    SW1,
    SW2,
    answer_smps,
    build_subnet,
    drain,
    make_sa,
    one,
    request,
)
from tests.helpers import gid

V1 = 0x0002_C9FE_0000_0001  # a VM of tenant A
TENANTS = f"""
TenantA=0x8001 : {H1_GUID:#x}=full, {V1:#x}=full ;
TenantB=0x8002 : {H2_GUID:#x}=full, {H3_GUID}=full ;  # decimal GUIDs are GUIDs too
"""
GIR = SaAttr.GUID_INFO_RECORD
WRITE_G1 = int(GUIDInfoRecordComp.LID | GUIDInfoRecordComp.BLOCK_NUM | GUIDInfoRecordComp.GUID1)


def tenant_sa() -> SubnetAdministrator:
    config = SmConfig(partitions=parse_partitions(TENANTS, "tenants.conf"))
    sm = build_subnet(config)
    for switch in (SW1, SW2):  # switches that enforce partitions, as the SM read them
        sm.db.nodes[switch].switch_info = SwitchInfo(partition_enforcement_cap=32)
    return make_sa(sm=sm)


def answer_all(sm: SubnetManager, now_ns: int) -> list[Smp]:
    """Answer SMPs until the SM sends no more (it keeps at most 4 on the wire)."""
    answered = []
    while batch := answer_smps(sm, now_ns):
        answered += batch
    return answered


def path(sa: SubnetAdministrator, src: int, dst: int, **kw: int) -> PathRecord | int:
    mask = int(PathRecordComp.SGID | PathRecordComp.DGID)
    query = PathRecord(sgid=gid(src, PREFIX), dgid=gid(dst, PREFIX))
    if "pkey" in kw:
        mask |= PathRecordComp.PKEY
        query = PathRecord(sgid=query.sgid, dgid=query.dgid, pkey=kw["pkey"])
    answer = one(sa, request(SaAttr.PATH_RECORD, Method.GET, query, mask=mask))
    if answer.status:
        return answer.status
    record = answer.record()
    assert isinstance(record, PathRecord)
    return record


def put_v1_on(sa: SubnetAdministrator, lid: int, now_ns: int) -> None:
    """V1's hypervisor (the port itself) sets it in entry 1 of its port's block 0."""
    record = GUIDInfoRecord(lid, 0, GUIDInfo((0, V1) + (0,) * 6))
    sa.receive(request(GIR, Method.SET, record, mask=WRITE_G1, slid=lid), now_ns)
    answer_all(sa.sm, now_ns + 1)


def remove_v1_from(sa: SubnetAdministrator, lid: int, now_ns: int) -> None:
    record = GUIDInfoRecord(lid, 0, GUIDInfo())
    sa.receive(request(GIR, Method.DELETE, record, mask=WRITE_G1, slid=lid), now_ns)
    answer_all(sa.sm, now_ns + 1)


# --- PathRecord ------------------------------------------------------------------


def test_path_record_only_within_a_shared_partition() -> None:
    sa = tenant_sa()
    # Across tenants: the default partition is shared by limited members only.
    assert path(sa, H1_GUID, H2_GUID) == SaStatus.ERR_NO_RECORDS
    assert path(sa, H1_GUID, H2_GUID, pkey=0xFFFF) == SaStatus.ERR_NO_RECORDS
    assert path(sa, H1_GUID, H2_GUID, pkey=0x8001) == SaStatus.ERR_NO_RECORDS
    # Within tenant B: its P_Key, the lowest shared one.
    record = path(sa, H2_GUID, H3_GUID)
    assert isinstance(record, PathRecord)
    assert (record.slid, record.dlid, record.pkey) == (H2_LID, H3_LID, 0x8002)
    # To the SM (full member of the default partition): the requester's limited key.
    record = path(sa, H1_GUID, 0xA1)
    assert isinstance(record, PathRecord)
    assert (record.dlid, record.pkey) == (SM_LID, 0x7FFF)


def test_a_vm_has_its_own_partitions_not_its_hosts() -> None:
    sa = tenant_sa()
    put_v1_on(sa, H2_LID, 1_000)  # tenant A's VM on a tenant-B host
    drain(sa)
    record = path(sa, V1, H1_GUID)
    assert isinstance(record, PathRecord)
    assert (record.slid, record.dlid, record.pkey) == (H2_LID, H1_LID, 0x8001)
    assert path(sa, V1, H3_GUID) == SaStatus.ERR_NO_RECORDS  # same host's tenant
    # The host's port now holds tenant A too, so its hypervisor shares it.
    assert sa.sm.partition_keys(H2_GUID) == frozenset({0x7FFF, 0x8002, 0x8001})


# --- Reports and InformInfo ------------------------------------------------------------


def subscribe(sa: SubnetAdministrator, lid: int, trap: int) -> None:
    info = InformInfo(trap_number=trap, resp_time_value=18)
    answer = one(sa, request(SaAttr.INFORM_INFO, Method.SET, info, slid=lid))
    assert answer.status == 0


def reported_to(sa: SubnetAdministrator) -> list[tuple[int, int]]:
    found = []
    for datagram, mad in drain(sa):
        if mad.header.method == Method.REPORT:
            notice = mad.record()
            assert isinstance(notice, Notice)
            found.append((datagram.dlid, notice.trap_number))
    return sorted(found)


def test_a_report_never_crosses_a_partition() -> None:
    sa = tenant_sa()
    for lid in (H1_LID, H2_LID, H3_LID, SM_LID):
        subscribe(sa, lid, TrapNumber.REPATH)
    # V1 (tenant A) moves from h1 to h3 (a tenant-B host).
    put_v1_on(sa, H1_LID, 1_000)
    remove_v1_from(sa, H1_LID, 2_000)
    assert reported_to(sa) == []
    put_v1_on(sa, H3_LID, 3_000)
    # h1 shares tenant A with V1; h3's port holds V1 now (its hypervisor must
    # forward); the SM port is a full default member. h2 (tenant B) hears nothing.
    assert reported_to(sa) == [(SM_LID, 69), (H1_LID, 69), (H3_LID, 69)]
    assert sa.counters["report_partition_mismatch"] == 1
    assert sa.counters["path_changes"] == 1


def test_trap_64_only_to_the_ports_partitions() -> None:
    sa = tenant_sa()
    for lid in (H1_LID, H2_LID, H3_LID):
        subscribe(sa, lid, TrapNumber.GID_IN_SERVICE)
    notice = sa._sm_notice(TrapNumber.GID_IN_SERVICE, H2_GUID)
    assert sa.report_notice(notice, 5_000) == 2
    assert reported_to(sa) == [(H2_LID, 64), (H3_LID, 64)]


def test_subscribing_to_a_gid_outside_ones_partitions_is_refused() -> None:
    sa = tenant_sa()
    info = InformInfo(gid=gid(H2_GUID, PREFIX), trap_number=0xFFFF)
    answer = one(sa, request(SaAttr.INFORM_INFO, Method.SET, info, slid=H1_LID))
    assert answer.status == SaStatus.ERR_REQ_INVALID
    answer = one(sa, request(SaAttr.INFORM_INFO, Method.SET, info, slid=H3_LID))
    assert answer.status == 0


# --- GUIDInfoRecord writes ---------------------------------------------------------------


def test_a_foreign_ports_guid_info_record_set_is_refused() -> None:
    for config in (None, SmConfig(partitions=parse_partitions(TENANTS))):
        sa = make_sa(sm=build_subnet(config))
        record = GUIDInfoRecord(H1_LID, 0, GUIDInfo((0, V1) + (0,) * 6))
        for method in (Method.SET, Method.DELETE):
            answer = one(sa, request(GIR, method, record, mask=WRITE_G1, slid=H3_LID))
            assert answer.status == SaStatus.ERR_REQ_DENIED
        assert sa.sm.packets_to_send() == []
        assert sa.counters["guid_info_foreign_port_refused"] == 2
        assert sa.db.lid_of_guid(V1) is None


def test_trusted_guid_info_write_without_a_shared_partition_is_dropped() -> None:
    """With the SA key a requester may write another port's alias GUIDs; OpenSM
    then checks partitions and drops the request silently when none is shared."""
    sa = tenant_sa()
    record = GUIDInfoRecord(H1_LID, 0, GUIDInfo((0, V1) + (0,) * 6))
    sa.receive(request(GIR, Method.SET, record, mask=WRITE_G1, slid=H3_LID, sm_key=1), 1_000)
    assert drain(sa) == []
    assert sa.sm.packets_to_send() == []
    sa.receive(request(GIR, Method.SET, record, mask=WRITE_G1, slid=SM_LID, sm_key=1), 2_000)
    assert next(smp.attribute_id for smp in answer_all(sa.sm, 2_001)) == SmpAttr.GUID_INFO
    [(_, answer)] = drain(sa)
    assert answer.status == 0 and sa.db.lid_of_guid(V1) == H1_LID


# --- P_Key tables ------------------------------------------------------------------------


def test_p_key_tables_follow_the_vm() -> None:
    sa = tenant_sa()
    sm = sa.sm
    sm._program_pkeys(0)  # the ROUTE phase of a sweep
    written = {
        (smp.attribute_modifier, PKeyTable.unpack(smp.data).pkeys[:4]) for smp in answer_all(sm, 1)
    }
    # CA ports; switch port 0 (default, limited); switch ports toward CAs with the
    # CA's table (sw1 port 1 toward the SM's port, 2 toward h1; sw2 2, 3).
    assert written == {
        (0, (0xFFFF, 0, 0, 0)),  # sm-host
        (0, (0x7FFF, 0x8001, 0, 0)),  # h1
        (0, (0x7FFF, 0x8002, 0, 0)),  # h2, h3
        (0, (0x7FFF, 0, 0, 0)),  # sw1, sw2 port 0
        (1 << 16, (0xFFFF, 0, 0, 0)),
        (2 << 16, (0x7FFF, 0x8001, 0, 0)),
        (2 << 16, (0x7FFF, 0x8002, 0, 0)),
        (3 << 16, (0x7FFF, 0x8002, 0, 0)),
    }
    assert sm.pkey_tables[(H2_NODE, 1)] == (0x7FFF, 0x8002)
    put_v1_on(sa, H2_LID, 1_000)
    assert sm.pkey_tables[(H2_NODE, 1)] == (0x7FFF, 0x8002, 0x8001)
    assert sm.pkey_tables[(SW2, 2)] == (0x7FFF, 0x8002, 0x8001)  # in front of h2
    remove_v1_from(sa, H2_LID, 2_000)
    assert sm.pkey_tables[(H2_NODE, 1)] == (0x7FFF, 0x8002)
    assert sm.pkey_tables[(H1_NODE, 1)] == (0x7FFF, 0x8001)
    # P_KeyTableRecord answers what was written.
    drain(sa)
    query = PKeyTableRecord(H1_LID, 0, 0, PKeyTable())
    mask = int(PKeyTableRecordComp.LID | PKeyTableRecordComp.BLOCK)
    answer = one(sa, request(SaAttr.P_KEY_TABLE_RECORD, Method.GET, query, mask=mask, sm_key=1))
    record = answer.record()
    assert isinstance(record, PKeyTableRecord)
    assert record.pkey_table.pkeys[:3] == (0x7FFF, 0x8001, 0)
    assert sm.pkey_tables[(SW1, 0)] == (0x7FFF,)

"""The SA's table records (ibmig.core.sa.records) on the hand-built subnet of
sa_util: LinkRecord, SwitchInfoRecord, SMInfoRecord, P_KeyTableRecord,
SLtoVLMappingTableRecord, VLArbitrationTableRecord, LFTRecord and their
ComponentMask rules (OpenSM's osm_sa_*_record.c)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from ibmig.core.sa import SaConfig
from ibmig.core.sa.records import osm_map_order
from ibmig.wire.mad import MadStatus, Method
from ibmig.wire.sa import (
    LFTRecord,
    LFTRecordComp,
    LinkRecord,
    LinkRecordComp,
    PKeyTableRecord,
    PKeyTableRecordComp,
    SaAttr,
    SaMad,
    SaRecord,
    SaStatus,
    SLtoVLMappingTableRecord,
    SLtoVLMappingTableRecordComp,
    SMInfoRecord,
    SMInfoRecordComp,
    SwitchInfoRecord,
    SwitchInfoRecordComp,
    VLArbitrationTableRecord,
    VLArbitrationTableRecordComp,
)
from ibmig.wire.smp_attrs import LinearForwardingTable, PKeyTable, SMInfo, SmState, SwitchInfo
from tests.core.sa.sa_util import (
    H1_LID,
    H1_NODE,
    H2_LID,
    H3_LID,
    SM_LID,
    SM_PORT_GUID,
    SW1_LID,
    SW2,
    SW2_LID,
    build_subnet,
    make_sa,
    one,
    request,
)

TABLE = SaConfig(rmpp=False)  # one MAD holds every table below


def table(attribute: int, record: SaRecord, mask: int = 0, **kw: Any) -> tuple[Any, ...]:
    answer = one(make_sa(TABLE), request(attribute, Method.GET_TABLE, record, mask=mask, **kw))
    assert answer.status == 0, hex(answer.status)
    return answer.records()


def get(attribute: int, record: SaRecord, mask: int, **kw: Any) -> SaMad:
    return one(make_sa(), request(attribute, Method.GET, record, mask=mask, **kw))


# --- LinkRecord ---------------------------------------------------------------------------


def test_link_records_of_the_whole_subnet_in_opensm_node_order() -> None:
    records = table(SaAttr.LINK_RECORD, LinkRecord(0, 0, 0, 0))
    # Nodes by GUID (in OpenSM's map order: sw1 0x10, sw2 0x20, sm-host 0xA0, h1...),
    # each node's ports in order; both directions of each of the 5 links.
    assert records == (
        LinkRecord(SW1_LID, 1, 1, SM_LID),
        LinkRecord(SW1_LID, 2, 1, H1_LID),
        LinkRecord(SW1_LID, 3, 1, SW2_LID),
        LinkRecord(SW2_LID, 1, 3, SW1_LID),
        LinkRecord(SW2_LID, 2, 1, H2_LID),
        LinkRecord(SW2_LID, 3, 1, H3_LID),
        LinkRecord(SM_LID, 1, 1, SW1_LID),
        LinkRecord(H1_LID, 1, 2, SW1_LID),
        LinkRecord(H2_LID, 1, 2, SW2_LID),
        LinkRecord(H3_LID, 1, 3, SW2_LID),
    )


@pytest.mark.parametrize(
    ("query", "mask", "expected"),
    [
        (
            LinkRecord(SW2_LID, 3, 0, 0),
            LinkRecordComp.FROM_LID | LinkRecordComp.FROM_PORT,
            LinkRecord(SW2_LID, 3, 1, H3_LID),
        ),
        (LinkRecord(0, 0, 0, H1_LID), LinkRecordComp.TO_LID, LinkRecord(SW1_LID, 2, 1, H1_LID)),
        (
            LinkRecord(SW1_LID, 0, 0, SW2_LID),
            LinkRecordComp.FROM_LID | LinkRecordComp.TO_LID,
            LinkRecord(SW1_LID, 3, 1, SW2_LID),
        ),
        (
            LinkRecord(0, 0, 3, SW2_LID),
            LinkRecordComp.TO_LID | LinkRecordComp.TO_PORT,
            LinkRecord(H3_LID, 1, 3, SW2_LID),
        ),
    ],
)
def test_link_record_get_by_components(query: LinkRecord, mask: int, expected: LinkRecord) -> None:
    answer = get(SaAttr.LINK_RECORD, query, mask)
    assert answer.status == 0
    assert answer.record() == expected


def test_link_record_mismatch_and_unknown_lid_give_no_record() -> None:
    mask = LinkRecordComp.FROM_LID | LinkRecordComp.TO_LID
    # h1 and h2 are not cabled to each other; LID 99 is nobody's.
    for query in (LinkRecord(H1_LID, 0, 0, H2_LID), LinkRecord(99, 0, 0, SW1_LID)):
        assert get(SaAttr.LINK_RECORD, query, mask).status == SaStatus.ERR_NO_RECORDS
    both = get(SaAttr.LINK_RECORD, LinkRecord(SW1_LID, 0, 0, 0), LinkRecordComp.FROM_LID)
    assert both.status == SaStatus.ERR_TOO_MANY_RECORDS


def test_only_get_and_get_table_are_served() -> None:
    for attribute in (
        SaAttr.LINK_RECORD,
        SaAttr.SM_INFO_RECORD,
        SaAttr.LINEAR_FORWARDING_TABLE_RECORD,
    ):
        answer = one(make_sa(), request(attribute, Method.SET, LinkRecord(0, 0, 0, 0)))
        assert answer.status == MadStatus.METHOD_ATTR_NOT_SUPPORTED


# --- SwitchInfoRecord ---------------------------------------------------------------------


def test_switch_info_records_are_what_the_switches_answered() -> None:
    sm = build_subnet()
    told = SwitchInfo(linear_fdb_cap=0x7800, linear_fdb_top=6, partition_enforcement_cap=0x40)
    sm.db.nodes[SW2].switch_info = told
    sa = make_sa(TABLE, sm=sm)
    answer = one(
        sa, request(SaAttr.SWITCH_INFO_RECORD, Method.GET_TABLE, SwitchInfoRecord(0, told))
    )
    # sw1 never had its SwitchInfo kept: what the SM knows of it (LFT cap and top).
    assert answer.records() == (
        SwitchInfoRecord(SW1_LID, SwitchInfo(linear_fdb_cap=0xC000, linear_fdb_top=6)),
        SwitchInfoRecord(SW2_LID, told),
    )
    by_lid = one(
        sa,
        request(
            SaAttr.SWITCH_INFO_RECORD,
            Method.GET,
            SwitchInfoRecord(SW2_LID, SwitchInfo()),
            mask=SwitchInfoRecordComp.LID,
        ),
    )
    assert by_lid.record() == SwitchInfoRecord(SW2_LID, told)
    ca = one(
        sa,
        request(
            SaAttr.SWITCH_INFO_RECORD,
            Method.GET,
            SwitchInfoRecord(H1_LID, SwitchInfo()),
            mask=SwitchInfoRecordComp.LID,
        ),
    )
    assert ca.status == SaStatus.ERR_NO_RECORDS


# --- SMInfoRecord ---------------------------------------------------------------------------


def test_sm_info_record_is_this_sm_without_its_key() -> None:
    sa = make_sa()
    sa.sm.smps_sent = 1275
    answer = one(sa, request(SaAttr.SM_INFO_RECORD, Method.GET, SMInfoRecord(0, SMInfo())))
    assert answer.record() == SMInfoRecord(
        SM_LID, SMInfo(SM_PORT_GUID, 0, 1275, 0, sa.sm.sm_info().sm_state)
    )
    mask = SMInfoRecordComp.LID
    other = one(
        sa, request(SaAttr.SM_INFO_RECORD, Method.GET, SMInfoRecord(H1_LID, SMInfo()), mask=mask)
    )
    assert other.status == SaStatus.ERR_NO_RECORDS
    wrong_state = SMInfoRecord(SM_LID, SMInfo(sm_state=SmState.STANDBY))
    mask |= SMInfoRecordComp.SM_STATE
    assert (
        one(sa, request(SaAttr.SM_INFO_RECORD, Method.GET, wrong_state, mask=mask)).status
        == SaStatus.ERR_NO_RECORDS
    )


# --- P_KeyTableRecord -----------------------------------------------------------------------


def test_pkey_table_records_need_a_trusted_requester() -> None:
    query = PKeyTableRecord(H1_LID, 0, 0, PKeyTable())
    answer = get(SaAttr.P_KEY_TABLE_RECORD, query, PKeyTableRecordComp.LID)
    assert answer.status == SaStatus.ERR_REQ_INVALID


def test_pkey_table_records_hold_the_default_partition() -> None:
    sm = build_subnet()
    h1 = sm.db.nodes[H1_NODE]
    h1.info = replace(h1.info, partition_cap=64)  # two blocks
    sa = make_sa(TABLE, sm=sm)
    query = PKeyTableRecord(H1_LID, 0, 0, PKeyTable())
    answer = one(
        sa,
        request(
            SaAttr.P_KEY_TABLE_RECORD,
            Method.GET_TABLE,
            query,
            mask=PKeyTableRecordComp.LID,
            sm_key=1,
        ),
    )
    default = PKeyTable((0xFFFF,) + (0,) * 31)
    assert answer.records() == (
        PKeyTableRecord(H1_LID, 0, 1, default),
        PKeyTableRecord(H1_LID, 1, 1, PKeyTable()),
    )


# --- SLtoVLMappingTableRecord and VLArbitrationTableRecord ------------------------------------


def test_sl_to_vl_records_of_a_ca_and_of_a_switch() -> None:
    lid = SLtoVLMappingTableRecordComp.LID
    ca = get(SaAttr.SL_TO_VL_MAPPING_TABLE_RECORD, SLtoVLMappingTableRecord(H2_LID, 5, 5), lid)
    assert ca.record() == SLtoVLMappingTableRecord(H2_LID, 0, 0)  # ports ignored for a CA
    ports = SLtoVLMappingTableRecordComp.IN_PORT | SLtoVLMappingTableRecordComp.OUT_PORT
    one_pair = get(
        SaAttr.SL_TO_VL_MAPPING_TABLE_RECORD, SLtoVLMappingTableRecord(SW1_LID, 3, 0), lid | ports
    )
    assert one_pair.record() == SLtoVLMappingTableRecord(SW1_LID, 3, 0, (0,) * 16)
    records = table(
        SaAttr.SL_TO_VL_MAPPING_TABLE_RECORD, SLtoVLMappingTableRecord(SW2_LID, 0, 0), lid
    )
    assert [(r.out_port_num, r.in_port_num) for r in records] == [
        (out, inp) for out in range(4) for inp in range(4)
    ][:12]  # 16 pairs of ports 0..3, output port first; 12 fit one MAD


def test_vl_arbitration_records() -> None:
    lid = VLArbitrationTableRecordComp.LID
    records = table(SaAttr.VL_ARBITRATION_TABLE_RECORD, VLArbitrationTableRecord(H1_LID, 0, 0), lid)
    assert records == tuple(VLArbitrationTableRecord(H1_LID, 1, block) for block in (1, 2))
    # (a VLArb record is 72 bytes: two fit a MAD without RMPP; four are there)
    mask = lid | VLArbitrationTableRecordComp.OUT_PORT | VLArbitrationTableRecordComp.BLOCK
    answer = get(SaAttr.VL_ARBITRATION_TABLE_RECORD, VLArbitrationTableRecord(SW2_LID, 2, 3), mask)
    assert answer.record() == VLArbitrationTableRecord(SW2_LID, 2, 3)
    bad_block = get(
        SaAttr.VL_ARBITRATION_TABLE_RECORD, VLArbitrationTableRecord(SW2_LID, 2, 5), mask
    )
    assert bad_block.status == SaStatus.ERR_NO_RECORDS


# --- LFTRecord ------------------------------------------------------------------------------


def test_lft_records_are_the_blocks_the_sm_programmed() -> None:
    lid = LFTRecordComp.LID
    answer = get(SaAttr.LINEAR_FORWARDING_TABLE_RECORD, LFTRecord(SW2_LID, 0, _lft()), lid)
    record = answer.record()
    assert isinstance(record, LFTRecord)
    assert (record.lid, record.block_num) == (SW2_LID, 0)
    assert record.lft.ports[:8] == (0xFF, 1, 1, 1, 0, 2, 3, 0xFF)
    beyond = get(
        SaAttr.LINEAR_FORWARDING_TABLE_RECORD,
        LFTRecord(SW2_LID, 1, _lft()),
        lid | LFTRecordComp.BLOCK,
    )
    assert beyond.status == SaStatus.ERR_NO_RECORDS
    records = table(SaAttr.LINEAR_FORWARDING_TABLE_RECORD, LFTRecord(0, 0, _lft()))
    assert [(r.lid, r.block_num) for r in records] == [(SW1_LID, 0), (SW2_LID, 0)]


def _lft() -> LinearForwardingTable:
    return LinearForwardingTable()


def test_osm_map_order_reads_the_guid_bytes_lowest_first() -> None:
    guids = [0x100000, 0x200000, 0x100002, 0x200001]
    assert sorted(guids, key=osm_map_order) == [0x100000, 0x200000, 0x200001, 0x100002]

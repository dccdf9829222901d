"""The SA's receive pipeline, addressing, ClassPortInfo, NodeRecord, PortInfoRecord."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ibmig.core.engine import Datagram
from ibmig.core.sa import QP1_QKEY, QueryAnswered, SaConfig, resp_time_value
from ibmig.core.sm.manager import SubnetUp
from ibmig.wire.mad import MadHeader, MadStatus, Method, MgmtClass, RmppHeader
from ibmig.wire.sa import (
    SA_DATA_SIZE,
    ClassCapability,
    ClassPortInfo,
    NodeRecord,
    NodeRecordComp,
    PathRecord,
    PathRecordComp,
    PortInfoRecord,
    PortInfoRecordComp,
    SaAttr,
    SaMad,
    SaStatus,
)
from ibmig.wire.smp_attrs import NodeDescription, NodeInfo, NodeType, PortInfo
from tests.core.sa.sa_util import (
    H1_GUID,
    H1_LID,
    H1_NODE,
    H2_GUID,
    H2_LID,
    SM_LID,
    SM_PORT_GUID,
    SW1,
    SW1_LID,
    SW2,
    SW2_LID,
    ask,
    build_subnet,
    events,
    make_sa,
    one,
    request,
)
from tests.helpers import gid

PR_MASK = PathRecordComp.SLID | PathRecordComp.DLID
PATH_QUERY = PathRecord(slid=H1_LID, dlid=H2_LID)


# --- pipeline ---------------------------------------------------------------------


def test_response_addressing_and_counting() -> None:
    sa = make_sa()
    sa.receive(request(SaAttr.PATH_RECORD, Method.GET, PATH_QUERY, mask=PR_MASK, sqp=0x42), 5)
    [datagram] = sa.packets_to_send()
    assert datagram._replace(payload=b"") == Datagram(
        b"", 1, SM_LID, H1_LID, 1, 0x42, qkey=QP1_QKEY
    )
    assert sa.mad_counts == {(SaAttr.PATH_RECORD, Method.GET_RESP): 1}
    assert events(sa) == [QueryAnswered(SaAttr.PATH_RECORD, Method.GET, 0, 1, 5)]


def test_grh_requests_get_grh_answers() -> None:
    """A VM behind a shared port asks with its own GID: the answer goes to that GID."""
    sa = make_sa()
    vm_gid = gid(0x7777)
    sa.receive(request(SaAttr.PATH_RECORD, Method.GET, PATH_QUERY, mask=PR_MASK, sgid=vm_gid), 5)
    [datagram] = sa.packets_to_send()
    assert datagram.dgid == vm_gid and datagram.sgid == gid(SM_PORT_GUID)
    assert datagram.dlid == H1_LID


def test_busy_before_subnet_up_then_answers() -> None:
    sa = make_sa(up=False)
    query = request(SaAttr.PATH_RECORD, Method.GET, PATH_QUERY, mask=PR_MASK)
    answer = one(sa, query)
    assert answer.status == MadStatus.BUSY and answer.header.method == Method.GET_RESP
    assert answer.data == PATH_QUERY.pack().ljust(SA_DATA_SIZE, b"\0")
    sa.subnet_up(SubnetUp(1, 10, 0, 6, 6), 10)
    assert one(sa, query).status == 0


def test_dropped_before_subnet_up_like_opensm() -> None:
    sa = make_sa(SaConfig(answer_busy_before_up=False), up=False)
    assert ask(sa, request(SaAttr.CLASS_PORT_INFO, Method.GET)) == []
    assert sa.counters["dropped_before_up"] == 1


def test_sa_created_after_subnet_up_answers_at_once() -> None:
    from ibmig.core.sa import SubnetAdministrator
    from ibmig.fabric.generators import fat_tree_2level
    from ibmig.sim.subnet import SubnetSim

    sim = SubnetSim(fat_tree_2level(leaves=1, hosts_per_leaf=2, spines=1))
    sim.start()
    assert sim.run_until_up() is not None
    import random

    sa = SubnetAdministrator(sim.sm, rng=random.Random(1))
    lid = sim.agents[sim.sm_node].port_lid(1)
    answer = one(sa, request(SaAttr.CLASS_PORT_INFO, Method.GET, slid=lid))
    assert answer.status == 0


@pytest.mark.parametrize(
    ("mutate", "counter"),
    [
        (lambda b: b[:100], "malformed"),
        (lambda b: b"\x01\x04" + b[2:], "malformed"),  # not class 0x03
        (lambda b: b"\x02" + b[1:], "malformed"),  # BaseVersion 2
        (lambda b: b[:3] + b"\x81" + b[4:], "responses_ignored"),  # a GetResp
        (lambda b: b[:3] + b"\x03" + b[4:], "unsupported_method"),  # Send
        (lambda b: b[:3] + b"\x07" + b[4:], "unsupported_method"),  # TrapRepress
    ],
)
def test_silently_dropped(mutate: Callable[[bytes], bytes], counter: str) -> None:
    sa = make_sa()
    datagram = request(SaAttr.PATH_RECORD, Method.GET, PATH_QUERY, mask=PR_MASK)
    payload = mutate(datagram.payload)
    sa.receive(datagram._replace(payload=payload), 1)
    assert sa.packets_to_send() == []
    assert sa.counters[counter] == 1
    assert events(sa) == []


def test_sm_key_zero_or_sa_key_accepted_others_dropped() -> None:
    sa = make_sa()
    trusted = request(SaAttr.PATH_RECORD, Method.GET, PATH_QUERY, mask=PR_MASK, sm_key=1)
    assert len(ask(sa, trusted)) == 1
    foreign = request(SaAttr.PATH_RECORD, Method.GET, PATH_QUERY, mask=PR_MASK, sm_key=2)
    assert ask(sa, foreign) == []
    assert sa.counters["bad_sm_key"] == 1


def test_unknown_requester_dropped() -> None:
    sa = make_sa()
    assert ask(sa, request(SaAttr.CLASS_PORT_INFO, Method.GET, slid=99)) == []
    assert sa.counters["unknown_requester"] == 1


def test_bad_class_version() -> None:
    sa = make_sa()
    answer = one(sa, request(SaAttr.CLASS_PORT_INFO, Method.GET, class_version=1))
    assert answer.status == MadStatus.BAD_VERSION


@pytest.mark.parametrize(
    ("attribute", "method", "status", "response_method"),
    [
        (0x0099, Method.GET, MadStatus.METHOD_ATTR_NOT_SUPPORTED, Method.GET_RESP),
        (SaAttr.TRACE_RECORD, Method.GET_TABLE, MadStatus.METHOD_ATTR_NOT_SUPPORTED, 0x92),
        (SaAttr.MULTI_PATH_RECORD, Method.GET, MadStatus.METHOD_ATTR_NOT_SUPPORTED, 0x81),
        (SaAttr.CLASS_PORT_INFO, Method.SET, MadStatus.METHOD_ATTR_NOT_SUPPORTED, 0x81),
        (SaAttr.NODE_RECORD, Method.DELETE, MadStatus.METHOD_ATTR_NOT_SUPPORTED, 0x95),
        # GetMulti is served (MultiPathRecord), so on PathRecord it is the pair that is not
        (SaAttr.PATH_RECORD, Method.GET_MULTI, MadStatus.METHOD_ATTR_NOT_SUPPORTED, 0x94),
        (SaAttr.PATH_RECORD, 0x33, MadStatus.METHOD_NOT_SUPPORTED, 0xB3),
        (SaAttr.NOTICE, Method.REPORT, MadStatus.METHOD_NOT_SUPPORTED, Method.REPORT_RESP),
    ],
)
def test_unsupported_attribute_or_method(
    attribute: int, method: int, status: int, response_method: int
) -> None:
    sa = make_sa()
    answer = one(sa, request(attribute, method, b"\x01\x02\x03", mask=5, tid=9))
    assert answer.status == status
    assert answer.header.method == response_method
    assert answer.tid == 9 and answer.attribute_id == attribute
    assert answer.component_mask == 5 and answer.sm_key == 0
    assert answer.data[:3] == b"\x01\x02\x03"  # the request echoed


def test_multi_segment_request_dropped() -> None:
    sa = make_sa()
    datagram = request(SaAttr.PATH_RECORD, Method.GET_TABLE, PATH_QUERY)
    mad = SaMad.unpack(datagram.payload)
    first_only = replace(mad, rmpp=RmppHeader(1, 1, 0, 0x3, 0, 1, 500))
    assert ask(sa, datagram._replace(payload=first_only.pack())) == []
    single = replace(mad, rmpp=RmppHeader(1, 1, 0, 0x7, 0, 1, 84))
    assert len(ask(sa, datagram._replace(payload=single.pack()))) >= 1


@settings(max_examples=300, deadline=None)
@given(
    st.binary(min_size=0, max_size=300),
    st.sampled_from([0, 1, 2, 0x81, 0x03]),
    st.sampled_from([1, 2, 3, 5, 6, 0x12, 0x14, 0x15, 0x86, 0x92, 0x7F]),
    st.sampled_from([1, 2, 3, 0x11, 0x12, 0x30, 0x35, 0xF3, 0x38, 0xFFFF]),
    st.integers(0, (1 << 64) - 1),
    st.integers(0, 7),
)
def test_any_bytes_never_raise(
    data: bytes, klass: int, method: int, attribute: int, mask: int, rmpp_bits: int
) -> None:
    """Whatever arrives, receive() answers or drops; it never raises."""
    sa = make_sa()
    body = data.ljust(SA_DATA_SIZE, b"\0")[:SA_DATA_SIZE]
    header = (
        bytes([1, 3 if klass != 0x03 else 0x04, 2, method])
        + bytes(4)
        + (0x55).to_bytes(8, "big")
        + attribute.to_bytes(2, "big")
        + bytes(6)
    )
    rmpp = bytes([1 if rmpp_bits else 0, rmpp_bits & 3, rmpp_bits, 0]) + bytes(8)
    sa_header = bytes(8) + bytes(4) + mask.to_bytes(8, "big")
    payload = header + rmpp + sa_header + body
    if klass == 0:
        payload = data  # raw garbage
    sa.receive(Datagram(payload, 1, H1_LID, SM_LID, 1, 1), 1)
    for datagram in sa.packets_to_send():
        SaMad.unpack(datagram.payload)
    sa.handle_timer(10**12)
    sa.get_timer()


# --- ClassPortInfo -----------------------------------------------------------------


def test_class_port_info() -> None:
    sa = make_sa()
    answer = one(sa, request(SaAttr.CLASS_PORT_INFO, Method.GET, tid=3))
    assert answer.header.method == Method.GET_RESP and answer.status == 0
    info = answer.record()
    assert info == ClassPortInfo(
        base_version=1,
        class_version=2,
        capability_mask=ClassCapability.IS_TRAP_SUPPORTED
        | ClassCapability.IS_GET_SET_SUPPORTED
        | (1 << 9)  # UD multicast: MCMemberRecord
        | (1 << 10)  # MultiPathRecord
        | (1 << 13),
        # alias GUIDs, extended speeds, CapabilityMask2 match, SendOnlyFullMember
        # joins, 2x widths, HDR: the OpenSM bits (0xB5E8) that hold for ibmig; not
        # MulticastFDBTop (3) nor multicast ServiceRecords (8).
        capability_mask2=(1 << 5) | (1 << 7) | (1 << 10) | (1 << 12) | (1 << 13) | (1 << 15),
        resp_time_value=16,
        redirect_qp=1,
        redirect_qkey=0x80010000,
        trap_qkey=0x80010000,
    )


@pytest.mark.parametrize(
    ("timeout_ns", "value"),
    [(0, 8), (1_000_000, 8), (1_048_576, 8), (1_100_000, 9), (200_000_000, 16), (10**15, 31)],
)
def test_resp_time_value(timeout_ns: int, value: int) -> None:
    assert resp_time_value(timeout_ns) == value


# --- NodeRecord --------------------------------------------------------------------


def _node_query(lid: int = 0, **info: int) -> bytes:
    fields = {"node_type": 0, "num_ports": 0, "node_guid": 0, "port_guid": 0, **info}
    return NodeRecord(lid, NodeInfo(**fields)).pack()


def _records(answer: SaMad) -> list[NodeRecord]:
    found = [r for r in answer.records() if isinstance(r, NodeRecord)]
    assert len(found) == answer.record_count()
    return found


def test_node_record_by_lid() -> None:
    sa = make_sa()
    answer = one(
        sa, request(SaAttr.NODE_RECORD, Method.GET, _node_query(H1_LID), mask=NodeRecordComp.LID)
    )
    assert answer.attribute_offset == 14
    record = answer.record()
    assert record == NodeRecord(
        H1_LID,
        NodeInfo(NodeType.CA, 1, H1_NODE, H1_GUID, system_image_guid=H1_NODE, local_port_num=1),
        NodeDescription("h1"),
    )


def test_node_record_of_a_switch_is_port_0() -> None:
    sa = make_sa()
    query = _node_query(node_guid=SW2)
    answer = one(sa, request(SaAttr.NODE_RECORD, Method.GET, query, mask=NodeRecordComp.NODE_GUID))
    record = answer.record()
    assert isinstance(record, NodeRecord)
    assert record.lid == SW2_LID and record.node_info.local_port_num == 0
    assert record.node_info.port_guid == SW2


def test_node_records_by_type_and_description() -> None:
    sa = make_sa(SaConfig(rmpp=False))
    query = _node_query(node_type=NodeType.SWITCH)
    answer = one(
        sa, request(SaAttr.NODE_RECORD, Method.GET_TABLE, query, mask=NodeRecordComp.NODE_TYPE)
    )
    assert answer.header.method == Method.GET_TABLE_RESP
    # rmpp=False: one 112-byte NodeRecord fits; the first in node GUID order is sw1
    assert [r.lid for r in _records(answer)] == [SW1_LID]
    by_name = NodeRecord(0, NodeInfo(0, 0, 0, 0), NodeDescription("h2")).pack()
    answer = one(
        sa,
        request(SaAttr.NODE_RECORD, Method.GET, by_name, mask=NodeRecordComp.NODE_DESCRIPTION),
    )
    record = answer.record()
    assert isinstance(record, NodeRecord) and record.lid == H2_LID


def test_node_record_get_errors() -> None:
    sa = make_sa()
    none = one(sa, request(SaAttr.NODE_RECORD, Method.GET, _node_query(40), mask=1))
    assert none.status == SaStatus.ERR_NO_RECORDS
    many = one(sa, request(SaAttr.NODE_RECORD, Method.GET, _node_query(), mask=0))
    assert many.status == SaStatus.ERR_TOO_MANY_RECORDS
    assert many.header.method == Method.GET_RESP


def test_node_record_port_guid_and_port_num() -> None:
    sa = make_sa()
    mask = NodeRecordComp.PORT_GUID | NodeRecordComp.LOCAL_PORT_NUM
    hit = _node_query(port_guid=H2_GUID, local_port_num=1)
    assert one(sa, request(SaAttr.NODE_RECORD, Method.GET, hit, mask=mask)).status == 0
    miss = _node_query(port_guid=H2_GUID, local_port_num=2)
    answer = one(sa, request(SaAttr.NODE_RECORD, Method.GET, miss, mask=mask))
    assert answer.status == SaStatus.ERR_NO_RECORDS


# --- PortInfoRecord ----------------------------------------------------------------


def _pir(lid: int = 0, port: int = 0, **info: int) -> bytes:
    return PortInfoRecord(lid, port, PortInfo(**info)).pack()  # type: ignore[arg-type]


def test_port_info_record_by_lid_and_port() -> None:
    sm = build_subnet()
    record = sm.db.nodes[SW1].ports[2]
    assert record.info is not None
    record.info = replace(record.info, m_key=0x1234)
    sa = make_sa(sm=sm)
    mask = PortInfoRecordComp.ENDPORT_LID | PortInfoRecordComp.PORT_NUM
    answer = one(sa, request(SaAttr.PORT_INFO_RECORD, Method.GET, _pir(SW1_LID, 2), mask=mask))
    found = answer.record()
    assert isinstance(found, PortInfoRecord)
    assert (found.endport_lid, found.port_num) == (SW1_LID, 2)
    assert found.port_info == replace(record.info, m_key=0)  # M_Key hidden from the untrusted
    trusted = one(
        sa, request(SaAttr.PORT_INFO_RECORD, Method.GET, _pir(SW1_LID, 2), mask=mask, sm_key=1)
    )
    trusted_record = trusted.record()
    assert isinstance(trusted_record, PortInfoRecord)
    assert trusted_record.port_info.m_key == 0x1234


def test_port_info_records_of_a_switch_lid() -> None:
    sa = make_sa()
    segments = ask(
        sa,
        request(
            SaAttr.PORT_INFO_RECORD,
            Method.GET_TABLE,
            _pir(SW2_LID),
            mask=PortInfoRecordComp.ENDPORT_LID,
        ),
    )
    first = segments[0][1]
    # ports 0..3 of sw2, 72 bytes each, over two segments
    assert first.rmpp.payload_length == 2 * 20 + 4 * 72
    endport, port = first.data[0:2], first.data[2]
    assert int.from_bytes(endport, "big") == SW2_LID and port == 0


def test_port_info_record_component_matching() -> None:
    sa = make_sa(SaConfig(rmpp=False))
    # the 1x SDR ports: h3's port 1 and sw2's port 3
    mask = PortInfoRecordComp.LINK_WIDTH_ACTIVE
    answer = one(
        sa, request(SaAttr.PORT_INFO_RECORD, Method.GET_TABLE, _pir(link_width_active=1), mask=mask)
    )
    found = [(r.endport_lid, r.port_num) for r in answer.records() if isinstance(r, PortInfoRecord)]
    assert found == [(SW2_LID, 3), (6, 1)]
    # MTUCap is bit 31; CapabilityMask bitwise when modifier bit 31 says so
    caps = 1 << 7
    exact = one(
        sa,
        request(SaAttr.PORT_INFO_RECORD, Method.GET_TABLE, _pir(capability_mask=0x2), mask=caps),
    )
    assert exact.attribute_offset == 0  # no port has exactly IsSM
    bitwise = one(
        sa,
        request(
            SaAttr.PORT_INFO_RECORD,
            Method.GET_TABLE,
            _pir(capability_mask=0x2),
            mask=caps,
            modifier=1 << 31,
        ),
    )
    assert bitwise.records()  # every CA port is an SM-capable port here


def test_port_info_record_unknown_lid_gives_no_record() -> None:
    sa = make_sa()
    mask = PortInfoRecordComp.ENDPORT_LID
    answer = one(sa, request(SaAttr.PORT_INFO_RECORD, Method.GET, _pir(40), mask=mask))
    assert answer.status == SaStatus.ERR_NO_RECORDS


def test_error_answer_to_get_table_has_no_attribute_offset() -> None:
    sa = make_sa(up=False)
    datagram = request(SaAttr.NODE_RECORD, Method.GET_TABLE, _node_query())
    mad = SaMad.unpack(datagram.payload)
    datagram = datagram._replace(payload=replace(mad, attribute_offset=14).pack())
    answer = one(sa, datagram)
    assert answer.header.method == Method.GET_TABLE_RESP
    assert answer.status == MadStatus.BUSY and answer.attribute_offset == 0


def test_header_copy_of_answers() -> None:
    sa = make_sa()
    datagram = request(SaAttr.CLASS_PORT_INFO, Method.GET, tid=0xABCDEF, modifier=7, mask=3)
    answer = one(sa, datagram)
    assert answer.header == MadHeader(
        MgmtClass.SUBN_ADM, Method.GET_RESP, SaAttr.CLASS_PORT_INFO, 0xABCDEF, 7, class_version=2
    )
    assert answer.component_mask == 3

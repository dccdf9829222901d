"""The SA's own MADs as Wireshark's tshark decodes them: a PathRecord answer, the
RMPP segments of a large table and an ABORT, and Reports of traps 64 and 69."""

from __future__ import annotations

from pathlib import Path

import pytest

from ibmig.core.sa import SaConfig
from ibmig.core.sm.manager import PortsChanged
from ibmig.wire.mad import Method
from ibmig.wire.notice import TrapNumber
from ibmig.wire.sa import (
    GUIDInfoRecord,
    GUIDInfoRecordComp,
    InformInfo,
    NodeRecord,
    PathRecord,
    PathRecordComp,
    SaAttr,
)
from ibmig.wire.smp_attrs import GUIDInfo, NodeInfo
from tests.core.sa.sa_util import (
    H1_GUID,
    H1_LID,
    H2_GUID,
    H3_GUID,
    H3_LID,
    answer_smps,
    drain,
    make_sa,
    one,
    request,
    rmpp_ack,
)
from tests.helpers import gid
from tests.wire.tshark_util import mad_packet, tshark_fields

pytestmark = pytest.mark.interop


def test_path_record_answer(tmp_path: Path) -> None:
    sa = make_sa()
    query = PathRecord(sgid=gid(H1_GUID), dgid=gid(H3_GUID))
    mask = PathRecordComp.SGID | PathRecordComp.DGID
    answer = one(sa, request(SaAttr.PATH_RECORD, Method.GET, query, mask=mask))
    [row] = tshark_fields(
        tmp_path,
        [mad_packet(answer.pack())],
        [
            "infiniband.mad.method",
            "infiniband.mad.attributeid",
            "infiniband.sa.attributeoffset",
            "infiniband.pathrecord.dlid",
            "infiniband.pathrecord.slid",
            "infiniband.pathrecord.mtuselector",
            "infiniband.pathrecord.mtu",
            "infiniband.pathrecord.rate",
            "infiniband.pathrecord.packetlifetime",
            "infiniband.pathrecord.reversible",
            "infiniband.pathrecord.p_key",
        ],
    )
    assert row == {
        "infiniband.mad.method": ["0x81"],
        "infiniband.mad.attributeid": ["0x0035"],
        "infiniband.sa.attributeoffset": ["0x0008"],
        "infiniband.pathrecord.dlid": ["0x0006"],
        "infiniband.pathrecord.slid": ["0x0003"],
        "infiniband.pathrecord.mtuselector": ["0x02"],
        "infiniband.pathrecord.mtu": ["0x04"],
        "infiniband.pathrecord.rate": ["0x02"],
        "infiniband.pathrecord.packetlifetime": ["0x12"],
        "infiniband.pathrecord.reversible": ["0x01"],
        "infiniband.pathrecord.p_key": ["0xffff"],
    }


def test_rmpp_segments_and_abort(tmp_path: Path) -> None:
    sa = make_sa(SaConfig(rmpp_timeout_ns=10, rmpp_retries=0))
    query = NodeRecord(0, NodeInfo(0, 0, 0, 0))
    sa.receive(request(SaAttr.NODE_RECORD, Method.GET_TABLE, query), 0)
    [(_, first)] = drain(sa)
    sa.receive(rmpp_ack(first, slid=H1_LID, window_last=2), 1)
    [(_, second)] = drain(sa)
    sa.handle_timer(100)
    [(_, abort)] = drain(sa)
    fields = [
        "infiniband.mad.method",
        "infiniband.mad.attributeid",
        "infiniband.rmpp.rmppversion",
        "infiniband.rmpp.rmpptype",
        "infiniband.rmpp.rmppflags",
        "infiniband.rmpp.rmppstatus",
        "infiniband.rmpp.segmentnumber",
        "infiniband.rmpp.payloadlength",
    ]
    rows = tshark_fields(tmp_path, [mad_packet(m.pack()) for m in (first, second, abort)], fields)
    common = {"infiniband.mad.method": ["0x92"], "infiniband.mad.attributeid": ["0x0011"]}
    assert rows[0] == {
        **common,
        "infiniband.rmpp.rmppversion": ["0x01"],
        "infiniband.rmpp.rmpptype": ["0x01"],
        "infiniband.rmpp.rmppflags": ["0x03"],  # Active | First
        "infiniband.rmpp.rmppstatus": ["0x00"],
        "infiniband.rmpp.segmentnumber": ["0x00000001"],
        "infiniband.rmpp.payloadlength": [f"0x{4 * 20 + 6 * 112:08x}"],
    }
    assert rows[1]["infiniband.rmpp.rmppflags"] == ["0x01"]
    assert rows[1]["infiniband.rmpp.segmentnumber"] == ["0x00000002"]
    assert rows[1]["infiniband.rmpp.payloadlength"] == ["0x00000000"]
    assert rows[2]["infiniband.rmpp.rmpptype"] == ["0x04"]  # ABORT
    assert rows[2]["infiniband.rmpp.rmppstatus"] == ["0x7e"]  # too many retries


def test_reports_of_traps_64_and_69(tmp_path: Path) -> None:
    sa = make_sa()
    one(sa, request(SaAttr.INFORM_INFO, Method.SET, InformInfo(), slid=H3_LID))
    sa.ports_changed(PortsChanged(0, (H2_GUID,), ()), 0)
    [(_, in_service)] = drain(sa)
    # move an alias GUID from h1 to h2
    mask = GUIDInfoRecordComp.LID | GUIDInfoRecordComp.BLOCK_NUM | GUIDInfoRecordComp.GUID1
    vguid = 0x0002_C903_0000_7777
    for lid, guids in ((H1_LID, (0, vguid)), (H1_LID, (0, 0)), (5, (0, vguid))):
        record = GUIDInfoRecord(lid, 0, GUIDInfo(guids + (0,) * 6))
        method = Method.SET if guids[1] else Method.DELETE
        sa.receive(request(SaAttr.GUID_INFO_RECORD, method, record, mask=mask, slid=lid), 1)
        answer_smps(sa.sm, 2)
    [moved] = [m for _, m in drain(sa) if m.header.method == Method.REPORT]
    fields = [
        "infiniband.mad.method",
        "infiniband.notice.isgeneric",
        "infiniband.notice.type",
        "infiniband.notice.producertypevendorid",
        "infiniband.notice.trapnumberdeviceid",
        "infiniband.notice.issuerlid",
        "infiniband.trap.gidaddr",
        "infiniband.trap.comp_mask",
    ]
    rows = tshark_fields(tmp_path, [mad_packet(m.pack()) for m in (in_service, moved)], fields)
    common = {
        "infiniband.mad.method": ["0x06"],
        "infiniband.notice.isgeneric": ["0x01"],
        "infiniband.notice.type": ["0x03"],
        "infiniband.notice.producertypevendorid": ["0x000004"],
        "infiniband.notice.issuerlid": ["0x0001"],
    }
    assert rows[0] == {
        **common,
        "infiniband.notice.trapnumberdeviceid": [f"0x{TrapNumber.GID_IN_SERVICE:04x}"],
        "infiniband.trap.gidaddr": ["fe80::c1"],
        "infiniband.trap.comp_mask": [],
    }
    assert rows[1] == {
        **common,
        "infiniband.notice.trapnumberdeviceid": ["0x0045"],
        "infiniband.trap.gidaddr": [],
        "infiniband.trap.comp_mask": ["0x0000000000000004"],  # DGID
    }

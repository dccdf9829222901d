"""SA MADs and Notices checked against an independent decoder: Wireshark's tshark.

Every MAD is framed into a QP1 packet, written to one ERF capture and decoded by
tshark once; each field tshark shows must carry the value our record holds. Besides
hand-picked MADs (queries, table responses, Reports of the traps ibmig sends, the
migration path-change notice), a seeded sample of records with random full-range
fields goes through the same check.

Dissector quirks (Wireshark 4.0 packet-infiniband.c) the expectations follow:
- RMPP: it splits byte 2 as RRespTime (bits 7..4) and RMPPFlags (bits 3..0),
  where IBA Vol 1, 13.6.2.1 has 5 bits and 3 bits; the expected values apply the
  dissector's split to the byte we send.
- A GetTableResp shows only its first record.
- PathRecord: ServiceID is shown as reserved bytes and QoSClass not at all.
- ClassPortInfo: TrapHL is labelled "Reserved" (the second
  `infiniband.classportinfo.reserved`).
- GUIDInfo GUIDs are registered as `infiniband.switchinfo.guid`.
- Notice: IssuerGID is not shown; DataDetails are decoded by trap number for
  traps 64..69, 128..131, 144, 145, 256..259, whatever IsGeneric says.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from ibmig.wire.mad import Method, RmppHeader, RmppType
from ibmig.wire.notice import (
    GidDetails,
    LinkStateChangeDetails,
    LocalChangeFlags,
    LocalChangesDetails,
    Notice,
    NoticeDetails,
    NoticeType,
    PathChangeDetails,
    PathValues,
    PortThresholdDetails,
    ProducerType,
    SystemImageGuidChangedDetails,
    gid_service_notice,
    path_change_notice,
    peek_gid_service,
    with_path_values,
)
from ibmig.wire.sa import (
    SA_HEADER_SIZE,
    ClassPortInfo,
    GUIDInfoRecord,
    InformInfo,
    InformInfoRecord,
    NodeRecord,
    PathRecord,
    PathRecordComp,
    PortInfoRecord,
    SaAttr,
    SaMad,
    SaRecord,
)
from ibmig.wire.smp import Smp
from ibmig.wire.smp_attrs import GUIDInfo, NodeDescription, NodeInfo, PortInfo
from tests.wire.tshark_util import h, ipv6, mad_packet, random_gid, tshark_fields

pytestmark = pytest.mark.interop

Expected = dict[str, list[str]]


# --- expected fields ------------------------------------------------------------------


def header_fields(mad: SaMad) -> Expected:
    hd, r = mad.header, mad.rmpp
    byte2 = (r.resp_time << 3) | r.flags
    fields = {
        "infiniband.mad.baseversion": [h(hd.base_version, 8)],
        "infiniband.mad.mgmtclass": [h(hd.mgmt_class, 8)],
        "infiniband.mad.classversion": [h(hd.class_version, 8)],
        "infiniband.mad.method": [h(hd.method, 8)],
        "infiniband.mad.status": [h(hd.status, 16)],
        "infiniband.mad.classspecific": [h(hd.class_specific, 16)],
        "infiniband.mad.transactionid": [h(hd.tid, 64)],
        "infiniband.mad.attributeid": [h(hd.attribute_id, 16)],
        "infiniband.mad.attributemodifier": [h(hd.attribute_modifier, 32)],
        "infiniband.rmpp.rmppversion": [h(r.rmpp_version, 8)],
        "infiniband.rmpp.rmpptype": [h(r.rmpp_type, 8)],
        "infiniband.rmpp.rresptime": [h(byte2 >> 4, 8)],  # the dissector's split
        "infiniband.rmpp.rmppflags": [h(byte2 & 0xF, 8)],
        "infiniband.rmpp.rmppstatus": [h(r.rmpp_status, 8)],
        "infiniband.sa.smkey": [h(mad.sm_key, 64)],
        "infiniband.sa.attributeoffset": [h(mad.attribute_offset, 16)],
        "infiniband.sa.componentmask": [h(mad.component_mask, 64)],
    }
    if r.rmpp_type == RmppType.DATA:
        fields["infiniband.rmpp.segmentnumber"] = [h(r.segment_number, 32)]
        fields["infiniband.rmpp.payloadlength"] = [h(r.payload_length, 32)]
    else:
        fields["infiniband.rmpp.data1"] = [h(r.data1, 32)]
        fields["infiniband.rmpp.data2"] = [h(r.data2, 32)]
    return fields


def path_record_fields(p: PathRecord) -> Expected:
    f = {
        "dgid": ipv6(p.dgid),
        "sgid": ipv6(p.sgid),
        "dlid": h(p.dlid, 16),
        "slid": h(p.slid, 16),
        "rawtraffic": h(p.raw_traffic, 8),
        "flowlabel": h(p.flow_label, 24),
        "hoplimit": h(p.hop_limit, 8),
        "tclass": h(p.tclass, 8),
        "reversible": h(p.reversible, 8),
        "numbpath": h(p.numb_path, 8),
        "p_key": h(p.pkey, 16),
        "sl": h(p.sl, 16),
        "mtuselector": h(p.mtu_selector, 8),
        "mtu": h(p.mtu, 8),
        "rateselector": h(p.rate_selector, 8),
        "rate": h(p.rate, 8),
        "packetlifetimeselector": h(p.packet_life_time_selector, 8),
        "packetlifetime": h(p.packet_life_time, 8),
        "preference": h(p.preference, 8),
    }
    return {f"infiniband.pathrecord.{name}": [value] for name, value in f.items()}


def notice_fields(n: Notice) -> Expected:
    raw = n.pack()
    fields = {
        "infiniband.notice.isgeneric": [h(n.is_generic, 8)],
        "infiniband.notice.type": [h(n.type, 8)],
        "infiniband.notice.producertypevendorid": [h(n.producer_type, 24)],
        "infiniband.notice.trapnumberdeviceid": [h(n.trap_number, 16)],
        "infiniband.notice.issuerlid": [h(n.issuer_lid, 16)],
        "infiniband.notice.noticetoggle": [h(n.notice_toggle, 8)],
        "infiniband.notice.noticecount": [h(n.notice_count, 16)],
        "infiniband.notice.datadetails": [raw[10:64].hex()],
    }
    d = n.details
    trap: dict[str, list[str]] = {}
    if isinstance(d, GidDetails):
        trap = {"gidaddr": [ipv6(d.gid)]}
    elif isinstance(d, PathChangeDetails):
        trap = {
            "comp_mask": [h(d.component_mask, 64)],
            "wait_for_repath": [h(d.wait_for_repath, 8)],
        }
    elif isinstance(d, LinkStateChangeDetails):
        trap = {"lidaddr": [h(d.lid, 16)]}
    elif isinstance(d, PortThresholdDetails):
        trap = {"lidaddr": [h(d.lid, 16)], "portno": [h(d.port_num, 8)]}
    elif isinstance(d, LocalChangesDetails):
        trap = {
            "lidaddr": [h(d.lid, 16)],
            "otherlocalchanges": [h(d.other_local_changes, 8)],
            "capabilitymask": [h(d.capability_mask, 32)],
            "linkspeecenabledchange": [h(d.change_flags >> 2 & 1, 8)],
            "linkwidthenabledchange": [h(d.change_flags >> 1 & 1, 8)],
            "nodedescriptionchange": [h(d.change_flags & 1, 8)],
        }
    elif isinstance(d, SystemImageGuidChangedDetails):
        trap = {"lidaddr": [h(d.lid, 16)], "systemimageguid": [h(d.system_image_guid, 64)]}
    fields |= {f"infiniband.trap.{name}": values for name, values in trap.items()}
    return fields


def inform_info_fields(i: InformInfo) -> Expected:
    f = {
        "gid": ipv6(i.gid),
        "lidrangebegin": h(i.lid_range_begin, 16),
        "lidrangeend": h(i.lid_range_end, 16),
        "isgeneric": h(i.is_generic, 8),
        "subscribe": h(i.subscribe, 8),
        "type": h(i.type, 16),
        "trapnumberdeviceid": h(i.trap_number, 16),
        "qpn": h(i.qpn, 24),
        "resptimevalue": h(i.resp_time_value, 8),
        "producertypevendorid": h(i.producer_type, 24),
    }
    return {f"infiniband.informinfo.{name}": [value] for name, value in f.items()}


def inform_info_record_fields(r: InformInfoRecord) -> Expected:
    return {
        "infiniband.informinforecord.subscribergid": [ipv6(r.subscriber_gid)],
        "infiniband.informinforecord.enum": [h(r.enum, 16)],
    } | inform_info_fields(r.inform_info)


def node_record_fields(r: NodeRecord) -> Expected:
    ni = r.node_info
    f = {
        "baseversion": h(ni.base_version, 8),
        "classversion": h(ni.class_version, 8),
        "nodetype": h(ni.node_type, 8),
        "numports": h(ni.num_ports, 8),
        "systemimageguid": h(ni.system_image_guid, 64),
        "nodeguid": h(ni.node_guid, 64),
        "portguid": h(ni.port_guid, 64),
        "partitioncap": h(ni.partition_cap, 16),
        "deviceid": h(ni.device_id, 16),
        "revision": h(ni.revision, 32),
        "localportnum": h(ni.local_port_num, 8),
        "vendorid": h(ni.vendor_id, 24),
    }
    return {
        "infiniband.sa.lid": [h(r.lid, 16)],
        "infiniband.nodedescription.nodestring": [r.node_description.description],
    } | {f"infiniband.nodeinfo.{name}": [value] for name, value in f.items()}


def port_info_record_fields(r: PortInfoRecord) -> Expected:
    pi = r.port_info
    f = {
        "m_key": h(pi.m_key, 64),
        "guid": h(pi.gid_prefix, 64),  # the dissector's name for GIDPrefix
        "lid": h(pi.lid, 16),
        "mastersmlid": h(pi.master_sm_lid, 16),
        "capabilitymask": h(pi.capability_mask, 32),
        "localportnum": h(pi.local_port_num, 8),
        "linkwidthenabled": h(pi.link_width_enabled, 8),
        "linkwidthsupported": h(pi.link_width_supported, 8),
        "linkwidthactive": h(pi.link_width_active, 8),
        "portstate": h(pi.port_state, 8),
        "portphysicalstate": h(pi.port_physical_state, 8),
        "lmc": h(pi.lmc, 8),
        "neighbormtu": h(pi.neighbor_mtu, 8),
        "mastersmsl": h(pi.master_sm_sl, 8),
        "mtucap": h(pi.mtu_cap, 8),
        "m_keyviolations": h(pi.m_key_violations, 16),
        "guidcap": h(pi.guid_cap, 8),
        "subnettimeout": h(pi.subnet_timeout, 8),
    }
    return {
        "infiniband.sa.endportlid": [h(r.endport_lid, 16)],
        "infiniband.sa.portnum": [h(r.port_num, 8)],
    } | {f"infiniband.portinfo.{name}": [value] for name, value in f.items()}


def guid_info_record_fields(r: GUIDInfoRecord) -> Expected:
    return {
        "infiniband.sa.lid": [h(r.lid, 16)],
        "infiniband.sa.blocknum_eightbit": [h(r.block_num, 8)],
        "infiniband.switchinfo.guid": [h(g, 64) for g in r.guid_info.guids],
    }


def class_port_info_fields(c: ClassPortInfo) -> Expected:
    f = {
        "baseversion": h(c.base_version, 8),
        "classversion": h(c.class_version, 8),
        "capabilitymask": h(c.capability_mask, 16),
        "capabilitymask2": h(c.capability_mask2, 32),
        "resptimevalue": h(c.resp_time_value, 8),
        "redirectgid": ipv6(c.redirect_gid),
        "redirecttc": h(c.redirect_tc, 8),
        "redirectsl": h(c.redirect_sl, 8),
        "redirectfl": h(c.redirect_flow_label, 24),
        "redirectlid": h(c.redirect_lid, 16),
        "redirectpkey": h(c.redirect_pkey, 16),
        "redirectqp": h(c.redirect_qp, 24),
        "redirectqkey": h(c.redirect_qkey, 32),
        "trapgid": ipv6(c.trap_gid),
        "traptc": h(c.trap_tc, 8),
        "trapsl": h(c.trap_sl, 8),
        "trapfl": h(c.trap_flow_label, 24),
        "traplid": h(c.trap_lid, 16),
        "trappkey": h(c.trap_pkey, 16),
        "trapqp": h(c.trap_qp, 24),
        "trapqkey": h(c.trap_qkey, 32),
    }
    fields = {f"infiniband.classportinfo.{name}": [value] for name, value in f.items()}
    # The reserved byte before RedirectQP, then TrapHL under the same label.
    fields["infiniband.classportinfo.reserved"] = ["0x00", h(c.trap_hop_limit, 8)]
    return fields


def record_fields(record: SaRecord) -> Expected:
    if isinstance(record, PathRecord):
        return path_record_fields(record)
    if isinstance(record, Notice):
        return notice_fields(record)
    if isinstance(record, InformInfo):
        return inform_info_fields(record)
    if isinstance(record, InformInfoRecord):
        return inform_info_record_fields(record)
    if isinstance(record, NodeRecord):
        return node_record_fields(record)
    if isinstance(record, PortInfoRecord):
        return port_info_record_fields(record)
    if isinstance(record, GUIDInfoRecord):
        return guid_info_record_fields(record)
    # The table records added for issue 12 are checked in test_interop_sa_records.
    assert isinstance(record, ClassPortInfo), record
    return class_port_info_fields(record)


def expected_fields(mad: SaMad) -> Expected:
    records = mad.records()
    # tshark decodes the first record of a table only.
    return header_fields(mad) | (record_fields(records[0]) if records else {})


# --- the MADs -------------------------------------------------------------------------

SM_GID = bytes.fromhex("fe800000000000000002c90300000001")
VM_GID = bytes.fromhex("fe800000000000000002c903000abc01")  # prefix || vGUID
HOST_GID = bytes.fromhex("fe800000000000000002c90300001235")

INFORM = InformInfo(
    gid=bytes(16),
    lid_range_begin=0xFFFF,
    lid_range_end=0,
    is_generic=1,
    subscribe=1,
    type=NoticeType.SM,
    trap_number=69,
    qpn=1,
    resp_time_value=18,
    producer_type=ProducerType.CLASS_MANAGER,
)
NODE_INFO = NodeInfo(
    node_type=1,
    num_ports=1,
    node_guid=0x0002C90300001234,
    port_guid=0x0002C90300001235,
    system_image_guid=0x0002C90300001237,
    partition_cap=128,
    device_id=0x1003,
    revision=0xA0,
    local_port_num=1,
    vendor_id=0x0002C9,
)
PORT_INFO = PortInfo(
    m_key=0x0102030405060708,
    gid_prefix=0xFE80000000000000,
    lid=0x12,
    master_sm_lid=1,
    capability_mask=0x02510868,
    local_port_num=1,
    link_width_enabled=3,
    link_width_supported=3,
    link_width_active=2,
    port_state=4,
    port_physical_state=5,
    lmc=0,
    neighbor_mtu=5,
    master_sm_sl=0,
    mtu_cap=5,
    guid_cap=32,
    subnet_timeout=18,
)


def hand_picked() -> list[SaMad]:
    path = PathRecord(
        service_id=0x1000000000000001,
        dgid=VM_GID,
        sgid=HOST_GID,
        dlid=0x21,
        slid=0x12,
        hop_limit=0,
        reversible=True,
        numb_path=1,
        pkey=0xFFFF,
        sl=0,
        mtu_selector=2,
        mtu=5,
        rate_selector=2,
        rate=7,
        packet_life_time_selector=2,
        packet_life_time=18,
    )
    query = PathRecord(dgid=VM_GID, sgid=HOST_GID, reversible=True, numb_path=1)
    mask = (
        PathRecordComp.DGID
        | PathRecordComp.SGID
        | PathRecordComp.REVERSIBLE
        | PathRecordComp.NUMB_PATH
    )
    return [
        # A guest resolves the path to a migrated VM...
        SaMad.from_record(query, method=Method.GET, tid=0x0100000000000001, component_mask=mask),
        SaMad.from_record(
            path, method=Method.GET_RESP, tid=0x0100000000000001, component_mask=mask
        ),
        SaMad.from_records(
            [path, PathRecord(dgid=HOST_GID, sgid=VM_GID, dlid=0x12, slid=0x21)],
            method=Method.GET_TABLE_RESP,
            tid=0x0100000000000002,
        ),
        # ...after a dom0 subscribed to path-change notices and the SA reported one.
        SaMad.from_record(INFORM, method=Method.SET, tid=0x0200000000000001),
        SaMad.from_record(INFORM, method=Method.GET_RESP, tid=0x0200000000000001),
        SaMad.from_records(
            [InformInfoRecord(HOST_GID, 0, INFORM), InformInfoRecord(SM_GID, 1, INFORM)],
            method=Method.GET_TABLE_RESP,
            tid=0x0200000000000002,
        ),
        SaMad.from_record(
            path_change_notice(
                gid=VM_GID,
                new_lid=0x21,
                old_lid=0x17,
                new_port_guid=0x0002C90300005679,
                old_port_guid=0x0002C90300001235,
                issuer_lid=1,
                issuer_gid=SM_GID,
                notice_count=1,
            ),
            method=Method.REPORT,
            tid=0x0300000000000001,
        ),
        SaMad.from_record(
            Notice(trap_number=69, issuer_lid=1, details=PathChangeDetails(VM_GID, 0x21, 0x17, 9)),
            method=Method.REPORT_RESP,
            tid=0x0300000000000001,
        ),
        # The traps the SM itself reports.
        SaMad.from_record(
            Notice(trap_number=64, issuer_lid=1, details=GidDetails(VM_GID), issuer_gid=SM_GID),
            method=Method.REPORT,
            tid=0x0300000000000002,
        ),
        SaMad.from_record(
            Notice(trap_number=65, issuer_lid=1, details=GidDetails(HOST_GID), issuer_gid=SM_GID),
            method=Method.REPORT,
            tid=0x0300000000000003,
        ),
        SaMad.from_record(
            Notice(
                type=NoticeType.URGENT,
                producer_type=ProducerType.SWITCH,
                trap_number=128,
                issuer_lid=0x30,
                notice_toggle=True,
                notice_count=0x7FFF,
                details=LinkStateChangeDetails(0x30),
            ),
            method=Method.REPORT,
            tid=0x0300000000000004,
        ),
        SaMad.from_record(
            Notice(
                type=NoticeType.INFO,
                producer_type=ProducerType.CA,
                trap_number=144,
                issuer_lid=0x12,
                details=LocalChangesDetails(
                    0x12,
                    True,
                    0x02510868,
                    LocalChangeFlags.NODE_DESCRIPTION_CHANGE
                    | LocalChangeFlags.LINK_SPEED_ENABLED_CHANGE,
                    0x10,
                ),
            ),
            method=Method.REPORT,
            tid=0x0300000000000005,
        ),
        SaMad.from_record(
            Notice(
                is_generic=False,
                type=NoticeType.INFO,
                producer_type=0x0002C9,
                trap_number=0x1234,
                issuer_lid=2,
                details=bytes(range(54)),
            ),
            method=Method.REPORT,
            tid=0x0300000000000006,
        ),
        # Discovery records and alias GUIDs (vGUIDs).
        SaMad.from_records(
            [NodeRecord(0x12, NODE_INFO, NodeDescription("host-a HCA-1"))],
            method=Method.GET_TABLE_RESP,
            tid=0x0400000000000001,
        ),
        SaMad.from_records(
            [PortInfoRecord(0x12, 1, PORT_INFO), PortInfoRecord(0x13, 1, PORT_INFO)],
            method=Method.GET_TABLE_RESP,
            tid=0x0400000000000002,
        ),
        SaMad.from_record(
            GUIDInfoRecord(
                0x12, 0, GUIDInfo((0x0002C90300001235, 0x0002C903000ABC01, 0, 0, 0, 0, 0, 0))
            ),
            method=Method.SET,
            tid=0x0400000000000003,
            component_mask=0x3 | 1 << 5,
        ),
        SaMad.from_record(
            GUIDInfoRecord(0x12, 31, GUIDInfo((2**64 - 1,) * 8)),
            method=Method.DELETE,
            tid=0x0400000000000004,
        ),
        SaMad.from_record(
            ClassPortInfo(
                capability_mask=0x2602,
                capability_mask2=0x7FFFFFF,
                resp_time_value=18,
                trap_gid=SM_GID,
                trap_lid=1,
                trap_pkey=0xFFFF,
                trap_hop_limit=0xFF,
                trap_qp=1,
                trap_qkey=0x80010000,
            ),
            method=Method.GET_RESP,
            tid=0x0500000000000001,
        ),
        # An error response without records, and an empty table.
        SaMad.from_record(
            query, method=Method.GET_RESP, tid=0x0600000000000001, status=0x0300, sm_key=0x1234
        ),
        SaMad.from_records(
            [],
            method=Method.GET_TABLE_RESP,
            attribute_id=SaAttr.PATH_RECORD,
            tid=0x0600000000000002,
        ),
    ]


def random_records(rng: random.Random) -> list[SaRecord]:
    def b(n: int) -> int:
        return rng.getrandbits(n)

    path = PathRecord(
        b(64), random_gid(rng), random_gid(rng), b(16), b(16), bool(b(1)), b(20), b(8), b(8),
        bool(b(1)), b(7), b(16), b(12), b(4), b(2), b(6), b(2), b(6), b(2), b(6), b(8),
    )  # fmt: skip
    inform = InformInfo(random_gid(rng), b(16), b(16), b(8), b(8), b(16), b(16), b(24), b(5), b(24))
    details: list[NoticeDetails] = [
        GidDetails(random_gid(rng)),
        PathChangeDetails(random_gid(rng), b(16), b(16), b(64), b(64), b(64), bool(b(1))),
        LinkStateChangeDetails(b(16)),
        PortThresholdDetails(b(16), b(8)),
        LocalChangesDetails(b(16), bool(b(1)), b(32), b(6), b(16)),
        SystemImageGuidChangedDetails(b(16), b(64)),
    ]
    traps = [rng.choice([64, 65, 66, 67]), 69, 128, rng.choice([129, 130, 131]), 144, 145]
    notices: list[SaRecord] = [
        Notice(True, b(7), b(24), trap, b(16), bool(b(1)), b(15), d, random_gid(rng))
        for trap, d in zip(traps, details, strict=True)
    ]
    description = "".join(
        rng.choice("abcdefghijklmnopqrstuvwxyz0123456789-") for _ in range(1 + b(5))
    )
    node = NodeRecord(
        b(16),
        NodeInfo(b(8), b(8), b(64), b(64), b(64), b(16), b(16), b(32), b(8), b(24), b(8), b(8)),
        NodeDescription(description),
    )
    cpi = ClassPortInfo(
        b(8), b(8), b(16), b(27), b(5), random_gid(rng), b(8), b(4), b(20), b(16), b(16),
        b(24), b(32), random_gid(rng), b(8), b(4), b(20), b(16), b(16), b(8), b(24), b(32),
    )  # fmt: skip
    return [
        path,
        inform,
        InformInfoRecord(random_gid(rng), b(16), inform),
        *notices,
        node,
        PortInfoRecord(b(16), b(8), PortInfo.unpack(rng.randbytes(64)), b(8)),
        GUIDInfoRecord(b(16), b(8), GUIDInfo(tuple(b(64) for _ in range(8)))),
        cpi,
    ]


def all_mads() -> list[SaMad]:
    rng = random.Random(2012)
    mads = hand_picked()
    for _ in range(4):
        for record in random_records(rng):
            method = rng.choice([Method.GET_RESP, Method.SET, Method.REPORT, Method.GET])
            mads.append(
                SaMad.from_record(
                    record,
                    method=method,
                    tid=rng.getrandbits(64),
                    component_mask=rng.getrandbits(64),
                    sm_key=rng.getrandbits(64),
                    status=rng.getrandbits(16),
                    attribute_modifier=rng.getrandbits(32),
                    rmpp=RmppHeader(1, RmppType.DATA, 14, 7, 0, 1, 20 + record.SIZE)
                    if rng.getrandbits(1)
                    else None,
                )
            )
    return mads


# --- the check ------------------------------------------------------------------------


def test_tshark_decodes_sa_mads(tshark: str, tmp_path: Path) -> None:
    mads = all_mads()
    expected = [expected_fields(mad) for mad in mads]
    fields = sorted({name for e in expected for name in e})
    rows = tshark_fields(tmp_path, [mad_packet(mad.pack(), qp=1) for mad in mads], fields)
    assert len(rows) == len(mads)
    for i, (mad, want, row) in enumerate(zip(mads, expected, rows, strict=True)):
        got = {name: row[name] for name in want}
        assert got == want, f"MAD {i}: {mad}"


def test_path_change_notice_shows_as_trap_69(tshark: str, tmp_path: Path) -> None:
    """The migration notice decodes as a generic RePath notice; its migration fields
    sit in the DataDetails bytes at the documented offsets."""
    notice = path_change_notice(
        gid=VM_GID,
        new_lid=0x21,
        old_lid=0x17,
        new_port_guid=0x0002C90300005679,
        old_port_guid=0x0002C90300001235,
        issuer_lid=1,
        issuer_gid=SM_GID,
    )
    mad = SaMad.from_record(notice, method=Method.REPORT, tid=7)
    [row] = tshark_fields(
        tmp_path,
        [mad_packet(mad.pack(), qp=1)],
        [
            "infiniband.notice.isgeneric",
            "infiniband.notice.type",
            "infiniband.notice.producertypevendorid",
            "infiniband.notice.trapnumberdeviceid",
            "infiniband.notice.issuerlid",
            "infiniband.trap.comp_mask",
            "infiniband.notice.datadetails",
            "_ws.col.Info",
        ],
    )
    assert row["infiniband.notice.isgeneric"] == ["0x01"]
    assert row["infiniband.notice.type"] == ["0x03"]
    assert row["infiniband.notice.producertypevendorid"] == ["0x000004"]
    assert row["infiniband.notice.trapnumberdeviceid"] == ["0x0045"]
    assert row["infiniband.notice.issuerlid"] == ["0x0001"]
    assert row["infiniband.trap.comp_mask"] == ["0x0000000000000004"]  # PathRecord DGID
    details = bytes.fromhex(row["infiniband.notice.datadetails"][0])
    assert details[10:26] == VM_GID
    assert details[26:28] == b"\x00\x21"
    assert details[28:30] == b"\x00\x17"
    assert details[30:38] == (0x0002C90300005679).to_bytes(8, "big")
    assert details[38:46] == (0x0002C90300001235).to_bytes(8, "big")
    assert row["_ws.col.Info"][0].endswith("SubnAdmReport(Notice)")


def test_path_carrying_notice_keeps_its_outer_fields_for_tshark(
    tshark: str, tmp_path: Path
) -> None:
    """ "trap69-path": the new path's values in DataDetails bytes 46..49 and the flag
    in byte 8 bit 6 leave what tshark decodes of trap 69 as it was (RePath, its
    ComponentMask, WaitForRepath 0)."""
    notice = with_path_values(
        path_change_notice(
            gid=VM_GID, new_lid=0x21, old_lid=0x17, new_port_guid=0x0002C90300005679,
            old_port_guid=0x0002C90300001235, issuer_lid=1, issuer_gid=SM_GID,
        ),
        PathValues(sl=3, mtu=4, rate=16, packet_life_time=18),
    )  # fmt: skip
    mad = SaMad.from_record(notice, method=Method.REPORT, tid=8)
    [row] = tshark_fields(
        tmp_path,
        [mad_packet(mad.pack(), qp=1)],
        [
            "infiniband.notice.trapnumberdeviceid",
            "infiniband.notice.issuerlid",
            "infiniband.trap.comp_mask",
            "infiniband.trap.wait_for_repath",
            "infiniband.notice.datadetails",
            "_ws.col.Info",
        ],
    )
    assert row["infiniband.notice.trapnumberdeviceid"] == ["0x0045"]
    assert row["infiniband.notice.issuerlid"] == ["0x0001"]
    assert row["infiniband.trap.comp_mask"] == ["0x0000000000000004"]
    assert row["infiniband.trap.wait_for_repath"] == ["0x00"]
    details = bytes.fromhex(row["infiniband.notice.datadetails"][0])
    assert details[8] == 0x40
    assert details[26:28] == b"\x00\x21"
    assert details[46:54] == bytes([3, 4, 16, 18, 0, 0, 0, 0])
    assert row["_ws.col.Info"][0].endswith("SubnAdmReport(Notice)")


def test_alias_move_as_traps_65_and_64_decodes_as_gid_out_of_and_in_service(
    tshark: str, tmp_path: Path
) -> None:
    """The "trap64-65" variant: what the SA Reports for a moved vGUID is what OFED's
    local SA cache consumes: generic SM notices 65 and 64 whose GIDADDR is the VM's
    GID (IBA Vol 1, 14.2.5.1), issued by the SM."""
    mads = [
        SaMad.from_record(
            gid_service_notice(trap, gid=VM_GID, issuer_lid=1, issuer_gid=SM_GID),
            method=Method.REPORT,
            tid=0x40 + trap,
        )
        for trap in (65, 64)
    ]
    for mad, trap in zip(mads, (65, 64), strict=True):
        assert peek_gid_service(mad.pack(), SA_HEADER_SIZE) == (trap, VM_GID)
    rows = tshark_fields(
        tmp_path,
        [mad_packet(mad.pack(), qp=1) for mad in mads],
        [
            "infiniband.notice.isgeneric",
            "infiniband.notice.type",
            "infiniband.notice.producertypevendorid",
            "infiniband.notice.trapnumberdeviceid",
            "infiniband.notice.issuerlid",
            "infiniband.trap.gidaddr",
            "_ws.col.Info",
        ],
    )
    assert [row["infiniband.notice.trapnumberdeviceid"] for row in rows] == [["0x0041"], ["0x0040"]]
    for row in rows:
        assert row["infiniband.notice.isgeneric"] == ["0x01"]
        assert row["infiniband.notice.type"] == ["0x03"]  # subnet management
        assert row["infiniband.notice.producertypevendorid"] == ["0x000004"]  # class manager
        assert row["infiniband.notice.issuerlid"] == ["0x0001"]
        assert row["infiniband.trap.gidaddr"] == [ipv6(VM_GID)]
        assert row["_ws.col.Info"][0].endswith("SubnAdmReport(Notice)")


def test_smp_trap_carries_the_64_byte_notice(tshark: str, tmp_path: Path) -> None:
    """SubnTrap(Notice) from an SMA: the Notice without IssuerGID fills the SMP data."""
    notices = [
        Notice(
            type=NoticeType.URGENT,
            producer_type=ProducerType.SWITCH,
            trap_number=128,
            issuer_lid=0x30,
            notice_toggle=True,
            notice_count=2,
            details=LinkStateChangeDetails(0x30),
        ),
        Notice(
            type=NoticeType.INFO,
            producer_type=ProducerType.CA,
            trap_number=144,
            issuer_lid=0x12,
            details=LocalChangesDetails(0x12, False, 0x02510868, 0x7, 0),
        ),
        Notice(
            type=NoticeType.URGENT,
            producer_type=ProducerType.CA,
            trap_number=129,
            issuer_lid=0x12,
            details=PortThresholdDetails(0x12, 1),
        ),
    ]
    smps = [
        Smp(0x01, Method.TRAP, Notice.ATTRIBUTE_ID, tid=0x100 + i, data=n.pack_smp())
        for i, n in enumerate(notices)
    ]
    expected = [notice_fields(n) for n in notices]
    fields = sorted({name for e in expected for name in e} | {"infiniband.mad.method"})
    rows = tshark_fields(tmp_path, [mad_packet(smp.pack(), qp=0) for smp in smps], fields)
    for notice, smp, want, row in zip(notices, smps, expected, rows, strict=True):
        assert row["infiniband.mad.method"] == ["0x05"]
        assert {name: row[name] for name in want} == want
        assert Notice.unpack_smp(smp.data) == notice

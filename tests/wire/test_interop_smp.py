"""SMPs and their attributes checked against an independent decoder: Wireshark's tshark.

Every SMP is framed into a QP0 packet; all of them go into one ERF capture that
tshark decodes once. Each field tshark shows must carry the value our record
holds. Besides hand-picked records, a seeded sample of records with random
full-range fields goes through the same check, LID routed and directed route.

Not asserted, because Wireshark 4.0 does not show them: PortInfo CapabilityMask2,
LinkSpeedExt* and MulticastPKeyTrapSuppressionEnabled, SwitchInfo MulticastFDBTop.
`infiniband.smpdirected.d` is not asserted either: the dissector adds it as a
one-byte item under the 16-bit mask 0x8000, so it always reads 0; the D bit is
checked as bit 15 of `infiniband.smpdirected.smpstatus`, which tshark shows as the
whole status word. tshark labels GUIDInfo's GUIDs `infiniband.switchinfo.guid` and
PortInfo's GIDPrefix `infiniband.portinfo.guid`.
"""

from __future__ import annotations

import dataclasses
import random
import string
from collections.abc import Callable
from typing import Any

import pytest

from ibmig.wire.mad import Method
from ibmig.wire.smp import PERMISSIVE_LID, Smp, make_get, make_get_resp, make_set
from ibmig.wire.smp_attrs import (
    GUIDInfo,
    LinearForwardingTable,
    LinkWidth,
    Mtu,
    NodeDescription,
    NodeInfo,
    NodeType,
    PhysPortState,
    PKeyTable,
    PortCapability,
    PortInfo,
    PortState,
    SMInfo,
    SmpAttribute,
    SmState,
    SwitchInfo,
)
from tests.wire.tshark_util import h, mad_packet, tshark_fields

pytestmark = pytest.mark.interop

SEED = 20261125
RANDOM_PER_ATTRIBUTE = 12


def flag(value: bool) -> str:
    return h(int(value), 8)


# --- expected fields per record ------------------------------------------------------


def smp_fields(smp: Smp) -> dict[str, list[str]]:
    raw = smp.pack()
    status_word = int.from_bytes(raw[4:6], "big")
    fields = {
        "infiniband.mad.baseversion": [h(smp.base_version, 8)],
        "infiniband.mad.mgmtclass": [h(smp.mgmt_class, 8)],
        "infiniband.mad.classversion": [h(smp.class_version, 8)],
        "infiniband.mad.method": [h(smp.method, 8)],
        "infiniband.mad.status": [h(status_word, 16)],
        "infiniband.mad.classspecific": [h((smp.hop_pointer << 8) | smp.hop_count, 16)],
        "infiniband.mad.transactionid": [h(smp.tid, 64)],
        "infiniband.mad.attributeid": [h(smp.attribute_id, 16)],
        "infiniband.mad.attributemodifier": [h(smp.attribute_modifier, 32)],
        "infiniband.smplid.mkey": [h(smp.m_key, 64)],
    }
    if smp.directed:
        fields |= {
            "infiniband.smpdirected.smpstatus": [
                h((0x8000 if smp.direction else 0) | smp.status, 16)
            ],
            "infiniband.smpdirected.hoppointer": [h(smp.hop_pointer, 8)],
            "infiniband.smpdirected.hopcount": [h(smp.hop_count, 8)],
            "infiniband.smpdirected.drslid": [h(smp.dr_slid, 16)],
            "infiniband.smpdirected.drdlid": [h(smp.dr_dlid, 16)],
            "infiniband.smpdirected.initialpath": [smp.initial_path.hex()],
            "infiniband.smpdirected.returnpath": [smp.return_path.hex()],
        }
    return fields


def node_info_fields(r: NodeInfo) -> dict[str, list[str]]:
    return {
        "infiniband.nodeinfo.baseversion": [h(r.base_version, 8)],
        "infiniband.nodeinfo.classversion": [h(r.class_version, 8)],
        "infiniband.nodeinfo.nodetype": [h(r.node_type, 8)],
        "infiniband.nodeinfo.numports": [h(r.num_ports, 8)],
        "infiniband.nodeinfo.systemimageguid": [h(r.system_image_guid, 64)],
        "infiniband.nodeinfo.nodeguid": [h(r.node_guid, 64)],
        "infiniband.nodeinfo.portguid": [h(r.port_guid, 64)],
        "infiniband.nodeinfo.partitioncap": [h(r.partition_cap, 16)],
        "infiniband.nodeinfo.deviceid": [h(r.device_id, 16)],
        "infiniband.nodeinfo.revision": [h(r.revision, 32)],
        "infiniband.nodeinfo.localportnum": [h(r.local_port_num, 8)],
        "infiniband.nodeinfo.vendorid": [h(r.vendor_id, 24)],
    }


# Capability mask bits that tshark shows, with its field names.
CAPABILITY_BITS = {
    "issm": PortCapability.IS_SM,
    "noticesupported": PortCapability.IS_NOTICE_SUPPORTED,
    "trapsupported": PortCapability.IS_TRAP_SUPPORTED,
    "systemimageguidsupported": PortCapability.IS_SYSTEM_IMAGE_GUID_SUPPORTED,
    "communicationmanagementsupported": PortCapability.IS_COMMUNICATION_MANAGEMENT_SUPPORTED,
    "drnoticesupported": PortCapability.IS_DR_NOTICE_SUPPORTED,
    "capabilitymasknoticesupported": PortCapability.IS_CAPABILITY_MASK_NOTICE_SUPPORTED,
    "clientregistrationsupported": PortCapability.IS_CLIENT_REREGISTRATION_SUPPORTED,
}


def port_info_fields(r: PortInfo) -> dict[str, list[str]]:
    p = "infiniband.portinfo."
    fields = {
        p + "m_key": [h(r.m_key, 64)],
        p + "guid": [h(r.gid_prefix, 64)],
        p + "lid": [h(r.lid, 16)],
        p + "mastersmlid": [h(r.master_sm_lid, 16)],
        p + "capabilitymask": [h(r.capability_mask, 32)],
        p + "diagcode": [h(r.diag_code, 16)],
        p + "m_keyleaseperiod": [h(r.m_key_lease_period, 16)],
        p + "localportnum": [h(r.local_port_num, 8)],
        p + "linkwidthenabled": [h(r.link_width_enabled, 8)],
        p + "linkwidthsupported": [h(r.link_width_supported, 8)],
        p + "linkwidthactive": [h(r.link_width_active, 8)],
        p + "linkspeedsupported": [h(r.link_speed_supported, 8)],
        p + "portstate": [h(r.port_state, 8)],
        p + "portphysicalstate": [h(r.port_physical_state, 8)],
        p + "linkdowndefaultstate": [h(r.link_down_default_state, 8)],
        p + "m_keyprotectbits": [h(r.m_key_protect_bits, 8)],
        p + "lmc": [h(r.lmc, 8)],
        p + "linkspeedactive": [h(r.link_speed_active, 8)],
        p + "linkspeedenabled": [h(r.link_speed_enabled, 8)],
        p + "neighbormtu": [h(r.neighbor_mtu, 8)],
        p + "mastersmsl": [h(r.master_sm_sl, 8)],
        p + "vlcap": [h(r.vl_cap, 8)],
        p + "inittype": [h(r.init_type, 8)],
        p + "vlhighlimit": [h(r.vl_high_limit, 8)],
        p + "vlarbitrationhighcap": [h(r.vl_arbitration_high_cap, 8)],
        p + "vlarbitrationlowcap": [h(r.vl_arbitration_low_cap, 8)],
        p + "inittypereply": [h(r.init_type_reply, 8)],
        p + "mtucap": [h(r.mtu_cap, 8)],
        p + "vlstallcount": [h(r.vl_stall_count, 8)],
        p + "hoqlife": [h(r.hoq_life, 8)],
        p + "operationalvls": [h(r.operational_vls, 8)],
        p + "partitionenforcementinbound": [flag(r.partition_enforcement_inbound)],
        p + "partitionenforcementoutbound": [flag(r.partition_enforcement_outbound)],
        p + "filterrawinbound": [flag(r.filter_raw_inbound)],
        p + "filterrawoutbound": [flag(r.filter_raw_outbound)],
        p + "m_keyviolations": [h(r.m_key_violations, 16)],
        p + "p_keyviolations": [h(r.p_key_violations, 16)],
        p + "q_keyviolations": [h(r.q_key_violations, 16)],
        p + "guidcap": [h(r.guid_cap, 8)],
        p + "clientreregister": [flag(r.client_reregister)],
        p + "subnettimeout": [h(r.subnet_timeout, 8)],
        p + "resptimevalue": [h(r.resp_time_value, 8)],
        p + "localphyerrors": [h(r.local_phy_errors, 8)],
        p + "overrunerrors": [h(r.overrun_errors, 8)],
        p + "maxcredithint": [h(r.max_credit_hint, 16)],
        p + "linkroundtriplatency": [h(r.link_round_trip_latency, 24)],
    }
    for name, bit in CAPABILITY_BITS.items():
        fields[p + "capabilitymask." + name] = [h(int(bool(r.capability_mask & bit)), 32)]
    return fields


def switch_info_fields(r: SwitchInfo) -> dict[str, list[str]]:
    p = "infiniband.switchinfo."
    return {
        p + "linearfdbcap": [h(r.linear_fdb_cap, 16)],
        p + "randomfdbcap": [h(r.random_fdb_cap, 16)],
        p + "multicastfdbcap": [h(r.multicast_fdb_cap, 16)],
        p + "linearfdbtop": [h(r.linear_fdb_top, 16)],
        p + "defaultport": [h(r.default_port, 8)],
        p + "defaultmulticastprimaryport": [h(r.default_multicast_primary_port, 8)],
        p + "defaultmulticastnotprimaryport": [h(r.default_multicast_not_primary_port, 8)],
        p + "lifetimevalue": [h(r.life_time_value, 8)],
        p + "portstatechange": [flag(r.port_state_change)],
        p + "optimizedsltovlmappingprogramming": [h(r.optimized_sl_to_vl_mapping_programming, 8)],
        p + "lidsperport": [h(r.lids_per_port, 16)],
        p + "partitionenforcementcap": [h(r.partition_enforcement_cap, 16)],
        p + "inboundenforcementcap": [flag(r.inbound_enforcement_cap)],
        p + "outboundenforcementcap": [flag(r.outbound_enforcement_cap)],
        p + "filterrawinboundcap": [flag(r.filter_raw_inbound_cap)],
        p + "filterrawoutboundcap": [flag(r.filter_raw_outbound_cap)],
        p + "enhancedportzero": [flag(r.enhanced_port0)],
    }


def guid_info_fields(r: GUIDInfo) -> dict[str, list[str]]:
    return {"infiniband.switchinfo.guid": [h(g, 64) for g in r.guids]}


def pkey_table_fields(r: PKeyTable) -> dict[str, list[str]]:
    return {
        "infiniband.p_keytable.membershiptype": [h(k >> 15, 8) for k in r.pkeys],
        "infiniband.p_keytable.p_keybase": [h(k & 0x7FFF, 16) for k in r.pkeys],
    }


def lft_fields(r: LinearForwardingTable) -> dict[str, list[str]]:
    return {"infiniband.linearforwardingtable.port": [h(p, 8) for p in r.ports]}


def sm_info_fields(r: SMInfo) -> dict[str, list[str]]:
    return {
        "infiniband.sminfo.guid": [h(r.guid, 64)],
        "infiniband.sminfo.sm_key": [h(r.sm_key, 64)],
        "infiniband.sminfo.actcount": [h(r.act_count, 32)],
        "infiniband.sminfo.priority": [h(r.priority, 8)],
        "infiniband.sminfo.smstate": [h(r.sm_state, 8)],
    }


def node_description_fields(r: NodeDescription) -> dict[str, list[str]]:
    return {"infiniband.nodedescription.nodestring": [r.description]}


def attribute_fields(record: SmpAttribute) -> dict[str, list[str]]:
    if isinstance(record, NodeInfo):
        return node_info_fields(record)
    if isinstance(record, PortInfo):
        return port_info_fields(record)
    if isinstance(record, SwitchInfo):
        return switch_info_fields(record)
    if isinstance(record, GUIDInfo):
        return guid_info_fields(record)
    if isinstance(record, PKeyTable):
        return pkey_table_fields(record)
    if isinstance(record, LinearForwardingTable):
        return lft_fields(record)
    if isinstance(record, SMInfo):
        return sm_info_fields(record)
    if isinstance(record, NodeDescription):
        return node_description_fields(record)
    raise AssertionError(f"no tshark fields for {record!r}")


# --- records -------------------------------------------------------------------------


def bits(rng: random.Random, n: int) -> int:
    return rng.getrandbits(n)


def random_node_info(rng: random.Random) -> NodeInfo:
    return NodeInfo(
        node_type=bits(rng, 8),
        num_ports=bits(rng, 8),
        node_guid=bits(rng, 64),
        port_guid=bits(rng, 64),
        system_image_guid=bits(rng, 64),
        partition_cap=bits(rng, 16),
        device_id=bits(rng, 16),
        revision=bits(rng, 32),
        local_port_num=bits(rng, 8),
        vendor_id=bits(rng, 24),
        base_version=bits(rng, 8),
        class_version=bits(rng, 8),
    )


PORT_INFO_WIDTHS = {
    f.name: (
        1
        if f.type == "bool"
        else {
            "m_key": 64,
            "gid_prefix": 64,
            "capability_mask": 32,
            "lid": 16,
            "master_sm_lid": 16,
            "diag_code": 16,
            "m_key_lease_period": 16,
            "m_key_violations": 16,
            "p_key_violations": 16,
            "q_key_violations": 16,
            "max_credit_hint": 16,
            "capability_mask2": 16,
            "link_round_trip_latency": 24,
            "local_port_num": 8,
            "link_width_enabled": 8,
            "link_width_supported": 8,
            "link_width_active": 8,
            "vl_high_limit": 8,
            "vl_arbitration_high_cap": 8,
            "vl_arbitration_low_cap": 8,
            "guid_cap": 8,
            "m_key_protect_bits": 2,
            "multicast_pkey_trap_suppression_enabled": 2,
            "lmc": 3,
            "vl_stall_count": 3,
            "hoq_life": 5,
            "subnet_timeout": 5,
            "resp_time_value": 5,
            "link_speed_ext_enabled": 5,
        }.get(f.name, 4)
    )
    for f in dataclasses.fields(PortInfo)
}


def random_port_info(rng: random.Random) -> PortInfo:
    values: dict[str, Any] = {
        name: (rng.random() < 0.5 if width == 1 else bits(rng, width))
        for name, width in PORT_INFO_WIDTHS.items()
    }
    return PortInfo(**values)


def random_switch_info(rng: random.Random) -> SwitchInfo:
    return SwitchInfo(
        linear_fdb_cap=bits(rng, 16),
        random_fdb_cap=bits(rng, 16),
        multicast_fdb_cap=bits(rng, 16),
        linear_fdb_top=bits(rng, 16),
        default_port=bits(rng, 8),
        default_multicast_primary_port=bits(rng, 8),
        default_multicast_not_primary_port=bits(rng, 8),
        life_time_value=bits(rng, 5),
        port_state_change=rng.random() < 0.5,
        optimized_sl_to_vl_mapping_programming=bits(rng, 2),
        lids_per_port=bits(rng, 16),
        partition_enforcement_cap=bits(rng, 16),
        inbound_enforcement_cap=rng.random() < 0.5,
        outbound_enforcement_cap=rng.random() < 0.5,
        filter_raw_inbound_cap=rng.random() < 0.5,
        filter_raw_outbound_cap=rng.random() < 0.5,
        enhanced_port0=rng.random() < 0.5,
        multicast_fdb_top=bits(rng, 16),
    )


def random_description(rng: random.Random) -> NodeDescription:
    alphabet = string.ascii_letters + string.digits + " -_.:/"
    text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 64)))
    return NodeDescription(text.strip() or "x")


RANDOM_RECORDS: list[Callable[[random.Random], SmpAttribute]] = [
    random_node_info,
    random_port_info,
    random_switch_info,
    lambda rng: GUIDInfo(tuple(bits(rng, 64) for _ in range(8))),
    lambda rng: PKeyTable(tuple(bits(rng, 16) for _ in range(32))),
    lambda rng: LinearForwardingTable(tuple(bits(rng, 8) for _ in range(64))),
    lambda rng: SMInfo(bits(rng, 64), bits(rng, 64), bits(rng, 32), bits(rng, 4), bits(rng, 4)),
    random_description,
]


def random_response(rng: random.Random, record: SmpAttribute) -> Smp:
    """A GetResp carrying `record`, with random header fields; DR half of the time."""
    if rng.random() < 0.5:
        path = tuple(rng.randint(1, 255) for _ in range(rng.randint(0, 63)))
        request = make_get(
            record.ATTRIBUTE_ID,
            tid=bits(rng, 64),
            attribute_modifier=bits(rng, 32),
            path=path,
            m_key=bits(rng, 64),
            dr_slid=rng.choice([PERMISSIVE_LID, bits(rng, 16)]),
            dr_dlid=rng.choice([PERMISSIVE_LID, bits(rng, 16)]),
        )
        request = dataclasses.replace(
            request,
            hop_pointer=rng.randint(0, len(path) + 1),
            return_path=bytes([0, *(rng.randint(1, 255) for _ in path)]).ljust(64, b"\0"),
        )
        return make_get_resp(request, record, status=bits(rng, 15))
    request = make_get(
        record.ATTRIBUTE_ID,
        tid=bits(rng, 64),
        attribute_modifier=bits(rng, 32),
        m_key=bits(rng, 64),
    )
    return make_get_resp(request, record, status=bits(rng, 16))


def hand_picked() -> list[tuple[Smp, SmpAttribute | None]]:
    switch_node = NodeInfo(
        node_type=NodeType.SWITCH,
        num_ports=36,
        node_guid=0x0002C90300A1B2C3,
        port_guid=0x0002C90300A1B2C3,
        system_image_guid=0x0002C90300A1B2C3,
        partition_cap=8,
        device_id=0xC738,
        revision=0xA0,
        local_port_num=17,
        vendor_id=0x0002C9,
    )
    # The outbound request of a 3-hop directed route, as it leaves the SM.
    dr_get = make_get(0x0011, tid=0x0102030405060708, path=(1, 17, 3))
    # The same request delivered (hop pointer HopCount + 1) and answered: D bit set.
    delivered = dataclasses.replace(
        dr_get, hop_pointer=4, return_path=b"\x00\x05\x07\x01" + bytes(60)
    )
    dr_resp = make_get_resp(delivered, switch_node)
    hca_port = PortInfo(
        m_key=0,
        gid_prefix=0xFE80000000000000,
        lid=0x0042,
        master_sm_lid=0x0001,
        capability_mask=PortCapability.IS_TRAP_SUPPORTED
        | PortCapability.IS_CLIENT_REREGISTRATION_SUPPORTED,
        local_port_num=1,
        link_width_enabled=LinkWidth.WIDTH_1X | LinkWidth.WIDTH_4X,
        link_width_supported=LinkWidth.WIDTH_1X | LinkWidth.WIDTH_4X,
        link_width_active=LinkWidth.WIDTH_4X,
        link_speed_supported=0x7,
        port_state=PortState.ACTIVE,
        port_physical_state=PhysPortState.LINK_UP,
        link_down_default_state=PhysPortState.POLLING,
        lmc=0,
        link_speed_active=0x4,
        link_speed_enabled=0x7,
        neighbor_mtu=Mtu.MTU_4096,
        vl_cap=4,
        mtu_cap=Mtu.MTU_4096,
        operational_vls=4,
        guid_cap=32,
        subnet_timeout=18,
        resp_time_value=16,
    )
    lft = LinearForwardingTable(tuple((lid * 7) % 37 for lid in range(64)))
    sm_info = SMInfo(
        guid=0x0002C90300000001, sm_key=0, act_count=1275, priority=15, sm_state=SmState.MASTER
    )
    vguids = GUIDInfo((0x0002C90300001235, 0x0002C9030000A001, 0x0002C9030000A002) + (0,) * 5)
    return [
        (dr_get, None),
        (dr_resp, switch_node),
        (make_get_resp(make_get(0x0015, tid=77, attribute_modifier=1), hca_port), hca_port),
        (make_set(hca_port, tid=78, attribute_modifier=1, path=(1, 2)), hca_port),
        (make_set(lft, tid=79, attribute_modifier=3, path=(1,)), lft),
        (make_get_resp(make_get(0x0020, tid=80), sm_info), sm_info),
        (make_set(vguids, tid=81, attribute_modifier=0, path=(1, 5)), vguids),
        (
            make_get_resp(make_get(0x0010, tid=82), NodeDescription("ibmig leaf01 HCA-1")),
            NodeDescription("ibmig leaf01 HCA-1"),
        ),
    ]


def cases() -> list[tuple[Smp, SmpAttribute | None]]:
    rng = random.Random(SEED)
    out = hand_picked()
    for make_record in RANDOM_RECORDS:
        for _ in range(RANDOM_PER_ATTRIBUTE):
            record = make_record(rng)
            out.append((random_response(rng, record), record))
    return out


# --- the check -----------------------------------------------------------------------


Decoded = list[tuple[Smp, SmpAttribute | None, dict[str, list[str]], dict[str, list[str]]]]


@pytest.fixture(scope="module")
def decoded(tshark: str, tmp_path_factory: pytest.TempPathFactory) -> Decoded:
    """(SMP, record, expected fields, tshark's fields) per case, from one tshark run."""
    smps = cases()
    expected = []
    for smp, record in smps:
        fields = smp_fields(smp)
        if record is not None:
            fields |= attribute_fields(record)
        expected.append(fields)
    names = sorted({name for fields in expected for name in fields})
    packets = [mad_packet(smp.pack(), qp=0) for smp, _ in smps]
    rows = tshark_fields(tmp_path_factory.mktemp("smp"), packets, names)
    return [
        (smp, record, exp, row)
        for (smp, record), exp, row in zip(smps, expected, rows, strict=True)
    ]


def test_every_field_agrees(decoded: Decoded) -> None:
    problems = []
    for i, (smp, _, expected, row) in enumerate(decoded):
        for name, values in expected.items():
            if row[name] != values:
                problems.append(
                    f"case {i} (attribute {smp.attribute_id:#06x}) {name}: "
                    f"tshark {row[name]} != ours {values}"
                )
    assert not problems, "\n".join(problems[:40])


def test_directed_route_header(decoded: Decoded) -> None:
    # The hand-picked DR request and its response, spelled out.
    get_row, resp_row = decoded[0][3], decoded[1][3]
    assert get_row["infiniband.mad.mgmtclass"] == ["0x81"]
    assert get_row["infiniband.mad.method"] == [h(Method.GET, 8)]
    assert get_row["infiniband.mad.transactionid"] == ["0x0102030405060708"]
    assert get_row["infiniband.smpdirected.smpstatus"] == ["0x0000"]  # D = 0
    assert get_row["infiniband.smpdirected.hoppointer"] == ["0x00"]
    assert get_row["infiniband.smpdirected.hopcount"] == ["0x03"]
    assert get_row["infiniband.smpdirected.drslid"] == ["0xffff"]
    assert get_row["infiniband.smpdirected.drdlid"] == ["0xffff"]
    assert get_row["infiniband.smpdirected.initialpath"] == ["00011103" + "00" * 60]
    assert resp_row["infiniband.mad.method"] == ["0x81"]
    assert resp_row["infiniband.smpdirected.smpstatus"] == ["0x8000"]  # D = 1
    assert resp_row["infiniband.smpdirected.hoppointer"] == ["0x04"]
    assert resp_row["infiniband.smpdirected.returnpath"] == ["00050701" + "00" * 60]
    assert resp_row["infiniband.nodeinfo.nodetype"] == ["0x02"]
    assert resp_row["infiniband.nodeinfo.nodeguid"] == ["0x0002c90300a1b2c3"]
    assert resp_row["infiniband.nodeinfo.numports"] == ["0x24"]


def test_we_decode_the_bytes_tshark_read(decoded: Decoded) -> None:
    # The other direction: our codecs decode the same bytes to the same records.
    for smp, record, _, _ in decoded:
        again = Smp.unpack(smp.pack())
        assert again == smp
        if record is not None:
            assert again.decode_data(type(record)) == record

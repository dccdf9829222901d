"""The SA table records ibmig added for issue 12, decoded by Wireshark's tshark.

Wireshark 4.0 decodes LinkRecord and ServiceRecord field by field (ServiceRecord
under `infiniband.linkrecord.*` names, its four ServiceData arrays as four byte
strings), and of SwitchInfoRecord, SMInfoRecord, P_KeyTableRecord,
SLtoVLMappingTableRecord, VLArbitrationTableRecord and LFTRecord the embedded SMP
attribute (the record's LID, port and block numbers show as reserved bytes;
SwitchInfo's MulticastFDBTop is not shown). MCMemberRecord is decoded field by field;
of MFTRecord's MulticastForwardingTable Wireshark shows the first 16 of the 32
PortMasks (its dissector's loop stops at 16). An attribute at the wrong offset
within its record would decode to other values.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ibmig.wire.mad import Method
from ibmig.wire.sa import (
    LFTRecord,
    LinkRecord,
    MCMemberRecord,
    MFTRecord,
    PKeyTableRecord,
    SaMad,
    SaRecord,
    ServiceRecord,
    SLtoVLMappingTableRecord,
    SMInfoRecord,
    SwitchInfoRecord,
    VLArbitrationTableRecord,
)
from ibmig.wire.smp_attrs import (
    LinearForwardingTable,
    MulticastForwardingTable,
    PKeyTable,
    SMInfo,
    SwitchInfo,
)
from tests.wire.tshark_util import mad_packet, tshark_fields

pytestmark = pytest.mark.interop

SERVICE_GID = bytes.fromhex("fe800000000000000002c90300001234")
CASES: list[tuple[SaRecord, dict[str, list[str]]]] = [
    (
        LinkRecord(2, 4, 1, 11),
        {
            "infiniband.linkrecord.fromlid": ["0x0002"],
            "infiniband.linkrecord.fromport": ["0x04"],
            "infiniband.linkrecord.toport": ["0x01"],
            "infiniband.linkrecord.tolid": ["0x000b"],
        },
    ),
    (
        SwitchInfoRecord(
            2,
            SwitchInfo(
                linear_fdb_cap=0x7800,
                multicast_fdb_cap=0x400,
                linear_fdb_top=0x2B,
                default_port=3,
                life_time_value=18,
                port_state_change=True,
                lids_per_port=1,
                partition_enforcement_cap=0x40,
                filter_raw_inbound_cap=True,
            ),
        ),
        {
            "infiniband.switchinfo.linearfdbcap": ["0x7800"],
            "infiniband.switchinfo.multicastfdbcap": ["0x0400"],
            "infiniband.switchinfo.linearfdbtop": ["0x002b"],
            "infiniband.switchinfo.defaultport": ["0x03"],
            "infiniband.switchinfo.lifetimevalue": ["0x12"],
            "infiniband.switchinfo.portstatechange": ["0x01"],
            "infiniband.switchinfo.lidsperport": ["0x0001"],
            "infiniband.switchinfo.partitionenforcementcap": ["0x0040"],
            "infiniband.switchinfo.filterrawinboundcap": ["0x01"],
            "infiniband.switchinfo.enhancedportzero": ["0x00"],
        },
    ),
    (
        SMInfoRecord(1, SMInfo(0x100001, 0, 1275, 5, 3)),
        {
            "infiniband.sminfo.guid": ["0x0000000000100001"],
            "infiniband.sminfo.actcount": ["0x000004fb"],
            "infiniband.sminfo.priority": ["0x05"],
            "infiniband.sminfo.smstate": ["0x03"],
        },
    ),
    (
        PKeyTableRecord(3, 1, 2, PKeyTable((0xFFFF, 0x8001, 0x0002) + (0,) * 29)),
        {
            "infiniband.p_keytable.membershiptype": ["0x01", "0x01", "0x00"] + ["0x00"] * 29,
            "infiniband.p_keytable.p_keybase": ["0x7fff", "0x0001", "0x0002"] + ["0x0000"] * 29,
        },
    ),
    (
        SLtoVLMappingTableRecord(2, 3, 4, tuple(range(15, -1, -1))),
        {
            "infiniband.sltovlmappingtable.sltovlhighbits": [
                f"0x{v:02x}" for v in range(15, 0, -2)
            ],
            "infiniband.sltovlmappingtable.sltovllowbits": [
                f"0x{v:02x}" for v in range(14, -1, -2)
            ],
        },
    ),
    (
        VLArbitrationTableRecord(5, 2, 3, ((1, 0x40), (15, 0x10)) + ((0, 0),) * 29 + ((7, 0xFF),)),
        {
            "infiniband.vlarbitrationtable.vl": ["0x01", "0x0f"] + ["0x00"] * 29 + ["0x07"],
            "infiniband.vlarbitrationtable.weight": ["0x40", "0x10"] + ["0x00"] * 29 + ["0xff"],
        },
    ),
    (
        MCMemberRecord(
            bytes.fromhex("ff12401bffff000000000000ffffffff"),
            SERVICE_GID,
            q_key=0x0B1B,
            mlid=0xC001,
            mtu_selector=2,
            mtu=4,
            traffic_class=0x12,
            pkey=0xFFFF,
            rate_selector=1,
            rate=3,
            packet_life_time_selector=2,
            packet_life_time=0x12,
            sl=5,
            flow_label=0xABCDE,
            hop_limit=0x40,
            scope=2,
            join_state=1,
            proxy_join=True,
        ),
        {
            "infiniband.mcmemberrecord.mgid": ["ff12:401b:ffff::ffff:ffff"],
            "infiniband.mcmemberrecord.portgid": ["fe80::2:c903:0:1234"],
            "infiniband.mcmemberrecord.q_key": ["0x00000b1b"],
            "infiniband.mcmemberrecord.mlid": ["0xc001"],
            "infiniband.mcmemberrecord.mtuselector": ["0x02"],
            "infiniband.mcmemberrecord.mtu": ["0x04"],
            "infiniband.mcmemberrecord.tclass": ["0x12"],
            "infiniband.mcmemberrecord.p_key": ["0xffff"],
            "infiniband.mcmemberrecord.rateselector": ["0x01"],
            "infiniband.mcmemberrecord.rate": ["0x03"],
            "infiniband.mcmemberrecord.packetlifetimeselector": ["0x02"],
            "infiniband.mcmemberrecord.packetlifetime": ["0x12"],
            "infiniband.mcmemberrecord.sl": ["0x05"],
            "infiniband.mcmemberrecord.flowlabel": ["0x0abcde"],
            "infiniband.mcmemberrecord.hoplimit": ["0x40"],
            "infiniband.mcmemberrecord.scope": ["0x02"],
            "infiniband.mcmemberrecord.joinstate": ["0x01"],
            "infiniband.mcmemberrecord.proxyjoin": ["0x01"],
        },
    ),
    (
        MFTRecord(2, 1, 3, MulticastForwardingTable(tuple(range(0x100, 0x120)))),
        {
            "infiniband.multicastforwardingtable.portmask": [
                f"0x{m:04x}" for m in range(0x100, 0x110)
            ]
        },
    ),
    (
        LFTRecord(2, 1, LinearForwardingTable(tuple(range(64, 128)))),
        {"infiniband.linearforwardingtable.port": [f"0x{p:02x}" for p in range(64, 128)]},
    ),
    (
        ServiceRecord(
            0x1234,
            SERVICE_GID,
            0xFFFF,
            60,
            bytes(range(16)),
            b"svc".ljust(64, b"\0"),
            bytes(range(16, 32)),
            tuple(range(8)),
            (1, 2, 3, 4),
            (5, 6),
        ),
        {
            "infiniband.linkrecord.serviceid": ["0x0000000000001234"],
            "infiniband.linkrecord.servicegid": ["fe80::2:c903:0:1234"],
            "infiniband.linkrecord.servicep_key": ["0xffff"],
            "infiniband.linkrecord.servicelease": ["0x0000003c"],
            "infiniband.linkrecord.servicekey": ["".join(f"{b:02x}" for b in range(16))],
            "infiniband.linkrecord.servicename": ["".join(["73", "76", "63"] + ["00"] * 61)],
            "infiniband.linkrecord.servicedata": [
                "".join(f"{b:02x}" for b in range(16, 32)),
                "".join(f"{b:02x}" for n in range(8) for b in n.to_bytes(2, "big")),
                "".join(f"{b:02x}" for n in (1, 2, 3, 4) for b in n.to_bytes(4, "big")),
                "".join(f"{b:02x}" for n in (5, 6) for b in n.to_bytes(8, "big")),
            ],
        },
    ),
]


def test_tshark_decodes_the_table_records(tmp_path: Path) -> None:
    packets = [mad_packet(SaMad.from_record(r, method=Method.GET_RESP).pack()) for r, _ in CASES]
    fields = sorted({f for _, expected in CASES for f in expected})
    rows = tshark_fields(tmp_path, packets, fields)
    for (record, expected), row in zip(CASES, rows, strict=True):
        shown = {f: row[f] for f in expected}
        assert shown == expected, type(record).__name__

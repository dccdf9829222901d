"""CM messages checked against an independent decoder: Wireshark's tshark.

Every message is framed into a QP1 packet, written to one ERF capture and decoded
by tshark once; each field tshark shows must carry the value our record holds.
Besides a few hand-picked edge records, a seeded sample of records with random
full-range fields goes through the same check.

Not asserted, because the dissector mis-decodes them (Wireshark 4.0
`parse_COM_MGT`): the REQ primary and alternate Flow Label (read from 2 bytes
instead of the top 20 bits of the 32-bit word at REQ byte 88 / 132) and Packet
Rate (read from the wrong byte). MRA has no fields in the dissector: only its
MAD header and name are checked. Private Data of REQ is checked only while the
Service ID is outside the RDMA IP CM range, which tshark dissects as IP CM data.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from ibmig.wire.cm import (
    CmMad,
    CmMessage,
    CmPath,
    Drep,
    Dreq,
    Mra,
    Rej,
    RejReason,
    Rep,
    Req,
    Rtu,
)
from ibmig.wire.rdma_cm import is_ip_cm_service_id
from tests.wire.tshark_util import h, ipv6, mad_packet, random_gid, tshark_fields

pytestmark = pytest.mark.interop


def header_fields(mad: CmMad) -> dict[str, str]:
    return {
        "infiniband.mad.baseversion": h(mad.base_version, 8),
        "infiniband.mad.mgmtclass": h(mad.mgmt_class, 8),
        "infiniband.mad.classversion": h(mad.class_version, 8),
        "infiniband.mad.method": h(mad.method, 8),
        "infiniband.mad.status": h(mad.status, 16),
        "infiniband.mad.classspecific": h(mad.class_specific, 16),
        "infiniband.mad.transactionid": h(mad.tid, 64),
        "infiniband.mad.attributeid": h(mad.attribute_id, 16),
        "infiniband.mad.attributemodifier": h(mad.attribute_modifier, 32),
    }


def req_fields(m: Req) -> dict[str, str]:
    p, a = m.primary_path, m.alternate_path
    fields = {
        "infiniband.cm.req": h(m.local_comm_id, 32),  # REQ's Local Comm ID
        "infiniband.cm.req.serviceid": h(m.service_id, 64),
        "infiniband.cm.req.localcaguid": h(m.local_ca_guid, 64),
        "infiniband.cm.req.localqkey": h(m.local_q_key, 32),
        "infiniband.cm.req.localqpn": h(m.local_qpn, 24),
        "infiniband.cm.req.responderres": h(m.responder_resources, 8),
        "infiniband.cm.req.localeecn": h(m.local_eecn, 24),
        "infiniband.cm.req.initdepth": h(m.initiator_depth, 8),
        "infiniband.cm.req.remoteeecn": h(m.remote_eecn, 24),
        "infiniband.cm.req.remoteresptout": h(m.remote_cm_response_timeout, 8),
        "infiniband.cm.req.transpsvctype": h(m.transport_service_type, 8),
        "infiniband.cm.req.e2eflowctrl": h(m.end_to_end_flow_control, 8),
        "infiniband.cm.req.startpsn": h(m.starting_psn, 24),
        "infiniband.cm.req.localresptout": h(m.local_cm_response_timeout, 8),
        "infiniband.cm.req.retrcount": h(m.retry_count, 8),
        "infiniband.cm.req.pkey": h(m.partition_key, 16),
        "infiniband.cm.req.pppmtu": h(m.path_packet_payload_mtu, 8),
        "infiniband.cm.req.rdcexist": h(m.rdc_exists, 8),
        "infiniband.cm.req.rnrretrcount": h(m.rnr_retry_count, 8),
        "infiniband.cm.req.maxcmretr": h(m.max_cm_retries, 8),
        "infiniband.cm.req.srq": h(m.srq, 8),
        "infiniband.cm.req.ext_transport": h(m.extended_transport_type, 8),
        "infiniband.cm.req.prim_locallid": str(p.local_lid),
        "infiniband.cm.req.prim_remotelid": str(p.remote_lid),
        "infiniband.cm.req.prim_localgid": ipv6(p.local_gid),
        "infiniband.cm.req.prim_remotegid": ipv6(p.remote_gid),
        # prim_flowlabel and prim_pktrate: mis-decoded by the dissector, see above
        "infiniband.cm.req.prim_tfcclass": h(p.traffic_class, 8),
        "infiniband.cm.req.prim_hoplim": h(p.hop_limit, 8),
        "infiniband.cm.req.prim_sl": h(p.sl, 8),
        "infiniband.cm.req.prim_subnetlocal": h(p.subnet_local, 8),
        "infiniband.cm.req.prim_localacktout": h(p.local_ack_timeout, 8),
        "infiniband.cm.req.alt_locallid": str(a.local_lid),
        "infiniband.cm.req.alt_remotelid": str(a.remote_lid),
        "infiniband.cm.req.alt_localgid": a.local_gid.hex(),  # FT_BYTES here, not IPv6
        "infiniband.cm.req.alt_remotegid": a.remote_gid.hex(),
        # alt_flowlabel and alt_pktrate: mis-decoded like the primary ones
        "infiniband.cm.req.alt_tfcclass": h(a.traffic_class, 8),
        "infiniband.cm.req.alt_hoplim": h(a.hop_limit, 8),
        "infiniband.cm.req.alt_sl": h(a.sl, 8),
        "infiniband.cm.req.alt_subnetlocal": h(a.subnet_local, 8),
        "infiniband.cm.req.alt_localacktout": h(a.local_ack_timeout, 8),
    }
    if not is_ip_cm_service_id(m.service_id):
        fields["infiniband.cm.req.private"] = m.private_data.hex()
    return fields


def rep_fields(m: Rep) -> dict[str, str]:
    return {
        "infiniband.cm.rep": h(m.local_comm_id, 32),  # REP's Local Comm ID
        "infiniband.cm.rep.remotecommid": h(m.remote_comm_id, 32),
        "infiniband.cm.rep.localqkey": h(m.local_q_key, 32),
        "infiniband.cm.rep.localqpn": h(m.local_qpn, 24),
        "infiniband.cm.rep.localeecn": h(m.local_eecn, 24),
        "infiniband.cm.rep.startpsn": h(m.starting_psn, 24),
        "infiniband.cm.rep.respres": h(m.responder_resources, 8),
        "infiniband.cm.rep.initdepth": h(m.initiator_depth, 8),
        "infiniband.cm.rep.tgtackdelay": h(m.target_ack_delay, 8),
        "infiniband.cm.rep.failoveracc": h(m.failover_accepted, 8),
        "infiniband.cm.rep.e2eflowctrl": h(m.end_to_end_flow_control, 8),
        "infiniband.cm.rep.rnrretrcount": h(m.rnr_retry_count, 8),
        "infiniband.cm.rep.srq": h(m.srq, 8),
        "infiniband.cm.rep.localcaguid": h(m.local_ca_guid, 64),
        "infiniband.cm.rep.private": m.private_data.hex(),
    }


def rej_fields(m: Rej) -> dict[str, str]:
    return {
        "infiniband.cm.rej.localcommid": h(m.local_comm_id, 32),
        "infiniband.cm.rej.remotecommid": h(m.remote_comm_id, 32),
        "infiniband.cm.rej.msgrej": h(m.message_rejected, 8),
        "infiniband.cm.rej.rejinfolen": h(m.ari_length, 8),
        "infiniband.cm.rej.reason": h(m.reason, 16),
        "infiniband.cm.rej.ari": m.ari.ljust(72, b"\0").hex(),
        "infiniband.cm.rej.private": m.private_data.hex(),
    }


def rtu_fields(m: Rtu) -> dict[str, str]:
    return {
        "infiniband.cm.rtu.localcommid": h(m.local_comm_id, 32),
        "infiniband.cm.rtu.remotecommid": h(m.remote_comm_id, 32),
        "infiniband.cm.rtu.private": m.private_data.hex(),
    }


def dreq_fields(m: Dreq) -> dict[str, str]:
    return {
        "infiniband.cm.dreq.localcommid": h(m.local_comm_id, 32),
        "infiniband.cm.dreq.remotecommid": h(m.remote_comm_id, 32),
        "infiniband.cm.req.remoteqpneecn": h(m.remote_qpn_eecn, 24),  # sic: under .req
        "infiniband.cm.dreq.private": m.private_data.hex(),
    }


def drep_fields(m: Drep) -> dict[str, str]:
    return {
        "infiniband.cm.drsp.localcommid": h(m.local_comm_id, 32),
        "infiniband.cm.drsp.remotecommid": h(m.remote_comm_id, 32),
        "infiniband.cm.drsp.private": m.private_data.hex(),
    }


# tshark's name for each message, as it shows it in the Info column.
INFO = {
    Req: "CM: ConnectRequest",
    Mra: "CM: MsgRcptAck",
    Rej: "CM: ConnectReject",
    Rep: "CM: ConnectReply",
    Rtu: "CM: ReadyToUse",
    Dreq: "CM: DisconnectRequest",
    Drep: "CM: DisconnectReply",
}


def expected_fields(mad: CmMad) -> dict[str, str]:
    m = mad.message
    fields = header_fields(mad)
    fields["_ws.col.Info"] = INFO[type(m)]
    if isinstance(m, Req):
        fields |= req_fields(m)
    elif isinstance(m, Rep):
        fields |= rep_fields(m)
    elif isinstance(m, Rej):
        fields |= rej_fields(m)
    elif isinstance(m, Rtu):
        fields |= rtu_fields(m)
    elif isinstance(m, Dreq):
        fields |= dreq_fields(m)
    elif isinstance(m, Drep):
        fields |= drep_fields(m)
    return fields


# --- the records ---------------------------------------------------------------------


def random_path(rng: random.Random) -> CmPath:
    return CmPath(
        local_lid=rng.getrandbits(16),
        remote_lid=rng.getrandbits(16),
        local_gid=random_gid(rng),
        remote_gid=random_gid(rng),
        flow_label=rng.getrandbits(20),
        packet_rate=rng.getrandbits(6),
        traffic_class=rng.getrandbits(8),
        hop_limit=rng.getrandbits(8),
        sl=rng.getrandbits(4),
        subnet_local=bool(rng.getrandbits(1)),
        local_ack_timeout=rng.getrandbits(5),
    )


def random_messages(rng: random.Random) -> list[CmMessage]:
    def b(n: int) -> int:
        return rng.getrandbits(n)

    def data(n: int) -> bytes:
        return rng.randbytes(n)

    service_id = b(64)
    if is_ip_cm_service_id(service_id):
        service_id ^= 1 << 63
    req = Req(
        b(32), service_id, b(64), b(32), b(24), b(8), b(24), b(8), b(24), b(5), b(2),
        bool(b(1)), b(24), b(5), b(3), b(16), b(4), bool(b(1)), b(3), b(4), bool(b(1)),
        b(3), random_path(rng), random_path(rng), bool(b(1)), data(92),
    )  # fmt: skip
    rep = Rep(
        b(32), b(32), b(32), b(24), b(24), b(24), b(8), b(8), b(5), b(2), bool(b(1)),
        b(3), bool(b(1)), b(64), data(196),
    )  # fmt: skip
    return [
        req,
        Mra(b(32), b(32), b(2), b(5), data(222)),
        Rej(b(32), b(32), b(2), b(16), data(rng.randint(0, 72)), data(148)),
        rep,
        Rtu(b(32), b(32), data(224)),
        Dreq(b(32), b(32), b(24), data(220)),
        Drep(b(32), b(32), data(224)),
    ]


GID_A = bytes.fromhex("fe800000000000000002c90300abcdef")
GID_B = bytes.fromhex("fe800000000000000002c90300123456")

# A connection as a guest sets it up and tears it down, plus edge values.
HAND_PICKED: list[CmMad] = [
    CmMad(
        Req(
            local_comm_id=0x11223344,
            service_id=0x0002C90300ABCDEF,
            local_ca_guid=0x0002C90300ABCDEC,
            local_qpn=0x000ABC,
            responder_resources=4,
            initiator_depth=4,
            remote_cm_response_timeout=20,
            starting_psn=0xFEDCBA,
            local_cm_response_timeout=20,
            retry_count=7,
            partition_key=0xFFFF,
            path_packet_payload_mtu=4,
            rnr_retry_count=7,
            max_cm_retries=15,
            primary_path=CmPath(1, 2, GID_A, GID_B, 0, 3, 0, 0, 5, True, 18),
        ),
        tid=0x0123456789ABCDEF,
    ),
    CmMad(Mra(0x11223344, 0x202, message_mraed=0, service_timeout=23), tid=0x0123456789ABCDEF),
    CmMad(
        Rep(
            local_comm_id=0x202,
            remote_comm_id=0x11223344,
            local_qpn=0xFFFFFF,
            starting_psn=0x7FFFFF,
            target_ack_delay=31,
            failover_accepted=3,
            end_to_end_flow_control=True,
            rnr_retry_count=7,
            srq=True,
            local_ca_guid=0xFFFFFFFFFFFFFFFF,
        ),
        tid=0x0123456789ABCDEF,
    ),
    CmMad(Rtu(0x11223344, 0x202), tid=0x0123456789ABCDF0),
    CmMad(
        Rej(0xCAFE0001, 0, 0, RejReason.INVALID_PRIMARY_GID, GID_B),
        tid=0xFFFFFFFFFFFFFFFF,
    ),
    CmMad(Rej(1, 2, 2, RejReason.STALE_CONNECTION, bytes(range(72))), tid=1),
    CmMad(Dreq(0x11223344, 0x202, 0xFFFFFF), tid=0xFFFFFFFF00000001),
    CmMad(Drep(0x202, 0x11223344), tid=0xFFFFFFFF00000001, attribute_modifier=0xFFFFFFFF),
]


def all_mads() -> list[CmMad]:
    rng = random.Random(2012)
    mads = list(HAND_PICKED)
    for _ in range(6):
        for message in random_messages(rng):
            mads.append(CmMad(message, tid=rng.getrandbits(64)))
    return mads


def test_tshark_decodes_cm_messages(tshark: str, tmp_path: Path) -> None:
    mads = all_mads()
    expected = [expected_fields(mad) for mad in mads]
    fields = sorted({name for e in expected for name in e})
    rows = tshark_fields(tmp_path, [mad_packet(mad.pack(), qp=1) for mad in mads], fields)
    assert len(rows) == len(mads)
    for mad, want, row in zip(mads, expected, rows, strict=True):
        info = want.pop("_ws.col.Info")
        # A heuristic dissector of Private Data may append its guess, "(SDP Hello)".
        assert len(row["_ws.col.Info"]) == 1 and row["_ws.col.Info"][0].startswith(info), mad
        got = {name: row[name] for name in want}
        assert got == {name: [value] for name, value in want.items()}, mad


def test_every_message_type_covered() -> None:
    assert {type(mad.message) for mad in all_mads()} == set(INFO)

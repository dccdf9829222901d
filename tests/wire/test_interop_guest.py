"""What the guests put on the wire, checked against an independent decoder:
Wireshark's tshark.

- AETH in RC Acknowledge packets (`infiniband.aeth.*`).
- IPoIB ARP in UD packets: tshark recognises the IPoIB encapsulation header in a
  UD payload heuristically (`infiniband.rwh.etype`, "IBA Payload - appears to be
  EtherType encapsulated") and hands the rest to its ARP dissector (`arp.*`),
  which knows hardware type 32 (InfiniBand).
- The IP CM header in a REQ's Private Data: decoded (`infiniband.cm.req.ip_cm.*`)
  when the REQ's Service ID is in the RDMA IP CM range.

Each group is a few hand-picked records and a seeded sample of random ones, all
in one capture per group, decoded by tshark once.
"""

from __future__ import annotations

import random
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest

from ibmig.wire.cm import CmMad, Req
from ibmig.wire.ipoib import ARP_REPLY, ARP_REQUEST, IpoibArp
from ibmig.wire.packet import Aeth, AethSyndrome, build_ud_packet
from ibmig.wire.rdma_cm import IpCmHeader, ip_cm_service_id
from tests.wire.tshark_util import h, ipv6, mad_packet, random_gid, rc_ack_packet, tshark_fields

pytestmark = pytest.mark.interop

SAMPLES = 60

# --- AETH ----------------------------------------------------------------------------

AETH_FIELDS = [
    "infiniband.bth.opcode",
    "infiniband.bth.destqp",
    "infiniband.bth.psn",
    "infiniband.aeth.syndrome",
    "infiniband.aeth.syndrome.reserved",
    "infiniband.aeth.syndrome.opcode",
    "infiniband.aeth.syndrome.credit_count",
    "infiniband.aeth.syndrome.timer",
    "infiniband.aeth.syndrome.reserved_value",
    "infiniband.aeth.syndrome.error_code",
    "infiniband.aeth.msn",
]
# The meaning of Syndrome bits 4..0 for each value of bits 6..5 (IBA Vol 1, 9.3.5).
LOW_BITS_FIELD = {
    0: "infiniband.aeth.syndrome.credit_count",
    1: "infiniband.aeth.syndrome.timer",
    2: "infiniband.aeth.syndrome.reserved_value",
    3: "infiniband.aeth.syndrome.error_code",
}


def aeth_expected(aeth: Aeth, dest_qp: int, psn: int) -> dict[str, list[str]]:
    kind = (aeth.syndrome >> 5) & 0x3
    expected: dict[str, list[str]] = {field: [] for field in AETH_FIELDS}
    expected |= {
        "infiniband.bth.opcode": ["17"],  # RC Acknowledge
        "infiniband.bth.destqp": [h(dest_qp, 24)],
        "infiniband.bth.psn": [str(psn)],
        "infiniband.aeth.syndrome": [str(aeth.syndrome)],
        "infiniband.aeth.syndrome.reserved": [str(aeth.syndrome >> 7)],
        "infiniband.aeth.syndrome.opcode": [str(kind)],
        LOW_BITS_FIELD[kind]: [str(aeth.syndrome & 0x1F)],
        "infiniband.aeth.msn": [str(aeth.msn)],
    }
    return expected


def test_aeth_in_rc_acks(tshark: str, tmp_path: Path) -> None:
    rng = random.Random(0xAE7)
    cases = [(Aeth(s, msn), 0x000100, 0) for s, msn in [
        (AethSyndrome.ACK_NO_CREDIT, 1),  # what the RC responder sends
        (AethSyndrome.NAK_PSN_SEQUENCE_ERROR, 0xABCDEF),
        (AethSyndrome.NAK_REMOTE_ACCESS_ERROR, 0xFFFFFF),
        (AethSyndrome.RNR_NAK | 0x0E, 0),
        (0x40, 7),  # reserved kind 0b10
        (0x80, 7),  # reserved bit 7 set
    ]]  # fmt: skip
    cases += [
        (Aeth(rng.getrandbits(8), rng.getrandbits(24)), rng.getrandbits(24), rng.getrandbits(24))
        for _ in range(SAMPLES)
    ]
    packets = [rc_ack_packet(aeth.pack(), dest_qp=qp, psn=psn) for aeth, qp, psn in cases]
    rows = tshark_fields(tmp_path, packets, AETH_FIELDS)
    for (aeth, qp, psn), row in zip(cases, rows, strict=True):
        assert row == aeth_expected(aeth, qp, psn), aeth


# --- IPoIB ARP -----------------------------------------------------------------------

IPOIB_QPN = 0x000048
IPOIB_QKEY = 0x00000B1B
ARP_FIELDS = [
    "infiniband.deth.q_key",
    "infiniband.rwh.etype",
    "arp.hw.type",
    "arp.proto.type",
    "arp.hw.size",
    "arp.proto.size",
    "arp.opcode",
    "arp.src.hw",
    "arp.src.proto_ipv4",
    "arp.dst.hw",
    "arp.dst.proto_ipv4",
    "arp.isgratuitous",
]


def hw_address(flags: int, qpn: int, gid: bytes) -> str:
    """An IPoIB hardware address (flags | QPN, GID) as tshark prints FT_BYTES."""
    return (bytes([flags]) + qpn.to_bytes(3, "big") + gid).hex()


def arp_expected(arp: IpoibArp) -> dict[str, list[str]]:
    return {
        "infiniband.deth.q_key": [h(IPOIB_QKEY, 64)],  # the dissector shows 64 bits
        "infiniband.rwh.etype": ["0x0806"],
        "arp.hw.type": ["32"],
        "arp.proto.type": ["0x0800"],
        "arp.hw.size": ["20"],
        "arp.proto.size": ["4"],
        "arp.opcode": [str(arp.op)],
        "arp.src.hw": [hw_address(arp.sender_flags, arp.sender_qpn, arp.sender_gid)],
        "arp.src.proto_ipv4": [str(arp.sender_ip)],
        "arp.dst.hw": [hw_address(arp.target_flags, arp.target_qpn, arp.target_gid)],
        "arp.dst.proto_ipv4": [str(arp.target_ip)],
        "arp.isgratuitous": ["1"] if arp.sender_ip == arp.target_ip else [],
    }


def random_arp(rng: random.Random) -> IpoibArp:
    return IpoibArp(
        op=rng.choice([ARP_REQUEST, ARP_REPLY]),
        sender_qpn=rng.getrandbits(24),
        sender_gid=random_gid(rng),
        sender_ip=IPv4Address(rng.getrandbits(32)),
        target_ip=IPv4Address(rng.getrandbits(32)),
        target_qpn=rng.getrandbits(24),
        target_gid=random_gid(rng),
        sender_flags=rng.getrandbits(8),
        target_flags=rng.getrandbits(8),
    )


def test_ipoib_arp_in_ud_packets(tshark: str, tmp_path: Path) -> None:
    rng = random.Random(0xA4B)
    gid = bytes.fromhex("fe800000000000000002c90300001234")
    arps = [
        IpoibArp.gratuitous(IPv4Address("10.0.0.7"), IPOIB_QPN, gid),  # what a guest sends
        IpoibArp(ARP_REPLY, 0x123456, gid, IPv4Address("192.168.1.2"),
                 IPv4Address("192.168.1.1"), 0xABCDEF, random_gid(rng), 0x80, 0x00),
    ]  # fmt: skip
    arps += [random_arp(rng) for _ in range(SAMPLES)]
    packets = [
        build_ud_packet(
            arp.pack(),
            dlid=0x0020,
            slid=0x0010,
            dest_qp=IPOIB_QPN,
            src_qp=IPOIB_QPN,
            qkey=IPOIB_QKEY,
        )
        for arp in arps
    ]
    rows = tshark_fields(tmp_path, packets, ARP_FIELDS)
    for arp, row in zip(arps, rows, strict=True):
        assert row == arp_expected(arp), arp


# --- the IP CM header in a REQ -------------------------------------------------------

IP_CM_FIELDS = [
    "infiniband.cm.req.serviceid",
    "infiniband.cm.req.ip_cm.majv",
    "infiniband.cm.req.ip_cm.minv",
    "infiniband.cm.req.ip_cm.ipv",
    "infiniband.cm.req.ip_cm.sport",
    "infiniband.cm.req.ip_cm.sip4",
    "infiniband.cm.req.ip_cm.dip4",
    "infiniband.cm.req.ip_cm.sip6",
    "infiniband.cm.req.ip_cm.dip6",
    "infiniband.cm.req.ip_cm.private",
]


def ip_cm_expected(header: IpCmHeader, req: Req) -> dict[str, list[str]]:
    v4 = header.ip_version == 4
    return {
        "infiniband.cm.req.serviceid": [h(req.service_id, 64)],
        "infiniband.cm.req.ip_cm.majv": ["0x00"],
        "infiniband.cm.req.ip_cm.minv": ["0x00"],
        "infiniband.cm.req.ip_cm.ipv": [h(header.ip_version, 8)],
        "infiniband.cm.req.ip_cm.sport": [h(header.src_port, 16)],
        "infiniband.cm.req.ip_cm.sip4": [str(header.src_ip)] if v4 else [],
        "infiniband.cm.req.ip_cm.dip4": [str(header.dst_ip)] if v4 else [],
        "infiniband.cm.req.ip_cm.sip6": [] if v4 else [ipv6(header.src_ip.packed)],
        "infiniband.cm.req.ip_cm.dip6": [] if v4 else [ipv6(header.dst_ip.packed)],
        "infiniband.cm.req.ip_cm.private": [req.private_data[IpCmHeader.SIZE :].hex()],
    }


def random_ip_cm_header(rng: random.Random) -> IpCmHeader:
    port = rng.getrandbits(16)
    if rng.random() < 0.5:
        return IpCmHeader(IPv4Address(rng.getrandbits(32)), IPv4Address(rng.getrandbits(32)), port)
    # Random GIDs: printed the same by Python and tshark (no IPv4-mapped forms).
    src, dst = random_gid(rng), random_gid(rng)
    return IpCmHeader(IPv6Address(src), IPv6Address(dst), port)


def test_ip_cm_header_in_req_private_data(tshark: str, tmp_path: Path) -> None:
    rng = random.Random(0x1BC)
    headers = [
        IpCmHeader(IPv4Address("10.0.0.2"), IPv4Address("10.0.0.1")),  # what a guest sends
        IpCmHeader(IPv4Address("10.1.2.3"), IPv4Address("192.168.0.9"), 0x1234),
        IpCmHeader(IPv6Address("fe80::2:c903:0:1234"), IPv6Address("2001:db8::1"), 0xC001),
    ]
    headers += [random_ip_cm_header(rng) for _ in range(SAMPLES)]
    cases = []
    for header in headers:
        consumer = bytes(rng.getrandbits(8) for _ in range(Req.PRIVATE_DATA_SIZE - header.SIZE))
        req = Req(
            local_comm_id=rng.getrandbits(32),
            service_id=ip_cm_service_id(0x06, rng.getrandbits(16)),  # RDMA_PS_TCP
            private_data=header.pack() + consumer,
        )
        cases.append((header, req))
    packets = [mad_packet(CmMad(req, tid=rng.getrandbits(64)).pack()) for _, req in cases]
    rows = tshark_fields(tmp_path, packets, IP_CM_FIELDS)
    for (header, req), row in zip(cases, rows, strict=True):
        assert row == ip_cm_expected(header, req), header

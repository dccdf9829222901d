"""Writes src/ibmig/data/sample.pcap, the capture `ibmig decode` shows by default.

A short story in InfiniBand packets, all encoded by ibmig.wire: the SM reads a
switch's NodeInfo by directed route and programs an LFT block; a dom0 subscribes to
path-change notices (InformInfo) and registers a VM's alias GUID (GUIDInfoRecord);
the VM migrates; the SA reports the move (trap 69) and the dom0 acknowledges; a peer
resolves the new path (PathRecord) and reconnects (CM REQ/REP/RTU).

    python scripts/make_sample_capture.py [OUT]
"""

from __future__ import annotations

import sys
from pathlib import Path

from ibmig.wire.capture import write_capture
from ibmig.wire.cm import CmMad, CmPath, Rep, Req, Rtu
from ibmig.wire.mad import Method
from ibmig.wire.notice import path_change_notice
from ibmig.wire.packet import build_ud_packet
from ibmig.wire.sa import GUIDInfoRecord, InformInfo, PathRecord, SaMad
from ibmig.wire.smp import make_get, make_get_resp, make_set
from ibmig.wire.smp_attrs import GUIDInfo, LinearForwardingTable, NodeInfo, NodeType, SmpAttr

PREFIX = bytes.fromhex("fe80000000000000")
SM_LID, PEER_LID, SRC_LID, DST_LID = 1, 2, 3, 4
VGUID = 0x0002C90300A0B0C1
VM_GID = PREFIX + VGUID.to_bytes(8, "big")
PEER_GID = PREFIX + (0x0000000000100011).to_bytes(8, "big")
DST_PORT_GUID = 0x0000000000100021


def packets() -> list[bytes]:
    out: list[bytes] = []

    def smp(payload: bytes, dlid: int = 0xFFFF, slid: int = 0xFFFF) -> None:
        out.append(build_ud_packet(payload, dlid=dlid, slid=slid, dest_qp=0, src_qp=0))

    def gsi(payload: bytes, dlid: int, slid: int) -> None:
        out.append(build_ud_packet(payload, dlid=dlid, slid=slid, dest_qp=1, src_qp=1))

    get = make_get(SmpAttr.NODE_INFO, tid=0x1001, path=(1, 7))
    smp(get.pack())
    info = NodeInfo(NodeType.SWITCH, 36, 0x200000, 0x200000, 0x200000, 8, 0xCF08, 0xA0, 7, 0x8F1)
    smp(make_get_resp(get, info).pack())
    lft = LinearForwardingTable(tuple([0xFF, 0, 3, 5, 9] + [0xFF] * 59))
    smp(make_set(lft, tid=0x1002, path=(1,), attribute_modifier=0).pack())
    inform = InformInfo(gid=bytes(16), lid_range_begin=0xFFFF, is_generic=1, subscribe=1,
                        type=0xFFFF, trap_number=69, qpn=1, producer_type=0xFFFFFF)  # fmt: skip
    gsi(SaMad.from_record(inform, method=Method.SET, tid=0x2001).pack(), SM_LID, DST_LID)
    guids = GUIDInfo((DST_PORT_GUID, VGUID, 0, 0, 0, 0, 0, 0))
    record = GUIDInfoRecord(DST_LID, 0, guids)
    gsi(SaMad.from_record(record, method=Method.SET, tid=0x2002).pack(), SM_LID, DST_LID)
    notice = path_change_notice(gid=VM_GID, new_lid=DST_LID, old_lid=SRC_LID,
                                new_port_guid=DST_PORT_GUID, issuer_lid=SM_LID)  # fmt: skip
    gsi(SaMad.from_record(notice, method=Method.REPORT, tid=0x3001).pack(), PEER_LID, SM_LID)
    gsi(SaMad.from_record(notice, method=Method.REPORT_RESP, tid=0x3001).pack(), SM_LID, PEER_LID)
    path = PathRecord(dgid=VM_GID, sgid=PEER_GID, dlid=DST_LID, slid=PEER_LID, reversible=True,
                      numb_path=1, pkey=0xFFFF, mtu_selector=2, mtu=5, rate_selector=2, rate=16,
                      packet_life_time_selector=2, packet_life_time=18)  # fmt: skip
    gsi(SaMad.from_record(path, method=Method.GET, tid=0x4001, component_mask=0x0C).pack(),
        SM_LID, PEER_LID)  # fmt: skip
    gsi(SaMad.from_record(path, method=Method.GET_RESP, tid=0x4001).pack(), PEER_LID, SM_LID)
    primary = CmPath(local_lid=PEER_LID, remote_lid=DST_LID, local_gid=PEER_GID,
                     remote_gid=VM_GID, sl=0, subnet_local=True, local_ack_timeout=14)  # fmt: skip
    req = Req(local_comm_id=0x51, service_id=0x10000, local_ca_guid=0x100010, local_qpn=0x48,
              starting_psn=0x123, transport_service_type=0, partition_key=0xFFFF,
              path_packet_payload_mtu=5, max_cm_retries=15, retry_count=7,
              rnr_retry_count=7, primary_path=primary, private_data=bytes(92))  # fmt: skip
    gsi(CmMad(req, tid=0x5001).pack(), DST_LID, PEER_LID)
    rep = Rep(local_comm_id=0x77, remote_comm_id=0x51, local_qpn=0x90, starting_psn=0x456,
              local_ca_guid=0x100020, rnr_retry_count=7, private_data=bytes(196))  # fmt: skip
    gsi(CmMad(rep, tid=0x5001).pack(), PEER_LID, DST_LID)
    gsi(CmMad(Rtu(0x51, 0x77, bytes(224)), tid=0x5001).pack(), DST_LID, PEER_LID)
    return out


def main() -> None:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else (
        Path(__file__).resolve().parent.parent / "src" / "ibmig" / "data" / "sample.pcap"
    )  # fmt: skip
    write_capture(target, [(1_000_000 + i * 2_500, p) for i, p in enumerate(packets())])
    print(f"wrote {target}")


if __name__ == "__main__":
    main()

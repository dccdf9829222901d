"""`ibmig decode` against tshark, on packets built here byte by byte from the
specification's layouts (IBA Vol 1: LRH 7.7, BTH 9.2, DETH 9.3.2, MAD 13.4.3, SMP
14.2.1, SA 15.2.1.1, PathRecord 15.2.5.16, Notice 13.4.8.2, CM REQ 12.6.5), without
ibmig.wire's encoders. Only the CRC bytes come from ibmig.wire.crc, which has its own
test against an independent implementation; neither tool checks them here.
"""

from __future__ import annotations

import ipaddress
import json
import struct
from pathlib import Path

import pytest

from ibmig.cli import main
from ibmig.wire.capture import write_capture
from ibmig.wire.crc import icrc, vcrc
from ibmig.wire.packet import QP1_QKEY
from tests.wire.tshark_util import tshark_fields

GID_A = bytes.fromhex("fe800000000000000002c90300001234")
GID_B = bytes.fromhex("fe800000000000000002c9030000abcd")


def frame(mad: bytes, *, dlid: int, slid: int, qp: int) -> bytes:
    """LRH + BTH + DETH + MAD + ICRC + VCRC, laid out by hand."""
    vl = 15 if qp == 0 else 0
    words = (8 + 12 + 8 + len(mad) + 4) // 4
    lrh = bytes([vl << 4, 0x02]) + struct.pack(">HHH", dlid, words, slid)  # LNH 2: IBA local
    bth = bytes([0x64, 0x00]) + struct.pack(">H", 0xFFFF) + struct.pack(">I", qp)
    bth += struct.pack(">I", 0)  # AckReq 0, PSN 0
    qkey = 0 if qp == 0 else QP1_QKEY
    deth = struct.pack(">II", qkey, qp)
    body = lrh + bth + deth + mad
    crc_i = icrc(body).to_bytes(4, "big")
    return body + crc_i + vcrc(body + crc_i).to_bytes(2, "big")


def mad_header(mgmt_class: int, method: int, attr: int, tid: int, modifier: int = 0) -> bytes:
    return struct.pack(">BBBBHHQHHI", 1, mgmt_class, 2 if mgmt_class == 7 else 1,
                       method, 0, 0, tid, attr, 0, modifier)  # fmt: skip


def dr_node_info_resp() -> bytes:
    head = struct.pack(">BBBBHBBQHHI", 1, 0x81, 1, 0x81, 0x8000, 0, 2, 0x0A0B, 0x0011, 0, 0)
    dr = struct.pack(">QHH", 0, 0xFFFF, 0xFFFF) + bytes(28)
    node_info = struct.pack(">BBBBQQQHHIB", 1, 1, 2, 36, 0x0008F10400411111,
                            0x0008F10400411111, 0x0008F10400411111, 8, 0xCF08, 0xA0, 7)  # fmt: skip
    node_info += (0x0008F1).to_bytes(3, "big")
    data = node_info.ljust(64, b"\0")
    paths = bytes([0, 1, 7]).ljust(64, b"\0") + bytes([0, 3, 9]).ljust(64, b"\0")
    return head + dr + data + paths


def lr_port_info_resp() -> bytes:
    head = mad_header(0x01, 0x81, 0x0015, 0x77, modifier=1) + struct.pack(">Q", 0) + bytes(32)
    port_info = struct.pack(">QQHH", 0, 0xFE80000000000000, 0x0123, 0x0001).ljust(32, b"\0")
    port_info += bytes([0x04, 0x54])  # byte 32: speed supported 0 | PortState 4 (Active)
    return head + port_info.ljust(64, b"\0") + bytes(128)


def sa_header(method: int, attr: int, tid: int, mask: int) -> bytes:
    rmpp = bytes(12)
    return mad_header(0x03, method, attr, tid) + rmpp + struct.pack(">QH2xQ", 0, 0, mask)


def sa_path_record_resp() -> bytes:
    record = struct.pack(">Q16s16sHHIBBHHBBBB6x", 0, GID_B, GID_A, 0x0042, 0x0017,
                         0, 0, 0x81, 0xFFFF, 0, 0x84, 0x90, 0x92, 0)  # fmt: skip
    return sa_header(0x81, 0x0035, 0x1234, 0x3C) + record.ljust(200, b"\0")


def sa_report(trap: int, details: bytes) -> bytes:
    first = 0x80000000 | (3 << 24) | 4  # generic, type SM, producer class manager
    notice = struct.pack(">IHHH", first, trap, 0x0001, 0) + details.ljust(54, b"\0") + GID_A
    return sa_header(0x06, 0x0002, 0x5151 + trap, 0) + notice.ljust(200, b"\0")


def cm_req() -> bytes:
    body = struct.pack(">IIQQ", 0x11223344, 0, 0x0000000000010000, 0x0002C90300001234)
    body += struct.pack(">II", 0, 0x80010000)  # reserved, Local Q_Key
    body += (0x000ABC).to_bytes(3, "big") + b"\x00"  # Local QPN, Responder Resources
    return (mad_header(0x07, 0x03, 0x0010, 0x4242) + body).ljust(256, b"\0")


PACKETS = [
    frame(dr_node_info_resp(), dlid=0xFFFF, slid=0xFFFF, qp=0),
    frame(lr_port_info_resp(), dlid=1, slid=0x0123, qp=0),
    frame(sa_path_record_resp(), dlid=0x17, slid=1, qp=1),
    frame(sa_report(64, bytes(6) + GID_B), dlid=0x17, slid=1, qp=1),
    frame(
        sa_report(69, struct.pack(">QBx16sHHQ", 4, 0, GID_B, 9, 7, 0x0002C9030000ABCE)),
        dlid=0x17,
        slid=1,
        qp=1,
    ),
    frame(cm_req(), dlid=0x42, slid=0x17, qp=1),
]

FIELDS = [
    "infiniband.lrh.dlid", "infiniband.lrh.slid", "infiniband.mad.mgmtclass",
    "infiniband.mad.method", "infiniband.mad.attributeid", "infiniband.mad.transactionid",
    "infiniband.nodeinfo.nodeguid", "infiniband.nodeinfo.nodetype",
    "infiniband.nodeinfo.numports", "infiniband.portinfo.lid", "infiniband.portinfo.portstate",
    "infiniband.pathrecord.dlid", "infiniband.pathrecord.slid", "infiniband.pathrecord.dgid",
    "infiniband.pathrecord.sgid", "infiniband.notice.trapnumberdeviceid",
    "infiniband.notice.issuerlid", "infiniband.trap.gidaddr", "infiniband.cm.req",
    "infiniband.cm.req.localqpn",
]  # fmt: skip


def _ours(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    path = tmp_path / "hand.pcap"
    write_capture(path, [(i * 1000, p) for i, p in enumerate(PACKETS)])
    assert main(["decode", str(path)]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def _int(text: str) -> int:
    return int(text, 0)


def _gid(text: str) -> str:
    return str(ipaddress.IPv6Address(text))


@pytest.mark.interop
def test_decode_agrees_with_tshark(
    tshark: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ours = _ours(tmp_path, capsys)
    theirs = tshark_fields(tmp_path, PACKETS, FIELDS)
    assert len(ours) == len(theirs) == len(PACKETS)
    for o, t in zip(ours, theirs, strict=True):
        lrh, mad = o["lrh"], o["mad"]
        assert isinstance(lrh, dict) and isinstance(mad, dict)
        assert lrh["dlid"] == _int(t["infiniband.lrh.dlid"][0])
        assert lrh["slid"] == _int(t["infiniband.lrh.slid"][0])
        assert mad["mgmt_class"] == _int(t["infiniband.mad.mgmtclass"][0])
        assert mad["method"] == _int(t["infiniband.mad.method"][0])
        assert mad["attribute_id"] == _int(t["infiniband.mad.attributeid"][0])
        assert _int(str(mad["tid"])) == _int(t["infiniband.mad.transactionid"][0])
        assert o["icrc_ok"] is True and o["vcrc_ok"] is True
    node_info = ours[0]["attribute"]
    assert isinstance(node_info, dict)
    assert node_info["name"] == "NodeInfo"
    assert _int(node_info["node_guid"]) == _int(theirs[0]["infiniband.nodeinfo.nodeguid"][0])
    assert node_info["node_type"] == _int(theirs[0]["infiniband.nodeinfo.nodetype"][0]) == 2
    assert node_info["num_ports"] == _int(theirs[0]["infiniband.nodeinfo.numports"][0]) == 36
    smp = ours[0]["smp"]
    assert isinstance(smp, dict)
    assert smp["d"] is True and smp["hop_count"] == 2 and smp["initial_path"] == [1, 7]
    port_info = ours[1]["attribute"]
    assert isinstance(port_info, dict)
    assert port_info["lid"] == _int(theirs[1]["infiniband.portinfo.lid"][0]) == 0x123
    assert port_info["port_state"] == _int(theirs[1]["infiniband.portinfo.portstate"][0]) == 4
    records = ours[2]["records"]
    assert isinstance(records, list)
    path = records[0]
    assert path["name"] == "PathRecord"
    assert path["dlid"] == _int(theirs[2]["infiniband.pathrecord.dlid"][0]) == 0x42
    assert path["slid"] == _int(theirs[2]["infiniband.pathrecord.slid"][0]) == 0x17
    assert path["dgid"] == _gid(theirs[2]["infiniband.pathrecord.dgid"][0])
    assert path["sgid"] == _gid(theirs[2]["infiniband.pathrecord.sgid"][0])
    for index, trap in ((3, 64), (4, 69)):
        records = ours[index]["records"]
        assert isinstance(records, list)
        notice = records[0]
        assert notice["name"] == "Notice"
        assert notice["trap_number"] == trap
        assert notice["trap_number"] == _int(
            theirs[index]["infiniband.notice.trapnumberdeviceid"][0]
        )
        assert notice["issuer_lid"] == _int(theirs[index]["infiniband.notice.issuerlid"][0])
    gid_details = ours[3]["records"][0]["details"]  # type: ignore[index]
    assert gid_details["gid"] == _gid(theirs[3]["infiniband.trap.gidaddr"][0])
    path_change = ours[4]["records"][0]["details"]  # type: ignore[index]
    assert path_change["new_lid"] == 9 and path_change["old_lid"] == 7
    assert path_change["gid"] == str(ipaddress.IPv6Address(GID_B))
    req = ours[5]["attribute"]
    assert isinstance(req, dict)
    assert req["name"] == "Req"
    assert req["local_comm_id"] == _int(theirs[5]["infiniband.cm.req"][0]) == 0x11223344
    assert req["local_qpn"] == _int(theirs[5]["infiniband.cm.req.localqpn"][0]) == 0xABC


def test_decode_pretty_and_hex(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", "--hex", sa_path_record_resp().hex(), "--pretty"]) == 0
    out = capsys.readouterr().out
    assert "PathRecord" in out and "dlid: 66" in out
    assert main(["decode", "--hex", PACKETS[5].hex()]) == 0
    decoded = json.loads(capsys.readouterr().out)
    assert decoded["attribute"]["local_comm_id"] == 0x11223344


def test_unknown_class_is_shown_raw(capsys: pytest.CaptureFixture[str]) -> None:
    mad = mad_header(0x2C, 0x01, 0x1234, 9).ljust(256, b"\x5a")
    assert main(["decode", "--hex", mad.hex()]) == 0
    decoded = json.loads(capsys.readouterr().out)
    assert decoded["mad"]["mgmt_class"] == 0x2C
    assert decoded["raw"].startswith("5a5a")


def test_bad_file_is_one_line_and_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"this is not a capture")
    assert main(["decode", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0]
    assert main(["decode", str(tmp_path / "missing.pcap")]) == 2
    assert "missing.pcap" in capsys.readouterr().err
    assert main(["decode", "--hex", "zz"]) == 2


def test_bundled_sample_is_what_the_script_writes(tmp_path: Path) -> None:
    import subprocess
    import sys

    from ibmig.cli.decode import sample_capture

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "sample.pcap"
    subprocess.run(
        [sys.executable, str(root / "scripts" / "make_sample_capture.py"), str(out)],
        check=True,
        capture_output=True,
    )
    assert out.read_bytes() == sample_capture()


def test_default_decodes_the_bundled_sample(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode"]) == 0
    decoded = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(decoded) == 12
    assert all(p["icrc_ok"] and p["vcrc_ok"] for p in decoded)
    report = decoded[5]["records"][0]
    assert report["name"] == "Notice" and report["trap_number"] == 69

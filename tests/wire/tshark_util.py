"""Checking our bytes with an independent decoder: Wireshark's tshark.

Usage from a test module in tests/wire (the `tshark` fixture lives in
tests/conftest.py; it skips without tshark, or fails when CI=true):

    from tests.wire.tshark_util import mad_packet, tshark_fields

    def test_nodeinfo(tshark: str, tmp_path: Path) -> None:
        [row] = tshark_fields(tmp_path, [mad_packet(mad, qp=0)],
                              ["infiniband.mad.mgmtclass", "infiniband.mad.method"])
        assert row["infiniband.mad.mgmtclass"] == ["0x01"]

`tshark_fields` returns one dict per packet: field name -> every occurrence's
value as tshark prints it (integers of BASE_HEX fields print as hex with the
field's width, e.g. "0x0011"; BASE_DEC ones in decimal; booleans "1"/"0"; GIDs
as IPv6 text); an absent field maps to []. tshark decodes a MAD only when the
destination or source QP is 0 or 1, which `mad_packet` guarantees. `h`, `ipv6`
and `random_gid` write and pick values the way tshark prints them; `rc_ack_packet`
frames an AETH, `build_ud_packet` any UD payload.
"""

from __future__ import annotations

import ipaddress
import random
import shutil
import subprocess
from pathlib import Path

from ibmig.wire.capture import write_capture
from ibmig.wire.packet import PERMISSIVE_LID, Bth, Lrh, OpCode, Packet, build_ud_packet
from tests.helpers import missing_tools

TSHARK = shutil.which("tshark")

# Multiple occurrences of one field are joined with this character. A control
# character, so that no printed value (hex, IPv6, node description) contains it.
AGGREGATOR = "\x1f"

# LIDs used by mad_packet: an SM at LID 1 talking to a port at LID 2.
SM_LID = 0x0001
PORT_LID = 0x0002
DIRECTED_ROUTE_CLASS = 0x81


def require_tshark() -> str:
    """tshark's path; skips the test without it, or fails when CI=true."""
    if TSHARK is None:
        missing_tools("tshark is not installed (apt-get install tshark)")
    return TSHARK


def h(value: int, bits: int) -> str:
    """An integer as tshark prints a BASE_HEX field of that width."""
    return f"0x{value:0{bits // 4}x}"


def ipv6(gid: bytes) -> str:
    """A GID (or any 16 bytes) as tshark prints an FT_IPv6 field."""
    return str(ipaddress.IPv6Address(gid))


def random_gid(rng: random.Random) -> bytes:
    """A link-local prefix and a random GUID: printed the same by Python and tshark
    (no IPv4-mapped or IPv4-compatible forms)."""
    return bytes.fromhex("fe80000000000000") + rng.getrandbits(64).to_bytes(8, "big")


def mad_packet(mad: bytes, qp: int = 1) -> bytes:
    """A complete IB packet carrying `mad` from QP `qp` to QP `qp` (0 or 1).

    LID-routed MADs go from LID 1 to LID 2; directed-route SMPs (class 0x81) use
    the permissive LID 0xFFFF both ways, as a pure directed route does. QP0
    packets go on VL15 with Q_Key 0, QP1 packets on VL0 with Q_Key 0x80010000.
    """
    if qp not in (0, 1):
        raise ValueError(f"MADs travel on QP0 or QP1, not QP{qp}")
    if len(mad) > 1 and mad[1] == DIRECTED_ROUTE_CLASS:
        dlid = slid = PERMISSIVE_LID
    else:
        dlid, slid = PORT_LID, SM_LID
    return build_ud_packet(mad, dlid=dlid, slid=slid, dest_qp=qp, src_qp=qp)


def rc_packet(opcode: int, payload: bytes, *, dest_qp: int, psn: int) -> bytes:
    """A complete local RC packet (LRH, BTH, `payload`, ICRC, VCRC) from LID 2 to
    LID 1, e.g. an RC Acknowledge carrying an AETH."""
    lrh = Lrh(vl=0, lver=0, sl=0, lnh=0, dlid=SM_LID, pkt_len=0, slid=PORT_LID)
    return Packet.build(lrh, None, Bth(opcode, dest_qp, psn), None, payload).pack()


def rc_ack_packet(aeth: bytes, *, dest_qp: int = 0x000100, psn: int = 0) -> bytes:
    """An RC Acknowledge (BTH OpCode 0x11) whose payload is `aeth`."""
    return rc_packet(OpCode.RC_ACKNOWLEDGE, aeth, dest_qp=dest_qp, psn=psn)


def tshark_fields(
    tmp_path: Path, packets: list[bytes], fields: list[str]
) -> list[dict[str, list[str]]]:
    """Run tshark over `packets` (complete IB packets) and return, per packet,
    each of `fields` -> the list of its values (in order of occurrence)."""
    tshark = require_tshark()
    capture = tmp_path / "tshark_fields.pcap"
    n = 0
    while capture.exists():
        n += 1
        capture = tmp_path / f"tshark_fields_{n}.pcap"
    write_capture(capture, ((i * 1000, p) for i, p in enumerate(packets)))
    cmd = [
        tshark, "-n", "-r", str(capture), "-T", "fields",
        "-E", "separator=/t", "-E", "occurrence=a", "-E", f"aggregator={AGGREGATOR}",
    ]  # fmt: skip
    for field in fields:
        cmd += ["-e", field]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
    if proc.returncode != 0:
        raise AssertionError(
            f"tshark failed (exit {proc.returncode}): {' '.join(cmd)}\n{proc.stderr}"
        )
    lines = proc.stdout.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) != len(packets):
        raise AssertionError(
            f"tshark printed {len(lines)} lines for {len(packets)} packets:\n{proc.stdout}"
        )
    rows = []
    for line in lines:
        values = line.split("\t")
        if len(values) != len(fields):
            raise AssertionError(
                f"tshark printed {len(values)} columns, not {len(fields)}: {line!r}"
            )
        rows.append(
            {f: (v.split(AGGREGATOR) if v else []) for f, v in zip(fields, values, strict=True)}
        )
    return rows

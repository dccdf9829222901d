"""`ibmig path TOPOLOGY SRC DST`: the PathRecord the simulated SA answers, its fields
decoded, and its hop-by-hop route.

The PathRecord's MTU, rate and packet lifetime are codes on the wire (IBA Vol 1,
15.2.5.16); they are printed decoded, with the code beside them. Exit status: 0 with
a path; 1 when the SA answered with an error status (a fabric where DST cannot be
reached from SRC has no path: that is an answer about the fabric, not bad input) or
the route through the LFTs could not be followed; 2 for bad input (an unknown
topology or node), as every subcommand.
"""

from __future__ import annotations

import argparse
import sys
from typing import IO, Final

from ibmig.cli.common import Subparsers, add_routing_argument
from ibmig.fabric import Fabric, load_topology
from ibmig.wire.sa import PathRecord

MTU_BYTES: Final = {1: 256, 2: 512, 3: 1024, 4: 2048, 5: 4096}
"""MTU codes (IBA Vol 1, 14.2.5.6 PortInfo NeighborMTU and 15.2.5.16 PathRecord MTU)."""

SELECTORS: Final = ("greater than", "less than", "exactly", "largest available")
"""MTUSelector, RateSelector and PacketLifeTimeSelector values 0..3 (15.2.5.16)."""

LANE_SPEEDS_TENTHS_GBPS: Final = (
    ("SDR", 25), ("DDR", 50), ("QDR", 100), ("FDR", 140),
    ("EDR", 250), ("HDR", 500), ("NDR", 1000), ("XDR", 2000),
)  # fmt: skip
"""Data rate of one lane per link speed, in tenths of Gb/s, as PathRecord rate codes
count them (FDR as 14 Gb/s: OpenSM's IB_PATH_RECORD_RATE_56_GBS is 4x FDR)."""

LINK_WIDTHS: Final = (4, 2, 1, 8, 12)
"""Lanes of a link (PortInfo LinkWidth 1x, 4x, 8x, 12x, 2x); 4x, the usual port, first."""

SA_STATUS_MEANING: Final = {
    0x0100: "ERR_NO_RESOURCES: the SA lacks the resources to answer",
    0x0200: "ERR_REQ_INVALID: the request was invalid",
    0x0300: "ERR_NO_RECORDS: no record matches the query",
    0x0400: "ERR_TOO_MANY_RECORDS: more than one record for a Get",
    0x0500: "ERR_REQ_INVALID_GID: a GID of the request is not in the subnet",
    0x0600: "ERR_REQ_INSUFFICIENT_COMPONENTS: the request's component mask is too small",
    0x0700: "ERR_REQ_DENIED: the SA denied the request",
    0x0800: "ERR_REQ_PRIORITY_SUGGESTED: the SA suggests a different priority",
}
"""SA class-specific MAD status (bits 8..14; IBA Vol 1, 15.2.1.1)."""

MAD_STATUS_MEANING: Final = {
    0x1: "busy",
    0x2: "redirect",
    0x4: "bad base or class version",
    0x8: "method not supported",
    0xC: "method/attribute combination not supported",
    0x1C: "invalid attribute or modifier value",
}
"""Common MAD status bits 0..4 (IBA Vol 1, 13.4.7, Table 117)."""


_NO_RECORDS: Final = 0x0300


def add_parser(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "path",
        help="ask the simulated SA for a PathRecord and show the route",
        description=(
            "Bring TOPOLOGY up, send SubnAdmGet(PathRecord) from SRC to the SA and print the "
            "answer, its fields decoded, with the hop-by-hop route. SRC and DST are LIDs, GUIDs "
            "or node names. Exit status 0 with a path, 1 when the SA has no path (one error "
            "line naming the SA status), 2 for bad input."
        ),
    )
    parser.add_argument("topology")
    parser.add_argument("src")
    parser.add_argument("dst")
    add_routing_argument(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    fabric = load_topology(args.topology)
    return run_path(fabric, args.src, args.dst, routing=args.routing, out=sys.stdout)


def run_path(
    fabric: Fabric, src: str, dst: str, *, routing: str, out: IO[str], err: IO[str] | None = None
) -> int:
    from ibmig.experiments.pathquery import query_path
    from ibmig.wire.jsonify import gid_text

    err = err or sys.stderr
    answer = query_path(fabric, src, dst, routing=routing)
    record = answer.record
    if record is None:
        print(
            f"ibmig: error: path {src} -> {dst}: "
            + ("no path; " if answer.status == _NO_RECORDS else "")
            + f"the SA answered with status {status_text(answer.status)}",
            file=err,
        )
        return 1
    print(f"PathRecord {gid_text(answer.sgid)} -> {gid_text(answer.dgid)}", file=out)
    for key, value in path_fields(record):
        print(f"  {key:<17} {value}", file=out)
    info = answer.route
    if info is None:
        print(f"ibmig: error: route {src} -> {dst}: {answer.route_error}", file=err)
        return 1
    names = {n.node_guid: n.name for n in fabric.nodes}
    print(f"route ({info.hop_count} links):", file=out)
    for guid, port in info.hops:
        print(f"  {names.get(guid, hex(guid))}[{port}]", file=out)
    dst_name = fabric.nodes[answer.dst_node].name
    print(f"  -> {dst_name}[{answer.dst_port}] (LID {record.dlid})", file=out)
    return 0


def status_text(status: int) -> str:
    """A MAD status of an SA answer, in hex with its meaning."""
    parts = []
    if status & 0x7F00:
        meaning = SA_STATUS_MEANING.get(status & 0x7F00, "reserved SA status")
        parts.append(meaning)
    if status & 0x1F:
        parts.append(MAD_STATUS_MEANING.get(status & 0x1F, "reserved MAD status"))
    return f"0x{status:04x}" + (f" ({'; '.join(parts)})" if parts else "")


def mtu_text(code: int) -> str:
    size = MTU_BYTES.get(code)
    return f"{size} bytes" if size else "reserved"


def rate_text(code: int) -> str:
    """A PathRecord rate code as bandwidth and the links that have it
    (IBA Vol 1, 15.2.5.16, Table 205; OpenSM ib_types.h IB_PATH_RECORD_RATE_*)."""
    from ibmig.core.sa.paths import RATE_TENTHS_GBPS

    tenths = RATE_TENTHS_GBPS.get(code)
    if tenths is None:
        return "reserved"
    links = [
        f"{width}x {speed}"
        for width in LINK_WIDTHS
        for speed, lane in LANE_SPEEDS_TENTHS_GBPS
        if width * lane == tenths
    ]
    gbps = f"{tenths // 10}" if tenths % 10 == 0 else f"{tenths / 10:.1f}"
    return f"{gbps} Gb/s" + (f" ({', '.join(links)})" if links else "")


def lifetime_text(code: int) -> str:
    """PacketLifeTime: 4.096 us x 2^code (IBA Vol 1, 15.2.5.16, as LocalAckTimeout)."""
    us = 4.096 * 2**code
    if us < 1_000:
        value = f"{us:.3g} us"
    elif us < 1_000_000:
        value = f"{us / 1_000:.3g} ms"
    else:
        value = f"{us / 1_000_000:.3g} s"
    return f"{value} (4.096 us x 2^{code})"


def _selected(text: str, code: int, selector: int) -> str:
    return f"{text} [code {code}, selector {selector}: {SELECTORS[selector & 3]}]"


def path_fields(record: PathRecord) -> list[tuple[str, str]]:
    """A PathRecord's fields, decoded, in the order an operator reads them."""
    from ibmig.wire.jsonify import gid_text

    membership = "full member" if record.pkey & 0x8000 else "limited member"
    return [
        ("SGID", gid_text(record.sgid)),
        ("DGID", gid_text(record.dgid)),
        ("SLID", str(record.slid)),
        ("DLID", str(record.dlid)),
        ("SL", str(record.sl)),
        ("MTU", _selected(mtu_text(record.mtu), record.mtu, record.mtu_selector)),
        ("rate", _selected(rate_text(record.rate), record.rate, record.rate_selector)),
        (
            "packet lifetime",
            _selected(
                lifetime_text(record.packet_life_time),
                record.packet_life_time,
                record.packet_life_time_selector,
            ),
        ),
        ("P_Key", f"0x{record.pkey:04x} ({membership})"),
        ("reversible", "yes" if record.reversible else "no"),
        ("NumbPath", str(record.numb_path)),
        ("hop limit", str(record.hop_limit)),
        ("flow label", str(record.flow_label)),
        ("traffic class", str(record.tclass)),
        ("QoS class", str(record.qos_class)),
        ("preference", str(record.preference)),
        ("service ID", f"0x{record.service_id:016x}"),
        ("raw traffic", "yes" if record.raw_traffic else "no"),
    ]

"""`ibmig path TOPOLOGY SRC DST`: the PathRecord the simulated SA answers, and its
hop-by-hop route."""

from __future__ import annotations

import argparse
import sys
from typing import IO

from ibmig.cli.common import Subparsers, add_routing_argument
from ibmig.fabric import Fabric, load_topology


def add_parser(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "path",
        help="ask the simulated SA for a PathRecord and show the route",
        description=(
            "Bring TOPOLOGY up, send SubnAdmGet(PathRecord) from SRC to the SA and print the "
            "answer with the hop-by-hop route. SRC and DST are LIDs, GUIDs or node names."
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


def run_path(fabric: Fabric, src: str, dst: str, *, routing: str, out: IO[str]) -> int:
    from ibmig.experiments.pathquery import query_path
    from ibmig.wire.jsonify import gid_text, to_json

    answer = query_path(fabric, src, dst, routing=routing)
    record = answer.record
    if record is None:
        print(f"SA answered with status 0x{answer.status:04x}", file=out)
        return 1
    print(f"PathRecord {gid_text(answer.sgid)} -> {gid_text(answer.dgid)}", file=out)
    for key, value in to_json(record).items():
        print(f"  {key:<28} {value}", file=out)
    info = answer.route
    if info is None:
        print(f"route: {answer.route_error}", file=out)
        return 1
    names = {n.node_guid: n.name for n in fabric.nodes}
    print(f"route ({info.hop_count} links):", file=out)
    for guid, port in info.hops:
        print(f"  {names.get(guid, hex(guid))}[{port}]", file=out)
    dst_name = fabric.nodes[answer.dst_node].name
    print(f"  -> {dst_name}[{answer.dst_port}] (LID {record.dlid})", file=out)
    return 0

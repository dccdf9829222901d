"""`ibmig up TOPOLOGY`: bring a subnet up in the simulator and report what it cost."""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import IO

from ibmig.cli.common import (
    Subparsers,
    add_routing_argument,
    check_output_file,
    file_errors,
    open_binary,
    open_text,
)
from ibmig.cli.progress import Progress
from ibmig.cli.tables import smp_table
from ibmig.errors import ConfigError
from ibmig.experiments.bringup import BringUp, SweepReport, dump_lfts
from ibmig.experiments.building import check_lid_space
from ibmig.experiments.scenario import check_seed
from ibmig.fabric import Fabric, find_node, load_topology
from ibmig.sim.subnet import TraceWriter
from ibmig.wire.capture import CaptureWriter


def add_parser(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "up",
        help="bring a subnet up in the simulator with ibmig's SM",
        description=(
            "Discover the fabric, assign LIDs, route and program every LFT, bring every "
            "port to Active; print the simulated time to SUBNET UP, the SMPs by attribute "
            "and method, wall time and peak memory."
        ),
    )
    parser.add_argument("topology", help="net file (ibnetdiscover/ibsim) or preset, e.g. ft2-36")
    add_routing_argument(parser)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sm-node", help="CA that hosts the SM (name or description)")
    parser.add_argument("--capture", metavar="F", help="write every MAD to an ERF pcap")
    parser.add_argument("--trace", metavar="F", help="write a JSON Lines event trace")
    parser.add_argument("--dump-lfts", metavar="F", help="write the switches' LFTs as JSON")
    parser.add_argument(
        "--fail-link",
        metavar="NODE:PORT",
        action="append",
        default=[],
        help="after SUBNET UP take this cable down, resweep, bring it back, resweep",
    )
    parser.set_defaults(handler=run)


def parse_link(fabric: Fabric, text: str) -> tuple[int, int]:
    node, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"expected NODE:PORT, got {text!r}", "--fail-link")
    return find_node(fabric, node), int(port)


def run(args: argparse.Namespace) -> int:
    for option, path in (
        ("--capture", args.capture),
        ("--trace", args.trace),
        ("--dump-lfts", args.dump_lfts),
    ):
        if path:
            check_output_file(path, option)
    check_seed(args.seed, "--seed")
    fabric = load_topology(args.topology)
    check_lid_space(fabric, args.topology)
    links = [parse_link(fabric, text) for text in args.fail_link]
    return run_up(args, fabric, links, sys.stdout)


def run_up(
    args: argparse.Namespace, fabric: Fabric, fail_links: list[tuple[int, int]], out: IO[str]
) -> int:
    started = time.perf_counter()
    name = args.topology
    with ExitStack() as files:
        capture = (
            CaptureWriter(files.enter_context(open_binary(args.capture))) if args.capture else None
        )
        trace = TraceWriter(files.enter_context(open_text(args.trace))) if args.trace else None
        job = BringUp(
            fabric,
            routing=args.routing,
            seed=args.seed,
            capture=capture,
            trace=trace,
            sm_node=args.sm_node,
            name=name,
        )
        sim = job.sim
        print(
            f"{name}: {fabric.num_switches:,} switches, {fabric.num_cas:,} CAs, "
            f"{len(fabric.links):,} links; routing {args.routing}, seed {args.seed}",
            file=out,
        )
        with Progress("bring-up", unit="SMPs", stream=sys.stderr) as progress:
            first = job.sweep("bring-up", progress.update, first=True)
        print_sweep(first, out)
        if first.up is None:
            return 1
        last = first
        for node, port in fail_links:
            label = f"{fabric.nodes[node].name}[{port}]"
            sim.set_link(node, port, False)
            print_sweep(job.sweep(f"link {label} down"), out)
            sim.set_link(node, port, True)
            last = job.sweep(f"link {label} up")
            print_sweep(last, out)
        stats = sim.stats
        drops = ", ".join(f"{k} {v}" for k, v in sorted(stats.drops.items())) or "none"
        print(
            f"packets: {stats.sent:,} sent, {stats.delivered:,} delivered; drops: {drops}; "
            f"SMP retransmissions: {sim.sm.retransmissions}",
            file=out,
        )
        if args.dump_lfts:
            with file_errors(args.dump_lfts):
                Path(args.dump_lfts).write_text(json.dumps(dump_lfts(sim), indent=1) + "\n")
            print(f"LFTs written to {args.dump_lfts}", file=out)
    wall = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"wall time {wall:.2f} s, peak RSS {peak_mb:,.0f} MB", file=out)
    return 0 if last.up is not None else 1


def _names(names: list[str], shown: int = 10) -> str:
    more = f" and {len(names) - shown:,} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def print_sweep(report: SweepReport, out: IO[str]) -> None:
    if report.up is None:
        print(f"{report.label}: {report.failure or 'the SM stopped'}; subnet not up", file=out)
        return
    took_ns = report.up.time_ns - report.start_ns
    print(
        f"{report.label}: SUBNET UP after {took_ns / 1e6:,.3f} ms simulated "
        f"(sweep {report.up.sweep}), {report.smps:,} SMPs",
        file=out,
    )
    for line in smp_table(report.smp_counts):
        print(line, file=out)
    if report.beyond_hop_limit:
        print(
            f"  not reached: {len(report.beyond_hop_limit):,} nodes beyond the 63-hop limit "
            f"of directed routes: {_names(report.beyond_hop_limit)}",
            file=out,
        )
    if report.unreached:
        print(
            f"  not reached: {len(report.unreached):,} nodes with no path from the SM: "
            f"{_names(report.unreached)}",
            file=out,
        )

"""The `ibmig` command.

Every subcommand turns bad user input into a `ConfigError`, printed as one line
(`ibmig: error: FILE:LINE: message`) with exit status 2; a codec's `WireError` on a
user-supplied file is reported the same way.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from ibmig.errors import ConfigError, WireError
from ibmig.experiments.bringup import run_up
from ibmig.experiments.topology import find_node, load_topology
from ibmig.fabric import Fabric

Handler = Callable[[argparse.Namespace], int]


def _add_decode(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "decode",
        help="decode InfiniBand packets from an ERF capture, or MAD bytes given in hex",
        description=(
            "Print one JSON object per packet: LRH/GRH/BTH/DETH, the MAD header and the "
            "decoded attribute fields. Without FILE or --hex, decodes the bundled sample "
            "capture."
        ),
    )
    parser.add_argument("file", nargs="?", help="pcap file of link type ERF (197) or 247")
    parser.add_argument("--hex", metavar="HEX", help="one MAD (256 bytes) or packet as hex")
    parser.add_argument("--pretty", action="store_true", help="human-readable tree")
    parser.set_defaults(handler=_run_decode)


def _run_decode(args: argparse.Namespace) -> int:
    from ibmig.decode_cmd import run_decode

    return run_decode(args.file, args.hex, args.pretty, sys.stdout)


ROUTING_ENGINES = ("minhop", "updn", "ftree")


def _add_up(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    parser.add_argument("--routing", choices=ROUTING_ENGINES, default="minhop")
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
    parser.set_defaults(handler=_run_up)


def _parse_link(fabric: Fabric, text: str) -> tuple[int, int]:
    node, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"expected NODE:PORT, got {text!r}", "--fail-link")
    return find_node(fabric, node), int(port)


def _run_up(args: argparse.Namespace) -> int:
    fabric = load_topology(args.topology)
    links = [_parse_link(fabric, text) for text in args.fail_link]
    return run_up(
        fabric,
        args.topology,
        routing=args.routing,
        seed=args.seed,
        capture=args.capture,
        trace=args.trace,
        dump=args.dump_lfts,
        fail_links=links,
        sm_node=args.sm_node,
        out=sys.stdout,
    )


def _add_path(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    parser.add_argument("--routing", choices=ROUTING_ENGINES, default="minhop")
    parser.set_defaults(handler=_run_path)


def _run_path(args: argparse.Namespace) -> int:
    from ibmig.experiments.pathcmd import run_path

    fabric = load_topology(args.topology)
    return run_path(fabric, args.src, args.dst, routing=args.routing, out=sys.stdout)


def _add_experiments(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser(
        "run",
        help="run one migration scenario (TOML) and print a summary",
        description="Run one scenario file: subnet, hosts, VMs, workload, migrations.",
    )
    run.add_argument("scenario", help="scenario TOML file")
    run.add_argument("--seed", type=int)
    run.add_argument("--capture", metavar="F", help="write every packet to an ERF pcap")
    run.add_argument("--trace", metavar="F", help="write a JSON Lines event trace")
    run.add_argument("--json", action="store_true", help="print the results as JSON")
    run.set_defaults(handler=_run_run)
    rep = sub.add_parser(
        "reproduce",
        help="reproduce the paper's evaluation on a built-in testbed, with a report",
        description=(
            "Static and dynamic address assignment under each signalling strategy on a "
            "lab testbed, and a sweep of n and m for management messages per migration; "
            "prints the tables and writes DIR/report.html with plots, CSV and JSON."
        ),
    )
    rep.add_argument("--out", default="ibmig-report", metavar="DIR")
    rep.add_argument("--json", action="store_true")
    rep.add_argument("--quick", action="store_true", help=argparse.SUPPRESS)
    rep.set_defaults(handler=_run_reproduce)
    sweep = sub.add_parser(
        "sweep",
        help="run a scenario over a grid of parameters in parallel, one CSV",
        description="Example: ibmig sweep lab.toml --param n=4,16,64 --param m=1,4,16",
    )
    sweep.add_argument("scenario")
    sweep.add_argument(
        "--param", action="append", default=[], metavar="NAME=V1,V2",
        help="n, m, p, strategy, assignment, path_cache, seed, or a dotted key",
    )  # fmt: skip
    sweep.add_argument("--out", default="sweep.csv", metavar="CSV")
    sweep.set_defaults(handler=_run_sweep)


def _run_run(args: argparse.Namespace) -> int:
    from ibmig.experiments.commands import run_command

    return run_command(
        args.scenario, seed=args.seed, capture=args.capture, trace=args.trace,
        as_json=args.json, out=sys.stdout,
    )  # fmt: skip


def _run_reproduce(args: argparse.Namespace) -> int:
    from ibmig.experiments.commands import reproduce

    return reproduce(args.out, as_json=args.json, out=sys.stdout, quick=args.quick)


def _run_sweep(args: argparse.Namespace) -> int:
    from ibmig.experiments.commands import sweep_command

    if not args.param:
        raise ConfigError("give at least one --param NAME=V1,V2,...", "sweep")
    return sweep_command(args.scenario, args.param, args.out, sys.stdout)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ibmig",
        description="SR-IOV InfiniBand VM migration: subnet, signalling and evaluation.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_decode(sub)
    _add_up(sub)
    _add_path(sub)
    _add_experiments(sub)
    from ibmig.sm_cmd import add_sm_parser

    add_sm_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except (ConfigError, WireError) as exc:
        print(f"ibmig: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # Output piped into `head` and closed early: not an error of ours.
        return 0


if __name__ == "__main__":
    sys.exit(main())

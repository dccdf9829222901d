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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ibmig",
        description="SR-IOV InfiniBand VM migration: subnet, signalling and evaluation.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_decode(sub)
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

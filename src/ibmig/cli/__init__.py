"""The `ibmig` command: one module per subcommand.

    run        one migration scenario                      (cli.run)
    reproduce  the paper's evaluation, with a report        (cli.reproduce)
    sweep      a scenario over a grid of parameters         (cli.sweep)
    plan       LIDs and signalling cost on a given fabric   (cli.plan)
    up         a subnet brought up in the simulator         (cli.up)
    path       a PathRecord from the simulated SA           (cli.path)
    decode     captured packets or MAD bytes                (cli.decode)
    sm         ibmig's SM and SA on an ibsim fabric         (cli.sm)
    dom0       the hypervisor daemon over umad              (cli.daemons)
    guest      a guest agent on dom0's channel              (cli.daemons)
    lab        ibsim + SM + dom0s + guests, one migration   (cli.daemons)

Each module has `add_parser(subparsers)`, which sets the subcommand's `handler`.
Modules parse arguments and print; the work is in the library (`ibmig.experiments`,
`ibmig.fabric`, ...), imported lazily where it is heavy. Every subcommand turns bad
user input into a `ConfigError`, printed as one line (`ibmig: error: WHERE: message`)
with exit status 2, and checks the files it will write before doing any work; a
codec's `WireError` on a user-supplied file is reported the same way.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from types import ModuleType

from ibmig.errors import ConfigError, WireError

Handler = Callable[[argparse.Namespace], int]

SUBCOMMANDS = (
    "decode", "up", "path", "run", "reproduce", "compare", "sweep", "plan", "sm", "daemons",
)  # fmt: skip
"""The subcommands' modules, in the order `ibmig --help` lists them. Imported when
the parser is built, not with the package: `python -m ibmig.cli.sm` would otherwise
find its own module imported before runpy runs it (a RuntimeWarning)."""


def subcommand_modules() -> list[ModuleType]:
    return [importlib.import_module(f"ibmig.cli.{name}") for name in SUBCOMMANDS]


def _version() -> str:
    """The installed distribution's version (pyproject's `version`)."""
    try:
        return metadata.version("ibmig")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ibmig",
        description="SR-IOV InfiniBand VM migration: subnet, signalling and evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in subcommand_modules():
        module.add_parser(sub)
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

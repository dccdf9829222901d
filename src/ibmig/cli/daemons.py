"""`ibmig dom0`, `ibmig guest` and `ibmig lab`: the signalling mechanism as processes.

    ibmig dom0 --umad [--ca NAME --port N] --control SOCKET [--strategy S] [--notice V]
               [--state F]
    ibmig guest --channel SOCKET --vm NAME --ip A [--peer IP=GID ...] [--subscribe]
                [--notice V]
    ibmig lab --ibsim NETFILE [--strategy S ...] [--notice V] [--n N --m M]

dom0 and the guests print one JSON line per event (`ibmig.daemons.log`) and run
until SIGINT or SIGTERM. The lab starts and stops everything itself.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import time
from ipaddress import IPv4Address
from pathlib import Path
from types import FrameType
from typing import IO

from ibmig.cli.common import Subparsers
from ibmig.errors import ConfigError

NOTICE_CHOICES = ("trap69", "trap69-path")
"""The notices the daemons take (`ibmig.core.sa_client.NOTICES` has trap64-65 too,
which the lab does not measure)."""

STEP_S = 0.01
"""How long one step of a daemon waits on its channel at most: the umad device is
polled between steps (umad2sim's poll cannot wait on it and a socket at once)."""


def add_parser(sub: Subparsers) -> None:
    dom0 = sub.add_parser(
        "dom0",
        help="the hypervisor daemon (dom0) of one host, over a umad port",
        description=(
            "Register the VMs' alias GUIDs with the SA, keep the vGUID -> LID table, "
            "subscribe for path changes (per-host) and forward them to local guests over "
            "a Unix socket; take VF attached/detached, VM arrived/left from an orchestrator "
            "on the same socket (protocol: ibmig.daemons.channel)."
        ),
    )
    dom0.add_argument(
        "--umad",
        action="store_true",
        required=True,
        help="run on a port's umad device (on ibsim: under LD_PRELOAD=libumad2sim.so)",
    )
    dom0.add_argument("--ca", help="the CA (ibdev) to run on; default the first")
    dom0.add_argument("--port", type=int, metavar="N", help="the CA's port; default the first")
    dom0.add_argument(
        "--control",
        required=True,
        metavar="SOCKET",
        help="Unix socket path for guests and the orchestrator",
    )
    dom0.add_argument("--host", default="host", help="this host's name in the output")
    dom0.add_argument(
        "--strategy",
        choices=("none", "per-vm", "per-host", "targeted"),
        default="per-host",
        help="per-host: dom0 subscribes and forwards (default); targeted: the same, the "
        "SA (ibmig sm --targeted) choosing whom it tells",
    )
    dom0.add_argument(
        "--notice",
        choices=NOTICE_CHOICES,
        default="trap69",
        help="the notice subscribed to; trap69-path: trap 69 carrying the new path's "
        "values, forwarded to the guests with them (ibmig sm --notice trap69-path)",
    )
    dom0.add_argument("--vfs", type=int, default=16, help="VFs of the port (default 16)")
    dom0.add_argument(
        "--state", metavar="F", help="keep the toolstack's VM state here; read at start (restart)"
    )
    dom0.add_argument("--port-guid", help="the port GUID (default: from sysfs, gids/0)")
    dom0.add_argument(
        "--seed",
        type=int,
        help="seed of its TIDs (default: fresh each start, as a restarted dom0 needs)",
    )
    dom0.set_defaults(handler=run_dom0)

    guest = sub.add_parser(
        "guest",
        help="a guest agent (path cache, SA queries, CM) on its dom0's channel",
        description="One VM's RDMA stack (ibmig.core.guest) with its QP1 through dom0.",
    )
    guest.add_argument("--channel", required=True, metavar="SOCKET", help="dom0's socket")
    guest.add_argument("--vm", required=True, help="the VM's name, as the orchestrator gave it")
    guest.add_argument("--ip", required=True, help="the VM's IPoIB address")
    guest.add_argument(
        "--peer",
        action="append",
        default=[],
        metavar="IP=GID",
        help="connect to the server at IP, GID 32 hex digits (repeatable)",
    )
    guest.add_argument(
        "--subscribe",
        action="store_true",
        help="subscribe for path changes itself (the per-VM strategy)",
    )
    guest.add_argument(
        "--notice",
        choices=NOTICE_CHOICES,
        default="trap69",
        help="with --subscribe: the notice subscribed to (see ibmig dom0 --notice)",
    )
    guest.add_argument("--path-cache", choices=("cached", "query"), default="cached")
    guest.add_argument("--seed", type=int, default=0)
    guest.set_defaults(handler=run_guest)

    lab = sub.add_parser(
        "lab",
        help="ibsim + ibmig's SM + dom0 daemons + guests: migrate a VM under each strategy",
        description=(
            "Start ibsim, ibmig sm --umad, a dom0 per host and a guest per VM; migrate vm0 "
            "with static assignment; print when each peer heard and reconnected (wall "
            "clock), the Reports against the simulator's prediction, the MADs each process "
            "sent. Every process is stopped by its own id."
        ),
    )
    lab.add_argument("--ibsim", required=True, metavar="NETFILE", help="ibsim net file")
    lab.add_argument(
        "--strategy",
        action="append",
        choices=("none", "per-vm", "per-host", "targeted"),
        help="repeatable; default none, per-vm and per-host (the paper's three)",
    )
    lab.add_argument(
        "--notice",
        choices=NOTICE_CHOICES,
        default="trap69",
        help="trap69-path: the SA's trap 69 carries the new path's values and the "
        "guests reconnect without a PathRecord query (default trap69)",
    )
    lab.add_argument("--n", type=int, default=3, help="hosts (default 3)")
    lab.add_argument("--m", type=int, default=1, help="VMs per host (default 1)")
    lab.add_argument("--seed", type=int, default=1)
    lab.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for a step")
    lab.add_argument("--keep", metavar="DIR", help="keep every process's output under DIR")
    lab.add_argument("--no-compare", action="store_true", help="do not run the simulator")
    lab.set_defaults(handler=run_lab_command)


def _stop_on_signals() -> list[str]:
    stop: list[str] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.append(signal.Signals(signum).name)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    return stop


def _port_guid(text: str) -> int:
    """A sysfs GID ("fe80:0000:...:0001") -> its interface ID."""
    digits = text.strip().replace(":", "")
    return int(digits[16:32], 16)


def run_dom0(args: argparse.Namespace, out: IO[str] | None = None) -> int:
    from ibmig.core.host import HostAgent, HostConfig
    from ibmig.daemons.dom0 import Dom0Daemon, register_dom0_agents
    from ibmig.daemons.log import EventLog
    from ibmig.ibsim.client import is_listening
    from ibmig.umad.device import UmadPort, find_port, port_attribute, under_umad2sim

    out = out or sys.stdout
    if under_umad2sim() and not is_listening():
        raise ConfigError(
            "libumad2sim.so is preloaded but no ibsim listens on $IBSIM_SOCKNAME", "--umad"
        )
    info = find_port(args.ca, args.port)
    lid = int(port_attribute(info, "lid"), 0)
    sa_lid = int(port_attribute(info, "sm_lid"), 0)
    if not lid or not sa_lid:
        raise ConfigError(f"{info.ca} port {info.port} has no LID or SM yet", "--umad")
    try:
        port_guid = (
            int(args.port_guid, 0) if args.port_guid else _port_guid(port_attribute(info, "gids/0"))
        )
    except ValueError:
        raise ConfigError(f"not a GUID: {args.port_guid!r}", "--port-guid") from None
    config = HostConfig(
        num_vfs=args.vfs,
        subscribe_path_changes=args.strategy in ("per-host", "targeted"),
        path_change_notice=args.notice,
    )
    host = HostAgent(
        args.host,
        port_guid,
        config=config,
        rng=random.Random(f"{args.seed}:{args.host}") if args.seed is not None else random.Random(),
        port_num=info.port,
    )
    port = UmadPort(info).open()
    stop = _stop_on_signals()
    log = EventLog(f"dom0 {args.host}", out)
    daemon = None
    try:
        register_dom0_agents(port)
        if port.simulated:
            port.become_sm()  # ibsim hands QP1 requests to its issm client only (dom0 docstring)
        daemon = Dom0Daemon(
            port,
            host,
            lid=lid,
            sa_lid=sa_lid,
            channel_path=args.control,
            log=log,
            state_path=args.state,
        )
        daemon.start()
        while not stop:
            daemon.step(STEP_S)
        log.line("exiting", signal=stop[0], sent=dict(sorted(daemon.sent.items())))
        return 0
    finally:
        if daemon is not None:
            daemon.close()
        port.close()


def _peers(values: list[str]) -> list[tuple[IPv4Address, bytes]]:
    peers = []
    for value in values:
        ip, _, gid = value.partition("=")
        try:
            address = IPv4Address(ip)
            raw = bytes.fromhex(gid)
        except ValueError:
            raise ConfigError(f"expected IP=GID (32 hex digits), got {value!r}", "--peer") from None
        if len(raw) != 16:
            raise ConfigError(f"a GID is 32 hex digits, got {gid!r}", "--peer")
        peers.append((address, raw))
    return peers


def run_guest(args: argparse.Namespace, out: IO[str] | None = None) -> int:
    from ibmig.core.guest import GuestAgent
    from ibmig.core.guest.config import GuestConfig
    from ibmig.daemons.guest import GuestDaemon
    from ibmig.daemons.log import EventLog

    out = out or sys.stdout
    try:
        ip = IPv4Address(args.ip)
    except ValueError:
        raise ConfigError(f"not an IPv4 address: {args.ip!r}", "--ip") from None
    # No data plane under ibsim (ibmig.daemons.guest): no ACK timer on the QPs, and
    # one message a second is plenty of nothing to drop.
    config = GuestConfig(
        path_cache=args.path_cache, local_ack_timeout=0, message_interval_ns=1_000_000_000
    )
    agent = GuestAgent(
        ip=ip,
        rng=random.Random(f"{args.seed}:{args.vm}"),
        peers=_peers(args.peer),
        config=config,
        subscribe=args.subscribe,
        notice=args.notice,
        name=args.vm,
    )
    stop = _stop_on_signals()
    log = EventLog(f"guest {args.vm}", out)
    daemon = GuestDaemon(agent, args.vm, args.channel, log)
    log.line("ready", channel=args.channel, ip=str(ip))
    try:
        while not stop:
            daemon.step(STEP_S * 10)
        log.line("exiting", signal=stop[0], sent=dict(sorted(daemon.sent.items())))
        return 0
    finally:
        daemon.close()


def run_lab_command(args: argparse.Namespace, out: IO[str] | None = None) -> int:
    from ibmig.daemons.lab import PAPER_STRATEGIES, run_lab
    from ibmig.ibsim.harness import HarnessError, missing_tools

    out = out or sys.stdout
    missing = missing_tools()
    if missing:
        raise ConfigError(f"missing: {', '.join(missing)}", "--ibsim")
    started = time.monotonic()
    strategies = tuple(args.strategy) if args.strategy else PAPER_STRATEGIES
    if not Path(args.ibsim).is_file():
        raise ConfigError("no such net file", f"--ibsim {args.ibsim}")
    try:
        run_lab(
            args.ibsim,
            strategies,
            out,
            n=args.n,
            m=args.m,
            seed=args.seed,
            notice=args.notice,
            timeout_s=args.timeout,
            workdir=args.keep,
            compare=not args.no_compare,
        )
    except HarnessError as exc:
        # A process did not reach the state waited for (its output is in the message;
        # --keep DIR keeps every process's output): a failed run, not bad input.
        print(f"ibmig lab: {exc}", file=sys.stderr)
        return 1
    print(f"\nlab done in {time.monotonic() - started:.1f} s", file=out)
    return 0

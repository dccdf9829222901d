"""`ibmig sm --ibsim`: ibmig's SM and SA as the subnet manager of an ibsim fabric.

Attaches to ibsim as an issm=1 client at a channel adapter (`--node`, default the
first CA found from ibsim's default port), brings the fabric to Active, prints
"SUBNET UP ..." with the SMP count and time, then stays resident: answers SA
queries from other clients (saquery, subscribers), handles traps 128 from ibsim's
console (Unlink/ReLink) with a light resweep and Reports to subscribers, and exits
cleanly (status 0) on SIGINT or SIGTERM.

What differs from the simulator, because ibsim is what it is:

- ibsim has no RMPP: the SA answers a GetTable with one MAD holding the records
  that fit (`SaConfig(rmpp=False)`), sent with the length OpenSM's answers have
  through umad2sim, so saquery counts the records right.
- ibsim's ports implement GUIDInfo Get only (a Set returns MAD status 0x0008), so
  no port can hold an alias GUID. The SM keeps the alias GUIDs the SA writes in
  its own database anyway (`SmConfig.keep_refused_alias_guids`): GUIDInfoRecord
  queries, PathRecords to vGUIDs and the path-change notice (trap 69) work, but a
  SubnGet(GUIDInfo) to the port (`smpquery guids`) shows its port GUID only.
- At most 10 clients attach to one ibsim: this SM takes one (and one more for a
  moment when it looks for the first CA).

`python -m ibmig.cli.sm --ibsim ...` runs the same code as `ibmig sm --ibsim ...`
(the interop harness starts it that way).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import IO, Any

from ibmig.cli.common import Subparsers, add_routing_argument, check_output_file, file_errors
from ibmig.cli.tables import smp_table
from ibmig.core.engine import Engine
from ibmig.core.sm.manager import (
    PortsChanged,
    RoutingFallback,
    SmConfig,
    SmpFailed,
    SubnetManager,
    SubnetUp,
    SweepStarted,
    TrapReceived,
)
from ibmig.core.sm.roles import SmStateChanged
from ibmig.errors import ConfigError, WireError
from ibmig.experiments.heap import paused_gc
from ibmig.experiments.scenario import check_seed
from ibmig.fabric.partitions import load_partitions
from ibmig.ibsim.client import IbsimClient, IbsimError, is_listening, socket_basename
from ibmig.ibsim.runtime import IbsimRuntime, find_first_ca
from ibmig.realtime import RealTimeLoop
from ibmig.umad.runtime import UmadRuntime
from ibmig.wire.mad import MadStatus, Method
from ibmig.wire.smp_attrs import SmpAttr, SmState

_UNSUPPORTED = MadStatus.METHOD_NOT_SUPPORTED
_SET = Method.SET


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add the `sm` subcommand; its handler is `run_sm` (set as `handler`)."""
    parser = subparsers.add_parser(
        "sm",
        help="run ibmig's SM and SA on an ibsim fabric",
        description=(
            "Attach to ibsim as its subnet manager (issm client), bring every port to "
            "Active, print SUBNET UP with the SMPs sent and the time taken, then stay "
            "resident answering SA queries and handling traps until SIGINT/SIGTERM."
        ),
    )
    _add_arguments(parser)
    parser.set_defaults(handler=run_sm)
    return parser


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ibsim", action="store_true", help="run on ibsim's socket protocol (required)"
    )
    parser.add_argument(
        "--umad",
        action="store_true",
        help="run on a port's /dev/infiniband/umad device (on ibsim: under "
        "LD_PRELOAD=libumad2sim.so)",
    )
    parser.add_argument("--ca", help="with --umad: the CA (ibdev) to run on; default the first")
    parser.add_argument(
        "--port", type=int, metavar="N", help="with --umad: the CA's port; default the first"
    )
    parser.add_argument(
        "--sockname", help="ibsim socket base name (default: $IBSIM_SOCKNAME or 'sim')"
    )
    parser.add_argument(
        "--node", help="node (net-file name or NodeDescription) to attach at; default first CA"
    )
    add_routing_argument(parser)
    parser.add_argument(
        "--max-outstanding",
        type=int,
        default=SmConfig().max_outstanding,
        metavar="N",
        help="SMPs on the wire at once (OpenSM max_wire_smps; default %(default)s)",
    )
    parser.add_argument(
        "--priority",
        type=int,
        default=SmConfig().priority,
        metavar="P",
        help="SMInfo priority 0..15 (OpenSM -p); the higher SM is master (default %(default)s)",
    )
    parser.add_argument(
        "--partitions",
        metavar="FILE",
        help="partition configuration in OpenSM's partitions.conf format (OpenSM -P): "
        "the SM writes P_Key tables and switch partition enforcement from it",
    )
    parser.add_argument(
        "--polling-timeout",
        type=float,
        default=SmConfig().sminfo_polling_timeout_ns / 1e9,
        metavar="S",
        help="a standby polls the master every S seconds (OpenSM sminfo_polling_timeout; "
        "default %(default)s)",
    )
    parser.add_argument(
        "--polling-retries",
        type=int,
        default=SmConfig().polling_retry_number,
        metavar="N",
        help="a standby takes over after more than N unanswered polls "
        "(OpenSM polling_retry_number; default %(default)s)",
    )
    parser.add_argument(
        "--packet-life-time",
        default=None,
        metavar="N|hops",
        help="PathRecord PacketLifeTime exponent for every path but a loopback one "
        "(default 18, OpenSM's subnet_timeout), or 'hops': from each path's hop count",
    )
    parser.add_argument(
        "--notice",
        choices=("trap69", "trap69-path", "trap64-65"),
        default="trap69",
        help="how the SA tells an alias GUID move: trap 69 (default), trap 69 carrying "
        "the new path's SL, MTU, rate and PacketLifeTime, or traps 65 and 64",
    )
    parser.add_argument(
        "--targeted",
        action="store_true",
        help="send a path-change notice only to the subscribers whose port resolved a "
        "PathRecord to the moved GID (the targeted strategy)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-sa", action="store_true", help="run the SM without the SA")
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        metavar="S",
        help="give up when the subnet is not up after S seconds (default %(default)s)",
    )
    parser.add_argument(
        "--exit-after-up", action="store_true", help="exit after the first SUBNET UP"
    )
    parser.add_argument(
        "--dump", metavar="FILE", help="write LIDs and LFTs as JSON at every SUBNET UP"
    )
    parser.add_argument(
        "--quiet", action="store_true", help="print SUBNET UP lines only, no per-event lines"
    )


def no_ibsim_error(sockname: str | None) -> ConfigError:
    """Nobody listens on ibsim's control socket: say how to start ibsim, naming what
    chose the socket name (ibsim itself reads only IBSIM_SOCKNAME)."""
    base = socket_basename(sockname)
    if sockname:
        where = "--sockname"
    elif os.environ.get("IBSIM_SOCKNAME"):
        where = "IBSIM_SOCKNAME"
    else:
        where = "ibmig sm --ibsim"
    env = "" if base == "sim" else f"IBSIM_SOCKNAME={base} "
    return ConfigError(
        f"no ibsim listening on {base}:ctl; start it first, e.g. `{env}ibsim -s NETFILE` "
        "(NETFILE: an ibnetdiscover/ibsim net file such as tests/data/topologies/ft2-36.net)",
        where,
    )


def build_sa(
    sm: SubnetManager,
    seed: int,
    packet_life_time: int | str | None = None,
    *,
    notice: str = "trap69",
    targeted: bool = False,
) -> Engine | None:
    """The SA engine for ibsim: one MAD per answer (ibsim has no RMPP).
    `packet_life_time`: an exponent, "hops" (hop based) or None (SaConfig's default);
    `notice` and `targeted`: `SaConfig.path_change_notice` and `targeted_reports`."""
    try:
        from ibmig.core.sa import SaConfig, SubnetAdministrator
    except ImportError:  # pragma: no cover - the SA package is part of ibmig
        return None
    config = SaConfig(rmpp=False, path_change_notice=notice, targeted_reports=targeted)
    if packet_life_time == "hops":
        config = dataclasses.replace(config, packet_life_time=None)
    elif packet_life_time is not None:
        config = dataclasses.replace(config, packet_life_time=int(packet_life_time))
    return SubnetAdministrator(sm, rng=random.Random(seed), config=config)


def state_dump(sm: SubnetManager) -> dict[str, Any]:
    """What the SM programmed: every end port's LID and every switch's LFT."""
    db = sm.db
    ports = []
    for lid, (node_guid, port_num) in sorted(db.lid_owner.items()):
        node = db.nodes[node_guid]
        record = node.ports.get(port_num)
        ports.append(
            {
                "lid": lid,
                "node_guid": f"0x{node_guid:016x}",
                "port_num": port_num,
                "port_guid": f"0x{record.port_guid:016x}" if record else None,
                "switch": node.is_switch,
                "description": node.description,
            }
        )
    lfts = {}
    for node in db.nodes.values():
        if node.is_switch and node.lft is not None:
            lfts[f"0x{node.node_guid:016x}"] = list(node.lft[: db.max_lid + 1])
    return {
        "sweep": sm.sweep,
        "sm_lid": db.sm_lid,
        "sm_port_guid": f"0x{db.sm_port_guid:016x}",
        "max_lid": db.max_lid,
        "smps_sent": sm.smps_sent,
        "ports": ports,
        "lfts": lfts,
        "aliases": {f"0x{a:016x}": f"0x{p:016x}" for a, p in sorted(db.alias_owner.items())},
    }


def _write_dump(path: str, sm: SubnetManager) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with file_errors(path):
        Path(tmp).write_text(json.dumps(state_dump(sm), indent=1) + "\n")
        os.replace(tmp, path)


class _Printer:
    """Turns engine events into output lines."""

    def __init__(
        self, runtime: IbsimRuntime | UmadRuntime, out: IO[str], quiet: bool, dump: str | None
    ) -> None:
        self.runtime = runtime
        self.sm = runtime.sm
        self.out = out
        self.quiet = quiet
        self.dump = dump
        self.sweep_start_ns = 0
        self.sweep_cpu_s = 0.0
        self.light = False

    def line(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def __call__(self, event: Any) -> None:
        if isinstance(event, SweepStarted):
            self.sweep_start_ns = event.time_ns
            self.sweep_cpu_s = time.process_time()
            self.light = event.light
            if not self.quiet and event.light:
                self.line(f"light sweep {event.sweep} started")
        elif isinstance(event, SubnetUp):
            took = (event.time_ns - self.sweep_start_ns) / 1e9
            cpu = time.process_time() - self.sweep_cpu_s
            smps = event.smps_sent - self.runtime.sweep_start_smps
            kind = "light" if self.light else "heavy"
            if self.dump:  # before the line, which is what others wait for
                _write_dump(self.dump, self.sm)
            self.line(
                f"SUBNET UP sweep {event.sweep} ({kind}): {smps} SMPs in {took:.6f} s "
                f"(CPU {cpu:.3f} s), "
                f"{event.nodes} nodes, {event.end_ports} end ports, SM LID {self.sm.db.sm_lid}"
            )
            if not self.quiet and event.sweep == 1:
                for row in smp_table(self.sm.smp_counts):
                    self.line(row)
        elif isinstance(event, SmStateChanged):
            self._state(event)
        elif self.quiet:
            return
        elif isinstance(event, TrapReceived):
            self.line(f"trap {event.trap_number} from LID {event.issuer_lid}")
        elif isinstance(event, PortsChanged):
            self.line(f"ports in service +{len(event.in_service)} -{len(event.out_of_service)}")
        elif isinstance(event, SmpFailed):
            note = ""
            if event.attribute_id == SmpAttr.GUID_INFO and event.status == _UNSUPPORTED:
                note = " (the port holds no alias GUIDs: kept in the SM's database)"
            self.line(
                f"SMP failed: attribute 0x{event.attribute_id:04x} path {list(event.path)} "
                f"status 0x{event.status & 0xFFFF:04x}{note}"
            )
        elif isinstance(event, RoutingFallback):
            self.line(f"routing {event.engine} refused the topology ({event.reason}); minhop")
        else:
            self._sa_event(event)

    def _state(self, event: SmStateChanged) -> None:
        """One line per SM state change, also under --quiet (tests wait for it)."""
        master = f" (master 0x{event.master_guid:016x})" if event.master_guid else ""
        sets = sum(n for (_attr, method), n in self.sm.smp_counts.items() if method == _SET)
        self.line(
            f"SM state {event.new.name}{master}: {event.signal.value}; "
            f"{self.sm.smps_sent} SMPs sent, {sets} Sets"
        )

    def _sa_event(self, event: Any) -> None:
        name = type(event).__name__
        if name == "SubscriptionAdded":
            sub = event.subscription
            info = sub.inform_info
            self.line(
                f"subscription: LID {sub.lid} QP {sub.qpn} trap {info.trap_number} "
                f"generic {int(info.is_generic)}"
            )
        elif name == "SubscriptionRemoved":
            sub = event.subscription
            self.line(f"unsubscribed: LID {sub.lid} QP {sub.qpn} ({event.reason})")
        elif name == "ReportSent":
            sub = event.subscriber
            self.line(
                f"Report trap {event.trap_number} to LID {sub.lid} QP {sub.qpn} "
                f"(attempt {event.attempt})"
            )
        elif name == "ReportAcked":
            sub = event.subscriber
            self.line(f"ReportResp trap {event.trap_number} from LID {sub.lid}")
        elif name == "ReportGaveUp":
            sub = event.subscriber
            self.line(f"Report trap {event.trap_number} to LID {sub.lid}: no ReportResp")
        elif name == "PathChangeDetected":
            self.line(
                f"path change: vGUID 0x{event.vguid:016x} LID {event.old_lid} -> {event.new_lid}"
            )


MAX_SOCKNAME_BYTES = 92
"""The ibsim base name at most: an abstract AF_UNIX name is a NUL, the name and its
trailing NUL in `sun_path`'s 108 bytes, and the longest name the client binds is
BASE + ":ctl" + a 10-digit client id (`ibmig.ibsim.client`)."""


def run_sm(args: argparse.Namespace, out: IO[str] | None = None) -> int:
    out = out or sys.stdout
    if getattr(args, "umad", False):
        return run_umad_sm(args, out)
    if not args.ibsim:
        raise ConfigError(
            "`ibmig sm` runs on ibsim only: give --ibsim (`ibmig up` runs the simulator)",
            "--ibsim",
        )
    _check_sm_arguments(args)
    base = socket_basename(args.sockname)
    if len(base.encode()) > MAX_SOCKNAME_BYTES:
        where = "--sockname" if args.sockname else "$IBSIM_SOCKNAME"
        raise ConfigError(
            f"{len(base.encode())} bytes, longer than the {MAX_SOCKNAME_BYTES} an AF_UNIX "
            "socket name leaves for it (the client binds BASE:ctlN and BASE:inN)",
            where,
        )
    if not is_listening(args.sockname):
        raise no_ibsim_error(args.sockname)
    node = args.node or find_first_ca(args.sockname)
    client = IbsimClient(sockname=args.sockname, node=node, issm=True).connect()
    stop: list[str] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.append(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        # IsSM in our port's CapabilityMask, as umad2sim sets it when OpenSM opens
        # the issm device: other SMs (and `saquery -s`) find this SM by it.
        client.set_issm(True)
        port_info = client.get_port_info(0)
        node_info = client.get_node_info()
        port_num = port_info.local_port_num or 1
        sm = SubnetManager(port_num=port_num, config=_sm_config(args), rng=random.Random(args.seed))
        sa = (
            None
            if args.no_sa
            else build_sa(
                sm, args.seed + 1, args.packet_life_time, notice=args.notice, targeted=args.targeted
            )
        )
        runtime = IbsimRuntime(client, sm, sa)
        printer = _Printer(runtime, out, args.quiet, args.dump)
        runtime.event_hooks.append(printer)
        printer.line(
            f"ibmig sm: ibsim {client.base}, client {client.slot} at node {client.node!r} "
            f"port {port_num} (node GUID 0x{node_info.node_guid:016x}); routing "
            f"{args.routing}, {args.max_outstanding} SMPs outstanding, priority {args.priority}"
            + ("" if sa is not None else "; no SA")
        )
        return _serve(runtime, printer, args, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        client.close()


def _check_sm_arguments(args: argparse.Namespace) -> None:
    """What `--ibsim` and `--umad` check alike, before anything starts."""
    if args.max_outstanding < 1:
        raise ConfigError("must be at least 1", "--max-outstanding")
    check_seed(args.seed, "--seed")
    if not 0 <= args.priority <= 15:
        raise ConfigError("must be 0..15", "--priority")
    if not args.polling_timeout > 0:
        raise ConfigError("must be positive", "--polling-timeout")
    if args.polling_retries < 0:
        raise ConfigError("must be at least 0", "--polling-retries")
    plt = args.packet_life_time
    if plt is not None and plt != "hops":
        try:
            value = int(plt, 0)
        except ValueError:
            raise ConfigError(
                f"must be 0..63 or 'hops', got {plt!r}", "--packet-life-time"
            ) from None
        if not 0 <= value <= 0x3F:
            raise ConfigError("must be 0..63 (6 bits)", "--packet-life-time")
        args.packet_life_time = value
    if args.partitions is not None:
        load_partitions(args.partitions)  # a bad file is one line before any work
    if args.dump:
        check_output_file(args.dump, "--dump")


def _sm_config(args: argparse.Namespace) -> SmConfig:
    partitions = None if args.partitions is None else load_partitions(args.partitions)
    return SmConfig(
        partitions=partitions,
        routing=args.routing,
        max_outstanding=args.max_outstanding,
        keep_refused_alias_guids=True,
        priority=args.priority,
        sminfo_polling_timeout_ns=int(args.polling_timeout * 1e9),
        polling_retry_number=args.polling_retries,
    )


def _serve(
    runtime: RealTimeLoop, printer: _Printer, args: argparse.Namespace, stop: list[str]
) -> int:
    """Bring the subnet up (or stand by beside a master), then stay resident until a
    signal: what `--ibsim` and `--umad` share once their transport is open."""
    sm = runtime.sm
    started = time.monotonic()
    # The heavy sweep allocates hundreds of thousands of short-lived objects and
    # hardly any cycles: the cyclic GC would spend up to a tenth of the sweep
    # walking them. Pause it until the subnet is up.
    with paused_gc() as heap:
        heap.settle()
        runtime.start()
        up = runtime.run_until_up_or(
            lambda: bool(stop) or sm.sm_state != SmState.DISCOVERING, args.timeout
        )
        if up is None and not stop and sm.sm_state != SmState.DISCOVERING:
            # Another SM is master: wait (resident) as its standby.
            runtime.run_until(lambda: bool(stop) or bool(runtime.subnet_up_events))
            up = runtime.subnet_up_events[-1] if runtime.subnet_up_events else None
    if up is None:
        if stop:
            printer.line(f"ibmig sm: {stop[0]} before SUBNET UP, exiting")
            return 0
        printer.line(
            f"ibmig sm: no SUBNET UP after {time.monotonic() - started:.1f} s "
            f"({sm.smps_sent} SMPs sent, phase {sm.phase.value})"
        )
        return 1
    if args.exit_after_up:
        return 0
    runtime.run_until(lambda: bool(stop))
    printer.line(f"ibmig sm: {stop[0]}, exiting")
    return 0


def run_umad_sm(args: argparse.Namespace, out: IO[str]) -> int:
    """`ibmig sm --umad`: the same SM and SA over a port's umad device."""
    from ibmig.umad.device import UmadPort, find_port, under_umad2sim
    from ibmig.umad.runtime import register_sm_agents

    if args.ibsim:
        raise ConfigError("give one of --ibsim and --umad", "--umad")
    _check_sm_arguments(args)
    if under_umad2sim() and not is_listening():
        # umad2sim would retry connecting every 2 s, for ever.
        raise ConfigError(
            "libumad2sim.so is preloaded but no ibsim listens on $IBSIM_SOCKNAME", "--umad"
        )
    port = UmadPort(find_port(args.ca, args.port)).open()
    stop: list[str] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.append(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        sm = SubnetManager(
            port_num=port.info.port, config=_sm_config(args), rng=random.Random(args.seed)
        )
        sa = (
            None
            if args.no_sa
            else build_sa(
                sm, args.seed + 1, args.packet_life_time, notice=args.notice, targeted=args.targeted
            )
        )
        register_sm_agents(port, sa is not None)
        port.become_sm()  # requests reach us from here on: every agent is in place
        runtime = UmadRuntime(port, sm, sa, peer_check=_ibsim_check() if under_umad2sim() else None)
        printer = _Printer(runtime, out, args.quiet, args.dump)
        runtime.event_hooks.append(printer)
        printer.line(
            f"ibmig sm: umad {port.info.umad_path} ({port.info.ca} port {port.info.port}"
            f"{', libumad2sim.so' if under_umad2sim() else ''}); routing {args.routing}, "
            f"{args.max_outstanding} SMPs outstanding" + ("" if sa is not None else "; no SA")
        )
        return _serve(runtime, printer, args, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        port.close()


def _ibsim_check() -> Callable[[], None]:
    """Under libumad2sim: raise IbsimError once ibsim's control socket is gone, as
    `--ibsim` does (umad2sim itself would retry, or block, for ever)."""
    base = socket_basename(None)

    def check() -> None:
        if not is_listening():
            raise IbsimError(f"ibsim on {base} is gone (its control socket is closed)")

    return check


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ibmig sm", description=__doc__.splitlines()[0])
    _add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_sm(args)
    except (ConfigError, WireError) as exc:  # IbsimError is a ConfigError
        print(f"ibmig: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

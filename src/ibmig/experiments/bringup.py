"""`ibmig up`: bring a subnet up in the simulator and report what it cost."""

from __future__ import annotations

import json
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ibmig.core.sm.manager import SmConfig, SubnetUp
from ibmig.errors import ConfigError
from ibmig.experiments.progress import Progress
from ibmig.fabric import Fabric
from ibmig.sim.subnet import SubnetSim, TraceWriter
from ibmig.wire.capture import CaptureWriter
from ibmig.wire.mad import Method
from ibmig.wire.smp_attrs import SmpAttr


@dataclass(slots=True)
class SweepReport:
    label: str
    up: SubnetUp | None
    start_ns: int
    smps: int
    smp_counts: Counter[tuple[int, int]] = field(default_factory=Counter)


def _enum_name(enum: Any, value: int) -> str:
    try:
        return str(enum(value).name)
    except ValueError:
        return f"0x{value:04x}"


_ATTRIBUTE_NAMES: dict[int, str] = {
    SmpAttr.NODE_INFO: "NodeInfo",
    SmpAttr.NODE_DESCRIPTION: "NodeDescription",
    SmpAttr.SWITCH_INFO: "SwitchInfo",
    SmpAttr.PORT_INFO: "PortInfo",
    SmpAttr.GUID_INFO: "GUIDInfo",
    SmpAttr.P_KEY_TABLE: "P_KeyTable",
    SmpAttr.LINEAR_FORWARDING_TABLE: "LinearForwardingTable",
    SmpAttr.SM_INFO: "SMInfo",
    SmpAttr.NOTICE: "Notice",
}


def attribute_name(attribute_id: int) -> str:
    """The attribute's name as the specification spells it."""
    return _ATTRIBUTE_NAMES.get(attribute_id) or _enum_name(SmpAttr, attribute_id)


def smp_table(counts: Counter[tuple[int, int]]) -> list[str]:
    methods = sorted({m for _, m in counts})
    attrs = sorted({a for a, _ in counts})
    names = [_enum_name(Method, m) for m in methods]
    width = max([len(attribute_name(a)) for a in attrs] + [9])
    lines = [f"  {'attribute':<{width}} " + " ".join(f"{n:>9}" for n in names) + f" {'total':>9}"]
    for attr in attrs:
        row = [counts.get((attr, m), 0) for m in methods]
        cells = " ".join(f"{v:>9,}" for v in row)
        lines.append(f"  {attribute_name(attr):<{width}} {cells} {sum(row):>9,}")
    return lines


@dataclass(slots=True)
class BringUp:
    fabric: Fabric
    name: str
    routing: str = "minhop"
    seed: int = 0
    capture_path: str | None = None
    trace_path: str | None = None
    sm_node: str | None = None
    sim: SubnetSim | None = None
    reports: list[SweepReport] = field(default_factory=list)
    wall_s: float = 0.0
    _files: list[IO[Any]] = field(default_factory=list)

    def build(self) -> SubnetSim:
        capture = None
        trace = None
        if self.capture_path:
            try:
                stream = open(self.capture_path, "wb")  # noqa: SIM115  (closed by close())
            except OSError as exc:
                raise ConfigError(exc.strerror or str(exc), self.capture_path) from None
            self._files.append(stream)
            capture = CaptureWriter(stream)
        if self.trace_path:
            text = _open(self.trace_path, "w")
            self._files.append(text)
            trace = TraceWriter(text)
        self.sim = SubnetSim(
            self.fabric,
            sm_node=self.sm_node,
            sm_config=SmConfig(routing=self.routing),
            seed=self.seed,
            capture=capture,
            trace=trace,
        )
        return self.sim

    def close(self) -> None:
        for stream in self._files:
            stream.close()
        self._files.clear()

    def sweep(self, label: str, progress: Progress | None, first: bool = False) -> SweepReport:
        """Run until the next SUBNET UP (starting the SM's first sweep when `first`)."""
        sim = self.sim
        assert sim is not None
        before = Counter(sim.sm.smp_counts)
        sent = sim.sm.smps_sent
        start = sim.kernel.now_ns
        if first:
            sim.start()
        callback = None if progress is None else progress.update
        up = sim.run_until_up(callback)
        counts = Counter(sim.sm.smp_counts)
        counts.subtract(before)
        report = SweepReport(label, up, start, sim.sm.smps_sent - sent, +counts)
        self.reports.append(report)
        return report


def _open(path: str, mode: str) -> IO[Any]:
    try:
        return open(path, mode)
    except OSError as exc:
        raise ConfigError(exc.strerror or str(exc), path) from None


def dump_lfts(sim: SubnetSim) -> dict[str, Any]:
    """The LFTs as the switches hold them (what `ibroute` would show), the CA
    ports and the switch-to-switch cables, keyed by GUID."""
    fabric = sim.fabric
    switches: dict[str, Any] = {}
    cas: dict[str, Any] = {}
    top = sim.sm.db.max_lid
    for node in fabric.nodes:
        agent = sim.agents[node.index]
        if node.is_switch:
            lft = agent.lft
            entries = {
                str(lid): lft[lid] for lid in range(1, min(top + 1, len(lft))) if lft[lid] != 0xFF
            }
            switches[f"0x{node.node_guid:016x}"] = {"lid": agent.port_lid(0), "lft": entries}
        else:
            for port in node.port_nums:
                peer = fabric.peer(node.index, port)
                if peer is None:
                    continue
                far = fabric.nodes[peer.node_index]
                guid = fabric.ports[node.port_index(port)].port_guid
                cas[f"0x{guid:016x}"] = {
                    "lid": agent.port_lid(port),
                    "switch": f"0x{far.node_guid:016x}" if far.is_switch else None,
                    "port": peer.port_num,
                }
    links = []
    for link in fabric.links:
        a, b = fabric.nodes[link.node_a], fabric.nodes[link.node_b]
        if a.is_switch and b.is_switch:
            links.append(
                [f"0x{a.node_guid:016x}", link.port_a, f"0x{b.node_guid:016x}", link.port_b]
            )
    return {"switches": switches, "cas": cas, "links": links}


def _print_sweep(report: SweepReport, out: IO[str]) -> None:
    if report.up is None:
        print(f"{report.label}: the SM stopped before SUBNET UP", file=out)
        return
    took_ns = report.up.time_ns - report.start_ns
    print(
        f"{report.label}: SUBNET UP after {took_ns / 1e6:,.3f} ms simulated "
        f"(sweep {report.up.sweep}), {report.smps:,} SMPs",
        file=out,
    )
    for line in smp_table(report.smp_counts):
        print(line, file=out)


def run_up(
    fabric: Fabric,
    name: str,
    *,
    routing: str,
    seed: int,
    capture: str | None,
    trace: str | None,
    dump: str | None,
    fail_links: list[tuple[int, int]],
    sm_node: str | None,
    out: IO[str],
) -> int:
    started = time.perf_counter()
    job = BringUp(fabric, name, routing, seed, capture, trace, sm_node)
    try:
        sim = job.build()
        print(
            f"{name}: {fabric.num_switches:,} switches, {fabric.num_cas:,} CAs, "
            f"{len(fabric.links):,} links; routing {routing}, seed {seed}",
            file=out,
        )
        with Progress("bring-up", unit="SMPs", stream=sys.stderr) as progress:
            first = job.sweep("bring-up", progress, first=True)
        _print_sweep(first, out)
        if first.up is None:
            return 1
        for node, port in fail_links:
            label = f"{fabric.nodes[node].name}[{port}]"
            sim.set_link(node, port, False)
            _print_sweep(job.sweep(f"link {label} down", None), out)
            sim.set_link(node, port, True)
            _print_sweep(job.sweep(f"link {label} up", None), out)
        stats = sim.stats
        drops = ", ".join(f"{k} {v}" for k, v in sorted(stats.drops.items())) or "none"
        print(
            f"packets: {stats.sent:,} sent, {stats.delivered:,} delivered; drops: {drops}; "
            f"SMP retransmissions: {sim.sm.retransmissions}",
            file=out,
        )
        if dump:
            Path(dump).write_text(json.dumps(dump_lfts(sim), indent=1) + "\n")
            print(f"LFTs written to {dump}", file=out)
    finally:
        job.close()
    wall = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"wall time {wall:.2f} s, peak RSS {peak_mb:,.0f} MB", file=out)
    return 0

"""Bringing a subnet up in the simulator and measuring what it cost (`ibmig up`):
SMPs by attribute and method per sweep, simulated time to SUBNET UP, and the LFTs
the switches end up holding."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ibmig.core.sm.manager import SmConfig, SubnetUp
from ibmig.fabric import Fabric
from ibmig.sim.subnet import SubnetSim, TraceWriter
from ibmig.wire.capture import CaptureWriter


@dataclass(slots=True)
class SweepReport:
    label: str
    up: SubnetUp | None
    start_ns: int
    smps: int
    smp_counts: Counter[tuple[int, int]] = field(default_factory=Counter)


@dataclass(slots=True)
class BringUp:
    """A subnet brought up by ibmig's SM, sweep by sweep."""

    fabric: Fabric
    routing: str = "minhop"
    seed: int = 0
    capture: CaptureWriter | None = None
    trace: TraceWriter | None = None
    sm_node: str | None = None
    sim: SubnetSim = field(init=False)
    reports: list[SweepReport] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sim = SubnetSim(
            self.fabric,
            sm_node=self.sm_node,
            sm_config=SmConfig(routing=self.routing),
            seed=self.seed,
            capture=self.capture,
            trace=self.trace,
        )

    def sweep(
        self, label: str, progress: Callable[[int], None] | None = None, first: bool = False
    ) -> SweepReport:
        """Run until the next SUBNET UP (starting the SM's first sweep when `first`)."""
        sim = self.sim
        before = Counter(sim.sm.smp_counts)
        sent = sim.sm.smps_sent
        start = sim.kernel.now_ns
        if first:
            sim.start()
        up = sim.run_until_up(progress)
        counts = Counter(sim.sm.smp_counts)
        counts.subtract(before)
        report = SweepReport(label, up, start, sim.sm.smps_sent - sent, +counts)
        self.reports.append(report)
        return report


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

"""Bringing a subnet up in the simulator and measuring what it cost (`ibmig up`):
SMPs by attribute and method per sweep, simulated time to SUBNET UP, and the LFTs
the switches end up holding."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ibmig.core.sm.manager import LidSpaceExhausted, SmConfig, SubnetUp
from ibmig.errors import ConfigError
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
    failure: str | None = None
    """Why the sweep ended without SUBNET UP (the SM's reason), when it did."""
    beyond_hop_limit: list[str] = field(default_factory=list)
    """Nodes cabled to the SM but further than a directed route reaches (63 hops)."""
    unreached: list[str] = field(default_factory=list)
    """Other nodes of the topology the SM does not know: cut off from its port."""


@dataclass(slots=True)
class BringUp:
    """A subnet brought up by ibmig's SM, sweep by sweep."""

    fabric: Fabric
    routing: str = "minhop"
    seed: int = 0
    capture: CaptureWriter | None = None
    trace: TraceWriter | None = None
    sm_node: str | None = None
    name: str | None = None
    """The topology's name or file, for error messages."""
    sim: SubnetSim = field(init=False)
    reports: list[SweepReport] = field(default_factory=list)
    _lid_shortages: list[LidSpaceExhausted] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sim = SubnetSim(
            self.fabric,
            sm_node=self.sm_node,
            sm_config=SmConfig(routing=self.routing),
            seed=self.seed,
            capture=self.capture,
            trace=self.trace,
        )
        self.sim.add_event_hook(self._on_lid_shortage, LidSpaceExhausted)

    def sweep(
        self, label: str, progress: Callable[[int], None] | None = None, first: bool = False
    ) -> SweepReport:
        """Run until the next SUBNET UP (starting the SM's first sweep when `first`)."""
        sim = self.sim
        before = Counter(sim.sm.smp_counts)
        sent = sim.sm.smps_sent
        start = sim.kernel.now_ns
        failures = len(sim.sweep_failures)
        lids_before = len(self._lid_shortages)
        if first:
            sim.start()
        up = sim.run_until_up(progress)
        if len(self._lid_shortages) > lids_before:
            shortage = self._lid_shortages[-1]
            raise ConfigError(
                f"the fabric needs {shortage.needed:,} unicast LIDs (one per end port); "
                f"only {shortage.available:,} exist (0x0001-0xBFFF)",
                self.name,
            )
        counts = Counter(sim.sm.smp_counts)
        counts.subtract(before)
        failure = None
        if up is None:
            failure = (
                sim.sweep_failures[-1].reason
                if len(sim.sweep_failures) > failures
                else "the simulation ran out of events"
            )
        beyond, unreached = sim.unreached()
        report = SweepReport(
            label, up, start, sim.sm.smps_sent - sent, +counts, failure, beyond, unreached
        )
        self.reports.append(report)
        return report

    def _on_lid_shortage(self, node: int, event: LidSpaceExhausted) -> None:
        self._lid_shortages.append(event)


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

"""The building stage: the fabric a scenario names, the engines' settings from its
overrides, and the simulated subnet brought up by ibmig's SM."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

from ibmig.core.guest.config import GuestConfig
from ibmig.core.host import AddressAssignment
from ibmig.core.migration.timing import MigrationTiming
from ibmig.core.sa import SaConfig
from ibmig.core.sm.manager import SmConfig
from ibmig.core.sm.vswitch import VfLids, vf_lids_needed
from ibmig.errors import ConfigError
from ibmig.experiments.scenario import MAX_VFS, Scenario
from ibmig.experiments.stepping import Stepper
from ibmig.fabric import Fabric, load_topology
from ibmig.sim.hosting import VirtualizedSubnet
from ibmig.sim.latency import LatencyModel
from ibmig.sim.subnet import TraceWriter
from ibmig.wire.capture import CaptureWriter

MAX_UNICAST_LIDS: Final = 0xBFFF
"""Unicast LIDs 0x0001..0xBFFF (IBA Vol 1, 4.1.3): 49,151."""


def check_lid_space(fabric: Fabric, where: str) -> None:
    """Refuse a fabric the SM cannot address: with LMC 0 each switch takes one LID
    (port 0) and each channel adapter or router port one."""
    needed = fabric.num_switches + sum(
        1 for node in fabric.nodes if not node.is_switch for _ in node.port_nums
    )
    if needed > MAX_UNICAST_LIDS:
        raise ConfigError(
            f"the fabric needs {needed:,} unicast LIDs ({fabric.num_switches:,} switches and "
            f"the CA and router ports), more than the {MAX_UNICAST_LIDS:,} a subnet has",
            where,
        )


def check_vswitch_lid_space(scenario: Scenario, fabric: Fabric) -> None:
    """Refuse a vSwitch scenario whose VF LIDs do not fit beside the fabric's own:
    prepopulated, every VF of the n hosts takes one; dynamic, every VM (the SM would
    refuse the first LID too many with `VfLidsExhausted`; this says so before
    anything runs or is written)."""
    hosts = scenario.hosts
    if hosts.vswitch is None:
        return
    base = fabric.num_switches + sum(
        1 for node in fabric.nodes if not node.is_switch for _ in node.port_nums
    )
    prepopulated = hosts.vswitch is VfLids.PREPOPULATED
    vf_lids = vf_lids_needed(hosts.vswitch, hosts.n, hosts.m, hosts.vfs)
    if base + vf_lids > MAX_UNICAST_LIDS:
        each = f"{hosts.vfs} VFs" if prepopulated else f"{hosts.m} VMs"
        spare = max(0, MAX_UNICAST_LIDS - base)
        raise ConfigError(
            f"the vSwitch model needs {base + vf_lids:,} unicast LIDs ({base:,} for the "
            f"switches and CA ports, {vf_lids:,} for {hosts.n:,} hosts x {each}), more than "
            f"the {MAX_UNICAST_LIDS:,} a subnet has: {spare:,} VF LIDs fit, "
            f"{spare // hosts.n:,} per host; the shared-port model needs {base:,} "
            f"(its VMs are bounded by {MAX_VFS} VFs per port, not by LIDs)",
            f"{scenario.source}: hosts.vswitch_lids",
        )


def build_fabric(scenario: Scenario) -> Fabric:
    topo = scenario.topology
    where = f"{scenario.source}: topology"
    if topo.generator is None:
        assert topo.file is not None
        fabric = load_topology(topo.file)
    else:
        try:
            fabric = topo.generator(**dict(topo.params))
        except TypeError as exc:
            raise ConfigError(f"bad generator parameters: {exc}", where) from None
    if topo.link_width is not None or topo.link_speed is not None:
        fabric = Fabric(
            fabric.nodes,
            fabric.ports,
            (
                replace(
                    link,
                    width=topo.link_width or link.width,
                    speed=topo.link_speed or link.speed,
                )
                for link in fabric.links
            ),
        )
    check_lid_space(fabric, where)
    check_vswitch_lid_space(scenario, fabric)
    return fabric


@dataclass(frozen=True, slots=True)
class Settings:
    """The scenario's timing overrides applied to each default's one home."""

    latency: LatencyModel
    migration: MigrationTiming
    guest: GuestConfig

    @classmethod
    def of(cls, scenario: Scenario) -> Settings:
        source = scenario.source
        workload = scenario.workload
        return cls(
            latency=LatencyModel().with_overrides(dict(scenario.latency), f"{source}: latency"),
            migration=MigrationTiming().with_overrides(
                dict(scenario.migration_timing), f"{source}: timing.migration"
            ),
            guest=GuestConfig(
                path_cache=workload.path_cache,
                message_interval_ns=int(workload.interval_us * 1000),
                message_bytes=workload.message_bytes,
                dreq_on_detach=scenario.orchestration.dreq_on_detach,
                # Under dynamic assignment a migrated VM finds its servers again by
                # broadcast ARP (`ibmig.core.guest.ipoib`), which needs the IPoIB
                # broadcast group; static runs keep the published default (off).
                join_ipoib_broadcast=(scenario.signalling.assignment is AddressAssignment.DYNAMIC),
            ).with_overrides(scenario.guest_timing, f"{source}: timing.guest"),
        )


def build_subnet(
    scenario: Scenario,
    fabric: Fabric,
    latency: LatencyModel,
    *,
    capture: CaptureWriter | None,
    trace: TraceWriter | None,
) -> VirtualizedSubnet:
    """The simulated subnet, not started; the SA detects alias-GUID moves when the
    scenario's signalling strategy needs it."""
    sim = VirtualizedSubnet(
        fabric,
        latency=latency,
        # With a standby, the master outranks it (IBA Vol 1, 14.4.1.1): a standby
        # that won would hand the subnet over at once, which is not the fault studied.
        sm_config=SmConfig(
            routing=scenario.run.routing.name,
            priority=1 if scenario.faults.standby_sm is not None else 0,
        ),
        sa_config=SaConfig(
            detect_alias_moves=scenario.signalling.strategy.detect_alias_moves,
            targeted_reports=scenario.signalling.strategy.targeted,
            path_change_notice=scenario.signalling.notice,
            packet_life_time=scenario.sa.packet_life_time,
            guid_info_answer=scenario.sa.guid_info_answer,
        ),
        seed=scenario.run.seed,
        capture=capture,
        trace=trace,
        vswitch=scenario.hosts.vswitch,
    )
    for sma in sim.agents:
        sma.record_events = trace is not None
    return sim


def bring_up(scenario: Scenario, sim: VirtualizedSubnet, stepper: Stepper) -> None:
    """Start the SM's first sweep and run to SUBNET UP."""
    sim.start()
    if stepper.until_up() is None:
        raise ConfigError("the subnet did not come up", scenario.source)

"""The building stage: the fabric a scenario names, the engines' settings from its
overrides, and the simulated subnet brought up by ibmig's SM."""

from __future__ import annotations

from dataclasses import dataclass

from ibmig.core.guest.config import GuestConfig
from ibmig.core.migration.timing import MigrationTiming
from ibmig.core.sa import SaConfig
from ibmig.core.sm.manager import SmConfig
from ibmig.errors import ConfigError
from ibmig.experiments.scenario import Scenario
from ibmig.experiments.stepping import Stepper
from ibmig.fabric import Fabric, load_topology
from ibmig.sim.hosting import VirtualizedSubnet
from ibmig.sim.latency import LatencyModel
from ibmig.sim.subnet import TraceWriter
from ibmig.wire.capture import CaptureWriter


def build_fabric(scenario: Scenario) -> Fabric:
    topo = scenario.topology
    if topo.generator is None:
        assert topo.file is not None
        return load_topology(topo.file)
    try:
        return topo.generator(**dict(topo.params))
    except TypeError as exc:
        raise ConfigError(
            f"bad generator parameters: {exc}", f"{scenario.source}: topology"
        ) from None


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
        sm_config=SmConfig(routing=scenario.run.routing.name),
        sa_config=SaConfig(detect_alias_moves=scenario.signalling.strategy.detect_alias_moves),
        seed=scenario.run.seed,
        capture=capture,
        trace=trace,
    )
    for sma in sim.agents:
        sma.record_events = trace is not None
    return sim


def bring_up(scenario: Scenario, sim: VirtualizedSubnet, stepper: Stepper) -> None:
    """Start the SM's first sweep and run to SUBNET UP."""
    sim.start()
    if stepper.until_up() is None:
        raise ConfigError("the subnet did not come up", scenario.source)

"""The scenario's `[faults]` on the simulator (`ibmig.experiments.scenario`).

`check_faults` resolves every cable end the faults name against the fabric before
any work (a `ConfigError` naming the entry's key); `schedule_faults` puts each fault
on the simulator's event kernel at its time, counted, as migration times are, from
the end of the set-up. A run without `[faults]` schedules nothing. `start_standby_sm`
starts `[faults.standby_sm]` once the master has brought the subnet up; `sm_fail`
kills the master's process (`VirtualizedSubnet.fail_sm`)."""

from __future__ import annotations

from dataclasses import replace

from ibmig.errors import ConfigError, shown
from ibmig.experiments.scenario import Scenario, StandbySm
from ibmig.sim.hosting import VirtualizedSubnet


def resolve_link(sim: VirtualizedSubnet, link: str, where: str) -> tuple[int, int]:
    """The (node, port) of a cable end "node:port" (a node's name or description)."""
    name, _, port_text = link.rpartition(":")
    port = int(port_text)
    nodes = [n.index for n in sim.fabric.nodes if name in (n.name, n.description)]
    if not nodes:
        raise ConfigError(f"no node named {shown(name)} in the topology", where)
    node = nodes[0]
    if port >= len(sim.peer[node]) or sim.peer[node][port] is None:
        raise ConfigError(f"{name} port {port} has no cable", where)
    return node, port


def check_faults(scenario: Scenario, sim: VirtualizedSubnet) -> None:
    """Every cable end the faults name exists and is cabled."""
    faults = scenario.faults
    for loss in faults.loss:
        if loss.link is not None:
            resolve_link(sim, loss.link, f"{loss.where}.link")
    for down in faults.link_down:
        resolve_link(sim, down.link, f"{down.where}.link")
    if faults.standby_sm is not None:
        standby_node(sim, faults.standby_sm)


def standby_node(sim: VirtualizedSubnet, standby: StandbySm) -> int:
    """The CA `standby.node` names (not the master's), or the last cabled CA but the
    master's."""
    cabled = [
        n.index
        for n in sim.fabric.cas
        if n.index != sim.sm_node and sim.fabric.peer(n.index, 1) is not None
    ]
    if standby.node is None:
        if not cabled:
            raise ConfigError("no cabled CA but the master's to run a standby SM", standby.where)
        return cabled[-1]
    for index in cabled:
        node = sim.fabric.nodes[index]
        if standby.node in (node.name, node.description):
            return index
    raise ConfigError(
        f"no cabled CA named {shown(standby.node)} but the master's", f"{standby.where}.node"
    )


def start_standby_sm(scenario: Scenario, sim: VirtualizedSubnet) -> None:
    """Once the master is up: the scenario's standby SM and SA, if any."""
    standby = scenario.faults.standby_sm
    if standby is None:
        return
    config = replace(
        sim.sm.config,
        priority=0,
        sminfo_polling_timeout_ns=int(standby.polling_timeout_ms * 1e6),
        polling_retry_number=standby.polling_retry_number,
    )
    sim.add_standby_sm(standby_node(sim, standby), config, sa_db_handover=standby.sa_db_handover)


def schedule_faults(scenario: Scenario, sim: VirtualizedSubnet, base_ns: int) -> None:
    """Each fault on `sim.kernel` at `base_ns` + its time."""
    kernel = sim.kernel

    def at(ms: float) -> int:
        return max(0, base_ns + int(ms * 1e6) - kernel.now_ns)

    faults = scenario.faults
    for loss in faults.loss:
        if loss.link is None:
            ends = [(link.node_a, link.port_a) for link in sim.fabric.links]
        else:
            ends = [resolve_link(sim, loss.link, f"{loss.where}.link")]
        kernel.schedule(at(loss.from_ms), _set_loss, (sim, ends, loss.rate))
        if loss.until_ms is not None:
            kernel.schedule(at(loss.until_ms), _set_loss, (sim, ends, 0.0))
    for down in faults.link_down:
        node, port = resolve_link(sim, down.link, f"{down.where}.link")
        kernel.schedule(at(down.at_ms), _set_link, (sim, node, port, False))
        if down.up_ms is not None:
            kernel.schedule(at(down.up_ms), _set_link, (sim, node, port, True))
    for restart in faults.dom0_restart:
        kernel.schedule(at(restart.at_ms), _restart_dom0, (sim, f"host{restart.host}"))
    for sa in faults.sa_restart:
        kernel.schedule(at(sa.at_ms), _restart_sa, sim)
    for fail in faults.sm_fail:
        kernel.schedule(at(fail.at_ms), _fail_sm, sim)


def _set_loss(arg: tuple[VirtualizedSubnet, list[tuple[int, int]], float]) -> None:
    sim, ends, rate = arg
    for node, port in ends:
        sim.set_link_loss(node, port, rate)


def _set_link(arg: tuple[VirtualizedSubnet, int, int, bool]) -> None:
    sim, node, port, up = arg
    sim.set_link(node, port, up)


def _restart_dom0(arg: tuple[VirtualizedSubnet, str]) -> None:
    sim, host = arg
    sim.restart_dom0(host)


def _restart_sa(sim: VirtualizedSubnet) -> None:
    sim.restart_sa()


def _fail_sm(sim: VirtualizedSubnet) -> None:
    sim.fail_sm()

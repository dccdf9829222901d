"""The switch settings the SM makes as OpenSM makes them (issue 12, item 4), read
back from the switches' agents after bring-up in the simulator: VLStallCount and
HOQLife on every linked switch port (leaf values toward a CA, the others toward a
switch), SwitchInfo LifeTimeValue, PortStateChange cleared. OpenSM's own values
on ibsim are checked in tests/ibsim/test_ibsim_osm_settings.py."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ibmig.core.sm.manager import SmConfig, SubnetUp
from ibmig.errors import ConfigError
from ibmig.fabric import Fabric, read_net
from ibmig.sim.subnet import SubnetSim
from ibmig.wire.smp_attrs import PortState
from tests.shared_files import TOPOLOGIES

POWER_UP_HOQ = 0x10  # what the SMA holds before anyone writes it


def up(fabric: Fabric, config: SmConfig) -> SubnetSim:
    sim = SubnetSim(fabric, sm_config=config)
    sim.start()
    assert isinstance(sim.run_until_up(), SubnetUp)
    return sim


def check(sim: SubnetSim, config: SmConfig) -> int:
    """Assert the settings everywhere; the number of switch ports checked."""
    fabric = sim.fabric
    checked = 0
    for node in fabric.switches:
        agent = sim.agents[node.index]
        info = agent.switch_info()
        assert info is not None
        assert info.life_time_value == config.packet_life_time, node.name
        assert not info.port_state_change, node.name
        for port in range(1, node.num_ports + 1):
            peer = fabric.peer(node.index, port)
            if peer is None:
                continue
            pi = agent.port_info(port)
            if fabric.nodes[peer.node_index].is_switch:
                want = (config.vl_stall_count, config.head_of_queue_lifetime)
            else:
                want = (config.leaf_vl_stall_count, config.leaf_head_of_queue_lifetime)
            assert (pi.vl_stall_count, pi.hoq_life) == want, (node.name, port)
            assert agent.port_state(port) == PortState.ACTIVE
            checked += 1
    for node in fabric.cas:  # OpenSM leaves CA ports alone
        assert sim.agents[node.index].port_info(1).hoq_life == POWER_UP_HOQ
    return checked


@pytest.fixture(scope="module")
def ft3_32() -> Fabric:
    return read_net(TOPOLOGIES / "ft3-32.net")


def test_defaults_are_opensm_s() -> None:
    config = SmConfig()
    assert (config.packet_life_time, config.head_of_queue_lifetime) == (18, 18)
    assert config.leaf_head_of_queue_lifetime == 16
    assert (config.vl_stall_count, config.leaf_vl_stall_count) == (7, 7)


def test_bring_up_sets_them_with_no_extra_smp(ft3_32: Fabric) -> None:
    sim = SubnetSim(ft3_32)
    switches = [sim.agents[n.index] for n in ft3_32.switches]
    assert any(a.switch_info().port_state_change for a in switches)  # type: ignore[union-attr]
    sim.start()
    assert isinstance(sim.run_until_up(), SubnetUp)
    checked = check(sim, SmConfig())
    assert checked > 2 * len(ft3_32.switches)
    # One SwitchInfo Set per switch, as before (it carried LinearFDBTop already);
    # the PortInfo Sets are the LID and state changes, nothing more.
    sets = {attr: n for (attr, method), n in sim.sm.smp_counts.items() if method == 0x02}
    assert sets[0x0012] == len(ft3_32.switches)
    linked = sum(1 for n in ft3_32.nodes for p in n.port_nums if ft3_32.peer(n.index, p))
    end_ports = len(ft3_32.switches) + len(ft3_32.cas)
    assert sets[0x0015] == 2 * linked + end_ports  # Armed, Active; one LID Set each


def test_configured_values_are_written(ft3_32: Fabric) -> None:
    config = SmConfig(
        packet_life_time=17,
        head_of_queue_lifetime=19,
        leaf_head_of_queue_lifetime=14,
        vl_stall_count=3,
        leaf_vl_stall_count=5,
    )
    check(up(ft3_32, config), config)


def test_a_resweep_fixes_active_ports_and_clears_port_state_change(ft3_32: Fabric) -> None:
    sim = up(ft3_32, SmConfig())
    # A switch-to-switch cable goes down and up: PortStateChange is set again on
    # both switches, and the ports come back in Init.
    link = next(
        lk
        for lk in ft3_32.links
        if ft3_32.nodes[lk.node_a].is_switch and ft3_32.nodes[lk.node_b].is_switch
    )
    sim.set_link(link.node_a, link.port_a, False)
    sim.run()
    sim.set_link(link.node_a, link.port_a, True)
    sim.run()
    assert sim.sm.subnet_up
    check(sim, SmConfig())
    # New settings (another SM's, or a changed configuration) reach ports that are
    # already Active, which stay Active: a PortInfo Set with PortState unchanged.
    changed = replace(SmConfig(), head_of_queue_lifetime=20, leaf_head_of_queue_lifetime=15)
    sim.sm.config = changed
    sim.start()
    assert isinstance(sim.run_until_up(), SubnetUp)
    check(sim, changed)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("packet_life_time", 32),
        ("head_of_queue_lifetime", -1),
        ("leaf_head_of_queue_lifetime", 32),
        ("vl_stall_count", 8),
        ("leaf_vl_stall_count", 8),
    ],
)
def test_out_of_range_values_are_refused(field: str, value: int) -> None:
    with pytest.raises(ConfigError, match=field):
        SmConfig(**{field: value})  # type: ignore[arg-type]

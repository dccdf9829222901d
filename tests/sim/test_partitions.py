"""P_Key tables after bring-up in the simulator (issue 12, item 3), read back from
the agents: what partitions.conf gives each CA port and switch port 0, the CA's
table on the switch port in front of it with partition enforcement on (OpenSM
osm_pkey_mgr.c), nothing written without a configuration, and a configuration
given once the subnet is up (OpenSM re-reading its file) written at once."""

from __future__ import annotations

from ibmig.core.sm.manager import SmConfig, SubnetUp
from ibmig.fabric import Fabric
from ibmig.fabric.generators import fat_tree_2level
from ibmig.fabric.partitions import parse_partitions
from ibmig.sim.subnet import SubnetSim
from ibmig.wire.smp_attrs import SmpAttr

POWER_UP = (0xFFFF,)  # what an SMA holds before anyone writes its table


def up(fabric: Fabric, config: SmConfig) -> SubnetSim:
    sim = SubnetSim(fabric, sm_config=config)
    sim.start()
    assert isinstance(sim.run_until_up(), SubnetUp)
    return sim


def port_guid(fabric: Fabric, name: str) -> int:
    node = next(n for n in fabric.nodes if n.name == name)
    return fabric.ports[node.port_index(1)].port_guid


def table(sim: SubnetSim, name: str, port: int) -> tuple[int, ...]:
    node = next(n for n in sim.fabric.nodes if n.name == name)
    held = sim.agents[node.index].pkey_table(port)
    return tuple(key for key in held if key)


def test_tables_after_bring_up() -> None:
    fabric = fat_tree_2level(leaves=2, hosts_per_leaf=2, spines=1)
    cas = sorted(n.name for n in fabric.cas)
    sm_name = cas[0]
    a, b = cas[1], cas[3]
    text = f"""
    Default=0x7fff, ipoib : ALL_SWITCHES=full, SELF=full, ALL_CAS=limited ;
    Red=0x0101 : {port_guid(fabric, a):#x}=full, {port_guid(fabric, b):#x} ;
    """
    sim = up(fabric, SmConfig(partitions=parse_partitions(text)))
    assert sim.fabric.nodes[sim.sm_node].name == sm_name
    assert table(sim, sm_name, 1) == (0x7FFF,)  # ALL_CAS=limited came after SELF=full
    assert table(sim, a, 1) == (0x7FFF, 0x8101)
    assert table(sim, b, 1) == (0x7FFF, 0x0101)
    assert table(sim, cas[2], 1) == (0x7FFF,)
    for switch in fabric.switches:
        agent = sim.agents[switch.index]
        assert table(sim, switch.name, 0) == (0xFFFF,)
        for port in range(1, switch.num_ports + 1):
            peer = fabric.peer(switch.index, port)
            if peer is None:
                continue
            info = agent.port_info(port)
            far = fabric.nodes[peer.node_index]
            if far.is_switch:
                assert table(sim, switch.name, port) == POWER_UP
                assert not info.partition_enforcement_inbound
            else:
                assert table(sim, switch.name, port) == table(sim, far.name, 1)
                assert info.partition_enforcement_inbound
                assert info.partition_enforcement_outbound
    # A resweep writes nothing more.
    before = sim.sm.smp_counts[(SmpAttr.P_KEY_TABLE, 0x02)]
    sim.sm.start_sweep(sim.kernel.now_ns)
    sim.pump(sim.sm_node, sim.sm_engine)
    assert isinstance(sim.run_until_up(), SubnetUp)
    assert sim.sm.smp_counts[(SmpAttr.P_KEY_TABLE, 0x02)] == before


def test_no_configuration_writes_no_table() -> None:
    fabric = fat_tree_2level(leaves=2, hosts_per_leaf=2, spines=1)
    sim = up(fabric, SmConfig())
    assert not any(attr == SmpAttr.P_KEY_TABLE for attr, _ in sim.sm.smp_counts)
    for node in fabric.cas:
        assert table(sim, node.name, 1) == POWER_UP


def test_configuration_given_when_up_is_written_at_once() -> None:
    fabric = fat_tree_2level(leaves=2, hosts_per_leaf=2, spines=1)
    sim = up(fabric, SmConfig())
    host = sorted(n.name for n in fabric.cas)[2]
    config = parse_partitions(f"Blue=0x22 : {port_guid(fabric, host):#x}=full ;")
    sim.sm.set_partitions(config, sim.kernel.now_ns)
    sim.pump(sim.sm_node, sim.sm_engine)
    sim.run()
    assert table(sim, host, 1) == (0x7FFF, 0x8022)
    peer = fabric.peer(next(n.index for n in fabric.nodes if n.name == host), 1)
    assert peer is not None
    leaf = fabric.nodes[peer.node_index]
    assert table(sim, leaf.name, peer.port_num) == (0x7FFF, 0x8022)
    assert sim.agents[leaf.index].port_info(peer.port_num).partition_enforcement_outbound

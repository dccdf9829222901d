"""The subnet as plain data: nodes, ports, links, GUIDs; ibsim/ibnetdiscover
topology files; fat-tree, k-ary n-tree and irregular generators; a TOPOLOGY
argument (file or preset) turned into a fabric (`load_topology`)."""

from ibmig.fabric.generators import (
    GENERATORS,
    PRESETS,
    TopologyGenerator,
    fat_tree_2level,
    fat_tree_3level,
    kary_ntree,
    preset,
    random_topology,
)
from ibmig.fabric.loading import find_node, load_topology
from ibmig.fabric.model import (
    IBSIM_CA_GUID_BASE,
    IBSIM_ROUTER_GUID_BASE,
    IBSIM_SWITCH_GUID_BASE,
    MAX_PORTS,
    Fabric,
    FabricBuilder,
    GuidAllocator,
    Link,
    LinkSpeed,
    LinkWidth,
    Node,
    NodeType,
    Port,
    PortArrays,
    SwitchGraph,
)
from ibmig.fabric.netfile import format_net, parse_net, read_net, write_net

__all__ = [
    "IBSIM_CA_GUID_BASE",
    "IBSIM_ROUTER_GUID_BASE",
    "IBSIM_SWITCH_GUID_BASE",
    "GENERATORS",
    "MAX_PORTS",
    "PRESETS",
    "Fabric",
    "FabricBuilder",
    "GuidAllocator",
    "Link",
    "LinkSpeed",
    "LinkWidth",
    "Node",
    "NodeType",
    "Port",
    "PortArrays",
    "SwitchGraph",
    "TopologyGenerator",
    "fat_tree_2level",
    "fat_tree_3level",
    "format_net",
    "find_node",
    "kary_ntree",
    "load_topology",
    "parse_net",
    "preset",
    "random_topology",
    "read_net",
    "write_net",
]

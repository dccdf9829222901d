"""The subnet as plain data: nodes, ports, links, GUIDs; ibsim/ibnetdiscover
topology files; fat-tree, k-ary n-tree and irregular generators."""

from ibmig.fabric.generators import (
    PRESETS,
    fat_tree_2level,
    fat_tree_3level,
    kary_ntree,
    preset,
    random_topology,
)
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
    "fat_tree_2level",
    "fat_tree_3level",
    "format_net",
    "kary_ntree",
    "parse_net",
    "preset",
    "random_topology",
    "read_net",
    "write_net",
]

"""SR-IOV HCAs as vSwitches, as the SM sees them by discovery.

In the vSwitch architecture (Tasoulas et al., IEEE Cluster 2015; CCPE 2019) an
SR-IOV HCA shows itself to the subnet as a switch: port 1 is the physical uplink,
the physical function (PF) and every virtual function (VF) sit behind their own
port of that switch, each an end port with its own port GUID and LID. Discovery
then needs no help from the hypervisor: directed-route SMPs reach the vSwitch as
any switch (NodeInfo NodeType 2) and each VF as a channel adapter behind it, the
SM gives every VF a LID and routes it like any end port, and the vSwitch's own LFT
is programmed with the others.

`embed_vswitches(fabric, cas, vfs)` turns the named CAs of a fabric into that: a
CA keeps its name, node GUID and port GUID (it is the PF, so a hypervisor's port
GUID does not change) and moves behind a new switch `<name>-vsw` (port 1: the CA's
old link; port 2: the PF; ports 3..vfs+2: VF i at port i + 2), and each VF is a
one-port CA `<name>-vf<i>`. The vSwitch's node GUID and the VFs' GUIDs are derived
from the PF's node GUID (below), outside the ranges ibsim and the generators hand
out.

This is a topology, not yet the migration model: `ibmig.core.sm.vswitch` still
takes its VFs from the hypervisor (`SubnetManager.vswitch_add_port`), and a VM's
guest still uses its hypervisor's port. What it shows is that ibmig's SM, routing
engines and LFT programming handle vSwitch HCAs found by real SMP discovery.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from ibmig.errors import ConfigError
from ibmig.fabric.model import MAX_PORTS, Fabric, FabricBuilder, NodeType

VSWITCH_GUID_FLAG: Final = 0x0200_0000_0000_0000
"""Set in a vSwitch's node GUID (the PF's node GUID with this bit), and in the VFs'
node GUIDs beside the VF number in the low byte: the IEEE "locally administered"
bit of the EUI-64's first octet, as derived VF GUIDs use it (ASSUMPTION: no
vendor's scheme; it only has to be unique in the fabric, which the builder checks)."""

VF_GUID_STEP: Final = 0x100
"""VF i's node GUID is the vSwitch's + i * this; its port GUID the node GUID + 1."""


def embed_vswitches(fabric: Fabric, cas: Iterable[str], vfs: int) -> Fabric:
    """A copy of `fabric` with each CA named in `cas` behind a vSwitch of `vfs` VFs
    (module docstring). `ConfigError` for an unknown name, a node that is not a
    one-port CA with a link, or a vSwitch that would need more than 254 ports."""
    if not 1 <= vfs <= MAX_PORTS - 2:
        raise ConfigError(f"must be 1..{MAX_PORTS - 2} VFs per vSwitch, got {vfs}", "vfs")
    chosen: dict[int, str] = {}
    for name in cas:
        try:
            node = fabric.node_by_name(name)
        except KeyError:
            raise ConfigError(f"no node named {name!r}", "cas") from None
        if node.node_type != NodeType.CA or node.num_ports != 1:
            raise ConfigError(f"{name!r} is not a one-port channel adapter", "cas")
        if fabric.link_at(node.index, 1) is None:
            raise ConfigError(f"{name!r} has no link to put a vSwitch on", "cas")
        chosen[node.index] = name

    builder = FabricBuilder()
    index: dict[int, int] = {}  # old node index -> new
    for node in fabric.nodes:
        first = 0 if node.is_switch else 1
        ports = [fabric.port(node.index, p) for p in range(first, node.num_ports + 1)]
        index[node.index] = builder.add_node(
            node.node_type,
            node.name,
            node.num_ports,
            description=node.description,
            node_guid=node.node_guid,
            system_image_guid=node.system_image_guid,
            port_guids=None if node.is_switch else {p.port_num: p.port_guid for p in ports},
            lids={p.port_num: (p.lid, p.lmc) for p in ports if p.lid or p.lmc},
            vendor_id=node.vendor_id,
            device_id=node.device_id,
            enhanced_port0=node.enhanced_port0,
        )
    uplinks: dict[int, int] = {}  # PF's old index -> its vSwitch's new index
    for old, name in chosen.items():
        pf = fabric.nodes[old]
        vsw_guid = pf.node_guid | VSWITCH_GUID_FLAG
        vsw = builder.add_node(
            NodeType.SWITCH, f"{name}-vsw", vfs + 2, node_guid=vsw_guid,
            system_image_guid=pf.system_image_guid,
        )  # fmt: skip
        uplinks[old] = vsw
        builder.connect(vsw, 2, index[old], 1)
        for vf in range(1, vfs + 1):
            vf_guid = vsw_guid + vf * VF_GUID_STEP
            vf_node = builder.add_node(
                NodeType.CA, f"{name}-vf{vf}", 1, node_guid=vf_guid,
                system_image_guid=pf.system_image_guid, port_guids={1: vf_guid + 1},
            )  # fmt: skip
            builder.connect(vsw, vf + 2, vf_node, 1)
    for link in fabric.links:
        ends = []
        for node_index, port_num in ((link.node_a, link.port_a), (link.node_b, link.port_b)):
            if node_index in uplinks:
                ends.append((uplinks[node_index], 1))  # the PF's cable now ends at port 1
            else:
                ends.append((index[node_index], port_num))
        (a, pa), (b, pb) = ends
        builder.connect(a, pa, b, pb, width=link.width, speed=link.speed)
    return builder.build()


__all__ = ["VF_GUID_STEP", "VSWITCH_GUID_FLAG", "embed_vswitches"]

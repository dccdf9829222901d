"""What a subnet management agent is told about its node: `NodeSpec` and `PortSpec`.

The simulator builds one `NodeSpec` per switch or channel adapter from the fabric
model; the agent (`ibmig.core.sma.agent`) never imports `ibmig.fabric`. Everything
here is fixed for the life of the node: identities, port counts, capabilities and
table sizes. What the subnet manager writes (LIDs, port states, tables) lives in
the agent.

Defaults describe a 4x EDR-era device: widths 1x and 4x supported, speeds 2.5, 5
and 10 Gb/s plus the extended 14 (FDR) and 25 Gb/s (EDR) per lane, 4096-byte MTU,
VL0..VL7, 32 GUIDInfo entries per CA port (alias GUIDs for SR-IOV virtual
functions), 128 P_Keys per CA port, a 48K-entry linear forwarding table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ibmig.errors import ConfigError, WireError
from ibmig.wire.smp_attrs import (
    LFT_BLOCK_SIZE,
    LinkSpeed,
    LinkSpeedExt,
    LinkWidth,
    Mtu,
    NodeDescription,
    NodeType,
    PortCapability,
)

MAX_PORTS: Final = 254
"""NodeInfo NumPorts is 8 bits and port 255 is not addressable (IBA Vol 1, 14.2.5.3)."""

MAX_UNICAST_LID: Final = 0xBFFF
"""Top of the unicast LID range (IBA Vol 1, 4.1.3); LinearFDBCap cannot exceed 0xC000."""

MELLANOX_VENDOR_ID: Final = 0x0002C9

VL_CAP_VL0_7: Final = 4
"""PortInfo VLCap/OperationalVLs code for VL0..VL7 (IBA Vol 1, 14.2.5.6)."""

DEFAULT_SWITCH_GUID_CAP: Final = 1
"""GUIDInfo entries of a switch's port 0: just its own GUID."""


@dataclass(frozen=True, slots=True)
class PortSpec:
    """Capabilities of one physical port (IBA Vol 1, 14.2.5.6 PortInfo).

    Masks use the PortInfo encodings (`LinkWidth`, `LinkSpeed`, `LinkSpeedExt`
    bits); `mtu_cap` is an `Mtu` code and `vl_cap` the VLCap code (1 = VL0,
    2 = VL0-1, 3 = VL0-3, 4 = VL0-7, 5 = VL0-14).
    """

    link_width_supported: int = LinkWidth.WIDTH_1X | LinkWidth.WIDTH_4X
    link_speed_supported: int = LinkSpeed.GBPS_2_5 | LinkSpeed.GBPS_5 | LinkSpeed.GBPS_10
    link_speed_ext_supported: int = LinkSpeedExt.GBPS_14 | LinkSpeedExt.GBPS_25
    mtu_cap: int = Mtu.MTU_4096
    vl_cap: int = VL_CAP_VL0_7

    def validate(self, where: str) -> None:
        if not 1 <= self.link_width_supported <= 0xFF:
            raise ConfigError(f"LinkWidthSupported {self.link_width_supported:#x} invalid", where)
        if not 1 <= self.link_speed_supported <= 0xF:
            raise ConfigError(f"LinkSpeedSupported {self.link_speed_supported:#x} invalid", where)
        if not 0 <= self.link_speed_ext_supported <= 0xF:
            raise ConfigError(
                f"LinkSpeedExtSupported {self.link_speed_ext_supported:#x} invalid", where
            )
        if self.mtu_cap not in set(Mtu):
            raise ConfigError(f"MTUCap {self.mtu_cap} is not an MTU code (1..5)", where)
        if not 1 <= self.vl_cap <= 5:
            raise ConfigError(f"VLCap {self.vl_cap} is not a VLCap code (1..5)", where)


DEFAULT_PORT_SPEC: Final = PortSpec()


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """The fixed identity and capabilities of one node's SMA.

    `port_guids`: for a channel adapter (or router), one GUID per port 1..num_ports;
    empty means ibsim's convention, node GUID + port number. A switch has one GUID,
    its node GUID, which is also port 0's (so `port_guids` must be empty or exactly
    `(node_guid,)`). `ports`: one `PortSpec` per physical port 1..num_ports, or empty
    for `PortSpec()` everywhere (a switch's port 0 uses port 1's).

    Table sizes: `guid_cap` is the GUIDInfo size of each CA port (a switch's port 0
    has `DEFAULT_SWITCH_GUID_CAP`); `partition_cap` the P_Key table of CA ports and of
    a switch's port 0 (NodeInfo PartitionCap); `partition_enforcement_cap` that of a
    switch's external ports (SwitchInfo PartitionEnforcementCap); `lft_cap` the
    switch's LinearFDBCap, a multiple of 64; `mft_cap` its MulticastFDBCap (MLIDs
    from 0xC000, a multiple of 32; 0: no multicast). `capability_mask` None gives a
    plausible PortInfo CapabilityMask for the node type. `subnet_timeout` is the
    power-up PortInfo SubnetTimeOut (the SM normally overwrites it).
    """

    node_type: NodeType
    node_guid: int
    num_ports: int
    port_guids: tuple[int, ...] = ()
    system_image_guid: int = 0
    description: str = ""
    vendor_id: int = MELLANOX_VENDOR_ID
    device_id: int = 0
    revision: int = 0
    ports: tuple[PortSpec, ...] = ()
    guid_cap: int = 32
    partition_cap: int = 128
    partition_enforcement_cap: int = 32
    lft_cap: int = 49152
    mft_cap: int = 1024
    capability_mask: int | None = None
    subnet_timeout: int = 0
    enhanced_port0: bool = False

    def __post_init__(self) -> None:
        self.validate()

    @property
    def is_switch(self) -> bool:
        return self.node_type == NodeType.SWITCH

    @property
    def first_port(self) -> int:
        """0 on a switch (its management port), 1 elsewhere."""
        return 0 if self.node_type == NodeType.SWITCH else 1

    def port_guid(self, port: int) -> int:
        """The GUID of `port` (a switch's ports all carry the node GUID)."""
        if self.node_type == NodeType.SWITCH:
            return self.node_guid
        if self.port_guids:
            return self.port_guids[port - 1]
        return self.node_guid + port

    def port_spec(self, port: int) -> PortSpec:
        """Capabilities of `port` (port 0 of a switch answers with port 1's)."""
        if not self.ports:
            return DEFAULT_PORT_SPEC
        return self.ports[max(port, 1) - 1]

    def default_capability_mask(self, port: int) -> int:
        if self.capability_mask is not None:
            return self.capability_mask
        spec = self.port_spec(port)
        mask = 0
        if spec.link_speed_ext_supported:
            mask |= PortCapability.IS_EXTENDED_SPEEDS_SUPPORTED
        if self.node_type == NodeType.SWITCH:
            if port == 0:
                mask |= (
                    PortCapability.IS_TRAP_SUPPORTED
                    | PortCapability.IS_SL_MAPPING_SUPPORTED
                    | PortCapability.IS_SYSTEM_IMAGE_GUID_SUPPORTED
                )
            return mask
        return mask | (
            PortCapability.IS_TRAP_SUPPORTED
            | PortCapability.IS_SYSTEM_IMAGE_GUID_SUPPORTED
            | PortCapability.IS_COMMUNICATION_MANAGEMENT_SUPPORTED
            | PortCapability.IS_CLIENT_REREGISTRATION_SUPPORTED
        )

    def validate(self) -> None:
        """Raise ConfigError unless every field is usable."""
        where = f"node 0x{self.node_guid:016x}" if 0 <= self.node_guid < 1 << 64 else "node"
        if self.node_type not in (NodeType.CA, NodeType.SWITCH, NodeType.ROUTER):
            raise ConfigError(f"node type {self.node_type} is not CA, switch or router", where)
        for name, guid in (
            ("node GUID", self.node_guid),
            ("system image GUID", self.system_image_guid),
        ):
            if not 0 <= guid < 1 << 64:
                raise ConfigError(f"{name} {guid:#x} does not fit 64 bits", where)
        if not 1 <= self.num_ports <= MAX_PORTS:
            raise ConfigError(f"num_ports {self.num_ports} outside 1..{MAX_PORTS}", where)
        if self.node_type == NodeType.SWITCH:
            if self.port_guids not in ((), (self.node_guid,)):
                raise ConfigError("a switch's only GUID is its node GUID", where)
        elif self.port_guids:
            if len(self.port_guids) != self.num_ports:
                raise ConfigError(
                    f"{len(self.port_guids)} port GUIDs for {self.num_ports} ports", where
                )
            if any(not 0 < g < 1 << 64 for g in self.port_guids):
                raise ConfigError("port GUIDs must be non-zero 64-bit values", where)
        elif self.node_guid + self.num_ports >= 1 << 64:
            raise ConfigError("node GUID + port number overflows 64 bits", where)
        if self.ports and len(self.ports) != self.num_ports:
            raise ConfigError(f"{len(self.ports)} port specs for {self.num_ports} ports", where)
        for i, spec in enumerate(self.ports, start=1):
            spec.validate(f"{where} port {i}")
        try:
            NodeDescription(self.description).pack()
        except WireError as exc:
            raise ConfigError(str(exc), where) from None
        if not 0 <= self.vendor_id <= 0xFFFFFF:
            raise ConfigError(f"VendorID {self.vendor_id:#x} does not fit 24 bits", where)
        if not 0 <= self.device_id <= 0xFFFF:
            raise ConfigError(f"DeviceID {self.device_id:#x} does not fit 16 bits", where)
        if not 0 <= self.revision <= 0xFFFFFFFF:
            raise ConfigError(f"Revision {self.revision:#x} does not fit 32 bits", where)
        if not 1 <= self.guid_cap <= 0xFF:
            raise ConfigError(f"GUIDCap {self.guid_cap} outside 1..255", where)
        if not 1 <= self.partition_cap <= 0xFFFF:
            raise ConfigError(f"PartitionCap {self.partition_cap} outside 1..65535", where)
        if not 0 <= self.partition_enforcement_cap <= 0xFFFF:
            raise ConfigError(
                f"PartitionEnforcementCap {self.partition_enforcement_cap} outside 0..65535",
                where,
            )
        if self.node_type == NodeType.SWITCH and (
            not LFT_BLOCK_SIZE <= self.lft_cap <= MAX_UNICAST_LID + 1
            or self.lft_cap % LFT_BLOCK_SIZE
        ):
            raise ConfigError(
                f"LinearFDBCap {self.lft_cap} is not a multiple of {LFT_BLOCK_SIZE} "
                f"in {LFT_BLOCK_SIZE}..{MAX_UNICAST_LID + 1}",
                where,
            )
        if not 0 <= self.mft_cap <= 0x4000 or self.mft_cap % 32:
            raise ConfigError(
                f"MulticastFDBCap {self.mft_cap} is not a multiple of 32 in 0..16384", where
            )
        if self.capability_mask is not None and not 0 <= self.capability_mask <= 0xFFFFFFFF:
            raise ConfigError(f"CapabilityMask {self.capability_mask:#x} exceeds 32 bits", where)
        if not 0 <= self.subnet_timeout <= 0x1F:
            raise ConfigError(f"SubnetTimeOut {self.subnet_timeout} outside 0..31", where)


def blocks_for(entries: int, per_block: int) -> int:
    """How many attribute blocks cover a table of `entries` entries."""
    return -(-entries // per_block)


__all__ = [
    "DEFAULT_PORT_SPEC",
    "DEFAULT_SWITCH_GUID_CAP",
    "MAX_PORTS",
    "MAX_UNICAST_LID",
    "MELLANOX_VENDOR_ID",
    "VL_CAP_VL0_7",
    "NodeSpec",
    "PortSpec",
    "blocks_for",
]

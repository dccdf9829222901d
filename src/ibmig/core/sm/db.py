"""What the subnet manager knows about the subnet: the SA's source of truth.

The SM fills this in by directed-route discovery and keeps it across resweeps; the
subnet administrator answers queries from it (as OpenSM's SA reads osm_subn_t).
Everything is keyed by GUID, which is what survives a resweep; `lid` values are
the ones the SM assigned.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ibmig.wire.smp_attrs import NodeInfo, NodeType, PortInfo, SwitchInfo

DrPath = tuple[int, ...]


class PortRecordData:
    """One port as last read (and then set) by the SM.

    The SM keeps each port's PortInfo as the 64 bytes the port last answered with
    (`raw`) and decodes it into a `PortInfo` record only when something asks for
    `info`: a sweep reads and writes tens of thousands of PortInfo attributes and
    looks inside few of them, and the hot fields have byte-level accessors here.
    """

    __slots__ = ("_info", "_raw", "alias_guids", "node_guid", "port_guid", "port_num")

    def __init__(
        self, node_guid: int, port_num: int, port_guid: int, info: PortInfo | None = None
    ) -> None:
        self.node_guid = node_guid
        self.port_num = port_num
        self.port_guid = port_guid
        self._info = info
        self._raw: bytes | None = None
        # Alias GUIDs (GUIDInfo index -> GUID) the SM has pushed to this end port.
        self.alias_guids: dict[int, int] = {}

    def __repr__(self) -> str:
        return f"PortRecordData(0x{self.node_guid:x}, {self.port_num}, 0x{self.port_guid:x})"

    @property
    def info(self) -> PortInfo | None:
        if self._info is None and self._raw is not None:
            self._info = PortInfo.unpack(self._raw)
        return self._info

    @info.setter
    def info(self, value: PortInfo | None) -> None:
        self._info = value
        self._raw = None

    @property
    def raw(self) -> bytes | None:
        """PortInfo as the 64 bytes of an SMP data slot (IBA Vol 1, 14.2.5.6)."""
        if self._raw is None and self._info is not None:
            self._raw = self._info.pack()
        return self._raw

    def set_raw(self, data: bytes) -> None:
        self._raw = bytes(data[:64])
        self._info = None

    @property
    def known(self) -> bool:
        return self._raw is not None or self._info is not None

    # Byte-level reads of the fields a sweep needs (PortInfo layout, 14.2.5.6).
    @property
    def lid(self) -> int:
        raw = self.raw
        return 0 if raw is None else (raw[16] << 8) | raw[17]

    @property
    def master_sm_lid(self) -> int:
        raw = self.raw
        return 0 if raw is None else (raw[18] << 8) | raw[19]

    @property
    def capability_mask(self) -> int:
        raw = self.raw
        return 0 if raw is None else int.from_bytes(raw[20:24], "big")

    @property
    def port_state(self) -> int:
        raw = self.raw
        return 0 if raw is None else raw[32] & 0x0F

    @property
    def physical_state(self) -> int:
        raw = self.raw
        return 0 if raw is None else raw[33] >> 4


@dataclass(slots=True)
class NodeRecordData:
    info: NodeInfo
    description: str
    path: DrPath
    ports: dict[int, PortRecordData] = field(default_factory=dict)
    # Switch only: the LFT last programmed, and SwitchInfo's LinearFDBCap.
    lft: bytearray | None = None
    lft_top: int = 0
    lft_cap: int = 0
    # Switch only: SwitchInfo as the switch last answered a Get or Set (the SA's
    # SwitchInfoRecord).
    switch_info: SwitchInfo | None = None
    seen_in_sweep: int = 0

    @property
    def node_guid(self) -> int:
        return self.info.node_guid

    @property
    def is_switch(self) -> bool:
        return self.info.node_type == NodeType.SWITCH

    @property
    def end_ports(self) -> list[int]:
        """Ports that have a LID of their own: port 0 of a switch, every CA port."""
        if self.is_switch:
            return [0]
        return [p for p in self.ports if p != 0]


Endpoint = tuple[int, int]  # (node_guid, port_num)


@dataclass(slots=True)
class SubnetDb:
    """Nodes, links and LIDs of the subnet as discovered by the SM."""

    subnet_prefix: int = 0xFE80_0000_0000_0000
    sm_lid: int = 0
    sm_port_guid: int = 0
    nodes: dict[int, NodeRecordData] = field(default_factory=dict)
    # Both directions of every link: (node_guid, port) -> (node_guid, port).
    links: dict[Endpoint, Endpoint] = field(default_factory=dict)
    # End-port LIDs (LMC 0): lid -> (node_guid, port_num) and back by port GUID.
    lid_owner: dict[int, Endpoint] = field(default_factory=dict)
    port_lid: dict[int, int] = field(default_factory=dict)
    # Alias GUID (vGUID) -> port GUID of the end port whose GUIDInfo holds it.
    alias_owner: dict[int, int] = field(default_factory=dict)
    # Alias GUID -> (LID, port GUID) of the end port it was last seen behind, kept
    # after it is deleted: what the SA detects alias moves against. The SM's memory,
    # so an SA restarted between a migration's Delete and its Set still sees the move.
    alias_last_seen: dict[int, tuple[int, int]] = field(default_factory=dict)
    max_lid: int = 0
    # vSwitch model (`ibmig.core.sm.vswitch`): vGUID -> the VM's own VF LID.
    vf_lid: dict[int, int] = field(default_factory=dict)

    def node_of_port(self, port_guid: int) -> tuple[NodeRecordData, int] | None:
        lid = self.port_lid.get(port_guid)
        if lid is None:
            return None
        node_guid, port_num = self.lid_owner[lid]
        return self.nodes[node_guid], port_num

    def lid_of_guid(self, guid: int) -> int | None:
        """The LID behind a port GUID or an alias GUID (shared-port SR-IOV: a VF's
        vGUID resolves to its physical port's LID; vSwitch: to the VM's VF LID)."""
        lid = self.vf_lid.get(guid)
        if lid is not None and self.alias_owner.get(guid) is not None:
            return lid
        lid = self.port_lid.get(guid)
        if lid is not None:
            return lid
        owner = self.alias_owner.get(guid)
        return None if owner is None else self.port_lid.get(owner)

    def port_record(self, lid: int) -> PortRecordData | None:
        owner = self.lid_owner.get(lid)
        if owner is None:
            return None
        node = self.nodes.get(owner[0])
        return None if node is None else node.ports.get(owner[1])

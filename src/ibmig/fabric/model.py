"""The subnet as plain data: nodes, ports and links of the physical topology.

A `Fabric` is immutable. Nodes have dense indices 0..N-1 (their position in
`Fabric.nodes`), ports have dense indices 0..P-1 (their position in
`Fabric.ports`) and links dense indices 0..L-1. The ports of one node are
contiguous: a switch owns ports 0..num_ports (port 0 is its management port),
a channel adapter or router owns ports 1..num_ports, so

    Fabric.ports[node.port_base + port_num - node.first_port]

is the port numbered `port_num` on `node`. This is ibsim's own layout
(`node_get_port` in ibsim/sim_net.c), and it keeps every per-port table of the
subnet manager a flat numpy array.

GUIDs follow the conventions of ibsim 0.10 (read in linux-rdma/ibsim
ibsim/sim_net.c, `new_node` and `init_ports`, and checked against a running
ibsim with ibnetdiscover and smpquery):

- every node type has a running GUID counter: channel adapters start at
  0x100000, switches at 0x200000, routers at 0 (ibsim's table has no entry for
  routers, so theirs starts at zero);
- a node takes the counter of its type in creation order (file order);
  a switch advances it by 1, a channel adapter or router by num_ports + 1;
- `switchguid=`/`caguid=`/`rtguid=` lines (here `GuidAllocator.set_base`)
  move the counter;
- a switch has one GUID: node GUID = system image GUID = the GUID of every
  port; a channel adapter or router port p has GUID node GUID + p, and its
  system image GUID is its node GUID.

LIDs belong to the subnet manager. `Port.lid`/`Port.lmc` only hold what a
topology file states (ibsim starts its ports with those values); a switch's LID
is on its port 0.

Links carry their active width and speed, with IBA encodings (IBA Vol 1,
14.2.5.6 PortInfo: LinkWidthActive, LinkSpeedActive, LinkSpeedExtActive). The
defaults, 4x SDR, are what ibsim negotiates when a file says nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from ibmig.errors import ConfigError, shown

__all__ = [
    "IBSIM_CA_GUID_BASE",
    "IBSIM_ROUTER_GUID_BASE",
    "IBSIM_SWITCH_GUID_BASE",
    "MAX_NAME_LENGTH",
    "MAX_NODE_DESCRIPTION_BYTES",
    "MAX_PORTS",
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
]

IBSIM_CA_GUID_BASE = 0x100000
IBSIM_SWITCH_GUID_BASE = 0x200000
IBSIM_ROUTER_GUID_BASE = 0x0

# NodeInfo NumPorts is 8 bits and port 255 is not addressable (IBA Vol 1, 14.2.5.3).
MAX_PORTS = 254
# ibsim keeps node ids in a 65-byte buffer (NODEIDLEN, ibsim/sim.h).
MAX_NAME_LENGTH = 64
# NodeDescription is 64 bytes (IBA Vol 1, 14.2.5.2).
MAX_NODE_DESCRIPTION_BYTES = 64

_GUID_MAX = (1 << 64) - 1
_LID_MAX = 0xFFFF
_LMC_MAX = 7
_VENDOR_ID_MAX = 0xFFFFFF
_DEVICE_ID_MAX = 0xFFFF
_NAME_FORBIDDEN = frozenset('"#@\n\r')

IntArray = npt.NDArray[np.int32]
GuidArray = npt.NDArray[np.uint64]


class NodeType(IntEnum):
    """NodeInfo NodeType (IBA Vol 1, 14.2.5.3, Table 146)."""

    CA = 0x01
    SWITCH = 0x02
    ROUTER = 0x03


class LinkWidth(IntEnum):
    """PortInfo LinkWidthActive (IBA Vol 1, 14.2.5.6, Table 148; 2x is the
    later 0x10 encoding)."""

    X1 = 0x01
    X4 = 0x02
    X8 = 0x04
    X12 = 0x08
    X2 = 0x10

    @property
    def lanes(self) -> int:
        return _WIDTH_LANES[self]

    @property
    def label(self) -> str:
        """As ibnetdiscover prints it: "4x"."""
        return f"{self.lanes}x"

    @classmethod
    def from_lanes(cls, lanes: int) -> LinkWidth:
        for width, count in _WIDTH_LANES.items():
            if count == lanes:
                return width
        raise ValueError(f"no {lanes}x link width")


_WIDTH_LANES = {
    LinkWidth.X1: 1,
    LinkWidth.X4: 4,
    LinkWidth.X8: 8,
    LinkWidth.X12: 12,
    LinkWidth.X2: 2,
}


class LinkSpeed(IntEnum):
    """Active lane speed of a link.

    Bits 0..3 hold a PortInfo LinkSpeedActive value, bits 4..7 a
    LinkSpeedExtActive value (IBA Vol 1, 14.2.5.6; HDR and NDR are the later
    0x4 and 0x8 extended encodings). Exactly one of the two is set.
    """

    SDR = 0x01
    DDR = 0x02
    QDR = 0x04
    FDR = 0x10
    EDR = 0x20
    HDR = 0x40
    NDR = 0x80

    @property
    def link_speed_active(self) -> int:
        """LinkSpeedActive; with an extended speed the field is overridden by
        LinkSpeedExtActive, and we report QDR there, the fastest base speed."""
        return self.value & 0x0F or 0x04

    @property
    def link_speed_ext_active(self) -> int:
        """LinkSpeedExtActive: 0 when the link runs at a base speed."""
        return self.value >> 4

    @property
    def lane_gbps(self) -> float:
        """Signalling rate of one lane in Gb/s."""
        return _LANE_GBPS[self]

    @classmethod
    def from_portinfo(cls, link_speed_active: int, link_speed_ext_active: int = 0) -> LinkSpeed:
        if link_speed_ext_active:
            return cls(link_speed_ext_active << 4)
        return cls(link_speed_active)


_LANE_GBPS = {
    LinkSpeed.SDR: 2.5,
    LinkSpeed.DDR: 5.0,
    LinkSpeed.QDR: 10.0,
    LinkSpeed.FDR: 14.0625,
    LinkSpeed.EDR: 25.78125,
    LinkSpeed.HDR: 53.125,
    LinkSpeed.NDR: 106.25,
}


@dataclass(frozen=True, slots=True)
class Node:
    """A switch, channel adapter or router.

    `name` is the topology file's node id (unique in the fabric);
    `description` is its NodeDescription. `port_base` is the dense index of the
    node's first port (port 0 for a switch, port 1 otherwise).
    """

    index: int
    node_type: NodeType
    name: str
    description: str
    num_ports: int
    node_guid: int
    system_image_guid: int
    port_base: int
    vendor_id: int = 0
    device_id: int = 0
    enhanced_port0: bool = False

    @property
    def is_switch(self) -> bool:
        return self.node_type == NodeType.SWITCH

    @property
    def first_port(self) -> int:
        """0 for a switch (its management port), 1 otherwise."""
        return 0 if self.node_type == NodeType.SWITCH else 1

    @property
    def port_nums(self) -> range:
        """The node's port numbers, port 0 included for a switch."""
        return range(self.first_port, self.num_ports + 1)

    def port_index(self, port_num: int) -> int:
        """Dense index of port `port_num` (no range check)."""
        return self.port_base + port_num - self.first_port


@dataclass(frozen=True, slots=True)
class Port:
    """One port. `lid`/`lmc` are what the topology file states (0: none)."""

    index: int
    node_index: int
    port_num: int
    port_guid: int
    lid: int = 0
    lmc: int = 0


@dataclass(frozen=True, slots=True)
class Link:
    """A cable between (node_a, port_a) and (node_b, port_b) (node indices,
    port numbers). The a end is the lower (node, port) pair."""

    index: int
    node_a: int
    port_a: int
    node_b: int
    port_b: int
    width: LinkWidth = LinkWidth.X4
    speed: LinkSpeed = LinkSpeed.SDR

    def other_end(self, node_index: int, port_num: int) -> tuple[int, int]:
        """The (node, port) at the far end from (node_index, port_num)."""
        if node_index == self.node_a and port_num == self.port_a:
            return self.node_b, self.port_b
        if node_index == self.node_b and port_num == self.port_b:
            return self.node_a, self.port_a
        raise ValueError(f"link {self.index} does not end at node {node_index} port {port_num}")


@dataclass(frozen=True, slots=True, eq=False)
class PortArrays:
    """Per-node and per-port tables as read-only numpy arrays (dense indices).

    node_*: length N; port_*: length P. `port_peer` and `port_link` are -1 on
    unconnected ports (and on switch port 0).
    """

    node_type: npt.NDArray[np.int8]
    node_num_ports: IntArray
    node_port_base: IntArray
    node_guid: GuidArray
    port_node: IntArray
    port_num: IntArray
    port_guid: GuidArray
    port_peer: IntArray
    port_link: IntArray


@dataclass(frozen=True, slots=True, eq=False)
class SwitchGraph:
    """The switch graph with dense switch indices, as read-only numpy arrays.

    Switch s (0..S-1, in node order) is node `switch_node[s]`;
    `node_switch[n]` is the switch index of node n or -1.

    Port tables, shape (S, max_ports + 1), indexed [s, port_num]; -1 where
    there is nothing (port 0, unconnected ports, columns beyond num_ports):
      `port_peer_node`   node index at the far end;
      `port_peer_port`   port number at the far end;
      `port_peer_switch` switch index at the far end, -1 if it is not a switch.

    Switch-to-switch adjacency in CSR form, one entry per link end (parallel
    links repeat the neighbour), sorted by (switch, port): the entries of
    switch s are adj_start[s]:adj_start[s+1]; `adj_switch` is the neighbour
    switch, `adj_port` the local port, `adj_peer_port` the neighbour's port.

    End ports (channel adapter and router ports cabled to a switch), in dense
    port order, length C: `end_port` (dense port index), `end_node`,
    `end_port_num`, `end_port_guid`, `end_switch` (switch index) and
    `end_switch_port` (its port number). Links between two end nodes are not
    in these tables.
    """

    switch_node: IntArray
    node_switch: IntArray
    num_ports: IntArray
    port_peer_node: IntArray
    port_peer_port: IntArray
    port_peer_switch: IntArray
    adj_start: IntArray
    adj_switch: IntArray
    adj_port: IntArray
    adj_peer_port: IntArray
    end_port: IntArray
    end_node: IntArray
    end_port_num: IntArray
    end_port_guid: GuidArray
    end_switch: IntArray
    end_switch_port: IntArray

    @property
    def num_switches(self) -> int:
        return int(self.switch_node.shape[0])

    def neighbours(self, switch: int) -> IntArray:
        """Neighbour switch indices of `switch`, one per link, by local port."""
        return self.adj_switch[self.adj_start[switch] : self.adj_start[switch + 1]]

    def degree(self) -> IntArray:
        """Switch-to-switch links at each switch."""
        return np.diff(self.adj_start).astype(np.int32)


def _frozen(array: npt.NDArray[np.generic]) -> None:
    array.setflags(write=False)


class Fabric:
    """An immutable physical topology. Build one with `FabricBuilder`, a
    reader (`ibmig.fabric.netfile`) or a generator (`ibmig.fabric.generators`).

    Two fabrics are equal when their nodes, ports and links are equal.
    """

    __slots__ = (
        "_by_name",
        "_by_node_guid",
        "_by_port_guid",
        "_cas",
        "_port_arrays",
        "_port_link",
        "_routers",
        "_switch_graph",
        "_switches",
        "links",
        "nodes",
        "ports",
    )

    nodes: tuple[Node, ...]
    ports: tuple[Port, ...]
    links: tuple[Link, ...]

    def __init__(self, nodes: Iterable[Node], ports: Iterable[Port], links: Iterable[Link]) -> None:
        """Check that the tables are consistent (dense indices, contiguous
        ports, links on existing distinct free ports); `ConfigError` if not."""
        self.nodes = tuple(nodes)
        self.ports = tuple(ports)
        self.links = tuple(links)
        self._port_arrays: PortArrays | None = None
        self._switch_graph: SwitchGraph | None = None
        self._check_nodes_and_ports()
        self._port_link = self._check_links()
        self._by_name = {node.name: node.index for node in self.nodes}
        self._by_node_guid = {node.node_guid: node.index for node in self.nodes}
        self._by_port_guid: dict[int, int] = {}
        for node in self.nodes:
            if node.node_type == NodeType.SWITCH:
                self._by_port_guid.setdefault(node.node_guid, node.port_base)
        for port in self.ports:
            self._by_port_guid.setdefault(port.port_guid, port.index)
        if len(self._by_name) != len(self.nodes):
            raise ConfigError("node names are not unique")
        if len(self._by_node_guid) != len(self.nodes):
            raise ConfigError("node GUIDs are not unique")
        self._switches = tuple(n for n in self.nodes if n.node_type == NodeType.SWITCH)
        self._cas = tuple(n for n in self.nodes if n.node_type == NodeType.CA)
        self._routers = tuple(n for n in self.nodes if n.node_type == NodeType.ROUTER)

    def _check_nodes_and_ports(self) -> None:
        expected_base = 0
        for i, node in enumerate(self.nodes):
            if node.index != i:
                raise ConfigError(f"node {node.name!r} has index {node.index}, expected {i}")
            if node.port_base != expected_base:
                raise ConfigError(f"node {node.name!r} has port base {node.port_base}")
            first = node.first_port
            for port_num in range(first, node.num_ports + 1):
                j = expected_base + port_num - first
                if j >= len(self.ports):
                    raise ConfigError(f"node {node.name!r} lacks port {port_num}")
                port = self.ports[j]
                if port.index != j or port.node_index != i or port.port_num != port_num:
                    raise ConfigError(f"port table mismatch at node {node.name!r} port {port_num}")
            expected_base += node.num_ports + 1 - first
        if expected_base != len(self.ports):
            raise ConfigError("port table has ports that belong to no node")

    def _check_links(self) -> list[int]:
        port_link = [-1] * len(self.ports)
        for i, link in enumerate(self.links):
            if link.index != i:
                raise ConfigError(f"link index {link.index}, expected {i}")
            for node_index, port_num in ((link.node_a, link.port_a), (link.node_b, link.port_b)):
                if not 0 <= node_index < len(self.nodes):
                    raise ConfigError(f"link {i} names node index {node_index}")
                node = self.nodes[node_index]
                if not 1 <= port_num <= node.num_ports:
                    raise ConfigError(f"link {i}: {node.name!r} has no port {port_num}")
                j = node.port_index(port_num)
                if port_link[j] != -1:
                    raise ConfigError(f"{node.name!r} port {port_num} has two links")
                port_link[j] = i
        return port_link

    # -- equality and display -------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Fabric):
            return NotImplemented
        return self.nodes == other.nodes and self.ports == other.ports and self.links == other.links

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"Fabric(switches={self.num_switches}, cas={self.num_cas}, "
            f"routers={self.num_routers}, links={len(self.links)})"
        )

    # -- counts -----------------------------------------------------------------

    @property
    def num_switches(self) -> int:
        return len(self._switches)

    @property
    def num_cas(self) -> int:
        return len(self._cas)

    @property
    def num_routers(self) -> int:
        return len(self._routers)

    @property
    def switches(self) -> tuple[Node, ...]:
        """Switch nodes in index order (switch index s is `switches[s]`)."""
        return self._switches

    @property
    def cas(self) -> tuple[Node, ...]:
        return self._cas

    @property
    def routers(self) -> tuple[Node, ...]:
        return self._routers

    # -- lookups ------------------------------------------------------------------

    def node_by_name(self, name: str) -> Node:
        """KeyError if absent."""
        return self.nodes[self._by_name[name]]

    def node_by_guid(self, node_guid: int) -> Node:
        """KeyError if absent."""
        return self.nodes[self._by_node_guid[node_guid]]

    def port_by_guid(self, port_guid: int) -> Port:
        """The port with this GUID; a switch's GUID gives its port 0. KeyError if absent."""
        return self.ports[self._by_port_guid[port_guid]]

    def port(self, node_index: int, port_num: int) -> Port:
        """IndexError if the node has no such port."""
        node = self.nodes[node_index]
        if not node.first_port <= port_num <= node.num_ports:
            raise IndexError(f"{node.name!r} has no port {port_num}")
        return self.ports[node.port_index(port_num)]

    def link_at(self, node_index: int, port_num: int) -> Link | None:
        """The link on that port, or None."""
        j = self._port_link[self.port(node_index, port_num).index]
        return None if j < 0 else self.links[j]

    def peer(self, node_index: int, port_num: int) -> Port | None:
        """The port at the far end of the cable on that port, or None."""
        link = self.link_at(node_index, port_num)
        if link is None:
            return None
        peer_node, peer_port = link.other_end(node_index, port_num)
        return self.ports[self.nodes[peer_node].port_index(peer_port)]

    def node_links(self, node_index: int) -> Iterator[Link]:
        """The links of a node in port order."""
        node = self.nodes[node_index]
        for port_num in range(1, node.num_ports + 1):
            j = self._port_link[node.port_index(port_num)]
            if j >= 0:
                yield self.links[j]

    # -- numpy views ------------------------------------------------------------

    def port_arrays(self) -> PortArrays:
        """Dense per-node and per-port tables (computed once)."""
        if self._port_arrays is None:
            self._port_arrays = self._make_port_arrays()
        return self._port_arrays

    def _make_port_arrays(self) -> PortArrays:
        n_nodes = len(self.nodes)
        n_ports = len(self.ports)
        node_type = np.fromiter((n.node_type for n in self.nodes), np.int8, n_nodes)
        node_num_ports = np.fromiter((n.num_ports for n in self.nodes), np.int32, n_nodes)
        node_port_base = np.fromiter((n.port_base for n in self.nodes), np.int32, n_nodes)
        node_guid = np.fromiter((n.node_guid for n in self.nodes), np.uint64, n_nodes)
        port_node = np.fromiter((p.node_index for p in self.ports), np.int32, n_ports)
        port_num = np.fromiter((p.port_num for p in self.ports), np.int32, n_ports)
        port_guid = np.fromiter((p.port_guid for p in self.ports), np.uint64, n_ports)
        port_link = np.asarray(self._port_link, dtype=np.int32)
        port_peer = np.full(n_ports, -1, dtype=np.int32)
        if self.links:
            a_node, a_port, b_node, b_port = self._link_columns()
            first = (node_type != NodeType.SWITCH).astype(np.int32)
            a_index = node_port_base[a_node] + a_port - first[a_node]
            b_index = node_port_base[b_node] + b_port - first[b_node]
            port_peer[a_index] = b_index
            port_peer[b_index] = a_index
        arrays = PortArrays(
            node_type=node_type,
            node_num_ports=node_num_ports,
            node_port_base=node_port_base,
            node_guid=node_guid,
            port_node=port_node,
            port_num=port_num,
            port_guid=port_guid,
            port_peer=port_peer,
            port_link=port_link,
        )
        for array in (
            node_type,
            node_num_ports,
            node_port_base,
            node_guid,
            port_node,
            port_num,
            port_guid,
            port_peer,
            port_link,
        ):
            _frozen(array)
        return arrays

    def _link_columns(self) -> tuple[IntArray, IntArray, IntArray, IntArray]:
        n = len(self.links)
        flat = np.fromiter(
            (
                v
                for link in self.links
                for v in (link.node_a, link.port_a, link.node_b, link.port_b)
            ),
            np.int32,
            4 * n,
        ).reshape(n, 4)
        return flat[:, 0], flat[:, 1], flat[:, 2], flat[:, 3]

    def switch_graph(self) -> SwitchGraph:
        """Dense switch graph for routing (computed once)."""
        if self._switch_graph is None:
            self._switch_graph = self._make_switch_graph()
        return self._switch_graph

    def _make_switch_graph(self) -> SwitchGraph:
        pa = self.port_arrays()
        is_switch = pa.node_type == NodeType.SWITCH
        switch_node = np.flatnonzero(is_switch).astype(np.int32)
        n_switches = int(switch_node.shape[0])
        node_switch = np.full(len(self.nodes), -1, dtype=np.int32)
        node_switch[switch_node] = np.arange(n_switches, dtype=np.int32)
        num_ports = pa.node_num_ports[switch_node].copy()
        width = int(num_ports.max()) + 1 if n_switches else 1
        peer_node = np.full((n_switches, width), -1, dtype=np.int32)
        peer_port = np.full((n_switches, width), -1, dtype=np.int32)

        if self.links:
            a_node, a_port, b_node, b_port = self._link_columns()
        else:
            a_node = a_port = b_node = b_port = np.zeros(0, dtype=np.int32)
        # Both directions of every link: (src node, src port) -> (dst node, dst port).
        src_node = np.concatenate((a_node, b_node))
        src_port = np.concatenate((a_port, b_port))
        dst_node = np.concatenate((b_node, a_node))
        dst_port = np.concatenate((b_port, a_port))
        from_switch = is_switch[src_node]
        rows = node_switch[src_node[from_switch]]
        cols = src_port[from_switch]
        peer_node[rows, cols] = dst_node[from_switch]
        peer_port[rows, cols] = dst_port[from_switch]
        peer_switch = np.where(peer_node >= 0, node_switch[np.maximum(peer_node, 0)], -1).astype(
            np.int32
        )

        ss = from_switch & is_switch[dst_node]
        s_src = node_switch[src_node[ss]]
        s_port = src_port[ss]
        order = np.lexsort((s_port, s_src))
        adj_src = s_src[order]
        adj_switch = node_switch[dst_node[ss]][order].astype(np.int32)
        adj_port = s_port[order].astype(np.int32)
        adj_peer_port = dst_port[ss][order].astype(np.int32)
        counts = np.bincount(adj_src, minlength=n_switches)
        adj_start = np.zeros(n_switches + 1, dtype=np.int32)
        np.cumsum(counts, out=adj_start[1:])

        # End ports hanging off a switch: the non-switch end of switch-end links.
        se = from_switch & ~is_switch[dst_node]
        e_node = dst_node[se]
        e_port = dst_port[se]
        e_index = pa.node_port_base[e_node] + e_port - 1
        order = np.argsort(e_index, kind="stable")
        end_port = e_index[order].astype(np.int32)
        end_switch = node_switch[src_node[se]][order].astype(np.int32)
        end_switch_port = src_port[se][order].astype(np.int32)

        graph = SwitchGraph(
            switch_node=switch_node,
            node_switch=node_switch,
            num_ports=num_ports,
            port_peer_node=peer_node,
            port_peer_port=peer_port,
            port_peer_switch=peer_switch,
            adj_start=adj_start,
            adj_switch=adj_switch,
            adj_port=adj_port,
            adj_peer_port=adj_peer_port,
            end_port=end_port,
            end_node=e_node[order].astype(np.int32),
            end_port_num=e_port[order].astype(np.int32),
            end_port_guid=pa.port_guid[end_port].copy(),
            end_switch=end_switch,
            end_switch_port=end_switch_port,
        )
        for name in SwitchGraph.__slots__:
            _frozen(getattr(graph, name))
        return graph


class GuidAllocator:
    """ibsim's per-node-type GUID counters (ibsim/sim_net.c `new_node`,
    `parse_guidbase`): see the module docstring."""

    __slots__ = ("_base", "_next")

    def __init__(self) -> None:
        self._base = {
            NodeType.CA: IBSIM_CA_GUID_BASE,
            NodeType.SWITCH: IBSIM_SWITCH_GUID_BASE,
            NodeType.ROUTER: IBSIM_ROUTER_GUID_BASE,
        }
        self._next = dict(self._base)

    def set_base(self, node_type: NodeType, guid: int, *, relative: bool = False) -> None:
        """`switchguid=G` sets the counter to G (and remembers G as the base);
        `switchguid+N` sets it to base + N."""
        if relative:
            self._next[node_type] = (self._base[node_type] + guid) & _GUID_MAX
        else:
            self._base[node_type] = guid
            self._next[node_type] = guid

    def peek(self, node_type: NodeType) -> int:
        """The GUID the next node of that type gets."""
        return self._next[node_type]

    def allocate(self, node_type: NodeType, num_ports: int) -> int:
        guid = self._next[node_type]
        step = 1 if node_type == NodeType.SWITCH else num_ports + 1
        self._next[node_type] = (guid + step) & _GUID_MAX
        return guid


def _check_range(value: int, low: int, high: int, what: str, where: str | None) -> None:
    if not low <= value <= high:
        raise ConfigError(f"{what} {value:#x} out of range {low:#x}..{high:#x}", where)


@dataclass(slots=True)
class _NodeSpec:
    node_type: NodeType
    name: str
    description: str
    num_ports: int
    node_guid: int
    system_image_guid: int
    vendor_id: int
    device_id: int
    enhanced_port0: bool
    port_guids: dict[int, int]
    lids: dict[int, tuple[int, int]]


class FabricBuilder:
    """Collects nodes and links and checks them as they come, then `build()`s
    an immutable `Fabric`. Every check raises `ConfigError` with the `where`
    the caller passes (a "FILE:LINE" or a parameter name).

    Node GUIDs come from a `GuidAllocator` in the order nodes are added, as in
    ibsim; an explicit `node_guid` moves the counter there first (what a
    `switchguid=`/`caguid=` line before the record does).
    """

    __slots__ = ("_by_guid", "_by_name", "_links", "_nodes", "_port_used", "guids")

    def __init__(self, guids: GuidAllocator | None = None) -> None:
        self.guids = guids if guids is not None else GuidAllocator()
        self._nodes: list[_NodeSpec] = []
        self._by_name: dict[str, int] = {}
        self._by_guid: dict[int, int] = {}
        self._links: list[tuple[int, int, int, int, LinkWidth, LinkSpeed]] = []
        self._port_used: set[tuple[int, int]] = set()

    def __len__(self) -> int:
        return len(self._nodes)

    def index_of(self, name: str) -> int | None:
        return self._by_name.get(name)

    def num_ports_of(self, node_index: int) -> int:
        return self._nodes[node_index].num_ports

    def add_node(
        self,
        node_type: NodeType,
        name: str,
        num_ports: int,
        *,
        description: str | None = None,
        node_guid: int | None = None,
        system_image_guid: int | None = None,
        port_guids: Mapping[int, int] | None = None,
        lids: Mapping[int, tuple[int, int]] | None = None,
        vendor_id: int = 0,
        device_id: int = 0,
        enhanced_port0: bool = False,
        where: str | None = None,
    ) -> int:
        """Add a node and return its index.

        `description` defaults to `name` (as in ibsim); `system_image_guid`
        to the node GUID; `port_guids` maps port numbers of a channel adapter
        or router to GUIDs other than node GUID + port; `lids` maps port
        numbers (0 for a switch) to (lid, lmc).
        """
        node_type = NodeType(node_type)
        if not name or len(name) > MAX_NAME_LENGTH or _NAME_FORBIDDEN.intersection(name):
            raise ConfigError(
                f"bad node name {shown(name)}: 1..{MAX_NAME_LENGTH} characters, "
                "none of '\"', '#', '@' or a line break",
                where,
            )
        if name in self._by_name:
            raise ConfigError(f"duplicate node {name!r}", where)
        if not 1 <= num_ports <= MAX_PORTS:
            raise ConfigError(f"node {name!r}: {num_ports} ports, expected 1..{MAX_PORTS}", where)
        desc = description if description else name
        if '"' in desc or "\n" in desc or "\r" in desc:
            raise ConfigError(f"node {name!r}: description contains '\"' or a line break", where)
        if len(desc.encode()) > MAX_NODE_DESCRIPTION_BYTES:
            raise ConfigError(
                f"node {name!r}: description longer than {MAX_NODE_DESCRIPTION_BYTES} bytes",
                where,
            )
        if node_guid is not None:
            _check_range(node_guid, 0, _GUID_MAX, "node GUID", where)
            self.guids.set_base(node_type, node_guid)
        guid = self.guids.allocate(node_type, num_ports)
        if guid in self._by_guid:
            other = self._nodes[self._by_guid[guid]].name
            raise ConfigError(f"node {name!r}: GUID {guid:#x} already belongs to {other!r}", where)
        sys_guid = guid if system_image_guid is None else system_image_guid
        _check_range(sys_guid, 0, _GUID_MAX, "system image GUID", where)
        _check_range(vendor_id, 0, _VENDOR_ID_MAX, "vendor id", where)
        _check_range(device_id, 0, _DEVICE_ID_MAX, "device id", where)
        if enhanced_port0 and node_type != NodeType.SWITCH:
            raise ConfigError(f"node {name!r}: only a switch has an enhanced port 0", where)
        index = len(self._nodes)
        spec = _NodeSpec(
            node_type=node_type,
            name=name,
            description=desc,
            num_ports=num_ports,
            node_guid=guid,
            system_image_guid=sys_guid,
            vendor_id=vendor_id,
            device_id=device_id,
            enhanced_port0=enhanced_port0,
            port_guids={},
            lids={},
        )
        self._nodes.append(spec)
        try:
            self.set_port_details(index, lids=lids, port_guids=port_guids, where=where)
        except ConfigError:
            self._nodes.pop()
            raise
        self._by_name[name] = index
        self._by_guid[guid] = index
        return index

    def set_port_details(
        self,
        node_index: int,
        *,
        lids: Mapping[int, tuple[int, int]] | None = None,
        port_guids: Mapping[int, int] | None = None,
        where: str | None = None,
    ) -> None:
        """Set (lid, lmc) of ports (port 0 of a switch, ports 1.. otherwise) and
        GUIDs of channel adapter or router ports, for a node already added."""
        spec = self._nodes[node_index]
        name = spec.name
        is_switch = spec.node_type == NodeType.SWITCH
        for port_num, port_guid in (port_guids or {}).items():
            if is_switch:
                raise ConfigError(f"switch {name!r}: switch ports share the node GUID", where)
            if not 1 <= port_num <= spec.num_ports:
                raise ConfigError(f"node {name!r}: no port {port_num}", where)
            _check_range(port_guid, 0, _GUID_MAX, "port GUID", where)
            spec.port_guids[port_num] = port_guid
        for port_num, (lid, lmc) in (lids or {}).items():
            if is_switch and port_num != 0:
                raise ConfigError(f"switch {name!r}: its LID belongs on port 0", where)
            if not is_switch and not 1 <= port_num <= spec.num_ports:
                raise ConfigError(f"node {name!r}: no port {port_num}", where)
            _check_range(lid, 0, _LID_MAX, "LID", where)
            _check_range(lmc, 0, _LMC_MAX, "LMC", where)
            if lid or lmc:
                spec.lids[port_num] = (lid, lmc)
            else:
                spec.lids.pop(port_num, None)

    def connect(
        self,
        node_a: int,
        port_a: int,
        node_b: int,
        port_b: int,
        *,
        width: LinkWidth = LinkWidth.X4,
        speed: LinkSpeed = LinkSpeed.SDR,
        where: str | None = None,
    ) -> None:
        """Cable (node_a, port_a) to (node_b, port_b)."""
        for node_index, port_num in ((node_a, port_a), (node_b, port_b)):
            if not 0 <= node_index < len(self._nodes):
                raise ConfigError(f"no node with index {node_index}", where)
            spec = self._nodes[node_index]
            if not 1 <= port_num <= spec.num_ports:
                raise ConfigError(
                    f"node {spec.name!r}: port {port_num} out of range 1..{spec.num_ports}", where
                )
            if (node_index, port_num) in self._port_used:
                raise ConfigError(f"node {spec.name!r}: port {port_num} is already cabled", where)
        if (node_a, port_a) == (node_b, port_b):
            raise ConfigError(
                f"node {self._nodes[node_a].name!r}: port {port_a} cabled to itself", where
            )
        self._port_used.add((node_a, port_a))
        self._port_used.add((node_b, port_b))
        if (node_b, port_b) < (node_a, port_a):
            node_a, port_a, node_b, port_b = node_b, port_b, node_a, port_a
        self._links.append((node_a, port_a, node_b, port_b, LinkWidth(width), LinkSpeed(speed)))

    def build(self) -> Fabric:
        """The fabric; links are ordered by their a end (lower (node, port))."""
        nodes: list[Node] = []
        ports: list[Port] = []
        owner: dict[int, str] = {}
        for index, spec in enumerate(self._nodes):
            base = len(ports)
            nodes.append(
                Node(
                    index=index,
                    node_type=spec.node_type,
                    name=spec.name,
                    description=spec.description,
                    num_ports=spec.num_ports,
                    node_guid=spec.node_guid,
                    system_image_guid=spec.system_image_guid,
                    port_base=base,
                    vendor_id=spec.vendor_id,
                    device_id=spec.device_id,
                    enhanced_port0=spec.enhanced_port0,
                )
            )
            is_switch = spec.node_type == NodeType.SWITCH
            first = 0 if is_switch else 1
            for port_num in range(first, spec.num_ports + 1):
                if is_switch:
                    port_guid = spec.node_guid
                else:
                    port_guid = spec.port_guids.get(
                        port_num, (spec.node_guid + port_num) & _GUID_MAX
                    )
                holder = owner.setdefault(port_guid, spec.name)
                if holder != spec.name:
                    raise ConfigError(
                        f"node {spec.name!r} port {port_num}: port GUID {port_guid:#x} "
                        f"already belongs to {holder!r}"
                    )
                lid, lmc = spec.lids.get(port_num, (0, 0))
                ports.append(Port(len(ports), index, port_num, port_guid, lid, lmc))
        self._links.sort()  # (node_a, port_a) is unique, so enums are never compared
        links = [Link(i, *t) for i, t in enumerate(self._links)]
        return Fabric(nodes, ports, links)

"""Multicast routing: a spanning tree per MLID and the switches' MulticastForwardingTables
(IBA Vol 1, 14.2.5.11; OpenSM osm_mcast_mgr.c).

The SA tells the SM which physical end ports have a member in the groups of an MLID
(`SubnetManager.set_multicast_members`). An MLID with fewer than two member ports
gets no MFT entry at all (OpenSM: "nothing to do"). For the others the SM picks a
root switch as OpenSM's mcast_mgr_find_optimal_switch does (the fewest hops to the
farthest member switch, one more when that switch's members are CAs; ties: the
first switch in OpenSM's GUID map order), grows a breadth-first tree from it over
the switch links (ports in ascending order, so the tree is the same every time) and
keeps the branches that lead to members. OpenSM instead divides the members among
the root's ports by its unicast hop counts and recurses (mcast_mgr_subdivide): the
trees can differ, both are loop free and reach every member. A switch on the tree
forwards the MLID to its tree links (up and down) and to the member ports cabled to
it; port 0 when the switch itself is a member. A tree has no loops, so a packet
reaches every member once.

MFT blocks (32 MLIDs x 16 ports) are written with SubnSet(MulticastForwardingTable),
modifier position << 28 | block, to switches whose SwitchInfo shows a
MulticastFDBCap, for positions 0 .. (ports + 1) / 16 rounded up, less one (OpenSM's
max_position). Only blocks that differ from what the switch was last sent are
written (a switch starts with an empty MFT); OpenSM rewrites every block in use on
every pass. With no member anywhere nothing is written, as in OpenSM (its
max_block_in_use stays -1): the IPoIB broadcast group alone costs no SMP at
bring-up. A Set the switch refuses or never answers makes the block stale, so it is
written again on the next pass. MulticastFDBTop is not programmed (OpenSM sets it
only for switches advertising IsMulticastFDBTopSupported).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Final

from ibmig.core.sm.db import NodeRecordData, SubnetDb
from ibmig.wire.smp_attrs import (
    MFT_BLOCK_SIZE,
    MFT_PORTS_PER_POSITION,
    MULTICAST_LID_BASE,
    MulticastForwardingTable,
    mft_modifier,
)

_EMPTY: Final = (0,) * MFT_BLOCK_SIZE

BlockKey = tuple[int, int, int]  # (switch node GUID, block, position)
IssueBlock = Callable[[NodeRecordData, int, MulticastForwardingTable, BlockKey], None]


def osm_map_order(guid: int) -> int:
    """OpenSM's switch table order: its qmap key is the GUID in network byte order,
    compared as a host (little-endian) integer."""
    return int.from_bytes(guid.to_bytes(8, "big"), "little")


def _switch_graph(db: SubnetDb) -> dict[int, list[tuple[int, int]]]:
    """Switch GUID -> [(port, neighbour switch GUID)] in port order."""
    graph: dict[int, list[tuple[int, int]]] = {}
    for guid, node in db.nodes.items():
        if node.is_switch:
            graph[guid] = []
    for (a, pa), (b, _pb) in sorted(db.links.items()):
        if a in graph and b in graph and a != b:
            graph[a].append((pa, b))
    return graph


def _bfs(graph: dict[int, list[tuple[int, int]]], root: int) -> dict[int, tuple[int, int, int]]:
    """Switch -> (hops, parent switch, port on the parent toward it) from `root`."""
    tree = {root: (0, 0, 0)}
    queue = deque([root])
    while queue:
        here = queue.popleft()
        hops = tree[here][0]
        for port, there in graph[here]:
            if there not in tree:
                tree[there] = (hops + 1, here, port)
                queue.append(there)
    return tree


def mlid_masks(db: SubnetDb, member_ports: frozenset[int]) -> dict[int, int]:
    """Switch GUID -> port mask (bit p = port p) of one MLID's spanning tree."""
    graph = _switch_graph(db)
    attach: dict[int, set[int]] = {}  # switch -> its ports that lead to members
    for port_guid in member_ports:
        found = db.node_of_port(port_guid)
        if found is None:
            continue
        node, port = found
        if node.is_switch:
            attach.setdefault(node.node_guid, set()).add(0)
            continue
        peer = db.links.get((node.node_guid, port))
        if peer is None or peer[0] not in graph:
            continue
        attach.setdefault(peer[0], set()).add(peer[1])
    if sum(len(ports) for ports in attach.values()) < 2:
        return {}  # OpenSM: "MLID has 1 members - nothing to do"
    best: tuple[int, int] | None = None
    trees: dict[int, dict[int, tuple[int, int, int]]] = {}
    for guid in sorted(graph, key=osm_map_order):
        tree = _bfs(graph, guid)
        if any(s not in tree for s in attach):
            continue
        # OpenSM mcast_mgr_compute_max_hops: hops to each member switch, one more
        # when the members there are CAs (the switch itself not a member)
        hops = max(tree[s][0] + (0 if 0 in attach[s] else 1) for s in attach)
        trees[guid] = tree
        if best is None or hops < best[0]:
            best = (hops, guid)
    if best is None:
        return {}
    tree = trees[best[1]]
    masks: dict[int, int] = {}
    for switch, ports in attach.items():
        for port in ports:
            masks[switch] = masks.get(switch, 0) | (1 << port)
        here = switch
        while tree[here][0]:
            _hops, parent, parent_port = tree[here]
            # the link between parent and here, seen from here
            back = db.links[(parent, parent_port)][1]
            masks[here] = masks.get(here, 0) | (1 << back)
            masks[parent] = masks.get(parent, 0) | (1 << parent_port)
            here = parent
    return masks


class MulticastRoutes:
    """The SM's multicast state: members per MLID, the MFT blocks as written."""

    def __init__(self) -> None:
        self.members: dict[int, frozenset[int]] = {}
        self.tables: dict[int, dict[int, int]] = {}
        """Switch GUID -> {MLID: port mask} as last computed."""
        self.written: dict[BlockKey, tuple[int, ...]] = {}
        self.stale: set[BlockKey] = set()

    def set_members(self, mlid: int, ports: frozenset[int]) -> None:
        if ports:
            self.members[mlid] = ports
        else:
            self.members.pop(mlid, None)

    def compute(self, db: SubnetDb) -> None:
        tables: dict[int, dict[int, int]] = {}
        for mlid in sorted(self.members):
            for switch, mask in mlid_masks(db, self.members[mlid]).items():
                tables.setdefault(switch, {})[mlid] = mask
        self.tables = tables

    def block(self, switch: int, block: int, position: int) -> tuple[int, ...]:
        """The 32 PortMasks of one block and position, as computed."""
        table = self.tables.get(switch, {})
        base = MULTICAST_LID_BASE + block * MFT_BLOCK_SIZE
        shift = position * MFT_PORTS_PER_POSITION
        return tuple((table.get(base + i, 0) >> shift) & 0xFFFF for i in range(MFT_BLOCK_SIZE))

    def program(self, db: SubnetDb, issue: IssueBlock) -> int:
        """Compute the tables and issue every block that differs from what the switch
        holds; returns how many blocks were issued."""
        self.compute(db)
        blocks_in_use = {
            (mlid - MULTICAST_LID_BASE) // MFT_BLOCK_SIZE
            for table in self.tables.values()
            for mlid in table
        } | {key[1] for key, masks in self.written.items() if masks != _EMPTY}
        issued = 0
        for switch in sorted(db.nodes):
            node = db.nodes[switch]
            info = node.switch_info
            if not node.is_switch or info is None or not info.multicast_fdb_cap:
                continue
            positions = -(-(node.info.num_ports + 1) // MFT_PORTS_PER_POSITION)
            for block in sorted(blocks_in_use):
                if block * MFT_BLOCK_SIZE >= info.multicast_fdb_cap:
                    continue
                for position in range(positions):
                    key = (switch, block, position)
                    masks = self.block(switch, block, position)
                    if self.written.get(key, _EMPTY) == masks and key not in self.stale:
                        continue
                    self.stale.discard(key)
                    self.written[key] = masks
                    issue(node, mft_modifier(block, position), MulticastForwardingTable(masks), key)
                    issued += 1
        for key in [k for k in self.written if k[0] not in db.nodes]:
            del self.written[key]
        return issued

    def mark_stale(self, key: BlockKey) -> None:
        self.stale.add(key)


__all__ = ["MulticastRoutes", "mlid_masks"]

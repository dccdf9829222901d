"""The fabric model: builder checks, lookups, numpy views."""

from __future__ import annotations

import numpy as np
import pytest

from ibmig.errors import ConfigError
from ibmig.fabric import (
    Fabric,
    FabricBuilder,
    GuidAllocator,
    LinkSpeed,
    LinkWidth,
    NodeType,
    Port,
    parse_net,
)
from ibmig.fabric.generators import fat_tree_3level, random_topology


def small() -> Fabric:
    """Two switches with two parallel cables, a 2-port CA on both, a router,
    an unconnected CA and a CA-to-CA cable."""
    b = FabricBuilder()
    s0 = b.add_node(NodeType.SWITCH, "s0", 8)
    s1 = b.add_node(NodeType.SWITCH, "s1", 4)
    ca = b.add_node(NodeType.CA, "ca", 2)
    rt = b.add_node(NodeType.ROUTER, "rt", 1)
    lone = b.add_node(NodeType.CA, "lone", 1)
    x = b.add_node(NodeType.CA, "x", 1)
    y = b.add_node(NodeType.CA, "y", 1)
    b.connect(s1, 3, s0, 5)
    b.connect(s0, 6, s1, 4, width=LinkWidth.X1, speed=LinkSpeed.QDR)
    b.connect(ca, 1, s0, 1)
    b.connect(s1, 1, ca, 2)
    b.connect(rt, 1, s0, 8)
    b.connect(x, 1, y, 1)
    del lone
    return b.build()


def test_dense_indices_and_port_layout() -> None:
    f = small()
    assert [n.index for n in f.nodes] == list(range(7))
    assert [p.index for p in f.ports] == list(range(len(f.ports)))
    # switch: ports 0..N; others 1..N
    assert len(f.ports) == 9 + 5 + 2 + 1 + 1 + 1 + 1
    s1 = f.node_by_name("s1")
    assert s1.port_base == 9
    assert f.ports[s1.port_index(0)] == Port(9, 1, 0, 0x200001)
    ca = f.node_by_name("ca")
    assert ca.first_port == 1
    assert f.ports[ca.port_index(1)].port_num == 1
    assert list(ca.port_nums) == [1, 2]
    assert list(s1.port_nums) == [0, 1, 2, 3, 4]


def test_links_are_canonical() -> None:
    f = small()
    ends = [(ln.node_a, ln.port_a, ln.node_b, ln.port_b) for ln in f.links]
    assert ends == sorted(ends)
    assert all((a, pa) < (b, pb) for a, pa, b, pb in ends)
    assert ends[0] == (0, 1, 2, 1)
    link = f.link_at(0, 6)
    assert link is not None
    assert (link.width, link.speed) == (LinkWidth.X1, LinkSpeed.QDR)
    assert link.other_end(1, 4) == (0, 6)
    with pytest.raises(ValueError, match="does not end"):
        link.other_end(0, 1)


def test_lookups() -> None:
    f = small()
    assert f.node_by_guid(0x100000).name == "ca"
    assert f.port_by_guid(0x100002).port_num == 2
    assert f.port_by_guid(0x200000).port_num == 0  # a switch GUID gives port 0
    assert f.port_by_guid(0x1).node_index == f.node_by_name("rt").index  # router GUID 0
    with pytest.raises(KeyError):
        f.node_by_name("absent")
    with pytest.raises(IndexError):
        f.port(0, 9)
    with pytest.raises(IndexError):
        f.port(2, 0)
    peer = f.peer(1, 1)
    assert peer is not None
    assert (peer.node_index, peer.port_num) == (2, 2)
    assert f.peer(f.node_by_name("lone").index, 1) is None
    assert f.peer(0, 0) is None
    assert [ln.index for ln in f.node_links(0)] == [0, 1, 2, 3]
    assert (f.num_switches, f.num_cas, f.num_routers) == (2, 4, 1)
    assert repr(f) == "Fabric(switches=2, cas=4, routers=1, links=6)"


def test_port_arrays() -> None:
    f = small()
    pa = f.port_arrays()
    assert pa.port_peer.shape == (len(f.ports),)
    connected = pa.port_peer >= 0
    assert np.array_equal(pa.port_peer[pa.port_peer[connected]], np.flatnonzero(connected))
    for port in f.ports:
        peer = f.peer(port.node_index, port.port_num) if port.port_num else None
        assert pa.port_peer[port.index] == (-1 if peer is None else peer.index)
        assert pa.port_node[port.index] == port.node_index
        assert pa.port_num[port.index] == port.port_num
        assert pa.port_guid[port.index] == port.port_guid
    assert list(pa.node_type) == [2, 2, 1, 3, 1, 1, 1]
    assert not pa.port_peer.flags.writeable
    assert f.port_arrays() is pa


def naive_switch_graph(
    f: Fabric,
) -> tuple[list[list[tuple[int, int, int]]], list[tuple[int, int, int, int, int]]]:
    switches = [n.index for n in f.switches]
    sidx = {n: i for i, n in enumerate(switches)}
    adj: list[list[tuple[int, int, int]]] = []
    for n in switches:
        row = []
        for p in range(1, f.nodes[n].num_ports + 1):
            peer = f.peer(n, p)
            if peer is not None and peer.node_index in sidx:
                row.append((sidx[peer.node_index], p, peer.port_num))
        adj.append(row)
    ends = []
    for port in f.ports:
        node = f.nodes[port.node_index]
        if node.is_switch:
            continue
        peer = f.peer(node.index, port.port_num)
        if peer is not None and peer.node_index in sidx:
            ends.append(
                (port.index, node.index, port.port_num, sidx[peer.node_index], peer.port_num)
            )
    return adj, ends


@pytest.mark.parametrize(
    "fabric",
    [
        small(),
        random_topology(12, 30, seed=3, max_degree=4),
        fat_tree_3level(
            pods=2, leaves_per_pod=3, hosts_per_leaf=2, mids_per_pod=2, cores_per_group=2, links=2
        ),
        FabricBuilder().build(),
    ],
)
def test_switch_graph_matches_naive(fabric: Fabric) -> None:
    g = fabric.switch_graph()
    adj, ends = naive_switch_graph(fabric)
    assert g.num_switches == len(adj)
    for s, row in enumerate(adj):
        lo, hi = g.adj_start[s], g.adj_start[s + 1]
        got = list(
            zip(
                g.adj_switch[lo:hi].tolist(),
                g.adj_port[lo:hi].tolist(),
                g.adj_peer_port[lo:hi].tolist(),
                strict=True,
            )
        )
        assert got == row
        assert g.neighbours(s).tolist() == [t[0] for t in row]
        node = fabric.nodes[int(g.switch_node[s])]
        assert g.node_switch[node.index] == s
        assert g.num_ports[s] == node.num_ports
        for p in range(g.port_peer_node.shape[1]):
            peer = fabric.peer(node.index, p) if 1 <= p <= node.num_ports else None
            if peer is None:
                assert (g.port_peer_node[s, p], g.port_peer_port[s, p]) == (-1, -1)
                assert g.port_peer_switch[s, p] == -1
            else:
                assert (g.port_peer_node[s, p], g.port_peer_port[s, p]) == (
                    peer.node_index,
                    peer.port_num,
                )
                assert g.port_peer_switch[s, p] == g.node_switch[peer.node_index]
    got_ends = list(
        zip(
            g.end_port.tolist(),
            g.end_node.tolist(),
            g.end_port_num.tolist(),
            g.end_switch.tolist(),
            g.end_switch_port.tolist(),
            strict=True,
        )
    )
    assert got_ends == ends
    assert g.end_port_guid.tolist() == [fabric.ports[e[0]].port_guid for e in ends]
    assert g.degree().tolist() == [len(row) for row in adj]
    assert g.adj_switch.dtype == np.int32
    assert not g.adj_switch.flags.writeable


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (lambda b: b.add_node(NodeType.SWITCH, "s0", 2), "duplicate node 's0'"),
        (lambda b: b.add_node(NodeType.SWITCH, "x", 0), "0 ports"),
        (lambda b: b.add_node(NodeType.SWITCH, "x" * 65, 2), "bad node name"),
        (lambda b: b.add_node(NodeType.CA, "x", 1, description='a"b'), "description"),
        (lambda b: b.add_node(NodeType.CA, "x", 1, description="d" * 65), "longer than 64"),
        (lambda b: b.add_node(NodeType.CA, "x", 1, node_guid=0x200000), "already belongs"),
        (lambda b: b.add_node(NodeType.CA, "x", 1, node_guid=1 << 64), "node GUID"),
        (lambda b: b.add_node(NodeType.CA, "x", 1, device_id=0x10000), "device id"),
        (lambda b: b.add_node(NodeType.CA, "x", 1, vendor_id=1 << 24), "vendor id"),
        (lambda b: b.add_node(NodeType.CA, "x", 1, enhanced_port0=True), "enhanced port 0"),
        (lambda b: b.add_node(NodeType.CA, "x", 1, lids={0: (1, 0)}), "no port 0"),
        (lambda b: b.add_node(NodeType.CA, "x", 1, lids={1: (1, 8)}), "LMC"),
        (lambda b: b.add_node(NodeType.SWITCH, "x", 1, lids={1: (1, 0)}), "port 0"),
        (lambda b: b.add_node(NodeType.SWITCH, "x", 1, port_guids={1: 5}), "share the node GUID"),
        (lambda b: b.connect(0, 1, 0, 1), "cabled to itself"),
        (lambda b: b.connect(0, 3, 0, 1), "port 3 out of range 1..2"),
        (lambda b: b.connect(0, 0, 0, 1), "port 0 out of range"),
        (lambda b: b.connect(0, 1, 5, 1), "no node with index 5"),
        (lambda b: (b.connect(0, 1, 0, 2), b.connect(0, 2, 0, 1)), "already cabled"),
    ],
)
def test_builder_checks(action: object, message: str) -> None:
    b = FabricBuilder()
    b.add_node(NodeType.SWITCH, "s0", 2)
    with pytest.raises(ConfigError, match=message):
        action(b)  # type: ignore[operator]


def test_duplicate_port_guid_is_refused() -> None:
    b = FabricBuilder()
    b.add_node(NodeType.CA, "a", 1)
    b.add_node(NodeType.CA, "b", 1, port_guids={1: 0x100001})
    with pytest.raises(ConfigError, match="port GUID 0x100001 already belongs to 'a'"):
        b.build()


def test_failed_add_leaves_no_trace() -> None:
    b = FabricBuilder()
    with pytest.raises(ConfigError):
        b.add_node(NodeType.CA, "a", 1, lids={2: (1, 0)})
    b.add_node(NodeType.CA, "a", 1)
    assert len(b) == 1


def test_fabric_constructor_checks_tables() -> None:
    f = small()
    with pytest.raises(ConfigError, match="two links"):
        Fabric(f.nodes, f.ports, (*f.links, f.links[0].__class__(6, 0, 1, 2, 1)))
    with pytest.raises(ConfigError, match="index"):
        Fabric(f.nodes[1:], f.ports, ())
    assert Fabric(f.nodes, f.ports, f.links) == f
    assert f != parse_net('Switch 2 "a"\n')
    assert f.__eq__(1) is NotImplemented


def test_guid_allocator() -> None:
    g = GuidAllocator()
    assert g.allocate(NodeType.CA, 2) == 0x100000
    assert g.peek(NodeType.CA) == 0x100003
    assert g.allocate(NodeType.SWITCH, 36) == 0x200000
    assert g.allocate(NodeType.SWITCH, 36) == 0x200001
    assert g.allocate(NodeType.ROUTER, 1) == 0
    assert g.peek(NodeType.ROUTER) == 2
    g.set_base(NodeType.SWITCH, 0x5000)
    g.allocate(NodeType.SWITCH, 8)
    g.set_base(NodeType.SWITCH, 0x10, relative=True)
    assert g.peek(NodeType.SWITCH) == 0x5010


def test_link_enums() -> None:
    assert [w.lanes for w in LinkWidth] == [1, 4, 8, 12, 2]
    assert LinkWidth.X12.label == "12x"
    assert LinkWidth.from_lanes(8) is LinkWidth.X8
    with pytest.raises(ValueError, match="3x"):
        LinkWidth.from_lanes(3)
    assert (LinkSpeed.QDR.link_speed_active, LinkSpeed.QDR.link_speed_ext_active) == (4, 0)
    assert (LinkSpeed.EDR.link_speed_active, LinkSpeed.EDR.link_speed_ext_active) == (4, 2)
    for speed in LinkSpeed:
        assert (
            LinkSpeed.from_portinfo(speed.link_speed_active, speed.link_speed_ext_active) is speed
        )
    assert LinkSpeed.EDR.lane_gbps == 25.78125

"""The same file names the same fabric here and in ibsim.

Each test loads a net file into a real ibsim, asks it with `ibnetdiscover`
(through the umad2sim shim), reads that output with `parse_net(as_ibsim=False)`
and compares it with what `read_net` makes of the file: node types, GUIDs,
system image GUIDs, device ids, descriptions, port counts, port GUIDs, LIDs,
enhanced port 0, every cable and its negotiated width and speed. ibnetdiscover
names nodes "S-<guid>"/"H-<guid>" and lists connected ports only, so the
comparison is keyed by GUID, and LIDs and port GUIDs are compared on cabled
ports.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ibmig.fabric import (
    Fabric,
    FabricBuilder,
    LinkSpeed,
    LinkWidth,
    NodeType,
    format_net,
    parse_net,
    read_net,
    write_net,
)
from ibmig.fabric.generators import fat_tree_3level, kary_ntree, random_topology
from tests.shared_files import TOPOLOGIES

pytestmark = pytest.mark.interop

SHARED = TOPOLOGIES

Key = tuple[object, ...]


def canonical(f: Fabric) -> tuple[list[Key], list[Key], list[Key]]:
    nodes = sorted(
        (
            n.node_guid,
            int(n.node_type),
            n.description,
            n.num_ports,
            n.system_image_guid,
            n.vendor_id,
            n.device_id,
            n.enhanced_port0,
            f.ports[n.port_base].lid if n.is_switch else 0,
            f.ports[n.port_base].lmc if n.is_switch else 0,
        )
        for n in f.nodes
    )
    ports = sorted(
        (f.nodes[p.node_index].node_guid, p.port_num, p.port_guid, p.lid, p.lmc)
        for p in f.ports
        if p.port_num and f.peer(p.node_index, p.port_num) is not None
    )
    links = sorted(
        (
            *sorted(
                [
                    (f.nodes[ln.node_a].node_guid, ln.port_a),
                    (f.nodes[ln.node_b].node_guid, ln.port_b),
                ]
            ),
            int(ln.width),
            int(ln.speed),
        )
        for ln in f.links
    )
    return nodes, ports, links  # type: ignore[return-value]


def check(ibsim_run: Callable[[Path], str], path: Path) -> Fabric:
    ours = read_net(path)
    discovered = parse_net(ibsim_run(path), source="ibnetdiscover", as_ibsim=False)
    assert canonical(discovered) == canonical(ours)
    return ours


@pytest.mark.parametrize("name", ["ft3-32.net", "ft2-36.net", "ibsim-example.net.2sw2path4hca"])
def test_shared_files(ibsim_run: Callable[[Path], str], name: str) -> None:
    path = SHARED / name
    if not path.is_file():
        pytest.fail(f"{path} is not available (tests/data/topologies is part of the repository)")
    check(ibsim_run, path)


def rich_fabric() -> Fabric:
    """Everything ibsim can represent: explicit GUIDs, routers, 2- and 3-port
    CAs, device ids, LIDs, enhanced port 0, negotiated widths and speeds,
    parallel cables, unconnected ports, descriptions."""
    b = FabricBuilder()
    s0 = b.add_node(
        NodeType.SWITCH,
        "core",
        12,
        description="core switch; rack 4",
        enhanced_port0=True,
        lids={0: (1, 0)},
    )
    s1 = b.add_node(NodeType.SWITCH, "edge", 8, node_guid=0x2C90000ABC00, device_id=0xC738)
    s2 = b.add_node(NodeType.SWITCH, "edge2", 8, lids={0: (0x30, 2)})
    ca = b.add_node(NodeType.CA, "hostA", 2, description="hostA mlx5_0", device_id=0x1017)
    cb = b.add_node(NodeType.CA, "hostB", 3, node_guid=0xF452140300AB1230)
    rt = b.add_node(NodeType.ROUTER, "router", 2)
    cc = b.add_node(NodeType.CA, "hostC", 1)
    b.connect(s0, 1, s1, 1, width=LinkWidth.X12, speed=LinkSpeed.QDR)
    b.connect(s0, 2, s1, 2, width=LinkWidth.X1, speed=LinkSpeed.DDR)
    b.connect(s0, 3, s2, 5)
    b.connect(s1, 4, ca, 1, width=LinkWidth.X8, speed=LinkSpeed.SDR)
    b.connect(s2, 1, ca, 2)
    b.connect(s2, 2, cb, 3, speed=LinkSpeed.QDR)
    b.connect(s0, 12, rt, 2)
    b.connect(s1, 8, cc, 1)
    b.set_port_details(ca, lids={1: (5, 0), 2: (6, 1)})
    b.set_port_details(cb, lids={3: (0x1234, 0)})
    return b.build()


@pytest.mark.parametrize("style", ["ibsim", "ibnetdiscover"])
def test_written_files_load_in_ibsim(
    ibsim_run: Callable[[Path], str], tmp_path: Path, style: str
) -> None:
    fabric = rich_fabric()
    path = tmp_path / f"rich-{style}.net"
    write_net(fabric, path, style=style)  # type: ignore[arg-type]
    assert check(ibsim_run, path) == fabric


def test_generated_topologies_load_in_ibsim(
    ibsim_run: Callable[[Path], str], tmp_path: Path
) -> None:
    for i, fabric in enumerate(
        [
            random_topology(20, 40, seed=7, max_degree=4),
            kary_ntree(3, 3),
            fat_tree_3level(
                pods=3,
                leaves_per_pod=2,
                hosts_per_leaf=2,
                mids_per_pod=2,
                cores_per_group=2,
                links=2,
                leaf_mid_links=2,
            ),
        ]
    ):
        path = tmp_path / f"gen{i}.net"
        path.write_text(format_net(fabric))
        assert check(ibsim_run, path) == fabric

"""Generators: they rebuild the shared files, give the expected shapes and are
deterministic."""

from __future__ import annotations

from collections import Counter, deque

import numpy as np
import pytest

from ibmig.errors import ConfigError
from ibmig.fabric import Fabric, NodeType, format_net, parse_net, read_net
from ibmig.fabric.generators import (
    PRESETS,
    fat_tree_2level,
    fat_tree_3level,
    kary_ntree,
    preset,
    random_topology,
)
from tests.shared_files import TOPOLOGIES

SHARED = TOPOLOGIES


@pytest.mark.parametrize("name", ["ft2-36", "ft2-324", "ft2-648", "ft3-32", "ft3-1296", "ft3-3240"])
def test_presets_rebuild_shared_files(name: str) -> None:
    path = SHARED / f"{name}.net"
    if not path.is_file():
        pytest.fail(f"{path} is not available (tests/data/topologies is part of the repository)")
    generated = preset(name)
    assert generated == read_net(path)
    text = path.read_text()
    header = [line[2:] for line in text.split("\n")[:2]]
    assert format_net(generated, comments=header) == text


def used_ports(f: Fabric) -> Counter[str]:
    """Used-port count of every switch, by name prefix class."""
    count: Counter[str] = Counter()
    for node in f.switches:
        count[node.name] = sum(1 for _ in f.node_links(node.index))
    return count


def test_big_fat_tree_shape() -> None:
    f = preset("ft3-11664")
    assert (f.num_switches, f.num_cas, len(f.links)) == (1620, 11664, 34992)
    assert len(f.ports) == 1620 * 37 + 11664
    g = f.switch_graph()
    degree = g.degree()
    names = [f.nodes[int(n)].name for n in g.switch_node]
    leaves = np.array(["leaf" in n for n in names])
    mids = np.array(["mid" in n for n in names])
    cores = np.array([n.startswith("core") for n in names])
    assert (leaves.sum(), mids.sum(), cores.sum()) == (648, 648, 324)
    assert set(degree[leaves].tolist()) == {18}
    assert set(degree[mids].tolist()) == {36}
    assert set(degree[cores].tolist()) == {36}
    assert np.bincount(g.end_switch, minlength=1620)[leaves].tolist() == [18] * 648
    assert g.end_port.shape == (11664,)
    assert f.nodes[-1].node_guid == 0x100000 + 2 * 11663
    assert f.switches[-1].node_guid == 0x200000 + 1619
    assert f == PRESETS["ft3-11664"]()


def test_fat_tree_2level_shape() -> None:
    f = fat_tree_2level(leaves=5, hosts_per_leaf=7, spines=4, links=2, switch_ports=24)
    assert (f.num_switches, f.num_cas, len(f.links)) == (9, 35, 35 + 5 * 4 * 2)
    used = used_ports(f)
    assert all(used[f"leaf{i}"] == 7 + 8 for i in range(5))
    assert all(used[f"spine{s}"] == 10 for s in range(4))
    assert {n.num_ports for n in f.switches} == {24}


def test_fat_tree_3level_leaf_mid_links() -> None:
    f = fat_tree_3level(
        pods=3,
        leaves_per_pod=2,
        hosts_per_leaf=3,
        mids_per_pod=4,
        cores_per_group=2,
        links=1,
        leaf_mid_links=2,
    )
    assert (f.num_switches, f.num_cas) == (3 * 2 + 3 * 4 + 4 * 2, 18)
    assert len(f.links) == 18 + 3 * 2 * 4 * 2 + 3 * 4 * 2
    used = used_ports(f)
    assert used["p0leaf0"] == 3 + 8
    assert used["p2mid3"] == 2 * 2 + 2
    assert used["core3_1"] == 3
    # core group g only meets mid g of each pod
    core = f.node_by_name("core1_0")
    peers = set()
    for port_num in range(1, core.num_ports + 1):
        peer = f.peer(core.index, port_num)
        if peer is not None:
            peers.add(f.nodes[peer.node_index].name)
    assert peers == {"p0mid1", "p1mid1", "p2mid1"}


@pytest.mark.parametrize(
    ("call", "where"),
    [
        (lambda: fat_tree_2level(leaves=2, hosts_per_leaf=30, spines=4, links=2), "switch_ports"),
        (lambda: fat_tree_2level(leaves=0, hosts_per_leaf=1, spines=1), "leaves"),
        (
            lambda: fat_tree_2level(leaves=1, hosts_per_leaf=1, spines=1, switch_ports=255),
            "switch_ports",
        ),
        (
            lambda: fat_tree_3level(
                pods=37, leaves_per_pod=1, hosts_per_leaf=1, mids_per_pod=1, cores_per_group=1
            ),
            "switch_ports",
        ),
        (lambda: kary_ntree(1, 2), "k"),
        (lambda: kary_ntree(20, 2, switch_ports=36), "switch_ports"),
        (lambda: random_topology(10, 5, seed=1, max_degree=1), "max_degree"),
        (lambda: random_topology(10, 5, seed=1, num_links=5), "num_links"),
        (lambda: random_topology(4, 0, seed=1, num_links=7), "num_links"),
        (lambda: random_topology(3, 110, seed=1), "switch_ports"),
        (lambda: preset("ft9"), "topology"),
    ],
)
def test_bad_parameters(call: object, where: str) -> None:
    with pytest.raises(ConfigError) as info:
        call()  # type: ignore[operator]
    assert info.value.where == where


def up_reachable(f: Fabric, level_of: dict[int, int], start: int) -> set[int]:
    seen = {start}
    todo = deque([start])
    while todo:
        n = todo.popleft()
        for ln in f.node_links(n):
            other = ln.node_b if ln.node_a == n else ln.node_a
            if level_of.get(other, -1) == level_of[n] + 1 and other not in seen:
                seen.add(other)
                todo.append(other)
    return seen


@pytest.mark.parametrize(("k", "n"), [(2, 1), (2, 3), (3, 3), (4, 2), (2, 4)])
def test_kary_ntree(k: int, n: int) -> None:
    f = kary_ntree(k, n)
    width = k ** (n - 1)
    assert f.num_switches == n * width
    assert f.num_cas == k**n
    assert len(f.links) == n * k**n
    level_of = {}
    for node in f.switches:
        level_of[node.index] = int(node.name[1:].split("_")[0])
    g = f.switch_graph()
    for s, node_index in enumerate(g.switch_node.tolist()):
        level = level_of[node_index]
        used = sum(1 for _ in f.node_links(node_index))
        assert used == (k if level == n - 1 else 2 * k)
        assert len(set(g.neighbours(s).tolist())) == g.degree()[s]  # no parallel links
    tops = {i for i, lv in level_of.items() if lv == n - 1}
    for node in f.switches:
        if level_of[node.index] == 0:
            assert tops <= up_reachable(f, level_of, node.index)


def test_kary_2tree_is_the_324_host_fat_tree_shape() -> None:
    kt = kary_ntree(18, 2)
    ft = preset("ft2-324")
    assert (kt.num_switches, kt.num_cas, len(kt.links)) == (
        ft.num_switches,
        ft.num_cas,
        len(ft.links),
    )
    assert sorted(kt.switch_graph().degree().tolist()) == sorted(
        ft.switch_graph().degree().tolist()
    )


def connected(f: Fabric) -> bool:
    if not f.nodes:
        return True
    seen = {0}
    todo = deque([0])
    while todo:
        n = todo.popleft()
        for ln in f.node_links(n):
            other = ln.node_b if ln.node_a == n else ln.node_a
            if other not in seen:
                seen.add(other)
                todo.append(other)
    return len(seen) == len(f.nodes)


@pytest.mark.parametrize("seed", range(8))
def test_random_topology(seed: int) -> None:
    f = random_topology(40, 100, seed=seed, max_degree=5, num_links=70)
    assert (f.num_switches, f.num_cas) == (40, 100)
    g = f.switch_graph()
    degree = g.degree()
    assert degree.max() <= 5
    assert int(degree.sum()) == 2 * 70
    assert connected(f)
    hosts_per_switch = np.bincount(g.end_switch, minlength=40)
    assert hosts_per_switch.max() - hosts_per_switch.min() <= 1
    for s in range(40):  # no parallel links
        assert len(set(g.neighbours(s).tolist())) == degree[s]
    assert f == random_topology(40, 100, seed=seed, max_degree=5, num_links=70)
    assert parse_net(format_net(f)) == f


def test_random_topology_seeds_differ_and_defaults() -> None:
    a = random_topology(30, 10, seed=1)
    b = random_topology(30, 10, seed=2)
    assert a != b
    assert len(a.links) == 10 + 29 + 15
    assert connected(a)
    assert connected(b)
    dense = random_topology(6, 0, seed=5, max_degree=5, num_links=15)  # the complete graph
    assert len(dense.links) == 15
    single = random_topology(1, 3, seed=0)
    assert (single.num_switches, len(single.links)) == (1, 3)
    assert all(n.node_type == NodeType.SWITCH for n in single.switches)


def test_largest_fat_tree_shape() -> None:
    # 64-port switches: 40 pods of 32 leaves (32 hosts each) and 32 mids, 32 groups of
    # 32 cores; every switch port of a leaf and a mid used, 40 of a core's 64.
    f = preset("ft3-40960")
    assert (f.num_switches, f.num_cas, len(f.links)) == (3584, 40960, 3 * 40960)
    assert f.num_switches + f.num_cas == 44_544
    assert len(f.ports) == 3584 * 65 + 40960  # switch port 0 and 64 external ports
    count = used_ports(f)
    assert {count[f"p{p}leaf{i}"] for p in range(40) for i in range(32)} == {64}
    assert {count[f"p{p}mid{m}"] for p in range(40) for m in range(32)} == {64}
    assert {count[f"core{g}_{c}"] for g in range(32) for c in range(32)} == {40}

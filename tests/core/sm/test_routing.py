"""Routing engines: reachability, shortest paths, up*/down*, balance, errors, determinism.

Inputs are built here by hand (small generators mirroring the fabric generators'
wiring: hosts on the lowest ports, then cables down, then cables up), not read
from fabric files. minhop is also checked against a plain sequential rendering of
OpenSM's rule, and (interop) all engines against OpenSM itself on ibsim.
"""

from __future__ import annotations

import itertools
import os
import random
import re
import shutil
import subprocess
import time
from collections import deque
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ibmig.core.sm.routing import (
    DEAD_END,
    ENGINES,
    LOOP,
    NO_PATH,
    NO_ROUTE,
    RoutingError,
    RoutingInput,
    check_all_pairs,
    compute_lfts,
    fat_tree_levels,
    ftree,
    is_shortest,
    minhop,
    obeys_updown,
    opensm_updn_roots,
    port_loads,
    route,
    switch_hops,
    trace_routes,
    updn,
    updn_ranks,
    updn_roots,
    walk,
)
from tests.helpers import missing_tools
from tests.shared_files import TOPOLOGIES

Link = tuple[int, int, int, int]


# --- generators ------------------------------------------------------------------


def make_input(
    num_switches: int,
    links: list[Link],
    hosts: list[tuple[int, int]],
    ports: list[int] | int,
    guids: list[int] | None = None,
) -> RoutingInput:
    """Switch LIDs 1..n, then host LIDs in the order given; hosts are (switch, port)."""
    cas = [(num_switches + 1 + i, s, p) for i, (s, p) in enumerate(hosts)]
    port_counts = [ports] * num_switches if isinstance(ports, int) else ports
    return RoutingInput(
        num_switches=num_switches,
        switch_lids=np.arange(1, num_switches + 1),
        switch_num_ports=np.array(port_counts),
        links=np.array(links, dtype=np.int64).reshape(-1, 4),
        ca_ports=np.array(cas, dtype=np.int64).reshape(-1, 3),
        max_lid=num_switches + len(hosts) + 2,
        switch_guids=None if guids is None else np.array(guids, dtype=np.uint64),
    )


def fat_tree_2level(leaves: int, hosts: int, spines: int, links: int = 1) -> RoutingInput:
    """Leaves 0..leaves-1, spines after; leaf i port hosts+s*links+l+1 -- spine s port
    i*links+l+1."""
    cables = [
        (i, hosts + s * links + c + 1, leaves + s, i * links + c + 1)
        for i in range(leaves)
        for s in range(spines)
        for c in range(links)
    ]
    host_ports = [(i, h + 1) for i in range(leaves) for h in range(hosts)]
    ports = [hosts + spines * links] * leaves + [leaves * links] * spines
    return make_input(leaves + spines, cables, host_ports, ports)


def fat_tree_3level(
    pods: int, leaves: int, hosts: int, mids: int, cores: int, *, links: int = 1
) -> RoutingInput:
    """Leaves (p, i), mids (p, m), cores (g, c); core group g serves mid g of every pod."""
    n_leaf, n_mid = pods * leaves, pods * mids
    cables: list[Link] = []
    for p in range(pods):
        for i in range(leaves):
            for m in range(mids):
                cables.append((p * leaves + i, hosts + m + 1, n_leaf + p * mids + m, i + 1))
        for m in range(mids):
            for c in range(cores):
                for j in range(links):
                    core = n_leaf + n_mid + m * cores + c
                    cables.append(
                        (n_leaf + p * mids + m, leaves + c * links + j + 1, core, p * links + j + 1)
                    )
    host_ports = [(s, h + 1) for s in range(n_leaf) for h in range(hosts)]
    ports = (
        [hosts + mids] * n_leaf + [leaves + cores * links] * n_mid + [pods * links] * (mids * cores)
    )
    return make_input(n_leaf + n_mid + mids * cores, cables, host_ports, ports)


def kary_ntree(k: int, n: int) -> RoutingInput:
    """k-ary n-tree: n levels of k**(n-1) switches; (l, w) -- (l+1, w') when w' equals w
    but for base-k digit l; k hosts per leaf."""
    per_level = k ** (n - 1)
    index = {(lvl, w): lvl * per_level + w for lvl in range(n) for w in range(per_level)}
    next_port = {s: k + 1 if s < per_level else 1 for s in index.values()}
    cables: list[Link] = []
    for lvl in range(n - 1):
        for w in range(per_level):
            digit = (w // k**lvl) % k
            for v in range(k):
                up = w + (v - digit) * k**lvl
                a, b = index[(lvl, w)], index[(lvl + 1, up)]
                cables.append((a, next_port[a], b, next_port[b]))
                next_port[a] += 1
                next_port[b] += 1
    host_ports = [(w, h + 1) for w in range(per_level) for h in range(k)]
    return make_input(n * per_level, cables, host_ports, 2 * k)


def ring(num: int, hosts: int = 1) -> RoutingInput:
    cables = [(i, hosts + 1, (i + 1) % num, hosts + 2) for i in range(num)]
    host_ports = [(i, h + 1) for i in range(num) for h in range(hosts)]
    return make_input(num, cables, host_ports, hosts + 2)


def random_graph(seed: int, num: int, extra: int, parallel: int, ports: int = 8) -> RoutingInput:
    """A random spanning tree plus `extra` random cables and `parallel` doubled ones;
    0..2 hosts per switch."""
    rng = random.Random(seed)
    free = {s: list(range(1, ports + 1)) for s in range(num)}
    cables: list[Link] = []

    def cable(a: int, b: int) -> None:
        if free[a] and free[b]:
            cables.append((a, free[a].pop(0), b, free[b].pop(0)))

    for s in range(1, num):
        cable(rng.randrange(s), s)
    for _ in range(extra if num > 1 else 0):
        a, b = rng.sample(range(num), 2)
        cable(a, b)
    for _ in range(parallel if cables else 0):
        a, _, b, _ = cables[rng.randrange(len(cables))]
        cable(a, b)
    host_ports = []
    for s in range(num):
        for _ in range(rng.randrange(3)):
            if free[s]:
                host_ports.append((s, free[s].pop(0)))
    return make_input(num, cables, host_ports, ports)


# --- an independent, sequential reference for minhop ---------------------------------


def reference_minhop(inp: RoutingInput, previous: np.ndarray | None = None) -> np.ndarray:
    """OpenSM's rule written out plainly: per switch, per destination in OpenSM's order
    (end ports of the switches with most end ports first, by switch then port; then
    switch LIDs), the port it holds now if that is still on a shortest path, else
    among the ports on a shortest path the one with the fewest CA LIDs so far, the
    lowest port on a tie."""
    num = inp.num_switches
    far: dict[tuple[int, int], int] = {}
    for a, pa, b, pb in inp.links.tolist():
        if a != b:
            far[(a, pa)] = b
            far[(b, pb)] = a
    adjacency: dict[int, set[int]] = {s: set() for s in range(num)}
    for (a, _), b in far.items():
        adjacency[a].add(b)
    hops = [[255] * num for _ in range(num)]
    for src in range(num):
        hops[src][src] = 0
        queue = deque([src])
        while queue:
            u = queue.popleft()
            for v in adjacency[u]:
                if hops[src][v] == 255:
                    hops[src][v] = hops[src][u] + 1
                    queue.append(v)
    owner: dict[int, tuple[int, int, bool]] = {}
    end_ports = [0] * num
    for _, s, _ in inp.ca_ports.tolist():
        end_ports[s] += 1
    for lid, s, p in sorted(inp.ca_ports.tolist(), key=lambda c: (-end_ports[c[1]], c[1], c[2])):
        if lid:
            owner[lid] = (s, p, True)
    for s, lid in enumerate(inp.switch_lids.tolist()):
        if lid:
            owner[lid] = (s, 0, False)
    lft = np.full((num, inp.max_lid + 1), 255, dtype=np.uint8)
    for s in range(num):
        count = [0] * 256
        for lid, (t, port, is_ca) in owner.items():  # insertion order: OpenSM's
            if t == s:
                lft[s, lid] = port
                continue
            candidates = [p for p in range(1, int(inp.switch_num_ports[s]) + 1) if (s, p) in far]
            least = min((hops[far[(s, p)]][t] for p in candidates), default=255)
            if least == 255:
                continue
            best = None
            if previous is not None and lid < previous.shape[1]:
                held = int(previous[s, lid])
                if held in candidates and hops[far[(s, held)]][t] == least:
                    best = held
            for p in [] if best is not None else candidates:
                if hops[far[(s, p)]][t] == least and (best is None or count[p] < count[best]):
                    best = p
            assert best is not None
            lft[s, lid] = best
            if is_ca:
                count[best] += 1
    return lft


# --- input validation -----------------------------------------------------------------


def test_input_arrays_are_copied_and_read_only() -> None:
    lids = np.array([1, 2])
    inp = make_input(2, [(0, 2, 1, 2)], [(0, 1), (1, 1)], 2)
    fresh = RoutingInput(2, lids, np.array([2, 2]), inp.links, inp.ca_ports, inp.max_lid)
    lids[0] = 99
    assert fresh.switch_lids[0] == 1
    with pytest.raises(ValueError):
        fresh.switch_lids[0] = 5


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"switch_lids": np.array([1])}, "switch_lids"),
        ({"links": np.array([[0, 3, 1, 2]])}, "has ports 1..2"),
        ({"links": np.array([[0, 2, 5, 2]])}, "out of range"),
        ({"links": np.array([[0, 1, 1, 2]])}, "connected twice"),
        ({"ca_ports": np.array([[3, 0, 1], [3, 1, 1]])}, "assigned twice"),
        ({"ca_ports": np.array([[1, 0, 1]])}, "assigned twice"),
        ({"ca_ports": np.array([[9, 0, 1]])}, "outside"),
        ({"links": np.zeros((2, 3))}, "shape"),
        ({"switch_num_ports": np.array([0, 2])}, "switch_num_ports"),
        ({"max_lid": 0xC000}, "max_lid"),
        ({"num_switches": -1}, "num_switches"),
        ({"switch_guids": np.array([5, 5], dtype=np.uint64)}, "not unique"),
    ],
)
def test_invalid_input_raises(change: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {
        "num_switches": 2,
        "switch_lids": np.array([1, 2]),
        "switch_num_ports": np.array([2, 2]),
        "links": np.array([[0, 2, 1, 2]]),
        "ca_ports": np.array([[3, 0, 1], [4, 1, 1]]),
        "max_lid": 5,
    }
    fields.update(change)
    with pytest.raises(RoutingError, match=message):
        RoutingInput(**fields)  # type: ignore[arg-type]


def test_unknown_engine_raises() -> None:
    with pytest.raises(RoutingError, match="unknown routing engine"):
        route(fat_tree_2level(2, 1, 1), "lash")


# --- the LFT itself -------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_lft_shape_own_lid_and_unused_lids(engine: str) -> None:
    inp = fat_tree_2level(3, 2, 2)
    result = route(inp, engine)
    assert result.lft.dtype == np.uint8
    assert result.lft.shape == (5, inp.max_lid + 1)
    assert (result.lft[np.arange(5), inp.switch_lids] == 0).all()
    used = np.r_[inp.switch_lids, inp.ca_ports[:, 0]]
    unused = np.setdiff1d(np.arange(inp.max_lid + 1), used)
    assert (result.lft[:, unused] == NO_PATH).all()
    for lid, s, port in inp.ca_ports.tolist():
        assert result.lft[s, lid] == port


def test_switch_without_lid_and_ca_with_lid_zero_are_not_destinations() -> None:
    inp = RoutingInput(
        num_switches=2,
        switch_lids=np.array([0, 2]),
        switch_num_ports=np.array([3, 3]),
        links=np.array([[0, 3, 1, 3]]),
        ca_ports=np.array([[3, 0, 1], [4, 1, 1], [0, 1, 2]]),
        max_lid=4,
    )
    lft = minhop(inp).lft
    assert (lft[:, 0] == NO_PATH).all()
    assert lft[0].tolist() == [255, 255, 3, 1, 3]
    assert lft[1].tolist() == [255, 255, 0, 3, 1]


# --- minhop ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "inp",
    [
        fat_tree_2level(4, 4, 4),
        fat_tree_2level(3, 5, 2, links=2),
        fat_tree_3level(3, 2, 2, 2, 2),
        ring(5, 2),
        ring(6),
        kary_ntree(2, 3),
    ],
    ids=["ft2", "ft2-parallel", "ft3", "ring5", "ring6", "2ary3tree"],
)
def test_minhop_reaches_everything_on_shortest_paths(inp: RoutingInput) -> None:
    result = minhop(inp)
    check_all_pairs(result.lft, inp)
    assert is_shortest(result.lft, inp, include_switches=True)


@pytest.mark.parametrize("seed", range(12))
def test_minhop_matches_the_sequential_reference(seed: int) -> None:
    inp = random_graph(seed, num=5 + seed, extra=seed, parallel=seed % 3)
    assert np.array_equal(minhop(inp).lft, reference_minhop(inp))


def test_minhop_balances_over_high_port_numbers_like_the_reference() -> None:
    # The balancing packs (load, port) into one key per port: ports up to 254 and
    # loads of hundreds of LIDs must still pick as the plain rule does.
    cables = [(0, 250 + i, 1, 1 + i) for i in range(4)] + [
        (1, 200 + i, 2, 130 + i) for i in range(3)
    ]
    hosts = [(0, 1 + h) for h in range(240)] + [(2, 1 + h) for h in range(7)]
    inp = make_input(3, cables, hosts, [254, 254, 140])
    result = minhop(inp)
    assert np.array_equal(result.lft, reference_minhop(inp))
    assert result.port_lids[2, 130:133].tolist() == [80, 80, 80]  # 240 LIDs over 3
    assert result.port_lids[1, 200:203].tolist() == [3, 2, 2]
    assert np.array_equal(result.port_lids, _plain_port_loads(result.lft, inp))


@pytest.mark.parametrize("seed", range(6))
def test_port_loads_count_ca_lids_per_port(seed: int) -> None:
    inp = random_graph(seed, num=6 + seed, extra=seed, parallel=seed % 3)
    lft = minhop(inp).lft
    assert np.array_equal(port_loads(lft, inp), _plain_port_loads(lft, inp))


def _plain_port_loads(lft: np.ndarray, inp: RoutingInput) -> np.ndarray:
    width = int(inp.switch_num_ports.max()) + 1
    loads = np.zeros((inp.num_switches, width), dtype=np.int64)
    for lid in inp.ca_ports[:, 0].tolist():
        for switch in range(inp.num_switches):
            port = int(lft[switch, lid])
            if port < width:
                loads[switch, port] += 1
    return loads


@pytest.mark.parametrize("seed", range(8))
def test_minhop_keeps_held_routes_like_the_reference(seed: int) -> None:
    inp = random_graph(seed, num=6 + seed, extra=seed + 2, parallel=1)
    rng = random.Random(seed)
    held = minhop(inp).lft.copy()
    # perturb: drop a random cable, route from the old tables
    keep = np.ones(len(inp.links), dtype=bool)
    keep[rng.randrange(len(inp.links))] = False
    cut = RoutingInput(
        inp.num_switches,
        inp.switch_lids,
        inp.switch_num_ports,
        inp.links[keep],
        inp.ca_ports,
        inp.max_lid,
    )
    assert np.array_equal(minhop(cut, previous=held).lft, reference_minhop(cut, held))


def test_minhop_matches_the_reference_on_fat_trees() -> None:
    for inp in (fat_tree_2level(3, 5, 2, links=2), fat_tree_3level(3, 2, 3, 2, 2)):
        assert np.array_equal(minhop(inp).lft, reference_minhop(inp))


@pytest.mark.parametrize("seed", range(20))
def test_minhop_on_irregular_graphs(seed: int) -> None:
    inp = random_graph(seed, num=4 + seed, extra=2 * seed, parallel=seed % 4)
    result = minhop(inp)
    check_all_pairs(result.lft, inp)
    assert is_shortest(result.lft, inp, include_switches=True)


def test_minhop_balances_a_symmetric_fat_tree() -> None:
    inp = fat_tree_3level(4, 4, 4, 4, 4)
    loads = minhop(inp).port_lids
    leaf_up, mid_down, mid_up, core = (
        loads[:16, 5:9],
        loads[16:32, 1:5],
        loads[16:32, 5:9],
        loads[32:, 1:5],
    )
    assert leaf_up.min() == leaf_up.max() == (64 - 4) // 4  # remote hosts over 4 up ports
    assert mid_down.min() == mid_down.max() == 4
    assert mid_up.min() == mid_up.max() == (64 - 16) // 4
    assert core.min() == core.max() == 16


def test_minhop_uses_parallel_cables_in_turn() -> None:
    inp = fat_tree_2level(4, 6, 2, links=3)  # 3 cables from each leaf to each spine
    loads = minhop(inp).port_lids
    up = loads[:4, 7:13]
    assert up.sum(axis=1).tolist() == [18] * 4
    assert up.max() - up.min() <= 1
    down = loads[4:, 1:13]
    assert down.max() - down.min() <= 1


# --- up*/down* ------------------------------------------------------------------------


def test_updn_roots_are_the_top_of_fat_trees() -> None:
    assert updn_roots(fat_tree_2level(4, 2, 3)) == (4, 5, 6)
    inp = fat_tree_3level(3, 2, 2, 2, 2)
    assert updn_roots(inp) == tuple(range(12, 16))
    assert updn_roots(kary_ntree(2, 3)) == (8, 9, 10, 11)
    assert opensm_updn_roots(fat_tree_2level(4, 2, 3)) == (4, 5, 6)


def test_opensm_root_rule_takes_every_switch_of_a_wide_3level_tree() -> None:
    # 20 pods: a leaf sees its own hosts (1/80 of all) at 0 hops, its pod's at 2 hops
    # (3/80 < 5 %) and the other 95 % at 4: a "root" by OpenSM's rule, like every switch.
    inp = fat_tree_3level(20, 4, 1, 2, 2)
    assert len(opensm_updn_roots(inp)) == inp.num_switches
    assert updn_roots(inp) == tuple(range(120, 124))


@pytest.mark.parametrize(
    "inp",
    [fat_tree_2level(4, 4, 4), fat_tree_3level(3, 2, 2, 2, 2), kary_ntree(3, 3)],
    ids=["ft2", "ft3", "3ary3tree"],
)
def test_updn_on_fat_trees_is_shortest_and_legal(inp: RoutingInput) -> None:
    result = updn(inp)
    assert result.ranks is not None
    check_all_pairs(result.lft, inp)
    assert is_shortest(result.lft, inp)
    assert obeys_updown(result.lft, inp, result.ranks)


def test_updn_leaves_roots_without_a_legal_route_to_each_other() -> None:
    inp = fat_tree_2level(3, 1, 2)
    result = updn(inp)
    assert result.lft[3, inp.switch_lids[4]] == NO_PATH  # spine to spine: down then up
    assert result.stats["switch_pairs_without_legal_route"] == 2
    trace = trace_routes(result.lft, inp, src_switches=[0, 1, 2], dst_lids=inp.switch_lids)
    assert (trace.hops >= 0).all()  # every leaf (so every CA) reaches every switch


@pytest.mark.parametrize("seed", range(25))
def test_updn_on_irregular_graphs_is_legal(seed: int) -> None:
    inp = random_graph(seed, num=4 + seed, extra=seed, parallel=seed % 3)
    result = updn(inp)
    assert result.ranks is not None
    check_all_pairs(result.lft, inp)
    assert obeys_updown(result.lft, inp, result.ranks)


def test_updn_on_a_ring_is_legal_where_minhop_is_not() -> None:
    inp = ring(6)
    result = updn(inp)
    assert result.ranks is not None
    check_all_pairs(result.lft, inp)
    assert obeys_updown(result.lft, inp, result.ranks)
    # minhop goes both ways round the ring: some route turns up after going down
    assert not obeys_updown(minhop(inp).lft, inp, result.ranks)


def test_updn_given_roots_and_ranks() -> None:
    inp = ring(6)
    result = updn(inp, roots=[2])
    assert result.roots == (2,)
    assert result.ranks is not None
    assert result.ranks.tolist() == [2, 1, 0, 1, 2, 3]
    assert updn_ranks(inp, [2]).tolist() == [2, 1, 0, 1, 2, 3]
    check_all_pairs(result.lft, inp)


def test_updn_roots_that_disconnect_cas_raise_and_detected_ones_shrink() -> None:
    # a path 0-1-2-3-4: roots 1 and 3 both sit above switch 2 and nothing sits above
    # root 3, so switch 0 can never get down to 4
    inp = make_input(5, [(i, 2, i + 1, 3) for i in range(4)], [(s, 1) for s in range(5)], 3)
    with pytest.raises(RoutingError, match="no legal route"):
        updn(inp, roots=[1, 3])
    square = make_input(
        4, [(0, 2, 2, 2), (2, 3, 1, 2), (1, 3, 3, 2), (3, 3, 0, 3)], [(s, 1) for s in range(4)], 3
    )
    # all four are centres; root 1 would sit above only 2 and 3, out of 0's reach
    result = updn(square)
    assert result.roots == (0,)
    assert result.stats["fell_back_to_one_root"] == 1
    check_all_pairs(result.lft, square)


def test_updn_guids_break_rank_ties() -> None:
    square = [(0, 2, 2, 2), (2, 3, 1, 2), (1, 3, 3, 2), (3, 3, 0, 3)]
    hosts = [(s, 1) for s in range(4)]
    plain = make_input(4, square, hosts, 3)
    guided = make_input(4, square, hosts, 3, guids=[40, 30, 20, 10])
    assert updn(plain).roots == (0,)
    result = updn(guided)
    assert result.roots == (3,)  # the centre with the lowest GUID
    assert result.ranks is not None
    check_all_pairs(result.lft, guided)
    assert obeys_updown(result.lft, guided, result.ranks)


# --- ftree ----------------------------------------------------------------------------


def top_switches_used(inp: RoutingInput, lft: np.ndarray, levels: np.ndarray) -> list[set[int]]:
    """For each CA destination, the top-level switches its routes from all leaves cross."""
    top = int(levels.max())
    used = []
    for lid in inp.ca_ports[:, 0].tolist():
        seen = set()
        for src_lid in inp.ca_ports[:, 0].tolist():
            for switch, _ in walk(lft, inp, src_lid, lid):
                if levels[switch] == top:
                    seen.add(switch)
        used.append(seen)
    return used


@pytest.mark.parametrize(
    "inp",
    [
        fat_tree_2level(4, 4, 4),
        fat_tree_2level(3, 4, 2, links=2),
        fat_tree_3level(3, 2, 2, 2, 2),
        fat_tree_3level(2, 3, 3, 3, 2),
        kary_ntree(2, 3),
        kary_ntree(3, 3),
    ],
    ids=["ft2", "ft2-parallel", "ft3", "ft3-uneven", "2ary3tree", "3ary3tree"],
)
def test_ftree_is_shortest_legal_and_converges(inp: RoutingInput) -> None:
    result = ftree(inp)
    assert result.ranks is not None
    check_all_pairs(result.lft, inp)
    assert is_shortest(result.lft, inp)
    assert obeys_updown(result.lft, inp, result.ranks)
    levels = fat_tree_levels(inp)
    # one top switch per destination: the whole fabric sends it down the same tree
    assert all(len(tops) == 1 for tops in top_switches_used(inp, result.lft, levels))


def test_ftree_spreads_like_d_mod_k() -> None:
    inp = fat_tree_3level(4, 3, 3, 3, 3)  # hosts per leaf = mids = cores per group
    result = ftree(inp)
    levels = fat_tree_levels(inp)
    roots = [next(iter(t)) for t in top_switches_used(inp, result.lft, levels)]
    per_root = np.bincount(roots, minlength=inp.num_switches)[levels.max() == levels]
    assert per_root.tolist() == [4] * 9  # 36 hosts over 9 cores
    # host h of every leaf goes up to mid h of its pod (leaf port 3 + h + 1)
    for i, (lid, leaf, _) in enumerate(inp.ca_ports.tolist()):
        pod_mate = next(x for x in range(12) if x // 3 == leaf // 3 and x != leaf)
        assert result.lft[pod_mate, lid] == 3 + i % 3 + 1
    loads = result.port_lids
    assert np.ptp(loads[:12, 4:7]) == 0  # leaf up ports
    assert np.ptp(loads[12:24, 4:7]) <= 1  # mid up ports
    assert np.ptp(loads[24:, 1:5]) == 0  # core down ports


def test_ftree_uses_parallel_cables_in_turn() -> None:
    inp = fat_tree_2level(4, 4, 2, links=2)
    loads = ftree(inp).port_lids
    assert np.ptp(loads[:4, 5:9]) <= 1
    assert np.ptp(loads[4:, 1:9]) <= 1


def test_ftree_levels_and_given_roots() -> None:
    inp = fat_tree_3level(2, 2, 1, 2, 2)
    levels = fat_tree_levels(inp)
    assert levels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert fat_tree_levels(inp, roots=[8, 9, 10, 11]).tolist() == levels.tolist()
    result = ftree(inp, roots=[8, 9, 10, 11])
    assert result.roots == (8, 9, 10, 11)
    assert result.ranks is not None
    assert result.ranks.tolist() == [2] * 4 + [1] * 4 + [0] * 4


def test_ftree_keeps_a_leaf_without_hosts_when_roots_are_given() -> None:
    inp = fat_tree_2level(3, 2, 2)
    cas = inp.ca_ports[inp.ca_ports[:, 1] != 2]  # leaf 2 lost its hosts
    bare = RoutingInput(5, inp.switch_lids, inp.switch_num_ports, inp.links, cas, inp.max_lid)
    # ranked from the hosts, the bare leaf looks like a third level above the spines
    assert ftree(bare).roots == (2,)
    result = ftree(bare, roots=[3, 4])
    assert result.roots == (3, 4)
    check_all_pairs(result.lft, bare)
    assert is_shortest(result.lft, bare)


def _two_level_links_without(leaf: int, spine: int) -> RoutingInput:
    inp = fat_tree_2level(3, 2, 3)
    keep = ~((inp.links[:, 0] == leaf) & (inp.links[:, 2] == 3 + spine))
    return RoutingInput(
        6, inp.switch_lids, inp.switch_num_ports, inp.links[keep], inp.ca_ports, inp.max_lid
    )


@pytest.mark.parametrize(
    ("inp", "message"),
    [
        (ring(6), "not on adjacent levels"),
        (_two_level_links_without(1, 2), "differ in their up cables"),
        (
            make_input(1, [], [(0, 1), (0, 2)], 2),
            "single level",
        ),
        (
            # three leaves, three mids each over two neighbouring leaves: uniform, but
            # the leaves below the mids overlap
            make_input(
                7,
                [(i, 2 + j, 3 + (i + j) % 3, 1 + j) for i in range(3) for j in range(2)]
                + [(3 + m, 3, 6, m + 1) for m in range(3)],
                [(i, 1) for i in range(3)],
                3,
            ),
            "same leaves below them",
        ),
        (
            RoutingInput(
                4,
                np.arange(1, 5),
                np.array([3, 3, 3, 3]),
                np.array([[0, 2, 2, 1], [0, 3, 3, 1], [1, 2, 2, 2], [1, 3, 3, 2], [2, 3, 3, 3]]),
                np.array([[5, 0, 1], [6, 1, 1]]),
                6,
            ),
            "not on adjacent levels",
        ),
        (
            make_input(4, [(0, 2, 1, 1), (2, 2, 3, 1)], [(0, 1), (2, 1)], 2),
            "not connected",
        ),
    ],
    ids=["ring", "missing-cable", "one-switch", "overlap", "spine-spine", "disconnected"],
)
def test_ftree_rejects_what_is_not_a_fat_tree(inp: RoutingInput, message: str) -> None:
    with pytest.raises(RoutingError, match=message):
        ftree(inp)


def test_ftree_rejects_hosts_on_a_spine_with_given_roots() -> None:
    inp = fat_tree_2level(2, 1, 2)
    cas = np.r_[inp.ca_ports, [[7, 2, 3]]]
    ports = np.array([3, 3, 3, 3])
    odd = RoutingInput(4, inp.switch_lids, ports, inp.links, cas, 7)
    with pytest.raises(RoutingError, match="not a leaf"):
        ftree(odd, roots=[2, 3])


# --- determinism and the SM-facing entry point ----------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_engines_are_deterministic(engine: str) -> None:
    first = route(fat_tree_3level(3, 2, 2, 2, 2, links=2), engine)
    second = route(fat_tree_3level(3, 2, 2, 2, 2, links=2), engine)
    assert np.array_equal(first.lft, second.lft)
    assert np.array_equal(first.port_lids, second.port_lids)


def test_compute_lfts_takes_roots_by_guid() -> None:
    base = fat_tree_2level(3, 2, 2)
    guids = np.array([0x1000 + i for i in range(5)], dtype=np.uint64)
    inp = RoutingInput(
        5, base.switch_lids, base.switch_num_ports, base.links, base.ca_ports, base.max_lid, guids
    )
    lft = compute_lfts(inp, "updn", root_guids=[0x1003, 0x1004, 0xDEAD])
    assert np.array_equal(lft, updn(inp, roots=[3, 4]).lft)
    assert np.array_equal(compute_lfts(inp, "updn", root_guids=[0xDEAD]), updn(inp).lft)
    assert np.array_equal(compute_lfts(inp), minhop(inp).lft)
    with pytest.raises(RoutingError, match="switch_guids"):
        compute_lfts(base, "updn", root_guids=[1])


def test_switch_hops_and_port_loads() -> None:
    inp = fat_tree_2level(2, 2, 2)
    hops = switch_hops(inp)
    assert hops.tolist() == [[0, 2, 1, 1], [2, 0, 1, 1], [1, 1, 0, 2], [1, 1, 2, 0]]
    loads = port_loads(minhop(inp).lft, inp)
    assert loads[0].tolist() == [0, 1, 1, 1, 1]  # 2 own hosts, 2 remote over 2 up ports
    assert loads[2].tolist() == [0, 2, 2, 0, 0]  # rows as wide as the widest switch


# --- the checks themselves ------------------------------------------------------------


def test_walk_follows_the_lft() -> None:
    inp = fat_tree_2level(2, 2, 2)
    lft = minhop(inp).lft
    # host LIDs 5, 6 on leaf 0; 7, 8 on leaf 1
    path = walk(lft, inp, 5, 8)
    assert [s for s, _ in path] == [0, int(path[1][0]), 1]
    assert path[-1] == (1, 2)
    assert walk(lft, inp, 5, 6) == [(0, 2)]
    assert walk(lft, inp, 5, 1) == [(0, 0)]
    assert walk(lft, inp, 5, 3)[-1] == (2, 0)


def test_checks_catch_broken_tables() -> None:
    inp = fat_tree_2level(2, 2, 2)
    good = minhop(inp).lft
    with pytest.raises(RoutingError, match="not assigned"):
        walk(good, inp, 50, 5)
    no_route = good.copy()
    no_route[0, 8] = NO_PATH
    with pytest.raises(RoutingError, match="no route"):
        walk(no_route, inp, 5, 8)
    with pytest.raises(RoutingError, match="no route"):
        check_all_pairs(no_route, inp)
    loop = good.copy()
    loop[:, 8] = [3, 3, 1, 1]  # leaves up to spine 2, spine 2 back down to leaf 0
    with pytest.raises(RoutingError, match="loop"):
        walk(loop, inp, 5, 8)
    assert trace_routes(loop, inp).hops[0, 3] == LOOP
    dead = good.copy()
    dead[0, 8] = 1  # out of a host port
    with pytest.raises(RoutingError, match="leads to no switch"):
        walk(dead, inp, 5, 8)
    assert trace_routes(dead, inp).hops[0, 3] == DEAD_END
    assert trace_routes(no_route, inp).hops[0, 3] == NO_ROUTE
    assert not is_shortest(no_route, inp)


def test_obeys_updown_flags_down_then_up() -> None:
    inp = fat_tree_2level(3, 1, 2)  # leaves 0-2, spines 3-4, hosts LIDs 6, 7, 8
    result = ftree(inp)
    assert result.ranks is not None
    bent = result.lft.copy()
    # to host 8 (leaf 2): spines go down to leaf 1, leaf 1 goes up to spine 4, down to 2
    bent[0, 8] = 2  # leaf 0 up to spine 3 (leaf port 1 + s + 1 to spine 3 + s)
    bent[3, 8] = bent[3, 7]
    bent[1, 8] = 3
    bent[4, 8] = 3  # spine port i + 1 to leaf i
    check_all_pairs(bent, inp)
    assert not obeys_updown(bent, inp, result.ranks)
    assert obeys_updown(result.lft, inp, result.ranks)


# --- random subnets, shrunk by hypothesis ---------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    num=st.integers(1, 14),
    extra=st.integers(0, 12),
    parallel=st.integers(0, 3),
)
def test_any_connected_subnet_routes(seed: int, num: int, extra: int, parallel: int) -> None:
    inp = random_graph(seed, num, extra, parallel)
    minhop_result = minhop(inp)
    check_all_pairs(minhop_result.lft, inp)
    assert is_shortest(minhop_result.lft, inp, include_switches=True)
    updn_result = updn(inp)
    assert updn_result.ranks is not None
    assert obeys_updown(updn_result.lft, inp, updn_result.ranks)
    try:
        ftree_result = ftree(inp)
    except RoutingError:
        return
    assert ftree_result.ranks is not None
    assert obeys_updown(ftree_result.lft, inp, ftree_result.ranks)
    assert is_shortest(ftree_result.lft, inp)


def test_pairs_in_disconnected_subnets_get_no_route() -> None:
    inp = make_input(4, [(0, 2, 1, 2), (2, 2, 3, 2)], [(s, 1) for s in range(4)], 2)
    for engine in ("minhop", "updn"):
        result = route(inp, engine)
        trace = trace_routes(result.lft, inp)
        reach = trace.hops >= 0
        assert reach.tolist() == [[a // 2 == b // 2 for b in range(4)] for a in range(4)]
        assert set(itertools.chain.from_iterable(trace.hops.tolist())) == {0, 1, NO_ROUTE}


# --- keeping the routes the switches hold (OpenSM after its first sweep) --------------


@pytest.mark.parametrize("engine", ["minhop", "updn"])
def test_previous_routes_are_kept_where_still_shortest(engine: str) -> None:
    inp = fat_tree_2level(4, 4, 4)
    spines = [4, 5, 6, 7]  # fixed roots: a lost cable must not move updn's roots
    fresh = route(inp, engine, roots=spines)
    # a different but valid table: every leaf sends every remote host up to spine 0
    held = fresh.lft.copy()
    for leaf in range(4):
        others = inp.ca_ports[inp.ca_ports[:, 1] != leaf, 0]
        held[leaf, others] = 5  # leaf port 4 hosts + 1: spine 0
    assert not np.array_equal(held, fresh.lft)
    again = route(inp, engine, roots=spines, previous=held)
    assert np.array_equal(again.lft, held)
    check_all_pairs(again.lft, inp)
    # the cable leaf 0 -- spine 0 goes down: only what used it, or now must avoid
    # spine 0 to reach leaf 0, moves
    keep = ~((inp.links[:, 0] == 0) & (inp.links[:, 2] == 4))
    broken = RoutingInput(
        8, inp.switch_lids, inp.switch_num_ports, inp.links[keep], inp.ca_ports, inp.max_lid
    )
    after = route(broken, engine, roots=spines, previous=held)
    check_all_pairs(after.lft, broken)
    leaf0 = set(inp.ca_ports[inp.ca_ports[:, 1] == 0, 0].tolist()) | {1, 5}
    for s, lid in np.argwhere(after.lft != held).tolist():
        assert s in (0, 4) or lid in leaf0
    assert (after.lft[0, inp.ca_ports[inp.ca_ports[:, 1] != 0, 0]] != 5).all()
    assert (after.lft[1:4, 13:] == held[1:4, 13:]).all()  # routes to leaves 1-3 stay


def test_previous_routes_must_match_the_switches() -> None:
    inp = fat_tree_2level(2, 1, 1)
    with pytest.raises(RoutingError, match="previous LFTs"):
        minhop(inp, previous=np.zeros((2, 10), dtype=np.uint8))
    narrow = minhop(inp, previous=np.full((3, 2), 255, dtype=np.uint8))
    assert np.array_equal(narrow.lft, minhop(inp).lft)


# --- against OpenSM itself (ibsim + opensm through the umad2sim shim) -----------------

SHARED = TOPOLOGIES
_SHIMS = (
    "/usr/lib/x86_64-linux-gnu/umad2sim/libumad2sim.so",
    "/usr/lib/aarch64-linux-gnu/umad2sim/libumad2sim.so",
)
_runs = itertools.count()


def _opensm_tools() -> tuple[str, str, str]:
    ibsim = shutil.which("ibsim") or "/usr/bin/ibsim"
    opensm = shutil.which("opensm") or "/usr/sbin/opensm"
    shim = next((s for s in _SHIMS if Path(s).is_file()), "")
    missing = [
        n
        for n, p in (("ibsim", ibsim), ("opensm", opensm), ("shim", shim))
        if not p or not Path(p).is_file()
    ]
    if missing:
        missing_tools(f"not installed: {', '.join(missing)} (ibsim-utils, opensm, libumad2sim0)")
    return ibsim, opensm, shim


def write_net(inp: RoutingInput, path: Path) -> None:
    """ibsim's net format: switch i is "sw{i}", the host with LID l is "h{l}"."""
    far: dict[tuple[int, int], str] = {}
    for a, pa, b, pb in inp.links.tolist():
        far[(a, pa)] = f'"sw{b}"[{pb}]'
        far[(b, pb)] = f'"sw{a}"[{pa}]'
    for lid, s, p in inp.ca_ports.tolist():
        far[(s, p)] = f'"h{lid}"[1]'
    lines = []
    for s in range(inp.num_switches):
        lines.append(f'Switch\t{int(inp.switch_num_ports[s])} "sw{s}"')
        lines += [
            f"[{p}]\t{far[(s, p)]}"
            for p in range(1, int(inp.switch_num_ports[s]) + 1)
            if (s, p) in far
        ]
        lines.append("")
    for lid, s, p in inp.ca_ports.tolist():
        lines += [f'Hca\t1 "h{lid}"', f'[1]\t"sw{s}"[{p}]', ""]
    path.write_text("\n".join(lines))


def run_opensm(net: Path, engine: str, work: Path) -> tuple[RoutingInput, np.ndarray]:
    """Bring the fabric of `net` up with OpenSM on ibsim; return the subnet as OpenSM
    numbered it (switches in GUID order, its LIDs) and the LFTs it programmed."""
    ibsim, opensm, shim = _opensm_tools()
    work.mkdir()
    env = dict(os.environ, IBSIM_SOCKNAME=f"ibmigrt{os.getpid()}n{next(_runs)}")
    log = work / "ibsim.log"
    with log.open("w") as out:
        sim = subprocess.Popen(
            [ibsim, "-s", "-n", str(net)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=work,
        )
    try:
        deadline = time.monotonic() + 20
        while "Network simulator ready" not in log.read_text():
            if sim.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ibsim did not start on {net}:\n{log.read_text()}")
            time.sleep(0.05)
        osm_env = dict(env, LD_PRELOAD=shim, OSM_CACHE_DIR=str(work), OSM_TMP_DIR=str(work))
        done = subprocess.run(
            [
                opensm,
                "-s",
                "0",
                "-o",
                "-D",
                "0x43",
                "-f",
                str(work / "osm.log"),
                "-R",
                engine,
                "--dump_files_dir",
                str(work),
            ],
            env=osm_env,
            cwd=work,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"opensm failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    finally:
        sim.terminate()
        try:
            sim.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sim.kill()
            sim.wait()
    return _read_opensm_dump(net, work / "opensm-lfts.dump")


def _read_opensm_dump(net: Path, dump: Path) -> tuple[RoutingInput, np.ndarray]:
    nodes: dict[str, tuple[str, int, dict[int, tuple[str, int]]]] = {}
    links: dict[int, tuple[str, int]] = {}
    for line in net.read_text().splitlines():
        head = re.match(r'(Switch|Hca|Ca)\s+(\d+)\s+"([^"]+)"', line)
        if head:
            links = {}
            nodes[head.group(3)] = (head.group(1), int(head.group(2)), links)
            continue
        cable = re.match(r'\[(\d+)\]\s+"([^"]+)"\[(\d+)\]', line)
        if cable:
            links[int(cable.group(1))] = (cable.group(2), int(cable.group(3)))
    lid_of: dict[str, int] = {}
    guid_of: dict[str, int] = {}
    entries: dict[str, dict[int, int]] = {}
    current = ""
    for line in dump.read_text().splitlines():
        head = re.match(
            r"Unicast lids .* of switch Lid (\d+) guid (0x[0-9a-f]+) \('([^']+)'\)", line
        )
        if head:
            current = head.group(3)
            entries[current] = {}
            continue
        row = re.match(r"(0x[0-9a-f]+) (\d+) # .* portguid (0x[0-9a-f]+): '([^']+)'", line)
        if row:
            entries[current][int(row.group(1), 16)] = int(row.group(2))
            lid_of[row.group(4)] = int(row.group(1), 16)
            guid_of[row.group(4)] = int(row.group(3), 16)
    switches = sorted((n for n, v in nodes.items() if v[0] == "Switch"), key=guid_of.__getitem__)
    index = {name: i for i, name in enumerate(switches)}
    cables, cas = [], []
    for name in switches:
        for port, (other, other_port) in nodes[name][2].items():
            if other not in index:
                cas.append((lid_of[other], index[name], port))
            elif (index[name], port) < (index[other], other_port):
                cables.append((index[name], port, index[other], other_port))
    max_lid = max(lid_of.values())
    inp = RoutingInput(
        num_switches=len(switches),
        switch_lids=np.array([lid_of[n] for n in switches]),
        switch_num_ports=np.array([nodes[n][1] for n in switches]),
        links=np.array(cables),
        ca_ports=np.array(cas),
        max_lid=max_lid,
        switch_guids=np.array([guid_of[n] for n in switches], dtype=np.uint64),
    )
    lft = np.full((len(switches), max_lid + 1), NO_PATH, dtype=np.uint8)
    for name in switches:
        for lid, port in entries[name].items():
            lft[index[name], lid] = port
    return inp, lft


def _interop_nets(tmp_path: Path) -> dict[str, Path]:
    nets = {"ft2-36": SHARED / "ft2-36.net"}  # 4 leaves x 9 hosts, 3 spines, 3 cables each
    for name, inp in (
        ("ft3-links2", fat_tree_3level(3, 3, 3, 3, 2, links=2)),
        ("ft3", fat_tree_3level(3, 3, 3, 3, 3)),
        ("irregular", random_graph(3, num=16, extra=14, parallel=2)),
    ):
        nets[name] = tmp_path / f"{name}.net"
        write_net(inp, nets[name])
    return nets


@pytest.mark.interop
@pytest.mark.parametrize(
    ("net", "engine"),
    [
        ("ft2-36", "minhop"),
        ("ft2-36", "updn"),
        ("ft3-links2", "minhop"),
        ("ft3-links2", "updn"),
        ("irregular", "minhop"),
    ],
)
def test_lfts_equal_opensm(tmp_path: Path, net: str, engine: str) -> None:
    """Same subnet, same LIDs: minhop and up*/down* (its roots detected by OpenSM's
    rule and ours alike on these trees) program exactly OpenSM's tables."""
    path = _interop_nets(tmp_path)[net]
    inp, expected = run_opensm(path, engine, tmp_path / "osm")
    assert np.array_equal(route(inp, engine).lft, expected)


@pytest.mark.interop
@pytest.mark.parametrize("net", ["ft2-36", "ft3"])
def test_ftree_routes_between_cas_equal_opensm(tmp_path: Path, net: str) -> None:
    """ftree: every entry a CA-to-CA route uses is OpenSM's (entries of switches off
    all such routes may differ)."""
    path = _interop_nets(tmp_path)[net]
    inp, expected = run_opensm(path, "ftree", tmp_path / "osm")
    ours = ftree(inp).lft
    used = np.zeros(expected.shape, dtype=bool)
    for src in np.unique(inp.ca_ports[:, 1]).tolist():
        src_lid = int(inp.ca_ports[inp.ca_ports[:, 1] == src, 0][0])
        for dst in inp.ca_ports[:, 0].tolist():
            for switch, _ in walk(expected, inp, src_lid, dst):
                used[switch, dst] = True
    assert used.sum() > 0
    assert np.array_equal(ours[used], expected[used])

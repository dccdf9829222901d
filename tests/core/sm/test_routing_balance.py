"""`balanced_routes` against a plain, switch-by-switch rendering of its rules.

balanced_routes is laid out for speed (one key array, costs and counts packed into
each key, a sink row for the switches that route nowhere); the reference here
follows the docstring literally: for every destination LID in order and every
switch, the least-cost ports are the allowed ones; the port held in `previous` is
kept if allowed, else the allowed port with the fewest CA LIDs so far, the lowest
on a tie; a CA LID counts on the chosen port, a switch LID does not; the
destination switch routes the LID out of its own port, unreachable switches get
255. Inputs: seeded random irregular graphs (parallel cables, several parts,
switches without LIDs), fat trees with doubled cables, destination orders with
repeats and interleaved CA and switch LIDs, cost functions of minhop, up*/down*
and random ones, and `previous` tables (random, short, or an earlier routing).
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
import pytest
from scipy import sparse

from ibmig.core.sm.routing import (
    RoutingError,
    RoutingInput,
    minhop,
    port_loads,
    route,
    switch_hops,
    updn,
)
from ibmig.core.sm.routing_base import Fabric, balanced_routes, bfs_hops
from ibmig.core.sm.routing_updn import updn_cost_function
from tests.core.sm.test_routing import (
    fat_tree_2level,
    fat_tree_3level,
    random_graph,
    reference_minhop,
)

Cost = Callable[[int], np.ndarray]


def reference_balance(
    fab: Fabric, dest: list[int], cost_for: Cost, previous: np.ndarray | None
) -> tuple[dict[tuple[int, int], int], np.ndarray]:
    """Entries (switch, lid) -> port and CA LIDs per (switch, port), LID by LID."""
    num, width = fab.num_switches, fab.num_ports
    ca = set(fab.ca_lids.tolist())
    count = [[0] * width for _ in range(num)]
    entries: dict[tuple[int, int], int] = {}
    loads = np.zeros((num, width), dtype=np.int64)
    for lid in dest:
        t = int(fab.lid_switch[lid])
        cost = cost_for(t)
        for s in range(num):
            if s == t:
                port = int(fab.lid_port[lid])
            else:
                costs = [int(cost[p, s]) for p in range(width)]
                least = min(costs)
                if least == 255:
                    entries[(s, lid)] = 255
                    continue
                allowed = [p for p in range(width) if costs[p] == least]
                held = None
                if previous is not None and lid < previous.shape[1]:
                    held = int(previous[s, lid])
                port = held if held in allowed else min(allowed, key=lambda p: (count[s][p], p))
                if lid in ca:
                    count[s][port] += 1
            entries[(s, lid)] = port
            if lid in ca:
                loads[s, port] += 1
    return entries, loads


def minhop_cost(fab: Fabric, inp: RoutingInput) -> Cost:
    hops = switch_hops(inp)

    def cost_for(t: int) -> np.ndarray:
        cost = np.full((fab.num_ports, fab.num_switches), 255, dtype=np.uint8)
        for s in range(fab.num_switches):
            for p in range(fab.num_ports):
                far = int(fab.nbr[s, p])
                if far >= 0:
                    cost[p, s] = hops[t, far]
        return cost

    return cost_for


def random_cost(fab: Fabric, seed: int) -> Cost:
    """Arbitrary costs (ties, zeros, whole switches unreachable), fixed per t; port 0
    (the switch's own) is never a way to another switch, as in every engine."""
    made: dict[int, np.ndarray] = {}

    def cost_for(t: int) -> np.ndarray:
        if t not in made:
            rng = np.random.default_rng([seed, t])
            made[t] = rng.choice(
                np.array([0, 1, 1, 2, 3, 255, 255], dtype=np.uint8),
                size=(fab.num_ports, fab.num_switches),
            )
            made[t][0] = 255
        return made[t]

    return cost_for


def random_dest(fab: Fabric, rng: random.Random) -> list[int]:
    """Every destination LID in some order, some repeated, runs behind one switch
    kept together or broken up."""
    lids = [int(x) for x in fab.destination_order()]
    if rng.random() < 0.5:
        rng.shuffle(lids)
    for _ in range(rng.randrange(4)):
        if lids:
            at = rng.randrange(len(lids))
            lids[at:at] = [lids[rng.randrange(len(lids))]] * rng.randrange(1, 4)
    return lids


def random_previous(fab: Fabric, first: np.ndarray, rng: random.Random) -> np.ndarray | None:
    choice = rng.randrange(4)
    if choice == 0:
        return None
    if choice == 1:  # an earlier routing, partly scrambled
        noise = np.random.default_rng(rng.randrange(1 << 30))
        scrambled = first.copy()
        mask = noise.random(first.shape) < 0.3
        scrambled[mask] = noise.integers(0, fab.num_ports + 2, size=int(mask.sum()))
        return scrambled
    noise = np.random.default_rng(rng.randrange(1 << 30))
    cols = first.shape[1] if choice == 2 else rng.randrange(1, first.shape[1] + 1)
    return noise.integers(0, 256, size=(fab.num_switches, cols)).astype(np.uint8)


def check_against_reference(
    inp: RoutingInput, cost_for: Cost, dest: list[int], previous: np.ndarray | None
) -> None:
    fab = Fabric(inp)
    lft = fab.new_lft()
    loads = balanced_routes(fab, lft, dest, cost_for, previous)
    entries, expected_loads = reference_balance(fab, dest, cost_for, previous)
    expected = fab.new_lft()
    for (s, lid), port in entries.items():
        expected[s, lid] = port
    assert np.array_equal(lft, expected)
    assert np.array_equal(loads, expected_loads)


def random_case(seed: int) -> RoutingInput:
    rng = random.Random(seed)
    num = rng.randrange(1, 13)
    inp = random_graph(seed, num, extra=rng.randrange(8), parallel=rng.randrange(4), ports=8)
    if rng.random() < 0.3:  # a switch without LID is no destination; a cable cut splits parts
        lids = inp.switch_lids.copy()
        lids[rng.randrange(num)] = 0
        links = inp.links[: max(0, len(inp.links) - rng.randrange(3))]
        inp = RoutingInput(num, lids, inp.switch_num_ports, links, inp.ca_ports, inp.max_lid)
    return inp


@pytest.mark.parametrize("block", range(4))
def test_random_fabrics_match_the_reference(block: int) -> None:
    """200 random irregular fabrics x (minhop, up*/down*, random) costs."""
    for seed in range(block * 50, block * 50 + 50):
        inp = random_case(seed)
        fab = Fabric(inp)
        rng = random.Random(seed + 10_000)
        first = minhop(inp).lft
        key = fab.order_key(np.asarray(switch_hops(inp)[0], dtype=np.int64))
        for cost_for in (
            minhop_cost(fab, inp),
            updn_cost_function(fab, key)[0],
            random_cost(fab, seed),
        ):
            check_against_reference(inp, cost_for, random_dest(fab, rng), None)
            check_against_reference(
                inp, cost_for, random_dest(fab, rng), random_previous(fab, first, rng)
            )


@pytest.mark.parametrize(
    "make",
    [
        lambda: fat_tree_2level(4, 3, 3, links=2),
        lambda: fat_tree_2level(6, 5, 2, links=3),
        lambda: fat_tree_3level(3, 2, 3, 2, 2, links=2),
        lambda: fat_tree_3level(2, 3, 4, 3, 2, links=1),
    ],
)
def test_fat_trees_with_parallel_cables_match_the_reference(
    make: Callable[[], RoutingInput],
) -> None:
    inp = make()
    fab = Fabric(inp)
    first = minhop(inp).lft
    for seed in range(25):
        rng = random.Random(seed)
        previous = random_previous(fab, first, rng)
        order = [int(x) for x in fab.destination_order()]
        dest = order if seed % 2 else random_dest(fab, rng)
        check_against_reference(inp, minhop_cost(fab, inp), dest, previous)


@pytest.mark.parametrize("seed", range(0, 60, 3))
def test_minhop_matches_its_reference_with_previous_tables(seed: int) -> None:
    """The whole engine against the independent reference in test_routing, and the
    loads it reports against `port_loads` of its table."""
    rng = random.Random(seed)
    inp = fat_tree_3level(2, 3, 2, 2, 2, links=2) if seed % 2 else random_case(seed)
    first = minhop(inp)
    previous = random_previous(Fabric(inp), first.lft, rng)
    again = minhop(inp, previous)
    assert np.array_equal(again.lft, reference_minhop(inp, previous))
    assert np.array_equal(again.port_lids, port_loads(again.lft, inp))
    with_updn = updn(inp, previous=previous) if inp.num_switches else None
    if with_updn is not None:
        assert np.array_equal(with_updn.port_lids, port_loads(with_updn.lft, inp))


def test_every_engine_reports_the_loads_of_its_table() -> None:
    inp = fat_tree_3level(3, 2, 3, 2, 2, links=2)
    for engine in ("minhop", "updn", "ftree"):
        result = route(inp, engine)
        assert np.array_equal(result.port_lids, port_loads(result.lft, inp))


def test_too_many_ca_lids_for_the_packed_counts_are_refused() -> None:
    """A count has 16 bits in balanced_routes' keys: a destination list repeating CA
    LIDs 2^16 times is refused, not silently wrapped."""
    inp = fat_tree_2level(2, 1, 1)
    fab = Fabric(inp)
    lids = np.repeat(fab.ca_lids, (1 << 16) // fab.ca_lids.size)
    with pytest.raises(RoutingError, match="2\\^16 or more CA LIDs"):
        balanced_routes(fab, fab.new_lft(), lids, minhop_cost(fab, inp))


def plain_bfs(edges: set[tuple[int, int]], num: int) -> np.ndarray:
    dist = np.full((num, num), 255, dtype=np.uint8)
    out: dict[int, list[int]] = {s: [] for s in range(num)}
    for a, b in sorted(edges):
        out[a].append(b)
    for src in range(num):
        dist[src, src] = 0
        frontier = [src]
        while frontier:
            nxt = []
            for u in frontier:
                for v in out[u]:
                    if dist[src, v] == 255:
                        dist[src, v] = dist[src, u] + 1
                        nxt.append(v)
            frontier = nxt
    return dist


@pytest.mark.parametrize("seed", range(40))
def test_bfs_hops_matches_a_plain_bfs(seed: int) -> None:
    """Random directed graphs with repeated edges (bfs_hops runs in uint8 counts)."""
    rng = random.Random(seed)
    num = rng.randrange(1, 30)
    edges = [(rng.randrange(num), rng.randrange(num)) for _ in range(rng.randrange(3 * num))]
    edges = [(a, b) for a, b in edges if a != b]
    rows = np.array([a for a, _ in edges], dtype=np.int64)
    cols = np.array([b for _, b in edges], dtype=np.int64)
    adj = sparse.csr_array((np.ones(len(edges), dtype=np.float32), (rows, cols)), shape=(num, num))
    assert np.array_equal(bfs_hops(adj, num), plain_bfs(set(edges), num))


@pytest.mark.parametrize("leaves", [255, 256, 300])
def test_bfs_hops_around_a_byte_of_neighbours(leaves: int) -> None:
    """A hub whose every neighbour is in the frontier at once: 255 still fits the
    uint8 count, more take the float32 path."""
    num = leaves + 2
    edges = {(0, i) for i in range(1, leaves + 1)} | {(i, leaves + 1) for i in range(1, leaves + 1)}
    edges |= {(b, a) for a, b in edges}
    rows, cols = zip(*sorted(edges), strict=True)
    adj = sparse.csr_array(
        (np.ones(len(rows), dtype=np.float32), (np.array(rows), np.array(cols))), shape=(num, num)
    )
    assert np.array_equal(bfs_hops(adj, num), plain_bfs(edges, num))

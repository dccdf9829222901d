"""Min-hop and up*/down* routing.

minhop
    Every switch routes every LID over a port on a shortest path (hop count between
    switches, as OpenSM's min-hop tables), balancing as `balanced_routes` explains.
    Given the same subnet and LIDs the tables are OpenSM 3.3.23's byte for byte
    (checked on ibsim: fat trees with parallel cables, an irregular graph). Not
    deadlock free on topologies with cycles (a ring, a torus).

updn
    Up*/down* (Schroeder et al., Autonet, 1991; OpenSM osm_ucast_updn.c). Switches
    get a rank, the BFS distance from the nearest root. The switches are totally
    ordered by (rank, GUID) -- by index without GUIDs -- and a hop towards a smaller
    key goes "up". A legal route goes up any number of hops, then down, never down
    then up: no cycle of channel dependencies can close, so the routing is deadlock
    free on any topology.

    An LFT is indexed by destination only: a switch cannot know whether a packet
    has already gone down. So for every destination switch t the engine first
    computes `dn[s, t]`, the length of the shortest all-down route from s (BFS over
    down hops only), and routes:

    * if s can reach t going only down, over a down port on a shortest all-down
      route ("prefer down"): a packet that arrived going down stays on down hops;
    * otherwise up, over an up port towards the up neighbour u with the smallest
      route length L[u, t]; L[s, t] = dn[s, t] if finite, else 1 + min L[u, t].

    Every LFT path is then legal wherever the packet entered it. With the roots at
    the top of a fat tree the routes are shortest paths; on irregular graphs a route
    can be longer than the shortest legal up*/down* path when going up first would
    have been shorter than the all-down path (no destination-indexed table can give
    every source its shortest legal path in general). Among the ports allowed, the
    choice is minhop's balance.

    Differences from OpenSM, on purpose: (1) OpenSM treats a link between two roots
    as "up" in both directions (a hack noted in its source), which can close a cycle
    when roots are cabled together; the total order here never does. (2) OpenSM
    marks a switch with one direction when its BFS first reaches it and keeps the
    per-port hop counts of any direction; the prefer-down rule above is its
    consistent version (on a random 16-switch graph with one root OpenSM's tables
    were one hop shorter for one pair, and legal there). Where neither matters --
    fat trees with the top level as roots -- the tables are OpenSM's byte for byte.

    Roots: given (indices, or GUIDs through `compute_lfts`), or detected by
    `updn_roots`: in every connected part, the switches whose largest hop count to a
    switch with channel adapters is smallest (the centre of the subnet as the CAs
    see it). On a fat tree that is the top level: spines of a 2-level tree, cores of
    a 3-level tree. OpenSM's own detection (`opensm_updn_roots`, kept for comparison)
    takes every switch that sees more than 90 % of the CAs at one hop distance and
    no other distance above 5 %; it finds the spines of small trees, but in the
    11,664-host 3-level tree every leaf sees 97 % of the CAs at 4 hops and every mid
    97 % at 3, so it makes every switch a root -- with OpenSM's root-root hack that is
    plain minhop, without it a poor order -- so it is not the default here.

    As in OpenSM without connect_roots, two switches with no legal route between
    them (two spines of a 2-level tree) get no route for each other's LID (255); on
    a fat tree every CA still reaches every CA and every switch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from ibmig.core.sm.routing_base import (
    NO_PATH,
    UNREACHABLE_HOPS,
    BoolArray,
    CostFn,
    Fabric,
    IntArray,
    RoutingError,
    RoutingInput,
    RoutingResult,
    U8Array,
    balanced_routes,
    bfs_hops,
)

__all__ = [
    "minhop",
    "opensm_updn_roots",
    "updn",
    "updn_ranks",
    "updn_roots",
]


def _with_nowhere(rows: U8Array) -> U8Array:
    """Append a column of 255 so that gathers through `nbr_safe` read "unreachable"."""
    out = np.full((rows.shape[0], rows.shape[1] + 1), UNREACHABLE_HOPS, dtype=np.uint8)
    out[:, :-1] = rows
    return out


def minhop(inp: RoutingInput, previous: U8Array | None = None) -> RoutingResult:
    """Shortest-path LFTs balanced like OpenSM's minhop; `previous`: the LFTs the
    switches hold now, kept where still shortest (see `balanced_routes`)."""
    fab = Fabric(inp)
    num = fab.num_switches
    hops = bfs_hops(fab.adj, num)
    # hops is symmetric: row t holds every switch's distance to t
    to_t = _with_nowhere(hops)
    far = np.ascontiguousarray(fab.nbr_safe.T)  # port-major, as balanced_routes wants

    def cost_for(t: int) -> U8Array:
        cost: U8Array = to_t[t][far]
        return cost

    lft = fab.new_lft()
    # every LID once: the loads balanced_routes counted are `port_loads(lft, inp)`
    loads = balanced_routes(fab, lft, fab.destination_order(), cost_for, previous)
    diameter = int(hops[hops != UNREACHABLE_HOPS].max()) if num else 0
    return RoutingResult(
        engine="minhop",
        lft=lft,
        port_lids=loads,
        stats={"switch_diameter_hops": diameter},
    )


def _components(fab: Fabric) -> list[IntArray]:
    count, labels = csgraph.connected_components(fab.adj, directed=False)
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(count + 1))
    return [order[bounds[i] : bounds[i + 1]] for i in range(count)]


def _ca_switch_mask(fab: Fabric) -> BoolArray:
    mask = np.zeros(fab.num_switches, dtype=np.bool_)
    mask[fab.lid_switch[fab.ca_lids]] = True
    return mask


def updn_roots(inp: RoutingInput, hops: U8Array | None = None) -> tuple[int, ...]:
    """Up*/down* roots: per connected part, the switches of least eccentricity
    towards the switches that have channel adapters (all switches if none has)."""
    fab = Fabric(inp)
    if hops is None:
        hops = bfs_hops(fab.adj, fab.num_switches)
    has_ca = _ca_switch_mask(fab)
    roots: list[int] = []
    for members in _components(fab):
        targets = members[has_ca[members]]
        if targets.size == 0:
            targets = members
        ecc = hops[np.ix_(members, targets)].max(axis=1)
        roots.extend(members[ecc == ecc.min()].tolist())
    return tuple(sorted(roots))


def opensm_updn_roots(inp: RoutingInput, hops: U8Array | None = None) -> tuple[int, ...]:
    """OpenSM's automatic root detection (osm_ucast_updn.c, find roots by min hop):
    a switch is a root if exactly one hop distance holds more than 90 % of the CAs
    and no other distance more than 5 %."""
    fab = Fabric(inp)
    if hops is None:
        hops = bfs_hops(fab.adj, fab.num_switches)
    ca_switch = fab.lid_switch[fab.ca_lids]
    total = ca_switch.size
    if total == 0:
        return ()
    per_switch = np.bincount(ca_switch, minlength=fab.num_switches)
    # histogram[s, h]: CAs at h hops from s (the CA's own switch counts as 0)
    weights = per_switch[None, :].repeat(fab.num_switches, axis=0)
    flat = np.arange(fab.num_switches)[:, None] * 256 + hops.astype(np.int64)
    histogram = np.bincount(flat.ravel(), weights.ravel(), minlength=fab.num_switches * 256)
    histogram = histogram.reshape(fab.num_switches, 256)[:, :UNREACHABLE_HOPS]
    over_90 = (histogram > 0.9 * total).sum(axis=1)
    over_5 = (histogram > 0.05 * total).sum(axis=1)
    return tuple(np.flatnonzero((over_90 == 1) & (over_5 == 1)).tolist())


def updn_ranks(inp: RoutingInput, roots: Sequence[int], hops: U8Array | None = None) -> IntArray:
    """Rank of every switch: hop distance to the nearest root (255 if none reachable)."""
    fab = Fabric(inp)
    if hops is None:
        hops = bfs_hops(fab.adj, fab.num_switches)
    return _ranks(hops, tuple(_check_roots(roots, fab.num_switches).tolist()))


def _ranks(hops: U8Array, roots: tuple[int, ...]) -> IntArray:
    if hops.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    if not roots:
        raise RoutingError("up*/down* needs at least one root switch")
    ranks: IntArray = hops[list(roots)].min(axis=0).astype(np.int64)
    return ranks


def _check_roots(roots: Sequence[int], num: int) -> IntArray:
    root_array = np.unique(np.asarray(list(roots), dtype=np.int64))
    if root_array.size and (root_array.min() < 0 or root_array.max() >= num):
        raise RoutingError(f"root switch index out of range 0..{num - 1}: {roots!r}")
    return root_array


def updn_tables(fab: Fabric, key: IntArray) -> tuple[U8Array, U8Array]:
    """(dn, length) for the total order `key` (smaller is up).

    dn[s, t]: hops of the shortest all-down route s -> t; length[s, t]: hops of the
    prefer-down route (dn if finite, else one more than the best up neighbour's).
    """
    num = fab.num_switches
    coo = fab.adj.tocoo()
    down = key[coo.col] > key[coo.row]
    adj_down = sparse.csr_array((coo.data[down], (coo.row[down], coo.col[down])), shape=(num, num))
    dn = bfs_hops(adj_down, num)
    length = dn.copy()
    for s in np.argsort(key, kind="stable").tolist():
        ups = fab.neighbours(s)
        ups = ups[key[ups] < key[s]]
        if ups.size == 0:
            continue
        best = length[ups].min(axis=0)
        via = np.where(best == UNREACHABLE_HOPS, UNREACHABLE_HOPS, best + 1).astype(np.uint8)
        length[s] = np.where(dn[s] != UNREACHABLE_HOPS, dn[s], via)
    return dn, length


def updn_cost_function(fab: Fabric, key: IntArray) -> tuple[CostFn, U8Array, U8Array]:
    """The `cost_for` of up*/down* for `balanced_routes`, and its (dn, length) tables."""
    dn, length = updn_tables(fab, key)
    dn_to = _with_nowhere(np.ascontiguousarray(dn.T))
    len_to = _with_nowhere(np.ascontiguousarray(length.T))
    # port-major (ports x switches), as balanced_routes wants
    far = np.ascontiguousarray(fab.nbr_safe.T)
    valid = far != fab.num_switches
    key_ext = np.r_[key, -1]
    far_key = key_ext[far]
    is_down = valid & (far_key > key[None, :])
    is_up = valid & (far_key < key[None, :])
    num = fab.num_switches

    def cost_for(t: int) -> U8Array:
        down_mode = dn_to[t, :num] != UNREACHABLE_HOPS
        down_cost = np.where(is_down, dn_to[t][far], np.uint8(UNREACHABLE_HOPS))
        up_cost = np.where(is_up, len_to[t][far], np.uint8(UNREACHABLE_HOPS))
        return np.where(down_mode[None, :], down_cost, up_cost).astype(np.uint8)

    return cost_for, dn, length


def _unconnected_ca_pair(fab: Fabric, hops: U8Array, length: U8Array) -> tuple[int, int] | None:
    """A pair of switches with CAs, connected, but without a legal route (or None)."""
    ca_switches = np.unique(fab.lid_switch[fab.ca_lids])
    sub = np.ix_(ca_switches, ca_switches)
    bad = (length[sub] == UNREACHABLE_HOPS) & (hops[sub] != UNREACHABLE_HOPS)
    if not bad.any():
        return None
    i, j = np.argwhere(bad)[0]
    return int(ca_switches[i]), int(ca_switches[j])


def updn(
    inp: RoutingInput, roots: Sequence[int] | None = None, previous: U8Array | None = None
) -> RoutingResult:
    """Up*/down* LFTs; `roots` are switch indices (None: `updn_roots`); `previous`:
    the LFTs the switches hold now, kept where still allowed and shortest.

    Several roots can leave two CA switches without a legal route (two roots with
    nothing above them that reach disjoint parts going down; never in a fat tree
    with its top level as roots). Detected roots then shrink to one per connected
    part, the first centre switch in GUID (or index) order, which always connects
    everything; given roots raise RoutingError.
    """
    fab = Fabric(inp)
    num = fab.num_switches
    hops = bfs_hops(fab.adj, num)
    if roots is None:
        root_tuple = updn_roots(inp, hops)
    else:
        root_tuple = tuple(_check_roots(roots, num).tolist())
    ranks = _ranks(hops, root_tuple)
    key = fab.order_key(ranks)
    cost_for, _dn, length = updn_cost_function(fab, key)
    single_root = False
    pair = _unconnected_ca_pair(fab, hops, length)
    if pair is not None:
        if roots is not None:
            raise RoutingError(
                f"up*/down* with roots {root_tuple}: switches {pair[0]} and {pair[1]} have "
                "channel adapters but no legal route between them"
            )
        single_root = True
        firsts = []
        for members in _components(fab):
            mine = [r for r in root_tuple if r in set(members.tolist())]
            firsts.append(min(mine, key=lambda r: int(fab.tie[r])))
        root_tuple = tuple(sorted(firsts))
        ranks = _ranks(hops, root_tuple)
        key = fab.order_key(ranks)
        cost_for, _dn, length = updn_cost_function(fab, key)
    lft = fab.new_lft()
    loads = balanced_routes(fab, lft, fab.destination_order(), cost_for, previous)
    reachable = hops != UNREACHABLE_HOPS
    unroutable = (length == UNREACHABLE_HOPS) & reachable
    stretched = int(((length != hops) & reachable & ~unroutable).sum())
    return RoutingResult(
        engine="updn",
        lft=lft,
        port_lids=loads,
        ranks=ranks,
        roots=root_tuple,
        stats={
            "max_rank": int(ranks[ranks != UNREACHABLE_HOPS].max()) if num else 0,
            "fell_back_to_one_root": int(single_root),
            "switch_pairs_longer_than_shortest": stretched,
            "switch_pairs_without_legal_route": int(unroutable.sum()),
            "no_path_entries": int((lft == NO_PATH).sum()),
        },
    )

"""Fat-tree routing (the idea of OpenSM's osm_ucast_ftree.c, Zahavi et al.).

Levels. Leaves are the switches with channel adapters (level 0); every other
switch's level is its hop distance from the nearest leaf. With `roots` given, the
roots are the top level instead and level = top - distance from the nearest root
(a leaf that lost all its hosts then stays a leaf). OpenSM's rank is top - level.

What counts as a fat tree (RoutingError otherwise, naming the first offence):
at least two levels; connected; every cable joins adjacent levels; channel
adapters only on leaves; every switch below the top has an up cable; within a
level every switch has the same number of distinct up neighbours, the same
number of cables to each, and (above the leaves) the same number of distinct down
neighbours with the same number of cables to each (OpenSM's
fabric_validate_topology); and at every level the sets of leaves below the
switches partition the leaves (switches of a level either have the same leaves
below them or none in common), which is what makes routes through the chosen top
switch shortest. 2- and 3-level trees, k-ary n-trees and the pod/core-group
3-level trees the generators build all qualify.

Routing, per CA destination d on leaf L, in OpenSM's order (leaves in index/GUID
order, the CAs of a leaf by port):

1. Main path up. From L, repeatedly take the up cable group (all cables to one
   upper switch) that carries the fewest destinations down so far; on a tie the
   upper switch whose least loaded down group is least loaded, then the lowest
   index; within the group the least loaded cable. That gives a chain L = s0, s1,
   ..., sh to a top switch, and s_k routes d down the chosen cable: the down route
   from the top is unique. For a k-ary n-tree this spreads exactly like d-mod-k:
   host h of every leaf goes up through the h-th upper switch, and every top
   switch is the root of the same number of destinations.
2. Ancestors of L (switches that reach L going only down) route down: to the
   chain switch one level below if they are cabled to it, else to their lowest
   child that is still an ancestor.
3. Every other switch x routes up towards the lowest chain switch s_m that has x
   below it, along a shortest down path from s_m reversed: traffic to d from
   everywhere converges on the chain, so every destination has one top switch.
   If that is not a shortest legal route (only possible above the leaves, e.g. a
   mid switch of another core group, which no CA's route crosses), x goes up
   over a shortest legal route (up*/down*, top level as roots), its candidates
   taken in turn.

Cable choice inside a group of parallel cables, as OpenSM: a route going down
takes the cable the next main path through the group would take (the one with
the fewest main paths so far); routes going up take the cables in turn. Switch
LIDs are routed afterwards with up*/down* (top level as roots) and minhop's
balance, without counting.

Against OpenSM 3.3.23 on ibsim with the same LIDs: on 2-level trees (parallel
cables included) every CA LID entry is OpenSM's; on 3-level trees every entry
that a CA-to-CA route uses is OpenSM's. Entries of switches no CA route crosses
(step 3's exceptions) differ: OpenSM takes them from whatever order its load
sorting left; and where such entries share a parallel cable group with CA
routes, the turn, hence the cable, of those can differ too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from ibmig.core.sm.routing_base import (
    NO_PATH,
    UNREACHABLE_HOPS,
    BoolArray,
    Fabric,
    IntArray,
    RoutingError,
    RoutingInput,
    RoutingResult,
    U8Array,
    balanced_routes,
    bfs_hops,
    port_loads,
)
from ibmig.core.sm.routing_updn import updn_cost_function

__all__ = ["fat_tree_levels", "ftree"]

I32Array = npt.NDArray[np.int32]

_CHUNK = 1024


def fat_tree_levels(inp: RoutingInput, roots: Sequence[int] | None = None) -> IntArray:
    """Level of every switch (0 = leaves), after checking the fat-tree shape."""
    fab = Fabric(inp)
    hops = bfs_hops(fab.adj, fab.num_switches)
    return _levels(fab, hops, roots)


def _fail(message: str) -> RoutingError:
    return RoutingError(f"not a fat tree: {message}")


def _levels(fab: Fabric, hops: U8Array, roots: Sequence[int] | None) -> IntArray:
    num = fab.num_switches
    if num == 0:
        raise _fail("no switches")
    ca_switches = np.unique(fab.lid_switch[fab.ca_lids])
    apart = np.flatnonzero(hops[0] == UNREACHABLE_HOPS)
    if apart.size:
        raise _fail(f"switch {int(apart[0])} is not connected to switch 0")
    if roots is None:
        if ca_switches.size == 0:
            raise _fail("no switch has a channel adapter")
        level = hops[ca_switches].min(axis=0).astype(np.int64)
    else:
        root_array = np.unique(np.asarray(list(roots), dtype=np.int64))
        if root_array.size == 0 or root_array.min() < 0 or root_array.max() >= num:
            raise RoutingError(f"root switch indices must be in 0..{num - 1}: {roots!r}")
        dist = hops[root_array].min(axis=0).astype(np.int64)
        level = dist.max() - dist
        on_top = ca_switches[level[ca_switches] != 0]
        if on_top.size:
            raise _fail(f"switch {int(on_top[0])} has channel adapters but is not a leaf")
    coo = fab.adj.tocoo()
    bad = np.abs(level[coo.row] - level[coo.col]) != 1
    if bad.any():
        a, b = int(coo.row[bad][0]), int(coo.col[bad][0])
        raise _fail(
            f"switches {a} (level {int(level[a])}) and {b} (level {int(level[b])}) are cabled "
            "but not on adjacent levels"
        )
    top = int(level.max())
    if top == 0:
        raise _fail("a single level: nothing to route up")
    _check_uniform(fab, level, top)
    levels: IntArray = level
    return levels


def _groups(fab: Fabric, switch: int, upper: bool, level: IntArray) -> tuple[int, ...]:
    """Cable counts to each distinct upper (or lower) neighbour, by neighbour."""
    row = fab.nbr[switch]
    far = row[row >= 0]
    far = far[(level[far] > level[switch]) == upper]
    _, counts = np.unique(far, return_counts=True)
    return tuple(sorted(counts.tolist()))


def _check_uniform(fab: Fabric, level: IntArray, top: int) -> None:
    for lvl in range(top + 1):
        members = np.flatnonzero(level == lvl)
        reference: dict[bool, tuple[int, ...]] = {}
        for s in members.tolist():
            for upper in (True, False):
                if upper and lvl == top:
                    continue
                if not upper and lvl == 0:
                    continue
                shape = _groups(fab, s, upper, level)
                if upper and not shape:
                    raise _fail(f"switch {s} (level {lvl}) has no cable up")
                ref = reference.setdefault(upper, shape)
                if shape != ref:
                    word = "up" if upper else "down"
                    raise _fail(
                        f"switches {int(members[0])} and {s} (level {lvl}) differ in their "
                        f"{word} cables: {len(ref)} neighbours x {ref[:4]}... vs "
                        f"{len(shape)} x {shape[:4]}..."
                    )


def _check_partition(dn: U8Array, level: IntArray, top: int) -> None:
    leaves = np.flatnonzero(level == 0)
    for lvl in range(1, top + 1):
        members = np.flatnonzero(level == lvl)
        below = dn[np.ix_(members, leaves)] != UNREACHABLE_HOPS
        patterns = np.unique(below, axis=0)
        cover = patterns.sum(axis=0)
        if (cover != 1).any():
            leaf = int(leaves[np.argmax(cover != 1)])
            raise _fail(
                f"at level {lvl} the switches above leaf {leaf} do not all have the same "
                "leaves below them"
            )


def _first_match(candidates: IntArray, match: BoolArray) -> IntArray:
    """For each column of `match` (k x n), the first candidate whose row is True, else -1."""
    if candidates.size == 0:
        return np.full(match.shape[1], -1, dtype=np.int64)
    first = match.argmax(axis=0)
    return np.where(match.any(axis=0), candidates[first], -1)


def _next_hop_tables(
    fab: Fabric, level: IntArray, dn: U8Array
) -> tuple[I32Array, I32Array, IntArray]:
    """(up_to, down_to, parents), the first two (switches x switches) of next switches.

    up_to[x, a]: the parent of x on a shortest down path from a to x (a above x);
    down_to[x, t]: the child of x on a shortest down path from x to t; candidates
    are tried in GUID (or index) order, the first matching wins (in a k-ary n-tree
    there is only one). parents[x]: the upper neighbours of x in that order, padded
    with the virtual switch `num`.
    """
    num = fab.num_switches
    up_to = np.full((num, num), -1, dtype=np.int32)
    down_to = np.full((num, num), -1, dtype=np.int32)
    dn_i = dn.astype(np.int16)
    uppers: list[IntArray] = []
    for x in range(num):
        near = fab.neighbours(x)
        near = near[np.argsort(fab.tie[near], kind="stable")]
        parents = near[level[near] > level[x]]
        children = near[level[near] < level[x]]
        uppers.append(parents)
        below_x = dn_i[:, x]
        want = np.where((below_x == UNREACHABLE_HOPS) | (below_x == 0), -99, below_x - 1)
        up_to[x] = _first_match(parents, want[None, :] == dn_i[:, parents].T)
        want = np.where(dn_i[x] == UNREACHABLE_HOPS, -99, dn_i[x] - 1)
        down_to[x] = _first_match(children, dn_i[children] == want[None, :])
    width = max((p.size for p in uppers), default=0)
    parents_pad = np.full((num, max(width, 1)), num, dtype=np.int64)
    for x, parents in enumerate(uppers):
        parents_pad[x, : parents.size] = parents
    return up_to, down_to, parents_pad


def _spread_up(
    parents_pad: IntArray, length_ext: U8Array, xs: IntArray, leaves: IntArray, turn: IntArray
) -> IntArray:
    """For each (x, leaf): among the upper neighbours of x one hop closer to the leaf
    on prefer-down up*/down* routes, the `turn`-th (modulo their number); -1 if none.

    Entries come grouped by (x, leaf) (by switch, then destination order, and the
    destinations of a leaf are consecutive), so the candidates are worked out once
    per run of equal pairs.
    """
    if xs.size == 0:
        return xs
    change = np.r_[True, (np.diff(xs) != 0) | (np.diff(leaves) != 0)]
    first = np.flatnonzero(change)
    run = np.cumsum(change) - 1
    px, pl = xs[first], leaves[first]
    candidates = parents_pad[px]
    here = length_ext[px, pl].astype(np.int16)
    closer = length_ext[candidates, pl[:, None]].astype(np.int16) == (here - 1)[:, None]
    closer &= (here != UNREACHABLE_HOPS)[:, None]
    count = closer.sum(axis=1)
    ordered = np.take_along_axis(candidates, np.argsort(~closer, axis=1, kind="stable"), axis=1)
    pick = turn % np.maximum(count[run], 1)
    return np.where(count[run] > 0, ordered[run, pick], -1)


class _Chains:
    """Main paths (step 1): chain switches and the down port each uses.

    As OpenSM: the group (cables to one upper switch) that carries the fewest main
    paths down, ties to the upper switch with the least loaded down group, then GUID
    (or index) order; in the group the cable with the fewest main paths, the lowest
    port of the lower switch on a tie (so the k-th main path through a group takes
    its (k mod n)-th cable).
    """

    def __init__(self, fab: Fabric, level: IntArray, top: int, dest_switch: IntArray) -> None:
        num = fab.num_switches
        count = dest_switch.size
        self.switch = np.zeros((count, top + 1), dtype=np.int64)
        self.port = np.zeros((count, top + 1), dtype=np.int64)
        # per switch: (parent, the parent's ports to it by our port), parents in tie order
        up_groups: list[list[tuple[int, list[int]]]] = []
        for s in range(num):
            row = fab.nbr[s]
            ports = np.flatnonzero(row >= 0)
            ports = ports[level[row[ports]] > level[s]]
            parents: dict[int, list[int]] = {}
            for p in ports.tolist():  # ascending
                parents.setdefault(int(row[p]), []).append(int(fab.rport[s, p]))
            ordered = sorted(parents.items(), key=lambda item: int(fab.tie[item[0]]))
            up_groups.append(ordered)
        self.group_load: list[dict[int, int]] = [{} for _ in range(num)]
        for s in range(num):
            for parent, _ports in up_groups[s]:
                self.group_load[parent][s] = 0
        least_down = [0] * num
        tie = fab.tie.tolist()
        for d, leaf in enumerate(dest_switch.tolist()):
            cur = leaf
            self.switch[d, 0] = leaf
            for lvl in range(1, top + 1):
                best: tuple[int, int, int] | None = None
                best_parent = -1
                best_ports: list[int] = []
                for parent, ports in up_groups[cur]:
                    rank = (self.group_load[parent][cur], least_down[parent], tie[parent])
                    if best is None or rank < best:
                        best, best_parent, best_ports = rank, parent, ports
                load = self.group_load[best_parent]
                old = load[cur]
                load[cur] = old + 1
                if old == least_down[best_parent]:
                    least_down[best_parent] = min(load.values())
                self.switch[d, lvl] = best_parent
                self.port[d, lvl] = best_ports[old % len(best_ports)]
                cur = best_parent


def ftree(inp: RoutingInput, roots: Sequence[int] | None = None) -> RoutingResult:
    """Fat-tree LFTs; `roots` (switch indices) fix the top level (None: from the CAs)."""
    fab = Fabric(inp)
    num = fab.num_switches
    hops = bfs_hops(fab.adj, num)
    level = _levels(fab, hops, roots)
    top = int(level.max())
    ranks = top - level
    key = fab.order_key(ranks)
    cost_for, dn, length = updn_cost_function(fab, key)
    _check_partition(dn, level, top)
    up_to, down_to, parents_pad = _next_hop_tables(fab, level, dn)
    length_ext = np.vstack([length, np.full((1, num), UNREACHABLE_HOPS, dtype=np.uint8)])

    cas = inp.ca_ports[inp.ca_ports[:, 0] > 0]
    cas = cas[np.lexsort((cas[:, 2], fab.tie[cas[:, 1]]))]
    dest_lid, dest_switch, dest_port = cas[:, 0], cas[:, 1], cas[:, 2]
    chains = _Chains(fab, level, top, dest_switch)

    # first port and number of cables between each pair of switches
    valid = fab.nbr >= 0
    rows, cols = np.nonzero(valid)
    far = fab.nbr[rows, cols]
    cables = np.zeros((num, num), dtype=np.int16)
    np.add.at(cables, (rows, far), 1)
    first_port = np.full((num, num), NO_PATH, dtype=np.int16)
    np.minimum.at(first_port, (rows, far), cols)
    multi_pairs = np.argwhere(cables > 1)
    group_id = np.full((num, num), -1, dtype=np.int32)
    group_id[multi_pairs[:, 0], multi_pairs[:, 1]] = np.arange(len(multi_pairs))
    width = int(cables.max()) if num else 1
    # a group's cables in the order of their far-end ports: for a route going down
    # that is the lower switch's port order, going up the upper switch's (OpenSM)
    group_ports = np.zeros((len(multi_pairs), width), dtype=np.int64)
    group_size = cables[multi_pairs[:, 0], multi_pairs[:, 1]].astype(np.int64)
    for g, (x, y) in enumerate(multi_pairs.tolist()):
        ports = np.flatnonzero(fab.nbr[x] == y)
        ports = ports[np.argsort(fab.rport[x, ports], kind="stable")]
        group_ports[g, : ports.size] = ports
    # main paths through each group, as sorted keys group * count + destination
    count = dest_lid.size
    main_keys = np.sort(
        np.concatenate(
            [
                group_id[chains.switch[:, lvl], chains.switch[:, lvl - 1]].astype(np.int64) * count
                + np.arange(count)
                for lvl in range(1, top + 1)
            ]
        )
    )
    main_keys = main_keys[main_keys >= 0]
    main_first = np.searchsorted(main_keys, np.arange(len(multi_pairs)) * count)
    up_turn = np.zeros(len(multi_pairs), dtype=np.int64)

    lft = fab.new_lft()
    lft_t = np.full((inp.max_lid + 1, num), NO_PATH, dtype=np.uint8)
    xs = np.arange(num)[:, None]
    below_level = np.maximum(level - 1, 0)
    fallback_entries = 0
    fallback_turn = np.zeros(num, dtype=np.int64)
    for start in range(0, dest_lid.size, _CHUNK):
        chunk = slice(start, start + _CHUNK)
        leaf = dest_switch[chunk]
        chain = chains.switch[chunk]
        ancestor = dn[:, leaf] != UNREACHABLE_HOPS
        chain_child = chain.T[below_level]
        next_sw = np.where(cables[xs, chain_child] > 0, chain_child, down_to[xs, leaf[None, :]])
        # lowest chain switch with x below it
        target = np.full(next_sw.shape, -1, dtype=np.int32)
        target_level = np.zeros(next_sw.shape, dtype=np.int16)
        for lvl in range(1, top + 1):
            a = chain[:, lvl]
            below_a = (dn[a].T != UNREACHABLE_HOPS) & (target < 0) & (level[:, None] < lvl)
            target = np.where(below_a, a[None, :], target)
            target_level = np.where(below_a, lvl, target_level)
        converge = (target >= 0) & (2 * target_level - level[:, None] == length[:, leaf])
        up_next = up_to[xs, np.maximum(target, 0)].astype(np.int64)
        fallback = ~ancestor & ~converge
        fx, fd = np.nonzero(fallback)  # by switch, then destination order
        run_start = np.r_[0, np.flatnonzero(np.diff(fx)) + 1] if fx.size else fx
        run_len = np.diff(np.r_[run_start, fx.size])
        turn = fallback_turn[fx] + np.arange(fx.size) - np.repeat(run_start, run_len)
        fallback_turn[fx[run_start]] += run_len
        up_next[fx, fd] = _spread_up(parents_pad, length_ext, fx, leaf[fd], turn)
        fallback_entries += fx.size
        next_sw = np.where(ancestor, next_sw, up_next)
        reach = next_sw >= 0
        safe_next = np.maximum(next_sw, 0)
        ports = np.where(reach, first_port[xs, safe_next], NO_PATH)
        on_chain = (chain.T[level] == xs) & (level > 0)[:, None]  # set by step 1
        gids = np.where(reach & ~on_chain, group_id[xs, safe_next], -1)
        going_down = level[safe_next] < level[:, None]
        # down a group: the cable the next main path through it would take
        gx, gd = np.nonzero((gids >= 0) & going_down)
        if gx.size:
            grp = gids[gx, gd].astype(np.int64)
            seen = np.searchsorted(main_keys, grp * count + start + gd) - main_first[grp]
            ports[gx, gd] = group_ports[grp, seen % group_size[grp]]
        # up a group: the cables in turn
        gx, gd = np.nonzero((gids >= 0) & ~going_down)  # by switch, then destination
        if gx.size:
            grp = gids[gx, gd].astype(np.int64)
            order = np.argsort(grp, kind="stable")
            sorted_g = grp[order]
            run_start = np.r_[0, np.flatnonzero(np.diff(sorted_g)) + 1]
            run_len = np.diff(np.r_[run_start, sorted_g.size])
            position = np.arange(sorted_g.size) - np.repeat(run_start, run_len)
            chosen = np.empty_like(grp)
            chosen[order] = group_ports[
                sorted_g, (up_turn[sorted_g] + position) % group_size[sorted_g]
            ]
            ports[gx, gd] = chosen
            np.add.at(up_turn, sorted_g[run_start], run_len)
        lft_t[dest_lid[chunk]] = ports.T.astype(np.uint8)
    lft[:] = lft_t.T
    for lvl in range(1, top + 1):
        lft[chains.switch[:, lvl], dest_lid] = chains.port[:, lvl]
    lft[dest_switch, dest_lid] = dest_port
    balanced_routes(fab, lft, fab.switch_dest_lids, cost_for)
    return RoutingResult(
        engine="ftree",
        lft=lft,
        port_lids=port_loads(lft, inp),
        ranks=ranks,
        roots=tuple(np.flatnonzero(level == top).tolist()),
        stats={
            "levels": top + 1,
            "leaves": int((level == 0).sum()),
            "entries_routed_up_off_the_main_path": fallback_entries,
        },
    )

"""Checks on LFTs: follow them hop by hop, for one pair or for all pairs at once.

`trace_routes` walks every (source switch, destination LID) pair in parallel: one
array step moves every packet that is still under way one switch further, so the
number of Python iterations is the longest path, not the number of pairs. A walk
ends delivered (at the destination's switch the LFT names the destination's port:
the CA's switch port, or 0 for the switch's own LID), with no route (entry 255), at
a dead end (a port with no switch behind it that is not the destination's), or in
a loop (more hops than there are switches). With up*/down* ranks it also flags
routes that go down and then up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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
    U8Array,
    bfs_hops,
)

__all__ = [
    "DEAD_END",
    "LOOP",
    "NO_ROUTE",
    "PairTrace",
    "check_all_pairs",
    "is_shortest",
    "obeys_updown",
    "trace_routes",
    "walk",
]

NO_ROUTE = -1
"""`PairTrace.hops` value: an LFT entry on the way was 255."""
DEAD_END = -2
"""`PairTrace.hops` value: the LFT sent the packet out of a port with no switch behind."""
LOOP = -3
"""`PairTrace.hops` value: the packet never arrived (more hops than switches)."""

_REASONS = {NO_ROUTE: "no route (LFT entry 255)", DEAD_END: "dead end", LOOP: "loop"}
_PAIRS_PER_BLOCK = 1 << 21


@dataclass(frozen=True, slots=True, eq=False)
class PairTrace:
    """Outcome of following the LFTs from every source switch to every destination.

    `hops[i, j]` is the number of switch-to-switch hops from `src_switches[i]` to
    `dst_lids[j]` (0 when the destination hangs off the source switch), or NO_ROUTE,
    DEAD_END, LOOP. `illegal[i, j]` is set when the route went down then up (only
    computed when ranks were given).
    """

    src_switches: IntArray
    dst_lids: IntArray
    hops: npt.NDArray[np.int16]
    illegal: BoolArray


def _source_switch(fab: Fabric, lid: int) -> int:
    if not 0 < lid < fab.lid_switch.size or fab.lid_switch[lid] < 0:
        raise RoutingError(f"LID {lid} is not assigned to any port")
    return int(fab.lid_switch[lid])


def walk(lft: U8Array, inp: RoutingInput, src_lid: int, dst_lid: int) -> list[tuple[int, int]]:
    """The hops from the switch of `src_lid` to `dst_lid`: (switch, output port) each,
    the last one being the destination's switch and port. RoutingError if the LFTs
    have no route, a dead end, or a loop."""
    fab = Fabric(inp)
    cur = _source_switch(fab, src_lid)
    target = _source_switch(fab, dst_lid)
    target_port = int(fab.lid_port[dst_lid])
    path: list[tuple[int, int]] = []
    for _ in range(fab.num_switches):
        port = int(lft[cur, dst_lid])
        path.append((cur, port))
        if cur == target and port == target_port:
            return path
        if port == NO_PATH:
            raise RoutingError(f"LID {src_lid} -> {dst_lid}: switch {cur} has no route")
        far = int(fab.nbr[cur, port]) if port < fab.num_ports else -1
        if far < 0:
            raise RoutingError(
                f"LID {src_lid} -> {dst_lid}: switch {cur} port {port} leads to no switch"
            )
        cur = far
    raise RoutingError(f"LID {src_lid} -> {dst_lid}: loop through switches {path}")


def trace_routes(
    lft: U8Array,
    inp: RoutingInput,
    src_switches: Sequence[int] | IntArray | None = None,
    dst_lids: Sequence[int] | IntArray | None = None,
    ranks: Sequence[int] | IntArray | None = None,
) -> PairTrace:
    """Follow the LFTs for every pair (defaults: every switch with CAs, every CA LID).

    With `ranks`, a hop towards a smaller (rank, GUID or index) key is "up", as in
    up*/down*, and `illegal` marks routes that go up after going down.
    """
    fab = Fabric(inp)
    if src_switches is None:
        srcs = np.unique(fab.lid_switch[fab.ca_lids])
    else:
        srcs = np.asarray(src_switches, dtype=np.int64)
    lids = fab.ca_lids if dst_lids is None else np.asarray(dst_lids, dtype=np.int64)
    key = None if ranks is None else fab.order_key(np.asarray(ranks, dtype=np.int64))
    hops = np.full((srcs.size, lids.size), LOOP, dtype=np.int16)
    illegal = np.zeros((srcs.size, lids.size), dtype=np.bool_)
    if srcs.size == 0 or lids.size == 0:
        return PairTrace(srcs, lids, hops, illegal)
    block = max(1, _PAIRS_PER_BLOCK // srcs.size)
    for start in range(0, lids.size, block):
        part = lids[start : start + block]
        h, bad = _trace_block(lft, fab, srcs, part, key)
        hops[:, start : start + part.size] = h
        illegal[:, start : start + part.size] = bad
    return PairTrace(srcs, lids, hops, illegal)


def _trace_block(
    lft: U8Array, fab: Fabric, srcs: IntArray, lids: IntArray, key: IntArray | None
) -> tuple[npt.NDArray[np.int16], BoolArray]:
    shape = (srcs.size, lids.size)
    hops = np.full(srcs.size * lids.size, LOOP, dtype=np.int16)
    illegal = np.zeros(srcs.size * lids.size, dtype=np.bool_)
    pos = np.arange(srcs.size * lids.size)
    cur = np.repeat(srcs, lids.size)
    lid = np.tile(lids, srcs.size)
    target = fab.lid_switch[lid]
    target_port = fab.lid_port[lid]
    gone_down = np.zeros(pos.size, dtype=np.bool_)
    width = fab.num_ports
    for step in range(fab.num_switches + 1):
        if pos.size == 0:
            break
        port = lft[cur, lid].astype(np.int64)
        arrived = (cur == target) & (port == target_port)
        hops[pos[arrived]] = step
        no_route = ~arrived & (port == NO_PATH)
        hops[pos[no_route]] = NO_ROUTE
        far = np.where(port < width, fab.nbr[cur, np.minimum(port, width - 1)], -1)
        dead = ~arrived & ~no_route & (far < 0)
        hops[pos[dead]] = DEAD_END
        move = ~(arrived | no_route | dead)
        if key is not None:
            up = key[np.maximum(far, 0)] < key[cur]
            bad = move & gone_down & up
            illegal[pos[bad]] = True
            gone_down = gone_down | (move & ~up)
        pos, cur, lid = pos[move], far[move], lid[move]
        target, target_port, gone_down = target[move], target_port[move], gone_down[move]
    return hops.reshape(shape), illegal.reshape(shape)


def check_all_pairs(lft: U8Array, inp: RoutingInput) -> PairTrace:
    """Every CA reaches every CA through the LFTs (from each CA's switch); raises
    RoutingError naming the first pair that does not, else returns the trace."""
    trace = trace_routes(lft, inp)
    failed = trace.hops < 0
    if failed.any():
        i, j = (int(v) for v in np.argwhere(failed)[0])
        reason = _REASONS[int(trace.hops[i, j])]
        raise RoutingError(
            f"switch {int(trace.src_switches[i])} -> LID {int(trace.dst_lids[j])}: {reason}; "
            f"{int(failed.sum())} of {failed.size} pairs fail"
        )
    return trace


def is_shortest(lft: U8Array, inp: RoutingInput, include_switches: bool = False) -> bool:
    """Every CA-to-CA route (with `include_switches`: every switch to every LID) is
    delivered over as many hops as the shortest path between the switches."""
    fab = Fabric(inp)
    hops = bfs_hops(fab.adj, fab.num_switches)
    if include_switches:
        srcs = np.arange(fab.num_switches)
        lids = np.sort(np.concatenate([fab.ca_lids, fab.switch_dest_lids]))
    else:
        srcs = np.unique(fab.lid_switch[fab.ca_lids])
        lids = fab.ca_lids
    trace = trace_routes(lft, inp, srcs, lids)
    want = hops[np.ix_(srcs, fab.lid_switch[lids])].astype(np.int16)
    want = np.where(want == UNREACHABLE_HOPS, NO_ROUTE, want)
    return bool((trace.hops == want).all())


def obeys_updown(lft: U8Array, inp: RoutingInput, ranks: Sequence[int] | IntArray) -> bool:
    """Every CA-to-CA route is delivered and never goes down then up for these ranks
    (ties between equal ranks broken by GUID, or index, as the engines do)."""
    trace = trace_routes(lft, inp, ranks=ranks)
    return bool((trace.hops >= 0).all() and not trace.illegal.any())

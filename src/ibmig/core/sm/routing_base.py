"""What the routing engines share: their input and output, the port tables, BFS.

The subnet manager discovers the subnet, assigns LIDs and hands the routing engine
a `RoutingInput`: the switches (LID of port 0, number of ports), the switch-to-switch
cables whose ports are up, and the end ports (LID, switch, switch port). An engine
returns a `RoutingResult` whose `lft[switch, lid]` is the output port of that
switch's linear forwarding table for that destination LID (IBA Vol 1, 14.2.5.10
LinearForwardingTable): 0 is the switch's own management port (only for its own
LID), 255 is "no route" (OpenSM's OSM_NO_PATH; the value the switch drops on).

Everything here works on whole arrays. The port tables are two (switches x ports)
arrays: `nbr[s, p]` is the switch at the far end of port p (-1 for a port with a
channel adapter, a cable to itself, or nothing), `rport[s, p]` its port there.
All-pairs hop counts come from a frontier BFS run for every source at once: the
frontier is a dense (switches x switches) 0/1 matrix, one sparse product per hop
advances every BFS by one level. Hop counts are uint8 with 255 meaning unreachable
(IBA limits a directed route to 64 hops, IBA Vol 1, 14.2.2; OpenSM's hop tables are
uint8 with the same sentinel).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import sparse

__all__ = [
    "MAX_UNICAST_LID",
    "NO_PATH",
    "UNREACHABLE_HOPS",
    "RoutingError",
    "RoutingInput",
    "RoutingResult",
    "port_loads",
    "switch_hops",
]

IntArray = npt.NDArray[np.int64]
U8Array = npt.NDArray[np.uint8]
BoolArray = npt.NDArray[np.bool_]

NO_PATH = 255
"""LFT entry for an unreachable LID (OpenSM's OSM_NO_PATH)."""

UNREACHABLE_HOPS = 255
"""Hop-count sentinel in the hop matrices."""

MAX_UNICAST_LID = 0xBFFF
"""Highest unicast LID (IBA Vol 1, 4.1.3 "Local Identifiers")."""

MAX_SWITCH_PORTS = 254
"""A switch has at most 254 external ports; 255 is reserved in the LFT."""

# `balanced_routes` keys (see there): cost << 24 | 256 x (CA LIDs on a port) + port
_COST_SHIFT = 24
_KEY_MASK = np.uint32((1 << _COST_SHIFT) - 1)
_NOWHERE = np.uint32(UNREACHABLE_HOPS << _COST_SHIFT)
_KEY_DTYPE = np.dtype("<u4")  # little-endian, so the cost is the last byte of each key
_KEY_PER_LID = np.uint32(256)
_PORT_OF_KEY = np.uint32(255)
_SCATTER_ROWS = 16  # switch rows per scatter of `balanced_routes`' result (cache sized)


class RoutingError(ValueError):
    """The input is malformed, or the topology does not suit the engine."""


def _frozen_array(value: Any, name: str, columns: int | None) -> IntArray:
    try:
        array = np.array(value, dtype=np.int64, copy=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise RoutingError(f"{name}: not an integer array ({exc})") from exc
    if columns is None:
        if array.ndim != 1:
            raise RoutingError(f"{name}: expected a 1-D array, got shape {array.shape}")
    else:
        if array.size == 0:
            array = array.reshape(0, columns)
        if array.ndim != 2 or array.shape[1] != columns:
            raise RoutingError(f"{name}: expected shape (n, {columns}), got {array.shape}")
    array.setflags(write=False)
    return array


@dataclass(frozen=True, slots=True, eq=False)
class RoutingInput:
    """The discovered subnet, as the routing engines need it.

    Switch i has LID `switch_lids[i]` (0 when it has none yet: it is then not a
    destination) and ports 1..`switch_num_ports[i]` (NodeInfo NumberOfPorts, port 0
    not counted). `links` rows are (sw_a, port_a, sw_b, port_b), each cable once,
    only cables whose ports are up. `ca_ports` rows are (lid, switch, switch port) for
    every end port attached to a switch (LID 0: not routed). LFT rows have
    `max_lid` + 1 entries. `switch_guids` (optional) order the switches the way
    OpenSM does (its switch table is sorted by GUID: the order destinations are
    routed in, up*/down* direction between equal ranks); without them the switch
    index does.

    The arrays are copied and made read-only; an invalid input raises RoutingError.
    """

    num_switches: int
    switch_lids: IntArray
    switch_num_ports: IntArray
    links: IntArray
    ca_ports: IntArray
    max_lid: int
    switch_guids: npt.NDArray[np.uint64] | None = None

    def __post_init__(self) -> None:
        num = self.num_switches
        if not isinstance(num, int | np.integer) or num < 0:
            raise RoutingError(f"num_switches must be a non-negative integer, got {num!r}")
        num = int(num)
        object.__setattr__(self, "num_switches", num)
        max_lid = self.max_lid
        if not isinstance(max_lid, int | np.integer) or not 0 <= max_lid <= MAX_UNICAST_LID:
            raise RoutingError(f"max_lid must be in 0..{MAX_UNICAST_LID:#x}, got {max_lid!r}")
        object.__setattr__(self, "max_lid", int(max_lid))
        lids = _frozen_array(self.switch_lids, "switch_lids", None)
        ports = _frozen_array(self.switch_num_ports, "switch_num_ports", None)
        links = _frozen_array(self.links, "links", 4)
        cas = _frozen_array(self.ca_ports, "ca_ports", 3)
        for name, array in (("switch_lids", lids), ("switch_num_ports", ports)):
            if array.shape != (num,):
                raise RoutingError(f"{name}: expected {num} entries, got {array.shape[0]}")
        object.__setattr__(self, "switch_lids", lids)
        object.__setattr__(self, "switch_num_ports", ports)
        object.__setattr__(self, "links", links)
        object.__setattr__(self, "ca_ports", cas)
        if self.switch_guids is not None:
            try:
                guids = np.array(self.switch_guids, dtype=np.uint64, copy=True)
            except (TypeError, ValueError, OverflowError) as exc:
                raise RoutingError(f"switch_guids: not a GUID array ({exc})") from exc
            if guids.shape != (num,):
                raise RoutingError(f"switch_guids: expected {num} entries, got {guids.shape}")
            if np.unique(guids).size != num:
                raise RoutingError("switch_guids: GUIDs are not unique")
            guids.setflags(write=False)
            object.__setattr__(self, "switch_guids", guids)
        self._validate(lids, ports, links, cas)

    def _validate(self, lids: IntArray, ports: IntArray, links: IntArray, cas: IntArray) -> None:
        num = self.num_switches
        if num and (ports.min() < 1 or ports.max() > MAX_SWITCH_PORTS):
            bad = int(np.flatnonzero((ports < 1) | (ports > MAX_SWITCH_PORTS))[0])
            raise RoutingError(
                f"switch {bad}: switch_num_ports must be 1..{MAX_SWITCH_PORTS}, got {ports[bad]}"
            )
        all_lids = np.concatenate([lids, cas[:, 0]])
        if all_lids.size and (all_lids.min() < 0 or all_lids.max() > self.max_lid):
            bad_lid = int(all_lids[(all_lids < 0) | (all_lids > self.max_lid)][0])
            raise RoutingError(f"LID {bad_lid} is outside 0..max_lid ({self.max_lid})")
        used = all_lids[all_lids > 0]
        if np.unique(used).size != used.size:
            values, counts = np.unique(used, return_counts=True)
            raise RoutingError(f"LID {int(values[counts > 1][0])} is assigned twice")
        # every (switch, port) endpoint named by a link or a CA port
        ends = np.concatenate([links[:, 0:2], links[:, 2:4], cas[:, 1:3]])
        if ends.size:
            sw, port = ends[:, 0], ends[:, 1]
            bad_sw = (sw < 0) | (sw >= num)
            if bad_sw.any():
                raise RoutingError(f"switch index {int(sw[bad_sw][0])} out of range 0..{num - 1}")
            bad_port = (port < 1) | (port > ports[sw])
            if bad_port.any():
                i = int(np.flatnonzero(bad_port)[0])
                raise RoutingError(
                    f"switch {int(sw[i])} has ports 1..{int(ports[sw[i]])}, got port {int(port[i])}"
                )
            key = sw * (MAX_SWITCH_PORTS + 1) + port
            values, counts = np.unique(key, return_counts=True)
            if (counts > 1).any():
                dup = int(values[counts > 1][0])
                raise RoutingError(
                    f"switch {dup // (MAX_SWITCH_PORTS + 1)} port {dup % (MAX_SWITCH_PORTS + 1)}"
                    " is connected twice"
                )


@dataclass(frozen=True, slots=True, eq=False)
class RoutingResult:
    """An engine's LFTs and what it decided on the way.

    `lft[switch, lid]` is the output port (uint8, `max_lid` + 1 columns). `port_lids
    [switch, port]` counts the end-port (CA) LIDs routed out of each port, the
    quantity minhop balances. `ranks` and `roots` are set by up*/down* (distance from
    the nearest root) and by ftree (rank 0 = the top level, as in OpenSM); `stats`
    holds engine-specific figures.
    """

    engine: str
    lft: U8Array
    port_lids: IntArray
    ranks: IntArray | None = None
    roots: tuple[int, ...] = ()
    stats: Mapping[str, int | float] = field(default_factory=dict)


class Fabric:
    """Port tables and LID maps derived once from a RoutingInput."""

    __slots__ = (
        "adj",
        "ca_lids",
        "inp",
        "lid_port",
        "lid_switch",
        "nbr",
        "nbr_safe",
        "num_ports",
        "rport",
        "switch_dest_lids",
        "tie",
    )

    def __init__(self, inp: RoutingInput) -> None:
        self.inp = inp
        num = inp.num_switches
        self.num_ports = int(inp.switch_num_ports.max()) + 1 if num else 1
        nbr = np.full((num, self.num_ports), -1, dtype=np.int64)
        rport = np.full((num, self.num_ports), -1, dtype=np.int64)
        links = inp.links[inp.links[:, 0] != inp.links[:, 2]]  # a cable to itself carries nothing
        a, pa, b, pb = links.T
        nbr[a, pa], rport[a, pa] = b, pb
        nbr[b, pb], rport[b, pb] = a, pa
        self.nbr = nbr
        self.rport = rport
        # index `num` is a virtual "nowhere" switch: gathers through it read sentinel rows
        self.nbr_safe = np.where(nbr >= 0, nbr, num)
        self.adj = sparse.csr_array(
            (np.ones(2 * len(a), dtype=np.float32), (np.r_[a, b], np.r_[b, a])), shape=(num, num)
        )
        self.adj.sum_duplicates()
        lid_switch = np.full(inp.max_lid + 1, -1, dtype=np.int64)
        lid_port = np.full(inp.max_lid + 1, -1, dtype=np.int64)
        cas = inp.ca_ports[inp.ca_ports[:, 0] > 0]
        lid_switch[cas[:, 0]] = cas[:, 1]
        lid_port[cas[:, 0]] = cas[:, 2]
        have = np.flatnonzero(inp.switch_lids > 0)
        lid_switch[inp.switch_lids[have]] = have
        lid_port[inp.switch_lids[have]] = 0
        self.lid_switch = lid_switch
        self.lid_port = lid_port
        self.ca_lids = np.sort(cas[:, 0])
        self.switch_dest_lids = np.sort(inp.switch_lids[have])
        # position of each switch when sorted by GUID (or index): the up*/down* tie break
        if inp.switch_guids is not None:
            tie = np.empty(num, dtype=np.int64)
            tie[np.argsort(inp.switch_guids, kind="stable")] = np.arange(num)
            self.tie = tie
        else:
            self.tie = np.arange(num, dtype=np.int64)

    @property
    def num_switches(self) -> int:
        return self.inp.num_switches

    def neighbours(self, switch: int) -> IntArray:
        """Distinct switches cabled to `switch`, ascending."""
        row = self.nbr[switch]
        return np.unique(row[row >= 0])

    def destination_order(self) -> IntArray:
        """Every destination LID in OpenSM's routing order (osm_ucast_mgr.c,
        sort_ports_by_switch_load): the end ports of the switch with the most end
        ports first, switches with as many in GUID (or index) order, a switch's end
        ports by port number; then the switches' own LIDs in GUID order."""
        inp = self.inp
        cas = inp.ca_ports
        per_switch = np.bincount(cas[:, 1], minlength=self.num_switches)
        cas = cas[cas[:, 0] > 0]
        sw = cas[:, 1]
        ca_order = np.lexsort((cas[:, 2], self.tie[sw], -per_switch[sw]))
        have = np.flatnonzero(inp.switch_lids > 0)
        switch_order = have[np.argsort(self.tie[have], kind="stable")]
        ordered: IntArray = np.concatenate([cas[ca_order, 0], inp.switch_lids[switch_order]])
        return ordered

    def new_lft(self) -> U8Array:
        return np.full((self.num_switches, self.inp.max_lid + 1), NO_PATH, dtype=np.uint8)

    def order_key(self, ranks: IntArray) -> IntArray:
        """Total order of switches for up*/down*: smaller key is "up"."""
        return ranks * max(self.num_switches, 1) + self.tie


def bfs_hops(adj: Any, num: int) -> U8Array:
    """All-pairs BFS: `dist[s, t]` = edges on a shortest s -> t path along `adj`.

    `adj[s, n] != 0` means an edge s -> n (a symmetric matrix gives undirected hop
    counts). Column t of the frontier holds the switches first reached at the current
    distance by the BFS rooted at t; `adj @ frontier` moves every BFS back one edge
    at once. The product counts, for each switch, its neighbours in the frontier:
    at most its number of distinct neighbours, so with 0/1 entries it fits a byte
    whenever no switch has more than 255 (a switch has at most 254 ports), and uint8
    operands move a quarter of float32's bytes (3,584 switches: 12.8 MB a level).
    """
    dist = np.full((num, num), UNREACHABLE_HOPS, dtype=np.uint8)
    if num == 0:
        return dist
    np.fill_diagonal(dist, 0)
    pattern = sparse.csr_array(adj, copy=True)
    pattern.eliminate_zeros()
    pattern.sum_duplicates()
    degree = np.diff(pattern.indptr)
    dtype = np.uint8 if degree.max(initial=0) <= 255 else np.float32
    step = sparse.csr_array(
        (np.ones(pattern.nnz, dtype=dtype), pattern.indices, pattern.indptr), shape=(num, num)
    )
    frontier = np.eye(num, dtype=dtype)
    level = 0
    while True:
        level += 1
        reached = np.asarray(step @ frontier) > 0
        reached &= dist == UNREACHABLE_HOPS  # not reached before
        if not reached.any():
            return dist
        if level >= UNREACHABLE_HOPS:
            raise RoutingError("a shortest path is longer than 254 hops")
        np.copyto(dist, np.uint8(level), where=reached)
        frontier = reached.astype(dtype)


def switch_hops(inp: RoutingInput) -> U8Array:
    """Hop counts between every pair of switches (uint8, 255 = unreachable)."""
    fab = Fabric(inp)
    return bfs_hops(fab.adj, fab.num_switches)


def port_loads(lft: U8Array, inp: RoutingInput) -> IntArray:
    """`loads[switch, port]`: how many CA LIDs each switch routes out of each port."""
    num = inp.num_switches
    width = int(inp.switch_num_ports.max()) + 1 if num else 1
    lids = inp.ca_ports[inp.ca_ports[:, 0] > 0, 0]
    loads = np.zeros((num, width), dtype=np.int64)
    # One bincount per switch over its row: offsetting every entry by its row to
    # count a whole block at once made a widened copy of the table (160 M entries on
    # a 44,544-LID, 3,584-switch tree) and cost ten times as much.
    for switch in range(num):
        loads[switch] = np.bincount(lft[switch, lids], minlength=NO_PATH + 1)[:width]
    return loads


CostFn = Callable[[int], U8Array]


def _previous_ports(previous: U8Array | None, num: int, max_lid: int, width: int) -> U8Array | None:
    """`old[lid, switch]`: the port the switch routes lid to now (column 0, port 0,
    where it has no usable entry: port 0 is never a candidate for another switch)."""
    if previous is None:
        return None
    table = np.asarray(previous)
    if table.ndim != 2 or table.shape[0] != num:
        raise RoutingError(f"previous LFTs: expected {num} rows, got shape {table.shape}")
    old = np.zeros((max_lid + 1, num), dtype=np.uint8)
    cols = min(table.shape[1], max_lid + 1)
    old[:cols] = table[:, :cols].T
    old[old >= width] = 0
    return old


def balanced_routes(
    fab: Fabric,
    lft: U8Array,
    dest_lids: Sequence[int] | IntArray,
    cost_for: CostFn,
    previous: U8Array | None = None,
) -> IntArray:
    """Fill `lft[:, lid]` for `dest_lids`, in that order, balancing like OpenSM's minhop.

    `cost_for(t)` gives, for destination switch t, a (ports x switches) uint8 array:
    the length of the best allowed route to t through each port (255 = port not
    allowed). Every switch picks among the ports of least cost the one that already
    carries the fewest CA LIDs, the lowest port number on a tie (osm_switch.c
    `osm_switch_recommend_path` with LMC 0, no port shifting, no scatter: the scan
    starts at port 1 and only a strictly smaller count replaces the best port). A
    CA LID adds one to the chosen port's count; a switch LID does not (OpenSM's
    default port_profile_switch_nodes = FALSE). Parallel cables to one neighbour are
    separate ports, so they share the LIDs in turn.

    `previous` (the LFTs the switches hold now, row per switch) makes a switch keep
    its current port wherever that port is still among the allowed least-cost ones,
    as OpenSM does on every sweep after the first (ignore_existing_lfts FALSE): a
    resweep then changes only the routes it must. Kept CA LIDs count as chosen ones.

    Returns `loads[switch, port]`: the CA LIDs among `dest_lids` whose entry is
    `port` (what `port_loads` counts on the filled table when every CA LID is
    routed here once).

    The choice is sequential in the destinations but vectorised over all switches:
    one pass per destination LID. Laid out for speed (a 3,584-switch, 65-port,
    44,544-LID fat tree is 10^10 port looks): `summed[port, switch]` is a uint32
    whose top byte is the port's cost towards the current destination switch and
    whose low 24 bits are 256 x (CA LIDs routed out of the port) + the port number,
    so a minimum down each column of the port-major (C order) array is the least
    cost, then the least load, then the lowest port, in one vectorised reduction:
    no per-switch `argmin`, no separate allowed-port mask. A last row, the sink,
    is the smallest value of the switches that route nowhere (the destination
    switch itself, the unreachable ones): their pick lands there and its count is
    thrown away when the destination switch changes, so one unmasked scatter
    counts every switch's pick. Ports are below 255 and a count below 2^16 (one
    entry per CA LID: at most 49,151), so the key fits its 24 bits.
    """
    num = fab.num_switches
    width = fab.num_ports
    dest = np.asarray(dest_lids, dtype=np.int64)
    targets = fab.lid_switch[dest]
    lid_is_ca = np.zeros(fab.inp.max_lid + 1, dtype=np.bool_)
    lid_is_ca[fab.ca_lids] = True
    if np.count_nonzero(lid_is_ca[dest]) >> (_COST_SHIFT - 8):
        raise RoutingError("balanced_routes: 2^16 or more CA LIDs to route (repeated LIDs?)")
    old = _previous_ports(previous, num, fab.inp.max_lid, width)
    summed = np.repeat(np.arange(width + 1, dtype=_KEY_DTYPE)[:, None], num, axis=1)
    ports = summed[:width]
    # the cost byte of every port key, written in place (little-endian: the last byte)
    cost_byte = ports.view(np.uint8).reshape(width, num, 4)[:, :, 3]
    sink = summed[width]
    flat_summed = summed.reshape(-1)
    rows = np.arange(num, dtype=np.int64)
    columns = np.empty((dest.size, num), dtype=np.uint8)
    run_start = 0
    flat_cost = np.empty(0, dtype=np.uint8)
    keep_least = np.empty(num, dtype=np.int64)
    targets_list = targets.tolist()
    least = np.empty(num, dtype=_KEY_DTYPE)  # per-LID buffers, reused
    chosen = np.empty(num, dtype=np.int64)
    for j, (lid, t) in enumerate(zip(dest.tolist(), targets_list, strict=True)):
        if j == 0 or t != targets_list[j - 1]:
            _finish_run(fab, columns[run_start:j], dest[run_start:j], summed)
            run_start = j
            cost = _checked_cost(cost_for, t, (width, num))
            flat_cost = cost.reshape(-1)
            cost_byte[:] = cost
            cost_byte[:, t] = UNREACHABLE_HOPS
            least_cost = cost.min(axis=0)
            routed = least_cost != UNREACHABLE_HOPS
            routed[t] = False
            # sink: the smallest value where the switch routes nowhere, never the least elsewhere
            sink[:] = np.where(routed, np.uint32(0xFFFFFFFF), np.uint32(width))
            if old is not None:
                # a cost no port has where the switch routes nowhere: nothing is kept there
                keep_least = np.where(routed, least_cost.astype(np.int64), np.int64(256))
        np.minimum.reduce(summed, axis=0, out=least)
        choice = np.bitwise_and(least, _PORT_OF_KEY, out=least)
        if old is not None:
            mine = old[lid]
            keep = flat_cost[mine * np.int64(num) + rows] == keep_least
            choice = np.where(keep, mine, choice)
        columns[j] = choice
        if lid_is_ca[lid]:
            # int64 (intp) indices: numpy converts any other index type first
            np.multiply(choice, num, out=chosen)
            chosen += rows
            np.add.at(flat_summed, chosen, _KEY_PER_LID)
    _finish_run(fab, columns[run_start:], dest[run_start:], summed)
    # Scattered a few switch rows at a time: one scatter of the whole transposed
    # table strides across every row for each LID (6x slower on 3,584 x 44,544).
    for first in range(0, num, _SCATTER_ROWS):
        lft[first : first + _SCATTER_ROWS, dest] = columns[:, first : first + _SCATTER_ROWS].T
    loads = np.zeros((num, width), dtype=np.int64)
    loads[:] = ((ports & _KEY_MASK) >> 8).T
    # a CA LID behind its own switch leaves by its CA port, counted by no key
    local = dest[lid_is_ca[dest]]
    np.add.at(loads, (fab.lid_switch[local], fab.lid_port[local]), 1)
    return loads


def _finish_run(
    fab: Fabric, picks: U8Array, lids: IntArray, summed: npt.NDArray[np.uint32]
) -> None:
    """The entries the LID-by-LID pass left to the end of a destination switch's
    run of LIDs: "no route" where the switch routes nowhere, the port of the LID
    at the destination switch itself."""
    if not lids.size:
        return
    nowhere = summed[-1] != np.uint32(0xFFFFFFFF)
    picks[:, nowhere] = NO_PATH
    picks[:, int(fab.lid_switch[lids[0]])] = fab.lid_port[lids]


def _checked_cost(cost_for: CostFn, t: int, shape: tuple[int, int]) -> U8Array:
    """`cost_for(t)` as a C-contiguous uint8 array of the (ports x switches) shape."""
    cost = np.ascontiguousarray(cost_for(t), dtype=np.uint8)
    if cost.shape != shape:
        raise RoutingError(f"cost_for({t}): expected shape {shape}, got {cost.shape}")
    return cost

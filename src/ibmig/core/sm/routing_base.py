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

_BIG = np.int32(1 << 30)
# `balanced_routes` keys: 256 x (CA LIDs on a port) + the port (a switch has at most
# 255 ports; 49,151 unicast LIDs x 256 stay far below _BIG).
_KEY_PER_LID = np.int32(256)
_PORT_OF_KEY = np.int32(255)
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
    at once.
    """
    dist = np.full((num, num), UNREACHABLE_HOPS, dtype=np.uint8)
    if num == 0:
        return dist
    np.fill_diagonal(dist, 0)
    visited = np.eye(num, dtype=np.bool_)
    frontier = np.eye(num, dtype=np.float32)
    level = 0
    while True:
        level += 1
        reached = np.asarray(adj @ frontier) > 0
        reached &= ~visited
        if not reached.any():
            return dist
        if level >= UNREACHABLE_HOPS:
            raise RoutingError("a shortest path is longer than 254 hops")
        dist[reached] = level
        visited |= reached
        frontier = reached.astype(np.float32)


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
) -> None:
    """Fill `lft[:, lid]` for `dest_lids`, in that order, balancing like OpenSM's minhop.

    `cost_for(t)` gives, for destination switch t, a (switches x ports) uint8 array:
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

    The choice is sequential in the destinations but vectorised over all switches:
    one pass per destination LID. Candidate sets are recomputed only when the
    destination switch changes.

    Laid out for speed (a 3,584-switch, 65-port, 44,544-LID fat tree is 10^10 port
    looks): `keys[port, switch]` holds 256 x (CA LIDs routed out of the port) + the
    port number, so with a disallowed port's penalty added (once per destination
    switch, then kept up to date with `keys`) a minimum taken down each column gives
    the least-loaded allowed port with the lowest port number on a tie (what
    `argmin` along a row gives) in one vectorised reduction, not a short `argmin`
    per switch.
    """
    num = fab.num_switches
    width = fab.num_ports
    keys = np.repeat(np.arange(width, dtype=np.int32)[:, None], num, axis=1)
    flat_keys = keys.reshape(-1)
    summed = np.empty_like(keys)  # keys + penalty of the current destination switch
    flat_summed = summed.reshape(-1)
    rows = np.arange(num, dtype=np.int64)
    lid_is_ca = np.zeros(fab.inp.max_lid + 1, dtype=np.bool_)
    lid_is_ca[fab.ca_lids] = True
    columns = np.empty((len(dest_lids), num), dtype=np.uint8)
    prev_t = -1
    penalty = np.zeros((width, num), dtype=np.int32)
    routed = rows
    unrouted = rows
    old = _previous_ports(previous, num, fab.inp.max_lid, width)
    for j, lid in enumerate(np.asarray(dest_lids, dtype=np.int64).tolist()):
        t = int(fab.lid_switch[lid])
        if t != prev_t:
            prev_t = t
            # Port-major (C order) as `keys`: reductions down columns are vectorised.
            cost = np.ascontiguousarray(cost_for(t).T)
            least = cost.min(axis=0)
            ok = least != UNREACHABLE_HOPS
            ok[t] = False
            penalty = np.where(cost == least, np.int32(0), _BIG)
            routed = np.flatnonzero(ok)
            unrouted = np.flatnonzero(~ok)
            np.add(keys, penalty, out=summed)
        choice = summed.min(axis=0) & _PORT_OF_KEY
        if old is not None:
            mine = old[lid]
            keep = penalty[mine, rows] == 0
            choice = np.where(keep, mine, choice)
        col = columns[j]
        col[:] = choice
        col[unrouted] = NO_PATH
        col[t] = fab.lid_port[lid]
        if lid_is_ca[lid]:
            chosen = choice[routed] * num + routed
            flat_keys[chosen] += _KEY_PER_LID
            flat_summed[chosen] += _KEY_PER_LID  # kept equal to keys + penalty
    # Scattered a few switch rows at a time: one scatter of the whole transposed
    # table strides across every row for each LID (6x slower on 3,584 x 44,544).
    dest = np.asarray(dest_lids, dtype=np.int64)
    for first in range(0, num, _SCATTER_ROWS):
        lft[first : first + _SCATTER_ROWS, dest] = columns[:, first : first + _SCATTER_ROWS].T

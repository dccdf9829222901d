"""Routing engines of the subnet manager: LFTs from what discovery found.

Pure functions over numpy arrays, no I/O and no state. The SM builds a
`RoutingInput` (switches, their LIDs and port counts, the switch-to-switch cables
that are up, the end ports), calls `route` (or `compute_lfts` for the bare table)
and programs `lft[switch]` into each switch, 64 entries per LinearForwardingTable
block (IBA Vol 1, 14.2.5.10).

Engines (theory of operation in each module), registered once in
`ROUTING_ENGINES` by the name OpenSM gives them (`routing_engine` in opensm.conf):

    minhop  shortest paths, ports balanced like OpenSM's minhop  (routing_updn)
    updn    up*/down*, deadlock free on any topology             (routing_updn)
    ftree   fat-tree routing, one top switch per destination     (routing_ftree)

A new engine is its module plus one `RoutingEngine` entry; `route`, the SM's
`SmConfig.routing`, the CLI's `--routing` and the scenario's `run.routing` all
look names up there.

Checks for tests and for the SM's own tests: `walk`, `trace_routes`,
`check_all_pairs`, `is_shortest`, `obeys_updown` (routing_check).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ibmig.core.sm.routing_base import (
    MAX_UNICAST_LID,
    NO_PATH,
    UNREACHABLE_HOPS,
    RoutingError,
    RoutingInput,
    RoutingResult,
    U8Array,
    port_loads,
    switch_hops,
)
from ibmig.core.sm.routing_check import (
    DEAD_END,
    LOOP,
    NO_ROUTE,
    PairTrace,
    check_all_pairs,
    is_shortest,
    obeys_updown,
    trace_routes,
    walk,
)
from ibmig.core.sm.routing_ftree import fat_tree_levels, ftree
from ibmig.core.sm.routing_updn import (
    minhop,
    opensm_updn_roots,
    updn,
    updn_ranks,
    updn_roots,
)

__all__ = [
    "DEAD_END",
    "ENGINES",
    "LOOP",
    "MAX_UNICAST_LID",
    "NO_PATH",
    "NO_ROUTE",
    "UNREACHABLE_HOPS",
    "ROUTING_ENGINES",
    "PairTrace",
    "RoutingError",
    "RoutingInput",
    "RoutingEngine",
    "RoutingResult",
    "check_all_pairs",
    "compute_lfts",
    "fat_tree_levels",
    "ftree",
    "is_shortest",
    "minhop",
    "obeys_updown",
    "opensm_updn_roots",
    "port_loads",
    "roots_from_guids",
    "route",
    "switch_hops",
    "trace_routes",
    "updn",
    "updn_ranks",
    "updn_roots",
    "walk",
]

EngineFn = Callable[[RoutingInput, Sequence[int] | None, U8Array | None], RoutingResult]
"""(input, roots, previous LFTs) -> result: the one signature `route` calls."""


@dataclass(frozen=True, slots=True)
class RoutingEngine:
    """One routing engine: its name and the function that computes its LFTs."""

    name: str
    compute: EngineFn
    summary: str

    def __call__(
        self,
        inp: RoutingInput,
        roots: Sequence[int] | None = None,
        previous: U8Array | None = None,
    ) -> RoutingResult:
        return self.compute(inp, roots, previous)


def _minhop(
    inp: RoutingInput, roots: Sequence[int] | None, previous: U8Array | None
) -> RoutingResult:
    return minhop(inp, previous)  # shortest paths need no roots


def _ftree(
    inp: RoutingInput, roots: Sequence[int] | None, previous: U8Array | None
) -> RoutingResult:
    return ftree(inp, roots)  # recomputes everything, as OpenSM's ftree does


# Module-level functions, not lambdas: a scenario holding an entry is pickled to
# the sweep's worker processes.
ROUTING_ENGINES: Mapping[str, RoutingEngine] = {
    engine.name: engine
    for engine in (
        RoutingEngine("minhop", _minhop, "shortest paths, ports balanced like OpenSM's minhop"),
        RoutingEngine("updn", updn, "up*/down*, deadlock free on any topology"),
        RoutingEngine("ftree", _ftree, "fat-tree routing, one top switch per destination"),
    )
}
"""Every routing engine by name; the first is the default (OpenSM's too)."""

ENGINES = tuple(ROUTING_ENGINES)


def roots_from_guids(inp: RoutingInput, root_guids: Sequence[int]) -> tuple[int, ...]:
    """Switch indices of the root GUIDs that are in the subnet (unknown GUIDs are
    skipped, as OpenSM skips them in its root GUID file)."""
    if inp.switch_guids is None:
        raise RoutingError("root GUIDs given but the routing input has no switch_guids")
    wanted = np.asarray([int(g) for g in root_guids], dtype=np.uint64)
    return tuple(np.flatnonzero(np.isin(inp.switch_guids, wanted)).tolist())


def route(
    inp: RoutingInput,
    engine: str = "minhop",
    roots: Sequence[int] | None = None,
    previous: U8Array | None = None,
) -> RoutingResult:
    """Run `engine` (a name in `ROUTING_ENGINES`); `roots` are switch indices
    (up*/down* roots, or the top level of a fat tree; minhop ignores them).
    `previous` (row i: the LFT switch i holds now) lets minhop and updn keep every
    entry that is still allowed and shortest, as OpenSM does after its first sweep;
    ftree recomputes everything (so does OpenSM's)."""
    try:
        entry = ROUTING_ENGINES[engine]
    except KeyError:
        known = ", ".join(ROUTING_ENGINES)
        raise RoutingError(f"unknown routing engine {engine!r}; known: {known}") from None
    return entry(inp, roots, previous)


def compute_lfts(
    inp: RoutingInput,
    engine: str = "minhop",
    *,
    root_guids: Sequence[int] | None = None,
    previous: U8Array | None = None,
) -> U8Array:
    """`lft[switch, lid]` of `engine`; `root_guids` select the roots by GUID (if none
    of them is in the subnet the engine detects its roots itself); `previous` as in
    `route`."""
    roots = roots_from_guids(inp, root_guids) if root_guids else None
    return route(inp, engine, roots or None, previous).lft

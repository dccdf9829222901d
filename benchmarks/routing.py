"""Routing engines on big 3-level fat trees: wall time and peak memory.

Cases (pods x leaves per pod x hosts per leaf; mids per pod; cores per group, core
group g serving mid g of every pod):

    ft3-11664  36 x 18 x 18; 18 mids; 18 cores  -> 1,620 switches, 11,664 hosts
    ft3-3240   10 x 18 x 18; 18 mids; 18 cores  ->   684 switches,  3,240 hosts

Every (case, engine) runs in a fresh child process, so each peak RSS is that
engine's own (Python, numpy and the input included: the "base" column is the
child's peak before routing). The reference in the same run is the all-pairs hop
matrix: the engines' numpy frontier BFS against scipy's compiled BFS
(csgraph.shortest_path, unweighted), which must agree. With --check the LFTs are
also verified (every CA reaches every CA, shortest paths, up*/down* legality);
the checks are timed separately.

    python benchmarks/routing.py [--cases ft3-11664,ft3-3240] [--engines minhop,updn,ftree]
                                 [--check]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Any

import numpy as np
from scipy.sparse import csgraph

from ibmig.core.sm.routing import (
    ENGINES,
    RoutingInput,
    check_all_pairs,
    is_shortest,
    obeys_updown,
    route,
    switch_hops,
)
from ibmig.core.sm.routing_base import Fabric

CASES: dict[str, tuple[int, int, int, int, int]] = {
    "ft3-11664": (36, 18, 18, 18, 18),
    "ft3-3240": (10, 18, 18, 18, 18),
}


def fat_tree_3level(pods: int, leaves: int, hosts: int, mids: int, cores: int) -> RoutingInput:
    """Leaves, then mids, then cores; hosts on the lowest leaf ports, then cables up;
    mids: cables down, then up; LIDs: switches first, then hosts."""
    n_leaf, n_mid, n_core = pods * leaves, pods * mids, mids * cores
    pod, leaf, mid = np.meshgrid(np.arange(pods), np.arange(leaves), np.arange(mids), indexing="ij")
    lower = np.stack(
        [
            (pod * leaves + leaf).ravel(),
            (hosts + mid + 1).ravel(),
            (n_leaf + pod * mids + mid).ravel(),
            (leaf + 1).ravel(),
        ],
        axis=1,
    )
    pod, mid, core = np.meshgrid(np.arange(pods), np.arange(mids), np.arange(cores), indexing="ij")
    upper = np.stack(
        [
            (n_leaf + pod * mids + mid).ravel(),
            (leaves + core + 1).ravel(),
            (n_leaf + n_mid + mid * cores + core).ravel(),
            (pod + 1).ravel(),
        ],
        axis=1,
    )
    num = n_leaf + n_mid + n_core
    host_switch = np.repeat(np.arange(n_leaf), hosts)
    host_port = np.tile(np.arange(1, hosts + 1), n_leaf)
    host_lid = num + 1 + np.arange(n_leaf * hosts)
    ports = np.r_[
        np.full(n_leaf, hosts + mids), np.full(n_mid, leaves + cores), np.full(n_core, pods)
    ]
    return RoutingInput(
        num_switches=num,
        switch_lids=np.arange(1, num + 1),
        switch_num_ports=ports,
        links=np.r_[lower, upper],
        ca_ports=np.stack([host_lid, host_switch, host_port], axis=1),
        max_lid=int(host_lid[-1]),
    )


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(case: str, engine: str, check: bool) -> dict[str, Any]:
    inp = fat_tree_3level(*CASES[case])
    out: dict[str, Any] = {
        "case": case,
        "engine": engine,
        "switches": inp.num_switches,
        "hosts": len(inp.ca_ports),
    }
    if engine == "reference":
        start = time.perf_counter()
        ours = switch_hops(inp)
        out["numpy_bfs_s"] = time.perf_counter() - start
        start = time.perf_counter()
        theirs = csgraph.shortest_path(Fabric(inp).adj, unweighted=True, directed=False)
        out["scipy_bfs_s"] = time.perf_counter() - start
        theirs = np.where(np.isinf(theirs), 255, theirs).astype(np.uint8)
        out["agree"] = bool(np.array_equal(ours, theirs))
        out["peak_mb"] = _peak_mb()
        return out
    out["base_mb"] = _peak_mb()
    start = time.perf_counter()
    result = route(inp, engine)
    out["seconds"] = time.perf_counter() - start
    out["peak_mb"] = _peak_mb()
    # CA LIDs per cable port, by tier: leaf up, mid up, mid down, core down
    loads, nbr = result.port_lids, Fabric(inp).nbr
    pods, leaves, _, mids, _ = CASES[case]
    n_leaf, n_mid = pods * leaves, pods * mids
    tiers = {
        "leaf_up": (slice(0, n_leaf), None),
        "mid_up": (slice(n_leaf, n_leaf + n_mid), True),
        "mid_down": (slice(n_leaf, n_leaf + n_mid), False),
        "core_down": (slice(n_leaf + n_mid, None), None),
    }
    spread = {}
    for name, (rows, up) in tiers.items():
        cable = nbr[rows] >= 0
        if up is not None:
            cable &= (nbr[rows] >= n_leaf + n_mid) == up
        values = loads[rows][cable]
        spread[name] = f"{int(values.min())}..{int(values.max())}"
    out["loads"] = spread
    out["stats"] = dict(result.stats)
    if check:
        start = time.perf_counter()
        check_all_pairs(result.lft, inp)
        out["all_pairs"] = True
        out["shortest"] = is_shortest(result.lft, inp)
        if result.ranks is not None:
            out["updown"] = obeys_updown(result.lft, inp, result.ranks)
        out["check_s"] = time.perf_counter() - start
        out["peak_with_check_mb"] = _peak_mb()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--check", action="store_true", help="verify the LFTs too")
    parser.add_argument("--child", nargs=2, metavar=("CASE", "ENGINE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.check)))
        return
    for case in args.cases.split(","):
        if case not in CASES:
            parser.error(f"unknown case {case!r}; known: {', '.join(CASES)}")
        for engine in ["reference", *args.engines.split(",")]:
            command = [sys.executable, __file__, "--child", case, engine]
            if args.check:
                command.append("--check")
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(f"{case} {engine}: failed\n{done.stderr}")
                continue
            row = json.loads(done.stdout)
            if engine == "reference":
                print(
                    f"{case}: {row['switches']} switches, {row['hosts']} hosts; all-pairs hops: "
                    f"numpy BFS {row['numpy_bfs_s']:.2f} s, scipy BFS {row['scipy_bfs_s']:.2f} s, "
                    f"agree={row['agree']}"
                )
                continue
            line = (
                f"  {engine:7s} {row['seconds']:6.2f} s  peak RSS {row['peak_mb']:6.0f} MB "
                f"(base {row['base_mb']:.0f} MB)  CA LIDs per cable port: "
                + " ".join(f"{k} {v}" for k, v in row["loads"].items())
            )
            if args.check:
                line += (
                    f"  check {row['check_s']:.1f} s: all pairs ok, shortest={row['shortest']}"
                    f", updown={row.get('updown', '-')}"
                )
            print(line)


if __name__ == "__main__":
    main()

"""Bring-up of each shared topology and of the 11,664-host fat tree, against OpenSM.

For every topology, in a fresh process (so that peak RSS is its own): ibmig's SM
brings the simulated subnet up (minhop); we record SMPs, simulated time to SUBNET
UP, wall time and peak RSS, then time each routing engine on the routing input the
SM discovered. OpenSM's SMP counts for the same files are the ones measured on
ibsim on this kind of machine (../shared/reference-notes.md; `sminfo` ActCount);
`benchmarks/ibsim_vs_opensm.py` measures OpenSM live, side by side with our SM on ibsim.

    python benchmarks/bringup.py [--topologies ft2-36,ft3-3240,...] [--skip-big]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SHARED = Path(__file__).resolve().parents[2] / "shared" / "topologies"
ALL = ["ft2-36", "ft3-32", "ft2-324", "ft2-648", "ft3-1296", "ft3-3240", "ft3-11664"]
# OpenSM 3.3.23 on ibsim, first heavy sweep, minhop (reference notes, median of 3).
OPENSM: dict[str, tuple[int, float]] = {
    "ft2-36": (1_275, 0.05),
    "ft3-32": (2_282, 0.08),
    "ft2-324": (10_478, 0.33),
    "ft3-1296": (62_426, 1.4),
    "ft3-3240": (197_498, 5.3),
    "ft3-11664": (860_000, 65.0),
}


def measure_one(name: str) -> dict[str, Any]:
    from ibmig.core.sm.routing import ROUTING_ENGINES, RoutingError, route
    from ibmig.fabric import load_topology
    from ibmig.sim.subnet import SubnetSim

    path = SHARED / f"{name}.net"
    fabric = load_topology(str(path) if path.exists() else name)
    start = time.perf_counter()
    sim = SubnetSim(fabric)
    sim.start()
    up = sim.run_until_up()
    wall = time.perf_counter() - start
    assert up is not None, f"{name} did not come up"
    inp = sim.sm.routing_input
    assert inp is not None
    routing: dict[str, float | None] = {}
    for engine in ROUTING_ENGINES:
        began = time.perf_counter()
        try:
            route(inp, engine)
        except RoutingError:
            routing[engine] = None
        else:
            routing[engine] = time.perf_counter() - began
    return {
        "name": name,
        "switches": fabric.num_switches,
        "cas": fabric.num_cas,
        "smps": sim.sm.smps_sent,
        "sim_ms": up.time_ns / 1e6,
        "wall_s": wall,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "routing_s": routing,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topologies", default=",".join(ALL))
    parser.add_argument("--skip-big", action="store_true", help="leave out ft3-11664")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.one)))
        return
    names = [n for n in args.topologies.split(",") if n]
    if args.skip_big:
        names = [n for n in names if n != "ft3-11664"]
    header = (
        f"{'topology':<10} {'switches':>8} {'CAs':>6} {'SMPs':>9} {'OpenSM':>9} {'ratio':>6} "
        f"{'sim ms':>8} {'wall s':>7} {'RSS MB':>7}  routing s (minhop/updn/ftree)"
    )
    print(header)
    for name in names:
        done = subprocess.run(
            [sys.executable, __file__, "--one", name], check=True, capture_output=True, text=True
        )
        row = json.loads(done.stdout)
        ref = OPENSM.get(name)
        ref_smps = f"{ref[0]:,}" if ref else "-"
        ratio = f"{row['smps'] / ref[0]:.2f}" if ref else "-"
        times = "/".join("-" if t is None else f"{t:.2f}" for t in row["routing_s"].values())
        print(
            f"{name:<10} {row['switches']:>8,} {row['cas']:>6,} {row['smps']:>9,} {ref_smps:>9} "
            f"{ratio:>6} {row['sim_ms']:>8.1f} {row['wall_s']:>7.1f} {row['peak_rss_mb']:>7.0f}  "
            f"{times}",
            flush=True,
        )


if __name__ == "__main__":
    main()

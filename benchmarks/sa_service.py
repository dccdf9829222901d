"""OpenSM's SA answering PathRecord queries on ibsim: the service time per MAD.

Starts ibsim on a shared fat tree and stock OpenSM on it, builds osmtest's
inventory (`osmtest -f c`), then runs osmtest's SA stress flow with single-MAD
PathRecord Gets (`osmtest -f f -s4`: about 100,000 queries, one at a time, each
waiting for its answer) and reads:

- the queries osmtest made and the wall time it reports for them: one query round
  trip, client -> ibsim -> OpenSM -> ibsim -> client;
- OpenSM's CPU time over the stress run (/proc), per query: the SA's own work,
  without the client's and ibsim's.

A query is two MADs at the SA (the request it handles, the response it emits), so
the service time per MAD is half the SA's CPU per query. Both figures are bounds
of a sort: the round trip includes ibsim's four socket hops and osmtest's own work
(an upper bound of the SA's time per query, and it is what ibsim inflates), while
OpenSM's CPU per query leaves out waits inside OpenSM and includes its umad2sim
socket calls (system time). `ibmig.sim.latency.LatencyModel.sa_ns` takes the
second, halved.

    python benchmarks/sa_service.py [--topology ft2-324] [--repeats 3]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ibmig.ibsim.harness import Harness, missing_tools, process_cpu_s  # noqa: E402

SHARED = ROOT.parent / "shared" / "topologies"
TOOK = re.compile(r"Querying (\d+) path_rec queries took (\d+):(\d+)")


def one_round(net: Path, scratch: Path) -> tuple[int, float, float]:
    """(queries, wall seconds osmtest reports, OpenSM CPU seconds over the run)."""
    with Harness() as harness:
        sim = harness.start_ibsim(net)
        osm = harness.start_opensm(sim)
        osm.wait_up(300)
        env = sim.tool_env()
        inventory = scratch / "inventory.txt"
        subprocess.run(
            ["osmtest", "-f", "c", "-i", str(inventory)],
            env=env, cwd=scratch, check=True, capture_output=True, timeout=600,
        )  # fmt: skip
        cpu_before = process_cpu_s(osm.proc.pid)
        done = subprocess.run(
            ["osmtest", "-f", "f", "-s4", "-i", str(inventory)],
            env=env, cwd=scratch, check=True, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        cpu = process_cpu_s(osm.proc.pid) - cpu_before
        found = TOOK.findall(done.stdout + done.stderr)
        if not found:
            raise RuntimeError(f"osmtest printed no stress figures:\n{done.stdout[-2000:]}")
        queries, sec, usec = (int(x) for x in found[-1])
        return queries, sec + usec / 1e6, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topology", default="ft2-324", help="a file in ../shared/topologies")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    missing = missing_tools() + [t for t in ("osmtest",) if not _has(t)]
    if missing:
        print(f"cannot run: missing {', '.join(missing)}", file=sys.stderr)
        return 1
    net = SHARED / f"{args.topology}.net"
    round_trips: list[float] = []
    cpu_per_query: list[float] = []
    with tempfile.TemporaryDirectory(prefix="ibmig-sa-") as scratch:
        for round_ in range(args.repeats):
            queries, wall, cpu = one_round(net, Path(scratch))
            round_trips.append(wall / queries)
            cpu_per_query.append(cpu / queries)
            print(
                f"round {round_ + 1}: {queries:,} PathRecord queries in {wall:.2f} s "
                f"({queries / wall:,.0f}/s); OpenSM CPU {cpu:.2f} s",
                file=sys.stderr,
                flush=True,
            )
    rt = statistics.median(round_trips) * 1e6
    cpu_us = statistics.median(cpu_per_query) * 1e6
    print(f"topology {args.topology}, median of {args.repeats} rounds")
    print(f"query round trip through ibsim:   {rt:6.1f} us  ({1e6 / rt:,.0f} queries/s)")
    print(f"OpenSM CPU per query:             {cpu_us:6.1f} us")
    print(f"SA service time per MAD (CPU / 2): {cpu_us / 2:6.1f} us")
    print(f"upper bound per MAD (round trip / 2, ibsim's socket hops included): {rt / 2:.1f} us")
    return 0


def _has(tool: str) -> bool:
    import shutil

    return shutil.which(tool) is not None


if __name__ == "__main__":
    sys.exit(main())

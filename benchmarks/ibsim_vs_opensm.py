"""OpenSM and `ibmig sm --ibsim` bringing up the same ibsim fabric, side by side.

For each topology, `--repeats` rounds; each round runs OpenSM and then ibmig's SM
(alternating which goes first from one round to the next), each on a fresh ibsim
of the same net file, and records:

- time to SUBNET UP of the first (heavy) sweep: OpenSM's from its own log
  timestamps ("Entering DISCOVERING state" to "SUBNET UP"), ours from our SM's
  clock (first SMP of the sweep to SUBNET UP, the line `ibmig sm` prints); process
  start-up is left out of both, and reported apart as "wall" (launch to SUBNET UP
  seen by this script);
- SMPs sent: OpenSM's SMInfo ActCount read with `sminfo` after SUBNET UP, ours
  from the engine (the count in the SUBNET UP line);
- CPU seconds to SUBNET UP, SM plus ibsim: less sensitive than time to what else
  runs on the machine. OpenSM's from /proc when SUBNET UP is seen (its start-up
  included, a few ms of C), ours as `ibmig sm` reports it for the sweep (Python
  start-up excluded), ibsim's as the growth of its own CPU time over the sweep.

The table shows medians and the ratios ibmig / OpenSM (below 1: ibmig is faster
or sends fewer SMPs). The machine is shared and noisy: compare ratios from one run.

    python benchmarks/ibsim_vs_opensm.py [--topologies ft2-36,ft2-324,ft3-1296,ft3-3240]
        [--repeats 3] [--routing minhop] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ibmig.fabric import PRESETS, preset, write_net  # noqa: E402
from ibmig.ibsim.harness import Harness, missing_tools, process_cpu_s  # noqa: E402

SHARED = ROOT.parent / "shared" / "topologies"
DEFAULT = ["ft2-36", "ft2-324", "ft3-1296", "ft3-3240"]
UP_LINE = re.compile(
    r"^SUBNET UP sweep 1 \(heavy\): (\d+) SMPs in ([\d.]+) s \(CPU ([\d.]+) s\)", re.MULTILINE
)
ACT_COUNT = re.compile(r"activity count (\d+)")


def net_file(name: str, scratch: Path) -> Path:
    path = SHARED / f"{name}.net"
    if path.exists():
        return path
    if name not in PRESETS:
        raise SystemExit(f"no {path} and no preset named {name}")
    target = scratch / f"{name}.net"
    if not target.exists():
        write_net(preset(name), target)
    return target


def run_opensm(net: Path, routing: str, timeout_s: float) -> dict[str, float]:
    with Harness() as harness:
        sim = harness.start_ibsim(net)
        sim_cpu = process_cpu_s(sim.proc.pid)
        osm = harness.start_opensm(sim, routing=routing)
        seconds = osm.wait_up(timeout_s)
        wall = time.monotonic() - osm.started
        cpu = process_cpu_s(osm.proc.pid) + process_cpu_s(sim.proc.pid) - sim_cpu
        text = harness.tool(sim, ["sminfo"]).stdout
        match = ACT_COUNT.search(text)
        if match is None:
            raise RuntimeError(f"sminfo printed no activity count: {text!r}")
        return {"time_s": seconds, "smps": float(match.group(1)), "wall_s": wall, "cpu_s": cpu}


def run_ibmig(net: Path, routing: str, timeout_s: float) -> dict[str, float]:
    with Harness() as harness:
        sim = harness.start_ibsim(net)
        sim_cpu = process_cpu_s(sim.proc.pid)
        began = time.monotonic()
        sm = harness.start_ibmig_sm(sim, args=["--exit-after-up", "--quiet", "--routing", routing])
        sm.wait_up(timeout_s)
        wall = time.monotonic() - began
        sim_cpu = process_cpu_s(sim.proc.pid) - sim_cpu
        match = UP_LINE.search(sm.output())
        if match is None:
            raise RuntimeError(f"no SUBNET UP line:\n{sm.output()}")
        sm.proc.wait(60)
        return {
            "time_s": float(match.group(2)),
            "smps": float(match.group(1)),
            "wall_s": wall,
            "cpu_s": float(match.group(3)) + sim_cpu,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topologies", default=",".join(DEFAULT))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--routing", default="minhop")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--json", metavar="FILE", help="also write every measurement as JSON")
    args = parser.parse_args()
    missing = missing_tools()
    if missing:
        print(f"cannot run: missing {', '.join(missing)}", file=sys.stderr)
        return 1
    names = [n.strip() for n in args.topologies.split(",") if n.strip()]
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    with tempfile.TemporaryDirectory(prefix="ibmig-bench-") as scratch:
        for name in names:
            net = net_file(name, Path(scratch))
            runs: dict[str, list[dict[str, float]]] = {"opensm": [], "ibmig": []}
            for round_ in range(args.repeats):
                order = ["opensm", "ibmig"] if round_ % 2 == 0 else ["ibmig", "opensm"]
                for who in order:
                    run = run_opensm if who == "opensm" else run_ibmig
                    measured = run(net, args.routing, args.timeout)
                    runs[who].append(measured)
                    print(
                        f"{name} round {round_ + 1} {who:6}: {measured['time_s']:8.3f} s "
                        f"{int(measured['smps']):>9,} SMPs, CPU {measured['cpu_s']:7.3f} s "
                        f"(wall {measured['wall_s']:.2f} s)",
                        file=sys.stderr,
                        flush=True,
                    )
            results[name] = runs
    print()
    print(
        "| file | OpenSM time | ibmig time | time ratio | OpenSM SMPs | ibmig SMPs | "
        "SMP ratio | OpenSM CPU | ibmig CPU | CPU ratio | OpenSM wall | ibmig wall |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    summary: dict[str, Any] = {}
    for name, runs in results.items():
        med = {
            who: {
                k: statistics.median(r[k] for r in rs)
                for k in ("time_s", "smps", "wall_s", "cpu_s")
            }
            for who, rs in runs.items()
        }
        o, i = med["opensm"], med["ibmig"]
        time_ratio = i["time_s"] / o["time_s"]
        smp_ratio = i["smps"] / o["smps"]
        cpu_ratio = i["cpu_s"] / o["cpu_s"]
        summary[name] = {
            "median": med,
            "time_ratio": time_ratio,
            "smp_ratio": smp_ratio,
            "cpu_ratio": cpu_ratio,
        }
        print(
            f"| {name} | {o['time_s']:.3f} s | {i['time_s']:.3f} s | {time_ratio:.2f} | "
            f"{int(o['smps']):,} | {int(i['smps']):,} | {smp_ratio:.2f} | "
            f"{o['cpu_s']:.2f} s | {i['cpu_s']:.2f} s | {cpu_ratio:.2f} | "
            f"{o['wall_s']:.2f} s | {i['wall_s']:.2f} s |"
        )
    print(f"\nmedians of {args.repeats} rounds, routing {args.routing}; ratio = ibmig / OpenSM")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": results, "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Event-kernel throughput against SimPy on the same message-delivery workload.

Workload: N entities; each delivered message makes its receiver send one message to
a random entity after a random delay (1..1000 ns), until M deliveries. SimPy runs in
its callback style (a Timeout event with a callback appended), the fastest way to
use it. Both draw from identically seeded RNGs, so they do the same work.

    python benchmarks/kernel.py [--entities 10000] [--messages 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from typing import Any

import simpy

from ibmig.sim.kernel import EventKernel


def run_ibmig(entities: int, messages: int, seed: int) -> int:
    rng = random.Random(seed)
    kernel = EventKernel()
    received = [0] * entities
    left = [messages]
    rand = rng.random
    schedule = kernel.schedule

    def deliver(entity: int) -> None:
        received[entity] += 1
        left[0] -= 1
        if left[0] > 0:
            schedule(int(rand() * 1000) + 1, deliver, int(rand() * entities))

    for entity in range(min(entities, messages)):
        schedule(int(rand() * 1000) + 1, deliver, entity)
    kernel.run()
    return sum(received)


def run_simpy(entities: int, messages: int, seed: int) -> int:
    rng = random.Random(seed)
    env = simpy.Environment()
    received = [0] * entities
    left = [messages]
    rand = rng.random
    timeout = env.timeout

    def send(entity: int) -> None:
        timeout(int(rand() * 1000) + 1, entity).callbacks.append(deliver)

    def deliver(event: Any) -> None:
        entity = event.value
        received[entity] += 1
        left[0] -= 1
        if left[0] > 0:
            send(int(rand() * entities))

    for entity in range(min(entities, messages)):
        send(entity)
    env.run()
    return sum(received)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rates: dict[str, list[float]] = {"ibmig": [], "simpy": []}
    # Alternate the two so that machine noise hits both alike.
    for round_no in range(args.repeat):
        for name, fn in (("ibmig", run_ibmig), ("simpy", run_simpy)):
            start = time.perf_counter()
            delivered = fn(args.entities, args.messages, round_no)
            elapsed = time.perf_counter() - start
            assert delivered >= args.messages
            rates[name].append(delivered / elapsed)
    ours = statistics.median(rates["ibmig"])
    ref = statistics.median(rates["simpy"])
    print(f"message deliveries per second ({args.entities} entities, {args.messages} messages,")
    print(f"median of {args.repeat} alternating runs)")
    print(f"  ibmig EventKernel  {ours:12,.0f}")
    print(f"  SimPy (callbacks)  {ref:12,.0f}")
    print(f"  ratio              {ours / ref:12.2f}x")


if __name__ == "__main__":
    main()

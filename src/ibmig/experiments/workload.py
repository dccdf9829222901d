"""The workload stage: p clients, on other hosts, for each VM that will migrate,
each keeping an RC connection to it busy.

Where the clients run: drawn among every VM of the other hosts (h_p, the hosts
holding a peer, up to min(p, n - 1): peers everywhere), or with
`workload.peer_hosts = k` among the VMs of k other hosts drawn first (a job
spread over a few hosts: h_p <= k, however large n), which is where targeted
signalling gains most."""

from __future__ import annotations

import random

from ibmig.experiments.metrics import ConnectionResult
from ibmig.experiments.scenario import Scenario
from ibmig.sim.hosting import VirtualizedSubnet


def start_workload(scenario: Scenario, sim: VirtualizedSubnet) -> list[ConnectionResult]:
    """Connect the peers now; the connections whose deliveries the run measures."""
    rng = random.Random(f"{scenario.run.seed}:peers")
    connections: list[ConnectionResult] = []
    now = sim.kernel.now_ns
    for event in scenario.migrations:
        server = sim.vms[f"vm{event.vm}"]
        others = [v for v in sim.vms.values() if v.host != server.host]
        if scenario.workload.peer_hosts:
            hosts = sorted({v.host for v in others})
            chosen = set(rng.sample(hosts, min(scenario.workload.peer_hosts, len(hosts))))
            others = [v for v in others if v.host in chosen]
        for client in rng.sample(others, min(scenario.workload.peers, len(others))):
            client.guest.add_peer(server.guest.ip, server.guest.gid, now)
            # add_peer queued the client's first packets; the simulator has no
            # public call for "an engine has output now", so pump it directly.
            sim.pump(sim.hosts[client.host].node, client.guest, 0)
            connections.append(ConnectionResult(client.name, server.name))
    return connections

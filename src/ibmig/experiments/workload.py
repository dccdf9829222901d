"""The workload stage: p clients, on other hosts, for each VM that will migrate,
each keeping an RC connection to it busy.

Where the clients run: drawn among every VM of the other hosts (h_p, the hosts
holding a peer, up to min(p, n - 1): peers everywhere), or with
`workload.peer_hosts = k` among the VMs of k other hosts drawn first (a job
spread over a few hosts: h_p <= k, however large n), which is where targeted
signalling gains most.

Who connects (`workload.direction`): "to-vm" makes each peer a client of the VM
that will migrate, so the peer's CM is the active side when the connection breaks;
"from-vm" makes that VM the client of each peer, so its own CM reconnects once its
VF is back; "both" opens one connection each way. RDS opens its connections from
either end (net/rds/threads.c `rds_connect_worker` runs on both), so "both" is the
closest to it; rdma_cm client/server applications are one or the other."""

from __future__ import annotations

import random

from ibmig.experiments.metrics import ConnectionResult
from ibmig.experiments.scenario import Scenario
from ibmig.sim.hosting import VirtualizedSubnet, VmSlot


def start_workload(scenario: Scenario, sim: VirtualizedSubnet) -> list[ConnectionResult]:
    """Connect the peers now; the connections whose deliveries the run measures."""
    rng = random.Random(f"{scenario.run.seed}:peers")
    connections: list[ConnectionResult] = []
    for event in scenario.migrations:
        server = sim.vms[f"vm{event.vm}"]
        others = [v for v in sim.vms.values() if v.host != server.host]
        if scenario.workload.peer_hosts:
            hosts = sorted({v.host for v in others})
            chosen = set(rng.sample(hosts, min(scenario.workload.peer_hosts, len(hosts))))
            others = [v for v in others if v.host in chosen]
        direction = scenario.workload.direction
        for peer in rng.sample(others, min(scenario.workload.peers, len(others))):
            if direction != "from-vm":
                _connect(sim, peer, server)
                connections.append(ConnectionResult(peer.name, server.name))
            if direction != "to-vm":
                _connect(sim, server, peer)
                connections.append(ConnectionResult(server.name, peer.name, vm=server.name))
    return connections


def _connect(sim: VirtualizedSubnet, client: VmSlot, server: VmSlot) -> None:
    client.guest.add_peer(server.guest.ip, server.guest.gid, sim.kernel.now_ns)
    # add_peer queued the client's first packets; the simulator has no public call
    # for "an engine has output now", so pump it directly.
    sim.pump(sim.hosts[client.host].node, client.guest, 0)

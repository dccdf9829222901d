"""The placement stage: choose the physical servers, start a dom0 on each and m VMs
per server, and run until every VM is up (alias GUID registered, subscribed when
its strategy says so)."""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import partial
from ipaddress import IPv4Address

from ibmig.core.guest import GuestAgent
from ibmig.core.guest.config import GuestConfig
from ibmig.core.host import AddressAssignment, HostAgent, HostConfig
from ibmig.errors import ConfigError
from ibmig.experiments.scenario import Scenario
from ibmig.experiments.stepping import Stepper
from ibmig.fabric import Fabric
from ibmig.sim.hosting import VirtualizedSubnet, VmSlot, make_rng

VGUID_BASE = 0x0002_C9FE_0000_0000  # locally chosen OUI-style block for VM vGUIDs


PLACEMENT_LIMIT_NS = 600 * 10**9
"""How long placing the VMs may take, in simulated time. It takes milliseconds on a
working fabric; dom0 retries an unanswered alias GUID request without end (backing off
to 60 s, as mlx4), so a fabric whose SA never answers would otherwise run for ever."""


def pick_hosts(
    fabric: Fabric,
    sm_node: int,
    n: int,
    placement: str,
    seed: int,
    *,
    addressed: Callable[[int], bool] = lambda node: True,
    where: str = "hosts.n",
) -> list[int]:
    """n CA nodes (not the SM's) to act as physical servers: cabled, and given a LID
    by the SM (`addressed(node)`) -- a dom0 on a port without one cannot reach the
    SA. `where` names hosts.n in errors."""
    candidates = [
        node.index
        for node in fabric.cas
        if node.index != sm_node and fabric.peer(node.index, 1) is not None
    ]
    cabled = len(candidates)
    candidates = [node for node in candidates if addressed(node)]
    if len(candidates) < n:
        unaddressed = cabled - len(candidates)
        detail = f" ({unaddressed:,} more have no LID from the SM)" if unaddressed else ""
        raise ConfigError(
            f"the topology has {len(candidates)} cabled CAs besides the SM's{detail}, "
            f"fewer than n = {n}",
            where,
        )
    if placement == "packed":
        return candidates[:n]
    if placement == "random":
        return sorted(random.Random(f"{seed}:placement").sample(candidates, n))
    # spread: round-robin over the switches the CAs hang off, so VMs and peers sit
    # behind different leaves and paths cross the fabric.
    by_switch: dict[int, list[int]] = {}
    for node in candidates:
        peer = fabric.peer(node, 1)
        assert peer is not None
        by_switch.setdefault(peer.node_index, []).append(node)
    queues = list(by_switch.values())
    chosen: list[int] = []
    while len(chosen) < n:
        for queue in queues:
            if queue and len(chosen) < n:
                chosen.append(queue.pop(0))
    return chosen


def _settled(vm: VmSlot) -> bool:
    """Up, with no InformInfo Set of its own in flight. A guest that subscribes
    itself (per-VM) may see its first answer dropped by its HCA: its vport comes up
    on the SA's acknowledgement, and the answer can arrive before the SM's GUIDInfo
    write puts its vGUID in the port's table (thousands of writes queued at once).
    It asks again when its SA timeout runs out; a placement that ended before
    would leave that storm of resends to the migrations."""
    return vm.up and not vm.guest.subscribing


class AllUp:
    """Whether every VM is up and done subscribing (`_settled`), asked between
    chunks of events while the VMs come up. Scanning every VM each time costs VMs x
    chunks, quadratic in the VMs (7 % of the placement's profile on the 11,664-host
    tree, twelve times that cost on the 40,960-host one). VMs settle and stay so, so
    each call resumes from the first VM the last one found unsettled; only a cursor
    that reaches the end pays for a full pass, which keeps the answer exact."""

    def __init__(self, vms: list[VmSlot]) -> None:
        self.vms = vms
        self.first_down = 0

    def __call__(self) -> bool:
        vms = self.vms
        i = self.first_down
        while i < len(vms) and _settled(vms[i]):
            i += 1
        self.first_down = i
        return i == len(vms) and all(_settled(vm) for vm in vms)


def vm_ip(index: int) -> IPv4Address:
    """VM i's IPoIB address: 10.0.0.(i+1), ..."""
    return IPv4Address(0x0A00_0000 + index + 1)


def place(
    scenario: Scenario,
    fabric: Fabric,
    sim: VirtualizedSubnet,
    guest_config: GuestConfig,
    stepper: Stepper,
) -> list[str]:
    """Hosts "host0".. and VMs "vm0".. (VM i on host i // m); the host names."""
    seed = scenario.run.seed
    hosts_cfg = scenario.hosts
    strategy = scenario.signalling.strategy
    assignment = scenario.signalling.assignment
    standby = sim.standby.node if sim.standby is not None else -1  # hosts no VM
    host_nodes = pick_hosts(
        fabric, sim.sm_node, hosts_cfg.n, hosts_cfg.placement, seed,
        addressed=lambda node: sim.agents[node].port_lid(1) != 0 and node != standby,
        where=f"{scenario.source}: hosts.n",
    )  # fmt: skip
    host_config = HostConfig(
        num_vfs=hosts_cfg.vfs,
        assignment=assignment,
        subscribe_path_changes=strategy.dom0_subscribes,
        path_change_notice=scenario.signalling.notice,
        vf_lids=hosts_cfg.vswitch is not None,
    )
    prefix = sim.sm.config.subnet_prefix
    host_names = [f"host{i}" for i in range(hosts_cfg.n)]
    for name, node in zip(host_names, host_nodes, strict=True):
        port_guid = fabric.ports[fabric.nodes[node].port_index(1)].port_guid
        agent = HostAgent(
            name, port_guid, rng=make_rng(seed, "host", name), config=host_config,
            subnet_prefix=prefix, record_events=True,
        )  # fmt: skip
        sim.add_host(name, node, agent)
    static = assignment is AddressAssignment.STATIC
    if scenario.partitions is not None:
        # Before the VMs come up: each VM's partitions then reach its host's P_Key
        # table as its hypervisor writes its vGUID.
        names = {
            name: fabric.ports[fabric.nodes[node].port_index(1)].port_guid
            for name, node in zip(host_names, host_nodes, strict=True)
        }
        names.update({f"vm{i}": VGUID_BASE + i + 1 for i in range(hosts_cfg.n * hosts_cfg.m)})
        sim.sm.set_partitions(scenario.partitions.parse(names), sim.kernel.now_ns)
        sim.pump(sim.sm_node, sim.sm_engine)
    m = hosts_cfg.m
    for h, host in enumerate(host_names):
        vms = []
        for i in range(h * m, (h + 1) * m):
            name = f"vm{i}"
            guest = GuestAgent(
                ip=vm_ip(i), rng=partial(make_rng, seed, "vm", i), config=guest_config,
                subscribe=strategy.guest_subscribes, notice=scenario.signalling.notice,
                record_events=True, name=name,
            )  # fmt: skip
            vms.append((name, guest, VGUID_BASE + i + 1 if static else 0))
        sim.add_vms(host, vms)  # a host's VMs start together (one toolstack pump)
    # Up, every port holding its alias GUIDs and every guest's own subscription
    # answered (`_settled`): under OpenSM's answer order a vport is up before the SM's
    # GUIDInfo write lands, and a migration measured from here must not count the
    # set-up's writes, nor its resends.
    all_up = AllUp(list(sim.vms.values()))
    # The SA's state first: while its writes are in flight `all_up` need not be
    # asked, and once every VM is up it makes a full pass on every call.
    stepper.until_idle_or(
        lambda: not sim.sa.guid_info_writes_in_flight and sim.sa_idle() and all_up(),
        PLACEMENT_LIMIT_NS,
        sim.sa_idle_from,  # the rest of the condition changes only with events
    )
    not_up = [v.name for v in sim.vms.values() if not v.up]
    if not_up:
        raise ConfigError(
            f"VMs never came up within {PLACEMENT_LIMIT_NS // 10**9} s of simulated time: "
            f"{', '.join(not_up[:5])}",
            scenario.source,
        )
    return host_names

"""SR-IOV hosts, guests and live migrations on a simulated subnet.

`VirtualizedSubnet` extends `SubnetSim` with the engines of a virtualised data
centre, and only wires them together:

- a dom0 engine (`HostAgent`) on each chosen CA, reached on QP1 through the PF;
- guest engines (`GuestAgent`), each behind a VF of its host's port. An arriving
  packet goes where the HCA's demultiplexing by DGID says (`ibmig.core.host.demux`),
  reading the port's GUIDInfo table as the SMA holds it; a drop is counted by reason;
- the intra-host channel between dom0 and its guests, with its own latency
  (`LatencyModel.intra_host_ns`), counted apart from fabric traffic;
- the toolstack (`MigrationCoordinator`): it starts VMs and drives live migrations;
  the runtime carries out the commands it gives (`HostCall`, `GuestCall`,
  `GuestMoved`), hands it the dom0 events it confirms with, and writes its
  `PhaseEntered` events to the trace (node "toolstack");
- faults of management software: a dom0 restarted (`restart_dom0`), the SA
  restarted (`restart_sa`); the SM's ClientReregister reaches the port's dom0 and
  guests (`HostAgent.client_reregister`, `GuestAgent.client_reregister`).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ibmig.core.engine import Datagram, Engine
from ibmig.core.guest import GuestAgent
from ibmig.core.host import HostAgent
from ibmig.core.host.demux import demultiplex
from ibmig.core.host.messages import GuestToHost, HostToGuest
from ibmig.core.migration.coordinator import (
    GuestCall,
    GuestMoved,
    HostCall,
    MigrationCoordinator,
)
from ibmig.core.migration.machine import LiveMigration
from ibmig.core.sa import SubnetAdministrator
from ibmig.core.sma import ClientReregisterRequested
from ibmig.sim.subnet import TOOLSTACK, SubnetSim
from ibmig.wire.mad import MgmtClass


@dataclass(slots=True)
class HostSlot:
    """A physical server: its CA node, port and dom0."""

    name: str
    node: int
    port: int
    agent: HostAgent


@dataclass(slots=True)
class VmSlot:
    name: str
    guest: GuestAgent
    host: str
    vguid: int

    @property
    def up(self) -> bool:
        """The guest's stack is attached to a VF (not detached by a migration)."""
        return self.guest.attached


class VirtualizedSubnet(SubnetSim):
    """A simulated subnet with SR-IOV hosts, guests and migrations (module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hosts: dict[str, HostSlot] = {}
        self.host_at: dict[int, HostSlot] = {}
        self.vms: dict[str, VmSlot] = {}
        self.intra_host: Counter[str] = Counter()
        self._host_agents: dict[str, HostAgent] = {}
        self._vm_of_guest: dict[int, VmSlot] = {}  # id(guest engine) -> its VM
        self.coordinator = MigrationCoordinator(self._host_agents)
        self.attach(TOOLSTACK, self.coordinator, 0, outputs=self._carry_out_commands)
        self.add_event_hook(self._confirm, *MigrationCoordinator.CONFIRMATIONS)
        self.add_event_hook(self._client_reregister, ClientReregisterRequested)

    @property
    def migrations(self) -> list[LiveMigration]:
        return self.coordinator.migrations

    # --- building ---------------------------------------------------------------------

    def add_host(self, name: str, node: int, agent: HostAgent, port: int = 1) -> HostSlot:
        slot = HostSlot(name, node, port, agent)
        self.hosts[name] = slot
        self.host_at[node] = slot
        self._host_agents[name] = agent
        self.attach(
            node,
            agent,
            self.latency.dom0_ns,
            gsi_classes=(MgmtClass.SUBN_ADM,),
            outputs=self._send_to_guests,
        )
        lid = self.agents[node].port_lid(port)
        agent.port_active(lid, self.sm.db.sm_lid, self.kernel.now_ns)
        self._pump(node, agent)
        return slot

    def add_vm(self, name: str, guest: GuestAgent, host: str, vguid: int) -> VmSlot:
        """Place a VM on `host`; its VF comes up when the SA acknowledges its GUID."""
        slot = VmSlot(name, guest, host, vguid)
        self.vms[name] = slot
        self._vm_of_guest[id(guest)] = slot
        self.attach(self.hosts[host].node, guest, self.latency.guest_ns, outputs=self._send_to_dom0)
        self.coordinator.start_vm(name, host, vguid or None, self.kernel.now_ns)
        self._pump(TOOLSTACK, self.coordinator)
        return slot

    def narrow_engine_events(self) -> None:
        super().narrow_engine_events()
        wanted = self.wanted_event_types()
        self.coordinator.event_filter = wanted
        for vm in self.vms.values():
            vm.guest.event_filter = wanted

    def migrate(self, migration: LiveMigration) -> None:
        self.coordinator.migrate(migration, self.kernel.now_ns)
        self._pump(TOOLSTACK, self.coordinator)

    def abort_migration(self, vm: str, reason: str = "aborted") -> None:
        """Abort the running migration of `vm` (`MigrationCoordinator.abort`): the VM
        goes on at its source. CoordinatorError when `vm` is not migrating."""
        self.coordinator.abort(vm, self.kernel.now_ns, reason)
        self._pump(TOOLSTACK, self.coordinator)

    # --- faults of management software ------------------------------------------------

    def restart_dom0(self, name: str) -> None:
        """dom0 of host `name` dies and comes back (`HostAgent.restart`): it reads
        its port again, and its guests register their paths again."""
        host = self.hosts[name]
        now = self.kernel.now_ns
        host.agent.restart(now)
        lid = self.agents[host.node].port_lid(host.port)
        if lid and self.sm.db.sm_lid:
            host.agent.port_active(lid, self.sm.db.sm_lid, now)
        self._pump(host.node, host.agent)
        for vm in self.vms.values():
            if vm.host == name:
                vm.guest.dom0_restarted(now)
                self._pump(host.node, vm.guest)

    def restart_sa(self) -> None:
        """The SA restarts with no state (subscriptions, Reports in flight); the SM
        sets ClientReregister on every port so that its clients subscribe again."""
        old = self.sa
        if old in self.sm.listeners:
            self.sm.listeners.remove(old)
        sa = SubnetAdministrator(
            self.sm, rng=random.Random(self.rng.getrandbits(64)), config=old.config
        )
        sa.event_filter = old.event_filter
        self.sa = sa
        self.sm_engine.sa = sa
        now = self.kernel.now_ns
        self.sm.reregister_clients(now)
        self._pump(self.sm_node, self.sm_engine)

    def _client_reregister(self, node: int, event: Any) -> None:
        host = self.host_at.get(node)
        if host is None or event.port != host.port:
            return
        now = self.kernel.now_ns
        host.agent.client_reregister(now)
        self._pump(host.node, host.agent)
        for vm in self.vms.values():
            if vm.host == host.name:
                vm.guest.client_reregister(now)
                self._pump(host.node, vm.guest)

    # --- the toolstack ------------------------------------------------------------------

    def _confirm(self, node: int, event: Any) -> None:
        self.coordinator.confirm(event, self.kernel.now_ns)
        self._pump(TOOLSTACK, self.coordinator)

    def _carry_out_commands(self, node: int, engine: Engine) -> None:
        coordinator = self.coordinator
        now = self.kernel.now_ns
        while (command := coordinator.next_command()) is not None:
            if isinstance(command, HostCall):
                host = self.hosts[command.host]
                command.call(host.agent, now)
                self._pump(host.node, host.agent)
            elif isinstance(command, GuestCall):
                vm = self.vms[command.vm]
                command.call(vm.guest, now)
                self._pump(self.hosts[vm.host].node, vm.guest)
            elif isinstance(command, GuestMoved):
                self.vms[command.vm].host = command.host

    # --- the intra-host channel ---------------------------------------------------------

    def _send_to_dom0(self, node: int, engine: Engine) -> None:
        vm = self._vm_of_guest[id(engine)]
        messages = vm.guest.intra_host_to_send()
        if messages:
            for message in messages:
                self.intra_host["guest_to_dom0"] += 1
                self.kernel.schedule(
                    self.latency.intra_host_ns, self._to_dom0, (vm.host, vm.name, message)
                )

    def _send_to_guests(self, node: int, engine: Engine) -> None:
        for forward in self.host_at[node].agent.intra_host_to_send():
            self.intra_host["dom0_to_guest"] += 1
            self.kernel.schedule(self.latency.intra_host_ns, self._to_guest, forward)

    def _to_dom0(self, arg: tuple[str, str, GuestToHost]) -> None:
        host, vm, message = arg
        slot = self.hosts[host]
        slot.agent.receive_intra_host(vm, message, self.kernel.now_ns)
        self._pump(slot.node, slot.agent)

    def _to_guest(self, message: HostToGuest) -> None:
        vm = self.vms.get(message.vm_id)
        if vm is None:
            return
        guest = vm.guest
        guest.receive_intra_host(message, self.kernel.now_ns)
        self._pump(self.hosts[vm.host].node, guest)

    # --- the HCA's demultiplexing by GID ------------------------------------------------

    def _deliver(self, arg: tuple[int, Datagram]) -> None:
        node, datagram = arg
        host = self.host_at.get(node)
        if host is None:
            super()._deliver(arg)
            return
        sma = self.agents[node]
        port = host.port
        delivery = demultiplex(datagram, host.agent, lambda guid: sma.guid_index(port, guid))
        if delivery.drop is not None:
            self._drop(delivery.drop)
            return
        if delivery.vm is None:
            super()._deliver(arg)
            return
        guest = self.vms[delivery.vm].guest
        if not guest.attached:
            self._drop("no_vf")
            return
        self.stats.delivered += 1
        self._handle(node, guest, datagram)


def make_rng(seed: int, *labels: object) -> random.Random:
    """A stream of its own for one engine, derived from the run's seed and a label,
    so that adding an engine does not shift the randomness of the others."""
    return random.Random(f"{seed}:" + ":".join(str(label) for label in labels))

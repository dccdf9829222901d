"""SR-IOV hosts, guests and live migrations on a simulated subnet.

`VirtualizedSubnet` extends `SubnetSim` with what issue 5 needs:

- a dom0 engine (`HostAgent`) on each chosen CA, reached on QP1 through the PF;
- guest engines (`GuestAgent`), each behind a VF of its host's port. In the
  shared-port model every VF uses the port's LID, so the HCA delivers an arriving
  packet by its DGID: to the guest whose VF holds that GUID in the port's GUIDInfo
  table *as the SMA holds it* (what the SM last wrote), to dom0 when there is no
  DGID or it is the port's own GID, and otherwise nowhere: the packet is dropped and
  counted ("no_vf"), exactly how a stale path fails on hardware;
- the intra-host channel between dom0 and its guests, with its own latency
  (`LatencyModel.intra_host_ns`), counted apart from fabric traffic;
- live migrations (`LiveMigration`): the runtime carries out the actions the
  migration asks for and tells it of the confirmations (alias released, alias set,
  VF up).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ibmig.core.engine import QP1, Datagram
from ibmig.core.guest import GuestAgent
from ibmig.core.host import HostAgent
from ibmig.core.host.events import AliasAcknowledged, AliasReleased, VfUp
from ibmig.core.host.messages import GuestToHost, HostToGuest
from ibmig.core.migration.machine import (
    AttachVf,
    DetachVf,
    LiveMigration,
    MigrationDone,
    PauseVm,
    Phase,
    ReinitDriver,
    ReleaseAlias,
    ResumeVm,
    SetAlias,
)
from ibmig.sim.subnet import SubnetSim
from ibmig.wire.mad import MgmtClass


@dataclass(slots=True)
class HostSlot:
    """A physical server: its CA node, port, dom0, and the guests behind its VFs."""

    name: str
    node: int
    port: int
    agent: HostAgent
    vf_guests: dict[int, GuestAgent] = field(default_factory=dict)


@dataclass(slots=True)
class VmSlot:
    name: str
    guest: GuestAgent
    host: str
    vguid: int
    up: bool = False


class VirtualizedSubnet(SubnetSim):
    """A simulated subnet with SR-IOV hosts, guests and migrations (module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hosts: dict[str, HostSlot] = {}
        self.host_at: dict[int, HostSlot] = {}
        self.vms: dict[str, VmSlot] = {}
        self._guest_vm: dict[int, VmSlot] = {}  # id(guest) -> slot
        self.migrations: list[LiveMigration] = []
        self._migration_of: dict[str, LiveMigration] = {}
        self.intra_host: Counter[str] = Counter()
        self.add_event_hook(self._on_engine_event, VfUp, AliasReleased, AliasAcknowledged)

    # --- building ---------------------------------------------------------------------

    def add_host(self, name: str, node: int, agent: HostAgent, port: int = 1) -> HostSlot:
        slot = HostSlot(name, node, port, agent)
        self.hosts[name] = slot
        self.host_at[node] = slot
        self.attach_gsi(node, MgmtClass.SUBN_ADM, agent)
        lid = self.agents[node].port_lid(port)
        agent.port_active(lid, self.sm.db.sm_lid, self.kernel.now_ns)
        self._pump(node, agent, self.latency.sa_ns)
        return slot

    def add_vm(self, name: str, guest: GuestAgent, host: str, vguid: int) -> VmSlot:
        """Place a VM on `host`; its VF comes up when the SA acknowledges its GUID."""
        slot = VmSlot(name, guest, host, vguid)
        self.vms[name] = slot
        self._guest_vm[id(guest)] = slot
        host_slot = self.hosts[host]
        host_slot.agent.attach_vf(name, self.kernel.now_ns, vguid=vguid or None)
        self._pump(host_slot.node, host_slot.agent, self.latency.sa_ns)
        return slot

    def narrow_engine_events(self) -> None:
        super().narrow_engine_events()
        wanted = self.wanted_event_types()
        for vm in self.vms.values():
            vm.guest.event_filter = wanted

    def migrate(self, migration: LiveMigration) -> None:
        self.migrations.append(migration)
        self._migration_of[migration.vm] = migration
        migration.migrate(self.kernel.now_ns)
        self._drive(migration)

    # --- engines ----------------------------------------------------------------------

    def _pump(self, node: int, engine: Any, delay_ns: int) -> None:
        super()._pump(node, engine, delay_ns)
        if isinstance(engine, GuestAgent):
            messages = engine.intra_host_to_send()
            if messages:
                vm = self._guest_vm[id(engine)]
                for message in messages:
                    self.intra_host["guest_to_dom0"] += 1
                    self.kernel.schedule(
                        self.latency.intra_host_ns, self._to_dom0, (vm.host, vm.name, message)
                    )
        elif isinstance(engine, HostAgent):
            for forward in engine.intra_host_to_send():
                self.intra_host["dom0_to_guest"] += 1
                self.kernel.schedule(self.latency.intra_host_ns, self._to_guest, forward)

    def _to_dom0(self, arg: tuple[str, str, GuestToHost]) -> None:
        host, vm, message = arg
        slot = self.hosts[host]
        slot.agent.receive_intra_host(vm, message, self.kernel.now_ns)
        self._pump(slot.node, slot.agent, self.latency.sa_ns)

    def _to_guest(self, message: HostToGuest) -> None:
        vm = self.vms.get(message.vm_id)
        if vm is None:
            return
        guest = vm.guest
        guest.receive_intra_host(message, self.kernel.now_ns)
        self._pump(self.hosts[vm.host].node, guest, self.latency.guest_ns)

    def _processing_ns(self, engine: object) -> int:
        if isinstance(engine, GuestAgent):
            return self.latency.guest_ns
        return super()._processing_ns(engine)

    # --- the HCA's demultiplexing by GID ------------------------------------------------

    def _deliver(self, arg: tuple[int, Datagram]) -> None:
        node, datagram = arg
        host = self.host_at.get(node)
        dgid = datagram.dgid
        if host is None or datagram.dqp == 0 or dgid is None or dgid == host.agent.port_gid:
            if host is not None and datagram.dqp > QP1:
                self._drop("no_qp")  # data for the PF: dom0 runs no RDMA workload
                return
            super()._deliver(arg)
            return
        index = self.agents[node].guid_index(host.port, int.from_bytes(dgid[8:], "big"))
        guest = None if index is None else host.vf_guests.get(index)
        if guest is None or not guest.attached:
            self._drop("no_vf")
            return
        self.stats.delivered += 1
        guest.receive(datagram, self.kernel.now_ns)
        self._pump(node, guest, self.latency.guest_ns)

    # --- host events and migrations -----------------------------------------------------

    def _on_engine_event(self, node: int, event: Any) -> None:
        if isinstance(event, VfUp):
            self._vf_up(node, event)
        elif isinstance(event, AliasReleased):
            for running in self.migrations:
                if running.vguid == event.guid and not running.done:
                    running.alias_released(self.kernel.now_ns)
                    self._drive(running)
        elif isinstance(event, AliasAcknowledged):
            migration = self._migration_of.get(event.vm)
            if migration is not None and not migration.done and self._awaiting_alias(migration):
                migration.alias_set_acknowledged(self.kernel.now_ns)
                self._drive(migration)

    @staticmethod
    def _awaiting_alias(migration: LiveMigration) -> bool:
        return migration.phase is Phase.SETTING_ALIAS and migration.alias_acknowledged_ns is None

    def _vf_up(self, node: int, event: VfUp) -> None:
        host = self.host_at[node]
        vm = self.vms[event.vm]
        host.vf_guests[event.vf] = vm.guest
        migration = self._migration_of.get(event.vm)
        now = self.kernel.now_ns
        if migration is not None and not migration.done:
            migration.vf_attached(now)
            self._drive(migration)
            return
        if not vm.up:
            vm.up = True
            vm.guest.attach(host.port, event.lid, event.gid, self.sm.db.sm_lid, now)
            self._pump(node, vm.guest, self.latency.guest_ns)

    def _drive(self, migration: LiveMigration) -> None:
        """Carry out what the migration asks, and keep its timer."""
        now = self.kernel.now_ns
        while (action := migration.next_action()) is not None:
            vm = self.vms[migration.vm]
            if isinstance(action, DetachVf):
                src = self.hosts[action.src_host]
                index = src.agent.detach_vf(action.vm, now)
                src.vf_guests.pop(index, None)
                vm.guest.detach(now)
                vm.up = False
                src.agent.remove_vm(action.vm)
                self._pump(src.node, src.agent, self.latency.sa_ns)
            elif isinstance(action, ReleaseAlias):
                src = self.hosts[action.src_host]
                src.agent.release_alias(action.vguid, now)
                self._pump(src.node, src.agent, self.latency.sa_ns)
            elif isinstance(action, SetAlias):
                # The VF's driver is up: dom0 registers its GUID and the vport comes
                # up when the SA acknowledges it (VfUp).
                dst = self.hosts[action.dst_host]
                vm.host = action.dst_host
                dst.agent.attach_vf(action.vm, now, vguid=action.vguid)
                self._pump(dst.node, dst.agent, self.latency.sa_ns)
            elif isinstance(action, MigrationDone):
                dst = self.hosts[action.dst_host]
                vf = dst.agent.vf_of(action.vm)
                assert vf is not None
                lid = self.agents[dst.node].port_lid(dst.port)
                guid = self.agents[dst.node].guid_table(dst.port)[vf]
                gid = dst.agent.port_gid[:8] + guid.to_bytes(8, "big")
                vm.up = True
                vm.guest.resume(now, port_num=dst.port, lid=lid, gid=gid, sa_lid=self.sm.db.sm_lid)
                self._pump(dst.node, vm.guest, self.latency.guest_ns)
            elif isinstance(action, PauseVm | ResumeVm | AttachVf | ReinitDriver):
                pass  # hypervisor and guest work with nothing on the fabric
        deadline = migration.get_timer()
        if deadline is not None:
            self.kernel.schedule(max(0, deadline - now), self._migration_timer, migration)

    def _migration_timer(self, migration: LiveMigration) -> None:
        deadline = migration.get_timer()
        if deadline is None or deadline > self.kernel.now_ns:
            return  # superseded: a later call to _drive scheduled the real deadline
        migration.handle_timer(self.kernel.now_ns)
        self._drive(migration)


def make_rng(seed: int, *labels: object) -> random.Random:
    """A stream of its own for one engine, derived from the run's seed and a label,
    so that adding an engine does not shift the randomness of the others."""
    return random.Random(f"{seed}:" + ":".join(str(label) for label in labels))

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
- the vSwitch model (`vswitch=`, `ibmig.core.sm.vswitch`): a hypervisor reports its
  port's VFs to the SM when it is added; each time a VM is placed (started, or moved
  by a migration: `GuestMoved`) the SM gives or moves its VF LID, and the HCA
  accepts the LIDs the SM placed behind it (`SubnetSim.vf_lids`). The toolstack
  brings the guest's vport up at its VF LID instead of the port's;
- faults of management software: a dom0 restarted (`restart_dom0`), the SA
  restarted (`restart_sa`); the SM's ClientReregister reaches the port's dom0 and
  guests (`HostAgent.client_reregister`, `GuestAgent.client_reregister`), with the
  port's MasterSMLID, where their SA requests go from then on;
- SM failover: a standby SM and SA on a second CA (`add_standby_sm`); the master's
  process dies (`fail_sm`): its SMInfo and SA MADs go unanswered, the standby's
  polls time out and it takes over (IBA Vol 1, 14.4; `ibmig.core.sm.roles`), loads
  the dead master's SA database (`ibmig.core.sa.database`) in its first sweep and
  sets ClientReregister on every port. From its MASTER state on, `sm`, `sa`,
  `sm_engine` and `sm_node` are the new master's. `failover` counts the cost.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ibmig.core.engine import QP1, Datagram, Engine
from ibmig.core.guest import GuestAgent
from ibmig.core.host import HostAgent
from ibmig.core.host.demux import demultiplex
from ibmig.core.host.messages import ForwardPathChange, GuestToHost, HostToGuest
from ibmig.core.migration.coordinator import (
    GuestCall,
    GuestMoved,
    HostCall,
    MigrationCoordinator,
)
from ibmig.core.migration.machine import LiveMigration
from ibmig.core.sa import ReportSent, SubnetAdministrator
from ibmig.core.sa.database import SaDatabase
from ibmig.core.sm.manager import SmConfig, SubnetManager, SubnetUp
from ibmig.core.sm.node import SA_CLASS, SMP_CLASSES, SmNode
from ibmig.core.sm.roles import SmStateChanged
from ibmig.core.sm.vswitch import VfLidAssigned, VfLidMoved, VfLids, VfLidsExhaustedError
from ibmig.core.sma import ClientReregisterRequested
from ibmig.errors import ConfigError
from ibmig.sim.subnet import TOOLSTACK, SubnetSim
from ibmig.wire.mad import MgmtClass
from ibmig.wire.smp_attrs import PortCapability, SmState


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


@dataclass(slots=True)
class Failover:
    """What the master SM's failure cost, filled in as the standby takes over."""

    failed_ns: int
    """The master's process died."""
    old_master: str
    new_master: str
    reports_unacknowledged: int
    """Reports the dead SA still waited on a ReportResp for: their resends died with it."""
    takeover_ns: int | None = None
    """The standby gave up polling (polling_retry_number + 1 polls unanswered)."""
    master_ns: int | None = None
    """The standby became MASTER (end of its takeover sweep's discovery)."""
    subnet_up_ns: int | None = None
    """Its takeover sweep reached SUBNET UP."""
    takeover_smps: int = 0
    """SMPs the new master sent from the takeover to that SUBNET UP."""
    sa_db_restored: int = 0
    """Items of the dead master's SA database loaded (0: nothing handed over)."""
    client_reregisters: int = 0
    """Ports whose ClientReregister reached a dom0 (and its guests)."""
    reregistration_mads: int = 0
    """SA MADs the dom0s and guests sent on ClientReregister (InformInfo, joins)."""
    reports_resent: int = 0
    """Report resends by the new master's SA (no ReportResp in time)."""

    @property
    def without_master_ns(self) -> int | None:
        return None if self.master_ns is None else self.master_ns - self.failed_ns

    @property
    def without_sa_ns(self) -> int | None:
        """Until the new SA answers (its SM's SUBNET UP; before, it answers busy)."""
        return None if self.subnet_up_ns is None else self.subnet_up_ns - self.failed_ns


@dataclass(slots=True)
class _Standby:
    node: int
    engine: SmNode
    sa: SubnetAdministrator
    sa_db_handover: bool
    smps_at_takeover: int = 0


class VirtualizedSubnet(SubnetSim):
    """A simulated subnet with SR-IOV hosts, guests and migrations (module doc)."""

    def __init__(self, *args: Any, vswitch: VfLids | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.vswitch = vswitch
        """None: the shared-port model; else the vSwitch model with this VF LID scheme."""
        self._node_of_port: dict[int, tuple[int, int]] = {}  # port GUID -> (node, port)
        if vswitch is not None:
            self.sm.vswitch.scheme = vswitch
            self.add_event_hook(self._vf_lid_placed, VfLidAssigned, VfLidMoved)
        self.hosts: dict[str, HostSlot] = {}
        self.host_at: dict[int, HostSlot] = {}
        self.vms: dict[str, VmSlot] = {}
        self.intra_host: Counter[str] = Counter()
        self._host_agents: dict[str, HostAgent] = {}
        self._vm_of_guest: dict[int, VmSlot] = {}  # id(guest engine) -> its VM
        self.coordinator = MigrationCoordinator(
            self._host_agents, vport_lid=self._vf_lid if vswitch is not None else None
        )
        self.attach(TOOLSTACK, self.coordinator, 0, outputs=self._carry_out_commands)
        self.add_event_hook(self._confirm, *MigrationCoordinator.CONFIRMATIONS)
        self.add_event_hook(self._client_reregister, ClientReregisterRequested)
        self.standby: _Standby | None = None
        self.failover: Failover | None = None
        self._sa_db_file: SaDatabase | None = None

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
        if self.vswitch is not None:
            self._node_of_port[agent.port_guid] = (node, port)
            with _lids_exhausted():
                self.sm.vswitch_add_port(agent.port_guid, agent.config.num_vfs, self.kernel.now_ns)
            self._pump(self.sm_node, self.sm_engine)
        return slot

    def add_vm(self, name: str, guest: GuestAgent, host: str, vguid: int) -> VmSlot:
        """Place a VM on `host`; its VF comes up when the SA acknowledges its GUID."""
        return self.add_vms(host, [(name, guest, vguid)])[0]

    def add_vms(self, host: str, vms: Iterable[tuple[str, GuestAgent, int]]) -> list[VmSlot]:
        """Place VMs (name, guest engine, vGUID) on `host` now, in order, as `add_vm`
        each, but with one toolstack pump (a placement's pumps were six per VM).

        In the shared-port model a `GuestMoved` is bookkeeping here, so the
        toolstack attaches all their VFs in one dom0 call (`start_vms`) and dom0 is
        pumped once: what attaching a fresh VF gives is a timer due now for the
        alias GUID work, and nothing reaches the kernel between the calls. Under
        vSwitch each `GuestMoved` has the SM place a VF LID, whose SMPs must keep
        their place between the dom0 calls: there each VM has its own call."""
        node = self.hosts[host].node
        now = self.kernel.now_ns
        coordinator = self.coordinator
        slots = []
        for name, guest, vguid in vms:
            slot = VmSlot(name, guest, host, vguid)
            self.vms[name] = slot
            self._vm_of_guest[id(guest)] = slot
            self.attach(node, guest, self.latency.guest_ns, outputs=self._send_to_dom0)
            if self.vswitch is not None:
                coordinator.start_vm(name, host, vguid or None, now)
            slots.append(slot)
        if self.vswitch is None:
            coordinator.start_vms(host, [(slot.name, slot.vguid or None) for slot in slots], now)
        self._pump(TOOLSTACK, coordinator)
        return slots

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
        sent = sum(self.mad_counts.values())
        # The same Set wrote MasterSMLID: a new master means a new SA LID, which
        # Linux's ib_sa takes from the port on its SM-change event.
        sm_lid = self.agents[node].port_info(host.port).master_sm_lid
        agent = host.agent
        agent.client_reregister(now, sm_lid)
        self._pump(host.node, agent)
        for vm in self.vms.values():
            if vm.host == host.name:
                vm.guest.client_reregister(now, sm_lid)
                self._pump(host.node, vm.guest)
        if self.failover is not None:
            self.failover.client_reregisters += 1
            self.failover.reregistration_mads += sum(self.mad_counts.values()) - sent

    # --- SM failover --------------------------------------------------------------------

    def add_standby_sm(self, node: int, config: SmConfig, *, sa_db_handover: bool = True) -> SmNode:
        """A second SM and SA on CA `node`, started now: it finds the master and goes
        STANDBY, polling it. With `sa_db_handover`, on taking over it loads what the
        master's SA had dumped (`ibmig.core.sa.database`)."""
        sm = SubnetManager(
            port_num=self.sm_port, config=config, rng=random.Random(self.rng.getrandbits(64))
        )
        sm.record_events = True
        sa = SubnetAdministrator(
            sm, rng=random.Random(self.rng.getrandbits(64)), config=self.sa.config
        )
        sa.event_filter = self.sa.event_filter
        engine = SmNode(sm, sa)
        sm.restore_sa_db = self._load_sa_db
        self.standby = _Standby(node, engine, sa, sa_db_handover)
        processing = dict.fromkeys(SMP_CLASSES, self.latency.sm_ns)
        processing[SA_CLASS] = self.latency.sa_ns
        self.attach(
            node, engine, processing, gsi_classes=(SA_CLASS,), smi=True, sm_port=self.sm_port
        )
        self.add_event_hook(self._standby_state, SmStateChanged)
        self.add_event_hook(self._standby_up, SubnetUp)
        self.add_event_hook(self._standby_report, ReportSent)
        engine.start_sweep(self.kernel.now_ns)
        self._pump(node, engine)
        return engine

    def fail_sm(self) -> None:
        """The master SM's process dies (with its SA): the HCA and its SMA live on,
        but SMInfo and SA MADs to its port find nobody (the umad layer clears IsSM
        when the SM's file closes), and its timers stop. Its SA database stays as
        last dumped, for the standby to load."""
        node, engine = self.sm_node, self.sm_engine
        standby = self.standby
        self.failover = Failover(
            self.kernel.now_ns,
            self.names[node],
            self.names[standby.node] if standby is not None else "",
            self.sa.outstanding_reports,
        )
        if standby is not None and standby.sa_db_handover:
            self._sa_db_file = self.sa.dump_database()
        self.qp0_managers.pop(node, None)
        self.gsi.pop((node, SA_CLASS), None)
        self._cancel_timer(engine)
        requesters = self._gsi_requesters
        for key in [key for key, waiting in requesters.items() if waiting.engine is engine]:
            del requesters[key]
        sma = self.agents[node]
        mask = sma.port_info(self.sm_port).capability_mask
        sma.set_capability_mask(self.sm_port, mask & ~PortCapability.IS_SM)

    def _load_sa_db(self, now_ns: int) -> None:
        standby, dump = self.standby, self._sa_db_file
        if standby is None or dump is None:
            return
        restored = standby.sa.load_database(dump, now_ns)
        if self.failover is not None:
            self.failover.sa_db_restored = restored

    def _standby_state(self, node: int, event: SmStateChanged) -> None:
        standby = self.standby
        if standby is None or node != standby.node:
            return
        failover = self.failover
        if event.old == SmState.STANDBY and event.new == SmState.DISCOVERING:
            standby.smps_at_takeover = standby.engine.sm.smps_sent
            if failover is not None:
                failover.takeover_ns = event.time_ns
        elif event.new == SmState.MASTER and node != self.sm_node:
            if failover is not None and failover.master_ns is None:
                failover.master_ns = event.time_ns
            # The subnet's SM and SA are the new master's from here on.
            self.sm, self.sa, self.sm_engine = standby.engine.sm, standby.sa, standby.engine
            self.sm_node = node

    def _standby_up(self, node: int, event: SubnetUp) -> None:
        standby, failover = self.standby, self.failover
        if standby is None or node != standby.node or failover is None:
            return
        if failover.subnet_up_ns is None:
            failover.subnet_up_ns = event.time_ns
            failover.takeover_smps = standby.engine.sm.smps_sent - standby.smps_at_takeover

    def _standby_report(self, node: int, event: ReportSent) -> None:
        standby, failover = self.standby, self.failover
        resend = event.attempt > 0
        if resend and standby is not None and node == standby.node and failover is not None:
            failover.reports_resent += 1

    # --- the toolstack ------------------------------------------------------------------

    def _confirm(self, node: int, event: Any) -> None:
        if self.coordinator.confirm(event, self.kernel.now_ns):
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
                if self.vswitch is not None:
                    self._place_vf_lid(self.vms[command.vm])

    # --- the vSwitch model -------------------------------------------------------------

    def _place_vf_lid(self, vm: VmSlot) -> None:
        """The SM gives the VM its VF LID, or moves it behind its new host."""
        host = self.hosts[vm.host]
        with _lids_exhausted():
            self.sm.vswitch_place(vm.vguid, host.agent.port_guid, self.kernel.now_ns)
        self._pump(self.sm_node, self.sm_engine)

    def _vf_lid_placed(self, node: int, event: VfLidAssigned | VfLidMoved) -> None:
        # The HCA behind the port accepts the LID from now on.
        if isinstance(event, VfLidAssigned):
            self.vf_lids[event.lid] = self._node_of_port[event.port_guid]
        else:
            self.vf_lids[event.lid] = self._node_of_port[event.dst_port_guid]
            if event.swapped_lid:
                self.vf_lids[event.swapped_lid] = self._node_of_port[event.src_port_guid]
        self._routes.clear()

    def _vf_lid(self, vm: str, port_lid: int) -> int:
        """The LID the VM's vport comes up at: its VF LID."""
        return self.sm.vswitch.lid_of_vm.get(self.vms[vm].vguid, port_lid)

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
        for message in self.host_at[node].agent.intra_host_to_send():
            # Forwarded path changes are the mechanism's cost; revalidations after a
            # gap in the subscription are counted apart.
            kind = "dom0_to_guest" if isinstance(message, ForwardPathChange) else "revalidate"
            self.intra_host[kind] += 1
            self.kernel.schedule(self.latency.intra_host_ns, self._to_guest, message)

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

    def _send_multicast(self, node: int, datagram: Datagram, delay_ns: int) -> None:
        # Here rather than in `send`, which every unicast Report and ReportResp
        # crosses: the fabric's `send` hands every multicast LID to this method.
        super()._send_multicast(node, datagram, delay_ns)
        if datagram.dqp > QP1 and node in self.host_at:
            # The fabric sends a multicast packet back to no port it left; the HCA
            # hands it to the port's other VFs itself (the sender's own guest
            # ignores what it sent).
            self._deliver_at(delay_ns, node, datagram.port, datagram, datagram.payload)

    def _demultiplexed(self, node: int, datagram: Datagram) -> bool:
        # Asked of packets with a GRH or for a data QP only (`SubnetSim._deliver`);
        # a management packet without one goes to the physical function
        # (`demultiplex`): the path of every Report to a dom0 subscribed with its port
        # GUID.
        host = self.host_at.get(node)
        if host is None:
            return False
        sma = self.agents[node]
        port = host.port
        delivery = demultiplex(datagram, host.agent, lambda guid: sma.guid_index(port, guid))
        if delivery.drop is not None:
            self._drop(delivery.drop)
            return True
        if delivery.multicast:
            # A copy to every VM on the port with a VF (insertion order: deterministic).
            for vm in self.vms.values():
                if vm.host == host.name and vm.guest.attached:
                    self.stats.delivered += 1
                    self._handle(node, vm.guest, datagram)
            return True
        if delivery.vm is None:
            return False
        guest = self.vms[delivery.vm].guest
        if not guest.attached:
            self._drop("no_vf")
            return True
        self.stats.delivered += 1
        self._handle(node, guest, datagram)
        return True


@contextmanager
def _lids_exhausted() -> Iterator[None]:
    """Turns the SM's refusal of a VF LID into the user's error: the scenario asks
    for more LIDs than a subnet has."""
    try:
        yield
    except VfLidsExhaustedError as exc:
        raise ConfigError(str(exc), "hosts.vswitch_lids") from None


def make_rng(seed: int, *labels: object) -> random.Random:
    """A stream of its own for one engine, derived from the run's seed and a label,
    so that adding an engine does not shift the randomness of the others."""
    return random.Random(f"{seed}:" + ":".join(str(label) for label in labels))

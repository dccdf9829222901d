"""The toolstack: starts VMs and drives their live migrations across dom0s.

A `LiveMigration` only says what should happen (`DetachVf`, `ReleaseAlias`,
`SetAlias`, `MigrationDone`, ...) and waits to be told of confirmations. Somebody has
to turn those actions into work on the source and destination hosts and turn the
hosts' events back into confirmations -- in Xen, the toolstack (`xl migrate`) talking
to both dom0s. `MigrationCoordinator` is that somebody, as an engine, so that every
runtime (the simulator, a real host) reuses it instead of re-implementing the glue:

- inputs: `start_vm(vm, host, vguid, now)` (or `start_vms` for several VMs of one
  host), `migrate(migration, now)`, `abort(vm, now, reason)`, `confirm(event, now)`
  with the dom0 events it `CONFIRMATIONS` lists (`VfUp`, `AliasReleased`,
  `AliasAcknowledged`, `AliasFailed`; it says whether it left output to pump) and
  `handle_timer(now)`;
- outputs: `next_command()`, one at a time, for the runtime to carry out in order:
  `HostCall` (run a call on a dom0 engine, then pump it), `GuestCall` (the same on a
  guest engine) and `GuestMoved` (the guest engine now runs behind another host);
  `get_timer()` (the earliest phase deadline of any migration); `next_event()` (each
  migration's `PhaseEntered`).

Commands are taken one at a time because carrying one out can bring a confirmation
at once (a host call whose answer is already known); the commands that follow from it
then queue behind the ones still waiting, in the order the migration asked for them.

Rules kept from the migration's own contract: a VF's vport coming up (`VfUp`) starts
the guest's stack the first time (`GuestAgent.attach`), and during a migration
confirms the attach; the guest resumes (`GuestAgent.resume`) at the LID and GID its
vport came up with; `AliasReleased` confirms every running migration of that vGUID;
`AliasAcknowledged` confirms the migration of that VM while it waits for it.

An abort (`LiveMigration.abort`) becomes: UndoAlias, the destination dom0 detaches
the VF it attached and deletes the alias if it holds it (a Set still in flight is
deleted behind it; with nothing to delete the migration is told at once);
ResumeAtSource, the guest engine moves back behind the source and resumes at the
next VfUp from the source's port (a late VfUp from the destination is ignored);
RestoreVf, the source dom0 attaches a VF with the VM's GUID, on the entry that still
holds it if any -- a Delete of it still in flight is then followed by a Set on the
same entry, in the entry's queue -- or else on the VF the VM had (dynamic) or a free
one.

A migration whose alias GUID request dom0 gave up (`AliasFailed`: the destination's
Set, or the source's Delete) cannot complete: it fails (`LiveMigration.fail`) and is
rolled back as an abort is, so the VM runs at its source again. The destination
deletes the alias even when its Set went unanswered (the SA may have carried it out),
and the source sets it again; if that Delete is given up too, the source asks for
the alias all the same.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from ibmig.core.engine import Datagram, EventLog
from ibmig.core.guest import GuestAgent
from ibmig.core.host import HostAgent
from ibmig.core.host.agent import AddressAssignment
from ibmig.core.host.events import AliasAcknowledged, AliasFailed, AliasReleased, VfUp
from ibmig.core.migration.machine import (
    DetachVf,
    LiveMigration,
    MigrationDone,
    PhaseEntered,
    ReleaseAlias,
    RestoreVf,
    ResumeAtSource,
    SetAlias,
    UndoAlias,
)
from ibmig.core.timers import Timers
from ibmig.wire.fastrecord import fast_constructor


@dataclass(frozen=True, slots=True)
class HostCall:
    """Run `call(dom0, now_ns)` on the dom0 engine of `host`, then pump it."""

    host: str
    call: Callable[[HostAgent, int], object]


@dataclass(frozen=True, slots=True)
class GuestCall:
    """Run `call(guest, now_ns)` on the guest engine of `vm`, then pump it."""

    vm: str
    call: Callable[[GuestAgent, int], object]


@dataclass(frozen=True, slots=True)
class GuestMoved:
    """The guest engine of `vm` now runs behind `host` (its HCA, its dom0's
    intra-host channel)."""

    vm: str
    host: str


Command = HostCall | GuestCall | GuestMoved

# Frozen dataclasses store each field through object.__setattr__: the commands a
# placement gives for every VM are built without it (`fast_constructor`).
_new_guest_moved = fast_constructor(GuestMoved)
_new_guest_call = fast_constructor(GuestCall)


class CoordinatorError(RuntimeError):
    """A VM or host the coordinator was not told of."""


def _detach_vf(vm: str, dom0: HostAgent, now_ns: int) -> None:
    dom0.detach_vf(vm, now_ns)
    dom0.remove_vm(vm)


def _release_alias(vguid: int, dom0: HostAgent, now_ns: int) -> None:
    dom0.release_alias(vguid, now_ns)


def _attach_vf(vm: str, vguid: int | None, dom0: HostAgent, now_ns: int) -> None:
    dom0.attach_vf(vm, now_ns, vguid=vguid)


def _attach_vfs(vms: tuple[tuple[str, int | None], ...], dom0: HostAgent, now_ns: int) -> None:
    for vm, vguid in vms:
        dom0.attach_vf(vm, now_ns, vguid=vguid)


def _restore_vf(vm: str, vguid: int | None, vf: int | None, dom0: HostAgent, now_ns: int) -> None:
    index = dom0.alias_index(vguid) if vguid is not None else None
    if index is None and vf is not None and vf in dom0.free_vfs():
        index = vf
    dom0.attach_vf(vm, now_ns, vguid=vguid, vf=index)


def _detach_guest(guest: GuestAgent, now_ns: int) -> None:
    guest.detach(now_ns)


def _attach_guest(
    port_num: int, lid: int, gid: bytes, sa_lid: int, guest: GuestAgent, now_ns: int
) -> None:
    guest.attach(port_num, lid, gid, sa_lid, now_ns)


def _resume_guest(
    port_num: int, lid: int, gid: bytes, sa_lid: int, guest: GuestAgent, now_ns: int
) -> None:
    guest.resume(now_ns, port_num=port_num, lid=lid, gid=gid, sa_lid=sa_lid)


class MigrationCoordinator(EventLog[PhaseEntered]):
    """Starts VMs and drives live migrations across dom0s (module docstring)."""

    CONFIRMATIONS: tuple[type, ...] = (VfUp, AliasReleased, AliasAcknowledged, AliasFailed)
    """The dom0 event types `confirm` needs to see."""

    def __init__(
        self,
        hosts: Mapping[str, HostAgent],
        *,
        record_events: bool = True,
        vport_lid: Callable[[str, int], int] | None = None,
    ) -> None:
        self._init_event_log(record_events)
        self.hosts = hosts
        self.vport_lid = vport_lid
        """vSwitch model: (VM, its port's LID) -> the LID its vport comes up at (its
        own VF LID); None: the port's LID (shared port)."""
        self.migrations: list[LiveMigration] = []
        self._migration_of: dict[str, LiveMigration] = {}
        self._location: dict[str, str] = {}  # VM -> host its guest runs behind
        self._running: set[str] = set()  # VMs whose guest stack is up
        self._vport: dict[str, tuple[int, bytes]] = {}  # VM -> (LID, GID) of its last VfUp
        self._source_vf: dict[str, int | None] = {}  # VM -> its VF at the migration's source
        self._resume_at: dict[str, str] = {}  # aborted VM -> host whose VfUp resumes it
        self._commands: deque[Command] = deque()
        self._timers: Timers[int] = Timers()  # index in `migrations` -> phase deadline

    # --- inputs -----------------------------------------------------------------------

    def start_vm(self, vm: str, host: str, vguid: int | None, now_ns: int) -> None:
        """Place `vm` on `host`: dom0 attaches a VF with the VM's GUID (`vguid`, or the
        VF's own when None); the guest's stack starts when its vport is up."""
        self._host(host)
        self._location[vm] = host
        self._commands.append(GuestMoved(vm, host))
        self._commands.append(HostCall(host, partial(_attach_vf, vm, vguid)))

    def start_vms(self, host: str, vms: Iterable[tuple[str, int | None]], now_ns: int) -> None:
        """Place VMs (name, vGUID) on `host` together, as the toolstack starts a
        host's VMs: `GuestMoved` for each, then one dom0 call attaching their VFs
        in order (`start_vm` each, but one host call for the runtime to carry out
        and pump instead of one per VM)."""
        self._host(host)
        vms = tuple(vms)
        for vm, _ in vms:
            self._location[vm] = host
            self._commands.append(_new_guest_moved(vm, host))
        self._commands.append(HostCall(host, partial(_attach_vfs, vms)))

    def migrate(self, migration: LiveMigration, now_ns: int) -> None:
        if self._location.get(migration.vm) != migration.src_host:
            raise CoordinatorError(f"{migration.vm} does not run on {migration.src_host}")
        self._host(migration.dst_host)
        self.migrations.append(migration)
        self._migration_of[migration.vm] = migration
        migration.migrate(now_ns)
        self._drive(len(self.migrations) - 1)

    def abort(self, vm: str, now_ns: int, reason: str) -> None:
        """Abort the running migration of `vm`: it goes on at its source (module
        docstring). CoordinatorError when `vm` is not migrating."""
        migration = self._migration_of.get(vm)
        if migration is None or migration.done or migration.aborted:
            raise CoordinatorError(f"{vm} is not migrating")
        migration.abort(now_ns, reason)
        self._drive(self.migrations.index(migration))

    def confirm(self, event: Any, now_ns: int) -> bool:
        """A dom0 event of a type in `CONFIRMATIONS`; others are ignored. Returns
        whether the coordinator may have output now (commands or events waiting, a
        migration driven); False: it has none and its timer has not moved, so the
        runtime need not pump it (every placed VM's AliasAcknowledged)."""
        if isinstance(event, AliasAcknowledged):
            migration = self._migration_of.get(event.vm)
            if migration is None or not migration.awaits_alias_ack:
                return bool(self._commands or self._events)
            migration.alias_set_acknowledged(now_ns)
            self._drive(self.migrations.index(migration))
        elif isinstance(event, VfUp):
            self._vf_up(event, now_ns)
        elif isinstance(event, AliasReleased):
            for index, running in enumerate(self.migrations):
                if running.vguid == event.guid and running.awaits_alias_release:
                    running.alias_released(now_ns)
                    self._drive(index)
        elif isinstance(event, AliasFailed):
            self._alias_failed(event, now_ns)
        return True

    def receive(self, datagram: Datagram, now_ns: int) -> None:
        """The toolstack has no port on the fabric: nothing arrives."""

    def handle_timer(self, now_ns: int) -> None:
        while (index := self._timers.pop_due(now_ns)) is not None:
            self.migrations[index].handle_timer(now_ns)
            self._drive(index)

    # --- outputs ----------------------------------------------------------------------

    def next_command(self) -> Command | None:
        return self._commands.popleft() if self._commands else None

    def packets_to_send(self) -> list[Datagram]:
        return []

    def get_timer(self) -> int | None:
        return self._timers.next_deadline()

    def host_of(self, vm: str) -> str | None:
        """The host `vm`'s guest runs behind (its destination from SetAlias on)."""
        return self._location.get(vm)

    # --- internals --------------------------------------------------------------------

    def _host(self, name: str) -> HostAgent:
        dom0 = self.hosts.get(name)
        if dom0 is None:
            raise CoordinatorError(f"no host named {name!r}")
        return dom0

    def _vf_up(self, event: VfUp, now_ns: int) -> None:
        vm = event.vm
        migration = self._migration_of.get(vm)
        if migration is not None and migration.aborted:
            host = self._resume_at.get(vm)
            if host is None or self._host(host).port_lid != event.lid:
                return  # the destination's vport, up before the abort reached it
            del self._resume_at[vm]
            dom0 = self._host(host)
            assert dom0.sa_lid is not None
            lid = self._lid_of(vm, event.lid)
            self._vport[vm] = (lid, event.gid)
            self._running.add(vm)
            call = partial(_resume_guest, dom0.port_num, lid, event.gid, dom0.sa_lid)
            self._commands.append(GuestCall(vm, call))
            return
        lid = self._lid_of(vm, event.lid)
        self._vport[vm] = (lid, event.gid)
        if migration is not None and not migration.done:
            migration.vf_attached(now_ns)
            self._drive(self.migrations.index(migration))
            return
        if vm not in self._running:
            dom0 = self._host(self._location[vm])
            assert dom0.sa_lid is not None  # a vport is up only on an active port
            self._running.add(vm)
            call = partial(_attach_guest, dom0.port_num, lid, event.gid, dom0.sa_lid)
            self._commands.append(_new_guest_call(vm, call))

    def _alias_failed(self, event: AliasFailed, now_ns: int) -> None:
        """dom0 gave an alias GUID request up: the migration waiting on it fails and
        is rolled back (module docstring)."""
        cause = f"alias GUID {event.operation} 0x{event.guid:016x} failed ({event.reason})"
        for index, migration in enumerate(self.migrations):
            if migration.done:
                continue
            if migration.aborted:
                if (
                    event.operation == "delete"
                    and event.guid == migration.vguid
                    and migration.awaits_alias_release
                ):
                    # The rollback's Delete could not be carried out (the destination
                    # is cut off, say): the source asks for its alias all the same.
                    migration.alias_released(now_ns)
                    self._drive(index)
                continue
            if event.operation == "set":
                # The Set may be out before SETTING_ALIAS (`alias_registration`).
                ours = event.vm == migration.vm and migration.awaits_alias_ack
            else:
                ours = event.guid == migration.vguid and migration.awaits_alias_release
            if ours:
                migration.fail(now_ns, cause, release_failed=event.operation == "delete")
                self._drive(index)

    def _lid_of(self, vm: str, port_lid: int) -> int:
        return port_lid if self.vport_lid is None else self.vport_lid(vm, port_lid)

    def _undo_alias(self, index: int, dom0: HostAgent, now_ns: int) -> None:
        """UndoAlias, run on the destination dom0: its AliasReleased confirms it, or
        the migration is told at once when the alias is not there to delete."""
        migration = self.migrations[index]
        vm, vguid = migration.vm, migration.vguid
        if dom0.vf_of(vm) is not None:
            dom0.detach_vf(vm, now_ns)
        dom0.remove_vm(vm)
        if vguid is None or migration.assignment is not AddressAssignment.STATIC:
            return
        if dom0.alias_index(vguid) is not None:
            dom0.release_alias(vguid, now_ns)
        else:
            migration.alias_released(now_ns)
            self._drive(index)

    def _drive(self, index: int) -> None:
        """Turn what migration `index` asks for into commands; keep its deadline."""
        migration = self.migrations[index]
        commands = self._commands
        while (action := migration.next_action()) is not None:
            vm = migration.vm
            if isinstance(action, DetachVf):
                self._source_vf[vm] = self._host(action.src_host).vf_of(vm)
                commands.append(HostCall(action.src_host, partial(_detach_vf, vm)))
                self._running.discard(vm)
                commands.append(GuestCall(vm, _detach_guest))
            elif isinstance(action, ReleaseAlias):
                commands.append(HostCall(action.src_host, partial(_release_alias, action.vguid)))
            elif isinstance(action, SetAlias):
                # The VF's driver is up: dom0 registers its GUID and the vport comes
                # up when the SA acknowledges it (VfUp).
                self._location[vm] = action.dst_host
                commands.append(GuestMoved(vm, action.dst_host))
                commands.append(HostCall(action.dst_host, partial(_attach_vf, vm, action.vguid)))
            elif isinstance(action, MigrationDone):
                dom0 = self._host(action.dst_host)
                lid, gid = self._vport[vm]
                assert dom0.sa_lid is not None
                self._running.add(vm)
                call = partial(_resume_guest, dom0.port_num, lid, gid, dom0.sa_lid)
                commands.append(GuestCall(vm, call))
            elif isinstance(action, UndoAlias):
                commands.append(HostCall(action.dst_host, partial(self._undo_alias, index)))
            elif isinstance(action, ResumeAtSource):
                self._location[vm] = action.src_host
                self._resume_at[vm] = action.src_host
                commands.append(GuestMoved(vm, action.src_host))
            elif isinstance(action, RestoreVf):
                vf = self._source_vf.get(vm)
                call = partial(_restore_vf, vm, action.vguid, vf)
                commands.append(HostCall(action.src_host, call))
            # PauseVm, ResumeVm, AttachVf, ReinitDriver: hypervisor and guest work
            # with nothing on the fabric.
        while (event := migration.next_event()) is not None:
            self._emit(event)
        deadline = migration.get_timer()
        if deadline is None:
            self._timers.cancel(index)
        elif self._timers.deadline(index) != deadline:
            self._timers.arm(index, deadline)

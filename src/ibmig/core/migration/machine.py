"""Xen-style live migration of a VM with an SR-IOV VF, as one state machine.

A VF is passed through to the guest, and its state lives in the HCA, so it cannot
be copied with the guest's memory: it is hot-unplugged before the migration and a
VF of the destination is hot-plugged afterwards (Zhai et al., "Live Migration with
Pass-through Device for Linux VM", OLS 2008; Guay et al., ICPADS 2012 and JPDC 2015
for InfiniBand). The phases, in order:

    IDLE
    DETACHING_VF       DetachVf(src_host, vm) on entry; `vf_detach_ns`. On exit,
                       under static assignment, ReleaseAlias(src_host, vguid).
    PRE_COPY(round i)  the rounds of `plan_precopy`, each its own duration.
    STOP_AND_COPY      PauseVm(vm) on entry; the last dirty memory and the device
                       state (`PreCopyPlan.stop_copy_ns`).
    RESUMING           `resume_ns`; ResumeVm(vm, dst_host) on exit.
    ATTACHING_VF       AttachVf(dst_host, vm) on entry: the VF is hot-plugged into
                       the guest; `vf_attach_ns`.
    REINIT_DRIVER      ReinitDriver(vm, dst_host) on entry; `driver_reinit_ns`.
    SETTING_ALIAS      SetAlias(dst_host, vm, vguid) on entry (vguid None: dynamic
                       assignment, the VM takes the destination VF's GUID); ends when
                       both `alias_set_acknowledged(now)` (the SA's GetResp reached
                       dom0) and `vf_attached(now)` (the host's VfUp: the vport is up)
                       were confirmed, so its length is the fabric's, not a configured
                       one. MigrationDone(vm, dst_host) on exit: the guest's stack is up.
    DONE
    ABORTED            `abort(now, reason)` from any phase but IDLE and the ends:
                       the VM runs again at the source (below).

An abort undoes what the migration did, as far as it got. If SetAlias was issued,
UndoAlias(dst_host, vm, vguid): the destination dom0 detaches its VF and deletes the
alias it set (static assignment). Then ResumeAtSource(vm, src_host) -- the VM,
paused or resumed at the destination, runs at the source again -- and
RestoreVf(src_host, vm, vguid): the source dom0 attaches a VF with the VM's GUID
again (under static assignment this re-registers the alias if it was released, or
sets it again behind a Delete still in flight), and the guest resumes on its port,
LID and GID when that vport is up. Under static assignment the SA refuses the
source's Set while the destination holds the vGUID, so RestoreVf waits for the
destination's Delete to be answered (`alias_released`; with the source's own Delete
also outstanding, for both answers, which the events cannot tell apart). The
DETACHING_VF exit's ReleaseAlias, RESUMING's ResumeVm and SETTING_ALIAS's
MigrationDone are not asked for on an abort. The cut phase's `PhaseRecord` ends at
the abort and says so (`aborted`); `abort_reason` keeps the cause.

A migration that cannot complete -- an alias GUID request the SA never carried out
(dom0 gave it up) -- is rolled back the same way: `fail(now, cause)` is an abort
that also keeps `failure`, the cause, so that it is reported as a failure, not as
an operator's abort. A failed release at the source is no longer awaited.

When the alias GUID is registered at the destination is `alias_registration`:

- "after_reinit" (default): last, because that is when a VF's port comes up in the
  shared-port model: the VF driver initialises, and the PF driver registers the
  VF's alias GUID with the SA on that event (Linux mlx4: MLX4_DEV_EVENT_SLAVE_INIT
  in drivers/infiniband/hw/mlx4/main.c calls `mlx4_ib_slave_alias_guid_event`,
  alias_GUID.c), and the vport becomes active only once the SM has acknowledged it.
  So the subnet learns that the vGUID moved -- and peers are told -- at the moment
  the VM can answer them.
- "at_attach": SetAlias on entry to ATTACHING_VF, as a toolstack that writes the
  VF's GUID when it hot-plugs the VF (before the guest's driver is up).
- "before_stop_copy": SetAlias on entry to STOP_AND_COPY (pre-registered at the
  destination while the VM still runs at the source, so that the fabric's work is
  off the critical path).

With the two early choices the peers are told before the VM can answer: their CM
REQs reach a destination port whose VF has no guest stack yet and are dropped, and
they wait out a CM response time-out. SETTING_ALIAS is then only the wait for
both confirmations if they have not come yet (often zero time); the alias
confirmations are accepted from the moment SetAlias is issued.

Under static assignment the SA refuses the destination's alias while the source
still holds it, so with `await_alias_release` (default) SetAlias waits for
`alias_released(now)` (the source dom0's DeleteResp) if that has not come by then.

The engine never touches hosts or guests: it hands the runtime typed actions
(`next_action()`), keeps a deadline (`get_timer()`, `handle_timer(now)`) and is told
of confirmations. All transitions go through the one table `TRANSITIONS`; a
stimulus the current phase has no entry for -- a confirmation at the wrong time, a
second start -- raises `MigrationStateError`.

Measured (`timeline`, `total_time_ns`, `vm_downtime_ns`, `rc_downtime_ns`): the
VM's own downtime runs from PauseVm to ResumeVm (stop-and-copy and resume); its RC
service is down from the VF detach until its vport is up at the destination (the
alias GUID acknowledged), which is also the end of the migration.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from ibmig.core.host.agent import AddressAssignment
from ibmig.core.migration.timing import MigrationTiming, PreCopyPlan, plan_precopy


class Phase(StrEnum):
    IDLE = "idle"
    DETACHING_VF = "detaching_vf"
    PRE_COPY = "pre_copy"
    STOP_AND_COPY = "stop_and_copy"
    RESUMING = "resuming"
    SETTING_ALIAS = "setting_alias"
    ATTACHING_VF = "attaching_vf"
    REINIT_DRIVER = "reinit_driver"
    DONE = "done"
    ABORTED = "aborted"


class AliasRegistration(StrEnum):
    """When the destination registers the VM's alias GUID (module docstring)."""

    AFTER_REINIT = "after_reinit"
    AT_ATTACH = "at_attach"
    BEFORE_STOP_COPY = "before_stop_copy"


class Stimulus(StrEnum):
    """What moves the machine: a call, a timer or a confirmation."""

    START = "start"  # migrate()
    VF_DETACHED = "vf_detached"  # timer
    ROUND_DONE = "round_done"  # timer: another pre-copy round follows
    PRECOPY_DONE = "precopy_done"  # timer: stop-and-copy follows
    STATE_COPIED = "state_copied"  # timer
    RESUMED = "resumed"  # timer
    ALIAS_ACKNOWLEDGED = "alias_acknowledged"  # confirmations: alias acked and vport up
    VF_ATTACHED = "vf_attached"  # timer
    DRIVER_READY = "driver_ready"  # timer
    ABORT = "abort"  # abort()


TRANSITIONS: Final[Mapping[tuple[Phase, Stimulus], Phase]] = {
    (Phase.IDLE, Stimulus.START): Phase.DETACHING_VF,
    (Phase.DETACHING_VF, Stimulus.VF_DETACHED): Phase.PRE_COPY,
    (Phase.PRE_COPY, Stimulus.ROUND_DONE): Phase.PRE_COPY,
    (Phase.PRE_COPY, Stimulus.PRECOPY_DONE): Phase.STOP_AND_COPY,
    (Phase.STOP_AND_COPY, Stimulus.STATE_COPIED): Phase.RESUMING,
    (Phase.RESUMING, Stimulus.RESUMED): Phase.ATTACHING_VF,
    (Phase.ATTACHING_VF, Stimulus.VF_ATTACHED): Phase.REINIT_DRIVER,
    (Phase.REINIT_DRIVER, Stimulus.DRIVER_READY): Phase.SETTING_ALIAS,
    (Phase.SETTING_ALIAS, Stimulus.ALIAS_ACKNOWLEDGED): Phase.DONE,
    **{
        (phase, Stimulus.ABORT): Phase.ABORTED
        for phase in Phase
        if phase not in (Phase.IDLE, Phase.DONE, Phase.ABORTED)
    },
}
"""The migration's one transition table: (phase, stimulus) -> next phase."""


class MigrationStateError(RuntimeError):
    """A stimulus or confirmation the migration's current state does not allow."""


def next_phase(phase: Phase, stimulus: Stimulus) -> Phase:
    """The table's answer; MigrationStateError when it has none."""
    try:
        return TRANSITIONS[(phase, stimulus)]
    except KeyError:
        raise MigrationStateError(f"no transition from {phase} on {stimulus}") from None


# --- actions for the runtime ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DetachVf:
    """Hot-unplug the VM's VF at the source: the guest loses its IB device now
    (HostAgent.detach_vf; the guest engine's detach)."""

    src_host: str
    vm: str


@dataclass(frozen=True, slots=True)
class ReleaseAlias:
    """Static assignment: the source dom0 removes the VM's vGUID from its port
    (HostAgent.release_alias); confirm with `alias_released`."""

    src_host: str
    vguid: int


@dataclass(frozen=True, slots=True)
class PauseVm:
    """Suspend the VM (start of stop-and-copy)."""

    vm: str


@dataclass(frozen=True, slots=True)
class ResumeVm:
    """The VM runs again, now on `dst_host` (still without a VF)."""

    vm: str
    dst_host: str


@dataclass(frozen=True, slots=True)
class SetAlias:
    """The destination dom0 registers the VM's GUID on its VF: `vguid` under static
    assignment, None under dynamic (the VF's own GUID) (HostAgent.attach_vf, which
    sets the alias and brings the vport up on the SA's answer); confirm with
    `alias_set_acknowledged` and `vf_attached`."""

    dst_host: str
    vm: str
    vguid: int | None


@dataclass(frozen=True, slots=True)
class AttachVf:
    """The hypervisor hot-plugs a VF of the destination into the VM (a PCI event;
    dom0's fabric work comes with SetAlias)."""

    dst_host: str
    vm: str


@dataclass(frozen=True, slots=True)
class ReinitDriver:
    """The guest's IB driver starts re-initialising on the new VF."""

    vm: str
    dst_host: str


@dataclass(frozen=True, slots=True)
class MigrationDone:
    """The guest's IB stack is usable on `dst_host`: attach the guest engine."""

    vm: str
    dst_host: str


@dataclass(frozen=True, slots=True)
class UndoAlias:
    """Abort: the destination dom0 gives up what SetAlias asked of it -- detaches the
    VM's VF and, under static assignment, deletes `vguid` from its port (confirm
    with `alias_released`, or at once when it never held it)."""

    dst_host: str
    vm: str
    vguid: int | None


@dataclass(frozen=True, slots=True)
class ResumeAtSource:
    """Abort: the VM runs again at `src_host` (still without a VF); its guest
    engine resumes there when RestoreVf's vport is up."""

    vm: str
    src_host: str


@dataclass(frozen=True, slots=True)
class RestoreVf:
    """Abort: the source dom0 attaches a VF to the VM again with its GUID (`vguid`;
    None under dynamic assignment: a VF's own) (HostAgent.attach_vf): the vport comes
    up when the SA has the alias (VfUp)."""

    src_host: str
    vm: str
    vguid: int | None


MigrationAction = (
    DetachVf
    | ReleaseAlias
    | PauseVm
    | ResumeVm
    | SetAlias
    | AttachVf
    | ReinitDriver
    | MigrationDone
    | UndoAlias
    | ResumeAtSource
    | RestoreVf
)
"""Any action the migration asks of the runtime."""


# --- records ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PhaseRecord:
    """One phase (one pre-copy round) on the timeline; `end_ns` None while it runs.
    `sent_bytes`: what a copy phase sent (0 when it was cut short); `aborted`: the
    migration was aborted in it."""

    phase: Phase
    round: int | None
    start_ns: int
    end_ns: int | None
    sent_bytes: int = 0
    aborted: bool = False

    @property
    def duration_ns(self) -> int | None:
        return None if self.end_ns is None else self.end_ns - self.start_ns


@dataclass(frozen=True, slots=True)
class PhaseEntered:
    """Event: the migration of `vm` entered `phase` (round `round` of pre-copy)."""

    vm: str
    phase: Phase
    round: int | None
    time_ns: int


class LiveMigration:
    """One migration of `vm` from `src_host` to `dst_host` (module docstring)."""

    def __init__(
        self,
        vm: str,
        src_host: str,
        dst_host: str,
        *,
        timing: MigrationTiming | None = None,
        assignment: AddressAssignment = AddressAssignment.STATIC,
        vguid: int | None = None,
        await_alias_release: bool = True,
        alias_registration: AliasRegistration | str = AliasRegistration.AFTER_REINIT,
    ) -> None:
        self.vm = vm
        self.src_host = src_host
        self.dst_host = dst_host
        self.timing = timing or MigrationTiming()
        self.assignment = AddressAssignment(assignment)
        if self.assignment is AddressAssignment.STATIC:
            if vguid is None or not 0 < vguid < 1 << 64:
                raise ValueError("static assignment needs the VM's vGUID (non-zero, 64 bits)")
        elif vguid is not None:
            raise ValueError("dynamic assignment: the destination VF chooses the GUID")
        self.vguid = vguid
        self.await_alias_release = await_alias_release
        self.alias_registration = AliasRegistration(alias_registration)
        self.plan: PreCopyPlan = plan_precopy(self.timing)
        self.phase = Phase.IDLE
        self.round: int | None = None
        self._phase_start = 0
        self._timeline: list[PhaseRecord] = []
        self._deadline: int | None = None
        self._actions: deque[MigrationAction] = deque()
        self._events: deque[PhaseEntered] = deque()
        self._release_pending = False  # ReleaseAlias sent, not yet confirmed
        self._released = self.assignment is AddressAssignment.DYNAMIC
        self._alias_due = False  # the registration point was reached
        self._alias_requested = False
        self._attach_confirmed = False
        self.started_ns: int | None = None
        self.paused_ns: int | None = None
        self.resumed_ns: int | None = None
        self.alias_released_ns: int | None = None
        self.alias_requested_ns: int | None = None
        self.alias_acknowledged_ns: int | None = None
        self.vf_attached_ns: int | None = None
        self.done_ns: int | None = None
        self.aborted_ns: int | None = None
        self.abort_reason: str | None = None
        self.failure: str | None = None
        """Why the migration failed and was rolled back (`fail`); None otherwise."""
        self._restore_waits = 0  # AliasReleased answers to see before RestoreVf

    # --- engine-like outputs ----------------------------------------------------------

    def next_action(self) -> MigrationAction | None:
        return self._actions.popleft() if self._actions else None

    def next_event(self) -> PhaseEntered | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> int | None:
        return self._deadline

    def handle_timer(self, now_ns: int) -> None:
        """Advance through every phase whose time is up at `now_ns`; each phase ends
        at its own deadline, not at `now_ns`, so a late call loses no time."""
        while self._deadline is not None and self._deadline <= now_ns:
            at = self._deadline
            self._deadline = None
            self._on_timer(at)

    # --- inputs -----------------------------------------------------------------------

    def migrate(self, now_ns: int) -> None:
        """Start the migration."""
        self._advance(Stimulus.START, now_ns)

    def abort(self, now_ns: int, reason: str) -> None:
        """Give the migration up: the VM goes on at the source (module docstring).
        MigrationStateError before the start and after the end."""
        next_phase(self.phase, Stimulus.ABORT)  # raises before anything changes
        self.abort_reason = reason
        self._advance(Stimulus.ABORT, now_ns)

    def fail(self, now_ns: int, cause: str, *, release_failed: bool = False) -> None:
        """Something the migration waits on failed for good (`cause`): roll it back as
        an abort does (module docstring). `release_failed`: the source's Delete of the
        vGUID was given up, and is not awaited any more."""
        next_phase(self.phase, Stimulus.ABORT)  # raises before anything changes
        if release_failed:
            self._release_pending = False
        self.failure = cause
        self.abort(now_ns, cause)

    def alias_released(self, now_ns: int) -> None:
        """The source dom0's Delete of the vGUID was answered (its AliasReleased);
        after an abort, also the destination's (the events do not say which)."""
        if self.phase is Phase.ABORTED:
            if not self.awaits_alias_release:
                raise MigrationStateError(f"no alias release of {self.vm} is outstanding")
            if self._release_pending:
                self._release_pending = False
                self._released = True
                self.alias_released_ns = now_ns
            if self._restore_waits:
                self._restore_waits -= 1
                if not self._restore_waits:
                    self._restore(now_ns)
            return
        if not self._release_pending:
            raise MigrationStateError(f"no alias release of {self.vm} is outstanding")
        self._release_pending = False
        self._released = True
        self.alias_released_ns = now_ns
        if self._alias_due and not self._alias_requested:
            self._request_alias(now_ns)

    def alias_set_acknowledged(self, now_ns: int) -> None:
        """The destination dom0's Set of the VM's GUID was acknowledged."""
        if not self._alias_requested or self.phase in (Phase.DONE, Phase.ABORTED):
            raise MigrationStateError(f"the alias of {self.vm} was not requested yet")
        if self.alias_acknowledged_ns is not None:
            raise MigrationStateError(f"the alias of {self.vm} was already acknowledged")
        self.alias_acknowledged_ns = now_ns
        self._maybe_done(now_ns)

    def vf_attached(self, now_ns: int) -> None:
        """The destination VF's port is up (the host's VfUp, which follows the alias
        acknowledgement)."""
        if (
            not self._alias_requested
            or self._attach_confirmed
            or self.phase in (Phase.DONE, Phase.ABORTED)
        ):
            raise MigrationStateError(f"{self.vm}: vf_attached in phase {self.phase}")
        self._attach_confirmed = True
        self.vf_attached_ns = now_ns
        self._maybe_done(now_ns)

    # --- results ----------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self.phase is Phase.DONE

    @property
    def aborted(self) -> bool:
        return self.phase is Phase.ABORTED

    @property
    def awaits_alias_ack(self) -> bool:
        """SetAlias was issued and its acknowledgement has not been confirmed."""
        return (
            self._alias_requested
            and self.alias_acknowledged_ns is None
            and self.phase not in (Phase.DONE, Phase.ABORTED)
        )

    @property
    def awaits_alias_release(self) -> bool:
        """An AliasReleased of the vGUID is expected (the source's Delete; after an
        abort, the destination's)."""
        return self._release_pending or self._restore_waits > 0

    @property
    def timeline(self) -> tuple[PhaseRecord, ...]:
        """Every phase so far, the running one last (with `end_ns` None)."""
        if self.phase in (Phase.IDLE, Phase.DONE, Phase.ABORTED):
            return tuple(self._timeline)
        running = PhaseRecord(self.phase, self.round, self._phase_start, None)
        return (*self._timeline, running)

    @property
    def precopy_rounds(self) -> int:
        return len(self.plan.rounds)

    @property
    def total_time_ns(self) -> int | None:
        """From the start to the guest's stack being up again."""
        if self.started_ns is None or self.done_ns is None:
            return None
        return self.done_ns - self.started_ns

    @property
    def vm_downtime_ns(self) -> int | None:
        """The VM is paused: stop-and-copy and resume."""
        if self.paused_ns is None or self.resumed_ns is None:
            return None
        return self.resumed_ns - self.paused_ns

    @property
    def rc_downtime_ns(self) -> int | None:
        """The VM has no usable IB port: VF detach to the destination vport up."""
        return self.total_time_ns

    # --- internals ----------------------------------------------------------------------

    def _advance(self, stimulus: Stimulus, now_ns: int) -> None:
        new = next_phase(self.phase, stimulus)
        old = self.phase
        abort = stimulus is Stimulus.ABORT
        if old is not Phase.IDLE:
            sent = 0 if abort else self._sent_in(old)
            self._timeline.append(
                PhaseRecord(old, self.round, self._phase_start, now_ns, sent, abort)
            )
        if not abort:
            self._exit(old, now_ns)
        self.phase = new
        self.round = (
            (0 if old is not Phase.PRE_COPY else (self.round or 0) + 1)
            if new is Phase.PRE_COPY
            else None
        )
        self._phase_start = now_ns
        self._events.append(PhaseEntered(self.vm, new, self.round, now_ns))
        self._enter(new, now_ns)

    def _sent_in(self, phase: Phase) -> int:
        if phase is Phase.PRE_COPY and self.round is not None:
            return self.plan.rounds[self.round].sent_bytes
        if phase is Phase.STOP_AND_COPY:
            return self.plan.stop_copy_bytes
        return 0

    def _exit(self, phase: Phase, now_ns: int) -> None:
        if phase is Phase.DETACHING_VF and self.assignment is AddressAssignment.STATIC:
            assert self.vguid is not None
            self._release_pending = True
            self._actions.append(ReleaseAlias(self.src_host, self.vguid))
        elif phase is Phase.RESUMING:
            self.resumed_ns = now_ns
            self._actions.append(ResumeVm(self.vm, self.dst_host))
        elif phase is Phase.SETTING_ALIAS:
            self.done_ns = now_ns
            self._actions.append(MigrationDone(self.vm, self.dst_host))

    def _enter(self, phase: Phase, now_ns: int) -> None:
        timing = self.timing
        if phase is Phase.DETACHING_VF:
            self.started_ns = now_ns
            self._actions.append(DetachVf(self.src_host, self.vm))
            self._deadline = now_ns + timing.vf_detach_ns
        elif phase is Phase.PRE_COPY:
            assert self.round is not None
            self._deadline = now_ns + self.plan.rounds[self.round].duration_ns
        elif phase is Phase.STOP_AND_COPY:
            self.paused_ns = now_ns
            self._actions.append(PauseVm(self.vm))
            self._deadline = now_ns + self.plan.stop_copy_ns
            if self.alias_registration is AliasRegistration.BEFORE_STOP_COPY:
                self._alias_point(now_ns)
        elif phase is Phase.RESUMING:
            self._deadline = now_ns + timing.resume_ns
        elif phase is Phase.SETTING_ALIAS:
            self._alias_point(now_ns)
            self._maybe_done(now_ns)
        elif phase is Phase.ATTACHING_VF:
            self._actions.append(AttachVf(self.dst_host, self.vm))
            self._deadline = now_ns + timing.vf_attach_ns
            if self.alias_registration is AliasRegistration.AT_ATTACH:
                self._alias_point(now_ns)
        elif phase is Phase.REINIT_DRIVER:
            self._actions.append(ReinitDriver(self.vm, self.dst_host))
            self._deadline = now_ns + timing.driver_reinit_ns
        elif phase is Phase.ABORTED:
            self._deadline = None
            self.aborted_ns = now_ns
            if self._alias_requested:
                self._actions.append(UndoAlias(self.dst_host, self.vm, self.vguid))
                if self.assignment is AddressAssignment.STATIC:
                    self._restore_waits = 2 if self._release_pending else 1
            if not self._restore_waits:
                self._restore(now_ns)

    def _restore(self, now_ns: int) -> None:
        self._actions.append(ResumeAtSource(self.vm, self.src_host))
        self._actions.append(RestoreVf(self.src_host, self.vm, self.vguid))

    def _alias_point(self, now_ns: int) -> None:
        """The registration point: ask for the alias now, or once the source's
        release is confirmed (`await_alias_release`)."""
        if self._alias_due:
            return
        self._alias_due = True
        if self._released or not self.await_alias_release:
            self._request_alias(now_ns)

    def _maybe_done(self, now_ns: int) -> None:
        if (
            self.phase is Phase.SETTING_ALIAS
            and self._attach_confirmed
            and self.alias_acknowledged_ns is not None
        ):
            self._advance(Stimulus.ALIAS_ACKNOWLEDGED, now_ns)

    def _request_alias(self, now_ns: int) -> None:
        self._alias_requested = True
        self.alias_requested_ns = now_ns
        self._actions.append(SetAlias(self.dst_host, self.vm, self.vguid))

    def _on_timer(self, at_ns: int) -> None:
        phase = self.phase
        if phase is Phase.DETACHING_VF:
            self._advance(Stimulus.VF_DETACHED, at_ns)
        elif phase is Phase.PRE_COPY:
            assert self.round is not None
            more = self.round + 1 < len(self.plan.rounds)
            self._advance(Stimulus.ROUND_DONE if more else Stimulus.PRECOPY_DONE, at_ns)
        elif phase is Phase.STOP_AND_COPY:
            self._advance(Stimulus.STATE_COPIED, at_ns)
        elif phase is Phase.RESUMING:
            self._advance(Stimulus.RESUMED, at_ns)
        elif phase is Phase.ATTACHING_VF:
            self._advance(Stimulus.VF_ATTACHED, at_ns)
        elif phase is Phase.REINIT_DRIVER:
            self._advance(Stimulus.DRIVER_READY, at_ns)


__all__ = [
    "TRANSITIONS",
    "AliasRegistration",
    "AttachVf",
    "DetachVf",
    "LiveMigration",
    "MigrationAction",
    "MigrationDone",
    "MigrationStateError",
    "PauseVm",
    "Phase",
    "PhaseEntered",
    "PhaseRecord",
    "ReinitDriver",
    "ReleaseAlias",
    "RestoreVf",
    "ResumeAtSource",
    "ResumeVm",
    "SetAlias",
    "Stimulus",
    "UndoAlias",
    "next_phase",
]

"""SM roles (IBA Vol 1, 14.4): which SM of a subnet is its master.

Every SM port has IsSM set in its PortInfo:CapabilityMask and answers SubnGet(SMInfo)
with its port GUID, SM_Key, ActCount, Priority and SMState. An SM starts in
DISCOVERING and sweeps; during discovery it reads SMInfo of every other end port
whose CapabilityMask has IsSM. When discovery ends:

- a MASTER was found, or a DISCOVERING/STANDBY SM that is *higher* (greater
  priority, or equal priority and lower port GUID): this SM goes STANDBY, programs
  nothing, and polls that SM with SubnGet(SMInfo) every `sminfo_polling_timeout`;
  after more than `polling_retry_number` polls without a MASTER answer it takes
  over: DISCOVERING, a heavy sweep that rewrites every port (MasterSMLID, and
  ClientReregister where the port supports it), then MASTER;
- otherwise it becomes MASTER and configures the subnet. A master that finds a
  lower SM (in STANDBY) keeps it; the standby polls the master.

SubnSet(SMInfo) carries a control code in the attribute modifier (14.4.1,
Table 185): HANDOVER, ACKNOWLEDGE, DISABLE, STANDBY, DISCOVER. A Set is legal only
from the state that may send it (ACKNOWLEDGE from a STANDBY SM, the others from a
MASTER), and only when the transition it asks for is legal here; otherwise it is
answered with MAD status 0x001C and changes nothing.

`SmRole` holds the state and is the transition table: `signal()` applies a signal
or raises `IllegalTransition`; `allows()` asks first (for signals that arrive from
the wire). The signals and transitions follow OpenSM's osm_sm_state_mgr.c.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum

from ibmig.wire.smp_attrs import SmState


class SmSignal(Enum):
    """What moves an SM between states (OpenSM's osm_sm_signal_t)."""

    DISCOVERY_COMPLETED = "discovery completed"
    """A sweep found no master and no higher SM."""
    MASTER_OR_HIGHER_SM_DETECTED = "master or higher SM detected"
    POLLING_TIMEOUT = "polling timeout"
    """The SM a standby polls stopped answering as master."""
    HANDOVER = "handover"
    HANDOVER_SENT = "handover sent"
    """A master handed the subnet to a higher SM (SubnSet(SMInfo) HANDOVER)."""
    ACKNOWLEDGE = "acknowledge"
    DISABLE = "disable"
    STANDBY = "standby"
    DISCOVER = "discover"


class SmInfoControl(IntEnum):
    """SubnSet(SMInfo) AttributeModifier (IBA Vol 1, 14.4.1, Table 185)."""

    HANDOVER = 1
    ACKNOWLEDGE = 2
    DISABLE = 3
    STANDBY = 4
    DISCOVER = 5


class IllegalTransition(RuntimeError):
    """A signal that the SM's current state does not accept."""


# (state, signal) -> next state. OpenSM's osm_sm_state_mgr_process, one row each.
TRANSITIONS: dict[tuple[SmState, SmSignal], SmState] = {
    (SmState.DISCOVERING, SmSignal.DISCOVERY_COMPLETED): SmState.MASTER,
    (SmState.DISCOVERING, SmSignal.MASTER_OR_HIGHER_SM_DETECTED): SmState.STANDBY,
    # A handover while still discovering: sweep again, decide at its end.
    (SmState.DISCOVERING, SmSignal.HANDOVER): SmState.DISCOVERING,
    (SmState.STANDBY, SmSignal.POLLING_TIMEOUT): SmState.DISCOVERING,
    (SmState.STANDBY, SmSignal.DISCOVER): SmState.DISCOVERING,
    (SmState.STANDBY, SmSignal.DISABLE): SmState.NOT_ACTIVE,
    (SmState.STANDBY, SmSignal.HANDOVER): SmState.MASTER,
    (SmState.STANDBY, SmSignal.ACKNOWLEDGE): SmState.STANDBY,
    (SmState.NOT_ACTIVE, SmSignal.STANDBY): SmState.STANDBY,
    # A master asked for the subnet again (HANDOVER) does a heavy sweep.
    (SmState.MASTER, SmSignal.HANDOVER): SmState.MASTER,
    (SmState.MASTER, SmSignal.HANDOVER_SENT): SmState.STANDBY,
    # The SM's own port went down: rediscover.
    (SmState.MASTER, SmSignal.DISCOVER): SmState.DISCOVERING,
}

_CONTROL_SIGNALS: dict[int, SmSignal] = {
    SmInfoControl.HANDOVER: SmSignal.HANDOVER,
    SmInfoControl.ACKNOWLEDGE: SmSignal.ACKNOWLEDGE,
    SmInfoControl.DISABLE: SmSignal.DISABLE,
    SmInfoControl.STANDBY: SmSignal.STANDBY,
    SmInfoControl.DISCOVER: SmSignal.DISCOVER,
}

# Who may send each control code (14.4.1; OpenSM's smi_rcv_check_set_req_legality).
_SENDER_STATE: dict[int, SmState] = {
    SmInfoControl.HANDOVER: SmState.MASTER,
    SmInfoControl.ACKNOWLEDGE: SmState.STANDBY,
    SmInfoControl.DISABLE: SmState.MASTER,
    SmInfoControl.STANDBY: SmState.MASTER,
    SmInfoControl.DISCOVER: SmState.MASTER,
}


def is_higher(priority: int, guid: int, other_priority: int, other_guid: int) -> bool:
    """Whether the SM (priority, guid) outranks the other: greater priority, or equal
    priority and lower port GUID (IBA Vol 1, 14.4.1.1)."""
    if priority != other_priority:
        return priority > other_priority
    return guid < other_guid


def control_signal(control: int, sender_state: int) -> SmSignal | None:
    """The signal a SubnSet(SMInfo) with AttributeModifier `control` from an SM in
    `sender_state` asks for, or None when such a Set is not legal at all."""
    if _SENDER_STATE.get(control) != sender_state:
        return None
    return _CONTROL_SIGNALS[control]


@dataclass(frozen=True, slots=True)
class SmStateChanged:
    """The SM moved from one SMState to another (event)."""

    time_ns: int
    old: SmState
    new: SmState
    signal: SmSignal
    master_guid: int
    """The port GUID of the SM this one follows (STANDBY), else 0."""


class SmRole:
    """The SMState of one SM as a transition table (module docstring)."""

    __slots__ = ("state",)

    def __init__(self, state: SmState = SmState.DISCOVERING) -> None:
        self.state = state

    def allows(self, signal: SmSignal) -> bool:
        return (self.state, signal) in TRANSITIONS

    def signal(self, signal: SmSignal) -> SmState:
        """Apply `signal`; the new state. Raises `IllegalTransition`."""
        try:
            self.state = TRANSITIONS[(self.state, signal)]
        except KeyError:
            raise IllegalTransition(
                f"SM state {self.state.name} does not accept {signal.value}"
            ) from None
        return self.state

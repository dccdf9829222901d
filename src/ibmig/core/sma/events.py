"""Events a subnet management agent reports through `next_event()`.

They are for observers (metrics, traces, tests) and for the runtime: a few ask it to
act on the physical link (`LinkDownRequested`, `LinkEnableRequested`) or tell a host
agent that the subnet manager changed something it cares about (`GuidInfoChanged`,
`ClientReregisterRequested`). Recording can be switched off for scale
(`SubnetManagementAgent(record_events=False)`); nothing inside the agent depends on
them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PortStateChanged:
    """PortInfo:PortState of `port` went from `old` to `new` (`PortState` codes)."""

    port: int
    old: int
    new: int


@dataclass(frozen=True, slots=True)
class LidAssigned:
    """The SM wrote a new base LID (or LMC) on `port` (port 0 on a switch)."""

    port: int
    lid: int
    lmc: int


@dataclass(frozen=True, slots=True)
class MasterSmLidChanged:
    port: int
    master_sm_lid: int


@dataclass(frozen=True, slots=True)
class LftBlockWritten:
    """LinearForwardingTable block `block` (LIDs 64*block .. 64*block+63) was Set."""

    block: int


@dataclass(frozen=True, slots=True)
class LinearFdbTopChanged:
    linear_fdb_top: int


@dataclass(frozen=True, slots=True)
class GuidInfoChanged:
    """A GUIDInfo Set changed entries of `block` (GUID indices 8*block..8*block+7)."""

    port: int
    block: int


@dataclass(frozen=True, slots=True)
class PKeyTableChanged:
    port: int
    block: int


@dataclass(frozen=True, slots=True)
class ClientReregisterRequested:
    """The SM set PortInfo:ClientReregister: the port's clients should re-register
    with the SA (subscriptions, multicast joins)."""

    port: int


@dataclass(frozen=True, slots=True)
class LinkDownRequested:
    """The SM took the link of `port` down (PortState Down or a PortPhysicalState
    write). `disabled`: the port stays down (Disabled or Sleep) until the SM enables
    it again; otherwise the link retrains (the runtime calls `set_link(port, True)`
    when it comes back)."""

    port: int
    disabled: bool


@dataclass(frozen=True, slots=True)
class LinkEnableRequested:
    """The SM wrote PortPhysicalState Polling on a disabled port: it may train again."""

    port: int


@dataclass(frozen=True, slots=True)
class TrapSent:
    """A SubnTrap(Notice) left; `attempt` is 1 for the first transmission."""

    trap_number: int
    tid: int
    attempt: int


@dataclass(frozen=True, slots=True)
class TrapRepressed:
    trap_number: int
    tid: int


@dataclass(frozen=True, slots=True)
class TrapAbandoned:
    """The retry limit ran out before a TrapRepress arrived."""

    trap_number: int
    tid: int


@dataclass(frozen=True, slots=True)
class MKeyViolation:
    """An SMP failed the M_Key check on `port` and was dropped."""

    port: int
    method: int
    attribute_id: int


@dataclass(frozen=True, slots=True)
class MKeyLeaseExpired:
    """The M_Key lease ran out: M_KeyProtectBits of `port` fell back to 0."""

    port: int


@dataclass(frozen=True, slots=True)
class ForwardingChanged:
    """Where this node forwards or accepts a packet changed: an LFT block, a port's
    LID or its state. Emitted even when other events are not recorded: it is how a
    transport that memoises routes learns to forget them."""


SmaEvent = (
    ForwardingChanged
    | PortStateChanged
    | LidAssigned
    | MasterSmLidChanged
    | LftBlockWritten
    | LinearFdbTopChanged
    | GuidInfoChanged
    | PKeyTableChanged
    | ClientReregisterRequested
    | LinkDownRequested
    | LinkEnableRequested
    | TrapSent
    | TrapRepressed
    | TrapAbandoned
    | MKeyViolation
    | MKeyLeaseExpired
)

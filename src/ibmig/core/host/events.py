"""Events a host agent (dom0) reports through `next_event()`.

They are for observers (metrics, traces, tests) and for the runtime, which turns a
few of them into calls on other engines: `VfUp` lets the guest attach its stack,
`AliasAcknowledged` and `AliasReleased` confirm the steps of a migration
(`ibmig.core.migration`). Times are the `now_ns` of the call that caused them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class VfUp:
    """VF `vf` of this port is attached to `vm` and its alias GUID is acknowledged by
    the SM: the VM's vport answers at `gid` (subnet prefix || alias GUID) behind `lid`."""

    vm: str
    vf: int
    gid: bytes
    lid: int
    time_ns: int


@dataclass(frozen=True, slots=True)
class VfDown:
    """VF `vf` was detached from `vm`."""

    vm: str
    vf: int
    time_ns: int


@dataclass(frozen=True, slots=True)
class AliasAcknowledged:
    """The SA answered the GUIDInfoRecord Set of `guid` at GUIDInfo index `vf`
    (reserved for `vm`) with the GUID in place."""

    vm: str
    vf: int
    guid: int
    time_ns: int


@dataclass(frozen=True, slots=True)
class AliasReleased:
    """The SA answered the GUIDInfoRecord Delete of `guid` at GUIDInfo index `vf`."""

    guid: int
    vf: int
    time_ns: int


@dataclass(frozen=True, slots=True)
class AliasRetryScheduled:
    """A GUIDInfoRecord Set or Delete of `guid` at index `vf` was declined or got no
    answer ("refused", "timeout", "status 0x...."), and is asked again as a new
    request at `retry_ns` (`HostConfig.alias_retry_ns`): the `retry`-th time."""

    vm: str | None
    vf: int
    guid: int
    operation: str
    reason: str
    retry: int
    retry_ns: int
    time_ns: int


@dataclass(frozen=True, slots=True)
class DomainRestarted:
    """dom0 restarted: its SA requests, subscription, mapping table and guests' path
    registrations are gone; it registers its VMs' aliases and subscribes again."""

    time_ns: int


@dataclass(frozen=True, slots=True)
class AliasFailed:
    """A GUIDInfoRecord Set (`operation` "set") or Delete ("delete") of `guid` at
    index `vf` did not succeed: `reason` is "timeout" (no answer after every
    retry), "refused" (the answer did not hold the GUID: another port holds it) or
    "status 0x...." (an SA error status). `vm` is the VM the VF was reserved for,
    if any."""

    vm: str | None
    vf: int
    guid: int
    operation: str
    reason: str
    time_ns: int


@dataclass(frozen=True, slots=True)
class Subscribed:
    """The SA accepted the InformInfo Set (Subscribe 1 for trap `trap_number`)."""

    trap_number: int
    time_ns: int


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    """The SA accepted the InformInfo Set with Subscribe 0."""

    trap_number: int
    time_ns: int


@dataclass(frozen=True, slots=True)
class SubscriptionFailed:
    """An InformInfo Set failed (`reason` as in `AliasFailed`); `subscribe` tells
    which way."""

    trap_number: int
    subscribe: bool
    reason: str
    time_ns: int


@dataclass(frozen=True, slots=True)
class ReportReceived:
    """A SubnAdmReport(Notice) arrived with `tid`; `duplicate` when the SA sent that
    TID before (a resend after a lost ReportResp): answered again, not processed."""

    trap_number: int
    tid: int
    duplicate: bool
    time_ns: int


@dataclass(frozen=True, slots=True)
class MappingUpdated:
    """The vGUID -> LID mapping table entry of `vguid` changed from `old_lid` (None:
    unknown) to `new_lid`; `source` is "report" or "local"."""

    vguid: int
    old_lid: int | None
    new_lid: int
    source: str
    time_ns: int


@dataclass(frozen=True, slots=True)
class PathChangeForwarded:
    """dom0 queued a `ForwardPathChange` for `vm` on the intra-host channel."""

    vm: str
    gid: bytes
    new_lid: int
    time_ns: int


@dataclass(frozen=True, slots=True)
class SaRequestRetried:
    """An SA request (`attribute_id`, `method`) got no usable answer in time and was
    sent again with the same TID; `attempt` counts resends from 1."""

    attribute_id: int
    method: int
    tid: int
    attempt: int
    time_ns: int


@dataclass(frozen=True, slots=True)
class MappingResynced:
    """dom0 subscribed again after a gap (`cause`: "client_reregister", "restart",
    "port"; or the subscription failed) and may have missed Reports: it dropped the
    `dropped` mapping entries learnt from Reports and told `vms` to resolve their
    cached paths again (`RevalidatePaths`)."""

    cause: str
    dropped: int
    vms: tuple[str, ...]
    time_ns: int


HostEvent = (
    VfUp
    | VfDown
    | AliasAcknowledged
    | AliasReleased
    | AliasFailed
    | AliasRetryScheduled
    | DomainRestarted
    | Subscribed
    | Unsubscribed
    | SubscriptionFailed
    | ReportReceived
    | MappingUpdated
    | PathChangeForwarded
    | SaRequestRetried
    | MappingResynced
)
"""Any event a `HostAgent` reports."""

__all__ = [
    "AliasAcknowledged",
    "AliasFailed",
    "AliasReleased",
    "AliasRetryScheduled",
    "DomainRestarted",
    "HostEvent",
    "MappingResynced",
    "MappingUpdated",
    "PathChangeForwarded",
    "ReportReceived",
    "SaRequestRetried",
    "Subscribed",
    "SubscriptionFailed",
    "Unsubscribed",
    "VfDown",
    "VfUp",
]

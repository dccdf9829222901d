"""Events the subnet administrator reports through `next_event()`.

Every event is a frozen record with the simulation time it happened at
(`time_ns`); observers (metrics, the JSONL trace, tests) read them, the engine never
needs them back.
"""

from __future__ import annotations

from dataclasses import dataclass

from ibmig.wire.sa import InformInfo


@dataclass(frozen=True, slots=True)
class Subscription:
    """One event subscription, as the SA keeps it (OpenSM's osm_infr_t).

    `lid`, `qpn` and `report_gid` are where Reports go: the requester's LID and
    source QP as the Set(InformInfo) arrived, and its GID when the Set came with a
    GRH naming a GID other than its port's (a VM behind a shared port). The stored
    `inform_info` carries that QPN, as OpenSM stores it. `subscriber_gid` and
    `enum` identify the InformInfoRecord.
    """

    subscriber_gid: bytes
    enum: int
    lid: int
    qpn: int
    report_gid: bytes | None
    inform_info: InformInfo


@dataclass(frozen=True, slots=True)
class SubscriptionAdded:
    subscription: Subscription
    time_ns: int


@dataclass(frozen=True, slots=True)
class SubscriptionRemoved:
    """Unsubscribed by the subscriber (`reason` "unsubscribe"), or dropped with its
    port ("port_out_of_service", with `SaConfig.drop_event_subscriptions`)."""

    subscription: Subscription
    time_ns: int
    reason: str = "unsubscribe"


@dataclass(frozen=True, slots=True)
class ReportSent:
    """A Report(Notice) left for a subscriber; `attempt` 0 is the first send."""

    subscriber: Subscription
    trap_number: int
    tid: int
    time_ns: int
    attempt: int = 0


@dataclass(frozen=True, slots=True)
class ReportAcked:
    subscriber: Subscription
    trap_number: int
    tid: int
    time_ns: int


@dataclass(frozen=True, slots=True)
class ReportGaveUp:
    """No ReportResp after every retry."""

    subscriber: Subscription
    trap_number: int
    tid: int
    time_ns: int


@dataclass(frozen=True, slots=True)
class PathChangeDetected:
    """An alias GUID (vGUID) now resolves to another LID: the VM moved ports."""

    vguid: int
    old_lid: int
    new_lid: int
    old_port_guid: int
    new_port_guid: int
    time_ns: int


@dataclass(frozen=True, slots=True)
class QueryAnswered:
    """A response left for a request: `method` is the request's, `status` the MAD
    status of the answer, `records` how many records it carries."""

    attribute: int
    method: int
    status: int
    records: int
    time_ns: int


@dataclass(frozen=True, slots=True)
class NoticeReported:
    """A notice went through subscription matching (`matched` subscribers got it)."""

    trap_number: int
    matched: int
    time_ns: int


@dataclass(frozen=True, slots=True)
class RmppTransferDone:
    """An RMPP response was fully acknowledged (`completed`) or aborted."""

    requester_lid: int
    tid: int
    segments: int
    completed: bool
    time_ns: int
    status: int = 0

"""The hypervisor's management domain (dom0) of one physical host.

`HostAgent` drives one HCA port in the shared-port SR-IOV model: VFs and their
alias GUIDs (registered with the SA), the vGUID -> LID mapping table, the per-host
path-change subscription and the forwarding of path changes to local guests over
the intra-host channel. See `ibmig.core.host.agent` for the theory of operation;
its events are in `ibmig.core.host.events`, the intra-host messages in
`ibmig.core.host.messages`.
"""

from ibmig.core.host.agent import (
    DEFAULT_GID_PREFIX,
    TID_MASK,
    AddressAssignment,
    HostAgent,
    HostConfig,
    HostError,
    derived_vf_guid,
    make_gid,
)
from ibmig.core.host.events import (
    AliasAcknowledged,
    AliasFailed,
    AliasReleased,
    AliasRetryScheduled,
    DomainRestarted,
    HostEvent,
    MappingResynced,
    MappingUpdated,
    PathChangeForwarded,
    ReportReceived,
    SaRequestRetried,
    Subscribed,
    SubscriptionFailed,
    Unsubscribed,
    VfDown,
    VfUp,
)
from ibmig.core.host.messages import (
    ForwardPathChange,
    GuestToHost,
    HostToGuest,
    PathRegistered,
    PathUnregistered,
    RevalidatePaths,
)

__all__ = [
    "DEFAULT_GID_PREFIX",
    "TID_MASK",
    "AddressAssignment",
    "AliasAcknowledged",
    "AliasFailed",
    "AliasReleased",
    "AliasRetryScheduled",
    "DomainRestarted",
    "ForwardPathChange",
    "GuestToHost",
    "HostAgent",
    "HostConfig",
    "HostError",
    "HostEvent",
    "HostToGuest",
    "MappingResynced",
    "MappingUpdated",
    "PathChangeForwarded",
    "PathRegistered",
    "PathUnregistered",
    "ReportReceived",
    "RevalidatePaths",
    "SaRequestRetried",
    "Subscribed",
    "SubscriptionFailed",
    "Unsubscribed",
    "VfDown",
    "VfUp",
    "derived_vf_guid",
    "make_gid",
]

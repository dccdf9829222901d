"""The guest stack: one `GuestAgent` engine per VM.

Path cache and SA PathRecord queries (`path_cache`), the communication manager
(`cm`), RC queue pairs (`rc`), the IPoIB neighbour model (`ipoib`), the workload
(`workload`), the intra-host channel to dom0 (`intra_host`), every default timing
(`config`) and the events for metrics (`events`). Theory of operation in
`ibmig.core.guest.agent`.
"""

from ibmig.core.guest.agent import DEFAULT_PKEY, FIRST_QPN, QP1_QKEY, GuestAgent
from ibmig.core.guest.cm import (
    CM_TRANSITIONS,
    CmState,
    CmTransitionError,
    Connection,
    cma_header,
    parse_cma_header,
)
from ibmig.core.guest.config import GuestConfig, cm_ack_timeout, cm_timeout_ns, iba_time_ns
from ibmig.core.guest.events import (
    Attached,
    ConnectFailed,
    ConnectionBroken,
    ConnectionUp,
    Detached,
    GratuitousArpSent,
    MessageDelivered,
    NeighbourStateChanged,
    NeighbourUpdated,
    PathChangeReceived,
    PathFlushed,
    PathQueryFailed,
    PathResolved,
    Reconnected,
    ReportReceived,
    SubscriptionConfirmed,
    SubscriptionFailed,
)
from ibmig.core.guest.intra_host import (
    ForwardPathChange,
    GuestToHost,
    HostToGuest,
    PathRegistered,
    PathUnregistered,
    RevalidatePaths,
)
from ibmig.core.guest.ipoib import (
    IPOIB_QKEY,
    IPOIB_QPN,
    IpoibArp,
    Neighbour,
    NeighbourTable,
    NudState,
)
from ibmig.core.guest.path_cache import (
    PATH_QUERY_MASK,
    PathCache,
    PathQuery,
    parse_path_response,
    path_query,
)
from ibmig.core.guest.rc import (
    OP_RC_ACKNOWLEDGE,
    OP_RC_SEND_ONLY,
    OP_UD_SEND_ONLY,
    QP_TRANSITIONS,
    Aeth,
    AethSyndrome,
    QpState,
    QpTransitionError,
    RcQp,
)
from ibmig.core.guest.workload import (
    STREAM_TRANSITIONS,
    ClientStream,
    Peer,
    StreamState,
    StreamTransitionError,
)

__all__ = [
    "CM_TRANSITIONS",
    "DEFAULT_PKEY",
    "FIRST_QPN",
    "IPOIB_QKEY",
    "IPOIB_QPN",
    "OP_RC_ACKNOWLEDGE",
    "OP_RC_SEND_ONLY",
    "OP_UD_SEND_ONLY",
    "PATH_QUERY_MASK",
    "QP1_QKEY",
    "QP_TRANSITIONS",
    "STREAM_TRANSITIONS",
    "Aeth",
    "AethSyndrome",
    "Attached",
    "ClientStream",
    "CmState",
    "CmTransitionError",
    "ConnectFailed",
    "Connection",
    "ConnectionBroken",
    "ConnectionUp",
    "Detached",
    "GratuitousArpSent",
    "GuestAgent",
    "GuestConfig",
    "ForwardPathChange",
    "GuestToHost",
    "HostToGuest",
    "IpoibArp",
    "MessageDelivered",
    "Neighbour",
    "NeighbourStateChanged",
    "NeighbourTable",
    "NeighbourUpdated",
    "NudState",
    "PathCache",
    "PathChangeReceived",
    "PathFlushed",
    "PathRegistered",
    "PathUnregistered",
    "PathQuery",
    "PathQueryFailed",
    "PathResolved",
    "Peer",
    "QpState",
    "QpTransitionError",
    "RcQp",
    "Reconnected",
    "ReportReceived",
    "RevalidatePaths",
    "StreamState",
    "StreamTransitionError",
    "SubscriptionConfirmed",
    "SubscriptionFailed",
    "cm_ack_timeout",
    "cm_timeout_ns",
    "cma_header",
    "iba_time_ns",
    "parse_cma_header",
    "parse_path_response",
    "path_query",
]

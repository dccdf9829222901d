"""The subnet administrator (SA): queries, alias GUIDs, subscriptions and Reports.

`SubnetAdministrator` answers SA MADs (class 0x03) next to the subnet manager, from
its database; `resolve_path` is the LFT walk behind every PathRecord. See
`ibmig.core.sa.admin` for the theory of operation.
"""

from ibmig.core.sa.admin import QP1_QKEY, SaConfig, SubnetAdministrator, resp_time_value
from ibmig.core.sa.events import (
    NoticeReported,
    PathChangeDetected,
    QueryAnswered,
    ReportAcked,
    ReportGaveUp,
    ReportSent,
    RmppTransferDone,
    Subscription,
    SubscriptionAdded,
    SubscriptionRemoved,
)
from ibmig.core.sa.matching import inform_matches, make_gid, notice_subject
from ibmig.core.sa.paths import PathError, PathInfo, hop_packet_life_time, port_rate, resolve_path
from ibmig.core.sa.rmpp import RmppSender, RmppStatus, reassemble, segment_table

__all__ = [
    "QP1_QKEY",
    "NoticeReported",
    "PathChangeDetected",
    "PathError",
    "PathInfo",
    "QueryAnswered",
    "ReportAcked",
    "ReportGaveUp",
    "ReportSent",
    "RmppSender",
    "RmppStatus",
    "RmppTransferDone",
    "SaConfig",
    "Subscription",
    "SubscriptionAdded",
    "SubscriptionRemoved",
    "SubnetAdministrator",
    "hop_packet_life_time",
    "inform_matches",
    "make_gid",
    "notice_subject",
    "port_rate",
    "reassemble",
    "resolve_path",
    "resp_time_value",
    "segment_table",
]

"""The subnet administrator: SA queries, alias GUIDs, subscriptions and Reports.

The SA lives with the SM (as in OpenSM) and answers management class 0x03 on QP1
of the SM's port from the SM's database (`ibmig.core.sm.db.SubnetDb`). It is an
engine in the shape of `ibmig.core.engine.Engine` and a `SmListener` of the SM.

Receive pipeline
----------------
1. Not a 256-byte SA MAD, or BaseVersion != 1: dropped, counted `malformed`.
2. RMPP ACK/STOP/ABORT (Active flag): the sending side of an RMPP response
   (`ibmig.core.sa.rmpp`).
3. A response: ReportResp retires the Report with its TID; others are dropped.
4. SM_Key neither 0 nor `SaConfig.sa_key`: dropped (IBA C15-0.1.5, as OpenSM).
   A request with the SA key is "trusted": it sees InformInfoRecord QPNs and
   PortInfo M_Keys, and may subscribe to security traps 256..259.
5. Send, Trap, TrapRepress (methods with no response): dropped.
6. ClassVersion != 2: status 0x0004 (bad version).
7. Before the SM has reached SUBNET UP once (`SubnetManager.ever_up`, so an SA
   restarted later answers at once, sweep or no sweep): status 0x0001 (busy), so the
   requester retries later. OpenSM drops SA MADs until its first sweep completes
   (C15-0.1.3, osm_sa_mad_ctrl.c); `answer_busy_before_up=False` does the same.
8. A requester LID no end port has: dropped (OpenSM "Cannot find requester
   physical port").
9. A method the SA does not implement (anything but Get, Set, GetTable, GetMulti,
   Delete):
   0x0008; an attribute/method pair it does not serve: 0x000C (IBA 13.4.7 Table
   117; OpenSM silently drops unknown attributes).

Answers follow OpenSM's `osm_sa_respond`/`osm_sa_send_error` (osm_sa.c): the
response copies the request's header (TID, attribute, modifier, ComponentMask),
SM_Key 0, AttributeOffset the record size in words; SubnAdmSet is answered with
GetResp, Delete with DeleteResp. A Get that finds no record is answered with
ERR_NO_RECORDS, more than one with ERR_TOO_MANY_RECORDS; a GetTable with no
record is an empty table. An error response echoes the request's data.

GetTable responses: with `rmpp=True` (default) every GetTableResp is an RMPP
transfer (`ibmig.core.sa.rmpp`), one segment or many. With `rmpp=False` the SA
answers as OpenSM built without vendor RMPP support: the table is cut to the
records that fit one MAD, sent as a single segment flagged First|Last|Active.
That is also all a requester on ibsim gets from stock OpenSM, which hands the
whole table to the umad layer, whose ibsim shim forwards the first 256 bytes.

Records
-------
- PathRecord (15.2.5.16; OpenSM osm_sa_path_record.c): `ibmig.core.sa.paths`
  walks the LFTs. End points come from SGID/DGID (a port GUID or an alias GUID,
  the subnet prefix or the link-local one) and/or SLID/DLID. An unknown GID or
  LID gives no record (OpenSM 3.3.2x ignores its own end-point status); SGID and
  SLID (or DGID and DLID) naming different ports: ERR_REQ_INVALID; an invalid
  MTU or rate with its selector: ERR_REQ_INVALID; half a ServiceID:
  ERR_REQ_INSUFFICIENT_COMPONENTS. A missing end is a wildcard over every GUID
  the SA knows (port GUIDs of end ports and alias GUIDs, in GUID order; OpenSM
  walks its alias table the same way, in its map's order), with one record per
  GUID. Each record: SGID/DGID as requested or prefix || GUID, SLID/DLID, HopLimit
  0 (local), P_Key the requested one if both ends share it, else the lowest
  partition they share (the source's entry, OpenSM osm_physp_find_common_pkey);
  ends sharing no partition (one side a full member) have no path at all. The
  ends' partitions are `SubnetManager.partition_keys`: a port's table, a VM's own
  partitions for an alias GUID (`ibmig.fabric.partitions`); without a partition
  configuration every end is a full member of 0xFFFF. SL 0 (or the requested
  one), MTU and rate the path minima with selector "exactly", Reversible when
  the reverse path exists too, NumbPath 0 and Preference 0 as OpenSM returns
  them. MTU, rate and PacketLifeTime selectors (greater than,
  less than, exactly, largest) are applied as OpenSM applies them; an
  unsatisfiable one drops the record.
  PacketLifeTime: as OpenSM by default, `packet_life_time` (0x12) for every path
  and 0 for a loopback path (osm_sa_path_record.c `pr_rcv_get_path_parms` takes
  `opt.subnet_timeout`, OSM_DEFAULT_SUBNET_TIMEOUT 0x12 in osm_base.h; OpenSM's own
  option named packet_life_time is the switches' LifeTimeValue, not this). With
  `packet_life_time` None it is hop based instead: each link (with the switch
  queue behind it) may hold a packet for 4.096 us x 2^`hop_packet_life_time`
  (default 16, OpenSM's leaf_head_of_queue_lifetime default), and the path's
  exponent is the smallest covering all its links (`paths.hop_packet_life_time`):
  17 for 2 links, 18 (OpenSM's value) for 3 or 4, 19 up to 8.
- NodeRecord (15.2.5.2): one per CA port, one per switch (port 0), matched on
  every NodeInfo component of the ComponentMask, LID, and NodeDescription
  (compared up to the first NUL, as OpenSM's strncmp).
- PortInfoRecord (15.2.5.3): by EndportLID (or PortInfo LID) and PortNum, and
  every PortInfo component OpenSM matches (bits 3..54; CapabilityMask and
  CapabilityMask2 bitwise when bit 31 of the attribute modifier asks, IBA 1.2
  errata). M_Key reads 0 unless the request is trusted.
- GUIDInfoRecord (15.2.5.18; OpenSM osm_sa_guidinfo_record.c): Get/GetTable by
  LID and BlockNum over the ports' tables as the SM last wrote them, blocks being
  written counted as written (OpenSM answers from its own table too). Set and
  Delete need LID and BlockNum in the ComponentMask (else
  ERR_REQ_INSUFFICIENT_COMPONENTS); a LID no port has or a block beyond GUIDCap:
  ERR_NO_RECORDS; GUID0 of block 0 (the port GUID, read-only) in the mask:
  ERR_REQ_INVALID. Which of the 8 entries to write is given by GUID0..GUID7 of
  the mask. Set writes each given GUID; a zero asks for an SM-assigned GUID
  (the one already there, else a new one: vendor 0x001405, `sm_assigned_guid`
  byte, a counter; OpenSM's scheme); a GUID some other port or entry already
  holds is refused (left out, as OpenSM does). Delete zeroes the entries.
  Only the port itself (its hypervisor, the requester's port) may write its
  block: another port's Set or Delete is refused with ERR_REQ_DENIED (0x0700,
  the status OpenSM gives a refused Delete) unless it carries the SA key
  (trusted, an administrator); a trusted one for a port it shares no partition
  with gets no answer, as OpenSM drops it. OpenSM 3.3 checks no ownership. When something changes,
  the SA has the SM write the merged block into the port
  (`SubnetManager.set_guid_info`, a SubnSet(GUIDInfo)) and answers once the
  port's GetResp arrives, with the block as the port now holds it; when nothing
  changes it answers at once. When the answer leaves is `guid_info_answer`:
  "before_write" (default), as OpenSM, whose set_guidinfo/del_guidinfo update its
  own table, queue the port's GUIDInfo write for the SM (`osm_queue_guidinfo`,
  OSM_SIGNAL_GUID_PROCESS_REQUEST) and answer at once with the block as its table
  now holds it, so the answer may come before the port holds the GUID and says
  nothing of whether the write will succeed (the SM resends a lost SMP up to
  `SmConfig.max_retries` times, as OpenSM's MAD layer does; a write that fails
  even so leaves the SA's table as it accepted it, as OpenSM's, and the port
  perhaps without the GUID: `unconfirmed_guid_writes`); "after_write": once the port's
  GetResp arrives, with the block as the port now holds it, and a write the port
  never confirms is answered with ERR_NO_RESOURCES after `guid_info_timeout_ns`.
  Path changes follow what PathRecords answer from: under "before_write" the SA's
  table, so a move is detected when the Set is accepted, in the order the requests
  came (writes to two ports may land in either order); under "after_write" the
  port's confirmation.
- InformInfo Set (13.4.8.3; OpenSM osm_sa_informinfo.c) subscribes (Subscribe=1)
  or unsubscribes (0). Subscriptions are keyed as OpenSM keys them: the
  requester's address (LID, source QP, GID) and the InformInfo's GID (or LID
  range when the GID is zero), Type, IsGeneric, TrapNumber, QPN, RespTimeValue
  and ProducerType; subscribing again with the same key replaces the
  subscription. The stored InformInfo carries the requester's source QP as its
  QPN (as OpenSM); Reports go there. Errors (ERR_REQ_INVALID, echoing the
  InformInfo with Subscribe=0 as o13-13.1.1 asks): Subscribe > 1, security traps
  256..259 without the SA key, an unknown GID, a LID range beyond the top LID,
  unsubscribing what is not subscribed. The answer is a GetResp with the
  InformInfo as received. SubscriberGID is the requester's GID from the GRH, or
  its port's GID; Enum numbers a subscriber's subscriptions from 0 (OpenSM
  always uses 0).
- InformInfoRecord (15.2.5.12): Get/GetTable by SubscriberGID and Enum, newest
  first as OpenSM lists them, QPN 0 unless trusted (C15-0.2-1.16).
- LinkRecord, SwitchInfoRecord, SMInfoRecord, P_KeyTableRecord,
  SLtoVLMappingTableRecord, VLArbitrationTableRecord, LinearForwardingTableRecord
  (Get/GetTable): `ibmig.core.sa.records`.
- ServiceRecord (Set, Delete, Get/GetTable, leases): `ibmig.core.sa.services`.
- MultiPathRecord (GetMulti, answered with PathRecords in a GetMultiResp RMPP
  transfer): `ibmig.core.sa.multipath`.
- MCMemberRecord (Set = join or create, Delete = leave, Get/GetTable; the IPoIB
  broadcast group created at start) and MulticastForwardingTableRecord
  (Get/GetTable, the MFTs the SM programmed): `ibmig.core.sa.multicast`. A join or
  leave that changes an MLID's member ports has the SM reprogram its MFTs
  (`SubnetManager.set_multicast_members`). A GUIDInfoRecord Delete of an alias GUID
  that is a member of a multicast group is refused with ERR_REQ_DENIED, as
  OpenSM's osm_sa_guidinfo_record.c does: the VM leaves its groups first.
- ClassPortInfo Get (13.4.8.1): RespTimeValue from `transaction_timeout_ns` as
  OpenSM computes it (at least 8; 16 for 200 ms), CapabilityMask IsTrapSupported
  (the SA forwards events; OpenSM leaves this bit clear), IsGetSetNoticeSupported
  MultiPathRecord, UD multicast (MCMemberRecord) and PortInfo CapabilityMask
  matching (0x2603; OpenSM's 0x2602 has no traps), CapabilityMask2 alias GUIDs,
  extended speeds, CapabilityMask2 matching, SendOnlyFullMember joins, 2x widths
  and HDR (0xB4A0); redirect
  and trap QP 1 with the well-known Q_Key.

Events and Reports
------------------
Notices come from the SM (`SmListener`): `ports_changed` gives trap 64 (GID in
service) and 65 (GID out of service) for each port, issued by the SM (IssuerLID
the SM's LID, IssuerGID its port's GID, DataDetails GIDADDR = prefix || port
GUID; OpenSM osm_state_mgr.c / osm_drop_mgr.c); `trap_received` gives the traps
the SM received (trap 128...), whose IssuerGID the SA fills in from the issuer's
LID when the SMP form left it out (osm_trap_rcv.c). Each notice goes to every
matching subscription (`ibmig.core.sa.matching`) as a SubnAdmReport(Notice),
LID routed to the subscriber's LID and QP, with a GRH when it subscribed with a
GID other than its port's. Subscriber and subject must share a partition
(o13-17.1.1, OpenSM is_access_permitted): with a partition configuration a
Report goes only to subscribers (the GID they subscribed with: a VM's vGUID, or
a port) sharing one with the notice's subject (`matching.notice_subject`: the
port of trap 64/65, the VM of trap 69; OpenSM takes the IssuerGID for traps
other than 64..67, which for trap 69 is the SM and would let a Report cross a
partition). Without one every port is a full member of 0xFFFF and the check
passes. o13-17.1.2's removal of a mismatching subscription is not done. An
InformInfo naming a GID outside the requester's partitions is refused
(ERR_REQ_INVALID, OpenSM validate_infr). A
subscriber whose LID no port has any more gets nothing. Each Report expects a
ReportResp with its TID; it is sent again after 4.096 us x 2^RespTimeValue of
the subscription, but no sooner than `transaction_timeout_ns`, up to
`report_retries` times, then given up.

Where that timeout runs: OpenSM hands every request to the kernel with its
timeout and retries (osm_vendor_send in libvendor/osm_vendor_ibumad.c calls
umad_send(..., timeout, max_retries)), and the kernel MAD layer
(drivers/infiniband/core/mad.c) starts the timeout only when the send completes
(ib_mad_complete_send_wr -> wait_for_response: "Timeout will be updated after send
completes"), matches a response to its send by TID as it is received, in kernel
context (ib_mad_complete_recv -> ib_find_send_mad / ib_mark_mad_done), however busy
OpenSM's own threads are, and resends on timeout (timeout_sends -> retry_send, the
same TID). So a Report queued behind thousands of others is not late, and a
ReportResp that reached the SA's port is not late while it waits for OpenSM to
read it. A runtime that queues MADs tells the SA so (`mad_departed`,
`response_arrived`; `ibmig.core.engine.MadAgent`): the timeout counts from the
Report's departure, and a ReportResp that arrived by the deadline cancels it; the
ReportResp is still handled (counted, `ReportAcked`) when the SA reads it. One
that arrived after the deadline leaves the resend the kernel made at the deadline
in place. Without those calls (a runtime that sends at once) the timeout counts
from the step that emitted the Report.

Path changes (the reason ibmig exists): for every alias GUID the SA remembers
the LID it last resolved to, and keeps it when the alias is deleted. When a
write the SA made (GUIDInfoRecord Set) makes an alias GUID resolve to another
LID than the one remembered, the VM behind it has moved: the SA emits one
`PathChangeDetected` and reports ibmig's path-change notice (trap 69,
`ibmig.wire.notice.path_change_notice`: GIDADDR prefix || vGUID, NewLID,
OldLID, the two port GUIDs, issued by the SM) to the matching subscribers.
Alias GUIDs present when the subnet comes up are remembered as they are.
`detect_alias_moves=False` is stock OpenSM: no tracking, no event, no notice.
A standby SM's SA that takes over loads the dead master's `dump_database()` with
`load_database()` (alias GUIDs, where each was last seen, subscriptions; OpenSM's
sa_db_file, `ibmig.core.sa.database` says why), so a move whose Delete the old
master saw and whose Set reaches the new one is still detected.

With `path_change_notice="trap64-65"` the move is told in the notices existing
consumers already understand instead: trap 65 (GID out of service) for the old
location, then trap 64 (GID in service) for the new, both with GIDADDR prefix ||
vGUID and issued by the SM like its port notices. They carry no LID: a consumer
asks for the GID's PathRecord (OFED's local SA cache does, local_sa.c). Every
subscriber of both gets two Reports per move. (OpenSM sends neither for alias
GUIDs: its doc/opensm-sriov.txt lists InformInfo as not updated for them.)

`path_change_notice="trap69-path"` is trap 69 whose DataDetails also carry the
PathRecord values of the path from each subscriber's port to the VM's new port
(SL, MTU, rate, PacketLifeTime: `ibmig.wire.notice.PathValues`), computed as a
PathRecord query from that port would be answered; each subscriber gets its own
copy. IBA traps 68/69 are meant to announce that paths changed; carrying the new
values spares the consumer its PathRecord query.

Targeted Reports (`targeted_reports=True`, strategy "targeted"): the SA keeps,
per destination GUID, the physical ports that resolved a PathRecord to it (the
requester port of every answered PathRecord query). A path-change notice then
goes only to the subscriptions whose LID belongs to such a port: with per-host
subscriptions, the dom0s of the hosts holding a peer of the VM (h_p of them)
instead of every subscribed host. This is the SA-side alternative to
GID-specific InformInfo (IBA Vol 1, 13.4.8.3: GID set to the subject; OpenSM
accepts such subscriptions): that would need one subscription per (host, remote
GID) held by dom0 and renewed on every path resolution, the SA's table growing
with the peers of every VM; the requester set costs the SA one set entry per
(GID, port) and needs nothing of the clients. A port that resolved the GID once
stays a requester (a path may be held long after it was asked for).
"""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, Final

from ibmig.core.engine import QP1, Datagram, EventLog
from ibmig.core.sa.database import SaDatabase
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
from ibmig.core.sa.matching import guid_of, inform_matches, make_gid, notice_subject
from ibmig.core.sa.multicast import MulticastGroups, mft_records
from ibmig.core.sa.multipath import multipath_records
from ibmig.core.sa.paths import (
    MAX_MTU,
    MIN_MTU,
    RATE_TENTHS_GBPS,
    PathError,
    PathInfo,
    hop_packet_life_time,
    rate_below,
    resolve_path,
)
from ibmig.core.sa.records import QUERIES, Query
from ibmig.core.sa.records import RequestError as _RequestError
from ibmig.core.sa.rmpp import RmppSender, RmppStatus, control_mad, segment_table
from ibmig.core.sa.services import ServiceRegistry
from ibmig.core.sm.db import NodeRecordData, PortRecordData, SubnetDb
from ibmig.core.sm.manager import PortsChanged, SubnetManager, SubnetUp
from ibmig.core.timers import Timers
from ibmig.errors import ConfigError, WireError
from ibmig.fabric.partitions import common_pkey, shares_partition
from ibmig.wire.fastrecord import fast_constructor
from ibmig.wire.mad import (
    BASE_VERSION,
    MAD_SIZE,
    RESPONSE_BIT,
    MadStatus,
    Method,
    MgmtClass,
    RmppFlags,
    RmppType,
    with_tid,
)
from ibmig.wire.notice import (
    GidDetails,
    Notice,
    NoticeType,
    PathValues,
    ProducerType,
    TrapNumber,
    gid_service_notice,
    path_change_notice,
    with_path_values,
)
from ibmig.wire.packet import QP1_QKEY
from ibmig.wire.sa import (
    SA_CLASS_VERSION,
    SA_DATA_SIZE,
    ClassCapability,
    ClassPortInfo,
    GUIDInfoRecord,
    GUIDInfoRecordComp,
    InformInfo,
    InformInfoRecord,
    InformInfoRecordComp,
    MCMemberRecord,
    MFTRecord,
    NodeRecord,
    NodeRecordComp,
    PathRecord,
    PathRecordComp,
    PortInfoRecord,
    PortInfoRecordComp,
    SaAttr,
    SaMad,
    SaRecord,
    SaStatus,
    Selector,
    ServiceRecord,
)
from ibmig.wire.smp_attrs import GUID_BLOCK_SIZE, GUIDInfo, NodeDescription, NodeInfo, PortInfo

"""The well-known Q_Key of QP1 (IBA Vol 1, 13.5.1)."""
DEFAULT_PKEY: Final = 0xFFFF
OPENIB_VENDOR_ID: Final = 0x001405
"""OUI in SM-assigned alias GUIDs (OpenSM OSM_VENDOR_ID_OPENIB)."""
RESP_TIME_UNIT_NS: Final = 4096  # 4.096 us: RespTimeValue / PacketLifeTime unit
# Built once per Report and ReportResp: a subscriber per host at data-centre scale.
_new_report_sent = fast_constructor(ReportSent)
_new_report_acked = fast_constructor(ReportAcked)
_REPORT: Final = int(Method.REPORT)
_REPORT_RESP: Final = int(Method.REPORT_RESP)
_SUBN_ADM: Final = int(MgmtClass.SUBN_ADM)
_RMPP_FLAGS: Final = 26  # RRespTime (5 bits) | RMPPFlags (3 bits) in the RMPP header
_TID_MASK: Final = (1 << 48) - 1  # ibsim rewrites the top 16 bits of request TIDs
_SUPPORTED_METHODS: Final = frozenset(
    {Method.GET, Method.SET, Method.GET_TABLE, Method.GET_MULTI, Method.DELETE}
)
_SILENT_METHODS: Final = frozenset({Method.SEND, Method.TRAP, Method.TRAP_REPRESS})
_TABLE_METHODS: Final = frozenset({Method.GET_TABLE, Method.GET_MULTI})
_SECURITY_TRAPS: Final = range(0x0100, 0x0104)
_CONTROL_RMPP: Final = frozenset({RmppType.ACK, RmppType.STOP, RmppType.ABORT})
# ClassPortInfo CapabilityMask bit 13 (OpenSM OSM_CAP_IS_PORT_INFO_CAPMASK_MATCH_SUPPORTED)
# and CapabilityMask2 bits (OpenSM OSM_CAP2_IS_*, osm_base.h): 5 alias GUIDs, 7 extended
# speeds, 10 CapabilityMask2 matching in PortInfoRecord, 13 2x link widths and 15 HDR
# lane speed (both in PathRecord rates, `ibmig.core.sa.paths`), 12 SendOnlyFullMember.
# Not set, as not served: CapabilityMask bits 8 (optional records: RandomFTRecord,
# ServiceAssociationRecord), 11 (reinit); CapabilityMask2 bits 3 (MulticastFDBTop) and
# 8 (multicast ServiceRecords), 6 (the full-PortInfoRecord Options bit), 1 (QoS).
_CAP_PORT_INFO_CAPMASK_MATCH: Final = 1 << 13
_CAP_MULTIPATH: Final = 1 << 10  # MultiPathRecord (OpenSM sets it without TraceRecord too)
_CAP_UD_MULTICAST: Final = 1 << 9  # MCMemberRecord (`ibmig.core.sa.multicast`)
_CAP2_SEND_ONLY_FULL_MEMBER: Final = 1 << 12  # JoinState SendOnlyFullMember
_CAP2_ALIAS_GUIDS: Final = 1 << 5
_CAP2_EXTENDED_SPEEDS: Final = 1 << 7
_CAP2_PORT_INFO_CAPMASK2_MATCH: Final = 1 << 10
_CAP2_LINK_WIDTH_2X: Final = 1 << 13
_CAP2_LINK_SPEED_HDR: Final = 1 << 15
_ENHANCED_COMPARE: Final = 1 << 31  # PortInfoRecord attribute modifier bit 31

# PortInfoRecord ComponentMask bit -> PortInfo field (OpenSM IB_PIR_COMPMASK_*,
# IBA Vol 1, 15.2.5.3: bit n + 3 is the n-th PortInfo component).
_PORT_INFO_COMPONENTS: Final[tuple[tuple[int, str], ...]] = (
    (3, "m_key"),
    (4, "gid_prefix"),
    (5, "lid"),
    (6, "master_sm_lid"),
    (7, "capability_mask"),
    (8, "diag_code"),
    (9, "m_key_lease_period"),
    (10, "local_port_num"),
    (11, "link_width_enabled"),
    (12, "link_width_supported"),
    (13, "link_width_active"),
    (14, "link_speed_supported"),
    (15, "port_state"),
    (16, "port_physical_state"),
    (17, "link_down_default_state"),
    (18, "m_key_protect_bits"),
    (20, "lmc"),
    (21, "link_speed_active"),
    (22, "link_speed_enabled"),
    (23, "neighbor_mtu"),
    (24, "master_sm_sl"),
    (25, "vl_cap"),
    (26, "init_type"),
    (27, "vl_high_limit"),
    (28, "vl_arbitration_high_cap"),
    (29, "vl_arbitration_low_cap"),
    (30, "init_type_reply"),
    (31, "mtu_cap"),
    (32, "vl_stall_count"),
    (33, "hoq_life"),
    (34, "operational_vls"),
    (35, "partition_enforcement_inbound"),
    (36, "partition_enforcement_outbound"),
    (37, "filter_raw_inbound"),
    (38, "filter_raw_outbound"),
    (39, "m_key_violations"),
    (40, "p_key_violations"),
    (41, "q_key_violations"),
    (42, "guid_cap"),
    (43, "client_reregister"),
    (45, "subnet_timeout"),
    (47, "resp_time_value"),
    (48, "local_phy_errors"),
    (49, "overrun_errors"),
    (50, "max_credit_hint"),
    (52, "link_round_trip_latency"),
    (53, "capability_mask2"),
    (54, "link_speed_ext_active"),
)
_BITWISE_COMPONENTS: Final = frozenset({"capability_mask", "capability_mask2"})
_PORT_INFO_RECORD_KEY: Final = int(PortInfoRecordComp.ENDPORT_LID | PortInfoRecordComp.LID)

# NodeRecord ComponentMask bit -> NodeInfo field compared as is.
_NODE_INFO_COMPONENTS: Final[tuple[tuple[int, str], ...]] = (
    (NodeRecordComp.BASE_VERSION, "base_version"),
    (NodeRecordComp.CLASS_VERSION, "class_version"),
    (NodeRecordComp.NODE_TYPE, "node_type"),
    (NodeRecordComp.NUM_PORTS, "num_ports"),
    (NodeRecordComp.SYSTEM_IMAGE_GUID, "system_image_guid"),
    (NodeRecordComp.NODE_GUID, "node_guid"),
    (NodeRecordComp.PARTITION_CAP, "partition_cap"),
    (NodeRecordComp.DEVICE_ID, "device_id"),
    (NodeRecordComp.REVISION, "revision"),
    (NodeRecordComp.VENDOR_ID, "vendor_id"),
)
_GUID_COMPONENTS: Final[tuple[int, ...]] = tuple(
    int(GUIDInfoRecordComp.GUID0) << i for i in range(GUID_BLOCK_SIZE)
)
_GUID_SET_KEY: Final = int(GUIDInfoRecordComp.LID | GUIDInfoRecordComp.BLOCK_NUM)


OPENSM_SUBNET_TIMEOUT: Final = 0x12
"""OpenSM's subnet_timeout default (osm_base.h OSM_DEFAULT_SUBNET_TIMEOUT), the
PacketLifeTime of its PathRecords."""
GUID_INFO_ANSWERS: Final = ("before_write", "after_write")
PATH_CHANGE_NOTICES: Final = ("trap69", "trap69-path", "trap64-65")


@dataclass(frozen=True, slots=True)
class SaConfig:
    """Subnet administrator settings; defaults follow OpenSM 3.3 where it has one."""

    rmpp: bool = True
    """Send GetTable responses as RMPP transfers; False: one MAD, as OpenSM on ibsim."""
    detect_alias_moves: bool = True
    """Raise path-change events and trap 69 when an alias GUID moves (False: stock OpenSM)."""
    answer_busy_before_up: bool = True
    """Before the first SUBNET UP answer with status busy (False: drop, as OpenSM)."""
    sa_key: int = 1
    """The SA's SM_Key (OpenSM sa_key default 1); 0 or this key are accepted."""
    transaction_timeout_ns: int = 200_000_000
    """OpenSM transaction_timeout: ClassPortInfo RespTimeValue, floor of Report timeouts."""
    report_retries: int = 3
    """Resends of an unanswered Report (OpenSM transaction_retries)."""
    rmpp_timeout_ns: int = 200_000_000
    """Wait for an RMPP ACK before sending the window again."""
    rmpp_retries: int = 3
    rmpp_initial_window: int = 1
    packet_life_time: int | None = OPENSM_SUBNET_TIMEOUT
    """PathRecord PacketLifeTime of every path but a loopback one: OpenSM's
    subnet_timeout, 0x12 (module docstring); None: hop based."""
    hop_packet_life_time: int = 16
    """Per-link lifetime exponent of the hop-based PacketLifeTime."""
    guid_info_timeout_ns: int | None = None
    """Give up on a GUIDInfo write after this; None: the SM's whole retry budget."""
    guid_info_answer: str = "before_write"
    """When a GUIDInfoRecord Set/Delete that changes the port is answered:
    "before_write" (OpenSM) or "after_write" (module docstring)."""
    sm_assigned_guid: int = 0
    """Byte 3 of SM-assigned alias GUIDs (OpenSM sm_assigned_guid)."""
    drop_event_subscriptions: bool = False
    """Drop a port's subscriptions when it leaves service (OpenSM option, default off)."""
    path_change_notice: str = "trap69"
    """How an alias move is told: "trap69" (ibmig's DataDetails), "trap69-path"
    (those plus the new path's values) or "trap64-65"."""
    targeted_reports: bool = False
    """Path-change notices go only to the ports that resolved a PathRecord to the
    moved GID (module docstring)."""

    def __post_init__(self) -> None:
        for name in (
            "transaction_timeout_ns",
            "report_retries",
            "rmpp_timeout_ns",
            "rmpp_retries",
            "hop_packet_life_time",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name} must be a non-negative integer", f"sa.{name}")
        if self.rmpp_initial_window < 1:
            raise ConfigError("rmpp_initial_window must be at least 1", "sa.rmpp_initial_window")
        if self.packet_life_time is not None and not 0 <= self.packet_life_time <= 0x3F:
            raise ConfigError("packet_life_time must fit 6 bits", "sa.packet_life_time")
        if self.guid_info_answer not in GUID_INFO_ANSWERS:
            raise ConfigError(
                f"guid_info_answer must be one of {', '.join(GUID_INFO_ANSWERS)}, "
                f"not {self.guid_info_answer!r}",
                "sa.guid_info_answer",
            )
        if not 0 <= self.sm_assigned_guid <= 0xFF:
            raise ConfigError("sm_assigned_guid must be one byte", "sa.sm_assigned_guid")
        if self.path_change_notice not in PATH_CHANGE_NOTICES:
            raise ConfigError(
                f"must be one of {', '.join(PATH_CHANGE_NOTICES)}, got {self.path_change_notice!r}",
                "sa.path_change_notice",
            )


# --- internal state records -------------------------------------------------------------


class _ReportCopies:
    """What every copy of one notice's Report shares: its encoded MAD (copies differ
    only in their TID) and the SA's addressing when it was sent. A resend rebuilds
    its datagram from this and its subscription rather than keeping it: at data-centre
    scale a million Reports may wait for their ReportResps, and a datagram with its
    256-byte payload is some 450 bytes each."""

    __slots__ = ("before_tid", "port_num", "after_tid", "sm_gid", "sm_lid", "trap_number")

    def __init__(
        self, report: bytes, trap_number: int, port_num: int, sm_lid: int, sm_gid: bytes
    ) -> None:
        # The bytes either side of the TransactionID (IBA Vol 1, 13.4.3: bytes 8-15
        # of the common MAD header): a copy is these with its TID between, as
        # `with_tid` stamps one, without checking again per copy what was built here.
        stamped = with_tid(report, 0)
        self.before_tid = stamped[:8]
        self.after_tid = stamped[16:]
        self.trap_number = trap_number
        self.port_num = port_num
        self.sm_lid = sm_lid
        self.sm_gid = sm_gid

    def datagram(self, subscription: Subscription, tid: int) -> Datagram:
        """The copy of the Report with `tid` (64 bits), addressed to `subscription`."""
        report_gid = subscription.report_gid
        return Datagram(
            self.before_tid + tid.to_bytes(8, "big") + self.after_tid,
            self.port_num,
            self.sm_lid,
            subscription.lid,
            QP1,
            subscription.qpn,
            0,
            DEFAULT_PKEY,
            QP1_QKEY,
            self.sm_gid if report_gid is not None else None,
            report_gid,
        )


class _PendingReport:
    """A Report waiting for its ReportResp: slotted and small, as there may be a
    million (`_ReportCopies`)."""

    __slots__ = (
        "arrived",
        "attempt",
        "copies",
        "deadline_ns",
        "disarmed",
        "subscription",
        "timeout_ns",
    )

    def __init__(
        self,
        subscription: Subscription,
        copies: _ReportCopies,
        timeout_ns: int,
        deadline_ns: int,
    ) -> None:
        self.subscription = subscription
        self.copies = copies
        self.timeout_ns = timeout_ns
        self.deadline_ns = deadline_ns
        """When the kernel resends (module docstring): the timeout from the send's
        departure. The armed timer may be earlier (from the emitting step); it then
        moves here when it fires."""
        self.arrived = False
        """A ReportResp reached the SA's port (it may still wait to be read)."""
        self.disarmed = False
        """Its ReportResp reached the port by the deadline, and its timer was
        cancelled then: none is armed for it again (`response_arrived`)."""
        self.attempt = 0

    @property
    def trap_number(self) -> int:
        return self.copies.trap_number


class _Transfer:
    __slots__ = ("attribute", "method", "reply", "sender", "tid")

    def __init__(
        self,
        sender: RmppSender,
        reply: Datagram,
        attribute: int,
        tid: int,
        method: int = Method.GET_TABLE_RESP,
    ) -> None:
        self.sender = sender
        self.reply = reply
        self.attribute = attribute
        self.tid = tid
        self.method = method  # GetTableResp, or GetMultiResp


class _GuidWrite:
    __slots__ = ("block", "datagram", "guids", "mad", "port_guid", "record")

    def __init__(
        self,
        mad: SaMad,
        datagram: Datagram,
        record: GUIDInfoRecord,
        port_guid: int,
        guids: tuple[int, ...],
    ) -> None:
        self.mad = mad
        self.datagram = datagram
        self.record = record
        self.port_guid = port_guid
        self.block = record.block_num
        self.guids = guids


_Handler = Callable[[SaMad, Datagram, PortRecordData, int], None]


class _Timeout(Enum):
    """What an SA timer waits for; a timer key is (`_Timeout`, identifier), but for
    a Report's ReportResp, whose key is the Report's TID alone: there is one per
    subscriber and notice, and an int is hashed without a call (an Enum member's
    hash is a Python method)."""

    RMPP = "rmpp"
    """An RMPP transfer's ACK; identifier: (requester LID, TID)."""
    GUID_WRITE = "guid_write"
    """The SM's write of a GUIDInfo block; identifier: the write's token."""


_TimerKey = int | tuple[_Timeout, Any]


class SubnetAdministrator(EventLog[Any]):
    """The SA engine (see the module docstring)."""

    def __init__(
        self, sm: SubnetManager, *, rng: random.Random, config: SaConfig | None = None
    ) -> None:
        self.sm = sm
        self.config = config or SaConfig()
        self.rng = rng
        self._init_event_log(True)
        self.mad_counts: Counter[tuple[int, int]] = Counter()
        """MADs sent, by (attribute ID, method), every segment and resend included."""
        self._counters: Counter[str] = Counter()
        # A ReportResp comes from every subscriber per notice: those received and
        # those matched to a Report are counted in plain ints, added to `counters`
        # when it is read.
        self._report_resps = 0
        self._reports_acked = 0
        self._outbox: list[Datagram] = []
        # What matters is whether the SM has ever brought the subnet up, not whether
        # this SA saw it: a restarted SA that waited for the next SUBNET UP would
        # answer busy for as long as lost SMPs keep every sweep incomplete.
        self._ever_up = sm.ever_up
        # Oldest first, keyed as OpenSM tells subscriptions apart (match_inf_rec);
        # the Enums each subscriber GID uses.
        self._subscriptions: dict[tuple[Any, ...], Subscription] = {}
        self.path_requesters: dict[int, set[int]] = {}
        """Destination GUID -> port GUIDs that resolved a PathRecord to it
        (`targeted_reports`; module docstring)."""
        self._enums: dict[bytes, set[int]] = {}
        # The subscriptions' InformInfos, one object per value: a data centre's hosts
        # subscribe alike, and a notice is matched once per run of subscriptions
        # sharing one (`_report_notice`). As many as values ever subscribed with.
        self._inform_infos: dict[InformInfo, InformInfo] = {}
        self._reports: dict[int, _PendingReport] = {}
        self._report_timeouts: dict[int, int] = {}  # `_report_timeout_ns`
        self._unarmed: list[int] = []
        """TIDs of Reports emitted whose timers are armed when the runtime next asks
        for the deadline (`_arm_reports`): by then it has said when they leave."""
        self._transfers: dict[tuple[int, int], _Transfer] = {}
        self._guid_writes: dict[int, _GuidWrite] = {}
        self._next_write = 0
        self._written_blocks = _BlocksInFlight()
        self.unconfirmed_guid_writes: dict[tuple[int, int], tuple[int, ...]] = {}
        """(port GUID, block) -> the block the SA's table holds whose write failed for
        good under "before_write" (`_guid_info_written`): the port may not hold it."""
        self._assigned: dict[tuple[int, int], int] = {}  # (port GUID, index) -> GUID
        self._assigned_count = 0
        self._timers: Timers[_TimerKey] = Timers()
        self._timeouts: dict[_Timeout, Callable[[Any, int], None]] = {
            _Timeout.RMPP: self._transfer_timeout,
            _Timeout.GUID_WRITE: self._guid_write_timeout,
        }
        self._tid = rng.getrandbits(32)
        self._handlers: dict[tuple[int, int], _Handler] = {
            (SaAttr.CLASS_PORT_INFO, Method.GET): self._class_port_info,
            (SaAttr.PATH_RECORD, Method.GET): self._path_record,
            (SaAttr.PATH_RECORD, Method.GET_TABLE): self._path_record,
            (SaAttr.NODE_RECORD, Method.GET): self._node_record,
            (SaAttr.NODE_RECORD, Method.GET_TABLE): self._node_record,
            (SaAttr.PORT_INFO_RECORD, Method.GET): self._port_info_record,
            (SaAttr.PORT_INFO_RECORD, Method.GET_TABLE): self._port_info_record,
            (SaAttr.GUID_INFO_RECORD, Method.GET): self._guid_info_get,
            (SaAttr.GUID_INFO_RECORD, Method.GET_TABLE): self._guid_info_get,
            (SaAttr.GUID_INFO_RECORD, Method.SET): self._guid_info_write,
            (SaAttr.GUID_INFO_RECORD, Method.DELETE): self._guid_info_write,
            (SaAttr.INFORM_INFO, Method.SET): self._inform_info,
            (SaAttr.INFORM_INFO_RECORD, Method.GET): self._inform_info_record,
            (SaAttr.INFORM_INFO_RECORD, Method.GET_TABLE): self._inform_info_record,
        }
        # The read-only table records (`ibmig.core.sa.records`): Get and GetTable.
        for attribute, (query, offset) in QUERIES.items():
            handler = self._query_handler(query, offset)
            self._handlers[(attribute, Method.GET)] = handler
            self._handlers[(attribute, Method.GET_TABLE)] = handler
        self._handlers[(SaAttr.MULTI_PATH_RECORD, Method.GET_MULTI)] = self._multipath_record
        self.services = ServiceRegistry()
        """Registered ServiceRecords (`ibmig.core.sa.services`)."""
        for method in (Method.GET, Method.GET_TABLE, Method.SET, Method.DELETE):
            self._handlers[(SaAttr.SERVICE_RECORD, method)] = self._service_record
        self.multicast = MulticastGroups(sm.db.subnet_prefix)
        """Multicast groups (`ibmig.core.sa.multicast`), the IPoIB broadcast group first."""
        for method in (Method.GET, Method.GET_TABLE, Method.SET, Method.DELETE):
            self._handlers[(SaAttr.MC_MEMBER_RECORD, method)] = self._mc_member_record
        for method in (Method.GET, Method.GET_TABLE):
            self._handlers[(SaAttr.MULTICAST_FORWARDING_TABLE_RECORD, method)] = (
                self._query_handler(mft_records, MFTRecord.ATTRIBUTE_OFFSET)
            )
        sm.listeners.append(self)
        if self._ever_up:
            self._remember_aliases()

    @property
    def counters(self) -> Counter[str]:
        """What happened, by name: MADs received, Reports sent and acknowledged..."""
        counters = self._counters
        if self._report_resps:
            counters["received"] += self._report_resps
            self._report_resps = 0
        if self._reports_acked:
            counters["reports_acked"] += self._reports_acked
            self._reports_acked = 0
        return counters

    # --- engine contract ------------------------------------------------------------

    def packets_to_send(self) -> list[Datagram]:
        out, self._outbox = self._outbox, []
        return out

    def get_timer(self) -> int | None:
        if self._unarmed:
            self._arm_reports()
        return self._timers.next_deadline()

    def handle_timer(self, now_ns: int) -> None:
        if self._unarmed:
            self._arm_reports()
        timers = self._timers
        timeouts = self._timeouts
        while (key := timers.pop_due(now_ns)) is not None:
            if isinstance(key, int):
                self._report_timeout(key, now_ns)
            else:
                kind, identifier = key
                timeouts[kind](identifier, now_ns)

    def receive(self, datagram: Datagram, now_ns: int) -> None:
        payload = datagram.payload
        if (
            len(payload) == MAD_SIZE
            and payload[3] == _REPORT_RESP
            and payload[0] == BASE_VERSION
            and payload[1] == _SUBN_ADM
            and not payload[_RMPP_FLAGS] & RmppFlags.ACTIVE
        ):
            # A subscriber acknowledging a Report: per notice there is one per
            # subscriber, and the TID is all the SA needs of it (`peek_tid`, whose
            # length check the test above has made). Counted in `counters` later.
            self._report_resps += 1
            self._on_report_resp(int.from_bytes(payload[8:16], "big"), now_ns)
            return
        self._counters["received"] += 1
        try:
            mad = SaMad.unpack(payload)
        except WireError:
            self.counters["malformed"] += 1
            return
        header = mad.header
        if header.base_version != BASE_VERSION:
            self.counters["malformed"] += 1
            return
        rmpp = mad.rmpp
        if rmpp.flags & RmppFlags.ACTIVE and rmpp.rmpp_type in _CONTROL_RMPP:
            self._on_rmpp_control(mad, datagram, now_ns)
            return
        method = header.method
        if method & RESPONSE_BIT:
            if method == Method.REPORT_RESP:
                self._on_report_resp(mad.tid, now_ns)
            else:
                self.counters["responses_ignored"] += 1
            return
        if mad.sm_key and mad.sm_key != self.config.sa_key:
            self.counters["bad_sm_key"] += 1
            return
        if method in _SILENT_METHODS:
            self.counters["unsupported_method"] += 1
            return
        if header.class_version != SA_CLASS_VERSION:
            self._error(mad, datagram, MadStatus.BAD_VERSION, now_ns)
            return
        if not self._ever_up:
            if self.config.answer_busy_before_up:
                self.counters["busy"] += 1
                self._error(mad, datagram, MadStatus.BUSY, now_ns)
            else:
                self.counters["dropped_before_up"] += 1
            return
        requester = self.db.port_record(datagram.slid)
        if requester is None:
            self.counters["unknown_requester"] += 1
            return
        if rmpp.flags & RmppFlags.ACTIVE and rmpp.rmpp_type == RmppType.DATA:
            whole = RmppFlags.FIRST | RmppFlags.LAST
            if rmpp.flags & whole != whole:
                self.counters["multi_segment_request"] += 1
                return
        handler = self._handlers.get((header.attribute_id, method))
        if handler is None:
            if method not in _SUPPORTED_METHODS:
                self._error(mad, datagram, MadStatus.METHOD_NOT_SUPPORTED, now_ns)
            else:
                self._error(mad, datagram, MadStatus.METHOD_ATTR_NOT_SUPPORTED, now_ns)
            return
        try:
            handler(mad, datagram, requester, now_ns)
        except _RequestError as error:
            self._error(mad, datagram, error.status, now_ns, error.data)

    # --- SM listener ----------------------------------------------------------------

    def ports_changed(self, change: PortsChanged, now_ns: int) -> None:
        """Trap 64 for every port that came into service, 65 for every one that left."""
        for number, guids in (
            (TrapNumber.GID_IN_SERVICE, change.in_service),
            (TrapNumber.GID_OUT_OF_SERVICE, change.out_of_service),
        ):
            for guid in guids:
                self._report_notice(self._sm_notice(number, guid), now_ns)
        if self.config.drop_event_subscriptions:
            gone = set(change.out_of_service)
            for key, subscription in list(self._subscriptions.items()):
                if guid_of(subscription.subscriber_gid) in gone:
                    self._drop_subscription(key)
                    self._emit(SubscriptionRemoved(subscription, now_ns, "port_out_of_service"))

    @property
    def guid_info_writes_in_flight(self) -> int:
        """GUIDInfo blocks the SM is still writing for GUIDInfoRecord Sets and Deletes
        (answered already under OpenSM's order: `guid_info_answer`); not those whose
        write failed for good (`unconfirmed_guid_writes`)."""
        return len(self._written_blocks) - len(self.unconfirmed_guid_writes)

    def subnet_up(self, event: SubnetUp, now_ns: int) -> None:
        self._ever_up = True
        self._remember_aliases()

    def trap_received(self, notice: Notice, now_ns: int) -> None:
        """Forward a trap the SM received to the subscribers, IssuerGID filled in."""
        if not any(notice.issuer_gid):
            record = self.db.port_record(notice.issuer_lid)
            if record is None:
                self.counters["trap_from_unknown_lid"] += 1
                return
            notice = replace(notice, issuer_gid=self._gid(record.port_guid))
        self._report_notice(notice, now_ns)

    # --- API ------------------------------------------------------------------------

    @property
    def db(self) -> SubnetDb:
        return self.sm.db

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        """Current subscriptions, newest first (the order notices are matched in)."""
        return tuple(reversed(self._subscriptions.values()))

    @property
    def outstanding_reports(self) -> int:
        return len(self._reports)

    def report_notice(self, notice: Notice, now_ns: int) -> int:
        """Report any notice to the matching subscribers; how many matched."""
        return self._report_notice(notice, now_ns)

    # --- plumbing -------------------------------------------------------------------

    def _gid(self, guid: int) -> bytes:
        return make_gid(self.db.subnet_prefix, guid)

    def _next_tid(self) -> int:
        self._tid = (self._tid + 1) & _TID_MASK or 1
        return self._tid

    def _arm(self, kind: _Timeout, identifier: Any, deadline_ns: int) -> None:
        key = (kind, identifier)
        # Re-arming at the deadline already armed keeps its place among equal
        # deadlines (an RMPP ACK that does not move the window's timer).
        if self._timers.deadline(key) != deadline_ns:
            self._timers.arm(key, deadline_ns)

    def _send(self, datagram: Datagram, attribute: int, method: int) -> None:
        self._outbox.append(datagram)
        self.mad_counts[(attribute, method)] += 1

    def _reply_to(self, datagram: Datagram, payload: bytes) -> Datagram:
        """Addressing of a response: back to the requester's LID and QP, with a GRH
        when the request had one."""
        grh = datagram.sgid is not None
        return Datagram(
            payload,
            self.sm.port_num,
            self.db.sm_lid,
            datagram.slid,
            QP1,
            datagram.sqp,
            sl=datagram.sl,
            pkey=datagram.pkey,
            qkey=QP1_QKEY,
            sgid=(datagram.dgid or self._gid(self.db.sm_port_guid)) if grh else None,
            dgid=datagram.sgid if grh else None,
        )

    @staticmethod
    def _response_method(method: int) -> int:
        if method == Method.SET:
            return Method.GET_RESP
        return method | RESPONSE_BIT

    def _error(
        self, mad: SaMad, datagram: Datagram, status: int, now_ns: int, data: bytes | None = None
    ) -> None:
        """An error answer as OpenSM's osm_sa_send_error: the request with the
        response method and status, SM_Key 0, AttributeOffset 0 for a table."""
        header = mad.header
        method = self._response_method(header.method)
        response = SaMad(
            replace(header, method=method, status=status),
            mad.rmpp,
            0,
            0 if header.method in _TABLE_METHODS else mad.attribute_offset,
            mad.component_mask,
            mad.data if data is None else data.ljust(SA_DATA_SIZE, b"\0"),
        )
        self._send(self._reply_to(datagram, response.pack()), header.attribute_id, method)
        self.counters["errors"] += 1
        self._emit(QueryAnswered(header.attribute_id, header.method, status, 0, now_ns))

    def _respond(
        self,
        mad: SaMad,
        datagram: Datagram,
        records: Sequence[SaRecord],
        attribute_offset: int,
        now_ns: int,
    ) -> None:
        """Answer with records, as OpenSM's osm_sa_respond."""
        header = mad.header
        method = header.method
        if method == Method.GET and len(records) > 1:
            raise _RequestError(SaStatus.ERR_TOO_MANY_RECORDS)
        if method == Method.GET and not records:
            raise _RequestError(SaStatus.ERR_NO_RECORDS)
        if method in _TABLE_METHODS:
            self._respond_table(mad, datagram, records, attribute_offset, now_ns)
            return
        response_method = self._response_method(method)
        body = b"".join(record.pack() for record in records)
        response = SaMad(
            replace(header, method=response_method, status=0),
            mad.rmpp,
            0,
            attribute_offset if records else 0,
            mad.component_mask,
            body.ljust(SA_DATA_SIZE, b"\0"),
        )
        self._send(self._reply_to(datagram, response.pack()), header.attribute_id, response_method)
        self._emit(QueryAnswered(header.attribute_id, method, 0, len(records), now_ns))

    def _respond_table(
        self,
        mad: SaMad,
        datagram: Datagram,
        records: Sequence[SaRecord],
        attribute_offset: int,
        now_ns: int,
    ) -> None:
        header = mad.header
        attribute = header.attribute_id
        stride = attribute_offset * 8
        resp_method = int(Method.GET_TABLE_RESP)
        if header.method == Method.GET_MULTI:
            # GetMultiResp carrying PathRecords (o15-0.2.7), as OpenSM answers it.
            resp_method = int(Method.GET_MULTI_RESP)
            attribute = records[0].ATTRIBUTE_ID if records else int(SaAttr.PATH_RECORD)
            header = replace(header, attribute_id=attribute)
        if not self.config.rmpp:
            fits = SA_DATA_SIZE // stride if stride else 0
            if len(records) > fits:
                self.counters["records_trimmed"] += len(records) - fits
                records = records[:fits]
            response = SaMad.from_records(
                records,
                method=resp_method,
                tid=header.tid,
                attribute_id=attribute,
                component_mask=mad.component_mask,
                attribute_modifier=header.attribute_modifier,
            )
            self._send(self._reply_to(datagram, response.pack()), attribute, resp_method)
            self._emit(QueryAnswered(attribute, header.method, 0, len(records), now_ns))
            return
        table = b"".join(record.pack().ljust(stride, b"\0") for record in records)
        resp_header = replace(header, method=resp_method, status=0)
        segments = segment_table(
            resp_header,
            table,
            attribute_offset=attribute_offset if records else 0,
            component_mask=mad.component_mask,
        )
        sender = RmppSender(
            [segment.pack() for segment in segments],
            initial_window=self.config.rmpp_initial_window,
            timeout_ns=self.config.rmpp_timeout_ns,
            max_retries=self.config.rmpp_retries,
        )
        key = (datagram.slid, header.tid & _TID_MASK)
        if key in self._transfers:
            self.counters["rmpp_restarted"] += 1
        reply = self._reply_to(datagram, b"")
        transfer = _Transfer(sender, reply, attribute, header.tid, resp_method)
        self._transfers[key] = transfer
        self._emit(QueryAnswered(attribute, header.method, 0, len(records), now_ns))
        self._send_segments(transfer, sender.start(now_ns))
        self._arm(_Timeout.RMPP, key, sender.deadline_ns)

    def _send_segments(self, transfer: _Transfer, numbers: list[int]) -> None:
        segments = transfer.sender.segments
        for number in numbers:
            self._send(
                transfer.reply._replace(payload=segments[number - 1]),
                transfer.attribute,
                transfer.method,
            )
        self.counters["rmpp_segments"] += len(numbers)

    # --- RMPP -----------------------------------------------------------------------

    def _on_rmpp_control(self, mad: SaMad, datagram: Datagram, now_ns: int) -> None:
        key = (datagram.slid, mad.tid & _TID_MASK)
        transfer = self._transfers.get(key)
        if transfer is None:
            self.counters["rmpp_unmatched"] += 1
            return
        rmpp = mad.rmpp
        sender = transfer.sender
        if rmpp.rmpp_type != RmppType.ACK:  # STOP or ABORT from the receiver
            self._end_transfer(key)
            self._emit(
                RmppTransferDone(
                    key[0], transfer.tid, sender.count, False, now_ns, rmpp.rmpp_status
                )
            )
            return
        outcome = sender.on_ack(rmpp.segment_number, rmpp.data2, now_ns)
        if outcome.abort_status is not None:
            self._abort_transfer(key, transfer, outcome.abort_status, now_ns)
        elif outcome.complete:
            self._end_transfer(key)
            self._emit(RmppTransferDone(key[0], transfer.tid, sender.count, True, now_ns))
        else:
            if outcome.send:
                self._send_segments(transfer, outcome.send)
            self._arm(_Timeout.RMPP, key, sender.deadline_ns)

    def _end_transfer(self, key: tuple[int, int]) -> None:
        del self._transfers[key]
        self._timers.cancel((_Timeout.RMPP, key))

    def _abort_transfer(
        self, key: tuple[int, int], transfer: _Transfer, status: int, now_ns: int
    ) -> None:
        self._end_transfer(key)
        first = SaMad.unpack(transfer.sender.segments[0])
        abort = control_mad(first, RmppType.ABORT, status)
        self._send(
            transfer.reply._replace(payload=abort.pack()), transfer.attribute, transfer.method
        )
        self.counters["rmpp_aborted"] += 1
        self._emit(
            RmppTransferDone(key[0], transfer.tid, transfer.sender.count, False, now_ns, status)
        )

    def _transfer_timeout(self, key: tuple[int, int], now_ns: int) -> None:
        transfer = self._transfers[key]
        numbers = transfer.sender.on_timeout(now_ns)
        if numbers is None:
            self._abort_transfer(key, transfer, RmppStatus.TOO_MANY_RETRIES, now_ns)
            return
        self.counters["rmpp_retransmissions"] += 1
        self._send_segments(transfer, numbers)
        self._arm(_Timeout.RMPP, key, transfer.sender.deadline_ns)

    def _query_handler(self, query: Query, attribute_offset: int) -> _Handler:
        def handler(mad: SaMad, datagram: Datagram, requester: PortRecordData, now: int) -> None:
            self._respond(mad, datagram, query(self.sm, mad), attribute_offset, now)

        return handler

    def _multipath_record(
        self, mad: SaMad, datagram: Datagram, requester: PortRecordData, now_ns: int
    ) -> None:
        records = multipath_records(mad, self.db, self._path_record_for, self.path_lid)
        self._respond(mad, datagram, records, PathRecord.ATTRIBUTE_OFFSET, now_ns)

    def _service_record(
        self, mad: SaMad, datagram: Datagram, requester: PortRecordData, now_ns: int
    ) -> None:
        records = self.services.handle(mad, self.db, now_ns)
        self._respond(mad, datagram, records, ServiceRecord.ATTRIBUTE_OFFSET, now_ns)

    def _mc_member_record(
        self, mad: SaMad, datagram: Datagram, requester: PortRecordData, now_ns: int
    ) -> None:
        records = self.multicast.handle(mad, self.db, requester, self._alias_owner)
        for mlid in sorted(self.multicast.take_changed()):
            self.sm.set_multicast_members(mlid, self.multicast.member_ports(mlid), now_ns)
        self._respond(mad, datagram, records, MCMemberRecord.ATTRIBUTE_OFFSET, now_ns)

    # --- ClassPortInfo --------------------------------------------------------------

    def class_port_info(self) -> ClassPortInfo:
        """What the SA answers to Get(ClassPortInfo)."""
        return ClassPortInfo(
            base_version=BASE_VERSION,
            class_version=SA_CLASS_VERSION,
            capability_mask=int(
                ClassCapability.IS_TRAP_SUPPORTED
                | ClassCapability.IS_GET_SET_SUPPORTED
                | _CAP_MULTIPATH
                | _CAP_UD_MULTICAST
                | _CAP_PORT_INFO_CAPMASK_MATCH
            ),
            capability_mask2=_CAP2_ALIAS_GUIDS
            | _CAP2_SEND_ONLY_FULL_MEMBER
            | _CAP2_EXTENDED_SPEEDS
            | _CAP2_PORT_INFO_CAPMASK2_MATCH
            | _CAP2_LINK_WIDTH_2X
            | _CAP2_LINK_SPEED_HDR,
            resp_time_value=resp_time_value(self.config.transaction_timeout_ns),
            redirect_qp=QP1,
            redirect_qkey=QP1_QKEY,
            trap_qkey=QP1_QKEY,
        )

    def _class_port_info(
        self, mad: SaMad, datagram: Datagram, requester: PortRecordData, now_ns: int
    ) -> None:
        self._respond(mad, datagram, (self.class_port_info(),), mad.attribute_offset, now_ns)

    # --- PathRecord -----------------------------------------------------------------

    def _path_record(
        self, mad: SaMad, datagram: Datagram, requester: PortRecordData, now_ns: int
    ) -> None:
        query = PathRecord.unpack(mad.data)
        mask = mad.component_mask
        both = PathRecordComp.MTU_SELECTOR | PathRecordComp.MTU
        if mask & both == both and not MIN_MTU <= query.mtu <= MAX_MTU:
            raise _RequestError(SaStatus.ERR_REQ_INVALID)
        both = PathRecordComp.RATE_SELECTOR | PathRecordComp.RATE
        if mask & both == both and query.rate not in RATE_TENTHS_GBPS:
            raise _RequestError(SaStatus.ERR_REQ_INVALID)
        service = mask & PathRecordComp.SERVICE_ID
        if service and service != PathRecordComp.SERVICE_ID:
            raise _RequestError(SaStatus.ERR_REQ_INSUFFICIENT_COMPONENTS)
        records = self._path_records(query, mask, mad.header.method == Method.GET)
        if self.config.targeted_reports:
            for record in records:
                requesters = self.path_requesters.setdefault(guid_of(record.dgid), set())
                requesters.add(requester.port_guid)
        self._respond(mad, datagram, records, PathRecord.ATTRIBUTE_OFFSET, now_ns)

    def path_lid(self, guid: int) -> int | None:
        """The LID PathRecords to a port or alias GUID name now (None: no record): under
        `guid_info_answer` "before_write" from the SA's table (OpenSM's alias table
        changes when a GUIDInfoRecord Set or Delete is accepted, before the port is
        written: a trap 64 for a moved vGUID is followed by PathRecord queries that
        must find it at its new port), under "after_write" from the ports as
        written."""
        if self.config.guid_info_answer == "after_write" or not len(self._written_blocks):
            return self.db.lid_of_guid(guid)
        holder = self._alias_holder(guid)
        if holder is None:
            return None
        vf_lid = self.db.vf_lid.get(guid)  # vSwitch: the VM's own LID
        return vf_lid if vf_lid is not None else self.db.port_lid.get(holder[0])

    def _end_guid(self, gid: bytes) -> int | None:
        """The GUID of an SGID/DGID if it names a port or alias of this subnet."""
        link_local = gid[0] == 0xFE and gid[1] & 0xC0 == 0x80
        if not link_local and int.from_bytes(gid[:8], "big") != self.db.subnet_prefix:
            return None
        guid = guid_of(gid)
        return guid if self.path_lid(guid) is not None else None

    def _known_guids(self) -> list[tuple[int, int]]:
        """(GUID, LID) of every port GUID and alias GUID with a LID, in GUID order
        (aliases as `path_lid` finds them)."""
        db = self.db
        guids = dict(db.port_lid)
        in_flight = self.config.guid_info_answer == "before_write" and len(self._written_blocks)
        aliases = set(db.alias_owner)
        if in_flight:
            aliases.update(self._written_blocks.guids())
        for alias in aliases:
            if alias in guids:
                continue
            lid = self.path_lid(alias) if in_flight else db.lid_of_guid(alias)
            if lid is not None:
                guids[alias] = lid
        return sorted(guids.items())

    def _path_records(self, query: PathRecord, mask: int, get: bool) -> list[PathRecord]:
        db = self.db
        if mask & PathRecordComp.DGID and query.dgid[0] == 0xFF:
            return []  # a multicast destination: the SA knows no multicast group
        src_guid = dst_guid = None
        if mask & PathRecordComp.SGID:
            src_guid = self._end_guid(query.sgid)
            if src_guid is None:
                return []
        if mask & PathRecordComp.SLID and query.slid not in db.lid_owner:
            return []
        if mask & PathRecordComp.DGID:
            dst_guid = self._end_guid(query.dgid)
            if dst_guid is None:
                return []
        if mask & PathRecordComp.DLID and query.dlid not in db.lid_owner:
            return []
        src_lid = query.slid if mask & PathRecordComp.SLID else None
        dst_lid = query.dlid if mask & PathRecordComp.DLID else None
        if src_guid is not None and src_lid is not None and self.path_lid(src_guid) != src_lid:
            raise _RequestError(SaStatus.ERR_REQ_INVALID)
        if dst_guid is not None and dst_lid is not None and self.path_lid(dst_guid) != dst_lid:
            raise _RequestError(SaStatus.ERR_REQ_INVALID)
        if mask & PathRecordComp.NUMB_PATH and not get and query.numb_path == 0:
            return []
        known: list[tuple[int, int]] | None = None

        def candidates(guid: int | None, lid: int | None) -> list[tuple[int, int]]:
            nonlocal known
            if guid is not None:
                found = self.path_lid(guid)
                assert found is not None
                return [(guid, found)]
            if known is None:
                known = self._known_guids()
            if lid is not None:
                return [item for item in known if item[1] == lid]
            return known

        sources = candidates(src_guid, src_lid)
        destinations = candidates(dst_guid, dst_lid)
        if src_guid is None and src_lid is None and dst_guid is None and dst_lid is None:
            pairs = ((s, d) for d in destinations for s in sources)  # OpenSM's world order
        else:
            pairs = ((s, d) for s in sources for d in destinations)
        records: list[PathRecord] = []
        for (sguid, slid), (dguid, dlid) in pairs:
            record = self._path_record_for(query, mask, sguid, slid, dguid, dlid)
            if record is not None:
                records.append(record)
                if get:
                    break
        return records

    def _path_record_for(
        self, query: PathRecord, mask: int, sguid: int, slid: int, dguid: int, dlid: int
    ) -> PathRecord | None:
        db = self.db
        try:
            forward = resolve_path(db, slid, dlid)
        except PathError:
            return None
        params = self._path_params(query, mask, forward, sguid, dguid)
        if params is None:
            return None
        try:
            backward = resolve_path(db, dlid, slid)
            reversible = self._path_params(query, mask, backward, dguid, sguid) is not None
        except PathError:
            reversible = False
        if mask & PathRecordComp.REVERSIBLE and query.reversible and not reversible:
            return None
        mtu, rate, plt, pkey, sl = params
        return PathRecord(
            dgid=query.dgid if mask & PathRecordComp.DGID else self._gid(dguid),
            sgid=query.sgid if mask & PathRecordComp.SGID else self._gid(sguid),
            dlid=dlid,
            slid=slid,
            reversible=reversible,
            numb_path=0,
            pkey=pkey,
            sl=sl,
            mtu_selector=Selector.EXACTLY,
            mtu=mtu,
            rate_selector=Selector.EXACTLY,
            rate=rate,
            packet_life_time_selector=Selector.EXACTLY,
            packet_life_time=plt,
        )

    def _path_params(
        self, query: PathRecord, mask: int, path: PathInfo, sguid: int, dguid: int
    ) -> tuple[int, int, int, int, int] | None:
        """MTU, rate, PacketLifeTime, P_Key and SL of a path under the query's
        constraints (OpenSM pr_rcv_get_path_parms), None if it cannot meet them."""
        mtu, rate = path.mtu, path.rate
        if path.src == path.dst:
            plt = 0
        elif self.config.packet_life_time is not None:
            plt = self.config.packet_life_time
        else:
            plt = hop_packet_life_time(path.hop_count, self.config.hop_packet_life_time)
        both = PathRecordComp.MTU_SELECTOR | PathRecordComp.MTU
        if mask & both == both:
            wanted, selector = query.mtu, query.mtu_selector
            if selector == Selector.GREATER_THAN and mtu <= wanted:
                return None
            if selector == Selector.LESS_THAN and mtu >= wanted:
                if wanted <= MIN_MTU:
                    return None
                mtu = wanted - 1
            if selector == Selector.EXACTLY:
                if mtu < wanted:
                    return None
                mtu = wanted
        both = PathRecordComp.RATE_SELECTOR | PathRecordComp.RATE
        if mask & both == both:
            wanted, selector = query.rate, query.rate_selector
            have, want = RATE_TENTHS_GBPS[rate], RATE_TENTHS_GBPS[wanted]
            if selector == Selector.GREATER_THAN and have <= want:
                return None
            if selector == Selector.LESS_THAN and have >= want:
                rate = rate_below(wanted)
                if not rate:
                    return None
            if selector == Selector.EXACTLY:
                if have != want:
                    return None
                rate = wanted
        both = PathRecordComp.PACKET_LIFE_TIME_SELECTOR | PathRecordComp.PACKET_LIFE_TIME
        if mask & both == both:
            wanted, selector = query.packet_life_time, query.packet_life_time_selector
            if selector == Selector.GREATER_THAN and plt <= wanted:
                return None
            if selector == Selector.LESS_THAN and plt >= wanted:
                if wanted <= 1:
                    return None
                plt = wanted - 1
            if selector == Selector.EXACTLY:
                if plt < wanted:
                    return None
                plt = wanted
        # P_Key (OpenSM pr_rcv_get_path_parms): the requested one if both ends share
        # it, else the lowest partition they share (the source's entry); no shared
        # partition, no path. Raw traffic then reports P_Key 0.
        keys_s = self.sm.partition_keys(sguid)
        keys_d = self.sm.partition_keys(dguid)
        if mask & PathRecordComp.PKEY:
            if not shares_partition(keys_s, keys_d, query.pkey):
                return None
            pkey = query.pkey
        else:
            common = common_pkey(keys_s, keys_d)
            if common is None:
                return None
            pkey = common
        if mask & PathRecordComp.RAW_TRAFFIC and query.raw_traffic:
            pkey = 0
        sl = query.sl if mask & PathRecordComp.SL else 0
        return mtu, rate, plt, pkey, sl

    def _share_partition(self, guid_a: int, guid_b: int) -> bool:
        """Do two ports or VMs (port or alias GUIDs) share a partition, one side a
        full member? (IBA Vol 1, 10.9.3; `SubnetManager.partition_keys`.) A port
        counts the VMs the SA's table gives it: under "before_write" a Set is
        accepted, and its Reports sent, before the port holds the GUID."""
        return shares_partition(
            self._table_partition_keys(guid_a), self._table_partition_keys(guid_b)
        )

    def _table_partition_keys(self, guid: int) -> frozenset[int]:
        """`SubnetManager.partition_keys` with a port's alias GUIDs as the SA's
        table holds them under "before_write" (blocks being written count as
        written); under "after_write" as the port confirmed them."""
        if self.config.guid_info_answer == "after_write":
            return self.sm.partition_keys(guid)
        found = self.db.node_of_port(guid) if self._written_blocks.blocks_of(guid) else None
        record = None if found is None else found[0].ports.get(found[1])
        if record is None:
            return self.sm.partition_keys(guid)
        return self.sm.partition_keys(guid, self._table_aliases(record))

    def _table_aliases(self, record: PortRecordData) -> dict[int, int]:
        """A port's alias GUIDs (index -> GUID) as the SA's table holds them: as
        written, with the blocks being written counted as written."""
        aliases = dict(record.alias_guids)
        for block in self._written_blocks.blocks_of(record.port_guid):
            pending = self._written_blocks.get((record.port_guid, block))
            assert pending is not None
            for i, held in enumerate(pending):
                index = block * GUID_BLOCK_SIZE + i
                if held and index:  # entry 0 of block 0 is the port GUID
                    aliases[index] = held
                else:
                    aliases.pop(index, None)
        return aliases

    # --- NodeRecord -----------------------------------------------------------------

    def _node_record(
        self, mad: SaMad, datagram: Datagram, requester: PortRecordData, now_ns: int
    ) -> None:
        data = mad.data
        mask = mad.component_mask
        lid = int.from_bytes(data[0:2], "big")
        query = NodeInfo.unpack(data, 4)
        wanted_description = data[44:108].split(b"\0", 1)[0]
        db = self.db
        records: list[NodeRecord] = []
        for node in sorted(db.nodes.values(), key=_node_guid):
            info = node.info
            if any(
                mask & bit and getattr(info, name) != getattr(query, name)
                for bit, name in _NODE_INFO_COMPONENTS
            ):
                continue
            description = NodeDescription(node.description)
            if (
                mask & NodeRecordComp.NODE_DESCRIPTION
                and description.pack().split(b"\0", 1)[0] != wanted_description
            ):
                continue
            for port in sorted(node.end_ports):
                record = node.ports.get(port)
                if record is None:
                    continue
                if mask & NodeRecordComp.PORT_GUID and record.port_guid != query.port_guid:
                    continue
                base_lid = db.port_lid.get(record.port_guid, 0)
                if mask & NodeRecordComp.LID and not _lid_in_range(lid, base_lid, record):
                    continue
                if mask & NodeRecordComp.LOCAL_PORT_NUM and port != query.local_port_num:
                    continue
                records.append(
                    NodeRecord(
                        base_lid,
                        replace(info, port_guid=record.port_guid, local_port_num=port),
                        description,
                    )
                )
        self._respond(mad, datagram, records, NodeRecord.ATTRIBUTE_OFFSET, now_ns)

    # --- PortInfoRecord -------------------------------------------------------------

    def _port_info_record(
        self, mad: SaMad, datagram: Datagram, requester: PortRecordData, now_ns: int
    ) -> None:
        data = mad.data
        mask = mad.component_mask
        endport_lid = int.from_bytes(data[0:2], "big")
        port_num = data[2]
        options = data[3]
        try:
            query = PortInfo.unpack(data, 4)
        except WireError:
            raise _RequestError(SaStatus.ERR_REQ_INVALID) from None
        enhanced = bool(mad.header.attribute_modifier & _ENHANCED_COMPARE)
        checks = [
            (name, getattr(query, name)) for bit, name in _PORT_INFO_COMPONENTS if mask >> bit & 1
        ]
        db = self.db
        if mask & _PORT_INFO_RECORD_KEY:
            owner = db.lid_owner.get(endport_lid)
            found = db.nodes.get(owner[0]) if owner is not None else None
            nodes = [found] if found is not None else []
        else:
            nodes = sorted(db.nodes.values(), key=_node_guid)
        records: list[PortInfoRecord] = []
        trusted = mad.sm_key != 0
        for node in nodes:
            if node.is_switch:
                ports = sorted(node.ports)
            else:
                ports = sorted(p for p in node.ports if p != 0)
            if mask & PortInfoRecordComp.PORT_NUM:
                ports = [p for p in ports if p == port_num]
            base = node.ports.get(0) if node.is_switch else None
            for port in ports:
                record = node.ports[port]
                info = record.info
                if info is None or not _port_info_matches(info, checks, enhanced):
                    continue
                owner_record = base if base is not None else record
                base_lid = db.port_lid.get(owner_record.port_guid, 0)
                if mask & PortInfoRecordComp.ENDPORT_LID and not _lid_in_range(
                    endport_lid, base_lid, owner_record
                ):
                    continue
                if not trusted and info.m_key:
                    info = replace(info, m_key=0)
                records.append(
                    PortInfoRecord(
                        base_lid, port, info, options if mask & PortInfoRecordComp.OPTIONS else 0
                    )
                )
        self._respond(mad, datagram, records, PortInfoRecord.ATTRIBUTE_OFFSET, now_ns)

    # --- GUIDInfoRecord -------------------------------------------------------------

    def _port_guids(self, record: PortRecordData, block: int) -> tuple[int, ...]:
        """One GUIDInfo block of a port as last written (or being written)."""
        pending = self._written_blocks.get((record.port_guid, block))
        if pending is not None:
            return pending
        base = block * GUID_BLOCK_SIZE
        aliases = record.alias_guids
        guids = [aliases.get(base + i, 0) for i in range(GUID_BLOCK_SIZE)]
        if block == 0:
            guids[0] = record.port_guid
        return tuple(guids)

    def _guid_info_get(
        self, mad: SaMad, datagram: Datagram, requester: PortRecordData, now_ns: int
    ) -> None:
        query = GUIDInfoRecord.unpack(mad.data)
        mask = mad.component_mask
        db = self.db
        match_lid = query.lid if mask & GUIDInfoRecordComp.LID else 0
        match_block = query.block_num if mask & GUIDInfoRecordComp.BLOCK_NUM else None
        wanted = query.guid_info.guids
        # OpenSM's rules: GUID0 of block 0 must be the requester's port GUID; any
        # other GUIDn in the mask must be given as 0.
        match_port_guid = 0
        if mask & GUIDInfoRecordComp.GUID0:
            if query.block_num == 0:
                match_port_guid = requester.port_guid
            if wanted[0] != match_port_guid:
                self._respond(mad, datagram, [], GUIDInfoRecord.ATTRIBUTE_OFFSET, now_ns)
                return
        if any(mask & _GUID_COMPONENTS[i] and wanted[i] for i in range(1, GUID_BLOCK_SIZE)):
            self._respond(mad, datagram, [], GUIDInfoRecord.ATTRIBUTE_OFFSET, now_ns)
            return
        records: list[GUIDInfoRecord] = []
        for node in sorted(db.nodes.values(), key=_node_guid):
            for port in sorted(node.end_ports):
                record = node.ports.get(port)
                if record is None or record.info is None or not record.info.guid_cap:
                    continue
                if match_port_guid and record.port_guid != match_port_guid:
                    continue
                blocks = -(-record.info.guid_cap // GUID_BLOCK_SIZE)
                if match_block is None:
                    wanted_blocks = range(blocks)
                elif match_block < blocks:
                    wanted_blocks = range(match_block, match_block + 1)
                else:
                    continue
                base_lid = db.port_lid.get(record.port_guid, 0)
                if match_lid and not _lid_in_range(match_lid, base_lid, record):
                    continue
                for block in wanted_blocks:
                    guids = self._port_guids(record, block)
                    records.append(GUIDInfoRecord(base_lid, block, GUIDInfo(guids)))
        self._respond(mad, datagram, records, GUIDInfoRecord.ATTRIBUTE_OFFSET, now_ns)

    def _alias_holder(self, guid: int) -> tuple[int, int] | None:
        """(port GUID, index) of the entry holding `guid`, counting writes in flight;
        aliases of ports that left the subnet are free again."""
        in_flight = self._written_blocks.holder(guid)
        if in_flight is not None and in_flight[0] in self.db.port_lid:
            return in_flight
        db = self.db
        if guid in db.port_lid:
            return guid, 0
        owner = db.alias_owner.get(guid)
        if owner is None or owner not in db.port_lid:
            return None
        found = db.node_of_port(owner)
        if found is None:
            return None
        node, port = found
        record = node.ports.get(port)
        if record is None:
            return None
        for index, held in record.alias_guids.items():
            if held == guid:
                pending = self._written_blocks.get((owner, index // GUID_BLOCK_SIZE))
                if pending is not None and pending[index % GUID_BLOCK_SIZE] != guid:
                    return None  # being overwritten
                return owner, index
        return None

    def _alias_owner(self, guid: int) -> int | None:
        """The port whose alias GUID `guid` is in the SA's table (`_alias_holder`)."""
        holder = self._alias_holder(guid)
        return None if holder is None else holder[0]

    def _sm_assigned(self, port_guid: int, index: int) -> int:
        """An SM-assigned alias GUID for (port, index): the one assigned before, or a
        new one nobody holds (OpenSM sm_assigned_guid)."""
        guid = self._assigned.get((port_guid, index))
        if guid is not None:
            return guid
        for _ in range(1000):
            self._assigned_count += 1
            if self._assigned_count > 0xFFFFFFFF:
                return 0
            guid = (
                (OPENIB_VENDOR_ID << 40)
                | (self.config.sm_assigned_guid << 32)
                | self._assigned_count
            )
            if self._alias_holder(guid) is None and self.db.lid_of_guid(guid) is None:
                self._assigned[(port_guid, index)] = guid
                return guid
        return 0

    def _guid_info_write(
        self, mad: SaMad, datagram: Datagram, requester: PortRecordData, now_ns: int
    ) -> None:
        mask = mad.component_mask
        if mask & _GUID_SET_KEY != _GUID_SET_KEY:
            raise _RequestError(SaStatus.ERR_REQ_INSUFFICIENT_COMPONENTS)
        query = GUIDInfoRecord.unpack(mad.data)
        record = self.db.port_record(query.lid)
        if record is None:
            raise _RequestError(SaStatus.ERR_NO_RECORDS)
        if record.port_guid != requester.port_guid:
            if mad.sm_key != self.config.sa_key:
                # Only a port's own agent (its hypervisor) adds or removes its alias
                # GUIDs (module docstring); OpenSM checks no ownership, and answers a
                # denial elsewhere in this handler with ERR_REQ_DENIED, as here.
                self.counters["guid_info_foreign_port_refused"] += 1
                raise _RequestError(SaStatus.ERR_REQ_DENIED)
            if not self._share_partition(requester.port_guid, record.port_guid):
                # OpenSM osm_sa_guidinfo_record.c: no shared partition, no answer.
                self.counters["guid_info_no_shared_partition"] += 1
                return
        guid_cap = record.info.guid_cap if record.info is not None else 0
        block = query.block_num
        if block >= -(-guid_cap // GUID_BLOCK_SIZE):
            raise _RequestError(SaStatus.ERR_NO_RECORDS)
        if block == 0 and mask & _GUID_COMPONENTS[0]:  # an int: Flag's & costs more
            raise _RequestError(SaStatus.ERR_REQ_INVALID)
        port_guid = record.port_guid
        base = block * GUID_BLOCK_SIZE
        current = self._port_guids(record, block)
        new = list(current)
        setting = mad.header.method == Method.SET
        if not setting:
            # OpenSM (osm_sa_guidinfo_record.c): no alias GUID leaves a port while it is
            # a member of a multicast group; the whole Delete is refused.
            for i in range(GUID_BLOCK_SIZE):
                if (
                    mask & _GUID_COMPONENTS[i]
                    and current[i]
                    and self.multicast.alias_in_group(current[i])
                ):
                    raise _RequestError(SaStatus.ERR_REQ_DENIED)
        for i in range(GUID_BLOCK_SIZE):
            if not mask & _GUID_COMPONENTS[i] or base + i >= guid_cap:
                continue
            if not setting:
                new[i] = 0
                continue
            guid = query.guid_info.guids[i]
            if not guid:
                if current[i]:
                    continue
                guid = self._sm_assigned(port_guid, base + i)
                if not guid:
                    continue
            holder = self._alias_holder(guid)
            if (holder is not None and holder != (port_guid, base + i)) or (
                guid in new[:i] or guid in new[i + 1 :]
            ):  # another port or entry holds it, or an earlier entry of this request
                self.counters["duplicate_alias_refused"] += 1
                continue
            new[i] = guid
        guids = tuple(new)
        if guids == current:
            self._respond_guid_info(mad, datagram, query, current, now_ns)
            return
        self._next_write += 1
        token = self._next_write
        timeout = self.config.guid_info_timeout_ns
        if timeout is None:
            sm_config = self.sm.config
            timeout = (sm_config.max_retries + 2) * sm_config.transaction_timeout_ns
        self._written_blocks.put((port_guid, block), guids)
        self.unconfirmed_guid_writes.pop((port_guid, block), None)  # replaced
        write = _GuidWrite(mad, datagram, query, port_guid, guids)
        if self.config.guid_info_answer == "before_write":
            # OpenSM: answered from the SA's table now; the port is written behind it.
            # The table is what PathRecords answer from, so a move is a move now, in
            # the order the requests came (writes to two ports may land in either).
            # The answer leaves first, then the Reports: with the SA a queue that
            # serves one MAD at a time, Reports sent first would let the peers'
            # REQs reach the moved VM before its dom0 learns the alias is taken and
            # brings its VF up, and a lost REQ costs the CM seconds.
            self._respond_guid_info(mad, datagram, query, guids, now_ns)
            if self.config.detect_alias_moves:
                self._check_table_moves(port_guid, block, guids, now_ns)

        def written(result: GUIDInfo | None, when_ns: int) -> None:
            self._guid_info_written(token, write, result, when_ns)

        if not self.sm.set_guid_info(port_guid, block, guids, now_ns, written):
            self._written_blocks.remove((port_guid, block))
            if self.config.guid_info_answer == "before_write":
                return  # answered already
            raise _RequestError(SaStatus.ERR_NO_RECORDS)
        if self.config.guid_info_answer == "before_write":
            return  # `written` still checks for alias moves; nobody waits for it
        self._guid_writes[token] = write
        self._timers.arm((_Timeout.GUID_WRITE, token), now_ns + timeout)

    def _respond_guid_info(
        self,
        mad: SaMad,
        datagram: Datagram,
        query: GUIDInfoRecord,
        guids: tuple[int, ...],
        now_ns: int,
    ) -> None:
        answer = GUIDInfoRecord(query.lid, query.block_num, GUIDInfo(guids))
        self._respond(mad, datagram, (answer,), GUIDInfoRecord.ATTRIBUTE_OFFSET, now_ns)

    def _guid_info_written(
        self, token: int, write: _GuidWrite, result: GUIDInfo | None, now_ns: int
    ) -> None:
        if (
            result is None
            and self.config.guid_info_answer == "before_write"
            and write.port_guid in self.db.port_lid
        ):
            # OpenSM's table (p_guids) changed when it accepted the request, and a
            # SubnSet(GUIDInfo) that fails after the MAD layer's retries (the SM's
            # `max_retries`, OpenSM transaction_retries) only logs ERR 3113: GUIDInfo
            # is not among the attributes whose failed Set marks the subnet in error
            # (osm_sm_mad_ctrl.c sm_mad_ctrl_send_err_cb), and nothing undoes the
            # table. So the block stays in the SA's table, PathRecords keep finding the
            # alias at this port, and the port may not hold it (its answer may be what
            # was lost): `unconfirmed_guid_writes`. A later write of the block replaces
            # it; a port that leaves the subnet takes its table along.
            self.counters["guid_info_writes_failed"] += 1
            if self._written_blocks.get((write.port_guid, write.block)) is write.guids:
                self.unconfirmed_guid_writes[(write.port_guid, write.block)] = write.guids
            return
        self.unconfirmed_guid_writes.pop((write.port_guid, write.block), None)
        self._written_blocks.remove_if((write.port_guid, write.block), write.guids)
        if (
            result is not None
            and self.config.detect_alias_moves
            and self.config.guid_info_answer == "after_write"
        ):
            self._check_alias_moves(write.block, result.guids, now_ns)
        if self._guid_writes.pop(token, None) is None:
            return  # answered already (timed out)
        self._timers.cancel((_Timeout.GUID_WRITE, token))
        if result is None:
            self._error(write.mad, write.datagram, SaStatus.ERR_NO_RESOURCES, now_ns)
            return
        self._respond_guid_info(write.mad, write.datagram, write.record, result.guids, now_ns)

    def _guid_write_timeout(self, token: int, now_ns: int) -> None:
        write = self._guid_writes.pop(token)
        self._written_blocks.remove_if((write.port_guid, write.block), write.guids)
        self.counters["guid_info_write_timeouts"] += 1
        self._error(write.mad, write.datagram, SaStatus.ERR_NO_RESOURCES, now_ns)

    # --- path changes ---------------------------------------------------------------

    def _remember_aliases(self) -> None:
        if not self.config.detect_alias_moves:
            return
        db = self.db
        for alias, owner in db.alias_owner.items():
            lid = db.vf_lid.get(alias, db.port_lid.get(owner))
            if lid is not None and alias not in self.db.alias_last_seen:
                self.db.alias_last_seen[alias] = (lid, owner)

    def _check_alias_moves(self, block: int, guids: Sequence[int], now_ns: int) -> None:
        db = self.db
        for i, guid in enumerate(guids):
            if not guid or (block == 0 and i == 0):
                continue
            owner = db.alias_owner.get(guid)
            # vSwitch: the VM's own VF LID, which moves with it (no path change).
            lid = None if owner is None else db.vf_lid.get(guid, db.port_lid.get(owner))
            if owner is None or lid is None:
                continue
            before = self.db.alias_last_seen.get(guid)
            self.db.alias_last_seen[guid] = (lid, owner)
            if before is None or before[0] == lid:
                continue
            self._path_changed(guid, before, lid, owner, now_ns)

    def _path_changed(
        self, guid: int, before: tuple[int, int], lid: int, owner: int, now_ns: int
    ) -> None:
        db = self.db
        old_lid, old_port = before
        self.counters["path_changes"] += 1
        self._emit(PathChangeDetected(guid, old_lid, lid, old_port, owner, now_ns))
        if self.config.path_change_notice == "trap64-65":
            for trap in (TrapNumber.GID_OUT_OF_SERVICE, TrapNumber.GID_IN_SERVICE):
                self._report_notice(
                    gid_service_notice(
                        trap, gid=self._gid(guid), issuer_lid=db.sm_lid,
                        issuer_gid=self._gid(db.sm_port_guid),
                    ),
                    now_ns, self._requester_ports(guid),
                )  # fmt: skip
            return
        notice = path_change_notice(
            gid=self._gid(guid),
            new_lid=lid,
            old_lid=old_lid,
            new_port_guid=owner,
            old_port_guid=old_port,
            issuer_lid=db.sm_lid,
            issuer_gid=self._gid(db.sm_port_guid),
        )
        only = self._requester_ports(guid)
        if self.config.path_change_notice == "trap69-path":
            self._report_notice(notice, now_ns, only, path_to=(guid, lid))
        else:
            self._report_notice(notice, now_ns, only)

    def _requester_ports(self, guid: int) -> set[int] | None:
        """The ports a targeted notice about `guid` goes to; None: every subscriber."""
        if not self.config.targeted_reports:
            return None
        return self.path_requesters.get(guid, set())

    def _subscription_port(self, subscription: Subscription) -> int | None:
        record = self.db.port_record(subscription.lid)
        return None if record is None else record.port_guid

    def _path_values(self, subscription: Subscription, guid: int, lid: int) -> PathValues | None:
        """The values of the path from a subscriber's port to `guid` at `lid`, as a
        PathRecord query from that port would get them; None: no such path."""
        sguid = self._subscription_port(subscription)
        if sguid is None:
            return None
        record = self._path_record_for(PathRecord(), 0, sguid, subscription.lid, guid, lid)
        if record is None:
            return None
        return PathValues(record.sl, record.mtu, record.rate, record.packet_life_time)

    def _check_table_moves(
        self, port_guid: int, block: int, guids: Sequence[int], now_ns: int
    ) -> None:
        """`_check_alias_moves` for the SA's own table (`guid_info_answer`
        "before_write"): each alias GUID of the block now belongs to `port_guid`."""
        port_lid = self.db.port_lid.get(port_guid)
        if port_lid is None:
            return
        for i, guid in enumerate(guids):
            if not guid or (block == 0 and i == 0):
                continue
            # vSwitch: the VM's own VF LID, which moves with it (no path change).
            lid = self.db.vf_lid.get(guid, port_lid)
            before = self.db.alias_last_seen.get(guid)
            self.db.alias_last_seen[guid] = (lid, port_guid)
            if before is None or before[0] == lid:
                continue
            self._path_changed(guid, before, lid, port_guid, now_ns)

    def dump_database(self) -> SaDatabase:
        """The SA database as OpenSM's sa_db_dump writes it (`ibmig.core.sa.database`).
        Alias GUIDs as the SA's table holds them: under "before_write" a Set or
        Delete accepted whose port write is still on the wire counts (OpenSM dumps
        its table, p_guids, which changed when it accepted the request)."""
        db = self.db
        before_write = self.config.guid_info_answer == "before_write"
        aliases = []
        for node in db.nodes.values():
            for record in node.ports.values():
                held = self._table_aliases(record) if before_write else record.alias_guids
                if held:
                    aliases.append((record.port_guid, tuple(sorted(held.items()))))
        return SaDatabase(
            tuple(sorted(aliases)),
            tuple((guid, lid, port) for guid, (lid, port) in db.alias_last_seen.items()),
            tuple(self._subscriptions.items()),
        )

    def load_database(self, dump: SaDatabase, now_ns: int) -> int:
        """Take over a dead master's SA database (OpenSM's sa_db_file, loaded in the
        first master sweep after discovery): alias GUIDs of the ports this SM found,
        where each alias was last seen, and the subscriptions. The number of items
        restored; alias GUIDs of ports no longer in the subnet are left out (a
        subscriber whose LID no port has gets no Report anyway)."""
        db = self.db
        restored = 0
        # Discovery has ended, LIDs are not assigned yet: find ports by GUID.
        ports = {r.port_guid: r for node in db.nodes.values() for r in node.ports.values()}
        for port_guid, entries in dump.alias_guids:
            record = ports.get(port_guid)
            if record is None:
                continue
            for index, guid in entries:
                if record.alias_guids.get(index) == guid and db.alias_owner.get(guid) == port_guid:
                    continue
                record.alias_guids[index] = guid
                db.alias_owner[guid] = port_guid
                restored += 1
        for guid, lid, port_guid in dump.alias_last_seen:
            if guid not in db.alias_last_seen:
                db.alias_last_seen[guid] = (lid, port_guid)
                restored += 1
        for key, subscription in dump.subscriptions:
            if key in self._subscriptions:
                continue
            used = self._enums.setdefault(subscription.subscriber_gid, set())
            if subscription.enum in used:
                continue
            used.add(subscription.enum)
            self._subscriptions[key] = subscription
            self._emit(SubscriptionAdded(subscription, now_ns))
            restored += 1
        self.counters["sa_db_restored"] += restored
        return restored

    def last_lid_of(self, alias_guid: int) -> int | None:
        """The LID an alias GUID was last seen behind (kept after it is deleted)."""
        seen = self.db.alias_last_seen.get(alias_guid)
        return None if seen is None else seen[0]

    # --- InformInfo -----------------------------------------------------------------

    def _inform_info(
        self, mad: SaMad, datagram: Datagram, requester: PortRecordData, now_ns: int
    ) -> None:
        info = InformInfo.unpack(mad.data)
        refused = replace(info, subscribe=0).pack() + mad.data[InformInfo.SIZE :]
        if info.subscribe > 1:
            raise _RequestError(SaStatus.ERR_REQ_INVALID)
        if mad.sm_key == 0 and info.is_generic and info.trap_number in _SECURITY_TRAPS:
            raise _RequestError(SaStatus.ERR_REQ_INVALID)
        port_gid = self._gid(requester.port_guid)
        sgid = datagram.sgid
        subscriber_gid = sgid if sgid is not None else port_gid
        report_gid = sgid if sgid is not None and sgid != port_gid else None
        stored = info
        if info.subscribe:
            stored = replace(info, qpn=datagram.sqp)
            stored = self._inform_infos.setdefault(stored, stored)
        key = _subscription_key(datagram.slid, datagram.sqp, report_gid, stored)
        existing = self._subscriptions.get(key)
        if info.subscribe:
            if not self._valid_subscription(info, requester):
                raise _RequestError(SaStatus.ERR_REQ_INVALID, refused)
            if existing is not None:
                self._subscriptions[key] = replace(existing, inform_info=stored)
            else:
                used = self._enums.setdefault(subscriber_gid, set())
                enum = next(n for n in range(len(used) + 1) if n not in used)
                used.add(enum)
                subscription = Subscription(
                    subscriber_gid, enum, datagram.slid, datagram.sqp, report_gid, stored
                )
                self._subscriptions[key] = subscription
                self._emit(SubscriptionAdded(subscription, now_ns))
        else:
            if existing is None:
                raise _RequestError(SaStatus.ERR_REQ_INVALID, refused)
            self._drop_subscription(key)
            self._emit(SubscriptionRemoved(existing, now_ns))
        self._respond(mad, datagram, (info,), InformInfo.ATTRIBUTE_OFFSET, now_ns)

    def _valid_subscription(self, info: InformInfo, requester: PortRecordData) -> bool:
        """o13-14.1.1 as OpenSM checks it (osm_sa_informinfo.c validate_infr): a named
        GID must be known and share a partition with the requester; a LID range
        must start within the subnet's LIDs."""
        if any(info.gid):
            guid = guid_of(info.gid)
            if self.path_lid(guid) is None:
                return False
            return self._share_partition(requester.port_guid, guid)
        if info.lid_range_begin == 0xFFFF:
            return True
        return info.lid_range_begin <= self.db.max_lid

    def _drop_subscription(self, key: tuple[Any, ...]) -> None:
        subscription = self._subscriptions.pop(key)
        used = self._enums.get(subscription.subscriber_gid)
        if used is not None:
            used.discard(subscription.enum)
            if not used:
                del self._enums[subscription.subscriber_gid]

    def _inform_info_record(
        self, mad: SaMad, datagram: Datagram, requester: PortRecordData, now_ns: int
    ) -> None:
        query = InformInfoRecord.unpack(mad.data)
        mask = mad.component_mask
        trusted = mad.sm_key != 0
        records: list[InformInfoRecord] = []
        for subscription in reversed(self._subscriptions.values()):
            if (
                mask & InformInfoRecordComp.SUBSCRIBER_GID
                and subscription.subscriber_gid != query.subscriber_gid
            ):
                continue
            if mask & InformInfoRecordComp.ENUM and subscription.enum != query.enum:
                continue
            if self.db.lid_of_guid(guid_of(subscription.subscriber_gid)) is None:
                continue
            info = subscription.inform_info
            if not trusted:
                info = replace(info, qpn=0)
            records.append(InformInfoRecord(subscription.subscriber_gid, subscription.enum, info))
        self._respond(mad, datagram, records, InformInfoRecord.ATTRIBUTE_OFFSET, now_ns)

    # --- notices and Reports --------------------------------------------------------

    def _sm_notice(self, trap_number: int, port_guid: int) -> Notice:
        """Trap 64/65 as the SM issues it about a port (OpenSM osm_state_mgr.c)."""
        return Notice(
            is_generic=True,
            type=NoticeType.SM,
            producer_type=ProducerType.CLASS_MANAGER,
            trap_number=trap_number,
            issuer_lid=self.db.sm_lid,
            details=GidDetails(self._gid(port_guid)),
            issuer_gid=self._gid(self.db.sm_port_guid),
        )

    def _report_notice(
        self,
        notice: Notice,
        now_ns: int,
        only_ports: set[int] | None = None,
        path_to: tuple[int, int] | None = None,
    ) -> int:
        """Report `notice` to its matching subscribers; `only_ports`: those whose LID
        belongs to one of these ports (targeted); `path_to` (GUID, LID): each copy
        carries the values of the subscriber's path to it (trap69-path)."""
        subject_gid, subject_lid = notice_subject(notice, self.db)
        lid_owner = self.db.lid_owner
        matched: list[Subscription] = []
        # One test per run of subscriptions sharing an InformInfo (`_inform_infos`),
        # not one per subscriber.
        info: InformInfo | None = None
        matches = False
        for subscription in reversed(self._subscriptions.values()):
            if subscription.inform_info is not info:
                info = subscription.inform_info
                matches = inform_matches(info, notice, subject_gid, subject_lid)
            if matches:
                matched.append(subscription)
        reachable = [s for s in matched if s.lid in lid_owner]
        if len(reachable) != len(matched):
            self.counters["report_to_unknown_lid"] += len(matched) - len(reachable)
        if self.sm.partitions is not None and reachable:
            # o13-17.1.1: subscriber and subject must share a partition.
            subject = guid_of(subject_gid)
            shared = [s for s in reachable if self._share_partition(self._subscriber(s), subject)]
            if len(shared) != len(reachable):
                self.counters["report_partition_mismatch"] += len(reachable) - len(shared)
            reachable = shared
        if only_ports is not None:
            reachable = [s for s in reachable if self._subscription_port(s) in only_ports]
        if reachable and path_to is not None:
            for subscription in reachable:
                values = self._path_values(subscription, *path_to)
                self._send_reports([subscription], with_path_values(notice, values), now_ns)
        elif reachable:
            self._send_reports(reachable, notice, now_ns)
        self._emit(NoticeReported(notice.trap_number, len(reachable), now_ns))
        return len(reachable)

    def _subscriber(self, subscription: Subscription) -> int:
        """The GUID partitions are checked with for a subscriber: the GID it
        subscribed with (a VM's vGUID, or a port GUID) if the subnet knows it, else
        the port behind its LID."""
        guid = guid_of(subscription.subscriber_gid)
        if self.db.lid_of_guid(guid) is not None:
            return guid
        record = self.db.port_record(subscription.lid)
        return guid if record is None else record.port_guid

    def _send_reports(self, subscriptions: list[Subscription], notice: Notice, now_ns: int) -> None:
        """One Report per subscriber. A notice can go to every host of a data centre,
        so the Report is encoded once (each copy differs only in its TID) and what
        every copy shares is looked up once."""
        trap_number = notice.trap_number
        copies = _ReportCopies(
            SaMad.from_record(notice, method=Method.REPORT).pack(),
            trap_number,
            self.sm.port_num,
            self.db.sm_lid,
            self._gid(self.db.sm_port_guid),
        )
        datagram_for = copies.datagram
        timeouts = self._report_timeouts
        # The ReportSent events go straight into the event log (as `_record` queues
        # them, without its call per Report).
        log: deque[Any] | None = None
        if self._wants(ReportSent):
            if self._events is None:
                self._events = deque()
            log = self._events
        reports, outbox, unarmed = self._reports, self._outbox, self._unarmed
        # The TIDs `_next_tid` would give, counted here: one call less per Report.
        tid = self._tid
        for subscription in subscriptions:
            tid = (tid + 1) & _TID_MASK or 1
            resp_time = subscription.inform_info.resp_time_value
            timeout = timeouts.get(resp_time) or self._report_timeout_ns(resp_time)
            reports[tid] = _PendingReport(subscription, copies, timeout, now_ns + timeout)
            outbox.append(datagram_for(subscription, tid))
            if log is not None:
                log.append(_new_report_sent(subscription, trap_number, tid, now_ns, 0))
            unarmed.append(tid)
        self._tid = tid
        # As `_send` counts, for all of them at once.
        self.mad_counts[(SaAttr.NOTICE, Method.REPORT)] += len(subscriptions)
        self.counters["reports_sent"] += len(subscriptions)

    def _on_report_resp(self, tid: int, now_ns: int) -> None:
        tid &= _TID_MASK
        pending = self._reports.pop(tid, None)
        if pending is None:
            self.counters["report_resp_unmatched"] += 1
            return
        if not pending.disarmed:  # a look-up in a table of a Report per host spared
            self._timers.cancel(tid)
        self._reports_acked += 1
        if self._wants(ReportAcked):
            self._record(
                _new_report_acked(pending.subscription, pending.copies.trap_number, tid, now_ns)
            )

    def _report_timeout_ns(self, resp_time_value: int) -> int:
        """A Report's timeout for a subscriber's RespTimeValue, never below the
        transaction timeout; one int per value, shared by all its Reports."""
        timeout = self._report_timeouts.get(resp_time_value)
        if timeout is None:
            timeout = max(RESP_TIME_UNIT_NS << resp_time_value, self.config.transaction_timeout_ns)
            self._report_timeouts[resp_time_value] = timeout
        return timeout

    def _arm_reports(self) -> None:
        """Arm the timers of the Reports emitted since the last call, at their
        deadlines as the runtime has told them by now (`mad_departed`): one timer
        entry each, not one at emission and another at departure. A Report retired
        meanwhile needs none; one whose ReportResp is in already needs none either."""
        reports = self._reports
        arm = self._timers.arm
        for tid in self._unarmed:
            pending = reports.get(tid)
            if pending is not None and not pending.arrived:
                arm(tid, pending.deadline_ns)
        self._unarmed = []

    def mad_departed(self, datagram: Datagram, departure_ns: int) -> None:
        """The runtime's word that a MAD we emitted left the port at `departure_ns`:
        a Report's timeout counts from then (module docstring). A Report just
        emitted is armed at this deadline when the runtime next asks for the timer
        (`_arm_reports`); a resend's timer, armed from its emission, moves here when
        it fires."""
        payload = datagram.payload
        if payload[3] != _REPORT or payload[1] != _SUBN_ADM:
            return
        # Every Report comes here: its TID read as `peek_tid` does, without a call.
        pending = self._reports.get(int.from_bytes(payload[8:16], "big") & _TID_MASK)
        if pending is not None and not pending.arrived:
            pending.deadline_ns = departure_ns + pending.timeout_ns

    def response_arrived(self, datagram: Datagram, now_ns: int) -> None:
        """The runtime's word that a response to one of our requests reached the
        port at `now_ns`, before we read it: the kernel matches a ReportResp to its
        Report there (module docstring). By the deadline, no resend; after it, the
        resend the kernel made at the deadline stands."""
        payload = datagram.payload
        if payload[3] != _REPORT_RESP or payload[1] != _SUBN_ADM:
            return
        tid = int.from_bytes(payload[8:16], "big") & _TID_MASK  # as `mad_departed`
        pending = self._reports.get(tid)
        if pending is None or pending.arrived:
            return
        pending.arrived = True
        if now_ns <= pending.deadline_ns:
            self._timers.cancel(tid)
            pending.disarmed = True

    def _report_timeout(self, tid: int, now_ns: int) -> None:
        pending = self._reports[tid]
        if pending.deadline_ns > now_ns:  # it left after it was emitted: wait on
            self._timers.arm(tid, pending.deadline_ns)
            return
        if pending.attempt >= self.config.report_retries:
            del self._reports[tid]
            self.counters["reports_given_up"] += 1
            self._emit(ReportGaveUp(pending.subscription, pending.trap_number, tid, now_ns))
            return
        pending.attempt += 1
        self._send(pending.copies.datagram(pending.subscription, tid), SaAttr.NOTICE, Method.REPORT)
        self.counters["report_retransmissions"] += 1
        self._emit(
            ReportSent(pending.subscription, pending.trap_number, tid, now_ns, pending.attempt)
        )
        if pending.arrived:
            return  # its ReportResp is in; the kernel's resend needs no answer
        pending.deadline_ns = now_ns + pending.timeout_ns
        self._timers.arm(tid, pending.deadline_ns)


# --- helpers ------------------------------------------------------------------------------


def resp_time_value(timeout_ns: int) -> int:
    """ClassPortInfo RespTimeValue for a transaction timeout, as OpenSM encodes its
    transaction_timeout: the smallest n >= 8 with 4.096 us x 2^n covering it (31 at most)."""
    value = 8
    while value < 31 and RESP_TIME_UNIT_NS << value < timeout_ns:
        value += 1
    return value


def _node_guid(node: NodeRecordData) -> int:
    return node.node_guid


def _lid_in_range(lid: int, base_lid: int, record: PortRecordData) -> bool:
    lmc = record.info.lmc if record.info is not None else 0
    return base_lid <= lid <= base_lid + (1 << lmc) - 1


def _port_info_matches(info: PortInfo, checks: list[tuple[str, Any]], enhanced: bool) -> bool:
    for name, wanted in checks:
        have = getattr(info, name)
        if enhanced and name in _BITWISE_COMPONENTS:
            if have & wanted != wanted:
                return False
        elif have != wanted:
            return False
    return True


class _BlocksInFlight:
    """GUIDInfo blocks being written, keyed by (port GUID, block), with an index from
    each alias GUID to where it is being written: a data centre registers tens of
    thousands of vGUIDs at once, and finding a GUID's holder must not scan them all."""

    __slots__ = ("_blocks", "_by_guid", "_by_port")

    def __init__(self) -> None:
        self._blocks: dict[tuple[int, int], tuple[int, ...]] = {}
        self._by_guid: dict[int, dict[tuple[int, int], int]] = {}
        self._by_port: dict[int, set[int]] = {}

    def get(self, key: tuple[int, int]) -> tuple[int, ...] | None:
        return self._blocks.get(key)

    def __len__(self) -> int:
        return len(self._blocks)

    def put(self, key: tuple[int, int], guids: tuple[int, ...]) -> None:
        self.remove(key)
        self._blocks[key] = guids
        self._by_port.setdefault(key[0], set()).add(key[1])
        for i, guid in enumerate(guids):
            if guid and (key[1] or i):  # entry 0 of block 0 is the port GUID
                self._by_guid.setdefault(guid, {}).setdefault(key, i)

    def remove(self, key: tuple[int, int]) -> None:
        guids = self._blocks.pop(key, None)
        if guids is None:
            return
        blocks = self._by_port[key[0]]
        blocks.discard(key[1])
        if not blocks:
            del self._by_port[key[0]]
        for guid in set(guids):
            holders = self._by_guid.get(guid)
            if holders is not None:
                holders.pop(key, None)
                if not holders:
                    del self._by_guid[guid]

    def remove_if(self, key: tuple[int, int], guids: tuple[int, ...]) -> None:
        """Remove the block at `key` if it is still the write of `guids`."""
        if self._blocks.get(key) is guids:
            self.remove(key)

    def guids(self) -> list[int]:
        """Every alias GUID some block in flight holds."""
        return list(self._by_guid)

    def blocks_of(self, port_guid: int) -> frozenset[int]:
        """The blocks of a port being written."""
        return frozenset(self._by_port.get(port_guid, ()))

    def holder(self, guid: int) -> tuple[int, int] | None:
        """(port GUID, index) of the first block in flight holding `guid`."""
        holders = self._by_guid.get(guid)
        if not holders:
            return None
        (port_guid, block), index = next(iter(holders.items()))
        return port_guid, block * GUID_BLOCK_SIZE + index


def _subscription_key(
    lid: int, qpn: int, report_gid: bytes | None, info: InformInfo
) -> tuple[Any, ...]:
    """What tells subscriptions apart (OpenSM match_inf_rec)."""
    selector: tuple[Any, ...] = (
        (info.gid,) if any(info.gid) else (info.lid_range_begin, info.lid_range_end)
    )
    return (
        lid,
        qpn,
        report_gid,
        selector,
        info.type,
        info.is_generic,
        info.trap_number,
        info.qpn,
        info.resp_time_value,
        info.producer_type,
    )


__all__ = ["QP1_QKEY", "SaConfig", "SubnetAdministrator", "resp_time_value"]

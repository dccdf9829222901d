"""Multicast groups: MCMemberRecord (IBA Vol 1, 15.2.5.17) as OpenSM serves it
(osm_sa_mcmember_record.c, osm_multicast.c, osm_prtn.c).

Groups
------
A group is its MGID, its MLID and the values every member shares (Q_Key, MTU,
TClass, P_Key, rate, PacketLifeTime, SL, FlowLabel, HopLimit, Scope). Members are
keyed by the interface ID of their PortGID: a port GUID or an alias GUID (a VM's
vGUID), as OpenSM's mcm_alias_port_tbl; each member has its JoinState and
ProxyJoin and belongs to the physical end port that holds the GUID. The MFT of a
group covers the physical ports of its members (`member_ports`).

The IPoIB broadcast group of the default partition is created when the SA starts,
as OpenSM's osm_prtn.c does without a partition configuration: MGID
ff12:401b:ffff::ffff:ffff, MLID 0xC000, P_Key 0xFFFF, Q_Key 0x0B1B, MTU 2048 (4)
and rate 10 Gb/s (3) with selector "exactly", PacketLifeTime 0x12 (OpenSM's
subnet_timeout) with selector "exactly", SL 0, FlowLabel 0, HopLimit 0 (link-local
scope), Scope 2, JoinState full. It is well known: it stays when its last member
leaves.

Set (join or create; o15-0.2.x)
-------------------------------
- MGID, PortGID and JoinState must be in the ComponentMask, else
  ERR_REQ_INSUFFICIENT_COMPONENTS; an invalid MTU or rate given with its selector:
  ERR_REQ_INVALID.
- PortGID's prefix must be the subnet's (the default prefix fe80:: stands for it),
  else ERR_REQ_INVALID_GID; its interface ID must be a port GUID, or an alias GUID
  in the SA's table (a GUIDInfoRecord Set accepted, written to the port or not:
  OpenSM's alias table), else ERR_REQ_INVALID. A requester other than that port joins by proxy.
  A P_Key in the mask must be valid (low 15 bits not zero).
- No group with the MGID (or MGID zero): create. The JoinState must have
  FullMember or SendOnlyFullMember, and Q_Key, TClass, P_Key, FlowLabel and SL must
  be in the mask (ERR_REQ_INVALID / ERR_REQ_INSUFFICIENT_COMPONENTS). MGID zero
  gets a new one: ff1S:a01b, the subnet prefix, a counter from 0 (OpenSM
  build_new_mgid; scope S from the record when Scope is in the mask, else link
  local 2). A requested MGID must start with 0xFF; an IPoIB one (signature 0x401B
  or 0x601B) other than a broadcast MGID needs the broadcast group of its scope and
  P_Key and must match it; any other must have the three upper flag bits clear and
  must not use the SA's signature 0xA01B with link-local scope (OpenSM
  validate_requested_mgid; ERR_REQ_INVALID). MTU and rate come from the selectors
  as OpenSM's mgrp_request_is_realizable computes them against the joining port
  (no selector, or selector 3: the port's). MLID: the requested one if it is a
  free multicast LID, else the lowest free one from 0xC000 (OpenSM get_new_mlid;
  ERR_NO_RESOURCES when none is left).
- An existing group: the components in the mask must match the group's (Q_Key,
  P_Key base with one of the two a full member, TClass, SL, FlowLabel, HopLimit;
  MTU and rate by their selectors), else ERR_REQ_INVALID. Updating a member that
  did not join by proxy is allowed to the member's own port only.
- The answer (GetResp) is the request's record with the group's values, MTU,
  rate and PacketLifeTime selectors "exactly", and the member's JoinState after
  the join (the OR of the old and the new).

Delete (leave)
--------------
The same mask check; the group must exist and hold the PortGID's GUID, the
requested JoinState must share a bit with the member's and have no bit it lacks,
and the proxy rule as for a Set (else ERR_REQ_INVALID). The bits are cleared; a
member left without FullMember, while the group keeps another full member, stays
with the bits it has, else it leaves. When the last full member leaves, every
member is dropped and a group that is not well known is deleted (its MLID free
again). The answer is the request's record with the JoinState the member kept.

Get / GetTable
--------------
Every group (in MGID order) matching the MGID and MLID of the mask, whose P_Key
the requester has, whose other components match as for a join. With PortGID in
the mask: the member with that GUID, if the group has it. A trusted requester
(SA key) without PortGID gets one record per member (in OpenSM's map order of the
GUIDs), otherwise one per group; JoinState (and Scope) in the mask filter them.
Untrusted requesters see PortGID, JoinState and ProxyJoin zeroed (15.2.5.17,
o15-0.2.x; OpenSM mcmr_query_mgrp).

Migration
---------
A VM's membership is keyed by its vGUID (the PortGID's interface ID) and carries
the physical port it joined from. As OpenSM (osm_sa_guidinfo_record.c), the SA
refuses a GUIDInfoRecord Delete of an alias GUID that is a member of any group
(ERR_REQ_DENIED, `alias_in_group`), so a migrating VM leaves its groups before its
vGUID leaves the source port, and joins again from the destination. ibmig's guests
join no group, so the signalling runs are unchanged; re-joining after a migration
is left to a guest that does.

Not done, as not needed here: the SNM MLID consolidation option, traps 66/67 (group
created / deleted), partitions other than the default one (every port is a full
member of 0xFFFF, as in the rest of the SA).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Final

from ibmig.core.sa.paths import MAX_MTU, MIN_MTU, RATE_TENTHS_GBPS, port_mtu, port_rate, rate_below
from ibmig.core.sa.records import RequestError, osm_map_order
from ibmig.core.sm.db import PortRecordData, SubnetDb
from ibmig.core.sm.manager import SubnetManager
from ibmig.wire.mad import Method
from ibmig.wire.sa import (
    GID_SIZE,
    JoinState,
    MCMemberRecord,
    MFTRecord,
    MFTRecordComp,
    SaMad,
    SaStatus,
    Selector,
)
from ibmig.wire.sa import MCMemberRecordComp as Comp
from ibmig.wire.smp_attrs import (
    MFT_BLOCK_SIZE,
    MULTICAST_LID_BASE,
    MulticastForwardingTable,
    PortCapability,
)

IPOIB_BROADCAST_MGID: Final = bytes.fromhex("ff12401bffff000000000000ffffffff")
IPOIB_BROADCAST_QKEY: Final = 0x0B1B  # OpenSM OSM_IPOIB_BROADCAST_MGRP_QKEY
DEFAULT_PKEY: Final = 0xFFFF
DEFAULT_MGRP_MTU: Final = 4  # 2048 bytes, OpenSM OSM_DEFAULT_MGRP_MTU
DEFAULT_MGRP_RATE: Final = 3  # 10 Gb/s, OpenSM OSM_DEFAULT_MGRP_RATE
DEFAULT_SUBNET_TIMEOUT: Final = 0x12  # OpenSM subnet_timeout: the groups' PacketLifeTime
LINK_LOCAL_SCOPE: Final = 0x2
MAX_MULTICAST_LID: Final = 0xFFFE  # 0xFFFF is the permissive LID
DEFAULT_SUBNET_PREFIX: Final = 0xFE80_0000_0000_0000
SA_MGID_SIGNATURE: Final = 0xA01B

_JOIN_MASK: Final = int(Comp.MGID | Comp.PORT_GID | Comp.JOIN_STATE)
_CREATE_MASK: Final = _JOIN_MASK | int(
    Comp.QKEY | Comp.TCLASS | Comp.PKEY | Comp.FLOW_LABEL | Comp.SL
)
_FULL: Final = int(JoinState.FULL_MEMBER | JoinState.SEND_ONLY_FULL_MEMBER)
_EXACTLY: Final = int(Selector.EXACTLY)
_ZERO_GID: Final = bytes(GID_SIZE)


@dataclass(slots=True)
class Member:
    """One member of a group: a port or alias GUID on a physical end port."""

    port_gid: bytes
    port_guid: int
    """The physical end port holding the GUID (whose switch port the MFT covers)."""
    join_state: int
    proxy_join: bool


@dataclass(slots=True)
class Group:
    record: MCMemberRecord
    """The group's values (PortGID zero, JoinState full, ProxyJoin clear)."""
    well_known: bool = False
    members: dict[int, Member] = field(default_factory=dict)
    full_members: int = 0

    @property
    def mgid(self) -> bytes:
        return self.record.mgid

    @property
    def mlid(self) -> int:
        return self.record.mlid


def _pkey_valid(pkey: int) -> bool:
    return bool(pkey & 0x7FFF)


def _has_pkey(pkey: int) -> bool:
    """Has a port (a full member of the default partition only) `pkey`?"""
    return pkey & 0x7FFF == DEFAULT_PKEY & 0x7FFF


def _rate_cmp(a: int, b: int) -> int:
    ra, rb = RATE_TENTHS_GBPS.get(a, 0), RATE_TENTHS_GBPS.get(b, 0)
    return (ra > rb) - (ra < rb)


def _rate_above(rate: int) -> int:
    """The slowest valid rate strictly faster than `rate` (OpenSM ib_path_rate_get_next)."""
    limit = RATE_TENTHS_GBPS.get(rate, 0)
    above = [c for c, t in RATE_TENTHS_GBPS.items() if t > limit]
    return min(above, key=lambda c: RATE_TENTHS_GBPS[c]) if above else 0


def _selected_ok(selector: int, group_value: int, wanted: int, compare: int) -> bool:
    """Does the group's value satisfy `selector` against `wanted`? `compare` is
    sign(group_value - wanted)."""
    if selector == Selector.GREATER_THAN:
        return compare > 0
    if selector == Selector.LESS_THAN:
        return compare < 0
    if selector == Selector.EXACTLY:
        return compare == 0
    return True


def _more_fields_match(group: MCMemberRecord, rec: MCMemberRecord, mask: int) -> bool:
    """MTU and rate against their selectors (OpenSM validate_more_comp_fields)."""
    if mask & Comp.MTU_SELECTOR:
        cmp = (group.mtu > rec.mtu) - (group.mtu < rec.mtu)
        if not _selected_ok(rec.mtu_selector, group.mtu, rec.mtu, cmp):
            return False
    if mask & Comp.RATE_SELECTOR:
        cmp = _rate_cmp(group.rate, rec.rate)
        if not _selected_ok(rec.rate_selector, group.rate, rec.rate, cmp):
            return False
    return True


def _other_fields_match(group: MCMemberRecord, rec: MCMemberRecord, mask: int) -> bool:
    """Q_Key, P_Key, TClass, SL, FlowLabel, HopLimit (OpenSM validate_other_comp_fields)."""
    if mask & Comp.QKEY and rec.q_key != group.q_key:
        return False
    if mask & Comp.PKEY:
        if not (rec.pkey & 0x8000 or group.pkey & 0x8000):
            return False
        if rec.pkey & 0x7FFF != group.pkey & 0x7FFF:
            return False
    if mask & Comp.TCLASS and rec.traffic_class != group.traffic_class:
        return False
    if mask & Comp.SL and rec.sl != group.sl:
        return False
    if mask & Comp.FLOW_LABEL and rec.flow_label != group.flow_label:
        return False
    return not (mask & Comp.HOP_LIMIT and rec.hop_limit != group.hop_limit)


class MulticastGroups:
    """The SA's multicast groups (see the module docstring)."""

    def __init__(self, subnet_prefix: int) -> None:
        self.subnet_prefix = subnet_prefix
        self.groups: dict[bytes, Group] = {}
        self._mgid_count = 0
        self.changed_mlids: set[int] = set()
        """MLIDs whose member ports changed since the owner last took them."""
        self.create_broadcast_group()

    # --- queries the SA and SM use ----------------------------------------------------

    def create_broadcast_group(self) -> Group:
        """The IPoIB broadcast group of the default partition (OpenSM osm_prtn.c)."""
        record = MCMemberRecord(
            IPOIB_BROADCAST_MGID,
            _ZERO_GID,
            q_key=IPOIB_BROADCAST_QKEY,
            mlid=self._free_mlid(0),
            mtu_selector=_EXACTLY,
            mtu=DEFAULT_MGRP_MTU,
            pkey=DEFAULT_PKEY,
            rate_selector=_EXACTLY,
            rate=DEFAULT_MGRP_RATE,
            packet_life_time_selector=_EXACTLY,
            packet_life_time=DEFAULT_SUBNET_TIMEOUT,
            scope=LINK_LOCAL_SCOPE,
            join_state=JoinState.FULL_MEMBER,
        )
        group = Group(record, well_known=True)
        self.groups[record.mgid] = group
        return group

    def by_mlid(self, mlid: int) -> list[Group]:
        return [g for g in self.groups.values() if g.mlid == mlid]

    def mlids(self) -> list[int]:
        return sorted({g.mlid for g in self.groups.values()})

    def member_ports(self, mlid: int) -> frozenset[int]:
        """Physical end-port GUIDs with a member in a group of `mlid`."""
        return frozenset(
            m.port_guid for g in self.groups.values() if g.mlid == mlid for m in g.members.values()
        )

    def groups_of_guid(self, guid: int) -> list[Group]:
        """Groups in which `guid` (a port or alias GUID) is a member."""
        return [g for g in self._ordered() if guid in g.members]

    def take_changed(self) -> set[int]:
        changed, self.changed_mlids = self.changed_mlids, set()
        return changed

    # --- the SA's handler ------------------------------------------------------------

    def handle(
        self,
        mad: SaMad,
        db: SubnetDb,
        requester: PortRecordData,
        alias_owner: Callable[[int], int | None] | None = None,
    ) -> list[MCMemberRecord]:
        """Answer a Set, Delete, Get or GetTable of MCMemberRecord; RequestError for
        an error status. `alias_owner` finds the port holding an alias GUID in the
        SA's table (OpenSM osm_get_port_by_alias_guid: its alias table changes when
        a GUIDInfoRecord Set is accepted, before the port is written); default: the
        ports as the SM last wrote them."""
        rec = MCMemberRecord.unpack(mad.data)
        mask = mad.component_mask
        method = mad.method
        if method in (Method.SET, Method.DELETE) and mask & _JOIN_MASK != _JOIN_MASK:
            raise RequestError(SaStatus.ERR_REQ_INSUFFICIENT_COMPONENTS)
        if mask & Comp.RATE_SELECTOR and mask & Comp.RATE and rec.rate not in RATE_TENTHS_GBPS:
            raise RequestError(SaStatus.ERR_REQ_INVALID)
        if mask & Comp.MTU_SELECTOR and mask & Comp.MTU and not MIN_MTU <= rec.mtu <= MAX_MTU:
            raise RequestError(SaStatus.ERR_REQ_INVALID)
        if method == Method.SET:
            return [self._join(rec, mask, db, requester, alias_owner or db.alias_owner.get)]
        if method == Method.DELETE:
            return [self._leave(rec, db, requester)]
        return self._query(rec, mask, mad.sm_key != 0)

    # --- join ------------------------------------------------------------------------

    def _port_gid(self, rec: MCMemberRecord) -> tuple[bytes, int]:
        """The PortGID with the subnet's prefix, and the request's own prefix."""
        prefix = int.from_bytes(rec.port_gid[:8], "big")
        if prefix == DEFAULT_SUBNET_PREFIX:
            gid = self.subnet_prefix.to_bytes(8, "big") + rec.port_gid[8:]
        else:
            gid = rec.port_gid
        if int.from_bytes(gid[:8], "big") != self.subnet_prefix:
            raise RequestError(SaStatus.ERR_REQ_INVALID_GID)
        return gid, prefix

    def _join(
        self,
        rec: MCMemberRecord,
        mask: int,
        db: SubnetDb,
        requester: PortRecordData,
        alias_owner: Callable[[int], int | None],
    ) -> MCMemberRecord:
        port_gid, _prefix = self._port_gid(rec)
        guid = int.from_bytes(port_gid[8:], "big")
        port_guid = guid if guid in db.port_lid else alias_owner(guid)
        if port_guid is None or port_guid not in db.port_lid:
            raise RequestError(SaStatus.ERR_REQ_INVALID)
        proxy = port_guid != requester.port_guid
        if mask & Comp.PKEY and not _pkey_valid(rec.pkey):
            raise RequestError(SaStatus.ERR_REQ_INVALID)
        join_state = rec.join_state
        group = self.groups.get(rec.mgid)
        new_group = group is None
        if group is None:
            if not join_state & _FULL:
                raise RequestError(SaStatus.ERR_REQ_INVALID)
            if mask & _CREATE_MASK != _CREATE_MASK:
                raise RequestError(SaStatus.ERR_REQ_INSUFFICIENT_COMPONENTS)
            group = self._create(rec, mask, db, port_guid)
        elif not _other_fields_match(group.record, rec, mask):
            raise RequestError(SaStatus.ERR_REQ_INVALID)
        if (
            not _more_fields_match(group.record, rec, mask)
            or not join_state
            or not _has_pkey(group.record.pkey)
        ):
            raise RequestError(SaStatus.ERR_REQ_INVALID)
        member = group.members.get(guid)
        if member is not None and not self._may_modify(member, requester):
            raise RequestError(SaStatus.ERR_REQ_INVALID)
        if new_group:
            self.groups[group.mgid] = group
        previous = member.join_state if member is not None else 0
        if member is None:
            member = Member(port_gid, port_guid, join_state, proxy)
            group.members[guid] = member
            self.changed_mlids.add(group.mlid)
        else:
            member.join_state |= join_state
        if join_state & _FULL and not previous & _FULL:
            group.full_members += 1
        g = group.record
        return replace(
            rec,
            mgid=g.mgid,
            q_key=g.q_key,
            mlid=g.mlid,
            traffic_class=g.traffic_class,
            pkey=g.pkey,
            sl=g.sl,
            flow_label=g.flow_label,
            hop_limit=g.hop_limit,
            scope=g.scope,
            join_state=member.join_state,
            mtu_selector=_EXACTLY,
            mtu=g.mtu,
            rate_selector=_EXACTLY,
            rate=g.rate,
            packet_life_time_selector=_EXACTLY,
            packet_life_time=g.packet_life_time,
        )

    @staticmethod
    def _may_modify(member: Member, requester: PortRecordData) -> bool:
        """o15-0.2.1 (OpenSM validate_modify): a member that did not join by proxy is
        changed by its own port only; a proxy member by any port of its partition."""
        if not member.proxy_join:
            return member.port_guid == requester.port_guid
        return _has_pkey(DEFAULT_PKEY)

    def _create(self, rec: MCMemberRecord, mask: int, db: SubnetDb, port_guid: int) -> Group:
        mgid = rec.mgid
        if mgid == _ZERO_GID:
            scope = rec.scope if mask & Comp.SCOPE else LINK_LOCAL_SCOPE
            mgid = self._new_mgid(scope)
        elif not self._mgid_acceptable(rec, mask):
            raise RequestError(SaStatus.ERR_REQ_INVALID)
        mtu, rate = self._realizable(rec, mask, db, port_guid)
        mlid = self._free_mlid(rec.mlid)
        if not mlid:
            raise RequestError(SaStatus.ERR_NO_RESOURCES)
        record = replace(
            rec,
            mgid=mgid,
            mlid=mlid,
            mtu_selector=_EXACTLY,
            mtu=mtu,
            rate_selector=_EXACTLY,
            rate=rate,
            packet_life_time_selector=_EXACTLY,
            proxy_join=False,
        )
        return Group(record)

    def _mgid_acceptable(self, rec: MCMemberRecord, mask: int) -> bool:
        """OpenSM validate_requested_mgid: 0xFF first; an IPoIB signature (0x401B,
        0x601B) is accepted as is, otherwise the three upper flag bits must be zero
        and the SA's own signature 0xA01B may not come with link-local scope. An IPoIB
        MGID other than a broadcast one needs its partition's broadcast group (same
        scope and P_Key) and must match it (OpenSM ipoib_mcgroup_creation_validation)."""
        mgid = rec.mgid
        if mgid[0] != 0xFF:
            return False
        signature = int.from_bytes(mgid[2:4], "big")
        if signature in (0x401B, 0x601B):
            broadcast = bytearray(IPOIB_BROADCAST_MGID)
            broadcast[1] = (broadcast[1] & 0xF0) | (mgid[1] & 0x0F)
            broadcast[4:6] = mgid[4:6]
            if signature == 0x401B and bytes(broadcast) == mgid:
                return True
            group = self.groups.get(bytes(broadcast))
            return group is not None and _other_fields_match(group.record, rec, mask)
        if mgid[1] & 0xE0:
            return False
        return not (signature == SA_MGID_SIGNATURE and mgid[1] & 0x0F == LINK_LOCAL_SCOPE)

    def _new_mgid(self, scope: int) -> bytes:
        """OpenSM build_new_mgid: ff1S:a01b, the subnet prefix, a 32-bit counter (in
        host byte order on a little-endian machine, as OpenSM's memcpy leaves it)."""
        prefix = self.subnet_prefix.to_bytes(8, "big")
        while True:
            count = self._mgid_count.to_bytes(4, "little")
            self._mgid_count = (self._mgid_count + 1) & 0xFFFFFFFF
            # OpenSM copies the 8-byte prefix to bytes 4..11 and then the counter over
            # bytes 10..13; bytes 14..15 stay zero.
            mgid = bytes((0xFF, 0x10 | scope, 0xA0, 0x1B)) + prefix[:6] + count + bytes(2)
            if mgid not in self.groups:
                return mgid

    def _realizable(
        self, rec: MCMemberRecord, mask: int, db: SubnetDb, port_guid: int
    ) -> tuple[int, int]:
        """MTU and rate of a new group (OpenSM mgrp_request_is_realizable)."""
        found = db.node_of_port(port_guid)
        info = found[0].ports[found[1]].info if found is not None else None
        p_mtu = port_mtu(info) if info is not None else 0
        extended = bool(info and info.capability_mask & PortCapability.IS_EXTENDED_SPEEDS_SUPPORTED)
        p_rate = port_rate(info, extended) if info is not None else 0
        both = Comp.MTU | Comp.MTU_SELECTOR
        if mask & both != both or rec.mtu_selector == Selector.LARGEST:
            mtu = p_mtu or MIN_MTU
        else:
            mtu = rec.mtu
            if rec.mtu_selector == Selector.GREATER_THAN:
                if p_mtu and rec.mtu >= p_mtu:
                    raise RequestError(SaStatus.ERR_REQ_INVALID)
                mtu = p_mtu or rec.mtu + 1
            elif rec.mtu_selector == Selector.LESS_THAN:
                mtu = p_mtu if p_mtu and rec.mtu > p_mtu else rec.mtu - 1
            if not MIN_MTU <= mtu <= MAX_MTU:
                raise RequestError(SaStatus.ERR_REQ_INVALID)
        both = Comp.RATE | Comp.RATE_SELECTOR
        if mask & both != both or rec.rate_selector == Selector.LARGEST:
            rate = p_rate or 2
        else:
            rate = rec.rate
            if rec.rate_selector == Selector.GREATER_THAN:
                if _rate_cmp(rec.rate, p_rate) >= 0:
                    raise RequestError(SaStatus.ERR_REQ_INVALID)
                rate = p_rate or _rate_above(rec.rate)
            elif rec.rate_selector == Selector.LESS_THAN:
                rate = p_rate if _rate_cmp(rec.rate, p_rate) > 0 else rate_below(rec.rate)
            if rate not in RATE_TENTHS_GBPS:
                raise RequestError(SaStatus.ERR_REQ_INVALID)
        return mtu, rate

    def _free_mlid(self, requested: int) -> int:
        used = {g.mlid for g in self.groups.values()}
        if MULTICAST_LID_BASE <= requested <= MAX_MULTICAST_LID and requested not in used:
            return requested
        for mlid in range(MULTICAST_LID_BASE, MAX_MULTICAST_LID + 1):
            if mlid not in used:
                return mlid
        return 0

    # --- leave -----------------------------------------------------------------------

    def _leave(
        self, rec: MCMemberRecord, db: SubnetDb, requester: PortRecordData
    ) -> MCMemberRecord:
        self._port_gid(rec)
        group = self.groups.get(rec.mgid)
        if group is None:
            raise RequestError(SaStatus.ERR_REQ_INVALID)
        guid = int.from_bytes(rec.port_gid[8:], "big")
        member = group.members.get(guid)
        wanted = rec.join_state
        if (
            member is None
            or not wanted & member.join_state
            or wanted | member.join_state != member.join_state
            or not self._may_modify(member, requester)
        ):
            raise RequestError(SaStatus.ERR_REQ_INVALID)
        kept = self._remove(group, guid, member, wanted)
        return replace(
            rec,
            scope=group.record.scope,
            join_state=kept,
            mtu_selector=_EXACTLY,
            rate_selector=_EXACTLY,
            packet_life_time_selector=_EXACTLY,
        )

    def _remove(self, group: Group, guid: int, member: Member, leaving: int) -> int:
        """Clear `leaving` from a member's JoinState as OpenSM's osm_mgrp_remove_port;
        the JoinState the member keeps (0: it left)."""
        before = member.join_state
        after = before & ~leaving
        others_full = group.full_members > (1 if before & JoinState.FULL_MEMBER else 0)
        if after & JoinState.FULL_MEMBER or (after and others_full):
            member.join_state = after
            kept = after
        else:
            del group.members[guid]
            self.changed_mlids.add(group.mlid)
            kept = 0
        if before & _FULL and not after & _FULL:
            group.full_members -= 1
            if group.full_members == 0:
                if group.members:
                    self.changed_mlids.add(group.mlid)
                group.members.clear()
                if not group.well_known:
                    del self.groups[group.mgid]
                    self.changed_mlids.add(group.mlid)
        return kept

    # --- query -----------------------------------------------------------------------

    def _ordered(self) -> Iterator[Group]:
        for mgid in sorted(self.groups):
            yield self.groups[mgid]

    def _query(self, rec: MCMemberRecord, mask: int, trusted: bool) -> list[MCMemberRecord]:
        out: list[MCMemberRecord] = []
        state_mask = (0xF0 if mask & Comp.SCOPE else 0) | (0x0F if mask & Comp.JOIN_STATE else 0)
        wanted = (rec.scope << 4) | rec.join_state
        guid = int.from_bytes(rec.port_gid[8:], "big")
        for group in self._ordered():
            g = group.record
            if mask & Comp.MGID and rec.mgid != g.mgid:
                continue
            if mask & Comp.MLID and rec.mlid != g.mlid:
                continue
            if not _has_pkey(g.pkey) or not _other_fields_match(g, rec, mask):
                continue
            if mask & Comp.PROXY_JOIN and rec.proxy_join != g.proxy_join:
                continue
            if not _more_fields_match(g, rec, mask):
                continue
            if trusted and not mask & Comp.PORT_GID:
                for key in sorted(group.members, key=osm_map_order):
                    m = group.members[key]
                    state = (g.scope << 4) | m.join_state
                    if state_mask & wanted == state_mask & state:
                        out.append(
                            replace(
                                g, port_gid=m.port_gid, join_state=m.join_state,
                                proxy_join=m.proxy_join,
                            )
                        )  # fmt: skip
                continue
            if mask & Comp.PORT_GID:
                member = group.members.get(guid)
                if member is None:
                    continue
                port_gid, join, proxy = member.port_gid, member.join_state, member.proxy_join
            else:
                port_gid, join, proxy = _ZERO_GID, g.join_state, False
            if state_mask & wanted != state_mask & ((g.scope << 4) | join):
                continue
            out.append(replace(g, port_gid=port_gid, join_state=join, proxy_join=proxy))
        if not trusted:
            out = [replace(r, port_gid=_ZERO_GID, join_state=0, proxy_join=False) for r in out]
        return out

    # --- migration ---------------------------------------------------------------------

    def alias_in_group(self, guid: int) -> bool:
        """Is `guid` a member of some group? (OpenSM refuses a GUIDInfoRecord Delete
        of such an alias GUID with ERR_REQ_DENIED, osm_sa_guidinfo_record.c.)"""
        return any(guid in g.members for g in self.groups.values())


# --- MulticastForwardingTableRecord ---------------------------------------------------


def mft_records(sm: SubnetManager, mad: SaMad) -> list[MFTRecord]:
    """MulticastForwardingTableRecord (15.2.5.8; osm_sa_mft_record.c): of every switch
    that was sent MFT blocks, blocks 0 .. the highest written and every position,
    as the SM wrote them; LID, Position and BlockNum of the mask select."""
    db = sm.db
    query = MFTRecord.unpack(mad.data)
    mask = mad.component_mask
    written = sm.multicast.written
    top: dict[int, int] = {}
    positions: dict[int, int] = {}
    for switch, block, position in written:
        top[switch] = max(top.get(switch, 0), block)
        positions[switch] = max(positions.get(switch, 0), position)
    records = []
    for switch in sorted(top, key=osm_map_order):
        node = db.nodes.get(switch)
        port0 = None if node is None else node.ports.get(0)
        if port0 is None:
            continue
        lid = db.port_lid.get(port0.port_guid, 0)
        if mask & MFTRecordComp.LID and query.lid != lid:
            continue
        for block in range(top[switch] + 1):
            if mask & MFTRecordComp.BLOCK and query.block_num != block:
                continue
            for position in range(positions[switch] + 1):
                if mask & MFTRecordComp.POSITION and query.position != position:
                    continue
                masks = written.get((switch, block, position), (0,) * MFT_BLOCK_SIZE)
                records.append(MFTRecord(lid, position, block, MulticastForwardingTable(masks)))
    return records


__all__ = [
    "IPOIB_BROADCAST_MGID",
    "IPOIB_BROADCAST_QKEY",
    "Group",
    "Member",
    "MulticastGroups",
    "mft_records",
]

"""MultiPathRecord (IBA Vol 1, 15.2.5.20): SubnAdmGetMulti, answered with PathRecords
(o15-0.2.7) as OpenSM answers it (osm_sa_multipath_record.c).

Checks, in OpenSM's order: the request must be an RMPP transfer (RMPP Active;
else ERR_REQ_INVALID); SGIDCount and DGIDCount must be in the ComponentMask
(else ERR_REQ_INSUFFICIENT_COMPONENTS); a given MTU or rate must be valid
(ERR_REQ_INVALID); half a ServiceID is ERR_REQ_INSUFFICIENT_COMPONENTS. The GIDs
(at most 11 in all; SGIDs first) must each be link-local or carry the subnet
prefix, an SGID must not be multicast, and each must name a port or alias GUID
of the subnet (else ERR_REQ_INVALID_GID); no SGID or no DGID is
ERR_REQ_INVALID.

Paths: for every (SGID, DGID) pair in order, the PathRecord between their ports'
base LIDs under the request's constraints (RawTraffic, Reversible, P_Key, SL,
MTU, rate, PacketLifeTime and their selectors, as for a PathRecord query), with
SGID/DGID = subnet prefix || GUID, until NumbPath paths (127 when not given).
ibmig assigns LMC 0, so a pair has one path at most (OpenSM's preference-0 round
over LID offsets has one step). The APM request (2 SGIDs, 2 DGIDs, NumbPath 2)
is answered as OpenSM does: the SGIDs and the DGIDs each ordered by port GUID
(in OpenSM's comparison, `osm_map_order`), and of the two diagonals
{(S0, D0), (S1, D1)} and {(S0, D1), (S1, D0)} the first unless the second's
shortest path is shorter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from ibmig.core.sa.matching import guid_of
from ibmig.core.sa.paths import MAX_MTU, MIN_MTU, RATE_TENTHS_GBPS, PathError, resolve_path
from ibmig.core.sa.records import RequestError, osm_map_order
from ibmig.core.sm.db import SubnetDb
from ibmig.errors import WireError
from ibmig.wire.mad import RmppFlags
from ibmig.wire.sa import (
    MULTI_PATH_MAX_GIDS,
    MultiPathRecord,
    MultiPathRecordComp,
    PathRecord,
    PathRecordComp,
    SaMad,
    SaStatus,
)

MAX_NUM_PATH: Final = 127  # OpenSM OSM_SA_MPR_MAX_NUM_PATH
# MultiPathRecord component -> the PathRecord component of the same constraint.
_TO_PATH_COMPONENT: Final = (
    (MultiPathRecordComp.RAW_TRAFFIC, PathRecordComp.RAW_TRAFFIC),
    (MultiPathRecordComp.REVERSIBLE, PathRecordComp.REVERSIBLE),
    (MultiPathRecordComp.PKEY, PathRecordComp.PKEY),
    (MultiPathRecordComp.SL, PathRecordComp.SL),
    (MultiPathRecordComp.MTU_SELECTOR, PathRecordComp.MTU_SELECTOR),
    (MultiPathRecordComp.MTU, PathRecordComp.MTU),
    (MultiPathRecordComp.RATE_SELECTOR, PathRecordComp.RATE_SELECTOR),
    (MultiPathRecordComp.RATE, PathRecordComp.RATE),
    (MultiPathRecordComp.PACKET_LIFE_TIME_SELECTOR, PathRecordComp.PACKET_LIFE_TIME_SELECTOR),
    (MultiPathRecordComp.PACKET_LIFE_TIME, PathRecordComp.PACKET_LIFE_TIME),
)

PathFor = Callable[[PathRecord, int, int, int, int, int], PathRecord | None]
"""(query, mask, source GUID, source LID, destination GUID, destination LID) ->
the PathRecord between them, or None (`SubnetAdministrator._path_record_for`)."""


def _end(
    db: SubnetDb, gid: bytes, source: bool, lid_of: Callable[[int], int | None]
) -> tuple[int, int]:
    """(GUID, LID) a GID of the request names; RequestError if none."""
    link_local = gid[0] == 0xFE and gid[1] & 0xC0 == 0x80
    if not link_local and (
        (source and gid[0] == 0xFF) or int.from_bytes(gid[:8], "big") != db.subnet_prefix
    ):
        raise RequestError(SaStatus.ERR_REQ_INVALID_GID)
    guid = guid_of(gid)
    lid = lid_of(guid)
    if lid is None:
        raise RequestError(SaStatus.ERR_REQ_INVALID_GID)
    return guid, lid


def multipath_records(
    mad: SaMad,
    db: SubnetDb,
    path_for: PathFor,
    lid_of: Callable[[int], int | None] | None = None,
) -> list[PathRecord]:
    """The PathRecords answering a SubnAdmGetMulti(MultiPathRecord); `lid_of` finds
    the LID behind a GID's GUID (default: the ports as written)."""
    if lid_of is None:
        lid_of = db.lid_of_guid
    if not mad.rmpp.flags & RmppFlags.ACTIVE:
        raise RequestError(SaStatus.ERR_REQ_INVALID)
    mask = mad.component_mask
    counts = MultiPathRecordComp.SGID_COUNT | MultiPathRecordComp.DGID_COUNT
    if mask & counts != counts:
        raise RequestError(SaStatus.ERR_REQ_INSUFFICIENT_COMPONENTS)
    try:
        query = MultiPathRecord.unpack(mad.data)
    except WireError:
        raise RequestError(SaStatus.ERR_REQ_INVALID) from None
    both = MultiPathRecordComp.RATE_SELECTOR | MultiPathRecordComp.RATE
    if mask & both == both and query.rate not in RATE_TENTHS_GBPS:
        raise RequestError(SaStatus.ERR_REQ_INVALID)
    both = MultiPathRecordComp.MTU_SELECTOR | MultiPathRecordComp.MTU
    if mask & both == both and not MIN_MTU <= query.mtu <= MAX_MTU:
        raise RequestError(SaStatus.ERR_REQ_INVALID)
    service = mask & MultiPathRecordComp.SERVICE_ID
    if service and service != MultiPathRecordComp.SERVICE_ID:
        raise RequestError(SaStatus.ERR_REQ_INSUFFICIENT_COMPONENTS)
    sources = [_end(db, gid, True, lid_of) for gid in query.sgids[:MULTI_PATH_MAX_GIDS]]
    destinations = [_end(db, gid, False, lid_of) for gid in query.dgids]
    if not sources or not destinations:
        raise RequestError(SaStatus.ERR_REQ_INVALID)
    path_query = PathRecord(
        raw_traffic=query.raw_traffic,
        reversible=query.reversible,
        pkey=query.pkey,
        sl=query.sl,
        mtu_selector=query.mtu_selector,
        mtu=query.mtu,
        rate_selector=query.rate_selector,
        rate=query.rate,
        packet_life_time_selector=query.packet_life_time_selector,
        packet_life_time=query.packet_life_time,
    )
    path_mask = 0
    for mpr_bit, pr_bit in _TO_PATH_COMPONENT:
        if mask & mpr_bit:
            path_mask |= pr_bit

    def path(src: tuple[int, int], dst: tuple[int, int]) -> PathRecord | None:
        return path_for(path_query, path_mask, src[0], src[1], dst[0], dst[1])

    max_paths = query.numb_path if mask & MultiPathRecordComp.NUMB_PATH else MAX_NUM_PATH
    if len(sources) == 2 and len(destinations) == 2 and query.numb_path == 2:
        return _apm_paths(db, sources, destinations, path)
    records: list[PathRecord] = []
    for src in sources:
        for dst in destinations:
            if len(records) >= max_paths:
                return records
            record = path(src, dst)
            if record is not None:
                records.append(record)
    return records


def _hops(db: SubnetDb, record: PathRecord) -> int:
    try:
        return resolve_path(db, record.slid, record.dlid).hop_count
    except PathError:
        return 0


def _apm_paths(
    db: SubnetDb,
    sources: list[tuple[int, int]],
    destinations: list[tuple[int, int]],
    path: Callable[[tuple[int, int], tuple[int, int]], PathRecord | None],
) -> list[PathRecord]:
    """Two paths for automatic path migration (OpenSM mpr_rcv_get_apm_paths)."""

    def port_order(end: tuple[int, int]) -> int:
        owner = db.lid_owner.get(end[1])
        node = db.nodes.get(owner[0]) if owner is not None else None
        record = node.ports.get(owner[1]) if node is not None and owner is not None else None
        return osm_map_order(record.port_guid if record is not None else end[0])

    s0, s1 = sorted(sources, key=port_order)
    d0, d1 = sorted(destinations, key=port_order)
    matrix = {(i, j): path(s, d) for i, s in enumerate((s0, s1)) for j, d in enumerate((d0, d1))}
    hops = {key: None if r is None else _hops(db, r) for key, r in matrix.items()}

    def diagonal(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
        total = least = 0
        for key in (a, b):
            count = hops[key]
            if count is None:
                continue
            total += count
            least = min(least, count) if least else count  # OpenSM: 0 means "none yet"
        return least, total

    min_a, sum_a = diagonal((0, 0), (1, 1))
    min_b, sum_b = diagonal((0, 1), (1, 0))
    diagonal_a = min_a <= min_b or (min_a == min_b and sum_a < sum_b)  # as OpenSM writes it
    chosen = ((0, 0), (1, 1)) if diagonal_a else ((0, 1), (1, 0))
    return [record for key in chosen if (record := matrix[key]) is not None]


__all__ = ["MAX_NUM_PATH", "multipath_records"]

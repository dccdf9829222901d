"""ServiceRecord (IBA Vol 1, 15.2.5.14): services registered with the SA, as OpenSM
keeps them (osm_sa_service_record.c, osm_service.c).

- SubnAdmSet registers. ServiceID and ServiceGID must be in the ComponentMask
  (else ERR_REQ_INVALID). A record is identified by its RID, (ServiceID,
  ServiceGID, ServiceP_Key) exactly as sent; registering the same RID again
  replaces the record and restarts its lease. Without ServiceLease in the mask the
  lease is indefinite (0xFFFFFFFF). The answer is the record as registered, with
  ServiceP_Key 0xFFFF when the mask did not give one (OpenSM stores what was sent
  and answers the default P_Key).
- SubnAdmDelete removes the record with the request's RID (ERR_NO_RECORDS when
  there is none) and answers the record removed.
- Set and Delete are checked first as OpenSM checks them: with ServiceP_Key in the
  mask the requester must be a member of that partition and, for a unicast
  ServiceGID, so must the port that GID names (a port or alias GUID this subnet
  has); else ERR_REQ_INVALID.
- SubnAdmGet/GetTable: every record, oldest first, matching each component in
  the mask (ServiceID, GID, P_Key, Key, the whole 64-byte Name, each ServiceData
  element) whose P_Key the requester shares (an invalid P_Key, low 15 bits zero,
  is shared by all).
- ServiceKey reads as zero unless the request carries the SA key (trusted).
- Lease: a record with lease L seconds lapses L s after it was last registered.
  OpenSM checks leases on a timer of at most 20 s and at least 1 s granularity;
  here a lapsed record is dropped whenever the registry is next used, so a query
  never sees it (no event follows a lapse, so no timer is needed).

Partitions: every port is taken to be a full member of the default partition
only (as `SubnetAdministrator._partition_keys`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from ibmig.core.sa.records import RequestError
from ibmig.core.sm.db import SubnetDb
from ibmig.wire.mad import Method
from ibmig.wire.sa import (
    INDEFINITE_LEASE,
    SERVICE_DATA_BITS,
    SaMad,
    SaStatus,
    ServiceRecord,
    ServiceRecordComp,
)

DEFAULT_PKEY: Final = 0xFFFF
NS_PER_S: Final = 1_000_000_000
_ZERO_KEY: Final = bytes(16)


def _has_pkey(pkey: int) -> bool:
    """Does a port (a member of the default partition only) have `pkey`? An invalid
    P_Key (low 15 bits zero) is allowed, as OpenSM's osm_physp_has_pkey."""
    base = pkey & 0x7FFF
    return base == 0 or base == DEFAULT_PKEY & 0x7FFF


def _rid(record: ServiceRecord) -> tuple[int, bytes, int]:
    return record.service_id, record.service_gid, record.service_pkey


def _data_matches(query: ServiceRecord, record: ServiceRecord, mask: int) -> bool:
    arrays = (
        (query.service_data8, record.service_data8),
        (query.service_data16, record.service_data16),
        (query.service_data32, record.service_data32),
        (query.service_data64, record.service_data64),
    )
    for (first_bit, count), (wanted, have) in zip(SERVICE_DATA_BITS, arrays, strict=True):
        for i in range(count):
            if mask >> (first_bit + i) & 1 and wanted[i] != have[i]:
                return False
    return True


class ServiceRegistry:
    """The registered services (module docstring), oldest first."""

    def __init__(self) -> None:
        self._records: dict[tuple[int, bytes, int], tuple[ServiceRecord, int | None]] = {}

    def __len__(self) -> int:
        return len(self._records)

    def records(self, now_ns: int) -> list[ServiceRecord]:
        """Every record whose lease has not lapsed, oldest first."""
        self._expire(now_ns)
        return [record for record, _ in self._records.values()]

    def _expire(self, now_ns: int) -> None:
        lapsed = [
            rid
            for rid, (_, deadline) in self._records.items()
            if deadline is not None and deadline <= now_ns
        ]
        for rid in lapsed:
            del self._records[rid]

    def handle(self, mad: SaMad, db: SubnetDb, now_ns: int) -> list[ServiceRecord]:
        """The records answering a ServiceRecord request; RequestError to refuse it."""
        self._expire(now_ns)
        query = ServiceRecord.unpack(mad.data)
        mask = mad.component_mask
        method = mad.header.method
        if method in (Method.SET, Method.DELETE):
            self._validate(query, mask, db)
            answer = self._set(query, mask, now_ns) if method == Method.SET else self._delete(query)
            found = [answer]
        else:
            found = [
                record
                for record, _ in self._records.values()
                if _has_pkey(record.service_pkey) and _matches(query, record, mask)
            ]
        if not mad.sm_key:
            found = [replace(r, service_key=_ZERO_KEY) if any(r.service_key) else r for r in found]
        return found

    @staticmethod
    def _validate(query: ServiceRecord, mask: int, db: SubnetDb) -> None:
        if not mask & ServiceRecordComp.SERVICE_PKEY:
            return
        if not _has_pkey(query.service_pkey):
            raise RequestError(SaStatus.ERR_REQ_INVALID)
        if mask & ServiceRecordComp.SERVICE_GID and query.service_gid[0] != 0xFF:
            guid = int.from_bytes(query.service_gid[8:], "big")
            if db.lid_of_guid(guid) is None:
                raise RequestError(SaStatus.ERR_REQ_INVALID)

    def _set(self, query: ServiceRecord, mask: int, now_ns: int) -> ServiceRecord:
        need = ServiceRecordComp.SERVICE_ID | ServiceRecordComp.SERVICE_GID
        if mask & need != need:
            raise RequestError(SaStatus.ERR_REQ_INVALID)
        if not mask & ServiceRecordComp.SERVICE_LEASE:
            query = replace(query, service_lease=INDEFINITE_LEASE)
        lease = query.service_lease
        deadline = None if lease == INDEFINITE_LEASE else now_ns + lease * NS_PER_S
        rid = _rid(query)
        self._records[rid] = (query, deadline)  # again: replaced in its place, as OpenSM
        if not mask & ServiceRecordComp.SERVICE_PKEY:
            query = replace(query, service_pkey=DEFAULT_PKEY)
        return query

    def _delete(self, query: ServiceRecord) -> ServiceRecord:
        found = self._records.pop(_rid(query), None)
        if found is None:
            raise RequestError(SaStatus.ERR_NO_RECORDS)
        return found[0]


def _matches(query: ServiceRecord, record: ServiceRecord, mask: int) -> bool:
    return (
        (not mask & ServiceRecordComp.SERVICE_ID or query.service_id == record.service_id)
        and (not mask & ServiceRecordComp.SERVICE_GID or query.service_gid == record.service_gid)
        and (not mask & ServiceRecordComp.SERVICE_PKEY or query.service_pkey == record.service_pkey)
        and (not mask & ServiceRecordComp.SERVICE_KEY or query.service_key == record.service_key)
        and (not mask & ServiceRecordComp.SERVICE_NAME or query.service_name == record.service_name)
        and _data_matches(query, record, mask)
    )


__all__ = ["ServiceRegistry"]

"""A guest's path cache and its PathRecord queries to the SA.

The cache maps a destination GID to the PathRecord the SA gave for it (DLID, SL,
MTU, rate, PacketLifeTime...). Two policies:

- `cached`: a record stays until it is flushed, which only a path-change event
  (or an IPoIB neighbour update) does. A connection that breaks for any other
  reason reconnects over the same, possibly stale, record: after a migration with
  no signalling the peer stays unreachable.
- `query`: nothing is kept; every connection attempt asks the SA.

A query is SubnAdmGet(PathRecord) (IBA Vol 1, 15.2.5.16; 15.4 "SA Path Record
query") with SGID = the guest's GID, DGID = the destination and NumbPath = 1, those
three components in the ComponentMask. It goes to the SA's LID on QP1 from QP1
and is resent with the same TID by the SA client's rule (`ibmig.core.sa_client`):
after `sa_timeout_ns`, at most `sa_retries` times after the first send.
Concurrent resolutions of one GID share a single query. A flush while a query is
out marks it superseded: its answer may predate the change, so it is not cached
and the waiters have already started over.

The engine (`ibmig.core.guest.agent`) sends the MADs and runs the timers; this
module keeps the records, the pending queries and the MAD layouts.
"""

from __future__ import annotations

import struct
from typing import Final

from ibmig.core.guest.config import PATH_CACHE_POLICIES
from ibmig.core.sa_client import SaRequest, SaRetry
from ibmig.errors import ConfigError, WireError
from ibmig.wire.mad import MAD_SIZE, Method, MgmtClass
from ibmig.wire.sa import SA_HEADER_SIZE, PathRecord, PathRecordComp, SaAttr, SaMad

PATH_QUERY_MASK: Final = int(PathRecordComp.DGID | PathRecordComp.SGID | PathRecordComp.NUMB_PATH)
TID_MASK: Final = (1 << 48) - 1
"""TIDs are matched on their low 48 bits: ibsim rewrites the top 16 of requests."""

_SA_CLASS: Final = int(MgmtClass.SUBN_ADM)
_GET_RESP: Final = int(Method.GET_RESP)
_PATH_RECORD: Final = int(SaAttr.PATH_RECORD)
_STATUS_TID = struct.Struct(">H2xQ")  # status at byte 4, TID at byte 8


def path_query(sgid: bytes, dgid: bytes, tid: int) -> bytes:
    """The 256-byte SubnAdmGet(PathRecord) for the path `sgid` -> `dgid`."""
    query = PathRecord(dgid=dgid, sgid=sgid, numb_path=1)
    return SaMad.from_record(
        query, method=Method.GET, tid=tid, component_mask=PATH_QUERY_MASK
    ).pack()


def parse_path_response(payload: bytes) -> tuple[int, int, PathRecord | None]:
    """(TID & 48 bits, MAD status, the record) of a PathRecord GetResp; the record is
    None unless the status is 0. WireError if `payload` is not such a response."""
    if len(payload) != MAD_SIZE:
        raise WireError(f"a MAD is {MAD_SIZE} bytes, got {len(payload)}")
    if payload[1] != _SA_CLASS or payload[3] != _GET_RESP:
        raise WireError("not an SA GetResp")
    if (payload[16] << 8) | payload[17] != _PATH_RECORD:
        raise WireError("not a PathRecord response")
    status, tid = _STATUS_TID.unpack_from(payload, 4)
    if status:
        return tid & TID_MASK, status, None
    return tid & TID_MASK, 0, PathRecord.unpack(payload, SA_HEADER_SIZE)


class PathQuery(SaRequest):
    """One outstanding PathRecord query (shared by everyone resolving `dgid`).

    `waiters` are (requester, token) pairs the engine hands back to whoever asked;
    `deadline` is when the engine's timer should fire (None: not running).
    """

    __slots__ = ("deadline", "dgid", "payload", "refresh_via", "superseded", "waiters")

    def __init__(self, dgid: bytes, tid: int, payload: bytes) -> None:
        super().__init__(tid)
        self.dgid = dgid
        self.payload = payload
        self.waiters: list[tuple[object, int]] = []
        self.superseded = False
        self.deadline: int | None = None
        self.refresh_via: str | None = None
        """Not a connection attempt's: a refresh ("refresh") or a trap 64 ("report")."""


class PathCache:
    """Destination GID -> PathRecord under a policy, and the queries in flight."""

    def __init__(self, policy: str, retry: SaRetry) -> None:
        if policy not in PATH_CACHE_POLICIES:
            raise ConfigError(
                f"must be one of {', '.join(PATH_CACHE_POLICIES)}, got {policy!r}", "path_cache"
            )
        self.policy = policy
        self.retry = retry
        self.timeout_ns = retry.timeout_ns
        self._records: dict[bytes, PathRecord] = {}
        self._by_gid: dict[bytes, PathQuery] = {}
        self._by_tid: dict[int, PathQuery] = {}

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, dgid: object) -> bool:
        return dgid in self._records

    def lookup(self, dgid: bytes) -> PathRecord | None:
        """The cached record for `dgid` (always None under `query`)."""
        return self._records.get(dgid)

    def store(self, dgid: bytes, record: PathRecord) -> None:
        """Keep `record` for `dgid` (ignored under `query`)."""
        if self.policy == "cached":
            self._records[dgid] = record

    def flush(self, dgid: bytes) -> bool:
        """Forget `dgid`'s record and supersede a query in flight; True if a record
        was cached."""
        query = self._by_gid.pop(dgid, None)
        if query is not None:
            query.superseded = True
        return self._records.pop(dgid, None) is not None

    def clear(self) -> None:
        """Forget every record (the queries in flight are cancelled too)."""
        self._records.clear()
        self.cancel_queries()

    def cancel_queries(self) -> None:
        """Drop every query in flight, without answer (the VF went away)."""
        for query in self._by_tid.values():
            query.deadline = None
        self._by_gid.clear()
        self._by_tid.clear()

    # --- queries -----------------------------------------------------------------------

    def pending(self, dgid: bytes) -> PathQuery | None:
        """The query in flight for `dgid` that a new resolution may join."""
        return self._by_gid.get(dgid)

    def dgid_of(self, tid: int) -> bytes | None:
        """The destination of the query in flight with TID `tid`."""
        query = self._by_tid.get(tid & TID_MASK)
        return None if query is None else query.dgid

    def start_query(self, dgid: bytes, tid: int, payload: bytes, now_ns: int) -> PathQuery:
        """Register a new query (the engine sends `payload` and arms `deadline`)."""
        query = PathQuery(dgid, tid & TID_MASK, payload)
        query.deadline = now_ns + self.timeout_ns
        self._by_gid[dgid] = query
        self._by_tid[query.tid] = query
        return query

    def answer(self, tid: int, record: PathRecord | None) -> PathQuery | None:
        """The SA answered query `tid` (record None: an error status). Returns the
        query (with its waiters), or None if no query has that TID. A record is
        cached unless the query was superseded."""
        query = self._by_tid.pop(tid & TID_MASK, None)
        if query is None:
            return None
        query.deadline = None
        if self._by_gid.get(query.dgid) is query:
            del self._by_gid[query.dgid]
        if record is not None and not query.superseded:
            self.store(query.dgid, record)
        return query

    def expire(self, query: PathQuery, now_ns: int) -> bool:
        """The query's time-out passed: True to resend it (deadline re-armed), False
        when every retry is spent (the query is dropped)."""
        if self.retry.resend(query):
            query.deadline = now_ns + self.timeout_ns
            return True
        query.deadline = None
        self._by_tid.pop(query.tid, None)
        if self._by_gid.get(query.dgid) is query:
            del self._by_gid[query.dgid]
        return False

    def records(self) -> dict[bytes, PathRecord]:
        """A copy of the cache (for tests and reports)."""
        return dict(self._records)

"""The path cache, its policies and the SA PathRecord queries."""

from __future__ import annotations

import struct
from dataclasses import replace

import pytest

from ibmig.core.engine import QP1
from ibmig.core.guest import (
    ConnectFailed,
    PathCache,
    PathQueryFailed,
    PathResolved,
    Reconnected,
    parse_path_response,
    path_query,
)
from ibmig.core.sa_client import SaRetry
from ibmig.errors import ConfigError, WireError
from ibmig.wire.mad import Method
from ibmig.wire.sa import PathRecord, PathRecordComp, SaMad
from tests.core.guest.guest_util import FAST, QKEY, SA_LID, Wire, gid

S_GUID, S_LID, S_IP = 0x100, 10, "10.0.0.1"
C_GUID, C_LID, C_IP = 0x200, 20, "10.0.0.2"


def test_query_bytes_follow_the_sa_layout() -> None:
    payload = path_query(gid(C_GUID), gid(S_GUID), 0x1234)
    assert len(payload) == 256
    # Common MAD header (IBA Vol 1, 13.4.3): version 1, class 0x03, class version 2,
    # method Get, TID at byte 8, attribute PathRecord (0x0035) at byte 16.
    assert payload[:4] == bytes([0x01, 0x03, 0x02, 0x01])
    assert struct.unpack_from(">Q", payload, 8)[0] == 0x1234
    assert payload[16:18] == bytes([0x00, 0x35])
    # SA header (15.2.1.1): ComponentMask at byte 48 = DGID (bit 2) | SGID (bit 3) |
    # NumbPath (bit 12).
    assert struct.unpack_from(">Q", payload, 48)[0] == 0x100C
    # PathRecord (15.2.5.16) at byte 56: DGID at +8, SGID at +24, NumbPath at +49.
    assert payload[56 + 8 : 56 + 24] == gid(S_GUID)
    assert payload[56 + 24 : 56 + 40] == gid(C_GUID)
    assert payload[56 + 49] == 0x01
    mad = SaMad.unpack(payload)
    assert (
        mad.component_mask == PathRecordComp.DGID | PathRecordComp.SGID | PathRecordComp.NUMB_PATH
    )


def test_parse_response() -> None:
    record = PathRecord(dgid=gid(1), sgid=gid(2), dlid=33, slid=44, mtu=4)
    answer = SaMad.from_record(record, method=Method.GET_RESP, tid=(0xABCD << 48) | 7)
    assert parse_path_response(answer.pack()) == (7, 0, record)
    error = SaMad.from_record(record, method=Method.GET_RESP, tid=8, status=0x0300)
    assert parse_path_response(error.pack()) == (8, 0x0300, None)
    with pytest.raises(WireError):
        parse_path_response(bytes(10))
    with pytest.raises(WireError):
        parse_path_response(SaMad.from_record(record, method=Method.GET, tid=1).pack())


def test_policies() -> None:
    record = PathRecord(dgid=gid(1), dlid=5)
    cached = PathCache("cached", SaRetry(1, 0))
    cached.store(gid(1), record)
    assert cached.lookup(gid(1)) == record and gid(1) in cached and len(cached) == 1
    assert cached.flush(gid(1)) and not cached.flush(gid(1))
    query = PathCache("query", SaRetry(1, 0))
    query.store(gid(1), record)
    assert query.lookup(gid(1)) is None and len(query) == 0
    with pytest.raises(ConfigError):
        PathCache("sometimes", SaRetry(1, 0))


def test_pending_queries_are_shared_retried_and_superseded() -> None:
    cache = PathCache("cached", SaRetry(100, 1))
    q = cache.start_query(gid(1), 5, b"q", 0)
    assert cache.pending(gid(1)) is q and q.deadline == 100
    assert cache.expire(q, 100) and q.deadline == 200 and q.attempt == 1
    assert not cache.expire(q, 200)
    assert cache.pending(gid(1)) is None and cache.answer(5, None) is None
    q2 = cache.start_query(gid(1), 6, b"q", 300)
    cache.flush(gid(1))  # a path change while the query is out
    assert q2.superseded and cache.pending(gid(1)) is None
    assert cache.answer(6, PathRecord(dgid=gid(1), dlid=9)) is q2
    assert cache.lookup(gid(1)) is None  # a superseded answer is not cached


def two(config: object = FAST) -> Wire:
    wire = Wire()
    wire.add("s", S_GUID, S_LID, ip=S_IP, config=config)  # type: ignore[arg-type]
    wire.add("c", C_GUID, C_LID, ip=C_IP, peers=[(S_IP, S_GUID)], config=config)  # type: ignore[arg-type]
    return wire


def test_query_goes_to_the_sa_from_the_guests_gid() -> None:
    wire = two()
    wire.run_for(10_000)
    query = wire.sent_by("c")[0]
    assert (query.slid, query.dlid, query.sqp, query.dqp) == (C_LID, SA_LID, QP1, QP1)
    assert (query.qkey, query.opcode) == (QKEY, 0x64)
    assert (query.sgid, query.dgid) == (gid(C_GUID), None)
    assert wire.events_of(PathResolved) == [PathResolved(2_000, gid(S_GUID), S_LID, "sa")]
    assert wire.guests["c"].paths.lookup(gid(S_GUID)) is not None
    assert wire.guests["c"].sent["sa_path_query"] == 1


def test_sa_timeout_and_retries() -> None:
    wire = two()
    wire.sa.silent = True
    wire.run_for(4_000_000)
    queries = [(t, d) for t, n, d in wire.sent if n == "c" and d.dlid == SA_LID]
    times = [t for t, _ in queries]
    # 1 + sa_retries sends of the same TID, sa_timeout_ns apart, then failure.
    first = times[: 1 + FAST.sa_retries]
    assert first == [0, 1_000_000, 2_000_000]
    assert len({d.payload for _, d in queries[:3]}) == 1
    assert wire.events_of(PathQueryFailed) == [PathQueryFailed(3_000_000, gid(S_GUID), "timeout")]
    failed = wire.events_of(ConnectFailed)
    assert failed[0].reason == "sa_timeout" and failed[0].time_ns == 3_000_000
    # A new attempt, with a new TID, after the backoff.
    assert times[3] == 3_500_000
    assert queries[3][1].payload[8:16] != queries[0][1].payload[8:16]


def test_sa_error_status_fails_the_attempt() -> None:
    wire = two()
    del wire.sa.paths[gid(S_GUID)]
    wire.run_for(100_000)
    assert wire.events_of(PathQueryFailed)[0].reason == "status_0x0300"
    assert wire.events_of(ConnectFailed)[0].reason == "sa_status_0x0300"
    wire.sa.paths[gid(S_GUID)] = S_LID  # the GID resolves again: the next attempt succeeds
    wire.run_for(2_000_000)
    assert wire.events_of(Reconnected) == [] and wire.guests["c"].streams


@pytest.mark.parametrize(("policy", "vias"), [("cached", ["sa", "cache"]), ("query", ["sa", "sa"])])
def test_reconnection_after_an_error_uses_the_policy(policy: str, vias: list[str]) -> None:
    wire = two(replace(FAST, path_cache=policy))
    wire.run_for(50_000)
    # The server becomes unreachable for a while: the QP runs out of retries.
    wire.drop_lids.add(S_LID)
    wire.run_for(5_000_000)
    wire.drop_lids.clear()
    wire.run_for(10_000_000)  # the REQ sent into the outage is resent after 4.2 ms
    resolved = wire.events_of(PathResolved, "c")
    assert [e.via for e in resolved[:2]] == vias
    assert len(wire.events_of(Reconnected)) == 1
    assert wire.guests["c"].sent["sa_path_query"] == (2 if policy == "query" else 1)

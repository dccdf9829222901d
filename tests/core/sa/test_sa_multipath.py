"""SubnAdmGetMulti(MultiPathRecord), answered with PathRecords in an RMPP GetMultiResp
(ibmig.core.sa.multipath; OpenSM osm_sa_multipath_record.c), on the hand-built
subnet of sa_util."""

from __future__ import annotations

from dataclasses import replace

from ibmig.core.engine import Datagram
from ibmig.core.sa import SubnetAdministrator
from ibmig.wire.mad import Method, RmppFlags, RmppHeader, RmppType
from ibmig.wire.sa import (
    MultiPathRecord,
    MultiPathRecordComp,
    PathRecord,
    PathRecordComp,
    SaAttr,
    SaMad,
    SaStatus,
    Selector,
)
from tests.core.sa.sa_util import (
    H1_GUID,
    H1_LID,
    H2_GUID,
    H2_LID,
    H3_GUID,
    H3_LID,
    SM_PORT_GUID,
    drain,
    make_sa,
    one,
    request,
    rmpp_ack,
    table_records,
)
from tests.helpers import gid

COUNTS = MultiPathRecordComp.SGID_COUNT | MultiPathRecordComp.DGID_COUNT
WHOLE = RmppHeader(
    1, RmppType.DATA, 0, RmppFlags.ACTIVE | RmppFlags.FIRST | RmppFlags.LAST, 0, 1, 220
)


def get_multi(record: MultiPathRecord, mask: int = COUNTS, *, rmpp: bool = True) -> Datagram:
    datagram = request(SaAttr.MULTI_PATH_RECORD, Method.GET_MULTI, record, mask=mask)
    if not rmpp:
        return datagram
    mad = SaMad.unpack(datagram.payload)
    return datagram._replace(payload=replace(mad, rmpp=WHOLE).pack())


def paths(sa: SubnetAdministrator, record: MultiPathRecord, mask: int = COUNTS) -> list[PathRecord]:
    """The PathRecords of the answer, its RMPP transfer acknowledged to the end."""
    sa.receive(get_multi(record, mask), 1_000)
    segments = []
    while True:
        [(_, segment)] = drain(sa)
        assert segment.header.method == Method.GET_MULTI_RESP
        assert segment.header.attribute_id == SaAttr.PATH_RECORD
        assert segment.status == 0
        segments.append(segment)
        number = segment.rmpp.segment_number
        sa.receive(rmpp_ack(segment, slid=H1_LID, window_last=number + 1), 2_000)
        if segment.rmpp.flags & RmppFlags.LAST:
            break
    found = table_records(segments)
    assert all(isinstance(r, PathRecord) for r in found)
    return list(found)  # type: ignore[arg-type]


def path_record(sa: SubnetAdministrator, sguid: int, dguid: int) -> PathRecord:
    query = PathRecord(sgid=gid(sguid), dgid=gid(dguid))
    answer = one(
        sa,
        request(
            SaAttr.PATH_RECORD, Method.GET, query, mask=PathRecordComp.SGID | PathRecordComp.DGID
        ),
    )
    record = answer.record()
    assert isinstance(record, PathRecord)
    return record


def test_every_pair_gets_the_path_a_path_record_query_gets() -> None:
    sa = make_sa()
    found = paths(sa, MultiPathRecord(sgids=(gid(H1_GUID),), dgids=(gid(H2_GUID), gid(H3_GUID))))
    assert [(p.slid, p.dlid) for p in found] == [(H1_LID, H2_LID), (H1_LID, H3_LID)]
    assert sa.mad_counts[(SaAttr.PATH_RECORD, Method.GET_MULTI_RESP)] == 1  # one segment
    assert found == [path_record(sa, H1_GUID, H2_GUID), path_record(sa, H1_GUID, H3_GUID)]


def test_numb_path_and_constraints_limit_the_paths() -> None:
    sa = make_sa()
    both = MultiPathRecord(sgids=(gid(H1_GUID),), dgids=(gid(H2_GUID), gid(H3_GUID)), numb_path=1)
    assert len(paths(sa, both, COUNTS | MultiPathRecordComp.NUMB_PATH)) == 1
    # h3's link has a 2048-byte MTU (code 4): "exactly 4096" leaves h2 only.
    mtu = MultiPathRecordComp.MTU_SELECTOR | MultiPathRecordComp.MTU
    big = replace(both, mtu_selector=Selector.EXACTLY, mtu=5)
    assert [p.dlid for p in paths(sa, big, COUNTS | mtu)] == [H2_LID]


def test_apm_request_gets_one_diagonal() -> None:
    sa = make_sa()
    record = MultiPathRecord(
        sgids=(gid(H2_GUID), gid(H1_GUID)), dgids=(gid(H3_GUID), gid(SM_PORT_GUID)), numb_path=2
    )
    found = paths(sa, record, COUNTS | MultiPathRecordComp.NUMB_PATH)
    # Sources ordered h1 (0xB1) before h2 (0xC1), destinations sm-host (0xA1) before
    # h3 (0xD1). Diagonal A, h1->sm-host and h2->h3, has 2 + 2 links; diagonal B,
    # h1->h3 and h2->sm-host, 3 + 3: A, in that order (not the request's order).
    assert [(p.slid, p.dlid) for p in found] == [(H1_LID, 1), (H2_LID, H3_LID)]


def test_refusals() -> None:
    sa = make_sa()
    record = MultiPathRecord(sgids=(gid(H1_GUID),), dgids=(gid(H2_GUID),))
    assert one(sa, get_multi(record, rmpp=False)).status == SaStatus.ERR_REQ_INVALID
    no_counts = one(sa, get_multi(record, MultiPathRecordComp.SGID_COUNT))
    assert no_counts.status == SaStatus.ERR_REQ_INSUFFICIENT_COMPONENTS
    unknown = MultiPathRecord(sgids=(gid(H1_GUID),), dgids=(gid(0xDEAD),))
    assert one(sa, get_multi(unknown)).status == SaStatus.ERR_REQ_INVALID_GID
    no_destination = MultiPathRecord(sgids=(gid(H1_GUID),))
    assert one(sa, get_multi(no_destination)).status == SaStatus.ERR_REQ_INVALID
    bad_rate = replace(record, rate_selector=Selector.EXACTLY, rate=1)
    rate = MultiPathRecordComp.RATE_SELECTOR | MultiPathRecordComp.RATE
    assert one(sa, get_multi(bad_rate, COUNTS | rate)).status == SaStatus.ERR_REQ_INVALID
    error = one(sa, get_multi(unknown))
    assert error.header.method == Method.GET_MULTI_RESP and error.attribute_offset == 0

"""ServiceRecord registration, queries, deletion and leases under a hand-driven clock
(ibmig.core.sa.services; OpenSM osm_sa_service_record.c)."""

from __future__ import annotations

from typing import Any

from ibmig.core.sa import SubnetAdministrator
from ibmig.wire.mad import Method, RmppFlags
from ibmig.wire.sa import (
    INDEFINITE_LEASE,
    SaAttr,
    SaMad,
    SaStatus,
    ServiceRecord,
    ServiceRecordComp,
)
from tests.core.sa.sa_util import (
    H1_GUID,
    H1_LID,
    H2_LID,
    SM_PORT_GUID,
    drain,
    make_sa,
    one,
    request,
    rmpp_ack,
    table_records,
)
from tests.helpers import gid

RID = ServiceRecordComp.SERVICE_ID | ServiceRecordComp.SERVICE_GID
S = 1_000_000_000
KEY = bytes(range(1, 17))


def service(number: int = 1, **kw: object) -> ServiceRecord:
    fields: dict[str, object] = {
        "service_id": 0x1000 + number,
        "service_gid": gid(H1_GUID),
        "service_key": KEY,
        "service_name": f"svc{number}".encode().ljust(64, b"\0"),
    }
    fields.update(kw)
    return ServiceRecord(**fields)  # type: ignore[arg-type]


def send(
    sa: SubnetAdministrator,
    method: int,
    record: ServiceRecord,
    mask: int,
    now_ns: int = 1_000,
    **kw: Any,
) -> SaMad:
    return one(sa, request(SaAttr.SERVICE_RECORD, method, record, mask=mask, **kw), now_ns)


def table(
    sa: SubnetAdministrator, query: ServiceRecord, mask: int = 0, now_ns: int = 1_000, **kw: Any
) -> list[ServiceRecord]:
    """A GetTable's records, the RMPP transfer acknowledged segment by segment."""
    sa.receive(request(SaAttr.SERVICE_RECORD, Method.GET_TABLE, query, mask=mask, **kw), now_ns)
    segments = []
    while True:
        [(_, segment)] = drain(sa)
        assert segment.status == 0
        segments.append(segment)
        number = segment.rmpp.segment_number
        sa.receive(rmpp_ack(segment, slid=kw.get("slid", H1_LID), window_last=number + 1), now_ns)
        if segment.rmpp.flags & RmppFlags.LAST:
            break
    records = list(table_records(segments))
    assert all(isinstance(r, ServiceRecord) for r in records)
    return records  # type: ignore[return-value]


def test_register_then_get_by_id_and_name() -> None:
    sa = make_sa()
    answer = send(
        sa,
        Method.SET,
        service(1),
        RID | ServiceRecordComp.SERVICE_KEY | ServiceRecordComp.SERVICE_NAME,
    )
    assert answer.header.method == Method.GET_RESP and answer.status == 0
    # The answer: the record as registered, lease indefinite, default P_Key,
    # ServiceKey hidden from an untrusted requester.
    assert answer.record() == service(
        1, service_lease=INDEFINITE_LEASE, service_pkey=0xFFFF, service_key=bytes(16)
    )
    send(sa, Method.SET, service(2), RID)
    by_name = send(sa, Method.GET, service(1), ServiceRecordComp.SERVICE_NAME, slid=H2_LID)
    assert by_name.status == 0
    assert by_name.record().service_id == 0x1001  # type: ignore[union-attr]
    trusted = send(sa, Method.GET, service(1), ServiceRecordComp.SERVICE_ID, sm_key=1)
    assert trusted.record().service_key == KEY  # type: ignore[union-attr]
    assert [r.service_id for r in table(sa, ServiceRecord())] == [0x1001, 0x1002]


def test_set_needs_service_id_and_gid() -> None:
    sa = make_sa()
    for mask in (ServiceRecordComp.SERVICE_ID, ServiceRecordComp.SERVICE_GID):
        assert send(sa, Method.SET, service(), mask).status == SaStatus.ERR_REQ_INVALID
    assert len(sa.services) == 0


def test_a_partition_the_requester_lacks_or_an_unknown_gid_is_refused() -> None:
    sa = make_sa()
    pkey = RID | ServiceRecordComp.SERVICE_PKEY
    assert (
        send(sa, Method.SET, service(service_pkey=0x8001), pkey).status == SaStatus.ERR_REQ_INVALID
    )
    unknown = service(service_gid=gid(0xDEAD), service_pkey=0xFFFF)
    assert send(sa, Method.SET, unknown, pkey).status == SaStatus.ERR_REQ_INVALID
    # Without the P_Key in the mask OpenSM checks neither.
    assert send(sa, Method.SET, unknown, RID).status == 0


def test_data_components_select_records() -> None:
    sa = make_sa()
    send(
        sa, Method.SET, service(1, service_data8=bytes([7]) + bytes(15), service_data64=(0, 9)), RID
    )
    send(
        sa, Method.SET, service(2, service_data8=bytes([8]) + bytes(15), service_data64=(0, 9)), RID
    )
    data8_0 = 1 << 7
    data64_1 = 1 << 36
    assert [
        r.service_id for r in table(sa, service(service_data8=bytes([8]) + bytes(15)), data8_0)
    ] == [0x1002]
    assert len(table(sa, service(service_data64=(5, 9)), data64_1)) == 2


def test_registering_again_replaces_and_delete_removes() -> None:
    sa = make_sa()
    send(sa, Method.SET, service(1), RID)
    send(sa, Method.SET, service(2), RID)
    send(sa, Method.SET, service(1, service_data32=(1, 2, 3, 4)), RID)
    records = table(sa, ServiceRecord())
    assert [r.service_id for r in records] == [0x1001, 0x1002]  # replaced in place
    assert records[0].service_data32 == (1, 2, 3, 4)
    deleted = send(sa, Method.DELETE, service(1), RID)
    assert deleted.header.method == Method.DELETE_RESP and deleted.status == 0
    assert deleted.record().service_id == 0x1001  # type: ignore[union-attr]
    assert send(sa, Method.DELETE, service(1), RID).status == SaStatus.ERR_NO_RECORDS
    # The RID includes the P_Key as registered (0 here): another P_Key is another record.
    assert (
        send(sa, Method.DELETE, service(2, service_pkey=0xFFFF), RID).status
        == SaStatus.ERR_NO_RECORDS
    )


def test_lease_lapses_after_its_seconds() -> None:
    sa = make_sa()
    lease = RID | ServiceRecordComp.SERVICE_LEASE
    send(sa, Method.SET, service(1, service_lease=2), lease, now_ns=0)
    send(sa, Method.SET, service(2, service_lease=INDEFINITE_LEASE), lease, now_ns=0)
    assert len(table(sa, ServiceRecord(), now_ns=2 * S - 1)) == 2
    # Registering again restarts the lease.
    send(sa, Method.SET, service(1, service_lease=2), lease, now_ns=S)
    assert len(table(sa, ServiceRecord(), now_ns=3 * S - 1)) == 2
    assert [r.service_id for r in table(sa, ServiceRecord(), now_ns=3 * S)] == [0x1002]
    assert send(sa, Method.GET, service(1), RID, now_ns=3 * S).status == SaStatus.ERR_NO_RECORDS


def test_service_gid_of_the_sm_port_is_a_port_this_subnet_has() -> None:
    sa = make_sa()
    record = service(service_gid=gid(SM_PORT_GUID), service_pkey=0x7FFF)
    assert send(sa, Method.SET, record, RID | ServiceRecordComp.SERVICE_PKEY).status == 0

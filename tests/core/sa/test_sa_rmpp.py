"""RMPP on the sending side: segmentation, the window, ACKs, retransmission, aborts,
and large GetTable responses from the SA (by hand and on a simulated subnet)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ibmig.core.engine import Datagram
from ibmig.core.sa import RmppSender, RmppTransferDone, SaConfig, reassemble, segment_table
from ibmig.core.sa.rmpp import RmppStatus, segment_count
from ibmig.errors import WireError
from ibmig.fabric.generators import fat_tree_2level
from ibmig.wire.mad import MadHeader, Method, MgmtClass, RmppFlags, RmppHeader, RmppType
from ibmig.wire.sa import (
    NodeRecord,
    PathRecord,
    PathRecordComp,
    SaAttr,
    SaMad,
)
from ibmig.wire.smp_attrs import NodeInfo
from tests.core.sa.sa_util import (
    H1_LID,
    SaClient,
    SaSim,
    ask,
    drain,
    events,
    make_sa,
    request,
    rmpp_ack,
    table_records,
)
from tests.helpers import gid

HEADER = MadHeader(
    MgmtClass.SUBN_ADM, Method.GET_TABLE_RESP, SaAttr.PATH_RECORD, 0x99, 0, class_version=2
)


# --- segmentation ------------------------------------------------------------------


def test_segments_by_hand() -> None:
    table = bytes(range(250))
    first, second = (s.pack() for s in segment_table(HEADER, table, attribute_offset=8))
    # RMPP header at byte 24 (IBA Vol 1, 13.6.2.1): version, type, RRespTime|flags,
    # status, SegmentNumber, PayloadLength
    assert first[24:36] == bytes([1, 1, (14 << 3) | 0x3, 0]) + (1).to_bytes(4, "big") + (
        2 * 20 + 250
    ).to_bytes(4, "big")
    assert second[24:36] == bytes([1, 1, (14 << 3) | 0x5, 0]) + (2).to_bytes(4, "big") + (
        20 + 50
    ).to_bytes(4, "big")
    # the MAD and SA headers are repeated (AttributeOffset at byte 44)
    assert first[:24] == second[:24] == HEADER.pack()
    assert first[44:46] == second[44:46] == b"\x00\x08"
    assert first[56:] == table[:200]
    assert second[56:] == table[200:] + bytes(150)


def test_middle_segments_and_empty_table() -> None:
    segments = segment_table(HEADER, bytes(450), attribute_offset=8)
    assert [s.rmpp.flags for s in segments] == [0x3, 0x1, 0x5]
    assert [s.rmpp.payload_length for s in segments] == [3 * 20 + 450, 0, 20 + 50]
    [empty] = segment_table(HEADER, b"", attribute_offset=0)
    assert empty.rmpp.flags == 0x7 and empty.rmpp.payload_length == 20
    assert segment_count(0) == 1 and segment_count(200) == 1 and segment_count(201) == 2


@given(st.binary(max_size=3000))
def test_reassemble_round_trip(table: bytes) -> None:
    assert reassemble(segment_table(HEADER, table, attribute_offset=8)) == table


def test_single_segment_agrees_with_the_one_mad_codec() -> None:
    records = [PathRecord(dlid=n) for n in range(3)]
    table = b"".join(r.pack() for r in records)
    [segment] = segment_table(HEADER, table, attribute_offset=8)
    one_mad = SaMad.from_records(records, method=Method.GET_TABLE_RESP, tid=0x99)
    assert segment.pack() == one_mad.pack()
    assert segment.records() == tuple(records)


@pytest.mark.parametrize(
    "breakage",
    ["order", "first_flag", "last_flag", "length", "last_length", "type", "none"],
)
def test_reassemble_rejects_inconsistent_sequences(breakage: str) -> None:
    segments = segment_table(HEADER, bytes(450), attribute_offset=8)

    def with_rmpp(index: int, **fields: int) -> None:
        old = segments[index].rmpp
        values = {
            "rmpp_version": old.rmpp_version,
            "rmpp_type": old.rmpp_type,
            "resp_time": old.resp_time,
            "flags": old.flags,
            "rmpp_status": old.rmpp_status,
            "data1": old.data1,
            "data2": old.data2,
            **fields,
        }
        segment = segments[index]
        segments[index] = SaMad(
            segment.header,
            RmppHeader(**values),
            segment.sm_key,
            segment.attribute_offset,
            segment.component_mask,
            segment.data,
        )

    if breakage == "order":
        segments[1], segments[2] = segments[2], segments[1]
    elif breakage == "first_flag":
        with_rmpp(0, flags=0x1)
    elif breakage == "last_flag":
        with_rmpp(1, flags=0x5)
    elif breakage == "length":
        with_rmpp(0, data2=3 * 20 + 700)
    elif breakage == "last_length":
        with_rmpp(2, data2=20 + 60)
    elif breakage == "type":
        with_rmpp(1, rmpp_type=RmppType.ACK)
    else:
        segments = []
    with pytest.raises(WireError):
        reassemble(segments)


# --- the sender state ----------------------------------------------------------------


def test_sender_window() -> None:
    sender = RmppSender(
        [b"1", b"2", b"3", b"4", b"5", b"6"], initial_window=1, timeout_ns=10, max_retries=2
    )
    assert sender.start(0) == [1] and sender.deadline_ns == 10
    assert sender.on_ack(1, 4, 5).send == [2, 3, 4]
    assert sender.deadline_ns == 15
    assert sender.on_ack(0, 4, 6).send == []  # an old ACK
    assert sender.on_ack(3, 6, 7).send == [5, 6]
    outcome = sender.on_ack(6, 9, 8)
    assert outcome.complete and outcome.send == []


def test_sender_retransmits_the_window_then_gives_up() -> None:
    sender = RmppSender([b"a", b"b", b"c"], initial_window=1, timeout_ns=10, max_retries=2)
    sender.start(0)
    assert sender.on_ack(1, 3, 1).send == [2, 3]
    assert sender.on_timeout(11) == [2, 3]
    assert sender.on_ack(2, 3, 12).send == []  # 3 is out already
    assert sender.on_timeout(22) == [3]
    assert sender.on_timeout(32) == [3]
    assert sender.on_timeout(42) is None


@pytest.mark.parametrize(
    ("segment", "window", "status"),
    [
        (2, 2, RmppStatus.SEGMENT_TOO_BIG),  # beyond the window (1)
        (1, 0, RmppStatus.WINDOW_TOO_SMALL),
    ],
)
def test_sender_refuses_bad_acks(segment: int, window: int, status: int) -> None:
    sender = RmppSender([b"a", b"b", b"c"], initial_window=1, timeout_ns=10, max_retries=2)
    sender.start(0)
    assert sender.on_ack(segment, window, 1).abort_status == status


# --- the SA's GetTable transfers ------------------------------------------------------


def _node_records_query() -> Datagram:
    return request(
        SaAttr.NODE_RECORD, Method.GET_TABLE, NodeRecord(0, NodeInfo(0, 0, 0, 0)), tid=0x77
    )


def test_get_table_transfer_with_acks() -> None:
    sa = make_sa()
    sa.receive(_node_records_query(), 0)
    [(datagram, first)] = drain(sa)
    assert datagram.dlid == H1_LID
    # 6 NodeRecords of 112 bytes: 672 bytes in 4 segments; window 1 to start
    assert first.rmpp.segment_number == 1 and first.rmpp.payload_length == 4 * 20 + 672
    assert sa.get_timer() == 200_000_000
    sa.receive(rmpp_ack(first, slid=H1_LID, window_last=3), 10)
    more = [mad for _, mad in drain(sa)]
    assert [m.rmpp.segment_number for m in more] == [2, 3]
    sa.receive(rmpp_ack(more[-1], slid=H1_LID, window_last=8), 20)
    [(_, last)] = drain(sa)
    assert last.rmpp.segment_number == 4 and last.rmpp.flags == 0x5
    assert last.rmpp.payload_length == 20 + 672 - 3 * 200
    records = table_records([first, *more, last])
    assert [r.lid for r in records if isinstance(r, NodeRecord)] == [2, 4, 1, 3, 5, 6]
    assert sa.mad_counts[(SaAttr.NODE_RECORD, Method.GET_TABLE_RESP)] == 4
    sa.receive(rmpp_ack(last, slid=H1_LID, window_last=8), 30)
    done = [e for e in events(sa) if isinstance(e, RmppTransferDone)]
    assert done == [RmppTransferDone(H1_LID, 0x77, 4, True, 30)]
    assert sa.get_timer() is None
    sa.receive(rmpp_ack(last, slid=H1_LID, window_last=8), 40)  # a late duplicate
    assert sa.counters["rmpp_unmatched"] == 1


def test_get_table_transfer_retransmits_then_aborts() -> None:
    sa = make_sa(SaConfig(rmpp_timeout_ns=100, rmpp_retries=2))
    sa.receive(_node_records_query(), 0)
    [(_, first)] = drain(sa)
    sa.handle_timer(100)
    [(_, again)] = drain(sa)
    assert again.pack() == first.pack()
    sa.handle_timer(200)
    assert len(drain(sa)) == 1
    sa.handle_timer(300)
    [(_, abort)] = drain(sa)
    assert abort.rmpp.rmpp_type == RmppType.ABORT and abort.rmpp.flags == RmppFlags.ACTIVE
    assert abort.rmpp.rmpp_status == RmppStatus.TOO_MANY_RETRIES
    assert abort.header.method == Method.GET_TABLE_RESP and abort.tid == 0x77
    [done] = [e for e in events(sa) if isinstance(e, RmppTransferDone)]
    assert not done.completed and done.status == RmppStatus.TOO_MANY_RETRIES
    assert sa.get_timer() is None and sa.counters["rmpp_retransmissions"] == 2


@pytest.mark.parametrize("kind", [RmppType.STOP, RmppType.ABORT])
def test_receiver_ends_the_transfer(kind: int) -> None:
    sa = make_sa()
    sa.receive(_node_records_query(), 0)
    [(_, first)] = drain(sa)
    ack = SaMad.unpack(rmpp_ack(first, slid=H1_LID, window_last=1).payload)
    stop = SaMad(
        ack.header,
        RmppHeader(1, kind, 0, RmppFlags.ACTIVE, 118, 0, 0),
        0,
        0,
        0,
        ack.data,
    )
    sa.receive(rmpp_ack(first, slid=H1_LID, window_last=1)._replace(payload=stop.pack()), 5)
    assert drain(sa) == [] and sa.get_timer() is None
    [done] = [e for e in events(sa) if isinstance(e, RmppTransferDone)]
    assert (done.completed, done.status) == (False, 118)


def test_bad_ack_aborts() -> None:
    sa = make_sa()
    sa.receive(_node_records_query(), 0)
    [(_, first)] = drain(sa)
    sa.receive(rmpp_ack(first, slid=H1_LID, window_last=4, number=3), 5)
    [(_, abort)] = drain(sa)
    assert abort.rmpp.rmpp_type == RmppType.ABORT
    assert abort.rmpp.rmpp_status == RmppStatus.SEGMENT_TOO_BIG


def test_empty_table_is_one_segment() -> None:
    sa = make_sa()
    query = PathRecord(sgid=gid(0x4242))  # nobody
    [(_, answer)] = ask(
        sa, request(SaAttr.PATH_RECORD, Method.GET_TABLE, query, mask=PathRecordComp.SGID)
    )
    assert answer.rmpp.flags == 0x7 and answer.rmpp.payload_length == 20
    assert answer.attribute_offset == 0 and answer.status == 0


def test_a_repeated_request_restarts_the_transfer() -> None:
    sa = make_sa()
    sa.receive(_node_records_query(), 0)
    sa.receive(_node_records_query(), 1)
    assert len(drain(sa)) == 2
    assert sa.counters["rmpp_restarted"] == 1


# --- on a simulated subnet ---------------------------------------------------------


def test_large_path_table_on_a_simulated_subnet() -> None:
    sim = SaSim(fat_tree_2level(leaves=4, hosts_per_leaf=9, spines=3))
    sim.start()
    assert sim.run_until_up() is not None
    seen: list[object] = []
    sim.event_hooks.append(lambda node, event: seen.append(event))
    client = SaClient(sim, sim.node_index("h2_5"), window=3)
    db = sim.sm.db
    record = db.port_record(client.lid)
    assert record is not None
    query = PathRecord(sgid=gid(record.port_guid))
    client.send(
        request(SaAttr.PATH_RECORD, Method.GET_TABLE, query, mask=PathRecordComp.SGID, tid=5)
    )
    sim.run()
    segments = client.segments(5)
    assert len(segments) == -(-len(db.port_lid) * 64 // 200)
    records = [r for r in table_records(segments) if isinstance(r, PathRecord)]
    assert sorted(r.dlid for r in records) == sorted(db.port_lid.values())
    assert all(r.slid == client.lid and r.reversible for r in records)
    assert sim.sa.counters["rmpp_retransmissions"] == 0
    done = [e for e in seen if isinstance(e, RmppTransferDone)]
    assert done and done[-1].completed

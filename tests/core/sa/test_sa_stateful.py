"""A stateful property test of the SA: arbitrary sequences of GUIDInfoRecord Set and
Delete from several ports, InformInfo subscribe/unsubscribe, PathRecord gets, Reports
and ReportResps with random TIDs, malformed MADs, lost or refused SMPs and time
passing, under a hand-driven clock.

Invariants after every step: nothing escapes the SA but its answers; every alias GUID
is held by at most one (port, index) and `alias_owner` agrees with the ports' tables;
no alias GUID is some port's own GUID; the subscriptions are exactly the ones the
model registered; no request is answered twice, and once the SMs' writes are
answered or timed out every request the SA must answer has been answered. Bad
requests get the status IBA prescribes (checked in the rule that sends them).
"""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from ibmig.core.engine import QP1, Datagram
from ibmig.core.sa import SaConfig
from ibmig.core.sm.db import SubnetDb
from ibmig.wire.mad import MadStatus, Method, RmppType
from ibmig.wire.notice import path_change_notice
from ibmig.wire.sa import (
    GUIDInfoRecord,
    GUIDInfoRecordComp,
    InformInfo,
    PathRecord,
    PathRecordComp,
    SaAttr,
    SaMad,
    SaStatus,
)
from ibmig.wire.smp import Smp, make_get_resp
from ibmig.wire.smp_attrs import GUID_BLOCK_SIZE, GUIDInfo
from tests.core.sa.sa_util import (
    H1_GUID,
    H1_LID,
    H2_GUID,
    H2_LID,
    H3_GUID,
    H3_LID,
    QKEY,
    SM_LID,
    SM_PORT_GUID,
    SW1_LID,
    build_subnet,
    make_sa,
    report_resp,
    request,
)
from tests.helpers import gid

GIR = SaAttr.GUID_INFO_RECORD
KEY_MASK = int(GUIDInfoRecordComp.LID | GUIDInfoRecordComp.BLOCK_NUM)
G = [int(GUIDInfoRecordComp.GUID0) << i for i in range(GUID_BLOCK_SIZE)]
REQUESTERS = (H1_LID, H2_LID, H3_LID, SM_LID)
PORT_GUIDS = (SM_PORT_GUID, H1_GUID, H2_GUID, H3_GUID)
# A few vGUIDs (so that ports compete for them), the port GUIDs (always refused as
# aliases) and 0 (an SM-assigned GUID).
GUIDS = (0x0002_C903_0000_1001, 0x0002_C903_0000_1002, 0x0002_C903_0000_1003, 0, H2_GUID)
TRAPS = (64, 65, 69, 128)
SECOND = 1_000_000_000
MUTATED_TID = 0xFFFF_0000_0000_0000
# An unsupported method must be answered 0x0008; these are neither supported nor
# one of the methods the SA drops silently (Send, Trap, TrapRepress).
BAD_METHODS = (0x04, 0x08, 0x13, 0x1F, 0x7F)
# Not served: RandomFTRecord, TraceRecord, ServiceAssociationRecord and IDs no record has.
UNSERVED_ATTRIBUTES = (0x0000, 0x0002, 0x0016, 0x0039, 0x003B, 0x1234, 0xFFFF)


def ports_alias_table(db: SubnetDb) -> dict[int, list[tuple[int, int]]]:
    """alias GUID -> every (port GUID, index) whose table holds it."""
    holders: dict[int, list[tuple[int, int]]] = {}
    for node in db.nodes.values():
        for record in node.ports.values():
            for index, guid in record.alias_guids.items():
                if guid:
                    holders.setdefault(guid, []).append((record.port_guid, index))
    return holders


class SaMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.sm = build_subnet()
        # rmpp=False: a GetTable is answered with one MAD, so "answered once" is one
        # MAD per TID.
        self.sa = make_sa(SaConfig(rmpp=False), sm=self.sm)
        self.now = 1_000
        self.next_tid = 0x100
        self.must_answer: set[int] = set()
        self.answers: Counter[int] = Counter()
        self.subscriptions: set[tuple[int, int]] = set()  # (LID, trap) as registered
        self.reports_seen: list[int] = []

    # --- plumbing -------------------------------------------------------------------

    def tid(self) -> int:
        self.next_tid += 1
        return self.next_tid

    def collect(self) -> list[SaMad]:
        """What the SA sent, decoded (an SA output that does not decode is a bug);
        answers counted by TID, Reports remembered."""
        answers = []
        for datagram in self.sa.packets_to_send():
            mad = SaMad.unpack(datagram.payload)
            assert datagram.slid == SM_LID and datagram.qkey == QKEY
            if mad.header.method == Method.REPORT:
                self.reports_seen.append(mad.tid)
                continue
            assert mad.header.method & 0x80, mad.header
            self.answers[mad.tid] += 1
            answers.append(mad)
        while self.sa.next_event() is not None:
            pass
        while self.sm.next_event() is not None:
            pass
        return answers

    def send(self, datagram: Datagram, *, answered: bool = True) -> list[SaMad]:
        tid = SaMad.unpack(datagram.payload).tid if len(datagram.payload) == 256 else None
        if answered and tid is not None:
            self.must_answer.add(tid)
        self.sa.receive(datagram, self.now)
        return self.collect()

    def answer_of(self, answers: list[SaMad], tid: int) -> SaMad | None:
        mine = [mad for mad in answers if mad.tid == tid]
        assert len(mine) <= 1
        return mine[0] if mine else None

    # --- GUIDInfoRecord -------------------------------------------------------------

    @rule(
        slid=st.sampled_from(REQUESTERS),
        lid=st.sampled_from((H1_LID, H2_LID, H3_LID, SW1_LID, SM_LID, 0x77)),
        block=st.integers(0, 4),
        entries=st.sets(st.integers(0, 7), max_size=3),
        guids=st.lists(st.sampled_from(GUIDS), min_size=8, max_size=8),
        delete=st.booleans(),
        keyed=st.booleans(),
    )
    def guid_write(
        self,
        slid: int,
        lid: int,
        block: int,
        entries: set[int],
        guids: list[int],
        delete: bool,
        keyed: bool,
    ) -> None:
        mask = KEY_MASK if keyed else int(GUIDInfoRecordComp.LID)
        for i in entries:
            mask |= G[i]
        method = Method.DELETE if delete else Method.SET
        tid = self.tid()
        record = GUIDInfoRecord(lid, block, GUIDInfo(tuple(guids)))
        answers = self.send(request(GIR, method, record, mask=mask, tid=tid, slid=slid))
        answer = self.answer_of(answers, tid)
        if answer is None:
            return  # waits for the port's GetResp
        assert answer.header.method == (Method.GET_RESP if not delete else Method.DELETE_RESP)
        if not keyed:
            assert answer.status == SaStatus.ERR_REQ_INSUFFICIENT_COMPONENTS
        elif lid == 0x77:
            assert answer.status == SaStatus.ERR_NO_RECORDS
        elif lid != slid:  # only a port's own agent writes its alias GUIDs
            assert answer.status == SaStatus.ERR_REQ_DENIED
        elif block == 0 and 0 in entries:
            # GUID0 of block 0 is the port GUID, read-only; unless the block is
            # beyond GUIDCap (a switch has one block), which is no record.
            assert answer.status in (SaStatus.ERR_REQ_INVALID, SaStatus.ERR_NO_RECORDS)
        else:
            assert answer.status in (0, SaStatus.ERR_NO_RECORDS)

    @rule(slid=st.sampled_from(REQUESTERS), lid=st.sampled_from((H1_LID, H2_LID, 0)))
    def guid_get_table(self, slid: int, lid: int) -> None:
        tid = self.tid()
        query = GUIDInfoRecord(lid, 0, GUIDInfo())
        mask = int(GUIDInfoRecordComp.LID) if lid else 0
        answers = self.send(request(GIR, Method.GET_TABLE, query, mask=mask, tid=tid, slid=slid))
        answer = self.answer_of(answers, tid)
        assert answer is not None and answer.status == 0

    @rule(status=st.sampled_from((0, 0, 0, 0x001C)), lose=st.booleans())
    def play_smas(self, status: int, lose: bool) -> None:
        """Answer (or lose) every SMP the SM has sent: the GUIDInfo writes."""
        for datagram in self.sm.packets_to_send():
            if lose:
                continue
            smp = Smp.unpack(datagram.payload)
            response = make_get_resp(smp, status=status)
            self.sm.receive(Datagram(response.pack(), 1, 0xFFFF, 0xFFFF, 0, 0), self.now)
        self.collect()

    @rule(delta_ns=st.sampled_from((1_000, 50_000_000, 300_000_000, 2 * SECOND)))
    def advance(self, delta_ns: int) -> None:
        self.now += delta_ns
        self.run_timers()

    def run_timers(self) -> None:
        for engine in (self.sm, self.sa):
            deadline = engine.get_timer()
            if deadline is not None and deadline <= self.now:
                engine.handle_timer(self.now)
        self.collect()

    # --- InformInfo -----------------------------------------------------------------

    @rule(slid=st.sampled_from((H1_LID, H2_LID, H3_LID)), trap=st.sampled_from(TRAPS))
    def subscribe(self, slid: int, trap: int) -> None:
        tid = self.tid()
        info = InformInfo(trap_number=trap, resp_time_value=18)
        answer = self.answer_of(
            self.send(request(SaAttr.INFORM_INFO, Method.SET, info, tid=tid, slid=slid)), tid
        )
        assert answer is not None and answer.status == 0
        self.subscriptions.add((slid, trap))

    @rule(slid=st.sampled_from((H1_LID, H2_LID, H3_LID)), trap=st.sampled_from(TRAPS))
    def unsubscribe(self, slid: int, trap: int) -> None:
        tid = self.tid()
        # The subscription's QPN is the QP it was made from (request(): QP1); it must
        # say so to leave.
        info = InformInfo(trap_number=trap, resp_time_value=18, subscribe=0, qpn=1)
        answer = self.answer_of(
            self.send(request(SaAttr.INFORM_INFO, Method.SET, info, tid=tid, slid=slid)), tid
        )
        assert answer is not None
        if (slid, trap) in self.subscriptions:
            assert answer.status == 0
            self.subscriptions.discard((slid, trap))
        else:
            assert answer.status == SaStatus.ERR_REQ_INVALID

    @rule(guid=st.sampled_from(GUIDS[:3]), lids=st.tuples(st.integers(1, 6), st.integers(1, 6)))
    def notice(self, guid: int, lids: tuple[int, int]) -> None:
        """A path-change notice reported to the matching subscribers."""
        notice = path_change_notice(
            gid=gid(guid),
            new_lid=lids[0],
            old_lid=lids[1],
            new_port_guid=H1_GUID,
            old_port_guid=H2_GUID,
            issuer_lid=SM_LID,
            issuer_gid=gid(SM_PORT_GUID),
        )
        matched = self.sa.report_notice(notice, self.now)
        assert matched == sum(1 for _, trap in self.subscriptions if trap == 69)
        self.collect()

    @rule(
        slid=st.sampled_from(REQUESTERS),
        tid=st.one_of(st.integers(0, (1 << 64) - 1), st.just(-1)),
    )
    def report_resp(self, slid: int, tid: int) -> None:
        """A ReportResp with a random TID, or with the TID of a Report sent."""
        if tid == -1:
            if not self.reports_seen:
                return
            tid = self.reports_seen[-1]
        report = SaMad.from_record(InformInfo(), method=Method.REPORT, tid=tid)
        self.send(report_resp(report, slid=slid), answered=False)

    # --- PathRecord -----------------------------------------------------------------

    @rule(
        slid=st.sampled_from(REQUESTERS),
        source=st.sampled_from((*GUIDS, *PORT_GUIDS, 0xDEAD)),
        dest=st.sampled_from((*GUIDS, *PORT_GUIDS, 0xDEAD)),
        table=st.booleans(),
    )
    def path_record(self, slid: int, source: int, dest: int, table: bool) -> None:
        tid = self.tid()
        record = PathRecord(sgid=gid(source), dgid=gid(dest), numb_path=1)
        mask = int(PathRecordComp.SGID | PathRecordComp.DGID | PathRecordComp.NUMB_PATH)
        method = Method.GET_TABLE if table else Method.GET
        answer = self.answer_of(
            self.send(request(SaAttr.PATH_RECORD, method, record, mask=mask, tid=tid, slid=slid)),
            tid,
        )
        assert answer is not None
        assert answer.status in (0, SaStatus.ERR_NO_RECORDS), hex(answer.status)

    # --- malformed ------------------------------------------------------------------

    @rule(data=st.binary(max_size=300))
    def random_bytes(self, data: bytes) -> None:
        self.sa.receive(Datagram(data, 1, H1_LID, SM_LID, 1, QP1, qkey=QKEY), self.now)
        self.collect()

    @rule(cut=st.integers(0, 255), slid=st.sampled_from(REQUESTERS))
    def truncated(self, cut: int, slid: int) -> None:
        datagram = request(SaAttr.NODE_RECORD, Method.GET_TABLE, tid=self.tid(), slid=slid)
        self.sa.receive(datagram._replace(payload=datagram.payload[:cut]), self.now)
        assert self.collect() == []

    @rule(version=st.integers(0, 255).filter(lambda v: v != 2))
    def wrong_class_version(self, version: int) -> None:
        tid = self.tid()
        datagram = request(SaAttr.NODE_RECORD, Method.GET, tid=tid, class_version=version)
        answer = self.answer_of(self.send(datagram), tid)
        assert answer is not None and answer.status == MadStatus.BAD_VERSION

    @rule(method=st.sampled_from(BAD_METHODS))
    def bad_method(self, method: int) -> None:
        tid = self.tid()
        answer = self.answer_of(self.send(request(SaAttr.NODE_RECORD, method, tid=tid)), tid)
        assert answer is not None and answer.status == MadStatus.METHOD_NOT_SUPPORTED

    @rule(
        attribute=st.sampled_from(UNSERVED_ATTRIBUTES),
        method=st.sampled_from((Method.GET, Method.SET, Method.DELETE)),
    )
    def bad_attribute(self, attribute: int, method: int) -> None:
        tid = self.tid()
        answer = self.answer_of(self.send(request(attribute, method, tid=tid)), tid)
        assert answer is not None and answer.status == MadStatus.METHOD_ATTR_NOT_SUPPORTED

    @rule(
        flip=st.lists(st.tuples(st.integers(0, 255), st.integers(0, 255)), min_size=1, max_size=8),
        slid=st.sampled_from(REQUESTERS),
    )
    def mutated(self, flip: list[tuple[int, int]], slid: int) -> None:
        """A valid PathRecord request with a few bytes changed: whatever it has become,
        the SA answers it or drops it. (Mutations that turned it into an InformInfo
        Set are not sent: the model could not tell which subscription it makes.)"""
        datagram = request(SaAttr.PATH_RECORD, Method.GET, tid=MUTATED_TID, slid=slid)
        payload = bytearray(datagram.payload)
        for offset, value in flip:
            payload[offset] = value
        tid = int.from_bytes(payload[8:16], "big")
        if payload[16:18] == b"\x00\x03" or tid in self.must_answer:
            return
        self.sa.receive(datagram._replace(payload=bytes(payload)), self.now)
        self.collect()
        self.answers.pop(tid, None)  # not one of ours: out of the count

    @rule(rmpp_type=st.sampled_from((RmppType.ACK, RmppType.STOP, RmppType.ABORT)))
    def stray_rmpp_control(self, rmpp_type: int) -> None:
        datagram = request(SaAttr.NODE_RECORD, Method.GET_TABLE_RESP, tid=self.tid())
        payload = bytearray(datagram.payload)
        payload[25] = 1  # RMPP version
        payload[26] = rmpp_type
        payload[27] = 0x10  # RRespTime 0, flags Active
        self.sa.receive(datagram._replace(payload=bytes(payload)), self.now)
        self.collect()

    # --- the end of every example -----------------------------------------------------

    @rule()
    def settle(self) -> None:
        """Answer every write, run out every timer: every request the SA must answer
        has its answer."""
        for _ in range(20):
            self.play_smas(0, False)
            deadline = min(
                (t for t in (self.sm.get_timer(), self.sa.get_timer()) if t is not None),
                default=None,
            )
            if deadline is None:
                break
            self.now = max(self.now, deadline)
            self.run_timers()
        self.play_smas(0, False)
        missing = {tid for tid in self.must_answer if self.answers[tid] == 0}
        assert not missing, sorted(missing)

    # --- invariants -----------------------------------------------------------------

    @invariant()
    def each_alias_held_once(self) -> None:
        db = self.sm.db
        holders = ports_alias_table(db)
        for guid, where in holders.items():
            assert len(where) == 1, (hex(guid), where)
            assert db.alias_owner.get(guid) == where[0][0], hex(guid)
            assert guid not in PORT_GUIDS, hex(guid)
        for guid, owner in db.alias_owner.items():
            assert any(port == owner for port, _ in holders.get(guid, ())), hex(guid)

    @invariant()
    def subscriptions_as_registered(self) -> None:
        held = {(s.lid, s.inform_info.trap_number) for s in self.sa.subscriptions}
        assert held == self.subscriptions

    @invariant()
    def answered_at_most_once(self) -> None:
        twice = [tid for tid, n in self.answers.items() if n > 1]
        assert not twice, twice

    def teardown(self) -> None:
        self.settle()


TestSaStateful = SaMachine.TestCase
TestSaStateful.settings = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

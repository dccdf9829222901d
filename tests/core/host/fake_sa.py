"""A tiny fake SA for the host and migration tests, and a pump between it and hosts.

It answers what dom0 asks of the SA, at once and the way `ibmig.core.sa` does:
GUIDInfoRecord Set (GetResp with the block; a GUID another entry holds is refused,
left out) and Delete (DeleteResp), InformInfo Set (GetResp echoing the record),
and sends a path-change Report (trap 69) to every subscriber when a Set puts an
alias GUID behind another LID than the one it was last seen behind. It can drop
requests (`drop`) or answer with a forced status (`force_status`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from ibmig.core.engine import QP1, Datagram
from ibmig.wire.mad import MadHeader, Method, MgmtClass, RmppHeader
from ibmig.wire.notice import Notice
from ibmig.wire.packet import QP1_QKEY
from ibmig.wire.sa import (
    SA_CLASS_VERSION,
    SA_DATA_SIZE,
    GUIDInfoRecord,
    GUIDInfoRecordComp,
    InformInfo,
    SaAttr,
    SaMad,
)
from ibmig.wire.smp_attrs import GUIDInfo
from tests.core.sa_fakes import PREFIX, SA_LID, SA_PORT_GUID, move_notice
from tests.core.sa_fakes import report as report_datagram
from tests.helpers import gid

__all__ = ["PREFIX", "SA_LID", "SA_PORT_GUID", "FakeSa", "exchange", "gid", "sa_mad"]


@dataclass
class FakeSa:
    lid: int = SA_LID
    entries: dict[tuple[int, int], int] = field(default_factory=dict)
    """(port LID, GUIDInfo index) -> GUID."""
    last_lid: dict[int, int] = field(default_factory=dict)
    """alias GUID -> LID it was last seen behind (kept after a Delete)."""
    subscribers: list[tuple[int, int]] = field(default_factory=list)
    """(LID, QPN) of every subscription."""
    requests: list[tuple[Datagram, SaMad]] = field(default_factory=list)
    report_resps: list[tuple[Datagram, SaMad]] = field(default_factory=list)
    drop: int = 0
    """Drop this many of the next requests."""
    force_status: int = 0
    """Answer requests with this status (0: normal operation)."""
    refused: int = 0
    report_tid: int = 0x7000

    def handle(self, datagram: Datagram) -> list[Datagram]:
        """Everything the SA sends in answer to `datagram` (responses and Reports)."""
        mad = SaMad.unpack(datagram.payload)
        if mad.header.method == Method.REPORT_RESP:
            self.report_resps.append((datagram, mad))
            return []
        self.requests.append((datagram, mad))
        if self.drop:
            self.drop -= 1
            return []
        if self.force_status:
            method = Method.GET_RESP if mad.header.method == Method.SET else Method.DELETE_RESP
            return [self._reply(datagram, mad, method, mad.data, self.force_status)]
        if mad.attribute_id == SaAttr.INFORM_INFO:
            info = InformInfo.unpack(mad.data)
            key = (datagram.slid, datagram.sqp)
            if info.subscribe and key not in self.subscribers:
                self.subscribers.append(key)
            elif not info.subscribe and key in self.subscribers:
                self.subscribers.remove(key)
            return [self._reply(datagram, mad, Method.GET_RESP, mad.data)]
        assert mad.attribute_id == SaAttr.GUID_INFO_RECORD
        record = GUIDInfoRecord.unpack(mad.data)
        setting = mad.header.method == Method.SET
        moved: list[tuple[int, int, int]] = []
        for i in range(8):
            if not mad.component_mask & (int(GUIDInfoRecordComp.GUID0) << i):
                continue
            key = (record.lid, record.block_num * 8 + i)
            guid = record.guid_info.guids[i]
            if setting:
                holder = next((k for k, g in self.entries.items() if g == guid), None)
                if holder is not None and holder != key:
                    self.refused += 1
                    continue
                self.entries[key] = guid
                before = self.last_lid.get(guid)
                self.last_lid[guid] = record.lid
                if before is not None and before != record.lid:
                    moved.append((guid, before, record.lid))
            elif self.entries.get(key) == guid:
                del self.entries[key]
        block = tuple(self.entries.get((record.lid, record.block_num * 8 + i), 0) for i in range(8))
        answer = GUIDInfoRecord(record.lid, record.block_num, GUIDInfo(block))
        method = Method.GET_RESP if setting else Method.DELETE_RESP
        out = [self._reply(datagram, mad, method, answer.pack())]
        for guid, old_lid, new_lid in moved:
            notice = move_notice(gid(guid), new_lid, old_lid)
            out.extend(self.report(notice, lid, qpn) for lid, qpn in self.subscribers)
        return out

    def report(self, notice: Notice, lid: int, qpn: int = QP1, tid: int | None = None) -> Datagram:
        """A SubnAdmReport(notice) to a subscriber."""
        if tid is None:
            self.report_tid += 1
            tid = self.report_tid
        return report_datagram(notice, tid, lid, qpn, sa_lid=self.lid)

    def _reply(
        self, datagram: Datagram, mad: SaMad, method: int, data: bytes, status: int = 0
    ) -> Datagram:
        response = SaMad(
            replace(mad.header, method=method, status=status),
            RmppHeader.NONE,
            0,
            0 if method == Method.REPORT_RESP else 9,
            mad.component_mask,
            data.ljust(SA_DATA_SIZE, b"\0"),
        )
        grh = datagram.sgid is not None
        return Datagram(
            response.pack(),
            1,
            self.lid,
            datagram.slid,
            QP1,
            datagram.sqp,
            qkey=QP1_QKEY,
            sgid=datagram.dgid if grh else None,
            dgid=datagram.sgid if grh else None,
        )


def sa_mad(method: int, attribute: int, data: bytes, *, tid: int, status: int = 0) -> SaMad:
    """A bare SA MAD for hand-made answers."""
    return SaMad(
        MadHeader(
            MgmtClass.SUBN_ADM,
            method,
            attribute,
            tid,
            status=status,
            class_version=SA_CLASS_VERSION,
        ),
        RmppHeader.NONE,
        0,
        0,
        0,
        data.ljust(SA_DATA_SIZE, b"\0"),
    )


class Engine(Protocol):
    def receive(self, datagram: Datagram, now_ns: int) -> None: ...

    def packets_to_send(self) -> list[Datagram]: ...

    def get_timer(self) -> int | None: ...

    def handle_timer(self, now_ns: int) -> None: ...


def run_due(engine: Engine, now_ns: int) -> None:
    """Fire `engine`'s timer if it is due by `now_ns`, as a runtime does: dom0's alias
    GUID work runs once the calls made at `now_ns` are done (HostAgent._pump)."""
    deadline = engine.get_timer()
    if deadline is not None and deadline <= now_ns:
        engine.handle_timer(now_ns)


def exchange(sa: FakeSa, hosts: Mapping[int, Engine], now_ns: int) -> int:
    """Carry datagrams between the hosts (by port LID) and the SA until all is quiet;
    everything arrives at `now_ns`. Returns how many datagrams moved."""
    moved = 0
    while True:
        for host in hosts.values():
            run_due(host, now_ns)
        outgoing = [d for host in hosts.values() for d in host.packets_to_send()]
        if not outgoing:
            return moved
        for datagram in outgoing:
            moved += 1
            assert datagram.dlid == sa.lid, datagram
            for answer in sa.handle(datagram):
                moved += 1
                hosts[answer.dlid].receive(answer, now_ns)

"""An SA requester and event subscriber on ibsim, in pure Python.

`SaClient` attaches to ibsim at a node with its own QP number (above 1: ibsim
hands requests for QP0/QP1 only to the node's issm client, but a request for any
other QP to the client registered with that QP, so Reports sent to the QPN we
subscribed from reach us). It sends SubnAdm requests to the SM's LID (the port's
MasterSMLID) from that QP, waits for the response with the same TID (ibsim routes
responses by the slot it wrote into the top 16 bits of the TID), and answers every
SubnAdmReport(Notice) it receives with a SubnAdmReportResp, keeping the notices.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ibmig.core.engine import QP1
from ibmig.errors import WireError
from ibmig.ibsim.client import IbsimClient, IbsimError, SimRequest
from ibmig.wire.mad import Method, MgmtClass
from ibmig.wire.notice import Notice
from ibmig.wire.sa import (
    GUIDInfoRecord,
    GUIDInfoRecordComp,
    InformInfo,
    PathRecord,
    PathRecordComp,
    SaAttr,
    SaMad,
)
from ibmig.wire.smp_attrs import GUIDInfo

_TID_MASK = (1 << 48) - 1
_GUID_COMPONENTS = (
    GUIDInfoRecordComp.GUID0,
    GUIDInfoRecordComp.GUID1,
    GUIDInfoRecordComp.GUID2,
    GUIDInfoRecordComp.GUID3,
    GUIDInfoRecordComp.GUID4,
    GUIDInfoRecordComp.GUID5,
    GUIDInfoRecordComp.GUID6,
    GUIDInfoRecordComp.GUID7,
)


@dataclass(frozen=True, slots=True)
class ReceivedReport:
    """A Report(Notice) as it arrived, and when (host monotonic seconds)."""

    notice: Notice
    tid: int
    slid: int
    time_s: float


class SaClient:
    """A client of the SA on ibsim (see the module docstring)."""

    def __init__(
        self,
        *,
        sockname: str | None,
        node: str,
        qp: int = 2,
        timeout_s: float = 5.0,
    ) -> None:
        if qp <= QP1:
            raise IbsimError("an SA client needs a QP number above 1 to receive Reports")
        self.qp = qp
        self.timeout_s = timeout_s
        self.client = IbsimClient(sockname=sockname, node=node, qp=qp).connect()
        self.reports: list[ReceivedReport] = []
        self._tid = 0x1000

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> SaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def lid(self) -> int:
        return self.client.get_port()[0]

    @property
    def sm_lid(self) -> int:
        return self.client.get_port_info(0).master_sm_lid

    # --- requests -------------------------------------------------------------------

    def next_tid(self) -> int:
        self._tid += 1
        return self._tid

    def request(self, mad: SaMad) -> SaMad:
        """Send `mad` to the SA and return its response (IbsimError on none)."""
        dlid = self.sm_lid
        if not dlid:
            raise IbsimError("the port has no MasterSMLID yet: no SM has brought it up")
        tid = mad.tid & _TID_MASK
        frame = SimRequest(dlid, 0, QP1, self.qp, mad.pack())
        self._handle(self.client.send_blocking(frame))
        deadline = time.monotonic() + self.timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.client.wait(left):
                raise IbsimError(
                    f"no answer from the SA at LID {dlid} to attribute "
                    f"0x{mad.attribute_id:04x} method 0x{mad.method:02x}"
                )
            frame_in = self.client.recv()
            if frame_in is None:
                continue
            if frame_in.dropped and frame_in.mad[1] == MgmtClass.SUBN_ADM:
                raise IbsimError(f"ibsim dropped the request to LID {dlid} (status 110)")
            answer = self._handle([frame_in])
            if answer is not None and answer.tid & _TID_MASK == tid:
                return answer

    def subscribe(
        self,
        trap_number: int = 0xFFFF,
        *,
        subscribe: bool = True,
        is_generic: int = 1,
        notice_type: int = 0xFFFF,
        producer_type: int = 0xFFFFFF,
        gid: bytes = bytes(16),
    ) -> SaMad:
        """SubnAdmSet(InformInfo): (un)subscribe to `trap_number` (0xFFFF: all)."""
        info = InformInfo(
            gid=gid,
            lid_range_begin=0xFFFF,
            lid_range_end=0,
            is_generic=is_generic,
            subscribe=int(subscribe),
            type=notice_type,
            trap_number=trap_number,
            qpn=self.qp,
            resp_time_value=18,
            producer_type=producer_type,
        )
        return self.request(SaMad.from_record(info, method=Method.SET, tid=self.next_tid()))

    def set_guid_info(self, lid: int, block: int, guids: dict[int, int]) -> SaMad:
        """SubnAdmSet(GUIDInfoRecord): write `guids` (index in block -> GUID)."""
        return self._guid_info(Method.SET, lid, block, guids)

    def delete_guid_info(self, lid: int, block: int, indices: list[int]) -> SaMad:
        """SubnAdmDelete(GUIDInfoRecord): clear the entries `indices` of the block."""
        return self._guid_info(Method.DELETE, lid, block, dict.fromkeys(indices, 0))

    def get_guid_info(self, lid: int, block: int) -> SaMad:
        """SubnAdmGet(GUIDInfoRecord) of one block."""
        mask = GUIDInfoRecordComp.LID | GUIDInfoRecordComp.BLOCK_NUM
        record = GUIDInfoRecord(lid, block, GUIDInfo((0,) * 8))
        return self.request(
            SaMad.from_record(record, method=Method.GET, tid=self.next_tid(), component_mask=mask)
        )

    def path_record(self, sgid: bytes, dgid: bytes) -> SaMad:
        """SubnAdmGet(PathRecord) from `sgid` to `dgid` (port or alias GIDs)."""
        mask = PathRecordComp.SGID | PathRecordComp.DGID
        query = PathRecord(sgid=sgid, dgid=dgid)
        return self.request(
            SaMad.from_record(query, method=Method.GET, tid=self.next_tid(), component_mask=mask)
        )

    def _guid_info(self, method: int, lid: int, block: int, guids: dict[int, int]) -> SaMad:
        mask = int(GUIDInfoRecordComp.LID | GUIDInfoRecordComp.BLOCK_NUM)
        values = [0] * 8
        for index, guid in guids.items():
            if not 0 <= index < 8:
                raise WireError(f"GUID index {index} is not in a block of 8")
            values[index] = guid
            mask |= _GUID_COMPONENTS[index]
        record = GUIDInfoRecord(lid, block, GUIDInfo(tuple(values)))
        return self.request(
            SaMad.from_record(record, method=method, tid=self.next_tid(), component_mask=mask)
        )

    # --- Reports --------------------------------------------------------------------

    def wait_reports(
        self, count: int, *, trap_number: int | None = None, timeout_s: float | None = None
    ) -> list[ReceivedReport]:
        """Wait until at least `count` Reports (of `trap_number`, if given) have
        arrived in total; return them (possibly fewer after the timeout)."""
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        while True:
            found = [
                r
                for r in self.reports
                if trap_number is None or r.notice.trap_number == trap_number
            ]
            left = deadline - time.monotonic()
            if len(found) >= count or left <= 0:
                return found
            if self.client.wait(left):
                frame = self.client.recv()
                if frame is not None:
                    self._handle([frame])

    def poll(self, duration_s: float) -> None:
        """Take in (and acknowledge) whatever arrives within `duration_s`."""
        deadline = time.monotonic() + duration_s
        while (left := deadline - time.monotonic()) > 0:
            if self.client.wait(left):
                frame = self.client.recv()
                if frame is not None:
                    self._handle([frame])

    def _handle(self, frames: list[SimRequest]) -> SaMad | None:
        """Acknowledge Reports among `frames`; return the last SA response."""
        answer = None
        for frame in frames:
            if frame.dropped or frame.mad[1] != MgmtClass.SUBN_ADM:
                continue
            try:
                mad = SaMad.unpack(frame.mad)
            except WireError:
                continue
            if mad.method == Method.REPORT and mad.attribute_id == SaAttr.NOTICE:
                try:
                    notice = Notice.unpack(mad.data)
                except WireError:
                    continue
                self.reports.append(ReceivedReport(notice, mad.tid, frame.slid, time.monotonic()))
                resp = SaMad.from_record(notice, method=Method.REPORT_RESP, tid=mad.tid)
                # The ReportResp goes back where the Report came from (QP1 of the SM).
                drained = self.client.send_blocking(
                    SimRequest(frame.slid, 0, frame.sqp, self.qp, resp.pack())
                )
                answer = self._handle(drained) or answer
            elif mad.method & 0x80:
                answer = mad
        return answer

"""What the fake SAs of the host and guest tests share: the SA's address, GIDs and
the path-change Report they send (`tests/core/host/fake_sa.py`,
`tests/core/guest/guest_util.py`)."""

from __future__ import annotations

from ibmig.core.engine import QP1, Datagram
from ibmig.wire.mad import Method
from ibmig.wire.notice import Notice, path_change_notice
from ibmig.wire.packet import QP1_QKEY
from ibmig.wire.sa import SaMad
from tests.helpers import gid

PREFIX = 0xFE80_0000_0000_0000
SA_LID = 1
SA_PORT_GUID = 0xA1


SA_GID = gid(SA_PORT_GUID)


def move_notice(moved_gid: bytes, new_lid: int, old_lid: int, new_port_guid: int = 0) -> Notice:
    """The path-change notice (trap 69) the SA issues when `moved_gid` moves."""
    return path_change_notice(
        gid=moved_gid,
        new_lid=new_lid,
        old_lid=old_lid,
        new_port_guid=new_port_guid,
        issuer_lid=SA_LID,
        issuer_gid=SA_GID,
    )


def report(
    notice: Notice,
    tid: int,
    lid: int,
    qpn: int = QP1,
    *,
    sa_lid: int = SA_LID,
    dgid: bytes | None = None,
) -> Datagram:
    """A SubnAdmReport(notice) from the SA to a subscriber at `lid`/`qpn`; with a GRH
    when `dgid` (the subscriber's GID) is given."""
    payload = SaMad.from_record(notice, method=Method.REPORT, tid=tid).pack()
    sgid = SA_GID if dgid is not None else None
    return Datagram(payload, 1, sa_lid, lid, QP1, qpn, qkey=QP1_QKEY, sgid=sgid, dgid=dgid)

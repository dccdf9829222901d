"""The SA-client role, one implementation for dom0 (`ibmig.core.host`) and guests
(`ibmig.core.guest`): request retries, the path-change subscription, Reports.

Both talk to the SA from QP1 and need the same three rules; they live here so
that they cannot drift apart again.

Retries
-------
A request that has no usable answer after `timeout_ns` is sent again with the
same TID, at most `retries` times: `retries` counts *resends*, after the first
send, so a request goes out at most 1 + `retries` times. libibmad, which both
defaults cite, counts differently: its `madrpc_retries` (MAD_DEF_RETRIES, 3) is
the number of sends in all -- rdma-core libibmad/rpc.c `_do_madrpc` sends once
per turn of `for (retries = 0; retries < max_retries; retries++)` -- that is 2
resends; its time-out per send is MAD_DEF_TIMEOUT_MS, 1000 ms. dom0 keeps
libibmad's behaviour (`HostConfig.sa_retries` 2: 3 sends); a guest resends 3
times (`GuestConfig.sa_retries` 3: 4 sends), as it always has.

The engines run the timers (each has one `ibmig.core.timers.Timers`); the rule,
`SaRetry.resend`, is the only place that decides whether a request goes out
again.

Subscription
------------
`path_change_subscription` is the InformInfo Set (IBA Vol 1, 13.4.8.3) both
subscribe with: generic, trap 69 (ibmig's path-change notice,
`ibmig.wire.notice`), GID zero and LIDRangeBegin 0xFFFF (every subject), Type and
ProducerType wildcards, QPN 1; Subscribe 0 withdraws it.

The notice variant (`NOTICES`): "trap69" (and "trap69-path", the same trap whose
DataDetails carry the new path's values) subscribes to trap 69 only; "trap64-65"
to traps 65 and 64 (GID out of / in service), one InformInfo each, every subject,
as OFED's local SA cache does (OFED drivers/infiniband/core/local_sa.c
`reg_out_info`, `reg_in_info`: trap 65 first). Those notices carry only the GID:
a consumer drops its cached path on trap 65 and asks the SA for the GID's
PathRecord on trap 64 (local_sa.c `notice_handler`: SA_UPDATE_REMOVE, _ADD).

Reports
-------
Every SubnAdmReport(Notice) is answered with a SubnAdmReportResp
(`ibmig.wire.sa.report_response`: same TID and Notice, IBA Vol 1, 13.4.5), back
to the sender's LID and QP, with a GRH only when the Report had one. A Report is
a resend (the SA did not get our ReportResp in time) when the same SA LID used its
TID recently: it is answered again but processed once. The TID is compared on its
low 32 bits, the bits the SA matches our ReportResp on (as libibmad matches
answers, rpc.c `_do_madrpc`). "Recently" is the last `report_memory` Reports,
least recently seen forgotten first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ibmig.core.engine import QP1, Datagram
from ibmig.errors import ConfigError
from ibmig.wire.mad import Method
from ibmig.wire.notice import PATH_CHANGE_TRAP, TrapNumber
from ibmig.wire.packet import QP1_QKEY
from ibmig.wire.sa import InformInfo, SaMad, report_response

LIBIBMAD_TIMEOUT_NS: Final = 1_000_000_000
"""libibmad MAD_DEF_TIMEOUT_MS (1000 ms): the wait for an answer before a resend."""
LIBIBMAD_SENDS: Final = 3
"""libibmad MAD_DEF_RETRIES (3): sends in all, the first included (module docstring)."""

NOTICES: Final[dict[str, tuple[int, ...]]] = {
    "trap69": (int(PATH_CHANGE_TRAP),),
    "trap69-path": (int(PATH_CHANGE_TRAP),),  # trap 69 carrying the new path's values
    "trap64-65": (int(TrapNumber.GID_OUT_OF_SERVICE), int(TrapNumber.GID_IN_SERVICE)),
}
"""The path-change notice variants and the traps each subscribes to, in order."""

REPORT_TID_MASK: Final = 0xFFFF_FFFF
"""The TID bits a Report is recognised by (module docstring)."""

ALL_LIDS: Final = 0xFFFF
ALL_TYPES: Final = 0xFFFF
ALL_PRODUCERS: Final = 0xFF_FFFF


class SaRequest:
    """The part of an SA request in flight that the retry rule reads: its TID and
    how many times it has been resent (`attempt`, 0 after the first send)."""

    __slots__ = ("attempt", "tid")

    def __init__(self, tid: int) -> None:
        self.tid = tid
        self.attempt = 0


@dataclass(frozen=True, slots=True)
class SaRetry:
    """The one retry rule of SA requests (module docstring)."""

    timeout_ns: int
    """Wait for an answer before resending."""
    retries: int
    """Resends after the first send (so at most 1 + `retries` sends)."""

    def __post_init__(self) -> None:
        if self.timeout_ns < 1:
            raise ConfigError(f"timeout {self.timeout_ns} ns is not positive", "sa_timeout_ns")
        if self.retries < 0:
            raise ConfigError(f"{self.retries} resends is negative", "sa_retries")

    @property
    def max_sends(self) -> int:
        return 1 + self.retries

    def resend(self, request: SaRequest) -> bool:
        """The request's time-out passed: True (and the resend counted) if it goes
        out again, False if every resend is spent and it is given up."""
        if request.attempt < self.retries:
            request.attempt += 1
            return True
        return False


def path_change_subscription(
    tid: int, *, subscribe: bool, resp_time_value: int, trap_number: int = PATH_CHANGE_TRAP
) -> bytes:
    """The encoded InformInfo Set subscribing to (or, `subscribe` False,
    withdrawing from) path-change notices (trap 69, or `trap_number`) from every
    subject (module docstring). `resp_time_value` tells the SA how long to wait for
    our ReportResp (4.096 us x 2^n)."""
    info = InformInfo(
        gid=bytes(16),
        lid_range_begin=ALL_LIDS,
        lid_range_end=0,
        is_generic=1,
        subscribe=1 if subscribe else 0,
        type=ALL_TYPES,
        trap_number=trap_number,
        qpn=QP1,
        resp_time_value=resp_time_value,
        producer_type=ALL_PRODUCERS,
    )
    return SaMad.from_record(info, method=Method.SET, tid=tid).pack()


def report_resp(report: Datagram, *, lid: int, gid: bytes) -> Datagram:
    """The ReportResp answering `report` (a SubnAdmReport as received), sent from
    `lid` back to the Report's sender LID and QP; with a GRH (SGID the GID the
    Report was sent to, else `gid`) only when the Report came with one."""
    sgid = report.sgid
    return Datagram(
        report_response(report.payload),
        report.port,
        lid,
        report.slid,
        QP1,
        report.sqp,
        report.sl,
        report.pkey,
        QP1_QKEY,
        None if sgid is None else (report.dgid or gid),
        sgid,
    )


class ReportMemory:
    """The Reports seen recently, to tell a resend from a new Report (module
    docstring): at most `size` (SA LID, TID) pairs."""

    __slots__ = ("_seen", "size")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ConfigError(f"{size} Reports remembered is below 1", "report_memory")
        self.size = size
        # Keyed by SA LID << 32 | the TID's low 32 bits: one int, hashed and compared
        # faster than the pair it stands for (and one to one with it). A plain dict,
        # least recently seen first: every host's is written once per migration in
        # the subnet, and an OrderedDict's linked node per key is one more piece of
        # memory (and one more cold cache line at data-centre scale) each time.
        self._seen: dict[int, None] = {}

    def duplicate(self, sa_lid: int, tid: int) -> bool:
        """Whether the Report with `tid` from `sa_lid` was seen recently; either way
        it is now the most recently seen."""
        key = (sa_lid << 32) | (tid & REPORT_TID_MASK)
        seen = self._seen
        if key in seen:
            del seen[key]  # to the end: the most recently seen
            seen[key] = None
            return True
        seen[key] = None
        if len(seen) > self.size:
            del seen[next(iter(seen))]
        return False

    def __len__(self) -> int:
        return len(self._seen)


class SaClient:
    """The SA-client role of one port (module docstring): what dom0 and a guest
    share. The engine keeps its requests, TIDs and timers; it asks the client
    whether to resend and what to subscribe with, answers a Report with
    `report_resp` and asks `reports` whether it is a resend (the engines call
    those two directly: one Report per migration in the subnet reaches each)."""

    __slots__ = ("inform_resp_time_value", "reports", "retry", "traps")

    def __init__(
        self,
        *,
        timeout_ns: int,
        retries: int,
        report_memory: int,
        inform_resp_time_value: int,
        notice: str = "trap69",
    ) -> None:
        if notice not in NOTICES:
            raise ConfigError(f"must be one of {', '.join(NOTICES)}, got {notice!r}", "notice")
        self.retry = SaRetry(timeout_ns, retries)
        self.reports = ReportMemory(report_memory)
        self.inform_resp_time_value = inform_resp_time_value
        self.traps = NOTICES[notice]
        """The traps to subscribe to, in the order to subscribe (module docstring)."""

    @property
    def timeout_ns(self) -> int:
        return self.retry.timeout_ns

    def resend(self, request: SaRequest) -> bool:
        """`SaRetry.resend`: whether a timed-out request goes out again."""
        return self.retry.resend(request)

    def subscription(
        self, tid: int, *, subscribe: bool = True, trap_number: int = PATH_CHANGE_TRAP
    ) -> bytes:
        """The path-change InformInfo Set for one trap (`path_change_subscription`)."""
        return path_change_subscription(
            tid,
            subscribe=subscribe,
            resp_time_value=self.inform_resp_time_value,
            trap_number=trap_number,
        )


__all__ = [
    "LIBIBMAD_SENDS",
    "NOTICES",
    "LIBIBMAD_TIMEOUT_NS",
    "REPORT_TID_MASK",
    "ReportMemory",
    "SaClient",
    "SaRequest",
    "SaRetry",
    "path_change_subscription",
    "report_resp",
]
